"""Inference: predicted FAST token ids back to raw actions, per norm head (DESIGN §14).

`ActionDecoder` chains what a policy's action head needs after generation: `FastTokenizer.decode` (with its
validity mask), the head's `Unnormalize`, and the cut to the head's native action width. It needs no
dataset and no Lightning: the tokenizer folder, plus the heads' stats (``from_heads``) or an `Unnormalize`
built from them.

Relative actions (`ActionTransform.relative_dims`) are undone too: ``decode(..., state=)`` adds the state at
each chunk's first frame back on the relative columns, so the result is absolute; with a column selection
it holds the selected native columns (`DecodedActions.columns`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from fasttok_plugin._decode_transforms import (
    checked_transforms,
    state_rows,
    transform_from_json,
    transform_json,
)
from fasttok_plugin.normalize import QUANTILE_BOUNDS, NormMode, Unnormalize
from fasttok_plugin.transforms import ActionTransform, MemberTransforms, head_transforms

if TYPE_CHECKING:  # pragma: no cover
    from fasttok_plugin.codec import FastTokenizer
    from fasttok_plugin.heads import NormHeads

__all__ = ["ActionDecoder", "DecodedActions"]

_STATE_VERSION = 1
_STATS = ("min", "max", "mean", "std")


@dataclass(frozen=True)
class DecodedActions:
    """Raw actions decoded from token ids.

    Attributes:
        actions: ``(N, T, D)`` float32 raw actions; columns past a row's native width are 0.0 (the
            datamodule's zero padding); rows that did not decode are NaN (never zeros).
        valid: ``(N,)`` bool, True where the ids decoded to exactly ``T * D`` values in the fitted range.
        head_index: ``(N,)`` int64 head of each row.
        action_dims: ``(N,)`` int64 native action width of each row's head.
        invalid_rows: Indices of the rows that are not valid.
        columns: Per head (``columns[head_index[row]]``), the dataset's native action columns a row's
            first ``action_dims[row]`` columns hold: the column selection, else ``0..dim-1`` (``()`` for a
            head whose members had different transforms: its rows are refused).
    """

    actions: np.ndarray
    valid: np.ndarray
    head_index: np.ndarray
    action_dims: np.ndarray
    invalid_rows: tuple[int, ...]
    columns: tuple[tuple[int, ...], ...] = ()

    def native(self, row: int) -> np.ndarray:
        """Row ``row`` at its head's native width: ``(T, action_dims[row])``."""
        return self.actions[row, :, : int(self.action_dims[row])]

    def row_columns(self, row: int) -> tuple[int, ...]:
        """The native action columns of `native` ``(row)``, in order."""
        return self.columns[int(self.head_index[row])]


class ActionDecoder:
    """Map predicted token ids and each row's head to raw actions at the head's native width.

    Args:
        tokenizer: The fitted tokenizer (``FastTokenizer.load(tokenizer_dir)``).
        unnormalize: The `Unnormalize` of the heads the tokenizer was fit with (same mode, zero_range, eps).
        head_keys: Display key of every head (``NormHeads.keys``), to name heads by key.
        head_dims: Native action width of every head (``NormHeads.native_dims``).
        transforms: The action transform of every head (None: none), as `head_transforms` gives them;
            relative ones make `decode` need the ``state``.

    Raises:
        ValueError: If the keys, dims, transforms and `Unnormalize` disagree on the heads, or the
            tokenizer's action width is not the heads' padded width.

    Example::

        decoder = ActionDecoder.from_heads(FastTokenizer.load("runs/tokenizer"), heads)
        out = decoder.decode(predicted_ids, "so100/joint_pos", lengths=predicted_lengths)
        out.native(0)  # (T, native dim) raw actions of the first row
    """

    def __init__(
        self,
        tokenizer: FastTokenizer,
        unnormalize: Unnormalize,
        head_keys: Sequence[str],
        head_dims: Sequence[int],
        transforms: Sequence[ActionTransform | MemberTransforms | None] | None = None,
    ) -> None:
        keys, dims = tuple(str(k) for k in head_keys), tuple(int(d) for d in head_dims)
        if not isinstance(unnormalize, Unnormalize):
            raise ValueError(
                f"ActionDecoder: unnormalize must be an Unnormalize, got {type(unnormalize).__name__}"
            )
        if len(keys) != unnormalize.num_heads or len(dims) != unnormalize.num_heads:
            raise ValueError(
                f"ActionDecoder: {len(keys)} head keys and {len(dims)} head dims for an Unnormalize of "
                f"{unnormalize.num_heads} heads; pass NormHeads.keys and NormHeads.native_dims of its heads"
            )
        if len(set(keys)) != len(keys):
            raise ValueError(f"ActionDecoder: head keys must be unique, got {keys}")
        bad = [(k, d) for k, d in zip(keys, dims, strict=True) if not 0 < d <= unnormalize.action_dim]
        if bad:
            raise ValueError(
                f"ActionDecoder: head dims must be in 1..{unnormalize.action_dim} (padded width), got {bad}"
            )
        # A native tokenizer takes each row at its head's width (its action_dim is the one fitted width, when
        # all are equal, never the padded one); only a padded tokenizer must match the padded width.
        if tokenizer.layout != "native" and tokenizer.action_dim not in (None, unnormalize.action_dim):
            raise ValueError(
                f"ActionDecoder: the tokenizer encodes {tokenizer.action_dim} action dims but the heads are "
                f"padded to {unnormalize.action_dim}; use the tokenizer fit for these heads"
            )
        self.tokenizer = tokenizer
        self.unnormalize = unnormalize.to("cpu").eval()
        self.head_keys = keys
        self.head_dims = dims
        self.transforms = checked_transforms(transforms, keys, dims)

    @classmethod
    def from_heads(
        cls,
        tokenizer: FastTokenizer,
        norm_heads: NormHeads,
        *,
        mode: str = "min_max",
        zero_range: str = "center",
        eps: float = 1e-6,
        transforms: ActionTransform | Sequence[ActionTransform | None] | None = None,
    ) -> ActionDecoder:
        """A decoder for ``norm_heads`` with the normalization settings of the fit (callback defaults).

        ``transforms``: the entries' transforms the fit applied (one for all, or one per entry, as
        `ChunkSampler` takes them).
        """
        unnormalize = Unnormalize(norm_heads, mode=mode, zero_range=zero_range, eps=eps)  # type: ignore[arg-type]
        per_head = head_transforms(norm_heads.head_members, norm_heads.entry_names, transforms)
        return cls(tokenizer, unnormalize, norm_heads.keys, norm_heads.native_dims, per_head)

    @classmethod
    def from_tokenizer_dir(cls, path: str | os.PathLike[str]) -> ActionDecoder:
        """A decoder from a tokenizer folder alone: its tokenizer and ``norm_stats.json`` (the heads' keys,
        native widths, stats, normalization and action transforms), with no mixture and no dataset.
        Reads JSON only; folders written before transforms were recorded decode as untransformed.

        Raises:
            TokenizerFormatError: The folder is not a tokenizer folder or has no readable ``norm_stats.json``
                (folders written before ``norm_stats.json`` existed: refit, or use `from_heads`).
        """
        from fasttok_plugin.codec import FastTokenizer
        from fasttok_plugin.norm_stats import read_norm_stats

        stored = read_norm_stats(Path(path))
        unnormalize = Unnormalize.from_norm_stats(stored)  # the file is read once
        heads = stored.heads
        return cls(FastTokenizer.load(path), unnormalize, heads.keys, heads.native_dims, stored.transforms)

    def state(self) -> dict[str, Any]:
        """A JSON-able description of the heads (keys, native widths, stats, settings) for `from_state`.

        Save it with a checkpoint (``on_save_checkpoint``) to decode without the mixture's datasets.
        """
        u = self.unnormalize
        names = _STATS + (("q_lo", "q_hi") if u.mode in QUANTILE_BOUNDS else ())
        # Only when some head is transformed, so older states and untransformed ones stay the same.
        transforms = (
            {"transforms": [transform_json(t) for t in self.transforms]} if any(self.transforms) else {}
        )
        return {
            "version": _STATE_VERSION,
            "head_keys": list(self.head_keys),
            "head_dims": list(self.head_dims),
            "mode": u.mode.value,
            "zero_range": u.zero_range,
            "eps": u.eps,
            "fingerprint": u.fingerprint,
            "stats": {name: getattr(u, name).tolist() for name in names},
            **transforms,
            # A convention's arithmetic (only when not the package's, so default states are unchanged).
            **({"formula": u.formula, "dtype": u.dtype_name} if u.formula != "fasttok" else {}),
        }

    @classmethod
    def from_state(cls, tokenizer: FastTokenizer, state: Mapping[str, Any]) -> ActionDecoder:
        """The decoder `state` described (the same float32 stats, so the same raw actions).

        Raises:
            ValueError: If ``state`` is not a decoder state of this version.
        """
        version = state.get("version") if isinstance(state, Mapping) else None
        if version != _STATE_VERSION:
            raise ValueError(
                f"ActionDecoder.from_state: expected a state written by ActionDecoder.state() (version "
                f"{_STATE_VERSION}), got {type(state).__name__} with version {version!r}"
            )
        mode = NormMode(state["mode"])
        stats = {name: np.asarray(values, dtype=np.float64) for name, values in state["stats"].items()}
        if mode in QUANTILE_BOUNDS:
            lo, hi = QUANTILE_BOUNDS[mode]
            stats[lo], stats[hi] = stats.pop("q_lo"), stats.pop("q_hi")
        keys = tuple(state["head_keys"])
        # Unnormalize reads only these attributes of a NormHeads.
        heads = SimpleNamespace(
            keys=keys,
            max_action_dim=stats["min"].shape[1],
            fingerprint=state["fingerprint"],
            native_dims=tuple(int(d) for d in state["head_dims"]),  # LeRobot/openpi: pad after normalizing
            **stats,
        )
        unnormalize = Unnormalize(
            heads,  # type: ignore[arg-type]
            mode=mode,
            zero_range=state["zero_range"],
            eps=state["eps"],
            formula=state.get("formula", "fasttok"),
            dtype=state.get("dtype"),
        )
        transforms = [transform_from_json(t) for t in state.get("transforms") or [None] * len(keys)]
        return cls(tokenizer, unnormalize, keys, state["head_dims"], transforms)

    def head_index(self, head: int | str) -> int:
        """The index of ``head``, given as an index or a head key.

        Raises:
            ValueError: Unknown key or out-of-range index (the message lists the keys).
        """
        if isinstance(head, str):
            if head not in self.head_keys:
                raise ValueError(
                    f"ActionDecoder: unknown head {head!r}; the heads are {list(self.head_keys)}"
                )
            return self.head_keys.index(head)
        if (
            isinstance(head, bool)
            or not isinstance(head, (int, np.integer))
            or not 0 <= head < len(self.head_keys)
        ):
            raise ValueError(
                f"ActionDecoder: head must be a key or an index in 0..{len(self.head_keys) - 1}, got {head!r}"
            )
        return int(head)

    def decode(
        self,
        ids: Any,
        heads: int | str | Sequence[int | str] | np.ndarray | torch.Tensor,
        *,
        lengths: Any = None,
        state: Any = None,
        strict: bool = False,
    ) -> DecodedActions:
        """Decode token ids of ``N`` chunks to raw (absolute) actions.

        Args:
            ids: Id lists, an ``(N, L)`` array or tensor (any device), or an `EncodedBatch`.
            heads: One head (index or key) for every row, or one per row.
            lengths: ``(N,)`` real tokens per row of an ``(N, L)`` ``ids`` (the rest is padding); ``None``:
                every entry is a token (or ``ids`` carries its lengths).
            state: ``(N, state_dim)`` (numpy or torch) the ``state_key`` vector at each chunk's first
                frame; required when a row's head has relative actions, added back on its relative
                columns (other rows ignore it, and may hold NaN).
            strict: Raise `CodecError` if a row does not decode.

        Raises:
            ValueError: ``state`` missing or of the wrong shape for a relative head (naming the head and
                its ``state_key``), or a row of a head whose members had different transforms.
        """
        rows = _id_rows(ids, lengths)
        from fasttok_plugin.codec._decode import flat_ids

        index = self._head_indices(heads, int(flat_ids(rows)[1].size))
        dims = np.asarray(self.head_dims, dtype=np.int64)[index]
        if self.tokenizer.layout == "native":
            # A native tokenizer decodes each row at its head's width; Unnormalize takes padded rows.
            decoded = self.tokenizer.decode(rows, strict=strict, action_dim=dims)
            padded = np.zeros((*decoded.actions.shape[:2], self.unnormalize.action_dim), np.float32)
            padded[:, :, : decoded.actions.shape[2]] = decoded.actions
            padded[~decoded.valid] = np.nan
        else:
            decoded = self.tokenizer.decode(rows, strict=strict)
            padded = decoded.actions
        with torch.no_grad():
            raw = self.unnormalize(torch.from_numpy(padded), torch.from_numpy(index)).numpy()
        padding = np.arange(raw.shape[2])[None, None, :] >= dims[:, None, None]
        raw = np.where(padding & decoded.valid[:, None, None], np.float32(0.0), raw).astype(np.float32)
        self._add_state(raw, index, state)
        columns = tuple(
            () if isinstance(t, MemberTransforms) else (t or ActionTransform()).columns(d)
            for t, d in zip(self.transforms, self.head_dims, strict=True)
        )
        return DecodedActions(raw, decoded.valid, index, dims, decoded.invalid_rows, columns)

    def _add_state(self, raw: np.ndarray, index: np.ndarray, state: Any) -> None:
        """Undo relative actions in place: the rows of each relative head get the state added back."""
        needed = []
        for h in np.unique(index).tolist():
            transform = self.transforms[h]
            if isinstance(transform, MemberTransforms):
                raise ValueError(
                    f"ActionDecoder: head {self.head_keys[h]!r} was fit from members with different action "
                    f"transforms ({transform.describe()}); which one to undo is unknown, so its rows cannot "
                    "be decoded: refit with one transform per head (e.g. head_grouping 'dataset')"
                )
            if transform is not None and transform.state_columns(self.head_dims[h]):
                needed.append((h, transform))
        if not needed:
            return
        values = state_rows(state, index, needed, self.head_keys, self.head_dims)
        for h, transform in needed:
            rows, d = index == h, self.head_dims[h]
            raw[rows, :, :d] = transform.unapply(raw[rows, :, :d], values[rows])

    def _head_indices(self, heads: Any, n: int) -> np.ndarray:
        if isinstance(heads, torch.Tensor):
            heads = heads.detach().cpu().numpy()
        if isinstance(heads, (str, int, np.integer)):
            return np.full(n, self.head_index(heads), dtype=np.int64)
        index = np.asarray([self.head_index(h.item() if isinstance(h, np.generic) else h) for h in heads])
        if index.shape != (n,):
            raise ValueError(
                f"ActionDecoder: {len(index)} heads for {n} rows of ids; pass one head or one per row"
            )
        return index.astype(np.int64)


def _id_rows(ids: Any, lengths: Any) -> Any:
    """``ids`` as the tokenizer's decode reads them; padded rows cut at ``lengths``."""
    if isinstance(ids, torch.Tensor):
        ids = ids.detach().cpu().numpy()
    if lengths is None:
        return ids
    if isinstance(lengths, torch.Tensor):
        lengths = lengths.detach().cpu().numpy()
    matrix, cut = np.asarray(ids), np.asarray(lengths, dtype=np.int64)
    if (
        matrix.ndim != 2
        or cut.shape != (matrix.shape[0],)
        or (cut < 0).any()
        or (cut > matrix.shape[1]).any()
    ):
        raise ValueError(
            f"ActionDecoder: lengths {tuple(cut.shape)} must give 0..L tokens for each row of the (N, L) ids "
            f"{tuple(matrix.shape)}"
        )
    return [row[:k].tolist() for row, k in zip(matrix, cut, strict=True)]
