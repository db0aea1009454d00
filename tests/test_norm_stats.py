"""``norm_stats.json`` in the tokenizer folder and the frameworks' stats files (issue #12 item 3).

A real fit on generated LeRobot datasets writes the folder; `Normalize.from_tokenizer_dir` /
`Unnormalize.from_tokenizer_dir` must give modules equal to the fit's own `Normalize` (the one the corpus was
normalized with, seen through ``on_plan``) with no mixture and no datasets.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from fasttok_plugin.errors import FitError, TokenizerFormatError
from fasttok_plugin.fit.plan import FitPlan
from fasttok_plugin.fit.settings import FitSettings
from fasttok_plugin.fitting import fit_tokenizer
from fasttok_plugin.norm_stats import export_stats, read_norm_stats
from fasttok_plugin.normalize import Normalize, Unnormalize
from fasttok_plugin.testing import make_example_mixture

SMALL = {"chunk_size": 8, "vocab_size": 300, "total_chunks": 240, "max_fit_chunks": 120}


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg_cache"))


@pytest.fixture(scope="module")
def mixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_example_mixture(tmp_path_factory.mktemp("example"), n_datasets=6)


def _fit(mixture: Path, out: Path, **settings: object) -> FitPlan:
    plans: list[FitPlan] = []
    fit_tokenizer(mixture, FitSettings(**SMALL, **settings), out_dir=out, on_plan=plans.append)  # type: ignore[arg-type]
    return plans[0]


def _random_batch(plan: FitPlan, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    heads = plan.sampler.heads
    rng = np.random.default_rng(seed)
    head_index = torch.from_numpy(rng.integers(0, heads.num_heads, size=16))
    lo, hi = heads.min[head_index.numpy()], heads.max[head_index.numpy()]
    x = rng.uniform(lo - 0.2, hi + 0.2, size=(8, *lo.shape)).transpose(1, 0, 2)
    return torch.from_numpy(x).float(), head_index


@pytest.mark.parametrize("convention", [None, "opentau", "openpi", {"name": "lerobot", "layout": "padded"}])
def test_from_tokenizer_dir_equals_the_fit_normalize(
    mixture: Path, tmp_path: Path, convention: object
) -> None:
    out = tmp_path / "tok"
    plan = _fit(mixture, out, convention=convention)
    trained = plan.normalize
    # No mixture, no datasets: only the folder (moved elsewhere).
    moved = shutil.move(out, tmp_path / "elsewhere")
    loaded = Normalize.from_tokenizer_dir(moved)
    assert (loaded.mode, loaded.zero_range, loaded.eps, loaded.formula) == (
        trained.mode,
        trained.zero_range,
        trained.eps,
        trained.formula,
    )
    assert loaded.keys == trained.keys
    assert loaded.fingerprint == trained.fingerprint
    for (name, a), (name_b, b) in zip(loaded.named_buffers(), trained.named_buffers(), strict=True):
        assert name == name_b
        assert a.dtype == b.dtype
        assert torch.equal(a, b), name
    x, head_index = _random_batch(plan)
    assert torch.equal(loaded(x, head_index), trained(x, head_index))
    inverse = Unnormalize.from_tokenizer_dir(moved)
    back = inverse(trained(x, head_index), head_index)
    heads = plan.sampler.heads
    native = torch.from_numpy(np.arange(heads.max_action_dim)[None, :] < np.array(heads.native_dims)[:, None])
    keep = native[head_index].unsqueeze(1).expand_as(x)
    # Inside the native width every formula inverts to float32 round-off.
    assert torch.allclose(back[keep], x[keep], rtol=1e-5, atol=1e-5)


def test_norm_stats_json_lists_every_head(mixture: Path, tmp_path: Path) -> None:
    out = tmp_path / "tok"
    plan = _fit(mixture, out, convention="openpi")
    heads = plan.sampler.heads
    document = json.loads((out / "norm_stats.json").read_text())
    assert document["format"] == "fasttok_plugin.norm_stats"
    assert document["convention"]["name"] == "openpi"
    assert document["formula"] == "openpi"
    assert document["normalization"] == "quantile"
    assert [row["key"] for row in document["heads"]] == list(heads.keys)
    for h, row in enumerate(document["heads"]):
        assert row["native_dim"] == heads.native_dims[h]
        assert row["members"] == [heads.entry_names[i] for i in heads.head_members[h]]
        for name in ("min", "max", "mean", "std", "q01", "q99"):
            np.testing.assert_array_equal(np.array(row["stats"][name]), getattr(heads, name)[h])
    stored = read_norm_stats(out)
    assert stored.convention is not None
    assert stored.convention.formula == "openpi"


def test_a_default_fit_records_the_default_normalization(mixture: Path, tmp_path: Path) -> None:
    out = tmp_path / "tok"
    _fit(mixture, out)
    document = json.loads((out / "norm_stats.json").read_text())
    assert document["convention"] is None
    assert (document["formula"], document["normalization"]) == ("fasttok", "min_max")
    assert "convention" not in json.loads((out / "fasttok.json").read_text())


def test_export_stats_for_each_framework(mixture: Path, tmp_path: Path) -> None:
    out = tmp_path / "tok"
    plan = _fit(mixture, out, convention="openpi")  # openpi: one global head, stats from the data
    heads = plan.sampler.heads
    dim = heads.native_dims[0]
    (tmp_path / "assets").mkdir()
    path = export_stats(out, "openpi", tmp_path / "assets")  # a folder: the conventional file name
    assert path == tmp_path / "assets" / "norm_stats.json"
    actions = json.loads(path.read_text())["norm_stats"]["actions"]  # openpi.shared.normalize layout
    assert set(actions) == {"mean", "std", "q01", "q99"}
    for name in actions:
        assert actions[name] == [float(v) for v in getattr(heads, name)[0, :dim]]
    lerobot = json.loads(export_stats(out, "lerobot", tmp_path / "stats.json").read_text())
    assert lerobot["action"]["min"] == [float(v) for v in heads.min[0, :dim]]
    opentau = json.loads(export_stats(out, "opentau", tmp_path).read_text())
    # OpenTau's fit_fast_tokenizer.py sidecar keys (src/opentau/scripts/fit_fast_tokenizer.py).
    assert opentau["config_version"] == 0
    assert opentau["zero_range_center"] is False
    # Our own exports may be rewritten; a file we did not write never is.
    export_stats(out, "openpi", tmp_path / "assets")
    foreign = tmp_path / "mine.json"
    foreign.write_text('{"norm_stats": {}}')
    with pytest.raises(FitError, match="was not written by fasttok export-stats"):
        export_stats(out, "openpi", foreign)
    assert foreign.read_text() == '{"norm_stats": {}}'
    with pytest.raises(FitError, match="exists and was not written"):
        export_stats(out, "lerobot", tmp_path / "stats.json")


def test_export_stats_asks_for_a_head_when_there_are_several(mixture: Path, tmp_path: Path) -> None:
    out = tmp_path / "tok"
    plan = _fit(mixture, out, convention="opentau")
    keys = plan.sampler.heads.keys
    with pytest.raises(FitError, match=r"heads .*pick one with head=KEY"):
        export_stats(out, "opentau", tmp_path / "x.json")
    with pytest.raises(FitError, match="no head 'nope'"):
        export_stats(out, "opentau", tmp_path / "x.json", head="nope")
    with pytest.raises(FitError, match="need 'q01'"):
        export_stats(out, "openpi", tmp_path / "x.json", head=keys[0])
    sidecar = json.loads(export_stats(out, "opentau", tmp_path / "x.json", head=keys[0]).read_text())
    assert (sidecar["config_version"], sidecar["zero_range_center"]) == (1, True)


def test_a_folder_without_norm_stats_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TokenizerFormatError, match="cannot read the normalization stats"):
        Normalize.from_tokenizer_dir(tmp_path)
    (tmp_path / "norm_stats.json").write_text('{"format": "other"}')
    with pytest.raises(TokenizerFormatError, match=r"not a valid norm_stats\.json"):
        Unnormalize.from_tokenizer_dir(tmp_path)
