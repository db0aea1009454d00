"""Named conventions (issue #12 item 1 and its "Show"): our Normalize equals each framework's formula.

Every expected value below is the framework's formula written out from its current source (the file is cited
at each one), in the framework's dtype, applied to the head's stats. The stats come from real LeRobot datasets
written with pyarrow (a constant dim, zero-padded dims, two heads), computed from the frames
(``stats_source="data"``) so the quantile modes have q01/q10/q90/q99.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from fasttok_plugin.conventions import (
    CONVENTIONS,
    FORMULAS,
    Convention,
    convention_from_dict,
    resolve_convention,
)
from fasttok_plugin.errors import ConventionError, FitError
from fasttok_plugin.fit.settings import FitSettings
from fasttok_plugin.fit.source import heads_with_data_stats
from fasttok_plugin.heads import NormHeads, build_norm_heads
from fasttok_plugin.mixture import load_mixture
from fasttok_plugin.normalize import Normalize, Unnormalize
from fasttok_plugin.resolve import resolve_mixture
from fasttok_plugin.testing import write_lerobot_dataset, write_mixture

WIDTH = 5
_BOUNDS = {"min_max": ("min", "max"), "quantile": ("q01", "q99"), "quantile10": ("q10", "q90")}


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg_cache"))


def _constant_dim_actions(seed: int, lengths: tuple[int, ...], dim: int, constant: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for n in lengths:
        a = np.cumsum(rng.normal(0, 0.05, size=(n, dim)), axis=0).astype(np.float32)
        a[:, constant] = np.float32(0.25)  # a constant dim: zero range, zero std
        out.append(a)
    return out


@pytest.fixture(scope="module")
def heads(tmp_path_factory: pytest.TempPathFactory) -> NormHeads:
    """Head arm::pos (3 dims, dim 1 constant) and base::vel (2 dims); dims past the native width: padded."""
    root = tmp_path_factory.mktemp("conventions")
    write_lerobot_dataset(
        root / "a", robot_type="arm", control_mode="pos", actions=_constant_dim_actions(1, (40, 50), 3, 1)
    )
    write_lerobot_dataset(
        root / "b", version="v2.1", robot_type="base", control_mode="vel", action_dim=2, episode_lengths=(45,)
    )
    path = write_mixture(
        root / "mixture.json",
        {"datasets": [{"repo_id": "t/a", "root": "a"}, {"repo_id": "t/b", "root": "b"}]},
    )
    resolved = resolve_mixture(load_mixture(path))
    return heads_with_data_stats(resolved, build_norm_heads(resolved, WIDTH))


def _batch(heads: NormHeads, dtype: torch.dtype, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (B, T, D) actions around each head's range, exact lo/hi values, and zeros in padded dims."""
    rng = np.random.default_rng(seed)
    head_index = np.array([0, 1, 0, 1, 1, 0, 0, 1])
    lo, hi = heads.min[head_index], heads.max[head_index]
    x = rng.uniform(lo - 0.3, hi + 0.3, size=(6, *lo.shape)).transpose(1, 0, 2)
    x[:, 0] = lo  # exactly the head's min (maps to -1 / 0 on a zero range)
    x[:, 1] = hi
    for row, h in enumerate(head_index):
        x[row, :, int(heads.native_dims[h]) :] = 0.0  # the data is zero-padded
    return torch.from_numpy(x).to(dtype), torch.from_numpy(head_index)


def _stat(heads: NormHeads, name: str, head_index: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    # float32 first: OpenTau's buffers and LeRobot's to_tensor(dtype=float32) stats are float32.
    values = torch.from_numpy(np.asarray(getattr(heads, name))[head_index.numpy()]).float()
    return values.to(dtype).unsqueeze(1)


# ---- the frameworks' formulas, written out from their sources ---------------------------------------


def _opentau(
    x: torch.Tensor, heads: NormHeads, hi_: torch.Tensor, mode: str, eps: float, center: bool
) -> torch.Tensor:
    # src/opentau/policies/normalize.py (TensorAuto/OpenTau), Normalize.forward; float32 buffers.
    if mode == "mean_std":
        mean, std = (_stat(heads, n, hi_, torch.float32) for n in ("mean", "std"))
        std_is_zero = std.abs() < eps
        std = torch.where(std_is_zero, torch.ones_like(std), std)
        deviation = x - mean
        return deviation / (std + eps)
    lo_name, hi_name = _BOUNDS[mode]
    min_, max_ = _stat(heads, lo_name, hi_, torch.float32), _stat(heads, hi_name, hi_, torch.float32)
    raw_range = max_ - min_
    denom_is_zero = raw_range.abs() < eps
    denom = torch.where(denom_is_zero, torch.ones_like(raw_range), raw_range)
    deviation = x - min_
    shifted = deviation
    if center:
        shifted = deviation + 0.5 * (denom - raw_range)
    out = shifted / (denom + eps)
    return out * 2 - 1


def _lerobot(x: torch.Tensor, heads: NormHeads, hi_: torch.Tensor, mode: str, eps: float) -> torch.Tensor:
    # src/lerobot/processor/normalize_processor.py (huggingface/lerobot), _apply_transform; stats are cast
    # to the tensor's dtype; the policy normalizes at the native width (then pads with zeros).
    if mode == "mean_std":
        mean, std = (_stat(heads, n, hi_, x.dtype) for n in ("mean", "std"))
        denom = std + eps
        return (x - mean) / denom
    lo_name, hi_name = _BOUNDS[mode]
    lo, hi = _stat(heads, lo_name, hi_, x.dtype), _stat(heads, hi_name, hi_, x.dtype)
    denom = hi - lo
    denom = torch.where(denom == 0, torch.tensor(eps, device=x.device, dtype=x.dtype), denom)
    if mode == "min_max":
        return 2 * (x - lo) / denom - 1
    return 2.0 * (x - lo) / denom - 1.0


def _openpi(x: np.ndarray, heads: NormHeads, hi_: np.ndarray, mode: str) -> np.ndarray:
    # src/openpi/transforms.py (Physical-Intelligence/openpi), Normalize._normalize / _normalize_quantile;
    # NormStats are numpy float64 (loaded from JSON), so the arithmetic is float64.
    if mode == "mean_std":
        mean, std = heads.mean[hi_][:, None], heads.std[hi_][:, None]
        return (x - mean) / (std + 1e-6)
    q01, q99 = heads.q01[hi_][:, None], heads.q99[hi_][:, None]
    return (x - q01) / (q99 - q01 + 1e-6) * 2.0 - 1.0


def _native_then_pad(y: torch.Tensor, heads: NormHeads, head_index: torch.Tensor) -> torch.Tensor:
    y = y.clone()
    for row, h in enumerate(head_index.tolist()):
        y[row, :, int(heads.native_dims[h]) :] = 0.0
    return y


def _assert_within_ulp(ours: torch.Tensor, expected: torch.Tensor) -> None:
    assert ours.dtype == expected.dtype
    ulp = np.spacing(np.abs(expected.numpy())).astype(expected.numpy().dtype)
    diff = np.abs(ours.numpy().astype(np.float64) - expected.numpy().astype(np.float64))
    assert np.all(diff <= ulp), f"max diff {diff.max()} exceeds 1 ulp"


CASES = [
    (name, mode) for name in CONVENTIONS for mode in FORMULAS[CONVENTIONS[name].formula] if mode != "identity"
]


# The framework's dtype: OpenTau and LeRobot run float32 actions against float32 stats; openpi's numpy stats
# are float64 (float32 actions are promoted), so openpi is also checked on float64 input.
DTYPE_CASES = [
    (name, mode, dtype)
    for name, mode in CASES
    for dtype in ((torch.float32, torch.float64) if name == "openpi" else (torch.float32,))
]


@pytest.mark.parametrize(("name", "mode", "dtype"), DTYPE_CASES)
def test_normalize_equals_the_frameworks_formula(
    heads: NormHeads, name: str, mode: str, dtype: torch.dtype
) -> None:
    convention = resolve_convention(name, normalization=mode)
    x, head_index = _batch(heads, dtype)
    ours = Normalize.for_convention(heads, convention)(x, head_index)
    if convention.formula == "opentau":
        expected = _opentau(x, heads, head_index, mode, convention.eps, convention.zero_range == "center")
        assert torch.equal(ours, expected)  # same ops, same dtype: bit for bit
    elif convention.formula == "lerobot":
        expected = _native_then_pad(_lerobot(x, heads, head_index, mode, convention.eps), heads, head_index)
        assert torch.equal(ours, expected)
    else:
        y = _openpi(x.numpy(), heads, head_index.numpy(), mode)  # float32 x - float64 stats -> float64
        assert y.dtype == np.float64
        expected = _native_then_pad(torch.from_numpy(y), heads, head_index).to(dtype)
        if dtype == torch.float64:
            assert torch.equal(ours, expected)
    _assert_within_ulp(ours, expected)


def test_zero_range_and_constant_dims_follow_each_framework(heads: NormHeads) -> None:
    x, head_index = _batch(heads, torch.float32)
    at_min = x[:1, :1]  # row 0 (head 0), step 0: every dim at the head's min; dim 1 is constant, 3-4 padded
    index = head_index[:1]
    opentau = Normalize.for_convention(heads, "opentau")(at_min, index)[0, 0]
    legacy = Normalize.for_convention(heads, resolve_convention("opentau", config_version=0))(at_min, index)
    lerobot = Normalize.for_convention(heads, resolve_convention("lerobot", normalization="min_max"))(
        at_min, index
    )
    openpi = Normalize.for_convention(heads, "openpi")(at_min, index)[0, 0]
    assert opentau[1].item() == pytest.approx(0.0, abs=1e-5)
    assert opentau[3:].abs().max() < 1e-5
    assert legacy[0, 0, 1].item() == -1.0
    assert legacy[0, 0, 3].item() == -1.0
    assert lerobot[0, 0, 1].item() == -1.0
    assert lerobot[0, 0, 3:].abs().max() == 0.0
    assert openpi[3:].abs().max() == 0.0  # openpi pads after normalizing


@pytest.mark.parametrize(("name", "mode"), CASES)
def test_unnormalize_inverts_normalize_on_real_chunks(
    heads: NormHeads, name: str, mode: str, tmp_path: Path
) -> None:
    # Real frames (padded), each row from its own head: constant dims stay constant, as in the data.
    rows = []
    for h in (0, 1):
        mask = np.arange(WIDTH) < heads.native_dims[h]
        rows.append(
            np.where(mask, np.clip(heads.mean[h] + 0.5 * heads.std[h], heads.min[h], heads.max[h]), 0.0)
        )
        rows.append(np.where(mask, heads.min[h], 0.0))
        rows.append(np.where(mask, heads.max[h], 0.0))
    x = torch.from_numpy(np.stack(rows)[:, None, :]).float().expand(-1, 4, -1).contiguous()
    head_index = torch.tensor([0, 0, 0, 1, 1, 1])
    convention = resolve_convention(name, normalization=mode)
    y = Normalize.for_convention(heads, convention)(x, head_index)
    back = Unnormalize.for_convention(heads, convention)(y, head_index)
    scale = np.maximum(np.abs(x.numpy()), 1.0)
    assert np.all(np.abs(back.numpy() - x.numpy()) <= 8 * np.finfo(np.float32).eps * scale)


def test_the_default_formula_is_unchanged(heads: NormHeads) -> None:
    # No convention: the package's own formula (DESIGN §6), bit for bit as before.
    x, head_index = _batch(heads, torch.float32)
    lo, hi = _stat(heads, "min", head_index, torch.float32), _stat(heads, "max", head_index, torch.float32)
    span = hi - lo
    zero = span.abs() < 1e-6
    expected = (x - lo) / torch.where(zero, torch.ones_like(span), span) * 2.0 + torch.where(
        zero, torch.zeros_like(span), torch.full_like(span, -1.0)
    )
    assert torch.equal(Normalize(heads)(x, head_index), expected)


def test_registry_matches_the_frameworks_defaults() -> None:
    # OpenTau: CURRENT_CONFIG_VERSION = 1 -> OPENPI_EPS 1e-6, zero range centered
    # (src/opentau/configs/policies.py).
    assert CONVENTIONS["opentau"].to_dict() | {} == {
        "name": "opentau",
        "head_grouping": "robot_control",
        "layout": "padded",
        "normalization": "min_max",
        "formula": "opentau",
        "eps": 1e-6,
        "zero_range": "center",
        "stats_source": None,
        "dtype": "float32",
        "config_version": 1,
    }
    legacy = resolve_convention("opentau", config_version=0)
    assert (legacy.eps, legacy.zero_range) == (1e-8, "legacy")
    # LeRobot pi0_fast: ACTION -> MEAN_STD (configuration_pi0_fast.py); NormalizerProcessorStep eps = 1e-8.
    lerobot = CONVENTIONS["lerobot"]
    assert (lerobot.normalization, lerobot.eps, lerobot.layout, lerobot.formula) == (
        "mean_std",
        1e-8,
        "native",
        "lerobot",
    )
    # openpi pi0-FAST: use_quantile_norm = model_type != PI0 (src/openpi/training/config.py).
    openpi = CONVENTIONS["openpi"]
    assert (openpi.normalization, openpi.eps, openpi.dtype, openpi.source) == (
        "quantile",
        1e-6,
        "float64",
        "data",
    )


def test_overrides_are_field_by_field_and_checked() -> None:
    c = resolve_convention("lerobot", normalization="quantile", head_grouping="robot_control")
    assert (c.normalization, c.head_grouping, c.formula, c.source) == (
        "quantile",
        "robot_control",
        "lerobot",
        "data",
    )
    assert convention_from_dict(c.to_dict()) == c
    assert convention_from_dict({"name": "openpi", "normalization": "mean_std"}).normalization == "mean_std"
    with pytest.raises(ConventionError, match="unknown convention 'pi0'"):
        resolve_convention("pi0")
    with pytest.raises(ConventionError, match=r"unknown convention field.*'epsilon'.*the fields are"):
        resolve_convention("openpi", epsilon=1e-6)
    with pytest.raises(ConventionError, match="'min_max' does not exist in the openpi formula"):
        resolve_convention("openpi", normalization="min_max")
    with pytest.raises(ConventionError, match="lerobot formula maps a zero-range dim to -1"):
        resolve_convention("lerobot", zero_range="center")
    with pytest.raises(ConventionError, match="needs stats_source 'data'"):
        resolve_convention("lerobot", normalization="quantile", stats_source="stored")
    with pytest.raises(ConventionError, match="layout must be"):
        resolve_convention("opentau", layout="ragged")


def test_fit_settings_take_the_convention() -> None:
    s = FitSettings(convention="lerobot").resolved(None)
    assert (s.normalization, s.eps, s.zero_range, s.head_grouping, s.layout, s.formula) == (
        "mean_std",
        1e-8,
        "legacy",
        "global",
        "native",
        "lerobot",
    )
    # A non-default field overrides the convention's; the result is recorded as the convention.
    s = FitSettings(convention="openpi", normalization="mean_std").resolved(None)
    assert s.normalization == "mean_std"
    assert isinstance(s.convention, Convention)
    assert s.convention.normalization == "mean_std"
    assert s.stats_source == "data"
    # No convention: exactly the old resolution.
    assert FitSettings().resolved(None) == dataclasses.replace(
        FitSettings(), chunk_size=50, max_action_dim=32, head_grouping="robot_control", stats_source="stored"
    )
    with pytest.raises(FitError, match="unknown convention 'nope'"):
        FitSettings(convention="nope")
    with pytest.raises(FitError, match=r"(?s)do not fit convention 'openpi'.*'quantile10' does not exist"):
        FitSettings(convention="openpi", normalization="quantile10").resolved(None)
    with pytest.raises(FitError, match="layout must be 'padded' or 'native', got 'flat'"):
        FitSettings(layout="flat")


def test_the_dtype_field_is_honoured(heads: NormHeads) -> None:
    x, head_index = _batch(heads, torch.float32)
    as64 = Normalize.for_convention(heads, "openpi")
    as32 = Normalize.for_convention(heads, resolve_convention("openpi", dtype="float32"))
    assert as64.q_lo.dtype == torch.float64
    assert as32.q_lo.dtype == torch.float32
    # float32 arithmetic of openpi's formula on float32-rounded stats (src/openpi/transforms.py).
    q01, q99 = _stat(heads, "q01", head_index, torch.float32), _stat(heads, "q99", head_index, torch.float32)
    expected = _native_then_pad((x - q01) / (q99 - q01 + 1e-6) * 2.0 - 1.0, heads, head_index)
    assert torch.equal(as32(x, head_index), expected)
    with pytest.raises(ConventionError, match="dtype must be"):
        resolve_convention("openpi", dtype="float16")


@pytest.mark.parametrize(("name", "mode"), CASES)
def test_unnormalize_equals_the_frameworks_inverse(heads: NormHeads, name: str, mode: str) -> None:
    convention = resolve_convention(name, normalization=mode)
    y = torch.from_numpy(np.random.default_rng(3).uniform(-1.2, 1.2, size=(8, 6, WIDTH))).float()
    head_index = torch.tensor([0, 1, 0, 1, 1, 0, 0, 1])
    ours = Unnormalize.for_convention(heads, convention)(y, head_index)
    lo_name, hi_name = _BOUNDS.get(mode, ("min", "max"))
    if convention.formula == "opentau":
        # src/opentau/policies/normalize.py, Unnormalize.forward.
        if mode == "mean_std":
            mean, std = (_stat(heads, n, head_index, torch.float32) for n in ("mean", "std"))
            std = torch.where(std.abs() < convention.eps, torch.ones_like(std), std)
            expected = y * (std + convention.eps) + mean
        else:
            min_, max_ = (_stat(heads, n, head_index, torch.float32) for n in (lo_name, hi_name))
            raw_range = max_ - min_
            denom = torch.where(raw_range.abs() < convention.eps, torch.ones_like(raw_range), raw_range)
            expected = (y + 1) / 2
            expected = expected * (denom + convention.eps) + min_
            expected = expected - 0.5 * (denom - raw_range)  # zero_range_center (config_version 1)
        assert torch.equal(ours, expected)
    elif convention.formula == "lerobot":
        # src/lerobot/processor/normalize_processor.py, _apply_transform(inverse=True).
        if mode == "mean_std":
            mean, std = (_stat(heads, n, head_index, torch.float32) for n in ("mean", "std"))
            expected = y * std + mean
        else:
            lo, hi = (_stat(heads, n, head_index, torch.float32) for n in (lo_name, hi_name))
            denom = hi - lo
            denom = torch.where(denom == 0, torch.tensor(convention.eps, dtype=y.dtype), denom)
            expected = (y + 1) / 2 * denom + lo if mode == "min_max" else (y + 1.0) * denom / 2.0 + lo
        assert torch.equal(ours, _native_then_pad(expected, heads, head_index))
    else:
        # src/openpi/transforms.py, Unnormalize._unnormalize / _unnormalize_quantile (float64 stats).
        v, rows = y.numpy(), head_index.numpy()
        if mode == "mean_std":
            out = v * (heads.std[rows][:, None] + 1e-6) + heads.mean[rows][:, None]
        else:
            q01, q99 = heads.q01[rows][:, None], heads.q99[rows][:, None]
            out = (v + 1.0) / 2.0 * (q99 - q01 + 1e-6) + q01
        expected = _native_then_pad(torch.from_numpy(out), heads, head_index).float()
        _assert_within_ulp(ours, expected)
