"""The action-dims check: dims larger than ``max_action_dim``, or different within one head."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from fasttok_plugin.preflight.checks._base import ERROR, _Check
from fasttok_plugin.preflight.context import PreflightContext
from fasttok_plugin.preflight.findings import Finding, Rule

__all__ = ["ActionDims"]


class ActionDims(_Check):
    """Native action dims: larger than ``max_action_dim``, or different within one head."""

    name = "action_dims"
    rules = (
        Rule(
            "FT201",
            "action-dim-overflow",
            ERROR,
            "The dataset's native action dim exceeds max_action_dim (training would crash or drop dims; "
            "also with layout native, whose chunks keep their native width up to max_action_dim).",
            "Raise --max-action-dim (or max_action_dim in the mixture), or drop the entry.",
        ),
        Rule(
            "FT105",
            "incompatible-dims",
            ERROR,
            "Entries sharing a norm head have different native action dims.",
            "Give one of the entries a different robot_type/control_mode override, or fix its action shape.",
        ),
    )

    def check(self, context: PreflightContext) -> Iterator[Finding]:
        heads = context.norm_heads
        if heads is None:
            return
        for record in heads.dim_overflows:
            yield context.finding(
                "FT201",
                ERROR,
                f"native action dim {record.dim} exceeds max_action_dim {record.max_action_dim} "
                "(the policy's widest action, padded or native layout)",
                entry=record.entry,
                hint=f"raise --max-action-dim to at least {record.dim}, or remove the entry",
            )
        for record in heads.incompatible_dims:
            dims = [(int(i), int(d)) for i, d in record.dims]
            if not dims:
                continue
            # The head's usual dim is the most common one; the entries with another dim are the odd ones out.
            usual = Counter(d for _, d in dims).most_common(1)[0][0]  # stable: ties keep first-seen order
            usual_index = next(i for i, d in dims if d == usual)
            listing = ", ".join(f"{context.entries[i].name}: {d}" for i, d in dims)
            for index, dim in dims:
                if dim == usual:
                    continue
                yield context.finding(
                    "FT105",
                    ERROR,
                    f"action dim {dim} differs from {usual} of {context.entries[usual_index].name!r} in "
                    f"head {record.key!r} ({listing})",
                    entry=index,
                    field="robot_type",
                    hint="entries sharing a head need equal action dims: give this entry its own "
                    "robot_type/control_mode override, or fix its action feature shape",
                )
