"""Inference with relative actions: a real fit, then `ActionDecoder` adds the chunk-start state back.

Datasets are real LeRobot folders written by pyarrow; the chunks, their states and the expected absolute
actions are read here with pyarrow from the parquet files (not through the package's frame reader). The fit
made the relative dims relative as openpi's ``DeltaActions`` (src/openpi/transforms.py)::

    actions[..., :dims] -= np.expand_dims(np.where(mask, state[..., :dims], 0), axis=-2)

and inference undoes it as openpi's ``AbsoluteActions`` (same file)::

    actions[..., :dims] += np.expand_dims(np.where(mask, state[..., :dims], 0), axis=-2)

with ``state`` the observation at the chunk's first frame; the column selection (OpenTau ``action_index``)
comes after, so the decoded columns are the selected native ones.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from fasttok_plugin.decode import ActionDecoder
from fasttok_plugin.fit import FitSettings
from fasttok_plugin.fitting import fit_tokenizer
from fasttok_plugin.norm_stats import read_norm_stats
from fasttok_plugin.normalize import Normalize
from fasttok_plugin.testing import write_lerobot_dataset, write_mixture
from fasttok_plugin.transforms import ActionTransform, MemberTransforms

T, D, NATIVE = 8, 8, 7
SELECT = [6, 0, 1, 2, 4]  # the gripper (6) first, dim 3 and 5 dropped
RELATIVE, EXCLUDE = "0:5", [3]  # relative dims 0, 1, 2, 4 (3 is excluded, and not selected anyway)
ARM = {"action_index": SELECT, "relative_dims": RELATIVE, "relative_exclude": EXCLUDE}
SETTINGS = {"chunk_size": T, "max_action_dim": D, "vocab_size": 300, "total_chunks": 400}


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg_cache"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("relative_decode")
    tags = {"control_mode": "pos", "action_dim": NATIVE}
    write_lerobot_dataset(root / "a", version="v2.1", robot_type="arm", episode_lengths=(30, 41), **tags)
    write_lerobot_dataset(root / "b", robot_type="arm", episode_lengths=(36,), seed=2, **tags)
    write_lerobot_dataset(root / "c", robot_type="base", episode_lengths=(33,), seed=3, **tags)
    return root


@pytest.fixture(scope="module")
def fitted(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tokenizer folder fit with relative actions + selection on the arm, nothing on the base."""
    mixture = write_mixture(
        corpus / "relative.json",
        {
            "datasets": [
                {"repo_id": "lab/a", "root": "a", **ARM},
                {"repo_id": "lab/b", "root": "b", **ARM},
                {"repo_id": "lab/c", "root": "c"},
            ]
        },
    )
    out = tmp_path_factory.mktemp("fit") / "tok"
    fit_tokenizer(mixture, FitSettings(**SETTINGS), out_dir=out, preflight=False)  # type: ignore[arg-type]
    return out.rename(out.parent / "moved")  # inference needs nothing but the folder


def _columns(root: Path, column: str) -> dict[int, np.ndarray]:
    """Per-episode float32 values of ``column``, read straight from the data parquet files."""
    table = pa.concat_tables(pq.read_table(p) for p in sorted((root / "data").rglob("*.parquet")))
    episodes, frames = table.column("episode_index").to_numpy(), table.column("frame_index").to_numpy()
    values = np.array(table.column(column).to_pylist(), dtype=np.float32)
    out = {}
    for ep in np.unique(episodes):
        rows = np.flatnonzero(episodes == ep)
        out[int(ep)] = values[rows[np.argsort(frames[rows])]]
    return out


def _chunks(root: Path, step: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Every ``step``-th absolute action chunk of a dataset and the state at its first frame."""
    actions, states = _columns(root, "action"), _columns(root, "observation.state")
    chunks, first = [], []
    for ep, a in actions.items():
        for start in range(0, a.shape[0] - T + 1, step):
            chunks.append(a[start : start + T])
            first.append(states[ep][start])
    return np.stack(chunks), np.stack(first)


def _delta(chunk: np.ndarray, state0: np.ndarray, relative: list[int]) -> np.ndarray:
    """openpi DeltaActions with the mask of ``relative`` (module docstring)."""
    mask = np.zeros(chunk.shape[-1], dtype=bool)
    mask[relative] = True
    dims = mask.shape[-1]
    out = chunk.copy()
    out[..., :dims] -= np.expand_dims(np.where(mask, state0[..., :dims], 0), axis=-2)
    return out


def _batch(corpus: Path, folder: Path) -> dict[str, np.ndarray]:
    """Chunks of every dataset as the policy saw them (transformed, normalized, tokenized) and the truth."""
    stored = read_norm_stats(folder)
    head_of = {name: h for h, names in enumerate(stored.members) for name in names}
    parts: dict[str, list[np.ndarray]] = {"raw": [], "absolute": [], "state": [], "head": []}
    for name in ("a", "b", "c"):
        chunks, state0 = _chunks(corpus / name)
        head = next(h for member, h in head_of.items() if f"lab/{name}" in member)
        if name == "c":
            seen, absolute = chunks, chunks
        else:
            seen = _delta(chunks, state0, [0, 1, 2, 4])[..., SELECT]
            absolute = chunks[..., SELECT]
        padded = np.zeros((len(chunks), T, D), np.float32)
        padded[..., : seen.shape[-1]] = seen
        truth = np.zeros_like(padded)
        truth[..., : absolute.shape[-1]] = absolute
        parts["raw"].append(padded)
        parts["absolute"].append(truth)
        parts["state"].append(state0)
        parts["head"].append(np.full(len(chunks), head, np.int64))
    batch = {k: np.concatenate(v) for k, v in parts.items()}
    normalized = Normalize.from_tokenizer_dir(folder)(
        torch.from_numpy(batch["raw"]), torch.from_numpy(batch["head"])
    )
    decoder = ActionDecoder.from_tokenizer_dir(folder)
    dims = np.asarray(decoder.head_dims)[batch["head"]]
    widths = dims if decoder.tokenizer.layout == "native" else None
    encoded = decoder.tokenizer.encode_padded(normalized.numpy(), action_dims=widths)
    batch.update(ids=encoded.ids, lengths=encoded.lengths, dims=dims)
    return batch


def _bound(folder: Path, head: np.ndarray, scale: float) -> np.ndarray:
    """MIN_MAX round-trip bound per (row, dim), as tests/test_decode.py derives it: a DCT coefficient is off
    by <= 0.5/scale, the orthonormal IDCT spreads T of them with |basis| <= sqrt(2/T), and LeRobot's inverse
    ``(x + 1) / 2 * (max - min) + min`` (src/lerobot/processor/normalize_processor.py) scales by span / 2.
    Adding the float32 state back is exact up to float32 rounding, inside the 1e-5."""
    heads = read_norm_stats(folder).heads
    span = (heads.max - heads.min)[head].astype(np.float64)
    return 0.5 / scale * math.sqrt(2 * T) * span[:, None, :] / 2 + 1e-5


def test_norm_stats_records_the_transform_of_each_head(fitted: Path) -> None:
    document = json.loads((fitted / "norm_stats.json").read_text())
    rows = {row["key"]: row for row in document["heads"]}
    arm = next(row for key, row in rows.items() if "arm" in key)
    base = next(row for key, row in rows.items() if "base" in key)
    # relative_dims are the effective ones: 0:5 minus the excluded 3.
    expected = {"action_index": SELECT, "relative_dims": [0, 1, 2, 4], "state_key": "observation.state"}
    assert arm["transform"] == expected
    assert arm["native_dim"] == len(SELECT)
    assert "transform" not in base
    assert "member_transforms" not in base
    stored = read_norm_stats(fitted)
    by_key = dict(zip(stored.heads.keys, stored.transforms, strict=True))
    assert by_key[arm["key"]] == ActionTransform(action_index=SELECT, relative_dims=[0, 1, 2, 4])
    assert by_key[base["key"]] is None


def test_decode_with_the_chunk_start_state_gives_the_absolute_actions(corpus: Path, fitted: Path) -> None:
    batch = _batch(corpus, fitted)
    decoder = ActionDecoder.from_tokenizer_dir(fitted)
    arm = decoder.head_keys.index(next(k for k in decoder.head_keys if "arm" in k))
    state = batch["state"].copy()
    state[batch["head"] != arm] = np.nan  # rows of an absolute head may carry no state at all
    out = decoder.decode(batch["ids"], batch["head"], lengths=batch["lengths"], state=torch.from_numpy(state))
    assert out.valid.all()
    assert out.columns[arm] == tuple(SELECT)
    assert out.columns[1 - arm] == tuple(range(NATIVE))
    assert out.row_columns(int(np.flatnonzero(batch["head"] == arm)[0])) == tuple(SELECT)
    error = np.abs(out.actions.astype(np.float64) - batch["absolute"])
    bound = _bound(fitted, batch["head"], decoder.tokenizer.scale)
    for row in range(len(error)):
        d = batch["dims"][row]
        assert (error[row, :, :d] <= bound[row, :, :d]).all(), row
        assert (out.actions[row, :, d:] == 0.0).all()
    assert error.max() > 0  # lossy: an echo of the input would not be
    # The state matters: without adding it back, the relative columns are off by far more than the bound.
    relative = decoder.decode(
        batch["ids"], batch["head"], lengths=batch["lengths"], state=np.zeros_like(state)
    )
    rows = batch["head"] == arm
    off = np.abs(relative.actions[rows][..., 1:5] - batch["absolute"][rows][..., 1:5])
    assert (off > bound[rows][..., 1:5]).any()
    # The gripper (column 6, first selected) was excluded: the state is not added to it.
    np.testing.assert_array_equal(relative.actions[rows][..., 0], out.actions[rows][..., 0])


def test_a_relative_head_without_its_state_is_a_clear_error(corpus: Path, fitted: Path) -> None:
    batch = _batch(corpus, fitted)
    decoder = ActionDecoder.from_tokenizer_dir(fitted)
    arm_key = next(k for k in decoder.head_keys if "arm" in k)
    rows = batch["head"] == decoder.head_keys.index(arm_key)
    ids, lengths = batch["ids"][rows], batch["lengths"][rows]
    with pytest.raises(ValueError, match=rf"head '{arm_key}'.*pass state=.*'observation\.state'"):
        decoder.decode(ids, arm_key, lengths=lengths)
    with pytest.raises(ValueError, match=r"state has shape \(3, 7\), expected"):
        decoder.decode(ids, arm_key, lengths=lengths, state=batch["state"][:3])
    with pytest.raises(ValueError, match=r"adds 'observation\.state' dim 4 back but state has 4 dims"):
        decoder.decode(ids, arm_key, lengths=lengths, state=batch["state"][rows][:, :4])
    broken = batch["state"][rows].copy()
    broken[0, 2] = np.nan
    with pytest.raises(ValueError, match="not finite on the dims added back"):
        decoder.decode(ids, arm_key, lengths=lengths, state=broken)
    # The absolute head needs no state.
    base = ~rows
    assert decoder.decode(batch["ids"][base], batch["head"][base], lengths=batch["lengths"][base]).valid.all()


def test_a_saved_decoder_state_keeps_the_transforms(corpus: Path, fitted: Path) -> None:
    batch = _batch(corpus, fitted)
    decoder = ActionDecoder.from_tokenizer_dir(fitted)
    restored = ActionDecoder.from_state(decoder.tokenizer, json.loads(json.dumps(decoder.state())))
    assert restored.transforms == decoder.transforms
    args = (batch["ids"], batch["head"])
    kwargs = {"lengths": batch["lengths"], "state": batch["state"]}
    np.testing.assert_array_equal(
        restored.decode(*args, **kwargs).actions, decoder.decode(*args, **kwargs).actions
    )


def test_an_old_folder_without_the_field_decodes_as_before(
    corpus: Path, fitted: Path, tmp_path: Path
) -> None:
    # Folders written before transforms were recorded: no transform, no state needed, relative output.
    batch = _batch(corpus, fitted)
    old = Path(shutil.copytree(fitted, tmp_path / "old"))
    document = json.loads((old / "norm_stats.json").read_text())
    for row in document["heads"]:
        row.pop("transform", None)
    (old / "norm_stats.json").write_text(json.dumps(document, indent=2))
    decoder = ActionDecoder.from_tokenizer_dir(old)
    assert decoder.transforms == (None, None)
    out = decoder.decode(batch["ids"], batch["head"], lengths=batch["lengths"])
    new = ActionDecoder.from_tokenizer_dir(fitted)
    relative = new.decode(
        batch["ids"], batch["head"], lengths=batch["lengths"], state=np.zeros((len(out.valid), 7))
    )
    np.testing.assert_array_equal(out.actions, relative.actions)
    assert out.columns == tuple(tuple(range(d)) for d in decoder.head_dims)


def test_a_default_fit_records_no_transform(corpus: Path, tmp_path: Path) -> None:
    mixture = write_mixture(corpus / "plain.json", {"datasets": [{"repo_id": "lab/c", "root": "c"}]})
    fit_tokenizer(mixture, FitSettings(**SETTINGS), out_dir=tmp_path / "tok", preflight=False)  # type: ignore[arg-type]
    rows = json.loads((tmp_path / "tok" / "norm_stats.json").read_text())["heads"]
    assert all(set(row) == {"key", "members", "native_dim", "stats"} for row in rows)


def test_members_of_one_head_with_different_transforms_are_recorded_and_refused_at_decode(
    corpus: Path, tmp_path: Path
) -> None:
    mixture = write_mixture(
        corpus / "mixed.json",
        {
            "datasets": [
                {"repo_id": "lab/a", "root": "a", "relative_dims": "0:6"},
                {"repo_id": "lab/b", "root": "b", "relative_dims": "0:4"},
                {"repo_id": "lab/c", "root": "c"},
            ]
        },
    )
    fit_tokenizer(mixture, FitSettings(**SETTINGS), out_dir=tmp_path / "tok", preflight=False)  # type: ignore[arg-type]
    stored = read_norm_stats(tmp_path / "tok")
    arm = next(h for h, key in enumerate(stored.heads.keys) if "arm" in key)
    mixed = stored.transforms[arm]
    assert isinstance(mixed, MemberTransforms)
    assert mixed.members == stored.members[arm]
    assert [t.relative for t in mixed.transforms] == [(0, 1, 2, 3, 4, 5), (0, 1, 2, 3)]
    decoder = ActionDecoder.from_tokenizer_dir(tmp_path / "tok")
    ids = decoder.tokenizer.encode(np.zeros((2, T, D), np.float32))
    with pytest.raises(ValueError, match=r"members with different action transforms \(.*relative 0:6.*0:4"):
        decoder.decode(ids, arm, state=np.zeros((2, NATIVE)))
    assert decoder.decode(ids, 1 - arm).valid.all()  # the other head still decodes


@pytest.mark.parametrize(
    "transform",
    [
        ActionTransform(action_index=SELECT, relative_dims=RELATIVE, relative_exclude=EXCLUDE),
        ActionTransform(relative_dims="0:7", relative_exclude=[6]),
        ActionTransform(action_index="0:3"),
    ],
)
def test_unapply_inverts_apply_on_the_kept_columns(corpus: Path, transform: ActionTransform) -> None:
    chunks, state0 = _chunks(corpus / "a")
    kept = list(transform.columns(NATIVE))
    restored = transform.unapply(transform.apply(chunks, state0), state0)
    np.testing.assert_allclose(restored, chunks[..., kept], rtol=0, atol=1e-6)
    assert [c for _, c in transform.state_columns(NATIVE)] == [c for c in kept if c in transform.relative]


def test_from_heads_takes_the_entries_transforms(corpus: Path, fitted: Path) -> None:
    from fasttok_plugin.heads import build_norm_heads
    from fasttok_plugin.mixture import load_mixture
    from fasttok_plugin.resolve import resolve_mixture

    config = load_mixture(corpus / "relative.json")
    resolved = resolve_mixture(config)
    transforms = config.entry_transforms()
    heads = build_norm_heads(resolved, D, transforms=transforms)
    decoder = ActionDecoder.from_heads(
        ActionDecoder.from_tokenizer_dir(fitted).tokenizer, heads, transforms=transforms
    )
    stored = ActionDecoder.from_tokenizer_dir(fitted).transforms
    assert [t and t.key for t in decoder.transforms] == [t and t.key for t in stored]  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="has 7 native dims but its transform selects 5 columns"):
        ActionDecoder(
            decoder.tokenizer, decoder.unnormalize, decoder.head_keys, (7, 7), decoder.transforms[::-1]
        )


def test_a_native_layout_fit_decodes_each_head_at_its_selected_width(corpus: Path, tmp_path: Path) -> None:
    mixture = write_mixture(
        corpus / "native.json",
        {
            "datasets": [
                {"repo_id": "lab/a", "root": "a", **ARM},
                {"repo_id": "lab/b", "root": "b", **ARM},
                {"repo_id": "lab/c", "root": "c"},
            ]
        },
    )
    settings = FitSettings(**SETTINGS, layout="native")  # type: ignore[arg-type]
    fit_tokenizer(mixture, settings, out_dir=tmp_path / "tok", preflight=False)
    folder = tmp_path / "tok"
    batch = _batch(corpus, folder)
    decoder = ActionDecoder.from_tokenizer_dir(folder)
    assert decoder.tokenizer.layout == "native"
    out = decoder.decode(batch["ids"], batch["head"], lengths=batch["lengths"], state=batch["state"])
    assert out.valid.all()
    assert sorted(set(out.action_dims.tolist())) == [len(SELECT), NATIVE]
    error = np.abs(out.actions.astype(np.float64) - batch["absolute"])
    bound = _bound(folder, batch["head"], decoder.tokenizer.scale)
    for row in range(len(error)):
        d = batch["dims"][row]
        assert (error[row, :, :d] <= bound[row, :, :d]).all(), row
