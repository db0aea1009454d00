"""Per-head action normalization as torch modules (DESIGN §6).

`Normalize` and `Unnormalize` hold the stacked ``(H, D)`` statistics of a `NormHeads` as float32
buffers (they move with ``.to()``) and, for every row of a batch, use the stats of that row's head.
The buffers are *not persistent* (DESIGN §14): the stats are derived from the heads, not trained, so
they stay out of ``state_dict``; a resumed run keeps the stats of the heads it was built from, a
checkpoint loads into a model that has no `Normalize`, and the stats of older checkpoints that did
save them are ignored on load. The tokenizer fit normalizes its corpus with this very module, so
fit-time and train-time values are identical bit for bit.

Conventions:

* ``MIN_MAX`` (default) maps ``[min, max]`` to ``[-1, 1]``: ``y = (x - min) / (max - min) * 2 - 1``.
  A zero-range dim (``|max - min| < eps``, e.g. a zero-padded dim) gets denominator 1 and, with
  ``zero_range="center"`` (default), offset 0 instead of -1, so ``x == min`` maps to ``0.0``;
  ``zero_range="legacy"`` keeps offset -1 (``x == min`` maps to ``-1.0``) like older pipelines.
  Non-degenerate dims are identical under both conventions.
* ``MEAN_STD``: ``y = (x - mean) / std``; a ``std < eps`` (a constant or padded dim) is snapped to 1,
  so such a dim is only centered, never blown up.
* ``QUANTILE`` / ``QUANTILE10``: MIN_MAX with ``[q01, q99]`` / ``[q10, q90]`` in place of ``[min, max]``:
  ``y = (x - lo) / (hi - lo) * 2 - 1``, not clipped (values past the quantiles map beyond [-1, 1]); a
  zero-range dim is handled exactly as under MIN_MAX, so padded dims map to 0. The formula is OpenTau's
  QUANTILE mode (src/opentau/policies/normalize.py) and openpi's quantile normalization
  (src/openpi/transforms.py), which adds 1e-6 to the denominator instead; we keep MIN_MAX's zero-range rule
  so the two modes share one convention. Needs heads whose stats come from the data
  (`NormHeads.with_data_stats`): stored quantiles cannot be pooled exactly over datasets.
* ``IDENTITY``: returns the input unchanged (inputs are still validated).

Precision: the buffers never drop below float32 (``module.to(torch.bfloat16)``, as Lightning's
``precision="bf16-true"`` does, moves them but keeps them float32), and half-precision inputs are computed
and returned in float32, so the values (and token ids) under bf16 equal float32's for the same input.

The above is the package's own ``formula="fasttok"`` (the default, unchanged). ``formula="opentau"``,
``"lerobot"`` or ``"openpi"`` performs that framework's arithmetic op for op (see
`fasttok_plugin.conventions` and ``_norm_formulas.py`` for the cited sources); ``openpi`` computes in
float64 like its numpy stats, and under ``lerobot`` / ``openpi`` a dim beyond the head's native width maps
to 0 (those frameworks pad after normalizing). `Normalize.for_convention` builds a module from a
`Convention`; `Normalize.from_tokenizer_dir` rebuilds the training module from a tokenizer folder's
``norm_stats.json`` (JSON only).

`Unnormalize` applies the exact algebraic inverse, so ``Unnormalize(Normalize(x)) == x`` up to float
rounding on every dim whose range is not degenerate, and exactly ``x == min`` on degenerate ones.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from fasttok_plugin._norm_formulas import framework_forward, framework_inverse
from fasttok_plugin.conventions import FORMULAS, Convention, resolve_convention

if TYPE_CHECKING:  # pragma: no cover
    import os

    from fasttok_plugin.heads import NormHeads

__all__ = ["QUANTILE_BOUNDS", "NormMode", "Normalize", "Unnormalize"]

ZeroRange = Literal["center", "legacy"]
_STAT_NAMES = ("min", "max", "mean", "std")
_QUANTILE_BUFFERS = ("q_lo", "q_hi")
_LOW_PRECISION = (torch.float16, torch.bfloat16)
# Frameworks that normalize at the native width and zero-pad afterwards.
_PAD_AFTER = ("lerobot", "openpi")
_M = TypeVar("_M", bound="_HeadStats")


class NormMode(str, Enum):
    """How actions are mapped before tokenization."""

    MIN_MAX = "min_max"
    MEAN_STD = "mean_std"
    QUANTILE = "quantile"
    QUANTILE10 = "quantile10"
    IDENTITY = "identity"


#: The quantile fields ``(lo, hi)`` of each quantile mode.
QUANTILE_BOUNDS = {NormMode.QUANTILE: ("q01", "q99"), NormMode.QUANTILE10: ("q10", "q90")}


def _parse_mode(mode: NormMode | str) -> NormMode:
    if isinstance(mode, NormMode):
        return mode
    try:
        return NormMode(str(mode).lower())
    except ValueError:
        choices = ", ".join(repr(m.value) for m in NormMode)
        raise ValueError(f"unknown normalization mode {mode!r}; expected one of {choices}") from None


class _HeadStats(nn.Module):
    """Shared buffers, validation and per-row gathering of `Normalize` / `Unnormalize`."""

    min: Tensor
    max: Tensor
    mean: Tensor
    std: Tensor
    q_lo: Tensor  # quantile modes only
    q_hi: Tensor
    pad: Tensor  # lerobot / openpi formulas only

    def __init__(
        self,
        heads: NormHeads,
        *,
        mode: NormMode | str = NormMode.MIN_MAX,
        zero_range: ZeroRange = "center",
        eps: float = 1e-6,
        formula: str = "fasttok",
        dtype: str | None = None,
    ) -> None:
        super().__init__()
        self.mode = _parse_mode(mode)
        if formula not in FORMULAS:
            raise ValueError(f"formula must be one of {', '.join(map(repr, FORMULAS))}, got {formula!r}")
        if self.mode.value not in FORMULAS[formula]:
            raise ValueError(f"the {formula} formula has no normalization {self.mode.value!r}")
        self.formula = formula
        if zero_range not in ("center", "legacy"):
            raise ValueError(f"zero_range must be 'center' or 'legacy', got {zero_range!r}")
        if not (float(eps) > 0.0):
            raise ValueError(f"eps must be > 0, got {eps!r}")
        self.zero_range: ZeroRange = zero_range
        self.eps = float(eps)
        self.keys: tuple[str, ...] = tuple(heads.keys)
        self.fingerprint: str = heads.fingerprint
        buffers = dict(zip(_STAT_NAMES, _STAT_NAMES, strict=True))
        if self.mode in QUANTILE_BOUNDS:
            lo, hi = QUANTILE_BOUNDS[self.mode]
            if getattr(heads, lo, None) is None or getattr(heads, hi, None) is None:
                raise ValueError(
                    f"normalization {self.mode.value!r} needs quantiles computed from the data: build the "
                    "heads with stats_source='data' (NormHeads.with_data_stats); stored quantiles cannot "
                    "be pooled exactly over datasets"
                )
            buffers.update(q_lo=lo, q_hi=hi)
        shape = (len(heads.keys), int(heads.max_action_dim))
        # openpi computes with numpy float64 stats; every other formula with float32 buffers.
        if dtype not in (None, "float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64' (or None), got {dtype!r}")
        dtype = dtype or ("float64" if formula == "openpi" else "float32")
        self.dtype_name = dtype
        buffer_dtype = torch.float64 if dtype == "float64" else torch.float32
        for buffer, name in buffers.items():
            # np.array copies: NormHeads arrays are read-only and torch wants writable memory.
            values = torch.from_numpy(np.array(getattr(heads, name), dtype=np.float64))
            if tuple(values.shape) != shape:
                raise ValueError(f"NormHeads.{name} has shape {tuple(values.shape)}, expected {shape}")
            if not bool(torch.isfinite(values).all()):
                raise ValueError(f"NormHeads.{name} holds non-finite values; rebuild with build_norm_heads")
            # Not persistent: derived state. Saving it let a resume overwrite the current heads' stats
            # with a checkpoint's (and fail with a size mismatch when the number of heads changed).
            self.register_buffer(buffer, values.to(buffer_dtype).contiguous(), persistent=False)
        if formula in _PAD_AFTER:  # dims past each head's native width (the frameworks pad afterwards)
            native = torch.tensor([int(d) for d in heads.native_dims], dtype=torch.long).reshape(-1, 1)
            pad = torch.arange(shape[1]).reshape(1, -1) >= native
            self.register_buffer("pad", pad.expand(shape).contiguous(), persistent=False)

    @classmethod
    def for_convention(cls: type[_M], heads: NormHeads, convention: Convention | str) -> _M:
        """The module a `Convention` (or its name) prescribes for ``heads``."""
        c = resolve_convention(convention)
        return cls(
            heads,
            mode=c.normalization,
            zero_range=c.zero_range,  # type: ignore[arg-type]
            eps=c.eps,
            formula=c.formula,
            dtype=c.dtype,
        )

    @classmethod
    def from_tokenizer_dir(cls: type[_M], path: str | os.PathLike[str]) -> _M:
        """Rebuild the training module from a tokenizer folder's ``norm_stats.json`` (JSON only, no code).

        Raises:
            TokenizerFormatError: The folder has no readable ``norm_stats.json``.
        """
        from fasttok_plugin.norm_stats import read_norm_stats

        return cls.from_norm_stats(read_norm_stats(Path(path)))

    @classmethod
    def from_norm_stats(cls: type[_M], stored: Any) -> _M:
        """The module of a parsed ``norm_stats.json`` (`fasttok_plugin.norm_stats.StoredNormStats`)."""
        return cls(
            stored.heads,  # type: ignore[arg-type]
            mode=stored.normalization,
            zero_range=stored.zero_range,  # type: ignore[arg-type]
            eps=stored.eps,
            formula=stored.formula,
            dtype=stored.convention.dtype if stored.convention is not None else None,
        )

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        # Checkpoints written before the buffers became non-persistent still hold them: drop those
        # stale stats (the heads this module was built from are the truth) instead of failing strict loads.
        for name in (*_STAT_NAMES, *_QUANTILE_BUFFERS, "pad"):
            state_dict.pop(prefix + name, None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> _HeadStats:
        # Lightning's "bf16-true"/"16-true" call module.to(bfloat16): rounding the stats to 8 mantissa
        # bits would change the token ids of the chunks the tokenizer was fit on. Device moves apply;
        # casts below float32 do not (the stats are re-taken from the unrounded buffer).
        before = {name: buffer for name, buffer in self._buffers.items() if buffer is not None}
        result = super()._apply(fn, recurse)
        for name, old in before.items():
            new = self._buffers[name]
            if new is not None and new.dtype in _LOW_PRECISION and old.dtype not in _LOW_PRECISION:
                self._buffers[name] = old.to(device=new.device)
        return result

    @property
    def num_heads(self) -> int:
        """Number of heads ``H``."""
        return int(self.min.shape[0])

    @property
    def action_dim(self) -> int:
        """Padded action width ``D``."""
        return int(self.min.shape[1])

    def extra_repr(self) -> str:
        return (
            f"heads={self.num_heads}, action_dim={self.action_dim}, mode={self.mode.value}, "
            f"zero_range={self.zero_range}, eps={self.eps}"
            + (f", formula={self.formula}" if self.formula != "fasttok" else "")
        )

    def _check(self, actions: Tensor, head_index: Tensor) -> None:
        heads, dim = self.num_heads, self.action_dim
        if not isinstance(actions, Tensor) or not isinstance(head_index, Tensor):
            raise ValueError(
                f"expected tensors: actions (B, T, {dim}) or (B, {dim}) and head_index (B,), got "
                f"{type(actions).__name__} and {type(head_index).__name__}"
            )
        if actions.dim() not in (2, 3) or actions.shape[-1] != dim:
            raise ValueError(
                f"actions must have shape (B, T, {dim}) or (B, {dim}), got {tuple(actions.shape)}"
            )
        if not actions.is_floating_point():
            raise ValueError(f"actions must be a floating point tensor, got dtype {actions.dtype}")
        batch = actions.shape[0]
        if head_index.dim() != 1 or head_index.shape[0] != batch:
            raise ValueError(
                f"head_index must have shape ({batch},) to match actions {tuple(actions.shape)}, "
                f"got {tuple(head_index.shape)}"
            )
        if head_index.is_floating_point() or head_index.is_complex() or head_index.dtype == torch.bool:
            raise ValueError(f"head_index must be an integer tensor, got dtype {head_index.dtype}")
        out_of_range = (head_index < 0) | (head_index >= heads)
        if batch and bool(out_of_range.any()):
            bad = head_index[out_of_range]
            raise ValueError(
                f"head_index values must be in [0, {heads}) (there are {heads} heads), "
                f"got {sorted({int(v) for v in bad.tolist()})}"
            )

    def _gather(self, actions: Tensor, head_index: Tensor) -> tuple[Tensor, ...]:
        """Return the per-row ``lo, hi, mean, std`` broadcastable to ``actions``, in the compute dtype.

        ``lo, hi`` are ``min, max``, or the mode's quantiles under a quantile mode.
        """
        # Half precision inputs are computed (and returned) in float32, never rounded back to half; float64
        # stays float64, and openpi's float64 stats compute in float64.
        dtype = torch.promote_types(torch.promote_types(actions.dtype, torch.float32), self.min.dtype)
        index = head_index.to(device=self.min.device, dtype=torch.long)
        rows = []
        bounds = (self.q_lo, self.q_hi) if self.mode in QUANTILE_BOUNDS else (self.min, self.max)
        for buffer in (*bounds, self.mean, self.std):
            row = buffer.index_select(0, index).to(device=actions.device, dtype=dtype)
            rows.append(row.unsqueeze(1) if actions.dim() == 3 else row)
        return tuple(rows)

    def _min_max_terms(self, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(denominator, offset)`` with ``y = (x - lo) / denominator * 2 + offset``."""
        span = hi - lo
        degenerate = span.abs() < self.eps
        denominator = torch.where(degenerate, torch.ones_like(span), span)
        offset = torch.full_like(span, -1.0)
        if self.zero_range == "center":
            offset = torch.where(degenerate, torch.zeros_like(span), offset)
        return denominator, offset

    def _std_terms(self, std: Tensor) -> Tensor:
        return torch.where(std < self.eps, torch.ones_like(std), std)

    def _framework(
        self, x: Tensor, rows: tuple[Tensor, ...], head_index: Tensor, *, raw: Tensor | None = None
    ) -> Tensor:
        """``x`` through a framework's formula (its inverse when ``raw``, the input in its own dtype, is
        given); pad-after frameworks give 0 past the native width."""
        center = self.zero_range == "center"
        if raw is None:
            y = framework_forward(self.formula, self.mode.value, x, *rows, eps=self.eps, center=center)
        else:
            own = raw.to(torch.promote_types(raw.dtype, torch.float32))  # half precision: float32
            y = framework_inverse(
                self.formula, self.mode.value, x, *rows, eps=self.eps, center=center, y_in=own
            )
        if self.formula in _PAD_AFTER:
            pad = self.pad.index_select(0, head_index.to(device=self.pad.device, dtype=torch.long))
            pad = pad.to(device=x.device)
            y = torch.where(pad.unsqueeze(1) if x.dim() == 3 else pad, torch.zeros_like(y), y)
        return y


class Normalize(_HeadStats):
    """Normalize raw zero-padded actions with the stats of each row's head.

    Args:
        heads: The mixture's `NormHeads` (from `build_norm_heads`).
        mode: ``"min_max"`` (default), ``"mean_std"``, ``"quantile"``, ``"quantile10"`` or ``"identity"``.
        zero_range: Value of a zero-range dim under MIN_MAX: ``"center"`` -> 0.0, ``"legacy"`` -> -1.0.
        eps: Threshold below which a range (MIN_MAX) or a std (MEAN_STD) counts as zero (the
            framework's epsilon under another ``formula``).
        formula: ``"fasttok"`` (default), ``"opentau"``, ``"lerobot"`` or ``"openpi"``: whose arithmetic.
        dtype: Dtype of the stats buffers and the arithmetic (None: ``float64`` for openpi, else ``float32``).

    Raises:
        ValueError: On an unknown mode/convention, or (in ``forward``) on a wrong shape, dtype or
            out-of-range ``head_index``; the message names the expected shape.
    """

    def forward(self, actions: Tensor, head_index: Tensor) -> Tensor:
        """Normalize ``actions`` (B, T, D) or (B, D); ``head_index`` (B,) picks each row's head."""
        self._check(actions, head_index)
        if self.mode is NormMode.IDENTITY:
            return actions
        lo, hi, mean, std = self._gather(actions, head_index)
        x = actions.to(lo.dtype)
        if self.formula != "fasttok":
            return self._framework(x, (lo, hi, mean, std), head_index).to(_out_dtype(actions))
        if self.mode is not NormMode.MEAN_STD:  # min_max and the quantile modes
            denominator, offset = self._min_max_terms(lo, hi)
            y = (x - lo) / denominator * 2.0 + offset
        else:
            y = (x - mean) / self._std_terms(std)
        return y  # float32 (or float64): never rounded back to half


def _out_dtype(actions: Tensor) -> torch.dtype:
    # The input's dtype, but never below float32 (bf16 runs get float32's values and token ids).
    return torch.promote_types(actions.dtype, torch.float32)


class Unnormalize(_HeadStats):
    """Invert `Normalize` (same constructor arguments): normalized actions back to raw units.

    Args:
        heads: The mixture's `NormHeads` (from `build_norm_heads`).
        mode: ``"min_max"`` (default), ``"mean_std"``, ``"quantile"``, ``"quantile10"`` or ``"identity"``.
        zero_range: Must match the `Normalize` that produced the values.
        eps: Must match the `Normalize` that produced the values.
        formula: Must match the `Normalize` that produced the values (its framework's own inverse).

    Raises:
        ValueError: As for `Normalize`.
    """

    def forward(self, actions: Tensor, head_index: Tensor) -> Tensor:
        """Unnormalize ``actions`` (B, T, D) or (B, D); ``head_index`` (B,) picks each row's head."""
        self._check(actions, head_index)
        if self.mode is NormMode.IDENTITY:
            return actions
        lo, hi, mean, std = self._gather(actions, head_index)
        y = actions.to(lo.dtype)
        if self.formula != "fasttok":
            return self._framework(y, (lo, hi, mean, std), head_index, raw=actions).to(_out_dtype(actions))
        if self.mode is not NormMode.MEAN_STD:
            denominator, offset = self._min_max_terms(lo, hi)
            x = (y - offset) / 2.0 * denominator + lo
        else:
            x = y * self._std_terms(std) + mean
        return x  # float32 (or float64): never rounded back to half
