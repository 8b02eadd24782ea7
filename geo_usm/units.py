"""Spatial units: the H3 cover, the admin units, their crosswalk, and point assignment.

The assignment of points to both systems is vectorised and runs on two threads.

Notes
-----
The H3 cover keeps every cell that overlaps the study area, boundary cells included, with the
share of its area inside (H3's default polygon fill keeps only cells whose centre is inside and so
drops narrow areas). Areas and shares are planar, in the city's metric working CRS.

Points are assigned to admin units with :class:`PolygonIndex`: a label raster of the polygons in
lon/lat answers every point whose pixel no boundary touches; the few points in boundary pixels are
tested exactly against the polygons. A point on a shared edge goes to the unit listed first (units
are sorted by id), so each point lands in exactly one unit.

"""

from __future__ import annotations

import itertools
import math
import queue
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import shapely
from affine import Affine
from h3ronpy.vector import cells_to_wkb_polygons, coordinates_to_cells
from pyproj import CRS, Transformer
from rasterio.features import rasterize

WGS84 = CRS.from_epsg(4326)
#: Number of worker threads for point assignment (the H3, GEOS and NumPy kernels release the GIL).
THREADS = 2
#: Upper bound on the label raster size of a :class:`PolygonIndex` (pixels).
MAX_PIXELS = 16_000_000
#: Longest edge (metres) kept when boundaries are reprojected to lon/lat for point lookup.
DENSIFY_M = 10.0
#: Smallest label-raster pixel (metres); finer pixels cost memory for few exact tests saved.
MIN_PIXEL_M = 4.0


def _transform(geoms: np.ndarray, transformer: Transformer) -> np.ndarray:
    def func(coords: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geoms, func)


def to_crs(geoms: np.ndarray, src: CRS, dst: CRS) -> np.ndarray:
    """Reproject an array of shapely geometries (x/y order)."""
    if CRS.from_user_input(src) == CRS.from_user_input(dst):
        return geoms
    return _transform(geoms, Transformer.from_crs(src, dst, always_xy=True))


class PolygonIndex:
    """Exact point-in-polygon lookup for many points against a set of polygons.

    Parameters
    ----------
    polygons
        Shapely polygons in lon/lat (EPSG:4326).
    max_pixels
        Size bound of the label raster; the pixel is as small as this allows, down to
        ``MIN_PIXEL_M``.

    Notes
    -----
    Pixels crossed by any polygon boundary, and their eight neighbours, are marked ambiguous and
    their points are tested exactly with an STRtree, so the raster never decides a point whose
    answer could depend on where in the pixel it lies.

    """

    def __init__(self, polygons: np.ndarray, *, max_pixels: int = MAX_PIXELS):
        self.polygons = np.asarray(polygons, dtype=object)
        self.tree = shapely.STRtree(self.polygons)
        minx, miny, maxx, maxy = shapely.total_bounds(self.polygons)
        lat0 = math.radians((miny + maxy) / 2)
        m_per_deg_x = 111_320 * max(math.cos(lat0), 0.01)
        m_per_deg_y = 110_540
        w_m = max((maxx - minx) * m_per_deg_x, 1.0)
        h_m = max((maxy - miny) * m_per_deg_y, 1.0)
        size_m = max(math.sqrt(w_m * h_m / max_pixels), MIN_PIXEL_M)
        self.dx = size_m / m_per_deg_x
        self.dy = size_m / m_per_deg_y
        self.x0 = minx - 2 * self.dx
        self.y0 = maxy + 2 * self.dy
        self.width = math.ceil((maxx - self.x0) / self.dx) + 2
        self.height = math.ceil((self.y0 - miny) / self.dy) + 2
        transform = Affine(self.dx, 0, self.x0, 0, -self.dy, self.y0)
        shape = (self.height, self.width)
        drawable = np.flatnonzero(~shapely.is_empty(self.polygons))
        # The raster only needs boundaries to within a fraction of a pixel (the ambiguous band
        # is a pixel wide on each side), so draw simplified outlines: far fewer vertices.
        outlines = shapely.simplify(self.polygons[drawable], 0.25 * min(self.dx, self.dy))
        labels = rasterize(
            zip(outlines, drawable + 1, strict=True),
            out_shape=shape,
            transform=transform,
            fill=0,
            dtype="int32",
        )
        edges = rasterize(
            ((b, 1) for b in shapely.boundary(outlines)),
            out_shape=shape,
            transform=transform,
            fill=0,
            all_touched=True,
            dtype="uint8",
        ).astype(bool)
        grown = edges.copy()
        grown[1:] |= edges[:-1]
        grown[:-1] |= edges[1:]
        edges = grown.copy()
        edges[:, 1:] |= grown[:, :-1]
        edges[:, :-1] |= grown[:, 1:]
        labels[edges] = -1
        self.labels = labels
        self.ambiguous_share = float(edges.mean())
        # Prepared copies for exact tests, one per concurrent caller: GEOS prepares geometries
        # lazily and prepared geometries are not safe to share between threads.
        self._prepared: queue.SimpleQueue[np.ndarray] = queue.SimpleQueue()

    def _checkout(self) -> np.ndarray:
        try:
            return self._prepared.get_nowait()
        except queue.Empty:
            copy = shapely.from_wkb(shapely.to_wkb(self.polygons))
            shapely.prepare(copy)
            return copy

    def lookup(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Return the index of the polygon containing each point, or -1.

        Points on a boundary shared by several polygons get the lowest index.
        """
        col = np.floor((lon - self.x0) / self.dx)
        row = np.floor((self.y0 - lat) / self.dy)
        inside = (col >= 0) & (col < self.width) & (row >= 0) & (row < self.height)
        out = np.full(len(lon), -1, dtype=np.int64)
        out[inside] = self.labels[row[inside].astype(np.int64), col[inside].astype(np.int64)] - 1
        amb = np.flatnonzero(out == -2)
        out[amb] = -1
        if len(amb):
            x, y = lon[amb], lat[amb]
            pt, poly = self.tree.query(shapely.points(x, y))  # bounding boxes only
            polys = self._checkout()
            try:
                hit = shapely.intersects_xy(polys[poly], x[pt], y[pt])
            finally:
                self._prepared.put(polys)
            pt, poly = pt[hit], poly[hit]
            if len(pt):
                order = np.lexsort((poly, pt))
                pt, poly = pt[order], poly[order]
                first = np.unique(pt, return_index=True)[1]
                out[amb[pt[first]]] = poly[first]
        return out


def cells_to_parent(cells: np.ndarray, res: int, parent_res: int) -> np.ndarray:
    """Return the parents of H3 cells (all at ``res``) at a coarser resolution, vectorised."""
    if parent_res == res:
        return cells
    out = (cells & ~np.uint64(0xF << 52)) | np.uint64(parent_res << 52)
    for r in range(parent_res + 1, res + 1):
        out |= np.uint64(7) << np.uint64(3 * (15 - r))
    return out


def cells_to_strings(cells: np.ndarray) -> np.ndarray:
    """Return H3 cells (uint64) as their usual hexadecimal strings, vectorised."""
    return np.char.mod("%x", np.asarray(cells, dtype=np.uint64)).astype(object)


def point_cells(lon: np.ndarray, lat: np.ndarray, res: int) -> np.ndarray:
    """Return the H3 cell (uint64) of each point at resolution ``res``."""
    return np.asarray(coordinates_to_cells(lat, lon, res), dtype=np.uint64)


def _chunks(n: int, parts: int) -> list[slice]:
    bounds = np.linspace(0, n, parts + 1).astype(int)
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds) if b > a]


@dataclass
class Assignment:
    """Where each point falls.

    Attributes
    ----------
    inside : numpy.ndarray
        True where the point lies inside the study area.
    unit : numpy.ndarray
        Index of the admin unit containing the point, -1 for none.
    cells : dict
        H3 resolution to uint64 cell per point.

    """

    inside: np.ndarray
    unit: np.ndarray
    cells: dict[int, np.ndarray]


class SpatialFrame:
    """The study area, admin units and H3 covers of one city, ready to assign points.

    Parameters
    ----------
    units
        Admin units in the working CRS, with a ``unit_id`` column (sorted by it).
    study_area
        The study area polygon in the working CRS, or ``None`` for the union of the units.
    resolutions
        H3 resolutions; the first is the primary one.
    crs
        The working CRS.

    """

    def __init__(
        self,
        units: gpd.GeoDataFrame,
        study_area: shapely.Geometry | None,
        resolutions: list[int],
        crs: CRS,
    ):
        self.crs = crs
        self.resolutions = list(resolutions)
        self.units = units.sort_values("unit_id", kind="stable").reset_index(drop=True)
        self.units["area_m2"] = shapely.area(self.units.geometry.values)
        union = shapely.union_all(self.units.geometry.values)
        self.study_area_is_units = study_area is None
        self.study_area = union if study_area is None else study_area
        shapely.prepare(self.study_area)  # for the intersects tests of line and polygon layers
        to_wgs = Transformer.from_crs(crs, WGS84, always_xy=True)
        # Densify before reprojecting so that edges, straight in the working CRS, stay within a
        # millimetre of where they were once drawn as straight lines in lon/lat.
        units_wgs = _transform(
            shapely.segmentize(np.asarray(self.units.geometry.values), DENSIFY_M), to_wgs
        )
        self.unit_index = PolygonIndex(units_wgs)
        self.study_wgs = _transform(
            shapely.segmentize(np.asarray([self.study_area]), DENSIFY_M), to_wgs
        )[0]
        self.study_index = (
            None if self.study_area_is_units else PolygonIndex(np.asarray([self.study_wgs]))
        )

    def assign(self, lon: np.ndarray, lat: np.ndarray, *, threads: int = THREADS) -> Assignment:
        """Assign points (WGS84 lon/lat arrays) to the study area, units and H3 cells.

        The work is split over ``threads`` threads; the kernels used release the GIL.
        """
        lon = np.ascontiguousarray(lon, dtype=float)
        lat = np.ascontiguousarray(lat, dtype=float)
        n = len(lon)
        finest = max(self.resolutions)
        unit = np.empty(n, dtype=np.int64)
        inside = np.empty(n, dtype=bool)
        fine = np.empty(n, dtype=np.uint64)

        def work(s: slice) -> None:
            fine[s] = point_cells(lon[s], lat[s], finest)
            unit[s] = self.unit_index.lookup(lon[s], lat[s])
            if self.study_index is None:
                inside[s] = unit[s] >= 0
            else:
                inside[s] = self.study_index.lookup(lon[s], lat[s]) >= 0

        parts = _chunks(n, threads if n >= 100_000 else 1)
        if len(parts) > 1:
            with ThreadPoolExecutor(len(parts)) as pool:
                list(pool.map(work, parts))
        else:
            for s in parts:
                work(s)
        cells = {r: cells_to_parent(fine, finest, r) for r in self.resolutions}
        return Assignment(inside=inside, unit=unit, cells=cells)

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


def count_by(index: np.ndarray, n: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Count (or sum ``weights``) per integer index 0..n-1."""
    return np.bincount(index, weights=weights, minlength=n)[:n]


def cell_positions(cells: np.ndarray, cover_cells: np.ndarray) -> np.ndarray:
    """Return the position of each cell in the sorted cover (all cells must be in it)."""
    pos = pd.Index(cover_cells).get_indexer(cells)
    if (pos < 0).any():
        msg = "a point's H3 cell is missing from the cover"
        raise RuntimeError(msg)
    return pos


def utm_crs_for(geom_wgs84: shapely.Geometry) -> CRS:
    """Return the WGS84 UTM zone CRS for a geometry's centroid (lon/lat)."""
    c = shapely.centroid(geom_wgs84)
    zone = int((c.x + 180) // 6) + 1
    return CRS.from_epsg((32600 if c.y >= 0 else 32700) + zone)


ProgressFn = Callable[[str], None]
