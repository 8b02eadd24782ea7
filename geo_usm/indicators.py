"""Neighbourhood indicators: declared as data, computed per admin unit and per hexagon.

The core set is declared in ``layers/indicators/core.toml``; a city file can switch indicators
off, change their parameters and weights, and declare local ones from the same methods
(``[indicators]``). Each indicator is computed by one of a small set of vectorised methods
(:data:`METHODS`) on every grid, from the aggregation engine's counts and lengths, the
accepted records, the street network and the population. A value is a number or NULL with a
reason (too few records, no population, no street network...), never a false zero.

Notes
-----
Street-network distances use the city's own ``streets`` layers (:mod:`geo_usm.network`);
the network's sample points stand for residents, weighted by the street length they stand
for and, where hexagon population exists, by the population of their hexagon.

"""

from __future__ import annotations

import json
import re
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import shapely
from pydantic import Field, ValidationError, model_validator

from geo_usm._model import NAME_PATTERN, StrictInput, format_validation_errors
from geo_usm.assign import count_by
from geo_usm.catalog import INDICATORS_COLUMNS, Column
from geo_usm.errors import CityFileError, GeoUsmError, LayerDefinitionError
from geo_usm.filters import Filter, FilterEvaluationError, parse_filter
from geo_usm.geo import WGS84, transformer
from geo_usm.network import StreetNetwork
from geo_usm.schema import LayerKind, builtin_layers_dir

if TYPE_CHECKING:
    from geo_usm.aggregate import Aggregates, Grid
    from geo_usm.ingest import Records
    from geo_usm.units import SpatialFrame

Direction = Literal["risk", "resilience", "context"]
Dimension = Literal[
    "crime_and_violence",
    "urban_environment",
    "mobility",
    "perception",
    "social_cohesion",
    "population",
]
Method = Literal[
    "population",
    "count",
    "rate",
    "density",
    "share",
    "mean",
    "per_street_km",
    "coverage",
    "area_share",
    "network_distance",
    "access",
]
#: Parameters each method takes (name: required).
METHOD_PARAMS: dict[str, dict[str, bool]] = {
    "population": {},
    "count": {"kind": True, "where": False},
    "rate": {"kind": True, "where": False, "per": False},
    "density": {"of": True, "where": False},
    "share": {"kind": True, "where": True, "among": False, "weight": False},
    "mean": {"kind": True, "fields": True, "scale": False},
    "per_street_km": {"kind": True},
    "coverage": {"kind": True, "distance_m": True},
    "area_share": {"kind": True},
    "network_distance": {"kind": True},
    "access": {"kind": True, "distance_m": True},
}
ParamValue = str | int | float | bool | list[str]


class IndicatorSpec(StrictInput):
    """One indicator: what it means, how it is computed, how it enters the indices."""

    title: str
    unit: str
    method: Method
    params: dict[str, ParamValue] = Field(default_factory=dict)
    direction: Direction
    dimension: Dimension
    tier: Literal["core", "local"] = "core"
    extensive: bool
    weight: float = Field(default=1.0, ge=0)
    min_input: float = Field(
        default=0,
        ge=0,
        description="least input behind a meaningful value: records for shares and means, "
        "residents for rates, metres of street for street indicators, sample points for "
        "network indicators",
    )
    description: str = ""

    @model_validator(mode="after")
    def _check(self) -> IndicatorSpec:
        allowed = METHOD_PARAMS[self.method]
        unknown = sorted(set(self.params) - set(allowed))
        if unknown:
            raise ValueError(
                f"unknown parameter(s) {unknown} for method '{self.method}' "
                f"(allowed: {sorted(allowed) or 'none'})"
            )
        missing = sorted(k for k, required in allowed.items() if required and k not in self.params)
        if missing:
            raise ValueError(f"method '{self.method}' needs parameter(s) {missing}")
        for key in ("where", "among"):
            text = self.params.get(key)
            if text is not None:
                if not isinstance(text, str):
                    raise ValueError(f"params.{key} must be a filter text")
                try:
                    parse_filter(text)
                except GeoUsmError as exc:
                    raise ValueError(f"params.{key}: {exc.message}") from None
        for key in ("per", "distance_m", "scale"):
            value = self.params.get(key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or value <= 0
            ):
                raise ValueError(f"params.{key} must be a positive number")
        fields = self.params.get("fields")
        if fields is not None and (not isinstance(fields, list) or not fields):
            raise ValueError("params.fields must be a non-empty list of field names")
        if "weight" in self.params and not isinstance(self.params["weight"], str):
            raise ValueError("params.weight must be the name of a numeric field")
        if self.params.get("of") == "population" and "where" in self.params:
            raise ValueError("params.where selects records: it does not apply to population")
        return self

    @property
    def kind(self) -> str | None:
        """The layer kind the indicator reads (``None`` for population)."""
        value = self.params.get("kind", self.params.get("of"))
        return None if value in (None, "population") else str(value)


class IndicatorFile(StrictInput):
    """The declarations file: category groups and indicators."""

    category_groups: dict[str, list[str]] = Field(default_factory=dict)
    indicators: dict[str, IndicatorSpec]


class IndicatorOverride(StrictInput):
    """A city's change to a declared indicator (only the keys given change)."""

    params: dict[str, ParamValue] | None = None
    weight: float | None = Field(default=None, ge=0)
    min_input: float | None = Field(default=None, ge=0)


class CityIndicators(StrictInput):
    """The ``[indicators]`` table of a city file."""

    off: list[str] = Field(default_factory=list, description="declared indicators not computed")
    category_groups: dict[str, list[str]] | None = Field(
        default=None, description="the city's category labels per group (replaces the default)"
    )
    change: dict[str, IndicatorOverride] = Field(default_factory=dict)
    local: dict[str, IndicatorSpec] = Field(default_factory=dict)


@dataclass(frozen=True)
class Indicators:
    """The indicators of one city: declarations resolved with the city's changes."""

    specs: dict[str, IndicatorSpec]
    category_groups: dict[str, list[str]]


_ID = re.compile(NAME_PATTERN)


@cache
def _core_file() -> IndicatorFile:
    path = builtin_layers_dir() / "indicators" / "core.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        parsed = IndicatorFile.model_validate(data)
    except tomllib.TOMLDecodeError as exc:
        raise LayerDefinitionError(f"not valid TOML: {exc}", path=path) from None
    except ValidationError as exc:
        raise LayerDefinitionError("; ".join(format_validation_errors(exc)), path=path) from None
    bad = [name for name in parsed.indicators if not _ID.match(name)]
    if bad:
        raise LayerDefinitionError(f"indicator ids must be lower_snake_case: {bad}", path=path)
    return parsed


def resolve(city: CityIndicators | None, kinds: dict[str, LayerKind]) -> Indicators:
    """Return the city's indicators: the core set with the city's changes, plus local ones.

    Raises
    ------
    CityFileError
        For an unknown indicator id, a local id that clashes, an unknown kind or field, or
        parameters a method does not take. Every problem is listed.

    """
    core = _core_file()
    city = city or CityIndicators()
    problems = []
    specs = dict(core.indicators)
    for name in city.off:
        if name not in specs:
            problems.append(f"indicators.off: unknown indicator '{name}'")
    for name, change in city.change.items():
        if name not in specs:
            problems.append(f"indicators.change.{name}: unknown indicator '{name}'")
            continue
        data = specs[name].model_dump()
        if change.params is not None:
            data["params"] = {**data["params"], **change.params}
        for key in ("weight", "min_input"):
            if getattr(change, key) is not None:
                data[key] = getattr(change, key)
        try:
            specs[name] = IndicatorSpec.model_validate(data)
        except ValidationError as exc:
            problems += [f"indicators.change.{name}: {p}" for p in format_validation_errors(exc)]
    for name, spec in city.local.items():
        if name in specs or not _ID.match(name):
            problems.append(
                f"indicators.local.{name}: the id must be lower_snake_case and not a core "
                "indicator's (change a core indicator under indicators.change)"
            )
            continue
        specs[name] = spec.model_copy(update={"tier": "local"})
    for name in city.off:
        specs.pop(name, None)
    for name, spec in specs.items():
        problems += [f"indicators.{name}: {p}" for p in _kind_problems(spec, kinds)]
    if problems:
        raise CityFileError("; ".join(problems), hint="see 'Indicators' in the README")
    groups = city.category_groups if city.category_groups is not None else core.category_groups
    return Indicators(specs=specs, category_groups=groups)


#: Geometry of the kind each method reads (default: points).
_METHOD_GEOMETRIES: dict[str, tuple[str, ...]] = {
    "area_share": ("polygon",),
    "access": ("point", "polygon"),
}


def _kind_problems(spec: IndicatorSpec, kinds: dict[str, LayerKind]) -> list[str]:
    kind_name = spec.kind
    if kind_name is None:
        return []
    kind = kinds.get(kind_name)
    if kind is None:
        return [f"unknown layer kind '{kind_name}' (known: {', '.join(sorted(kinds))})"]
    out = []
    geometries = _METHOD_GEOMETRIES.get(spec.method, ("point",))
    if kind.geometry not in geometries:
        out.append(
            f"method '{spec.method}' needs a {' or '.join(geometries)} kind, not '{kind_name}' "
            f"({kind.geometry})"
        )
    fields = spec.params.get("fields")
    values = list(fields) if isinstance(fields, list) else []
    weight = spec.params.get("weight")
    if isinstance(weight, str):
        values.append(weight)
    for name in values:  # averaged or weighed: numeric fields, never a sensitive one
        field = kind.fields.get(name)
        if field is None or field.type not in ("integer", "float"):
            numeric = sorted(f for f, fs in kind.fields.items() if fs.type in ("integer", "float"))
            out.append(
                f"'{name}' is not a numeric field of kind '{kind_name}' (numeric: {numeric})"
            )
        elif field.sensitive:
            out.append(f"'{name}' is sensitive: its values are never published")
    known = set(kind.fields) | set(kind.columns) | {"category_group", "hour"}
    conditions = []
    for key in ("where", "among"):
        text = spec.params.get(key)
        if isinstance(text, str):
            conditions += sorted(parse_filter(text).columns)
    for name in conditions:
        if name not in known:
            out.append(f"kind '{kind_name}' has no field '{name}' (fields: {sorted(known)})")
        elif name in kind.fields and kind.fields[name].sensitive and spec.min_input < 10:
            out.append(
                f"a condition on the sensitive field '{name}' needs min_input >= 10, so that no "
                "published value describes fewer than ten people"
            )
    return out


# ---------------------------------------------------------------- computation


@dataclass
class GridData:
    """What the methods need to know about one grid."""

    name: str
    ids: np.ndarray
    area_m2: np.ndarray  # area inside the study area
    population: np.ndarray | None  # NaN where unknown; None when the city has none


@dataclass
class Result:
    """Values and NULL reasons of every indicator on every grid.

    ``values[grid][indicator]`` is a float array (NaN: NULL) and ``reasons[grid][indicator]``
    says why each NULL is one (``None`` where there is a value); ``seconds`` is the time spent
    per method (the street network is built by the first network method).
    """

    values: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    reasons: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def gaps(self, ids: dict[str, np.ndarray]) -> pd.DataFrame:
        """One row per NULL value: grid, feature id, indicator and reason.

        Where every feature of a grid is NULL for one reason (no population in the city, no
        layer of the kind), one row with feature ``*`` stands for all of them.
        """
        parts = []
        for g, by_indicator in self.reasons.items():
            for name, why in by_indicator.items():
                missing = np.flatnonzero(np.isnan(self.values[g][name]))
                if not len(missing):
                    continue
                reasons = pd.Series(why[missing], dtype=object).fillna("no value").astype(str)
                if len(missing) == len(why) and reasons.nunique() == 1:
                    features, reasons = np.asarray(["*"], dtype=object), reasons.iloc[:1]
                else:
                    features = np.asarray(ids[g], dtype=object)[missing].astype(str)
                parts.append(
                    pd.DataFrame(
                        {
                            "grid": g,
                            "feature": features,
                            "indicator": name,
                            "null_reason": reasons.to_numpy(),
                        }
                    )
                )
        if not parts:
            return pd.DataFrame({k: pd.Series(dtype=object) for k in GAP_COLUMNS})
        return pd.concat(parts, ignore_index=True)

    def add_columns(self, data: pd.DataFrame, grid: str) -> pd.DataFrame:
        """Add a grid's indicator columns to its frame.

        An indicator that is already a column (``crime_count``, the units' ``population``)
        must agree with it, NULLs included.

        Raises
        ------
        RuntimeError
            If they disagree (a bug: one quantity computed two ways).

        """
        for name, column in self.values[grid].items():
            if name not in data:
                data[name] = column
                continue
            same = np.isclose(data[name].to_numpy(dtype=float, na_value=np.nan), column)
            both_null = np.isnan(column) & data[name].isna().to_numpy()
            if not (same | both_null).all():
                msg = f"indicator {name} on {grid} disagrees with the column of the same name"
                raise RuntimeError(msg)
        return data

    def coverage(self, name: str) -> dict[str, int]:
        """Per grid, how many features have a value of the indicator."""
        return {g: int(np.isfinite(v[name]).sum()) for g, v in self.values.items() if name in v}


#: Columns of the ``indicator_gaps`` layer.
GAP_COLUMNS = ("grid", "feature", "indicator", "null_reason")


class Context:
    """Inputs of the methods: grids, aggregates, records, network; built lazily."""

    def __init__(
        self,
        grids: dict[str, GridData],
        aggs: Aggregates,
        records: dict[str, Records],
        category_groups: dict[str, list[str]],
        locate: Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]],
        max_edge_m: float = 50.0,
    ):
        self.grids = grids
        self.aggs = aggs
        self.records = records
        self.category_groups = category_groups
        self.locate = locate
        self.max_edge_m = max_edge_m

    def members(self, kind: str) -> list[Records]:
        """Layers of a kind counted in its totals."""
        return [r for r in self.records.values() if r.kind.kind == kind and r.config.in_totals]

    def located(self, kind: str) -> np.ndarray:
        """Return the geometries of a kind's features that light or serve the streets.

        The accepted ones and those just outside the study area: a lamp across the boundary
        still lights the street inside, a stop across it still serves its residents.
        """
        parts = []
        for rec in self.members(kind):
            for geoms in (rec.geometry, rec.outside):
                if geoms is not None and len(geoms):
                    parts.append(geoms[~pd.isna(geoms)])
        return np.concatenate(parts) if parts else np.empty(0, dtype=object)

    def derived(self, rec: Records) -> pd.DataFrame:
        """Return the record table plus ``category_group`` and ``hour`` for conditions."""
        assert rec.table is not None
        table = rec.table
        out = table.copy(deep=False)
        if "category" in table:
            lookup = {label: g for g, labels in self.category_groups.items() for label in labels}
            out["category_group"] = table["category"].map(lookup)
        else:
            out["category_group"] = None
        if "datetime" in table and rec.time_known is not None:
            hours = table["datetime"].dt.hour.to_numpy(dtype=float, na_value=np.nan)
            out["hour"] = np.where(rec.time_known, hours, np.nan)
        else:
            out["hour"] = np.nan
        return out

    def point_sums(
        self, kind: str, where: Filter | None, weight: str | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Per grid, the (weighted) count of the kind's records matching ``where``.

        Returns the sums and the unweighted record counts; grids where a member layer has no
        location (hexagons of a unit-coded layer) are absent.
        """
        sums: dict[str, np.ndarray] = {g: np.zeros(len(d.ids)) for g, d in self.grids.items()}
        counts: dict[str, np.ndarray] = {g: np.zeros(len(d.ids)) for g, d in self.grids.items()}
        for rec in self.members(kind):
            assert rec.table is not None
            table = self.derived(rec)
            try:
                keep = np.ones(len(table), dtype=bool) if where is None else where.evaluate(table)
            except FilterEvaluationError as exc:
                msg = f"indicator condition {where.text!r} on layer '{rec.name}': {exc.message}"  # type: ignore[union-attr]
                raise CityFileError(msg, hint="fix the indicator's where/among") from None
            amount = table["count"].to_numpy(dtype=float, na_value=0) if "count" in table else 1.0
            amount = np.broadcast_to(np.asarray(amount, dtype=float), (len(table),)).copy()
            records = amount.copy()  # a row of a count table stands for that many records
            if weight is not None:
                amount = amount * table[weight].to_numpy(dtype=float, na_value=np.nan)
            positions = self.aggs.point_positions(rec)
            for g in list(sums):
                if g not in positions:
                    sums.pop(g)
                    counts.pop(g)
                    continue
                pos = positions[g]
                ok = keep & (pos >= 0) & np.isfinite(amount)
                n = len(self.grids[g].ids)
                sums[g] += count_by(pos[ok], n, amount[ok])
                counts[g] += count_by(pos[ok], n, records[ok])
        return sums, counts

    @cached_property
    def street_lengths(self) -> dict[str, np.ndarray] | None:
        """Street length per feature (the streets kind's layers), or None without streets."""
        values = self.aggs.values
        if not self.members("streets"):
            return None
        return {
            g: values[g]["street_length_m"] for g in self.grids if "street_length_m" in values[g]
        }

    @cached_property
    def network(self) -> StreetNetwork | None:
        """The street network of the city's streets layers (None without streets)."""
        lines = [r.geometry for r in self.members("streets") if r.geometry is not None]
        geoms = np.concatenate(lines) if lines else np.empty(0, dtype=object)
        geoms = geoms[~pd.isna(geoms)]
        if len(geoms) == 0:
            return None
        return StreetNetwork.from_lines(geoms, max_edge_m=self.max_edge_m)

    @cached_property
    def origins(self) -> tuple[dict[str, np.ndarray], np.ndarray] | None:
        """Network sample points: their feature per grid and their weight (residents)."""
        net = self.network
        if net is None:
            return None
        xy = net.xy
        positions = self.locate(xy[:, 0], xy[:, 1])
        weight = np.asarray(net.node_length, dtype=float).copy()
        primary = next(iter(g for g in self.grids if g != "units"), None)
        pop = self.grids[primary].population if primary else None
        if primary is not None and pop is not None and primary in positions:
            pos = positions[primary]
            inside = pos >= 0
            per_feature = count_by(pos[inside], len(pop), weight[inside])
            with np.errstate(invalid="ignore", divide="ignore"):
                scale = np.where(per_feature > 0, pop / per_feature, np.nan)
            scaled = weight * scale[np.where(inside, pos, 0)]
            # where the hexagon's population is unknown, the street length alone weighs
            weight = np.where(inside & np.isfinite(scaled), scaled, weight)
        return positions, weight


def hex_population(
    unit_population: np.ndarray, unit_ids: np.ndarray, crosswalk: pd.DataFrame, hex_ids: np.ndarray
) -> np.ndarray:
    """Spread unit populations onto hexagons by area (the crosswalk of one resolution).

    Each unit's residents are shared among the cells it overlaps in proportion to the area of
    the overlap, so that the hexagons' total equals the units'. A cell overlapping a unit of
    unknown population has an unknown population (NaN).
    """
    unit_pos = pd.Index(unit_ids).get_indexer(crosswalk["unit_id"])
    hex_pos = pd.Index(hex_ids).get_indexer(crosswalk["h3"])
    area = crosswalk["area_m2"].to_numpy(dtype=float)
    ok = (unit_pos >= 0) & (hex_pos >= 0)
    unit_pos, hex_pos, area = unit_pos[ok], hex_pos[ok], area[ok]
    per_unit = count_by(unit_pos, len(unit_ids), area)
    pop = unit_population[unit_pos]
    with np.errstate(invalid="ignore", divide="ignore"):
        part = np.where(per_unit[unit_pos] > 0, pop * area / per_unit[unit_pos], 0.0)
    known = np.isfinite(part)
    out = count_by(hex_pos[known], len(hex_ids), part[known])
    unknown = count_by(hex_pos[~known], len(hex_ids), None) > 0
    out[unknown] = np.nan
    return out


def make_locator(
    frame: SpatialFrame, hex_grids: list[Grid]
) -> Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]]:
    """Return a function placing points (working CRS) on every grid (-1: in no feature)."""

    def locate(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        lon, lat = transformer(frame.crs, WGS84).transform(x, y)
        where = frame.assign(np.asarray(lon), np.asarray(lat))
        out = {"units": np.where(where.inside, where.unit, -1)}
        for g in hex_grids:
            assert g.cells is not None and g.resolution is not None
            pos = pd.Index(g.cells).get_indexer(where.cells[g.resolution])
            out[g.name] = np.where(where.inside, pos, -1)
        return out

    return locate


def _null(n: int, reason: str) -> tuple[np.ndarray, np.ndarray]:
    return np.full(n, np.nan), np.full(n, reason, dtype=object)


def _ratio(
    num: np.ndarray, den: np.ndarray, scale: float, *, small: np.ndarray, small_reason: str
) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(~small & (den > 0), num / np.where(den > 0, den, 1) * scale, np.nan)
    reason = np.full(len(num), None, dtype=object)
    reason[small] = small_reason
    reason[~small & ~(den > 0)] = small_reason
    return value, reason


Values = dict[str, tuple[np.ndarray, np.ndarray]]


def _divide(
    base: Values,
    denominator: Callable[[str], np.ndarray | None],
    scale: float,
    *,
    small: Callable[[np.ndarray], np.ndarray],
    small_reason: str,
    missing_reason: str = "no denominator",
) -> Values:
    """Divide values by a per-grid denominator, keeping the reasons of values already NULL.

    Where ``small(denominator)`` holds, or the denominator is not positive, the value is NULL
    with ``small_reason``; a grid without a denominator is NULL with ``missing_reason``.
    """
    out: Values = {}
    for g, (num, reason) in base.items():
        den = denominator(g)
        if den is None:
            out[g] = _null(len(num), missing_reason)
            continue
        value, why = _ratio(
            num, np.nan_to_num(den), scale, small=small(den), small_reason=small_reason
        )
        kept = pd.isna(reason)
        out[g] = (np.where(kept, value, np.nan), np.where(kept, why, reason).astype(object))
    return out


def _kind_absent(ctx: Context, kind: str) -> str | None:
    if not ctx.members(kind):
        present = [r.name for r in ctx.records.values() if r.kind.kind == kind]
        if present:
            return f"every layer of kind '{kind}' has in_totals = false"
        return f"no {kind} layer in this city"
    return None


def _on_all_grids(ctx: Context, reason: str) -> Values:
    return {g: _null(len(d.ids), reason) for g, d in ctx.grids.items()}


def _missing_grids(ctx: Context, got: dict[str, Any], reason: str) -> Values:
    return {g: _null(len(d.ids), reason) for g, d in ctx.grids.items() if g not in got}


def _population(spec: IndicatorSpec, ctx: Context) -> Values:
    out: Values = {}
    for g, d in ctx.grids.items():
        if d.population is None:
            out[g] = _null(len(d.ids), "no population source in this city")
            continue
        reason = np.full(len(d.ids), None, dtype=object)
        reason[np.isnan(d.population)] = "no population for this feature"
        out[g] = (d.population.astype(float), reason)
    return out


def _number(spec: IndicatorSpec, key: str, default: float) -> float:
    value = spec.params.get(key, default)
    assert isinstance(value, int | float), key  # checked when the spec was validated
    return float(value)


def _filter(spec: IndicatorSpec, key: str) -> Filter | None:
    text = spec.params.get(key)
    return parse_filter(text) if isinstance(text, str) else None


def _count(spec: IndicatorSpec, ctx: Context) -> Values:
    return _counts_of(str(spec.params["kind"]), _filter(spec, "where"), ctx)


def _counts_of(kind: str, where: Filter | None, ctx: Context) -> Values:
    absent = _kind_absent(ctx, kind)
    if absent:
        return _on_all_grids(ctx, absent)
    sums, _ = ctx.point_sums(kind, where)
    grouped = where is not None and "category_group" in where.columns
    if grouped and sums and not any(float(v.sum()) > 0 for v in sums.values()):
        # no record of the group anywhere: the labels are not mapped (or the data has none
        # of these categories), not a city without such crime
        assert where is not None
        return _on_all_grids(
            ctx,
            f"no {kind} record in the data matches {where.text!r}: map the data's "
            "categories in [indicators.category_groups]",
        )
    out: Values = {g: (v, np.full(len(v), None, dtype=object)) for g, v in sums.items()}
    out |= _missing_grids(ctx, sums, "a layer of the kind is located by unit code only")
    return out


def rate_events(spec: IndicatorSpec, ctx: Context) -> dict[str, np.ndarray]:
    """Return the numerator of a rate indicator per grid (NaN where it has no value).

    Empirical Bayes smoothing needs the counts behind a rate, small populations included.
    """
    return {g: values for g, (values, _) in _count(spec, ctx).items()}


def _rate(spec: IndicatorSpec, ctx: Context) -> Values:
    counts = _count(spec, ctx)
    per = _number(spec, "per", 1000.0)
    least = max(spec.min_input, 1e-9)
    return _divide(
        counts,
        lambda g: ctx.grids[g].population,
        per,
        small=lambda pop: ~(pop >= least),
        small_reason=f"fewer than {spec.min_input:g} residents (or no population)",
        missing_reason="no population source in this city",
    )


def _density(spec: IndicatorSpec, ctx: Context) -> Values:
    of = str(spec.params["of"])
    base = (
        _population(spec, ctx)
        if of == "population"
        else _counts_of(of, _filter(spec, "where"), ctx)
    )
    return _divide(
        base,
        lambda g: ctx.grids[g].area_m2,
        1e6,
        small=lambda area: ~(area > 0),
        small_reason="no area inside the study area",
    )


def _share(spec: IndicatorSpec, ctx: Context) -> Values:
    kind = str(spec.params["kind"])
    absent = _kind_absent(ctx, kind)
    if absent:
        return _on_all_grids(ctx, absent)
    where, among = _filter(spec, "where"), _filter(spec, "among")
    weight = spec.params.get("weight")
    weight = weight if isinstance(weight, str) else None
    both = parse_filter(
        f"({where.text}) AND ({among.text})" if where and among else (where or among).text  # type: ignore[union-attr]
    )
    num, _ = ctx.point_sums(kind, both, weight)
    den, n = ctx.point_sums(kind, among, weight)
    if among is not None and all(float(c.sum()) == 0 for c in n.values()):
        reason = (
            "no time of day in the data (months only)"
            if among.columns == {"hour"}
            else f"no {kind} record has a value of {', '.join(sorted(among.columns))}"
        )
        return _on_all_grids(ctx, reason)
    out: Values = {}
    for g in den:
        small = n[g] < max(spec.min_input, 1)
        out[g] = _ratio(
            num[g],
            den[g],
            1.0,
            small=small,
            small_reason=f"fewer than {max(spec.min_input, 1):g} records",
        )
    out |= _missing_grids(ctx, den, "a layer of the kind is located by unit code only")
    return out


def _mean(spec: IndicatorSpec, ctx: Context) -> Values:
    kind = str(spec.params["kind"])
    absent = _kind_absent(ctx, kind)
    if absent:
        return _on_all_grids(ctx, absent)
    fields = [str(f) for f in spec.params["fields"]]  # type: ignore[union-attr]
    scale = _number(spec, "scale", 1.0)
    sums = {g: np.zeros(len(d.ids)) for g, d in ctx.grids.items()}
    counts = {g: np.zeros(len(d.ids)) for g, d in ctx.grids.items()}
    for rec in ctx.members(kind):
        assert rec.table is not None
        block = np.column_stack(
            [rec.table[f].to_numpy(dtype=float, na_value=np.nan) for f in fields]
        )
        finite = np.isfinite(block)
        n_values = finite.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            value = np.where(finite, block, 0.0).sum(axis=1) / n_values * scale
        weight = (
            rec.table["count"].to_numpy(dtype=float, na_value=0.0)
            if "count" in rec.table
            else np.ones(len(value))
        )
        has = np.isfinite(value) & (weight > 0)
        positions = ctx.aggs.point_positions(rec)
        for g in list(sums):
            if g not in positions:
                sums.pop(g)
                counts.pop(g)
                continue
            pos = positions[g]
            ok = has & (pos >= 0)
            sums[g] += count_by(pos[ok], len(sums[g]), (value * weight)[ok])
            counts[g] += count_by(pos[ok], len(sums[g]), weight[ok])
    out: Values = {}
    for g in sums:
        small = counts[g] < max(spec.min_input, 1)
        out[g] = _ratio(
            sums[g],
            counts[g],
            1.0,
            small=small,
            small_reason=f"fewer than {max(spec.min_input, 1):g} {kind} records with a value",
        )
    out |= _missing_grids(ctx, sums, "a layer of the kind is located by unit code only")
    return out


def _street_base(spec: IndicatorSpec, ctx: Context) -> dict[str, np.ndarray] | str:
    kind = str(spec.params["kind"])
    absent = _kind_absent(ctx, kind)
    if absent:
        return absent
    lengths = ctx.street_lengths
    if lengths is None:
        return "no streets layer in this city"
    return lengths


def _per_street_km(spec: IndicatorSpec, ctx: Context) -> Values:
    lengths = _street_base(spec, ctx)
    if isinstance(lengths, str):
        return _on_all_grids(ctx, lengths)
    least = max(spec.min_input, 1e-9)
    return _divide(
        _count(spec, ctx),
        lengths.get,
        1000.0,
        small=lambda length: length < least,
        small_reason=f"less than {spec.min_input:g} m of street",
        missing_reason="no streets layer in this city",
    )


def _coverage(spec: IndicatorSpec, ctx: Context) -> Values:
    lengths = _street_base(spec, ctx)
    if isinstance(lengths, str):
        return _on_all_grids(ctx, lengths)
    kind = str(spec.params["kind"])
    distance = _number(spec, "distance_m", 0.0)
    geoms = ctx.located(kind)
    if len(geoms) == 0:
        return _on_all_grids(ctx, f"no located {kind} records")
    streets = np.concatenate([r.geometry for r in ctx.members("streets")])
    covered = near_segments(streets, geoms, distance)
    lit_lengths = ctx.aggs.line_lengths(covered)
    out: Values = {}
    for g, length in lengths.items():
        out[g] = _ratio(
            lit_lengths[g],
            length,
            1.0,
            small=length < max(spec.min_input, 1e-9),
            small_reason=f"less than {spec.min_input:g} m of street",
        )
    return out


def near_segments(lines: np.ndarray, points: np.ndarray, distance: float) -> np.ndarray:
    """Return the stretches of lines within ``distance`` of any point, as 2-point lines.

    Exact: each straight segment's stretch inside each nearby circle is solved analytically
    (a quadratic along the segment), and the stretches of one segment are merged, so that a
    metre near two lamps counts once. No polygon buffer is built (a union of thousands of
    buffers, then intersecting the streets with it, is slow and approximates the circles).
    """
    parts = shapely.get_parts(lines[~pd.isna(lines)])  # a MultiLineString's parts are apart
    coords, owner = shapely.get_coordinates(parts, return_index=True)
    same = owner[1:] == owner[:-1]
    a, b = coords[:-1][same], coords[1:][same]
    if len(a) == 0 or len(points) == 0:
        return np.empty(0, dtype=object)
    segments = shapely.linestrings(np.stack([a, b], axis=1))
    s_idx, p_idx = shapely.STRtree(points).query(segments, predicate="dwithin", distance=distance)
    if len(s_idx) == 0:
        return np.empty(0, dtype=object)
    pxy = shapely.get_coordinates(points)[p_idx]
    d = b[s_idx] - a[s_idx]
    f = a[s_idx] - pxy
    qa = (d * d).sum(axis=1)
    qb = 2 * (f * d).sum(axis=1)
    qc = (f * f).sum(axis=1) - distance**2
    root = np.sqrt(np.maximum(qb * qb - 4 * qa * qc, 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        t0 = np.clip((-qb - root) / (2 * qa), 0.0, 1.0)
        t1 = np.clip((-qb + root) / (2 * qa), 0.0, 1.0)
    ok = np.isfinite(t0) & np.isfinite(t1) & (t1 > t0)
    s_idx, t0, t1 = s_idx[ok], t0[ok], t1[ok]
    # merge the intervals of each segment: offset segments apart, sort, running maximum
    lo, hi = s_idx * 2.0 + t0, s_idx * 2.0 + t1
    order = np.argsort(lo, kind="stable")
    lo, hi, s_idx = lo[order], hi[order], s_idx[order]
    reach = np.maximum.accumulate(hi)
    start = np.ones(len(lo), dtype=bool)
    start[1:] = lo[1:] > reach[:-1]
    first = np.flatnonzero(start)
    last = np.r_[first[1:], len(lo)] - 1
    seg = s_idx[first]
    u0, u1 = lo[first] - seg * 2.0, reach[last] - seg * 2.0
    sa, sd = a[seg], b[seg] - a[seg]
    ends = np.stack([sa + sd * u0[:, None], sa + sd * u1[:, None]], axis=1)
    return shapely.linestrings(ends)


def _area_share(spec: IndicatorSpec, ctx: Context) -> Values:
    kind = str(spec.params["kind"])
    absent = _kind_absent(ctx, kind)
    if absent:
        return _on_all_grids(ctx, absent)
    total = next(r.kind.total for r in ctx.members(kind))
    assert total is not None
    out: Values = {}
    for g, d in ctx.grids.items():
        area = ctx.aggs.values[g][total]
        out[g] = _ratio(
            area, d.area_m2, 1.0, small=~(d.area_m2 > 0), small_reason="no area in the study area"
        )
    return out


def _targets(spec: IndicatorSpec, ctx: Context) -> tuple[np.ndarray, np.ndarray] | str:
    """Network nodes of the destinations and their start offsets (metres)."""
    kind = str(spec.params["kind"])
    absent = _kind_absent(ctx, kind)
    if absent:
        return absent
    net = ctx.network
    if net is None:
        return "no streets layer in this city (network distances need one)"
    all_geoms = ctx.located(kind)
    if len(all_geoms) == 0:
        return f"no located {kind} records"
    if ctx.records[ctx.members(kind)[0].name].kind.geometry == "polygon":
        nodes = net.nodes_near(all_geoms, 25.0)
        return np.asarray(nodes, dtype=np.int64), np.zeros(len(nodes))
    node, offset = net.snap(all_geoms, 500.0)
    ok = node >= 0
    return node[ok].astype(np.int64), offset[ok]


def _network_values(
    spec: IndicatorSpec, ctx: Context, reduce: Callable[[np.ndarray], np.ndarray]
) -> Values:
    targets = _targets(spec, ctx)
    if isinstance(targets, str):
        return _on_all_grids(ctx, targets)
    origins, network = ctx.origins, ctx.network
    assert origins is not None and network is not None  # _targets checked the network
    positions, weight = origins
    distance = network.distance_to(*targets)
    value = reduce(distance)
    out: Values = {}
    for g, d in ctx.grids.items():
        n = len(d.ids)
        if g not in positions:
            out[g] = _null(n, "no street network sample points located on this grid")
            continue
        pos = positions[g]
        ok = (pos >= 0) & np.isfinite(weight) & (weight > 0)
        points = count_by(pos[pos >= 0], n, None)
        reach = ok & np.isfinite(value)
        num = count_by(pos[reach], n, (value * weight)[reach])
        den = count_by(pos[reach], n, weight[reach])
        small = points < max(spec.min_input, 1)
        v, why = _ratio(
            num,
            den,
            1.0,
            small=small,
            small_reason=f"fewer than {max(spec.min_input, 1):g} street sample points "
            "(outside the street network's extent)",
        )
        why = np.where(~small & ~(den > 0), "no destination reachable on the street network", why)
        out[g] = (v, why.astype(object))
    return out


def _network_distance(spec: IndicatorSpec, ctx: Context) -> Values:
    return _network_values(spec, ctx, lambda d: d)


def _access(spec: IndicatorSpec, ctx: Context) -> Values:
    limit = _number(spec, "distance_m", 0.0)
    return _network_values(spec, ctx, lambda d: (d <= limit).astype(float))


METHODS: dict[str, Callable[[IndicatorSpec, Context], Values]] = {
    "population": _population,
    "count": _count,
    "rate": _rate,
    "density": _density,
    "share": _share,
    "mean": _mean,
    "per_street_km": _per_street_km,
    "coverage": _coverage,
    "area_share": _area_share,
    "network_distance": _network_distance,
    "access": _access,
}


def compute(
    indicators: Indicators, ctx: Context, *, advance: Callable[[int], None] | None = None
) -> Result:
    """Compute every indicator on every grid.

    Parameters
    ----------
    indicators
        The city's indicators.
    ctx
        Grids, aggregates, records and street network.
    advance
        Called with 1 after each indicator (progress reporting).

    Returns
    -------
    Result

    """
    result = Result()
    outside = {g.name: g.outside for g in ctx.aggs.grids.values() if g.outside is not None}
    for name, spec in indicators.specs.items():
        t0 = time.perf_counter()
        values = METHODS[spec.method](spec, ctx)
        for g, mask in outside.items():
            if g in values and mask.any():
                v, why = values[g]
                why = why.copy()
                why[mask] = "outside every admin unit (no data can be recorded there)"
                values[g] = (np.where(mask, np.nan, v), why)
        result.seconds[spec.method] = result.seconds.get(spec.method, 0.0) + (
            time.perf_counter() - t0
        )
        for g, (v, why) in values.items():
            result.values.setdefault(g, {})[name] = np.asarray(v, dtype=float)
            result.reasons.setdefault(g, {})[name] = np.asarray(why, dtype=object)
        if advance is not None:
            advance(1)
    return result


def unit_population(frame: SpatialFrame, records: dict[str, Records]) -> np.ndarray | None:
    """Residents per unit: the units layer's column, or a table of values per unit.

    Units without a value are NaN (unknown); ``None`` when the city has no population.
    """
    if "population" in frame.units:
        return frame.units["population"].to_numpy(dtype=float)
    for rec in records.values():
        if rec.kind.geometry == "table" and "population" in rec.config.columns:
            assert rec.table is not None and rec.unit is not None
            out = np.full(len(frame.units), np.nan)
            out[rec.unit] = rec.table["population"].to_numpy(dtype=float, na_value=np.nan)
            return out
    return None


def grid_data(
    frame: SpatialFrame,
    hex_grids: list[Grid],
    hex_areas: dict[str, np.ndarray],
    crosswalk: pd.DataFrame,
    records: dict[str, Records],
    aggs: Aggregates,
) -> dict[str, GridData]:
    """Return the grids as the methods see them: ids, area in the study area, population.

    A population raster (``population = true``) gives every grid its exact zonal sum
    (dasymetric: residents where the raster puts them); otherwise the units' population is
    shared onto hexagons by area.
    """
    unit_ids = frame.units["unit_id"].to_numpy()
    raster = next((r for r in records.values() if r.config.population), None)
    areas = {"units": np.asarray(shapely.area(frame.units_in_study_area)), **hex_areas}
    ids = {"units": unit_ids, **{g.name: g.ids for g in hex_grids}}
    if raster is not None:
        by_raster = {}
        for name in ids:
            values = aggs.values[name]
            pixels = values[f"{raster.name}_pixels"]
            pop = np.where(pixels > 0, values[f"{raster.name}_sum"], np.nan)
            by_raster[name] = GridData(name, ids[name], areas[name], pop)
        return by_raster
    unit_pop = unit_population(frame, records)
    out = {"units": GridData("units", unit_ids, areas["units"], unit_pop)}
    for grid in hex_grids:
        hex_pop = None
        if unit_pop is not None:
            part = crosswalk[crosswalk["resolution"] == grid.resolution]
            hex_pop = hex_population(unit_pop, unit_ids, part, grid.ids)
        out[grid.name] = GridData(grid.name, grid.ids, hex_areas[grid.name], hex_pop)
    return out


def sources(spec: IndicatorSpec, ctx: Context) -> list[str]:
    """Input layers an indicator reads."""
    names = [r.name for r in ctx.members(spec.kind)] if spec.kind else []
    if spec.method in ("per_street_km", "coverage", "network_distance", "access"):
        names += [r.name for r in ctx.members("streets")]
    return list(dict.fromkeys(names))


def columns(indicators: Indicators, ctx: Context) -> list[Column]:
    """Return the catalogue column of each indicator."""
    out = []
    for name, spec in indicators.specs.items():
        text = spec.title + (f". {spec.description}" if spec.description else ".")
        out.append(
            Column(
                name=name,
                type="float",
                unit=spec.unit,
                description=text + " NULL with a reason in the indicator_gaps layer.",
                extensive=spec.extensive,
                sources=tuple(sources(spec, ctx)),
            )
        )
    return out


def table(indicators: Indicators, result: Result, ctx: Context) -> pd.DataFrame:
    """Return the ``indicators`` layer: one row per indicator."""
    rows = []
    for name, spec in indicators.specs.items():
        coverage = result.coverage(name)
        reason = ""
        if not any(coverage.values()):
            parts = [pd.Series(g[name]) for g in result.reasons.values() if name in g]
            reasons = pd.concat(parts).dropna() if parts else pd.Series(dtype=object)
            reason = str(reasons.mode().iloc[0]) if len(reasons) else "no value"
        rows.append(
            {
                "id": name,
                "title": spec.title,
                "unit": spec.unit,
                "method": spec.method,
                "parameters": json.dumps(spec.params, sort_keys=True),
                "direction": spec.direction,
                "dimension": spec.dimension,
                "tier": spec.tier,
                "extensive": spec.extensive,
                "weight": spec.weight,
                "min_input": spec.min_input,
                "sources": ", ".join(sources(spec, ctx)),
                "description": spec.description,
                "coverage": json.dumps(coverage),
                "null_reason": reason,
            }
        )
    return pd.DataFrame(rows, columns=[c.name for c in INDICATORS_COLUMNS])


def markdown_table(indicators: dict[str, IndicatorSpec] | None = None) -> str:
    """Return the README's table of indicators, generated from their declarations."""
    specs = _core_file().indicators if indicators is None else indicators
    rows = [
        "| id | title | unit | method (parameters) | direction | dimension | min input |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, spec in specs.items():
        params = "; ".join(
            f"{k} = {', '.join(v) if isinstance(v, list) else v}" for k, v in spec.params.items()
        )
        method = f"`{spec.method}`" + (f" ({params})" if params else "")
        rows.append(
            f"| `{name}` | {spec.title} | {spec.unit} | {method} | {spec.direction} | "
            f"{spec.dimension} | {spec.min_input:g} |"
        )
    return "\n".join(rows)
