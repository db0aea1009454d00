"""``rounding`` above the codec: settings, fingerprint, fit report, tuner, ``fasttok fit / tune / inspect``.

The codec's token-aware rounding itself is tested in tests/test_codec_rounding.py; here every layer that
passes it on is checked on real fits of a generated LeRobot mixture: the report's lengths and error are
those of the tokenizer's own encode / decode (token-aware), not of a plain quantization.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fasttok_plugin._report_text import render_report
from fasttok_plugin.codec import FastTokenizer
from fasttok_plugin.errors import FitError
from fasttok_plugin.fit import FitReport, FitSettings, fit_fingerprint, fit_tokenizer, tune_tokenizer
from fasttok_plugin.fit.fingerprint import FINGERPRINT_KEY
from fasttok_plugin.heads import build_norm_heads
from fasttok_plugin.mixture import load_mixture
from fasttok_plugin.resolve import resolve_mixture
from fasttok_plugin.sampling import ChunkSampler
from fasttok_plugin.testing import make_example_mixture

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))
from heldout_support import heldout_chunks

NEAREST = FitSettings(chunk_size=16, max_action_dim=16, total_chunks=600, vocab_size=300)
TOKEN_AWARE = dataclasses.replace(NEAREST, rounding="token_aware")
BUDGET = 18


@pytest.fixture(scope="module")
def mixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Four episodes per dataset: every head has held-out episodes.
    root = tmp_path_factory.mktemp("rounding")
    return make_example_mixture(root / "mix", n_datasets=6, episode_lengths=(60, 80, 70, 90))


@pytest.fixture(scope="module")
def fits(mixture: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, FitReport]]:
    out = {}
    for settings in (NEAREST, TOKEN_AWARE):
        folder = tmp_path_factory.mktemp(settings.rounding) / "tok"
        _, report = fit_tokenizer(mixture, settings, out_dir=folder, preflight=False)
        out[settings.rounding] = (folder, report)
    return out


def _head_mse(
    tok: FastTokenizer, chunks: np.ndarray, head: np.ndarray, native: np.ndarray
) -> dict[int, float]:
    """Per head: mean of (decode(encode(x)) - x)^2 over the head's native dims, in normalized units."""
    decoded = tok.decode(tok.encode_padded(chunks), strict=True).actions
    out = {}
    for h in np.unique(head):
        rows, d = head == h, int(native[h])
        out[int(h)] = float(np.square(decoded[rows, :, :d] - chunks[rows, :, :d], dtype=np.float64).mean())
    return out


# -- settings and fingerprint ----------------------------------------------------------------------------


def test_rounding_is_validated_and_handed_to_the_codec_like_order() -> None:
    assert FitSettings().rounding == "nearest"
    assert TOKEN_AWARE.codec_arguments()["rounding"] == "token_aware"
    assert TOKEN_AWARE.to_dict()["rounding"] == "token_aware"
    with pytest.raises(FitError, match="rounding must be one of 'nearest', 'token_aware', got 'floor'"):
        FitSettings(rounding="floor")
    with pytest.raises(FitError, match="rounding 'token_aware' needs pipeline 'char'"):
        FitSettings(pipeline="reference", rounding="token_aware")
    FitSettings(pipeline="reference", rounding="nearest")  # the reference's own rounding is fine


def test_token_aware_has_its_own_fingerprint_and_nearest_keeps_the_default_one(example_mixture: Path) -> None:
    resolved = resolve_mixture(load_mixture(example_mixture))
    heads = build_norm_heads(resolved, 32)
    sampler = ChunkSampler(resolved, heads, chunk_size=10).settings()
    default = fit_fingerprint(heads, FitSettings(), sampler)
    assert fit_fingerprint(heads, FitSettings(rounding="nearest"), sampler) == default
    aware = fit_fingerprint(heads, FitSettings(rounding="token_aware"), sampler)
    assert aware != default
    assert fit_fingerprint(heads, FitSettings(rounding="token_aware"), sampler) == aware
    # Independent of the order: both enter the codec payload.
    dims = fit_fingerprint(heads, FitSettings(order="dims"), sampler)
    assert (
        len({dims, fit_fingerprint(heads, FitSettings(order="dims", rounding="token_aware"), sampler)}) == 2
    )


# -- the fit report ----------------------------------------------------------------------------------------


def test_a_token_aware_fit_reports_fewer_tokens_and_its_real_slightly_larger_error(
    mixture: Path, fits: dict[str, tuple[Path, FitReport]]
) -> None:
    (near_dir, near), (aware_dir, aware) = fits["nearest"], fits["token_aware"]
    assert near.token_lengths is not None
    assert aware.token_lengths is not None
    assert near.roundtrip_mse is not None
    assert aware.roundtrip_mse is not None
    assert aware.token_lengths.mean < near.token_lengths.mean
    # Each value moves at most 1 - MIN_ERROR steps instead of 0.5: a larger error, but of the same order.
    assert near.roundtrip_mse < aware.roundtrip_mse < 2 * near.roundtrip_mse
    # Same BPE model, same corpus: only encode differs.
    assert (aware_dir / "tokenizer.json").read_bytes() == (near_dir / "tokenizer.json").read_bytes()
    tok = FastTokenizer.load(aware_dir)
    assert tok.rounding == "token_aware"
    assert json.loads((aware_dir / "processor_config.json").read_text())["rounding"] == "token_aware"
    assert aware.settings["rounding"] == "token_aware"
    assert near.settings["rounding"] == "nearest"
    assert tok.metadata[FINGERPRINT_KEY] == aware.fit_fingerprint != near.fit_fingerprint
    # The report's numbers are the tokenizer's own encode / decode of the held-out chunks, per head.
    chunks, head, native = heldout_chunks(mixture, TOKEN_AWARE)
    lengths = tok.encode_padded(chunks).lengths
    plain = FastTokenizer.load(near_dir)
    for h, mse in _head_mse(tok, chunks, head, native).items():
        stats = aware.heads[h]
        assert stats.roundtrip_mse == pytest.approx(mse, rel=1e-6), h
        assert stats.token_lengths is not None
        assert stats.token_lengths.mean == pytest.approx(lengths[head == h].mean()), h
        assert stats.token_lengths.max == lengths[head == h].max(), h
    # ... and not the nearest-rounding error of the same quantizer (what a quantize-only measure gives).
    assert _head_mse(plain, chunks, head, native) != _head_mse(tok, chunks, head, native)


def test_the_report_text_names_a_non_default_rounding(fits: dict[str, tuple[Path, FitReport]]) -> None:
    near_dir, near = fits["nearest"]
    aware_dir, aware = fits["token_aware"]
    first = render_report(aware, directory=aware_dir).splitlines()[0]
    assert first.endswith(", rounding token_aware)"), first
    assert "rounding" not in render_report(near, directory=near_dir).splitlines()[0]


# -- the tuner -------------------------------------------------------------------------------------------


@pytest.mark.slow  # about 2 s: a walk of fits plus a nearest fit to compare with
def test_tune_with_token_aware_rounding_meets_its_budget_on_held_out_chunks(
    mixture: Path, tmp_path: Path
) -> None:
    out = tmp_path / "tuned"
    _, report, result = tune_tokenizer(
        mixture, TOKEN_AWARE, max_action_tokens=BUDGET, bisect_steps=2, out_dir=out, preflight=False
    )
    tok = FastTokenizer.load(out)
    assert (tok.rounding, tok.scale) == ("token_aware", result.scale)
    saved = json.loads((out / "fit_report.json").read_text())["settings"]
    assert (saved["rounding"], saved["tune"]["scale"]) == ("token_aware", result.scale)
    chunks, head, native = heldout_chunks(mixture, dataclasses.replace(TOKEN_AWARE, scale=result.scale))
    lengths = tok.encode_padded(chunks).lengths
    for h in np.unique(head):
        assert np.mean(lengths[head == h] <= BUDGET) >= 0.99, int(h)
    # The walked step is the token-aware tokenizer's encode / decode, not nearest rounding's.
    step = next(s for s in result.steps if s.scale == result.scale)
    assert step.ok
    assert step.mean_tokens == pytest.approx(lengths.mean())
    assert step.max_tokens == lengths.max()
    assert step.mse == pytest.approx(max(_head_mse(tok, chunks, head, native).values()), rel=1e-6)
    # Nearest rounding at the same scale (the same BPE) is longer on the same chunks.
    nearest, _ = fit_tokenizer(mixture, dataclasses.replace(NEAREST, scale=result.scale), preflight=False)
    assert nearest.encode_padded(chunks).lengths.mean() > step.mean_tokens
    assert report.settings["rounding"] == "token_aware"


# -- the command line ------------------------------------------------------------------------------------


def _fasttok(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "FASTTOK_DEBUG"}
    command = [sys.executable, "-m", "fasttok_plugin.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)


@pytest.mark.parametrize("command", ["fit", "tune"])
def test_token_aware_with_the_reference_pipeline_is_one_usage_line(command: str, tmp_path: Path) -> None:
    goal = ["--max-action-tokens", "10"] if command == "tune" else []
    run = _fasttok(
        command,
        str(tmp_path / "m.json"),
        *goal,
        "--out",
        str(tmp_path / "o"),
        "--pipeline",
        "reference",
        "--rounding",
        "token_aware",
    )
    assert run.returncode == 2, run.stderr
    assert run.stderr.splitlines() == [
        f"fasttok {command}: error: --rounding token_aware needs --pipeline char: the reference pipeline is "
        "the reference FAST tokenizer exactly (rounding nearest); pass --pipeline char or drop --rounding"
    ]
    assert not (tmp_path / "o").exists()


@pytest.mark.slow  # about 5 s: two subprocesses import torch
def test_fasttok_fit_rounding_writes_it_and_inspect_shows_it(mixture: Path, tmp_path: Path) -> None:
    out = tmp_path / "tok"
    common = ["--chunk-size", "16", "--max-action-dim", "16", "--total-chunks", "600", "--vocab-size", "300"]
    run = _fasttok("fit", str(mixture), "--rounding", "token_aware", "--out", str(out), *common, "-q")
    assert run.returncode == 0, run.stderr
    assert FastTokenizer.load(out).rounding == "token_aware"
    shown = _fasttok("inspect", str(out))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[0].endswith(", rounding token_aware)")
    help_text = _fasttok("tune", "--help").stdout
    assert "--rounding {nearest,token_aware}" in help_text
