"""MixtureDataModule: one resolution, weighted raw batches, distinct streams per worker / rank / epoch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lightning_support import CHUNK_SIZE, MAX_ACTION_DIM
from torch.utils.data import DataLoader

from fasttok_plugin.errors import SamplingError
from fasttok_plugin.heads import NormHeadsError
from fasttok_plugin.lightning import ChunkStream, MixtureDataModule
from fasttok_plugin.mixture import load_mixture


def _datamodule(path, **kwargs) -> MixtureDataModule:
    options = {
        "chunk_size": CHUNK_SIZE,
        "max_action_dim": MAX_ACTION_DIM,
        "batch_size": 6,
        "round_chunks": 24,
    }
    options.update(kwargs)
    return MixtureDataModule(path, **options)


def _collect(loader) -> list[dict[str, torch.Tensor]]:
    return list(loader)


def test_setup_builds_heads_once_and_exposes_the_protocol(make_mixture) -> None:
    mixture = make_mixture(("arm", "base"))
    dm = _datamodule(mixture.path)
    with pytest.raises(RuntimeError, match=r"setup\(\) has not run yet"):
        _ = dm.norm_heads
    dm.setup("fit")
    heads, sampler, resolved = dm.norm_heads, dm.chunk_sampler, dm.resolved_mixture
    dm.setup("validate")
    assert dm.norm_heads is heads
    assert dm.chunk_sampler is sampler
    assert dm.resolved_mixture is resolved
    assert heads.keys == ("arm::joint_pos", "base::velocity")
    assert heads.max_action_dim == MAX_ACTION_DIM
    assert sampler.chunk_size == CHUNK_SIZE
    assert dm.chunk_size == CHUNK_SIZE
    assert sampler.heads is heads
    assert sampler.resolved is resolved


def test_mixture_values_fill_unset_arguments(make_mixture) -> None:
    mixture = make_mixture(("arm",), chunk_size=5, max_action_dim=6)
    dm = MixtureDataModule(mixture.path, batch_size=2)
    dm.setup("fit")
    assert (dm.chunk_size, dm.max_action_dim) == (5, 6)
    batch = next(iter(dm.train_dataloader()))
    assert tuple(batch["actions"].shape) == (2, 5, 6)


def test_accepts_a_parsed_mixture_config(make_mixture) -> None:
    mixture = make_mixture(("arm",))
    dm = _datamodule(load_mixture(mixture.path))
    dm.setup("fit")
    assert dm.norm_heads.keys == ("arm::joint_pos",)


def test_batches_are_raw_padded_chunks_with_consistent_indices(make_mixture) -> None:
    mixture = make_mixture(("arm", "base"))
    dm = _datamodule(mixture.path, batches_per_epoch=4)
    dm.setup("fit")
    batches = _collect(dm.train_dataloader())
    assert len(batches) == 4
    dims = {0: 3, 1: 2}  # dataset index -> native action dim
    raw = {0: mixture.datasets["arm"].concatenated(), 1: mixture.datasets["base"].concatenated()}
    for batch in batches:
        assert batch["actions"].dtype == torch.float32
        assert tuple(batch["actions"].shape) == (6, CHUNK_SIZE, 4)
        assert batch["head_index"].dtype == torch.long
        assert batch["dataset_index"].dtype == torch.long
        expected_heads = np.asarray(dm.norm_heads.dataset_to_head)[batch["dataset_index"].numpy()]
        np.testing.assert_array_equal(batch["head_index"].numpy(), expected_heads)
        for chunk, dataset in zip(batch["actions"].numpy(), batch["dataset_index"].tolist(), strict=True):
            native = dims[dataset]
            assert np.all(chunk[:, native:] == 0.0), "padding beyond the native dim must be zeros"
            # Raw (not normalized): at native fps every step is a frame of the dataset, value for value.
            frames = raw[dataset]
            for step in chunk[:, :native]:
                assert np.any(np.all(np.isclose(frames, step, atol=1e-6), axis=1))


def test_datasets_are_drawn_in_proportion_to_the_weights(make_mixture) -> None:
    # One round = 8 chunks split exactly 2:6 by the weights 1:3; two batches of 4 consume one round.
    mixture = make_mixture(("arm", "base"), weights=(1.0, 3.0))
    dm = _datamodule(mixture.path, batch_size=4, round_chunks=8, batches_per_epoch=10)
    dm.setup("fit")
    counts = np.zeros(2, dtype=int)
    for batch in dm.train_dataloader():
        counts += np.bincount(batch["dataset_index"].numpy(), minlength=2)
    assert counts.tolist() == [10, 30]


def test_each_batch_mixes_datasets(make_mixture) -> None:
    mixture = make_mixture(("arm", "base"))
    dm = _datamodule(mixture.path, batch_size=8, round_chunks=64, batches_per_epoch=4)
    dm.setup("fit")
    mixed = [len(set(b["dataset_index"].tolist())) > 1 for b in dm.train_dataloader()]
    assert all(mixed)


def test_epochs_draw_new_training_chunks_but_fixed_evaluation_chunks(make_mixture) -> None:
    mixture = make_mixture(("arm", "base"))
    dm = _datamodule(mixture.path, batches_per_epoch=2, eval_batches=2)
    dm.setup("fit")
    train = dm.train_dataloader()
    first, second = _collect(train), _collect(train)
    assert not torch.equal(first[0]["actions"], second[0]["actions"])
    val = dm.val_dataloader()
    again = _collect(val)
    assert all(torch.equal(a["actions"], b["actions"]) for a, b in zip(_collect(val), again, strict=True))
    # Each stage has its own stream.
    assert not torch.equal(_collect(dm.test_dataloader())[0]["actions"], again[0]["actions"])
    assert len(_collect(dm.predict_dataloader())) == 2


def test_streams_are_deterministic_per_seed_and_distinct_per_rank(make_mixture) -> None:
    mixture = make_mixture(("arm", "base"))
    dm = _datamodule(mixture.path)
    dm.setup("fit")

    def stream(rank: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
        return list(
            ChunkStream(
                dm.chunk_sampler,
                batch_size=6,
                num_batches=2,
                round_chunks=24,
                seed=seed,
                stage="train",
                rank=rank,
            )
        )

    rank0, rank0_again, rank1 = stream(0), stream(0), stream(1)
    assert all(torch.equal(a["actions"], b["actions"]) for a, b in zip(rank0, rank0_again, strict=True))
    assert not torch.equal(rank0[0]["actions"], rank1[0]["actions"])
    assert not torch.equal(rank0[0]["actions"], stream(0, seed=1)[0]["actions"])


def test_dataloader_workers_draw_distinct_chunks_and_share_the_batch_count(make_mixture) -> None:
    mixture = make_mixture(("arm", "base"))
    dm = _datamodule(mixture.path, batches_per_epoch=5, num_workers=2)
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert isinstance(loader, DataLoader)
    assert loader.num_workers == 2
    batches = _collect(loader)
    assert len(batches) == 5
    # Workers alternate: batches 0 and 1 come from different workers and must differ.
    assert not torch.equal(batches[0]["actions"], batches[1]["actions"])
    fingerprints = {b["actions"].numpy().tobytes() for b in batches}
    assert len(fingerprints) == 5


def test_loaders_refuse_heads_with_errors(make_mixture) -> None:
    mixture = make_mixture(("arm", "untagged"), require_non_empty_robot_type=True)
    dm = _datamodule(mixture.path)
    dm.setup("fit")  # does not raise: the callback's preflight lists every problem
    with pytest.raises(NormHeadsError, match="untagged"):
        dm.train_dataloader()


def test_warns_when_a_round_starves_a_dataset(make_mixture) -> None:
    mixture = make_mixture(("arm", "base"), weights=(1.0, 100.0))
    dm = _datamodule(mixture.path, batch_size=4, round_chunks=8)
    dm.setup("fit")
    with pytest.warns(UserWarning, match=r"never drawn \(test/arm\)"):
        dm.train_dataloader()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
        ({"chunk_size": -2}, "chunk_size must be an integer >= 1, got -2"),
        ({"num_workers": -1}, "num_workers must be an integer >= 0, got -1"),
        ({"batches_per_epoch": 1.5}, "batches_per_epoch must be an integer >= 1, got 1.5"),
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),
    ],
)
def test_rejects_bad_arguments(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        MixtureDataModule("mixture.json", **kwargs)


def _break_data_of(mixture, robot: str):
    """Overwrite one data file of ``robot``'s dataset with garbage (its metadata stays readable)."""
    files = sorted((mixture.path.parent / "datasets" / robot / "data").rglob("*.parquet"))
    files[0].write_bytes(b"not a parquet file")
    return files[0]


def test_an_unreadable_dataset_at_train_time_is_an_error_naming_entry_file_and_fix(make_mixture) -> None:
    mixture = make_mixture(("arm", "base"))
    dm = _datamodule(mixture.path)
    dm.setup("fit")
    broken = _break_data_of(mixture, "base")
    with pytest.raises(SamplingError) as excinfo:
        next(iter(dm.train_dataloader()))
    message = str(excinfo.value)
    assert "entry 1 (test/base)" in message
    assert str(broken) in message
    assert "Fix:" in message
    assert "on_dataset_error='skip'" in message
    assert "test/arm" not in message


def test_on_dataset_error_skip_trains_on_the_rest_and_counts_the_skipped(make_mixture) -> None:
    mixture = make_mixture(("arm", "base"))
    dm = _datamodule(mixture.path, on_dataset_error="skip", batches_per_epoch=3)
    dm.setup("fit")
    broken = _break_data_of(mixture, "base")
    loader = dm.train_dataloader()
    with pytest.warns(UserWarning, match=r"skips 1 dataset\(s\)") as record:
        batches = _collect(loader)
    assert len(batches) == 3
    assert all(set(b["dataset_index"].tolist()) == {0} for b in batches)
    warned = [str(w.message) for w in record if "skips" in str(w.message)]
    assert len(warned) == 1, warned  # once per dataset, not once per round
    assert "entry 1 (test/base)" in warned[0]
    assert str(broken) in warned[0]
    ((entry, (name, error, rounds)),) = loader.dataset.skipped.items()
    assert (entry, name) == (1, "test/base")
    assert str(broken) in error
    assert rounds >= 2


def test_rejects_an_unknown_on_dataset_error() -> None:
    with pytest.raises(ValueError, match="on_dataset_error must be 'raise' or 'skip', got 'ignore'"):
        MixtureDataModule("mixture.json", on_dataset_error="ignore")


# -- head grouping (issue #11) -------------------------------------------------------------------------------


def test_head_grouping_dataset_gives_one_head_per_entry_and_batches_carry_it(make_mixture) -> None:
    mixture = make_mixture(("arm", "gripper", "untagged"))
    dm = _datamodule(mixture.path, head_grouping="dataset", batches_per_epoch=3)
    dm.setup("fit")
    heads = dm.norm_heads
    assert heads.grouping == "dataset"
    assert heads.keys == ("test/arm", "test/gripper", "test/untagged")
    assert heads.head_members == ((0,), (1,), (2,))
    assert heads.fallback_entries == ()
    for batch in dm.train_dataloader():
        # One head per entry: a chunk's head is its dataset.
        assert torch.equal(batch["head_index"], batch["dataset_index"])


def test_head_grouping_comes_from_the_mixture_unless_given(make_mixture) -> None:
    mixture = make_mixture(("arm", "base", "gripper"), head_grouping="global")
    from_mixture = _datamodule(mixture.path)
    from_mixture.setup("fit")
    assert from_mixture.norm_heads.grouping == "global"
    assert from_mixture.norm_heads.keys == ("global",)
    assert from_mixture.norm_heads.native_dims == (4,)
    batch = next(iter(from_mixture.train_dataloader()))
    assert set(batch["head_index"].tolist()) == {0}

    overridden = _datamodule(mixture.path, head_grouping="robot_control")
    overridden.setup("fit")
    assert overridden.norm_heads.keys == ("arm::joint_pos", "base::velocity", "gripper::joint_pos")

    default = _datamodule(make_mixture(("arm", "base"), name="plain.json").path)
    default.setup("fit")
    assert default.norm_heads.grouping == "robot_control"


def test_rejects_an_unknown_head_grouping() -> None:
    with pytest.raises(ValueError, match="head_grouping must be one of 'robot_control', 'global', 'dataset'"):
        MixtureDataModule("mixture.json", head_grouping="per_robot")


def test_stats_source_data_gives_heads_with_the_frames_stats(tmp_path, make_mixture, monkeypatch) -> None:
    from fasttok_plugin.heads import build_norm_heads
    from fasttok_plugin.resolve import resolve_mixture

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg_cache"))
    mixture = make_mixture(("arm", "base"))
    stored = _datamodule(mixture.path)
    stored.setup("fit")
    data = _datamodule(mixture.path, stats_source="data")
    data.setup("fit")
    assert stored.norm_heads.stats_source == "stored"
    assert (
        stored.norm_heads.fingerprint
        == build_norm_heads(resolve_mixture(mixture.path), MAX_ACTION_DIM).fingerprint
    )
    heads = data.norm_heads
    assert heads.stats_source == "data"
    assert heads.fingerprint != stored.norm_heads.fingerprint
    # Per head: exactly numpy over the pooled frames of its members, zero-padded.
    for h, members in enumerate(heads.head_members):
        frames = np.concatenate([mixture.datasets[("arm", "base")[i]].concatenated() for i in members])
        frames = np.pad(frames, ((0, 0), (0, MAX_ACTION_DIM - frames.shape[1]))).astype(np.float64)
        np.testing.assert_array_equal(heads.q99[h], np.quantile(frames, 0.99, axis=0, method="linear"))
        np.testing.assert_array_equal(heads.min[h], frames.min(axis=0))
    assert data.chunk_sampler.heads is heads  # the loaders and the fit draw through these very heads


def test_an_unknown_stats_source_is_refused(make_mixture) -> None:
    with pytest.raises(ValueError, match="stats_source must be 'stored' or 'data'"):
        MixtureDataModule(make_mixture(("arm",)).path, stats_source="quantile")
