"""fasttok_min_frames: an example third-party preflight plugin.

Rule ``MF001``: every norm head must hold at least ``--min-frames`` frames (default 1000). A head fitted
on a handful of frames gets min/max stats that the rest of that robot's data will overshoot.

Use it without installing: ``PYTHONPATH=examples/preflight_plugin fasttok-preflight mixture.json
-p fasttok_min_frames --min-frames 500``. Installed (``pip install examples/preflight_plugin``), the
``fasttok.preflight`` entry point in its ``pyproject.toml`` loads it automatically; ``-p no:min_frames``
disables it. In ``pyproject.toml``: ``[tool.fasttok.preflight] min_frames = 500``.
"""

from __future__ import annotations

from collections.abc import Iterator

from fasttok_plugin.preflight import Finding, OptionRegistry, PreflightContext, Rule, hookimpl

CODE = "MF001"


@hookimpl
def fasttok_add_options(options: OptionRegistry) -> None:
    """Declare ``--min-frames`` (``min_frames`` in pyproject.toml)."""
    options.add("min_frames", type=int, default=1000, help="minimum frames per norm head", metavar="N")


@hookimpl
def fasttok_preflight_rules() -> list[Rule]:
    """Describe MF001 for SARIF and docs."""
    return [
        Rule(
            CODE,
            "head-too-few-frames",
            "error",
            "A norm head holds fewer frames than --min-frames.",
            "Add data for that robot, merge it into another head with overrides, or lower --min-frames.",
        )
    ]


@hookimpl
def fasttok_preflight_checks(context: PreflightContext) -> Iterator[Finding]:
    """Yield one MF001 error per head with too few frames, located at the head's first entry."""
    heads = context.norm_heads
    if heads is None:  # the heads could not be built; the core already reports why (FT901)
        return
    minimum = int(context.options["min_frames"])
    for head, key in enumerate(heads.keys):
        frames = int(heads.counts[head])
        if frames >= minimum:
            continue
        members = heads.head_members[head]
        names = ", ".join(context.entries[i].name for i in members)
        yield context.finding(
            CODE,
            "error",
            f"head {key!r} has {frames} frames, fewer than --min-frames {minimum} (members: {names})",
            entry=members[0],
            hint="add data for this robot, share a head through robot_type/control_mode overrides, "
            "or lower --min-frames",
        )
