r"""Hotspots, trends and progress: the spatial and temporal statistics of a build.

Runs after the indicators, on every grid (admin units and every H3 resolution), and returns
columns for the grids, long tables, a density surface and a manifest section:

- **Getis-Ord Gi\\*** and **Local Moran's I** of ``crime_count`` (and of every variable the city
  file names in ``[hotspots] variables``): hexagons with binary H3 k-ring weights (cells of the
  cover only), admin units with queen contiguity (islands get their nearest unit, reported).
  Gi\\* has analytic z-scores and two-sided p-values (or conditional randomisation); Local
  Moran's I has seeded conditional-randomisation pseudo p-values; both are corrected for
  multiple testing with Benjamini-Hochberg (``fdr``) before classes are given. Global Moran's I
  per grid and variable goes into the manifest. Too few features or incidents give "not enough
  data", never a map of noise.
- **Empirical Bayes** smoothed rates (global and spatial) for the rates the city names.
- **Density surface** of accepted crimes (:mod:`geo_usm.density`), ``risk_surface.tif``.
- **Time**: a ``time_series`` table (counts per month and feature, rates per 1,000 residents
  where the grid has a population, city-wide months and days), trends (Mann-Kendall, seasonal
  Mann-Kendall and the month-of-year profile from two years of data), and **emerging hotspots**
  (Gi\\* per month plus a Mann-Kendall trend, ArcGIS's categories).
- **Progress** against a baseline and targets (``[progress]``): exact Poisson rate-ratio tests.
- **Hotspot evaluation**: hotspots of earlier months against later months (hit rate, PAI, PEI\\*,
  RRI) and crime concentration (top 5 % share, Gini, Gini adjusted for sparse counts).

The statistics themselves live in :mod:`geo_usm.stats`; this module chooses inputs, applies the
minimum-data rules and shapes the outputs declared in the catalogue.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator, model_validator
from scipy import sparse

from geo_usm._model import StrictInput
from geo_usm.catalog import Column
from geo_usm.errors import CityFileError
from geo_usm.stats import evaluation, spatial, temporal

GiClass = Literal["hot_99", "hot_95", "hot_90", "cold_99", "cold_95", "cold_90", "not_significant"]

#: The month pattern of periods.
_MONTH = r"^\d{4}-(0[1-9]|1[0-2])$"


class HotspotsConfig(StrictInput):
    """The city file's ``[hotspots]`` table."""

    variables: list[str] = Field(
        default_factory=lambda: ["crime_count"],
        description="grid columns (counts or indicators) to test for hotspots; crime_count's "
        "results also go on the grids as gi_z, gi_p, gi_class, lisa_i, lisa_p, lisa_class",
    )
    k: int = Field(default=1, ge=1, le=5, description="H3 k-ring of hexagon neighbours")
    contiguity_tolerance_m: float = Field(
        default=1.0,
        ge=0,
        le=100,
        description="admin units whose boundaries come this close are neighbours (0: only a "
        "shared vertex, libpysal's Queen rule)",
    )
    gi_inference: Literal["analytic", "permutation"] = Field(
        default="analytic",
        description="Gi* p-values from the normal approximation or conditional randomisation",
    )
    permutations: int = Field(
        default=999, ge=99, le=99_999, description="conditional randomisation permutations"
    )
    seed: int = Field(default=20261124, ge=0, description="seed of every permutation test")
    fdr: bool = Field(default=True, description="Benjamini-Hochberg correction before classes")
    alpha: float = Field(
        default=0.05, gt=0, lt=0.5, description="significance of Local Moran's I classes"
    )
    min_features: int = Field(default=30, ge=3, description="fewest features with a value")
    min_incidents: int = Field(
        default=30, ge=0, description="fewest incidents (sum of a count variable)"
    )
    eb_rates: list[str] = Field(
        default_factory=lambda: ["crime_rate"],
        description="rate indicators (per population) to smooth with Empirical Bayes",
    )


class DensityConfig(StrictInput):
    """The city file's ``[density]`` table (the crime density surface)."""

    enabled: bool = Field(default=True, description="write risk_surface.tif")
    cell_size_m: float | None = Field(default=None, gt=0, description="cell size in metres")
    bandwidth_m: float | None = Field(
        default=None, gt=0, description="kernel radius in metres (default: the documented rule)"
    )
    by: list[Literal["category_group", "month"]] = Field(
        default_factory=list, description="extra bands, one per category group or month"
    )


class TrendsConfig(StrictInput):
    """The city file's ``[trends]`` table (time series, emerging hotspots, evaluation)."""

    variables: list[str] | None = Field(
        default=None,
        description="monthly count variables to analyse (default: every one with months)",
    )
    min_periods: int = Field(
        default=10, ge=3, description="fewest months for trends and emerging hotspots"
    )
    train_periods: int = Field(
        default=12, ge=1, description="months of history behind each evaluated hotspot map"
    )


class Target(StrictInput):
    """One target: a change of a variable by a year."""

    variable: str = Field(description="a monthly count variable, e.g. crime_count")
    change: float = Field(gt=-1, description="relative change from the baseline, -0.5 = halve")
    year: int = Field(ge=2000, le=2100, description="year by which the change is due")


class ProgressConfig(StrictInput):
    """The city file's ``[progress]`` table: a baseline, a current period and targets."""

    baseline: list[str] = Field(
        min_length=2, max_length=2, description="first and last month, YYYY-MM"
    )
    current: list[str] = Field(
        min_length=2, max_length=2, description="first and last month, YYYY-MM"
    )
    targets: list[Target] = Field(default_factory=list)

    @field_validator("baseline", "current")
    @classmethod
    def _months(cls, v: list[str]) -> list[str]:
        import re

        for m in v:
            if not re.match(_MONTH, m):
                raise ValueError(f"'{m}' is not a month written YYYY-MM")
        if v[0] > v[1]:
            raise ValueError(f"the period {v[0]}..{v[1]} ends before it starts")
        return v

    @model_validator(mode="after")
    def _order(self) -> ProgressConfig:
        if self.current[0] <= self.baseline[1]:
            raise ValueError("the current period must start after the baseline ends")
        return self


# --- the catalogue declarations --------------------------------------------------------------

GRID_HOTSPOT_COLUMNS = (
    Column(
        name="gi_z",
        type="float",
        unit="1",
        description="Getis-Ord Gi* z-score of crime_count (binary weights, the feature itself "
        "included). NULL: not enough data or no value (hotspots layer, manifest).",
    ),
    Column(
        name="gi_p",
        type="float",
        unit="1",
        description="Two-sided p-value of gi_z (before the FDR correction; p_fdr in the "
        "hotspots layer).",
    ),
    Column(
        name="gi_class",
        type="string",
        description="hot_99, hot_95, hot_90, cold_99, cold_95, cold_90 or not_significant, "
        "from the FDR-adjusted p-value at 0.01, 0.05 and 0.10.",
    ),
    Column(
        name="lisa_i",
        type="float",
        unit="1",
        description="Local Moran's I of crime_count (row-standardised weights).",
    ),
    Column(
        name="lisa_p",
        type="float",
        unit="1",
        description="Pseudo p-value of lisa_i (conditional randomisation, folded as "
        "PySAL/GeoDa; before the FDR correction).",
    ),
    Column(
        name="lisa_class",
        type="string",
        description="HH, LL, LH, HL (quadrant of a significant feature) or not_significant, "
        "from the FDR-adjusted pseudo p-value at alpha.",
    ),
)

HOTSPOTS_COLUMNS = (
    Column(name="grid", type="string", description="Grid layer: units, hex or hex_r<N>."),
    Column(name="feature", type="string", description="unit_id or h3; '*' for a whole grid."),
    Column(name="variable", type="string", description="The variable tested."),
    Column(name="statistic", type="string", description="gi_star or local_moran."),
    Column(name="value", type="float", description="Gi* z-score or Local Moran's I."),
    Column(name="p", type="float", description="p-value (analytic or pseudo, see parameters)."),
    Column(name="p_fdr", type="float", description="Benjamini-Hochberg adjusted p-value."),
    Column(name="class", type="string", description="Hotspot or cluster class."),
    Column(name="parameters", type="string", description="Weights and inference, as JSON."),
    Column(name="null_reason", type="string", description="Why a grid has no result."),
)
TIME_SERIES_COLUMNS = (
    Column(name="grid", type="string", description="units, hex, hex_r<N>, or city."),
    Column(name="feature", type="string", description="unit_id or h3; '*' for the city."),
    Column(name="period", type="string", description="Month YYYY-MM or day YYYY-MM-DD."),
    Column(
        name="variable",
        type="string",
        description="A count, or '<count>_per_1000': that count per 1,000 residents in the "
        "period (grids with a population).",
    ),
    Column(name="value", type="float", description="Its value in the period."),
)
EMERGING_COLUMNS = (
    Column(name="grid", type="string", description="Grid layer."),
    Column(name="feature", type="string", description="unit_id or h3."),
    Column(name="variable", type="string", description="Monthly count analysed."),
    Column(
        name="pattern",
        type="string",
        description="new, consecutive, intensifying, persistent, diminishing, sporadic, "
        "oscillating or historical hot/cold spot, or no_pattern (README, Emerging hotspots).",
    ),
    Column(name="periods", type="integer", description="Months in the space-time cube."),
    Column(name="hot_periods", type="integer", description="Months significantly hot."),
    Column(name="cold_periods", type="integer", description="Months significantly cold."),
    Column(name="z_trend_tau", type="float", description="Mann-Kendall tau of the Gi* z."),
    Column(name="z_trend_p", type="float", description="Mann-Kendall p of the Gi* z."),
    Column(name="count_trend_tau", type="float", description="Mann-Kendall tau of counts."),
    Column(name="count_trend_p", type="float", description="Mann-Kendall p of counts."),
)
PROGRESS_COLUMNS = (
    Column(name="grid", type="string", description="units, hex, hex_r<N>, or city."),
    Column(name="feature", type="string", description="unit_id or h3; '*' for the city."),
    Column(name="variable", type="string", description="Monthly count variable."),
    Column(name="baseline_period", type="string", description="First..last month."),
    Column(name="current_period", type="string", description="First..last month."),
    Column(name="baseline", type="float", unit="count", description="Count in the baseline."),
    Column(name="current", type="float", unit="count", description="Count in the current period."),
    Column(name="change", type="float", unit="count", description="current - baseline."),
    Column(
        name="change_pct",
        type="float",
        unit="%",
        description="Change per month of period, in % of the baseline (NULL when it is 0).",
    ),
    Column(name="rate_ratio", type="float", unit="1", description="Monthly rate ratio."),
    Column(name="p", type="float", unit="1", description="Exact two-sided p (Poisson)."),
    Column(name="ci_low", type="float", unit="1", description="95 % CI of the rate ratio."),
    Column(name="ci_high", type="float", unit="1", description="95 % CI of the rate ratio."),
    Column(
        name="yearly_change",
        type="float",
        unit="1",
        description="Observed compound change per year between the periods' middles.",
    ),
    Column(name="target_change", type="float", unit="1", description="Target change."),
    Column(name="target_year", type="integer", description="Year the target is due."),
    Column(
        name="projected",
        type="float",
        unit="count per year",
        description="Count in the target year if the observed yearly change goes on.",
    ),
    Column(
        name="required",
        type="float",
        unit="count per year",
        description="Count per year the target asks for: the baseline's, times 1 + change.",
    ),
    Column(name="on_track", type="boolean", description="Projected meets the target."),
)
EVALUATION_COLUMNS = (
    Column(name="grid", type="string", description="Grid layer."),
    Column(name="variable", type="string", description="Monthly count variable."),
    Column(
        name="evaluation",
        type="string",
        description="prior_counts or gi_star (hotspot maps from earlier months, tested on the "
        "next month), or concentration.",
    ),
    Column(name="period", type="string", description="Test month, 'mean' or 'all'."),
    Column(name="area_share", type="float", unit="1", description="Share of area flagged."),
    Column(name="metric", type="string", description="hit_rate, pai, pei_star, rri, ..."),
    Column(name="value", type="float", description="Its value."),
)


def smoothed_rates(config: HotspotsConfig, specs: Mapping[str, Any]) -> list[str]:
    """Return the rates to smooth: those of ``eb_rates`` that are rate indicators of the city.

    The default (``crime_rate``) is skipped quietly when a city switches it off; a rate the
    city names itself is checked with the city file.
    """
    return [r for r in config.eb_rates if r in specs and specs[r].method == "rate"]


def eb_columns(rates: Sequence[str]) -> tuple[Column, ...]:
    """Columns of the Empirical Bayes rates of a city (:func:`smoothed_rates`)."""
    out = []
    for rate in rates:
        out.append(
            Column(
                name=f"{rate}_eb",
                type="float",
                unit="per 1,000 residents",
                description=f"{rate} smoothed by global Empirical Bayes (Marshall): small "
                "populations shrink towards the city rate.",
            )
        )
        out.append(
            Column(
                name=f"{rate}_eb_spatial",
                type="float",
                unit="per 1,000 residents",
                description=f"{rate} smoothed by spatial Empirical Bayes (towards the rate of "
                "the feature's neighbours).",
            )
        )
    return tuple(out)


# --- inputs and outputs -----------------------------------------------------------------------


@dataclass
class GridInput:
    """One grid as the analysis sees it.

    ``values`` holds every column of the grid (counts, indicators) with NaN for no data;
    ``monthly[variable]`` is ``(months, features x months)``; ``area_m2`` is the area inside
    the study area; ``cells`` (hexagons) or ``geometry`` (units) define the neighbours.
    """

    name: str
    ids: np.ndarray
    values: pd.DataFrame
    monthly: Mapping[str, tuple[list[str], np.ndarray]]
    area_m2: np.ndarray
    population: np.ndarray | None
    cells: np.ndarray | None = None
    geometry: np.ndarray | None = None
    outside: np.ndarray | None = None


@dataclass
class Analysis:
    """What the analysis adds to a build."""

    columns: dict[str, pd.DataFrame] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)


def _weights(grid: GridInput, k: int, tolerance: float) -> tuple[sparse.csr_matrix, list[str]]:
    if grid.cells is not None:
        return spatial.hex_weights(grid.cells, k=k), []
    assert grid.geometry is not None
    w, islands = spatial.queen_weights(grid.geometry, tolerance=tolerance)
    return w, [str(grid.ids[i]) for i in islands]


def _with_value(grid: GridInput, y: np.ndarray) -> np.ndarray:
    ok = np.isfinite(y)
    if grid.outside is not None:
        ok &= ~grid.outside
    return ok


def _variable(grid: GridInput, name: str) -> np.ndarray:
    if name not in grid.values:
        raise CityFileError(
            f"[hotspots] variables: '{name}' is not a column of the grids",
            hint="name a count (crime_count, count_<layer>) or an indicator id",
        )
    return grid.values[name].to_numpy(dtype=float, na_value=np.nan)


def _is_count(name: str) -> bool:
    return name.endswith("_count") or name.startswith("count_")


def hotspot_tests(
    grids: Sequence[GridInput], config: HotspotsConfig
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, dict[str, Any], dict[str, sparse.csr_matrix]]:
    """Gi* and Local Moran's I of every configured variable on every grid.

    Returns the grid columns (``crime_count`` only), the ``hotspots`` table, the manifest
    section and the weights of each grid (reused by the temporal analyses).
    """
    columns: dict[str, pd.DataFrame] = {}
    rows: list[pd.DataFrame] = []
    section: dict[str, Any] = {}
    weights: dict[str, sparse.csr_matrix] = {}
    for grid in grids:
        w_full, islands = _weights(grid, config.k, config.contiguity_tolerance_m)
        weights[grid.name] = w_full
        n = len(grid.ids)
        cols = {c.name: np.full(n, np.nan) for c in GRID_HOTSPOT_COLUMNS}
        cols["gi_class"] = np.full(n, None, dtype=object)
        cols["lisa_class"] = np.full(n, None, dtype=object)
        described = (
            f"H3 k-ring {config.k}, binary"
            if grid.cells is not None
            else "queen contiguity (a shared vertex, or boundaries within "
            f"{config.contiguity_tolerance_m:g} m), nearest neighbour for islands"
        )
        grid_section: dict[str, Any] = {"weights": described, "islands": islands}
        for var in config.variables:
            y = _variable(grid, var)
            ok = _with_value(grid, y)
            reason = spatial.enough_data(
                y[ok],
                min_features=config.min_features,
                min_incidents=config.min_incidents if _is_count(var) else None,
            )
            if reason is None and np.nanvar(y[ok]) == 0:
                reason = "every feature has the same value"
            params = {
                "weights": described,
                "gi_inference": config.gi_inference,
                "permutations": config.permutations,
                "seed": config.seed,
                "fdr": "benjamini-hochberg" if config.fdr else "none",
                "alpha": config.alpha,
            }
            if reason is not None:
                grid_section[var] = {"null_reason": f"not enough data: {reason}"}
                rows.append(
                    pd.DataFrame(
                        {
                            "grid": [grid.name],
                            "feature": ["*"],
                            "variable": [var],
                            "statistic": ["gi_star, local_moran"],
                            "value": [np.nan],
                            "p": [np.nan],
                            "p_fdr": [np.nan],
                            "class": [None],
                            "parameters": [json.dumps(params)],
                            "null_reason": [f"not enough data: {reason}"],
                        }
                    )
                )
                continue
            w = spatial.subset(w_full, ok)
            yy = y[ok]
            gi_perms = lisa_perms = config.permutations
            if config.fdr:  # enough permutations for the smallest pseudo p to pass BH
                gi_perms = _permutations(config.permutations, len(yy), 0.01)
                lisa_perms = _permutations(config.permutations, len(yy), config.alpha)
            gi = spatial.gi_star(
                yy,
                w,
                permutations=gi_perms if config.gi_inference == "permutation" else 0,
                seed=config.seed,
            )
            gi_p = gi.p_sim if config.gi_inference == "permutation" else gi.p
            assert gi_p is not None
            gi_q = spatial.fdr_bh(gi_p) if config.fdr else gi_p
            gi_cls = spatial.gi_class(gi.z, gi_q)
            lisa = spatial.local_moran(yy, w, permutations=lisa_perms, seed=config.seed)
            lisa_q = spatial.fdr_bh(lisa.p_sim) if config.fdr else lisa.p_sim
            lisa_cls = spatial.lisa_class(lisa.q, lisa_q, config.alpha)
            moran = spatial.global_moran(
                yy,
                w,
                permutations=config.permutations if len(yy) <= GLOBAL_PERMUTATION_FEATURES else 0,
                seed=config.seed,
            )
            params["permutations"] = {
                "local_moran": lisa_perms,
                "gi_star": gi_perms if config.gi_inference == "permutation" else 0,
            }
            grid_section[var] = {
                "features": int(ok.sum()),
                "permutations": params["permutations"],
                "global_moran": {k: _round(v) for k, v in moran.items()},
                "hot": int(np.isin(gi_cls, ["hot_99", "hot_95", "hot_90"]).sum()),
                "cold": int(np.isin(gi_cls, ["cold_99", "cold_95", "cold_90"]).sum()),
                "lisa": {c: int((lisa_cls == c).sum()) for c in ("HH", "LL", "LH", "HL")},
            }
            ids = np.asarray(grid.ids, dtype=object)[ok].astype(str)
            text = json.dumps(params)
            for stat, value, p, q, cls in (
                ("gi_star", gi.z, gi_p, gi_q, gi_cls),
                ("local_moran", lisa.i, lisa.p_sim, lisa_q, lisa_cls),
            ):
                rows.append(
                    pd.DataFrame(
                        {
                            "grid": grid.name,
                            "feature": ids,
                            "variable": var,
                            "statistic": stat,
                            "value": value,
                            "p": p,
                            "p_fdr": q,
                            "class": cls,
                            "parameters": text,
                            "null_reason": None,
                        }
                    )
                )
            if var == "crime_count":
                cols["gi_z"][ok], cols["gi_p"][ok] = gi.z, gi_p
                cols["gi_class"][ok] = gi_cls
                cols["lisa_i"][ok], cols["lisa_p"][ok] = lisa.i, lisa.p_sim
                cols["lisa_class"][ok] = lisa_cls
        columns[grid.name] = pd.DataFrame(cols)
        section[grid.name] = grid_section
    table = pd.concat(rows, ignore_index=True) if rows else _empty(HOTSPOTS_COLUMNS)
    return columns, table, section, weights


#: Most permutations a test is given: BH then flags features when at least n / 100,000 * 20
#: of them reach the smallest pseudo p-value (99,999 take 0.1 s on 3,000 features).
MAX_PERMUTATIONS = 99_999
#: Above this many features global Moran's I keeps its normal approximation (exact enough
#: there), and its 999 full permutations (seconds) are skipped.
GLOBAL_PERMUTATION_FEATURES = 10_000


def _permutations(configured: int, n: int, level: float) -> int:
    """Return enough permutations for a feature to pass Benjamini-Hochberg at ``level``.

    The smallest pseudo p-value is ``1 / (permutations + 1)``; after the correction over ``n``
    tests it is ``n / (permutations + 1)``, so 999 permutations can never flag anything in a
    grid of more than 50 features at 0.05. The count is raised to the next ``10^k - 1`` that
    reaches ``level`` (never lowered, at most :data:`MAX_PERMUTATIONS`).
    """
    needed = int(np.ceil(n / level))
    perms = configured
    while perms + 1 < needed and perms < MAX_PERMUTATIONS:
        perms = perms * 10 + 9
    return min(perms, MAX_PERMUTATIONS)


def eb_rates(
    grids: Sequence[GridInput],
    rates: Sequence[str],
    events: Mapping[str, Mapping[str, np.ndarray]],
    per: Mapping[str, float],
    weights: Mapping[str, sparse.csr_matrix],
) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """Empirical Bayes smoothed rates on every grid with a population.

    ``events[rate][grid]`` is the numerator of the rate (records counted); every feature with
    residents takes part, the small populations the raw rate leaves NULL included.
    """
    out: dict[str, pd.DataFrame] = {}
    notes: dict[str, Any] = {}
    for grid in grids:
        n = len(grid.ids)
        cols: dict[str, np.ndarray] = {}
        for rate in rates:
            cols[f"{rate}_eb"] = np.full(n, np.nan)
            cols[f"{rate}_eb_spatial"] = np.full(n, np.nan)
            counts = events.get(rate, {}).get(grid.name)
            if grid.population is None or counts is None:
                notes[f"{grid.name}.{rate}"] = "no population or no records on this grid"
                continue
            pop = grid.population
            ok = _with_value(grid, counts) & np.isfinite(pop) & (pop > 0)
            if ok.sum() < 3:
                notes[f"{grid.name}.{rate}"] = "fewer than 3 features with residents"
                continue
            scale = per[rate]
            cols[f"{rate}_eb"][ok] = spatial.eb_global(counts[ok], pop[ok]) * scale
            w = spatial.subset(weights[grid.name], ok)
            cols[f"{rate}_eb_spatial"][ok] = spatial.eb_spatial(counts[ok], pop[ok], w) * scale
        out[grid.name] = pd.DataFrame(cols)
    return out, notes


def _round(v: Any) -> Any:
    if isinstance(v, float | np.floating):
        return None if not np.isfinite(v) else round(float(v), 6)
    return v


def _empty(columns: tuple[Column, ...]) -> pd.DataFrame:
    dtypes = {
        "string": object,
        "integer": "Int64",
        "float": float,
        "boolean": "boolean",
        "datetime": "datetime64[ns]",
    }
    return pd.DataFrame({c.name: pd.Series(dtype=dtypes[c.type]) for c in columns})


def _month_index(months: Sequence[str]) -> np.ndarray:
    """Months YYYY-MM as integers (year * 12 + month - 1)."""
    arr = np.asarray(months, dtype=str)
    return np.asarray([int(m[:4]) * 12 + int(m[5:7]) - 1 for m in arr], dtype=np.int64)


def _decimal_year(month_index: float) -> float:
    """Return the middle of a month (or of a span of months) in decimal years."""
    return (month_index + 0.5) / 12.0


def temporal_variables(
    grids: Sequence[GridInput], config: TrendsConfig, default: Sequence[str]
) -> list[str]:
    """Return the monthly count variables to analyse: configured, or ``default`` with months."""
    units = grids[0]
    if config.variables is None:
        return [v for v in default if v in units.monthly]
    available = [v for v in units.monthly if _is_count(v)]
    unknown = [v for v in config.variables if v not in units.monthly]
    if unknown:
        raise CityFileError(
            f"[trends] variables: {unknown} have no months "
            f"(monthly count variables of this city: {available or 'none'})",
            hint="name counts of layers with dates",
        )
    return list(config.variables)


def time_series(
    grids: Sequence[GridInput],
    variables: Sequence[str],
    daily: Mapping[str, pd.Series],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Return counts (and rates per 1,000 residents) per month, feature and variable.

    Every feature with a value and every month of the variable is a row (zeros included: the
    layer has records that month). ``daily`` holds city-wide counts per day of the variables
    whose records carry a date.
    """
    parts = []
    section: dict[str, Any] = {}
    for var in variables:
        months, city = None, None
        for grid in grids:
            if var not in grid.monthly:
                continue
            months, table = grid.monthly[var]
            keep = np.ones(len(grid.ids), dtype=bool)
            if grid.outside is not None:
                keep &= ~grid.outside
            ids = np.asarray(grid.ids, dtype=object)[keep].astype(str)
            t = table[keep]
            parts.append(_long(grid.name, ids, months, var, t))
            if grid.population is not None:
                pop = grid.population[keep]
                with np.errstate(divide="ignore", invalid="ignore"):
                    rate = np.where((pop > 0)[:, None], t / pop[:, None] * 1000.0, np.nan)
                good = np.isfinite(pop) & (pop > 0)
                parts.append(_long(grid.name, ids[good], months, f"{var}_per_1000", rate[good]))
            if city is None and grid.cells is None:
                city = table.sum(axis=0)
        if months is None or city is None:
            continue
        parts.append(_long("city", np.asarray(["*"], dtype=object), months, var, city[None, :]))
        section[var] = _trend_summary(months, city)
        if var in daily:
            days = daily[var]
            parts.append(
                pd.DataFrame(
                    {
                        "grid": "city",
                        "feature": "*",
                        "period": days.index.astype(str),
                        "variable": var,
                        "value": days.to_numpy(dtype=float),
                    }
                )
            )
    table = pd.concat(parts, ignore_index=True) if parts else _empty(TIME_SERIES_COLUMNS)
    return table, section


def _long(
    grid: str, ids: np.ndarray, months: Sequence[str], var: str, t: np.ndarray
) -> pd.DataFrame:
    n, m = t.shape
    return pd.DataFrame(
        {
            "grid": grid,
            "feature": np.repeat(ids, m),
            "period": np.tile(np.asarray(months, dtype=object), n),
            "variable": var,
            "value": t.reshape(-1).astype(float),
        }
    )


def _trend_summary(months: Sequence[str], city: np.ndarray) -> dict[str, Any]:
    """City-wide trend of a monthly count, seasonality shown (not removed)."""
    idx = _month_index(months)
    gaps = int(idx[-1] - idx[0] + 1 - len(idx)) if len(idx) else 0
    out: dict[str, Any] = {
        "months": len(months),
        "first": months[0] if len(months) else None,
        "last": months[-1] if len(months) else None,
        "total": float(city.sum()),
        "months_without_records_inside_span": gaps,
    }
    if len(months) >= 3:
        mk = temporal.mann_kendall(city.astype(float))
        out["mann_kendall"] = {
            "tau": _round(float(np.asarray(mk.tau).reshape(-1)[0])),
            "p": _round(float(np.asarray(mk.p).reshape(-1)[0])),
            "sen_slope_per_month": _round(float(np.asarray(mk.slope).reshape(-1)[0])),
        }
    if len(months) >= 24 and gaps == 0:
        smk = temporal.seasonal_mann_kendall(city.astype(float), period=12)
        out["seasonal_mann_kendall"] = {
            "tau": _round(float(np.asarray(smk.tau).reshape(-1)[0])),
            "p": _round(float(np.asarray(smk.p).reshape(-1)[0])),
        }
        moy = idx % 12
        mean = city.mean()
        profile = {
            f"{m + 1:02d}": _round(float(city[moy == m].mean() / mean)) if mean > 0 else None
            for m in range(12)
        }
        out["month_of_year_index"] = profile
        out["seasonality_note"] = (
            "month_of_year_index is the mean count of each calendar month over the mean "
            "month (1 = average); the time series keeps the raw, unadjusted counts"
        )
    return out


def emerging_hotspots(
    grids: Sequence[GridInput],
    variables: Sequence[str],
    weights: Mapping[str, sparse.csr_matrix],
    config: TrendsConfig,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Emerging hotspot patterns of every monthly count with enough months, on every grid."""
    parts = []
    section: dict[str, Any] = {}
    for var in variables:
        for grid in grids:
            if var not in grid.monthly:
                continue
            months, table = grid.monthly[var]
            key = f"{grid.name}.{var}"
            if len(months) < config.min_periods:
                section[key] = (
                    f"not enough months: {len(months)}, at least {config.min_periods} needed"
                )
                continue
            keep = np.ones(len(grid.ids), dtype=bool)
            if grid.outside is not None:
                keep &= ~grid.outside
            if keep.sum() < 30:
                section[key] = f"not enough features: {int(keep.sum())}, at least 30 needed"
                continue
            t = table[keep].astype(float)
            w = spatial.subset(weights[grid.name], keep)
            z, p = spatial.gi_star_columns(t, w)  # every month at once
            flat = np.ptp(t, axis=0) == 0  # a month without variation has no hotspot
            z[:, flat], p[:, flat] = 0.0, 1.0
            result = temporal.emerging_classes(z, p, counts=t, min_periods=config.min_periods)
            if result.pattern is None:
                section[key] = result.reason
                continue
            ids = np.asarray(grid.ids, dtype=object)[keep].astype(str)
            frame = pd.DataFrame(
                {
                    "grid": grid.name,
                    "feature": ids,
                    "variable": var,
                    "pattern": result.pattern,
                    "periods": t.shape[1],
                    "hot_periods": result.n_hot,
                    "cold_periods": result.n_cold,
                    "z_trend_tau": result.trend_tau,
                    "z_trend_p": result.trend_p,
                    "count_trend_tau": result.count_tau,
                    "count_trend_p": result.count_p,
                }
            )
            parts.append(frame)
            section[key] = {
                "months": [months[0], months[-1], len(months)],
                "patterns": frame["pattern"].value_counts().sort_index().to_dict(),
            }
    table = pd.concat(parts, ignore_index=True) if parts else _empty(EMERGING_COLUMNS)
    return table, section


def progress(
    grids: Sequence[GridInput], config: ProgressConfig | None
) -> tuple[pd.DataFrame | None, dict[str, Any]]:
    """Baseline against current period, with exact tests and the targets' reach."""
    if config is None:
        return None, {"null_reason": "no [progress] in the city file"}
    parts = []
    section: dict[str, Any] = {
        "baseline": list(config.baseline),
        "current": list(config.current),
        "test": "exact conditional test of two Poisson counts (binomial), two-sided",
        "targets": {},
    }
    b0, b1 = _month_index(config.baseline)
    c0, c1 = _month_index(config.current)
    t_base, t_cur = float(b1 - b0 + 1), float(c1 - c0 + 1)
    b_mid, c_mid = _decimal_year((b0 + b1) / 2), _decimal_year((c0 + c1) / 2)
    for target in config.targets:
        var = target.variable
        units = next(g for g in grids if g.cells is None)
        if var not in units.monthly:
            raise CityFileError(
                f"[progress] targets: '{var}' has no months",
                hint="name a count of a layer with dates (crime_count, count_<layer>)",
            )
        months, _ = units.monthly[var]
        idx = _month_index(months)
        lo, hi = int(idx.min()), int(idx.max())
        if b0 < lo or c1 > hi:
            raise CityFileError(
                f"[progress]: the periods {config.baseline[0]}..{config.current[1]} go beyond "
                f"the months of {var} ({months[0]}..{months[-1]})",
                hint="choose a baseline and a current period inside the data",
            )
        for grid in [*grids, None]:
            if grid is None:
                src = units.monthly[var][1].sum(axis=0)[None, :]
                gname, ids = "city", np.asarray(["*"], dtype=object)
            else:
                keep = np.ones(len(grid.ids), dtype=bool)
                if grid.outside is not None:
                    keep &= ~grid.outside
                src = grid.monthly[var][1][keep]
                gname, ids = grid.name, np.asarray(grid.ids, dtype=object)[keep].astype(str)
            base = src[:, (idx >= b0) & (idx <= b1)].sum(axis=1).astype(float)
            cur = src[:, (idx >= c0) & (idx <= c1)].sum(axis=1).astype(float)
            rr = temporal.rate_ratio_test(cur, t_cur, base, t_base)
            reach = temporal.target_in_reach(
                base / t_base,
                cur / t_cur,
                baseline_mid=b_mid,
                current_mid=c_mid,
                target_change=target.change,
                target_year=target.year,
            )
            with np.errstate(divide="ignore", invalid="ignore"):
                pct = np.where(base > 0, (cur / t_cur - base / t_base) / (base / t_base), np.nan)
            frame = pd.DataFrame(
                {
                    "grid": gname,
                    "feature": ids,
                    "variable": var,
                    "baseline_period": f"{config.baseline[0]}..{config.baseline[1]}",
                    "current_period": f"{config.current[0]}..{config.current[1]}",
                    "baseline": base,
                    "current": cur,
                    "change": cur - base,
                    "change_pct": pct * 100.0,
                    "rate_ratio": rr.ratio,
                    "p": rr.p_value,
                    "ci_low": rr.ci_low,
                    "ci_high": rr.ci_high,
                    "yearly_change": reach.annual_change,
                    "target_change": target.change,
                    "target_year": target.year,
                    "projected": reach.projected * 12.0,
                    "required": reach.required * 12.0,
                    "on_track": reach.on_track,
                }
            )
            parts.append(frame)
            if grid is None:
                row = frame.iloc[0]
                section["targets"][f"{var} {target.change:+.0%} by {target.year}"] = {
                    "baseline": float(row["baseline"]),
                    "current": float(row["current"]),
                    "rate_ratio": _round(row["rate_ratio"]),
                    "p": _round(row["p"]),
                    "ci": [_round(row["ci_low"]), _round(row["ci_high"])],
                    "yearly_change": _round(row["yearly_change"]),
                    "on_track": None if pd.isna(row["on_track"]) else bool(row["on_track"]),
                }
    if not parts:
        return None, {**section, "null_reason": "no targets in [progress]"}
    table = pd.concat(parts, ignore_index=True)
    table["target_year"] = table["target_year"].astype("Int64")
    return table, section


def hotspot_evaluation(
    grids: Sequence[GridInput],
    variables: Sequence[str],
    weights: Mapping[str, sparse.csr_matrix],
    config: TrendsConfig,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Hotspot maps of earlier months tested on later months, and crime concentration."""
    parts = []
    section: dict[str, Any] = {}
    for var in variables:
        for grid in grids:
            if var not in grid.monthly:
                continue
            months, table = grid.monthly[var]
            keep = grid.area_m2 > 0  # a unit wholly outside the study area flags no area
            if grid.outside is not None:
                keep &= ~grid.outside
            t = table[keep].astype(float)
            area = grid.area_m2[keep]
            key = f"{grid.name}.{var}"
            total = t.sum(axis=1)
            x, y = evaluation.lorenz(total)
            conc = {
                "top_5pct_share": evaluation.top_share(total, 0.05),
                "gini": evaluation.gini(total),
                "gini_adjusted": evaluation.gini_adjusted(total),
            }
            section[key] = {
                "concentration": {k: _round(v) for k, v in conc.items()},
                "lorenz": _lorenz_points(x, y),
            }
            parts.append(
                pd.DataFrame(
                    {
                        "grid": grid.name,
                        "variable": var,
                        "evaluation": "concentration",
                        "period": "all",
                        "area_share": [np.nan, np.nan, np.nan],
                        "metric": list(conc),
                        "value": [float(v) for v in conc.values()],
                    }
                )
            )
            train = min(config.train_periods, len(months) - 1)
            if train < 1 or len(months) < 2:
                section[key]["rolling"] = "not enough months: at least 2 needed"
                continue
            w = spatial.subset(weights[grid.name], keep)
            for name, score in (("prior_counts", None), ("gi_star", _gi_score(w))):
                frame, summary = evaluation.rolling_evaluation(
                    t, area, train=train, score=score, labels=months
                )
                long = frame.melt(
                    id_vars=["test_period", "share"],
                    value_vars=["hit_rate", "pai", "pei_star", "rri", "n_test"],
                    var_name="metric",
                )
                parts.append(
                    pd.DataFrame(
                        {
                            "grid": grid.name,
                            "variable": var,
                            "evaluation": name,
                            "period": long["test_period"].astype(str),
                            "area_share": long["share"].astype(float),
                            "metric": long["metric"].astype(str),
                            "value": long["value"].astype(float),
                        }
                    )
                )
                section[key][name] = {"train_months": train, **_jsonable(summary)}
    table = pd.concat(parts, ignore_index=True) if parts else _empty(EVALUATION_COLUMNS)
    return table, section


def _gi_score(w: sparse.csr_matrix) -> Any:
    """Score a training window by the Gi* z-score of its totals (0 where all are equal)."""

    def score(window: np.ndarray) -> np.ndarray:
        total = window.sum(axis=1)
        if np.var(total) == 0:
            return np.zeros(len(total))
        return np.nan_to_num(spatial.gi_star(total, w).z)

    return score


def _lorenz_points(x: np.ndarray, y: np.ndarray, n: int = 21) -> list[list[float]]:
    """Return the Lorenz curve at ``n`` evenly spaced shares of features."""
    grid = np.linspace(0.0, 1.0, n)
    return [
        [round(float(a), 3), round(float(b), 4)]
        for a, b in zip(grid, np.interp(grid, x, y), strict=True)
    ]


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, np.integer):
        return int(obj)
    return _round(obj)


# --- the whole analysis -------------------------------------------------------------------------

#: Tables written to their own Parquet file (``public/<name>.parquet``) rather than the
#: GeoPackage: dense monthly series run to millions of rows on a large city (a hexagon per
#: month), which Parquet writes and reads in a fraction of the time.
PARQUET_TABLES = frozenset({"time_series"})

#: Title and description of each table the analysis may add, with its columns.
TABLES: dict[str, tuple[str, str, tuple[Column, ...]]] = {
    "hotspots": (
        "Hotspots: Gi* and Local Moran's I",
        "One row per grid, feature, variable and statistic: Gi* z-score or Local Moran's I, "
        "p-value, FDR-adjusted p-value and class; a row with feature '*' says why a grid has "
        "no result (not enough data).",
        HOTSPOTS_COLUMNS,
    ),
    "time_series": (
        "Time series",
        "Counts per month (and rates per 1,000 residents) per grid and feature; city-wide "
        "months and days. Raw values: seasonality is shown, not removed.",
        TIME_SERIES_COLUMNS,
    ),
    "emerging_hotspots": (
        "Emerging hotspots",
        "Space-time pattern of each feature: Gi* per month plus Mann-Kendall trends, in the "
        "categories of ArcGIS's Emerging Hot Spot Analysis.",
        EMERGING_COLUMNS,
    ),
    "progress": (
        "Progress against the baseline and targets",
        "Baseline and current counts per feature and city-wide, the exact Poisson rate-ratio "
        "test and whether the observed pace keeps each target in reach. Not a league table.",
        PROGRESS_COLUMNS,
    ),
    "hotspot_evaluation": (
        "How good is the hotspot map?",
        "Hotspot maps of earlier months tested on the next month (hit rate, PAI, PEI*, RRI at "
        "5, 10 and 20 % of the area) and crime concentration (top 5 % share, Gini).",
        EVALUATION_COLUMNS,
    ),
}


def analyse(
    grids: Sequence[GridInput],
    hotspots: HotspotsConfig,
    trends: TrendsConfig,
    progress_config: ProgressConfig | None,
    *,
    default_variables: Sequence[str],
    events: Mapping[str, Mapping[str, np.ndarray]],
    per: Mapping[str, float],
    daily: Mapping[str, pd.Series],
) -> Analysis:
    """Run every hotspot, trend and progress analysis of a build.

    Parameters
    ----------
    grids
        The grids, units first.
    hotspots, trends, progress_config
        The city file's tables.
    default_variables
        Monthly counts analysed when ``[trends] variables`` is not set (the crime counts).
    events, per
        Numerators and scales of the rates to smooth (:func:`eb_rates`).
    daily
        City-wide counts per day of the monthly variables whose records carry a date.

    """
    out = Analysis()
    columns, out.tables["hotspots"], section, weights = hotspot_tests(grids, hotspots)
    eb, eb_notes = eb_rates(grids, list(events), events, per, weights)
    for grid in grids:
        out.columns[grid.name] = pd.concat([columns[grid.name], eb[grid.name]], axis=1)
    out.manifest["hotspots"] = {
        "variables": hotspots.variables,
        "grids": section,
        "empirical_bayes": {"rates": list(events), "notes": eb_notes},
        "classes": "Gi*: hot/cold at FDR-adjusted p < 0.01, 0.05, 0.10 (99, 95, 90 %); Local "
        f"Moran's I: quadrant where the FDR-adjusted pseudo p < {hotspots.alpha}",
    }
    variables = temporal_variables(grids, trends, default_variables)
    series, trend_section = time_series(grids, variables, daily)
    if len(series):
        out.tables["time_series"] = series
    emerging, emerging_section = emerging_hotspots(grids, variables, weights, trends)
    if len(emerging):
        out.tables["emerging_hotspots"] = emerging
    table, progress_section = progress(grids, progress_config)
    if table is not None:
        out.tables["progress"] = table
    evaluated, evaluation_section = hotspot_evaluation(grids, variables, weights, trends)
    if len(evaluated):
        out.tables["hotspot_evaluation"] = evaluated
    out.manifest["trends"] = {
        "variables": variables,
        "series": trend_section,
        "emerging_hotspots": emerging_section,
    }
    out.manifest["progress"] = progress_section
    out.manifest["hotspot_evaluation"] = evaluation_section
    return out


def daily_counts(records: Sequence[Any]) -> pd.Series | None:
    """City-wide counts per day of layers whose records carry a date (not only a month).

    Every day of the span is a row (0 on a day without records: the layer has days).
    """
    parts = []
    for rec in records:
        if rec.table is None or "datetime" not in rec.config.columns:
            continue
        days = rec.table["datetime"].dt.floor("D")
        amount = rec.table["count"] if "count" in rec.table else pd.Series(1, index=days.index)
        parts.append(amount.groupby(days).sum())
    if not parts:
        return None
    total = pd.concat(parts).groupby(level=0).sum()
    if total.empty:  # no accepted record carries a date
        return None
    span = pd.date_range(total.index.min(), total.index.max(), freq="D")
    total = total.reindex(span, fill_value=0).astype(float)
    total.index = span.strftime("%Y-%m-%d")
    return total


def density_points(
    records: Sequence[Any], derived: Any, by: Sequence[str]
) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """Return the crime points of each density band: all, then per group or month.

    ``derived`` maps a layer's records to their table with ``category_group`` (the indicators'
    Context.derived). Returns ``(band name, x, y, weights)`` per band.
    """
    import shapely

    xs, ys, ws, groups, months = [], [], [], [], []
    for rec in records:
        if rec.geometry is None or rec.table is None or not len(rec.geometry):
            continue
        ok = ~pd.isna(rec.geometry)
        coords = shapely.get_coordinates(rec.geometry[ok])
        xs.append(coords[:, 0])
        ys.append(coords[:, 1])
        table = derived(rec)
        amount = table["count"].to_numpy(dtype=float) if "count" in table else np.ones(len(table))
        ws.append(amount[ok])
        groups.append(table["category_group"].to_numpy(dtype=object)[ok])
        month = table["month"] if "month" in table else pd.Series(None, index=table.index)
        months.append(month.to_numpy(dtype=object)[ok])
    if not xs:
        return []
    x, y, w = np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)
    bands = [("all", x, y, w)]
    labels = {"category_group": np.concatenate(groups), "month": np.concatenate(months)}
    for key in by:
        values = labels[key]
        for label in sorted({v for v in values if isinstance(v, str)}):
            mask = values == label
            bands.append((f"{key}_{label}", x[mask], y[mask], w[mask]))
    return bands
