"""Features combined in offline fits (no Lightning): convention x layout x order x transforms, the tuner
with a convention and a native layout, and `fasttok tune` feeding `fasttok export-stats`. The folder alone
must rebuild what the fit normalized and measured (`Normalize` / `ActionDecoder.from_tokenizer_dir`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from fasttok_plugin.codec import FastTokenizer
from fasttok_plugin.conventions import resolve_convention
from fasttok_plugin.decode import ActionDecoder
from fasttok_plugin.fit import FitSettings, fit_tokenizer
from fasttok_plugin.fitting import tune_tokenizer
from fasttok_plugin.norm_stats import read_norm_stats
from fasttok_plugin.normalize import Normalize
from fasttok_plugin.transforms import ActionTransform

CHUNK_SIZE = 8
MAX_ACTION_DIM = 4
# name -> (robot_type, control_mode, action_dim, version, episode lengths)
ROBOTS = {
    "arm": ("arm", "joint_pos", 3, "v3.0", (30, 40)),
    "base": ("base", "velocity", 2, "v2.1", (30, 36)),
    "gripper": ("gripper", "joint_pos", 4, "v3.0", (32, 32)),
}
BUDGET = 9  # tokens per chunk: reachable by every head of this mixture, not at the start scale
RELATIVE_SELECTED = ActionTransform(action_index=[0, 1], relative_dims=[0, 1])


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg_cache"))


@pytest.fixture
def mixture(make_dataset, write_mixture_file) -> Path:
    entries = []
    for seed, (name, (robot_type, control_mode, dim, version, lengths)) in enumerate(ROBOTS.items()):
        make_dataset(
            name,
            version=version,
            robot_type=robot_type,
            control_mode=control_mode,
            action_dim=dim,
            episode_lengths=lengths,
            seed=seed,
        )
        entries.append({"repo_id": f"test/{name}", "root": f"datasets/{name}"})
    return write_mixture_file({"datasets": entries, "weights": [1.0] * len(entries)})


def _settings(**kwargs: Any) -> FitSettings:
    options: dict[str, Any] = {
        "chunk_size": CHUNK_SIZE,
        "max_action_dim": MAX_ACTION_DIM,
        "vocab_size": 256,
        "total_chunks": 200,
        "max_action_tokens": 64,
    }
    options.update(kwargs)
    return FitSettings(**options)


def _lerobot_mean_std(x: torch.Tensor, mean: np.ndarray, std: np.ndarray, dims: np.ndarray) -> torch.Tensor:
    # src/lerobot/processor/normalize_processor.py (huggingface/lerobot), _apply_transform, MEAN_STD:
    # ``(tensor - mean) / (std + eps)`` with eps 1e-8 and the stats cast to the tensor's dtype; the
    # policy normalizes at the native width and zero-pads afterwards (pad_vector), so padded dims are 0.
    m = torch.from_numpy(mean).to(x.dtype).unsqueeze(1)
    s = torch.from_numpy(std).to(x.dtype).unsqueeze(1)
    y = (x - m) / (s + 1e-8)
    return torch.where(
        torch.arange(x.shape[2])[None, None, :] >= torch.from_numpy(dims)[:, None, None], 0.0, y
    )


COMBINATIONS = [
    # (convention, layout, order, transform)
    (resolve_convention("lerobot", head_grouping="robot_control"), "padded", "dc_dims", None),  # -> native
    ("opentau", "native", "dims", RELATIVE_SELECTED),
    (resolve_convention("openpi", head_grouping="robot_control"), "native", "time", RELATIVE_SELECTED),
    ("openpi", "padded", "dc_dims", ActionTransform(action_index=[0, 1])),
    (resolve_convention("opentau", normalization="mean_std"), "native", "dc_dims", None),
]


@pytest.mark.parametrize(("convention", "layout", "order", "transform"), COMBINATIONS)
def test_the_folder_alone_rebuilds_what_the_fit_normalized_and_measured(
    tmp_path: Path, mixture: Path, convention, layout, order, transform
) -> None:
    plans: list[Any] = []
    settings = _settings(convention=convention, layout=layout, order=order, transform=transform)
    _, report = fit_tokenizer(mixture, settings, out_dir=tmp_path / "tok", on_plan=plans.append)
    folder = tmp_path / "tok"
    tokenizer, normalize = FastTokenizer.load(folder), Normalize.from_tokenizer_dir(folder)
    decoder = ActionDecoder.from_tokenizer_dir(folder)
    heads = read_norm_stats(folder).heads
    assert tokenizer.order == order
    assert tokenizer.layout == report.layout
    lengths: dict[int, list[np.ndarray]] = {}
    for batch in plans[0].heldout_batches():
        raw, head = torch.from_numpy(batch.raw), torch.from_numpy(batch.head_index)
        with torch.no_grad():
            normalized = normalize(raw, head)
        np.testing.assert_array_equal(normalized.numpy(), batch.normalized)
        if normalize.formula == "lerobot":
            dims = np.asarray(heads.native_dims)[batch.head_index]
            expected = _lerobot_mean_std(raw, heads.mean[batch.head_index], heads.std[batch.head_index], dims)
            assert torch.equal(normalized, expected)
        encoded = tokenizer.encode_padded(normalized.numpy(), action_dims=batch.action_dims)
        for h in np.unique(batch.head_index):
            lengths.setdefault(int(h), []).append(encoded.lengths[batch.head_index == h])
        # A zero state: the decoder adds the state back on relative dims (test_decode_relative.py checks
        # that with the dataset's state); with zeros it returns the unnormalized values compared here.
        zero_state = np.zeros((len(encoded.ids), 64), np.float32)
        out = decoder.decode(encoded.ids, head, lengths=encoded.lengths, state=zero_state)
        assert out.valid.all()
        # Decoding unnormalizes the tokenizer's own decode with the training stats: normalizing it again
        # gives that decode back (up to float32 rounding), at each chunk's width.
        decoded = tokenizer.decode(encoded, action_dim=batch.action_dims).actions
        with torch.no_grad():
            again = normalize(torch.from_numpy(out.actions), head).numpy()
        np.testing.assert_allclose(again[:, :, : decoded.shape[2]], decoded, rtol=1e-5, atol=1e-5)
        # Past the width: what the formula makes of the zero padding (OpenTau's is -1e-6, not 0).
        np.testing.assert_array_equal(
            again[:, :, decoded.shape[2] :], batch.normalized[:, :, decoded.shape[2] :]
        )
    for h, stats in enumerate(report.heads):
        counts = np.concatenate(lengths[h])
        assert (stats.token_lengths.count, stats.token_lengths.max) == (counts.size, int(counts.max()))
        assert stats.token_lengths.mean == pytest.approx(float(counts.mean()), abs=1e-12)


def test_a_native_tokenizer_of_one_width_decodes_from_its_folder(tmp_path: Path, mixture: Path) -> None:
    # Every head is 2 wide after the selection, narrower than max_action_dim: the native tokenizer's
    # action_dim is 2, which is not a mismatch with the heads' padded width 4.
    settings = _settings(layout="native", transform=ActionTransform(action_index=[0, 1]))
    tokenizer, _ = fit_tokenizer(mixture, settings, out_dir=tmp_path / "tok")
    assert (tokenizer.layout, tokenizer.action_dim, tokenizer.action_dims) == ("native", 2, (2,))
    decoder = ActionDecoder.from_tokenizer_dir(tmp_path / "tok")
    assert decoder.head_dims == (2, 2, 2)
    chunks = np.random.default_rng(0).uniform(-0.9, 0.9, (6, CHUNK_SIZE, MAX_ACTION_DIM)).astype(np.float32)
    chunks[:, :, 2:] = 0.0
    heads = np.array([0, 1, 2, 0, 1, 2])
    normalize = Normalize.from_tokenizer_dir(tmp_path / "tok")
    encoded = tokenizer.encode_padded(chunks, action_dims=2)
    out = decoder.decode(encoded.ids, heads, lengths=encoded.lengths, strict=True)
    assert out.actions.shape == (6, CHUNK_SIZE, MAX_ACTION_DIM)
    assert not out.actions[:, :, 2:].any()
    with torch.no_grad():
        again = normalize(torch.from_numpy(out.actions), torch.from_numpy(heads)).numpy()
    decoded = tokenizer.decode(encoded, action_dim=2).actions
    np.testing.assert_allclose(again[:, :, :2], decoded, atol=1e-5)


@pytest.mark.parametrize(
    ("convention", "layout", "order"),
    [
        ("opentau", "native", "dc_dims"),
        (resolve_convention("lerobot", head_grouping="robot_control"), "padded", "dims"),  # -> native
        ("openpi", "padded", "time"),
    ],
)
def test_the_tuner_walks_on_the_chunks_the_fit_measures(
    tmp_path: Path, mixture: Path, convention, layout, order
) -> None:
    settings = _settings(convention=convention, layout=layout, order=order)
    tokenizer, report, result = tune_tokenizer(
        mixture, settings, max_action_tokens=BUDGET, out_dir=tmp_path / "tok"
    )
    chosen = next(step for step in result.steps if step.scale == result.scale)
    assert chosen.ok
    # The walk fit and measured the final fit's corpus, normalized by the convention's formula and at each
    # chunk's native width for a native layout: its numbers are the folder's report.
    assert chosen.max_tokens == report.token_lengths.max
    assert chosen.mean_tokens == pytest.approx(report.token_lengths.mean)
    assert chosen.tokens_quantile <= BUDGET
    assert max(h.token_lengths.p99 for h in report.heads) <= BUDGET
    assert tokenizer.layout == report.layout
    folder_normalize = Normalize.from_tokenizer_dir(tmp_path / "tok")  # tuned folders hold norm_stats.json
    assert folder_normalize.formula == resolve_convention(convention).formula
    assert ActionDecoder.from_tokenizer_dir(tmp_path / "tok").tokenizer.scale == result.scale


@pytest.mark.slow
def test_fasttok_tune_with_a_convention_writes_a_folder_export_stats_reads(
    tmp_path: Path, mixture: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    folder = tmp_path / "tuned"
    convention = json.dumps({"name": "lerobot", "head_grouping": "robot_control"})
    tune = [sys.executable, "-m", "fasttok_plugin", "tune", str(mixture), "--out", str(folder)]
    tune += ["--max-action-tokens", str(BUDGET), "--convention", convention, "--order", "dc_dims", "--quiet"]
    tune += ["--chunk-size", str(CHUNK_SIZE), "--max-action-dim", str(MAX_ACTION_DIM)]
    tune += ["--vocab-size", "256", "--total-chunks", "200"]
    done = subprocess.run(tune, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    exported = tmp_path / "stats.json"
    export = [sys.executable, "-m", "fasttok_plugin", "export-stats", str(folder), "--format", "lerobot"]
    export += ["--head", "arm::joint_pos"]  # one head per robot: LeRobot's stats file holds one
    done = subprocess.run(
        [*export, "--out", str(exported)], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(exported.read_text())
    stored = read_norm_stats(folder)
    assert stored.heads.native_dims == (3, 2, 4)
    assert Normalize.from_tokenizer_dir(folder).formula == "lerobot"


def test_fasttok_fit_with_a_convention_and_transform_flags_matches_the_python_fit(
    tmp_path: Path, mixture: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    fit = [sys.executable, "-m", "fasttok_plugin", "fit", str(mixture), "--out", str(tmp_path / "cli")]
    fit += [
        "--convention",
        "opentau",
        "--encoded-dims",
        "0:2",
        "--relative-dims",
        "0:2",
        "--layout",
        "native",
    ]
    fit += ["--order", "dc_dims", "--chunk-size", str(CHUNK_SIZE), "--max-action-dim", str(MAX_ACTION_DIM)]
    fit += ["--vocab-size", "256", "--total-chunks", "200", "--max-action-tokens", "64", "--quiet"]
    done = subprocess.run(fit, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    settings = _settings(convention="opentau", transform=RELATIVE_SELECTED, layout="native", order="dc_dims")
    _, report = fit_tokenizer(mixture, settings, out_dir=tmp_path / "py")
    cli_report = json.loads((tmp_path / "cli" / "fit_report.json").read_text())
    assert cli_report["fit_fingerprint"] == report.fit_fingerprint
    assert cli_report["stats_source"] == "data"
    loaded = Normalize.from_tokenizer_dir(tmp_path / "cli")
    assert loaded.formula == "opentau"
    for name in ("min", "max"):
        assert torch.equal(
            getattr(loaded, name), getattr(Normalize.from_tokenizer_dir(tmp_path / "py"), name)
        )


@pytest.mark.parametrize(
    "convention",
    [
        "opentau",
        resolve_convention("openpi", head_grouping="robot_control"),  # float64 stats, +1e-6 denominators
        resolve_convention("lerobot", head_grouping="robot_control"),
    ],
)
def test_a_decoder_state_keeps_the_conventions_arithmetic(tmp_path: Path, mixture: Path, convention) -> None:
    fit_tokenizer(mixture, _settings(convention=convention), out_dir=tmp_path / "tok")
    decoder = ActionDecoder.from_tokenizer_dir(tmp_path / "tok")
    state = json.loads(json.dumps(decoder.state()))  # as saved with a checkpoint
    restored = ActionDecoder.from_state(decoder.tokenizer, state)
    assert (
        restored.unnormalize.formula == decoder.unnormalize.formula == resolve_convention(convention).formula
    )
    chunks = np.random.default_rng(0).uniform(-1, 1, (6, CHUNK_SIZE, MAX_ACTION_DIM)).astype(np.float32)
    heads = np.array([0, 1, 2, 0, 1, 2])
    widths = np.asarray(decoder.head_dims)[heads] if decoder.tokenizer.layout == "native" else None
    encoded = decoder.tokenizer.encode_padded(chunks, action_dims=widths)
    expected = decoder.decode(encoded.ids, heads, lengths=encoded.lengths).actions
    np.testing.assert_array_equal(
        restored.decode(encoded.ids, heads, lengths=encoded.lengths).actions, expected
    )


def test_a_default_decoder_state_is_unchanged(tmp_path: Path, mixture: Path) -> None:
    fit_tokenizer(mixture, _settings(), out_dir=tmp_path / "tok")
    state = ActionDecoder.from_tokenizer_dir(tmp_path / "tok").state()
    assert set(state) == {
        "version",
        "head_keys",
        "head_dims",
        "mode",
        "zero_range",
        "eps",
        "fingerprint",
        "stats",
    }
