"""The build pipeline: the only module that wires file I/O to computation.

``validate`` checks a city file and every input and reports all problems at once, writing
nothing; ``build`` runs the same steps, aggregates onto hexes and admin units, and publishes a
build directory atomically.
"""

from __future__ import annotations

import datetime as dt
import platform
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely
from pyproj import CRS, Transformer

from geo_usm import __version__, store
from geo_usm.cityfile import City, LayerConfig, load_city
from geo_usm.errors import GeoUsmError, InputError, ProblemsError
from geo_usm.ingest import ParsedLayer, parse_layer
from geo_usm.io import RawTable, file_sha256, read_polygons, read_source
from geo_usm.schema import LayerKind
from geo_usm.units import (
    WGS84,
    SpatialFrame,
    cell_positions,
    cells_to_strings,
    count_by,
    to_crs,
    utm_crs_for,
)

OUTSIDE_STUDY_AREA = "outside the study area"
OUTSIDE_UNITS = "inside the study area but in no admin unit (gap in the units layer)"


class Progress:
    """Progress reporting hooks; the default does nothing (the CLI draws bars)."""

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
        """Report a step; yields a function to advance it by ``n`` items."""
        yield lambda n: None


@dataclass
class LayerReport:
    """What happened to one input layer."""

    name: str
    kind: str
    path: str
    sha256: str
    read: int
    accepted: int
    rejected: int
    rejects_by_reason: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    synthetic: bool = False
    attribution: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """Return the manifest entry."""
        return dict(self.__dict__)


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
    manifest: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Layer:
    """A layer after ingest and the spatial tests."""

    report: LayerReport
    accepted: pd.DataFrame | None = None  # canonical columns (+ h3, unit_id for points)
    geometry: np.ndarray | None = None
    rejects: pd.DataFrame | None = None
    unit: np.ndarray | None = None  # unit index per accepted point
    cells: dict[int, np.ndarray] = field(default_factory=dict)
    values: np.ndarray | None = None  # raster values per accepted pixel
    statistic: str = "sum"


def _read_units(city: City) -> tuple[gpd.GeoDataFrame, list[str]]:
    cfg = city.config.units
    path = city.resolve(cfg.path)
    gdf = read_polygons(path, layer=cfg.layer)
    notes = []
    if gdf.attrs.get("repaired"):
        notes.append(f"{gdf.attrs['repaired']} invalid unit polygon(s) repaired with make_valid")
    wanted = {"id": cfg.id, "name": cfg.name, "population": cfg.population}
    for key, col in wanted.items():
        if col is not None and col not in gdf.columns:
            cols = ", ".join(map(str, gdf.columns.drop("geometry")))
            raise InputError(
                f"units: column '{col}' (units.{key}) is not in the layer; columns are: {cols}",
                path=path,
                hint=f"fix units.{key} in the city file",
            )
    ids = gdf[cfg.id].astype("string").str.strip()
    empty = ids.isna() | (ids == "")
    if empty.any():
        rows = ", ".join(str(i + 1) for i in np.flatnonzero(empty.to_numpy())[:10])
        raise InputError(f"units: empty '{cfg.id}' in row(s) {rows}", path=path)
    dup = ids.duplicated(keep=False)
    if dup.any():
        values = ", ".join(sorted(set(ids[dup]))[:10])
        raise InputError(
            f"units: duplicate '{cfg.id}' values: {values}",
            path=path,
            hint="the id field must identify each unit",
        )
    out = gpd.GeoDataFrame(
        {"unit_id": ids.astype(str).to_numpy()}, geometry=gdf.geometry.values, crs=gdf.crs
    )
    out["unit_name"] = gdf[cfg.name].astype(str).to_numpy() if cfg.name else out["unit_id"]
    if cfg.population:
        pop = pd.to_numeric(gdf[cfg.population], errors="coerce")
        bad = pop.isna() & gdf[cfg.population].notna()
        if bad.any():
            rows = ", ".join(str(i + 1) for i in np.flatnonzero(bad.to_numpy())[:10])
            raise InputError(
                f"units: population column '{cfg.population}' is not numeric in row(s) {rows}",
                path=path,
            )
        out["population"] = pop.to_numpy(dtype=float)
    return out, notes


def _study_area(city: City, crs: CRS) -> shapely.Geometry | None:
    ref = city.config.study_area
    if ref is None:
        return None
    gdf = read_polygons(city.resolve(ref.path), layer=ref.layer)
    return shapely.union_all(to_crs(np.asarray(gdf.geometry.values), gdf.crs, crs))


def _choose_crs(city: City, units: gpd.GeoDataFrame) -> tuple[CRS, str]:
    if city.config.crs:
        crs = CRS.from_user_input(city.config.crs)
        if not crs.is_projected:
            raise InputError(
                f"crs '{city.config.crs}' is not a projected (metric) CRS",
                path=city.path,
                hint="use a projected CRS such as the local UTM zone, or omit crs",
            )
        return crs, f"{crs.to_string()} (from the city file)"
    union = shapely.union_all(to_crs(np.asarray(units.geometry.values), units.crs, WGS84))
    crs = utm_crs_for(union)
    return crs, f"{crs.to_string()} ({crs.name}; chosen automatically: no crs in the city file)"


def _prepare(city: City) -> tuple[SpatialFrame, CRS, str, list[str]]:
    units, notes = _read_units(city)
    crs, crs_note = _choose_crs(city, units)
    units = units.to_crs(crs)
    frame = SpatialFrame(units, _study_area(city, crs), city.config.h3_resolutions, crs)
    return frame, crs, crs_note, notes


def _read_raw(city: City, cfg: LayerConfig) -> RawTable:
    fmt = cfg.format
    return read_source(
        city.resolve(cfg.path),
        layer=cfg.layer,
        delimiter=fmt.delimiter,
        encoding=fmt.encoding,
        sheet=fmt.sheet,
        where=fmt.where,
    )


def _reason_counts(rejects: pd.DataFrame) -> dict[str, int]:
    if rejects.empty:
        return {}
    return {str(k): int(v) for k, v in rejects["reason"].value_counts().items()}


def _ingest_vector(
    city: City, name: str, cfg: LayerConfig, kind: LayerKind, frame: SpatialFrame, path: Path
) -> _Layer:
    raw = _read_raw(city, cfg)
    parsed: ParsedLayer = parse_layer(raw, name, cfg, kind, frame.crs)
    unit = None
    cells: dict[int, np.ndarray] = {}
    if kind.geometry == "point":
        ok = parsed.ok
        where = frame.assign(parsed.lon[ok], parsed.lat[ok])
        outside = np.zeros(len(ok), dtype=bool)
        outside[ok] = ~where.inside
        parsed.reject(outside, OUTSIDE_STUDY_AREA)
        gap = np.zeros(len(ok), dtype=bool)
        gap[ok] = where.inside & (where.unit < 0)
        parsed.reject(gap, OUTSIDE_UNITS)
        keep = where.inside & (where.unit >= 0)
        unit = where.unit[keep]
        cells = {r: c[keep] for r, c in where.cells.items()}
    else:
        ok = parsed.ok
        hits = np.zeros(len(ok), dtype=bool)
        hits[ok] = shapely.intersects(frame.study_area, parsed.geometry[ok])
        parsed.reject(ok & ~hits, OUTSIDE_STUDY_AREA)
    accepted, geometry, rejects = parsed.split()
    if unit is not None:
        accepted["unit_id"] = frame.units["unit_id"].to_numpy()[unit]
        accepted["h3"] = cells_to_strings(cells[frame.resolutions[0]])
    report = LayerReport(
        name=name,
        kind=kind.kind,
        path=str(cfg.path),
        sha256=file_sha256(path),
        read=raw.n_read,
        accepted=len(accepted),
        rejected=len(rejects),
        rejects_by_reason=_reason_counts(rejects),
        notes=parsed.notes,
        synthetic=cfg.synthetic,
        attribution=cfg.attribution,
    )
    return _Layer(report, accepted, geometry, rejects, unit, cells)


def _ingest_raster(
    city: City, name: str, cfg: LayerConfig, frame: SpatialFrame, path: Path
) -> _Layer:
    if not path.exists():
        raise InputError("input file not found", path=path, hint="check 'path' in the city file")
    try:
        with rasterio.open(path) as src:
            if cfg.band > src.count:
                raise InputError(
                    f"layer '{name}': band {cfg.band} does not exist (the raster has {src.count})",
                    path=path,
                )
            src_crs = (
                CRS.from_user_input(cfg.crs)
                if cfg.crs
                else (CRS.from_user_input(src.crs) if src.crs else None)
            )
            if src_crs is None:
                raise InputError(
                    f"layer '{name}': the raster declares no CRS",
                    path=path,
                    hint=f"set layers.{name}.crs in the city file",
                )
            data = src.read(cfg.band, masked=True)
            transform = src.transform
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"cannot read raster: {exc}", path=path) from None
    valid = ~np.ma.getmaskarray(data) & np.isfinite(np.ma.getdata(data))
    rows, cols = np.nonzero(valid)
    xs, ys = rasterio.transform.xy(transform, rows, cols, offset="center")
    xs, ys = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    if src_crs.is_geographic:
        lon, lat = xs, ys
    else:
        lon, lat = Transformer.from_crs(src_crs, WGS84, always_xy=True).transform(xs, ys)
    where = frame.assign(lon, lat)
    keep = where.inside & (where.unit >= 0)
    values = np.ma.getdata(data)[rows, cols].astype(float)
    n_nodata = int(data.size - valid.sum())
    report = LayerReport(
        name=name,
        kind="raster",
        path=str(cfg.path),
        sha256=file_sha256(path),
        read=int(data.size),
        accepted=int(keep.sum()),
        rejected=int(data.size - keep.sum()),
        rejects_by_reason={
            k: v
            for k, v in {
                "nodata pixel": n_nodata,
                "pixel centre " + OUTSIDE_STUDY_AREA: int((~where.inside).sum()),
                "pixel centre " + OUTSIDE_UNITS: int((where.inside & (where.unit < 0)).sum()),
            }.items()
            if v
        },
        notes=[
            "raster pixels are counted, not listed in the rejects layer; each pixel is "
            "assigned by its centre"
        ],
        synthetic=cfg.synthetic,
        attribution=cfg.attribution,
    )
    cells = {r: c[keep] for r, c in where.cells.items()}
    return _Layer(
        report, unit=where.unit[keep], cells=cells, values=values[keep], statistic=cfg.statistic
    )


def _ingest(
    city: City, frame: SpatialFrame, progress: Progress, *, collect: bool
) -> tuple[dict[str, _Layer], list[GeoUsmError]]:
    layers: dict[str, _Layer] = {}
    problems: list[GeoUsmError] = []
    for name, cfg in city.config.layers.items():
        kind = city.kinds[cfg.kind]
        path = city.resolve(cfg.path)
        t0 = time.perf_counter()
        with progress.task(f"layer {name} ({cfg.kind})", total=None):
            try:
                if kind.geometry == "raster":
                    layers[name] = _ingest_raster(city, name, cfg, frame, path)
                else:
                    layers[name] = _ingest_vector(city, name, cfg, kind, frame, path)
                layers[name].report.seconds = round(time.perf_counter() - t0, 3)
            except GeoUsmError as exc:
                if not collect:
                    raise
                problems.append(exc)
    return layers, problems


def validate(city_file: str | Path, *, progress: Progress | None = None) -> Result:
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
    progress = progress or Progress()
    city = load_city(city_file)
    try:
        with progress.task("admin units and study area"):
            frame, crs, crs_note, _ = _prepare(city)
    except GeoUsmError as exc:
        raise ProblemsError([exc]) from None
    layers, problems = _ingest(city, frame, progress, collect=True)
    if problems:
        raise ProblemsError(problems)
    return Result(
        city, crs, crs_note, [layer.report for layer in layers.values()], n_units=len(frame.units)
    )


def build(city_file: str | Path, out: str | Path, *, progress: Progress | None = None) -> Result:
    """Build a city's diagnosis and publish it at ``out``.

    Parameters
    ----------
    city_file
        Path to the city file.
    out
        Output path; after success it is a link to the new build directory.
    progress
        Progress hooks.

    Returns
    -------
    Result

    Raises
    ------
    GeoUsmError
        For any problem the user can fix; nothing is published and the previous build stays.

    """
    t0 = time.perf_counter()
    started = dt.datetime.now(dt.UTC)
    progress = progress or Progress()
    out = Path(out).absolute()
    city = load_city(city_file)
    store.check_output(out)
    with progress.task("admin units and study area"):
        frame, crs, crs_note, unit_notes = _prepare(city)
    layers, _ = _ingest(city, frame, progress, collect=False)

    with progress.task("hexagons, crosswalk and counts"):
        hexes, units = _aggregate(frame, layers, city)
        crosswalk = pd.concat([frame.crosswalk(h) for h in hexes.values()], ignore_index=True)
    build_id = started.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]
    stage = store.staging_dir(out, build_id)
    try:
        with progress.task("writing diagnosis.gpkg", total=len(layers) + 5) as advance:
            primary = frame.resolutions[0]
            for res, hx in hexes.items():
                name = "hex" if res == primary else f"hex_r{res}"
                store.write_layer(stage, name, hx.drop(columns="cell"), geometry_type="Polygon")
                advance(1)
            store.write_layer(stage, "units", units)
            store.write_layer(stage, "crosswalk", crosswalk)
            study = gpd.GeoDataFrame(
                {"name": [city.config.name]}, geometry=[frame.study_area], crs=crs
            )
            store.write_layer(stage, "study_area", study)
            rejects = _all_rejects(layers)
            store.write_layer(stage, "rejects", rejects)
            advance(3)
            for name, layer in layers.items():
                if layer.accepted is not None:
                    gdf = gpd.GeoDataFrame(layer.accepted, geometry=layer.geometry, crs=crs)
                    store.write_layer(stage, name, gdf)
                advance(1)
            result = Result(
                city,
                crs,
                crs_note,
                [layer.report for layer in layers.values()],
                n_units=len(units),
                n_hex={r: len(h) for r, h in hexes.items()},
                build_id=build_id,
                output=out,
            )
            result.seconds = time.perf_counter() - t0
            result.manifest = _manifest(result, city, frame, started, unit_notes, len(rejects))
            store.write_manifest(stage, result.manifest)
        store.publish(stage, out, build_id)
    except BaseException:
        store.discard(stage)
        raise
    return result


def _all_rejects(layers: dict[str, _Layer]) -> pd.DataFrame:
    frames = [layer.rejects for layer in layers.values() if layer.rejects is not None]
    if not frames:
        frames = [
            pd.DataFrame(columns=["layer", "source_file", "source_row", "reason", "original"])
        ]
    out = pd.concat(frames, ignore_index=True)
    out["source_row"] = out["source_row"].astype(np.int64)
    return out.astype({"layer": str, "source_file": str, "reason": str, "original": str})


def _aggregate(
    frame: SpatialFrame, layers: dict[str, _Layer], city: City
) -> tuple[dict[int, gpd.GeoDataFrame], gpd.GeoDataFrame]:
    """Build the hex covers and add counts (and raster statistics) to hexes and units.

    Every point layer gets ``count_<layer>``; each point kind with a count field gets that
    field (``crime_count``...), the sum over its layers with ``in_totals`` true.
    """
    units = frame.units.copy()
    hexes: dict[int, gpd.GeoDataFrame] = {}
    points = {n: lay for n, lay in layers.items() if lay.unit is not None and lay.values is None}
    for res in frame.resolutions:
        extra = [lay.cells[res] for lay in points.values()]
        hexes[res] = frame.hex_cover(res, np.concatenate(extra) if extra else None)
    tables = (units, *hexes.values())

    def add(column: str, lay: _Layer, statistic: str) -> None:
        assert lay.unit is not None
        for res, hx in hexes.items():
            pos = cell_positions(lay.cells[res], hx["cell"].to_numpy())
            hx[column] = _stat(pos, len(hx), lay.values, statistic)
        units[column] = _stat(lay.unit, len(units), lay.values, statistic)

    expected: dict[str, int] = {}
    for name, lay in points.items():
        add(f"count_{name}", lay, "count")
        expected[f"count_{name}"] = lay.report.accepted
    kinds = [city.kinds[k] for k in dict.fromkeys(lay.report.kind for lay in points.values())]
    for kind in [city.kinds["crimes"], *kinds]:  # crime_count is always there, even when zero
        if not kind.count_field or kind.count_field in units:
            continue
        members = [
            n
            for n, lay in points.items()
            if lay.report.kind == kind.kind and city.config.layers[n].in_totals
        ]
        for table in tables:
            table[kind.count_field] = sum(
                (table[f"count_{n}"] for n in members), start=np.zeros(len(table), np.int64)
            )
        expected[kind.count_field] = sum(points[n].report.accepted for n in members)
    for name, lay in layers.items():
        if lay.values is not None:
            add(f"{name}_{lay.statistic}", lay, lay.statistic)
    for column, accepted in expected.items():
        totals = [int(t[column].sum()) for t in tables]
        if any(t != accepted for t in totals):
            msg = f"conservation failed for {column}: accepted {accepted}, totals {totals}"
            raise RuntimeError(msg)
    return hexes, units


def _stat(index: np.ndarray, n: int, weights: np.ndarray | None, statistic: str) -> np.ndarray:
    if statistic == "count":
        return count_by(index, n).astype(np.int64)
    total = count_by(index, n, weights)
    if statistic == "sum":
        return total
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count_by(index, n)


def _manifest(
    result: Result,
    city: City,
    frame: SpatialFrame,
    started: dt.datetime,
    unit_notes: list[str],
    n_rejects: int,
) -> dict[str, Any]:
    cfg = city.config
    inputs = [
        {
            "role": "units",
            "path": str(cfg.units.path),
            "sha256": file_sha256(city.resolve(cfg.units.path)),
        }
    ]
    if cfg.study_area:
        inputs.append(
            {
                "role": "study_area",
                "path": str(cfg.study_area.path),
                "sha256": file_sha256(city.resolve(cfg.study_area.path)),
            }
        )
    inputs += [
        {"role": f"layer:{r.name}", "path": r.path, "sha256": r.sha256} for r in result.layers
    ]
    attributions = [cfg.attribution, cfg.units.attribution]
    attributions += [cfg.study_area.attribution] if cfg.study_area else []
    attributions += [r.attribution for r in result.layers]
    return {
        "software": {
            "name": "geo-usm",
            "version": __version__,
            "python": platform.python_version(),
        },
        "build_id": result.build_id,
        "started": started.isoformat(),
        "finished": dt.datetime.now(dt.UTC).isoformat(),
        "seconds": round(result.seconds, 3),
        "city": {"name": cfg.name, "file": str(city.path), "sha256": city.sha256},
        "crs": {"working": result.crs.to_string(), "note": result.crs_note},
        "parameters": {
            "h3_resolutions": cfg.h3_resolutions,
            "primary_resolution": cfg.h3_resolutions[0],
            "study_area": "units union" if frame.study_area_is_units else str(cfg.study_area.path),  # type: ignore[union-attr]
            "study_area_m2": float(frame.study_area.area),
            "point_assignment": "H3 cell of the WGS84 location; admin unit containing the point, "
            "ties on shared edges to the lowest unit_id",
        },
        "inputs": inputs,
        "layers": {r.name: r.as_dict() for r in result.layers},
        "units": {"count": result.n_units, "id_field": cfg.units.id, "notes": unit_notes},
        "hex": {str(r): n for r, n in result.n_hex.items()},
        "rejects": n_rejects,
        "synthetic_layers": [r.name for r in result.layers if r.synthetic],
        "attribution": [a for a in dict.fromkeys(attributions) if a],
    }
