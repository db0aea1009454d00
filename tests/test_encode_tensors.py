"""FastTokenizer.encode* on torch tensors: any dtype, autograd, an error for the meta device (issue 14)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fasttok_plugin.codec import CodecError, FastTokenizer

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))
from reference_fast import smooth_chunks


@pytest.fixture(scope="module")
def corpus() -> np.ndarray:
    return smooth_chunks(300, 16, 4, seed=3)


@pytest.fixture(scope="module")
def tokenizer(corpus: np.ndarray) -> FastTokenizer:
    return FastTokenizer.fit(corpus, vocab_size=256)


def test_a_float32_tensor_encodes_like_its_numpy_array(tokenizer: FastTokenizer, corpus: np.ndarray) -> None:
    chunks = corpus[:40].astype(np.float32)
    tensor = torch.from_numpy(chunks.copy()).requires_grad_(True)  # autograd: .numpy() alone would fail
    assert tokenizer.encode(tensor) == tokenizer.encode(chunks)
    padded, reference = (
        tokenizer.encode_padded(tensor, max_length=30),
        tokenizer.encode_padded(chunks, max_length=30),
    )
    np.testing.assert_array_equal(padded.ids, reference.ids)
    assert padded.truncated_rows == reference.truncated_rows


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_tensors_encode_like_their_float32_values(
    tokenizer: FastTokenizer, corpus: np.ndarray, dtype: torch.dtype
) -> None:
    # numpy has no bfloat16: before issue 14 this raised "Got unsupported ScalarType BFloat16".
    tensor = torch.from_numpy(corpus[:40].astype(np.float32)).to(dtype)
    assert tokenizer.encode(tensor) == tokenizer.encode(tensor.float().numpy())


def test_float64_tensors_keep_float64(tokenizer: FastTokenizer, corpus: np.ndarray) -> None:
    chunks = corpus[:40].astype(np.float64)
    assert tokenizer.encode(torch.from_numpy(chunks)) == tokenizer.encode(chunks)


def test_a_meta_tensor_is_a_clear_error(tokenizer: FastTokenizer) -> None:
    with pytest.raises(CodecError, match="'meta' device"):
        tokenizer.encode(torch.zeros(2, 16, 4, device="meta"))
