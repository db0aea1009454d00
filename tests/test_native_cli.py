"""`fasttok fit --layout native` as a real subprocess: a native folder, its report, and usage errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fasttok_plugin.codec import FastTokenizer
from fasttok_plugin.heads import build_norm_heads
from fasttok_plugin.resolve import resolve_mixture

FAST_FIT = ["--chunk-size", "10", "--vocab-size", "300", "--total-chunks", "400", "--max-fit-chunks", "200"]


def fasttok(*args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("fasttok")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "fasttok_plugin.cli"]
    env = {k: v for k, v in os.environ.items() if k != "FASTTOK_DEBUG"}
    return subprocess.run([*command, *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow  # a subprocess fit (imports torch): about 5 s
def test_fit_layout_native_writes_a_native_folder_measured_at_native_width(
    example_mixture: Path, tmp_path: Path
) -> None:
    out = tmp_path / "native"
    fit = fasttok("fit", str(example_mixture), "--out", str(out), *FAST_FIT, "--layout", "native")
    assert fit.returncode == 0, fit.stderr
    sidecar = json.loads((out / "fasttok.json").read_text())
    report = json.loads((out / "fit_report.json").read_text())
    assert sidecar["layout"] == "native"
    assert report["layout"] == "native"
    assert report["settings"]["layout"] == "native"
    heads = build_norm_heads(resolve_mixture(example_mixture), 32)
    # Every head's widths are in the folder; a padded chunk of the head decodes at its native width.
    assert sidecar["action_dims"] == sorted({int(d) for d in heads.entry_dims})
    for head in report["heads"]:
        assert head["compression_ratio"] * head["token_lengths"]["mean"] == 10 * head["native_dim"]
    tok = FastTokenizer.load(out)
    chunk = np.zeros((1, 10, 32), np.float32)
    chunk[0, :, :7] = np.linspace(-0.5, 0.5, 10)[:, None]
    ids = tok.encode(chunk, action_dims=[7])
    np.testing.assert_allclose(tok.decode(ids, action_dim=[7]).actions[0, :, :7], chunk[0, :, :7], atol=0.05)

    inspect = fasttok("inspect", str(out))
    assert inspect.returncode == 0, inspect.stderr
    assert "chunks 10xnative (<= 32)" in inspect.stdout


def test_layout_usage_errors_exit_2_in_one_line(example_mixture: Path, tmp_path: Path) -> None:
    bad = fasttok("fit", str(example_mixture), "--out", str(tmp_path / "t"), "--layout", "ragged")
    assert bad.returncode == 2
    assert "--layout" in bad.stderr
    assert "'padded', 'native'" in bad.stderr
    assert "Traceback" not in bad.stderr
    help_text = fasttok("fit", "--help").stdout
    assert "--layout {padded,native}" in help_text
    assert "native action width" in " ".join(help_text.split())
