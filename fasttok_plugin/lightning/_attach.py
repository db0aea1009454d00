"""Attaching the tokenizer (and the matching ``Normalize``) to the LightningModule, and handing both to a
datamodule that tokenizes in its DataLoader workers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fasttok_plugin.lightning._tokenize import build_normalize, hand_over, wants_tokens

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pytorch_lightning as pl

    from fasttok_plugin.codec import FastTokenizer
    from fasttok_plugin.lightning.protocol import TokenizerSource
    from fasttok_plugin.normalize import Normalize

__all__ = ["attach"]


def attach(
    pl_module: pl.LightningModule,
    tokenizer: FastTokenizer,
    normalize: Normalize | None,
    callback: Any,
    source: TokenizerSource,
) -> Normalize | None:
    """Set ``pl_module.<callback.attribute>`` (and ``<callback.normalize_attribute>``); return the Normalize.

    The Normalize is built once (``normalize`` is the cached one) from the source's heads and the callback's
    ``settings``, and moved to the module's device only when it is not attached yet. A datamodule built with
    ``tokenize=True`` receives the tokenizer and that very Normalize before Lightning builds any loader (it
    does after every setup hook), so its workers tokenize exactly as the fit measured.
    """
    setattr(pl_module, callback.attribute, tokenizer)
    tokens = wants_tokens(source)
    if normalize is None and (tokens or callback.normalize_attribute is not None):
        # The settings the tokenizer was fit with: the callback's, under the datamodule's convention.
        normalize = build_normalize(source.norm_heads, callback.fit_settings(source))
    if tokens:
        hand_over(source, tokenizer, normalize, callback.settings.max_action_tokens)
    if callback.normalize_attribute is not None and (
        getattr(pl_module, callback.normalize_attribute, None) is not normalize
    ):
        setattr(pl_module, callback.normalize_attribute, normalize.to(pl_module.device))
    return normalize
