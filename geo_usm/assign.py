"""Spatial assignment: which admin unit, study area and H3 cells each point falls in.

The assignment is vectorised and split over worker threads (the H3, GEOS and NumPy kernels
release the GIL).

Notes
-----
Points are assigned to admin units with :class:`PolygonIndex`: a label raster of the polygons in
lon/lat answers every point whose pixel no boundary touches; the few points in boundary pixels are
tested exactly against the polygons. A point on a shared edge goes to the unit listed first (units
are sorted by id), so each point lands in exactly one unit.

"""

from __future__ import annotations

import itertools
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely
from affine import Affine
from rasterio.features import rasterize

from geo_usm.geo import PreparedPool, cells_to_parent, point_cells

#: Upper bound on the label raster size of a :class:`PolygonIndex` (pixels).
MAX_PIXELS = 16_000_000
#: Smallest label-raster pixel (metres); finer pixels cost memory for few exact tests saved.
MIN_PIXEL_M = 4.0
#: Below this many points the assignment runs on one thread (threads cost more than they save).
MIN_POINTS_PER_THREAD = 50_000


def default_threads() -> int:
    """Return the number of worker threads to use: the machine's CPU count."""
    return max(os.cpu_count() or 1, 1)


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
        # Douglas-Peucker without topology repair is much faster; it moves an outline by at
        # most the tolerance, well inside the one-pixel ambiguous band around every boundary.
        outlines = shapely.simplify(
            self.polygons[drawable], 0.25 * min(self.dx, self.dy), preserve_topology=False
        )
        collapsed = shapely.is_empty(outlines)  # a polygon smaller than the tolerance
        outlines[collapsed] = self.polygons[drawable][collapsed]
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
        self._prepared = PreparedPool(self.polygons)  # for exact tests, one per thread

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
            with self._prepared.checkout() as polys:
                hit = shapely.intersects_xy(polys[poly], x[pt], y[pt])
            pt, poly = pt[hit], poly[hit]
            if len(pt):
                order = np.lexsort((poly, pt))
                pt, poly = pt[order], poly[order]
                first = np.unique(pt, return_index=True)[1]
                out[amb[pt[first]]] = poly[first]
        return out


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


def assign_points(
    lon: np.ndarray,
    lat: np.ndarray,
    *,
    unit_index: PolygonIndex,
    study_index: PolygonIndex | None,
    resolutions: list[int],
    threads: int | None = None,
) -> Assignment:
    """Assign points (WGS84 lon/lat arrays) to the study area, admin units and H3 cells.

    Parameters
    ----------
    lon, lat
        Point coordinates in degrees.
    unit_index
        Index of the admin units (in lon/lat).
    study_index
        Index of the study area, or ``None`` when the study area is the union of the units.
    resolutions
        H3 resolutions wanted; cells are computed at the finest and derived for the others.
    threads
        Worker threads; by default the machine's CPU count.

    Returns
    -------
    Assignment

    """
    lon = np.ascontiguousarray(lon, dtype=float)
    lat = np.ascontiguousarray(lat, dtype=float)
    n = len(lon)
    finest = max(resolutions)
    unit = np.empty(n, dtype=np.int64)
    inside = np.empty(n, dtype=bool)
    fine = np.empty(n, dtype=np.uint64)

    def work(s: slice) -> None:
        fine[s] = point_cells(lon[s], lat[s], finest)
        unit[s] = unit_index.lookup(lon[s], lat[s])
        if study_index is None:
            inside[s] = unit[s] >= 0
        else:
            inside[s] = study_index.lookup(lon[s], lat[s]) >= 0

    workers = min(threads or default_threads(), max(n // MIN_POINTS_PER_THREAD, 1))
    parts = _chunks(n, workers)
    if len(parts) > 1:
        with ThreadPoolExecutor(len(parts)) as pool:
            list(pool.map(work, parts))
    else:
        for s in parts:
            work(s)
    cells = {r: cells_to_parent(fine, finest, r) for r in resolutions}
    return Assignment(inside=inside, unit=unit, cells=cells)


def count_by(index: np.ndarray, n: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Count (or sum ``weights``) per integer index 0..n-1."""
    return np.bincount(index, weights=weights, minlength=n)[:n]


def cell_positions(cells: np.ndarray, cover_cells: np.ndarray) -> np.ndarray:
    """Return the position of each cell in the cover (all cells must be in it)."""
    pos = pd.Index(cover_cells).get_indexer(cells)
    if (pos < 0).any():
        msg = "an H3 cell of a record is missing from the cover"
        raise RuntimeError(msg)
    return pos
