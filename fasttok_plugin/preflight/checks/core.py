"""The codes the preflight itself reports: an invalid mixture file, a crashed plugin, unbuildable heads."""

from __future__ import annotations

from fasttok_plugin._doclinks import doc_path
from fasttok_plugin.preflight.checks._base import ERROR
from fasttok_plugin.preflight.findings import Rule

__all__ = ["CORE_RULES"]

# Findings the manager itself reports (not tied to a check plugin, so they cannot be disabled).
CORE_RULES = (
    Rule(
        "FT001",
        "mixture-invalid",
        ERROR,
        "The mixture file is structurally invalid (wrong types, missing repo_id).",
        f"Fix the value at the pointer; see {doc_path('preflight.md')} for the mixture schema.",
    ),
    Rule(
        "FT900",
        "check-crashed",
        ERROR,
        "A check plugin raised an exception or yielded something that is not a Finding.",
        "Report it to the plugin's author; `-p no:NAME` disables the plugin meanwhile.",
    ),
    Rule(
        "FT901",
        "norm-heads-failed",
        ERROR,
        "The norm heads could not be built, so head-level checks did not run.",
        "Fix the error in the message; the other findings usually explain it.",
    ),
)
