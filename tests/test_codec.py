"""FastTokenizer: reference compatibility, round trips, bad input, file layouts and atomic saves."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.fft import dct, idct
from tokenizers import Tokenizer

from fasttok_plugin.codec import (
    CodecError,
    DecodedBatch,
    EncodedBatch,
    FastTokenizer,
    TokenizerFormatError,
)

# The per-chunk baseline lives next to this file; make it importable without a conftest.
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))
from reference_fast import ReferenceFast, smooth_chunks

SCALE = 10.0


@pytest.fixture(scope="module")
def corpus() -> np.ndarray:
    return smooth_chunks(600, 20, 6, seed=1)


@pytest.fixture(scope="module")
def fitted(corpus: np.ndarray) -> dict[str, FastTokenizer]:
    return {
        p: FastTokenizer.fit(corpus, vocab_size=512, scale=SCALE, pipeline=p) for p in ("char", "reference")
    }


@pytest.fixture(scope="module")
def baseline(corpus: np.ndarray) -> ReferenceFast:
    return ReferenceFast.fit(list(corpus), scale=SCALE, vocab_size=512, time_horizon=20, action_dim=6)


def quantized(actions: np.ndarray, scale: float = SCALE) -> np.ndarray:
    return np.around(dct(actions.astype(np.float64), axis=1, norm="ortho") * scale).astype(np.int64)


# --------------------------------------------------------------------------- reference compatibility
@pytest.mark.parametrize(
    ("t", "d", "dtype"), [(10, 4, np.float32), (50, 8, np.float32), (16, 32, np.float64)]
)
def test_reference_pipeline_matches_the_per_chunk_baseline(t: int, d: int, dtype: type) -> None:
    chunks = smooth_chunks(250, t, d, seed=t + d).astype(dtype)
    base = ReferenceFast.fit(list(chunks), scale=SCALE, vocab_size=1024)
    ours = FastTokenizer.fit(chunks, vocab_size=1024, scale=SCALE, pipeline="reference")

    assert ours.min_token == base.min_token
    assert ours.tokenizer.to_str(pretty=True) == base.tokenizer.to_str(pretty=True)
    base_ids = base(chunks)
    assert ours.encode(chunks) == base_ids
    decoded = ours.decode(base_ids)
    assert decoded.valid.all()
    np.testing.assert_array_equal(
        decoded.actions, base.decode(base_ids, time_horizon=t, action_dim=d).astype(np.float32)
    )
    assert base.failed_rows == []


def test_streaming_fit_equals_fit_on_the_whole_array(
    corpus: np.ndarray, fitted: dict[str, FastTokenizer]
) -> None:
    batches = (corpus[i : i + 128] for i in range(0, len(corpus), 128))  # one-shot generator
    streamed = FastTokenizer.fit(batches, vocab_size=512, scale=SCALE, pipeline="char")
    assert streamed.tokenizer.to_str() == fitted["char"].tokenizer.to_str()
    assert (streamed.min_token, streamed.max_token) == (fitted["char"].min_token, fitted["char"].max_token)


def test_fit_works_in_slices_of_large_batches(
    corpus: np.ndarray, fitted: dict[str, FastTokenizer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("fasttok_plugin.codec._fit._STRING_BATCH", 37)
    sliced = FastTokenizer.fit(corpus, vocab_size=512, scale=SCALE, pipeline="char")
    assert sliced.tokenizer.to_str() == fitted["char"].tokenizer.to_str()


def test_float16_and_integer_chunks_are_accepted(corpus: np.ndarray) -> None:
    assert FastTokenizer.fit(corpus.astype(np.float16), vocab_size=512).time_horizon == 20
    ints = (corpus * 100).astype(np.int32)
    tok = FastTokenizer.fit(ints, vocab_size=4096, scale=0.1)
    assert tok.decode(tok.encode(ints)).valid.all()


def test_empty_batches_encode_and_decode_to_empty_results(fitted: dict[str, FastTokenizer]) -> None:
    tok = fitted["char"]
    assert tok.encode(np.zeros((0, 20, 6), dtype=np.float32)) == []
    assert tok.encode_padded(np.zeros((0, 20, 6))).ids.shape == (0, 0)
    assert tok.decode([]).actions.shape == (0, 20, 6)


# --------------------------------------------------------------------------------------- round trip
@pytest.mark.parametrize("pipeline", ["char", "reference"])
def test_round_trip_error_is_bounded_by_the_quantization_step(
    corpus: np.ndarray, fitted: dict[str, FastTokenizer], pipeline: str
) -> None:
    tok = fitted[pipeline]
    chunks = corpus[:200]
    out = tok.decode(tok.encode(chunks))
    assert isinstance(out, DecodedBatch)
    assert out.actions.shape == chunks.shape
    assert out.actions.dtype == np.float32
    assert out.valid.all()
    assert out.invalid_rows == ()
    # Each coefficient is off by at most 0.5/scale and the orthonormal DCT preserves the L2 norm.
    err = out.actions.astype(np.float64) - chunks
    half_step = 0.5 / SCALE
    if pipeline == "char" or tok._holes == 0:
        assert math.sqrt(np.mean(err**2)) <= half_step
        assert np.abs(err).max() <= half_step * math.sqrt(2 * chunks.shape[1]) + 1e-5
    # Decoding reproduces the quantized coefficients exactly.
    np.testing.assert_array_equal(
        quantized(out.actions), quantized(tok.decode(tok.encode(out.actions)).actions)
    )


def test_char_pipeline_represents_every_value_of_the_fitted_range(fitted: dict[str, FastTokenizer]) -> None:
    tok = fitted["char"]
    t, d = tok.time_horizon, tok.action_dim
    span = tok.max_token - tok.min_token + 1
    # Chunks whose quantized DCT coefficients sweep every value min_token..max_token.
    values = tok.min_token + np.arange(span * 2) % span
    n = math.ceil(values.size / (t * d))
    coeff = np.resize(values, n * t * d).reshape(n, t, d).astype(np.float64)
    chunks = idct(coeff / SCALE, axis=1, norm="ortho")
    np.testing.assert_array_equal(quantized(chunks), coeff)

    encoded = tok.encode_padded(chunks)
    assert encoded.clamped_values == 0
    out = tok.decode(encoded)
    assert out.valid.all()
    np.testing.assert_array_equal(quantized(out.actions), coeff)


def test_reference_pipeline_has_holes_the_char_pipeline_does_not(
    fitted: dict[str, FastTokenizer], baseline: ReferenceFast
) -> None:
    """The reference byte-level BPE cannot encode values that never occurred (documented defect)."""
    ref = fitted["reference"]
    t, d = ref.time_horizon, ref.action_dim
    codes = np.arange(ref.max_token - ref.min_token + 1)
    # Per value: does the baseline round-trip a chunk made only of it?
    lost = []
    for code in codes:
        coeff = np.full((1, t, d), float(ref.min_token + code))
        chunk = idct(coeff / SCALE, axis=1, norm="ortho")
        base_out = baseline.decode(baseline(chunk), time_horizon=t, action_dim=d)
        if baseline.failed_rows or not np.array_equal(quantized(base_out), coeff):
            lost.append(int(code))
        ours = ref.encode_padded(chunk)
        # Never dropped: either exact, or replaced by the nearest representable value and counted.
        assert ref.decode(ours).valid.all()
        assert (ours.clamped_values > 0) == (int(code) in lost)
    assert lost, "this corpus is expected to leave holes in the reference alphabet"
    assert (
        fitted["char"]
        .encode_padded(idct(np.full((1, t, d), ref.min_token + lost[0]) / SCALE, axis=1, norm="ortho"))
        .clamped_values
        == 0
    )


@pytest.mark.parametrize(("seed", "t", "d"), [(11, 30, 8), (21, 50, 14), (31, 50, 7), (41, 16, 32)])
def test_char_pipeline_is_not_longer_than_reference_on_held_out_chunks(seed: int, t: int, d: int) -> None:
    """The default pipeline must never cost the model more tokens than the reference one."""
    train = smooth_chunks(1200, t, d, seed=seed)
    held_out = smooth_chunks(300, t, d, seed=seed + 1)
    lengths = {}
    for pipeline in ("char", "reference"):
        tok = FastTokenizer.fit(train, vocab_size=1024, scale=SCALE, pipeline=pipeline)
        lengths[pipeline] = np.array([len(r) for r in tok.encode(held_out)])
    assert lengths["char"].mean() <= lengths["reference"].mean()
    assert lengths["char"].max() <= lengths["reference"].max()  # the padded width a model pays for


# ------------------------------------------------------------------------------------------ encode
def test_encode_padded_pads_masks_and_counts_truncation(
    corpus: np.ndarray, fitted: dict[str, FastTokenizer], caplog: pytest.LogCaptureFixture
) -> None:
    tok = fitted["char"]
    rows = tok.encode(corpus[:50])
    full = np.array([len(r) for r in rows])
    padded = tok.encode_padded(corpus[:50], pad_id=7)
    assert isinstance(padded, EncodedBatch)
    assert padded.ids.dtype == np.int64
    assert padded.ids.shape == (50, full.max())
    np.testing.assert_array_equal(padded.lengths, full)
    np.testing.assert_array_equal(padded.attention_mask.sum(axis=1), full)
    for row, ids, n in zip(rows, padded.ids, full, strict=True):
        assert ids[:n].tolist() == row
        assert (ids[n:] == 7).all()
    assert padded.truncated_rows == 0
    assert padded.clamped_values == 0

    cut = int(np.median(full))
    with caplog.at_level(logging.WARNING, logger="fasttok_plugin.codec"):
        short = tok.encode_padded(corpus[:50], max_length=cut)
    assert short.ids.shape == (50, cut)
    assert short.truncated_rows == int((full > cut).sum()) > 0
    np.testing.assert_array_equal(short.lengths, np.minimum(full, cut))
    for row, ids in zip(rows, short.ids, strict=True):  # each row keeps its first tokens, then padding
        n = min(len(row), cut)
        assert ids[:n].tolist() == row[:n]
        assert (ids[n:] == 0).all()
    assert "truncated" in caplog.text


def test_single_chunk_encodes_like_a_batch_of_one(
    corpus: np.ndarray, fitted: dict[str, FastTokenizer]
) -> None:
    tok = fitted["char"]
    assert tok.encode(corpus[3]) == tok.encode(corpus[3:4])


def test_out_of_range_values_are_clamped_counted_and_logged_never_dropped(
    corpus: np.ndarray,
    fitted: dict[str, FastTokenizer],
    baseline: ReferenceFast,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wild = corpus[:4] * 40.0  # far outside the fitted range
    for tok in fitted.values():
        with caplog.at_level(logging.WARNING, logger="fasttok_plugin.codec"):
            enc = tok.encode_padded(wild)
        expected = np.clip(quantized(wild).reshape(4, -1), tok.min_token, tok.max_token)
        outside = int((quantized(wild).reshape(4, -1) != expected).sum())
        assert "clamped" in caplog.text
        out = tok.decode(enc, strict=True)  # every row still decodes to T*D values
        # The count is exactly the number of values that came back different.
        assert enc.clamped_values == int((quantized(out.actions) != quantized(wild)).sum())
        if tok.pipeline == "char":
            assert enc.clamped_values == outside > 0
            np.testing.assert_array_equal(quantized(out.actions).reshape(4, -1), expected)
        else:  # values in the reference's holes are moved to a neighbour and counted as well
            assert enc.clamped_values >= outside > 0
    # The reference drops values above its range: its decode fails on the same chunks.
    baseline.decode(baseline(wild), time_horizon=20, action_dim=6)
    assert baseline.failed_rows


def test_values_that_would_become_surrogate_characters_are_clamped_not_crashed(
    tmp_path: Path, corpus: np.ndarray, baseline: ReferenceFast
) -> None:
    """The reference turns code 0xD800.. into a lone surrogate and crashes in tokenizers; we clamp."""
    directory = write_reference_dir(tmp_path / "ref", baseline, layout="4.x")
    config = json.loads((directory / "processor_config.json").read_text())
    config["vocab_size"] = 70_000  # a directory that claims a range reaching past the surrogate block
    (directory / "processor_config.json").write_text(json.dumps(config))
    tok = FastTokenizer.load(directory)
    assert tok.max_token - tok.min_token < 0xD800

    coeff = quantized(corpus[:2]).astype(np.float64)
    coeff[:, 3, 2] = tok.min_token + 0xD800 + 7  # one coefficient per chunk lands in the surrogate block
    chunks = idct(coeff / SCALE, axis=1, norm="ortho")
    np.testing.assert_array_equal(quantized(chunks), coeff)
    with pytest.raises(TypeError):  # tokenizers cannot take a str holding a lone surrogate
        baseline(chunks)

    encoded = tok.encode_padded(chunks)
    assert encoded.clamped_values == 2
    out = tok.decode(encoded, strict=True)
    expected = coeff.copy()
    expected[:, 3, 2] = tok.max_token
    np.testing.assert_array_equal(quantized(out.actions), expected)


def test_a_value_clipped_onto_a_hole_is_counted_once(
    tmp_path: Path, corpus: np.ndarray, fitted: dict[str, FastTokenizer]
) -> None:
    """A sidecar whose max_token lies past the representable codes: clip + move is one changed value."""
    saved = fitted["reference"].save(tmp_path / "tok")
    _edit(saved / "fasttok.json", max_token=fitted["reference"].max_token + 300)
    tok = FastTokenizer.load(saved)
    assert tok._holes > 0
    wild = corpus[:4] * 40.0
    enc = tok.encode_padded(wild)
    out = tok.decode(enc, strict=True)
    assert enc.clamped_values == int((quantized(out.actions) != quantized(wild)).sum()) > 0


# ---------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_rows_are_named(corpus: np.ndarray, fitted: dict[str, FastTokenizer], bad: float) -> None:
    chunks = corpus[:10].copy()
    chunks[3, 5, 1] = bad
    chunks[7, 0, 0] = bad
    with pytest.raises(CodecError, match=r"2 chunk\(s\) contain NaN or Inf, rows 3, 7"):
        FastTokenizer.fit(chunks, vocab_size=512)
    with pytest.raises(CodecError, match=r"rows 3, 7"):
        fitted["char"].encode(chunks)


def test_non_finite_rows_are_named_by_corpus_index_when_streaming(corpus: np.ndarray) -> None:
    second = corpus[100:200].copy()
    second[42, 0, 0] = np.nan
    with pytest.raises(CodecError, match=r"rows 142\b"):
        FastTokenizer.fit(iter([corpus[:100], second]), vocab_size=512)


def test_value_range_larger_than_vocab_names_the_fixes(corpus: np.ndarray) -> None:
    with pytest.raises(CodecError, match=r"raise vocab_size.*lower scale.*normalized"):
        FastTokenizer.fit(corpus, vocab_size=32)


def test_value_range_reaching_the_surrogate_block_is_refused(corpus: np.ndarray) -> None:
    with pytest.raises(CodecError, match=r"surrogate"):
        FastTokenizer.fit(corpus[:20], vocab_size=100_000, scale=20_000.0)


@pytest.mark.parametrize(
    ("chunks", "message"),
    [
        (np.zeros((5, 6)), r"shape \(5, 6\), expected \(N, T, D\)"),
        (np.zeros((2, 3, 4, 5)), r"expected \(N, T, D\)"),
        (np.zeros((2, 0, 4)), r"empty axis"),
        (np.array([["a"]]), r"dtype <U1, expected a real float"),
        (np.zeros((2, 3, 4), dtype=complex), r"dtype complex128"),
        (np.zeros((2, 3, 4), dtype=bool), r"dtype bool"),
    ],
)
def test_wrong_shapes_and_dtypes_at_fit(chunks: object, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        FastTokenizer.fit(chunks, vocab_size=512)


def test_ragged_chunks_are_an_error(fitted: dict[str, FastTokenizer]) -> None:
    with pytest.raises(CodecError, match=r"cannot read the chunks as an array.*expected shape \(N, 20, 6\)"):
        fitted["char"].encode([[[1.0, 2.0]], [[1.0]]])


def test_a_list_of_single_chunks_gets_a_hint(corpus: np.ndarray) -> None:
    with pytest.raises(CodecError, match=r"shape \(20, 6\), expected \(N, T, D\).*np.stack"):
        FastTokenizer.fit(list(corpus[:5]), vocab_size=512)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scale": 0.0}, "scale=0.0"),
        ({"vocab_size": 0}, "vocab_size=0"),
        ({"pipeline": "bpe"}, "pipeline=.bpe. is not one of"),
    ],
)
def test_bad_fit_settings_are_errors(corpus: np.ndarray, kwargs: dict, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        FastTokenizer.fit(corpus, **kwargs)
    assert FastTokenizer.fit(corpus, vocab_size=np.int64(512), scale=np.float32(10)).vocab_size == 512


def test_batches_must_agree_on_shape(corpus: np.ndarray) -> None:
    with pytest.raises(CodecError, match=r"shape \(3, 20, 5\), expected \(N, 20, 6\)"):
        FastTokenizer.fit([corpus[:10], corpus[:3, :, :5]], vocab_size=512)


def test_empty_fit_is_an_error() -> None:
    with pytest.raises(CodecError, match="no chunks"):
        FastTokenizer.fit([], vocab_size=512)


def test_encode_checks_the_fitted_shape(corpus: np.ndarray, fitted: dict[str, FastTokenizer]) -> None:
    with pytest.raises(CodecError, match=r"shape \(2, 19, 6\), expected \(N, 20, 6\)"):
        fitted["char"].encode(corpus[:2, :19])
    with pytest.raises(CodecError, match=r"expected \(N, 20, 6\)"):
        fitted["char"].encode(np.zeros(6))


@pytest.mark.parametrize("pipeline", ["char", "reference"])
def test_rows_that_do_not_decode_to_t_times_d_values_are_invalid(
    corpus: np.ndarray, fitted: dict[str, FastTokenizer], pipeline: str, caplog: pytest.LogCaptureFixture
) -> None:
    tok = fitted[pipeline]
    rows = tok.encode(corpus[:6])
    rows[1] = rows[1][:-1]  # too short
    rows[2] = [*rows[2], rows[2][0]]  # too long
    rows[3] = []
    rows[4] = [*rows[4][:-1], tok.tokenizer.get_vocab_size() + 5]  # unknown id
    rows[5] = [-1, *rows[5]]  # negative id
    with caplog.at_level(logging.WARNING, logger="fasttok_plugin.codec"):
        out = tok.decode(rows)
    assert out.valid.tolist() == [True, False, False, False, False, False]
    assert out.invalid_rows == (1, 2, 3, 4, 5)
    assert np.isnan(out.actions[1:]).all()
    assert np.isfinite(out.actions[0]).all()
    assert "rows 1, 2, 3, 4, 5" in caplog.text
    with pytest.raises(CodecError, match="must be a sequence of integer id lists"):
        tok.decode(rows[0])
    with pytest.raises(CodecError, match=r"5 of 6 row\(s\) did not decode to exactly 120 values"):
        tok.decode(rows, strict=True)


@pytest.mark.parametrize(("pipeline", "scale"), [("char", SCALE), ("reference", SCALE), ("reference", 40.0)])
def test_a_batch_of_empty_rows_is_reported_invalid(corpus: np.ndarray, pipeline: str, scale: float) -> None:
    """E.g. a model that generated nothing; scale 40 gives a byte-level alphabet past ASCII."""
    tok = FastTokenizer.fit(corpus, vocab_size=1024, scale=scale, pipeline=pipeline)
    out = tok.decode([[], []])
    assert out.invalid_rows == (0, 1)
    assert np.isnan(out.actions).all()
    assert tok.decode([[], tok.encode(corpus[:1])[0]]).invalid_rows == (0,)


@pytest.mark.parametrize("pipeline", ["char", "reference"])
def test_a_special_token_in_a_row_makes_it_invalid_not_skipped(
    tmp_path: Path, corpus: np.ndarray, fitted: dict[str, FastTokenizer], pipeline: str
) -> None:
    """A directory whose tokenizer gained an added token (e.g. ``<eos>``): the token is not a value."""
    saved = fitted[pipeline].save(tmp_path / "tok")
    edited = Tokenizer.from_file(str(saved / "tokenizer.json"))
    edited.add_special_tokens(["<eos>"])
    edited.save(str(saved / "tokenizer.json"), pretty=True)
    tok = FastTokenizer.load(saved)
    rows = tok.encode(corpus[:3])
    rows[1] = [*rows[1], tok.tokenizer.token_to_id("<eos>")]
    out = tok.decode(rows)
    assert out.invalid_rows == (1,)
    np.testing.assert_array_equal(out.actions[[0, 2]], fitted[pipeline].decode(rows[::2]).actions)


@pytest.mark.parametrize("pipeline", ["char", "reference"])
def test_vectorized_decode_agrees_with_the_tokenizers_decoder(
    corpus: np.ndarray, fitted: dict[str, FastTokenizer], pipeline: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random id rows (mostly garbage): same validity and values as decoding each row with tokenizers."""
    # Several blocks, valid and invalid mixed.
    monkeypatch.setattr("fasttok_plugin.codec.tokenizer._DECODE_BLOCK", 7)
    tok = fitted[pipeline]
    rng = np.random.default_rng(0)
    good = tok.encode(corpus[:30])
    rows = [
        r if i % 3 else rng.integers(0, tok.tokenizer.get_vocab_size(), len(r)).tolist()
        for i, r in enumerate(good)
    ]
    out = tok.decode(rows)
    for row, ok, actions in zip(rows, out.valid, out.actions, strict=True):
        codes = [ord(c) for c in tok.tokenizer.decode(row)]
        expected_ok = len(codes) == 120 and max(codes) <= tok.max_token - tok.min_token
        assert ok == expected_ok
        if ok:
            coeff = (np.array(codes, dtype=np.float64) + tok.min_token).reshape(20, 6) / SCALE
            np.testing.assert_array_equal(actions, idct(coeff, axis=0, norm="ortho").astype(np.float32))
    assert out.valid[1::3].all()
    assert not out.valid[::3].all()


def test_reference_ids_decoding_to_replacement_characters_are_invalid(corpus: np.ndarray) -> None:
    """A lone UTF-8 lead byte decodes to U+FFFD (65533): the reference returns garbage, we flag the row."""
    tok = FastTokenizer.fit(corpus, vocab_size=1024, scale=40.0, pipeline="reference")
    assert tok.max_token - tok.min_token >= 0x80  # values need two UTF-8 bytes, so lead bytes are tokens
    vocab = tok.tokenizer.get_vocab()
    lead = next(tok_id for s, tok_id in vocab.items() if s in ("Â", "Ã"))  # byte-level 0xC2 / 0xC3
    assert tok.tokenizer.decode([lead]) == "\ufffd"
    row = tok.encode(corpus[:1])[0]
    last = max(i for i, tid in enumerate(row) if len(tok.tokenizer.decode([tid])) == 1)
    row[last] = lead
    out = tok.decode([row])
    assert out.invalid_rows == (0,)
    assert np.isnan(out.actions).all()


def test_decode_needs_the_chunk_shape(tmp_path: Path, baseline: ReferenceFast, corpus: np.ndarray) -> None:
    directory = write_reference_dir(
        tmp_path / "ref", baseline, layout="4.x", time_horizon=None, action_dim=None
    )
    tok = FastTokenizer.load(directory)
    ids = tok.encode(corpus[:3])  # any shape may be encoded when the directory does not fix one
    with pytest.raises(CodecError, match="time_horizon and action_dim are unknown"):
        tok.decode(ids)
    assert tok.decode(ids, time_horizon=20, action_dim=6).valid.all()


# ----------------------------------------------------------------------------------------- save/load
@pytest.mark.parametrize("pipeline", ["char", "reference"])
def test_save_load_round_trip(
    tmp_path: Path, corpus: np.ndarray, fitted: dict[str, FastTokenizer], pipeline: str
) -> None:
    tok = fitted[pipeline]
    tok.metadata["fingerprint"] = "abc123"
    saved = tok.save(tmp_path / "tok")
    names = {p.name for p in saved.iterdir()}
    assert names == {
        "processor_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "fasttok.json",
        "processing_fasttok.py",
    }
    config = json.loads((saved / "processor_config.json").read_text())
    assert config == {
        "action_dim": 6,
        "auto_map": {"AutoProcessor": "processing_fasttok.UniversalActionProcessor"},
        "min_token": tok.min_token,
        "processor_class": "UniversalActionProcessor",
        "scale": SCALE,
        "time_horizon": 20,
        "vocab_size": 512,
    }
    sidecar = json.loads((saved / "fasttok.json").read_text())
    assert sidecar["pipeline"] == pipeline
    assert sidecar["metadata"] == {"fingerprint": "abc123"}
    assert (saved / "tokenizer.json").read_text() == tok.tokenizer.to_str(pretty=True)

    loaded = FastTokenizer.load(saved)
    for attr in (
        "scale",
        "vocab_size",
        "min_token",
        "max_token",
        "time_horizon",
        "action_dim",
        "pipeline",
        "metadata",
    ):
        assert getattr(loaded, attr) == getattr(tok, attr)
    assert loaded.encode(corpus[:100]) == tok.encode(corpus[:100])
    np.testing.assert_array_equal(
        loaded.decode(tok.encode(corpus[:100])).actions, tok.decode(tok.encode(corpus[:100])).actions
    )
    del tok.metadata["fingerprint"]


BOOBY_TRAP = """
import pathlib
pathlib.Path({marker!r}).write_text("executed")
raise RuntimeError("this file must never be executed")
"""


def write_reference_dir(
    directory: Path,
    base: ReferenceFast,
    *,
    layout: str,
    time_horizon: int | None = 20,
    action_dim: int | None = 6,
    marker: Path | None = None,
) -> Path:
    """Write a processor directory the way the reference's ``save_pretrained`` does (4.x flat or 5.x)."""
    directory.mkdir(parents=True)
    processor_config = {
        "action_dim": action_dim,
        "auto_map": {"AutoProcessor": "processing_action_tokenizer.UniversalActionProcessor"},
        "min_token": base.min_token,
        "processor_class": "UniversalActionProcessor",
        "scale": 10,
        "time_horizon": time_horizon,
        "vocab_size": base.vocab_size,
    }
    (directory / "processor_config.json").write_text(
        json.dumps(processor_config, indent=2, sort_keys=True) + "\n"
    )
    if layout == "4.x":
        tok_dir = directory
        tokenizer_config = {
            "added_tokens_decoder": {},
            "clean_up_tokenization_spaces": False,
            "model_max_length": 1000000000000000019884624838656,
            "processor_class": "UniversalActionProcessor",
            "tokenizer_class": "PreTrainedTokenizerFast",
        }
        (directory / "special_tokens_map.json").write_text("{}")
    else:
        tok_dir = directory / "bpe_tokenizer"
        tok_dir.mkdir()
        tokenizer_config = {
            "backend": "tokenizers",
            "clean_up_tokenization_spaces": False,
            "model_max_length": 1000000000000000019884624838656,
            "processor_class": "UniversalActionProcessor",
            "tokenizer_class": "TokenizersBackend",
        }
    base.tokenizer.save(str(tok_dir / "tokenizer.json"))
    (tok_dir / "tokenizer_config.json").write_text(
        json.dumps(tokenizer_config, indent=2, sort_keys=True) + "\n"
    )
    if marker is not None:
        (directory / "processing_action_tokenizer.py").write_text(BOOBY_TRAP.format(marker=str(marker)))
    return directory


@pytest.mark.parametrize("layout", ["4.x", "5.x"])
def test_loading_a_reference_directory_gives_identical_ids_and_decodes(
    tmp_path: Path, corpus: np.ndarray, baseline: ReferenceFast, layout: str
) -> None:
    marker = tmp_path / "executed.txt"
    directory = write_reference_dir(tmp_path / "ref", baseline, layout=layout, marker=marker)
    modules_before = set(sys.modules)

    tok = FastTokenizer.load(directory)
    assert tok.pipeline == "reference"
    assert tok.min_token == baseline.min_token
    ids = tok.encode(corpus)
    assert ids == baseline(corpus)
    out = tok.decode(ids, strict=True)
    np.testing.assert_array_equal(
        out.actions, baseline.decode(ids, time_horizon=20, action_dim=6).astype(np.float32)
    )

    assert not marker.exists(), "a .py file from the tokenizer directory was executed"
    assert not any("processing_action_tokenizer" in m for m in set(sys.modules) - modules_before)


def test_saved_directory_with_a_booby_trapped_module_loads_without_running_it(
    tmp_path: Path, fitted: dict[str, FastTokenizer], corpus: np.ndarray
) -> None:
    saved = fitted["char"].save(tmp_path / "tok")
    marker = tmp_path / "executed.txt"
    (saved / "processing_fasttok.py").write_text(BOOBY_TRAP.format(marker=str(marker)))
    loaded = FastTokenizer.load(saved)
    assert loaded.decode(loaded.encode(corpus[:5])).valid.all()
    assert not marker.exists()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: (d / "processor_config.json").unlink(), "no processor_config.json"),
        (lambda d: (d / "processor_config.json").write_text("{not json"), "not readable JSON"),
        (lambda d: (d / "tokenizer.json").unlink(), "no tokenizer.json"),
        (lambda d: (d / "tokenizer.json").write_text("{}"), "not a readable tokenizers file"),
        (lambda d: _edit(d / "processor_config.json", min_token="-3"), "min_token='-3'.*wrong type"),
        (lambda d: _edit(d / "processor_config.json", scale=0), "scale=0 must be a positive"),
        (
            lambda d: _edit(d / "processor_config.json", vocab_size=999),
            "vocab_size is 999 in processor_config.json",
        ),
        (
            lambda d: _edit(d / "fasttok.json", pipeline="reference"),
            "pipeline='reference' but tokenizer.json",
        ),
        (lambda d: _edit(d / "fasttok.json", format_version=99), "format_version=99 is not supported"),
    ],
)
def test_inconsistent_directories_are_rejected(
    tmp_path: Path, fitted: dict[str, FastTokenizer], mutate: object, message: str
) -> None:
    saved = fitted["char"].save(tmp_path / "tok")
    mutate(saved)  # type: ignore[operator]
    with pytest.raises(TokenizerFormatError, match=message):
        FastTokenizer.load(saved)


def _edit(path: Path, **changes: object) -> None:
    document = json.loads(path.read_text())
    document.update(changes)
    path.write_text(json.dumps(document))


def test_load_rejects_a_tokenizer_that_is_neither_layout(
    tmp_path: Path, fitted: dict[str, FastTokenizer]
) -> None:
    saved = fitted["char"].save(tmp_path / "tok")
    document = json.loads((saved / "tokenizer.json").read_text())
    document["decoder"] = None
    (saved / "tokenizer.json").write_text(json.dumps(document))
    with pytest.raises(TokenizerFormatError, match="neither the reference FAST layout"):
        FastTokenizer.load(saved)


# ------------------------------------------------------------------------------------- atomic saves
def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_a_crash_mid_save_leaves_the_old_directory(
    tmp_path: Path, fitted: dict[str, FastTokenizer], monkeypatch: pytest.MonkeyPatch
) -> None:
    target = fitted["char"].save(tmp_path / "tok")
    before = _snapshot(target)
    calls = {"n": 0}
    real_fsync = os.fsync

    def failing_fsync(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr("fasttok_plugin.codec.files.os.fsync", failing_fsync)
    with pytest.raises(OSError, match="No space left"):
        fitted["reference"].save(target)
    assert _snapshot(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tok"]  # no temp directory left behind

    calls["n"] = 0
    with pytest.raises(OSError, match="No space left"):
        fitted["reference"].save(tmp_path / "fresh")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tok"]  # nothing half-written


def test_a_failing_final_rename_restores_the_old_directory(
    tmp_path: Path, fitted: dict[str, FastTokenizer], monkeypatch: pytest.MonkeyPatch
) -> None:
    target = fitted["char"].save(tmp_path / "tok")
    before = _snapshot(target)
    real_replace = os.replace
    failed = []

    def failing_replace(src: object, dst: object) -> None:
        if Path(str(dst)) == target and not failed:  # the new directory's rename, not the restore
            failed.append(src)
            raise OSError("rename failed")
        real_replace(src, dst)

    monkeypatch.setattr("fasttok_plugin.codec.files.os.replace", failing_replace)
    with pytest.raises(OSError, match="rename failed"):
        fitted["reference"].save(target)
    monkeypatch.undo()
    assert failed
    assert _snapshot(target) == before
    assert FastTokenizer.load(target).pipeline == "char"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tok"]


def test_save_replaces_an_existing_tokenizer_but_never_an_unrelated_directory(
    tmp_path: Path, fitted: dict[str, FastTokenizer]
) -> None:
    target = fitted["char"].save(tmp_path / "tok")
    fitted["reference"].save(target)
    assert FastTokenizer.load(target).pipeline == "reference"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tok"]

    unrelated = tmp_path / "my_data"
    unrelated.mkdir()
    (unrelated / "notes.txt").write_text("keep me")
    with pytest.raises(CodecError, match="not a tokenizer directory"):
        fitted["char"].save(unrelated)
    assert (unrelated / "notes.txt").read_text() == "keep me"


def test_a_scale_beyond_float32_is_refused_not_turned_into_int64_min(corpus: np.ndarray) -> None:
    chunks = corpus[:50].astype(np.float32)
    with pytest.raises(CodecError) as info:
        FastTokenizer.fit(chunks, scale=1e39, vocab_size=1024)
    message = str(info.value)
    assert "scale=1e+39" in message
    assert "50 chunk(s)" in message
    assert "Lower scale" in message
    assert "normalized" in message


def test_coefficients_beyond_int32_are_refused_with_their_rows(corpus: np.ndarray) -> None:
    chunks = corpus[:10].astype(np.float64).copy()
    chunks[7] *= 1e12
    with pytest.raises(CodecError, match=r"fit: 1 chunk\(s\) .* rows 7\. Lower scale"):
        FastTokenizer.fit(chunks, scale=SCALE, vocab_size=1024)


def test_encode_refuses_a_chunk_whose_dct_overflows_instead_of_clamping_it(
    fitted: dict[str, FastTokenizer], corpus: np.ndarray
) -> None:
    tok = fitted["char"]
    chunks = corpus[:4].astype(np.float32).copy()
    chunks[2] = 1e38  # finite float32, but * 10 is inf
    with pytest.raises(CodecError, match=r"encode: 1 chunk\(s\) .*rows 2\."):
        tok.encode(chunks)
    with pytest.raises(CodecError, match=r"rows 2\."):
        tok.encode_padded(chunks)
    # Still finite and in int32: clamped, counted (not refused).
    chunks[2] = 50.0
    assert tok.encode_padded(chunks).clamped_values > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"vocab_size": 10**9}, "must be an integer in 1..16777216"),
        ({"min_frequency": -1}, "min_frequency=-1 must be an integer in 0.."),
        ({"min_frequency": 2**64}, "min_frequency=18446744073709551616"),
        ({"max_token_length": 0}, "max_token_length=0 must be None or an integer in 1.."),
        ({"max_token_length": 2**64}, "max_token_length=18446744073709551616"),
    ],
)
def test_trainer_settings_beyond_the_trainers_limits_are_codec_errors(
    corpus: np.ndarray, kwargs: dict[str, int], message: str
) -> None:
    # vocab_size=1e9 aborted the process in Rust (a 70.9 GB reservation); the others raised a raw
    # OverflowError from the binding.
    with pytest.raises(CodecError, match=re.escape(message)):
        FastTokenizer.fit(corpus[:20], **kwargs)


# ------------------------------------------------------------------ #10: sizes are bounded integers
BAD_SIZE_CALLS = {
    "encode_padded max_length -1": (lambda tok, c: tok.encode_padded(c, max_length=-1), "max_length=-1"),
    "encode_padded max_length 2.5": (lambda tok, c: tok.encode_padded(c, max_length=2.5), "max_length=2.5"),
    "encode_padded max_length True": (
        lambda tok, c: tok.encode_padded(c, max_length=True),
        "max_length=True",
    ),
    "encode_padded max_length 10**10": (
        lambda tok, c: tok.encode_padded(c, max_length=10**10),
        "max_length=10000000000 must be in 0..1048576",
    ),
    "encode_padded max_length 10**30": (lambda tok, c: tok.encode_padded(c, max_length=10**30), "max_length"),
    "encode_padded pad_id 2.5": (lambda tok, c: tok.encode_padded(c, pad_id=2.5), "pad_id=2.5"),
    "encode_padded pad_id 10**30": (lambda tok, c: tok.encode_padded(c, pad_id=10**30), "pad_id"),
    "decode time_horizon -16": (lambda tok, c: tok.decode([[1]], time_horizon=-16), "time_horizon=-16"),
    "decode time_horizon 2.5": (lambda tok, c: tok.decode([[1]], time_horizon=2.5), "time_horizon=2.5"),
    "decode time_horizon 10**10": (lambda tok, c: tok.decode([[1]], time_horizon=10**10), "1..65536"),
    "decode action_dim -3": (lambda tok, c: tok.decode([[1]], action_dim=-3), "action_dim=-3"),
    "decode action_dim 10**10": (lambda tok, c: tok.decode([[1]], action_dim=10**10), "1..4096"),
    "fit min_frequency -1": (lambda tok, c: FastTokenizer.fit(c, min_frequency=-1), "min_frequency=-1"),
    "fit min_frequency 2.5": (lambda tok, c: FastTokenizer.fit(c, min_frequency=2.5), "min_frequency=2.5"),
    "fit min_frequency 10**30": (lambda tok, c: FastTokenizer.fit(c, min_frequency=10**30), "min_frequency"),
    "fit max_token_length -1": (lambda tok, c: FastTokenizer.fit(c, max_token_length=-1), "max_token_length"),
    "fit max_token_length 10**30": (
        lambda tok, c: FastTokenizer.fit(c, max_token_length=10**30),
        "max_token_length",
    ),
}


@pytest.mark.parametrize("call", list(BAD_SIZE_CALLS.values()), ids=list(BAD_SIZE_CALLS))
def test_bad_sizes_are_codec_errors_naming_the_argument(
    call: tuple, fitted: dict[str, FastTokenizer], corpus: np.ndarray
) -> None:
    # Before: TypeError, OverflowError, "negative dimensions", or a MemoryError of hundreds of GiB.
    function, words = call
    with pytest.raises(CodecError) as info:
        function(fitted["char"], corpus[:32])
    assert words in str(info.value)


def test_valid_sizes_still_work(fitted: dict[str, FastTokenizer], corpus: np.ndarray) -> None:
    tok = fitted["char"]
    batch = tok.encode_padded(corpus[:4], max_length=np.int64(3), pad_id=-1)
    assert batch.ids.shape == (4, 3)
    decoded = tok.decode(tok.encode(corpus[:2]), time_horizon=np.int32(tok.time_horizon))
    assert decoded.actions.shape == (2, tok.time_horizon, tok.action_dim)


SAVED_NUMBER_CASES = {
    "time_horizon -16": ("time_horizon", -16, "time_horizon=-16 must be in 1..65536"),
    "time_horizon 0": ("time_horizon", 0, "time_horizon=0"),
    "time_horizon 10**30": ("time_horizon", 10**30, "time_horizon"),
    "vocab_size -5": ("vocab_size", -5, "vocab_size=-5 must be in 1.."),
    "vocab_size 0": ("vocab_size", 0, "vocab_size=0"),
    "min_token 1e30": ("min_token", 1e30, "min_token=1e+30"),
    "min_token 10**30": ("min_token", 10**30, "min_token"),
    "action_dim -1": ("action_dim", -1, "action_dim=-1 must be in 1..4096"),
    "action_dim 10**9": ("action_dim", 10**9, "action_dim"),
    "scale 10**400": ("scale", 10**400, "must be a positive finite number"),
    "max_token below min_token": ("max_token", -(2**40), "max_token"),
}


@pytest.mark.parametrize("case", list(SAVED_NUMBER_CASES.values()), ids=list(SAVED_NUMBER_CASES))
def test_load_refuses_saved_numbers_out_of_range(
    case: tuple[str, object, str], fitted: dict[str, FastTokenizer], tmp_path: Path
) -> None:
    key, value, words = case
    folder = fitted["char"].save(tmp_path / "tok")
    for name in ("processor_config.json", "fasttok.json"):
        document = json.loads((folder / name).read_text())
        if key in document:
            document[key] = value
        (folder / name).write_text(json.dumps(document))
    with pytest.raises(TokenizerFormatError) as info:
        FastTokenizer.load(folder)
    assert words in str(info.value)


def test_load_refuses_a_number_too_long_to_read(fitted: dict[str, FastTokenizer], tmp_path: Path) -> None:
    folder = fitted["char"].save(tmp_path / "tok")
    config = folder / "processor_config.json"
    config.write_text(config.read_text().replace('"scale":', '"pad": ' + "1" * 5000 + ', "scale":', 1))
    with pytest.raises(TokenizerFormatError, match="not readable JSON"):
        FastTokenizer.load(folder)
