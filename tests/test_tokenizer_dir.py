"""The one "is this a tokenizer folder" rule, pinned on real folders and on the codec's save."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fasttok_plugin.codec import CodecError, FastTokenizer
from fasttok_plugin.errors import OutDirError
from fasttok_plugin.tokenizer_dir import (
    FORMAT_KEY,
    FORMAT_MARKER,
    OWNED_NAMES,
    PROCESSOR_CONFIG_NAME,
    SIDECAR_NAME,
    TOKENIZER_MARKERS,
    FolderState,
    check_replaceable,
    folder_state,
    is_tokenizer_dir,
)


@pytest.fixture(scope="module")
def tokenizer() -> FastTokenizer:
    chunks = np.random.default_rng(0).uniform(-1.0, 1.0, size=(200, 10, 3)).astype(np.float32)
    return FastTokenizer.fit(chunks, vocab_size=512)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_the_markers_are_the_reference_processor_config_and_our_sidecar() -> None:
    assert frozenset({"processor_config.json", "fasttok.json"}) == TOKENIZER_MARKERS


def test_a_missing_path_may_receive_a_tokenizer(tmp_path: Path) -> None:
    missing = tmp_path / "new" / "tok"
    assert folder_state(missing) is FolderState.MISSING
    assert not is_tokenizer_dir(missing)
    assert check_replaceable(missing, error=CodecError) is FolderState.MISSING


def test_an_empty_folder_is_not_a_tokenizer_but_may_receive_one(
    tmp_path: Path, tokenizer: FastTokenizer
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert folder_state(empty) is FolderState.EMPTY
    assert not is_tokenizer_dir(empty)
    assert FolderState.EMPTY.replaceable
    tokenizer.save(empty)
    assert is_tokenizer_dir(empty)


def test_a_folder_we_saved_is_a_tokenizer_folder_and_may_be_replaced(
    tmp_path: Path, tokenizer: FastTokenizer
) -> None:
    saved = tokenizer.save(tmp_path / "tok")
    (saved / "fit_report.json").write_text("{}")  # what fit_tokenizer adds beside the tokenizer files
    assert folder_state(saved) is FolderState.TOKENIZER
    assert is_tokenizer_dir(saved)
    assert check_replaceable(saved, error=CodecError) is FolderState.TOKENIZER
    tokenizer.save(saved)
    assert FastTokenizer.load(saved).min_token == tokenizer.min_token


@pytest.mark.parametrize("marker", [PROCESSOR_CONFIG_NAME, SIDECAR_NAME])
def test_either_marker_alone_makes_a_tokenizer_folder(tmp_path: Path, marker: str) -> None:
    folder = tmp_path / "tok"
    folder.mkdir()
    (folder / marker).write_text("{}")
    assert is_tokenizer_dir(folder)


def test_a_reference_processor_directory_in_the_transformers_5_layout_is_a_tokenizer_folder(
    tmp_path: Path, tokenizer: FastTokenizer
) -> None:
    folder = tmp_path / "reference"
    (folder / "bpe_tokenizer").mkdir(parents=True)
    (folder / PROCESSOR_CONFIG_NAME).write_text(json.dumps({"scale": 10, "min_token": tokenizer.min_token}))
    (folder / "bpe_tokenizer" / "tokenizer.json").write_text(tokenizer.tokenizer.to_str())
    (folder / "processing_action_tokenizer.py").write_text("")
    assert is_tokenizer_dir(folder)


@pytest.mark.parametrize("stray", ["fit_report.json", "tokenizer.json"])
def test_a_folder_with_only_a_stray_fit_report_or_tokenizer_json_is_foreign_and_never_replaced(
    tmp_path: Path, tokenizer: FastTokenizer, stray: str
) -> None:
    # The strictest of the former rules: fit_tokenizer's out_dir check also accepted fit_report.json and the
    # Lightning callback also accepted tokenizer.json; neither file can be loaded as a tokenizer on its own.
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / stray).write_text('{"keep": true}')
    assert folder_state(folder) is FolderState.FOREIGN
    assert not is_tokenizer_dir(folder)
    assert not FolderState.FOREIGN.replaceable
    with pytest.raises(OutDirError, match=r"run is a non-empty directory that is not a tokenizer directory"):
        check_replaceable(folder, error=OutDirError)
    with pytest.raises(CodecError, match=r"^save: .* not a tokenizer directory; choose another path"):
        tokenizer.save(folder)
    assert _snapshot(folder) == {stray: b'{"keep": true}'}


def test_a_folder_of_unrelated_files_is_foreign(tmp_path: Path, tokenizer: FastTokenizer) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    (folder / ".hidden").write_text("")
    assert folder_state(folder) is FolderState.FOREIGN
    with pytest.raises(CodecError, match="nothing was overwritten"):
        tokenizer.save(folder)
    assert _snapshot(folder) == {".hidden": b"", "notes.txt": b"keep me"}


def test_processor_config_beside_model_files_is_refused(tmp_path: Path, tokenizer: FastTokenizer) -> None:
    # Behaviour change of issue #10 (DESIGN §13): this test used to pin that processor_config.json marked the
    # folder as a tokenizer folder whatever else it held, so saving into a Hugging Face model folder deleted
    # model.safetensors. A folder holding files this package does not write is now refused, never emptied.
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    (folder / PROCESSOR_CONFIG_NAME).write_text("{}")
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"\0" * 16)
    before = _snapshot(folder)
    assert folder_state(folder) is FolderState.UNOWNED
    assert not FolderState.UNOWNED.replaceable
    assert is_tokenizer_dir(folder)  # it holds a processor config: a reader may try to load it
    with pytest.raises(OutDirError, match=r"it holds config.json, model.safetensors, which fasttok_plugin"):
        check_replaceable(folder, error=OutDirError)
    with pytest.raises(CodecError, match=r"^save: .*not a tokenizer directory; choose another path"):
        tokenizer.save(folder)
    assert _snapshot(folder) == before


def test_a_file_is_neither_a_tokenizer_folder_nor_replaceable(
    tmp_path: Path, tokenizer: FastTokenizer
) -> None:
    a_file = tmp_path / "tok"
    a_file.write_text("not a folder")
    assert folder_state(a_file) is FolderState.NOT_A_DIRECTORY
    assert not is_tokenizer_dir(a_file)
    with pytest.raises(OutDirError, match=r"tok exists and is not a directory; choose another path"):
        check_replaceable(a_file, error=OutDirError)
    with pytest.raises(CodecError, match=r"^save: .*tok exists and is not a directory"):
        tokenizer.save(a_file)
    assert a_file.read_text() == "not a folder"


@pytest.mark.parametrize("stray", ["fit_report.json", "tokenizer.json"])
def test_the_fit_and_the_callback_follow_the_same_rule(tmp_path: Path, stray: str) -> None:
    # The fit once accepted a lone fit_report.json and the callback a lone tokenizer.json as a tokenizer
    # folder; all three writers now share the codec's stricter rule and refuse both, touching nothing.
    from fasttok_plugin.fit._outdir import check_out_dir
    from fasttok_plugin.lightning._cached import existing_matches

    folder = tmp_path / "run"
    folder.mkdir()
    (folder / stray).write_text("{}")
    with pytest.raises(OutDirError, match="not a tokenizer directory"):
        check_out_dir(folder)
    with pytest.raises(FileExistsError, match=f"holds no tokenizer \\(found {stray}\\)"):
        existing_matches(folder, "f" * 64, on_mismatch="refit", explain=lambda _: "")
    assert _snapshot(folder) == {stray: b"{}"}


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"<dir>" for p in folder.rglob("*")
    }


def test_the_owned_names_are_exactly_what_the_writers_write(tmp_path: Path, tokenizer: FastTokenizer) -> None:
    from fasttok_plugin.codec.files import _directory_files
    from fasttok_plugin.fit.report import REPORT_NAME

    written = set(_directory_files(tokenizer)) | {REPORT_NAME}
    assert written <= OWNED_NAMES
    assert OWNED_NAMES - written == {"norm_stats.json"}  # named by DESIGN §13 for the normalization stats
    saved = tokenizer.save(tmp_path / "tok")
    assert {p.name for p in saved.iterdir()} <= OWNED_NAMES
    assert json.loads((saved / SIDECAR_NAME).read_text())[FORMAT_KEY] == FORMAT_MARKER
    assert folder_state(saved) is FolderState.TOKENIZER


def test_loading_a_tokenizer_from_a_model_folder_and_saving_it_back_deletes_nothing(
    tmp_path: Path, tokenizer: FastTokenizer
) -> None:
    # Issue #10: `FastTokenizer.load(tok).save(folder)` deleted pytorch_model.bin beside the tokenizer files.
    model = tokenizer.save(tmp_path / "model")
    (model / "pytorch_model.bin").write_bytes(b"weights")
    (model / "config.json").write_text("{}")
    before = _tree(model)
    assert folder_state(model) is FolderState.UNOWNED
    loaded = FastTokenizer.load(model)  # readable
    with pytest.raises(CodecError, match=r"it holds config.json, pytorch_model.bin, which fasttok_plugin"):
        loaded.save(model)
    assert _tree(model) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no lock file, no staging folder


def test_a_reference_folder_written_by_another_tool_is_loadable_but_never_replaced(
    tmp_path: Path, tokenizer: FastTokenizer
) -> None:
    reference = tokenizer.save(tmp_path / "reference")
    (reference / SIDECAR_NAME).unlink()  # what the reference's save_pretrained leaves: no fasttok.json
    before = _tree(reference)
    assert folder_state(reference) is FolderState.UNOWNED
    assert FastTokenizer.load(reference).min_token == tokenizer.min_token
    with pytest.raises(
        CodecError, match=r"it has no fasttok.json: a processor folder written by another tool"
    ):
        tokenizer.save(reference)
    assert _tree(reference) == before


def test_a_sidecar_without_our_format_marker_is_not_ours(tmp_path: Path, tokenizer: FastTokenizer) -> None:
    # A fasttok.json without the marker (another tool's, or written before the marker existed) is refused.
    saved = tokenizer.save(tmp_path / "tok")
    sidecar = json.loads((saved / SIDECAR_NAME).read_text())
    del sidecar[FORMAT_KEY]
    (saved / SIDECAR_NAME).write_text(json.dumps(sidecar))
    assert folder_state(saved) is FolderState.UNOWNED
    with pytest.raises(OutDirError, match=r"lacks the marker format='fasttok_plugin.tokenizer'"):
        check_replaceable(saved, error=OutDirError)
    (saved / SIDECAR_NAME).write_text("{not json")
    assert folder_state(saved) is FolderState.UNOWNED


def test_a_run_folder_with_checkpoints_beside_our_tokenizer_is_refused_by_the_fit(
    tmp_path: Path, tokenizer: FastTokenizer
) -> None:
    # Issue #10: a run folder used as tokenizer_dir lost checkpoints/ and NOTES.md under refit; the refit
    # writes through fit_tokenizer's out_dir, which now refuses it before any compute.
    from fasttok_plugin.fit._outdir import check_out_dir

    run = tokenizer.save(tmp_path / "run")
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_bytes(b"ckpt")
    (run / "NOTES.md").write_text("keep")
    before = _tree(run)
    with pytest.raises(
        OutDirError, match=r"it holds NOTES.md, checkpoints, which fasttok_plugin does not write"
    ):
        check_out_dir(run)
    assert _tree(run) == before


def test_the_current_directory_and_its_parents_are_never_replaced(
    tmp_path: Path, tokenizer: FastTokenizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    ours = tokenizer.save(tmp_path / "tok")  # replaceable from anywhere else
    monkeypatch.chdir(ours)
    for target in (Path("."), ours, tmp_path):
        with pytest.raises(CodecError, match="is the current directory or one of its parents"):
            tokenizer.save(target)
    monkeypatch.chdir(tmp_path.parent)
    assert tokenizer.save(ours) == ours


def test_a_protected_path_keeps_its_folders(tmp_path: Path) -> None:
    mixture = tmp_path / "project" / "mixture.json"
    mixture.parent.mkdir()
    mixture.write_text("{}")
    for target in (mixture.parent, tmp_path):
        with pytest.raises(OutDirError, match=f"holds {mixture}"):
            check_replaceable(target, error=OutDirError, protect=(mixture,))
    assert check_replaceable(tmp_path / "new", error=OutDirError, protect=(mixture,)) is FolderState.MISSING


def test_a_symlink_is_never_replaced(tmp_path: Path, tokenizer: FastTokenizer) -> None:
    real = tokenizer.save(tmp_path / "real")
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(CodecError, match="is a symbolic link"):
        tokenizer.save(link)
    assert link.is_symlink()
