"""Per-chunk FAST baseline that follows the reference ``UniversalActionProcessor`` step by step.

Source followed: ``processing_action_tokenizer.py`` of https://huggingface.co/physical-intelligence/fast
(see the docstring of :mod:`fasttok_plugin.codec`). Differences, none of which changes a file, an id or a
value: the tokenizer is the raw ``tokenizers.Tokenizer`` (the reference wraps it in transformers'
``PreTrainedTokenizerFast``, whose ``__call__``/``decode`` forward to it and whose ``save_pretrained``
writes the same ``tokenizer.json``), the trainer's progress bar is off, and a failed decode row is
recorded in ``failed_rows`` instead of being printed (it is still zero-filled, as in the reference).

Used by the tests (identical ids / files / values) and by ``benchmarks/bench_codec.py`` (speed baseline).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.fft import dct, idct
from tokenizers import ByteLevelBPETokenizer, Tokenizer
from tokenizers.trainers import BpeTrainer


@dataclass
class ReferenceFast:
    """The reference processor's state: tokenizer, ``scale``, ``min_token`` and the chunk shape."""

    tokenizer: Tokenizer
    scale: float
    vocab_size: int
    min_token: int
    time_horizon: int | None = None
    action_dim: int | None = None
    failed_rows: list[int] = field(default_factory=list)

    @classmethod
    def fit(
        cls,
        action_data: Sequence[np.ndarray],
        scale: float = 10,
        vocab_size: int = 1024,
        *,
        time_horizon: int | None = None,
        action_dim: int | None = None,
        min_frequency: int = 2,
        max_token_length: int = 10000,
    ) -> ReferenceFast:
        """``UniversalActionProcessor.fit``: one DCT per chunk, one Python string per chunk."""
        dct_tokens = [dct(a, axis=0, norm="ortho").flatten() for a in action_data]
        max_token = int(np.around(np.concatenate(dct_tokens) * scale).max())
        min_token = int(np.around(np.concatenate(dct_tokens) * scale).min())
        min_vocab_size = max_token - min_token
        assert min_vocab_size <= vocab_size, f"Vocab size {vocab_size} is too small for {min_vocab_size}"

        def _token_iter():
            for tokens in dct_tokens:
                rounded_tokens = np.around(tokens * scale) - min_token
                rounded_tokens = rounded_tokens.astype(int)
                yield "".join(map(chr, rounded_tokens))

        bpe = ByteLevelBPETokenizer()
        alphabet = [chr(i) for i in range(max_token - min_token + 1)]
        trainer = BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            show_progress=False,
            special_tokens=[],
            initial_alphabet=alphabet,
            max_token_length=max_token_length,
        )
        bpe._tokenizer.train_from_iterator(_token_iter(), trainer=trainer)
        return cls(
            bpe._tokenizer,
            scale=scale,
            vocab_size=vocab_size,
            min_token=min_token,
            time_horizon=time_horizon,
            action_dim=action_dim,
        )

    def __call__(self, action_chunk: np.ndarray) -> list[list[int]]:
        """``UniversalActionProcessor.__call__``: batched DCT, then one tokenizer call per chunk."""
        if action_chunk.ndim == 2:
            action_chunk = action_chunk[None, ...]
        dct_coeff = dct(action_chunk, axis=1, norm="ortho")
        dct_coeff = np.around(dct_coeff * self.scale)
        tokens = []
        for elem in dct_coeff:
            token_str = "".join(map(chr, np.maximum(elem.flatten() - self.min_token, 0).astype(int)))
            tokens.append(self.tokenizer.encode(token_str).ids)
        return tokens

    def decode(self, tokens: list[list[int]], *, time_horizon: int, action_dim: int) -> np.ndarray:
        """``UniversalActionProcessor.decode``: one tokenizer call and one ``ord`` loop per row."""
        self.failed_rows = []
        decoded_actions = []
        for row, token in enumerate(tokens):
            try:
                decoded_tokens = self.tokenizer.decode(token)
                decoded_dct_coeff = np.array(list(map(ord, decoded_tokens))) + self.min_token
                decoded_dct_coeff = decoded_dct_coeff.reshape(-1, action_dim)
                assert decoded_dct_coeff.shape == (time_horizon, action_dim)
            except Exception:
                self.failed_rows.append(row)
                decoded_dct_coeff = np.zeros((time_horizon, action_dim))
            decoded_actions.append(idct(decoded_dct_coeff / self.scale, axis=0, norm="ortho"))
        return np.stack(decoded_actions)


def smooth_chunks(n: int, t: int, d: int, *, seed: int = 0) -> np.ndarray:
    """Smooth random trajectories normalized to [-1, 1] per dim, ``(n, t, d)`` float32.

    Sums of a few low-frequency sinusoids plus a drift, like joint trajectories over a chunk.
    """
    rng = np.random.default_rng(seed)
    time = np.linspace(0.0, 1.0, t)[None, :, None]
    x = np.zeros((n, t, d))
    for k in range(1, 4):
        amp = rng.normal(0, 1.0 / k, (n, 1, d))
        freq = rng.uniform(0.2, 1.5 * k, (n, 1, d))
        phase = rng.uniform(0, 2 * np.pi, (n, 1, d))
        x += amp * np.sin(2 * np.pi * freq * time + phase)
    x += rng.normal(0, 0.5, (n, 1, d)) * time
    lo = x.min(axis=(0, 1), keepdims=True)
    hi = x.max(axis=(0, 1), keepdims=True)
    return (2 * (x - lo) / (hi - lo) - 1).astype(np.float32)
