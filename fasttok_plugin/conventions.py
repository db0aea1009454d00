"""Named normalization conventions (DESIGN §11): fit exactly as OpenTau, LeRobot and openpi tokenize.

A `Convention` fixes how a policy's framework turns raw actions into the values its FAST tokenizer sees:
the head grouping, the layout, the normalization mode, the *formula* (each framework's own arithmetic,
epsilon and zero-range rule) and the stats source. The fit, the datamodule, the callback, the preflight
and the inference-side `Unnormalize` all take the convention from this one object.

Formulas (x = raw action, lo/hi/mean/std = the stats of the chunk's head), each reproduced from the
framework's current source:

* ``fasttok`` (no convention: the package default, unchanged): ``(x-lo)/d*2-1`` with ``d = hi-lo`` and a
  zero range (``|d| < eps``) snapped to ``d = 1`` and offset 0 (``center``) or -1 (``legacy``);
  ``(x-mean)/std`` with ``std < eps`` snapped to 1.
* ``opentau`` (src/opentau/policies/normalize.py, ``Normalize.forward``): zero range snapped to 1, then
  ``(x-lo + 0.5*(d'-d)) / (d'+eps) * 2 - 1`` (the ``0.5*(d'-d)`` term only with ``zero_range_center``,
  config_version >= 1, eps 1e-6; config_version 0: eps 1e-8, legacy); MEAN_STD ``(x-mean)/(std'+eps)``
  with ``|std| < eps`` snapped to 1. QUANTILE is the same arithmetic on q01/q99, no clip.
* ``lerobot`` (src/lerobot/processor/normalize_processor.py, ``_NormalizationMixin._apply_transform``):
  MEAN_STD ``(x-mean)/(std+eps)``, inverse ``y*std+mean``; MIN_MAX ``2*(x-min)/d-1``; QUANTILES
  ``2.0*(x-q01)/d-1.0``; QUANTILE10 ``2.0*(x-q10)/d-1.0``; ``d == 0 -> eps``; eps 1e-8; no clip; float32.
* ``openpi`` (src/openpi/transforms.py, ``Normalize._normalize`` / ``_normalize_quantile``): z-score
  ``(x-mean)/(std+1e-6)``, quantile ``(x-q01)/(q99-q01+1e-6)*2.0-1.0``, no clip; numpy float64 stats.

LeRobot and openpi normalize at the native width and zero-pad afterwards (``pad_vector`` /
``PadStatesAndActions``), so under their formulas a dim beyond the head's native width is 0.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from fasttok_plugin.defaults import HEAD_GROUPINGS
from fasttok_plugin.errors import ConventionError

__all__ = [
    "CONVENTIONS",
    "FORMULAS",
    "LAYOUTS",
    "Convention",
    "convention_from_dict",
    "resolve_convention",
]

#: Each framework's arithmetic (see the module docstring) and the modes it has.
FORMULAS: dict[str, tuple[str, ...]] = {
    "fasttok": ("min_max", "mean_std", "quantile", "quantile10", "identity"),
    "opentau": ("min_max", "mean_std", "quantile", "identity"),
    "lerobot": ("min_max", "mean_std", "quantile", "quantile10", "identity"),
    "openpi": ("mean_std", "quantile", "identity"),
}
LAYOUTS = ("padded", "native")
_ZERO_RANGES = ("center", "legacy")
# The formulas whose zero-range rule is fixed by the framework (d == 0 -> eps, or + eps): x == lo -> -1.
_FIXED_ZERO_RANGE = ("lerobot", "openpi")


@dataclass(frozen=True, slots=True)
class Convention:
    """How a framework normalizes actions before its FAST tokenizer (DESIGN §11).

    Attributes:
        name: The registry name this convention started from (``opentau``, ``lerobot``, ``openpi``).
        head_grouping: ``robot_control``, ``global`` or ``dataset``.
        layout: ``padded`` (zero-pad to ``max_action_dim`` before normalizing) or ``native``.
        normalization: The mode (`NormMode` value) the framework's policy uses by default.
        formula: Whose arithmetic: ``fasttok``, ``opentau``, ``lerobot`` or ``openpi``.
        eps: The framework's epsilon (denominator term and/or zero-range threshold).
        zero_range: Value of a zero-range dim: ``center`` (0.0) or ``legacy`` (-1.0).
        stats_source: ``stored``, ``data`` or None (``data`` for quantile modes, else ``stored``).
        dtype: The dtype the framework computes in: ``float32`` or ``float64`` (openpi's numpy stats).
        config_version: OpenTau's ``config_version`` (selects eps and zero range); None elsewhere.
    """

    name: str
    head_grouping: str
    layout: str
    normalization: str
    formula: str
    eps: float
    zero_range: str
    stats_source: str | None = None
    dtype: str = "float32"
    config_version: int | None = None

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise ConventionError(
                f"invalid convention {self.name!r}:\n" + "\n".join(f"  - {p}" for p in problems)
            )

    def replace(self, **fields: Any) -> Convention:
        """Return a copy with ``fields`` changed (each validated; unknown fields are an error).

        ``config_version`` on an ``opentau`` formula also sets OpenTau's eps and zero range for that
        version unless they are given too.
        """
        unknown = sorted(set(fields) - set(_FIELD_NAMES))
        if unknown:
            raise ConventionError(
                f"unknown convention field(s) {', '.join(map(repr, unknown))}; the fields are "
                f"{', '.join(_FIELD_NAMES)}"
            )
        if fields.get("config_version") is not None and fields.get("formula", self.formula) == "opentau":
            version = fields["config_version"]
            if isinstance(version, int) and not isinstance(version, bool):
                fields = {**_opentau_version(version), **fields}
        return dataclasses.replace(self, **fields)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of every field (`convention_from_dict` reads it back)."""
        return {name: getattr(self, name) for name in _FIELD_NAMES}

    @property
    def source(self) -> str:
        """The stats source: ``stats_source``, else ``data`` for the quantile modes, else ``stored``."""
        if self.stats_source is not None:
            return self.stats_source
        return "data" if self.normalization in ("quantile", "quantile10") else "stored"


_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(Convention))


def _opentau_version(version: int) -> dict[str, Any]:
    # src/opentau/configs/policies.py: zero_range_centers_on_zero() is config_version >= 1 and
    # normalization_epsilon() is OPENPI_EPS (1e-6) at >= 1, else LEGACY_EPS (1e-8).
    return {"eps": 1e-6, "zero_range": "center"} if version >= 1 else {"eps": 1e-8, "zero_range": "legacy"}


def _problems(c: Convention) -> list[str]:
    problems = []
    if c.formula not in FORMULAS:
        problems.append(f"formula must be one of {', '.join(map(repr, FORMULAS))}, got {c.formula!r}")
    elif c.normalization not in FORMULAS[c.formula]:
        problems.append(
            f"normalization {c.normalization!r} does not exist in the {c.formula} formula; it has "
            f"{', '.join(map(repr, FORMULAS[c.formula]))}"
        )
    if c.head_grouping not in HEAD_GROUPINGS:
        problems.append(
            f"head_grouping must be one of {', '.join(map(repr, HEAD_GROUPINGS))}, got {c.head_grouping!r}"
        )
    if c.layout not in LAYOUTS:
        problems.append(f"layout must be 'padded' or 'native', got {c.layout!r}")
    if c.zero_range not in _ZERO_RANGES:
        problems.append(f"zero_range must be 'center' or 'legacy', got {c.zero_range!r}")
    elif c.formula in _FIXED_ZERO_RANGE and c.zero_range != "legacy":
        problems.append(
            f"the {c.formula} formula maps a zero-range dim to -1 (zero_range 'legacy'); 'center' needs "
            "formula 'fasttok' or 'opentau'"
        )
    if isinstance(c.eps, bool) or not isinstance(c.eps, (int, float)) or not (c.eps > 0):
        problems.append(f"eps must be a number > 0, got {c.eps!r}")
    if c.stats_source not in (None, "stored", "data"):
        problems.append(f"stats_source must be 'stored' or 'data' (or None), got {c.stats_source!r}")
    elif c.stats_source == "stored" and c.normalization in ("quantile", "quantile10"):
        problems.append(
            f"normalization {c.normalization!r} needs stats_source 'data': stored per-dataset quantiles "
            "cannot be pooled exactly"
        )
    if c.dtype not in ("float32", "float64"):
        problems.append(f"dtype must be 'float32' or 'float64', got {c.dtype!r}")
    version = c.config_version
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 0):
        problems.append(f"config_version must be an integer >= 0 (or None), got {version!r}")
    return problems


#: The named conventions. ``opentau`` is OpenTau at its CURRENT_CONFIG_VERSION (1,
#: src/opentau/configs/policies.py); ``lerobot`` is LeRobot's pi0_fast (configuration_pi0_fast.py maps ACTION
#: to MEAN_STD; NormalizerProcessorStep.eps is 1e-8); ``openpi`` is pi0-FAST (src/openpi/training/config.py:
#: use_quantile_norm = model_type != PI0).
CONVENTIONS: dict[str, Convention] = {
    "opentau": Convention(
        name="opentau",
        head_grouping="robot_control",
        layout="padded",
        normalization="min_max",
        formula="opentau",
        eps=1e-6,
        zero_range="center",
        config_version=1,
    ),
    "lerobot": Convention(
        name="lerobot",
        head_grouping="global",
        layout="native",
        normalization="mean_std",
        formula="lerobot",
        eps=1e-8,
        zero_range="legacy",
    ),
    "openpi": Convention(
        name="openpi",
        head_grouping="global",
        layout="padded",
        normalization="quantile",
        formula="openpi",
        eps=1e-6,
        zero_range="legacy",
        stats_source="data",
        dtype="float64",
    ),
}


def resolve_convention(name: str | Convention, **overrides: Any) -> Convention:
    """The named convention (or ``name`` itself when already one) with ``overrides`` applied field by field.

    Raises:
        ConventionError: An unknown name, an unknown field, or a value the convention cannot take.
    """
    if isinstance(name, Convention):
        base = name
    elif isinstance(name, str) and name.strip().lower() in CONVENTIONS:
        base = CONVENTIONS[name.strip().lower()]
    else:
        raise ConventionError(
            f"unknown convention {name!r}; expected one of {', '.join(map(repr, CONVENTIONS))} (or an "
            "object with 'name' and field overrides)"
        )
    return base.replace(**overrides) if overrides else base


def convention_from_dict(value: Any) -> Convention:
    """A convention from its JSON form: a name, or ``{"name": ..., <field>: <override>, ...}``.

    Raises:
        ConventionError: Not a name or an object with a string ``name``, or a bad field.
    """
    if isinstance(value, Convention):
        return value
    if isinstance(value, str):
        return resolve_convention(value)
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        fields = {k: v for k, v in value.items() if k != "name"}
        return resolve_convention(value["name"], **fields)
    raise ConventionError(
        f"a convention is a name ({', '.join(map(repr, CONVENTIONS))}) or an object with 'name' and field "
        f"overrides, got {value!r}"
    )
