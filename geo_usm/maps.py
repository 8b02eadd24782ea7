"""Standalone, shareable HTML maps of a build (folium), working offline.

:func:`write_map` draws the build's composite indices (every ``*_index`` column the catalogue
declares on a grid: risk, resilience...) as choropleth layers; a build without indices gets
its count indicators instead (the ``indicators`` table's rows of method ``count``). Which
layers exist comes from the catalogue and the ``indicators`` table, never from a fixed list.

The file works offline: Leaflet 1.9.4 (vendored from npm in ``geo_usm/vendor/leaflet``, BSD-2)
is inlined, and folium's other CDN assets (jQuery, Bootstrap, Font Awesome) are left out: the
map uses plain Leaflet only. A basemap is optional (``basemap``: a tile URL template, off by
default); without it the map shows the study area alone. The attribution of the inputs is
shown on the map, and a layer computed from synthetic inputs is marked SYNTHETIC.

Classes are quantiles (5 classes, mapclassify ``Quantiles``) of the grid's non-null values; a
NULL is "no data", drawn grey, never as a low value.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path

import folium
import geopandas as gpd
import mapclassify
import numpy as np
import pandas as pd
from branca.element import Element, Figure

from geo_usm import store
from geo_usm.catalog import Catalog, Column, OutputLayer
from geo_usm.errors import NotFoundError

#: Directory of the vendored Leaflet distribution.
LEAFLET_DIR = Path(__file__).resolve().parent / "vendor" / "leaflet"
#: Number of classes of a layer.
CLASSES = 5
#: Colour of features without a value.
NO_DATA = "#cccccc"
#: Colour ramps (light to dark) by direction of the measure.
RAMPS = {
    "risk": ["#fee5d9", "#fcae91", "#fb6a4a", "#de2d26", "#a50f15"],
    "resilience": ["#edf8e9", "#bae4b3", "#74c476", "#31a354", "#006d2c"],
    "context": ["#eff3ff", "#bdd7e7", "#6baed6", "#3182bd", "#08519c"],
}
_DECIMALS = 6


@dataclass(frozen=True)
class MapLayer:
    """One choropleth layer of a map.

    Attributes
    ----------
    grid
        Grid layer name.
    column
        The column drawn.
    title
        Title shown in the layer control and the legend.
    direction
        ``risk``, ``resilience`` or ``context`` (picks the colour ramp).
    synthetic
        Whether the values come from synthetic inputs.

    """

    grid: str
    column: str
    title: str
    direction: str
    synthetic: bool


def _direction(name: str, indicators: pd.DataFrame | None) -> str:
    if indicators is not None and name in set(indicators["id"]):
        value = str(indicators.loc[indicators["id"] == name, "direction"].iloc[0])
        return value if value in RAMPS else "context"
    return "resilience" if "resilience" in name else "risk"


def _sources(column: Column, indicators: pd.DataFrame | None) -> set[str]:
    sources = set(column.sources)
    if indicators is not None and "sources" in indicators and column.name in set(indicators["id"]):
        text = indicators.loc[indicators["id"] == column.name, "sources"].iloc[0]
        sources |= {s for s in str(text).split(",") if s}
    return sources


def choose_layers(
    catalog: Catalog, indicators: pd.DataFrame | None, synthetic: set[str]
) -> list[MapLayer]:
    """Return the layers of the map: the indices of every grid, else the count indicators.

    Parameters
    ----------
    catalog
        The build's output catalogue.
    indicators
        The build's ``indicators`` table, if it has one.
    synthetic
        Names of the input layers that are synthetic.

    Returns
    -------
    list of MapLayer
        Units first, then the hexagon grids, as the catalogue orders them.

    """
    grids = [g for g in catalog.collections() if g.grid]
    grids.sort(key=lambda g: g.resolution is not None)  # admin units first
    titles: dict[str, str] = {}
    counts: list[str] = []
    if indicators is not None and {"id", "title", "method"} <= set(indicators.columns):
        titles = dict(
            zip(indicators["id"].astype(str), indicators["title"].astype(str), strict=True)
        )
        counts = [str(i) for i in indicators.loc[indicators["method"] == "count", "id"]]
    out: list[MapLayer] = []
    for wanted in ("indices", "counts"):
        for grid in grids:
            for column in grid.columns:
                name = column.name
                if wanted == "indices" and not name.endswith("_index"):
                    continue
                if wanted == "counts" and name not in counts:
                    continue
                if column.null_reason:  # no value anywhere
                    continue
                out.append(
                    MapLayer(
                        grid=grid.name,
                        column=name,
                        title=f"{titles.get(name, name)} ({grid.title})",
                        direction=_direction(name, indicators),
                        synthetic=bool(_sources(column, indicators) & synthetic),
                    )
                )
        if out:
            break
    return out


def _classes(values: pd.Series) -> tuple[np.ndarray, list[float]]:
    """Return each value's class (-1 for NULL) and the upper bounds of the classes."""
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    known = np.isfinite(numbers)
    classes = np.full(len(numbers), -1, dtype=int)
    if not known.any():
        return classes, []
    distinct = np.unique(numbers[known])
    if len(distinct) <= CLASSES:
        bins = distinct.tolist()
    else:
        bins = [float(b) for b in mapclassify.Quantiles(numbers[known], k=CLASSES).bins]
    classes[known] = np.searchsorted(np.asarray(bins), numbers[known], side="left")
    return np.minimum(classes, len(bins) - 1), bins


def _legend(layers: list[tuple[MapLayer, list[float]]]) -> str:
    esc = html.escape
    blocks = []
    for layer, bins in layers:
        ramp = RAMPS[layer.direction][-len(bins) :] if bins else []
        rows, low = [], None
        for colour, high in zip(ramp, bins, strict=True):
            text = f"{high:,.4g}" if low is None else f"{low:,.4g} – {high:,.4g}"
            rows.append(f'<div><i style="background:{colour}"></i>{esc(text)}</div>')
            low = high
        rows.append(f'<div><i style="background:{NO_DATA}"></i>no data (NULL)</div>')
        mark = ' <b style="color:#a50f15">SYNTHETIC</b>' if layer.synthetic else ""
        blocks.append(
            f'<div class="usm-block"><b>{esc(layer.title)}</b>{mark}{"".join(rows)}</div>'
        )
    return (
        '<div class="usm-legend"><div class="usm-note">Quantile classes (5); NULL is no data, '
        "never zero.</div>" + "".join(blocks) + "</div>"
    )


_STYLE = """<style>
.usm-legend{position:absolute;z-index:1000;bottom:30px;left:10px;background:#fff;padding:6px 8px;
font:12px sans-serif;max-height:60%;overflow:auto;box-shadow:0 0 4px rgba(0,0,0,.4)}
.usm-legend i{display:inline-block;width:14px;height:12px;margin-right:5px;border:1px solid #999}
.usm-block{margin-top:6px}.usm-note{color:#555}
.usm-footer{position:absolute;z-index:1000;bottom:0;left:0;right:0;background:rgba(255,255,255,.9);
font:11px sans-serif;padding:2px 6px}
.usm-title{position:absolute;z-index:1000;top:10px;left:50px;background:#fff;padding:4px 8px;
font:bold 14px sans-serif;box-shadow:0 0 4px rgba(0,0,0,.4)}
.usm-synthetic{color:#a50f15}
</style>"""


def write_map(
    build_dir: str | Path,
    out: str | Path,
    *,
    basemap: str | None = None,
    basemap_attribution: str | None = None,
) -> list[MapLayer]:
    """Write a standalone HTML map of a build's indices (or counts) that works offline.

    Parameters
    ----------
    build_dir
        The build directory (or a copy of its ``public/`` part).
    out
        The HTML file to write.
    basemap
        Optional tile URL template (``https://.../{z}/{x}/{y}.png``) drawn under the layers;
        the only thing the file would fetch. None (the default): no basemap.
    basemap_attribution
        Attribution of the basemap (required by most tile providers); by default the URL's
        host is named.

    Returns
    -------
    list of MapLayer
        The layers drawn, in order.

    Raises
    ------
    geo_usm.errors.NotFoundError
        If ``build_dir`` is not a build, or the build has no index nor count to draw.

    """
    public = store.public_dir(build_dir)
    manifest = store.load_manifest(public)
    catalog = store.load_catalog(manifest)
    indicators = _table(public, catalog, "indicators")
    synthetic = {str(s) for s in manifest.get("synthetic_layers") or []}
    layers = choose_layers(catalog, indicators, synthetic)
    if not layers:
        msg = "the build has no index and no count indicator to map"
        raise NotFoundError(msg, path=public, hint="rebuild it with 'usm build'")
    frames: dict[str, gpd.GeoDataFrame] = {}
    for layer in layers:
        if layer.grid not in frames:
            frame = store.read_layer(public, catalog.layer(layer.grid, store="public"))
            assert isinstance(frame, gpd.GeoDataFrame)
            frames[layer.grid] = frame.to_crs("OGC:CRS84")
    city = manifest.get("city")
    city_name = str((city.get("name") if isinstance(city, dict) else city) or "the city")
    first = frames[layers[0].grid]
    minx, miny, maxx, maxy = (float(v) for v in first.total_bounds)
    fmap = folium.Map(tiles=None, control_scale=True, prefer_canvas=True)
    fmap.default_js = []  # no CDN: Leaflet is inlined below, nothing else is needed
    fmap.default_css = []
    fmap.fit_bounds([[miny, minx], [maxy, maxx]])
    root = fmap.get_root()
    assert isinstance(root, Figure)
    leaflet_css = (LEAFLET_DIR / "leaflet.css").read_text(encoding="utf-8")
    leaflet_js = (LEAFLET_DIR / "leaflet.js").read_text(encoding="utf-8")
    root.header.add_child(Element(f"<style>{leaflet_css}</style>"), name="leaflet_css")
    root.header.add_child(Element(f"<script>{leaflet_js}</script>"), name="leaflet_js")
    root.header.add_child(Element(_STYLE), name="usm_style")
    if basemap:
        attribution = basemap_attribution or f"Basemap: {basemap.split('/')[2]}"
        folium.TileLayer(basemap, attr=attribution, name="Basemap", overlay=False).add_to(fmap)
    _add_study_area(fmap, public, catalog)
    drawn: list[tuple[MapLayer, list[float]]] = []
    for k, layer in enumerate(layers):
        frame = frames[layer.grid]
        classes, bins = _classes(frame[layer.column])
        ramp = RAMPS[layer.direction][-len(bins) :] if bins else []
        colours = [ramp[c] if c >= 0 else NO_DATA for c in classes]
        values = pd.to_numeric(frame[layer.column], errors="coerce").round(_DECIMALS)
        id_column = catalog.layer(layer.grid, store="public").id_column or frame.columns[0]
        data = gpd.GeoDataFrame(
            {
                "id": frame[id_column].astype(str),
                "value": [None if pd.isna(v) else float(v) for v in values],
                "colour": colours,
            },
            geometry=frame.geometry.values,
            crs=frame.crs,
        )
        name = layer.title + (" — SYNTHETIC data" if layer.synthetic else "")
        group = folium.FeatureGroup(name=name, show=k == 0)
        folium.GeoJson(
            json.loads(data.to_json(drop_id=True)),
            style_function=lambda f: {
                "fillColor": f["properties"]["colour"],
                "color": "#555555",
                "weight": 0.3,
                "fillOpacity": 0.75,
            },
            tooltip=folium.GeoJsonTooltip(fields=["id", "value"], aliases=["id", layer.column]),
        ).add_to(group)
        group.add_to(fmap)
        drawn.append((layer, bins))
    folium.LayerControl(collapsed=False).add_to(fmap)
    body = root.html
    title = f"Urban Safety Monitor: {city_name}"
    if any(layer.synthetic for layer, _ in drawn) or synthetic:
        names = ", ".join(sorted(synthetic))
        title += f' <span class="usm-synthetic">(includes SYNTHETIC inputs: {names})</span>'
    body.add_child(Element(f'<div class="usm-title">{title}</div>'))
    body.add_child(Element(_legend(drawn)))
    credits = "; ".join(str(a) for a in manifest.get("attribution") or [])
    footer = f"Build {manifest.get('build_id', '')}. Data: {credits}"
    body.add_child(Element(f'<div class="usm-footer">{html.escape(footer)}</div>'))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fmap.save(str(out))
    return [layer for layer, _ in drawn]


def _table(public: Path, catalog: Catalog, name: str) -> pd.DataFrame | None:
    try:
        layer = catalog.layer(name, store="public")
    except KeyError:
        return None
    return store.read_layer(public, layer)


def _add_study_area(fmap: folium.Map, public: Path, catalog: Catalog) -> None:
    """Outline the study area: the public layers with geometry that are not grids."""
    outlines: list[OutputLayer] = [layer for layer in catalog.collections() if not layer.grid]
    for layer in outlines:
        frame = store.read_layer(public, layer)
        if not isinstance(frame, gpd.GeoDataFrame) or frame.crs is None:
            continue
        shape = frame.to_crs("OGC:CRS84")[[frame.geometry.name]]
        folium.GeoJson(
            json.loads(shape.to_json(drop_id=True)),
            name="Study area",
            style_function=lambda f: {"fill": False, "color": "#222222", "weight": 2},
            control=False,
        ).add_to(fmap)
