"""The callback's preflight: the fit's own preflight on the datamodule's resolved mixture and heads."""

from __future__ import annotations

import logging

from pytorch_lightning.utilities.rank_zero import rank_zero_warn

from fasttok_plugin.fit.source import run_fit_preflight
from fasttok_plugin.lightning.protocol import TokenizerSource, chunk_size_of

__all__ = ["preflight_source"]

log = logging.getLogger("fasttok_plugin.lightning.callback")


def preflight_source(source: TokenizerSource, *, strict: bool) -> None:
    """Preflight ``source`` (warnings logged); raises `PreflightError` listing every error found."""
    resolved = source.resolved_mixture
    heads = source.norm_heads
    if resolved is None:
        rank_zero_warn(
            "FastTokenizerCallback: the datamodule exposes no resolved_mixture, so the preflight is "
            "limited to the norm heads' own checks; expose it to get the full preflight"
        )
        heads.raise_for_errors()
        return
    run_fit_preflight(
        resolved.config,
        resolved,
        heads,
        max_action_dim=heads.max_action_dim,
        chunk_size=chunk_size_of(source),
        strict=strict,
        on_warning=lambda finding: log.warning("preflight: %s", finding),
        # What the source's sampler applies, per entry (not the mixture's keys: an argument may replace them).
        transform=getattr(source.chunk_sampler, "transforms", None),
        convention=getattr(source, "convention", None),
    )
