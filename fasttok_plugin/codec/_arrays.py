"""Reading the caller's chunks: one ``(N, T, D)`` batch, checked and in the dtype the DCT uses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np

from fasttok_plugin.errors import CodecError

__all__ = [
    "INT64_MAX",
    "MAX_HORIZON",
    "MAX_PADDED_LENGTH",
    "UINT32_MAX",
    "as_batch",
    "check_int",
    "format_rows",
    "host_array",
]

_MAX_LISTED_ROWS: Final = 20
#: Longest chunk (steps) the codec decodes to: far beyond any policy, and a bound on what a typo allocates.
MAX_HORIZON: Final = 65_536
#: Longest padded row `encode_padded` builds.
MAX_PADDED_LENGTH: Final = 1 << 20
#: Ids, pad ids and token values are int64; the BPE trainer's counters are unsigned 32-bit.
INT64_MAX: Final = 2**63 - 1
UINT32_MAX: Final = 2**32 - 1


def check_int(
    value: Any, name: str, *, minimum: int, maximum: int, error: type[Exception] = CodecError
) -> int:
    """``value`` as an ``int`` in ``minimum..maximum`` (numpy integers count, ``bool`` and floats do not).

    Raises:
        error: Naming ``name``, the value and the accepted range.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise error(f"{name}={value!r:.60} must be an integer in {minimum}..{maximum}")
    if not minimum <= int(value) <= maximum:
        raise error(f"{name}={value!r:.60} must be in {minimum}..{maximum}")
    return int(value)


def format_rows(rows: Sequence[int]) -> str:
    """Row indices for an error message, capped so a corrupt corpus does not flood the log."""
    shown = ", ".join(str(r) for r in rows[:_MAX_LISTED_ROWS])
    more = f" and {len(rows) - _MAX_LISTED_ROWS} more" if len(rows) > _MAX_LISTED_ROWS else ""
    return f"{shown}{more}"


def as_batch(
    chunks: Any, *, expected: tuple[int | None, int | None], what: str, allow_2d: bool, offset: int = 0
) -> np.ndarray:
    """Validate one ``(N, T, D)`` batch and return it as a float array in the dtype the DCT uses.

    float32 stays float32 and float64 stays float64 (the reference runs ``dct`` in the input dtype, so
    keeping it keeps the rounding identical); float16 is widened to float32 and integers to float64,
    which is what scipy.fft does with them.

    Args:
        chunks: Anything ``np.asarray`` reads.
        expected: ``(T, D)`` the chunks must have; None accepts any length.
        what: The caller, for the message (``"fit"``, ``"encode"``).
        allow_2d: Accept one ``(T, D)`` chunk as a batch of one.
        offset: Index of the batch's first row in the whole stream, for the NaN/Inf message.

    Raises:
        CodecError: Not a real array, wrong shape, an empty axis, or rows holding NaN/Inf.
    """
    t_exp, d_exp = expected
    shape_hint = f"(N, {t_exp if t_exp is not None else 'T'}, {d_exp if d_exp is not None else 'D'})"
    array = _read_array(chunks, what, shape_hint)
    if array.ndim == 2 and allow_2d:
        array = array[None]
    _check_shape(array.shape, expected, what, shape_hint)
    if array.dtype == np.float16:
        array = array.astype(np.float32)
    elif array.dtype.kind in "iu":
        array = array.astype(np.float64)
    if array.shape[0]:
        bad = ~np.isfinite(array).all(axis=(1, 2))
        if bad.any():
            rows = (np.flatnonzero(bad) + offset).tolist()
            raise CodecError(
                f"{what}: {len(rows)} chunk(s) contain NaN or Inf, rows {format_rows(rows)}; drop or repair "
                "them (check the normalization statistics) before tokenizing"
            )
    return array


def _read_array(chunks: Any, what: str, shape_hint: str) -> np.ndarray:
    """``np.asarray(chunks)``, refusing what is not a real (float or integer) array."""
    try:
        array = np.asarray(chunks)
    except Exception as exc:  # e.g. ragged nested lists
        raise CodecError(
            f"{what}: cannot read the chunks as an array ({exc}); expected shape {shape_hint}"
        ) from exc
    if array.dtype.kind not in "fiu":
        raise CodecError(
            f"{what}: chunks have dtype {array.dtype}, expected a real float (or integer) array of shape "
            f"{shape_hint}"
        )
    return array


def _check_shape(
    shape: tuple[int, ...], expected: tuple[int | None, int | None], what: str, shape_hint: str
) -> None:
    """Refuse anything but ``(N, T, D)`` with non-empty ``T``, ``D`` equal to the expected ones."""
    if len(shape) != 3:
        hint = " (for a list of (T, D) chunks pass np.stack(chunks))" if len(shape) == 2 else ""
        raise CodecError(f"{what}: chunks have shape {shape}, expected {shape_hint}{hint}")
    _, t, d = shape
    if t == 0 or d == 0:
        raise CodecError(f"{what}: chunks have shape {shape} with an empty axis, expected {shape_hint}")
    t_exp, d_exp = expected
    if (t_exp is not None and t != t_exp) or (d_exp is not None and d != d_exp):
        raise CodecError(
            f"{what}: chunks have shape {shape}, expected {shape_hint} (the tokenizer was fit on "
            f"chunks of {t_exp} steps x {d_exp} dims)"
        )


def host_array(chunks: Any) -> Any:
    """A torch tensor (any device, any dtype, autograd or not) as a CPU numpy array; else ``chunks``.

    Checked by module name, so the codec never imports torch. Every float dtype but float64 becomes float32
    (numpy has no bfloat16; the policy's `Normalize` computes in float32), so a bf16 or CUDA tensor encodes
    exactly like its float32 value; float64 (and non-float) tensors read like their numpy twins.

    Raises:
        CodecError: The tensor is on the ``meta`` device (it holds no values).
    """
    if not (type(chunks).__module__.startswith("torch") and hasattr(chunks, "detach")):
        return chunks
    import torch  # only reached with a tensor, so torch is already imported

    if chunks.device.type == "meta":
        raise CodecError("encode: the chunks are a tensor on the 'meta' device, which holds no values")
    if chunks.dtype == torch.float64 or not chunks.is_floating_point():
        return chunks.detach().to("cpu").numpy()  # as numpy would read it: the codec checks the dtype
    return chunks.detach().to("cpu", torch.float32).numpy()
