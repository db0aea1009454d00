"""Lightning integration: :class:`MixtureDataModule` and :class:`FastTokenizerCallback`.

The callback reads three attributes from ``trainer.datamodule`` (the :class:`TokenizerSource` protocol):
``norm_heads``, ``chunk_sampler`` and ``resolved_mixture``. :class:`MixtureDataModule` provides them; any
datamodule that builds them in its ``setup()`` works too. It is the fit's own protocol
(`fasttok_plugin.fit.FitSource`), so such a datamodule also feeds `fit_tokenizer` directly.
"""

from fasttok_plugin.errors import TokenizerMismatchError
from fasttok_plugin.lightning._tokenize import TokenizeBatch
from fasttok_plugin.lightning.callback import FastTokenizerCallback
from fasttok_plugin.lightning.datamodule import MixtureDataModule
from fasttok_plugin.lightning.protocol import TokenizerSource
from fasttok_plugin.lightning.stream import ChunkStream

__all__ = [
    "ChunkStream",
    "FastTokenizerCallback",
    "MixtureDataModule",
    "TokenizeBatch",
    "TokenizerMismatchError",
    "TokenizerSource",
]
