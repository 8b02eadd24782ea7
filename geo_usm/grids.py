"""The H3 cover of the study area and the hex <-> admin unit crosswalk, vectorised.

:func:`hex_cover` lists the H3 cells that overlap the study area, with the share of each cell
inside it; :func:`crosswalk` gives the area of every (cell, admin unit) overlap. Both are exact
planar overlays in the metric working CRS that never intersect a cell with a whole, possibly very
detailed, polygon.

Notes
-----
Both rest on :func:`overlay_areas`, which sorts the cells in two kinds:

* A cell that crosses no polygon outline (found with an STRtree of the cells queried with the
  outlines cut into linestrings of ``CHUNK_SEGMENTS`` segments) lies wholly inside the
  polygon(s) holding an interior point of it, or outside all of them; its overlap is its own
  area, exactly.
* A cell that crosses an outline is clipped, in NumPy, against short pieces of the rings of the
  polygons near it (Sutherland-Hodgman clipping by the cell's edges, valid since cells are
  convex) and the signed areas of the clipped pieces are summed per polygon. A ring is cut
  (:func:`ring_pieces`) into runs of ``MAX_PIECE_VERTICES`` edges, each closed by its chord,
  plus the coarser ring through the runs' ends, cut the same way: the chords cancel out, so the
  pieces' winding numbers add up to the ring's everywhere. Clipping keeps winding numbers inside
  the clip region (the zero-width bridges it may add along clip lines hold no area), so the sum
  is the exact overlap area up to floating point, holes and multipolygons included. Cells that
  are not convex simple polygons go through GEOS instead.

The cover's candidate cells are those whose centre lies in the study area and the cells next to
(or holding) points sampled densely along its outline, a superset of the cells that overlap it
(see :func:`candidate_cells`); they are kept where the planar overlap is positive, so the cover
does not depend on how H3 itself tests overlap. Overlaps below ``SLIVER_SHARE`` of a cell's area
count as numerical noise. Heavy GEOS and NumPy steps run in worker threads (they release the
GIL).

"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import pyarrow as pa
import shapely
from h3ronpy import ContainmentMode, grid_disk
from h3ronpy.vector import cells_to_wkb_polygons, coordinates_to_cells, geometry_to_cells
from pyproj import CRS, Transformer

from geo_usm.geo import WGS84, cells_to_strings, transformer

#: Largest number of edges of a ring piece clipped against cells (see :func:`ring_pieces`).
MAX_PIECE_VERTICES = 16
#: Largest number of vertices of a polygon piece made by :func:`subdivide`.
SUBDIVIDE_VERTICES = 128
#: Number of segments per outline linestring tested against the cells.
CHUNK_SEGMENTS = 16
#: Most rounds of cutting in :func:`ring_pieces` and :func:`subdivide` (a guard).
MAX_DEPTH = 48
#: Below this many items per thread, work is not split further.
MIN_PER_THREAD = 2_000
#: Vertices per batch of the clipping kernel (bounds its memory).
CLIP_BATCH_VERTICES = 200_000
#: Overlaps smaller than this share of the cell's area are taken for numerical noise.
SLIVER_SHARE = 1e-10
#: Spacing of outline samples, as a share of the resolution's average hexagon edge.
SAMPLE_EDGE_SHARE = 0.25
#: Metres per degree, an upper bound in any direction (to turn metres into degrees safely).
M_PER_DEG_MAX = 112_000.0

_T = TypeVar("_T")


def area_in_units(crosswalk: pd.DataFrame, cells: np.ndarray) -> np.ndarray:
    """Return the area (m2) of each H3 cell (hexadecimal id) inside any admin unit.

    From the crosswalk's (cell, unit) overlaps; 0 for a cell that overlaps no unit.
    """
    per_cell = crosswalk.groupby("h3")["area_m2"].sum()
    return per_cell.reindex(cells).fillna(0.0).to_numpy(dtype=float)


def estimate_cells(area_m2: float, resolution: int) -> int:
    """Estimate how many H3 cells at ``resolution`` cover an area.

    From the average cell area; the cover adds a ring of edge cells, so the true count is
    somewhat higher.
    """
    return int(np.ceil(area_m2 / h3.average_hexagon_area(resolution, unit="m^2")))


def _threads(threads: int | None) -> int:
    return max(int(threads or os.cpu_count() or 1), 1)


def _parallel(
    func: Callable[[slice], _T], n: int, threads: int, *, min_size: int = MIN_PER_THREAD
) -> list[_T]:
    """Apply ``func`` to consecutive slices covering ``range(n)``, in threads; results in order."""
    parts = max(min(threads, n // max(min_size, 1)), 1)
    bounds = np.linspace(0, n, parts + 1).astype(np.int64)
    slices = [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds)]
    if parts == 1:
        return [func(s) for s in slices]
    with ThreadPoolExecutor(max_workers=parts) as pool:
        return list(pool.map(func, slices))


def _concat(arrays: list[np.ndarray], dtype: type | np.dtype) -> np.ndarray:
    return np.concatenate(arrays) if arrays else np.empty(0, dtype=dtype)


# --------------------------------------------------------------------------------------------
# rings as flat NumPy arrays


@dataclass
class Rings:
    """Polygon rings as flat coordinate arrays.

    Attributes
    ----------
    x, y : numpy.ndarray
        Vertices of all rings, ring after ring, each ring open (no repeated closing vertex).
    start : numpy.ndarray
        Offset of each ring's first vertex, with the total vertex count appended.
    owner : numpy.ndarray
        Index of the polygon each ring belongs to.
    sign : numpy.ndarray
        +1 or -1 such that ``sign`` times the ring's signed (shoelace) area is positive for an
        exterior ring and negative for a hole: the signed areas of a polygon's rings then add up
        to its area, and over any region to the area of its part in the region.

    """

    x: np.ndarray
    y: np.ndarray
    start: np.ndarray
    owner: np.ndarray
    sign: np.ndarray

    def __len__(self) -> int:
        return len(self.owner)

    @property
    def counts(self) -> np.ndarray:
        """Number of vertices of each ring."""
        return np.diff(self.start)

    def bounds(self) -> np.ndarray:
        """Return the bounding box of each ring, shape (n, 4): xmin, ymin, xmax, ymax."""
        if not len(self):
            return np.empty((0, 4))
        s = self.start[:-1]
        return np.column_stack(
            [
                np.minimum.reduceat(self.x, s),
                np.minimum.reduceat(self.y, s),
                np.maximum.reduceat(self.x, s),
                np.maximum.reduceat(self.y, s),
            ]
        )

    def areas(self) -> np.ndarray:
        """Return each ring's signed area times its sign (holes negative)."""
        return _shoelace(self.x, self.y, self.start) * self.sign

    def take(self, idx: np.ndarray) -> Rings:
        """Return the rings at ``idx``, in that order."""
        counts = self.counts[idx]
        start = np.append(0, np.cumsum(counts))
        src = np.repeat(self.start[:-1][idx] - start[:-1], counts) + np.arange(start[-1])
        return Rings(self.x[src], self.y[src], start, self.owner[idx], self.sign[idx])


def _join(parts: list[Rings]) -> Rings:
    """Concatenate :class:`Rings`."""
    offset = np.cumsum([0, *(int(r.start[-1]) for r in parts)])
    return Rings(
        _concat([r.x for r in parts], float),
        _concat([r.y for r in parts], float),
        np.append(
            _concat([r.start[:-1] + o for r, o in zip(parts, offset, strict=False)], np.int64),
            offset[-1],
        ),
        _concat([r.owner for r in parts], np.int64),
        _concat([r.sign for r in parts], float),
    )


def _next_index(start: np.ndarray) -> np.ndarray:
    """Return for each vertex of rings with these starts the index of the next one, cyclic."""
    nxt = np.arange(1, int(start[-1]) + 1)
    nonempty = start[1:] > start[:-1]
    nxt[start[1:][nonempty] - 1] = start[:-1][nonempty]
    return nxt


def _shoelace(x: np.ndarray, y: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Return the signed area of each ring (positive counter-clockwise)."""
    counts = np.diff(start)
    if not len(counts):
        return np.empty(0)
    nxt = _next_index(start)
    groups = np.repeat(np.arange(len(counts)), counts)
    origin = np.minimum(start[:-1], max(len(x) - 1, 0))
    x0, y0 = np.repeat(x[origin], counts), np.repeat(y[origin], counts)  # local, for precision
    xl, yl = x - x0, y - y0
    twice = xl * yl[nxt] - xl[nxt] * yl
    return np.bincount(groups, weights=twice, minlength=len(counts)) / 2


def rings_of(polygons: np.ndarray) -> Rings:
    """Return the rings of polygons, multipolygons and the polygons in geometry collections."""
    parts = np.asarray(polygons, dtype=object)
    part_owner = np.arange(len(parts))
    for _ in range(MAX_DEPTH):
        multi = shapely.get_type_id(parts) >= 4  # multi-part geometries and collections
        if not multi.any():
            break
        sub, idx = shapely.get_parts(parts[multi], return_index=True)
        part_owner = np.concatenate([part_owner[~multi], part_owner[multi][idx]])
        parts = np.concatenate([parts[~multi], sub])
    polygonal = (shapely.get_type_id(parts) == 3) & ~shapely.is_empty(parts)
    parts, part_owner = parts[polygonal], part_owner[polygonal]
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    coords, ring = shapely.get_coordinates(rings, return_index=True)
    closed = np.bincount(ring, minlength=len(rings))
    keep = np.ones(len(coords), dtype=bool)
    keep[np.cumsum(closed)[closed > 0] - 1] = False  # the closing vertex
    x = np.ascontiguousarray(coords[keep, 0])
    y = np.ascontiguousarray(coords[keep, 1])
    start = np.append(0, np.cumsum(np.maximum(closed - 1, 0)))
    exterior = np.ones(len(rings), dtype=bool)
    exterior[1:] = ring_part[1:] != ring_part[:-1]
    sign = np.sign(_shoelace(x, y, start)) * np.where(exterior, 1.0, -1.0)
    return Rings(x, y, start, part_owner[ring_part], sign)


def _clip_step(
    x: np.ndarray, y: np.ndarray, start: np.ndarray, value: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clip rings, each by its own half-plane: one Sutherland-Hodgman step.

    Parameters
    ----------
    x, y
        Ring vertices, ring after ring (open rings).
    start
        Offset of each ring's first vertex, with the vertex count appended.
    value
        A signed distance (times any positive factor) from each vertex to its ring's clip line,
        >= 0 inside.

    Returns
    -------
    tuple
        The clipped rings' ``x``, ``y`` and ``start``; a ring wholly outside becomes empty.

    """
    n = len(x)
    nxt = _next_index(start)
    inside = value >= 0
    inside_next = inside[nxt]
    crossing = inside != inside_next
    count = crossing.astype(np.int64) + inside_next
    ends = np.cumsum(count)
    after = nxt[np.repeat(np.arange(n), count)]
    out_x, out_y = x[after], y[after]
    e = np.flatnonzero(crossing)
    if len(e):
        f = nxt[e]
        t = value[e] / (value[e] - value[f])
        at = ends[e] - count[e]  # an edge's exit point comes before its end vertex
        out_x[at] = x[e] + t * (x[f] - x[e])
        out_y[at] = y[e] + t * (y[f] - y[e])
    return out_x, out_y, np.append(0, ends)[start]


def ring_pieces(rings: Rings, max_vertices: int = MAX_PIECE_VERTICES) -> Rings:
    """Cut rings into short pieces whose winding numbers add up to the ring's.

    A ring of more than ``max_vertices`` vertices is cut into runs of ``max_vertices``
    consecutive edges, each closed by its chord, plus the ring through the runs' first vertices,
    which is cut the same way in turn. The chords cancel out, so at every point the winding
    numbers of the pieces add up to the ring's, and the signed areas of the pieces clipped to
    any region add up to the ring's. Pieces are local (a run of the outline) except the few
    coarse ones; they keep the ring's owner and sign, and may cross themselves. Pieces with
    fewer than three vertices (no area) are dropped.
    """
    m = max(int(max_vertices), 3)
    out: list[Rings] = []
    for _ in range(MAX_DEPTH):
        counts = rings.counts
        big = counts > m + 1
        out.append(rings.take(np.flatnonzero(~big & (counts >= 3))))
        if not big.any():
            break
        rings = rings.take(np.flatnonzero(big))
        n = rings.counts
        runs = -(-n // m)  # ceil
        first_run = np.append(0, np.cumsum(runs))
        run_ring = np.repeat(np.arange(len(rings)), runs)
        run_pos = (np.arange(first_run[-1]) - first_run[:-1][run_ring]) * m
        size = np.minimum(m, n[run_ring] - run_pos) + 1  # the run's edges' vertices
        piece_start = np.append(0, np.cumsum(size))
        k = np.arange(piece_start[-1]) - np.repeat(piece_start[:-1], size)
        pos = np.repeat(run_pos, size) + k
        pos = np.where(pos == np.repeat(n[run_ring], size), 0, pos)  # the last run closes at 0
        src = np.repeat(rings.start[:-1][run_ring], size) + pos
        out.append(
            Rings(
                rings.x[src], rings.y[src], piece_start, rings.owner[run_ring], rings.sign[run_ring]
            ).take(np.flatnonzero(size >= 3))
        )
        coarse = rings.start[:-1][run_ring] + run_pos
        rings = Rings(rings.x[coarse], rings.y[coarse], first_run, rings.owner, rings.sign)
    else:
        out.append(rings)
    return _join(out)


# --------------------------------------------------------------------------------------------
# polygons cut into small valid pieces


def pairwise_intersection(a: np.ndarray, b: np.ndarray, threads: int | None = None) -> np.ndarray:
    """Return the pairwise intersection of two equal-length geometry arrays, in threads."""
    threads = _threads(threads)

    def run(s: slice) -> np.ndarray:
        return np.asarray(shapely.intersection(a[s], b[s]))

    return _concat(_parallel(run, len(a), threads, min_size=64), object)


def subdivide(
    polygons: np.ndarray, max_vertices: int = SUBDIVIDE_VERTICES, *, threads: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Cut polygons into small valid polygons that partition them (as PostGIS ``ST_Subdivide``).

    Parameters
    ----------
    polygons
        Shapely polygons or multipolygons (other geometries are ignored).
    max_vertices
        Largest number of vertices of a piece; larger parts are halved across the middle of
        their bounding box's longer side (intersection with boxes), recursively.
    threads
        Worker threads; by default the machine's CPU count.

    Returns
    -------
    pieces : numpy.ndarray
        Polygons (no multipolygons), each with at most ``max_vertices`` vertices unless
        ``MAX_DEPTH`` splits did not get it there. The pieces of a polygon do not overlap and
        their union is the polygon (up to floating point on the cuts).
    owner : numpy.ndarray
        Index (int64) into ``polygons`` of the polygon each piece belongs to.

    """
    n_threads = _threads(threads)
    parts, owner = shapely.get_parts(np.asarray(polygons, dtype=object), return_index=True)
    polygonal = (shapely.get_type_id(parts) == 3) & ~shapely.is_empty(parts)
    parts, owner = parts[polygonal], owner[polygonal]
    done: list[np.ndarray] = []
    done_owner: list[np.ndarray] = []
    for _ in range(MAX_DEPTH):
        small = shapely.get_num_coordinates(parts) <= max_vertices
        done.append(parts[small])
        done_owner.append(owner[small])
        parts, owner = parts[~small], owner[~small]
        if not len(parts):
            break
        xmin, ymin, xmax, ymax = shapely.bounds(parts).T
        pad = np.maximum(xmax - xmin, ymax - ymin)  # keeps the outer box edges off the polygon
        wide = (xmax - xmin) >= (ymax - ymin)
        xmid = np.where(wide, (xmin + xmax) / 2, xmax + pad)
        ymid = np.where(wide, ymax + pad, (ymin + ymax) / 2)
        low = shapely.box(xmin - pad, ymin - pad, xmid, ymid)
        high = shapely.box(
            np.where(wide, xmid, xmin - pad),
            np.where(wide, ymin - pad, ymid),
            xmax + pad,
            ymax + pad,
        )
        halves = pairwise_intersection(
            np.concatenate([parts, parts]), np.concatenate([low, high]), n_threads
        )
        parts, idx = shapely.get_parts(halves, return_index=True)
        keep = (shapely.get_type_id(parts) == 3) & ~shapely.is_empty(parts)
        parts, owner = parts[keep], np.concatenate([owner, owner])[idx[keep]]
    done.append(parts)
    done_owner.append(owner)
    return _concat(done, object), _concat(done_owner, np.int64).astype(np.int64)


# --------------------------------------------------------------------------------------------
# cells


@dataclass
class _Cells:
    """Cell polygons as arrays: vertices, convexity, an interior point, half-planes.

    ``convex`` cells are simple polygons (no holes) with at least three corners, convex, with
    nonzero area; they are clipped in NumPy. For them the clip lines are ``a x + b y + c >= 0``
    inside, with x and y relative to ``origin`` (the cell's first vertex); shape (n, k), the
    last edges repeated in cells with fewer than k.
    """

    convex: np.ndarray
    inner_x: np.ndarray
    inner_y: np.ndarray
    origin: np.ndarray
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray


def _cells(cells: np.ndarray) -> _Cells:
    n = len(cells)
    simple = (shapely.get_type_id(cells) == 3) & ~shapely.is_empty(cells)
    simple &= shapely.get_num_interior_rings(cells) == 0
    which = np.flatnonzero(simple)
    xy, idx = shapely.get_coordinates(cells[which], return_index=True)
    closed = np.bincount(idx, minlength=len(which))
    k = np.maximum(closed - 1, 1)
    if len(which) and (closed == closed[0]).all() and closed[0] >= 2:  # the usual case
        ring = xy.reshape(len(which), int(closed[0]), 2)
        vx, vy = ring[:, :-1, 0], ring[:, :-1, 1]
        ex, ey = np.diff(ring[..., 0], axis=1), np.diff(ring[..., 1], axis=1)
        real = np.ones(vx.shape, dtype=bool)
        ex_next, ey_next = np.roll(ex, -1, axis=1), np.roll(ey, -1, axis=1)
    else:
        kmax = int(k.max()) if len(k) else 1
        j = np.arange(kmax)[None, :]
        real = j < k[:, None]
        pos = np.where(real, j, k[:, None] - 1)  # repeat the last edge: clipping twice is a no-op
        nxt = np.where(pos + 1 < k[:, None], pos + 1, 0)
        first = np.append(0, np.cumsum(closed)[:-1])[:, None]
        vx, vy = xy[first + pos, 0], xy[first + pos, 1]
        ex, ey = xy[first + nxt, 0] - vx, xy[first + nxt, 1] - vy
        ex_next = np.take_along_axis(ex, nxt, axis=1)
        ey_next = np.take_along_axis(ey, nxt, axis=1)
    ox, oy = vx[:, 0], vy[:, 0]
    ax, ay = vx - ox[:, None], vy - oy[:, None]
    orient = np.sign((ax * ey - ay * ex).sum(axis=1))  # twice the area, from the first vertex
    turn = (ex * ey_next - ey * ex_next) * orient[:, None]
    convex = (orient != 0) & (closed >= 4) & ((turn >= 0) | ~real).all(axis=1)
    a, b = -orient[:, None] * ey, orient[:, None] * ex
    c = -(a * ax + b * ay)

    inner_x, inner_y = np.empty(n), np.empty(n)
    inner_x[which] = ox + (ax * real).sum(axis=1) / k  # the vertices' mean
    inner_y[which] = oy + (ay * real).sum(axis=1) / k
    ok = np.zeros(n, dtype=bool)
    ok[which] = convex
    rest = np.flatnonzero(~ok)
    if len(rest):
        pts = shapely.point_on_surface(cells[rest])
        inner_x[rest], inner_y[rest] = shapely.get_x(pts), shapely.get_y(pts)

    def full(v: np.ndarray) -> np.ndarray:
        if len(which) == n:
            return v
        out = np.zeros((n, *v.shape[1:]))
        out[which] = v
        return out

    return _Cells(ok, inner_x, inner_y, full(np.column_stack([ox, oy])), full(a), full(b), full(c))


def _batches(weights: np.ndarray, size: int, threads: int) -> list[slice]:
    """Split ``range(len(weights))`` into consecutive slices of about ``size`` total weight."""
    total = float(weights.sum())
    parts = max(int(np.ceil(total / size)), min(threads, len(weights)), 1)
    cuts = np.searchsorted(np.cumsum(weights), np.linspace(0, total, parts + 1)[1:-1])
    bounds = np.unique(np.concatenate([[0], cuts, [len(weights)]]))
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds)]


def _box_sides(cells: _Cells, pair_cell: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Return where boxes lie with respect to convex cells, per (cell, box) pair.

    1 if the box lies inside the cell, -1 if wholly outside one of its clip lines, 0 otherwise
    (the box may cross the cell's outline).
    """
    out = np.zeros(len(pair_cell), dtype=np.int8)
    for s in _batches(np.ones(len(pair_cell)), CLIP_BATCH_VERTICES // 4, 1):
        cell = pair_cell[s]
        a, b, c = cells.a[cell], cells.b[cell], cells.c[cell]
        x0 = boxes[s, 0:1] - cells.origin[cell, 0:1]
        x1 = boxes[s, 2:3] - cells.origin[cell, 0:1]
        y0 = boxes[s, 1:2] - cells.origin[cell, 1:2]
        y1 = boxes[s, 3:4] - cells.origin[cell, 1:2]
        ax0, ax1, by0, by1 = a * x0, a * x1, b * y0, b * y1
        low = np.minimum(ax0, ax1) + np.minimum(by0, by1) + c  # over the box, per clip line
        high = np.maximum(ax0, ax1) + np.maximum(by0, by1) + c
        out[s] = np.where((low > 0).all(axis=1), 1, np.where((high < 0).any(axis=1), -1, 0))
    return out


def _clip_areas(
    cells: _Cells,
    pair_cell: np.ndarray,
    pieces: Rings,
    pair_piece: np.ndarray,
    *,
    threads: int | None = None,
) -> np.ndarray:
    """Return the area of each ring piece clipped to a convex cell, times the piece's sign.

    Pieces whose bounding box lies inside the cell count whole, those whose box lies outside
    one of its edges count nothing; the others are clipped.
    """
    side = _box_sides(cells, pair_cell, pieces.bounds()[pair_piece])
    out = np.zeros(len(pair_cell))
    whole = np.flatnonzero(side == 1)
    if len(whole):
        used, which = np.unique(pair_piece[whole], return_inverse=True)
        out[whole] = pieces.take(used).areas()[which]
    cut = np.flatnonzero(side == 0)
    pair_cell, pair_piece = pair_cell[cut], pair_piece[cut]
    counts = pieces.counts[pair_piece]
    kmax = cells.a.shape[1]

    def run(s: slice) -> np.ndarray:
        cell, piece, cnt = pair_cell[s], pair_piece[s], counts[s]
        start = np.append(0, np.cumsum(cnt))
        src = np.repeat(pieces.start[:-1][piece] - start[:-1], cnt) + np.arange(start[-1])
        x = pieces.x[src] - np.repeat(cells.origin[cell, 0], cnt)
        y = pieces.y[src] - np.repeat(cells.origin[cell, 1], cnt)
        a, b, c = cells.a[cell], cells.b[cell], cells.c[cell]
        for k in range(kmax):
            cnt = np.diff(start)
            value = np.repeat(a[:, k], cnt) * x + np.repeat(b[:, k], cnt) * y
            value += np.repeat(c[:, k], cnt)
            x, y, start = _clip_step(x, y, start, value)
        return _shoelace(x, y, start) * pieces.sign[piece]

    parts = _batches(counts, CLIP_BATCH_VERTICES, _threads(threads))
    if len(parts) <= 1:
        out[cut] = _concat([run(s) for s in parts], float)
    else:
        with ThreadPoolExecutor(max_workers=min(_threads(threads), len(parts))) as pool:
            out[cut] = _concat(list(pool.map(run, parts)), float)
    return out


def outline_chunks(rings: Rings, segments: int = CHUNK_SEGMENTS) -> np.ndarray:
    """Return rings as linestrings of at most ``segments`` segments each."""
    rings = rings.take(np.flatnonzero(rings.counts >= 2))
    if not len(rings):
        return np.empty(0, dtype=object)
    n = rings.counts + 1  # closed
    pos = np.arange(int(n.sum())) - np.repeat(np.append(0, np.cumsum(n)[:-1]), n)
    ring = np.repeat(np.arange(len(rings)), n)
    src = rings.start[:-1][ring] + np.where(pos == n[ring] - 1, 0, pos)
    x, y = rings.x[src], rings.y[src]
    n_chunks = (n - 2) // segments + 1
    first_chunk = np.append(0, np.cumsum(n_chunks)[:-1])
    chunk = first_chunk[ring] + np.minimum(pos // segments, n_chunks[ring] - 1)
    # the first vertex of every chunk after a ring's first also ends the chunk before it
    shared = np.flatnonzero((pos % segments == 0) & (pos > 0) & (pos < n[ring] - 1))
    all_chunk = np.concatenate([chunk, chunk[shared] - 1])
    order = np.lexsort((np.concatenate([pos, pos[shared]]), all_chunk))
    xy = np.column_stack([np.concatenate([x, x[shared]]), np.concatenate([y, y[shared]])])
    return np.asarray(shapely.linestrings(xy[order], indices=all_chunk[order]))


def overlay_areas(
    cells: np.ndarray, polygons: np.ndarray, *, threads: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the area of every positive overlap of a cell with a polygon.

    Parameters
    ----------
    cells
        Small convex polygons (H3 cells), in the same planar CRS as ``polygons``. Other shapes
        work too, through a slower GEOS intersection.
    polygons
        Polygons or multipolygons, possibly with holes; they may overlap each other and need
        not cover the cells.
    threads
        Worker threads; by default the machine's CPU count.

    Returns
    -------
    cell_idx, polygon_idx : numpy.ndarray
        Index (int64) into ``cells`` and ``polygons`` of each overlapping pair, sorted by cell
        then polygon, each pair once.
    area : numpy.ndarray
        Planar area of the overlap, more than ``SLIVER_SHARE`` of the cell's area. A cell
        wholly inside a polygon gets exactly its own area (``shapely.area``).

    """
    n_threads = _threads(threads)
    cells = np.asarray(cells, dtype=object)
    polygons = np.asarray(polygons, dtype=object)
    empty = np.empty(0, dtype=np.int64)
    rings = rings_of(polygons)
    if not len(cells) or not len(rings):
        return empty, empty, np.empty(0)
    n_poly = len(polygons)
    cell_area = shapely.area(cells)
    info = _cells(cells)

    # cells crossing an outline
    cell_tree = shapely.STRtree(cells)
    chunks = outline_chunks(rings)
    cell_tree.query(chunks[:1])  # GEOS builds the tree on its first query: not in two threads
    hit = _parallel(
        lambda s: cell_tree.query(chunks[s], predicate="intersects")[1], len(chunks), n_threads
    )
    crossing = np.zeros(len(cells), dtype=bool)
    crossing[_concat(hit, np.int64)] = True

    # the others lie wholly inside the polygons holding an interior point of theirs
    inner = np.flatnonzero(~crossing)
    local = shapely.from_wkb(shapely.to_wkb(polygons))  # prepared below: keep the caller's as is
    shapely.prepare(local)
    poly_tree = shapely.STRtree(local)
    x, y = info.inner_x[inner], info.inner_y[inner]
    if n_poly == 1:
        i, p = np.arange(len(inner)), np.zeros(len(inner), dtype=np.int64)
    else:
        i, p = poly_tree.query(cells[inner])  # boxes: no new geometries, less GC work
    inside = shapely.intersects_xy(local[p], x[i], y[i])
    in_cell, in_poly = inner[i[inside]], p[inside]

    # the crossing ones: clip convex cells against nearby ring pieces, others with GEOS
    cross = np.flatnonzero(crossing)
    convex = cross[info.convex[cross]]
    pieces = ring_pieces(rings)
    piece_tree = shapely.STRtree(shapely.box(*pieces.bounds().T))
    c, q = piece_tree.query(cells[convex])
    cut_cell = convex[c]
    cut_area = _clip_areas(info, cut_cell, pieces, q, threads=n_threads)
    cut_key = cut_cell * n_poly + pieces.owner[q]
    other = cross[~info.convex[cross]]
    if len(other):
        c, p = poly_tree.query(cells[other], predicate="intersects")
        cut_key = np.concatenate([cut_key, other[c] * n_poly + p])
        geos = shapely.area(shapely.intersection(cells[other[c]], polygons[p]))
        cut_area = np.concatenate([cut_area, geos])
    cut_key, inverse = np.unique(cut_key, return_inverse=True)
    cut_area = np.bincount(inverse, weights=cut_area, minlength=len(cut_key))

    key = np.concatenate([in_cell * n_poly + in_poly, cut_key])
    area = np.concatenate([cell_area[in_cell], cut_area])
    keep = area > SLIVER_SHARE * cell_area[key // n_poly]
    key, area = key[keep], area[keep]
    order = np.argsort(key, kind="stable")
    key, area = key[order], area[order]
    return key // n_poly, key % n_poly, area


# --------------------------------------------------------------------------------------------
# the cover and the crosswalk


def _outline_samples(geom_wgs: shapely.Geometry, spacing: float) -> np.ndarray:
    """Return points (lon, lat rows) along the rings of a polygon, ``spacing`` degrees apart."""
    rings = rings_of(np.asarray([geom_wgs], dtype=object))
    if not len(rings):
        return np.empty((0, 2))
    n = rings.counts + 1
    closed_start = np.append(0, np.cumsum(n))
    pos = np.arange(closed_start[-1]) - np.repeat(closed_start[:-1], n)
    ring = np.repeat(np.arange(len(rings)), n)
    src = rings.start[:-1][ring] + np.where(pos == n[ring] - 1, 0, pos)
    x, y = rings.x[src], rings.y[src]
    step = np.hypot(np.diff(x), np.diff(y))
    step[pos[1:] == 0] = 1.0  # a gap between rings, never sampled
    moves = np.append(True, step > 0)  # drop repeated vertices: interpolation needs increasing xp
    along = np.append(0.0, np.cumsum(step))[moves]
    x, y, ring, pos = x[moves], y[moves], ring[moves], pos[moves]
    ring_from = along[pos == 0]
    ring_len = np.append(ring_from[1:] - 1.0, along[-1]) - ring_from
    count = np.floor(ring_len / spacing).astype(np.int64) + 1
    k = np.arange(count.sum()) - np.repeat(np.append(0, np.cumsum(count)[:-1]), count)
    at = np.repeat(ring_from, count) + k * spacing
    return np.column_stack([np.interp(at, along, x), np.interp(at, along, y)])


def candidate_cells(study_wgs: shapely.Geometry, res: int) -> np.ndarray:
    """Return H3 cells (uint64, sorted, unique) including every cell that overlaps an area.

    Parameters
    ----------
    study_wgs
        The area in lon/lat (EPSG:4326), a polygon or multipolygon.
    res
        H3 resolution.

    Returns
    -------
    numpy.ndarray
        The cells whose centre lies in the area (simplified by an eighth of the average edge
        length), and the cells of points sampled along its outline (a quarter of the average
        edge apart) with their neighbours: a superset of the cells that overlap the area.

    Notes
    -----
    A cell meeting the outline holds an outline point within an eighth of an edge of a sample,
    so it is a sample's cell or its neighbour. A cell not meeting the outline and overlapping
    the area lies inside it, its centre more than an inradius (0.87 edge) from the outline,
    further than the simplification can move the outline (twice its tolerance), so its centre
    lies in the simplified area too.

    """
    edge = h3.average_hexagon_edge_length(res, "m")
    simple = shapely.simplify(study_wgs, edge / 8 / M_PER_DEG_MAX, preserve_topology=False)
    centre = np.empty(0, dtype=np.uint64)
    if not shapely.is_empty(simple):
        centre = np.asarray(
            geometry_to_cells(simple, res, containment_mode=ContainmentMode.ContainsCentroid),
            dtype=np.uint64,
        )
    xy = _outline_samples(study_wgs, edge * SAMPLE_EDGE_SHARE / M_PER_DEG_MAX)
    if not len(xy):
        return np.unique(centre)
    on_edge = np.unique(
        np.asarray(
            coordinates_to_cells(
                np.ascontiguousarray(xy[:, 1]), np.ascontiguousarray(xy[:, 0]), res
            ),
            dtype=np.uint64,
        )
    )
    near = np.asarray(grid_disk(on_edge, 1, flatten=True), dtype=np.uint64)
    return np.union1d(centre, near)


def _project(x: np.ndarray, y: np.ndarray, to_crs: Transformer) -> np.ndarray:
    """Transform points, each distinct point once (H3 cells share their vertices)."""
    xb, yb = x.view(np.uint64), y.view(np.uint64)
    key = (xb * np.uint64(0x9E3779B97F4A7C15)) ^ yb
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    if (x[first][inverse] == x).all() and (y[first][inverse] == y).all():  # no hash collision
        ux, uy = to_crs.transform(x[first], y[first])
        return np.column_stack([np.asarray(ux)[inverse], np.asarray(uy)[inverse]])
    return np.column_stack(to_crs.transform(x, y))


def _wkb_rings(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the lon/lat vertices of H3 cells and the offsets of each cell's closed ring."""
    wkb = pa.array(cells_to_wkb_polygons(cells))
    offsets = np.frombuffer(
        wkb.buffers()[1], dtype=np.int64 if pa.types.is_large_binary(wkb.type) else np.int32
    )[wkb.offset : wkb.offset + len(wkb) + 1].astype(np.int64)
    data = np.frombuffer(wkb.buffers()[2], dtype=np.uint8)
    size = np.diff(offsets)
    if len(cells) and wkb.null_count == 0 and (size == size[0]).all() and size[0] > 13:
        records = data[offsets[0] : offsets[-1]].reshape(len(cells), int(size[0]))
        head = records[:, :13]
        words = head[:, 1:].copy().view("<u4")  # geometry type, rings, points
        if (
            (head[:, 0] == 1).all()  # little-endian
            and (words[:, 0] == 3).all()
            and (words[:, 1] == 1).all()
            and (words[:, 2] == (size[0] - 13) // 16).all()
            and (size[0] - 13) % 16 == 0
        ):
            xy = records[:, 13:].copy().view("<f8").reshape(-1, 2)
            return xy, np.arange(len(cells) + 1) * ((int(size[0]) - 13) // 16)
    geoms = shapely.from_wkb(np.asarray(wkb.to_pylist(), dtype=object))
    xy, idx = shapely.get_coordinates(geoms, return_index=True)
    return xy, np.append(0, np.cumsum(np.bincount(idx, minlength=len(cells))))


def cell_polygons(cells: np.ndarray, crs: CRS) -> np.ndarray:
    """Return the polygons of H3 cells (uint64) in ``crs``, their vertices joined straight.

    The same polygons as ``to_crs`` of h3ronpy's ``cells_to_wkb_polygons``, made faster: the
    vertices are read from the WKB and each distinct one is transformed once.
    """
    cells = np.asarray(cells, dtype=np.uint64)
    if not len(cells):
        return np.empty(0, dtype=object)
    xy, ring_offsets = _wkb_rings(cells)
    xy = _project(
        np.ascontiguousarray(xy[:, 0]), np.ascontiguousarray(xy[:, 1]), transformer(WGS84, crs)
    )
    return np.asarray(
        shapely.from_ragged_array(
            shapely.GeometryType.POLYGON, xy, (ring_offsets, np.arange(len(cells) + 1))
        )
    )


def hex_cover(
    study_area: shapely.Geometry,
    study_wgs: shapely.Geometry,
    res: int,
    crs: CRS,
    *,
    extra_cells: np.ndarray | None = None,
    threads: int | None = None,
) -> gpd.GeoDataFrame:
    """Return the H3 cells at ``res`` that overlap the study area.

    Parameters
    ----------
    study_area
        The study area polygon in the working CRS.
    study_wgs
        The same in lon/lat (EPSG:4326), densified so that it follows ``study_area``.
    res
        H3 resolution.
    crs
        The metric working CRS.
    extra_cells
        Cells (uint64) that must be in the cover, e.g. those holding accepted points; a guard
        against numerical disagreement between the H3 and GEOS overlap tests.
    threads
        Worker threads; by default the machine's CPU count.

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``h3`` (hex string), ``resolution``, ``area_m2`` (planar, working CRS),
        ``area_share`` (share of the cell inside the study area), ``cell`` (uint64) and polygon
        geometry in the working CRS; the cells with a positive share and the extra cells,
        sorted by cell (the same order as by ``h3``), index reset.

    """
    extra = (
        np.unique(np.asarray(extra_cells, dtype=np.uint64))
        if extra_cells is not None
        else np.empty(0, dtype=np.uint64)
    )
    cells = np.union1d(candidate_cells(study_wgs, res), extra)
    polys = cell_polygons(cells, crs)
    area = shapely.area(polys)
    idx, _, inter = overlay_areas(polys, np.asarray([study_area], dtype=object), threads=threads)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.clip(np.bincount(idx, weights=inter, minlength=len(cells)) / area, 0.0, 1.0)
    share = np.nan_to_num(share)
    keep = (share > 0) | np.isin(cells, extra)
    hexes = gpd.GeoDataFrame(
        {
            "h3": cells_to_strings(cells[keep]),
            "resolution": np.full(int(keep.sum()), res, dtype=np.int64),
            "area_m2": area[keep],
            "area_share": share[keep],
        },
        geometry=polys[keep],
        crs=crs,
    )
    hexes["cell"] = cells[keep]
    return hexes.reset_index(drop=True)


def crosswalk(
    hexes: gpd.GeoDataFrame, units: gpd.GeoDataFrame, *, threads: int | None = None
) -> pd.DataFrame:
    """Return the hex <-> admin unit crosswalk with area shares.

    Parameters
    ----------
    hexes
        Cells as returned by :func:`hex_cover` (``h3``, ``resolution``, ``area_m2``, geometry).
    units
        Admin units with ``unit_id``, ``area_m2`` and geometry, in the same CRS as ``hexes``.
    threads
        Worker threads; by default the machine's CPU count.

    Returns
    -------
    pandas.DataFrame
        ``h3``, ``resolution``, ``unit_id``, ``area_m2`` (of the intersection), ``hex_share``
        (share of the cell's area in the unit) and ``unit_share`` (share of the unit's area in
        the cell), one row per overlapping pair, sorted by ``h3`` and ``unit_id``. For each unit
        inside the cover, ``unit_share`` sums to 1 (up to floating point).

    """
    cell_idx, unit_idx, inter = overlay_areas(
        np.asarray(hexes.geometry.values), np.asarray(units.geometry.values), threads=threads
    )
    return pd.DataFrame(
        {
            "h3": hexes["h3"].to_numpy()[cell_idx],
            "resolution": hexes["resolution"].to_numpy()[cell_idx],
            "unit_id": units["unit_id"].to_numpy()[unit_idx],
            "area_m2": inter,
            "hex_share": inter / hexes["area_m2"].to_numpy()[cell_idx],
            "unit_share": inter / units["area_m2"].to_numpy()[unit_idx],
        }
    ).sort_values(["h3", "unit_id"], ignore_index=True)
