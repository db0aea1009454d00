"""The frameworks' normalization arithmetic, op for op (used by `Normalize` / `Unnormalize`).

Each function takes the input and the gathered per-row stats already in the compute dtype and performs the
very operations of the cited source in the same order, so results are bit-identical to the framework's.
The package's own ``fasttok`` formula stays in ``normalize.py`` (unchanged).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["framework_forward", "framework_inverse"]


def framework_forward(
    formula: str,
    mode: str,
    x: Tensor,
    lo: Tensor,
    hi: Tensor,
    mean: Tensor,
    std: Tensor,
    *,
    eps: float,
    center: bool,
) -> Tensor:
    """Normalize ``x`` with ``formula``'s arithmetic for ``mode`` (not identity)."""
    if formula == "opentau":
        # src/opentau/policies/normalize.py, Normalize.forward.
        if mode == "mean_std":
            std = torch.where(std.abs() < eps, torch.ones_like(std), std)
            deviation = x - mean
            return deviation / (std + eps)
        raw_range = hi - lo
        denom_is_zero = raw_range.abs() < eps
        denom = torch.where(denom_is_zero, torch.ones_like(raw_range), raw_range)
        shifted = x - lo
        if center:
            shifted = shifted + 0.5 * (denom - raw_range)
        y = shifted / (denom + eps)
        return y * 2 - 1
    if formula == "lerobot":
        # src/lerobot/processor/normalize_processor.py, _NormalizationMixin._apply_transform.
        if mode == "mean_std":
            denom = std + eps
            return (x - mean) / denom
        denom = hi - lo
        denom = torch.where(denom == 0, torch.tensor(eps, device=x.device, dtype=x.dtype), denom)
        if mode == "min_max":
            return 2 * (x - lo) / denom - 1
        return 2.0 * (x - lo) / denom - 1.0  # QUANTILES / QUANTILE10
    if formula == "openpi":
        # src/openpi/transforms.py, Normalize._normalize / _normalize_quantile (the literal 1e-6 is eps).
        if mode == "mean_std":
            return (x - mean) / (std + eps)
        return (x - lo) / (hi - lo + eps) * 2.0 - 1.0
    raise ValueError(f"unknown formula {formula!r}")


def framework_inverse(
    formula: str,
    mode: str,
    y: Tensor,
    lo: Tensor,
    hi: Tensor,
    mean: Tensor,
    std: Tensor,
    *,
    eps: float,
    center: bool,
    y_in: Tensor | None = None,
) -> Tensor:
    """Unnormalize ``y`` with ``formula``'s own inverse for ``mode`` (not identity).

    ``y_in`` is the input in its own dtype (``y`` is it cast to the compute dtype): openpi's numpy computes
    ``(x + 1.0) / 2.0`` in the input's dtype, since a Python scalar never upcasts an array.
    """
    if formula == "opentau":
        # src/opentau/policies/normalize.py, Unnormalize.forward.
        if mode == "mean_std":
            std = torch.where(std.abs() < eps, torch.ones_like(std), std)
            return y * (std + eps) + mean
        raw_range = hi - lo
        denom = torch.where(raw_range.abs() < eps, torch.ones_like(raw_range), raw_range)
        x = (y + 1) / 2
        x = x * (denom + eps) + lo
        if center:
            x = x - 0.5 * (denom - raw_range)
        return x
    if formula == "lerobot":
        # src/lerobot/processor/normalize_processor.py (inverse=True); MEAN_STD's inverse omits eps there.
        if mode == "mean_std":
            return y * std + mean
        denom = hi - lo
        denom = torch.where(denom == 0, torch.tensor(eps, device=y.device, dtype=y.dtype), denom)
        if mode == "min_max":
            return (y + 1) / 2 * denom + lo
        return (y + 1.0) * denom / 2.0 + lo
    if formula == "openpi":
        # src/openpi/transforms.py, Unnormalize._unnormalize / _unnormalize_quantile.
        if mode == "mean_std":
            return y * (std + eps) + mean
        half = ((y_in if y_in is not None else y) + 1.0) / 2.0
        return half.to(lo.dtype) * (hi - lo + eps) + lo
    raise ValueError(f"unknown formula {formula!r}")
