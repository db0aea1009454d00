"""ActionDecoder: predicted ids + head -> raw actions at the native width, within the quantization bound."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from fasttok_plugin.codec import FastTokenizer
from fasttok_plugin.decode import ActionDecoder
from fasttok_plugin.heads import NormHeads, build_norm_heads
from fasttok_plugin.mixture import load_mixture
from fasttok_plugin.normalize import Normalize, Unnormalize
from fasttok_plugin.resolve import resolve_mixture
from fasttok_plugin.sampling import ChunkSampler

T, D, SCALE = 16, 16, 10.0


@pytest.fixture
def fitted(example_mixture: Path) -> tuple[NormHeads, FastTokenizer, np.ndarray, np.ndarray]:
    resolved = resolve_mixture(load_mixture(example_mixture))
    heads = build_norm_heads(resolved, D)
    batches = list(ChunkSampler(resolved, heads, chunk_size=T).sample(300, seed=1))
    raw = np.concatenate([b.actions for b in batches])
    head_index = np.concatenate([b.head_index for b in batches]).astype(np.int64)
    normalized = Normalize(heads)(torch.from_numpy(raw), torch.from_numpy(head_index)).numpy()
    return heads, FastTokenizer.fit(normalized, vocab_size=512, scale=SCALE), raw, head_index


def quantization_bound(heads: NormHeads, head_index: np.ndarray) -> np.ndarray:
    """Largest raw error per (row, dim) of a MIN_MAX round trip through the codec.

    A DCT coefficient is off by at most 0.5/scale; the orthonormal IDCT spreads T of them over a value with
    weights |basis| <= sqrt(2/T): |error| <= 0.5/scale * sqrt(2T) in normalized units. LeRobot's MIN_MAX
    inverse, ``(x + 1) / 2 * (max - min) + min`` (src/lerobot/processor/normalize_processor.py), scales that
    by (max - min) / 2.
    """
    span = (heads.max - heads.min)[head_index].astype(np.float64)
    return 0.5 / SCALE * math.sqrt(2 * T) * span[:, None, :] / 2 + 1e-5


def test_decode_returns_the_raw_chunks_within_the_quantization_bound(fitted) -> None:
    heads, tokenizer, raw, head_index = fitted
    decoder = ActionDecoder.from_heads(tokenizer, heads)
    normalized = Normalize(heads)(torch.from_numpy(raw), torch.from_numpy(head_index))
    encoded = tokenizer.encode_padded(normalized, max_length=None)
    out = decoder.decode(
        torch.from_numpy(encoded.ids), torch.from_numpy(head_index), lengths=torch.from_numpy(encoded.lengths)
    )
    assert out.valid.all()
    assert out.actions.dtype == np.float32
    dims = np.asarray(heads.native_dims)[head_index]
    np.testing.assert_array_equal(out.action_dims, dims)
    error = np.abs(out.actions.astype(np.float64) - raw)
    bound = quantization_bound(heads, head_index)
    for row in range(len(raw)):
        d = dims[row]
        assert (error[row, :, :d] <= bound[row, :, :d]).all(), row
        assert out.native(row).shape == (T, d)
        assert (out.actions[row, :, d:] == 0.0).all()  # padding is zero, as in the datamodule's batches
    assert error.max() > 0  # the codec is lossy: a decoder that echoed its input would not be


def test_heads_by_key_and_one_head_for_every_row(fitted) -> None:
    heads, tokenizer, raw, head_index = fitted
    decoder = ActionDecoder.from_heads(tokenizer, heads)
    head = int(head_index[0])
    rows = np.flatnonzero(head_index == head)
    normalized = Normalize(heads)(torch.from_numpy(raw[rows]), torch.from_numpy(head_index[rows]))
    ids = tokenizer.encode(normalized)
    by_key = decoder.decode(ids, heads.keys[head])
    by_index = decoder.decode(ids, head)
    np.testing.assert_array_equal(by_key.actions, by_index.actions)
    assert (by_key.head_index == head).all()
    with pytest.raises(ValueError, match="unknown head 'nope'"):
        decoder.decode(ids, "nope")
    with pytest.raises(ValueError, match="one head or one per row"):
        decoder.decode(ids, [head, head])


def test_rows_that_do_not_decode_are_nan_and_flagged(fitted) -> None:
    heads, tokenizer, raw, head_index = fitted
    decoder = ActionDecoder(tokenizer, Unnormalize(heads), heads.keys, heads.native_dims)
    normalized = Normalize(heads)(torch.from_numpy(raw[:3]), torch.from_numpy(head_index[:3]))
    ids = tokenizer.encode(normalized)
    ids[1] = ids[1][:-3]  # a generation cut short
    out = decoder.decode(ids, head_index[:3])
    assert out.valid.tolist() == [True, False, True]
    assert out.invalid_rows == (1,)
    assert np.isnan(out.actions[1]).all()
    assert not np.isnan(out.actions[[0, 2]]).any()


def test_a_tokenizer_of_another_width_is_refused(fitted) -> None:
    heads = fitted[0]
    other = FastTokenizer.fit(np.zeros((20, T, 3), np.float32) + np.linspace(-1, 1, T)[None, :, None])
    with pytest.raises(ValueError, match="encodes 3 action dims but the heads are padded to 16"):
        ActionDecoder.from_heads(other, heads)


@pytest.mark.parametrize("mode", ["min_max", "mean_std"])
def test_a_saved_state_decodes_exactly_like_the_heads(fitted, mode) -> None:
    # What a checkpoint keeps (JSON-able): the decoder must not need the mixture's datasets again.
    import json

    heads, tokenizer, raw, head_index = fitted
    decoder = ActionDecoder.from_heads(tokenizer, heads, mode=mode)
    restored = ActionDecoder.from_state(tokenizer, json.loads(json.dumps(decoder.state())))
    normalized = Normalize(heads, mode=mode)(torch.from_numpy(raw[:50]), torch.from_numpy(head_index[:50]))
    ids = tokenizer.encode(normalized)
    np.testing.assert_array_equal(
        restored.decode(ids, head_index[:50]).actions, decoder.decode(ids, head_index[:50]).actions
    )
    assert restored.head_keys == heads.keys
    assert restored.head_dims == heads.native_dims
    with pytest.raises(ValueError, match=r"expected a state written by ActionDecoder\.state"):
        ActionDecoder.from_state(tokenizer, {"version": 99})


@pytest.mark.parametrize("layout", ["padded", "native"])
def test_a_decoder_from_the_tokenizer_folder_alone_decodes_raw_actions(
    example_mixture: Path, tmp_path: Path, layout: str
) -> None:
    # The inference path of issue 14 with issue 12's norm_stats.json: fit, move the folder away from the
    # mixture, and decode with nothing but the folder.
    from fasttok_plugin.fit import FitSettings
    from fasttok_plugin.fitting import fit_tokenizer

    settings = FitSettings(chunk_size=T, max_action_dim=D, vocab_size=512, total_chunks=600, layout=layout)
    fit_tokenizer(example_mixture, settings, out_dir=tmp_path / "fit")
    folder = (tmp_path / "fit").rename(tmp_path / "elsewhere")
    decoder = ActionDecoder.from_tokenizer_dir(folder)
    assert decoder.tokenizer.layout == layout

    resolved = resolve_mixture(load_mixture(example_mixture))
    heads = build_norm_heads(resolved, D)
    assert decoder.head_keys == tuple(heads.keys)
    batches = list(ChunkSampler(resolved, heads, chunk_size=T).sample(120, seed=7))
    raw = np.concatenate([b.actions for b in batches])
    head_index = np.concatenate([b.head_index for b in batches]).astype(np.int64)
    normalized = Normalize.from_tokenizer_dir(folder)(torch.from_numpy(raw), torch.from_numpy(head_index))
    dims = np.asarray(heads.native_dims)[head_index]
    widths = dims if layout == "native" else None
    encoded = decoder.tokenizer.encode_padded(normalized.numpy(), action_dims=widths)
    out = decoder.decode(encoded.ids, head_index, lengths=encoded.lengths)
    assert out.valid.all()
    scale = decoder.tokenizer.scale
    span = (heads.max - heads.min)[head_index].astype(np.float64)
    bound = 0.5 / scale * math.sqrt(2 * T) * span[:, None, :] / 2 + 1e-5
    error = np.abs(out.actions.astype(np.float64) - raw)
    for row in range(len(raw)):
        d = dims[row]
        assert (error[row, :, :d] <= bound[row, :, :d]).all(), row
        assert (out.actions[row, :, d:] == 0.0).all()
