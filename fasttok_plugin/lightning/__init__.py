"""Lightning integration: :class:`MixtureDataModule` and :class:`FastTokenizerCallback`.

The callback reads three attributes from ``trainer.datamodule`` (the :class:`TokenizerSource` protocol):
``norm_heads``, ``chunk_sampler`` and ``resolved_mixture``. :class:`MixtureDataModule` provides them; any
datamodule that builds them in its ``setup()`` works too.
"""

from fasttok_plugin.lightning.callback import FastTokenizerCallback, TokenizerMismatchError, TokenizerSource
from fasttok_plugin.lightning.datamodule import ChunkStream, MixtureDataModule

__all__ = [
    "ChunkStream",
    "FastTokenizerCallback",
    "MixtureDataModule",
    "TokenizerMismatchError",
    "TokenizerSource",
]
