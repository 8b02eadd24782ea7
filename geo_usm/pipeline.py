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

from geo_usm import grids, indicators, store
from geo_usm.aggregate import Aggregates, Grid, aggregate
from geo_usm.catalog import Catalog, build_catalog, grid_name
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
    variables = [v.column for v in aggs.variables.values() if v.wide]
    taken = {v.name for v in variables}
    catalog = build_catalog(
        city=city.config.name,
        resolutions=frame.resolutions,
        variables=variables,
        has_population="population" in frame.units,
        layers={name: r.kind for name, r in layers.items()},
        indicators=tuple(
            c for c in indicators.columns(city.indicators, context) if c.name not in taken
        ),
    )
    build_id = started.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]
    stage = store.stage_path(out, build_id)
    try:
        store.staging_dir(out, build_id)
        with clock.stage("writing the build", total=len(catalog.layers)) as advance:
            frames = _frames(city, frame, covers, crosswalk, aggs, layers, values, catalog)
            frames["indicators"] = indicators.table(city.indicators, values, context)
            frames["indicator_gaps"] = values.gaps({g: d.ids for g, d in context.grids.items()})
            for layer in catalog.layers:
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
) -> dict[str, pd.DataFrame]:
    """Assemble every output layer's frame, in the catalogue's column order."""
    primary = frame.resolutions[0]
    out: dict[str, pd.DataFrame] = {}
    for res, hx in covers.items():
        name = grid_name(res, primary)
        static = hx[["h3", "resolution", "area_m2", "area_share"]].reset_index(drop=True)
        data = values.add_columns(pd.concat([static, aggs.wide(name)], axis=1), name)
        out[name] = gpd.GeoDataFrame(
            data[catalog.layer(name).column_names], geometry=hx.geometry.values, crs=frame.crs
        )
    cols = ["unit_id", "unit_name", "area_m2"]
    if "population" in frame.units:
        cols.append("population")
    static = pd.DataFrame(frame.units[cols]).reset_index(drop=True)
    data = values.add_columns(pd.concat([static, aggs.wide("units")], axis=1), "units")
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


def _all_rejects(layers: dict[str, Records]) -> pd.DataFrame:
    frames = [r.rejects for r in layers.values() if r.rejects is not None]
    if not frames:
        frames = [
            pd.DataFrame(columns=["layer", "source_file", "source_row", "reason", "original"])
        ]
    out = pd.concat(frames, ignore_index=True)
    out["source_row"] = out["source_row"].astype(np.int64)
    return out.astype({"layer": str, "source_file": str, "reason": str, "original": str})
