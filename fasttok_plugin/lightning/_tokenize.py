r"""
Tokenizing batches in the DataLoader workers
============================================

:class:`TokenizeBatch` is the ``collate_fn`` :class:`~fasttok_plugin.lightning.MixtureDataModule` uses with
``tokenize=True``: every raw batch is normalized with a CPU float32 copy of the policy's
:class:`~fasttok_plugin.normalize.Normalize` and encoded to padded FAST ids inside the worker process that
drew it, so the training step receives ready token ids (openpi's ``TokenizeFASTInputs`` does the same in its
data pipeline), and no tokenization, device-to-host copy or sync is left on the main process.
"""

from __future__ import annotations

import copy
import logging
import os
from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torch.utils.data import get_worker_info

if TYPE_CHECKING:
    from fasttok_plugin.codec import FastTokenizer
    from fasttok_plugin.fit.settings import FitSettings
    from fasttok_plugin.heads import NormHeads
    from fasttok_plugin.normalize import Normalize

__all__ = [
    "TOKEN_KEYS",
    "TokenizeBatch",
    "build_normalize",
    "hand_over",
    "quiet_tokenizers_fork",
    "wants_tokens",
]

log = logging.getLogger(__name__)

#: The keys `TokenizeBatch` adds to a batch.
TOKEN_KEYS = (
    "normalized_actions",
    "action_tokens",
    "action_token_mask",
    "action_token_lengths",
    "action_tokens_truncated",
    "action_values_clamped",
)


class TokenizeBatch:
    """Add normalized actions and padded FAST token ids to a ``{"actions", "head_index", ...}`` batch.

    The batch gains ``normalized_actions`` (B, T, D) float32, ``action_tokens`` (B, L) int64 (``pad_id``
    after each row's end), ``action_token_mask`` (B, L) bool, ``action_token_lengths`` (B,) int64 (after
    truncation), ``action_tokens_truncated`` (a 0-dim int64: rows longer than ``max_action_tokens``, cut)
    and ``action_values_clamped`` (a 0-dim int64: quantized values outside the fitted range, clamped).
    The values equal ``tokenizer.encode_padded(normalize(actions, head_index), max_length=...)`` bit for
    bit: this is that call, in the worker (with ``action_dims=batch["action_dim"]`` for a native layout).

    Args:
        tokenizer: The fitted tokenizer (pickled into each worker under forkserver/spawn).
        normalize: The policy's `Normalize`; a CPU float32 copy is taken now, so later moves or casts of the
            policy's module (``.to("cuda")``, ``precision="bf16-true"``) never reach the workers.
        max_action_tokens: ``L``: rows are padded (and truncated, counted) to it; ``None``: to the longest
            row of each batch.
        pad_id: Id written after each row's end.
    """

    def __init__(
        self,
        tokenizer: FastTokenizer,
        normalize: Normalize,
        *,
        max_action_tokens: int | None,
        pad_id: int = 0,
    ) -> None:
        self.tokenizer = tokenizer
        self.normalize = copy.deepcopy(normalize).to("cpu").eval()
        self.max_action_tokens = max_action_tokens
        self.pad_id = int(pad_id)

    def __call__(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Return ``batch`` plus the keys of `TOKEN_KEYS` (the input batch is not modified)."""
        if get_worker_info() is not None:
            # In a worker only, whatever the parent set: a forked copy of the thread pool the fit used
            # would never run a job (the encode would hang), and one thread per worker is the right count.
            os.environ["TOKENIZERS_PARALLELISM"] = "false"
        with torch.no_grad():
            normalized = self.normalize(batch["actions"].to(torch.float32), batch["head_index"])
        # A native datamodule's batches carry each chunk's width: tokenize at it, as the fit measured.
        widths = batch.get("action_dim")
        encoded = self.tokenizer.encode_padded(
            normalized,
            max_length=self.max_action_tokens,
            pad_id=self.pad_id,
            action_dims=widths.numpy() if widths is not None else None,
        )
        out: dict[str, Tensor] = dict(batch)
        out["normalized_actions"] = normalized.contiguous()
        out["action_tokens"] = torch.from_numpy(encoded.ids)
        out["action_token_mask"] = torch.from_numpy(encoded.attention_mask)
        out["action_token_lengths"] = torch.from_numpy(encoded.lengths)
        out["action_tokens_truncated"] = torch.tensor(encoded.truncated_rows, dtype=torch.int64)
        out["action_values_clamped"] = torch.tensor(encoded.clamped_values, dtype=torch.int64)
        return out

    def __repr__(self) -> str:
        return (
            f"TokenizeBatch({self.tokenizer!r}, heads={self.normalize.num_heads}, "
            f"max_action_tokens={self.max_action_tokens}, pad_id={self.pad_id})"
        )


def quiet_tokenizers_fork() -> None:
    """Set ``TOKENIZERS_PARALLELISM=false`` (unless the user set it) before DataLoader workers start.

    HF tokenizers warns in every forked child once the parent has used its thread pool (the tokenizer
    fit did) and then disables it; each worker encodes one batch at a time, and ``N`` workers each
    spawning a thread per core would oversubscribe the CPU, so say so up front instead.
    """
    if "TOKENIZERS_PARALLELISM" not in os.environ:
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
        log.debug("TOKENIZERS_PARALLELISM=false: tokenizing in DataLoader workers, one thread each")


def wants_tokens(datamodule: object) -> bool:
    """Whether ``datamodule`` tokenizes in its workers (``tokenize=True`` and a ``set_tokenization``)."""
    return getattr(datamodule, "tokenize", False) is True and callable(
        getattr(datamodule, "set_tokenization", None)
    )


def build_normalize(heads: NormHeads, settings: FitSettings) -> Normalize:
    """The `Normalize` of a fit: the heads with the fit's convention, else its mode, zero range and eps."""
    from fasttok_plugin.lightning._arguments import normalize_for

    return normalize_for(settings, heads)


def hand_over(
    datamodule: object, tokenizer: FastTokenizer, normalize: Normalize | None, max_action_tokens: int | None
) -> None:
    """Give a ``tokenize=True`` datamodule the callback's tokenizer and `Normalize` (see `wants_tokens`)."""
    assert normalize is not None
    datamodule.set_tokenization(tokenizer, normalize, max_action_tokens=max_action_tokens)  # type: ignore[attr-defined]
