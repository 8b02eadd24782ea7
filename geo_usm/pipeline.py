"""The build pipeline: wiring only. It calls the stages in order and holds no computation.

``validate`` checks a city file and every input and reports all problems at once, writing
nothing; ``build`` runs the same stages (units, ingest, grids, aggregation, catalogue), writes
the public and private stores and publishes the build atomically.

Stages and their modules: admin units and study area (:mod:`geo_usm.units`), ingest and
spatial assignment (:mod:`geo_usm.ingest`, :mod:`geo_usm.assign`), H3 cover and crosswalk
(:mod:`geo_usm.grids`), aggregation (:mod:`geo_usm.aggregate`), the output catalogue
(:mod:`geo_usm.catalog`), the manifest (:mod:`geo_usm.manifest`) and the store
(:mod:`geo_usm.store`).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from geo_usm import density, grids, hotspots, indicators, indices, store, tiles
from geo_usm.aggregate import Aggregates, Grid, aggregate
from geo_usm.catalog import (
    PUBLIC_GPKG,
    PUBLIC_SURFACE,
    Catalog,
    Column,
    OutputLayer,
    build_catalog,
    grid_name,
)
from geo_usm.cityfile import City, load_city
from geo_usm.errors import CityFileError, GeoUsmError, InputError, ProblemsError
from geo_usm.ingest import LayerReport, Records, check_source, ingest_layer, layer_problems
from geo_usm.manifest import build_manifest
from geo_usm.units import SpatialFrame, prepare


class Progress:
    """Progress reporting hooks; the default does nothing (the CLI draws bars)."""

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
        """Report a step; yields a function to advance it by ``n`` items."""
        yield lambda n: None


@dataclass
class Result:
    """The outcome of :func:`validate` or :func:`build`."""

    city: City
    crs: CRS
    crs_note: str
    layers: list[LayerReport]
    n_units: int
    n_hex: dict[int, int] = field(default_factory=dict)
    build_id: str | None = None
    output: Path | None = None
    seconds: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)


class _Clock:
    """Times the stages of a run."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.t0 = time.perf_counter()
        self.stages: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
        t = time.perf_counter()
        with self.progress.task(name, total=total) as advance:
            yield advance
        self.stages[name] = self.stages.get(name, 0.0) + time.perf_counter() - t

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.t0


def _ingest(
    city: City, frame: SpatialFrame, clock: _Clock, *, collect: bool
) -> tuple[dict[str, Records], list[GeoUsmError]]:
    """Ingest every layer; collect problems (validate) or raise the first (build).

    Layers are ingested one after the other: measured on the samples, reading and parsing
    several at once on threads is slower (the readers hold the GIL for much of their work).
    """
    layers: dict[str, Records] = {}
    problems: list[GeoUsmError] = []
    for name, cfg in city.config.layers.items():
        try:
            with clock.stage(f"layer {name} ({cfg.kind})"):
                records = ingest_layer(city, name, frame)
            for text in layer_problems(records.report, cfg):
                raise InputError(
                    text,
                    path=city.resolve(cfg.path),
                    hint=f"check layers.{name} in the city file; if this is expected, set "
                    f"may_be_empty = true or raise max_reject_share for the layer",
                )
            layers[name] = records
        except GeoUsmError as exc:
            if not collect:
                raise
            problems.append(exc)
    return layers, problems


def _check_cover_size(city: City, frame: SpatialFrame) -> None:
    """Refuse H3 resolutions whose cover would exceed the city's ``max_cells``."""
    area = float(shapely.area(frame.study_area))
    sizes = {r: grids.estimate_cells(area, r) for r in frame.resolutions}
    total, limit = sum(sizes.values()), city.config.max_cells
    if total <= limit:
        return
    worst = max(sizes, key=lambda r: sizes[r])
    raise CityFileError(
        f"h3_resolutions: the H3 cover would have about {total:,} cells (resolution {worst}: "
        f"~{sizes[worst]:,} over {area / 1e6:,.1f} km2), more than max_cells = {limit:,}",
        path=city.path,
        hint="use coarser resolutions (9 or 10 suit neighbourhoods), or raise max_cells if "
        "this is intended and the machine has the memory",
    )


def validate(
    city_file: str | Path, *, progress: Progress | None = None, threads: int | None = None
) -> Result:
    """Check a city file and every input, reporting all problems at once; write nothing.

    Returns
    -------
    Result
        Per-layer counts of what a build would accept and reject.

    Raises
    ------
    ProblemsError
        Listing every fatal problem found (in the city file, units or any layer).

    """
    clock = _Clock(progress or Progress())
    city = load_city(city_file)
    try:
        with clock.stage("admin units and study area"):
            frame, crs_note, _ = prepare(city, threads=threads)
    except GeoUsmError as exc:
        # the layers cannot be located without the units, but they can still be read
        problems = [exc]
        for name in city.config.layers:
            try:
                check_source(city, name)
            except GeoUsmError as layer_exc:
                problems.append(layer_exc)
        raise ProblemsError(problems) from None
    cover: list[GeoUsmError] = []
    try:
        _check_cover_size(city, frame)
    except GeoUsmError as exc:
        cover.append(exc)
    layers, problems = _ingest(city, frame, clock, collect=True)
    problems = cover + problems
    if problems:
        raise ProblemsError(problems)
    return Result(
        city,
        frame.crs,
        crs_note,
        [r.report for r in layers.values()],
        n_units=len(frame.units),
        seconds=clock.seconds,
        stages=clock.stages,
    )


def build(
    city_file: str | Path,
    out: str | Path,
    *,
    progress: Progress | None = None,
    threads: int | None = None,
) -> Result:
    """Build a city's diagnosis and publish it at ``out``.

    Parameters
    ----------
    city_file
        Path to the city file.
    out
        Output path; after success it is a link to the new build directory.
    progress
        Progress hooks.
    threads
        Worker threads; by default the machine's CPU count.

    Returns
    -------
    Result

    Raises
    ------
    GeoUsmError
        For any problem the user can fix; nothing is published and the previous build stays.

    """
    started = dt.datetime.now(dt.UTC)
    clock = _Clock(progress or Progress())
    out = Path(out).absolute()
    city = load_city(city_file)
    store.check_output(out)
    with clock.stage("admin units and study area"):
        frame, crs_note, unit_notes = prepare(city, threads=threads)
    _check_cover_size(city, frame)
    layers, _ = _ingest(city, frame, clock, collect=False)

    with clock.stage("H3 cover and crosswalk", total=2 * len(frame.resolutions)) as advance:
        covers = {}
        for res in frame.resolutions:
            covers[res] = grids.hex_cover(
                frame.study_area,
                frame.study_wgs,
                res,
                frame.crs,
                extra_cells=_record_cells(layers.values(), res),
                threads=threads,
            )
            advance(1)
        parts = []
        for hexes in covers.values():
            parts.append(grids.crosswalk(hexes, frame.units, threads=threads))
            advance(1)
        crosswalk = pd.concat(parts, ignore_index=True)
    primary = frame.resolutions[0]
    unit_grid = Grid("units", frame.units["unit_id"].to_numpy(), frame.units_in_study_area)
    in_units = {
        res: grids.area_in_units(crosswalk, hx["h3"].to_numpy()) for res, hx in covers.items()
    }
    hex_grids = [
        Grid(
            grid_name(res, primary),
            hx["h3"].to_numpy(),
            np.asarray(hx.geometry.values),
            cells=hx["cell"].to_numpy(),
            resolution=res,
            outside=~(in_units[res] > 0),
        )
        for res, hx in covers.items()
    ]
    with clock.stage("aggregation", total=len(layers)) as advance:
        aggs = aggregate(
            layers.values(),
            unit_grid,
            hex_grids,
            kinds_order=[k for k, kind in city.kinds.items() if kind.total],
            kind_fields={k: kind.total for k, kind in city.kinds.items() if kind.total},
            region=frame.region,
            threads=threads,
            advance=advance,
            crs=frame.crs,
        )
    with clock.stage("indicators", total=len(city.indicators.specs)) as advance:
        hex_areas = {  # where records can be: inside the study area and inside a unit
            grid_name(res, primary): np.minimum(
                (hx["area_m2"] * hx["area_share"]).to_numpy(), in_units[res]
            )
            for res, hx in covers.items()
        }
        context = indicators.Context(
            indicators.grid_data(frame, hex_grids, hex_areas, crosswalk, layers, aggs),
            aggs,
            layers,
            city.indicators.category_groups,
            indicators.make_locator(frame, hex_grids),
        )
        values = indicators.compute(city.indicators, context, advance=advance)
    for method, seconds in values.seconds.items():
        clock.stages[f"indicators: {method}"] = seconds
    with clock.stage("hotspots and trends"):
        analysis = _analyse(city, frame, context, values, aggs, [unit_grid, *hex_grids], layers)
    with clock.stage("indices, peer groups and priority areas"):
        ranked = _indices(city, context, values, analysis, [unit_grid.name, hex_grids[0].name])
    with clock.stage("density surface"):
        surface = _surface(city, frame, context)
    variables = [v.column for v in aggs.variables.values() if v.wide]
    taken = {v.name for v in variables}
    rates = hotspots.smoothed_rates(city.config.hotspots, city.indicators.specs)
    grid_extra = (*hotspots.GRID_HOTSPOT_COLUMNS, *hotspots.eb_columns(rates))
    index_extra = indices.index_columns(city.config.indices, city.indicators.specs)
    catalog = build_catalog(
        city=city.config.name,
        resolutions=frame.resolutions,
        variables=variables,
        has_population="population" in frame.units,
        layers={name: r.kind for name, r in layers.items()},
        indicators=tuple(
            c for c in indicators.columns(city.indicators, context) if c.name not in taken
        ),
        analysis={
            g.name: (*grid_extra, *(index_extra if g.name in ranked else ()))
            for g in [unit_grid, *hex_grids]
        },
        tables=_analysis_layers(analysis, surface),
    )
    build_id = started.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]
    stage = store.stage_path(out, build_id)
    try:
        store.staging_dir(out, build_id)
        with clock.stage("writing the build", total=len(catalog.layers)) as advance:
            frames = _frames(
                city, frame, covers, crosswalk, aggs, layers, values, catalog, analysis
            )
            frames["indicators"] = indicators.table(city.indicators, values, context)
            gaps = values.gaps({g: d.ids for g, d in context.grids.items()})
            frames["indicator_gaps"] = pd.concat(
                [gaps, *(r.gaps for r in ranked.values())], ignore_index=True
            )
            frames.update(analysis.tables)
            for layer in catalog.layers:
                if layer.name == "risk_surface":
                    assert surface is not None
                    density.write_surfaces(stage / layer.file, [(s, name) for name, s in surface])
                else:
                    store.write_layer(stage, layer, frames[layer.name])
                advance(1)
            reports = [r.report for r in layers.values()]
            manifest = build_manifest(
                city=city,
                frame=frame,
                crs_note=crs_note,
                build_id=build_id,
                started=started,
                seconds=clock.seconds,
                stages=clock.stages,
                reports=reports,
                unit_notes=unit_notes,
                n_hex={r: len(h) for r, h in covers.items()},
                n_rejects=len(frames["rejects"]),
                periods=_periods(aggs, layers),
                aggregation_notes=aggs.notes,
                catalog=catalog,
                indicators=frames["indicators"].to_dict(orient="records"),
            )
            manifest.update(analysis.manifest)
            with clock.stage("vector tiles"):
                manifest["tiles"] = tiles.write_tilesets(
                    stage / store.PUBLIC,
                    catalog,
                    frames,
                    _basemap(frames, layers),
                    attribution="; ".join(manifest["attribution"]),
                )
            manifest["indices"] = {g: r.manifest for g, r in ranked.items()}
            manifest["density"] = _surface_manifest(city, surface)
            manifest["artefacts"] = store.artefacts(stage, catalog)
            store.write_manifest(stage, manifest)
        store.publish(stage, out, build_id)
    except BaseException:
        store.discard(stage)
        raise
    return Result(
        city,
        frame.crs,
        crs_note,
        reports,
        n_units=len(frame.units),
        n_hex={r: len(h) for r, h in covers.items()},
        build_id=build_id,
        output=out,
        seconds=clock.seconds,
        stages=clock.stages,
        manifest=manifest,
    )


def _record_cells(layers: Iterable[Records], res: int) -> np.ndarray:
    """Cells holding accepted points or pixels: the cover must include them."""
    parts = [r.cells[res] for r in layers if r.cells]
    return np.unique(np.concatenate(parts)) if parts else np.empty(0, dtype=np.uint64)


def _periods(aggs: Aggregates, layers: dict[str, Records]) -> dict[str, list[str]]:
    """Months with records of each temporal layer (the first and last bound its span)."""
    monthly = aggs.monthly.get("units", {})
    return {name: monthly[f"count_{name}"][0] for name in layers if f"count_{name}" in monthly}


def _frames(
    city: City,
    frame: SpatialFrame,
    covers: dict[int, gpd.GeoDataFrame],
    crosswalk: pd.DataFrame,
    aggs: Aggregates,
    layers: dict[str, Records],
    values: indicators.Result,
    catalog: Catalog,
    analysis: hotspots.Analysis,
) -> dict[str, pd.DataFrame]:
    """Assemble every output layer's frame, in the catalogue's column order."""
    primary = frame.resolutions[0]
    out: dict[str, pd.DataFrame] = {}
    for res, hx in covers.items():
        name = grid_name(res, primary)
        static = hx[["h3", "resolution", "area_m2", "area_share"]].reset_index(drop=True)
        data = values.add_columns(pd.concat([static, aggs.wide(name)], axis=1), name)
        data = pd.concat([data, analysis.columns[name]], axis=1)
        out[name] = gpd.GeoDataFrame(
            data[catalog.layer(name).column_names], geometry=hx.geometry.values, crs=frame.crs
        )
    cols = ["unit_id", "unit_name", "area_m2"]
    if "population" in frame.units:
        cols.append("population")
    static = pd.DataFrame(frame.units[cols]).reset_index(drop=True)
    data = values.add_columns(pd.concat([static, aggs.wide("units")], axis=1), "units")
    data = pd.concat([data, analysis.columns["units"]], axis=1)
    out["units"] = gpd.GeoDataFrame(
        data[catalog.layer("units").column_names],
        geometry=frame.units.geometry.values,
        crs=frame.crs,
    )
    out["study_area"] = gpd.GeoDataFrame(
        {"name": [city.config.name], "area_m2": [float(frame.study_area.area)]},
        geometry=[frame.study_area],
        crs=frame.crs,
    )
    out["crosswalk"] = crosswalk
    out["aggregates"] = aggs.long()
    for name, records in layers.items():
        if records.table is not None:
            out[name] = gpd.GeoDataFrame(records.table, geometry=records.geometry, crs=frame.crs)
    out["rejects"] = _all_rejects(layers)
    return out


def _analyse(
    city: City,
    frame: SpatialFrame,
    context: indicators.Context,
    values: indicators.Result,
    aggs: Aggregates,
    grid_list: list[Grid],
    layers: dict[str, Records],
) -> hotspots.Analysis:
    """Gather the grids' values and run the hotspot, trend and progress analyses."""
    inputs = []
    for g in grid_list:
        data = values.add_columns(aggs.wide(g.name), g.name)
        gd = context.grids[g.name]
        inputs.append(
            hotspots.GridInput(
                name=g.name,
                ids=g.ids,
                values=data,
                monthly=aggs.monthly.get(g.name, {}),
                area_m2=gd.area_m2,
                population=gd.population,
                cells=g.cells,
                geometry=np.asarray(frame.units.geometry.values) if g.cells is None else None,
                outside=g.outside,
            )
        )
    crimes = context.members("crimes")
    total = city.kinds["crimes"].total if "crimes" in city.kinds else None
    # every crime layer on its own, unless it is the only one in the total
    default = ([total] if total else []) + [
        f"count_{name}"
        for name, r in layers.items()
        if r.kind.kind == "crimes" and (len(crimes) > 1 or not r.config.in_totals)
    ]
    daily = {}
    if total:
        days = hotspots.daily_counts(crimes)
        if days is not None:
            daily[total] = days
    for name, r in layers.items():
        if f"count_{name}" in default:
            days = hotspots.daily_counts([r])
            if days is not None:
                daily[f"count_{name}"] = days
    cfg = city.config
    specs = city.indicators.specs
    rates = hotspots.smoothed_rates(cfg.hotspots, specs)
    events = {rate: indicators.rate_events(specs[rate], context) for rate in rates}
    per = {rate: float(specs[rate].params.get("per", 1000.0)) for rate in rates}  # type: ignore[arg-type]
    return hotspots.analyse(
        inputs,
        cfg.hotspots,
        cfg.trends,
        cfg.progress,
        default_variables=default,
        events=events,
        per=per,
        daily=daily,
    )


Surface = list[tuple[str, Any]]


def _indices(
    city: City,
    context: indicators.Context,
    values: indicators.Result,
    analysis: hotspots.Analysis,
    grid_names: list[str],
) -> dict[str, indices.IndexResult]:
    """Compute the indices of the units and the primary hexagons.

    Their columns join the analysis columns of the grid, their layers the analysis tables.
    """
    out = {}
    for name in grid_names:
        data = context.grids[name]
        result = indices.compute(
            name,
            data.ids,
            pd.DataFrame(values.values[name]),
            city.indicators.specs,
            city.config.indices,
            extra=analysis.columns[name][["gi_class"]],
            rules=city.rules,
        )
        analysis.columns[name] = pd.concat([analysis.columns[name], result.columns], axis=1)
        out[name] = result
    for table in ("explanations", "peer_groups", "priority_areas"):
        analysis.tables[table] = pd.concat(
            [getattr(r, table) for r in out.values()], ignore_index=True
        )
    return out


def _surface(city: City, frame: SpatialFrame, context: indicators.Context) -> Surface | None:
    """Compute the crime density surface (one band per requested group or month)."""
    cfg = city.config.density
    if not cfg.enabled:
        return None
    bands = hotspots.density_points(context.members("crimes"), context.derived, cfg.by)
    if not bands:
        return None
    study_area = frame.study_area
    _, x, y, w = bands[0]
    bw = cfg.bandwidth_m
    first = density.kde_surface(
        x,
        y,
        study_area=study_area,
        cell_size=cfg.cell_size_m,
        bandwidth=bw,
        weights=w,
        crs=frame.crs,
    )
    out: Surface = [("all", first)]
    for name, bx, by_, bw_ in bands[1:]:
        out.append(
            (
                name,
                density.kde_surface(
                    bx,
                    by_,
                    study_area=study_area,
                    cell_size=first.cell_size,
                    bandwidth=first.bandwidth,
                    weights=bw_,
                    crs=frame.crs,
                ),
            )
        )
    return out


def _surface_manifest(city: City, surface: Surface | None) -> dict[str, Any]:
    if surface is None:
        reason = (
            "switched off ([density] enabled = false)"
            if not city.config.density.enabled
            else "no crime points in this city"
        )
        return {"null_reason": reason}
    first = surface[0][1]
    return {
        "file": PUBLIC_SURFACE,
        "unit": "crimes per km2",
        "kernel": "quartic (biweight)",
        "bandwidth_m": round(float(first.bandwidth), 3),
        "bandwidth_rule": first.bandwidth_rule,
        "cell_size_m": float(first.cell_size),
        "bands": [
            {
                "band": i + 1,
                "name": name,
                "points": float(s.n_points),
                "integral": round(float(s.integral), 3),
                "integral_share": None
                if not np.isfinite(s.integral_share)
                else round(float(s.integral_share), 4),
            }
            for i, (name, s) in enumerate(surface)
        ],
    }


def _analysis_layers(
    analysis: hotspots.Analysis, surface: Surface | None
) -> tuple[OutputLayer, ...]:
    out = [
        OutputLayer(
            name=name,
            title=title,
            description=description,
            store="public",
            file=f"public/{name}.parquet" if name in hotspots.PARQUET_TABLES else PUBLIC_GPKG,
            columns=columns,
        )
        for name, (title, description, columns) in {**hotspots.TABLES, **indices.TABLES}.items()
        if name in analysis.tables
    ]
    if surface is not None:
        out.append(
            OutputLayer(
                name="risk_surface",
                title="Crime density surface",
                description="Kernel density of accepted crimes, crimes per km2, in the working "
                "CRS; nodata outside the study area (manifest: density).",
                store="public",
                file=PUBLIC_SURFACE,
                columns=tuple(
                    Column(
                        name=name,
                        type="float",
                        unit="crimes per km2",
                        description=f"Band {i + 1}: density of crimes ({name}).",
                    )
                    for i, (name, _) in enumerate(surface)
                ),
            )
        )
    return tuple(out)


def _basemap(
    frames: dict[str, pd.DataFrame], layers: dict[str, Records]
) -> dict[str, gpd.GeoDataFrame]:
    """Return the city's own basemap layers: study area, unit boundaries, streets, parks."""
    out: dict[str, gpd.GeoDataFrame] = {
        "study_area": frames["study_area"],
        "boundaries": frames["units"][["unit_name", "geometry"]].rename(
            columns={"unit_name": "name"}
        ),
    }
    for key, kind in (("streets", "streets"), ("parks", "public_space")):
        parts = [
            frames[name]
            for name, r in layers.items()
            if r.kind.kind == kind and name in frames and r.kind.geometry != "point"
        ]
        if parts:
            out[key] = pd.concat(parts, ignore_index=True)
    return out


def _all_rejects(layers: dict[str, Records]) -> pd.DataFrame:
    frames = [r.rejects for r in layers.values() if r.rejects is not None]
    if not frames:
        frames = [
            pd.DataFrame(columns=["layer", "source_file", "source_row", "reason", "original"])
        ]
    out = pd.concat(frames, ignore_index=True)
    out["source_row"] = out["source_row"].astype(np.int64)
    return out.astype({"layer": str, "source_file": str, "reason": str, "original": str})
