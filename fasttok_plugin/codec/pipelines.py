"""The two pipelines: how each builds its BPE tokenizer, and how to tell them apart in ``tokenizer.json``.

``"reference"`` is the reference's tokenizer exactly (ByteLevel pre-tokenizer and decoder), so its files
stay byte-identical to the reference's. ``"char"`` (the default) has no pre-tokenizer, so merges may span
the whole chunk and every value of the fitted range is one alphabet character, and a ``Fuse`` decoder.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from tokenizers import ByteLevelBPETokenizer, Tokenizer, decoders, models

from fasttok_plugin.errors import CodecError, TokenizerFormatError

__all__ = ["PIPELINES", "build_tokenizer", "check_pipeline", "detect_pipeline"]

PIPELINES: Final = ("char", "reference")


def check_pipeline(pipeline: str) -> None:
    """Raise :class:`CodecError` unless ``pipeline`` is one of :data:`PIPELINES`."""
    if pipeline not in PIPELINES:
        raise CodecError(f"pipeline={pipeline!r} is not one of {PIPELINES}")


def build_tokenizer(pipeline: str) -> Tokenizer:
    """An untrained BPE tokenizer for ``pipeline`` (``"char"`` or ``"reference"``)."""
    if pipeline == "reference":
        # Exactly what the reference trains: the inner Tokenizer of ByteLevelBPETokenizer() (ByteLevel
        # pre-tokenizer, decoder and post-processor with their default options).
        return ByteLevelBPETokenizer()._tokenizer
    tokenizer = Tokenizer(models.BPE())
    # No pre-tokenizer: a chunk is one "word", so merges may span it and every character is an alphabet
    # entry. Fuse concatenates tokens on decode (the default decoder would join them with spaces).
    tokenizer.decoder = decoders.Fuse()
    return tokenizer


def detect_pipeline(document: Mapping[str, Any], path: Path) -> str:
    """Which pipeline a ``tokenizer.json`` document was built by, from its pre-tokenizer and decoder.

    Raises:
        TokenizerFormatError: Not a BPE model, or a pre-tokenizer/decoder pair neither pipeline writes.
    """
    model = document.get("model") or {}
    if model.get("type") != "BPE":
        raise TokenizerFormatError(f"{path}: model type {model.get('type')!r}, expected a BPE tokenizer")
    pre = (document.get("pre_tokenizer") or {}).get("type")
    dec = (document.get("decoder") or {}).get("type")
    if pre == "ByteLevel" and dec == "ByteLevel":
        return "reference"
    if pre is None and dec == "Fuse":
        return "char"
    raise TokenizerFormatError(
        f"{path}: pre_tokenizer {pre!r} with decoder {dec!r} is neither the reference FAST layout "
        "(ByteLevel/ByteLevel) nor the char layout (none/Fuse)"
    )
