"""The fit fingerprint: one hash of everything that determines a fitted tokenizer, and what it leaves out.

A tokenizer records its fingerprint in its sidecar metadata (``fasttok.json``) under `FINGERPRINT_KEY`;
the Lightning callback reuses a tokenizer folder only when the fingerprints agree, and uses
`describe_difference` to say what changed when they do not.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fasttok_plugin.errors import FitError
from fasttok_plugin.fit._jsonable import jsonable
from fasttok_plugin.fit.report import REPORT_KEY, FitReport

if TYPE_CHECKING:  # pragma: no cover - typing only
    from fasttok_plugin.fit.settings import FitSettings
    from fasttok_plugin.heads import NormHeads

__all__ = [
    "FINGERPRINT_KEY",
    "NORM_HEADS_KEY",
    "NOT_FINGERPRINTED",
    "describe_difference",
    "fit_fingerprint",
]

# /2: the sampler settings carry each entry's data identity (root, episode lengths, data file size +
# mtime), and the held-out split is by episode.
_FIT_FINGERPRINT_VERSION = "fasttok-fit/2"
#: Key of the fit fingerprint in a tokenizer's sidecar metadata.
FINGERPRINT_KEY = "fit_fingerprint"
#: Key of the norm-heads fingerprint in a tokenizer's sidecar metadata.
NORM_HEADS_KEY = "norm_heads_fingerprint"
#: `FitSettings` fields that never change the tokenizer, so `fit_fingerprint` leaves them out.
NOT_FINGERPRINTED = frozenset(
    {"workers", "max_action_tokens", "max_heldout_chunks_per_head", "on_dataset_error"}
)


def fit_fingerprint(
    norm_heads: NormHeads,
    settings: FitSettings,
    sampler_settings: Mapping[str, Any],
    *,
    data_identity: bool = True,
) -> str:
    """Fingerprint of everything that determines a fitted tokenizer (pure, cheap: no data is read).

    sha256 of canonical JSON holding the norm-heads fingerprint, chunk size, action dim, codec settings,
    normalization convention, the sampling / split settings and ``sampler_settings``, which hold each
    entry's transform key when it has one (`ActionTransform.key`) and its data identity
    (`DatasetMeta.data_identity`: resolved root, selected episodes' indices and lengths, size and
    ``mtime_ns`` of every data file), so another corpus is another fingerprint. The settings in
    `NOT_FINGERPRINTED` (``workers``, ``max_action_tokens``, ``max_heldout_chunks_per_head``,
    ``on_dataset_error``) are left out: they never change the tokenizer (only the report).

    Args:
        norm_heads: The mixture's norm heads.
        settings: Fit settings (``chunk_size`` None: taken from ``sampler_settings``).
        sampler_settings: `ChunkSampler.settings` of the sampler the fit uses.
        data_identity: False leaves the entries' data identities out: a fingerprint that agrees between
            processes seeing the same corpus through other paths or copies (node-local disks), for
            comparing ranks; the tokenizer's recorded fingerprint always includes them.

    Returns:
        A 64-character hex digest.

    Raises:
        FitError: When ``settings`` disagree with the heads or the sampler (chunk size, action dim,
            head grouping, stats source).
    """
    chunk_size = _check_agreement(norm_heads, settings, sampler_settings)
    source = getattr(norm_heads, "stats_source", "stored")
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
        "sampler": jsonable(_sampler_part(sampler_settings, data_identity)),
    }
    # Only a non-default source is written, so every stored-stats fingerprint stays what it was.
    if source != "stored":
        payload["normalization"]["stats_source"] = source  # type: ignore[index]
    if settings.order != "time":  # likewise the flatten order: default fingerprints stay what they were
        payload["codec"]["order"] = settings.order  # type: ignore[index]
    if settings.rounding != "nearest":  # likewise the rounding: token_aware encodes other ids, same BPE
        payload["codec"]["rounding"] = settings.rounding  # type: ignore[index]
    # Likewise the layout: padded fingerprints stay what they were.
    layout = getattr(settings, "layout", "padded")
    if layout != "padded":
        payload["codec"]["layout"] = layout  # type: ignore[index]
    # Likewise a convention (its formula, layout and fields) only when one is set.
    if settings.convention is not None:
        from fasttok_plugin.conventions import convention_from_dict

        payload["normalization"]["convention"] = convention_from_dict(settings.convention).to_dict()  # type: ignore[index]
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _check_agreement(
    norm_heads: NormHeads, settings: FitSettings, sampler_settings: Mapping[str, Any]
) -> Any:
    """Return the chunk size; raise `FitError` where ``settings`` disagree with the heads or the sampler."""
    sampler_chunk = sampler_settings.get("chunk_size")
    chunk_size = settings.chunk_size if settings.chunk_size is not None else sampler_chunk
    if sampler_chunk is not None and chunk_size != sampler_chunk:
        raise FitError(f"chunk_size {chunk_size} differs from the sampler's chunk_size {sampler_chunk}")
    if settings.max_action_dim is not None and settings.max_action_dim != norm_heads.max_action_dim:
        raise FitError(
            f"max_action_dim {settings.max_action_dim} differs from the norm heads' "
            f"{norm_heads.max_action_dim}; build the heads with the same max_action_dim"
        )
    # The grouping is in the norm heads' fingerprint (when not the default); a setting must agree with it.
    grouping = getattr(norm_heads, "grouping", "robot_control")
    if settings.head_grouping is not None and settings.head_grouping != grouping:
        raise FitError(
            f"head_grouping {settings.head_grouping!r} differs from the norm heads' {grouping!r}; "
            "build the heads with the same grouping"
        )
    # Likewise the stats source (the heads' fingerprint covers their stats from the data).
    source = getattr(norm_heads, "stats_source", "stored")
    if settings.stats_source is not None and settings.stats_source != source:
        raise FitError(
            f"stats_source {settings.stats_source!r} differs from the norm heads' {source!r}; build the "
            f"heads with stats_source={settings.stats_source!r}"
        )
    _check_transform(settings, sampler_settings)
    return chunk_size


def _check_transform(settings: FitSettings, sampler_settings: Mapping[str, Any]) -> None:
    """A given ``settings.transform`` must be what the sampler applies (its settings carry each entry's)."""
    transform = getattr(settings, "transform", None)
    entries = sampler_settings.get("entries")
    if transform is None or not isinstance(entries, list):
        return
    wanted = None if transform.is_identity else transform.key
    applied = {e.get("transform") for e in entries if isinstance(e, Mapping)}
    if applied - {wanted}:
        raise FitError(
            f"transform {transform.describe()!r} differs from the sampler's transforms "
            f"({', '.join(sorted(str(a or 'identity') for a in applied))}); build the sampler with the same "
            "transform"
        )


def describe_difference(
    metadata: Mapping[str, Any],
    norm_heads: NormHeads,
    settings: FitSettings,
    sampler_settings: Mapping[str, Any],
) -> str:
    """Name what differs between a tokenizer's recorded fit and the current one ("" if it cannot tell).

    Args:
        metadata: The existing tokenizer's sidecar metadata (its fingerprints and fit report).
        norm_heads: The current norm heads.
        settings: The current fit settings.
        sampler_settings: The current sampler's `ChunkSampler.settings`.
    """
    recorded_heads = metadata.get(NORM_HEADS_KEY)
    if recorded_heads is None:
        return ""
    if recorded_heads != norm_heads.fingerprint:
        return (
            f"the norm heads differ: {recorded_heads[:12]} -> {norm_heads.fingerprint[:12]}; the "
            "mixture's datasets, tags, episodes or stats changed"
        )
    recorded = metadata.get(REPORT_KEY)
    try:
        report = FitReport.from_dict(recorded) if isinstance(recorded, Mapping) else None
    except FitError:
        report = None
    if report is None:
        return "same norm heads, other fit or sampling settings"
    changes = []
    old_settings = report.settings if isinstance(report.settings, Mapping) else {}
    new_settings = settings.to_dict()
    # A report written before a setting existed (e.g. rounding) was fit with that setting's default.
    defaults = type(settings)().to_dict()
    for key in sorted(new_settings):
        if key in NOT_FINGERPRINTED or (key not in old_settings and defaults.get(key) is None):
            continue
        old = old_settings[key] if key in old_settings else defaults[key]
        if old != new_settings[key] and str(old) != str(new_settings[key]):
            changes.append(f"{key} {old!r} -> {new_settings[key]!r}")
    if report.sampler_settings != sampler_settings:
        changes.append(_sampler_change(report.sampler_settings, sampler_settings))
    return "same norm heads; changed: " + ", ".join(changes) if changes else "same norm heads, other settings"


def _sampler_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """Name the entries whose data changed when nothing else did, else the sampler settings at large."""
    old_entries, new_entries = old.get("entries"), new.get("entries")
    if (
        _without_data(old) == _without_data(new)
        and isinstance(old_entries, list)
        and isinstance(new_entries, list)
    ):
        changed = [
            str(n.get("name", i))
            for i, (o, n) in enumerate(zip(old_entries, new_entries, strict=True))
            if o.get("data") != n.get("data")
        ]
        return "the data of " + ", ".join(changed) + " (root, episode lengths or data files)"
    return "the sampler settings (weights, action_freq, episodes)"


def _sampler_part(sampler_settings: Mapping[str, Any], data_identity: bool) -> Any:
    stripped = None if data_identity else _without_data(sampler_settings)
    return dict(sampler_settings) if stripped is None else stripped


def _without_data(sampler_settings: Mapping[str, Any]) -> Any:
    """The sampler settings without the entries' data identities (None when they are not well formed)."""
    entries = sampler_settings.get("entries")
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
        return None
    out = dict(sampler_settings)
    out["entries"] = [{k: v for k, v in e.items() if k != "data"} for e in entries]
    return out
