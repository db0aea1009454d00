"""Mixture files for tests, examples and benchmarks: `write_mixture` and `make_example_mixture`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fasttok_plugin.testing._files import write_json
from fasttok_plugin.testing.datasets import write_lerobot_dataset

__all__ = ["make_example_mixture", "write_mixture"]


def write_mixture(path: Path, document: Mapping[str, Any]) -> Path:
    """Write a mixture document as JSON (indent 2; NaN/Infinity allowed), atomically.

    Args:
        path: Target file.
        document: The mixture (bare or wrapped in ``dataset_mixture``).

    Returns:
        ``path``.
    """
    path = Path(path)
    write_json(path, document, indent=2)
    return path


# The first entries of every example mixture. "entry" holds fields set on the mixture entry (overrides).
_TEMPLATES: tuple[Mapping[str, Any], ...] = (
    {"name": "arm7_a", "version": "v2.1", "robot_type": "arm7", "control_mode": "joint_pos", "dim": 7},
    {
        "name": "arm7_b",
        "version": "v2.1",
        "robot_type": "arm7",
        "control_mode": "joint_pos",
        "dim": 7,
        "write_stats": False,
    },
    {"name": "bimanual", "version": "v3.0", "robot_type": "bimanual", "control_mode": "joint_pos", "dim": 14},
    {"name": "mobile_base", "version": "v3.0", "robot_type": "base", "control_mode": "velocity", "dim": 2},
    {"name": "untagged", "version": "v2.1", "robot_type": None, "control_mode": None, "dim": 5},
    {
        "name": "so100_override",
        "version": "v3.0",
        "robot_type": "unknown",
        "control_mode": None,
        "dim": 6,
        "entry": {"robot_type": "so100", "control_mode": "joint_pos"},
    },
)

# (robot_type, control_mode, action_dim) of the generated example robots beyond the fixed templates.
_EXAMPLE_ROBOTS = [
    ("ur5e", "joint_pos", 7),
    ("franka", "ee_delta", 8),
    ("widowx", None, 7),
    ("so100", "joint_pos", 6),
    ("koch", None, 6),
    ("xarm", "ee_pos", 7),
    ("stretch", "velocity", 3),
    ("aloha", "joint_pos", 14),
    ("unitree_h1", "joint_pos", 19),
    ("kinova", None, 7),
    ("fetch", "velocity", 2),
    ("jaco", "ee_delta", 7),
]


def _example_spec(i: int) -> Mapping[str, Any]:
    """The dataset of example entry ``i``: a fixed template, then a cycle through `_EXAMPLE_ROBOTS`."""
    if i < len(_TEMPLATES):
        return _TEMPLATES[i]
    k = (i - len(_TEMPLATES)) % (len(_EXAMPLE_ROBOTS) + 6)
    robot, mode, dim = _EXAMPLE_ROBOTS[k % len(_EXAMPLE_ROBOTS)]
    # A second control mode for half the robots: 18 generated heads, about 30 in total at 400.
    mode = mode if k < len(_EXAMPLE_ROBOTS) else f"{mode or 'raw'}_alt"
    fallback = i % 50 == 0
    return {
        "name": f"{robot}_{i:04d}",
        "version": "v2.1" if i % 2 else "v3.0",
        "robot_type": None if fallback else robot,
        "control_mode": mode,
        "dim": dim,
    }


def make_example_mixture(
    out_dir: Path,
    *,
    n_datasets: int = 6,
    seed: int = 0,
    episode_lengths: Sequence[int] = (40, 56),
) -> Path:
    """Write a small multi-robot mixture (datasets + ``mixture.json``) and return the mixture path.

    The first six entries are fixed templates: a 7-dim arm v2.1 pair sharing the head ``arm7::joint_pos``
    (the second without ``meta/stats.json``), a 14-dim bimanual v3.0, a 2-dim mobile base (v3.0), an entry
    whose dataset has no ``robot_type`` (a fallback head) and a 6-dim arm whose tags come from the mixture
    override. Further entries cycle through a table of robots (about 30 heads for 400 datasets, with a
    fallback every 50th entry). Roots are written relative to the mixture file.

    Args:
        out_dir: Folder receiving ``mixture.json`` and ``datasets/<name>/``.
        n_datasets: Number of mixture entries (at least 1).
        seed: Base seed of the trajectories.
        episode_lengths: Frames per episode of every dataset.

    Returns:
        Path of the written ``mixture.json``.
    """
    if n_datasets < 1:
        raise ValueError("n_datasets must be at least 1")
    out_dir = Path(out_dir)
    entries: list[dict[str, Any]] = []
    weights: list[float] = []
    for i in range(n_datasets):
        spec = _example_spec(i)
        name = spec["name"]
        write_lerobot_dataset(
            out_dir / "datasets" / name,
            version=spec["version"],
            robot_type=spec["robot_type"],
            control_mode=spec["control_mode"],
            action_dim=spec["dim"],
            episode_lengths=episode_lengths,
            write_stats=spec.get("write_stats", True),
            seed=seed * 100_003 + i,
        )
        entry: dict[str, Any] = {"repo_id": f"example/{name}", "root": f"datasets/{name}"}
        entry.update(spec.get("entry", {}))
        entries.append(entry)
        weights.append(1.0 + (i % 3) * 0.5)
    document = {
        "dataset_mixture": {
            "datasets": entries,
            "weights": weights,
            "action_freq": 30.0,
            "require_non_empty_robot_type": False,
            "require_non_empty_control_mode": False,
        }
    }
    return write_mixture(out_dir / "mixture.json", document)
