"""fit_tokenizer: preflight gate, Normalize-exact fit corpus, held-out split, FitReport, fingerprints."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from fasttok_plugin.codec import FastTokenizer
from fasttok_plugin.fitting import (
    REPORT_NAME,
    FitError,
    FitPlan,
    FitReport,
    FitSettings,
    OutDirError,
    fit_fingerprint,
    fit_tokenizer,
)
from fasttok_plugin.heads import build_norm_heads
from fasttok_plugin.normalize import Normalize
from fasttok_plugin.preflight import PreflightError
from fasttok_plugin.resolve import resolve_mixture
from fasttok_plugin.sampling import ChunkSampler
from fasttok_plugin.testing import SyntheticDataset

# Tiny but real: 10-step chunks, a small vocabulary, a few hundred chunks.
SMALL = FitSettings(chunk_size=10, vocab_size=300, total_chunks=600, max_fit_chunks=300, heldout_fraction=0.2)


def _keys(batches: list[Any]) -> set[tuple[int, int, int]]:
    return {
        (int(d), int(e), int(s))
        for b in batches
        for d, e, s in zip(b.dataset_index, b.episode_index, b.start_frame, strict=True)
    }


@pytest.fixture
def fit_spy(monkeypatch: pytest.MonkeyPatch) -> list[np.ndarray]:
    """Record every batch `FastTokenizer.fit` consumes (then fit for real on them)."""
    seen: list[np.ndarray] = []
    original = FastTokenizer.fit.__func__  # type: ignore[attr-defined]

    def spy(cls: type[FastTokenizer], chunks: Any, **kwargs: Any) -> FastTokenizer:
        def record() -> Iterator[np.ndarray]:
            for batch in chunks:
                seen.append(np.array(batch, copy=True))
                yield batch

        return original(cls, record(), **kwargs)

    monkeypatch.setattr(FastTokenizer, "fit", classmethod(spy))
    return seen


@pytest.mark.parametrize("mode", ["min_max", "mean_std"])
def test_fit_corpus_is_normalize_applied_to_the_sampled_raw_chunks(
    example_mixture: Path, fit_spy: list[np.ndarray], mode: str
) -> None:
    plans: list[FitPlan] = []
    settings = dataclasses.replace(SMALL, normalization=mode)
    _, report = fit_tokenizer(example_mixture, settings, on_plan=plans.append)
    fitted = np.concatenate(fit_spy)
    assert fitted.shape == (report.fit, 10, 32)

    # The plan's fit batches are exactly what FastTokenizer.fit consumed, in order.
    plan_batches = list(plans[0].fit_batches())
    assert np.array_equal(np.concatenate([b.normalized for b in plan_batches]), fitted)

    # Independently: sample the raw chunks again and normalize them with a fresh Normalize module.
    resolved = resolve_mixture(example_mixture)
    heads = build_norm_heads(resolved, 32)
    raw_by_key = {}
    for batch in ChunkSampler(resolved, heads, chunk_size=10).sample(
        settings.total_chunks, seed=settings.seed
    ):
        for i, key in enumerate(
            zip(batch.dataset_index, batch.episode_index, batch.start_frame, strict=True)
        ):
            raw_by_key[tuple(int(k) for k in key)] = (batch.actions[i], int(batch.head_index[i]))
    keys = [
        (int(d), int(e), int(s))
        for b in plan_batches
        for d, e, s in zip(b.dataset_index, b.episode_index, b.start_frame, strict=True)
    ]
    raw = torch.from_numpy(np.stack([raw_by_key[k][0] for k in keys]))
    head = torch.tensor([raw_by_key[k][1] for k in keys])
    expected = Normalize(heads, mode=mode)(raw, head)
    assert torch.equal(expected, torch.from_numpy(fitted))


def test_heldout_chunks_are_disjoint_from_the_fit_corpus(example_mixture: Path) -> None:
    plans: list[FitPlan] = []
    # The example datasets are small: 600 chunks exceed their valid starts, so starts repeat.
    _, report = fit_tokenizer(example_mixture, SMALL, on_plan=plans.append)
    plan = plans[0]
    fit_keys = _keys(list(plan.fit_batches()))
    heldout = list(plan.heldout_batches())
    held_keys = _keys(heldout)
    assert fit_keys
    assert held_keys
    assert not fit_keys & held_keys  # no start is on both sides, even when starts repeat
    # The split is by episode: no episode has chunks on both sides (so no chunk shares a frame).
    assert not {k[:2] for k in fit_keys} & {k[:2] for k in held_keys}
    assert sum(len(b) for b in heldout) == report.heldout == report.heldout_evaluated
    assert report.heldout_split == "episode"
    # Two episodes per example dataset: every head holds out one of its episodes (not the 0.2 asked).
    assert all(h.heldout_episodes == 1 and h.heldout > 0 and h.fit > 0 for h in report.heads)
    assert report.fit == 300
    assert report.sampled == 600


def test_split_does_not_depend_on_the_total(example_mixture: Path) -> None:
    # A start is held out or not by its own hash: a bigger sample keeps the smaller one's sides.
    sides = []
    for total in (300, 900):
        plans: list[FitPlan] = []
        settings = dataclasses.replace(SMALL, total_chunks=total, max_fit_chunks=None)
        fit_tokenizer(example_mixture, settings, on_plan=plans.append)
        sides.append((_keys(list(plans[0].fit_batches())), _keys(list(plans[0].heldout_batches()))))
    (fit_small, held_small), (fit_big, held_big) = sides
    assert not fit_small & held_big
    assert not held_small & fit_big


def test_report_token_lengths_are_measured_on_heldout_chunks(example_mixture: Path) -> None:
    plans: list[FitPlan] = []
    settings = dataclasses.replace(SMALL, max_action_tokens=20)
    tokenizer, report = fit_tokenizer(example_mixture, settings, on_plan=plans.append)
    heldout = list(plans[0].heldout_batches())
    chunks = np.concatenate([b.normalized for b in heldout])
    head = np.concatenate([b.head_index for b in heldout])
    lengths = np.array([len(ids) for ids in tokenizer.encode(chunks)])

    assert report.token_lengths is not None
    assert report.token_lengths.count == len(lengths) == report.heldout
    assert report.token_lengths.mean == pytest.approx(lengths.mean())
    assert report.token_lengths.p99 == pytest.approx(np.percentile(lengths, 99))
    assert report.token_lengths.max == lengths.max()
    assert report.truncation_rate == pytest.approx((lengths > 20).mean())
    assert 0 < report.truncation_rate < 1
    assert report.compression_ratio == pytest.approx(10 * 32 / lengths.mean())
    for h in report.heads:
        rows = head == h.head
        assert h.heldout == rows.sum()
        assert h.token_lengths is not None
        assert h.token_lengths.count == rows.sum()
        assert h.token_lengths.mean == pytest.approx(lengths[rows].mean())
        assert h.token_lengths.max == lengths[rows].max()
        assert sum(h.histogram) == rows.sum()
        assert h.roundtrip_mse is not None
        assert 0 <= h.roundtrip_mse < 0.01


def test_max_fit_chunks_takes_a_subset_stratified_across_heads_and_datasets(example_mixture: Path) -> None:
    plans: list[FitPlan] = []
    settings = dataclasses.replace(SMALL, max_fit_chunks=6)  # the example mixture has 5 heads, 6 entries
    _, report = fit_tokenizer(example_mixture, settings, on_plan=plans.append)
    assert report.fit == 6
    assert report.sampled == 600
    assert all(h.fit >= 1 for h in report.heads)  # every head shapes the vocabulary
    quota = plans[0].fit_quota
    assert quota.sum() == 6
    assert [d.fit for d in report.datasets] == quota.tolist()


def test_preflight_error_stops_the_fit_before_sampling(
    make_dataset: Callable[..., SyntheticDataset],
    write_mixture_file: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    tagged = make_dataset("tagged", control_mode="joint_pos")
    untagged = make_dataset("untagged", robot_type=None, seed=1)
    mixture = write_mixture_file(
        {
            "datasets": [
                {"repo_id": "lab/tagged", "root": str(tagged.root)},
                {"repo_id": "lab/untagged", "root": str(untagged.root)},
            ],
            "require_non_empty_robot_type": True,
        }
    )

    def no_sampling(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("sampling started despite preflight errors")

    monkeypatch.setattr(ChunkSampler, "sample", no_sampling)
    with pytest.raises(PreflightError) as info:
        fit_tokenizer(mixture, SMALL, out_dir=tmp_path / "tok")
    assert any(f.entry_index == 1 for f in info.value.result.errors)
    assert "lab/untagged" in str(info.value)
    assert not (tmp_path / "tok").exists()


def test_saved_directory_holds_tokenizer_and_report_atomically(example_mixture: Path, tmp_path: Path) -> None:
    out = tmp_path / "tok"
    _tokenizer, report = fit_tokenizer(example_mixture, SMALL, out_dir=out)
    assert (out / REPORT_NAME).is_file()
    assert (out / "processor_config.json").is_file()
    assert FitReport.load(out) == report
    loaded = FastTokenizer.load(out)
    assert loaded.metadata["fit_fingerprint"] == report.fit_fingerprint
    assert loaded.metadata["norm_heads_fingerprint"] == report.norm_heads_fingerprint
    assert loaded.metadata["normalization"] == "min_max"
    assert loaded.metadata["chunk_size"] == 10
    assert loaded.metadata["action_dim"] == 32
    assert loaded.metadata["fit_report"] == json.loads((out / REPORT_NAME).read_text())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tok")]  # no temp leftovers

    refit_tokenizer, refit = fit_tokenizer(example_mixture, dataclasses.replace(SMALL, seed=1), out_dir=out)
    assert FitReport.load(out).fit_fingerprint == refit.fit_fingerprint != report.fit_fingerprint
    assert refit_tokenizer.metadata["fit_fingerprint"] == refit.fit_fingerprint


def test_out_dir_that_is_not_a_tokenizer_is_refused_before_any_work(
    example_mixture: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "thesis.txt").write_text("do not delete")
    monkeypatch.setattr(ChunkSampler, "sample", lambda *a, **k: pytest.fail("sampled"))
    with pytest.raises(OutDirError, match="not a tokenizer directory"):
        fit_tokenizer(example_mixture, SMALL, out_dir=precious)
    assert [p.name for p in precious.iterdir()] == ["thesis.txt"]


def test_fit_report_roundtrips_through_json(example_mixture: Path) -> None:
    _, report = fit_tokenizer(example_mixture, SMALL)
    text = json.dumps(report.to_dict(), allow_nan=False)
    assert FitReport.from_dict(json.loads(text)) == report
    assert report.mixture_sha256 == resolve_mixture(example_mixture).config.sha256
    assert set(report.timings) >= {"preflight", "norm_heads", "sample", "normalize", "fit", "evaluate"}
    assert report.peak_memory_mb > 0
    assert report.settings["vocab_size"] == 300
    assert [h.key for h in report.heads] == list(build_norm_heads(resolve_mixture(example_mixture), 32).keys)


def test_nan_chunks_are_reported_in_the_fit_report(
    make_dataset: Callable[..., SyntheticDataset], write_mixture_file: Callable[..., Path]
) -> None:
    rng = np.random.default_rng(1)
    episodes = [rng.normal(size=(80, 4)), rng.normal(size=(80, 4))]
    episodes[0][40] = np.nan
    finite = np.concatenate(episodes)
    # The writer's stats would be NaN too (a preflight error); give the stats a curated dataset would have.
    stats = {
        "min": np.nanmin(finite, axis=0).tolist(),
        "max": np.nanmax(finite, axis=0).tolist(),
        "mean": np.nanmean(finite, axis=0).tolist(),
        "std": np.nanstd(finite, axis=0).tolist(),
    }
    ds = make_dataset("nan", actions=episodes, control_mode="x", stats_override=stats)
    mixture = write_mixture_file({"datasets": [{"repo_id": "lab/nan", "root": str(ds.root)}]})
    _, report = fit_tokenizer(mixture, dataclasses.replace(SMALL, total_chunks=200, max_fit_chunks=None))
    entry = report.datasets[0]
    assert entry.skipped_nonfinite > 0
    assert entry.sampled == 200 - entry.skipped_nonfinite
    assert report.skipped_nonfinite == entry.skipped_nonfinite
    assert any("NaN/Inf" in w for w in report.warnings)


def test_unreadable_dataset_frames_stop_the_fit_unless_skipped(
    make_dataset: Callable[..., SyntheticDataset], write_mixture_file: Callable[..., Path]
) -> None:
    good = make_dataset("good", control_mode="a")
    broken = make_dataset("broken", version="v2.1", control_mode="b", robot_type="other", seed=2)
    for path in (broken.root / "data").rglob("*.parquet"):
        path.write_bytes(b"garbage")
    mixture = write_mixture_file(
        {
            "datasets": [
                {"repo_id": "lab/good", "root": str(good.root)},
                {"repo_id": "lab/broken", "root": str(broken.root)},
            ]
        }
    )
    with pytest.raises(FitError, match="lab/broken"):
        fit_tokenizer(mixture, SMALL)
    _, report = fit_tokenizer(mixture, dataclasses.replace(SMALL, on_dataset_error="skip"))
    assert report.datasets[1].error is not None
    assert report.datasets[1].sampled == 0
    assert report.datasets[0].fit > 0
    assert any(
        w.startswith(f"head {report.heads[1].key} (entry 1 (lab/broken)) has a positive weight but got 0 fit")
        and w.endswith("see the datasets' errors")
        for w in report.warnings
    )


def test_fit_source_protocol_object_is_accepted(example_mixture: Path) -> None:
    resolved = resolve_mixture(example_mixture)
    heads = build_norm_heads(resolved, 32)

    @dataclasses.dataclass
    class Source:
        norm_heads: Any
        chunk_sampler: Any
        resolved_mixture: Any

    source = Source(heads, ChunkSampler(resolved, heads, chunk_size=10), resolved)
    # settings.workers (the Lightning callback's `workers`) applies to the source's sampler too.
    settings = dataclasses.replace(SMALL, chunk_size=None, workers=2)
    plans: list[FitPlan] = []
    _, from_source = fit_tokenizer(source, settings, on_plan=plans.append)
    assert plans[0].sampler.workers == 2
    assert from_source.peak_memory_workers_mb > 0
    _, from_path = fit_tokenizer(example_mixture, SMALL)
    assert from_path.peak_memory_workers_mb == 0  # in-process
    assert from_source.fit_fingerprint == from_path.fit_fingerprint
    assert from_source.token_lengths == from_path.token_lengths
    assert from_source.datasets == from_path.datasets
    with pytest.raises(FitError, match="chunk"):
        fit_tokenizer(source, dataclasses.replace(SMALL, chunk_size=12))


_LIGHTNING_FIT = """
import json, sys
import torch
import pytorch_lightning as pl
from fasttok_plugin.fitting import FitSettings, fit_tokenizer


class Tiny(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class FitInSetup(pl.Callback):
    # Like FastTokenizerCallback: fit while the trainer (and torch's thread pools) are live.
    def setup(self, trainer, pl_module, stage):
        torch.randn(256, 256) @ torch.randn(256, 256)  # start torch's intra-op threads first
        settings = FitSettings(**json.loads(sys.argv[2]))
        _, report = fit_tokenizer(sys.argv[1], settings, out_dir=sys.argv[3])
        print(json.dumps(report.to_dict()))


if __name__ == "__main__":
    torch.set_num_threads(2)
    data = torch.utils.data.TensorDataset(torch.randn(8, 4))
    trainer = pl.Trainer(
        max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[FitInSetup()],
    )
    trainer.fit(Tiny(), torch.utils.data.DataLoader(data, batch_size=4))
"""


def test_pooled_fit_inside_a_lightning_run_matches_the_in_process_fit(
    example_mixture: Path, tmp_path: Path
) -> None:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(_LIGHTNING_FIT))
    settings = dataclasses.replace(SMALL, workers=2)
    run = subprocess.run(
        [
            sys.executable,
            str(script),
            str(example_mixture),
            json.dumps(settings.to_dict()),
            str(tmp_path / "tok"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    pooled = FitReport.from_dict(json.loads(run.stdout.strip().splitlines()[-1]))
    assert pooled.peak_memory_workers_mb > 0  # the worker processes really ran
    _, in_process = fit_tokenizer(example_mixture, SMALL)
    assert pooled.fit_fingerprint == in_process.fit_fingerprint
    assert pooled.token_lengths == in_process.token_lengths
    assert pooled.heads == in_process.heads
    assert FastTokenizer.load(tmp_path / "tok").metadata["fit_fingerprint"] == in_process.fit_fingerprint


def test_fit_fingerprint_covers_what_changes_the_tokenizer_only(example_mixture: Path) -> None:
    resolved = resolve_mixture(example_mixture)
    heads = build_norm_heads(resolved, 32)
    sampler_settings = ChunkSampler(resolved, heads, chunk_size=10).settings()
    base = fit_fingerprint(heads, SMALL, sampler_settings)
    assert base == fit_fingerprint(heads, SMALL, dict(sampler_settings))  # pure
    assert len(base) == 64
    for change in ({"workers": 2}, {"max_action_tokens": 7}):
        assert fit_fingerprint(heads, dataclasses.replace(SMALL, **change), sampler_settings) == base
    for change in (
        {"vocab_size": 301},
        {"scale": 11.0},
        {"normalization": "mean_std"},
        {"zero_range": "legacy"},
        {"max_fit_chunks": 299},
        {"seed": 1},
        {"pipeline": "reference"},
    ):
        assert fit_fingerprint(heads, dataclasses.replace(SMALL, **change), sampler_settings) != base, change
    other_sampler = ChunkSampler(resolved, heads, chunk_size=10, action_freq=15.0).settings()
    assert fit_fingerprint(heads, SMALL, other_sampler) != base
    wider = build_norm_heads(resolved, 33)
    assert fit_fingerprint(wider, dataclasses.replace(SMALL, max_action_dim=None), sampler_settings) != base


def test_normalization_given_as_norm_mode_is_stored_as_its_value(example_mixture: Path) -> None:
    from fasttok_plugin.normalize import NormMode

    settings = dataclasses.replace(SMALL, normalization=NormMode.MEAN_STD)
    assert settings.normalization == "mean_std"
    assert type(settings.normalization) is str
    resolved = resolve_mixture(example_mixture)
    heads = build_norm_heads(resolved, 32)
    sampler_settings = ChunkSampler(resolved, heads, chunk_size=10).settings()
    as_text = dataclasses.replace(SMALL, normalization="mean_std")
    assert fit_fingerprint(heads, settings, sampler_settings) == fit_fingerprint(
        heads, as_text, sampler_settings
    )


def test_invalid_settings_list_every_problem() -> None:
    with pytest.raises(FitError) as info:
        FitSettings(vocab_size=0, heldout_fraction=1.5, pipeline="bpe")
    message = str(info.value)
    assert "vocab_size" in message
    assert "heldout_fraction" in message
    assert "pipeline" in message
