"""What a mixture file is once parsed: its schema keys and the value types the parser returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fasttok_plugin.conventions import Convention
from fasttok_plugin.mixture._pointers import Location, closest
from fasttok_plugin.transforms import TRANSFORM_KEYS, ActionTransform

__all__ = [
    "ENTRY_KEYS",
    "TOP_LEVEL_KEYS",
    "WRAPPER_KEY",
    "DatasetEntry",
    "MixtureConfig",
    "MixtureProblem",
    "UnknownKey",
]

#: The optional object that wraps the mixture (OpenTau style): ``{"dataset_mixture": {...}}``.
WRAPPER_KEY = "dataset_mixture"
#: Keys the mixture object knows.
TOP_LEVEL_KEYS = (
    "datasets",
    "weights",
    "action_freq",
    "require_non_empty_robot_type",
    "require_non_empty_control_mode",
    "max_action_dim",
    "chunk_size",
    "head_grouping",
    *TRANSFORM_KEYS,
    "layout",
    "convention",
)
#: Keys a ``datasets`` entry knows.
ENTRY_KEYS = (
    "repo_id",
    "root",
    "robot_type",
    "control_mode",
    "episodes",
    "excluded_episodes",
    "weight",
    "action_key",
    "data_features_name_mapping",
    "revision",
    *TRANSFORM_KEYS,
)


@dataclass(frozen=True, slots=True)
class MixtureProblem:
    """One problem in a mixture file.

    Attributes:
        pointer: JSON pointer of the offending value in the merged document (``""`` for the whole file).
        message: What is wrong.
        hint: How to fix it.
        line: 1-based line of the value in ``file``, when known.
        file: File the value came from (the mixture or a ``$ref``-included file).
    """

    pointer: str
    message: str
    hint: str = ""
    line: int | None = None
    file: Path | None = None

    def __str__(self) -> str:
        where = str(self.file) if self.file is not None else "<mixture>"
        if self.line is not None:
            where += f":{self.line}"
        text = f"{where}: {self.pointer or '/'}: {self.message}"
        return f"{text} (fix: {self.hint})" if self.hint else text


@dataclass(frozen=True, slots=True)
class UnknownKey:
    """A key the mixture schema does not know (often a typo), with the closest known key."""

    pointer: str
    key: str
    suggestion: str | None
    line: int | None
    file: Path | None = None


@dataclass(frozen=True, slots=True)
class DatasetEntry:
    """One entry of ``datasets``, validated.

    Attributes:
        index: Position in ``datasets``.
        repo_id: Hugging Face repo id (also the dataset name, see ``resolve.dataset_names``).
        root: Absolute local dataset folder (relative roots resolve against the mixture file's folder;
            default ``$HF_LEROBOT_HOME/<repo_id>``).
        robot_type: Override of ``info.json``'s ``robot_type`` (``None``: no override).
        control_mode: Override of ``info.json``'s ``control_mode`` (``None``: no override).
        episodes: Selected episode indices, as given.
        excluded_episodes: Excluded episode indices, as given.
        weight: Per-entry ``weight`` as given (``None`` when absent).
        action_key: Native action column (``action_key`` or ``data_features_name_mapping.actions``).
        revision: The Hub revision; picks the snapshot when the dataset is found in LeRobot's hub cache
            (``root`` not given), otherwise recorded only.
        pointer: JSON pointer of the entry (``/datasets/3`` or ``/dataset_mixture/datasets/3``).
        line: Line of the entry's opening brace in ``file``.
        file: File the entry was written in (differs from the mixture when it came from a ``$ref``).
        transform: The entry's `ActionTransform` when it writes transform keys (merged over the top
            level's key by key), else ``None`` (the mixture's ``transform`` applies).
        default_root: ``root`` was not given: ``root`` is LeRobot's default, and resolution also looks in
            LeRobot's hub snapshot cache (`fasttok_plugin.lerobot.locations.find_dataset_root`).
    """

    index: int
    repo_id: str
    root: Path
    robot_type: str | None
    control_mode: str | None
    episodes: tuple[int, ...] | None
    excluded_episodes: tuple[int, ...] | None
    weight: float | None
    action_key: str | None
    revision: str | None
    pointer: str
    line: int | None
    file: Path | None = None
    transform: ActionTransform | None = None
    default_root: bool = False


@dataclass(frozen=True, slots=True)
class MixtureConfig:
    """A parsed, validated mixture.

    Attributes:
        path: The mixture file (``None`` when parsed from a document).
        datasets: The entries, in file order.
        weights: One per dataset as given (default 1.0); invalid values are kept (non-numbers become NaN)
            and reported in ``problems``.
        weights_pointer: Where the weights came from (``/weights`` or ``/datasets``, with the wrapper prefix).
        action_freq: Resampling rate in Hz, ``None`` for each dataset's native fps.
        require_non_empty_robot_type: Entries without a usable ``robot_type`` are errors.
        require_non_empty_control_mode: Entries without a usable ``control_mode`` are errors.
        max_action_dim: Optional default for the padded action dim.
        chunk_size: Optional default chunk size.
        head_grouping: Optional default head grouping (one of ``defaults.HEAD_GROUPINGS``; ``None``: not
            given, so callers fall back to ``robot_control``).
        transform: The top-level `ActionTransform` (``None``: no transform key at the top level).
        layout: Optional default chunk layout, ``"padded"`` or ``"native"`` (``None``: not given, so
            callers fall back to ``padded``).
        convention: Optional normalization convention (`fasttok_plugin.conventions.Convention`; the file
            holds a name or ``{"name": ..., <field>: <override>}``).
        unknown_keys: Keys the schema does not know, with suggestions.
        problems: Non-fatal problems (bad weights) for the preflight to report.
        sha256: sha256 of the canonical (sorted keys) merged document.
        prefix: ``""`` for a bare mixture, ``"/dataset_mixture"`` for a wrapped one.
        locations: Merged JSON pointer -> ``(file, line)`` of every value (see :meth:`line_of`).
    """

    path: Path | None
    datasets: tuple[DatasetEntry, ...]
    weights: tuple[float, ...]
    weights_pointer: str
    action_freq: float | None
    require_non_empty_robot_type: bool
    require_non_empty_control_mode: bool
    max_action_dim: int | None
    chunk_size: int | None
    unknown_keys: tuple[UnknownKey, ...]
    problems: tuple[MixtureProblem, ...]
    sha256: str
    prefix: str = ""
    head_grouping: str | None = None
    transform: ActionTransform | None = None
    layout: str | None = None
    convention: Convention | None = None
    locations: Mapping[str, Location] = field(default_factory=dict, repr=False, compare=False)

    def entry_transforms(self, argument: ActionTransform | None = None) -> tuple[ActionTransform | None, ...]:
        """The transform of every entry: ``argument``, else the entry's, else the top level's (else None).

        The one "argument, else mixture, else default" rule for transforms; an argument replaces the
        mixture's transforms for every entry.
        """
        if argument is not None:
            return (argument,) * len(self.datasets)
        return tuple(e.transform if e.transform is not None else self.transform for e in self.datasets)

    def line_of(self, pointer: str) -> int | None:
        """Line (1-based) where the value at ``pointer`` starts, in the file it was written in."""
        return self.location_of(pointer)[1]

    def location_of(self, pointer: str) -> Location:
        """``(file, line)`` of the value at ``pointer``; falls back to the closest enclosing value."""
        return closest(pointer, self.locations.get, (self.path, None))
