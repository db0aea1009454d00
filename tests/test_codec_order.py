"""Flatten orders ("time", "dims", "dc_dims"): permutations, round trips, files and the shipped processor."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.fft import dct

from fasttok_plugin.codec import CodecError, FastTokenizer, TokenizerFormatError
from fasttok_plugin.codec.order import ORDERS, apply_order, order_permutation, undo_order

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))
from hf_support import run_offline_processor
from reference_fast import smooth_chunks

SCALE = 10.0


@pytest.fixture(scope="module")
def corpus() -> np.ndarray:
    return smooth_chunks(500, 20, 6, seed=7)


@pytest.fixture(scope="module")
def fitted(corpus: np.ndarray) -> dict[str, FastTokenizer]:
    return {o: FastTokenizer.fit(corpus, vocab_size=512, scale=SCALE, order=o) for o in ORDERS}


def _expected_sequence(chunk: np.ndarray, order: str) -> list[int]:
    """The quantized coefficients of one (T, D) chunk in ``order``, written out element by element."""
    q = np.around(dct(chunk.astype(np.float64), axis=0, norm="ortho") * SCALE).astype(np.int64)
    t, d = q.shape
    if order == "time":  # the reference: q[k, j] for k, then j (row-major)
        return [int(q[k, j]) for k in range(t) for j in range(d)]
    if order == "dims":
        return [int(q[k, j]) for j in range(d) for k in range(t)]
    return [int(q[0, j]) for j in range(d)] + [int(q[k, j]) for j in range(d) for k in range(1, t)]


@pytest.mark.parametrize("order", ORDERS)
def test_each_order_emits_the_coefficients_in_its_documented_sequence(
    fitted: dict[str, FastTokenizer], corpus: np.ndarray, order: str
) -> None:
    tok = fitted[order]
    chunks = corpus[:5]
    text = tok.tokenizer.decode_batch(tok.encode(chunks))
    for chunk, row in zip(chunks, text, strict=True):
        assert [ord(c) + tok.min_token for c in row] == _expected_sequence(chunk, order)


@pytest.mark.parametrize(("t", "w"), [(1, 1), (1, 5), (7, 1), (10, 3), (50, 32)])
def test_permutations_are_bijections_and_undo_inverts_apply(t: int, w: int) -> None:
    values = np.random.default_rng(t * w).integers(-50, 50, size=(4, t * w))
    for order in ORDERS:
        perm = order_permutation(order, t, w)
        assert sorted(perm.tolist()) == list(range(t * w))
        np.testing.assert_array_equal(undo_order(apply_order(values, order, t, w), order, t, w), values)
    np.testing.assert_array_equal(order_permutation("time", t, w), np.arange(t * w))


@pytest.mark.parametrize("order", ORDERS)
def test_every_order_round_trips_within_the_quantization_bound(
    fitted: dict[str, FastTokenizer], order: str
) -> None:
    chunks = smooth_chunks(200, 20, 6, seed=8)  # not the fit corpus
    decoded = fitted[order].decode(fitted[order].encode(chunks), strict=True).actions
    # DCT-II ortho is orthonormal: the chunk's L2 error equals that of its coefficients, each at most
    # 0.5 / scale off after rounding (no value of these chunks is clamped at this scale).
    assert fitted[order].encode_padded(chunks).clamped_values == 0
    error = np.sqrt(np.square(decoded.astype(np.float64) - chunks).sum(axis=(1, 2)))
    assert (error <= 0.5 / SCALE * np.sqrt(20 * 6) + 1e-5).all()
    # The order only permutes the same quantized values: every order decodes to the same actions.
    reference = fitted["time"].decode(fitted["time"].encode(chunks)).actions
    np.testing.assert_array_equal(decoded, reference)


def _padded(n: int, seed: int) -> np.ndarray:
    """6 native dims zero-padded to 16, as a mixture pads every head to ``max_action_dim``."""
    out = np.zeros((n, 20, 16), np.float32)
    out[:, :, :6] = smooth_chunks(n, 20, 6, seed=seed)
    return out


def test_dim_major_orders_are_shorter_than_time_on_padded_chunks() -> None:
    # Measured: time 31.7, dims 29.2, dc_dims 29.8 mean tokens (benchmarks/bench_tokens.py measures more).
    chunks = _padded(300, seed=9)
    fitted = {o: FastTokenizer.fit(_padded(600, seed=7), vocab_size=512, order=o) for o in ORDERS}
    mean = {o: np.mean([len(r) for r in fitted[o].encode(chunks)]) for o in ORDERS}
    assert mean["dims"] < mean["time"]
    assert mean["dc_dims"] < mean["time"]


@pytest.mark.parametrize("order", ["dims", "dc_dims"])
def test_a_saved_order_is_recorded_and_honoured_by_load(
    fitted: dict[str, FastTokenizer], tmp_path: Path, order: str
) -> None:
    folder = fitted[order].save(tmp_path / order)
    sidecar = json.loads((folder / "fasttok.json").read_text())
    config = json.loads((folder / "processor_config.json").read_text())
    assert (sidecar["order"], config["order"], sidecar["settings"]["order"]) == (order, order, order)
    assert sidecar["format_version"] == 2  # an older reader refuses the folder instead of misdecoding
    loaded = FastTokenizer.load(folder)
    chunks = smooth_chunks(30, 20, 6, seed=10)
    assert loaded.order == order
    assert loaded.encode(chunks) == fitted[order].encode(chunks)
    expected = fitted[order].decode(fitted[order].encode(chunks)).actions
    np.testing.assert_array_equal(loaded.decode(loaded.encode(chunks)).actions, expected)


def test_the_default_order_writes_the_format_1_folder_without_an_order_key(
    fitted: dict[str, FastTokenizer], tmp_path: Path
) -> None:
    folder = fitted["time"].save(tmp_path / "time")
    sidecar = json.loads((folder / "fasttok.json").read_text())
    config = json.loads((folder / "processor_config.json").read_text())
    assert sidecar["format_version"] == 1
    assert "order" not in sidecar
    assert "order" not in config
    assert "order" not in sidecar["settings"]
    assert FastTokenizer.load(folder).order == "time"


def test_bad_orders_are_refused_with_the_fix(corpus: np.ndarray) -> None:
    with pytest.raises(CodecError, match=r"order='zigzag' is not one of \('time', 'dims', 'dc_dims'\)"):
        FastTokenizer.fit(corpus, vocab_size=512, order="zigzag")
    with pytest.raises(CodecError, match="order='dims' needs pipeline='char'"):
        FastTokenizer.fit(corpus, vocab_size=512, pipeline="reference", order="dims")


def _edit(path: Path, **changes: object) -> None:
    document = json.loads(path.read_text())
    document.update(changes)
    path.write_text(json.dumps(document))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: _edit(d / "processor_config.json", order="time"), "order is 'time' in processor_config"),
        (
            lambda d: [_edit(d / name, order="spiral") for name in ("processor_config.json", "fasttok.json")],
            "order='spiral' is not one of",
        ),
    ],
)
def test_load_refuses_a_disagreeing_or_unknown_order(
    fitted: dict[str, FastTokenizer], tmp_path: Path, edit: object, message: str
) -> None:
    folder = fitted["dims"].save(tmp_path / "dims")
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
    report[directory] = {"order": proc.order, "ids": ids, "decoded": proc.decode(ids).tolist()}
print(json.dumps(report))
"""


@pytest.mark.slow  # about 8 s: transformers imports and loads three folders in a subprocess
def test_the_shipped_processor_encodes_and_decodes_each_order_like_fast_tokenizer(
    fitted: dict[str, FastTokenizer], tmp_path: Path
) -> None:
    pytest.importorskip("transformers")
    chunks = smooth_chunks(25, 20, 6, seed=11)
    np.save(tmp_path / "chunks.npy", chunks)
    folders = {str(fitted[o].save(tmp_path / o)): o for o in ORDERS}
    report = run_offline_processor(HF_SCRIPT, [str(tmp_path / "chunks.npy"), *folders], tmp_path)
    for folder, order in folders.items():
        tok = fitted[order]
        assert report[folder]["order"] == order
        assert report[folder]["ids"] == tok.encode(chunks)
        np.testing.assert_allclose(
            np.asarray(report[folder]["decoded"]), tok.decode(tok.encode(chunks)).actions, atol=1e-6
        )
    # Not trivially equal: the orders give different ids for the same chunks.
    assert len({json.dumps(report[f]["ids"]) for f in folders}) == len(ORDERS)
