"""Where LeRobot keeps a dataset that a mixture names only by ``repo_id``: the one rule, as LeRobot has it.

LeRobot (``src/lerobot/utils/constants.py``, 0.6) sets
``HF_LEROBOT_HOME = Path(os.getenv("HF_LEROBOT_HOME", Path(HF_HOME) / "lerobot")).expanduser()``, with
``HF_HOME`` from ``huggingface_hub.constants`` (``$HF_HOME``, else ``$XDG_CACHE_HOME/huggingface``, else
``~/.cache/huggingface``), and ``HF_LEROBOT_HUB_CACHE = HF_LEROBOT_HOME / "hub"``.
``LeRobotDatasetMetadata`` (``src/lerobot/datasets/dataset_metadata.py``) first reads
``HF_LEROBOT_HOME / repo_id``; when that has no metadata it calls ``snapshot_download(repo_id,
revision=revision or CODEBASE_VERSION, cache_dir=HF_LEROBOT_HUB_CACHE)``, which keeps the files at
``hub/datasets--<org>--<name>/snapshots/<commit>/`` and the commit of a branch or tag in ``refs/<revision>``
(huggingface_hub's offline lookup: a 40-hex revision is the commit itself, anything else is read from
``refs/``). We never download: we look in those places, in that order, and say where we looked.

One deviation: an *empty* ``HF_LEROBOT_HOME`` or ``HF_HOME`` counts as unset (LeRobot would use the
current folder, which is never what an empty variable in a CI config means).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "LEROBOT_DEFAULT_REVISION",
    "DatasetLocation",
    "find_dataset_root",
    "hf_home",
    "hub_repo_folder",
    "lerobot_home",
]

#: ``CODEBASE_VERSION`` of ``src/lerobot/datasets/dataset_metadata.py``: the revision LeRobot downloads
#: when none is given (a tag on the Hub, so ``refs/v3.0`` in the snapshot cache).
LEROBOT_DEFAULT_REVISION = "v3.0"
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
# Without a revision we take the ref LeRobot would have downloaded, else the Hub's default branch.
_DEFAULT_REFS = (LEROBOT_DEFAULT_REVISION, "main")


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(os.path.expandvars(value)).expanduser() if value else None


def hf_home() -> Path:
    """The Hugging Face home: ``$HF_HOME``, else ``<$XDG_CACHE_HOME or ~/.cache>/huggingface``."""
    explicit = _env_path("HF_HOME")
    if explicit is not None:
        return explicit
    cache = _env_path("XDG_CACHE_HOME") or Path("~/.cache").expanduser()
    return cache / "huggingface"


def lerobot_home() -> Path:
    """LeRobot's dataset home: ``$HF_LEROBOT_HOME``, else ``<hf_home()>/lerobot``."""
    return _env_path("HF_LEROBOT_HOME") or hf_home() / "lerobot"


def hub_repo_folder(repo_id: str) -> Path:
    """LeRobot's snapshot cache folder of a dataset: ``<lerobot_home()>/hub/datasets--<org>--<name>``."""
    return lerobot_home() / "hub" / "--".join(("datasets", *repo_id.split("/")))


@dataclass(frozen=True, slots=True)
class DatasetLocation:
    """Where a dataset named only by ``repo_id`` was found, and every place looked at.

    Attributes:
        root: The dataset folder, ``None`` when no place held it.
        searched: One line per place looked at, in order, each saying why it was not used (or that it was).
    """

    root: Path | None
    searched: tuple[str, ...]

    @property
    def found(self) -> bool:
        """Whether a dataset folder was found."""
        return self.root is not None


def find_dataset_root(repo_id: str, revision: str | None = None) -> DatasetLocation:
    """Find a dataset as LeRobot would, without downloading: its home folder, then its hub snapshot.

    Args:
        repo_id: The entry's ``repo_id`` (``org/name``).
        revision: The entry's ``revision`` (branch, tag or commit); ``None``: the ref LeRobot downloads by
            default (``v3.0``), else ``main``, else the only ref (or the only snapshot) in the cache.

    Returns:
        The folder and the places looked at. A home folder without ``meta/info.json``, or one that is a
        legacy ``local_dir`` download, is passed over for a snapshot (as LeRobot does) but still returned
        when no snapshot exists, so the reader can say what is missing in it.
    """
    local = lerobot_home() / repo_id
    local_is_dir = local.is_dir()
    has_info = local_is_dir and (local / "meta" / "info.json").is_file()
    # src/lerobot/datasets/utils.py has_legacy_hub_download_metadata: a `snapshot_download(local_dir=...)`
    # mirror is re-fetched into the snapshot cache instead of read.
    legacy = has_info and (local / ".cache" / "huggingface" / "download").exists()
    if has_info and not legacy:
        return DatasetLocation(local, (f"{local} (found)",))
    if legacy:
        searched = [f"{local} (a legacy local_dir download: LeRobot 0.6 reads the hub snapshot instead)"]
    else:
        searched = [f"{local} ({'no meta/info.json' if local_is_dir else 'no such folder'})"]
    snapshot, why = _snapshot(hub_repo_folder(repo_id), revision)
    searched.append(why)
    if snapshot is not None:
        return DatasetLocation(snapshot, tuple(searched))
    # Offline LeRobot could not do better; the home folder (legacy or incomplete) says what it holds.
    return DatasetLocation(local if local_is_dir else None, tuple(searched))


def _snapshot(repo_folder: Path, revision: str | None) -> tuple[Path | None, str]:
    """The snapshot folder for ``revision`` under ``repo_folder``, and a line saying what was found."""
    snapshots = repo_folder / "snapshots"
    if not snapshots.is_dir():
        return None, f"{snapshots} (no such folder)"
    if revision is not None:
        commit, why = _commit_of(repo_folder, revision)
        if commit is None:
            return None, why
        return _snapshot_folder(snapshots, commit, f"revision {revision!r}")
    refs = _ref_names(repo_folder / "refs")
    for ref in _DEFAULT_REFS:
        if ref in refs:
            commit, why = _commit_of(repo_folder, ref)
            return (None, why) if commit is None else _snapshot_folder(snapshots, commit, f"refs/{ref}")
    if len(refs) == 1:
        commit, why = _commit_of(repo_folder, refs[0])
        return (None, why) if commit is None else _snapshot_folder(snapshots, commit, f"refs/{refs[0]}")
    if refs:
        return None, (
            f"{repo_folder / 'refs'} (refs {', '.join(refs)}: none is v3.0 or main; "
            'set "revision" in the entry to choose one)'
        )
    folders = sorted(p.name for p in snapshots.iterdir() if p.is_dir())
    if len(folders) == 1:
        return _snapshot_folder(snapshots, folders[0], "the only snapshot")
    listed = ", ".join(folders) if folders else "none"
    return None, f'{snapshots} (no refs/; snapshots: {listed}; set "revision" in the entry)'


def _commit_of(repo_folder: Path, revision: str) -> tuple[str | None, str]:
    """A revision's commit: itself when it is a commit hash, else the content of ``refs/<revision>``."""
    if _COMMIT.match(revision):
        return revision, ""
    ref = repo_folder / "refs" / revision
    # A ref never climbs out of refs/ (a revision such as "../x" is not a ref name).
    if ".." in Path(revision).parts or Path(revision).is_absolute() or not ref.is_file():
        return None, f"{ref} (no such ref)"
    try:
        commit = ref.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"{ref} (unreadable: {exc})"
    if not _COMMIT.match(commit):
        return None, f"{ref} (holds {commit[:60]!r}, not a commit hash)"
    return commit, ""


def _snapshot_folder(snapshots: Path, commit: str, via: str) -> tuple[Path | None, str]:
    folder = snapshots / commit
    if folder.is_dir():
        return folder, f"{folder} (found, {via})"
    return None, f"{folder} (no such folder; {via} names this commit)"


def _ref_names(refs: Path) -> list[str]:
    """Ref names under ``refs/`` (``main``, ``v3.0``, ``refs/pr/1`` -> ``pr/1``), sorted."""
    if not refs.is_dir():
        return []
    return sorted(p.relative_to(refs).as_posix() for p in refs.rglob("*") if p.is_file())
