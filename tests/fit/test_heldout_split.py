"""The held-out split is by episode, stratified per head; the held-out evaluation is capped per head."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fasttok_plugin.fit import FitError, FitPlan, FitReport, FitSettings, fit_tokenizer
from fasttok_plugin.testing import SyntheticDataset, make_example_mixture

SETTINGS = FitSettings(
    chunk_size=10, vocab_size=300, total_chunks=1200, max_fit_chunks=None, heldout_fraction=0.2
)


def _keys(batches: list[Any]) -> list[tuple[int, int, int]]:
    return [
        (int(d), int(e), int(s))
        for b in batches
        for d, e, s in zip(b.dataset_index, b.episode_index, b.start_frame, strict=True)
    ]


def _fit(mixture: Path, settings: FitSettings) -> tuple[FitReport, FitPlan]:
    plans: list[FitPlan] = []
    _, report = fit_tokenizer(mixture, settings, on_plan=plans.append)
    return report, plans[0]


@pytest.fixture
def many_episodes(tmp_path: Path) -> Path:
    """The example mixture with ten episodes per dataset (5 heads, 6 entries)."""
    return make_example_mixture(tmp_path / "ten", n_datasets=6, episode_lengths=(40, 56, 48, 60, 44) * 2)


def test_no_episode_has_chunks_on_both_sides_and_the_share_is_near_the_fraction(many_episodes: Path) -> None:
    report, plan = _fit(many_episodes, SETTINGS)
    fit = _keys(list(plan.fit_batches()))
    held = _keys(list(plan.heldout_batches()))
    fit_episodes = {k[:2] for k in fit}
    held_episodes = {k[:2] for k in held}
    assert fit_episodes
    assert held_episodes
    assert not fit_episodes & held_episodes
    assert report.heldout_split == "episode"
    assert 0.1 < report.heldout / report.sampled < 0.3  # heldout_fraction 0.2, in whole episodes
    for head in report.heads:  # stratified: every head has both sides
        assert head.fit > 0, head.key
        assert head.heldout > 0, head.key
        assert 1 <= (head.heldout_episodes or 0) < 10 * len(head.entries)
    for entry, episodes in zip(report.datasets, plan.split.heldout_episodes, strict=True):
        assert entry.heldout_episodes == episodes.size
        assert {e for d, e in held_episodes if d == entry.entry} == set(episodes.tolist())


def test_split_is_deterministic_per_seed_and_independent_of_workers(many_episodes: Path) -> None:
    small = dataclasses.replace(SETTINGS, total_chunks=300, vocab_size=260)
    _, in_process = _fit(many_episodes, small)
    _, pooled = _fit(many_episodes, dataclasses.replace(small, workers=2))
    _, other_seed = _fit(many_episodes, dataclasses.replace(small, seed=5))
    same = [e.tolist() for e in in_process.split.heldout_episodes]
    assert same == [e.tolist() for e in pooled.split.heldout_episodes]
    assert _keys(list(in_process.heldout_batches())) == _keys(list(pooled.heldout_batches()))
    assert same != [e.tolist() for e in other_seed.split.heldout_episodes]


def test_a_single_episode_head_is_fit_on_it_and_reported(
    make_dataset: Callable[..., SyntheticDataset], write_mixture_file: Callable[..., Path]
) -> None:
    many = make_dataset("many", control_mode="a", episode_lengths=(60, 80, 70, 50))
    single = make_dataset("single", control_mode="b", robot_type="other", episode_lengths=(90,), seed=4)
    mixture = write_mixture_file(
        {
            "datasets": [
                {"repo_id": "lab/many", "root": str(many.root)},
                {"repo_id": "lab/single", "root": str(single.root)},
            ]
        }
    )
    report, _ = _fit(mixture, dataclasses.replace(SETTINGS, total_chunks=400))
    many_head, single_head = report.heads
    assert many_head.heldout > 0
    assert many_head.fit > 0
    assert single_head.fit > 0
    assert single_head.heldout == 0
    assert single_head.token_lengths is None
    assert [w for w in report.warnings if "single episode" in w] == [
        f"head {single_head.key} (entry 1 (lab/single)) has a single episode long enough for a chunk: it is "
        "fit on it and has no held-out chunks, so the report has no held-out measures for it; add episodes"
    ]


def test_heldout_evaluation_is_capped_per_head_and_stratified(many_episodes: Path) -> None:
    full, full_plan = _fit(many_episodes, SETTINGS)
    capped, plan = _fit(
        many_episodes, dataclasses.replace(SETTINGS, max_heldout_chunks_per_head=12, max_action_tokens=20)
    )
    assert capped.fit_fingerprint == full.fit_fingerprint  # the cap changes the report, not the tokenizer
    assert capped.heldout == full.heldout  # every held-out chunk is still sampled and counted
    evaluated = _keys(list(plan.heldout_batches()))
    assert capped.heldout_evaluated == len(evaluated) == capped.token_lengths.count  # type: ignore[union-attr]
    assert full.heldout_evaluated == full.heldout
    for head in capped.heads:
        assert head.heldout_evaluated == min(12, head.heldout) == head.token_lengths.count  # type: ignore[union-attr]
    # The mixture-wide numbers weigh every head back to its held-out share, so the cap does not tilt them.
    assert capped.token_lengths.mean == pytest.approx(  # type: ignore[union-attr]
        sum(h.heldout * h.token_lengths.mean for h in capped.heads) / capped.heldout  # type: ignore[union-attr]
    )
    truncated_share = sum(h.heldout * (h.truncation_rate or 0.0) for h in capped.heads) / capped.heldout
    assert capped.truncation_rate == pytest.approx(truncated_share)
    assert 0 < truncated_share < 1
    arm = next(h for h in capped.heads if h.key == "arm7::joint_pos")
    arm_entries = [d for d in capped.datasets if d.entry in arm.entries]
    assert len(arm_entries) == 2
    assert all((d.heldout_evaluated or 0) > 0 for d in arm_entries)
    # The evaluated chunks are the first held-out chunks of each entry, in draw order.
    every = _keys(list(full_plan.heldout_batches()))
    for entry in capped.datasets:
        mine = [k for k in every if k[0] == entry.entry]
        assert [k for k in evaluated if k[0] == entry.entry] == mine[: entry.heldout_evaluated]


def test_a_positive_weight_head_without_chunks_is_a_warning(
    make_dataset: Callable[..., SyntheticDataset], write_mixture_file: Callable[..., Path]
) -> None:
    big = make_dataset("big", control_mode="a")
    tiny = make_dataset("tiny", control_mode="b", robot_type="other", seed=2)
    mixture = write_mixture_file(
        {
            "datasets": [
                {"repo_id": "lab/big", "root": str(big.root)},
                {"repo_id": "lab/tiny", "root": str(tiny.root)},
            ],
            "weights": [1.0, 1e-6],
        }
    )
    report, _ = _fit(mixture, dataclasses.replace(SETTINGS, total_chunks=300))
    tiny_head = report.heads[1]
    assert tiny_head.fit == tiny_head.heldout == 0
    assert (
        f"head {tiny_head.key} (entry 1 (lab/tiny)) has a positive weight but got 0 fit and 0 held-out "
        "chunks (0 requested of total_chunks 300): it does not shape the vocabulary and is not measured; "
        "raise total_chunks or its weight"
    ) in report.warnings


def test_a_fit_without_any_data_is_an_error(
    make_dataset: Callable[..., SyntheticDataset], write_mixture_file: Callable[..., Path]
) -> None:
    broken = make_dataset("broken", version="v2.1", control_mode="b")
    for path in (broken.root / "data").rglob("*.parquet"):
        path.write_bytes(b"garbage")
    mixture = write_mixture_file({"datasets": [{"repo_id": "lab/broken", "root": str(broken.root)}]})
    with pytest.raises(FitError, match="the fit corpus is empty"):
        fit_tokenizer(mixture, dataclasses.replace(SETTINGS, on_dataset_error="skip"))


def test_heldout_cap_is_validated() -> None:
    with pytest.raises(FitError, match="max_heldout_chunks_per_head must be an integer >= 1, got 0"):
        FitSettings(max_heldout_chunks_per_head=0)
    assert FitSettings(max_heldout_chunks_per_head=None).max_heldout_chunks_per_head is None
    np.testing.assert_equal(FitSettings().max_heldout_chunks_per_head, 4000)
