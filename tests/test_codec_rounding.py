"""Token-aware rounding: the greedy rule, round trips, files, and the shipped processor giving its ids."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.fft import dct

from fasttok_plugin.codec import CodecError, FastTokenizer, TokenizerFormatError
from fasttok_plugin.codec.order import ORDERS, apply_order
from fasttok_plugin.codec.rounding import MIN_ERROR, token_aware_codes

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))
from hf_support import run_offline_processor
from reference_fast import smooth_chunks

SCALE = 10.0
T, D = 20, 6


@pytest.fixture(scope="module")
def heldout() -> np.ndarray:
    return smooth_chunks(300, T, D, seed=8)


@pytest.fixture(scope="module")
def corpus(heldout: np.ndarray) -> np.ndarray:
    # The encoded chunks' range is inside the fitted one, so no value is clamped (that has its own rule).
    return np.concatenate([smooth_chunks(800, T, D, seed=7), heldout])


@pytest.fixture(scope="module")
def fitted(corpus: np.ndarray) -> dict[tuple[str, str], FastTokenizer]:
    return {
        (order, rounding): FastTokenizer.fit(
            corpus, vocab_size=512, scale=SCALE, order=order, rounding=rounding
        )
        for order in ORDERS
        for rounding in ("nearest", "token_aware")
    }


def _scaled(chunks: np.ndarray, order: str) -> np.ndarray:
    """Scaled DCT coefficients in ``order``, written out with scipy (float32, as the encoder computes)."""
    coeff = dct(chunks.astype(np.float32), axis=1, norm="ortho") * np.float32(SCALE)
    return apply_order(coeff.reshape(len(chunks), -1), order, T, D)


def test_the_greedy_rule_visits_by_decreasing_error_and_keeps_only_strict_savings() -> None:
    # A toy "tokenizer": a sequence costs one token per code, minus one for each adjacent pair (4, 4).
    def lengths(codes: np.ndarray) -> np.ndarray:
        return np.array([len(r) - int(np.sum((r[:-1] == 4) & (r[1:] == 4))) for r in codes])

    zero = 2  # code 2 is the value 0
    codes = np.array([[5, 4, 3, 2]])
    # Position 0 (error -0.45) becomes 4 and pairs with position 1: one token fewer, kept. Position 2
    # (error +0.4) would become 4 too, another pair: kept. Position 3 is zero: never a candidate.
    error = np.array([[-0.45, 0.05, 0.4, 0.49]])
    usable = np.ones(8, dtype=bool)
    out = token_aware_codes(codes, error, zero=zero, usable=usable, lengths=lengths)
    np.testing.assert_array_equal(out, [[4, 4, 4, 2]])
    np.testing.assert_array_equal(codes, [[5, 4, 3, 2]])  # the input is not modified
    # Rounded by no more than MIN_ERROR: not a candidate, even when it would save a token.
    small = token_aware_codes(
        codes, np.array([[-MIN_ERROR, 0.0, 0.0, 0.0]]), zero=zero, usable=usable, lengths=lengths
    )
    np.testing.assert_array_equal(small, codes)
    # The other neighbour is not representable: not a candidate.
    usable[4] = False
    np.testing.assert_array_equal(
        token_aware_codes(codes, error, zero=zero, usable=usable, lengths=lengths), codes
    )
    # A flip that does not shorten the sequence is undone (equal length is not kept).
    flat = token_aware_codes(
        np.array([[5, 6]]),
        np.array([[-0.4, 0.4]]),
        zero=zero,
        usable=np.ones(8, dtype=bool),
        lengths=lambda c: np.full(len(c), 2),
    )
    np.testing.assert_array_equal(flat, [[5, 6]])


@pytest.mark.parametrize("order", ORDERS)
def test_token_aware_changes_only_candidates_by_one_step_towards_the_coefficient(
    fitted: dict[tuple[str, str], FastTokenizer], heldout: np.ndarray, order: str
) -> None:
    tok = fitted[order, "token_aware"]
    assert tok.encode_padded(heldout).clamped_values == 0
    values = np.array(
        [[ord(c) + tok.min_token for c in s] for s in tok.tokenizer.decode_batch(tok.encode(heldout))]
    )
    scaled = _scaled(heldout, order)
    nearest = np.around(scaled)
    changed = values != nearest
    assert changed.any()
    error = scaled - nearest
    assert (np.abs(error[changed]) > MIN_ERROR).all()
    assert (nearest[changed] != 0).all()
    np.testing.assert_array_equal(values[changed] - nearest[changed], np.sign(error[changed]))
    # Every value stays within 1 - MIN_ERROR quantization steps of its scaled coefficient.
    assert (np.abs(values - scaled) <= 1 - MIN_ERROR + 1e-4).all()


@pytest.mark.parametrize("order", ORDERS)
def test_token_aware_is_never_longer_shorter_on_average_and_round_trips_within_its_bound(
    fitted: dict[tuple[str, str], FastTokenizer], heldout: np.ndarray, order: str
) -> None:
    near, aware = fitted[order, "nearest"], fitted[order, "token_aware"]
    # The BPE is fit on nearest-rounded codes either way: only encode differs.
    assert near.tokenizer.to_str() == aware.tokenizer.to_str()
    n_near = np.array([len(r) for r in near.encode(heldout)])
    n_aware = np.array([len(r) for r in aware.encode(heldout)])
    assert (n_aware <= n_near).all()
    assert n_aware.mean() < 0.95 * n_near.mean()  # measured: 12-13 % fewer on these chunks
    decoded = aware.decode(aware.encode(heldout), strict=True).actions.astype(np.float64)
    # Orthonormal DCT: the chunk's L2 error is its coefficients', each at most (1 - MIN_ERROR) / scale off.
    l2 = np.sqrt(np.square(decoded - heldout).sum(axis=(1, 2)))
    assert (l2 <= (1 - MIN_ERROR) / SCALE * np.sqrt(T * D) + 1e-5).all()
    # Decoding is unchanged: the nearest tokenizer decodes the token-aware ids to the same actions.
    np.testing.assert_array_equal(near.decode(aware.encode(heldout)).actions, decoded.astype(np.float32))


def test_native_layout_token_aware_per_width(corpus: np.ndarray) -> None:
    widths = np.array([3, 6] * (len(corpus) // 2))
    near = FastTokenizer.fit(
        corpus, vocab_size=512, scale=SCALE, layout="native", action_dims=widths, order="dc_dims"
    )
    aware = FastTokenizer.fit(
        corpus,
        vocab_size=512,
        scale=SCALE,
        layout="native",
        action_dims=widths,
        order="dc_dims",
        rounding="token_aware",
    )
    held = smooth_chunks(60, T, D, seed=9)
    dims = np.array([3, 6] * 30)
    n_near = np.array([len(r) for r in near.encode(held, action_dims=dims)])
    n_aware = np.array([len(r) for r in aware.encode(held, action_dims=dims)])
    assert (n_aware <= n_near).all()
    assert n_aware.sum() < n_near.sum()
    decoded = aware.decode(aware.encode(held, action_dims=dims), action_dim=dims, strict=True).actions
    for i, w in enumerate(dims):
        l2 = np.sqrt(np.square(decoded[i, :, :w].astype(np.float64) - held[i, :, :w]).sum())
        assert l2 <= (1 - MIN_ERROR) / SCALE * np.sqrt(T * w) + 1e-5


def test_a_saved_rounding_is_recorded_and_honoured_by_load(
    fitted: dict[tuple[str, str], FastTokenizer], heldout: np.ndarray, tmp_path: Path
) -> None:
    folder = fitted["time", "token_aware"].save(tmp_path / "aware")
    sidecar = json.loads((folder / "fasttok.json").read_text())
    config = json.loads((folder / "processor_config.json").read_text())
    assert (sidecar["rounding"], config["rounding"], sidecar["settings"]["rounding"]) == ("token_aware",) * 3
    assert sidecar["format_version"] == 2  # an older reader refuses the folder instead of encoding otherwise
    loaded = FastTokenizer.load(folder)
    assert loaded.rounding == "token_aware"
    assert loaded.encode(heldout) == fitted["time", "token_aware"].encode(heldout)
    default = fitted["time", "nearest"].save(tmp_path / "near")
    for name in ("fasttok.json", "processor_config.json"):
        assert "rounding" not in (default / name).read_text()
    assert json.loads((default / "fasttok.json").read_text())["format_version"] == 1
    assert FastTokenizer.load(default).rounding == "nearest"


def test_bad_roundings_are_refused_with_the_fix(corpus: np.ndarray) -> None:
    with pytest.raises(CodecError, match=r"rounding='floor' is not one of \('nearest', 'token_aware'\)"):
        FastTokenizer.fit(corpus, vocab_size=512, rounding="floor")
    with pytest.raises(CodecError, match="rounding='token_aware' needs pipeline='char'"):
        FastTokenizer.fit(corpus, vocab_size=512, pipeline="reference", rounding="token_aware")


def _edit(path: Path, **changes: object) -> None:
    document = json.loads(path.read_text())
    document.update(changes)
    path.write_text(json.dumps(document))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: _edit(d / "processor_config.json", rounding="nearest"),
            "rounding is 'nearest' in processor",
        ),
        (
            lambda d: [
                _edit(d / n, rounding="stochastic") for n in ("processor_config.json", "fasttok.json")
            ],
            "rounding='stochastic' is not one of",
        ),
    ],
)
def test_load_refuses_a_disagreeing_or_unknown_rounding(
    fitted: dict[tuple[str, str], FastTokenizer], tmp_path: Path, edit: object, message: str
) -> None:
    folder = fitted["dims", "token_aware"].save(tmp_path / "aware")
    edit(folder)  # type: ignore[operator]
    with pytest.raises(TokenizerFormatError, match=message):
        FastTokenizer.load(folder)


HF_SCRIPT = """
import json, sys
import numpy as np
from transformers import AutoProcessor

chunks = np.load(sys.argv[1])
report = {}
for directory in sys.argv[2:]:
    proc = AutoProcessor.from_pretrained(directory, trust_remote_code=True)
    ids = proc(chunks)
    mixed = proc([chunks[0][:, :3], chunks[1]]) if "native" in directory else None
    decoded = proc.decode(ids).tolist()
    report[directory] = {"rounding": proc.rounding, "ids": ids, "mixed": mixed, "decoded": decoded}
print(json.dumps(report))
"""


@pytest.mark.slow  # about 8 s: transformers imports and loads four folders in a subprocess
def test_the_shipped_processor_encodes_token_aware_like_fast_tokenizer(
    fitted: dict[tuple[str, str], FastTokenizer], corpus: np.ndarray, tmp_path: Path
) -> None:
    pytest.importorskip("transformers")
    chunks = smooth_chunks(40, T, D, seed=11).astype(np.float32)
    np.save(tmp_path / "chunks.npy", chunks)
    native = FastTokenizer.fit(
        corpus,
        vocab_size=512,
        scale=SCALE,
        layout="native",
        action_dims=np.array([3, 6] * (len(corpus) // 2)),
        rounding="token_aware",
    )
    tokenizers = {str(fitted[o, "token_aware"].save(tmp_path / o)): fitted[o, "token_aware"] for o in ORDERS}
    tokenizers[str(native.save(tmp_path / "native"))] = native
    report = run_offline_processor(HF_SCRIPT, [str(tmp_path / "chunks.npy"), *tokenizers], tmp_path)
    for directory, tok in tokenizers.items():
        got = report[directory]
        assert got["rounding"] == "token_aware"
        ids = tok.encode(chunks)
        assert got["ids"] == ids
        plain = FastTokenizer.load(directory)
        plain.rounding = "nearest"
        assert plain.encode(chunks) != ids  # so the equality above tests the token-aware rule itself
        np.testing.assert_allclose(got["decoded"], tok.decode(ids, action_dim=D).actions, atol=1e-6)
        if got["mixed"] is not None:
            assert got["mixed"] == tok.encode(chunks[0][:, :3]) + tok.encode(chunks[1])
