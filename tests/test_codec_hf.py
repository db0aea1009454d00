"""Saved tokenizer directories load through ``transformers.AutoProcessor`` (the ``hf`` extra).

Runs transformers in a subprocess, offline, with its module cache under ``tmp_path``: this is how
LeRobot ``pi0_fast``, openpi and OpenTau load a FAST tokenizer.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fasttok_plugin.codec import FastTokenizer

pytest.importorskip("transformers")

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))
from reference_fast import smooth_chunks

SCRIPT = """
import json, sys
import numpy as np
from transformers import AutoProcessor

chunks = np.load(sys.argv[1])
wild = chunks[:3] * 40.0
report = {}
for directory in sys.argv[2:]:
    proc = AutoProcessor.from_pretrained(directory, trust_remote_code=True)
    ids = proc(chunks)
    decoded = proc.decode(ids, time_horizon=chunks.shape[1], action_dim=chunks.shape[2])
    entry = {"class": type(proc).__name__, "ids": ids, "decoded": decoded.tolist(),
             "invalid_after_valid": list(proc.last_invalid_rows)}
    wild_ids = proc(wild)
    entry["wild_clamped"] = proc.last_clamped_values
    proc.decode(wild_ids)
    entry["wild_invalid"] = list(proc.last_invalid_rows)
    bad = [ids[0][:-1], ids[1]]
    zeros = proc.decode(bad)
    entry["bad_invalid"] = list(proc.last_invalid_rows)
    entry["bad_zero"] = bool((zeros[0] == 0).all())
    try:
        proc.decode(bad, strict=True)
        entry["strict_raised"] = False
    except ValueError:
        entry["strict_raised"] = True
    report[directory] = entry
print(json.dumps(report))
"""


def test_saved_directories_load_with_auto_processor_and_give_our_ids(tmp_path: Path) -> None:
    train = smooth_chunks(400, 20, 6, seed=3)
    chunks = train[:40]
    np.save(tmp_path / "chunks.npy", chunks)
    directories: dict[str, FastTokenizer] = {}
    for pipeline in ("char", "reference"):
        tok = FastTokenizer.fit(train, vocab_size=512, pipeline=pipeline)
        directories[str(tok.save(tmp_path / pipeline))] = tok
    # transformers 5.x keeps the tokenizer files in bpe_tokenizer/: our module reads that layout too.
    flat = tmp_path / "char"
    nested = tmp_path / "char_5x"
    shutil.copytree(flat, nested)
    (nested / "bpe_tokenizer").mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (nested / name).rename(nested / "bpe_tokenizer" / name)
    (nested / "special_tokens_map.json").unlink()
    directories[str(nested)] = directories[str(flat)]

    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf_home"),
        "HF_MODULES_CACHE": str(tmp_path / "hf_modules"),
    }
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "chunks.npy"), *directories],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])

    for directory, tok in directories.items():
        entry = report[directory]
        assert entry["class"] == "UniversalActionProcessor"
        assert entry["ids"] == tok.encode(chunks)
        np.testing.assert_allclose(
            np.asarray(entry["decoded"]), tok.decode(tok.encode(chunks)).actions, atol=1e-6
        )
        assert entry["invalid_after_valid"] == []
        # Out-of-range values are clamped and counted, never dropped: every row still decodes.
        assert entry["wild_clamped"] == tok.encode_padded(chunks[:3] * 40.0).clamped_values > 0
        assert entry["wild_invalid"] == []
        # A broken row is reported (and zero-filled only for drop-in compatibility); strict raises.
        assert entry["bad_invalid"] == [0]
        assert entry["bad_zero"]
        assert entry["strict_raised"]
