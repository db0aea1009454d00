"""fit_fingerprint covers the corpus itself: resolved roots, episode lengths and data file identity."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fasttok_plugin.fit import FitSettings, fit_fingerprint
from fasttok_plugin.fit.fingerprint import NORM_HEADS_KEY, describe_difference
from fasttok_plugin.fit.report import REPORT_KEY
from fasttok_plugin.heads import build_norm_heads
from fasttok_plugin.resolve import resolve_mixture
from fasttok_plugin.sampling import ChunkSampler
from fasttok_plugin.testing import SyntheticDataset, write_lerobot_dataset, write_mixture

SETTINGS = FitSettings(chunk_size=10, vocab_size=300, total_chunks=200)


def _dataset(root: Path, actions: list[np.ndarray] | None = None, **kwargs: Any) -> SyntheticDataset:
    return write_lerobot_dataset(
        root, version="v2.1", robot_type="arm", control_mode="joint_pos", actions=actions, seed=3, **kwargs
    )


def _mixture(path: Path, root: Path) -> Path:
    document = {
        "dataset_mixture": {"datasets": [{"repo_id": "org/arm", "root": str(root)}], "weights": [1.0]}
    }
    return write_mixture(path, document)


def _fingerprints(mixture: Path) -> tuple[str, str, dict[str, Any]]:
    """(fit fingerprint, norm-heads fingerprint, sampler settings) of a freshly resolved mixture."""
    resolved = resolve_mixture(mixture)
    heads = build_norm_heads(resolved, 8)
    sampler_settings = ChunkSampler(resolved, heads, chunk_size=10).settings()
    return fit_fingerprint(heads, SETTINGS, sampler_settings), heads.fingerprint, sampler_settings


def _stats_json(root: Path) -> dict[str, Any]:
    return json.loads((root / "meta" / "stats.json").read_text())["action"]


@pytest.fixture
def written(tmp_path: Path) -> tuple[Path, SyntheticDataset]:
    ds = _dataset(tmp_path / "datasets" / "arm", action_dim=6, episode_lengths=(40, 56, 48))
    return _mixture(tmp_path / "mixture.json", ds.root), ds


def test_another_root_with_the_same_files_is_another_fingerprint(
    written: tuple[Path, SyntheticDataset], tmp_path: Path
) -> None:
    mixture, ds = written
    before, heads_before, settings_before = _fingerprints(mixture)
    copy = tmp_path / "elsewhere" / "arm"
    shutil.copytree(ds.root, copy, copy_function=shutil.copy2)  # same bytes, same mtimes
    after, heads_after, settings_after = _fingerprints(_mixture(mixture, copy))
    assert heads_after == heads_before  # same stats, same tags: the heads cannot tell
    assert after != before
    # Without the data identity (to compare ranks on node-local copies) the two agree.
    resolved = resolve_mixture(mixture)
    heads = build_norm_heads(resolved, 8)
    portable = fit_fingerprint(heads, SETTINGS, settings_after, data_identity=False)
    assert portable == fit_fingerprint(heads, SETTINGS, settings_before, data_identity=False)
    assert settings_after["entries"][0]["data"]["root"] == str(copy.resolve())


def test_truncating_an_episode_is_another_fingerprint_even_with_the_same_stats(
    written: tuple[Path, SyntheticDataset],
) -> None:
    mixture, ds = written
    before, heads_before, settings_before = _fingerprints(mixture)
    stats = _stats_json(ds.root)
    actions = list(ds.actions)
    actions[1] = actions[1][:-8]  # metadata (episodes.jsonl length) and data (the parquet) both shorter
    _dataset(ds.root, actions=actions, stats_override=stats)
    after, heads_after, settings_after = _fingerprints(mixture)
    assert heads_after == heads_before
    assert settings_after["entries"][0]["data"]["frames"] == sum(ds.episode_lengths) - 8
    assert after != before
    metadata = _sidecar(heads_before, settings_before)
    assert describe_difference(
        metadata, build_norm_heads(resolve_mixture(mixture), 8), SETTINGS, settings_after
    ) == ("same norm heads; changed: the data of org/arm (root, episode lengths or data files)")


def test_reversing_the_data_in_time_is_another_fingerprint(written: tuple[Path, SyntheticDataset]) -> None:
    mixture, ds = written
    before, heads_before, _ = _fingerprints(mixture)
    stats = _stats_json(ds.root)
    # Same episodes, same lengths, same stats: only the data files' bytes (so their size / mtime) change.
    _dataset(ds.root, actions=[a[::-1].copy() for a in ds.actions], stats_override=stats)
    after, heads_after, _ = _fingerprints(mixture)
    assert heads_after == heads_before
    assert after != before


def test_an_unchanged_dataset_resolved_again_has_the_same_fingerprint_in_any_process(
    written: tuple[Path, SyntheticDataset],
) -> None:
    mixture, _ = written
    first, _, _ = _fingerprints(mixture)
    assert _fingerprints(mixture)[0] == first
    script = textwrap.dedent(
        f"""
        from fasttok_plugin.fit import FitSettings, fit_fingerprint
        from fasttok_plugin.heads import build_norm_heads
        from fasttok_plugin.resolve import resolve_mixture
        from fasttok_plugin.sampling import ChunkSampler
        resolved = resolve_mixture({str(mixture)!r})
        heads = build_norm_heads(resolved, 8)
        settings = FitSettings(chunk_size=10, vocab_size=300, total_chunks=200)
        print(fit_fingerprint(heads, settings, ChunkSampler(resolved, heads, chunk_size=10).settings()))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == first


def test_a_missing_data_file_changes_the_identity_without_raising(
    written: tuple[Path, SyntheticDataset],
) -> None:
    mixture, _ = written
    before, _, _ = _fingerprints(mixture)
    resolved = resolve_mixture(mixture)
    meta = resolved.entries[0].meta
    assert meta is not None
    assert meta.data_identity()["data_files"] == 3  # v2.1: one parquet per episode, each stat'ed once
    meta.episodes[0].data_file.unlink()
    heads = build_norm_heads(resolved, 8)
    assert fit_fingerprint(heads, SETTINGS, ChunkSampler(resolved, heads, chunk_size=10).settings()) != before


def _sidecar(heads_fingerprint: str, sampler_settings: dict[str, Any]) -> dict[str, Any]:
    """The part of a tokenizer sidecar `describe_difference` reads, as a fit writes it."""
    report = {
        "settings": SETTINGS.to_dict(),
        "sampler_settings": sampler_settings,
        "fit_fingerprint": "0" * 64,
        "norm_heads_fingerprint": heads_fingerprint,
        "mixture_sha256": None,
        "mixture_path": None,
        "chunk_size": 10,
        "action_dim": 8,
        "normalization": "min_max",
        "zero_range": "center",
        "sampled": 0,
        "fit": 0,
        "heldout": 0,
        "skipped_nonfinite": 0,
        "token_lengths": None,
        "max_action_tokens": None,
        "truncated": 0,
        "truncation_rate": None,
        "roundtrip_mse": None,
        "invalid_decodes": 0,
        "clamped_values": 0,
        "compression_ratio": None,
        "histogram_edges": [],
        "datasets": [],
        "heads": [],
        "tokenizer": {},
        "timings": {},
        "peak_memory_mb": 0.0,
        "peak_memory_workers_mb": 0.0,
    }
    return {NORM_HEADS_KEY: heads_fingerprint, REPORT_KEY: report}
