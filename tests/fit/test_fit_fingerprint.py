"""fit_fingerprint: every FitSettings field enters the fingerprint or is listed in NOT_FINGERPRINTED."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from fasttok_plugin.fit import NOT_FINGERPRINTED, FitError, FitReport, FitSettings, fit_fingerprint
from fasttok_plugin.fit.fingerprint import NORM_HEADS_KEY, describe_difference
from fasttok_plugin.fit.report import REPORT_KEY
from fasttok_plugin.heads import NormHeads, build_norm_heads
from fasttok_plugin.mixture import load_mixture
from fasttok_plugin.resolve import resolve_mixture
from fasttok_plugin.sampling import ChunkSampler

# Another valid value for every field the settings themselves decide (chunk size and action width
# come from the sampler and the heads, see the test below).
_OTHER_VALUE: dict[str, Any] = {
    "vocab_size": 512,
    "scale": 5.0,
    "min_frequency": 3,
    "max_token_length": 100,
    "pipeline": "reference",
    "total_chunks": 500,
    "max_fit_chunks": 100,
    "heldout_fraction": 0.2,
    "max_heldout_chunks_per_head": 50,
    "max_action_tokens": 128,
    "seed": 1,
    "workers": 2,
    "normalization": "mean_std",
    "zero_range": "legacy",
    "eps": 1e-5,
    "on_dataset_error": "skip",
    "order": "dims",
    "rounding": "token_aware",
    "layout": "native",
    "convention": "opentau",
}


@pytest.fixture
def heads_and_sampler(example_mixture: Path) -> tuple[NormHeads, ChunkSampler]:
    resolved = resolve_mixture(load_mixture(example_mixture))
    heads = build_norm_heads(resolved, 32)
    return heads, ChunkSampler(resolved, heads, chunk_size=10)


def test_every_setting_is_fingerprinted_unless_listed_as_not_fingerprinted(
    heads_and_sampler: tuple[NormHeads, ChunkSampler],
) -> None:
    heads, sampler = heads_and_sampler
    fields = {f.name for f in dataclasses.fields(FitSettings)}
    # head_grouping and stats_source, like the two sizes, come from the heads (their fingerprint covers them);
    # transform from the sampler (its settings carry each entry's transform key).
    assert fields == {
        "chunk_size",
        "max_action_dim",
        "head_grouping",
        "stats_source",
        "transform",
        *_OTHER_VALUE,
    }, "a new setting: decide if it is fingerprinted"
    assert fields >= NOT_FINGERPRINTED
    base = FitSettings()
    reference = fit_fingerprint(heads, base, sampler.settings())
    for name, value in _OTHER_VALUE.items():
        changed = fit_fingerprint(heads, dataclasses.replace(base, **{name: value}), sampler.settings())
        assert (changed == reference) == (name in NOT_FINGERPRINTED), name


def test_chunk_size_and_action_width_come_from_the_sampler_and_the_heads(
    heads_and_sampler: tuple[NormHeads, ChunkSampler],
) -> None:
    heads, sampler = heads_and_sampler
    implicit = fit_fingerprint(heads, FitSettings(), sampler.settings())
    explicit = fit_fingerprint(heads, FitSettings(chunk_size=10, max_action_dim=32), sampler.settings())
    assert implicit == explicit
    with pytest.raises(FitError, match="chunk_size 12 differs"):
        fit_fingerprint(heads, FitSettings(chunk_size=12), sampler.settings())
    with pytest.raises(FitError, match="max_action_dim 16 differs"):
        fit_fingerprint(heads, FitSettings(max_action_dim=16), sampler.settings())
    assert fit_fingerprint(heads, FitSettings(head_grouping="robot_control"), sampler.settings()) == implicit
    with pytest.raises(FitError, match="head_grouping 'global' differs"):
        fit_fingerprint(heads, FitSettings(head_grouping="global"), sampler.settings())
    assert fit_fingerprint(heads, FitSettings(stats_source="stored"), sampler.settings()) == implicit
    with pytest.raises(FitError, match="stats_source 'data' differs from the norm heads' 'stored'"):
        fit_fingerprint(heads, FitSettings(stats_source="data"), sampler.settings())


def _metadata(heads: NormHeads, settings: FitSettings, sampler_settings: dict[str, Any]) -> dict[str, Any]:
    """A tokenizer sidecar as fit_tokenizer writes it (only what describe_difference reads is real)."""
    report = FitReport(
        fit_fingerprint="0" * 64,
        norm_heads_fingerprint=heads.fingerprint,
        mixture_sha256=None,
        mixture_path=None,
        settings=settings.to_dict(),
        sampler_settings=sampler_settings,
        chunk_size=10,
        action_dim=32,
        normalization="min_max",
        zero_range="center",
        sampled=0,
        fit=0,
        heldout=0,
        skipped_nonfinite=0,
        token_lengths=None,
        max_action_tokens=None,
        truncated=0,
        truncation_rate=None,
        roundtrip_mse=None,
        invalid_decodes=0,
        clamped_values=0,
        compression_ratio=None,
        histogram_edges=(),
        datasets=(),
        heads=(),
        tokenizer={},
        timings={},
        peak_memory_mb=0.0,
        peak_memory_workers_mb=0.0,
    )
    return {NORM_HEADS_KEY: heads.fingerprint, REPORT_KEY: report.to_dict()}


def test_describe_difference_names_fingerprinted_changes_only(
    heads_and_sampler: tuple[NormHeads, ChunkSampler],
) -> None:
    heads, sampler = heads_and_sampler
    old = FitSettings(chunk_size=10, max_action_dim=32)
    metadata = _metadata(heads, old, sampler.settings())
    new = dataclasses.replace(old, scale=5.0, workers=3, max_action_tokens=64)
    assert describe_difference(metadata, heads, new, sampler.settings()) == (
        "same norm heads; changed: scale 10.0 -> 5.0"
    )
    assert describe_difference(metadata, heads, old, {"other": 1}) == (
        "same norm heads; changed: the sampler settings (weights, action_freq, episodes)"
    )


def test_describe_difference_takes_a_setting_missing_from_an_older_report_as_its_default(
    heads_and_sampler: tuple[NormHeads, ChunkSampler],
) -> None:
    heads, sampler = heads_and_sampler
    old = FitSettings(chunk_size=10, max_action_dim=32)
    metadata = _metadata(heads, old, sampler.settings())
    del metadata[REPORT_KEY]["settings"]["rounding"]  # a report written before rounding existed
    aware = dataclasses.replace(old, rounding="token_aware")
    assert describe_difference(metadata, heads, aware, sampler.settings()) == (
        "same norm heads; changed: rounding 'nearest' -> 'token_aware'"
    )
    assert describe_difference(metadata, heads, old, sampler.settings()) == "same norm heads, other settings"
    # A recorded None is a value, not a missing setting.
    uncapped = _metadata(heads, dataclasses.replace(old, max_fit_chunks=None), sampler.settings())
    assert describe_difference(uncapped, heads, old, sampler.settings()) == (
        "same norm heads; changed: max_fit_chunks None -> 30000"
    )


def test_describe_difference_without_a_readable_report_or_with_other_heads(
    heads_and_sampler: tuple[NormHeads, ChunkSampler],
) -> None:
    heads, sampler = heads_and_sampler
    settings = FitSettings()
    assert describe_difference({}, heads, settings, sampler.settings()) == ""
    broken = {NORM_HEADS_KEY: heads.fingerprint, REPORT_KEY: {"settings": {}}}
    assert describe_difference(broken, heads, settings, sampler.settings()) == (
        "same norm heads, other fit or sampling settings"
    )
    other = {NORM_HEADS_KEY: "f" * 64}
    assert describe_difference(other, heads, settings, sampler.settings()).startswith(
        "the norm heads differ: ffffffffffff -> "
    )
