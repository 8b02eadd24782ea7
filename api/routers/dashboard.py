"""The map dashboard for planners, and the indicators table as JSON.

``GET /`` is negotiated: a client preferring HTML (``Accept: text/html``, a browser) gets the
dashboard page, any other client the landing page JSON of OGC API - Features, unchanged.
The page loads MapLibre GL from ``/static/vendor/`` (vendored from npm at install time by
``scripts/vendor_js.sh``, never from a CDN) and its own ES modules from ``/static/``.

What the map can show comes from the build's output catalogue and its ``indicators`` table,
read once per served build (:class:`DashboardData`) through the app's provider:

* every indicator of the table (one without any value is listed, disabled, with its reason);
* smoothed rates (``*_eb``, ``*_eb_spatial``), index columns (``*_index``, with their
  ``*_p05``/``*_p95`` ranges), hotspot classes (``*_class`` such as ``gi_class``,
  ``lisa_class``) and ``peer_group``, when the catalogue declares them.

Class breaks of the legend are fixed per build, layer and grid and computed here with
mapclassify: **quantiles, 5 classes** (:data:`CLASSES`; each class holds about a fifth of the
grid's features with a value), over the grid's non-null values. When the lowest value (often
0) is shared by more than a fifth of the features, it is a class of its own and the other 4
classes are quantiles of the values above it. Other tied values can merge classes (a break
repeated is dropped), and a layer with 5 distinct values or fewer gets one class per value.
A class holds the values above the previous break up to and including its own break; NULL
is "no data", drawn apart. Quantiles are deterministic, fast on any grid and simple to read
("the darkest class is the fifth of hexagons with the highest values"); Fisher-Jenks was set
aside because mapclassify's pure-Python version takes seconds per layer on a few thousand
features. Categorical layers (hotspot classes, peer groups) list their categories.
"""

from __future__ import annotations

import contextlib
import html
import json
import math
import threading
import warnings
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import mapclassify
import numpy as np
import pandas as pd
from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, JSONResponse, Response

from api.dependencies import (
    JSON_FORMATS,
    ProviderDep,
    base_url,
    check_query,
    format_parameter,
    query_checker,
    wants_html,
)
from api.provider import Provider
from api.routers.features import BAD_REQUEST, SERVER_ERROR, landing_page
from geo_usm import store
from geo_usm.catalog import Catalog, Column, OutputLayer
from geo_usm.errors import NotFoundError

#: Directory of the dashboard's static files (mounted at ``/static`` by the app factory).
STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
#: The vendored MapLibre GL module the page imports.
MAPLIBRE = STATIC_DIR / "vendor" / "maplibre-gl.mjs"

#: Number of classes of a numeric layer (quantiles).
CLASSES = 5
CLASS_METHOD = "Quantiles"

router = APIRouter()


# --- content negotiation of / ------------------------------------------------------------------


@router.get("/", include_in_schema=False)
def root(request: Request, provider: ProviderDep) -> Response:
    """Return the dashboard to browsers (and ``f=html``), the landing page JSON otherwise."""
    if wants_html(request):
        check_query(request, (), ("html",))
        response: Response = dashboard_page(request, provider)
    else:
        check_query(request, (), JSON_FORMATS)
        response = landing_page(request, provider)
    response.headers["Vary"] = "Accept"
    return response


def dashboard_page(request: Request, provider: Provider) -> HTMLResponse:
    """Return the dashboard's HTML page for the build ``provider`` serves."""
    info = provider.info
    base = base_url(request)
    config = {"api": base, "static": f"{base}/static", "city": info.city, "build": info.build_id}
    page = (STATIC_DIR / "dashboard.html").read_text(encoding="utf-8")
    missing = "" if MAPLIBRE.is_file() else _MISSING_MAPLIBRE
    replacements = {
        "__TITLE__": _escape(f"Urban Safety Monitor: {info.city}"),
        "__CITY__": _escape(info.city),
        "__STATIC__": _escape(f"{base}/static"),
        "__MISSING__": missing,
        "__CONFIG__": _json_for_script(config),
    }
    for key, value in replacements.items():
        page = page.replace(key, value)
    return HTMLResponse(page, headers={"Cache-Control": "no-cache"})


_MISSING_MAPLIBRE = (
    '<p class="fatal" role="alert">MapLibre GL is not installed in this copy of geo-usm '
    "(api/static/vendor/ is empty), so the map cannot be drawn. Run <code>make install</code> "
    "(npm ci and scripts/vendor_js.sh) and restart the server.</p>"
)


def _escape(text: str) -> str:
    return html.escape(text, quote=True)


def _json_for_script(value: Any) -> str:
    """Serialise JSON for a ``<script type="application/json">`` element."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# --- the data behind the dashboard -------------------------------------------------------------


@dataclass
class DashboardData:
    """What the dashboard shows of one build, computed once.

    Attributes
    ----------
    indicators
        The ``indicators`` table, one JSON object per indicator.
    layers
        The dashboard's layer catalogue (:meth:`document`).
    series
        Monthly values of the grids' extensive variables, indexed by grid and feature.
    gaps
        The ``indicator_gaps`` table.

    """

    city: str
    build_id: str
    attribution: list[str]
    synthetic_layers: list[str]
    grids: list[dict[str, Any]]
    indicators: list[dict[str, Any]]
    layers: list[dict[str, Any]]
    series: pd.DataFrame
    gaps: pd.DataFrame
    variables: dict[str, Column] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        """Return the JSON document of ``/dashboard/layers.json``."""
        return {
            "city": self.city,
            "build_id": self.build_id,
            "attribution": self.attribution,
            "synthetic_layers": self.synthetic_layers,
            "classification": {
                "method": CLASS_METHOD,
                "classes": CLASSES,
                "note": (
                    f"Breaks are fixed for this build: {CLASS_METHOD} with {CLASSES} classes "
                    "over each grid's values (one class per value when there are "
                    f"{CLASSES} distinct values or fewer; the lowest value is a class of its own "
                    "when more than a fifth of the features have it). A class holds the values "
                    "above the previous break up to and including its own."
                ),
            },
            "grids": self.grids,
            "layers": self.layers,
        }


_CACHE: weakref.WeakKeyDictionary[Provider, DashboardData] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def dashboard_data(provider: Provider) -> DashboardData:
    """Return the dashboard data of the build ``provider`` serves (read on first use)."""
    with _LOCK:
        data = _CACHE.get(provider)
        if data is None:
            data = _CACHE[provider] = _read(provider)
        return data


def _read(provider: Provider) -> DashboardData:
    info = provider.info
    public = info.path
    manifest = store.load_manifest(public)
    catalog = store.load_catalog(manifest)
    synthetic = [str(s) for s in manifest.get("synthetic_layers", [])]
    table = _table(public, catalog, "indicators")
    indicators = [_indicator_row(row, synthetic) for row in table.to_dict("records")]
    served = {c.id for c in provider.collections()}
    grid_layers = [layer for layer in catalog.collections() if layer.grid and layer.name in served]
    frames = {layer.name: store.read_layer(public, layer) for layer in grid_layers}
    grids = [_grid(layer, frames[layer.name]) for layer in grid_layers]
    layers = _layers(grid_layers, frames, indicators, synthetic)
    variables = {c.name: c for layer in grid_layers for c in layer.columns}
    aggregates = _table(public, catalog, "aggregates")
    if not aggregates.empty:
        aggregates = aggregates[aggregates["period"] != "all"]
    gaps = _table(public, catalog, "indicator_gaps")
    return DashboardData(
        city=info.city,
        build_id=info.build_id,
        attribution=list(info.attribution),
        synthetic_layers=synthetic,
        grids=grids,
        indicators=indicators,
        layers=layers,
        series=aggregates,
        gaps=gaps,
        variables=variables,
    )


def _table(public: Path, catalog: Catalog, name: str) -> pd.DataFrame:
    try:
        layer = catalog.layer(name, store="public")
    except KeyError:
        return pd.DataFrame()
    return pd.DataFrame(store.read_layer(public, layer))


def _indicator_row(row: dict[str, Any], synthetic: list[str]) -> dict[str, Any]:
    out = {k: _plain(v) for k, v in row.items() if k != "geometry"}
    sources = [s.strip() for s in str(out.get("sources") or "").split(",") if s.strip()]
    out["sources"] = sources
    for key in ("coverage", "parameters"):
        text = out.get(key)
        if isinstance(text, str) and text:
            with contextlib.suppress(ValueError):
                out[key] = json.loads(text)
    out["null_reason"] = out.get("null_reason") or None
    out["synthetic"] = bool(set(sources) & set(synthetic))
    return out


def _plain(value: Any) -> Any:
    """Return a JSON-ready Python value (NaN and NA as None)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        return _plain(value.item())
    return value


def _grid(layer: OutputLayer, frame: pd.DataFrame) -> dict[str, Any]:
    kind = "hex" if layer.resolution is not None else "units"
    out: dict[str, Any] = {
        "id": layer.name,
        "title": layer.title,
        "kind": kind,
        "resolution": layer.resolution,
        "id_column": layer.id_column,
        "count": len(frame),
        "label_column": "unit_name" if "unit_name" in layer.column_names else layer.id_column,
    }
    if kind == "units" and "geometry" in frame and len(frame):
        crs84 = frame.to_crs("OGC:CRS84")  # type: ignore[attr-defined]
        bounds = crs84.bounds.round(6).to_numpy().tolist()
        names = frame.get("unit_name", frame[layer.id_column])
        features = [
            {"id": str(i), "name": str(n), "bbox": b}
            for i, n, b in zip(frame[layer.id_column], names, bounds, strict=True)
        ]
        out["features"] = sorted(features, key=lambda f: f["name"])
    return out


def _extra_direction(name: str, kind: str, indicators: list[dict[str, Any]]) -> str:
    """Direction of an index (from its name) or smoothed rate (from its indicator)."""
    if kind == "smoothed":
        base = name.removesuffix("_spatial").removesuffix("_eb")
        return next((str(r["direction"]) for r in indicators if r["id"] == base), "context")
    if kind == "index" and name.startswith(("risk", "resilience")):
        return "risk" if name.startswith("risk") else "resilience"
    return "context"


def _smoothed_title(name: str, indicators: list[dict[str, Any]]) -> str | None:
    """Return the title of a smoothed rate from its indicator's, None if not one."""
    for suffix, how in (("_eb_spatial", "towards neighbours"), ("_eb", "towards the city")):
        if name.endswith(suffix):
            base = name.removesuffix(suffix)
            title = next((str(r["title"]) for r in indicators if r["id"] == base), base)
            return f"{title}, smoothed {how} (Empirical Bayes)"
    return None


def _title(column: Column) -> str:
    """Return a short title: the column description's first sentence, else its name."""
    first = column.description.split(". ")[0].rstrip(".")
    if first and len(first) <= 80:
        return first
    return column.name.replace("_", " ").capitalize()


def _layers(
    grids: list[OutputLayer],
    frames: dict[str, pd.DataFrame],
    indicators: list[dict[str, Any]],
    synthetic: list[str],
) -> list[dict[str, Any]]:
    """Return the map layers: indicators, then indices, hotspot classes and peer groups."""
    out: list[dict[str, Any]] = []
    known = {row["id"] for row in indicators}
    for row in indicators:
        layer = {
            "id": row["id"],
            "kind": "indicator",
            "title": row.get("title") or row["id"],
            "unit": row.get("unit") or "",
            "direction": row.get("direction") or "context",
            "dimension": row.get("dimension") or "",
            "description": row.get("description") or "",
            "sources": row["sources"],
            "synthetic": row["synthetic"],
            "null_reason": row["null_reason"],
        }
        out.append(_classify(layer, grids, frames, numeric=True))
    extra: dict[str, tuple[str, Column]] = {}
    for grid in grids:
        for column in grid.columns:
            if column.name in known or column.name in extra:
                continue
            kind = _extra_kind(column)
            if kind:
                extra[column.name] = (kind, column)
    names = set(extra)
    for name, (kind, column) in extra.items():
        layer = {
            "id": name,
            "kind": kind,
            "title": _TITLES.get(name) or _smoothed_title(name, indicators) or _title(column),
            "unit": column.unit,
            "direction": _extra_direction(name, kind, indicators),
            "dimension": {"index": "indices", "smoothed": "smoothed rates"}.get(kind, ""),
            "description": column.description,
            "sources": list(column.sources),
            "synthetic": bool(set(column.sources) & set(synthetic)),
            "null_reason": column.null_reason,
        }
        if kind == "index":
            low, high = f"{name}_p05", f"{name}_p95"
            if low in names or any(low in g.column_names for g in grids):
                layer["range"] = [low, high]
        out.append(_classify(layer, grids, frames, numeric=kind in ("index", "smoothed")))
    return [layer for layer in out if layer["grids"] or layer["kind"] == "indicator"]


_RANGE_SUFFIXES = ("_p05", "_p95")


#: Titles of the hotspot class columns the library writes (others get their name).
_TITLES = {
    "gi_class": "Hotspots (Getis-Ord Gi*)",
    "lisa_class": "Clusters and outliers (local Moran's I)",
    "peer_group": "Peer group",
}


def _extra_kind(column: Column) -> str | None:
    name = column.name
    if name.endswith(_RANGE_SUFFIXES):
        return None
    if column.type == "float" and name.endswith(("_eb", "_eb_spatial")):
        return "smoothed"
    if column.type in ("float", "integer") and name.endswith("_index"):
        return "index"
    if column.type == "string" and name.endswith("_class"):
        return "hotspot"
    if name == "peer_group":
        return "peer"
    return None


def _classify(
    layer: dict[str, Any],
    grids: list[OutputLayer],
    frames: dict[str, pd.DataFrame],
    *,
    numeric: bool,
) -> dict[str, Any]:
    """Add the per-grid legend classes of ``layer`` (grids where it has no value are left out)."""
    per_grid: dict[str, Any] = {}
    for grid in grids:
        frame = frames[grid.name]
        if layer["id"] not in frame:
            continue
        values = frame[layer["id"]]
        if numeric:
            classes = numeric_classes(pd.to_numeric(values, errors="coerce"))
        else:
            classes = categorical_classes(values)
        if classes is not None:
            classes["nodata"] = int(values.isna().sum())
            per_grid[grid.name] = classes
    return {**layer, "grids": per_grid}


def numeric_classes(values: pd.Series, k: int = CLASSES) -> dict[str, Any] | None:
    """Return fixed class breaks of numeric values (None when there is no value).

    Parameters
    ----------
    values
        The values of one layer on one grid; NULL and non-finite values are left out.
    k
        Number of classes.

    Returns
    -------
    dict or None
        ``method``, ``min``, ``max``, ``breaks`` (upper bound of each class, inclusive,
        increasing) and ``counts`` (features per class).

    """
    array = values.to_numpy(dtype=float, na_value=np.nan)
    array = array[np.isfinite(array)]
    if array.size == 0:
        return None
    distinct = np.unique(array)
    if distinct.size <= k:
        breaks = distinct
        method = "unique values"
    else:
        low = distinct[0]
        rest = array[array > low]
        if (array.size - rest.size) * k > array.size and np.unique(rest).size >= k:
            # the lowest value (often 0) fills more than a class: it is a class of its own
            breaks = np.concatenate([[low], _quantile_breaks(rest, k - 1)])
        else:
            breaks = _quantile_breaks(array, k)
        method = CLASS_METHOD
    counts = np.bincount(np.searchsorted(breaks, array, side="left"), minlength=breaks.size)
    return {
        "type": "numeric",
        "method": method,
        "min": float(array.min()),
        "max": float(array.max()),
        "breaks": [float(b) for b in breaks],
        "counts": [int(c) for c in counts[: breaks.size]],
    }


def _quantile_breaks(array: np.ndarray, k: int) -> np.ndarray:
    with warnings.catch_warnings():  # tied values: mapclassify warns of merged classes
        warnings.simplefilter("ignore")
        classifier = mapclassify.Quantiles(array, k=k)
    return np.unique(np.asarray(classifier.bins, dtype=float))


def categorical_classes(values: pd.Series) -> dict[str, Any] | None:
    """Return the categories of a label column with their counts (None when all are NULL)."""
    present = values.dropna()
    if pd.api.types.is_numeric_dtype(present):  # 1.0 -> "1", as the map's to-string writes it
        present = present.map(lambda v: str(int(v)) if float(v).is_integer() else str(v))
    counts = present.astype(str).value_counts()
    if counts.empty:
        return None
    ordered = sorted(counts.index)
    return {
        "type": "categorical",
        "method": "categories",
        "categories": ordered,
        "counts": [int(counts[c]) for c in ordered],
    }


# --- routes ------------------------------------------------------------------------------------


_INDICATORS_RESPONSES: dict[int | str, Any] = {
    200: {
        "description": "The indicators of the build, one object per indicator column.",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["indicators"],
                    "properties": {
                        "indicators": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["id", "title", "sources", "synthetic"],
                                "properties": {
                                    "id": {"type": "string"},
                                    "title": {"type": "string"},
                                    "unit": {"type": "string", "nullable": True},
                                    "direction": {"type": "string", "nullable": True},
                                    "dimension": {"type": "string", "nullable": True},
                                    "description": {"type": "string", "nullable": True},
                                    "sources": {"type": "array", "items": {"type": "string"}},
                                    "synthetic": {"type": "boolean"},
                                    "coverage": {"nullable": True},
                                    "null_reason": {"type": "string", "nullable": True},
                                },
                            },
                        }
                    },
                }
            }
        },
    },
    400: BAD_REQUEST,
    500: SERVER_ERROR,
}


@router.get(
    "/indicators",
    summary="Indicators",
    description=(
        "The build's indicators table (no geometry, so not a collection): id (the column name "
        "on the grids), title, unit, direction (risk, resilience or context), dimension, "
        "description, sources, coverage per grid and null_reason; synthetic is true when a "
        "source is a synthetic demonstration layer."
    ),
    operation_id="getIndicators",
    tags=["Data"],
    include_in_schema=False,  # to be listed in /api once the contract tests expect it
    response_model=None,
    responses=_INDICATORS_RESPONSES,
    dependencies=[Depends(query_checker())],
    openapi_extra={"parameters": [format_parameter()]},
)
def indicators(provider: ProviderDep) -> JSONResponse:
    """Return the indicators table."""
    data = dashboard_data(provider)
    return JSONResponse({"indicators": data.indicators})


@router.get("/dashboard/layers.json", include_in_schema=False)
def dashboard_layers(provider: ProviderDep) -> JSONResponse:
    """Return what the dashboard can map, with the fixed legend classes of every layer."""
    return JSONResponse(dashboard_data(provider).document())


@router.get("/dashboard/features/{grid}/{featureId:path}", include_in_schema=False)
def dashboard_feature(
    grid: str,
    feature_id: Annotated[str, PathParam(alias="featureId")],
    provider: ProviderDep,
) -> JSONResponse:
    """Return what the diagnosis panel adds to a feature's properties: gaps and time series."""
    data = dashboard_data(provider)
    if grid not in {g["id"] for g in data.grids}:
        raise NotFoundError(f"no grid '{grid}'")
    provider.item(grid, feature_id)  # 404 for an unknown feature
    gaps: dict[str, str] = {}
    if not data.gaps.empty:
        rows = data.gaps[(data.gaps["grid"] == grid) & data.gaps["feature"].isin([feature_id, "*"])]
        gaps = {str(r.indicator): str(r.null_reason) for r in rows.itertuples()}
    return JSONResponse({"gaps": gaps, "series": _series(data, grid, feature_id)})


def _count_variables(columns: dict[str, Column], names: set[str]) -> set[str]:
    """Return the counts of records among ``names``.

    Totals per kind (``<kind>_count``) are kept, and counts per layer (``count_<layer>``) only
    when no total of the same layers is among them.
    """
    counts = {n for n in names if n in columns and columns[n].unit == "count"}
    totals = [set(columns[n].sources) for n in counts if not n.startswith("count_")]
    return {
        n
        for n in counts
        if not n.startswith("count_") or not any(set(columns[n].sources) <= t for t in totals)
    }


def _series(data: DashboardData, grid: str, feature_id: str) -> list[dict[str, Any]]:
    """Return the monthly series of a feature, months without a row counted as 0.

    Only counts of records (:func:`_count_variables`) with values in at least two months of the
    build are returned; the months are every month from the variable's first to its last in the
    build.
    """
    frame = data.series
    if frame.empty:
        return []
    on_grid = frame[frame["grid"] == grid]
    counts = _count_variables(data.variables, set(on_grid["variable"].unique()))
    out = []
    for variable, rows in on_grid[on_grid["variable"].isin(counts)].groupby("variable", sort=True):
        periods = sorted(rows["period"].unique())
        if len(periods) < 2:
            continue
        months = pd.period_range(periods[0], periods[-1], freq="M").strftime("%Y-%m").tolist()
        mine = rows[rows["feature"] == feature_id].groupby("period")["value"].sum()
        column = data.variables.get(str(variable))
        sources = list(column.sources) if column else []
        out.append(
            {
                "variable": str(variable),
                "title": column.description if column else str(variable),
                "unit": column.unit if column else "",
                "synthetic": bool(set(sources) & set(data.synthetic_layers)),
                "periods": months,
                "values": [float(mine.get(m, 0.0)) for m in months],
            }
        )
    return out
