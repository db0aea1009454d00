"""FAST action processor for ``transformers.AutoProcessor`` (shipped as ``processing_fasttok.py``).

fasttok_plugin copies this file into every tokenizer directory it saves and points ``auto_map`` in
``processor_config.json`` at it, so stacks that load FAST tokenizers with
``AutoProcessor.from_pretrained(path, trust_remote_code=True)`` (LeRobot ``pi0_fast``, openpi, OpenTau)
use our fits unchanged. The interface is that of Physical Intelligence's ``UniversalActionProcessor``
(``__call__(chunks) -> list of id lists``, ``decode(tokens, time_horizon=, action_dim=)``), and the ids are
those of ``fasttok_plugin.FastTokenizer``.

Differences from the reference, all deliberate:
- encode clamps quantized values to the fitted range on both sides (the reference only clamps below and
  silently drops values above); clamped values are counted in ``last_clamped_values`` and logged;
- decode never prints: rows that do not decode to ``time_horizon * action_dim`` values in the range are
  zero-filled *for drop-in compatibility*, listed in ``last_invalid_rows`` and logged as a warning;
  ``decode(..., strict=True)`` raises instead;
- work is batched (one DCT over the batch, one ``encode_batch``/``decode_batch`` call);
- the flatten ``order`` of ``processor_config.json`` is honoured: ``"time"`` (absent; the reference's
  time-major order), ``"dims"`` (each dim's coefficients contiguous) or ``"dc_dims"`` (every dim's DC
  coefficient first, then each dim's other coefficients contiguous).
- the ``rounding`` of ``processor_config.json`` is honoured: ``"nearest"`` (absent; the reference's) or
  ``"token_aware"`` (after rounding to nearest, each chunk's nonzero values rounded by more than 0.1 are
  visited by decreasing rounding error and rounded the other way when that shortens the chunk's token
  sequence; the rule of ``fasttok_plugin.codec.rounding``, written out again here);
- folders fit with ``layout="native"`` (one tokenizer over chunks of mixed widths) encode chunks of any
  width, also a list of ``(T, w_i)`` chunks of mixed widths, and ``decode`` takes ``action_dim`` as one int
  (as LeRobot ``pi0_fast`` and openpi call it, with the robot's native width) or one width per row.

Self-contained on purpose: it depends only on numpy, scipy and transformers (not on fasttok_plugin).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, ClassVar

import numpy as np
from scipy.fft import dct, idct
from transformers import PreTrainedTokenizerFast
from transformers.processing_utils import ProcessorMixin

logger = logging.getLogger(__name__)

_SURROGATE_START = 0xD800
_SUBFOLDER = "bpe_tokenizer"


def _byte_level_map() -> dict[int, str]:
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    mapping = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def _remap_table(vocab: dict[str, int], byte_level: bool, limit: int, trim: bool) -> np.ndarray:
    """code -> nearest code whose value the vocabulary can encode (identity where it can)."""
    limit = min(limit, _SURROGATE_START - 1)
    byte_map = _byte_level_map()
    mask = np.zeros(limit + 1, dtype=bool)
    for v in range(limit + 1):
        if byte_level:
            mask[v] = all(byte_map[b] in vocab for b in chr(v).encode("utf-8"))
        else:
            mask[v] = chr(v) in vocab
    good = np.flatnonzero(mask)
    if good.size == 0:
        raise ValueError("the tokenizer vocabulary represents no value at all")
    if trim:
        mask = mask[: int(good[-1]) + 1]
    codes = np.arange(mask.size)
    right = np.searchsorted(good, codes).clip(0, good.size - 1)
    left = (right - 1).clip(0, good.size - 1)
    pick_left = np.abs(codes - good[left]) <= np.abs(good[right] - codes)
    return np.where(pick_left, good[left], good[right]).astype(np.int64)


_ORDERS = ("time", "dims", "dc_dims")


def _order_permutation(order: str, t: int, d: int) -> np.ndarray:
    """Indices into the time-major ``t*d`` coefficient vector in the order ``order`` emits them."""
    grid = np.arange(t * d, dtype=np.int64).reshape(t, d)
    if order == "time":
        return grid.reshape(-1)
    if order == "dims":
        return grid.T.reshape(-1)
    if order == "dc_dims":
        return np.concatenate([grid[0], grid[1:].T.reshape(-1)])
    raise ValueError(f"order={order!r} is not one of {_ORDERS}")


_ROUNDINGS = ("nearest", "token_aware")
# fasttok_plugin.codec.rounding.MIN_ERROR: only values rounded by more than this are rounded the other way.
_MIN_ERROR = 0.1


def _token_aware(
    codes: np.ndarray, error: np.ndarray, zero: int, usable: np.ndarray, lengths: Any
) -> np.ndarray:
    """Greedy token-aware rounding of ``(N, L)`` clamped codes (``error``: 0 where a value was clamped)."""
    codes = codes.astype(np.int64, copy=True)
    if codes.size == 0:
        return codes
    step = np.where(error > 0, 1, -1).astype(np.int64)
    other = codes + step
    candidate = (codes != zero) & (np.abs(error) > _MIN_ERROR) & (other >= 0) & (other < usable.size)
    candidate[candidate] = usable[other[candidate]]
    visit = np.argsort(np.where(candidate, -np.abs(error), np.inf), axis=1, kind="stable")
    counts = candidate.sum(axis=1)
    best = lengths(codes)
    for rank in range(int(counts.max())):
        rows = np.flatnonzero(counts > rank)
        cols = visit[rows, rank]
        trial = codes[rows]
        trial[np.arange(rows.size), cols] += step[rows, cols]
        n = lengths(trial)
        shorter = n < best[rows]
        codes[rows[shorter]] = trial[shorter]
        best[rows[shorter]] = n[shorter]
    return codes


def _texts(codes: np.ndarray) -> list[str]:
    width = codes.shape[1]
    text = np.ascontiguousarray(codes, dtype="<u4").tobytes().decode("utf-32-le")
    return [text[i * width : (i + 1) * width] for i in range(codes.shape[0])]


class UniversalActionProcessor(ProcessorMixin):
    """FAST (DCT + BPE) action tokenizer with the reference processor's interface."""

    attributes: ClassVar[list[str]] = ["bpe_tokenizer"]
    bpe_tokenizer_class: str = "AutoTokenizer"

    def __init__(
        self,
        bpe_tokenizer: PreTrainedTokenizerFast,
        scale: float = 10,
        vocab_size: int = 1024,
        min_token: int = 0,
        *,
        action_dim: int | None = None,
        time_horizon: int | None = None,
        max_token: int | None = None,
        order: str = "time",
        layout: str = "padded",
        rounding: str = "nearest",
        **kwargs: Any,
    ) -> None:
        if order not in _ORDERS:
            raise ValueError(f"order={order!r} is not one of {_ORDERS}")
        if rounding not in _ROUNDINGS:
            raise ValueError(f"rounding={rounding!r} is not one of {_ROUNDINGS}")
        self.order = order
        self.rounding = rounding
        self.scale = scale
        self.vocab_size = vocab_size
        self.min_token = min_token
        self.time_horizon = time_horizon
        self.action_dim = action_dim
        self.called_time_horizon = time_horizon
        self.called_action_dim = action_dim
        self.last_clamped_values = 0
        self.last_invalid_rows: tuple[int, ...] = ()
        self.layout = layout
        super().__init__(bpe_tokenizer)
        backend = bpe_tokenizer.backend_tokenizer
        state = json.loads(backend.to_str())
        byte_level = (state.get("pre_tokenizer") or {}).get("type") == "ByteLevel"
        limit = (max_token - min_token) if max_token is not None else vocab_size
        self._remap = _remap_table(backend.get_vocab(), byte_level, limit, trim=max_token is None)
        self.max_token = min_token + self._remap.size - 1

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike[str], **kwargs: Any) -> Any:
        """Load from a directory (or hub repo) in the transformers 4.x or 5.x FAST layout."""

        def locate(name: str, subfolder: str = "") -> str | None:
            root = os.fspath(pretrained_model_name_or_path)
            if os.path.isdir(root):
                path = os.path.join(root, subfolder, name)
                return path if os.path.isfile(path) else None
            from transformers.utils import cached_file

            hub = {
                k: kwargs[k] for k in ("cache_dir", "revision", "token", "local_files_only") if k in kwargs
            }
            return cached_file(
                root, name, subfolder=subfolder, _raise_exceptions_for_missing_entries=False, **hub
            )

        config_file = locate("processor_config.json")
        if config_file is None:
            raise OSError(f"{pretrained_model_name_or_path}: no processor_config.json")
        with open(config_file, encoding="utf-8") as fh:
            config = json.load(fh)
        max_token, layout = None, "padded"
        sidecar_file = locate("fasttok.json")
        if sidecar_file is not None:
            with open(sidecar_file, encoding="utf-8") as fh:
                sidecar = json.load(fh)
            max_token, layout = sidecar.get("max_token"), sidecar.get("layout", "padded")
        tokenizer_file = locate("tokenizer.json") or locate("tokenizer.json", _SUBFOLDER)
        if tokenizer_file is None:
            raise OSError(f"{pretrained_model_name_or_path}: no tokenizer.json (flat or under {_SUBFOLDER}/)")
        tokenizer = PreTrainedTokenizerFast(tokenizer_file=tokenizer_file, clean_up_tokenization_spaces=False)
        return cls(
            tokenizer,
            scale=config["scale"],
            vocab_size=config["vocab_size"],
            min_token=config["min_token"],
            action_dim=config.get("action_dim"),
            time_horizon=config.get("time_horizon"),
            max_token=max_token,
            order=config.get("order", "time"),
            layout=layout,
            rounding=config.get("rounding", "nearest"),
        )

    def __call__(self, action_chunk: Any) -> list[list[int]]:
        """Encode ``(N, T, D)`` (or one ``(T, D)``) action chunks to lists of token ids.

        A list of ``(T, w_i)`` chunks of mixed widths is encoded chunk by chunk at its own width (for
        folders fit with ``layout="native"``).
        """
        if isinstance(action_chunk, (list, tuple)) and len({np.shape(c) for c in action_chunk}) > 1:
            return [self(np.asarray(c)[None])[0] for c in action_chunk]
        action_chunk = np.asarray(action_chunk)
        if action_chunk.ndim == 2:
            action_chunk = action_chunk[None, ...]
        if action_chunk.ndim != 3:
            raise ValueError(f"action chunks have shape {action_chunk.shape}, expected (N, T, D) or (T, D)")
        if not np.isfinite(action_chunk).all():
            rows = np.flatnonzero(~np.isfinite(action_chunk).all(axis=(1, 2))).tolist()
            raise ValueError(f"action chunks contain NaN or Inf in rows {rows[:20]}")
        if action_chunk.dtype == np.float16 or action_chunk.dtype.kind in "iu":
            action_chunk = action_chunk.astype(np.float32 if action_chunk.dtype == np.float16 else np.float64)
        self.called_time_horizon = action_chunk.shape[-2]
        self.called_action_dim = action_chunk.shape[-1]
        n = action_chunk.shape[0]
        scaled = dct(action_chunk, axis=1, norm="ortho") * self.scale
        coeff = np.around(scaled)
        codes = coeff.reshape(n, -1).astype(np.int64) - self.min_token
        error = (scaled - coeff).reshape(n, -1)
        if self.order != "time":
            perm = _order_permutation(self.order, *action_chunk.shape[1:])
            codes, error = codes[:, perm], error[:, perm]
        clipped = self._remap[np.clip(codes, 0, self._remap.size - 1)]
        self.last_clamped_values = int(np.count_nonzero(clipped != codes))
        if self.last_clamped_values:
            logger.warning(
                "%d quantized value(s) outside the fitted range were clamped", self.last_clamped_values
            )
        backend = self.bpe_tokenizer.backend_tokenizer
        if self.rounding == "token_aware":
            usable = self._remap == np.arange(self._remap.size)
            clipped = _token_aware(
                clipped,
                np.where(clipped == codes, error, 0.0),
                -self.min_token,
                usable,
                lambda c: np.array([len(e.ids) for e in backend.encode_batch(_texts(c))], dtype=np.int64),
            )
        return [e.ids for e in backend.encode_batch(_texts(clipped))]

    def decode(
        self,
        tokens: list[list[int]],
        *,
        time_horizon: int | None = None,
        action_dim: Any = None,
        strict: bool = False,
    ) -> np.ndarray:
        """Decode id lists to ``(N, T, D)`` actions (invalid rows: zeros, counted and logged).

        ``action_dim`` may also be one width per row: the result is then ``(N, T, max width)``, each row
        zero beyond its width (``layout="native"`` folders).
        """
        if action_dim is not None and np.ndim(action_dim) == 1:
            return self._decode_rows(tokens, time_horizon, [int(w) for w in action_dim], strict)
        self.time_horizon = time_horizon or self.time_horizon or self.called_time_horizon
        self.action_dim = action_dim or self.action_dim or self.called_action_dim
        self.called_time_horizon = self.time_horizon
        self.called_action_dim = self.action_dim
        if self.time_horizon is None or self.action_dim is None:
            native = (
                " (a layout='native' folder: pass the robot's action_dim)" if self.layout == "native" else ""
            )
            raise ValueError(
                f"time_horizon and action_dim are unknown: call the processor once or pass them{native}"
            )
        t, d = self.time_horizon, self.action_dim
        backend = self.bpe_tokenizer.backend_tokenizer
        size = backend.get_vocab_size()
        rows = [[int(i) for i in row] for row in tokens]
        known = [all(0 <= i < size for i in row) for row in rows]
        # Special tokens keep their text (as in the reference), so a row holding one has the wrong length
        # and is reported invalid instead of the token being dropped silently.
        texts = backend.decode_batch(
            [r if ok else [] for r, ok in zip(rows, known, strict=True)], skip_special_tokens=False
        )
        out = np.zeros((len(rows), t, d), dtype=np.float64)
        perm = _order_permutation(self.order, t, d)
        invalid = []
        for i, (text, ok) in enumerate(zip(texts, known, strict=True)):
            codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
            if not ok or codes.size != t * d or (codes.size and codes.max() >= self._remap.size):
                invalid.append(i)
                continue
            flat = np.empty(t * d, dtype=np.float64)
            flat[perm] = codes.astype(np.float64) + self.min_token  # back to time-major
            coeff = flat.reshape(t, d) / self.scale
            out[i] = idct(coeff, axis=0, norm="ortho")
        self.last_invalid_rows = tuple(invalid)
        if invalid:
            message = (
                f"{len(invalid)} of {len(rows)} row(s) did not decode to {t}x{d} values: rows {invalid[:20]}"
            )
            if strict:
                raise ValueError(message)
            logger.warning("%s (zero-filled; see last_invalid_rows)", message)
        return out

    def _decode_rows(
        self, tokens: list[list[int]], time_horizon: int | None, widths: list[int], strict: bool
    ) -> np.ndarray:
        """Decode rows of mixed widths (one ``action_dim`` per row) into ``(N, T, max width)``."""
        if len(widths) != len(tokens):
            raise ValueError(f"{len(widths)} action_dim values for {len(tokens)} rows; give one per row")
        t = time_horizon or self.time_horizon or self.called_time_horizon
        if t is None:
            raise ValueError("time_horizon is unknown: call the processor once or pass it")
        saved = (self.time_horizon, self.action_dim, self.called_time_horizon, self.called_action_dim)
        out = np.zeros((len(tokens), t, max(widths, default=1)), dtype=np.float64)
        invalid: list[int] = []
        try:
            for w in sorted(set(widths)):
                rows = [i for i, v in enumerate(widths) if v == w]
                out[rows, :, :w] = self.decode(
                    [tokens[i] for i in rows], time_horizon=t, action_dim=w, strict=strict
                )
                invalid += [rows[i] for i in self.last_invalid_rows]
        finally:
            # Per-row widths are not cached as the next call's defaults (one int is, as in the reference).
            self.time_horizon, self.action_dim, self.called_time_horizon, self.called_action_dim = saved
        self.last_invalid_rows = tuple(sorted(invalid))
        return out
