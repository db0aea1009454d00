"""What controls a fit: `FitSettings`, its validation, and the defaults of the sampling and the split."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from fasttok_plugin._validate import MAX_ACTION_DIM, MAX_SEED, is_positive_int
from fasttok_plugin.codec import MAX_TRAINER_INT, MAX_VOCAB_SIZE
from fasttok_plugin.codec.order import DEFAULT_ORDER, ORDERS
from fasttok_plugin.codec.rounding import DEFAULT_ROUNDING, ROUNDINGS
from fasttok_plugin.conventions import Convention, convention_from_dict
from fasttok_plugin.defaults import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_HEAD_GROUPING,
    DEFAULT_MAX_ACTION_DIM,
    resolve_setting,
)
from fasttok_plugin.errors import ConventionError, FitError
from fasttok_plugin.heads.keys import check_head_grouping
from fasttok_plugin.transforms import ActionTransform

if TYPE_CHECKING:  # pragma: no cover - typing only
    from fasttok_plugin.mixture import MixtureConfig

__all__ = [
    "DEFAULT_HELDOUT_FRACTION",
    "DEFAULT_MAX_ACTION_TOKENS",
    "DEFAULT_MAX_FIT_CHUNKS",
    "DEFAULT_MAX_HELDOUT_CHUNKS_PER_HEAD",
    "DEFAULT_TOTAL_CHUNKS",
    "NORMALIZATIONS",
    "QUANTILE_MODES",
    "FitSettings",
]

#: The normalization modes (`NormMode` values) and those that need stats from the data.
NORMALIZATIONS = ("min_max", "mean_std", "quantile", "quantile10", "identity")
QUANTILE_MODES = ("quantile", "quantile10")
#: Chunks sampled over the mixture by default.
DEFAULT_TOTAL_CHUNKS = 100_000
#: Fit-corpus cap; chosen with benchmarks/bench_fit_scale.py (see docs/fitting.md for the numbers).
DEFAULT_MAX_FIT_CHUNKS = 30_000
DEFAULT_HELDOUT_FRACTION = 0.1
#: Held-out chunks evaluated per head; p99 on this many matches p99 on all (docs/fitting.md has the numbers).
DEFAULT_MAX_HELDOUT_CHUNKS_PER_HEAD = 4000
#: The policy's token budget (LeRobot pi0_fast ``max_action_tokens``).
DEFAULT_MAX_ACTION_TOKENS = 256

# (field, may be None, smallest allowed value, largest or None) of every integer setting. The BPE
# trainer's bounds are the codec's (one rule): beyond them the trainer aborts in Rust.
_TRAINER_FIELDS = frozenset({"vocab_size", "min_frequency", "max_token_length"})
_INTEGER_FIELDS: tuple[tuple[str, bool, int, int | None], ...] = (
    ("chunk_size", True, 1, None),
    ("max_action_dim", True, 1, MAX_ACTION_DIM),
    ("vocab_size", False, 2, MAX_VOCAB_SIZE),
    ("min_frequency", False, 0, MAX_TRAINER_INT),
    ("max_token_length", True, 1, MAX_TRAINER_INT),
    ("total_chunks", False, 2, None),
    ("max_fit_chunks", True, 1, None),
    ("max_heldout_chunks_per_head", True, 1, None),
    ("max_action_tokens", True, 1, None),
    ("seed", False, 0, MAX_SEED),
    ("workers", False, 0, None),
)


@dataclass(frozen=True)
class FitSettings:
    """Everything that controls a fit.

    Attributes:
        chunk_size: Steps per chunk ``T`` (None: the mixture's ``chunk_size``, else 50).
        max_action_dim: Padded action width ``D`` (None: the mixture's ``max_action_dim``, else 32).
        vocab_size: BPE vocabulary size.
        scale: DCT coefficient multiplier before rounding.
        min_frequency: Minimum pair count of a BPE merge.
        max_token_length: Longest BPE merge in characters (the trainer's cap, not the policy budget).
        pipeline: Codec pipeline, ``"char"`` or ``"reference"``.
        total_chunks: Chunks sampled over the mixture (fit + held-out + unused).
        max_fit_chunks: Cap of the fit corpus (stratified subset); None fits every non-held-out chunk.
        heldout_fraction: Share of each head's chunks held out for the report (0 < f < 1), as whole
            episodes (see `fasttok_plugin.fit.plan`).
        max_heldout_chunks_per_head: Held-out chunks evaluated per head at most (a stratified subset of
            the held-out side, the first of each dataset in draw order); None evaluates them all. Changes
            the report, never the tokenizer.
        max_action_tokens: The policy's token budget the truncation rate is measured against (None: not
            measured).
        seed: Sampling / split seed.
        workers: Sampler worker processes (0: in-process); never changes the result. With a
            `FitSource`, a positive value overrides its sampler's ``workers`` and 0 keeps them.
        normalization: ``"min_max"``, ``"mean_std"`` or ``"identity"`` (a `NormMode` is stored as its value).
        zero_range: Zero-range dims under min_max: ``"center"`` (0.0) or ``"legacy"`` (-1.0).
        eps: Range / std threshold of `Normalize`.
        on_dataset_error: ``"raise"`` (default) stops when a dataset's frames cannot be read;
            ``"skip"`` fits without it (the report lists the error).
        head_grouping: How entries are grouped into norm heads: ``"robot_control"``, ``"global"`` or
            ``"dataset"`` (None: the mixture's ``head_grouping``, else ``"robot_control"``). With a
            `FitSource` the heads are already built: a given value must match theirs.
        stats_source: Where the norm stats come from: ``"stored"`` (the datasets' stats.json, pooled) or
            ``"data"`` (computed from the frames each head trains on, `compute_head_stats`). None:
            ``"data"`` for the quantile modes, else ``"stored"``. ``"stored"`` with a quantile mode is
            refused: stored quantiles cannot be pooled exactly over datasets. With a `FitSource` the heads
            are already built: the source must match theirs. Transforms need ``"data"`` (their default).
        transform: An `ActionTransform` (column selection, relative actions) for every entry, replacing
            the mixture's transform keys (None: the mixture's, per entry; else none). With a `FitSource`
            the sampler already applies its transforms: a given value must match them.
        order: Flatten order of the DCT coefficients: ``"time"`` (the reference's, coarse motion of every
            dim first), ``"dims"`` (each dim's coefficients contiguous: shortest) or ``"dc_dims"`` (every
            dim's DC first, then dim-major); the others need ``pipeline="char"``. docs/fitting.md has the
            measured trade-off.
        rounding: How encode rounds the scaled coefficients: ``"nearest"`` (the reference's) or
            ``"token_aware"`` (rounds some values the other way when that shortens the chunk's sequence:
            fewer tokens, a slightly larger error; the BPE is fit the same); the latter needs
            ``pipeline="char"``. docs/fitting.md has the measured trade-off.
        layout: ``"padded"`` (chunks zero-padded to ``max_action_dim``, the reference's layout) or
            ``"native"`` (each chunk keeps its entry's native width: one tokenizer over mixed widths, as
            LeRobot ``pi0_fast`` and openpi tokenize; the report measures every head at that width). A
            mixture's ``layout`` key applies while this is the default ``"padded"``.
        convention: A named convention (``"opentau"``, ``"lerobot"``, ``"openpi"``), a `Convention`, or
            ``{"name": ..., <field>: <override>}`` (None: the mixture's ``convention``, else the package
            default). `resolved` fills head grouping, layout, normalization, zero range, eps and stats
            source from it; a field given here (non-default) or in the mixture overrides the convention's.
            In the fingerprint only when set.

    Raises:
        FitError: Listing every invalid setting.
    """

    chunk_size: int | None = None
    max_action_dim: int | None = None
    vocab_size: int = 1024
    scale: float = 10.0
    min_frequency: int = 2
    max_token_length: int | None = 10000
    pipeline: str = "char"
    total_chunks: int = DEFAULT_TOTAL_CHUNKS
    max_fit_chunks: int | None = DEFAULT_MAX_FIT_CHUNKS
    heldout_fraction: float = DEFAULT_HELDOUT_FRACTION
    max_heldout_chunks_per_head: int | None = DEFAULT_MAX_HELDOUT_CHUNKS_PER_HEAD
    max_action_tokens: int | None = DEFAULT_MAX_ACTION_TOKENS
    seed: int = 0
    workers: int = 0
    normalization: str = "min_max"
    zero_range: Literal["center", "legacy"] = "center"
    eps: float = 1e-6
    on_dataset_error: Literal["raise", "skip"] = "raise"
    head_grouping: str | None = None
    stats_source: str | None = None
    transform: ActionTransform | None = None
    order: str = DEFAULT_ORDER
    rounding: str = DEFAULT_ROUNDING
    layout: str = "padded"
    convention: str | Convention | None = None

    def __post_init__(self) -> None:
        mode = getattr(self.normalization, "value", self.normalization)
        if isinstance(mode, str) and type(self.normalization) is not str:
            # A NormMode member becomes its plain value: str(NormMode.MIN_MAX) is "NormMode.MIN_MAX",
            # which must never reach the fingerprint or the sidecar.
            object.__setattr__(self, "normalization", mode)
        problems = _integer_problems(self) + _choice_problems(self)
        if problems:
            raise FitError("invalid fit settings:\n" + "\n".join(f"  - {p}" for p in problems))

    def resolved(self, config: MixtureConfig | None) -> FitSettings:
        """Return a copy with ``chunk_size`` / ``max_action_dim`` / ``head_grouping`` filled from the mixture,
        else defaults."""
        chunk = resolve_setting(
            self.chunk_size, config.chunk_size if config is not None else None, DEFAULT_CHUNK_SIZE
        )
        width = resolve_setting(
            self.max_action_dim,
            config.max_action_dim if config is not None else None,
            DEFAULT_MAX_ACTION_DIM,
        )
        grouping = resolve_setting(
            self.head_grouping,
            config.head_grouping if config is not None else None,
            DEFAULT_HEAD_GROUPING,
        )
        transformed = self.transforms_active(config)
        if transformed and self.stats_source == "stored":
            raise FitError(
                "invalid fit settings:\n  - the mixture transforms the actions (action_index/encoded_dims "
                "or relative_dims) but stats_source is 'stored': no stats.json holds the stats of "
                "transformed actions; drop stats_source or set it to 'data'"
            )
        source = "data" if transformed and self.stats_source is None else self.source
        named = resolve_setting(self.convention, getattr(config, "convention", None), None)
        if named is not None:
            settings = dataclasses.replace(self, chunk_size=int(chunk), max_action_dim=int(width))
            out = settings.with_convention(convention_from_dict(named), config)
            # Transformed actions have no stored stats: the convention's stored default becomes data.
            if transformed and out.stats_source == "stored" and self.stats_source is None:
                out = dataclasses.replace(out, stats_source="data")
            return out
        # The field's default is "padded" (not None), so a mixture's layout applies over the default.
        layout = self.layout if self.layout != "padded" or config is None else (config.layout or "padded")
        return dataclasses.replace(
            self,
            chunk_size=int(chunk),
            max_action_dim=int(width),
            head_grouping=str(grouping),
            stats_source=source,
            layout=str(layout),
        )

    def transforms_active(self, config: MixtureConfig | None) -> bool:
        """Some entry's actions are transformed (``transform``, else the mixture's, per entry)."""
        if config is None:
            return self.transform is not None and not self.transform.is_identity
        return any(t is not None and not t.is_identity for t in config.entry_transforms(self.transform))

    def with_convention(self, base: Convention | str, config: MixtureConfig | None = None) -> FitSettings:
        """These settings under ``base``: fields left at their defaults take the convention's values.

        A non-default field here, or the mixture's ``head_grouping``, overrides the convention's field.

        Raises:
            FitError: An override the convention cannot take (e.g. a mode its formula lacks).
        """
        base = convention_from_dict(base)
        defaults = FitSettings()
        overrides: dict[str, Any] = {}
        for name in ("normalization", "zero_range", "eps", "layout", "stats_source"):
            if getattr(self, name) != getattr(defaults, name):
                overrides[name] = getattr(self, name)
        grouping = resolve_setting(
            self.head_grouping, config.head_grouping if config is not None else None, None
        )
        if grouping is not None:
            overrides["head_grouping"] = grouping
        if "stats_source" not in overrides and base.stats_source is None and self.transforms_active(config):
            overrides["stats_source"] = "data"  # transformed actions have no stored stats (as the datamodule)
        if self.layout == defaults.layout and config is not None and config.layout is not None:
            overrides["layout"] = config.layout  # the mixture's layout, as for the grouping
        try:
            convention = base.replace(**overrides) if overrides else base
        except ConventionError as exc:
            raise FitError(f"the settings do not fit convention {base.name!r}: {exc}") from None
        return dataclasses.replace(
            self,
            head_grouping=convention.head_grouping,
            normalization=convention.normalization,
            zero_range=convention.zero_range,  # type: ignore[arg-type]
            eps=float(convention.eps),
            layout=convention.layout,
            stats_source=convention.source,
            convention=convention,
        )

    @property
    def formula(self) -> str:
        """Whose normalization arithmetic: the convention's ``formula``, else ``"fasttok"``."""
        if self.convention is None:
            return "fasttok"
        return convention_from_dict(self.convention).formula

    @property
    def source(self) -> str:
        """The stats source: ``stats_source``, else ``"data"`` for a quantile mode or a transform, else
        ``"stored"``."""
        if self.stats_source is not None:
            return str(self.stats_source)
        if self.transform is not None and not self.transform.is_identity:
            return "data"
        return "data" if self.normalization in QUANTILE_MODES else "stored"

    def codec_arguments(self) -> dict[str, Any]:
        """The `FastTokenizer.fit` arguments these settings fix (layout and widths come with the corpus)."""
        return {
            "vocab_size": self.vocab_size,
            "scale": float(self.scale),
            "min_frequency": self.min_frequency,
            "max_token_length": self.max_token_length,
            "pipeline": self.pipeline,
            "order": self.order,
            "rounding": self.rounding,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of every field (``transform`` only when set, as its settings)."""
        out = dataclasses.asdict(self)
        transform = out.pop("transform")
        if transform is not None:
            out["transform"] = {k: list(v) if isinstance(v, tuple) else v for k, v in transform.items()}
        return out


def _is_int_at_least(value: Any, minimum: int) -> bool:
    # The package's one notion of an integer (numpy integers count, bool does not), from `minimum` up.
    if minimum <= 0 and isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value == 0:
        return True
    return is_positive_int(value) and int(value) >= minimum


# Upper bounds: beyond them a value is a typo that would allocate gigabytes or overflow a 64-bit hash.


def _integer_problems(settings: FitSettings) -> list[str]:
    problems = []
    for name, optional, minimum, maximum in _INTEGER_FIELDS:
        value = getattr(settings, name)
        if optional and value is None:
            continue
        if not _is_int_at_least(value, minimum):
            problems.append(f"{name} must be an integer >= {minimum}, got {value!r}")
        elif maximum is not None and int(value) > maximum:
            why = " (the BPE trainer's limit)" if name in _TRAINER_FIELDS else ""
            problems.append(f"{name} must be at most {maximum}{why}, got {value!r}")
    return problems


def _choice_problems(settings: FitSettings) -> list[str]:
    problems: list[str] = []
    scale, fraction, eps = settings.scale, settings.heldout_fraction, settings.eps
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        problems.append(f"scale must be a positive number, got {scale!r}")
    if not (
        isinstance(fraction, (int, float)) and not isinstance(fraction, bool) and 0.0 < float(fraction) < 1.0
    ):
        problems.append(f"heldout_fraction must be in (0, 1), got {fraction!r}")
    if settings.pipeline not in ("char", "reference"):
        problems.append(f"pipeline must be 'char' or 'reference', got {settings.pipeline!r}")
    if settings.order not in ORDERS:
        problems.append(f"order must be one of {', '.join(map(repr, ORDERS))}, got {settings.order!r}")
    elif settings.order != DEFAULT_ORDER and settings.pipeline == "reference":
        problems.append(
            f"order {settings.order!r} needs pipeline 'char': the reference pipeline is the reference FAST "
            "tokenizer exactly, which flattens time-major ('time')"
        )
    if settings.rounding not in ROUNDINGS:
        problems.append(
            f"rounding must be one of {', '.join(map(repr, ROUNDINGS))}, got {settings.rounding!r:.60}"
        )
    elif settings.rounding != DEFAULT_ROUNDING and settings.pipeline == "reference":
        problems.append(
            f"rounding {settings.rounding!r} needs pipeline 'char': the reference pipeline is the reference "
            "FAST tokenizer exactly, which rounds to nearest ('nearest')"
        )
    if str(settings.normalization) not in NORMALIZATIONS:
        problems.append(
            f"normalization must be one of {', '.join(map(repr, NORMALIZATIONS))}, got "
            f"{settings.normalization!r}"
        )
    if settings.stats_source not in (None, "stored", "data"):
        problems.append(f"stats_source must be 'stored' or 'data' (or None), got {settings.stats_source!r}")
    elif settings.stats_source == "stored" and settings.normalization in QUANTILE_MODES:
        problems.append(
            f"normalization {settings.normalization!r} needs stats_source 'data' (the default for it), not "
            "'stored': stored per-dataset quantiles cannot be pooled exactly into a head's quantiles; "
            "drop stats_source or set it to 'data'"
        )
    transform = settings.transform
    if transform is not None and not isinstance(transform, ActionTransform):
        problems.append(f"transform must be an ActionTransform or None, got {transform!r}")
    elif transform is not None and not transform.is_identity and settings.stats_source == "stored":
        problems.append(
            f"transform {transform.describe()!r} needs stats_source 'data' (its default), not 'stored': no "
            "stats.json holds the stats of transformed actions; drop stats_source or set it to 'data'"
        )
    if settings.layout not in ("padded", "native"):
        problems.append(f"layout must be 'padded' or 'native', got {settings.layout!r}")
    if settings.zero_range not in ("center", "legacy"):
        problems.append(f"zero_range must be 'center' or 'legacy', got {settings.zero_range!r}")
    if not (isinstance(eps, (int, float)) and eps > 0):
        problems.append(f"eps must be > 0, got {eps!r}")
    if settings.head_grouping is not None:
        try:
            check_head_grouping(settings.head_grouping)
        except ValueError as exc:
            problems.append(f"{exc} (or None: the mixture's, else robot_control)")
    if settings.layout not in ("padded", "native"):
        problems.append(f"layout must be 'padded' or 'native', got {settings.layout!r}")
    if settings.convention is not None:
        try:
            convention_from_dict(settings.convention)
        except ConventionError as exc:
            problems.append(str(exc))
    if settings.on_dataset_error not in ("raise", "skip"):
        problems.append(f"on_dataset_error must be 'raise' or 'skip', got {settings.on_dataset_error!r}")
    return problems
