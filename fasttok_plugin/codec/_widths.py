"""The ``native`` layout: chunks of mixed widths, handed to the codec core as blocks of one width.

With ``layout="native"`` (DESIGN §11 item 2, FAST+ style) one tokenizer is fit over chunks whose width is
their head's native action dim, and encode / decode take the width of every chunk. The codec core
(`quantize` / `dequantize`, the flatten order) only ever sees an ``(N, T, w)`` block of one width: this
module validates the per-row widths and groups rows by width, nothing else, so the two compose.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Final

import numpy as np

from fasttok_plugin._validate import MAX_ACTION_DIM
from fasttok_plugin.codec._arrays import check_int, format_rows
from fasttok_plugin.codec.alphabet import code_strings
from fasttok_plugin.errors import CodecError

__all__ = [
    "DEFAULT_LAYOUT",
    "LAYOUTS",
    "check_layout",
    "decode_widths",
    "native_decode",
    "native_texts",
    "on_rows",
    "report_invalid",
    "row_widths",
    "width_groups",
]

# The codec logs under one name, "fasttok_plugin.codec": fitting filters its per-batch warnings by it.
logger = logging.getLogger(__package__)

#: ``padded``: every chunk is ``(T, D)`` (zero-padded to ``max_action_dim``, the reference's layout);
#: ``native``: each chunk keeps its head's native width ``w <= D``.
LAYOUTS: Final = ("padded", "native")
DEFAULT_LAYOUT: Final = "padded"


def check_layout(layout: Any) -> str:
    """``layout`` if it is one of :data:`LAYOUTS`.

    Raises:
        CodecError: Any other value.
    """
    if not isinstance(layout, str) or layout not in LAYOUTS:
        raise CodecError(f"layout={layout!r:.60} must be 'padded' or 'native'")
    return layout


def row_widths(
    action_dims: int | Sequence[int] | np.ndarray | None, n: int, d: int, *, what: str
) -> np.ndarray:
    """The width of every row as an ``(n,)`` int64 array, each in ``1..d``.

    Args:
        action_dims: None (every row is ``d`` wide), one int for all rows, or one width per row.
        n: Number of rows.
        d: Widest width allowed (the chunks' last axis when encoding, ``MAX_ACTION_DIM`` when decoding).
        what: The caller, for the message.

    Raises:
        CodecError: Not integers, the wrong count, or a width outside ``1..d``.
    """
    if action_dims is None:
        return np.full(n, d, dtype=np.int64)
    widths = np.asarray(action_dims)
    if widths.dtype == bool or widths.dtype.kind not in "iu" or widths.ndim > 1:
        raise CodecError(
            f"{what}: action_dims must be an integer or one integer per chunk, got {_short(action_dims)}"
        )
    if widths.ndim == 0:
        widths = np.full(n, int(widths), dtype=np.int64)
    if widths.size != n:
        raise CodecError(f"{what}: {widths.size} action_dims for {n} chunk(s); give one width per chunk")
    widths = widths.astype(np.int64)
    top = min(d, MAX_ACTION_DIM)
    bad = np.flatnonzero((widths < 1) | (widths > top))
    if bad.size:
        row = int(bad[0])
        raise CodecError(
            f"{what}: action_dims[{row}]={int(widths[row])} must be in 1..{top} (the chunks are {d} wide)"
            + (f"; {bad.size} rows are out of range" if bad.size > 1 else "")
        )
    return widths


def width_groups(widths: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """``(w, rows)`` for every distinct width, narrowest first; ``rows`` ascending."""
    return [(int(w), np.flatnonzero(widths == w)) for w in np.unique(widths)]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def on_rows(
    core: Callable[[np.ndarray, int], Any], block: np.ndarray, rows: np.ndarray | None, base: int
) -> Any:
    """``core(block, offset)`` on a block of one width; its errors name the caller's rows.

    The core numbers the rows of its error messages from ``offset``, which is right only for a contiguous
    block (``rows`` None: rows ``base ..``). A block gathered from rows of one width is re-run row by row
    on the error path, so the message names the original rows.

    Raises:
        CodecError: The core's, for the first failing row, with every failing row listed.
    """
    if rows is None:
        return core(block, base)
    try:
        return core(block, base)
    except CodecError:
        failed: list[tuple[int, CodecError]] = []
        for i, row in enumerate(rows.tolist()):
            try:
                core(block[i : i + 1], base + row)
            except CodecError as exc:
                failed.append((base + row, exc))
        if not failed:  # pragma: no cover - a block fails only through one of its rows
            raise
        more = (
            f" ({len(failed)} rows of width {block.shape[2]} fail: {format_rows([r for r, _ in failed])})"
            if len(failed) > 1
            else ""
        )
        raise CodecError(f"{failed[0][1]}{more}") from None


def native_texts(
    array: np.ndarray, widths: np.ndarray, block_codes: Callable[[np.ndarray, int], tuple[np.ndarray, int]]
) -> tuple[list[str], int]:
    """One alphabet string per row of ``array`` (row ``i`` is ``array[i, :, :widths[i]]``) and the clamps.

    Args:
        array: ``(N, T, D)`` validated chunks.
        widths: ``(N,)`` widths from :func:`row_widths`.
        block_codes: The codec core: an ``(n, T, w)`` block of one width and the index of its first row
            (for messages) -> its ``(n, T*w)`` codes and the values it clamped.
    """
    groups = width_groups(widths)
    if len(groups) == 1:  # one width (always so for padded): no row gather
        codes, clamped = block_codes(array[:, :, : groups[0][0]], 0)
        return code_strings(codes), clamped
    texts, clamped = [""] * array.shape[0], 0
    for w, rows in groups:
        codes, n = on_rows(block_codes, array[rows, :, :w], rows, 0)
        clamped += n
        for row, text in zip(rows.tolist(), code_strings(codes), strict=True):
            texts[row] = text
    return texts, clamped


def native_decode(
    flat: np.ndarray,
    lengths: np.ndarray,
    t: int,
    widths: np.ndarray,
    decode_rows: Callable[[np.ndarray, np.ndarray, int, int], tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray]:
    """Decode rows of mixed widths: ``(N, T, max width)`` float32 (zero beyond a row's width, NaN rows
    where invalid) and the validity.

    Args:
        flat: Every row's ids, concatenated.
        lengths: Ids per row.
        t: Chunk length.
        widths: ``(N,)`` width of each row.
        decode_rows: The codec core: ids of rows of one width ``w`` -> ``(n, T, w)`` and validity.
    """
    actions = np.zeros((lengths.size, t, int(widths.max(initial=1))), dtype=np.float32)
    valid = np.ones(lengths.size, dtype=bool)
    row_of = np.repeat(np.arange(lengths.size), lengths)
    for w, rows in width_groups(widths):
        block, ok = decode_rows(flat[np.isin(row_of, rows)], lengths[rows], t, w)
        actions[rows, :, :w] = block
        actions[rows[~ok]] = np.nan
        valid[rows] = ok
    return actions, valid


def decode_widths(action_dim: Any, tok: Any, t: int | None, n: int) -> tuple[int, np.ndarray | None]:
    """``decode``'s ``action_dim`` as ``(D, None)`` (one width) or ``(0, widths)`` (one width per row).

    Args:
        action_dim: None (the fitted ``action_dim``), an int, or one width per row (``native`` only).
        tok: The `FastTokenizer` (its ``layout``, ``action_dim`` and fitted ``action_dims``).
        t: The resolved chunk length (None or 0: unknown).
        n: Number of rows.

    Raises:
        CodecError: ``T`` or ``D`` unknown, a bad width, or per-row widths for a ``padded`` tokenizer.
    """
    per_row = action_dim is not None and not isinstance(action_dim, (int, np.integer, bool, np.bool_))
    if per_row and tok.layout != "native":
        raise CodecError(
            "decode: one action_dim per row is only for layout='native' tokenizers; pass one int"
        )
    if action_dim is not None and not per_row:
        action_dim = check_int(action_dim, "decode: action_dim", minimum=1, maximum=MAX_ACTION_DIM)
    d = 0 if per_row else (action_dim or tok.action_dim)
    if not t or not (per_row or d):
        if tok.layout == "native":
            raise CodecError(
                f"decode: this native tokenizer was fit on chunks of widths {list(tok.action_dims or ())}; "
                "pass time_horizon= and action_dim= (one int, or one width per row)"
            )
        raise CodecError("decode: time_horizon and action_dim are unknown; pass them to decode()")
    return int(d), row_widths(action_dim, n, MAX_ACTION_DIM, what="decode") if per_row else None


def report_invalid(invalid: tuple[int, ...], n: int, shape: str, *, strict: bool) -> None:
    """Log the rows that did not decode to ``shape`` (and with ``strict``, raise).

    Raises:
        CodecError: ``strict`` (naming the rows).
    """
    logger.warning(
        "decode: %d of %d row(s) did not decode to %s in the fitted range: rows %s",
        len(invalid),
        n,
        shape,
        format_rows(invalid),
    )
    if strict:
        raise CodecError(
            f"decode: {len(invalid)} of {n} row(s) did not decode to exactly {shape} in the fitted "
            f"range: rows {format_rows(invalid)}"
        )
