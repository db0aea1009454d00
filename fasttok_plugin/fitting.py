"""The fit pipeline: mixture -> preflight -> norm heads -> sample -> Normalize -> FAST fit -> held-out report.

`fit_tokenizer` is what the ``fasttok fit`` CLI and the Lightning callback run. Its steps:

1. **Preflight** (`fasttok_plugin.preflight.run_preflight`, imported lazily): any error raises
   `PreflightError` before a single action is read.
2. **Norm heads**: the very `NormHeads` the policy's `Normalize` module is built from.
3. **Sample** with `ChunkSampler` (weighted, resampled, padded; see `fasttok_plugin.sampling`).
4. **Split**: a chunk is held out when its start ``(dataset, episode, start frame)`` hashes (with the
   seed) below ``heldout_fraction``, so the split is over starts and fit / held-out chunks never share
   one. Per dataset, fit-side chunks arrive in random draw order and the first ``fit_d`` form the fit
   corpus, the rest is sampled but unused. ``fit_d`` splits ``min(max_fit_chunks, fit-side pool)``
   first over heads, then over the datasets of each head (largest remainder; every sampled head gets at
   least one chunk), so the subset is stratified across heads and datasets.
5. **Normalize** with the torch `Normalize` module itself (bit-identical to training).
6. **Fit** `FastTokenizer.fit` on the streamed, normalized fit batches.
7. **Evaluate** on the held-out chunks (the sampler is re-run with the same seed, so nothing but the
   fit corpus is held in memory): token lengths, truncation against ``max_action_tokens``, round-trip
   MSE, compression, per head.

`FitPlan` exposes steps 3-5 (``fit_batches`` / ``heldout_batches``) so tests and other callers can see the
exact corpus that was fit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np

from fasttok_plugin.atomic import replace_directory, write_text_atomic
from fasttok_plugin.defaults import DEFAULT_CHUNK_SIZE, DEFAULT_MAX_ACTION_DIM
from fasttok_plugin.errors import FitError, OutDirError
from fasttok_plugin.sampling import (
    ChunkBatch,
    ChunkSampler,
    DatasetSampleReport,
    largest_remainder,
    peak_rss_mb,
)

if TYPE_CHECKING:  # pragma: no cover - typing only; torch/codec are imported lazily
    from fasttok_plugin.codec import FastTokenizer
    from fasttok_plugin.heads import NormHeads
    from fasttok_plugin.mixture import MixtureConfig
    from fasttok_plugin.normalize import Normalize
    from fasttok_plugin.preflight import PreflightResult
    from fasttok_plugin.resolve import ResolvedMixture

__all__ = [
    "DEFAULT_HELDOUT_FRACTION",
    "DEFAULT_MAX_ACTION_TOKENS",
    "DEFAULT_MAX_FIT_CHUNKS",
    "DEFAULT_TOTAL_CHUNKS",
    "REPORT_NAME",
    "DatasetFitStats",
    "FitBatch",
    "FitError",
    "FitPlan",
    "FitReport",
    "FitSettings",
    "FitSource",
    "HeadFitStats",
    "OutDirError",
    "TokenLengthStats",
    "fit_fingerprint",
    "fit_tokenizer",
]

logger = logging.getLogger(__name__)

REPORT_NAME = "fit_report.json"
REPORT_FORMAT_VERSION = 1
_FIT_FINGERPRINT_VERSION = "fasttok-fit/1"
#: Chunks sampled over the mixture by default.
DEFAULT_TOTAL_CHUNKS = 100_000
#: Fit-corpus cap; chosen with benchmarks/bench_fit_scale.py (see docs/fitting.md for the numbers).
DEFAULT_MAX_FIT_CHUNKS = 30_000
DEFAULT_HELDOUT_FRACTION = 0.1
#: The policy's token budget (LeRobot pi0_fast ``max_action_tokens``).
DEFAULT_MAX_ACTION_TOKENS = 256
_HISTOGRAM_BINS = 20
_EVAL_BATCH = 4096


# --------------------------------------------------------------------------------------------------
# settings


@dataclass(frozen=True)
class FitSettings:
    """Everything that controls a fit.

    Attributes:
        chunk_size: Steps per chunk ``T`` (None: the mixture's ``chunk_size``, else 50).
        max_action_dim: Padded action width ``D`` (None: the mixture's ``max_action_dim``, else 32).
        vocab_size: BPE vocabulary size.
        scale: DCT coefficient multiplier before rounding.
        min_frequency: Minimum pair count of a BPE merge.
        max_token_length: Longest BPE merge in characters (the trainer's cap, not the policy budget).
        pipeline: Codec pipeline, ``"char"`` or ``"reference"``.
        total_chunks: Chunks sampled over the mixture (fit + held-out + unused).
        max_fit_chunks: Cap of the fit corpus (stratified subset); None fits every non-held-out chunk.
        heldout_fraction: Share of the chunk starts held out for the report (0 < f < 1).
        max_action_tokens: The policy's token budget the truncation rate is measured against (None: not
            measured).
        seed: Sampling / split seed.
        workers: Sampler worker processes (0: in-process); never changes the result. With a
            `FitSource`, a positive value overrides its sampler's ``workers`` and 0 keeps them.
        normalization: ``"min_max"``, ``"mean_std"`` or ``"identity"`` (a `NormMode` is stored as its value).
        zero_range: Zero-range dims under min_max: ``"center"`` (0.0) or ``"legacy"`` (-1.0).
        eps: Range / std threshold of `Normalize`.
        on_dataset_error: ``"raise"`` (default) stops when a dataset's frames cannot be read;
            ``"skip"`` fits without it (the report lists the error).
    """

    chunk_size: int | None = None
    max_action_dim: int | None = None
    vocab_size: int = 1024
    scale: float = 10.0
    min_frequency: int = 2
    max_token_length: int | None = 10000
    pipeline: str = "char"
    total_chunks: int = DEFAULT_TOTAL_CHUNKS
    max_fit_chunks: int | None = DEFAULT_MAX_FIT_CHUNKS
    heldout_fraction: float = DEFAULT_HELDOUT_FRACTION
    max_action_tokens: int | None = DEFAULT_MAX_ACTION_TOKENS
    seed: int = 0
    workers: int = 0
    normalization: str = "min_max"
    zero_range: Literal["center", "legacy"] = "center"
    eps: float = 1e-6
    on_dataset_error: Literal["raise", "skip"] = "raise"

    def __post_init__(self) -> None:
        mode = getattr(self.normalization, "value", self.normalization)
        if isinstance(mode, str) and type(self.normalization) is not str:
            # A NormMode member becomes its plain value: str(NormMode.MIN_MAX) is "NormMode.MIN_MAX",
            # which must never reach the fingerprint or the sidecar.
            object.__setattr__(self, "normalization", mode)
        problems: list[str] = []

        def positive_int(name: str, optional: bool = False, minimum: int = 1) -> None:
            value = getattr(self, name)
            if optional and value is None:
                return
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
                problems.append(f"{name} must be an integer >= {minimum}, got {value!r}")

        positive_int("chunk_size", optional=True)
        positive_int("max_action_dim", optional=True)
        positive_int("vocab_size", minimum=2)
        positive_int("min_frequency", minimum=0)
        positive_int("max_token_length", optional=True)
        positive_int("total_chunks", minimum=2)
        positive_int("max_fit_chunks", optional=True)
        positive_int("max_action_tokens", optional=True)
        positive_int("seed", minimum=0)
        positive_int("workers", minimum=0)
        if not (isinstance(self.scale, (int, float)) and math.isfinite(self.scale) and self.scale > 0):
            problems.append(f"scale must be a positive number, got {self.scale!r}")
        if not (
            isinstance(self.heldout_fraction, (int, float))
            and not isinstance(self.heldout_fraction, bool)
            and 0.0 < float(self.heldout_fraction) < 1.0
        ):
            problems.append(f"heldout_fraction must be in (0, 1), got {self.heldout_fraction!r}")
        if self.pipeline not in ("char", "reference"):
            problems.append(f"pipeline must be 'char' or 'reference', got {self.pipeline!r}")
        if str(self.normalization) not in ("min_max", "mean_std", "identity"):
            problems.append(
                f"normalization must be 'min_max', 'mean_std' or 'identity', got {self.normalization!r}"
            )
        if self.zero_range not in ("center", "legacy"):
            problems.append(f"zero_range must be 'center' or 'legacy', got {self.zero_range!r}")
        if not (isinstance(self.eps, (int, float)) and self.eps > 0):
            problems.append(f"eps must be > 0, got {self.eps!r}")
        if self.on_dataset_error not in ("raise", "skip"):
            problems.append(f"on_dataset_error must be 'raise' or 'skip', got {self.on_dataset_error!r}")
        if problems:
            raise FitError("invalid fit settings:\n" + "\n".join(f"  - {p}" for p in problems))

    def resolved(self, config: MixtureConfig | None) -> FitSettings:
        """Return a copy with ``chunk_size`` / ``max_action_dim`` filled from the mixture, else defaults."""
        chunk = self.chunk_size or (config.chunk_size if config is not None else None) or DEFAULT_CHUNK_SIZE
        width = (
            self.max_action_dim
            or (config.max_action_dim if config is not None else None)
            or DEFAULT_MAX_ACTION_DIM
        )
        return dataclasses.replace(self, chunk_size=int(chunk), max_action_dim=int(width))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of every field."""
        return dataclasses.asdict(self)


def fit_fingerprint(norm_heads: NormHeads, settings: FitSettings, sampler_settings: Mapping[str, Any]) -> str:
    """Fingerprint of everything that determines a fitted tokenizer (pure, cheap: no data is read).

    sha256 of canonical JSON holding the norm-heads fingerprint, chunk size, action dim, codec settings,
    normalization convention, the sampling / split settings and ``sampler_settings``. ``workers`` and
    ``max_action_tokens`` are left out: they never change the tokenizer.

    Args:
        norm_heads: The mixture's norm heads.
        settings: Fit settings (``chunk_size`` None: taken from ``sampler_settings``).
        sampler_settings: `ChunkSampler.settings` of the sampler the fit uses.

    Returns:
        A 64-character hex digest.

    Raises:
        FitError: When ``settings`` disagree with the heads or the sampler (chunk size, action dim).
    """
    sampler_chunk = sampler_settings.get("chunk_size")
    chunk_size = settings.chunk_size if settings.chunk_size is not None else sampler_chunk
    if sampler_chunk is not None and chunk_size != sampler_chunk:
        raise FitError(f"chunk_size {chunk_size} differs from the sampler's chunk_size {sampler_chunk}")
    if settings.max_action_dim is not None and settings.max_action_dim != norm_heads.max_action_dim:
        raise FitError(
            f"max_action_dim {settings.max_action_dim} differs from the norm heads' "
            f"{norm_heads.max_action_dim}; build the heads with the same max_action_dim"
        )
    payload = {
        "version": _FIT_FINGERPRINT_VERSION,
        "norm_heads": norm_heads.fingerprint,
        "chunk_size": chunk_size,
        "action_dim": int(norm_heads.max_action_dim),
        "codec": {
            "vocab_size": settings.vocab_size,
            "scale": float(settings.scale),
            "min_frequency": settings.min_frequency,
            "max_token_length": settings.max_token_length,
            "pipeline": settings.pipeline,
        },
        "normalization": {
            "mode": str(settings.normalization),
            "zero_range": settings.zero_range,
            "eps": float(settings.eps),
        },
        "split": {
            "total_chunks": settings.total_chunks,
            "max_fit_chunks": settings.max_fit_chunks,
            "heldout_fraction": float(settings.heldout_fraction),
            "seed": settings.seed,
        },
        "sampler": _jsonable(dict(sampler_settings)),
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


@runtime_checkable
class FitSource(Protocol):
    """Anything that can feed a fit: norm heads plus a chunk sampler (the Lightning datamodule is one).

    ``resolved_mixture`` (may be None) lets the fit run the preflight on the same objects.
    """

    norm_heads: NormHeads
    chunk_sampler: ChunkSampler
    resolved_mixture: ResolvedMixture | None


# --------------------------------------------------------------------------------------------------
# report


@dataclass(frozen=True, slots=True)
class TokenLengthStats:
    """Token-length distribution of encoded chunks."""

    count: int
    mean: float
    p50: float
    p90: float
    p99: float
    max: int

    @classmethod
    def from_lengths(cls, lengths: np.ndarray) -> TokenLengthStats | None:
        """Summarize an array of per-chunk token counts (None when empty)."""
        values = np.asarray(lengths, dtype=np.float64)
        if values.size == 0:
            return None
        p50, p90, p99 = np.percentile(values, [50, 90, 99])
        return cls(
            count=int(values.size),
            mean=float(values.mean()),
            p50=float(p50),
            p90=float(p90),
            p99=float(p99),
            max=int(values.max()),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass(frozen=True, slots=True)
class DatasetFitStats:
    """What one mixture entry contributed to the fit."""

    entry: int
    name: str
    head: int
    requested: int
    sampled: int
    skipped_nonfinite: int
    fit: int
    heldout: int
    valid_starts: int = 0
    repeated_starts: int = 0
    freq: float | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass(frozen=True, slots=True)
class HeadFitStats:
    """Per-head counts and held-out quality.

    ``roundtrip_mse`` is the mean squared decode error in normalized space over the head's native dims
    (padded dims are exactly zero and would only dilute it). ``histogram`` counts held-out token lengths
    in the report's ``histogram_edges`` bins.
    """

    head: int
    key: str
    entries: tuple[int, ...]
    native_dim: int
    fallback: bool
    sampled: int
    fit: int
    heldout: int
    token_lengths: TokenLengthStats | None
    truncated: int
    truncation_rate: float | None
    roundtrip_mse: float | None
    invalid_decodes: int
    compression_ratio: float | None
    histogram: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["entries"] = list(self.entries)
        out["histogram"] = list(self.histogram)
        out["token_lengths"] = None if self.token_lengths is None else self.token_lengths.to_dict()
        return out


@dataclass(frozen=True)
class FitReport:
    """Everything a fit did and measured; saved as ``fit_report.json`` in the tokenizer directory.

    Token lengths, truncation and round-trip error are measured on **held-out** chunks only.
    ``compression_ratio`` is ``T * D / mean held-out tokens``. ``timings`` are seconds per phase;
    ``peak_memory_mb`` is this process's peak RSS (``ru_maxrss``), ``peak_memory_workers_mb`` that of
    the largest sampler worker (0 when sampling in-process).
    """

    fit_fingerprint: str
    norm_heads_fingerprint: str
    mixture_sha256: str | None
    mixture_path: str | None
    settings: Mapping[str, Any]
    sampler_settings: Mapping[str, Any]
    chunk_size: int
    action_dim: int
    normalization: str
    zero_range: str
    sampled: int
    fit: int
    heldout: int
    skipped_nonfinite: int
    token_lengths: TokenLengthStats | None
    max_action_tokens: int | None
    truncated: int
    truncation_rate: float | None
    roundtrip_mse: float | None
    invalid_decodes: int
    clamped_values: int
    compression_ratio: float | None
    histogram_edges: tuple[float, ...]
    datasets: tuple[DatasetFitStats, ...]
    heads: tuple[HeadFitStats, ...]
    tokenizer: Mapping[str, Any]
    timings: Mapping[str, float]
    peak_memory_mb: float
    peak_memory_workers_mb: float
    warnings: tuple[str, ...] = ()
    created: str = ""
    format_version: int = REPORT_FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (non-finite floats become None)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "datasets":
                value = [d.to_dict() for d in value]
            elif f.name == "heads":
                value = [h.to_dict() for h in value]
            elif f.name == "token_lengths":
                value = None if value is None else value.to_dict()
            out[f.name] = _jsonable(value)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FitReport:
        """Rebuild a report from `to_dict` output.

        Raises:
            FitError: When required fields are missing or malformed (names the field).
        """
        try:
            values = dict(data)
            values["token_lengths"] = _lengths_from(values.get("token_lengths"))
            values["datasets"] = tuple(DatasetFitStats(**d) for d in values["datasets"])
            heads = []
            for h in values["heads"]:
                h = dict(h)
                h["entries"] = tuple(h["entries"])
                h["histogram"] = tuple(h.get("histogram", ()))
                h["token_lengths"] = _lengths_from(h.get("token_lengths"))
                heads.append(HeadFitStats(**h))
            values["heads"] = tuple(heads)
            values["histogram_edges"] = tuple(values.get("histogram_edges", ()))
            values["warnings"] = tuple(values.get("warnings", ()))
            known = {f.name for f in dataclasses.fields(cls)}
            return cls(**{k: v for k, v in values.items() if k in known})
        except (KeyError, TypeError, ValueError) as exc:
            raise FitError(
                f"malformed fit report ({type(exc).__name__}: {exc}); refit the tokenizer"
            ) from exc

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``fit_report.json`` into ``directory`` atomically (temp file + rename)."""
        path = Path(directory) / REPORT_NAME
        write_text_atomic(path, json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> FitReport:
        """Read ``fit_report.json`` from a tokenizer directory (JSON only).

        Raises:
            FitError: When the file is missing or not a fit report.
        """
        path = Path(directory) / REPORT_NAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FitError(
                f"{path} does not exist; is {directory} a directory written by `fasttok fit`?"
            ) from None
        except (OSError, ValueError) as exc:
            raise FitError(f"cannot read {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise FitError(f"{path} is not a fit report (expected a JSON object)")
        return cls.from_dict(data)


def _lengths_from(value: Any) -> TokenLengthStats | None:
    return None if value is None else TokenLengthStats(**value)


def _jsonable(value: Any) -> Any:
    """Plain JSON types; non-finite floats -> None, numpy scalars -> Python, tuples -> lists."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "value") and isinstance(value.value, str):  # str enums (NormMode)
        return value.value
    return value


# --------------------------------------------------------------------------------------------------
# the plan: sampled corpus, split, normalized


@dataclass(frozen=True, slots=True)
class FitBatch:
    """Chunks of the fit corpus or of the held-out set: raw and normalized with `Normalize`.

    Attributes:
        raw: ``(B, T, D)`` float32 as sampled (zero-padded).
        normalized: ``(B, T, D)`` float32, ``Normalize(raw, head_index)``.
        dataset_index: ``(B,)`` entry index.
        head_index: ``(B,)`` head index.
        episode_index: ``(B,)`` episode of the start frame.
        start_frame: ``(B,)`` start frame within the episode.
    """

    raw: np.ndarray
    normalized: np.ndarray
    dataset_index: np.ndarray
    head_index: np.ndarray
    episode_index: np.ndarray
    start_frame: np.ndarray

    def __len__(self) -> int:
        return int(self.raw.shape[0])


class _Clock:
    """Accumulates wall time per phase."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


class FitPlan:
    """Sampled chunks split into fit corpus and held-out set, normalized with the torch `Normalize`.

    Both iterators re-run the (deterministic) sampler, so only one batch is in memory at a time.

    Args:
        sampler: The chunk sampler.
        normalize: The `Normalize` module built from the sampler's norm heads.
        settings: Resolved fit settings (``chunk_size`` set).
        clock: Optional phase timer (sampling / normalization time).
    """

    def __init__(
        self,
        sampler: ChunkSampler,
        normalize: Normalize,
        settings: FitSettings,
        *,
        clock: _Clock | None = None,
    ) -> None:
        self.sampler = sampler
        self.normalize = normalize
        self.settings = settings
        self._clock = clock or _Clock()
        heads = sampler.heads
        self.budgets = sampler.budgets(settings.total_chunks)
        # Expected fit-side pool per entry: the held-out side is a heldout_fraction share of the starts.
        pool = np.floor(self.budgets * (1.0 - settings.heldout_fraction)).astype(np.int64)
        if settings.max_fit_chunks is None or settings.max_fit_chunks >= int(pool.sum()):
            self.fit_quota = self.budgets.copy()  # no cap: every fit-side chunk is fit
        else:
            head_of = np.asarray(heads.dataset_to_head, dtype=np.int64)
            self.fit_quota = _stratified_quota(int(settings.max_fit_chunks), pool, head_of)
        # entry index -> position in the mixture (they coincide for parsed mixtures; do not assume it)
        indices = np.array([int(e.index) for e in sampler.resolved.entries], dtype=np.int64)
        self._position_of = np.full(int(indices.max(initial=0)) + 1, -1, dtype=np.int64)
        self._position_of[indices] = np.arange(indices.size)
        #: Per-entry counts of the last completed pass.
        self.fit_counts = np.zeros(len(self.budgets), np.int64)
        self.heldout_counts = np.zeros(len(self.budgets), np.int64)
        self.sampled_counts = np.zeros(len(self.budgets), np.int64)
        self.sample_report: tuple[DatasetSampleReport, ...] = ()
        #: Largest sampler-worker peak RSS (MiB) over the passes so far (0.0 when sampling in-process).
        self.peak_worker_mb = 0.0

    def _batches(self) -> Iterator[ChunkBatch]:
        iterator = self.sampler.sample(self.settings.total_chunks, seed=self.settings.seed)
        while True:
            with self._clock.phase("sample"):
                batch = next(iterator, None)
            if batch is None:
                self.sample_report = self.sampler.report
                self.peak_worker_mb = max(self.peak_worker_mb, self.sampler.peak_worker_memory_mb)
                return
            yield batch

    def _normalized(self, batch: ChunkBatch, rows: np.ndarray) -> FitBatch:
        import torch

        raw = np.ascontiguousarray(batch.actions[rows])
        head = np.ascontiguousarray(batch.head_index[rows])
        with self._clock.phase("normalize"), torch.no_grad():
            normalized = self.normalize(torch.from_numpy(raw), torch.from_numpy(head)).numpy()
        episode = batch.episode_index if batch.episode_index is not None else np.full(len(batch), -1)
        start = batch.start_frame if batch.start_frame is not None else np.arange(len(batch))
        return FitBatch(
            raw=raw,
            normalized=normalized,
            dataset_index=batch.dataset_index[rows],
            head_index=head,
            episode_index=np.asarray(episode, np.int64)[rows],
            start_frame=np.asarray(start, np.int64)[rows],
        )

    def _split(self) -> Iterator[tuple[ChunkBatch, np.ndarray, np.ndarray]]:
        """Yield each sampled batch with its held-out rows and its fit rows.

        A chunk is held out when its start ``(dataset, episode, start frame)`` hashes (with the seed)
        below ``heldout_fraction``: the split is over *starts*, so a start drawn twice lands on the same
        side and fit / held-out chunks never share a start. Fit-side chunks go to the fit corpus in
        delivery (random draw) order, up to the entry's ``fit_quota``; the rest are sampled but unused.
        """
        n = len(self.budgets)
        seen = np.zeros(n, np.int64)
        fit_taken = np.zeros(n, np.int64)
        self.sampled_counts = seen
        seed = self.settings.seed
        for batch in self._batches():
            positions = self._position_of[batch.dataset_index]
            if batch.episode_index is not None and batch.start_frame is not None:
                key = (batch.dataset_index, batch.episode_index, batch.start_frame)
            else:  # a sampler without chunk identities: split on the draw number instead
                key = (
                    batch.dataset_index,
                    np.zeros(len(batch), np.int64),
                    seen[positions] + np.arange(len(batch)),
                )
            held = _unit_hash(seed, *key) < self.settings.heldout_fraction
            fit_rows: list[np.ndarray] = []
            for position in np.unique(positions):
                candidates = np.flatnonzero((positions == position) & ~held)  # in delivery order
                seen[position] += int((positions == position).sum())
                room = int(self.fit_quota[position] - fit_taken[position])
                if room > 0 and candidates.size:
                    take = candidates[:room]
                    fit_taken[position] += take.size
                    fit_rows.append(take)
            yield (
                batch,
                np.flatnonzero(held),
                np.sort(np.concatenate(fit_rows)) if fit_rows else np.zeros(0, np.int64),
            )

    def fit_batches(self) -> Iterator[FitBatch]:
        """Stream the fit corpus (normalized); sets ``fit_counts`` when exhausted."""
        counts = np.zeros(len(self.budgets), np.int64)
        for batch, _, rows in self._split():
            if rows.size:
                counts += np.bincount(self._rows_positions(batch, rows), minlength=counts.size)
                yield self._normalized(batch, rows)
        self.fit_counts = counts

    def heldout_batches(self) -> Iterator[FitBatch]:
        """Stream the held-out set (normalized); sets ``heldout_counts`` when exhausted."""
        counts = np.zeros(len(self.budgets), np.int64)
        for batch, rows, _ in self._split():
            if rows.size:
                counts += np.bincount(self._rows_positions(batch, rows), minlength=counts.size)
                yield self._normalized(batch, rows)
        self.heldout_counts = counts

    def _rows_positions(self, batch: ChunkBatch, rows: np.ndarray) -> np.ndarray:
        return self._position_of[batch.dataset_index[rows]]


def _unit_hash(seed: int, dataset: np.ndarray, episode: np.ndarray, start: np.ndarray) -> np.ndarray:
    """A deterministic uniform number in [0, 1) per chunk start (splitmix64 of the start and the seed)."""
    with np.errstate(over="ignore"):
        x = np.asarray(dataset, np.int64).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        x ^= np.asarray(episode, np.int64).astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
        x ^= np.asarray(start, np.int64).astype(np.uint64) * np.uint64(0x165667B19E3779F9)
        x ^= np.full(x.shape, seed, np.uint64) * np.uint64(0xD6E8FEB86659FD93)
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) / float(2**53)


def _stratified_quota(total: int, pool: np.ndarray, head_of: np.ndarray) -> np.ndarray:
    """Split ``total`` over heads in proportion to their pools, then over each head's entries.

    Every head with a non-empty pool gets at least one chunk when ``total`` allows it, so rare heads
    still shape the vocabulary.
    """
    out = np.zeros(pool.size, np.int64)
    usable = (head_of >= 0) & (pool > 0)
    if total <= 0 or not usable.any():
        return out
    heads = np.unique(head_of[usable])
    head_pool = np.array([pool[usable & (head_of == h)].sum() for h in heads], dtype=np.int64)
    total = min(total, int(head_pool.sum()))
    head_quota = largest_remainder(total, head_pool.astype(np.float64))
    if total >= heads.size:
        for i in np.flatnonzero(head_quota == 0):
            donor = int(np.argmax(head_quota))
            head_quota[donor] -= 1
            head_quota[i] += 1
    for h, quota in zip(heads, head_quota, strict=True):
        members = np.flatnonzero(usable & (head_of == h))
        out[members] = largest_remainder(int(quota), pool[members].astype(np.float64))
    return np.minimum(out, pool)


# --------------------------------------------------------------------------------------------------
# the pipeline


@dataclass
class _Prepared:
    config: MixtureConfig | None
    resolved: ResolvedMixture | None
    heads: NormHeads
    sampler: ChunkSampler
    settings: FitSettings
    preflight: PreflightResult | None


def _run_preflight(
    config: MixtureConfig, resolved: ResolvedMixture, heads: NormHeads | None, settings: FitSettings
) -> PreflightResult:
    """Run the preflight on the objects the fit uses; raise `PreflightError` on any error."""
    from fasttok_plugin.preflight import run_preflight  # lazy: the core never imports pluggy at import

    result = run_preflight(
        config,
        resolved=resolved,
        norm_heads=heads,
        max_action_dim=settings.max_action_dim,
        chunk_size=settings.chunk_size,
    )
    result.raise_for_errors()
    return result


def _prepare(
    source: str | os.PathLike[str] | MixtureConfig | FitSource,
    settings: FitSettings,
    *,
    preflight: bool,
    clock: _Clock,
) -> _Prepared:
    from fasttok_plugin.heads import NormHeadsError, build_norm_heads
    from fasttok_plugin.mixture import MixtureConfig, MixtureError, load_mixture
    from fasttok_plugin.resolve import resolve_mixture

    if isinstance(source, (str, os.PathLike, MixtureConfig)):
        with clock.phase("resolve"):
            if isinstance(source, MixtureConfig):
                config = source
            else:
                try:
                    config = load_mixture(source)
                except MixtureError as exc:
                    if preflight and not getattr(exc, "unreadable", False):
                        # Structural problems come back as preflight findings (FT001), like fasttok-preflight.
                        from fasttok_plugin.preflight import run_preflight

                        run_preflight(source).raise_for_errors()
                    raise
            settings = settings.resolved(config)
            resolved = resolve_mixture(config)
        with clock.phase("norm_heads"):
            heads: NormHeads | None
            try:
                heads = build_norm_heads(resolved, int(settings.max_action_dim or DEFAULT_MAX_ACTION_DIM))
            except NormHeadsError:
                heads = None  # the preflight reports why; without preflight, re-raise below
        result = None
        if preflight:
            with clock.phase("preflight"):
                result = _run_preflight(config, resolved, heads, settings)
        if heads is None:
            heads = build_norm_heads(resolved, int(settings.max_action_dim or DEFAULT_MAX_ACTION_DIM))
        heads.raise_for_errors()
        sampler = ChunkSampler(
            resolved,
            heads,
            chunk_size=int(settings.chunk_size or DEFAULT_CHUNK_SIZE),
            seed=settings.seed,
            workers=settings.workers,
        )
        return _Prepared(config, resolved, heads, sampler, settings, result)

    if not (hasattr(source, "norm_heads") and hasattr(source, "chunk_sampler")):
        raise TypeError(
            "source must be a mixture path, a MixtureConfig, or an object exposing norm_heads and "
            f"chunk_sampler (FitSource); got {type(source).__name__}"
        )
    heads = source.norm_heads
    sampler = source.chunk_sampler
    resolved = getattr(source, "resolved_mixture", None)
    config = resolved.config if resolved is not None else None
    if settings.chunk_size is not None and settings.chunk_size != sampler.chunk_size:
        raise FitError(
            f"settings.chunk_size={settings.chunk_size} but the source's sampler draws chunks of "
            f"{sampler.chunk_size}; pass the same chunk size"
        )
    settings = dataclasses.replace(settings, chunk_size=sampler.chunk_size)
    if settings.max_action_dim is not None and settings.max_action_dim != heads.max_action_dim:
        raise FitError(
            f"settings.max_action_dim={settings.max_action_dim} but the source's norm heads are "
            f"{heads.max_action_dim} wide; pass the same max_action_dim"
        )
    settings = dataclasses.replace(settings, max_action_dim=heads.max_action_dim)
    if settings.workers > 0 and settings.workers != sampler.workers and isinstance(sampler, ChunkSampler):
        # settings.workers asks for processes (the Lightning callback's `workers`); 0 keeps the source's.
        sampler = sampler.with_workers(settings.workers)
    result = None
    if preflight:
        if resolved is None:
            logger.info("the fit source exposes no resolved_mixture: preflight skipped")
        else:
            with clock.phase("preflight"):
                result = _run_preflight(config, resolved, heads, settings)
    heads.raise_for_errors()
    return _Prepared(config, resolved, heads, sampler, settings, result)


def _bar(progress: bool, total: int | None, desc: str, unit: str = "chunk") -> Any:
    import sys

    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not progress, leave=True, file=sys.stderr)


class _CodecNoise(logging.Filter):
    """Hides the codec's per-batch clamp / decode warnings during evaluation.

    The evaluation counts the same events itself (``clamped_values``, ``invalid_decodes``) and reports
    each total once, instead of one log line per batch.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("encode:", "decode:"))


@dataclass
class _HeadAccumulator:
    lengths: list[np.ndarray] = field(default_factory=list)
    sq_error: float = 0.0
    elements: int = 0
    invalid: int = 0
    truncated: int = 0


def _check_out_dir(out_dir: Path) -> None:
    """Refuse early (before any compute) to replace a directory that is not a tokenizer directory."""
    from fasttok_plugin.codec import PROCESSOR_CONFIG_NAME, SIDECAR_NAME

    if out_dir.exists():
        if not out_dir.is_dir():
            raise OutDirError(f"{out_dir} exists and is not a directory; choose another path")
        names = {p.name for p in out_dir.iterdir()}
        if names and not names & {PROCESSOR_CONFIG_NAME, SIDECAR_NAME, REPORT_NAME}:
            raise OutDirError(
                f"{out_dir} is a non-empty directory that is not a tokenizer directory; choose "
                f"another path (nothing was overwritten)"
            )
        return
    # The tokenizer is staged next to out_dir: its nearest existing ancestor must be a writable folder,
    # or the fit would only fail at the very end.
    ancestor = out_dir.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutDirError(
            f"cannot create {out_dir}: {ancestor} is a file, not a directory; choose another path"
        )
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutDirError(f"cannot create {out_dir}: {ancestor} is not writable; choose another path")


def _save_atomically(tokenizer: FastTokenizer, report: FitReport, out_dir: Path) -> Path:
    """Tokenizer files + fit_report.json built in one temp directory, then renamed into place."""
    target = out_dir.absolute()
    _check_out_dir(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging_root = Path(tempfile.mkdtemp(prefix=f".{target.name}.fit-", dir=target.parent))
    try:
        staged = tokenizer.save(staging_root / "tokenizer")
        report.save(staged)
        replace_directory(staged, target)
    finally:
        shutil.rmtree(staging_root, ignore_errors=True)
    return target


def fit_tokenizer(
    source: str | os.PathLike[str] | MixtureConfig | FitSource,
    settings: FitSettings | None = None,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
    preflight: bool = True,
    on_plan: Callable[[FitPlan], None] | None = None,
) -> tuple[FastTokenizer, FitReport]:
    """Fit a FAST tokenizer on a mixture, normalized exactly as the policy will see it.

    Args:
        source: A mixture file, a parsed `MixtureConfig`, or a `FitSource` (norm heads + sampler).
        settings: Fit settings (default `FitSettings()`); unset chunk size / action dim come from the
            mixture (or the source), else the package defaults.
        out_dir: When given, the tokenizer and ``fit_report.json`` are written there in one atomic
            directory rename (an existing tokenizer directory is replaced).
        progress: Show a tqdm progress bar per phase.
        preflight: Run the preflight first (errors stop the fit before anything is sampled).
        on_plan: Called with the `FitPlan` before sampling (lets callers inspect the corpus split).

    Returns:
        ``(tokenizer, report)``; ``tokenizer.metadata`` carries the fingerprints, normalization
        convention, chunk size, action dim and the report.

    Raises:
        PreflightError: The preflight found errors (nothing was sampled).
        MixtureError: The mixture file is unreadable.
        NormHeadsError: The heads have errors and ``preflight`` is False.
        SamplingError: Invalid weights.
        OutDirError: ``out_dir`` is a file, a non-tokenizer folder, or cannot be created (checked first).
        FitError: Invalid settings, unreadable dataset frames, or nothing to fit.
        CodecError: The fit corpus does not fit the vocabulary (raise vocab_size or lower scale).
    """
    from fasttok_plugin.codec import FastTokenizer
    from fasttok_plugin.normalize import Normalize

    settings = settings or FitSettings()
    clock = _Clock()
    if out_dir is not None:
        _check_out_dir(Path(out_dir).absolute())
    prepared = _prepare(source, settings, preflight=preflight, clock=clock)
    settings = prepared.settings
    heads, sampler = prepared.heads, prepared.sampler
    chunk_size = int(sampler.chunk_size)
    width = int(heads.max_action_dim)
    sampler_settings = sampler.settings()
    fingerprint = fit_fingerprint(heads, settings, sampler_settings)

    normalize = Normalize(
        heads, mode=settings.normalization, zero_range=settings.zero_range, eps=settings.eps
    )
    plan = FitPlan(sampler, normalize, settings, clock=clock)
    if on_plan is not None:
        on_plan(plan)
    total = int(plan.budgets.sum())
    logger.info(
        "fit: %d chunks of %dx%d over %d entries / %d heads (fit quota %d, held-out about %d)",
        total,
        chunk_size,
        width,
        len(plan.budgets),
        heads.num_heads,
        int(plan.fit_quota.sum()),
        round(settings.heldout_fraction * total),
    )

    # Pass 1: sample -> split -> Normalize -> FastTokenizer.fit (streamed).
    bar = _bar(progress, total, "sample + normalize")
    fit_bar = None

    def fit_stream() -> Iterator[np.ndarray]:
        fed = 0
        for batch in plan.fit_batches():
            bar.update(len(batch))
            fed += len(batch)
            yield batch.normalized
        bar.update(max(0, total - bar.n))
        bar.close()
        _check_sample_errors(plan.sample_report, settings)
        if fed == 0:
            raise FitError(
                "the fit corpus is empty: no sampled chunk is on the fit side (see the per-dataset "
                "report); raise total_chunks or lower heldout_fraction"
            )
        nonlocal fit_bar
        fit_bar = _bar(progress, 1, "BPE fit", unit="step")

    before = dict(clock.seconds)
    start = time.perf_counter()
    tokenizer = FastTokenizer.fit(
        fit_stream(),
        vocab_size=settings.vocab_size,
        scale=float(settings.scale),
        min_frequency=settings.min_frequency,
        max_token_length=settings.max_token_length,
        pipeline=settings.pipeline,
    )
    elapsed = time.perf_counter() - start
    in_stream = sum(clock.seconds.get(k, 0.0) - before.get(k, 0.0) for k in ("sample", "normalize"))
    clock.seconds["fit"] = elapsed - in_stream
    if fit_bar is not None:
        fit_bar.update(1)
        fit_bar.close()
    fit_counts = plan.fit_counts.copy()
    sample_report = plan.sample_report
    n_fit = int(fit_counts.sum())
    if n_fit == 0:
        raise FitError("no chunk could be sampled for the fit corpus; see the per-dataset errors")

    # Pass 2: the held-out chunks (same seed, same stream) -> encode / decode.
    expected_heldout = max(1, round(settings.heldout_fraction * total))
    eval_bar = _bar(progress, expected_heldout, "evaluate held-out")
    acc = [_HeadAccumulator() for _ in heads.keys]
    native = np.array(heads.native_dims, dtype=np.int64)
    clamped = 0
    noise = _CodecNoise()
    codec_logger = logging.getLogger("fasttok_plugin.codec")
    codec_logger.addFilter(noise)
    eval_start = time.perf_counter()
    before = dict(clock.seconds)
    try:
        for batch in plan.heldout_batches():
            for lo in range(0, len(batch), _EVAL_BATCH):
                chunks = batch.normalized[lo : lo + _EVAL_BATCH]
                head = batch.head_index[lo : lo + _EVAL_BATCH]
                encoded = tokenizer.encode_padded(chunks)
                clamped += encoded.clamped_values
                decoded = tokenizer.decode(encoded)
                dim_mask = np.arange(width)[None, None, :] < native[head][:, None, None]
                diff = np.where(dim_mask, decoded.actions - chunks, 0.0).astype(np.float64)
                row_error = np.square(diff).sum(axis=(1, 2))
                for h in np.unique(head):
                    rows = head == h
                    a = acc[int(h)]
                    a.lengths.append(encoded.lengths[rows])
                    good = rows & decoded.valid
                    a.sq_error += float(row_error[good].sum())
                    a.elements += int(good.sum()) * chunk_size * int(native[h])
                    a.invalid += int((rows & ~decoded.valid).sum())
                    if settings.max_action_tokens is not None:
                        a.truncated += int((encoded.lengths[rows] > settings.max_action_tokens).sum())
            eval_bar.update(len(batch))
        eval_bar.total = max(eval_bar.n, 1)  # the held-out count is only known at the end
        eval_bar.refresh()
    finally:
        codec_logger.removeFilter(noise)
        eval_bar.close()
    in_stream = sum(clock.seconds.get(k, 0.0) - before.get(k, 0.0) for k in ("sample", "normalize"))
    clock.seconds["evaluate"] = time.perf_counter() - eval_start - in_stream
    if clamped:
        logger.warning(
            "%d held-out quantized value(s) fell outside the fitted token range and were clamped", clamped
        )

    report = _build_report(
        prepared=prepared,
        plan=plan,
        fit_counts=fit_counts,
        sample_report=sample_report,
        acc=acc,
        clamped=clamped,
        tokenizer=tokenizer,
        fingerprint=fingerprint,
        sampler_settings=sampler_settings,
        clock=clock,
    )
    tokenizer.metadata.update(
        {
            "fit_fingerprint": fingerprint,
            "norm_heads_fingerprint": heads.fingerprint,
            "normalization": str(settings.normalization),
            "zero_range": settings.zero_range,
            "eps": float(settings.eps),
            "chunk_size": chunk_size,
            "action_dim": width,
            "head_keys": list(heads.keys),
            "fit_report": report.to_dict(),
        }
    )
    if out_dir is not None:
        start = time.perf_counter()
        _save_atomically(tokenizer, report, Path(out_dir))
        logger.info(
            "saved tokenizer and %s to %s in %.2f s", REPORT_NAME, out_dir, time.perf_counter() - start
        )
    return tokenizer, report


def _check_sample_errors(reports: Sequence[DatasetSampleReport], settings: FitSettings) -> None:
    failed = [r for r in reports if r.error is not None and r.head >= 0]
    if not failed:
        return
    lines = "\n".join(f"  - entry {r.entry} ({r.name}): {r.error}" for r in failed)
    if settings.on_dataset_error == "raise":
        raise FitError(
            f"{len(failed)} dataset(s) could not be sampled:\n{lines}\nfix or remove them (or fit without "
            f"them with on_dataset_error='skip')"
        )
    logger.warning("fitting without %d dataset(s) that could not be sampled:\n%s", len(failed), lines)


def _build_report(
    *,
    prepared: _Prepared,
    plan: FitPlan,
    fit_counts: np.ndarray,
    sample_report: Sequence[DatasetSampleReport],
    acc: Sequence[_HeadAccumulator],
    clamped: int,
    tokenizer: FastTokenizer,
    fingerprint: str,
    sampler_settings: Mapping[str, Any],
    clock: _Clock,
) -> FitReport:
    settings, heads = prepared.settings, prepared.heads
    chunk_size, width = int(prepared.sampler.chunk_size), int(heads.max_action_dim)
    values = chunk_size * width
    heldout_counts = plan.heldout_counts
    by_entry = {r.entry: r for r in sample_report}

    datasets = []
    for position, entry in enumerate(prepared.sampler.resolved.entries):
        r = by_entry.get(int(entry.index))
        datasets.append(
            DatasetFitStats(
                entry=int(entry.index),
                name=entry.name,
                head=int(heads.dataset_to_head[position]),
                requested=int(plan.budgets[position]),
                sampled=0 if r is None else r.sampled,
                skipped_nonfinite=0 if r is None else r.skipped_nonfinite,
                fit=int(fit_counts[position]),
                heldout=int(heldout_counts[position]),
                valid_starts=0 if r is None else r.valid_starts,
                repeated_starts=0 if r is None else r.repeated_starts,
                freq=None if r is None else r.freq,
                error=None if r is None else r.error,
            )
        )

    all_lengths = [np.concatenate(a.lengths) if a.lengths else np.zeros(0, np.int64) for a in acc]
    merged = np.concatenate(all_lengths) if all_lengths else np.zeros(0, np.int64)
    if merged.size:
        hi = int(merged.max()) + 1
        lo = int(merged.min())
        edges = np.unique(np.linspace(lo, hi, min(_HISTOGRAM_BINS, hi - lo) + 1).round())
    else:
        edges = np.zeros(0)
    budget = settings.max_action_tokens

    head_stats = []
    for h, key in enumerate(heads.keys):
        members = [i for i, d in enumerate(datasets) if d.head == h]
        lengths = all_lengths[h]
        stats = TokenLengthStats.from_lengths(lengths)
        a = acc[h]
        head_stats.append(
            HeadFitStats(
                head=h,
                key=key,
                entries=tuple(datasets[i].entry for i in members),
                native_dim=int(heads.native_dims[h]),
                fallback=any(datasets[i].entry in heads.fallback_entries for i in members),
                sampled=sum(datasets[i].sampled for i in members),
                fit=sum(datasets[i].fit for i in members),
                heldout=sum(datasets[i].heldout for i in members),
                token_lengths=stats,
                truncated=a.truncated,
                truncation_rate=(a.truncated / lengths.size)
                if (budget is not None and lengths.size)
                else None,
                roundtrip_mse=(a.sq_error / a.elements) if a.elements else None,
                invalid_decodes=a.invalid,
                compression_ratio=(values / stats.mean) if stats is not None and stats.mean > 0 else None,
                histogram=tuple(int(c) for c in np.histogram(lengths, bins=edges)[0])
                if edges.size > 1
                else (),
            )
        )

    overall = TokenLengthStats.from_lengths(merged)
    truncated = sum(a.truncated for a in acc)
    sq_error = sum(a.sq_error for a in acc)
    elements = sum(a.elements for a in acc)
    own, children = peak_rss_mb(), plan.peak_worker_mb
    warnings: list[str] = []
    if prepared.preflight is not None:
        warnings += [str(f) for f in prepared.preflight.warnings]
    warnings += heads.warnings()
    skipped = sum(d.skipped_nonfinite for d in datasets)
    if skipped:
        warnings.append(f"{skipped} sampled chunk(s) held NaN/Inf and were skipped (see datasets)")
    if clamped:
        warnings.append(f"{clamped} held-out value(s) fell outside the fitted token range (clamped)")
    invalid = sum(a.invalid for a in acc)
    if invalid:
        warnings.append(f"{invalid} held-out chunk(s) did not decode back to {chunk_size}x{width} values")
    config = prepared.config
    return FitReport(
        fit_fingerprint=fingerprint,
        norm_heads_fingerprint=heads.fingerprint,
        mixture_sha256=None if config is None else config.sha256,
        mixture_path=None if config is None or config.path is None else str(config.path),
        settings=_jsonable(settings.to_dict()),
        sampler_settings=_jsonable(dict(sampler_settings)),
        chunk_size=chunk_size,
        action_dim=width,
        normalization=settings.normalization,
        zero_range=settings.zero_range,
        sampled=sum(d.sampled for d in datasets),
        fit=int(fit_counts.sum()),
        heldout=int(heldout_counts.sum()),
        skipped_nonfinite=skipped,
        token_lengths=overall,
        max_action_tokens=budget,
        truncated=truncated,
        truncation_rate=(truncated / merged.size) if (budget is not None and merged.size) else None,
        roundtrip_mse=(sq_error / elements) if elements else None,
        invalid_decodes=invalid,
        clamped_values=int(clamped),
        compression_ratio=(values / overall.mean) if overall is not None and overall.mean > 0 else None,
        histogram_edges=tuple(float(e) for e in edges),
        datasets=tuple(datasets),
        heads=tuple(head_stats),
        tokenizer={
            "pipeline": tokenizer.pipeline,
            "vocab_size": int(tokenizer.vocab_size),
            "learned_vocab": int(tokenizer.tokenizer.get_vocab_size()),
            "scale": float(tokenizer.scale),
            "min_token": int(tokenizer.min_token),
            "max_token": int(tokenizer.max_token),
        },
        timings={k: round(v, 4) for k, v in clock.seconds.items()},
        peak_memory_mb=round(own, 1),
        peak_memory_workers_mb=round(children, 1),
        warnings=tuple(warnings),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
