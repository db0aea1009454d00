"""Normalize / Unnormalize (DESIGN §6) on norm heads built from real datasets written to disk."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from fasttok_plugin.heads import NormHeads, build_norm_heads
from fasttok_plugin.normalize import Normalize, NormMode, Unnormalize
from fasttok_plugin.resolve import resolve_mixture
from fasttok_plugin.testing import SyntheticDataset

MAX_DIM = 6


@pytest.fixture
def mixture(
    make_dataset: Callable[..., SyntheticDataset], write_mixture_file: Callable[..., Path]
) -> tuple[NormHeads, list[SyntheticDataset]]:
    """Three heads of native dims 3, 5 and 2 (v2.1 and v3.0), the last with a constant dim."""
    constant = np.linspace(-2.0, 3.0, 30, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
    constant[:, 1] = 0.25  # a real dim with zero range: must not blow up
    datasets = [
        make_dataset("arm", version="v2.1", robot_type="arm", control_mode="ee", action_dim=3, seed=1),
        make_dataset("biman", version="v3.0", robot_type="biman", control_mode="jp", action_dim=5, seed=2),
        make_dataset("base", version="v3.0", robot_type="base", control_mode="vel", actions=[constant]),
    ]
    path = write_mixture_file(
        {"datasets": [{"repo_id": d.root.name, "root": f"datasets/{d.root.name}"} for d in datasets]}
    )
    heads = build_norm_heads(resolve_mixture(path), MAX_DIM)
    assert heads.keys == ("arm::ee", "biman::jp", "base::vel")
    assert heads.errors() == []
    return heads, datasets


def padded_batch(
    datasets: list[SyntheticDataset], rows: int = 4, horizon: int = 5
) -> tuple[torch.Tensor, ...]:
    """Chunks of real actions, zero-padded to MAX_DIM, ``rows`` per dataset; head i is dataset i."""
    chunks, heads = [], []
    for head, ds in enumerate(datasets):
        data = ds.concatenated()
        for r in range(rows):
            chunk = np.zeros((horizon, MAX_DIM), np.float32)
            chunk[:, : ds.action_dim] = data[r * horizon : (r + 1) * horizon]
            chunks.append(chunk)
            heads.append(head)
    return torch.from_numpy(np.stack(chunks)), torch.tensor(heads)


def test_min_max_maps_each_heads_range_to_minus_one_one(mixture: tuple[NormHeads, list]) -> None:
    heads, datasets = mixture
    norm = Normalize(heads)
    for head, ds in enumerate(datasets):
        d = ds.action_dim
        data = np.zeros((ds.concatenated().shape[0], MAX_DIM), np.float32)
        data[:, :d] = ds.concatenated()
        index = torch.full((data.shape[0],), head)
        out = norm(torch.from_numpy(data), index).numpy()
        ranged = [k for k in range(d) if heads.max[head, k] - heads.min[head, k] >= 1e-6]
        np.testing.assert_allclose(out[:, ranged].min(axis=0), -1.0, atol=1e-6)
        np.testing.assert_allclose(out[:, ranged].max(axis=0), 1.0, atol=1e-6)
        # Reference formula in float64 on the float32 buffers.
        lo = norm.min[head].double().numpy()
        hi = norm.max[head].double().numpy()
        expected = (data[:, ranged] - lo[ranged]) / (hi[ranged] - lo[ranged]) * 2 - 1
        np.testing.assert_allclose(out[:, ranged], expected, atol=1e-5)


def test_rows_use_their_own_heads_stats(mixture: tuple[NormHeads, list]) -> None:
    heads, datasets = mixture
    x, index = padded_batch(datasets)
    shuffled = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))
    norm = Normalize(heads)
    together = norm(x[shuffled], index[shuffled])
    for row, (chunk, head) in enumerate(zip(x[shuffled], index[shuffled], strict=True)):
        alone = norm(chunk[None], head[None])[0]
        torch.testing.assert_close(together[row], alone, rtol=0, atol=0)
    assert not torch.allclose(norm(x, index), norm(x, torch.zeros_like(index)))


def test_padded_dims_normalize_to_zero_in_center_and_minus_one_in_legacy(
    mixture: tuple[NormHeads, list],
) -> None:
    heads, datasets = mixture
    x, index = padded_batch(datasets)
    center = Normalize(heads, zero_range="center")(x, index)
    legacy = Normalize(heads, zero_range="legacy")(x, index)
    mean_std = Normalize(heads, mode="mean_std")(x, index)
    for head, ds in enumerate(datasets):
        rows = index == head
        d = ds.action_dim
        assert torch.all(center[rows][..., d:] == 0.0)
        assert torch.all(legacy[rows][..., d:] == -1.0)
        assert torch.all(mean_std[rows][..., d:] == 0.0)
        # Non-degenerate dims are identical under both conventions.
        ranged = torch.from_numpy(heads.max[head, :d] - heads.min[head, :d] >= 1e-6)
        torch.testing.assert_close(center[rows][..., :d][..., ranged], legacy[rows][..., :d][..., ranged])
    # The constant real dim of "base" (value 0.25 == min == max) behaves like a padded one.
    assert torch.all(center[index == 2][..., 1] == 0.0)
    assert torch.all(legacy[index == 2][..., 1] == -1.0)


def test_mean_std_standardizes_each_heads_data(mixture: tuple[NormHeads, list]) -> None:
    heads, datasets = mixture
    norm = Normalize(heads, mode=NormMode.MEAN_STD)
    for head, ds in enumerate(datasets[:2]):
        data = np.zeros((ds.concatenated().shape[0], MAX_DIM), np.float32)
        data[:, : ds.action_dim] = ds.concatenated()
        out = norm(torch.from_numpy(data).double(), torch.full((data.shape[0],), head)).numpy()
        np.testing.assert_allclose(out[:, : ds.action_dim].mean(axis=0), 0.0, atol=1e-5)
        np.testing.assert_allclose(out[:, : ds.action_dim].std(axis=0), 1.0, atol=1e-5)


def test_mean_std_snaps_a_zero_std_to_one(mixture: tuple[NormHeads, list]) -> None:
    heads, datasets = mixture
    assert heads.std[2, 1] == 0.0  # the constant dim of "base"
    x, index = padded_batch(datasets)
    out = Normalize(heads, mode="mean_std")(x, index)
    assert torch.all(out[index == 2][..., 1] == 0.0)  # (0.25 - 0.25) / 1, not 0 / 0
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(
    ("mode", "zero_range"),
    [("min_max", "center"), ("min_max", "legacy"), ("mean_std", "center"), ("identity", "center")],
)
@pytest.mark.parametrize("shape", ["BTD", "BD"])
def test_unnormalize_inverts_normalize_on_native_dims(
    mixture: tuple[NormHeads, list], mode: str, zero_range: str, shape: str
) -> None:
    heads, datasets = mixture
    x, index = padded_batch(datasets)
    # Values outside the stats range must round-trip too (unseen data at training time).
    x = x * 1.5 + 0.1
    for ds_i, ds in enumerate(datasets):
        x[index == ds_i, :, ds.action_dim :] = 0.0
    if shape == "BD":
        x = x[:, 0]
    norm = Normalize(heads, mode=mode, zero_range=zero_range)
    unnorm = Unnormalize(heads, mode=mode, zero_range=zero_range)
    back = unnorm(norm(x, index), index)
    assert back.shape == x.shape
    for head, ds in enumerate(datasets):
        rows = index == head
        # Every native dim, including the zero-range one of "base" (now fed values off its constant).
        d = ds.action_dim
        torch.testing.assert_close(back[rows][..., :d], x[rows][..., :d], rtol=1e-5, atol=1e-5)
    # Padded dims (x == 0 == min == max) come back exactly.
    assert torch.all(back[index == 0][..., 3:] == 0.0)


def test_identity_passes_actions_through(mixture: tuple[NormHeads, list]) -> None:
    heads, datasets = mixture
    x, index = padded_batch(datasets)
    assert torch.equal(Normalize(heads, mode="identity")(x, index), x)


def test_buffers_are_float32_and_stay_out_of_the_state_dict(mixture: tuple[NormHeads, list]) -> None:
    # Issue #10: the stats are derived from the heads, not trained state (DESIGN §14).
    heads, _datasets = mixture
    norm = Normalize(heads)
    for name in ("min", "max", "mean", "std"):
        tensor = getattr(norm, name)
        assert tensor.dtype == torch.float32
        assert tuple(tensor.shape) == (3, MAX_DIM)
        np.testing.assert_array_equal(tensor.numpy(), getattr(heads, name).astype(np.float32))
    assert norm.state_dict() == {}
    assert {name for name, _ in norm.named_buffers()} == {"min", "max", "mean", "std"}


def test_stats_saved_by_older_checkpoints_are_ignored_on_load(mixture: tuple[NormHeads, list]) -> None:
    heads, datasets = mixture
    norm = Normalize(heads)
    model = torch.nn.Sequential()
    model.add_module("normalize", norm)
    # What a checkpoint of the persistent-buffer era held, here from other heads (4 instead of 3).
    legacy = {f"normalize.{name}": torch.full((4, MAX_DIM), 5.0) for name in ("min", "max", "mean", "std")}
    result = model.load_state_dict(legacy, strict=True)
    assert not result.missing_keys
    assert not result.unexpected_keys
    np.testing.assert_array_equal(norm.max.numpy(), heads.max.astype(np.float32))
    x, index = padded_batch(datasets)
    assert torch.equal(norm(x, index), Normalize(heads)(x, index))


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16])
def test_output_dtype_is_float32_or_float64(mixture: tuple[NormHeads, list], dtype: torch.dtype) -> None:
    # Issue 14: half inputs are computed and returned in float32 (never rounded back); float64 stays.
    heads, datasets = mixture
    x, index = padded_batch(datasets)
    reference = Normalize(heads)(x.double(), index)
    out = Normalize(heads)(x.to(dtype), index)
    assert out.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    if dtype != torch.float64:
        assert torch.equal(out, Normalize(heads)(x.to(dtype).float(), index))
    tolerance = 1e-6 if dtype == torch.float64 else 0.05
    torch.testing.assert_close(out.double(), reference, rtol=tolerance, atol=tolerance)


def test_buffers_move_with_to(mixture: tuple[NormHeads, list]) -> None:
    heads, datasets = mixture
    norm = Normalize(heads).to(torch.float64)
    assert norm.min.dtype == torch.float64
    x, index = padded_batch(datasets)
    assert norm(x.double(), index).dtype == torch.float64


def test_float32_results_are_bit_identical_across_instances(mixture: tuple[NormHeads, list]) -> None:
    # Fit and training build their own modules from the same heads: values must agree bit for bit.
    heads, datasets = mixture
    x, index = padded_batch(datasets)
    assert torch.equal(Normalize(heads)(x, index), Normalize(heads)(x.clone(), index.clone()))


@pytest.mark.parametrize(
    ("actions", "head_index", "match"),
    [
        (torch.zeros(2, 5, MAX_DIM - 1), torch.tensor([0, 1]), r"\(B, T, 6\) or \(B, 6\)"),
        (torch.zeros(2, 5, 1, MAX_DIM), torch.tensor([0, 1]), r"\(B, T, 6\) or \(B, 6\)"),
        (torch.zeros(MAX_DIM), torch.tensor([0]), r"\(B, T, 6\) or \(B, 6\)"),
        (torch.zeros(2, 5, MAX_DIM), torch.tensor([0, 1, 2]), r"head_index must have shape \(2,\)"),
        (torch.zeros(2, 5, MAX_DIM), torch.tensor([[0, 1]]), r"head_index must have shape \(2,\)"),
        (torch.zeros(2, 5, MAX_DIM), torch.tensor([0, 3]), r"\[0, 3\).*\[3\]"),
        (torch.zeros(2, 5, MAX_DIM), torch.tensor([-1, 0]), r"\[0, 3\).*\[-1\]"),
        (torch.zeros(2, 5, MAX_DIM), torch.tensor([0.0, 1.0]), "integer"),
        (torch.zeros(2, 5, MAX_DIM, dtype=torch.int64), torch.tensor([0, 1]), "floating point"),
    ],
)
@pytest.mark.parametrize("module", [Normalize, Unnormalize])
def test_bad_inputs_raise_value_errors_naming_the_expected_shape(
    mixture: tuple[NormHeads, list],
    module: type[Normalize],
    actions: torch.Tensor,
    head_index: torch.Tensor,
    match: str,
) -> None:
    heads, _ = mixture
    with pytest.raises(ValueError, match=match):
        module(heads)(actions, head_index)


def test_bad_settings_are_rejected(mixture: tuple[NormHeads, list]) -> None:
    heads, _ = mixture
    with pytest.raises(ValueError, match="min_max"):
        Normalize(heads, mode="minmax")
    with pytest.raises(ValueError, match="center"):
        Normalize(heads, zero_range="middle")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="eps"):
        Normalize(heads, eps=0.0)


@pytest.mark.parametrize("cls", [Normalize, Unnormalize])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_casts_keep_the_buffers_float32(
    mixture: tuple[NormHeads, list], cls: type, dtype: torch.dtype
) -> None:
    # Issue 14: Lightning's precision="bf16-true" calls module.to(bfloat16) on the whole model.
    heads, datasets = mixture
    x, index = padded_batch(datasets)
    module = cls(heads)
    expected = module(x, index)
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), module).to(dtype)
    assert model[0].weight.dtype == dtype  # the cast itself happened
    for name in ("min", "max", "mean", "std"):
        assert getattr(module, name).dtype == torch.float32
        np.testing.assert_array_equal(getattr(module, name).numpy(), getattr(heads, name).astype(np.float32))
    assert torch.equal(module(x, index), expected)
    module.to("meta")  # a device move still applies (meta: no data, shapes only)
    assert module.min.device.type == "meta"
    assert module.min.dtype == torch.float32
