"""The datasets check: roots that do not exist, unreadable metadata, unsupported versions, skipped entries."""

from __future__ import annotations

from collections.abc import Iterator

from fasttok_plugin.preflight.checks._base import ERROR, _Check, _first_line
from fasttok_plugin.preflight.context import PreflightContext
from fasttok_plugin.preflight.findings import Finding, Rule

__all__ = ["DatasetMetadata"]

_REASON_CODES = {"root_missing": "FT301", "unsupported_version": "FT303"}


class DatasetMetadata(_Check):
    """Dataset roots that do not exist, metadata that cannot be read, unsupported versions."""

    name = "datasets"
    rules = (
        Rule(
            "FT301",
            "root-missing",
            ERROR,
            "The dataset root does not exist (without root: not in $HF_LEROBOT_HOME/<repo_id> nor in "
            "LeRobot's hub snapshot cache; the message lists every place looked at).",
            'Fix "root" or "revision" in the entry, set HF_LEROBOT_HOME or HF_HOME, or download the dataset.',
        ),
        Rule(
            "FT302",
            "metadata-unreadable",
            ERROR,
            "The dataset's metadata (meta/info.json, episodes, action feature) is missing or invalid.",
            "Repair or re-download the dataset; the message names the file.",
        ),
        Rule(
            "FT303",
            "unsupported-version",
            ERROR,
            "The dataset's codebase_version is not v2.1 or v3.0.",
            "Convert the dataset with LeRobot's conversion script.",
        ),
        Rule(
            "FT304",
            "entry-skipped",
            ERROR,
            "The entry was left out of the norm heads for the stated reason.",
            "Fix the reason given in the message.",
        ),
    )

    def check(self, context: PreflightContext) -> Iterator[Finding]:
        explained: set[int] = set()
        for resolved in context.entries:
            error = resolved.error
            if error is None:
                if resolved.meta is not None and resolved.meta.stats_error is not None:
                    explained.add(resolved.index)  # reported by the stats check
                continue
            explained.add(resolved.index)
            reason = getattr(error, "reason", "")
            code = _REASON_CODES.get(reason, "FT302")
            yield context.finding(
                code,
                ERROR,
                _first_line(error),
                entry=resolved,
                field="root" if code == "FT301" else None,
                hint=getattr(error, "hint", "") or "",
            )
        heads = context.norm_heads
        if heads is None:
            return
        for record in heads.skipped_entries:
            if record.entry in explained:
                continue
            yield context.finding(
                "FT304",
                ERROR,
                f"left out of the norm heads: {record.reason}",
                entry=record.entry,
                hint="fix the reason above; skipped entries are never trained on",
            )
