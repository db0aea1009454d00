"""`tune_tokenizer` and `fasttok tune`: the chosen scale meets its goal on held-out chunks, re-measured."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fasttok_plugin.codec import FastTokenizer
from fasttok_plugin.errors import FitError
from fasttok_plugin.fit import FitSettings, fit_tokenizer, tune_tokenizer
from fasttok_plugin.fit.fingerprint import FINGERPRINT_KEY
from fasttok_plugin.testing import make_example_mixture

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))
from heldout_support import heldout_chunks

SETTINGS = FitSettings(chunk_size=16, max_action_dim=16, total_chunks=600, vocab_size=300, order="dims")
BUDGET = 18


@pytest.fixture(scope="module")
def mixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Four episodes per dataset: every head has held-out episodes.
    root = tmp_path_factory.mktemp("tune")
    return make_example_mixture(root / "mix", n_datasets=6, episode_lengths=(60, 80, 70, 90))


@pytest.fixture(scope="module")
def tuned(mixture: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("tuned") / "tok"
    _, report, result = tune_tokenizer(
        mixture, SETTINGS, max_action_tokens=BUDGET, bisect_steps=3, out_dir=out
    )
    return out, (report, result)


def test_the_chosen_scale_fits_the_budget_for_every_head_on_held_out_chunks(
    mixture: Path, tuned: tuple[Path, object]
) -> None:
    out, (report, result) = tuned
    tok = FastTokenizer.load(out)
    chunks, head, _ = heldout_chunks(mixture, SETTINGS)
    lengths = tok.encode_padded(chunks).lengths
    assert tok.scale == result.scale == report.settings["scale"]
    for h in np.unique(head):
        # At least 99% of each head's held-out sequences fit the budget.
        assert np.mean(lengths[head == h] <= BUDGET) >= 0.99, int(h)
    # The budget binds: the start scale (10) did not fit, and no larger walked scale did.
    assert result.scale < SETTINGS.scale
    assert all(not s.ok for s in result.steps if s.scale > result.scale)
    assert any(s.tokens_quantile > BUDGET for s in result.steps)


def test_the_tuned_folder_is_the_plain_fit_at_the_chosen_scale_plus_the_walk(
    mixture: Path, tuned: tuple[Path, object], tmp_path: Path
) -> None:
    out, (report, result) = tuned
    plain, _ = fit_tokenizer(
        mixture, dataclasses.replace(SETTINGS, scale=result.scale), out_dir=tmp_path / "p"
    )
    assert (out / "tokenizer.json").read_bytes() == (tmp_path / "p" / "tokenizer.json").read_bytes()
    assert FastTokenizer.load(out).metadata[FINGERPRINT_KEY] == plain.metadata[FINGERPRINT_KEY]
    saved = json.loads((out / "fit_report.json").read_text())
    walk = saved["settings"]["tune"]
    assert (walk["goal"], walk["max_action_tokens"], walk["scale"]) == (
        "max_action_tokens",
        BUDGET,
        result.scale,
    )
    assert [s["scale"] for s in walk["steps"]] == [s.scale for s in result.steps]
    assert saved["settings"]["order"] == "dims"
    # The report measures truncation against the tuned budget: nothing of the evaluated chunks exceeds it
    # beyond the 1 % the quantile allows.
    assert (report.max_action_tokens, saved["settings"]["max_action_tokens"]) == (BUDGET, BUDGET)
    assert report.truncation_rate is not None
    assert report.truncation_rate <= 0.01
    assert report.token_lengths is not None
    assert report.token_lengths.max <= max(s.max_tokens for s in result.steps if s.scale == result.scale)


def test_target_mse_picks_the_smallest_scale_meeting_it_per_head(mixture: Path) -> None:
    target = 2e-3
    tok, _, result = tune_tokenizer(mixture, SETTINGS, target_mse=target, bisect_steps=2)
    chunks, head, native = heldout_chunks(mixture, SETTINGS)
    decoded = tok.decode(tok.encode_padded(chunks), strict=True).actions
    for h in np.unique(head):
        rows = head == h
        d = int(native[h])
        assert np.square(decoded[rows, :, :d] - chunks[rows, :, :d], dtype=np.float64).mean() <= target
    assert all(not s.ok for s in result.steps if s.scale < result.scale)
    assert any(s.mse > target for s in result.steps)


def test_bad_goals_are_refused_before_sampling(mixture: Path) -> None:
    with pytest.raises(FitError, match="give exactly one goal"):
        tune_tokenizer(mixture, SETTINGS)
    with pytest.raises(FitError, match="give exactly one goal"):
        tune_tokenizer(mixture, SETTINGS, max_action_tokens=10, target_mse=0.1)
    with pytest.raises(FitError, match=r"quantile must be in \(0, 1\], got 1.5"):
        tune_tokenizer(mixture, SETTINGS, max_action_tokens=10, quantile=1.5)


def test_an_unreachable_budget_names_the_shortest_walked(mixture: Path) -> None:
    # From scale 4000 (a range no vocabulary of 400 holds) the walk halves 10 times, to about 4: even
    # there a chunk takes more than one token.
    settings = dataclasses.replace(SETTINGS, total_chunks=300, scale=4000.0)
    with pytest.raises(FitError, match=r"no scale from 3.91 to 4000 fits the token budget; the shortest was"):
        tune_tokenizer(mixture, settings, max_action_tokens=1)


def _fasttok(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "FASTTOK_DEBUG"}
    command = [sys.executable, "-m", "fasttok_plugin.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)


@pytest.mark.slow  # about 6 s: a subprocess imports torch and walks the scale
def test_fasttok_tune_prints_the_walk_and_writes_the_chosen_folder(mixture: Path, tmp_path: Path) -> None:
    out = tmp_path / "tok"
    common = ["--chunk-size", "16", "--max-action-dim", "16", "--total-chunks", "600", "--vocab-size", "300"]
    goal = ["--max-action-tokens", str(BUDGET), "--order", "dims"]
    run = _fasttok("tune", str(mixture), *goal, "--out", str(out), *common, "-q")
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].split() == ["scale", "p99", "tokens", "mean", "max", "mse", "goal"]
    chosen = [line for line in lines if line.endswith("<- chosen")]
    assert len(chosen) == 1
    scale = float(chosen[0].split()[0])
    assert lines[-1].startswith(f"chose scale {scale:g}; wrote {out}")
    assert FastTokenizer.load(out).scale == scale
    assert json.loads((out / "fit_report.json").read_text())["settings"]["tune"]["scale"] == scale
    shown = _fasttok("inspect", str(out))
    assert shown.returncode == 0, shown.stderr
    assert f"scale {scale:g}," in shown.stdout.splitlines()[0]
    assert shown.stdout.splitlines()[0].endswith(f"order dims; scale tuned for p99 <= {BUDGET} tokens)")
    bad = _fasttok("tune", str(mixture), "--max-action-tokens", "10", "--quantile", "1.5", "--out", str(out))
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1].endswith("expected a number in (0, 1], got '1.5'")
