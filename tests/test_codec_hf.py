"""Saved tokenizer directories load through ``transformers.AutoProcessor`` (the ``hf`` extra).

Runs transformers in a subprocess, offline, with its module cache under ``tmp_path``: this is how
LeRobot ``pi0_fast``, openpi and OpenTau load a FAST tokenizer.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.fft import dct
from tokenizers import ByteLevelBPETokenizer, Tokenizer

from fasttok_plugin.codec import FastTokenizer

pytest.importorskip("transformers")

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))
from hf_support import run_offline_processor
from reference_fast import ReferenceFast, smooth_chunks

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

    report = run_offline_processor(SCRIPT, [str(tmp_path / "chunks.npy"), *directories], tmp_path)

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


def test_the_reference_transformers_wrapper_changes_no_id_value_or_file(tmp_path: Path) -> None:
    """The baseline drops ``PreTrainedTokenizerFast``; the reference wraps its tokenizer in one.

    Wrapped exactly as ``UniversalActionProcessor.fit`` does (the ``ByteLevelBPETokenizer`` object,
    ``clean_up_tokenization_spaces=False``), per-chunk calls give the baseline's ids and decoded strings,
    and ``save_pretrained`` writes the ``tokenizer.json`` our ``"reference"`` pipeline saves.
    """
    train = smooth_chunks(300, 20, 6, seed=5)
    base = ReferenceFast.fit(list(train), scale=10, vocab_size=512)
    bpe = ByteLevelBPETokenizer()
    bpe._tokenizer = base.tokenizer  # what the reference's bpe holds after train_from_iterator
    from transformers import PreTrainedTokenizerFast  # optional: the hf extra

    wrapped = PreTrainedTokenizerFast(tokenizer_object=bpe, clean_up_tokenization_spaces=False)

    for chunk, ids in zip(train[:40], base(train[:40]), strict=True):
        coeff = np.around(dct(chunk, axis=0, norm="ortho") * 10).flatten()
        text = "".join(map(chr, np.maximum(coeff - base.min_token, 0).astype(int)))
        assert wrapped(text)["input_ids"] == ids
        assert wrapped.decode(ids) == base.tokenizer.decode(ids)

    wrapped.save_pretrained(tmp_path / "reference")
    ours = FastTokenizer.fit(train, vocab_size=512, scale=10.0, pipeline="reference").save(tmp_path / "ours")
    assert (ours / "tokenizer.json").read_bytes() == (tmp_path / "reference" / "tokenizer.json").read_bytes()


SPECIAL_SCRIPT = """
import json, sys
import numpy as np
from transformers import AutoProcessor

chunks = np.load(sys.argv[1])
proc = AutoProcessor.from_pretrained(sys.argv[2], trust_remote_code=True)
ids = proc(chunks)
ids[1] = ids[1] + [proc.bpe_tokenizer.convert_tokens_to_ids("<eos>")]
proc.decode(ids)
print(json.dumps(list(proc.last_invalid_rows)))
"""


def test_a_special_token_in_a_row_is_reported_by_the_auto_processor(tmp_path: Path) -> None:
    train = smooth_chunks(300, 20, 6, seed=4)
    np.save(tmp_path / "chunks.npy", train[:3])
    saved = FastTokenizer.fit(train, vocab_size=512).save(tmp_path / "tok")
    edited = Tokenizer.from_file(str(saved / "tokenizer.json"))
    edited.add_special_tokens(["<eos>"])
    edited.save(str(saved / "tokenizer.json"), pretty=True)
    assert run_offline_processor(SPECIAL_SCRIPT, [str(tmp_path / "chunks.npy"), str(saved)], tmp_path) == [1]
