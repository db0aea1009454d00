"""fasttok_plugin: FAST action tokenizers fit with the exact normalization your policy trains with.

The public names below are imported lazily, so `import fasttok_plugin` (and the CLIs) start fast and
never pull in torch or Lightning until a name that needs them is used.
"""

from __future__ import annotations

from fasttok_plugin._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # errors: one root
    "FasttokError": "fasttok_plugin.errors",
    "MissingExtraError": "fasttok_plugin.errors",
    # codec
    "FastTokenizer": "fasttok_plugin.codec",
    "EncodedBatch": "fasttok_plugin.codec",
    "DecodedBatch": "fasttok_plugin.codec",
    "CodecError": "fasttok_plugin.codec",
    "TokenizerFormatError": "fasttok_plugin.codec",
    # mixture, metadata, resolution
    "MixtureConfig": "fasttok_plugin.mixture",
    "MixtureError": "fasttok_plugin.mixture",
    "DatasetEntry": "fasttok_plugin.mixture",
    "load_mixture": "fasttok_plugin.mixture",
    "DatasetError": "fasttok_plugin.lerobot",
    "DatasetMeta": "fasttok_plugin.lerobot",
    "read_dataset_meta": "fasttok_plugin.lerobot",
    "ResolvedMixture": "fasttok_plugin.resolve",
    "resolve_mixture": "fasttok_plugin.resolve",
    # norm heads and normalization
    "NormHeads": "fasttok_plugin.heads",
    "NormHeadsError": "fasttok_plugin.heads",
    "HeadKey": "fasttok_plugin.heads",
    "build_norm_heads": "fasttok_plugin.heads",
    "Normalize": "fasttok_plugin.normalize",
    "Unnormalize": "fasttok_plugin.normalize",
    "NormMode": "fasttok_plugin.normalize",
    # sampling and fitting
    "ChunkSampler": "fasttok_plugin.sampling",
    "ChunkBatch": "fasttok_plugin.sampling",
    "FitSettings": "fasttok_plugin.fit",
    "FitReport": "fasttok_plugin.fit",
    "fit_tokenizer": "fasttok_plugin.fit",
    "tune_tokenizer": "fasttok_plugin.fit",
    "fit_fingerprint": "fasttok_plugin.fit",
    "ActionTransform": "fasttok_plugin.transforms",
    # preflight
    "run_preflight": "fasttok_plugin.preflight",
    "PreflightResult": "fasttok_plugin.preflight",
    "PreflightError": "fasttok_plugin.preflight",
    "Finding": "fasttok_plugin.preflight",
    "Severity": "fasttok_plugin.preflight",
    # Lightning
    "MixtureDataModule": "fasttok_plugin.lightning",
    "FastTokenizerCallback": "fasttok_plugin.lightning",
}

__all__ = ["__version__", *_EXPORTS]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
