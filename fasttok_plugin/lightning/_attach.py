"""Attaching the tokenizer (and the matching ``Normalize``) to the LightningModule."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pytorch_lightning as pl

    from fasttok_plugin.codec import FastTokenizer
    from fasttok_plugin.heads import NormHeads
    from fasttok_plugin.normalize import Normalize

__all__ = ["attach"]


def attach(
    pl_module: pl.LightningModule,
    tokenizer: FastTokenizer,
    normalize: Normalize | None,
    callback: Any,
    heads: NormHeads,
) -> Normalize | None:
    """Set ``pl_module.<callback.attribute>`` (and ``<callback.normalize_attribute>``); return the Normalize.

    The Normalize is built once (``normalize`` is the cached one) from ``heads`` and the callback's
    ``settings``, and moved to the module's device only when it is not attached yet.
    """
    setattr(pl_module, callback.attribute, tokenizer)
    if callback.normalize_attribute is None:
        return normalize
    if normalize is None:
        from fasttok_plugin.normalize import Normalize

        s = callback.settings
        normalize = Normalize(heads, mode=s.normalization, zero_range=s.zero_range, eps=s.eps)
    if getattr(pl_module, callback.normalize_attribute, None) is not normalize:
        setattr(pl_module, callback.normalize_attribute, normalize.to(pl_module.device))
    return normalize
