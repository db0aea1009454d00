"""The one valid-chunk-start rule: the preflight (metadata) and the sampler (data) count the same starts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fasttok_plugin.heads import build_norm_heads
from fasttok_plugin.preflight import PreflightResult, run_preflight
from fasttok_plugin.resolve import resolve_mixture
from fasttok_plugin.sampling import ChunkSampler, longest_chunk, valid_start_counts
from fasttok_plugin.testing import SyntheticDataset


def _preflight(mixture: Path, chunk_size: int) -> PreflightResult:
    return run_preflight(mixture, entry_points=False, chunk_size=chunk_size)


def _episode_findings(result: PreflightResult) -> list[tuple[str, str]]:
    return [(f.code, f.message) for f in result.findings if f.code in ("FT401", "FT402")]


def _sampler(mixture: Path, chunk_size: int) -> ChunkSampler:
    resolved = resolve_mixture(mixture)
    return ChunkSampler(resolved, build_norm_heads(resolved, 32), chunk_size=chunk_size)


def _mixture(
    make_dataset: Callable[..., SyntheticDataset],
    write_mixture_file: Callable[..., Path],
    name: str,
    action_freq: float | None,
    **dataset_kwargs: object,
) -> tuple[SyntheticDataset, Path]:
    ds = make_dataset(name, **dataset_kwargs)
    document = {"datasets": [{"repo_id": f"lab/{name}", "root": str(ds.root)}], "action_freq": action_freq}
    return ds, write_mixture_file(document, name=f"{name}.json")


# ------------------------------------------------------------------------------------------ metadata rule


def test_start_counts_from_episode_lengths() -> None:
    # A 10-step chunk at the native 30 Hz needs 9 frames after its start.
    assert valid_start_counts(np.array([10, 9, 20]), fps=30.0, chunk_size=10, freq=30.0).tolist() == [
        1,
        0,
        11,
    ]
    # 5 steps at 10 Hz span 0.4 s = 20 frames at 50 fps: starts 0..79 of 100 frames.
    assert valid_start_counts(np.array([100]), fps=50.0, chunk_size=5, freq=10.0).tolist() == [80]
    # One step fits in any non-empty episode.
    assert valid_start_counts(np.array([1, 0]), fps=30.0, chunk_size=1, freq=7.0).tolist() == [1, 0]


@pytest.mark.parametrize(
    ("fps", "freq"), [(30.0, 30.0), (30.0, 29.99), (50.0, 10.0), (30.0, 7.3), (15.0, 45.0)]
)
def test_longest_chunk_is_the_largest_chunk_with_a_start(fps: float, freq: float) -> None:
    for length in (1, 2, 3, 12, 49, 50, 120):
        size = longest_chunk(length, fps=fps, freq=freq)
        assert valid_start_counts(np.array([length]), fps=fps, chunk_size=size, freq=freq)[0] >= 1
        assert valid_start_counts(np.array([length]), fps=fps, chunk_size=size + 1, freq=freq)[0] == 0
    assert longest_chunk(0, fps=fps, freq=freq) == 0


# ------------------------------------------------------------------------- preflight and sampler agree


@pytest.mark.parametrize(
    ("fps", "freq", "chunk_size", "lengths"),
    [
        (30.0, None, 10, (10, 9, 40)),
        (50.0, 10.0, 5, (100, 20, 21)),
        (30.0, 7.3, 8, (90, 29, 30)),
        (15.0, 45.0, 20, (7, 13)),
        (30.0, 29.99, 3, (3, 10)),
    ],
)
def test_sampler_counts_the_preflights_starts(
    make_dataset: Callable[..., SyntheticDataset],
    write_mixture_file: Callable[..., Path],
    fps: float,
    freq: float | None,
    chunk_size: int,
    lengths: tuple[int, ...],
) -> None:
    _, mixture = _mixture(make_dataset, write_mixture_file, "agree", freq, fps=fps, episode_lengths=lengths)
    counts = valid_start_counts(np.array(lengths), fps=fps, chunk_size=chunk_size, freq=freq or fps)
    sampler = _sampler(mixture, chunk_size)
    chunks = list(sampler.sample(int(counts.sum())))
    assert sampler.report[0].valid_starts == int(counts.sum())
    starts = {(int(e), int(s)) for b in chunks for e, s in zip(b.episode_index, b.start_frame, strict=True)}
    # A budget of exactly the valid starts draws each once.
    assert starts == {(e, s) for e, count in enumerate(counts.tolist()) for s in range(count)}
    short = int((counts == 0).sum())
    found = _episode_findings(_preflight(mixture, chunk_size))
    assert [code for code, _ in found] == ([] if short == 0 else ["FT402"])
    if short:
        assert f"{short} of {len(lengths)} episodes" in found[0][1]


def test_a_chunk_ending_a_hair_past_the_episode_has_no_valid_start(
    make_dataset: Callable[..., SyntheticDataset], write_mixture_file: Callable[..., Path]
) -> None:
    # 3 steps at 29.99 Hz span 2/29.99 s, 0.02 % more than the 2 frame intervals (2/30 s) a 3-frame episode
    # lasts. The sampler used to accept such a start (a thousandth of a step of slack) while the preflight
    # rejected it; both now reject it.
    ds, mixture = _mixture(
        make_dataset, write_mixture_file, "hair", 29.99, fps=30.0, episode_lengths=(3,), version="v2.1"
    )
    found = _episode_findings(_preflight(mixture, chunk_size=3))
    assert [code for code, _ in found] == ["FT401"]
    sampler = _sampler(mixture, chunk_size=3)
    assert list(sampler.sample(4)) == []
    report = sampler.report[0]
    assert report.valid_starts == 0
    assert report.error is not None
    assert "no episode is long enough" in report.error
    # At the native rate the same episode holds exactly one chunk, in both.
    native = write_mixture_file(
        {"datasets": [{"repo_id": "lab/hair", "root": str(ds.root)}]}, name="native.json"
    )
    assert _episode_findings(_preflight(native, chunk_size=3)) == []
    exact = _sampler(native, chunk_size=3)
    assert [b.start_frame.tolist() for b in exact.sample(1)] == [[0]]


# ------------------------------------------------------------------------------- irregular timestamps


def _set_timestamps(ds: SyntheticDataset, timestamps: np.ndarray) -> None:
    for path in (ds.root / "data").rglob("*.parquet"):
        table = pq.read_table(path)
        column = table.schema.get_field_index("timestamp")
        table = table.set_column(column, "timestamp", pa.array(timestamps.astype(np.float32)))
        pq.write_table(table, path)


@pytest.mark.parametrize(("last", "valid"), [(0.2, 1), (0.199975, 0)])
def test_off_grid_timestamps_are_held_to_the_same_rule_on_time(
    make_dataset: Callable[..., SyntheticDataset],
    write_mixture_file: Callable[..., Path],
    last: float,
    valid: int,
) -> None:
    # Late and early frames: not on the 20 fps grid, so the sampler decides on the timestamps. A 5-step
    # chunk at 20 Hz spans 0.2 s; the last frame at exactly 0.2 s (float32) fits, half a thousandth of a
    # step short does not (the former slack of a thousandth of a step accepted it).
    ds, mixture = _mixture(
        make_dataset, write_mixture_file, "late", None, fps=20.0, episode_lengths=(5,), version="v2.1"
    )
    _set_timestamps(ds, np.array([0.0, 0.04, 0.1, 0.15, last]))
    sampler = _sampler(mixture, chunk_size=5)
    list(sampler.sample(2))
    assert sampler.report[0].valid_starts == valid
    # The metadata only says 5 frames at 20 fps: the preflight cannot see the timestamps and lets it pass.
    assert _episode_findings(_preflight(mixture, chunk_size=5)) == []
