"""FitSettings refuses trainer settings the tokenizers BPE trainer cannot take (it aborts in Rust)."""

from __future__ import annotations

import pytest

from fasttok_plugin.codec import MAX_TRAINER_INT, MAX_VOCAB_SIZE
from fasttok_plugin.fit import FitError, FitSettings


def test_the_trainers_limits_are_the_largest_accepted_values() -> None:
    settings = FitSettings(
        vocab_size=MAX_VOCAB_SIZE, min_frequency=MAX_TRAINER_INT, max_token_length=MAX_TRAINER_INT
    )
    assert settings.vocab_size == 2**24
    with pytest.raises(FitError) as info:
        FitSettings(vocab_size=10**9, min_frequency=2**64, max_token_length=2**64)
    message = str(info.value)
    assert "  - vocab_size must be at most 16777216 (the BPE trainer's limit), got 1000000000" in message
    assert f"  - min_frequency must be at most {2**64 - 1} (the BPE trainer's limit), got {2**64}" in message
    assert (
        f"  - max_token_length must be at most {2**64 - 1} (the BPE trainer's limit), got {2**64}" in message
    )


def test_max_fit_chunks_zero_is_an_error_and_none_is_no_cap() -> None:
    with pytest.raises(FitError, match="max_fit_chunks must be an integer >= 1, got 0"):
        FitSettings(max_fit_chunks=0)
    assert FitSettings(max_fit_chunks=None).max_fit_chunks is None
