"""The tokenizer folder on disk: the reference processor layout plus our ``fasttok.json`` sidecar.

Saved folders hold the transformers 4.x layout (``processor_config.json``, ``tokenizer.json``,
``tokenizer_config.json``, ``special_tokens_map.json``), the processor module ``processing_fasttok.py``
(a copy of :mod:`fasttok_plugin.hf_processing`, so ``AutoProcessor`` can load the folder) and
``fasttok.json``. Loading accepts that layout and the reference's (transformers 4.x flat, or 5.x with the
tokenizer under ``bpe_tokenizer/``) and reads JSON only: no Python file in the folder is imported or run.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from tokenizers import Tokenizer

from fasttok_plugin._validate import MAX_ACTION_DIM
from fasttok_plugin.atomic import write_text_atomic
from fasttok_plugin.codec._arrays import MAX_HORIZON, UINT32_MAX, check_int
from fasttok_plugin.codec.order import DEFAULT_ORDER, ORDERS
from fasttok_plugin.codec.pipelines import detect_pipeline
from fasttok_plugin.codec.rounding import DEFAULT_ROUNDING, ROUNDINGS
from fasttok_plugin.errors import CodecError, TokenizerFormatError
from fasttok_plugin.mixture._source import read_regular_file
from fasttok_plugin.tokenizer_dir import (
    FORMAT_KEY,
    FORMAT_MARKER,
    PROCESSOR_CONFIG_NAME,
    SIDECAR_NAME,
    readable_path,
    write_tokenizer_dir,
)

if TYPE_CHECKING:  # pragma: no cover - typing only
    from fasttok_plugin.codec.tokenizer import FastTokenizer

__all__ = [
    "FORMAT_VERSION",
    "HF_CLASS_NAME",
    "HF_MODULE_NAME",
    "PROCESSOR_CONFIG_NAME",
    "SIDECAR_NAME",
    "TOKENIZER_SUBFOLDER",
    "SavedTokenizer",
    "fill_directory",
    "read_directory",
    "write_directory",
]

# The codec logs under one name, "fasttok_plugin.codec": fitting filters its per-batch warnings by it.
logger = logging.getLogger(__package__)

FORMAT_VERSION: Final = 2
# Folders a default fit writes keep format 1 (and their bytes); format 2 adds a flatten ``order`` other than
# "time", which an older reader would silently decode time-major, and a ``rounding`` other than "nearest",
# which an older reader would encode differently; so it must refuse the folder instead.
_FORMAT_VERSION_DEFAULT: Final = 1
HF_MODULE_NAME: Final = "processing_fasttok"
HF_CLASS_NAME: Final = "UniversalActionProcessor"
# transformers 5.x saves the ProcessorMixin attribute ``bpe_tokenizer`` into this subfolder.
TOKENIZER_SUBFOLDER: Final = "bpe_tokenizer"
_HF_MODULE_SOURCE: Final = Path(__file__).parents[1] / "hf_processing.py"
# Keys both processor_config.json and fasttok.json record; they must agree.
_SHARED_KEYS: Final = ("scale", "vocab_size", "min_token", "time_horizon", "action_dim")
# Token values are DCT coefficients times ``scale``, rounded; the char pipeline maps each to one Unicode
# character, so a saved min_token/max_token beyond this is damage, not data.
_MAX_TOKEN_MAGNITUDE: Final = 2**31 - 1


def _read_json(path: Path) -> Any:
    try:
        return json.loads(_read_text(path))
    except FileNotFoundError:
        raise
    except (OSError, ValueError, RecursionError) as exc:
        # ValueError: not UTF-8, not JSON, or an integer past Python's digit limit.
        raise TokenizerFormatError(f"{path}: not readable JSON ({exc})") from None


def _read_text(path: Path) -> str:
    """A UTF-8 file of the folder; only regular files of a bounded size (never a FIFO or a device)."""
    return read_regular_file(path).decode("utf-8")


def _json_dumps(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


# ------------------------------------------------------------------------------------------------ save
def _directory_files(tok: FastTokenizer) -> dict[str, str]:
    """Every file of a saved directory, name -> text (transformers 4.x layout + our sidecar)."""
    processor_config = {
        "action_dim": tok.action_dim,
        "auto_map": {"AutoProcessor": f"{HF_MODULE_NAME}.{HF_CLASS_NAME}"},
        "min_token": tok.min_token,
        "processor_class": HF_CLASS_NAME,
        "scale": tok.scale,
        "time_horizon": tok.time_horizon,
        "vocab_size": tok.vocab_size,
    }
    tokenizer_config = {
        "added_tokens_decoder": {},
        "clean_up_tokenization_spaces": False,
        "model_max_length": 1000000000000000019884624838656,
        "processor_class": HF_CLASS_NAME,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    ordered = tok.order != DEFAULT_ORDER
    rounded = tok.rounding != DEFAULT_ROUNDING
    # The shipped processor reads these from here, beside scale and min_token.
    if ordered:
        processor_config["order"] = tok.order
    if rounded:
        processor_config["rounding"] = tok.rounding
    sidecar = {
        FORMAT_KEY: FORMAT_MARKER,  # the ownership marker: only folders carrying it are ever replaced
        "format_version": FORMAT_VERSION if ordered or rounded else _FORMAT_VERSION_DEFAULT,
        "pipeline": tok.pipeline,
        "scale": tok.scale,
        "vocab_size": tok.vocab_size,
        "min_token": tok.min_token,
        "max_token": tok.max_token,
        "time_horizon": tok.time_horizon,
        "action_dim": tok.action_dim,
        "settings": tok.settings,
        "metadata": tok.metadata,
    }
    if ordered:
        sidecar["order"] = tok.order
    if rounded:
        sidecar["rounding"] = tok.rounding
    if tok.layout != "padded":
        # Only a non-default layout is written, so padded folders stay byte-identical.
        sidecar["layout"] = tok.layout
        sidecar["action_dims"] = list(tok.action_dims or ())
    return {
        PROCESSOR_CONFIG_NAME: _json_dumps(processor_config),
        # Tokenizer.save's format (pretty JSON), which is also what transformers writes.
        "tokenizer.json": tok.tokenizer.to_str(pretty=True),
        "tokenizer_config.json": _json_dumps(tokenizer_config),
        "special_tokens_map.json": "{}\n",
        SIDECAR_NAME: _json_dumps(sidecar),
        f"{HF_MODULE_NAME}.py": _HF_MODULE_SOURCE.read_text(encoding="utf-8"),
    }


def fill_directory(tok: FastTokenizer, folder: Path) -> None:
    """Write ``tok``'s files into the existing (staging) ``folder``, each file atomically."""
    for name, text in _directory_files(tok).items():
        write_text_atomic(folder / name, text)


def write_directory(tok: FastTokenizer, directory: str | os.PathLike[str]) -> Path:
    """Write ``tok``'s folder crash-safely: built next to the target, then swapped into place.

    Raises:
        CodecError: The target exists and is not a tokenizer folder this package wrote (a file, a project,
            a model checkpoint, a reference folder), or is the current directory or a parent of it
            (nothing is overwritten).
    """
    target = write_tokenizer_dir(
        directory, lambda folder: fill_directory(tok, folder), error=CodecError, prefix="save: "
    )
    logger.info("saved %s tokenizer to %s", tok.pipeline, target)
    return target


# ------------------------------------------------------------------------------------------------ load
@dataclass(frozen=True, slots=True)
class SavedTokenizer:
    """Everything a tokenizer folder records, checked for consistency (the FastTokenizer's arguments)."""

    tokenizer: Tokenizer
    pipeline: str
    scale: float
    vocab_size: int
    min_token: int
    max_token: int | None
    time_horizon: int | None
    action_dim: int | None
    metadata: dict[str, Any]
    settings: dict[str, Any]
    order: str = DEFAULT_ORDER
    layout: str = "padded"
    action_dims: tuple[int, ...] | None = None
    rounding: str = DEFAULT_ROUNDING


def read_directory(directory: str | os.PathLike[str]) -> SavedTokenizer:
    """Read a folder written by :func:`write_directory` or by the reference (JSON files only).

    Raises:
        TokenizerFormatError: Missing/unreadable files or values that disagree.
    """
    root = readable_path(Path(directory))  # a swap a crash interrupted left the previous folder aside
    if not root.is_dir():
        raise TokenizerFormatError(f"{root}: not a directory (expected a FAST tokenizer directory)")
    config = _read_processor_config(root)
    sidecar = _read_sidecar(root)
    tokenizer, pipeline = _read_tokenizer(root, sidecar)
    numbers = _processor_numbers(config, root / PROCESSOR_CONFIG_NAME)
    for key in _SHARED_KEYS:
        if key in sidecar and sidecar[key] != config.get(key):
            raise TokenizerFormatError(
                f"{root}: {key} is {config.get(key)!r} in {PROCESSOR_CONFIG_NAME} but {sidecar[key]!r} "
                f"in {SIDECAR_NAME}; the directory was edited by hand or mixes two fits"
            )
    max_token = sidecar.get("max_token")
    if max_token is not None:
        max_token = check_int(
            max_token,
            f"{root / SIDECAR_NAME}: max_token",
            minimum=numbers["min_token"],
            maximum=_MAX_TOKEN_MAGNITUDE,
            error=TokenizerFormatError,
        )
    metadata = sidecar.get("metadata", {})
    settings = sidecar.get("settings", {})
    order = _read_choice(root, config, sidecar, pipeline, "order", ORDERS)
    rounding = _read_choice(root, config, sidecar, pipeline, "rounding", ROUNDINGS)
    layout, action_dims = _read_layout(sidecar, root / SIDECAR_NAME)
    return SavedTokenizer(
        tokenizer=tokenizer,
        pipeline=pipeline,
        scale=float(numbers["scale"]),
        vocab_size=numbers["vocab_size"],
        min_token=numbers["min_token"],
        max_token=max_token,
        time_horizon=numbers["time_horizon"],
        action_dim=numbers["action_dim"],
        metadata=metadata if isinstance(metadata, dict) else {},
        settings=settings if isinstance(settings, dict) else {},
        order=order,
        layout=layout,
        action_dims=action_dims,
        rounding=rounding,
    )


def _read_layout(sidecar: dict[str, Any], path: Path) -> tuple[str, tuple[int, ...] | None]:
    """The sidecar's ``layout`` (absent: ``padded``) and, for ``native``, the fitted chunk widths."""
    layout = sidecar.get("layout", "padded")
    if layout not in ("padded", "native"):
        raise TokenizerFormatError(f"{path}: layout={layout!r:.60} is neither 'padded' nor 'native'")
    if layout == "padded":
        return layout, None
    widths = sidecar.get("action_dims")
    if not isinstance(widths, list) or not widths:
        raise TokenizerFormatError(f"{path}: a native tokenizer must list its fitted action_dims")
    return layout, tuple(
        check_int(w, f"{path}: action_dims", minimum=1, maximum=MAX_ACTION_DIM, error=TokenizerFormatError)
        for w in widths
    )


def _read_choice(
    root: Path,
    config: dict[str, Any],
    sidecar: dict[str, Any],
    pipeline: str,
    key: str,
    choices: tuple[str, ...],
) -> str:
    """The ``order`` or ``rounding`` both files record (absent: the reference's, ``choices[0]``).

    Refuses unknown values, files that disagree, and a non-default value with a reference tokenizer.
    """
    default = choices[0]
    in_config = config.get(key, default)
    in_sidecar = sidecar.get(key, in_config if not sidecar else default)
    if in_config != in_sidecar:
        raise TokenizerFormatError(
            f"{root}: {key} is {in_config!r} in {PROCESSOR_CONFIG_NAME} but {in_sidecar!r} in "
            f"{SIDECAR_NAME}; the directory was edited by hand or mixes two fits"
        )
    if not isinstance(in_config, str) or in_config not in choices:
        raise TokenizerFormatError(
            f"{root / PROCESSOR_CONFIG_NAME}: {key}={in_config!r:.60} is not one of {choices}; the folder "
            "was written by a newer fasttok-plugin (upgrade it) or edited by hand"
        )
    if pipeline == "reference" and in_config != default:
        raise TokenizerFormatError(
            f"{root}: {key}={in_config!r} with a reference (byte-level) tokenizer; only the char pipeline "
            f"writes other {key}s than {default!r}"
        )
    return in_config


def _read_processor_config(root: Path) -> dict[str, Any]:
    config_path = root / PROCESSOR_CONFIG_NAME
    try:
        config = _read_json(config_path)
    except FileNotFoundError:
        raise TokenizerFormatError(
            f"{root}: no {PROCESSOR_CONFIG_NAME}; expected a FAST processor directory "
            "(processor_config.json + tokenizer.json)"
        ) from None
    if not isinstance(config, dict):
        raise TokenizerFormatError(f"{config_path}: expected a JSON object")
    return config


def _read_sidecar(root: Path) -> dict[str, Any]:
    """``fasttok.json`` (empty for a reference directory, which has none), refusing newer formats."""
    path = root / SIDECAR_NAME
    if not path.is_file():
        return {}
    sidecar = _read_json(path)
    if not isinstance(sidecar, dict):
        raise TokenizerFormatError(f"{path}: expected a JSON object")
    version = sidecar.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise TokenizerFormatError(
            f"{path}: format_version={version!r} is not supported by this "
            f"fasttok_plugin (supports <= {FORMAT_VERSION}); upgrade fasttok-plugin"
        )
    return sidecar


def _read_tokenizer(root: Path, sidecar: dict[str, Any]) -> tuple[Tokenizer, str]:
    """The tokenizer (flat or under ``bpe_tokenizer/``) and its pipeline, which the sidecar must agree on."""
    tok_path = root / "tokenizer.json"
    if not tok_path.is_file():
        tok_path = root / TOKENIZER_SUBFOLDER / "tokenizer.json"
    if not tok_path.is_file():
        raise TokenizerFormatError(
            f"{root}: no tokenizer.json (looked for tokenizer.json and {TOKENIZER_SUBFOLDER}/tokenizer.json)"
        )
    try:
        text = _read_text(tok_path)
        tokenizer = Tokenizer.from_str(text)
    except Exception as exc:
        raise TokenizerFormatError(f"{tok_path}: not a readable tokenizers file ({exc})") from exc
    detected = detect_pipeline(json.loads(text), tok_path)
    pipeline = sidecar.get("pipeline", detected)
    if pipeline != detected:
        raise TokenizerFormatError(
            f"{root / SIDECAR_NAME}: pipeline={pipeline!r} but {tok_path.name} is a {detected!r} tokenizer"
        )
    return tokenizer, pipeline


def _processor_numbers(config: dict[str, Any], config_path: Path) -> dict[str, Any]:
    """``scale``, ``vocab_size``, ``min_token`` (required), ``time_horizon``, ``action_dim`` (may be null)."""

    def number(key: str, kind: type | tuple[type, ...], *, optional: bool = False) -> Any:
        value = config.get(key)
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, kind):
            raise TokenizerFormatError(
                f"{config_path}: {key}={value!r} is missing or has the wrong type (expected {kind})"
            )
        return value

    scale = number("scale", (int, float))
    try:
        finite = math.isfinite(scale)
    except OverflowError:  # an integer too large for a float
        finite = False
    if not (finite and scale > 0):
        raise TokenizerFormatError(f"{config_path}: scale={scale!r:.60} must be a positive finite number")

    def size(key: str, minimum: int, maximum: int, *, optional: bool = False) -> int | None:
        value = number(key, int, optional=optional)
        if value is None:
            return None
        return check_int(
            value, f"{config_path}: {key}", minimum=minimum, maximum=maximum, error=TokenizerFormatError
        )

    return {
        "scale": scale,
        "vocab_size": size("vocab_size", 1, UINT32_MAX),
        "min_token": size("min_token", -_MAX_TOKEN_MAGNITUDE, _MAX_TOKEN_MAGNITUDE),
        "time_horizon": size("time_horizon", 1, MAX_HORIZON, optional=True),
        "action_dim": size("action_dim", 1, MAX_ACTION_DIM, optional=True),
    }
