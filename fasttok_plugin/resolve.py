"""Resolve a mixture: read every entry's dataset metadata once, name entries, apply tag overrides.

The :class:`ResolvedMixture` is what ``build_norm_heads``, the sampler, the fit and the preflight all read,
so they cannot disagree. Resolution never raises for a dataset problem: the :class:`DatasetError` is kept
on the entry for the preflight to report alongside every other problem.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from fasttok_plugin.defaults import DEFAULT_METADATA_THREADS
from fasttok_plugin.lerobot import DatasetError, DatasetMeta, read_dataset_meta
from fasttok_plugin.lerobot.locations import find_dataset_root, lerobot_home
from fasttok_plugin.mixture import DatasetEntry, MixtureConfig, load_mixture

__all__ = [
    "ResolvedEntry",
    "ResolvedMixture",
    "dataset_names",
    "entry_label",
    "resolve_entry",
    "resolve_mixture",
]

logger = logging.getLogger(__name__)


def dataset_names(repo_ids: Sequence[str]) -> list[str]:
    """Entry names: the ``repo_id``, with ``#i`` on every occurrence of a repeated one.

    ``["A", "B", "A"] -> ["A#0", "B", "A#1"]``.
    """
    totals = Counter(repo_ids)
    seen: Counter[str] = Counter()
    names = []
    for repo_id in repo_ids:
        if totals[repo_id] > 1:
            names.append(f"{repo_id}#{seen[repo_id]}")
            seen[repo_id] += 1
        else:
            names.append(repo_id)
    return names


@dataclass(frozen=True, slots=True)
class ResolvedEntry:
    """One mixture entry with its dataset metadata.

    Attributes:
        entry: The mixture entry.
        name: Entry name (see :func:`dataset_names`).
        robot_type: Effective tag: the entry's override, else ``info.json`` (``None`` when neither).
        control_mode: Effective tag: the entry's override, else ``info.json``.
        meta: Dataset metadata, ``None`` when it could not be read.
        error: Why ``meta`` is ``None``.
    """

    entry: DatasetEntry
    name: str
    robot_type: str | None
    control_mode: str | None
    meta: DatasetMeta | None
    error: DatasetError | None

    @property
    def index(self) -> int:
        """Position of the entry in the mixture."""
        return self.entry.index


@dataclass(frozen=True, slots=True)
class ResolvedMixture:
    """A mixture with every entry resolved, in mixture order."""

    config: MixtureConfig
    entries: tuple[ResolvedEntry, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """Entry names in mixture order."""
        return tuple(e.name for e in self.entries)

    @property
    def errors(self) -> tuple[ResolvedEntry, ...]:
        """Entries whose metadata could not be read."""
        return tuple(e for e in self.entries if e.error is not None)


def entry_label(index: int, name: str) -> str:
    """How messages name an entry: ``entry 3 (org/name)``."""
    return f"entry {index} ({name})"


def resolve_entry(entry: DatasetEntry, name: str) -> ResolvedEntry:
    """Read one entry's dataset metadata and apply its tag overrides; a DatasetError is stored, not raised.

    An entry without ``root`` is looked up where LeRobot keeps datasets (`find_dataset_root`: the home
    folder, then the hub snapshot of the entry's ``revision``); when none holds it the error lists every
    place looked at.

    Args:
        entry: The mixture entry (root, episode selection, action key, tag overrides).
        name: The entry's name from :func:`dataset_names` (messages say ``entry <index> (<name>)``).

    Returns:
        The resolved entry, with ``meta`` or ``error`` set.
    """
    meta: DatasetMeta | None = None
    error: DatasetError | None = None
    label = entry_label(entry.index, name)
    try:
        meta = read_dataset_meta(
            _dataset_root(entry, label),
            action_key=entry.action_key,
            episodes=entry.episodes,
            excluded_episodes=entry.excluded_episodes,
            name=label,
        )
    except DatasetError as exc:
        error = exc
        logger.debug("cannot read %s: %s", name, exc)
    # An override given in the mixture wins even when it is blank/"unknown": heads then report it as missing.
    robot_type = entry.robot_type if entry.robot_type is not None else (meta.robot_type if meta else None)
    control_mode = (
        entry.control_mode if entry.control_mode is not None else (meta.control_mode if meta else None)
    )
    return ResolvedEntry(entry, name, robot_type, control_mode, meta, error)


def _dataset_root(entry: DatasetEntry, label: str) -> Path:
    """The entry's ``root``, or where LeRobot keeps its dataset; a DatasetError lists the places looked at."""
    if not entry.default_root:
        return entry.root
    try:
        location = find_dataset_root(entry.repo_id, entry.revision)
    except (OSError, ValueError):
        # A repo_id no filesystem can hold (NUL, an over-long name): reading the default root reports it.
        return entry.root
    if location.root is not None:
        return location.root
    revision = f" --revision {entry.revision}" if entry.revision else ""
    # --cache-dir <home>/hub writes the snapshot layout LeRobot 0.6 itself downloads to.
    raise DatasetError(
        "root_missing",
        "dataset not found where LeRobot keeps it; looked in: " + "; ".join(location.searched),
        hint=f"download it (`hf download --repo-type dataset {entry.repo_id}{revision} --cache-dir "
        f'{lerobot_home() / "hub"}`), set HF_LEROBOT_HOME or HF_HOME to where it is, or give "root" '
        "in the entry",
        dataset=label,
    )


def resolve_mixture(
    mixture: str | os.PathLike[str] | MixtureConfig, *, threads: int = DEFAULT_METADATA_THREADS
) -> ResolvedMixture:
    """Resolve every entry of a mixture, reading the datasets' metadata in parallel.

    Args:
        mixture: A mixture file path or a parsed :class:`MixtureConfig`.
        threads: Metadata reads in flight (``1``: one after the other, in the caller's thread). The result
            is the same for any value: entries keep mixture order.

    Returns:
        The resolved mixture; dataset problems are stored on the entries.

    Raises:
        MixtureError: Only when ``mixture`` is a path that cannot be loaded.
    """
    config = mixture if isinstance(mixture, MixtureConfig) else load_mixture(mixture)
    names = dataset_names([e.repo_id for e in config.datasets])
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    pairs = list(zip(config.datasets, names, strict=True))
    if threads == 1 or len(pairs) < 2:
        entries = tuple(resolve_entry(entry, name) for entry, name in pairs)
    else:
        with ThreadPoolExecutor(
            max_workers=min(threads, len(pairs)), thread_name_prefix="fasttok-meta"
        ) as pool:
            entries = tuple(pool.map(lambda pair: resolve_entry(*pair), pairs))
    return ResolvedMixture(config, entries)
