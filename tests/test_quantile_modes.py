"""Quantile normalization modes and ``stats_source`` (issue #11 item 2, its share of item 6).

The expected values are written out with numpy: per head, the pooled frames of its members (zero-padded to
``max_action_dim``) and ``np.quantile(pooled, q, axis=0, method="linear")``, then
``y = (x - lo) / (hi - lo) * 2 - 1`` (lo/hi = q01/q99 or q10/q90; a zero-range dim maps to 0).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fasttok_plugin.errors import FitError
from fasttok_plugin.fit.fingerprint import fit_fingerprint
from fasttok_plugin.fit.settings import FitSettings
from fasttok_plugin.fit.source import heads_with_data_stats
from fasttok_plugin.fitting import fit_tokenizer
from fasttok_plugin.heads import NormHeads, build_norm_heads
from fasttok_plugin.normalize import Normalize, Unnormalize
from fasttok_plugin.resolve import ResolvedMixture, resolve_mixture
from fasttok_plugin.sampling import ChunkSampler
from fasttok_plugin.stats import compute_head_stats
from fasttok_plugin.testing import SyntheticDataset, write_lerobot_dataset, write_mixture

WIDTH = 4
# Pinned with the code before stats_source existed (main at 28b4100): the default build must keep them.
STORED_HEADS_FINGERPRINT = "93e267ab4a7f1f4abdc2ed06609dc7f412b16a5a87e27bb2e25994ac055b0800"
DEFAULT_FIT_FINGERPRINT = "426674faddc08eff323bb8a5dfdfc4d18feaadc92b948f69c37de387b38d595a"
FAST_FIT = ["--chunk-size", "8", "--vocab-size", "300", "--total-chunks", "200", "--max-fit-chunks", "100"]


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The stats cache defaults to $XDG_CACHE_HOME; subprocesses inherit it.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg_cache"))


def _mixture(root: Path) -> tuple[Path, dict[str, SyntheticDataset]]:
    """Head arm::pos (two 3-dim members, v3.0 + v2.1) and head base::vel (2-dim): padded dims exist."""
    datasets = {
        "a": write_lerobot_dataset(
            root / "a", version="v3.0", robot_type="arm", control_mode="pos", action_dim=3,
            episode_lengths=(30, 40), seed=1,
        ),
        "b": write_lerobot_dataset(
            root / "b", version="v2.1", robot_type="base", control_mode="vel", action_dim=2,
            episode_lengths=(25, 35), seed=2,
        ),
        "c": write_lerobot_dataset(
            root / "c", version="v2.1", robot_type="arm", control_mode="pos", action_dim=3,
            episode_lengths=(50,), seed=3,
        ),
    }  # fmt: skip
    entries = [{"repo_id": f"t/{n}", "root": str(root / n)} for n in ("a", "b")]
    path = write_mixture(root / "m.json", {"datasets": entries, "max_action_dim": WIDTH})
    entries3 = [*entries, {"repo_id": "t/c", "root": str(root / "c")}]
    write_mixture(root / "m3.json", {"datasets": entries3, "max_action_dim": WIDTH})
    return path, datasets


def _heads(path: Path) -> tuple[ResolvedMixture, NormHeads]:
    resolved = resolve_mixture(path)
    return resolved, build_norm_heads(resolved, WIDTH)


def _pooled(heads: NormHeads, datasets: list[SyntheticDataset]) -> list[np.ndarray]:
    out = []
    for members in heads.head_members:
        frames = [datasets[i].concatenated() for i in members]
        padded = [np.pad(f, ((0, 0), (0, WIDTH - f.shape[1]))) for f in frames]
        out.append(np.concatenate(padded).astype(np.float64))
    return out


def _expected(x: np.ndarray, pooled: np.ndarray, lo_q: float, hi_q: float) -> np.ndarray:
    lo = np.quantile(pooled, lo_q, axis=0, method="linear")
    hi = np.quantile(pooled, hi_q, axis=0, method="linear")
    span = hi - lo
    degenerate = np.abs(span) < 1e-6
    y = (x - lo) / np.where(degenerate, 1.0, span) * 2 - 1
    return np.where(degenerate, (x - lo) / 1.0 * 2, y)  # zero range: offset 0, like min_max "center"


@pytest.mark.parametrize(("mode", "lo_q", "hi_q"), [("quantile", 0.01, 0.99), ("quantile10", 0.10, 0.90)])
def test_quantile_normalization_is_the_formula_over_the_pooled_frames(tmp_path, mode, lo_q, hi_q) -> None:
    _, datasets = _mixture(tmp_path)
    resolved, stored = _heads(tmp_path / "m3.json")
    heads = heads_with_data_stats(resolved, stored)
    assert heads.stats_source == "data"
    assert stored.stats_source == "stored"
    members = [datasets["a"], datasets["b"], datasets["c"]]
    pooled = _pooled(heads, members)
    assert len(pooled) == 2
    assert pooled[0].shape[0] == 30 + 40 + 50  # the arm head pools a and c
    normalize = Normalize(heads, mode=mode)
    rng = np.random.default_rng(0)
    for h, frames in enumerate(pooled):
        x = frames[rng.choice(len(frames), size=(6, 5))].astype(np.float32)  # (B, T, D) raw chunks
        index = torch.full((6,), h, dtype=torch.long)
        got = normalize(torch.from_numpy(x), index).numpy()
        want = _expected(x.astype(np.float64), frames, lo_q, hi_q)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        native = heads.native_dims[h]
        assert np.all(got[..., native:] == 0.0)  # padded dims map to 0
        # Past q01/q99 values leave [-1, 1]: not clipped.
        assert got[..., :native].min() < -0.9
        assert got[..., :native].max() > 0.9
        back = Unnormalize(heads, mode=mode)(torch.from_numpy(got), index).numpy()
        np.testing.assert_allclose(back, x, rtol=1e-5, atol=1e-5)


def test_quantile_modes_refuse_heads_with_stored_stats(tmp_path) -> None:
    _mixture(tmp_path)
    _, stored = _heads(tmp_path / "m.json")
    with pytest.raises(ValueError, match=r"stats_source='data'.*stored quantiles cannot be pooled exactly"):
        Normalize(stored, mode="quantile10")


def test_the_stats_source_defaults_by_mode_and_stored_quantiles_are_refused() -> None:
    assert FitSettings().source == "stored"
    assert FitSettings(normalization="mean_std").source == "stored"
    assert FitSettings(normalization="quantile").source == "data"
    assert FitSettings(normalization="min_max", stats_source="data").source == "data"
    assert FitSettings().resolved(None).stats_source == "stored"
    with pytest.raises(FitError, match=r"'quantile' needs stats_source 'data'.*cannot be pooled exactly"):
        FitSettings(normalization="quantile", stats_source="stored")
    with pytest.raises(FitError, match="stats_source must be 'stored' or 'data'"):
        FitSettings(stats_source="dataset")


def test_default_fingerprints_are_unchanged_and_data_stats_change_them(tmp_path) -> None:
    _mixture(tmp_path)
    resolved, stored = _heads(tmp_path / "m.json")
    sampler = ChunkSampler(resolved, stored, chunk_size=8)
    settings = FitSettings(chunk_size=8, max_action_dim=WIDTH)
    assert stored.fingerprint == STORED_HEADS_FINGERPRINT
    for s in (settings, dataclasses.replace(settings, stats_source="stored"), settings.resolved(None)):
        assert fit_fingerprint(stored, s, sampler.settings(), data_identity=False) == DEFAULT_FIT_FINGERPRINT
    data = heads_with_data_stats(resolved, stored)
    assert data.fingerprint != stored.fingerprint
    data_sampler = ChunkSampler(resolved, data, chunk_size=8)
    quantile = dataclasses.replace(settings, normalization="quantile")
    fingerprints = {
        fit_fingerprint(data, quantile, data_sampler.settings(), data_identity=False),
        fit_fingerprint(
            data, dataclasses.replace(quantile, normalization="quantile10"), data_sampler.settings()
        ),
        fit_fingerprint(data, dataclasses.replace(settings, stats_source="data"), data_sampler.settings()),
    }
    assert len(fingerprints) == 3
    assert DEFAULT_FIT_FINGERPRINT not in fingerprints


def test_a_quantile_fit_normalizes_its_corpus_with_the_data_stats(tmp_path) -> None:
    _, datasets = _mixture(tmp_path)
    seen = []
    settings = FitSettings(
        chunk_size=8, vocab_size=300, total_chunks=200, max_fit_chunks=100, normalization="quantile"
    )
    _, report = fit_tokenizer(tmp_path / "m.json", settings, on_plan=seen.append)
    assert report.settings["normalization"] == "quantile"
    assert report.settings["stats_source"] == "data"
    assert report.normalization == "quantile"
    assert report.stats_source == "data"
    resolved, stored = _heads(tmp_path / "m.json")
    data = heads_with_data_stats(resolved, stored)
    assert report.norm_heads_fingerprint == data.fingerprint != stored.fingerprint
    batch = next(iter(seen[0].fit_batches()))
    expected = Normalize(data, mode="quantile")(
        torch.from_numpy(batch.raw), torch.from_numpy(batch.head_index)
    )
    np.testing.assert_array_equal(batch.normalized, expected.numpy())
    pooled = _pooled(data, [datasets["a"], datasets["b"]])
    row = int(batch.head_index[0])
    want = _expected(batch.raw[0].astype(np.float64), pooled[row], 0.01, 0.99)
    np.testing.assert_allclose(batch.normalized[0], want, rtol=1e-5, atol=1e-5)


def _fasttok(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "FASTTOK_DEBUG"}
    command = [sys.executable, "-m", "fasttok_plugin.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def test_cli_fit_with_quantile_records_mode_and_source(tmp_path) -> None:
    _mixture(tmp_path)
    out = tmp_path / "tok"
    mode = ("--normalization", "quantile")
    fit = _fasttok("fit", str(tmp_path / "m.json"), "--out", str(out), "--quiet", *mode, *FAST_FIT)
    assert fit.returncode == 0, fit.stderr
    report = json.loads((out / "fit_report.json").read_text())
    assert report["settings"]["normalization"] == "quantile"
    assert report["settings"]["stats_source"] == "data"
    assert report["stats_source"] == "data"
    sidecar = json.loads((out / "fasttok.json").read_text())["metadata"]
    assert sidecar["normalization"] == "quantile"
    assert sidecar["fit_report"]["settings"]["stats_source"] == "data"
    assert list((tmp_path / "xdg_cache" / "fasttok_plugin" / "stats").iterdir())  # the stats were cached


def test_a_default_cli_fit_records_stored_stats(tmp_path) -> None:
    _mixture(tmp_path)
    out = tmp_path / "tok"
    fit = _fasttok("fit", str(tmp_path / "m.json"), "--out", str(out), "--quiet", *FAST_FIT)
    assert fit.returncode == 0, fit.stderr
    report = json.loads((out / "fit_report.json").read_text())
    assert report["stats_source"] == "stored"
    assert report["settings"]["stats_source"] == "stored"
    assert report["settings"]["normalization"] == "min_max"
    assert report["norm_heads_fingerprint"] == STORED_HEADS_FINGERPRINT
    assert not (tmp_path / "xdg_cache").exists()  # stored stats read no frame for stats


def test_cli_refuses_quantile_with_stored_stats_naming_why(tmp_path) -> None:
    _mixture(tmp_path)
    out = tmp_path / "tok"
    fit = _fasttok("fit", str(tmp_path / "m.json"), "--out", str(out), "--normalization", "quantile",
                   "--stats-source", "stored", *FAST_FIT)  # fmt: skip
    assert fit.returncode == 2, fit.stderr
    assert "cannot be pooled exactly" in fit.stderr
    assert "Traceback" not in fit.stderr
    assert not out.exists()


def test_data_stats_heads_keep_quantile_buffers_out_of_checkpoints_and_refuse_other_heads(tmp_path) -> None:
    _mixture(tmp_path)
    resolved, stored = _heads(tmp_path / "m.json")
    data = heads_with_data_stats(resolved, stored)
    normalize = Normalize(data, mode="quantile")
    assert normalize.state_dict() == {}  # derived stats, never saved (DESIGN §14)
    np.testing.assert_array_equal(normalize.q_lo.numpy(), data.q01.astype(np.float32))
    np.testing.assert_array_equal(normalize.q_hi.numpy(), data.q99.astype(np.float32))
    wider = build_norm_heads(resolved, WIDTH + 1)
    with pytest.raises(ValueError, match=r"data stats are for heads .* x 4, these heads are .* x 5"):
        wider.with_data_stats(compute_head_stats(resolved, stored))
