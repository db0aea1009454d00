"""The ``native`` layout (issue 12 item 2): one tokenizer over chunks of mixed widths, end to end.

Codec round trips at mixed widths, the folder (``fasttok.json``, ``load``, the shipped processor module
through ``transformers.AutoProcessor``), the fit pipeline and its report, the settings and the mixture key.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from fasttok_plugin.codec import CodecError, FastTokenizer
from fasttok_plugin.errors import FitError, MixtureError
from fasttok_plugin.fit import FitSettings, fit_tokenizer
from fasttok_plugin.fit.plan import FitPlan
from fasttok_plugin.mixture import load_mixture

T = 10


def _chunks(rng: np.random.Generator, n: int, width: int) -> np.ndarray:
    """Smooth chunks in [-0.9, 0.9] of one width."""
    t = np.linspace(0.0, 1.0, T)[None, :, None]
    phase = rng.uniform(0.0, 6.0, (n, 1, width))
    freq = rng.uniform(0.5, 3.0, (n, 1, width))
    return (0.9 * np.sin(t * freq + phase)).astype(np.float32)


@pytest.fixture(scope="module")
def mixed() -> tuple[np.ndarray, np.ndarray, dict[int, np.ndarray]]:
    """``(padded (N, T, 16), widths (N,), {width: its rows' native chunks})`` with widths 3, 7 and 14."""
    rng = np.random.default_rng(0)
    widths = rng.permutation(np.repeat(np.array([3, 7, 14]), 150))  # interleaved widths
    padded = np.zeros((450, T, 16), np.float32)
    for w in (3, 7, 14):
        rows = np.flatnonzero(widths == w)
        padded[rows, :, :w] = _chunks(rng, rows.size, w)
    return padded, widths, {w: padded[widths == w][:, :, :w] for w in (3, 7, 14)}


@pytest.fixture(scope="module")
def native_tok(mixed: tuple[np.ndarray, np.ndarray, dict[int, np.ndarray]]) -> FastTokenizer:
    padded, widths, _ = mixed
    return FastTokenizer.fit(padded, layout="native", action_dims=widths, vocab_size=600)


def test_native_fit_reads_each_row_at_its_width_streamed_or_not(
    mixed: tuple[np.ndarray, np.ndarray, dict[int, np.ndarray]], native_tok: FastTokenizer
) -> None:
    padded, widths, parts = mixed
    assert native_tok.layout == "native"
    assert native_tok.action_dims == (3, 7, 14)
    assert native_tok.action_dim is None  # mixed widths: decode needs the width
    # The same corpus as batches of one width each (in another order): the same tokenizer.
    streamed = FastTokenizer.fit(
        iter([parts[14], parts[3], parts[7], (padded, widths)]), layout="native", vocab_size=600
    )
    doubled = FastTokenizer.fit(
        np.concatenate([padded, padded]), layout="native", action_dims=np.tile(widths, 2), vocab_size=600
    )
    assert (streamed.min_token, streamed.max_token) == (doubled.min_token, doubled.max_token)
    assert streamed.tokenizer.get_vocab() == doubled.tokenizer.get_vocab()
    # The padding beyond each width never enters the corpus: junk there changes nothing.
    junk = padded.copy()
    for i, w in enumerate(widths):
        junk[i, :, w:] = 0.7
    again = FastTokenizer.fit(junk, layout="native", action_dims=widths, vocab_size=600)
    assert again.tokenizer.to_str() == native_tok.tokenizer.to_str()


def test_round_trip_at_mixed_widths(
    mixed: tuple[np.ndarray, np.ndarray, dict[int, np.ndarray]], native_tok: FastTokenizer
) -> None:
    padded, widths, parts = mixed
    encoded = native_tok.encode_padded(padded, action_dims=widths)
    decoded = native_tok.decode(encoded, action_dim=widths)
    assert decoded.actions.shape == (450, T, 14)
    assert decoded.valid.all()
    np.testing.assert_array_equal(decoded.action_dims, widths)
    for i in (0, 1, 2, 200, 449):
        w = int(widths[i])
        # Quantization error of one coefficient step is at most 0.5 / scale per value (orthonormal DCT).
        assert np.abs(decoded.actions[i, :, :w] - padded[i, :, :w]).max() < 0.5 / native_tok.scale * np.sqrt(
            T * w
        )
        assert not decoded.actions[i, :, w:].any()  # zero beyond the row's width
    # Rows of one width encode exactly as the (T, w) arrays alone, and decode with one int.
    for w, block in parts.items():
        ids = native_tok.encode(block)
        assert ids == [
            row
            for row, width in zip(native_tok.encode(padded, action_dims=widths), widths, strict=True)
            if width == w
        ]
        alone = native_tok.decode(ids, action_dim=w)
        np.testing.assert_array_equal(alone.actions, decoded.actions[widths == w][:, :, :w])


def test_native_decode_marks_a_row_of_the_wrong_width_invalid(
    native_tok: FastTokenizer, caplog: pytest.LogCaptureFixture
) -> None:
    rng = np.random.default_rng(1)
    chunk = _chunks(rng, 2, 7)
    ids = native_tok.encode(chunk)
    with caplog.at_level(logging.WARNING, logger="fasttok_plugin.codec"):
        out = native_tok.decode(ids, action_dim=[7, 3])
    assert out.valid.tolist() == [True, False]
    assert np.isnan(out.actions[1]).all()
    assert not np.isnan(out.actions[0]).any()
    assert "1 of 2 row(s) did not decode" in caplog.text
    with pytest.raises(CodecError, match=r"rows 1"):
        native_tok.decode(ids, action_dim=[7, 3], strict=True)


def test_width_errors_are_clear(native_tok: FastTokenizer) -> None:
    rng = np.random.default_rng(2)
    chunk = _chunks(rng, 3, 7)
    with pytest.raises(CodecError, match=r"action_dims\[1\]=9 must be in 1\.\.7"):
        native_tok.encode(chunk, action_dims=[7, 9, 3])
    with pytest.raises(CodecError, match="3 action_dims for 2 chunk"):
        native_tok.encode(chunk[:2], action_dims=[7, 7, 7])
    with pytest.raises(CodecError, match="fit: 2 action_dims for 3 chunk"):
        FastTokenizer.fit(iter([(chunk, [7, 7])]), layout="native")
    with pytest.raises(CodecError, match="integer or one integer per chunk"):
        native_tok.encode(chunk, action_dims=[7.0, 7.0, 7.0])
    with pytest.raises(CodecError, match=r"widths \[3, 7, 14\]; pass time_horizon= and action_dim="):
        native_tok.decode(native_tok.encode(chunk))
    padded = FastTokenizer.fit(chunk, vocab_size=600)
    with pytest.raises(CodecError, match="action_dims is only for layout='native'"):
        padded.encode(chunk, action_dims=[7, 7, 7])
    with pytest.raises(CodecError, match="one action_dim per row is only for layout='native'"):
        padded.decode(padded.encode(chunk), action_dim=[7, 7, 7])
    with pytest.raises(CodecError, match="action_dims is only for layout='native'"):
        FastTokenizer.fit(chunk, action_dims=[7, 7, 7])
    with pytest.raises(CodecError, match="layout='diagonal' must be 'padded' or 'native'"):
        FastTokenizer.fit(chunk, layout="diagonal")


def test_native_folder_records_the_layout_and_loads_through_autoprocessor(
    tmp_path: Path, mixed: tuple[np.ndarray, np.ndarray, dict[int, np.ndarray]], native_tok: FastTokenizer
) -> None:
    from transformers import AutoProcessor

    padded, widths, parts = mixed
    folder = native_tok.save(tmp_path / "native")
    sidecar = json.loads((folder / "fasttok.json").read_text())
    assert (sidecar["layout"], sidecar["action_dims"]) == ("native", [3, 7, 14])
    assert json.loads((folder / "processor_config.json").read_text())["action_dim"] is None
    loaded = FastTokenizer.load(folder)
    assert (loaded.layout, loaded.action_dims) == ("native", (3, 7, 14))
    assert loaded.encode(padded, action_dims=widths) == native_tok.encode(padded, action_dims=widths)

    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    for w, block in parts.items():
        ids = processor(block)  # LeRobot ActionTokenizerProcessorStep: the (B, T, w) action as it is
        assert ids == native_tok.encode(block)
        # LeRobot PI0FastPolicy / openpi FASTTokenizer: decode(tokens, time_horizon=, action_dim=)
        out = processor.decode(ids, time_horizon=T, action_dim=w)
        np.testing.assert_allclose(out, native_tok.decode(ids, action_dim=w).actions, atol=1e-6)
    # Additive: a list of chunks of mixed widths, and one width per row.
    rows = [parts[3][0], parts[14][0], parts[7][0]]
    ids = processor(rows)
    assert ids == [native_tok.encode(r)[0] for r in rows]
    out = processor.decode(ids, time_horizon=T, action_dim=[3, 14, 7])
    ours = native_tok.decode(ids, action_dim=[3, 14, 7]).actions
    np.testing.assert_allclose(out, ours, atol=1e-6)
    assert processor.last_invalid_rows == ()


def test_padded_is_the_default_and_writes_no_layout(tmp_path: Path) -> None:
    chunk = _chunks(np.random.default_rng(3), 40, 5)
    default = FastTokenizer.fit(chunk, vocab_size=300)
    explicit = FastTokenizer.fit(chunk, vocab_size=300, layout="padded")
    a, b = default.save(tmp_path / "a"), explicit.save(tmp_path / "b")
    for name in ("fasttok.json", "tokenizer.json", "processor_config.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    sidecar = json.loads((a / "fasttok.json").read_text())
    assert "layout" not in sidecar
    assert "layout" not in sidecar["settings"]
    assert FastTokenizer.load(a).layout == "padded"


# ------------------------------------------------------------------------------------------- the fit
def _fit(mixture: Path, out: Path, layout: str) -> tuple[FastTokenizer, object, FitPlan]:
    plans: list[FitPlan] = []
    settings = FitSettings(chunk_size=16, max_action_dim=16, total_chunks=1500, layout=layout)
    tok, report = fit_tokenizer(mixture, settings, out_dir=out, on_plan=plans.append)
    return tok, report, plans[0]


def test_fit_report_per_head_equals_autoprocessor_on_lerobot_prepared_native_chunks(
    example_mixture: Path, tmp_path: Path
) -> None:
    """The report's per-head mean / p99 tokens are what LeRobot's own pipeline gets on those chunks.

    The held-out chunks are taken raw, cut to the robot's native width (LeRobot ``pi0_fast`` tokenizes the
    unpadded action), normalized with LeRobot's policy-side MIN_MAX formula written out below, and encoded
    by ``AutoProcessor.from_pretrained(folder, trust_remote_code=True)`` as ``ActionTokenizerProcessorStep``
    loads it.
    """
    from transformers import AutoProcessor

    tok, report, plan = _fit(example_mixture, tmp_path / "tok", "native")
    assert (report.layout, tok.layout) == ("native", "native")
    heads = plan.sampler.heads
    processor = AutoProcessor.from_pretrained(tmp_path / "tok", trust_remote_code=True)
    lengths: dict[int, list[int]] = {}
    for batch in plan.heldout_batches():  # the same seed and stream as the report's evaluation
        assert batch.action_dims is not None
        for i in range(len(batch)):
            h, w = int(batch.head_index[i]), int(batch.action_dims[i])
            x = torch.from_numpy(batch.raw[i, :, :w])
            lo = torch.from_numpy(np.asarray(heads.min[h, :w], np.float32))
            hi = torch.from_numpy(np.asarray(heads.max[h, :w], np.float32))
            # LeRobot src/lerobot/processor/normalize_processor.py, _apply_transform, MIN_MAX:
            #   denom = max_val - min_val; denom = torch.where(denom == 0, eps, denom)
            #   return 2 * (tensor - min_val) / denom - 1
            denom = hi - lo
            assert (denom != 0).all()  # no zero-range native dim here: LeRobot's -1 and our 0 agree
            prepared = (2 * (x - lo) / denom - 1).numpy()
            # Normalize is per dim: our native chunk is that very array, bit for bit.
            np.testing.assert_array_equal(prepared, batch.normalized[i, :, :w])
            lengths.setdefault(h, []).append(len(processor(prepared)[0]))
    assert len(lengths) == len(heads.keys)
    for head in report.heads:
        got = np.array(lengths[head.head], dtype=np.float64)
        assert head.token_lengths is not None
        assert head.token_lengths.count == got.size
        assert head.token_lengths.mean == pytest.approx(float(got.mean()), rel=1e-12)
        assert head.token_lengths.p99 == pytest.approx(float(np.percentile(got, 99)), rel=1e-12)
        assert head.compression_ratio == pytest.approx(16 * head.native_dim / got.mean())

    # The padded fit of the same mixture measures padded chunks; its folder and fingerprint differ.
    padded_tok, padded_report, _ = _fit(example_mixture, tmp_path / "padded", "padded")
    assert (padded_report.layout, padded_tok.layout) == ("padded", "padded")
    assert padded_report.fit_fingerprint != report.fit_fingerprint
    assert "layout" not in json.loads((tmp_path / "padded" / "fasttok.json").read_text())
    assert json.loads((tmp_path / "tok" / "fasttok.json").read_text())["layout"] == "native"


def test_layout_settings_and_mixture_key(write_mixture_file, make_dataset) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FitError, match="layout must be 'padded' or 'native', got 'ragged'"):
        FitSettings(layout="ragged")
    make_dataset("ds", action_dim=3)
    ok = write_mixture_file({"datasets": [{"repo_id": "a", "root": "datasets/ds"}], "layout": "native"})
    config = load_mixture(ok)
    assert config.layout == "native"
    assert FitSettings().resolved(config).layout == "native"  # the mixture's over the default
    assert (
        FitSettings(layout="native")
        .resolved(
            load_mixture(
                write_mixture_file({"datasets": [{"repo_id": "a", "root": "datasets/ds"}]}, name="plain.json")
            )
        )
        .layout
        == "native"
    )
    bad = write_mixture_file(
        {"datasets": [{"repo_id": "a", "root": "datasets/ds"}], "layout": "flat"}, name="bad.json"
    )
    with pytest.raises(MixtureError, match=r'layout must be one of "padded", "native"'):
        load_mixture(bad)


def test_a_global_head_keeps_each_entrys_own_width(example_mixture: Path, tmp_path: Path) -> None:
    """Under ``global`` one head pools entries of 2..14 dims; each chunk keeps its entry's width, not 14."""
    plans: list[FitPlan] = []
    settings = FitSettings(
        chunk_size=16, max_action_dim=16, total_chunks=600, layout="native", head_grouping="global"
    )
    tok, report = fit_tokenizer(example_mixture, settings, on_plan=plans.append)
    plan = plans[0]
    heads = plan.sampler.heads
    assert heads.native_dims == (14,)
    entry_dims = [int(d) for d in heads.entry_dims]
    assert plan.widths is not None
    assert plan.widths.tolist() == entry_dims  # entry index == position for a parsed mixture
    widths = np.concatenate([b.action_dims for b in plan.heldout_batches()])
    datasets = np.concatenate([b.dataset_index for b in plan.heldout_batches()])
    np.testing.assert_array_equal(widths, np.array(entry_dims)[datasets])
    assert tok.action_dims == tuple(sorted(set(entry_dims)))
    (head,) = report.heads
    assert head.compression_ratio == pytest.approx(16 * widths.mean() / head.token_lengths.mean)


def test_overflow_errors_name_the_callers_rows_not_the_width_blocks(
    mixed: tuple[np.ndarray, np.ndarray, dict[int, np.ndarray]], native_tok: FastTokenizer
) -> None:
    padded, widths, _ = mixed
    bad = padded.copy()
    rows = [int(r) for r in np.flatnonzero(widths == 7)[[3, 10]]]
    bad[rows[0], :, :7] = 1e9  # the scaled DCT coefficients overflow an int32
    with pytest.raises(CodecError, match=rf"rows {rows[0]}\. Lower scale"):
        FastTokenizer.fit(bad, layout="native", action_dims=widths, vocab_size=600)
    bad[rows[1], :, :7] = 1e9
    with pytest.raises(CodecError, match=rf"2 rows of width 7 fail: {rows[0]}, {rows[1]}"):
        native_tok.encode(bad, action_dims=widths)


def test_native_with_an_entry_wider_than_max_action_dim_is_ft201_before_any_sampling(
    example_mixture: Path,
) -> None:
    from fasttok_plugin.preflight import PreflightError

    settings = FitSettings(chunk_size=16, max_action_dim=8, total_chunks=200, layout="native")
    with pytest.raises(PreflightError) as info:
        fit_tokenizer(example_mixture, settings, on_plan=lambda plan: pytest.fail("sampled"))
    text = str(info.value)
    assert "FT201" in text
    assert (
        "native action dim 14 exceeds max_action_dim 8 (the policy's widest action, padded or native" in text
    )
