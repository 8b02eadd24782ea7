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

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer

from geo_usm.assign import Assignment, PolygonIndex, assign_points
from geo_usm.cityfile import City
from geo_usm.errors import InputError
import h3  # TEMPORARY
from geo_usm.geo import WGS84, cells_to_strings, metric_problem, to_crs, transform, utm_crs_for  # noqa: F401
from h3ronpy.vector import cells_to_wkb_polygons  # TEMPORARY
from geo_usm.io import read_polygons

#: Longest edge (metres) kept when boundaries are reprojected to lon/lat for point lookup.
DENSIFY_M = 10.0


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
        union = shapely.union_all(self.units.geometry.values)
        self.study_area_is_units = study_area is None
        self.study_area = union if study_area is None else study_area
        shapely.prepare(self.study_area)  # for the intersects tests of line and polygon layers
        to_wgs = Transformer.from_crs(crs, WGS84, always_xy=True)
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


    # TEMPORARY (old implementation kept while grids.py is written)
    def hex_cover(self, res: int, extra_cells: np.ndarray | None = None) -> gpd.GeoDataFrame:
        """Return the H3 cells at ``res`` that overlap the study area.

        Parameters
        ----------
        res
            H3 resolution.
        extra_cells
            Cells (uint64) that must be in the cover, e.g. those holding accepted points; a
            guard against numerical disagreement between the H3 and GEOS overlap tests.

        Returns
        -------
        geopandas.GeoDataFrame
            Columns ``h3`` (hex string), ``resolution``, ``area_m2`` (planar, working CRS),
            ``area_share`` (share of the cell inside the study area) and polygon geometry in the
            working CRS, sorted by ``h3``.

        """
        shape = h3.geo_to_h3shape(shapely.geometry.mapping(self.study_wgs))
        cells = np.asarray(
            [h3.str_to_int(c) for c in h3.h3shape_to_cells_experimental(shape, res, "overlap")],
            dtype=np.uint64,
        )
        if extra_cells is not None and len(extra_cells):
            cells = np.union1d(cells, np.unique(extra_cells))
        cells = np.unique(cells)
        wkb = np.asarray(cells_to_wkb_polygons(cells), dtype=object)
        polys = to_crs(shapely.from_wkb(wkb), WGS84, self.crs)
        area = shapely.area(polys)
        inter = shapely.area(shapely.intersection(polys, self.study_area))
        share = np.clip(inter / area, 0.0, 1.0)
        keep = share > 0
        if extra_cells is not None and len(extra_cells):
            keep |= np.isin(cells, extra_cells)
        hexes = gpd.GeoDataFrame(
            {
                "h3": cells_to_strings(cells[keep]),
                "resolution": np.full(int(keep.sum()), res, dtype=np.int64),
                "area_m2": area[keep],
                "area_share": share[keep],
            },
            geometry=polys[keep],
            crs=self.crs,
        )
        hexes["cell"] = cells[keep]
        return hexes.reset_index(drop=True)

    def crosswalk(self, hexes: gpd.GeoDataFrame) -> pd.DataFrame:
        """Return the hex <-> admin unit crosswalk with area shares.

        Returns
        -------
        pandas.DataFrame
            ``h3``, ``resolution``, ``unit_id``, ``area_m2`` (of the intersection),
            ``hex_share`` (share of the cell's area in the unit) and ``unit_share`` (share of
            the unit's area in the cell). For each unit, ``unit_share`` sums to 1 over the
            cover (up to floating point).

        """
        tree = shapely.STRtree(self.units.geometry.values)
        hex_idx, unit_idx = tree.query(hexes.geometry.values, predicate="intersects")
        inter = shapely.area(
            shapely.intersection(
                hexes.geometry.values[hex_idx], self.units.geometry.values[unit_idx]
            )
        )
        keep = inter > 0
        hex_idx, unit_idx, inter = hex_idx[keep], unit_idx[keep], inter[keep]
        return pd.DataFrame(
            {
                "h3": hexes["h3"].to_numpy()[hex_idx],
                "resolution": hexes["resolution"].to_numpy()[hex_idx],
                "unit_id": self.units["unit_id"].to_numpy()[unit_idx],
                "area_m2": inter,
                "hex_share": inter / hexes["area_m2"].to_numpy()[hex_idx],
                "unit_share": inter / self.units["area_m2"].to_numpy()[unit_idx],
            }
        ).sort_values(["h3", "unit_id"], ignore_index=True)


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


def read_study_area(city: City, crs: CRS) -> shapely.Geometry | None:
    """Read the study area polygon in the working CRS, or ``None`` for the units' union."""
    ref = city.config.study_area
    if ref is None:
        return None
    path = city.resolve(ref.path)
    gdf = read_polygons(path, layer=ref.layer)
    if gdf.empty:
        raise InputError("the study area layer has no features", path=path)
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
    return frame, crs_note, notes
