"""Crash-safe folder swaps on real folders: kills at every step, stale staging, umask, concurrent writers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from fasttok_plugin import atomic
from fasttok_plugin.codec import FastTokenizer
from fasttok_plugin.tokenizer_dir import FORMAT_MARKER, FolderState, folder_state, lock_path

ROOT = Path(__file__).resolve().parents[1]

# Loads the "new" tokenizer, then saves it over the target, dying (os._exit, no cleanup of any kind) at
# the k-th call of any step that changes the filesystem. mode "journal" forces the fallback swap.
CHILD = textwrap.dedent(
    """
    import os, shutil, sys
    from fasttok_plugin import atomic
    from fasttok_plugin.codec import FastTokenizer

    source, target, kill_at, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    tok = FastTokenizer.load(source)
    calls = [0]
    steps = []

    def step(name, real):
        def wrapper(*args, **kwargs):
            calls[0] += 1
            steps.append(name)
            if calls[0] == kill_at:
                os._exit(17)
            return real(*args, **kwargs)
        return wrapper

    if mode == "journal":
        atomic._exchange = lambda staged, target: False
    else:
        atomic._exchange = step("exchange", atomic._exchange)
    for name in ("open", "replace", "rename", "mkdir", "rmdir", "unlink"):
        setattr(os, name, step(name, getattr(os, name)))
    shutil.rmtree = step("rmtree", shutil.rmtree)
    tok.save(target)
    print(" ".join(steps))
    """
)


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.update(extra)
    return env


def _tokenizer(which: str, seed: int) -> FastTokenizer:
    chunks = np.random.default_rng(seed).uniform(-1.0, 1.0, size=(120, 10, 2)).astype(np.float32)
    tok = FastTokenizer.fit(chunks, vocab_size=300)
    tok.metadata["which"] = which
    return tok


@pytest.fixture(scope="module")
def old_and_new() -> tuple[FastTokenizer, FastTokenizer]:
    return _tokenizer("old", 0), _tokenizer("new", 1)


def _which(folder: Path) -> str:
    return FastTokenizer.load(folder).metadata["which"]


@pytest.mark.parametrize("mode", ["exchange", "journal", "first"])
def test_a_kill_at_every_step_of_a_save_leaves_the_old_or_the_new_tokenizer(
    tmp_path: Path, old_and_new: tuple[FastTokenizer, FastTokenizer], mode: str
) -> None:
    old, new = old_and_new
    source = new.save(tmp_path / "source")
    work = tmp_path / "work"
    work.mkdir()
    target = work / "tok"
    seen: list[str] = []
    kill_at = 1
    while True:
        if mode == "first":  # the first save: "old" is no folder at all
            if target.exists():
                atomic.remove_tree(target)
        else:
            old.save(target)
        run = subprocess.run(
            [sys.executable, "-c", CHILD, str(source), str(target), str(kill_at), mode],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=120,
        )
        if run.returncode == 0:  # kill_at is past the last step: the save completed
            steps = run.stdout.split()
            break
        assert run.returncode == 17, run.stderr
        # Right after the kill, before any recovery: a reader finds the old or the new tokenizer (for a
        # first save: none or the new one, never a half-written folder).
        seen.append(_which(target) if mode != "first" or target.exists() else "old")
        # The next save recovers: the new tokenizer in place, nothing else left next to it.
        new.save(target)
        assert _which(target) == "new"
        assert sorted(p.name for p in work.iterdir()) == ["tok"], f"kill at step {kill_at}"
        kill_at += 1
    assert _which(target) == "new"
    assert sorted(p.name for p in work.iterdir()) == ["tok"]
    assert len(steps) == kill_at - 1 >= 20  # every step was a kill point
    assert set(seen) == {"old", "new"}  # kills before and after the swap were both exercised
    if mode == "exchange":
        assert "exchange" in steps
    elif mode == "journal":
        assert steps.count("replace") >= 2 + 6  # both renames of the swap, after the staged files


def test_an_interrupted_journal_swap_is_read_from_the_journal_and_restored_by_the_next_writer(
    tmp_path: Path, old_and_new: tuple[FastTokenizer, FastTokenizer]
) -> None:
    old, new = old_and_new
    target = old.save(tmp_path / "tok")
    journal = atomic.journal_path(target)
    os.replace(target, journal)  # what a writer killed between the two renames leaves
    assert _which(target) == "old"  # readers use the journal
    new.save(tmp_path / "other")  # another folder's writer leaves it alone
    assert journal.is_dir()
    new.save(target)
    assert _which(target) == "new"
    assert not journal.exists()


def test_stale_staging_folders_are_removed_only_when_they_are_ours(
    tmp_path: Path, old_and_new: tuple[FastTokenizer, FastTokenizer]
) -> None:
    old, new = old_and_new
    target = old.save(tmp_path / "tok")
    crashed = tmp_path / ".tok.stage-0123abcd"  # a writer killed while writing its files
    (crashed / "tokenizer").mkdir(parents=True)
    (crashed / ".fasttok-staging").write_text("")
    (crashed / "tokenizer" / "tokenizer.json").write_text("{")
    (crashed / "tokenizer" / ".fasttok.json.0badf00d.tmp").write_text("")
    empty = tmp_path / ".tok.stage-00000000"  # killed right after mkdir
    empty.mkdir()
    lookalike = tmp_path / ".tok.stage-feedbeef"  # same name pattern, but the user's files
    lookalike.mkdir()
    (lookalike / "notes.txt").write_text("keep me")
    unmarked = tmp_path / ".tok.stage-facefeed"  # our layout without our marker
    (unmarked / "tokenizer").mkdir(parents=True)
    new.save(target)
    assert _which(target) == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tok.stage-facefeed", ".tok.stage-feedbeef", "tok"]
    assert (lookalike / "notes.txt").read_text() == "keep me"


def test_a_journal_that_is_not_ours_is_never_touched(
    tmp_path: Path, old_and_new: tuple[FastTokenizer, FastTokenizer]
) -> None:
    old, _ = old_and_new
    journal = tmp_path / ".tok.old"
    journal.mkdir()
    (journal / "notes.txt").write_text("keep me")
    old.save(tmp_path / "tok")
    assert (journal / "notes.txt").read_text() == "keep me"


UMASK_CHILD = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    from fasttok_plugin.codec import FastTokenizer

    os.umask(int(sys.argv[2], 8))
    chunks = np.random.default_rng(0).uniform(-1, 1, size=(60, 8, 2)).astype(np.float32)
    tok = FastTokenizer.fit(chunks, vocab_size=300)
    tok.save(sys.argv[1])  # created
    tok.save(sys.argv[1])  # replaced
    """
)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_saved_folders_and_files_follow_the_umask(tmp_path: Path, umask: int) -> None:
    target = tmp_path / "tok"
    subprocess.run(
        [sys.executable, "-c", UMASK_CHILD, str(target), f"{umask:o}"], check=True, env=_env(), timeout=120
    )
    assert target.stat().st_mode & 0o777 == 0o777 & ~umask
    modes = {p.name: p.stat().st_mode & 0o777 for p in target.iterdir()}
    assert modes
    assert set(modes.values()) == {0o666 & ~umask}, modes


def test_write_file_atomic_follows_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        atomic.write_text_atomic(tmp_path / "a.json", "{}")
    finally:
        os.umask(previous)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o640


WRITER_CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from fasttok_plugin.codec import FastTokenizer

    target, index, start = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    chunks = np.random.default_rng(index).uniform(-1, 1, size=(80, 8, 2)).astype(np.float32)
    tok = FastTokenizer.fit(chunks, vocab_size=300)
    tok.metadata["writer"] = index
    time.sleep(max(0.0, start - time.time()))  # every writer saves at the same instant
    for _ in range(5):
        tok.save(target)
    print("saved", index)
    """
)


def test_concurrent_writers_of_one_folder_are_serialized(tmp_path: Path) -> None:
    import time

    target = tmp_path / "tok"
    start = time.time() + 3.0
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER_CHILD, str(target), str(i), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        for i in range(4)
    ]
    results = [(w.wait(timeout=180), *w.communicate()) for w in writers]
    for i, (code, out, err) in enumerate(results):
        assert code == 0, err
        assert out.strip() == f"saved {i}"
    assert FastTokenizer.load(target).metadata["writer"] in range(4)
    assert folder_state(target) is FolderState.TOKENIZER
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tok"]  # no staging folder, no lock file left


def test_the_lock_serializes_and_is_removed(tmp_path: Path) -> None:
    import filelock

    target = tmp_path / "tok"
    with atomic.locked(lock_path(target), timeout=5):
        assert lock_path(target).exists()
        with pytest.raises(filelock.Timeout), atomic.locked(lock_path(target), timeout=0.2):
            pass  # pragma: no cover - never reached: the lock is held
    assert not lock_path(target).exists()


def test_saved_sidecar_carries_the_format_marker(
    tmp_path: Path, old_and_new: tuple[FastTokenizer, FastTokenizer]
) -> None:
    saved = old_and_new[0].save(tmp_path / "tok")
    assert (
        json.loads((saved / "fasttok.json").read_text())["format"]
        == FORMAT_MARKER
        == "fasttok_plugin.tokenizer"
    )


def test_a_writer_that_cannot_get_the_lock_says_who_holds_it(
    tmp_path: Path, old_and_new: tuple[FastTokenizer, FastTokenizer], monkeypatch: pytest.MonkeyPatch
) -> None:
    from fasttok_plugin.codec import CodecError

    old, new = old_and_new
    target = old.save(tmp_path / "tok")
    monkeypatch.setattr("fasttok_plugin.tokenizer_dir.LOCK_TIMEOUT", 0.2)
    with (
        atomic.locked(lock_path(target), timeout=5),
        pytest.raises(
            CodecError, match=r"another process has been writing .*tok for 0 s \(it holds .*\.tok\.lock\)"
        ),
    ):
        new.save(target)
    assert _which(target) == "old"


def test_a_failing_second_rename_of_the_journal_swap_puts_the_old_folder_back(
    tmp_path: Path, old_and_new: tuple[FastTokenizer, FastTokenizer], monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = old_and_new
    target = old.save(tmp_path / "tok")
    real_replace = os.replace
    calls: list[str] = []

    def failing_replace(src: object, dst: object) -> None:
        if Path(str(dst)) == target and Path(str(src)).name == "tokenizer":
            calls.append(str(src))
            if len(calls) == 2:  # the first one is refused (target not empty); the second is the swap's
                raise OSError("rename failed")
        real_replace(src, dst)

    monkeypatch.setattr(atomic, "_exchange", lambda staged, target: False)
    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="rename failed"):
        new.save(target)
    monkeypatch.undo()
    assert _which(target) == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tok"]
