"""Composite indices: risk and resilience per feature, explained, with their uncertainty.

A pure library module: indicator values in, an :class:`IndexResult` out (index columns of a
grid, the ``explanations``, ``peer_groups`` and ``priority_areas`` layers, the NULL reasons and
a manifest section). The procedure follows the OECD/JRC handbook on composite indicators
(README, "Indices"):

1. Selection: indicators with direction ``risk`` enter ``risk_index``, ``resilience`` ones
   ``resilience_index``; ``context`` never enters. Components of a composite indicator
   (``audit_lighting``... of ``audit_score``) stay out unless the city includes them, so that
   nothing is counted twice. An indicator without a value anywhere on the grid, or with a
   single value, is left out with its reason.
2. Imputation: none. A feature's index is computed from the indicators it has values of (the
   weights renormalised over them); with fewer than ``min_inputs`` it is NULL with the reason.
3. Normalisation over the grid's features: ``rank`` (default), ``minmax`` or ``zscore``, each
   onto 0-1, higher meaning more of what the index measures (within one index every indicator
   shares its direction, so no inversion is needed).
4. Weights: equal within a dimension unless configured; dimensions weigh equally.
5. Aggregation: per dimension a sub-index, then the index over the dimensions, arithmetic
   (default) or geometric; both on 0-100.
6. Uncertainty and sensitivity: a seeded Monte Carlo over normalisation, aggregation, weights
   (Dirichlet around the configured ones) and leaving one indicator out.

References
----------
OECD/JRC (2008), *Handbook on Constructing Composite Indicators: Methodology and User Guide*,
OECD Publishing, Paris.

"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, ValidationError, model_validator
from scipy import stats

from geo_usm._model import StrictInput, format_validation_errors
from geo_usm._toml import read_toml
from geo_usm.catalog import Column
from geo_usm.errors import LayerDefinitionError
from geo_usm.indicators import IndicatorSpec
from geo_usm.schema import builtin_layers_dir

Normalisation = Literal["minmax", "zscore", "rank"]
Aggregation = Literal["arithmetic", "geometric"]
Approach = Literal["situational", "social", "law_enforcement"]

#: The two indices, in output order; each gathers the indicators of its direction.
INDICES: tuple[str, ...] = ("risk", "resilience")
NORMALISATIONS: tuple[str, ...] = ("minmax", "zscore", "rank")
AGGREGATIONS: tuple[str, ...] = ("arithmetic", "geometric")
#: z-scores are clipped at +-Z_CLIP and mapped linearly onto 0-1.
Z_CLIP = 3.0
#: The "top fifth" of a draw: features at or above its 80th percentile.
TOP_SHARE = 0.2
#: Shares of draws separating a robust position from one that depends on the choices.
ROBUST_SHARE = 0.8
#: k-means restarts per k, and the largest sample behind a silhouette score.
KMEANS_INIT = 4
SILHOUETTE_SAMPLE = 2000
#: Default seed of the Monte Carlo and of the clustering.
DEFAULT_SEED = 20240611

PathInput = Annotated[Path, Field(strict=False)]
PositiveWeight = Annotated[float, Field(ge=0)]


# ---------------------------------------------------------------- configuration


class PeerGroupsConfig(StrictInput):
    """The ``[indices.peer_groups]`` table: PCA and clustering of features into peer groups."""

    k: int | None = Field(
        default=None, ge=2, description="number of groups; chosen by silhouette when absent"
    )
    k_range: list[int] = Field(
        default_factory=lambda: [2, 6],
        description="smallest and largest number of groups tried when k is absent",
    )
    indicators: list[str] | None = Field(
        default=None,
        description="indicators clustered; default: those entering the indices that have a "
        "value for at least min_coverage of the features",
    )
    min_coverage: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="least share of features with a value for a default indicator to be used",
    )
    transform: Literal["clipped_zscore", "zscore", "normal_scores"] = Field(
        default="clipped_zscore",
        description="how indicators are standardised before the PCA: clipped_zscore (z-scores "
        "clipped at +-3 and standardised again, so a single outlier does not form a group of "
        "its own), zscore, or normal_scores (normal quantiles of the ranks; removes gaps "
        "between groups as well as outliers)",
    )
    variance: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="share of the variance kept by the principal components clustered",
    )

    @model_validator(mode="after")
    def _check(self) -> PeerGroupsConfig:
        lo_hi = self.k_range
        if len(lo_hi) != 2 or not 2 <= lo_hi[0] <= lo_hi[1]:
            raise ValueError("k_range must be [smallest, largest] with 2 <= smallest <= largest")
        return self


class IndicesConfig(StrictInput):
    """The ``[indices]`` table of a city file: how the composite indices are built."""

    include: list[str] | None = Field(
        default=None,
        description="indicators entering the indices (replaces the default selection: every "
        "risk and resilience indicator except components of a composite)",
    )
    exclude: list[str] = Field(
        default_factory=list, description="indicators kept out of the indices"
    )
    weights: dict[str, PositiveWeight] = Field(
        default_factory=dict,
        description="weight of an indicator within its dimension (default: the indicator's "
        "weight, 1); 0 keeps it out",
    )
    dimension_weights: dict[str, PositiveWeight] = Field(
        default_factory=dict,
        description="weight of a dimension in the overall index (default 1 each); 0 keeps "
        "the dimension out of the overall index",
    )
    normalisation: Normalisation = Field(
        default="rank", description="minmax, zscore (clipped at +-3) or rank; each onto 0-1"
    )
    aggregation: Aggregation = Field(
        default="arithmetic", description="arithmetic or geometric (on 1 + 99 x) weighted mean"
    )
    min_inputs: float = Field(
        default=0.5,
        gt=0,
        description="least inputs behind an index value: a share (below 1) or a count (1 or "
        "more) of the index's indicators that have values on the grid",
    )
    min_indicators: int = Field(
        default=2,
        ge=1,
        description="least indicators with values on the grid for an overall index to exist",
    )
    draws: int = Field(
        default=500, ge=0, le=100_000, description="Monte Carlo draws (0: no uncertainty)"
    )
    seed: int = Field(
        default=DEFAULT_SEED, ge=0, description="seed of the Monte Carlo and the clustering"
    )
    concentration: float = Field(
        default=20.0,
        gt=0,
        description="Dirichlet concentration of the drawn weights around the configured ones "
        "(higher: closer)",
    )
    peer_groups: PeerGroupsConfig = Field(
        default_factory=PeerGroupsConfig, description="peer groups (PCA and clustering)"
    )
    priorities: PathInput | None = Field(
        default=None,
        description="rules file of the priority areas, replacing layers/indices/priorities.toml",
    )


# ---------------------------------------------------------------- priority rules (data)


class Condition(StrictInput):
    """One condition of a rule: a column compared with a threshold.

    The threshold is a quantile of the column over the grid's features with a value
    (``quantile``), a fixed number (``value``) or a set of labels (``values``, with ``in``).
    """

    column: str = Field(description="indicator id, index column or an extra column (gi_class)")
    op: Literal["<", "<=", ">", ">=", "in"]
    quantile: float | None = Field(default=None, ge=0, le=1)
    value: float | None = None
    values: list[str] | None = None

    @model_validator(mode="after")
    def _check(self) -> Condition:
        given = [k for k in ("quantile", "value", "values") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of quantile, value or values")
        if (self.op == "in") != (given[0] == "values"):
            raise ValueError("op 'in' goes with values, and values with op 'in'")
        return self


_PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_]*)(?:\.(median|threshold))?\}")


class PriorityRule(StrictInput):
    """One reason for attention, with the prevention approach it points to."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str
    approach: Approach
    points_to: str = Field(description="what the approach could look like here, for people")
    reason: str = Field(
        description="template: {column} is the feature's value, {column.median} the city "
        "median, {column.threshold} the rule's threshold"
    )
    when: list[Condition] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> PriorityRule:
        columns = {c.column for c in self.when}
        unknown = sorted({m.group(1) for m in _PLACEHOLDER.finditer(self.reason)} - columns)
        if unknown:
            raise ValueError(f"reason names column(s) {unknown} that no condition reads")
        stray = _PLACEHOLDER.sub("", self.reason)
        if "{" in stray or "}" in stray:
            raise ValueError("reason has a placeholder that is not {column} or {column.median}")
        return self


class PriorityRules(StrictInput):
    """A rules file: the priority rules and the least data behind a relative threshold."""

    min_features: int = Field(
        default=5, ge=1, description="least features with a value for a quantile threshold"
    )
    rules: list[PriorityRule] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> PriorityRules:
        ids = [r.id for r in self.rules]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"rule id(s) {dup} declared twice")
        return self


def default_rules_path() -> Path:
    """Return the path of the built-in rules file, ``layers/indices/priorities.toml``."""
    return builtin_layers_dir() / "indices" / "priorities.toml"


@cache
def _read_rules(path: Path) -> PriorityRules:
    data, _ = read_toml(path, LayerDefinitionError, "priority rules file")
    try:
        return PriorityRules.model_validate(data)
    except ValidationError as exc:
        raise LayerDefinitionError("; ".join(format_validation_errors(exc)), path=path) from None


def load_rules(path: str | Path | None = None) -> PriorityRules:
    """Read and validate a priority rules file (default: ``layers/indices/priorities.toml``).

    Raises
    ------
    LayerDefinitionError
        If the file cannot be read, is not TOML or does not follow :class:`PriorityRules`.

    """
    return _read_rules(Path(path).resolve() if path is not None else default_rules_path())


# ---------------------------------------------------------------- selection


def components(specs: Mapping[str, IndicatorSpec]) -> dict[str, str]:
    """Map each component of a composite indicator to the composite.

    A component is a ``mean`` indicator of the same layer kind whose fields are a strict subset
    of another ``mean`` indicator's fields (``audit_lighting`` of ``audit_score``).
    """
    means = {
        i: (s.kind, frozenset(s.params.get("fields", [])))  # type: ignore[arg-type]
        for i, s in specs.items()
        if s.method == "mean"
    }
    out = {}
    for i, (kind, fields) in means.items():
        for j, (kind2, fields2) in means.items():
            if i != j and kind == kind2 and fields < fields2:
                out[i] = j
                break
    return out


def _weight(config: IndicesConfig, specs: Mapping[str, IndicatorSpec], name: str) -> float:
    return float(config.weights.get(name, specs[name].weight))


def selection(config: IndicesConfig, specs: Mapping[str, IndicatorSpec]) -> dict[str, list[str]]:
    """Return the indicators entering each index (before looking at any data), in spec order.

    Only declared ``risk``/``resilience`` indicators with a positive weight, in a dimension of
    positive weight, enter; ``include`` replaces the default set (which leaves out components
    of composites), ``exclude`` removes from it.
    """
    parts = components(specs)
    chosen = set(config.include) if config.include is not None else set(specs) - set(parts)
    chosen -= set(config.exclude)
    out: dict[str, list[str]] = {d: [] for d in INDICES}
    for name, spec in specs.items():
        if (
            name in chosen
            and spec.direction in out
            and _weight(config, specs, name) > 0
            and config.dimension_weights.get(spec.dimension, 1.0) > 0
        ):
            out[spec.direction].append(name)
    return out


def _dimensions(names: Sequence[str], specs: Mapping[str, IndicatorSpec]) -> list[str]:
    return list(dict.fromkeys(specs[n].dimension for n in names))


def check_config(config: IndicesConfig, specs: Mapping[str, IndicatorSpec]) -> list[str]:
    """Return the problems of an ``[indices]`` table that need the indicator list.

    Parameters
    ----------
    config
        The city's ``[indices]`` table.
    specs
        The city's indicators (declared, changed and local; switched-off ones absent).

    Returns
    -------
    list of str
        One plain sentence per problem (empty when there is none).

    """
    problems = []
    known = set(specs)
    lists: dict[str, Sequence[str]] = {
        "include": config.include or [],
        "exclude": config.exclude,
        "weights": list(config.weights),
        "peer_groups.indicators": config.peer_groups.indicators or [],
    }
    for key, names in lists.items():
        unknown = sorted(set(names) - known)
        if unknown:
            problems.append(f"indices.{key} names unknown or switched-off indicator(s) {unknown}")
    for key in ("include", "weights"):
        context = sorted(n for n in lists[key] if n in specs and specs[n].direction == "context")
        if context:
            problems.append(
                f"indices.{key}: {context} have direction 'context' and never enter an index"
            )
    dims = {s.dimension for s in specs.values()}
    unknown_dims = sorted(set(config.dimension_weights) - dims)
    if unknown_dims:
        problems.append(f"indices.dimension_weights names unknown dimension(s) {unknown_dims}")
    both = set(config.include or []) & set(config.exclude)
    if both:
        problems.append(f"indices: {sorted(both)} both included and excluded")
    chosen = selection(config, specs)
    parts = components(specs)
    for direction, names in chosen.items():
        twice = sorted(f"{p} (part of {c})" for p, c in parts.items() if p in names and c in names)
        if twice:
            problems.append(
                f"the {direction} index would count {', '.join(twice)} twice: exclude the "
                "composite or its components"
            )
    if config.peer_groups.k is not None and config.peer_groups.k > 50:
        problems.append("indices.peer_groups.k: at most 50 groups")
    return problems


# ---------------------------------------------------------------- output declarations


def _col(name: str, type_: Any, description: str, unit: str = "", *, ext: bool | None = None):
    return Column(name=name, type=type_, unit=unit, description=description, extensive=ext)


def index_columns(config: IndicesConfig, specs: Mapping[str, IndicatorSpec]) -> tuple[Column, ...]:
    """Declare the columns the indices add to the ``units`` and primary ``hex`` grids.

    Per index: the index, its 5th and 95th percentiles over the Monte Carlo draws, the share of
    draws in which the feature is in the top fifth, a position label, the indicators missing,
    a one-sentence explanation, and one sub-index per dimension that has indicators; then
    ``peer_group``.
    """
    chosen = selection(config, specs)
    out = []
    for direction in INDICES:
        label = f"{direction} index"
        more = "risk" if direction == "risk" else "resilience"
        out += [
            _col(
                f"{direction}_index",
                "float",
                f"Composite {label}, 0-100 (higher: more {more} relative to this city's other "
                "features); README, Indices.",
                "index 0-100",
                ext=False,
            ),
            _col(
                f"{direction}_index_p05",
                "float",
                f"5th percentile of the {label} over the uncertainty draws (normalisation, "
                "weights, aggregation, one indicator left out).",
                "index 0-100",
                ext=False,
            ),
            _col(
                f"{direction}_index_p95",
                "float",
                f"95th percentile of the {label} over the uncertainty draws.",
                "index 0-100",
                ext=False,
            ),
            _col(
                f"{direction}_top_fifth",
                "float",
                f"Share of the uncertainty draws in which the feature is among the fifth of "
                f"features with the highest {label}.",
                "1",
                ext=False,
            ),
            _col(
                f"{direction}_position",
                "string",
                f"'top fifth' (top fifth of the {label} in at least 80% of the draws), 'not "
                "top fifth' (in at most 20%) or 'depends on choices' (in between).",
            ),
            _col(
                f"{direction}_missing",
                "string",
                f"Indicators of the {label} without a value for the feature (comma-separated; "
                "the index uses the others, no imputation).",
            ),
            _col(
                f"{direction}_explanation",
                "string",
                f"The {label} in one sentence: the indicators that drive it, with their values "
                "against the city median.",
            ),
        ]
        for dim in _dimensions(chosen[direction], specs):
            out.append(
                _col(
                    f"{direction}_{dim}",
                    "float",
                    f"Sub-index of the {label} for the dimension {dim.replace('_', ' ')}, 0-100.",
                    "index 0-100",
                    ext=False,
                )
            )
    out.append(
        _col(
            "peer_group",
            "integer",
            "Peer group: features with a similar indicator profile (PCA and clustering). "
            "Numbered by size, largest first; the number is not a rank.",
        )
    )
    return tuple(out)


_GRID = _col("grid", "string", "Grid layer: units or hex.")
_FEATURE = _col("feature", "string", "unit_id or h3 of the feature.")
EXPLANATIONS_COLUMNS = (
    _GRID,
    _FEATURE,
    _col("index", "string", "Index column: risk_index, resilience_index or a sub-index."),
    _col("indicator", "string", "Indicator id."),
    _col(
        "status",
        "string",
        "used, missing (no value for the feature) or dimension incomplete (too few values in "
        "its dimension).",
    ),
    _col("raw_value", "float", "The indicator's value for the feature.", ext=False),
    _col("city_median", "float", "Median of the indicator over the grid's features.", ext=False),
    _col("normalised", "float", "Normalised value, 0-1 (README, Indices).", "1", ext=False),
    _col(
        "weight",
        "float",
        "Effective weight in the index for this feature (weights of the indicators used add up "
        "to 1).",
        "1",
        ext=False,
    ),
    _col(
        "contribution",
        "float",
        "Points of the index due to the indicator; the contributions add up to the index.",
        "index 0-100",
        ext=False,
    ),
)
PEER_GROUPS_COLUMNS = (
    _GRID,
    _col("feature", "string", "'*': the rows describe groups and components, not features."),
    _col("peer_group", "integer", "Peer group (NULL on rows of PCA loadings)."),
    _col("n_features", "integer", "Features in the group."),
    _col("indicator", "string", "Indicator id."),
    _col("group_median", "float", "Median of the indicator in the group.", ext=False),
    _col("city_median", "float", "Median of the indicator over the clustered features.", ext=False),
    _col(
        "difference",
        "float",
        "Group median minus city median, in standard deviations of the indicator.",
        "sd",
        ext=False,
    ),
    _col("component", "integer", "Principal component (1-based; NULL on rows of groups)."),
    _col("loading", "float", "Loading of the standardised indicator on the component.", ext=False),
    _col(
        "explained_variance",
        "float",
        "Share of the variance of the standardised indicators the component explains.",
        "1",
        ext=False,
    ),
    _col("profile", "string", "What sets the group apart, in indicator terms (plain language)."),
)
PRIORITY_AREAS_COLUMNS = (
    _GRID,
    _FEATURE,
    _col(
        "rule",
        "string",
        "Id of the rule (layers/indices/priorities.toml or the city's rules file).",
    ),
    _col("title", "string", "What the rule looks for."),
    _col(
        "approach",
        "string",
        "Prevention approach it points to: situational, social or "
        "law_enforcement (UN Guidelines on Safer Cities).",
    ),
    _col("reason", "string", "Why the feature needs attention, with its values."),
    _col(
        "evidence",
        "string",
        "Each condition: the feature's value against the city's threshold and median.",
    ),
    _col(
        "points_to",
        "string",
        "What the approach could look like here: a suggestion to discuss, not a decision.",
    ),
)
#: Title, description and columns of each layer the indices add to a build.
TABLES: dict[str, tuple[str, str, tuple[Column, ...]]] = {
    "explanations": (
        "Index explanations",
        "Per feature and index, each indicator's raw value, city median, normalised value, "
        "weight and contribution; the contributions add up to the index.",
        EXPLANATIONS_COLUMNS,
    ),
    "peer_groups": (
        "Peer groups",
        "Profiles of the peer groups (PCA and clustering of the standardised indicators) and the "
        "PCA loadings. Groups are numbered by size, never ranked.",
        PEER_GROUPS_COLUMNS,
    ),
    "priority_areas": (
        "Priority areas for intervention",
        "Features selected by a priority rule, with the reason, the evidence against the city "
        "and the prevention approach it points to. Explains, does not dictate.",
        PRIORITY_AREAS_COLUMNS,
    ),
}
_GAP_COLUMNS = ("grid", "feature", "indicator", "null_reason")


@dataclass(frozen=True)
class IndexResult:
    """The indices of one grid.

    Attributes
    ----------
    columns
        The columns of :func:`index_columns`, one row per feature in the order of ``ids``.
    explanations
        The ``explanations`` layer rows (:data:`EXPLANATIONS_COLUMNS`).
    peer_groups
        The ``peer_groups`` layer rows (:data:`PEER_GROUPS_COLUMNS`).
    priority_areas
        The ``priority_areas`` layer rows (:data:`PRIORITY_AREAS_COLUMNS`).
    gaps
        One row per NULL value of a numeric index column: grid, feature (``*`` for all),
        indicator (the column) and null_reason, like the ``indicator_gaps`` layer.
    manifest
        The procedure, indicators used, seed, draws, sensitivity, peer groups and rules.

    """

    columns: pd.DataFrame
    explanations: pd.DataFrame
    peer_groups: pd.DataFrame
    priority_areas: pd.DataFrame
    gaps: pd.DataFrame
    manifest: dict[str, Any]


# ---------------------------------------------------------------- numerics


def normalise(values: np.ndarray, method: str) -> np.ndarray:
    """Normalise each column onto 0-1 over its non-NULL values (NaN stays NaN).

    Parameters
    ----------
    values
        Array (features, indicators); NaN where there is no value.
    method
        ``minmax``: ``(x - min) / (max - min)``; ``zscore``: ``z = (x - mean) / sd``
        (population sd), clipped at +-3 and mapped by ``(z + 3) / 6``; ``rank``: ``(r - 1) /
        (n - 1)`` with average ranks of ties. A column with a single distinct value maps to 0.5.

    """
    x = np.asarray(values, dtype=float)
    if x.ndim != 2:
        raise ValueError("values must be 2-dimensional (features, indicators)")
    out = np.full(x.shape, np.nan)
    has = ~np.isnan(x)
    n = has.sum(axis=0)
    cols = n > 0
    if not cols.any():
        return out
    xc = x[:, cols]
    if method == "minmax":
        lo, hi = np.nanmin(xc, axis=0), np.nanmax(xc, axis=0)
        span = hi - lo
        y = (xc - lo) / np.where(span > 0, span, 1.0)
        y[:, span == 0] = 0.5
    elif method == "zscore":
        mu, sd = np.nanmean(xc, axis=0), np.nanstd(xc, axis=0)
        z = (xc - mu) / np.where(sd > 0, sd, 1.0)
        y = (np.clip(z, -Z_CLIP, Z_CLIP) + Z_CLIP) / (2 * Z_CLIP)
        y[:, sd == 0] = 0.5
    elif method == "rank":
        r = stats.rankdata(xc, axis=0, nan_policy="omit")
        m = n[cols]
        y = (r - 1) / np.where(m > 1, m - 1, 1)
        y[:, np.nanmax(r, axis=0) == np.nanmin(r, axis=0)] = 0.5
    else:
        raise ValueError(f"unknown normalisation {method!r}")
    y[~has[:, cols]] = np.nan
    out[:, cols] = y
    return out


def _transform(x: np.ndarray, used: np.ndarray, aggregation: str) -> np.ndarray:
    """Values entering the weighted mean: x (arithmetic) or ln(1 + 99 x) (geometric); 0 unused."""
    v = np.where(used, x, 0.0)
    return np.log1p(99.0 * v) if aggregation == "geometric" else v


def _decompose(v: np.ndarray, e: np.ndarray, aggregation: str) -> tuple[np.ndarray, np.ndarray]:
    """Index and additive contributions from transformed values and effective weights.

    Arithmetic: index = 100 sum(e v), contribution = 100 e v. Geometric: index = exp(sum(e v))
    (v = ln(1 + 99 x)), the contributions share it in proportion to e v (e where all v are 0).
    """
    ev = e * v
    if aggregation == "arithmetic":
        contrib = 100.0 * ev
        return contrib.sum(axis=1), contrib
    log_index = ev.sum(axis=1)
    index = np.exp(log_index)
    pos = log_index > 0
    share = np.where(pos[:, None], ev / np.where(pos, log_index, 1.0)[:, None], e)
    return index, index[:, None] * share


def _need(min_inputs: float, k: np.ndarray | int) -> np.ndarray:
    """Least inputs among ``k`` available indicators (share rounded up, at least 1)."""
    k = np.asarray(k)
    if min_inputs < 1:
        return np.maximum(1, np.ceil(min_inputs * k - 1e-9)).astype(int)
    return np.minimum(int(min_inputs), np.maximum(k, 1)).astype(int)


def _fmt(x: np.ndarray) -> np.ndarray:
    """Format numbers for sentences (about three significant figures); NaN as 'no value'."""
    x = np.asarray(x, dtype=float)
    v = np.nan_to_num(x)
    a = np.abs(v)
    out = np.select(
        [a == 0, a >= 100, a >= 1, a >= 0.1, a >= 0.001],
        [
            np.full(x.shape, "0"),
            np.char.mod("%.0f", np.round(v)),
            np.char.mod("%.1f", v),
            np.char.mod("%.2f", v),
            np.char.mod("%.3f", v),
        ],
        np.where(v > 0, "<0.001", ">-0.001"),
    ).astype(object)
    out[np.isnan(x)] = "no value"
    return out


def _join(parts: list[np.ndarray], n: int) -> np.ndarray:
    """Join per-row strings ('' for none) as 'a', 'a and b', 'a, b and c'."""
    out = np.full(n, "", dtype=object)
    count = np.zeros(n, dtype=int)
    for p in parts:
        count += p != ""
    seen = np.zeros(n, dtype=int)
    for p in parts:
        has = p != ""
        seen += has
        sep = np.where(seen == 1, "", np.where(seen == count, " and ", ", "))
        out = np.where(has, out + sep + p, out)
    return out


def _nonzero(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, 1.0)


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[1:2].islower() or len(text) < 2 else text


# ---------------------------------------------------------------- one index on one grid


@dataclass
class _Index:
    """One index on one grid: what entered, how, and the results."""

    direction: str
    names: list[str]  # indicators with values on the grid, in spec order
    dims: list[str]
    member: np.ndarray  # (K, G) 0/1
    dim_of: np.ndarray  # (K,) dimension index of each indicator
    w: np.ndarray  # (K,) within-dimension weights
    dim_w: np.ndarray  # (G,)
    left_out: dict[str, str]  # indicator -> why it does not enter on this grid
    all_null: str | None  # reason when the index is NULL everywhere


def _plan(
    direction: str,
    entering: list[str],
    raw: pd.DataFrame,
    specs: Mapping[str, IndicatorSpec],
    config: IndicesConfig,
) -> _Index:
    left_out: dict[str, str] = {}
    names = []
    for name in entering:
        col = raw[name].to_numpy(dtype=float) if name in raw else np.full(len(raw), np.nan)
        finite = col[~np.isnan(col)]
        if not len(finite):
            left_out[name] = "no value on this grid"
        elif np.all(finite == finite[0]):
            left_out[name] = "the same value everywhere on this grid"
        else:
            names.append(name)
    dims = _dimensions(names, specs)
    dim_of = np.array([dims.index(specs[n].dimension) for n in names], dtype=int)
    member = np.zeros((len(names), len(dims)))
    member[np.arange(len(names)), dim_of] = 1.0
    w = np.array([_weight(config, specs, n) for n in names], dtype=float)
    dim_w = np.array([float(config.dimension_weights.get(d, 1.0)) for d in dims], dtype=float)
    all_null = None
    if not entering:
        all_null = f"no {direction} indicator enters the index (city file, [indices])"
    elif len(names) < config.min_indicators:
        have = ", ".join(names) or "none"
        all_null = (
            f"only {len(names)} {direction} indicator(s) have values on this grid ({have}); "
            f"an index needs at least {config.min_indicators}"
        )
    return _Index(direction, names, dims, member, dim_of, w, dim_w, left_out, all_null)


@dataclass
class _Outcome:
    """Results of one index on one grid with the configured choices."""

    index: np.ndarray  # (N,)
    sub: np.ndarray  # (N, G)
    used: np.ndarray  # (N, K) bool
    sub_valid: np.ndarray  # (N, G) bool
    x: np.ndarray  # (N, K) normalised
    e: np.ndarray  # (N, K) effective weights in the index
    contrib: np.ndarray  # (N, K)
    e_sub: np.ndarray  # (N, K) effective weights within the dimension
    contrib_sub: np.ndarray  # (N, K)
    reason: np.ndarray  # (N,) object: why NULL (None where valid)
    sub_reason: np.ndarray  # (N, G) object


def _evaluate(
    plan: _Index, raw: np.ndarray, x: np.ndarray, config: IndicesConfig, aggregation: str
) -> _Outcome:
    n, k = raw.shape
    g = len(plan.dims)
    avail = ~np.isnan(raw)
    # per dimension: how many indicators the feature has, how many it needs
    k_dim = plan.member.sum(axis=0)
    have_dim = avail.astype(float) @ plan.member
    need_dim = _need(config.min_inputs, k_dim)
    sub_valid = have_dim >= need_dim[None, :]
    used = avail & sub_valid[:, plan.dim_of] if k else avail
    wk = used * plan.w[None, :]
    den = wk @ plan.member  # (N, G)
    v = _transform(x, used, aggregation)
    safe = np.where(den > 0, den, 1.0)
    e_sub = wk / safe[:, plan.dim_of] if k else wk
    sub = np.full((n, g), np.nan)
    contrib_sub = np.zeros((n, k))
    for j in range(g):  # a few dimensions
        cols = plan.dim_of == j
        s, c = _decompose(v[:, cols], e_sub[:, cols], aggregation)
        sub[:, j] = np.where(sub_valid[:, j], s, np.nan)
        contrib_sub[:, cols] = c
    # overall: the dimensions with a sub-index, weighted
    dw = sub_valid * plan.dim_w[None, :]
    tot = dw.sum(axis=1)
    share = dw / np.where(tot > 0, tot, 1.0)[:, None]
    e = e_sub * share[:, plan.dim_of] if k else e_sub
    index, contrib = _decompose(v, e, aggregation)
    n_used = used.sum(axis=1)
    need = int(_need(config.min_inputs, k)) if k else 1
    valid = (n_used >= need) & (tot > 0)
    reason = np.full(n, None, dtype=object)
    sub_reason = np.full((n, g), None, dtype=object)
    if plan.all_null is not None:
        valid[:] = False
        reason[:] = plan.all_null
    else:
        missing = _missing_text(plan.names, ~avail)
        bad = ~valid
        reason[bad] = _counts_text(n_used[bad], k, need, plan.direction, missing[bad])
        for j, dim in enumerate(plan.dims):
            cols = plan.dim_of == j
            bad_j = ~sub_valid[:, j]
            sub_reason[bad_j, j] = _counts_text(
                have_dim[bad_j, j].astype(int),
                int(k_dim[j]),
                int(need_dim[j]),
                f"{dim.replace('_', ' ')} {plan.direction}",
                _missing_text(
                    [nm for nm, c in zip(plan.names, cols, strict=True) if c], ~avail[:, cols]
                )[bad_j],
            )
    index = np.where(valid, index, np.nan)
    contrib = np.where(valid[:, None], contrib, np.nan)
    return _Outcome(
        index, sub, used, sub_valid, x, e, contrib, e_sub, contrib_sub, reason, sub_reason
    )


def _counts_text(have: np.ndarray, k: int, need: int, what: str, missing: np.ndarray) -> Any:
    base = np.char.mod(f"values of %d of {k} {what} indicator(s) (needs {need}); missing: ", have)
    return (base.astype(object) + missing.astype(object)).astype(object)


def _missing_text(names: Sequence[str], missing: np.ndarray) -> np.ndarray:
    out = np.full(missing.shape[0], "", dtype=object)
    for j, name in enumerate(names):
        out = np.where(missing[:, j], out + np.where(out == "", "", ", ") + name, out)
    return out


# ---------------------------------------------------------------- Monte Carlo


@dataclass
class _Draws:
    """The choices of each draw."""

    method: np.ndarray  # (D,) index into NORMALISATIONS
    aggregation: np.ndarray  # (D,) index into AGGREGATIONS
    w: np.ndarray  # (D, K) indicator weights (0 for the one left out)
    dim_w: np.ndarray  # (D, G)
    left_out: np.ndarray  # (D,) indicator index, -1 for none


def _draw(plan: _Index, draws: int, rng: np.random.Generator, concentration: float) -> _Draws:
    k, g = len(plan.names), len(plan.dims)
    method = rng.integers(0, len(NORMALISATIONS), draws)
    aggregation = rng.integers(0, len(AGGREGATIONS), draws)
    w = np.zeros((draws, k))
    for j in range(g):
        cols = np.flatnonzero(plan.dim_of == j)
        if len(cols) == 1:
            w[:, cols[0]] = 1.0
        else:
            alpha = concentration * plan.w[cols] / plan.w[cols].sum()
            w[:, cols] = rng.dirichlet(alpha, draws)
    if g > 1:
        dim_w = rng.dirichlet(concentration * plan.dim_w / plan.dim_w.sum(), draws)
    else:
        dim_w = np.ones((draws, g))
    left_out = rng.integers(-1, k, draws)
    rows = np.flatnonzero(left_out >= 0)
    w[rows, left_out[rows]] = 0.0
    return _Draws(method, aggregation, w, dim_w, left_out)


def _simulate(
    plan: _Index, xs: dict[str, np.ndarray], used: np.ndarray, valid: np.ndarray, d: _Draws
) -> np.ndarray:
    """Index of every feature (rows) in every draw (columns), vectorised over features."""
    n, k = used.shape
    g = len(plan.dims)
    out = np.full((n, len(d.method)), np.nan)
    usedf = used.astype(float)
    for mi, method in enumerate(NORMALISATIONS):
        for ai, aggregation in enumerate(AGGREGATIONS):
            sel = np.flatnonzero((d.method == mi) & (d.aggregation == ai))
            if not len(sel):
                continue
            v = _transform(xs[method], used, aggregation)
            # (K, S*G): each draw's weights spread over the dimensions
            wm = (d.w[sel][:, :, None] * plan.member[None]).transpose(1, 0, 2).reshape(k, -1)
            den = (usedf @ wm).reshape(n, len(sel), g)
            num = (v @ wm).reshape(n, len(sel), g)
            has = den > 0
            mean = num / np.where(has, den, 1.0)
            dw = has * d.dim_w[sel][None, :, :]
            tot = dw.sum(axis=2)
            agg = (dw * mean).sum(axis=2) / np.where(tot > 0, tot, 1.0)
            y = 100.0 * agg if aggregation == "arithmetic" else np.exp(agg)
            out[:, sel] = np.where(tot > 0, y, np.nan)
    out[~valid] = np.nan
    return out


def _percent_rank(y: np.ndarray) -> np.ndarray:
    """Percentile rank (0-100) of each feature within each draw (column), NaN kept."""
    r = stats.rankdata(y, axis=0, nan_policy="omit")
    m = (~np.isnan(y)).sum(axis=0)
    return 100.0 * (r - 1) / np.where(m > 1, m - 1, 1)[None, :]


def _row_quantile(y: np.ndarray, q: float) -> np.ndarray:
    """Quantile ``q`` of each row over its non-NaN values (numpy's linear method); NaN if none."""
    s = np.sort(y, axis=1)  # NaN last
    cnt = (~np.isnan(y)).sum(axis=1)
    pos = q * np.maximum(cnt - 1, 0)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, np.maximum(cnt - 1, 0))
    rows = np.arange(len(y))
    out = s[rows, lo] + (pos - lo) * (s[rows, hi] - s[rows, lo])
    return np.where(cnt > 0, out, np.nan)


class _Pooled:
    """Per-feature means of the ranks over the draws, shared by the first-order indices."""

    def __init__(self, rank: np.ndarray):
        self.ok = ~np.isnan(rank)
        self.okf = self.ok.astype(float)
        self.r0 = np.where(self.ok, rank, 0.0)
        cnt = self.ok.sum(axis=1)
        self.mean = self.r0.sum(axis=1) / np.where(cnt > 0, cnt, 1)
        self.total = float((np.where(self.ok, rank - self.mean[:, None], 0.0) ** 2).sum())

    def first_order(self, levels: np.ndarray) -> float:
        """Var(E[rank | factor]) / Var(rank), pooled over the features."""
        if self.total <= 0:
            return 0.0
        uniq, inv = np.unique(levels, return_inverse=True)
        onehot = np.zeros((len(levels), len(uniq)))
        onehot[np.arange(len(levels)), inv] = 1.0
        c = self.okf @ onehot  # (N, L)
        m_l = (self.r0 @ onehot) / np.where(c > 0, c, 1.0)
        return float((c * (m_l - self.mean[:, None]) ** 2).sum() / self.total)


def _bins(values: np.ndarray, n_bins: int = 10) -> np.ndarray:
    edges = np.quantile(values, np.linspace(0, 1, n_bins + 1)[1:-1])
    return np.searchsorted(edges, values, side="right")


def _sensitivity(plan: _Index, rank: np.ndarray, d: _Draws) -> dict[str, Any]:
    pooled = _Pooled(rank)
    out: dict[str, Any] = {
        "output": "percentile rank (0-100) of each feature within the grid, per draw",
        "method": "first-order index Var(E[rank | choice]) / Var(rank), pooled over the "
        "features; drawn weights binned into deciles",
        "normalisation": round(pooled.first_order(d.method), 6),
        "aggregation": round(pooled.first_order(d.aggregation), 6),
        "left_out_indicator": round(pooled.first_order(d.left_out), 6),
    }
    weights = {}
    for j, name in enumerate(plan.names):
        if np.sum(plan.dim_of == plan.dim_of[j]) > 1:
            kept = np.flatnonzero(d.left_out != j)
            if len(kept) > 10 and np.ptp(d.w[kept, j]) > 0:
                sub = _Pooled(rank[:, kept])
                weights[name] = round(sub.first_order(_bins(d.w[kept, j])), 6)
    out["weights"] = weights
    if len(plan.dims) > 1:
        out["dimension_weights"] = {
            dim: round(pooled.first_order(_bins(d.dim_w[:, j])), 6)
            for j, dim in enumerate(plan.dims)
        }
    ranked = {
        "normalisation": out["normalisation"],
        "aggregation": out["aggregation"],
        "left_out_indicator": out["left_out_indicator"],
        "weights": max(weights.values(), default=0.0),
        "dimension_weights": max(out.get("dimension_weights", {}).values(), default=0.0),
    }
    out["most_influential"] = max(ranked, key=lambda key: ranked[key])
    return out


def _uncertainty(
    plan: _Index,
    outcome: _Outcome,
    xs: dict[str, np.ndarray],
    config: IndicesConfig,
    rng: np.random.Generator,
) -> tuple[dict[str, np.ndarray], dict[str, Any] | None]:
    """Percentiles on the configured scale, top-fifth shares and sensitivity of one index.

    Each draw's values are turned into percentile ranks; the 5th and 95th percentiles of a
    feature's ranks are mapped back onto the configured index through its own distribution
    (quantile matching), so the range shows how far the feature's standing moves, not that
    methods differ in scale.
    """
    n = len(outcome.index)
    valid = ~np.isnan(outcome.index)
    cols = {"p05": np.full(n, np.nan), "p95": np.full(n, np.nan), "top": np.full(n, np.nan)}
    if config.draws == 0 or not valid.any():
        return cols, None
    d = _draw(plan, config.draws, rng, config.concentration)
    y = _simulate(plan, xs, outcome.used, valid, d)[valid]
    rank = _percent_rank(y)
    ok = ~np.isnan(rank)
    scale = np.sort(outcome.index[valid])
    grid_pct = np.linspace(0.0, 100.0, len(scale)) if len(scale) > 1 else np.zeros(1)
    for key, q in (("p05", 0.05), ("p95", 0.95)):
        cols[key][valid] = np.interp(_row_quantile(rank, q), grid_pct, scale)
    top = ok & (rank >= 100.0 * (1 - TOP_SHARE) - 1e-9)
    cnt = ok.sum(axis=1)
    cols["top"][valid] = np.where(cnt > 0, top.sum(axis=1) / np.where(cnt > 0, cnt, 1), np.nan)
    return cols, _sensitivity(plan, rank, d)


# ---------------------------------------------------------------- explanations


def _explanation_rows(
    grid: str,
    ids: np.ndarray,
    plan: _Index,
    out: _Outcome,
    raw: np.ndarray,
    medians: np.ndarray,
) -> list[pd.DataFrame]:
    k = raw.shape[1]
    avail = ~np.isnan(raw)
    status = np.where(out.used, "used", np.where(avail, "dimension incomplete", "missing"))
    frames = []
    targets = [
        (f"{plan.direction}_index", np.ones(k, bool), ~np.isnan(out.index), out.e, out.contrib)
    ]
    for j, dim in enumerate(plan.dims):
        targets.append(
            (
                f"{plan.direction}_{dim}",
                plan.dim_of == j,
                out.sub_valid[:, j],
                out.e_sub,
                out.contrib_sub,
            )
        )
    for name, cols, rows, e, contrib in targets:
        r = np.flatnonzero(rows)
        c = np.flatnonzero(cols)
        if not len(r) or not len(c):
            continue
        rr = np.repeat(r, len(c))
        cc = np.tile(c, len(r))
        used = out.used[rr, cc]
        frames.append(
            pd.DataFrame(
                {
                    "grid": grid,
                    "feature": ids[rr],
                    "index": name,
                    "indicator": np.asarray(plan.names, dtype=object)[cc],
                    "status": status[rr, cc],
                    "raw_value": raw[rr, cc],
                    "city_median": medians[cc],
                    "normalised": out.x[rr, cc],
                    "weight": np.where(used, e[rr, cc], 0.0),
                    "contribution": np.where(used, contrib[rr, cc], np.nan),
                }
            )
        )
    return frames


def _sentences(
    plan: _Index,
    out: _Outcome,
    raw: np.ndarray,
    medians: np.ndarray,
    specs: Mapping[str, IndicatorSpec],
) -> np.ndarray:
    """One sentence per feature: the index and the two or three indicators that drive it.

    The drivers are the indicators whose weighted normalised value is furthest from the city
    median's, upwards for a feature at or above the city's median index ("raised most by"),
    downwards below it ("kept low by").
    """
    n = len(out.index)
    label = "Risk index" if plan.direction == "risk" else "Resilience index"
    valid = ~np.isnan(out.index)
    null_text = ("No " + plan.direction + " index: " + out.reason.astype(str)).astype(object)
    if plan.all_null is not None or not valid.any():
        return null_text
    titles = np.asarray([_lower_first(specs[m].title) for m in plan.names], dtype=object)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        x_med = np.nanmedian(out.x, axis=0)
    city = float(np.nanmedian(out.index))
    high = out.index >= city
    dev = np.where(out.used, out.e * (np.nan_to_num(out.x) - x_med[None, :]), 0.0)
    signed = np.where(high[:, None], dev, -dev)
    order = np.argsort(-signed, axis=1, kind="stable")[:, :3]
    rows = np.arange(n)
    pieces = []
    for slot in range(order.shape[1]):
        j = order[:, slot]
        piece = titles[j] + " " + _fmt(raw[rows, j]) + " (city median " + _fmt(medians[j]) + ")"
        pieces.append(np.where(signed[rows, j] > 1e-12, piece, ""))
    drivers = _join(pieces, n)
    verb = np.where(high, ", raised most by ", ", kept low by ")
    head = label + " " + np.char.mod("%.0f", np.nan_to_num(out.index)).astype(object)
    head = head + f" of 100 (city median {city:.0f})"
    body = np.where(drivers != "", verb + drivers, ", close to the city median on every indicator")
    missing = _missing_text(plan.names, np.isnan(raw))
    tail = np.where(missing != "", "; no value for " + missing, "")
    return np.where(valid, head + body + tail + ".", null_text)


# ---------------------------------------------------------------- peer groups


def _peer_groups(
    grid: str,
    raw: pd.DataFrame,
    specs: Mapping[str, IndicatorSpec],
    config: IndicesConfig,
    default: list[str],
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame, dict[str, Any]]:
    """Cluster features; return groups (0: none), NULL reasons, layer rows and manifest."""
    pg = config.peer_groups
    n = len(raw)
    noun = "units" if grid == "units" else "hexagons"
    groups = np.zeros(n, dtype=int)
    reasons = np.full(n, None, dtype=object)
    info: dict[str, Any] = {}
    empty = pd.DataFrame({c.name: pd.Series(dtype=object) for c in PEER_GROUPS_COLUMNS})

    def fail(reason: str) -> tuple[np.ndarray, np.ndarray, pd.DataFrame, dict[str, Any]]:
        reasons[:] = reason
        info["null_reason"] = reason
        return groups, reasons, empty, info

    if pg.indicators is not None:
        names = [m for m in pg.indicators if m in raw]
    else:
        cover = {m: float((~raw[m].isna()).mean()) if m in raw else 0.0 for m in default}
        names = [m for m in default if cover[m] >= pg.min_coverage]
    names = [m for m in names if raw[m].nunique(dropna=True) > 1]
    info["indicators"] = names
    if len(names) < 2:
        return fail(
            "fewer than 2 indicators vary and have values for enough features to form peer "
            "groups on this grid"
        )
    values = raw[names].to_numpy(dtype=float)
    complete = ~np.isnan(values).any(axis=1)
    k_lo, k_hi = (pg.k, pg.k) if pg.k is not None else (pg.k_range[0], pg.k_range[1])
    n_ok = int(complete.sum())
    if n_ok < max(2 * k_lo, 6):
        return fail(f"only {n_ok} {noun} have values of every clustering indicator")
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.metrics import silhouette_score
    from threadpoolctl import threadpool_limits

    x = values[complete]
    if pg.transform == "normal_scores":
        x0 = stats.norm.ppf((stats.rankdata(x, axis=0) - 0.5) / len(x))
    else:
        x0 = x
    z = (x0 - x0.mean(axis=0)) / _nonzero(x0.std(axis=0))
    if pg.transform == "clipped_zscore":
        z = np.clip(z, -Z_CLIP, Z_CLIP)
        z = (z - z.mean(axis=0)) / _nonzero(z.std(axis=0))
    pca = PCA(svd_solver="full").fit(z)
    ratio = pca.explained_variance_ratio_
    n_comp = int(np.searchsorted(np.cumsum(ratio), pg.variance - 1e-12) + 1)
    n_comp = max(min(n_comp, len(names)), min(2, len(names)))
    scores = pca.transform(z)[:, :n_comp]
    silhouettes: dict[str, float] = {}
    best: tuple[float, int, np.ndarray] | None = None
    sample = min(n_ok, SILHOUETTE_SAMPLE)
    distinct = len(np.unique(np.round(scores, 12), axis=0))  # repeated profiles
    with threadpool_limits(1):  # small data: threads only contend (and stay deterministic)
        for k in range(k_lo, min(k_hi, n_ok - 1, distinct - 1) + 1):
            km = KMeans(n_clusters=k, n_init=KMEANS_INIT, random_state=config.seed)
            labels = km.fit_predict(scores)
            if len(np.unique(labels)) < 2:
                continue
            s = float(
                silhouette_score(scores, labels, sample_size=sample, random_state=config.seed)
            )
            silhouettes[str(k)] = round(s, 6)
            if best is None or s > best[0] + 1e-12:
                best = (s, k, labels)
    if best is None:
        return fail("the features do not separate into groups")
    _, k, labels = best
    # number groups by size, largest first, ties by first feature: no order of "badness"
    sizes = np.bincount(labels, minlength=k)
    first = np.array([np.flatnonzero(labels == j)[0] for j in range(k)])
    order = np.lexsort((first, -sizes))
    relabel = np.empty(k, dtype=int)
    relabel[order] = np.arange(1, k + 1)
    labels = relabel[labels]
    groups[complete] = labels
    missing = _missing_text(names, np.isnan(values))
    reasons[~complete] = (
        "peer groups need every clustering indicator; no value for " + missing[~complete]
    )
    # profiles
    city_med = np.median(x, axis=0)
    sd = x.std(axis=0)
    rows = []
    titles = [_lower_first(specs[m].title) if m in specs else m for m in names]
    for grp in range(1, k + 1):
        inside = labels == grp
        med = np.median(x[inside], axis=0)
        diff = (med - city_med) / np.where(sd > 0, sd, 1.0)
        top = [j for j in np.argsort(-np.abs(diff), kind="stable")[:3] if abs(diff[j]) >= 0.25]
        parts = [
            f"{'higher' if diff[j] > 0 else 'lower'} {titles[j]} (median "
            f"{_fmt(med[j : j + 1])[0]}, city {_fmt(city_med[j : j + 1])[0]})"
            for j in top
        ]
        what = _join([np.array([p], dtype=object) for p in parts], 1)[0]
        profile = f"Group {grp} ({int(inside.sum())} {noun}): " + (
            f"{what} than the city as a whole."
            if what
            else "close to the city on every clustering indicator."
        )
        rows.append(
            pd.DataFrame(
                {
                    "grid": grid,
                    "feature": "*",
                    "peer_group": grp,
                    "n_features": int(inside.sum()),
                    "indicator": names,
                    "group_median": med,
                    "city_median": city_med,
                    "difference": diff,
                    "component": None,
                    "loading": np.nan,
                    "explained_variance": np.nan,
                    "profile": profile,
                }
            )
        )
    comps = pca.components_[:n_comp]
    rows.append(
        pd.DataFrame(
            {
                "grid": grid,
                "feature": "*",
                "peer_group": None,
                "n_features": None,
                "indicator": np.tile(np.asarray(names, dtype=object), n_comp),
                "group_median": np.nan,
                "city_median": np.nan,
                "difference": np.nan,
                "component": np.repeat(np.arange(1, n_comp + 1), len(names)),
                "loading": comps.ravel(),
                "explained_variance": np.repeat(ratio[:n_comp], len(names)),
                "profile": np.repeat(
                    [
                        f"Principal component {c + 1} of the standardised indicators"
                        for c in range(n_comp)
                    ],
                    len(names),
                ),
            }
        )
    )
    layer = pd.concat(rows, ignore_index=True)
    for col in ("peer_group", "n_features", "component"):
        layer[col] = layer[col].astype("Int64")
    info.update(
        {
            "k": int(k),
            "chosen_by": "configured" if pg.k is not None else "silhouette",
            "silhouette": silhouettes,
            "pca_components": n_comp,
            "pca_explained_variance": [round(float(r), 6) for r in ratio],
            "features_clustered": n_ok,
        }
    )
    return groups, reasons, layer, info


# ---------------------------------------------------------------- priority areas


def _priority_rows(
    grid: str,
    ids: np.ndarray,
    frame: pd.DataFrame,
    rules: PriorityRules,
    specs: Mapping[str, IndicatorSpec],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    out = []
    report: dict[str, Any] = {}
    n = len(frame)
    for rule in rules.rules:
        why = None
        mask = np.ones(n, dtype=bool)
        values: dict[str, np.ndarray] = {}
        medians: dict[str, np.ndarray] = {}
        thresholds: dict[str, np.ndarray] = {}
        evidence = []
        for cond in rule.when:
            if cond.column not in frame:
                why = f"column {cond.column} is not available on this grid"
                break
            col = frame[cond.column]
            has = col.notna().to_numpy()
            if cond.values is not None:
                text = col.astype(object).to_numpy()
                ok = has & np.isin(text.astype(str), np.asarray(cond.values, dtype=str))
                values[cond.column] = np.where(has, text, "no value").astype(str)
                medians[cond.column] = np.full(n, "", dtype=object)
                thresholds[cond.column] = np.full(n, ", ".join(cond.values), dtype=object)
                evidence.append(
                    cond.column
                    + " "
                    + values[cond.column].astype(object)
                    + f" (in {', '.join(cond.values)})"
                )
                mask &= ok
                continue
            num = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
            has = has & ~np.isnan(num)
            if not has.any():
                why = f"column {cond.column} has no value on this grid"
                break
            if cond.quantile is not None:
                if has.sum() < rules.min_features:
                    why = (
                        f"column {cond.column} has values for {int(has.sum())} features "
                        f"(a relative threshold needs {rules.min_features})"
                    )
                    break
                thr = float(np.quantile(num[has], cond.quantile))
                ref = f"{_ordinal(cond.quantile)} of the city"
            else:
                thr = float(cond.value)  # type: ignore[arg-type]
                ref = "fixed"
            cmp = {
                "<": np.less,
                "<=": np.less_equal,
                ">": np.greater,
                ">=": np.greater_equal,
            }[cond.op]
            mask &= has & cmp(np.nan_to_num(num), thr)
            med = float(np.median(num[has]))
            values[cond.column] = _fmt(num)
            medians[cond.column] = np.full(n, _fmt(np.array([med]))[0], dtype=object)
            thresholds[cond.column] = np.full(n, _fmt(np.array([thr]))[0], dtype=object)
            title = _lower_first(specs[cond.column].title) if cond.column in specs else cond.column
            evidence.append(
                title
                + " "
                + values[cond.column].astype(object)
                + f" {cond.op} {thresholds[cond.column][0]} ({ref}; city median "
                + medians[cond.column].astype(object)
                + ")"
            )
        if why is not None:
            report[rule.id] = {"applicable": False, "reason": why, "selected": 0}
            continue
        sel = np.flatnonzero(mask)
        report[rule.id] = {"applicable": True, "selected": len(sel)}
        if not len(sel):
            continue
        reason = _fill(rule.reason, values, medians, thresholds, sel)
        ev = evidence[0][sel]
        for part in evidence[1:]:
            ev = ev + "; " + part[sel]
        out.append(
            pd.DataFrame(
                {
                    "grid": grid,
                    "feature": ids[sel],
                    "rule": rule.id,
                    "title": rule.title,
                    "approach": rule.approach,
                    "reason": reason,
                    "evidence": ev,
                    "points_to": rule.points_to,
                }
            )
        )
    if not out:
        empty = pd.DataFrame({c.name: pd.Series(dtype=object) for c in PRIORITY_AREAS_COLUMNS})
        return empty, report
    return pd.concat(out, ignore_index=True), report


def _ordinal(q: float) -> str:
    if q == 0.5:
        return "median"
    pct = round(q * 100, 1)
    pct_text = f"{pct:g}"
    last = int(pct) % 100 if pct == int(pct) else -1
    suffix = (
        "th"
        if last in (11, 12, 13) or last % 10 not in (1, 2, 3)
        else ({1: "st", 2: "nd", 3: "rd"}[last % 10])
    )
    return f"{pct_text}{suffix} percentile"


def _fill(
    template: str,
    values: dict[str, np.ndarray],
    medians: dict[str, np.ndarray],
    thresholds: dict[str, np.ndarray],
    sel: np.ndarray,
) -> np.ndarray:
    out = np.full(len(sel), "", dtype=object)
    pos = 0
    for m in _PLACEHOLDER.finditer(template):
        out = out + template[pos : m.start()]
        source = {"median": medians, "threshold": thresholds, None: values}[m.group(2)]
        out = out + source[m.group(1)][sel].astype(object)
        pos = m.end()
    return out + template[pos:]


# ---------------------------------------------------------------- gaps


def _gap_rows(grid: str, ids: np.ndarray, column: str, reasons: np.ndarray) -> pd.DataFrame:
    null = np.flatnonzero(pd.notna(reasons))
    if not len(null):
        return pd.DataFrame(columns=list(_GAP_COLUMNS))
    why = reasons[null].astype(str)
    if len(null) == len(reasons) and len(np.unique(why)) == 1:
        return pd.DataFrame(
            {"grid": [grid], "feature": ["*"], "indicator": [column], "null_reason": why[:1]}
        )
    return pd.DataFrame(
        {
            "grid": grid,
            "feature": ids[null].astype(str).astype(object),
            "indicator": column,
            "null_reason": why,
        }
    )


# ---------------------------------------------------------------- entry point


def compute(
    grid: str,
    ids: np.ndarray,
    values: pd.DataFrame,
    specs: Mapping[str, IndicatorSpec],
    config: IndicesConfig,
    *,
    extra: pd.DataFrame | None = None,
    rules: PriorityRules | None = None,
) -> IndexResult:
    """Compute the indices of one grid with their explanations, uncertainty and groups.

    Parameters
    ----------
    grid
        Grid name (``units`` or ``hex``), written in the long layers.
    ids
        Feature ids, one per row of ``values``.
    values
        One float column per indicator id; NaN where there is no value (never 0).
    specs
        The city's indicators.
    config
        The city's ``[indices]`` table.
    extra
        Other columns the priority rules may read (e.g. ``gi_class``), same row order.
    rules
        Priority rules; default: ``config.priorities`` or ``layers/indices/priorities.toml``.

    Returns
    -------
    IndexResult
        Identical for identical inputs and seed.

    """
    ids = np.asarray(ids, dtype=object)
    n = len(ids)
    if len(values) != n or (extra is not None and len(extra) != n):
        raise ValueError("values (and extra) must have one row per id")
    raw_frame = values.reset_index(drop=True)
    if rules is None:
        rules = load_rules(config.priorities)
    chosen = selection(config, specs)
    columns: dict[str, Any] = {}
    gaps = []
    explanations: list[pd.DataFrame] = []
    manifest: dict[str, Any] = {
        "procedure": {
            "imputation": "none: an index uses the indicators the feature has values of",
            "normalisation": config.normalisation,
            "aggregation": config.aggregation,
            "min_inputs": config.min_inputs,
            "min_indicators": config.min_indicators,
            "weights": "equal within a dimension unless configured; dimensions weigh equally "
            "unless configured",
            "left_out_as_components": components(specs),
        },
        "seed": config.seed,
        "draws": config.draws,
        "indices": {},
    }
    rng = np.random.default_rng(config.seed)
    for direction in INDICES:
        plan = _plan(direction, chosen[direction], raw_frame, specs, config)
        raw = raw_frame[plan.names].to_numpy(dtype=float) if plan.names else np.zeros((n, 0))
        xs = {m: normalise(raw, m) for m in NORMALISATIONS}
        outcome = _evaluate(plan, raw, xs[config.normalisation], config, config.aggregation)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            medians = np.nanmedian(raw, axis=0) if plan.names else np.zeros(0)
        unc, sensitivity = _uncertainty(plan, outcome, xs, config, rng)
        top = unc["top"]
        position = np.where(
            top >= ROBUST_SHARE,
            "top fifth",
            np.where(top <= 1 - ROBUST_SHARE, "not top fifth", "depends on choices"),
        ).astype(object)
        position[np.isnan(top)] = None
        name = f"{direction}_index"
        missing = _missing_text(plan.names, np.isnan(raw)) if plan.names else np.full(n, "")
        columns[name] = outcome.index
        columns[f"{name}_p05"] = unc["p05"]
        columns[f"{name}_p95"] = unc["p95"]
        columns[f"{direction}_top_fifth"] = top
        columns[f"{direction}_position"] = position
        columns[f"{direction}_missing"] = missing.astype(object)
        columns[f"{direction}_explanation"] = _sentences(plan, outcome, raw, medians, specs)
        unc_reason = outcome.reason.copy()
        if config.draws == 0:
            unc_reason[:] = "uncertainty analysis switched off (indices.draws = 0)"
        gaps.append(_gap_rows(grid, ids, name, outcome.reason))
        for col in (f"{name}_p05", f"{name}_p95", f"{direction}_top_fifth"):
            why = unc_reason.copy()
            why[~np.isnan(columns[col])] = None
            gaps.append(_gap_rows(grid, ids, col, why))
        for dim in _dimensions(chosen[direction], specs):
            col = f"{direction}_{dim}"
            if dim in plan.dims:
                j = plan.dims.index(dim)
                columns[col] = outcome.sub[:, j]
                gaps.append(_gap_rows(grid, ids, col, outcome.sub_reason[:, j]))
            else:
                columns[col] = np.full(n, np.nan)
                gone = [m for m in chosen[direction] if specs[m].dimension == dim]
                gaps.append(
                    _gap_rows(
                        grid,
                        ids,
                        col,
                        np.full(
                            n,
                            f"no {dim.replace('_', ' ')} {direction} indicator has varying "
                            f"values on this grid ({', '.join(gone)})",
                            dtype=object,
                        ),
                    )
                )
        explanations += _explanation_rows(grid, ids, plan, outcome, raw, medians)
        manifest["indices"][name] = {
            "indicators": plan.names,
            "dimensions": {
                d: [m for m, j in zip(plan.names, plan.dim_of, strict=True) if j == i]
                for i, d in enumerate(plan.dims)
            },
            "weights": {m: float(w) for m, w in zip(plan.names, plan.w, strict=True)},
            "dimension_weights": {d: float(w) for d, w in zip(plan.dims, plan.dim_w, strict=True)},
            "left_out": plan.left_out,
            "null_reason": plan.all_null,
            "features_with_value": int((~np.isnan(outcome.index)).sum()),
            "sensitivity": sensitivity,
        }
    # peer groups
    default = [m for d in INDICES for m in chosen[d]]
    groups, group_reasons, peer_layer, peer_info = _peer_groups(
        grid, raw_frame, specs, config, default
    )
    columns["peer_group"] = pd.array(np.where(groups > 0, groups, 0), dtype="Int64")
    columns["peer_group"][groups == 0] = pd.NA
    gaps.append(_gap_rows(grid, ids, "peer_group", group_reasons))
    manifest["peer_groups"] = peer_info
    # priority areas: indicators, index columns and extra columns
    frame = pd.concat(
        [raw_frame, pd.DataFrame({k: v for k, v in columns.items() if k not in raw_frame})],
        axis=1,
    )
    if extra is not None:
        frame = pd.concat([frame, extra.reset_index(drop=True)], axis=1)
    priority, report = _priority_rows(grid, ids, frame, rules, specs)
    manifest["priorities"] = report
    declared = [c.name for c in index_columns(config, specs)]
    out_columns = pd.DataFrame({c: columns[c] for c in declared})
    for c in declared:
        if out_columns[c].dtype == object:
            out_columns[c] = out_columns[c].astype(object)
    expl = (
        pd.concat(explanations, ignore_index=True)
        if explanations
        else pd.DataFrame({c.name: pd.Series(dtype=object) for c in EXPLANATIONS_COLUMNS})
    )
    gap_frame = (
        pd.concat([g for g in gaps if len(g)], ignore_index=True)
        if any(len(g) for g in gaps)
        else pd.DataFrame(columns=list(_GAP_COLUMNS))
    )
    return IndexResult(
        columns=out_columns,
        explanations=expl[[c.name for c in EXPLANATIONS_COLUMNS]],
        peer_groups=peer_layer[[c.name for c in PEER_GROUPS_COLUMNS]],
        priority_areas=priority[[c.name for c in PRIORITY_AREAS_COLUMNS]],
        gaps=gap_frame,
        manifest=manifest,
    )


__all__ = [
    "EXPLANATIONS_COLUMNS",
    "PEER_GROUPS_COLUMNS",
    "PRIORITY_AREAS_COLUMNS",
    "Condition",
    "IndexResult",
    "IndicesConfig",
    "PeerGroupsConfig",
    "PriorityRule",
    "PriorityRules",
    "check_config",
    "components",
    "compute",
    "index_columns",
    "load_rules",
    "normalise",
    "selection",
]
