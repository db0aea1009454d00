"""The budgets check: positive weights too small to get a chunk, and heads too small to measure.

The budgets are the sampler's own (``sampling.largest_remainder`` over the usable weights) at the fit's
default ``total_chunks`` (100000): the preflight does not know a fit's ``--total-chunks``. The fit
reports the exact starved entries of its own run in the ``fit_report.json`` warnings.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

import numpy as np

from fasttok_plugin.preflight.checks._base import WARNING, _Check
from fasttok_plugin.preflight.context import PreflightContext
from fasttok_plugin.preflight.findings import Finding, Rule
from fasttok_plugin.sampling.budgets import largest_remainder, starved_entries

__all__ = ["Budgets"]

#: ``fit.DEFAULT_TOTAL_CHUNKS`` (pinned equal by a test; the preflight does not import the fit).
TOTAL_CHUNKS_DEFAULT: Final = 100_000
#: A head with fewer chunks may get no held-out chunk at the fit's default 10% held-out share
#: (``1 / fit.DEFAULT_HELDOUT_FRACTION``, pinned by a test): its token lengths are then not measured.
MIN_HEAD_CHUNKS: Final = 10


class Budgets(_Check):
    """Entries whose positive weight rounds to 0 chunks, and heads whose weights leave them a handful."""

    name = "budgets"
    rules = (
        Rule(
            "FT503",
            "zero-budget-entry",
            WARNING,
            "A positive weight rounds to 0 of total_chunks chunks: the entry contributes nothing.",
            "Raise the entry's weight (or the fit's --total-chunks), or remove the entry.",
        ),
        Rule(
            "FT504",
            "tiny-weight-head",
            WARNING,
            f"A norm head's weights give it fewer than {MIN_HEAD_CHUNKS} of total_chunks chunks: it is "
            "fit on almost nothing and may get no held-out chunk.",
            "Raise the weights of the head's entries (or the fit's --total-chunks).",
        ),
    )

    def check(self, context: PreflightContext) -> Iterator[Finding]:
        heads = context.norm_heads
        weights = tuple(context.config.weights)
        if heads is None or context.config.problems or len(weights) != len(context.entries):
            return  # invalid weights are FT003's; no heads, no budgets
        head_of = np.asarray(heads.dataset_to_head, dtype=np.int64)
        usable = np.where(head_of >= 0, np.asarray(weights, dtype=np.float64), 0.0)
        if not (usable > 0).any():
            return
        total = TOTAL_CHUNKS_DEFAULT
        budgets = largest_remainder(total, usable)
        for index in starved_entries(budgets, usable):
            yield context.finding(
                "FT503",
                WARNING,
                f"weight {usable[index]:g} is positive but gets 0 of the default total_chunks={total} "
                f"(share {usable[index] / usable.max() / (usable / usable.max()).sum():.3g})",
                entry=index,
                hint=f"raise its weight (or the fit's --total-chunks above {total}), or remove the entry",
            )
        for head, key in enumerate(heads.keys):
            members = np.flatnonzero(head_of == head)
            chunks = int(budgets[members].sum())
            if members.size and (usable[members] > 0).any() and chunks < MIN_HEAD_CHUNKS:
                names = ", ".join(context.entries[int(i)].name for i in members)
                yield context.finding(
                    "FT504",
                    WARNING,
                    f"head {key!r} ({names}) gets {chunks} of the default total_chunks={total}: fewer than "
                    f"{MIN_HEAD_CHUNKS}, so it is fit on almost nothing and may get no held-out chunk",
                    entry=int(members[0]),
                    hint="raise the weights of its entries (or the fit's --total-chunks)",
                )
