"""The datamodule's arguments, checked in ``__init__`` so a bad value fails before any work."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fasttok_plugin.heads.keys import check_head_grouping
from fasttok_plugin.lightning._arguments import check_transform_argument

__all__ = ["check_datamodule_arguments"]

# Smallest value of each integer argument; these may also be None.
_MINIMUM = {
    "chunk_size": 1,
    "max_action_dim": 1,
    "batch_size": 1,
    "batches_per_epoch": 1,
    "eval_batches": 0,
    "round_chunks": 1,
    "num_workers": 0,
    "sampler_workers": 0,
    "seed": 0,
    "max_action_tokens": 1,
}
_OPTIONAL = ("chunk_size", "max_action_dim", "max_action_tokens")


def check_datamodule_arguments(
    *,
    ints: Mapping[str, Any],
    on_dataset_error: Any,
    head_grouping: Any,
    stats_source: Any,
    transform: Any,
    tokenize: Any,
    multiprocessing_context: Any,
    layout: Any,
    convention: Any,
) -> Any:
    """Validate `MixtureDataModule`'s arguments; return its parsed ``convention`` (or None).

    Raises:
        ValueError: Naming the argument, the value and what it must be.
    """
    for name, value in ints.items():
        if value is None and name in _OPTIONAL:
            continue
        minimum = _MINIMUM[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"MixtureDataModule: {name} must be an integer >= {minimum}, got {value!r}")
    if on_dataset_error not in ("raise", "skip"):
        raise ValueError(
            f"MixtureDataModule: on_dataset_error must be 'raise' or 'skip', got {on_dataset_error!r}"
        )
    if head_grouping is not None:
        check_head_grouping(head_grouping, "MixtureDataModule: head_grouping")
    if stats_source not in (None, "stored", "data"):
        raise ValueError(f"MixtureDataModule: stats_source must be 'stored' or 'data', got {stats_source!r}")
    check_transform_argument(transform, stats_source)
    if not isinstance(tokenize, bool):
        raise ValueError(f"MixtureDataModule: tokenize must be True or False, got {tokenize!r}")
    if multiprocessing_context not in (None, "fork", "forkserver", "spawn"):
        raise ValueError(
            "MixtureDataModule: multiprocessing_context must be 'fork', 'forkserver', 'spawn' or None, "
            f"got {multiprocessing_context!r}"
        )
    if layout not in (None, "padded", "native"):
        raise ValueError(f"MixtureDataModule: layout must be 'padded' or 'native', got {layout!r}")
    from fasttok_plugin.conventions import convention_from_dict

    try:
        return convention_from_dict(convention) if convention is not None else None
    except ValueError as exc:
        raise ValueError(f"MixtureDataModule: {exc}") from None
