"""What the callback needs from ``trainer.datamodule``: the fit's own `FitSource` protocol.

`TokenizerSource` is `fasttok_plugin.fit.FitSource` under the name the Lightning docs use: one protocol,
so a datamodule that feeds the callback also feeds `fit_tokenizer` directly. This module also checks
that a trainer's datamodule implements it, with an error that says what to add.
"""

from __future__ import annotations

import pytorch_lightning as pl
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from fasttok_plugin.fit.source import FitSource

__all__ = ["TokenizerSource", "chunk_size_of", "source_of"]

#: The protocol the callback reads (``norm_heads``, ``chunk_sampler``, ``resolved_mixture``).
TokenizerSource = FitSource

_ATTRIBUTES = ("norm_heads", "chunk_sampler", "resolved_mixture")


def source_of(trainer: pl.Trainer) -> TokenizerSource:
    """``trainer.datamodule``, checked to implement `TokenizerSource` (built, not None).

    Raises:
        MisconfigurationException: No datamodule, or one lacking an attribute (names which).
    """
    datamodule = trainer.datamodule
    if datamodule is None:
        raise MisconfigurationException(
            "FastTokenizerCallback needs a datamodule: pass one to the Trainer, e.g. `trainer.fit(model, "
            "datamodule=MixtureDataModule('mixture.json'))`, or give your own datamodule the norm_heads, "
            "chunk_sampler and resolved_mixture attributes (see TokenizerSource)"
        )
    missing = [name for name in _ATTRIBUTES if not hasattr(datamodule, name)]
    if missing:
        raise MisconfigurationException(
            f"FastTokenizerCallback: the datamodule {type(datamodule).__name__} lacks {', '.join(missing)}; "
            "it must expose norm_heads, chunk_sampler and resolved_mixture after its setup() (see "
            "TokenizerSource), e.g. use fasttok_plugin.lightning.MixtureDataModule"
        )
    for name in ("norm_heads", "chunk_sampler"):
        if getattr(datamodule, name) is None:
            raise MisconfigurationException(
                f"FastTokenizerCallback: {type(datamodule).__name__}.{name} is None; build it in the "
                "datamodule's setup() (Lightning runs it before the callback's setup)"
            )
    return datamodule  # type: ignore[return-value]


def chunk_size_of(source: TokenizerSource) -> int:
    """The chunk size the fit samples with: the sampler's, else its settings', else the datamodule's.

    Raises:
        MisconfigurationException: None of them tells.
    """
    value = getattr(source.chunk_sampler, "chunk_size", None)
    if value is None:
        value = source.chunk_sampler.settings().get("chunk_size")
    if value is None:
        value = getattr(source, "chunk_size", None)
    if value is None:
        raise MisconfigurationException(
            f"FastTokenizerCallback: cannot tell the chunk size of {type(source).__name__}; expose "
            "`chunk_size` on the datamodule"
        )
    return int(value)
