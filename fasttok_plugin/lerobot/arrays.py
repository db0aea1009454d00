"""Arrow action columns (list, large_list, fixed_size_list of numbers) to numpy, without Python objects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from fasttok_plugin.errors import DatasetError

__all__ = ["action_array"]


def _list_values_to_numpy(values: pa.Array) -> np.ndarray:
    if not pa.types.is_floating(values.type) and not pa.types.is_integer(values.type):
        raise TypeError(f"list values are {values.type}, not numbers")
    # Null elements become NaN: they are then counted as non-finite downstream, never silently zeroed.
    return values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)


def _chunk_to_numpy(chunk: pa.Array, dim: int) -> np.ndarray:
    n = len(chunk)
    if chunk.null_count:
        raise ValueError(f"{chunk.null_count} rows are null")
    if pa.types.is_fixed_size_list(chunk.type):
        size = chunk.type.list_size
        if size != dim:
            raise ValueError(f"rows have {size} values, expected {dim}")
        flat = _list_values_to_numpy(chunk.flatten())
        return flat.reshape(n, dim)
    if pa.types.is_list(chunk.type) or pa.types.is_large_list(chunk.type):
        offsets = chunk.offsets.to_numpy()
        lengths = np.diff(offsets)
        bad = np.flatnonzero(lengths != dim)
        if bad.size:
            raise ValueError(
                f"{bad.size} of {n} rows do not have {dim} values "
                f"(row {int(bad[0])} has {int(lengths[bad[0]])})"
            )
        flat = _list_values_to_numpy(chunk.flatten())
        return flat.reshape(n, dim)
    raise TypeError(f"column type {chunk.type} is not a list of numbers")


def action_array(
    column: pa.Array | pa.ChunkedArray, dim: int, *, path: Path | None = None, dataset: str | None = None
) -> np.ndarray:
    """Convert a ``list``/``large_list``/``fixed_size_list`` column to an ``(n, dim)`` float32 array.

    Works on the Arrow buffers (``flatten`` + offset checks), never through Python objects.

    Args:
        column: The action column.
        dim: Expected values per row.
        path: File the column came from (for the error message).
        dataset: Dataset name (for the error message).

    Returns:
        ``(n, dim)`` float32 array.

    Raises:
        DatasetError: ``data_invalid`` when rows are null, not lists of numbers, or not ``dim`` long.
    """
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    try:
        parts = [_chunk_to_numpy(chunk, dim) for chunk in chunks]
    except (ValueError, TypeError, pa.ArrowException) as exc:
        raise DatasetError(
            "data_invalid",
            f"action column cannot be read as {dim} values per frame: {exc}",
            path=path,
            hint="the action feature's shape in meta/info.json must match the data: "
            "rewrite the data or fix the shape",
            dataset=dataset,
        ) from None
    if not parts:
        return np.zeros((0, dim), dtype=np.float32)
    out = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
    return np.ascontiguousarray(out, dtype=np.float32)
