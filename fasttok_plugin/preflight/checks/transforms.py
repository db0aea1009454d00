"""The transforms check: column selection and relative actions that do not fit a dataset, and stats sources
that cannot give the configured normalization (metadata only: ``info.json`` features, no frame is read)."""

from __future__ import annotations

from collections.abc import Iterator

from fasttok_plugin.preflight.checks._base import ERROR, _Check
from fasttok_plugin.preflight.context import PreflightContext, fit_transforms
from fasttok_plugin.preflight.findings import Finding, Rule
from fasttok_plugin.transforms import ActionTransform

__all__ = ["TransformChecks"]

_QUANTILE_MODES = ("quantile", "quantile10")


class TransformChecks(_Check):
    """Transforms against each dataset's features, and normalization modes against the stats source."""

    name = "transforms"
    rules = (
        Rule(
            "FT601",
            "state-column-missing",
            ERROR,
            "Relative actions need a state column the dataset's info.json does not have as a vector.",
            "Set state_key to the dataset's state column, or drop relative_dims for the entry.",
        ),
        Rule(
            "FT602",
            "state-too-few-dims",
            ERROR,
            "A relative dim has no state dim to subtract: the state column has fewer dims.",
            "List only dims below the state's width in relative_dims, or exclude the others.",
        ),
        Rule(
            "FT603",
            "relative-dim-out-of-range",
            ERROR,
            "relative_dims names a dim past the dataset's native action dims.",
            "List only native action dims (0 .. action dim - 1) in relative_dims.",
        ),
        Rule(
            "FT604",
            "selection-past-native-dim",
            ERROR,
            "action_index / encoded_dims selects a column past the dataset's native action dims.",
            "Select only native action columns, or give the entry its own action_index.",
        ),
        Rule(
            "FT605",
            "stored-stats-for-data-normalization",
            ERROR,
            "A quantile mode or a transform with stats_source 'stored': no stats.json can give those stats.",
            "Drop stats_source (the default is 'data' there) or set it to 'data'.",
        ),
    )

    def check(self, context: PreflightContext) -> Iterator[Finding]:
        transforms = fit_transforms(context.config, context.transform)
        for position, (resolved, transform) in enumerate(zip(context.entries, transforms, strict=True)):
            meta = resolved.meta
            if transform is None or transform.is_identity or meta is None or resolved.error is not None:
                continue
            yield from _entry_findings(context, position, transform, meta.features, int(meta.action_dim))
        yield from _source_findings(context, transforms)


def _pointer(context: PreflightContext, position: int, key: str) -> str | None:
    """The key in the entry when it writes it, else at the top level when written there, else the entry."""
    entry_pointer = context.entries[position].entry.pointer
    for candidate in (f"{entry_pointer}/{key}", f"{context.config.prefix}/{key}"):
        if context.has_pointer(candidate):
            return candidate
    return None


def _selection_key(context: PreflightContext, position: int) -> str:
    return "encoded_dims" if _pointer(context, position, "encoded_dims") else "action_index"


def _entry_findings(
    context: PreflightContext, position: int, transform: ActionTransform, features: object, action_dim: int
) -> Iterator[Finding]:
    feature = features.get(transform.state_key) if isinstance(features, dict) else None
    shape = feature.get("shape") if isinstance(feature, dict) else None
    state_dim = (
        int(shape[0])
        if isinstance(shape, list) and len(shape) == 1 and isinstance(shape[0], int) and shape[0] > 0
        else None
    )
    codes = {"state_key": "FT601", "state_dims": "FT602", "relative_dims": "FT603", "action_index": "FT604"}
    for kind, message in transform.problems(action_dim, state_dim):
        code = codes[kind]
        key = {"state_dims": "relative_dims", "action_index": _selection_key(context, position)}.get(
            kind, kind
        )
        yield context.finding(
            code,
            ERROR,
            f"{kind if kind == 'state_key' else key} {message}",
            entry=position,
            # The default state_key is written nowhere: point at what asks for the state.
            pointer=_pointer(context, position, key) or _pointer(context, position, "relative_dims"),
            hint=_HINTS[code],
        )


_HINTS = {
    "FT601": "set state_key to the dataset's state column (info.json features), or drop relative_dims",
    "FT602": "list only dims the state has in relative_dims, or add the others to relative_exclude",
    "FT603": "list only native action dims in relative_dims (or give the entry its own relative_dims)",
    "FT604": "select only native action columns (or give the entry its own action_index)",
}


def _source_findings(
    context: PreflightContext, transforms: tuple[ActionTransform | None, ...]
) -> Iterator[Finding]:
    if context.stats_source != "stored":
        return
    if context.normalization in _QUANTILE_MODES:
        lacking = [e.name for e in context.entries if e.meta is not None and e.meta.stats is not None]
        yield context.finding(
            "FT605",
            ERROR,
            f"normalization {context.normalization!r} with stats_source 'stored': the stored stats of "
            f"{len(lacking)} dataset(s) hold no pooled quantiles (per-dataset q01/q99 cannot be pooled "
            "exactly into a head's)",
            pointer=context.config.prefix,
            hint="drop stats_source (quantile modes default to 'data') or set it to 'data'",
        )
    if any(t is not None and not t.is_identity for t in transforms):
        yield context.finding(
            "FT605",
            ERROR,
            "the actions are transformed (column selection or relative actions) but stats_source is "
            "'stored': no stats.json holds the stats of transformed actions",
            pointer=context.config.prefix,
            hint="drop stats_source (transforms default to 'data') or set it to 'data'",
        )
