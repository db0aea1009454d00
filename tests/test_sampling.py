"""ChunkSampler: weighted budgets, uniform valid starts, resampling, padding, NaN handling, determinism."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from scipy.stats import chisquare

from fasttok_plugin.heads import NormHeads, build_norm_heads
from fasttok_plugin.resolve import ResolvedMixture, resolve_mixture
from fasttok_plugin.sampling import (
    ChunkBatch,
    ChunkSampler,
    SamplingError,
    largest_remainder,
    sample_warnings,
)
from fasttok_plugin.sampling import _pool as sampling
from fasttok_plugin.testing import SyntheticDataset


def _setup(mixture: Path, max_action_dim: int = 32) -> tuple[ResolvedMixture, NormHeads]:
    resolved = resolve_mixture(mixture)
    return resolved, build_norm_heads(resolved, max_action_dim)


def _collect(batches: Any) -> ChunkBatch:
    batches = list(batches)
    return ChunkBatch(
        actions=np.concatenate([b.actions for b in batches]),
        dataset_index=np.concatenate([b.dataset_index for b in batches]),
        head_index=np.concatenate([b.head_index for b in batches]),
        episode_index=np.concatenate([b.episode_index for b in batches]),
        start_frame=np.concatenate([b.start_frame for b in batches]),
    )


def _single(
    make_dataset: Callable[..., SyntheticDataset],
    write_mixture_file: Callable[..., Path],
    *,
    action_freq: float | None = None,
    **dataset_kwargs: Any,
) -> tuple[SyntheticDataset, ResolvedMixture, NormHeads]:
    ds = make_dataset("single", **dataset_kwargs)
    mixture = write_mixture_file(
        {"datasets": [{"repo_id": "lab/single", "root": str(ds.root)}], "action_freq": action_freq}
    )
    resolved, heads = _setup(mixture)
    return ds, resolved, heads


# ------------------------------------------------------------------------------------------- budgets


def test_largest_remainder_sums_exactly_and_breaks_ties_by_index() -> None:
    assert largest_remainder(100, [1, 2, 3.5]).tolist() == [15, 31, 54]
    assert largest_remainder(2, [1, 1, 1]).tolist() == [1, 1, 0]
    assert largest_remainder(5, [0, 1]).tolist() == [0, 5]


def test_budgets_are_proportional_to_mixture_weights(
    make_dataset: Callable[..., SyntheticDataset], write_mixture_file: Callable[..., Path]
) -> None:
    roots = [make_dataset(f"d{i}", seed=i).root for i in range(3)]
    mixture = write_mixture_file(
        {
            "datasets": [{"repo_id": f"lab/d{i}", "root": str(r)} for i, r in enumerate(roots)],
            "weights": [1, 2, 3.5],
        }
    )
    sampler = ChunkSampler(*_setup(mixture), chunk_size=10)
    assert sampler.budgets(100).tolist() == [15, 31, 54]
    chunks = _collect(sampler.sample(100))
    assert Counter(chunks.dataset_index.tolist()) == {0: 15, 1: 31, 2: 54}
    assert [r.sampled for r in sampler.report] == [15, 31, 54]


@pytest.mark.parametrize(
    ("weights", "pointer"),
    [([1.0, -2.0], "/weights/1"), ([1.0, float("nan")], "/weights/1"), ([0.0, 0.0], "/weights")],
)
def test_invalid_weights_raise_naming_entry_and_fix(
    make_dataset: Callable[..., SyntheticDataset],
    write_mixture_file: Callable[..., Path],
    weights: list[float],
    pointer: str,
) -> None:
    roots = [make_dataset(f"d{i}", seed=i).root for i in range(2)]
    mixture = write_mixture_file(
        {
            "datasets": [{"repo_id": f"lab/d{i}", "root": str(r)} for i, r in enumerate(roots)],
            "weights": weights,
        }
    )
    sampler = ChunkSampler(*_setup(mixture), chunk_size=10)
    with pytest.raises(SamplingError, match=pointer):
        sampler.budgets(10)
    with pytest.raises(SamplingError):
        next(iter(sampler.sample(10)))


def test_entry_skipped_by_heads_gets_no_budget_and_is_reported(
    make_dataset: Callable[..., SyntheticDataset], write_mixture_file: Callable[..., Path]
) -> None:
    small = make_dataset("small", action_dim=4)
    wide = make_dataset("wide", action_dim=12, robot_type="wide")
    mixture = write_mixture_file(
        {
            "datasets": [
                {"repo_id": "lab/small", "root": str(small.root)},
                {"repo_id": "lab/wide", "root": str(wide.root)},
            ]
        }
    )
    resolved, heads = _setup(mixture, max_action_dim=8)
    assert heads.dataset_to_head[1] == -1  # 12 > max_action_dim 8
    sampler = ChunkSampler(resolved, heads, chunk_size=10)
    assert sampler.budgets(50).tolist() == [50, 0]
    chunks = _collect(sampler.sample(50))
    assert set(chunks.dataset_index.tolist()) == {0}
    wide_report = sampler.report[1]
    assert wide_report.requested == 0
    assert wide_report.sampled == 0
    assert wide_report.error is not None
    assert "max_action_dim" in wide_report.error


# ---------------------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_chunks_whatever_the_worker_count(example_mixture: Path) -> None:
    resolved, heads = _setup(example_mixture)
    in_process = ChunkSampler(resolved, heads, chunk_size=10, workers=0)
    pooled = ChunkSampler(resolved, heads, chunk_size=10, workers=2)
    a = _collect(in_process.sample(600, seed=7, batch_size=128))
    b = _collect(pooled.sample(600, seed=7, batch_size=128))
    for name in ("actions", "dataset_index", "head_index", "episode_index", "start_frame"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert in_process.report == pooled.report
    assert in_process.settings() == pooled.settings()
    json.dumps(in_process.settings())  # JSON-able: it goes into the fit fingerprint

    other = _collect(in_process.sample(600, seed=8, batch_size=128))
    assert not np.array_equal(a.actions, other.actions)


def test_same_chunks_whatever_the_worker_count_when_entries_split_into_many_parts(
    example_mixture: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Parts of 7 chunks: every entry is cut into many parts of unequal cost, so 3 workers on this machine
    # finish them out of order; the stream must still be the in-process one.
    monkeypatch.setattr(sampling, "PART_CHUNKS", 7)
    resolved, heads = _setup(example_mixture)
    in_process = ChunkSampler(resolved, heads, chunk_size=10, workers=0)
    pooled = ChunkSampler(resolved, heads, chunk_size=10, workers=3)
    a = _collect(in_process.sample(300, seed=5, batch_size=32))
    b = _collect(pooled.sample(300, seed=5, batch_size=32))
    for name in ("actions", "dataset_index", "head_index", "episode_index", "start_frame"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert in_process.report == pooled.report
    monkeypatch.undo()
    # The part size is a memory bound, not part of the result.
    c = _collect(in_process.sample(300, seed=5, batch_size=32))
    assert np.array_equal(a.actions, c.actions)


def test_worker_processes_are_started_without_fork_and_report_their_memory(example_mixture: Path) -> None:
    # fork in a process that imported torch / runs Lightning threads can deadlock the child.
    assert sampling._pool_context().get_start_method() in ("forkserver", "spawn")
    resolved, heads = _setup(example_mixture)
    pooled = ChunkSampler(resolved, heads, chunk_size=10, workers=2)
    assert sum(len(b) for b in pooled.sample(60)) == 60
    assert pooled.peak_worker_memory_mb > 10  # a real worker process (numpy + pyarrow loaded)
    in_process = pooled.with_workers(0)
    assert in_process.settings() == pooled.settings()
    assert sum(len(b) for b in in_process.sample(60)) == 60
    assert in_process.peak_worker_memory_mb == 0.0


def test_script_without_main_guard_gets_a_clear_error_instead_of_a_hang(
    example_mixture: Path, tmp_path: Path
) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(
        "import sys\n"
        "from fasttok_plugin.heads import build_norm_heads\n"
        "from fasttok_plugin.resolve import resolve_mixture\n"
        "from fasttok_plugin.sampling import ChunkSampler\n"
        "resolved = resolve_mixture(sys.argv[1])\n"
        "heads = build_norm_heads(resolved, 32)\n"
        "print(sum(len(b) for b in ChunkSampler(resolved, heads, chunk_size=10, workers=2).sample(60)))\n"
    )
    run = subprocess.run(
        [sys.executable, str(script), str(example_mixture)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode != 0
    assert "SamplingError" in run.stderr
    assert 'if __name__ == "__main__":' in run.stderr
    assert "workers=0" in run.stderr


class _SamplerInLoaderWorker(torch.utils.data.IterableDataset):
    """Runs a pooled sampler inside a (daemonic) DataLoader worker, like a datamodule stream does."""

    def __init__(self, sampler: ChunkSampler) -> None:
        self.sampler = sampler

    def __iter__(self) -> Any:
        for batch in self.sampler.sample(120, seed=3, batch_size=40):
            yield torch.from_numpy(batch.actions), torch.from_numpy(batch.dataset_index)


def test_pooled_sampler_inside_a_dataloader_worker_samples_in_process(example_mixture: Path) -> None:
    # Daemonic processes may not start children: the sampler must fall back, not crash the loader.
    resolved, heads = _setup(example_mixture)
    loader = torch.utils.data.DataLoader(
        _SamplerInLoaderWorker(ChunkSampler(resolved, heads, chunk_size=10, workers=2)),
        batch_size=None,
        num_workers=1,
    )
    from_loader = [(a.numpy(), d.numpy()) for a, d in loader]
    expected = list(ChunkSampler(resolved, heads, chunk_size=10).sample(120, seed=3, batch_size=40))
    assert len(from_loader) == len(expected) == 3
    for (actions, dataset), batch in zip(from_loader, expected, strict=True):
        assert np.array_equal(actions, batch.actions)
        assert np.array_equal(dataset, batch.dataset_index)


def test_batches_stream_with_the_requested_size(example_mixture: Path) -> None:
    sampler = ChunkSampler(*_setup(example_mixture), chunk_size=10)
    sizes = [len(b) for b in sampler.sample(500, batch_size=64)]
    assert sum(sizes) == 500
    assert all(s == 64 for s in sizes[:-1])
    assert 0 < sizes[-1] <= 64


# ------------------------------------------------------------------------------------ start positions


def test_starts_are_uniform_over_valid_positions_and_episodes_weighted_by_them(
    make_dataset: Callable[..., SyntheticDataset], write_mixture_file: Callable[..., Path]
) -> None:
    # Chunks of 10 at the native 30 Hz: valid starts per episode = length - 9 -> 21, 51, 111 (183 total).
    ds, resolved, heads = _single(make_dataset, write_mixture_file, episode_lengths=(30, 60, 120))
    sampler = ChunkSampler(resolved, heads, chunk_size=10)
    starts: Counter[tuple[int, int]] = Counter()
    for seed in range(40):
        chunks = _collect(sampler.sample(100, seed=seed))
        starts.update(zip(chunks.episode_index.tolist(), chunks.start_frame.tolist(), strict=True))
    assert sampler.report[0].valid_starts == 183
    valid = [(e, f) for e, n in enumerate(ds.episode_lengths) for f in range(n - 9)]
    assert set(starts) <= set(valid)  # never a start whose chunk would leave the episode
    observed = np.array([starts[k] for k in valid], dtype=float)
    assert chisquare(observed).pvalue > 1e-3  # uniform over the 183 valid starts
    per_episode = np.array([sum(starts[k] for k in valid if k[0] == e) for e in range(3)], dtype=float)
    expected = 4000 * np.array([21, 51, 111]) / 183
    assert chisquare(per_episode, expected).pvalue > 1e-3


def test_budget_beyond_valid_starts_repeats_each_start_evenly(
    make_dataset: Callable[..., SyntheticDataset], write_mixture_file: Callable[..., Path]
) -> None:
    _, resolved, heads = _single(make_dataset, write_mixture_file, episode_lengths=(20,))
    sampler = ChunkSampler(resolved, heads, chunk_size=10)  # 11 valid starts
    chunks = _collect(sampler.sample(25))
    counts = Counter(chunks.start_frame.tolist())
    assert sorted(counts) == list(range(11))
    assert set(counts.values()) <= {2, 3}
    assert sampler.report[0].repeated_starts == 25 - 11


def test_episode_exactly_one_chunk_long_has_one_start_and_shorter_is_an_error(
    make_dataset: Callable[..., SyntheticDataset], write_mixture_file: Callable[..., Path]
) -> None:
    _, resolved, heads = _single(make_dataset, write_mixture_file, episode_lengths=(10,))
    exact = _collect(ChunkSampler(resolved, heads, chunk_size=10).sample(3))
    assert exact.start_frame.tolist() == [0, 0, 0]

    too_long = ChunkSampler(resolved, heads, chunk_size=11)
    assert list(too_long.sample(3)) == []
    report = too_long.report[0]
    assert report.requested == 3
    assert report.sampled == 0
    assert report.error is not None
    assert "no episode is long enough" in report.error


# ---------------------------------------------------------------------------------------- values


def test_interpolation_is_exact_on_a_linear_trajectory(
    make_dataset: Callable[..., SyntheticDataset], write_mixture_file: Callable[..., Path]
) -> None:
    fps, freq, offset, slope = 30.0, 7.3, np.array([0.5, -1.0, 2.0]), np.array([1.0, -0.25, 3.0])
    lengths = (90, 75)
    actions = [offset + slope * (np.arange(n)[:, None] / fps) for n in lengths]
    ds, resolved, heads = _single(
        make_dataset, write_mixture_file, action_freq=freq, actions=actions, fps=fps
    )
    chunks = _collect(ChunkSampler(resolved, heads, chunk_size=8).sample(200))
    assert len(chunks.actions) == 200
    t0 = (chunks.start_frame / fps).astype(np.float32).astype(np.float64)  # timestamps are float32
    times = t0[:, None] + np.arange(8)[None, :] / freq
    expected = offset[None, None, :] + slope[None, None, :] * times[:, :, None]
    np.testing.assert_allclose(chunks.actions[:, :, :3], expected, atol=2e-5)
    last = np.array([lengths[e] - 1 for e in chunks.episode_index]) / fps
    assert (times[:, -1] <= last + 1e-6).all()  # every step inside its episode
    assert ds.fps == fps


def test_interpolation_follows_irregular_timestamps(
    make_dataset: Callable[..., SyntheticDataset], write_mixture_file: Callable[..., Path]
) -> None:
    # Dropped and late frames: timestamps are not frame_index / fps, so values must follow the column.
    rng = np.random.default_rng(3)
    steps = rng.uniform(0.5, 1.5, size=79) / 30.0
    t = np.concatenate([[0.0], np.cumsum(steps)]).astype(np.float32).astype(np.float64)
    offset, slope = np.array([1.0, -2.0]), np.array([0.5, 4.0])
    ds, resolved, heads = _single(
        make_dataset, write_mixture_file, action_freq=20.0, actions=[offset + slope * t[:, None]], fps=30.0
    )
    for path in (ds.root / "data").rglob("*.parquet"):
        table = pq.read_table(path)
        frames = table.column("frame_index").to_numpy()
        column = table.schema.get_field_index("timestamp")
        table = table.set_column(column, "timestamp", pa.array(t[frames].astype(np.float32)))
        pq.write_table(table, path)
    chunks = _collect(ChunkSampler(resolved, heads, chunk_size=6).sample(40))
    times = t[chunks.start_frame][:, None] + np.arange(6)[None, :] / 20.0
    assert (times[:, -1] <= t[-1] + 1e-6).all()
    expected = offset[None, None, :] + slope[None, None, :] * times[:, :, None]
    np.testing.assert_allclose(chunks.actions[:, :, :2], expected, atol=3e-5)


def test_resampling_50hz_to_10hz_takes_every_fifth_frame(
    make_dataset: Callable[..., SyntheticDataset], write_mixture_file: Callable[..., Path]
) -> None:
    frames = np.arange(100, dtype=np.float64)
    actions = [np.stack([frames, -2 * frames], axis=1)]  # value = frame index
    _, resolved, heads = _single(
        make_dataset, write_mixture_file, action_freq=10.0, actions=actions, fps=50.0
    )
    sampler = ChunkSampler(resolved, heads, chunk_size=5)
    chunks = _collect(sampler.sample(80))
    # A 5-step chunk at 10 Hz spans 0.4 s = 20 frames: starts 0..79 are valid.
    assert sampler.report[0].valid_starts == 80
    assert sorted(chunks.start_frame.tolist()) == list(range(80))
    expected = chunks.start_frame[:, None] + 5 * np.arange(5)[None, :]
    np.testing.assert_allclose(chunks.actions[:, :, 0], expected, atol=1e-3)
    np.testing.assert_allclose(chunks.actions[:, :, 1], -2 * expected, atol=2e-3)

    native = ChunkSampler(resolved, heads, chunk_size=5, action_freq=None)
    native_chunks = _collect(native.sample(20))
    expected_native = native_chunks.start_frame[:, None] + np.arange(5)[None, :]
    np.testing.assert_allclose(native_chunks.actions[:, :, 0], expected_native, atol=1e-3)


def test_chunks_are_zero_padded_and_tagged_with_dataset_and_head(example_mixture: Path) -> None:
    resolved, heads = _setup(example_mixture)
    chunks = _collect(ChunkSampler(resolved, heads, chunk_size=10).sample(300))
    assert chunks.actions.shape == (300, 10, 32)
    assert chunks.actions.dtype == np.float32
    assert set(chunks.dataset_index.tolist()) == set(range(len(resolved.entries)))
    for position, entry in enumerate(resolved.entries):
        rows = chunks.dataset_index == entry.index
        assert (chunks.head_index[rows] == heads.dataset_to_head[position]).all()
        dim = entry.meta.action_dim
        assert (chunks.actions[rows][:, :, dim:] == 0).all()
        assert (np.abs(chunks.actions[rows][:, :, :dim]).sum(axis=(0, 1)) > 0).all()


def test_chunks_with_nan_or_inf_are_skipped_counted_and_reported(
    make_dataset: Callable[..., SyntheticDataset], write_mixture_file: Callable[..., Path]
) -> None:
    rng = np.random.default_rng(0)
    first, second = rng.normal(size=(60, 3)), rng.normal(size=(60, 3))
    first[30, 1] = np.nan
    second[10, 2] = np.inf
    _, resolved, heads = _single(make_dataset, write_mixture_file, actions=[first, second])
    sampler = ChunkSampler(resolved, heads, chunk_size=10)
    chunks = _collect(sampler.sample(102))  # every valid start (51 per episode) exactly once
    report = sampler.report[0]
    # Starts 21..30 of episode 0 and 1..10 of episode 1 cover a bad frame: 20 chunks.
    assert report.skipped_nonfinite == 20
    assert report.sampled == 82 == len(chunks.actions)
    assert np.isfinite(chunks.actions).all()
    starts = set(zip(chunks.episode_index.tolist(), chunks.start_frame.tolist(), strict=True))
    bad = {(0, s) for s in range(21, 31)} | {(1, s) for s in range(1, 11)}
    assert not starts & bad
    assert len(starts) == 82


def test_unreadable_data_file_is_reported_per_dataset(
    make_dataset: Callable[..., SyntheticDataset], write_mixture_file: Callable[..., Path]
) -> None:
    good = make_dataset("good")
    broken = make_dataset("broken", version="v2.1", seed=3)
    victim = sorted((broken.root / "data").rglob("*.parquet"))[0]
    victim.write_bytes(b"not a parquet file")
    mixture = write_mixture_file(
        {
            "datasets": [
                {"repo_id": "lab/good", "root": str(good.root)},
                {"repo_id": "lab/broken", "root": str(broken.root)},
            ]
        }
    )
    sampler = ChunkSampler(*_setup(mixture), chunk_size=10)
    chunks = _collect(sampler.sample(40))
    assert set(chunks.dataset_index.tolist()) == {0}
    report = sampler.report[1]
    assert report.sampled == 0
    assert report.requested == 20
    assert report.error is not None
    assert victim.name in report.error
    assert "lab/broken" in report.error


def test_variable_length_list_columns_are_read_like_fixed_size_lists(
    make_dataset: Callable[..., SyntheticDataset], write_mixture_file: Callable[..., Path]
) -> None:
    fixed = make_dataset("fixed", list_type="fixed", seed=5)
    variable = make_dataset("variable", list_type="variable", seed=5)
    out = []
    for ds in (fixed, variable):
        mixture = write_mixture_file(
            {"datasets": [{"repo_id": "lab/x", "root": str(ds.root)}]}, name=f"{ds.root.name}.json"
        )
        out.append(_collect(ChunkSampler(*_setup(mixture), chunk_size=10).sample(30)).actions)
    assert np.array_equal(out[0], out[1])


def test_invalid_constructor_arguments_raise_sampling_error(example_mixture: Path) -> None:
    resolved, heads = _setup(example_mixture)
    with pytest.raises(SamplingError, match="chunk_size"):
        ChunkSampler(resolved, heads, chunk_size=0)
    with pytest.raises(SamplingError, match="action_freq"):
        ChunkSampler(resolved, heads, chunk_size=5, action_freq=-1.0)
    with pytest.raises(SamplingError, match="seed"):
        ChunkSampler(resolved, heads, chunk_size=5, seed=-1)
    with pytest.raises(SamplingError, match="workers"):
        ChunkSampler(resolved, heads, chunk_size=5, workers=-2)


@pytest.mark.parametrize("bad", ["2", True, None])
def test_sampler_applies_the_mixtures_one_weight_rule(
    make_dataset: Callable[..., SyntheticDataset],
    write_mixture_file: Callable[..., Path],
    bad: object,
) -> None:
    # The sampler once accepted anything float() took ("2", True); it now uses mixture.check_weights,
    # the parser's stricter rule, also for configs built in code.
    roots = [make_dataset(f"d{i}", seed=i).root for i in range(2)]
    datasets = [{"repo_id": f"lab/d{i}", "root": str(r)} for i, r in enumerate(roots)]
    mixture = write_mixture_file({"datasets": datasets, "weights": [1.0, 1.0]})
    resolved, heads = _setup(mixture)
    config = dataclasses.replace(resolved.config, weights=(1.0, bad))
    sampler = ChunkSampler(dataclasses.replace(resolved, config=config), heads, chunk_size=10)
    with pytest.raises(SamplingError, match=r"entry 1 \(lab/d1\): weight at /weights/1 must be a number"):
        sampler.budgets(10)


def test_largest_remainder_survives_weights_whose_sum_overflows() -> None:
    # The sum of [1e308, 1e308] is inf: every share was 0 and the leftovers gave 2 chunks, not 300.
    assert largest_remainder(300, [1e308, 1e308]).tolist() == [150, 150]
    assert largest_remainder(300, [1e308, 1e308, 5e307]).tolist() == [120, 120, 60]
    # Subnormal weights keep their ratios.
    assert largest_remainder(300, [5e-324, 1e-323]).tolist() == [100, 200]
    assert largest_remainder(7, [1.7976931348623157e308, 0.0]).tolist() == [7, 0]


def test_huge_weights_sample_the_whole_budget(
    make_dataset: Callable[..., SyntheticDataset], write_mixture_file: Callable[..., Path]
) -> None:
    roots = [make_dataset(f"d{i}", seed=i).root for i in range(2)]
    mixture = write_mixture_file(
        {
            "datasets": [{"repo_id": f"lab/d{i}", "root": str(r)} for i, r in enumerate(roots)],
            "weights": [1e308, 1e308],
        }
    )
    resolved, heads = _setup(mixture)
    sampler = ChunkSampler(resolved, heads, chunk_size=8)
    chunks = _collect(sampler.sample(300))
    assert chunks.actions.shape[0] == 300
    assert [r.sampled for r in sampler.report] == [150, 150]


def test_a_positive_weight_that_rounds_to_zero_chunks_is_reported(
    make_dataset: Callable[..., SyntheticDataset],
    write_mixture_file: Callable[..., Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    roots = [make_dataset(f"d{i}", seed=i).root for i in range(3)]
    mixture = write_mixture_file(
        {
            "datasets": [{"repo_id": f"lab/d{i}", "root": str(r)} for i, r in enumerate(roots)],
            "weights": [1.0, 1e-9, 0.0],
        }
    )
    resolved, heads = _setup(mixture)
    sampler = ChunkSampler(resolved, heads, chunk_size=8)
    with caplog.at_level("WARNING", logger="fasttok_plugin.sampling"):
        _collect(sampler.sample(100))
    assert [r.requested for r in sampler.report] == [100, 0, 0]
    assert [r.starved for r in sampler.report] == [False, True, False]  # weight 0 is asked for, not starved
    assert sampler.report[1].to_dict()["weight"] == 1e-9
    assert "entry 1 (lab/d1): weight 1e-09 is positive but its budget rounded to 0 chunks" in caplog.text
    warnings = sample_warnings(sampler.report)
    assert len(warnings) == 1
    assert warnings[0].startswith("entry 1 (lab/d1): weight 1e-09 is positive")
    assert "raise its weight (or total_chunks)" in warnings[0]


def _rewrite_timestamps(root: Path, factor: float) -> None:
    for path in (root / "data").rglob("*.parquet"):
        table = pq.read_table(path)
        column = table.schema.get_field_index("timestamp")
        ts = table.column("timestamp").to_numpy().astype(np.float64) * factor
        table = table.set_column(column, "timestamp", pa.array(ts.astype(np.float32)))
        pq.write_table(table, path)


def test_millisecond_timestamps_and_a_wrong_fps_are_reported_off_grid(
    make_dataset: Callable[..., SyntheticDataset], write_mixture_file: Callable[..., Path]
) -> None:
    on_grid = make_dataset("on_grid", seed=0, episode_lengths=(300, 300))
    millis = make_dataset("millis", seed=1, episode_lengths=(300, 300))
    _rewrite_timestamps(millis.root, 1000.0)
    # 30 Hz frames (timestamps i / 30) whose info.json says 10 fps.
    slow_fps = make_dataset("slow_fps", seed=2, episode_lengths=(300, 300), info_overrides={"fps": 10})
    mixture = write_mixture_file(
        {
            "datasets": [
                {"repo_id": f"lab/{n}", "root": str(d.root)}
                for n, d in (("on_grid", on_grid), ("millis", millis), ("slow_fps", slow_fps))
            ]
        }
    )
    resolved, heads = _setup(mixture)
    sampler = ChunkSampler(resolved, heads, chunk_size=8)
    _collect(sampler.sample(90))
    report = sampler.report
    assert [r.off_grid for r in report] == [False, True, True]
    assert report[0].observed_fps == pytest.approx(30.0, rel=1e-4)
    assert report[1].observed_fps == pytest.approx(0.03, rel=1e-3)
    assert report[2].fps == 10.0
    assert report[2].observed_fps == pytest.approx(30.0, rel=1e-3)
    warnings = sample_warnings(report)
    assert len(warnings) == 2
    assert warnings[0].startswith(
        "entry 1 (lab/millis): timestamps are off the 1/fps grid of info.json fps=30"
    )
    assert "they show 0.03 Hz" in warnings[0]
    assert "entry 2 (lab/slow_fps)" in warnings[1]
    assert "fps=10 (they show 30 Hz)" in warnings[1]


def test_irregular_frames_at_the_right_rate_are_reported_as_irregular_not_as_a_wrong_unit(
    make_dataset: Callable[..., SyntheticDataset], write_mixture_file: Callable[..., Path]
) -> None:
    ds = make_dataset("jitter", seed=0, episode_lengths=(200,))
    rng = np.random.default_rng(5)
    for path in (ds.root / "data").rglob("*.parquet"):
        table = pq.read_table(path)
        ts = table.column("timestamp").to_numpy().astype(np.float64)
        ts[1:-1] += rng.uniform(-0.3, 0.3, size=ts.size - 2) / 30.0  # late and early frames, same rate
        index = table.schema.get_field_index("timestamp")
        pq.write_table(table.set_column(index, "timestamp", pa.array(ts.astype(np.float32))), path)
    mixture = write_mixture_file({"datasets": [{"repo_id": "lab/jitter", "root": str(ds.root)}]})
    resolved, heads = _setup(mixture)
    sampler = ChunkSampler(resolved, heads, chunk_size=8)
    _collect(sampler.sample(20))
    assert sampler.report[0].off_grid
    assert sample_warnings(sampler.report) == [
        "entry 0 (lab/jitter): timestamps are off the 1/fps grid of info.json fps=30 but show its rate "
        "(30 Hz): irregular frames, resampled as stamped"
    ]
