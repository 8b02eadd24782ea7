"""Admin units and the study area: read, check, choose the working CRS, index for assignment.

:func:`prepare` reads a city's lowest administrative units and study area, chooses the metric
working CRS and returns a :class:`SpatialFrame`, the spatial reference every later stage uses.

Notes
-----
Areas are planar, in the city's metric working CRS. Unit edges are densified to ``DENSIFY_M``
before reprojection to lon/lat, so that edges straight in the working CRS stay within a
millimetre of where they were once drawn as straight lines in lon/lat.

"""

from __future__ import annotations

from functools import cached_property

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from geo_usm.assign import Assignment, PolygonIndex, assign_points
from geo_usm.cityfile import City
from geo_usm.errors import InputError
from geo_usm.geo import (
    WGS84,
    PreparedPool,
    metric_problem,
    to_crs,
    transform,
    transformer,
    utm_crs_for,
)
from geo_usm.io import read_polygons

#: Longest edge (metres) kept when boundaries are reprojected to lon/lat for point lookup.
DENSIFY_M = 10.0
#: Largest share of the units' area they may overlap on (generalised boundaries overlap by
#: slivers; more means a layer that is not a partition, such as two editions in one file).
MAX_OVERLAP_SHARE = 1e-4


class SpatialFrame:
    """The study area and admin units of one city, indexed to assign records.

    Parameters
    ----------
    units
        Admin units in the working CRS, with a ``unit_id`` column.
    study_area
        The study area polygon in the working CRS, or ``None`` for the union of the units.
    resolutions
        H3 resolutions; the first is the primary one.
    crs
        The metric working CRS.
    threads
        Worker threads for assignment; by default the machine's CPU count.

    Attributes
    ----------
    units : geopandas.GeoDataFrame
        Sorted by ``unit_id``, with ``area_m2``.
    study_area : shapely.Geometry
        In the working CRS.
    study_wgs : shapely.Geometry
        The study area in lon/lat, densified.

    """

    def __init__(
        self,
        units: gpd.GeoDataFrame,
        study_area: shapely.Geometry | None,
        resolutions: list[int],
        crs: CRS,
        *,
        threads: int | None = None,
    ):
        self.crs = crs
        self.threads = threads
        self.resolutions = list(resolutions)
        self.units = units.sort_values("unit_id", kind="stable").reset_index(drop=True)
        self.units["area_m2"] = shapely.area(self.units.geometry.values)
        self._union = shapely.union_all(self.units.geometry.values)
        #: Area counted twice where units overlap (0 for a clean partition).
        self.units_overlap_m2 = max(float(self.units["area_m2"].sum() - self._union.area), 0.0)
        self.study_area_is_units = study_area is None
        self.study_area = self._union if study_area is None else study_area
        self._study_pool = PreparedPool(np.asarray([self.study_area]))
        to_wgs = transformer(crs, WGS84)
        units_wgs = transform(
            shapely.segmentize(np.asarray(self.units.geometry.values), DENSIFY_M), to_wgs
        )
        self.unit_index = PolygonIndex(units_wgs)
        self.study_wgs = transform(
            shapely.segmentize(np.asarray([self.study_area]), DENSIFY_M), to_wgs
        )[0]
        self.study_index = (
            None if self.study_area_is_units else PolygonIndex(np.asarray([self.study_wgs]))
        )

    @cached_property
    def units_in_study_area(self) -> np.ndarray:
        """The units clipped to the study area: where lines and polygons are measured."""
        geoms = np.asarray(self.units.geometry.values)
        return geoms if self.study_area_is_units else shapely.intersection(geoms, self.study_area)

    @cached_property
    def region(self) -> shapely.Geometry:
        """The union of the units within the study area."""
        if self.study_area_is_units:
            return self._union
        return shapely.intersection(self._union, self.study_area)

    def in_study_area(self, geoms: np.ndarray) -> np.ndarray:
        """Return whether each geometry (working CRS) intersects the study area; thread-safe."""
        with self._study_pool.checkout() as (study,):
            return np.asarray(shapely.intersects(study, geoms), dtype=bool)

    @cached_property
    def _unit_tree(self) -> tuple[shapely.STRtree, np.ndarray]:
        parts = self.units_in_study_area
        return shapely.STRtree(parts), parts

    def snap(
        self, points: np.ndarray, max_distance: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Find the nearest unit within ``max_distance`` metres of points that are in none.

        Parameters
        ----------
        points
            Points in the working CRS.
        max_distance
            Largest distance (m) from the unit's part inside the study area.

        Returns
        -------
        tuple
            Unit position per point (-1: none within reach), and the lon/lat of the nearest
            point of that unit (NaN where none), where the point is counted on the hexagons.

        """
        n = len(points)
        pos = np.full(n, -1, dtype=np.int64)
        lon = np.full(n, np.nan)
        lat = np.full(n, np.nan)
        if n == 0:
            return pos, lon, lat
        tree, parts = self._unit_tree
        src, hit = tree.query_nearest(points, max_distance=max_distance, all_matches=False)
        pos[src] = hit
        nearest = shapely.get_point(shapely.shortest_line(points[src], parts[hit]), 1)
        lon[src], lat[src] = transformer(self.crs, WGS84).transform(
            shapely.get_x(nearest), shapely.get_y(nearest)
        )
        return pos, lon, lat

    def assign(self, lon: np.ndarray, lat: np.ndarray) -> Assignment:
        """Assign points (WGS84 lon/lat arrays) to the study area, units and H3 cells."""
        return assign_points(
            lon,
            lat,
            unit_index=self.unit_index,
            study_index=self.study_index,
            resolutions=self.resolutions,
            threads=self.threads,
        )


def read_units(city: City) -> tuple[gpd.GeoDataFrame, list[str]]:
    """Read and check the admin units: ids present and unique, population numeric.

    Returns
    -------
    tuple
        The units (``unit_id``, ``unit_name``, ``population`` if mapped, geometry in the file's
        CRS) and notes for the manifest.

    Raises
    ------
    InputError
        Naming the file and column at fault.

    """
    cfg = city.config.units
    path = city.resolve(cfg.path)
    gdf = read_polygons(path, layer=cfg.layer, wkt=cfg.wkt, crs=cfg.crs, member=cfg.member)
    if gdf.empty:
        raise InputError(
            "the units layer has no features",
            path=path,
            hint="point units.path (and units.layer) at the admin boundaries",
        )
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
        raise InputError(
            f"units: empty '{cfg.id}' in row(s) {rows}",
            path=path,
            hint=f"every unit needs an id: fill them in, or check units.id ('{cfg.id}')",
        )
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
                hint="fix those values (empty is allowed), or check units.population",
            )
        out["population"] = pop.to_numpy(dtype=float)
    return out, notes


def read_study_area(city: City, crs: CRS) -> shapely.Geometry | None:
    """Read the study area polygon in the working CRS, or ``None`` for the units' union."""
    ref = city.config.study_area
    if ref is None:
        return None
    path = city.resolve(ref.path)
    gdf = read_polygons(path, layer=ref.layer, wkt=ref.wkt, crs=ref.crs, member=ref.member)
    if gdf.empty:
        raise InputError(
            "the study area layer has no features",
            path=path,
            hint="point study_area.path (and layer) at the study area polygon, or remove "
            "[study_area] to use the union of the units",
        )
    return shapely.union_all(to_crs(np.asarray(gdf.geometry.values), gdf.crs, crs))


def choose_crs(city: City, units: gpd.GeoDataFrame) -> tuple[CRS, str]:
    """Return the working CRS (metric) and a note saying where it came from.

    Raises
    ------
    InputError
        If the city file names a CRS that is not projected in metres.

    """
    if city.config.crs:
        crs = CRS.from_user_input(city.config.crs)
        problem = metric_problem(crs)
        if problem:
            raise InputError(
                f"crs '{city.config.crs}' {problem}; areas and distances must be in metres",
                path=city.path,
                hint="use a metric projected CRS such as the local UTM zone, or omit crs",
            )
        return crs, f"{crs.to_string()} (from the city file)"
    union = shapely.union_all(to_crs(np.asarray(units.geometry.values), units.crs, WGS84))
    crs = utm_crs_for(union)
    return crs, f"{crs.to_string()} ({crs.name}; chosen automatically: no crs in the city file)"


def prepare(city: City, *, threads: int | None = None) -> tuple[SpatialFrame, str, list[str]]:
    """Read units and study area and build the city's :class:`SpatialFrame`.

    Returns
    -------
    tuple
        The frame, a note on the working CRS, and notes on the units.

    """
    units, notes = read_units(city)
    crs, crs_note = choose_crs(city, units)
    units = units.to_crs(crs)
    frame = SpatialFrame(
        units, read_study_area(city, crs), city.config.h3_resolutions, crs, threads=threads
    )
    if not (shapely.area(frame.units_in_study_area) > 0).any():
        raise InputError(
            "the study area overlaps no admin unit",
            path=city.resolve(city.config.study_area.path) if city.config.study_area else None,
            hint="check that the study area and the units are the same place (and their CRS)",
        )
    total = float(frame.units["area_m2"].sum())
    overlap = frame.units_overlap_m2
    if overlap > MAX_OVERLAP_SHARE * total:
        raise InputError(
            f"units: the admin units overlap ({overlap:,.0f} m2, {overlap / total:.2%} of their "
            "area): a record in an overlap would belong to two units",
            path=city.resolve(city.config.units.path),
            hint="use a layer whose units do not overlap (a partition, as census units are)",
        )
    if overlap > 1.0:
        notes.append(f"the units overlap slightly ({overlap:,.1f} m2 in all)")
    return frame, crs_note, notes
