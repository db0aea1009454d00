"""The fit report: what a fit did and measured, per dataset and per head, and its JSON file."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fasttok_plugin.atomic import write_text_atomic
from fasttok_plugin.errors import FitError
from fasttok_plugin.fit._jsonable import jsonable
from fasttok_plugin.mixture._source import read_regular_file

__all__ = [
    "REPORT_FORMAT_VERSION",
    "REPORT_KEY",
    "REPORT_NAME",
    "DatasetFitStats",
    "FitReport",
    "HeadFitStats",
    "TokenLengthStats",
]

#: File name of the report in a tokenizer directory.
REPORT_NAME = "fit_report.json"
REPORT_FORMAT_VERSION = 1
#: Key of the report (`FitReport.to_dict`) in a fitted tokenizer's sidecar metadata.
REPORT_KEY = "fit_report"


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
    def from_lengths(cls, lengths: np.ndarray, weights: np.ndarray | None = None) -> TokenLengthStats | None:
        """Summarize an array of per-chunk token counts (None when empty).

        Args:
            lengths: Token count per chunk.
            weights: Chunks each count stands for (None: one each). With a capped per-head sample, the
                mixture-wide numbers weigh each head's chunks back to its held-out share; percentiles
                are then the weighted inverted CDF (numpy's default interpolation without weights).
        """
        values = np.asarray(lengths, dtype=np.float64)
        if values.size == 0:
            return None
        if weights is None or np.all(weights == weights[0]):
            p50, p90, p99 = np.percentile(values, [50, 90, 99])
            mean = float(values.mean())
        else:
            w = np.asarray(weights, dtype=np.float64)
            order = np.argsort(values, kind="stable")
            cumulative = np.cumsum(w[order])
            at = np.searchsorted(cumulative, np.array([0.5, 0.9, 0.99]) * cumulative[-1], side="left")
            p50, p90, p99 = values[order][np.minimum(at, values.size - 1)]
            mean = float((values * w).sum() / w.sum())
        return cls(
            count=int(values.size),
            mean=mean,
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
    #: Held-out episodes of the entry and held-out chunks evaluated (None in reports before they were).
    heldout_episodes: int | None = None
    heldout_evaluated: int | None = None

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
    #: Held-out episodes of the head and held-out chunks evaluated (None in reports before they were).
    heldout_episodes: int | None = None
    heldout_evaluated: int | None = None

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

    Token lengths, truncation and round-trip error are measured on **held-out** chunks only: whole
    episodes held out per head (``heldout_split`` ``"episode"``; ``"start"`` in reports written before
    the episode split), of which ``heldout_evaluated`` chunks (at most ``max_heldout_chunks_per_head`` per
    head) are encoded; ``heldout`` counts every held-out chunk sampled. The mixture-wide token lengths,
    ``truncation_rate`` and ``roundtrip_mse`` weigh each evaluated chunk by its head's held-out chunks per
    evaluated chunk, so a cap does not tilt them towards small heads (``truncated`` and
    ``invalid_decodes`` count evaluated chunks).
    ``compression_ratio`` is ``T * D / mean held-out tokens``. ``timings`` are seconds per phase;
    ``peak_memory_mb`` is this process's peak RSS (``ru_maxrss``), ``peak_memory_workers_mb`` that of
    the largest sampler worker (0 when sampling in-process). ``head_grouping`` is how the entries were
    grouped into the heads (``robot_control``, ``global`` or ``dataset``); ``stats_source`` where their
    stats came from (``stored`` stats.json or ``data``, computed from the frames); ``transforms`` the
    action transform of each entry (`ActionTransform.describe`; empty when no entry is transformed).
    ``layout`` is how the chunks were tokenized: ``padded`` to ``action_dim``, or ``native`` (each at its
    entry's width; the token lengths, round-trip error and ``compression_ratio`` then count ``T x`` that
    width).
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
    heldout_split: str = "start"
    heldout_evaluated: int | None = None
    head_grouping: str = "robot_control"  # reports written before #11 grouped by robot/control mode
    stats_source: str = "stored"  # reports written before #11 used the stored stats
    transforms: tuple[str, ...] = ()  # per entry; () when none is transformed (and in older reports)
    layout: str = "padded"  # reports written before #12 measured padded chunks

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
            out[f.name] = jsonable(value)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FitReport:
        """Rebuild a report from `to_dict` output.

        Raises:
            FitError: When required fields are missing or malformed (names the field).
        """
        try:
            values = dict(data)
            _check_types(cls, values, "")
            values["token_lengths"] = _lengths_from(values.get("token_lengths"), "token_lengths")
            values["datasets"] = tuple(
                DatasetFitStats(**_checked(DatasetFitStats, d, f"datasets[{i}]"))
                for i, d in enumerate(values["datasets"])
            )
            values["heads"] = tuple(_head_from(h, f"heads[{i}]") for i, h in enumerate(values["heads"]))
            values["histogram_edges"] = tuple(values.get("histogram_edges", ()))
            values["warnings"] = tuple(values.get("warnings", ()))
            values["transforms"] = tuple(str(t) for t in values.get("transforms", ()))
            _check_tokenizer(values["tokenizer"])
            known = {f.name for f in dataclasses.fields(cls)}
            return cls(**{k: v for k, v in values.items() if k in known})
        except _Malformed as exc:
            raise FitError(f"malformed fit report: {exc}; refit the tokenizer") from None
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
            # Only a regular file of bounded size: a FIFO or device named fit_report.json must not hang.
            data = json.loads(read_regular_file(path).decode("utf-8"))
        except FileNotFoundError:
            raise FitError(
                f"{path} does not exist; is {directory} a directory written by `fasttok fit`?"
            ) from None
        except (OSError, ValueError, RecursionError) as exc:
            raise FitError(f"cannot read {path}: {exc}") from None
        if not isinstance(data, dict):
            raise FitError(f"{path} is not a fit report (expected a JSON object)")
        return cls.from_dict(data)


def _lengths_from(value: Any, where: str) -> TokenLengthStats | None:
    return None if value is None else TokenLengthStats(**_checked(TokenLengthStats, value, where))


def _head_from(value: Any, where: str) -> HeadFitStats:
    head = _checked(HeadFitStats, value, where)
    head["entries"] = tuple(head["entries"])
    head["histogram"] = tuple(head.get("histogram", ()))
    head["token_lengths"] = _lengths_from(head.get("token_lengths"), f"{where}.token_lengths")
    return HeadFitStats(**head)


# ------------------------------------------------------------------------------------- type checks
# A report is read back by `fasttok inspect` and the callback: a hand-edited or truncated file must be
# named as malformed (field and expected kind), never crash whatever renders it.


class _Malformed(Exception):
    """A field of the report has the wrong JSON kind (the message names it)."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# Annotation (as written on the dataclass fields) -> (test, what the message says is expected).
_KINDS: dict[str, tuple[Any, str]] = {
    "int": (_is_int, "an integer"),
    "float": (_is_number, "a number"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "Mapping[str, Any]": (lambda v: isinstance(v, dict), "an object"),
    "Mapping[str, float]": (
        lambda v: isinstance(v, dict) and all(_is_number(x) for x in v.values()),
        "an object of numbers",
    ),
    "tuple[int, ...]": (lambda v: isinstance(v, list) and all(map(_is_int, v)), "a list of integers"),
    "tuple[float, ...]": (lambda v: isinstance(v, list) and all(map(_is_number, v)), "a list of numbers"),
    "tuple[str, ...]": (
        lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
        "a list of strings",
    ),
    "TokenLengthStats": (lambda v: isinstance(v, dict), "an object"),
    "tuple[DatasetFitStats, ...]": (lambda v: isinstance(v, list), "a list of objects"),
    "tuple[HeadFitStats, ...]": (lambda v: isinstance(v, list), "a list of objects"),
}


def _check_types(cls: type, values: Mapping[str, Any], where: str) -> None:
    """Raise `_Malformed` for the first field of ``values`` whose kind does not match ``cls``'s annotation."""
    for field in dataclasses.fields(cls):
        if field.name not in values:
            continue  # a missing required field is named by the constructor's TypeError
        annotation = str(field.type)
        optional = annotation.endswith(" | None")
        kind = _KINDS.get(annotation.removesuffix(" | None"))
        value = values[field.name]
        if kind is None or (optional and value is None):
            continue
        test, expected = kind
        if not test(value):
            name = f"{where}.{field.name}" if where else field.name
            raise _Malformed(f"{name} must be {expected}{' or null' if optional else ''}, got {value!r:.60}")


def _checked(cls: type, value: Any, where: str) -> dict[str, Any]:
    """``value`` as a dict of ``cls``'s fields, type-checked."""
    if not isinstance(value, dict):
        raise _Malformed(f"{where} must be an object, got {value!r:.60}")
    _check_types(cls, value, where)
    return dict(value)


_TOKENIZER_KINDS = {"scale": "float", "vocab_size": "int", "min_token": "int", "max_token": "int"}


def _check_tokenizer(tokenizer: Mapping[str, Any]) -> None:
    for key, kind in _TOKENIZER_KINDS.items():
        value = tokenizer.get(key)
        test, expected = _KINDS[kind]
        if value is not None and not test(value):
            raise _Malformed(f"tokenizer.{key} must be {expected} or null, got {value!r:.60}")
