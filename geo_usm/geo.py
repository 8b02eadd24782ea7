"""Coordinate reference systems and H3 cell helpers shared by every stage.

All functions are vectorised over NumPy arrays of shapely geometries, coordinates or uint64 H3
cells.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import shapely
from h3ronpy.vector import coordinates_to_cells
from pyproj import CRS, Transformer

#: WGS 84 longitude/latitude, the CRS of H3 and of most open data.
WGS84 = CRS.from_epsg(4326)

_METRE_NAMES = {"metre", "meter", "metres", "meters", "m"}
_LOCAL = threading.local()


def transformer(src: CRS, dst: CRS) -> Transformer:
    """Return a pyproj transformer (x/y order), cached per thread (they are not thread-safe).

    Creating a transformer costs tens of milliseconds; a build needs the same few many times.
    """
    cache = _LOCAL.__dict__.setdefault("transformers", {})
    key = (CRS.from_user_input(src).to_wkt(), CRS.from_user_input(dst).to_wkt())
    if key not in cache:
        cache[key] = Transformer.from_crs(src, dst, always_xy=True)
    found: Transformer = cache[key]
    return found


def transform(geoms: np.ndarray, transformer: Transformer) -> np.ndarray:
    """Apply a pyproj transformer (x/y order) to an array of shapely geometries."""

    def func(coords: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geoms, func)


def to_crs(geoms: np.ndarray, src: CRS, dst: CRS) -> np.ndarray:
    """Reproject an array of shapely geometries (x/y order)."""
    if CRS.from_user_input(src) == CRS.from_user_input(dst):
        return geoms
    return transform(geoms, transformer(src, dst))


def utm_crs_for(geom_wgs84: shapely.Geometry) -> CRS:
    """Return the WGS84 UTM zone CRS for a geometry's centroid (lon/lat)."""
    c = shapely.centroid(geom_wgs84)
    zone = int((c.x + 180) // 6) + 1
    return CRS.from_epsg((32600 if c.y >= 0 else 32700) + zone)


def metric_problem(crs: CRS) -> str | None:
    """Return why ``crs`` cannot be a working CRS, or ``None`` if it is projected in metres.

    A projected CRS in US survey feet (EPSG:2263) or international feet would make every area
    and distance wrong by a constant factor without any visible sign, so it is refused.
    """
    if not crs.is_projected:
        return "is not a projected CRS"
    units = {(axis.unit_name or "").lower() for axis in crs.axis_info[:2]}
    if not units or not units <= _METRE_NAMES:
        return f"is projected but its unit is {', '.join(sorted(units)) or 'unknown'}, not metres"
    return None


def cells_to_strings(cells: np.ndarray) -> np.ndarray:
    """Return H3 cells (uint64) as their usual hexadecimal strings, vectorised."""
    return np.char.mod("%x", np.asarray(cells, dtype=np.uint64)).astype(object)


def cells_to_parent(cells: np.ndarray, res: int, parent_res: int) -> np.ndarray:
    """Return the parents of H3 cells (all at ``res``) at a coarser resolution, vectorised."""
    if parent_res == res:
        return cells
    out = (cells & ~np.uint64(0xF << 52)) | np.uint64(parent_res << 52)
    for r in range(parent_res + 1, res + 1):
        out |= np.uint64(7) << np.uint64(3 * (15 - r))
    return out


def point_cells(lon: np.ndarray, lat: np.ndarray, res: int) -> np.ndarray:
    """Return the H3 cell (uint64) of each point at resolution ``res``."""
    return np.asarray(coordinates_to_cells(lat, lon, res), dtype=np.uint64)


class PreparedPool:
    """Prepared copies of geometries, one per concurrent user.

    GEOS prepares geometries lazily and a prepared geometry is not safe to share between
    threads, so each caller checks out its own copy (made on demand, then reused).
    """

    def __init__(self, geoms: np.ndarray):
        self.geoms = np.asarray(geoms, dtype=object)
        self._free: queue.SimpleQueue[np.ndarray] = queue.SimpleQueue()

    @contextmanager
    def checkout(self) -> Iterator[np.ndarray]:
        """Yield a prepared copy of the geometries for this caller's exclusive use."""
        try:
            copy = self._free.get_nowait()
        except queue.Empty:
            copy = shapely.from_wkb(shapely.to_wkb(self.geoms))
            shapely.prepare(copy)
        try:
            yield copy
        finally:
            self._free.put(copy)
