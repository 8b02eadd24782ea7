"""Exact, area-weighted zonal statistics of one raster band over polygons.

Each pixel counts for the fraction of its area that a polygon covers: a population pixel half
inside a polygon adds half its value to that polygon's sum. Fed with the pieces of hexagon ∩
admin unit, the sums over the pieces of a hexagon and over the pieces of a unit therefore add up
to the same totals, and the sum over polygons that tile the raster is the raster's total.

For every polygon it computes

- ``sum``: Σ value × covered fraction of the pixel, over valid pixels;
- ``coverage``: Σ covered fraction over valid pixels (the number of valid pixels' worth of area);
- ``nodata_coverage``: Σ covered fraction over nodata pixels (nodata value, masked or NaN);
- ``outside_coverage``: the polygon's area beyond the raster's extent, in pixels;
- ``mean``: ``sum / coverage``, NaN where ``coverage`` is 0.

``coverage + nodata_coverage + outside_coverage`` is the polygon's area in pixels, so a caller
can tell "no data" (the last two) from a true 0. The raster's total over its valid pixels and
the part of it the polygons cover are returned alongside, to check conservation and report the
share outside.

The covered fractions are computed exactly, in double precision, from the polygon boundaries
(no sub-pixel sampling): by Green's theorem the area of a polygon inside a pixel is an integral
along its boundary, so each boundary is cut at the pixel grid lines and each piece adds a
trapezoid to its pixel and a full strip to every pixel below it in its column; column prefix
sums of the values turn the strips into one look-up per piece (see :func:`_pieces`). The work is
proportional to the number of boundary pieces, vectorised over all polygons with numpy, without
a Python loop per polygon. exactextract [1]_ computes the same fractions in C++ but stores them
in single precision [2]_, which bounds its relative accuracy to about 1e-7, short of the 1e-9
the brute-force test asks; the tests use it as an independent check when it is installed.

References
----------
.. [1] Baston, D. exactextract: fast and accurate raster zonal statistics.
   https://github.com/isciences/exactextract
.. [2] isciences/exactextract issue 101: "exactextract is using single-precision floats for the
   coverage fractions". https://github.com/isciences/exactextract/issues/101

"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import rasterio.errors
import shapely
from affine import Affine
from pyproj import CRS
from rasterio.windows import Window

from geo_usm.errors import InputError

__all__ = ["COLUMNS", "ZonalStats", "zonal_stats", "zonal_stats_array"]

#: Columns of :attr:`ZonalStats.table`, in order.
COLUMNS = ("sum", "coverage", "nodata_coverage", "outside_coverage", "mean")

#: Largest number of pixels of the window held in memory at once (as 6 float64 layers, ~100 MB).
MAX_CELLS_IN_MEMORY = 1 << 21

#: Polygons whose boundaries are cut into pieces at once (bounds memory: ~20 pieces each).
POLYGON_BATCH = 1 << 16

#: Pixels read at a time (whole rows) when totalling the whole band.
_TOTAL_CHUNK_CELLS = 1 << 21

# shapely geometry type ids
_POLYGON, _MULTIPOLYGON = 3, 6
_COLLECTIONS = (4, 5, 6, 7)  # multi-point, multi-line, multi-polygon, collection

#: Reads ``(row, col, nrows, ncols)`` of a band, rows from north to south, as a masked array.
ReadWindow = Callable[[int, int, int, int], np.ma.MaskedArray]


@dataclass(frozen=True)
class ZonalStats:
    """Exact zonal statistics of one raster band over a set of polygons.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per polygon, with the polygons' index, and the :data:`COLUMNS` ``sum``,
        ``coverage``, ``nodata_coverage``, ``outside_coverage`` (in pixels) and ``mean``.
    raster_total : float
        Sum of the band's valid pixels over the whole raster (scale and offset applied).
    covered_total : float
        Sum of ``table["sum"]``: the part of ``raster_total`` inside the polygons, provided the
        polygons do not overlap (the pieces of hexagon ∩ unit do not).
    n_valid_pixels, n_nodata_pixels : int
        Valid and nodata (nodata value, masked or non-finite) pixels in the whole band.
    raster_crs : pyproj.CRS
        The raster's CRS, in which the coverage fractions were computed.
    pixel_area : float
        Area of one pixel in ``raster_crs`` units (square metres, or square degrees for a
        geographic raster).

    """

    table: pd.DataFrame
    raster_total: float
    covered_total: float
    n_valid_pixels: int
    n_nodata_pixels: int
    raster_crs: CRS
    pixel_area: float

    @property
    def outside_total(self) -> float:
        """Part of :attr:`raster_total` outside the polygons."""
        return self.raster_total - self.covered_total

    @property
    def outside_share(self) -> float:
        """Share of :attr:`raster_total` outside the polygons (NaN when the total is 0)."""
        return self.outside_total / self.raster_total if self.raster_total else math.nan


def zonal_stats(
    polygons: gpd.GeoSeries | gpd.GeoDataFrame,
    path: str | Path,
    *,
    band: int = 1,
    crs: Any = None,
    name: str | None = None,
) -> ZonalStats:
    """Exact, coverage-weighted statistics of one band of a raster file over polygons.

    Parameters
    ----------
    polygons
        Polygons with a CRS (in practice the pieces of hexagon ∩ admin unit in the working CRS).
        Missing, empty or non-polygonal geometries get zero sums and coverages; the polygonal
        parts of geometry collections are used.
    path
        The raster file (anything rasterio opens).
    band
        1-based band number.
    crs
        CRS to assume when the file declares none (or to override it), as in the city file.
    name
        Layer name, for messages.

    Returns
    -------
    ZonalStats
        The per-polygon table, indexed like ``polygons``, and the raster's totals.

    Raises
    ------
    InputError
        If the file is missing or unreadable, the band does not exist, no CRS is known for the
        raster or the polygons, or the raster is rotated.

    Notes
    -----
    When the raster's CRS differs from the polygons', the polygons are reprojected to the
    raster's CRS, never the raster to the polygons': resampling a raster of counts (people per
    pixel) onto another grid moves and smooths values and does not conserve the total, whereas
    reprojecting the polygons leaves every pixel whole. Only the vertices are reprojected, so
    edges stay straight in the raster's CRS; this is negligible for edges as short as a
    hexagon's (segmentize long edges first otherwise). In a geographic raster the fractions are
    shares of a pixel's area in degrees, which differ from shares of its true area only by the
    change of latitude scale across one pixel.

    Pixels equal to the band's nodata value, masked by the dataset (mask band, alpha) or not
    finite are excluded from ``sum`` and ``coverage`` and counted in ``nodata_coverage``. The
    band's scale and offset, when rasterio reports them, are applied to the values.

    The band is read window by window: the window around the polygons for the statistics, and
    the whole band, in chunks, for :attr:`ZonalStats.raster_total`.

    """
    path = Path(path)
    label = f"layer '{name}': " if name else ""
    if not path.exists():
        raise InputError("input file not found", path=path, hint="check 'path' in the city file")
    try:
        with rasterio.open(path) as src:
            if not 1 <= band <= src.count:
                msg = f"{label}band {band} does not exist (the raster has {src.count})"
                raise InputError(msg, path=path)
            raster_crs = _raster_crs(src.crs, crs)
            if raster_crs is None:
                hint = f"set layers.{name}.crs in the city file" if name else "pass crs="
                raise InputError(f"{label}the raster declares no CRS", path=path, hint=hint)
            transform, flip = _north_up(src.transform, src.height, path=path, label=label)
            reader = _file_reader(src, band, flip=flip)
            return _zonal(
                polygons,
                reader,
                transform=transform,
                width=src.width,
                height=src.height,
                raster_crs=raster_crs,
                scale=float(src.scales[band - 1]),
                offset=float(src.offsets[band - 1]),
            )
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"{label}cannot read raster: {exc}", path=path) from None


def zonal_stats_array(
    polygons: gpd.GeoSeries | gpd.GeoDataFrame,
    values: np.ndarray,
    transform: Affine,
    *,
    crs: Any,
    nodata: float | None = None,
    scale: float = 1.0,
    offset: float = 0.0,
) -> ZonalStats:
    """Exact, coverage-weighted statistics of an in-memory band over polygons.

    Parameters
    ----------
    polygons
        Polygons with a CRS, as in :func:`zonal_stats`.
    values
        2-D array of pixel values (rows as ``transform`` orders them); a masked array's mask
        marks nodata pixels too.
    transform
        The band's affine transform (rasterio convention), north-up or south-up, not rotated.
    crs
        The band's CRS (anything :meth:`pyproj.CRS.from_user_input` accepts).
    nodata
        Value marking nodata pixels, if any. NaN pixels are always nodata.
    scale, offset
        Applied to the raw values: ``value * scale + offset``.

    Returns
    -------
    ZonalStats
        As :func:`zonal_stats`.

    Raises
    ------
    InputError
        If ``crs`` is None, the polygons have no CRS or the transform is rotated.

    """
    if values.ndim != 2:
        msg = f"values must be a 2-D array, not {values.ndim}-D"
        raise ValueError(msg)
    raster_crs = _raster_crs(None, crs)
    if raster_crs is None:
        raise InputError("the raster declares no CRS", hint="pass crs=")
    data = np.ma.masked_array(values, mask=np.ma.getmaskarray(values), copy=False)
    if nodata is not None:
        data = np.ma.masked_where(np.ma.getdata(data) == nodata, data, copy=False)
    height, width = data.shape
    transform, flip = _north_up(transform, height, path=None, label="")
    if flip:
        data = data[::-1]

    def reader(row: int, col: int, nrows: int, ncols: int) -> np.ma.MaskedArray:
        return data[row : row + nrows, col : col + ncols]

    return _zonal(
        polygons,
        reader,
        transform=transform,
        width=width,
        height=height,
        raster_crs=raster_crs,
        scale=scale,
        offset=offset,
    )


# --- the computation -------------------------------------------------------------------------


def _zonal(
    polygons: gpd.GeoSeries | gpd.GeoDataFrame,
    read: ReadWindow,
    *,
    transform: Affine,
    width: int,
    height: int,
    raster_crs: CRS,
    scale: float,
    offset: float,
) -> ZonalStats:
    """Compute the statistics of a north-up band given as a window reader."""
    geoseries = polygons.geometry if isinstance(polygons, gpd.GeoDataFrame) else polygons
    if geoseries.crs is None:
        raise InputError("the polygons declare no CRS", hint="set a CRS on the polygons")
    if not CRS.from_user_input(geoseries.crs).equals(raster_crs, ignore_axis_order=True):
        geoseries = geoseries.to_crs(raster_crs)
    geoms = np.asarray(geoseries.array, dtype=object)
    broken = ~shapely.is_valid(geoms) & ~shapely.is_missing(geoms)
    if broken.any():
        geoms = geoms.copy()
        geoms[broken] = shapely.make_valid(geoms[broken])
    geoms = _polygonal(geoms)
    band = _Band(read, scale=scale, offset=offset)

    dx, dy = float(transform.a), float(-transform.e)
    pixel_area = dx * dy
    left, top = float(transform.c), float(transform.f)
    extent = shapely.box(left, top - dy * height, left + dx * width, top)

    n = len(geoms)
    sums, coverage, nodata = np.zeros(n), np.zeros(n), np.zeros(n)
    present = ~shapely.is_empty(geoms)
    window = _window(geoms[present], transform, width, height)
    if window is not None:
        idx = np.flatnonzero(present & shapely.intersects(extent, geoms))
        if len(idx):
            sums[idx], coverage[idx], nodata[idx] = _extract(geoms[idx], band, transform, window)

    outside = np.zeros(n)
    bounds = shapely.bounds(geoms)
    xmin, ymin, xmax, ymax = shapely.bounds(extent)
    within = (
        (bounds[:, 0] >= xmin)
        & (bounds[:, 1] >= ymin)
        & (bounds[:, 2] <= xmax)
        & (bounds[:, 3] <= ymax)
    )
    beyond = present & ~within
    outside[beyond] = shapely.area(shapely.difference(geoms[beyond], extent)) / pixel_area

    mean = np.divide(sums, coverage, out=np.full(n, np.nan), where=coverage > 0)
    table = pd.DataFrame(
        {
            "sum": sums,
            "coverage": coverage,
            "nodata_coverage": nodata,
            "outside_coverage": outside,
            "mean": mean,
        },
        index=geoseries.index,
    )
    total, n_valid, n_nodata = _band_total(band, width, height)
    return ZonalStats(
        table=table,
        raster_total=total,
        covered_total=math.fsum(sums),
        n_valid_pixels=n_valid,
        n_nodata_pixels=n_nodata,
        raster_crs=raster_crs,
        pixel_area=pixel_area,
    )


def _extract(
    geoms: np.ndarray, band: _Band, transform: Affine, window: Window
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact sum, coverage and nodata coverage of each geometry over ``window`` of ``band``.

    Polygons are handled in batches of :data:`POLYGON_BATCH` and the window in stripes of whole
    columns of at most :data:`MAX_CELLS_IN_MEMORY` pixels; see :func:`_pieces` for the method.
    """
    n = len(geoms)
    out = np.zeros((3, n))
    nrows, ncols = int(window.height), int(window.width)
    width = max(1, MAX_CELLS_IN_MEMORY // max(nrows, 1))
    stripes = [(c, min(c + width, ncols)) for c in range(0, ncols, width)]
    cache: dict[int, np.ndarray] = {}
    for start in range(0, n, POLYGON_BATCH):
        batch = geoms[start : start + POLYGON_BATCH]
        owner, col, row, height, weight = _pieces(batch, transform, window)
        if len(stripes) > 1:
            order = np.argsort(col, kind="stable")
            owner, col, row, height, weight = (a[order] for a in (owner, col, row, height, weight))
            bounds = np.searchsorted(col, [c for stripe in stripes for c in stripe])
        else:
            bounds = np.array([0, len(col)])
        for s, (c0, c1) in enumerate(stripes):
            lo, hi = bounds[2 * s], bounds[2 * s + 1]
            if lo == hi:
                continue
            if s not in cache:
                if len(cache) and len(stripes) > 1:
                    cache.clear()  # bounded memory: keep one stripe at a time
                cache[s] = _stripe(band, window, c0, c1)
            layers, prefix = cache[s][:, :nrows], cache[s]
            i, k, h, w = col[lo:hi] - c0, row[lo:hi], height[lo:hi], weight[lo:hi]
            cell = layers[:, np.minimum(k, nrows - 1), i] * h  # h is 0 above the window
            below = prefix[:, nrows + np.minimum(k, nrows), i]
            for q in range(3):
                out[q, start : start + len(batch)] += np.bincount(
                    owner[lo:hi], weights=w * (cell[q] + below[q]), minlength=len(batch)
                )
    return out[0], out[1], out[2]


def _stripe(band: _Band, window: Window, c0: int, c1: int) -> np.ndarray:
    """Columns ``c0:c1`` of the window as layers and their column prefix sums.

    Returns an array of shape ``(3, 2 * nrows + 1, c1 - c0)``: rows ``0:nrows`` hold the
    values (0 where invalid), the valid and the invalid flags, rows numbered from the south;
    rows ``nrows + k`` hold the sum of rows ``0:k`` of each.
    """
    nrows = int(window.height)
    values, invalid = band.read(int(window.row_off), int(window.col_off) + c0, nrows, c1 - c0)
    values, invalid = values[::-1], invalid[::-1]  # rows from the south
    layers = np.stack([np.where(invalid, 0.0, values), ~invalid, invalid]).astype(np.float64)
    prefix = np.zeros((3, nrows + 1, c1 - c0))
    np.cumsum(layers, axis=1, out=prefix[:, 1:])
    return np.concatenate([layers, prefix], axis=1)


def _pieces(
    geoms: np.ndarray, transform: Affine, window: Window
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cut the boundaries of polygons into pieces that each lie in one pixel of ``window``.

    Coordinates are in pixels of the window: ``u`` eastwards from its west edge, ``v``
    northwards from its south edge, so that pixel ``(k, i)`` (row ``k`` from the south, column
    ``i``) is ``[i, i + 1] x [k, k + 1]``. By Green's theorem, the area of a polygon inside
    that pixel is ``-∮ g_i(u) (clamp(v, k, k + 1) - k) du`` along its boundary (exterior ring
    counter-clockwise, holes clockwise), with ``g_i`` the indicator of column ``i``. A piece
    from ``(u_a, v_a)`` to ``(u_b, v_b)`` in pixel ``(k, i)`` therefore adds
    ``-(u_b - u_a) * ((v_a + v_b) / 2 - k)`` to that pixel and ``-(u_b - u_a)`` to every pixel
    below it in column ``i``; pieces north of the window add the latter to the whole column,
    pieces south of it or beyond its columns nothing. Vertical edges add nothing.

    Returns
    -------
    owner, col, row, height, weight
        Per piece: position of its polygon in ``geoms``, column ``i``, row ``k`` (``nrows``
        for pieces north of the window), mean height ``(v_a + v_b) / 2 - k`` in the pixel (0
        north of the window), and ``-(u_b - u_a)`` times the ring's sign (+1 for exteriors,
        -1 for holes, whatever the ring's orientation).

    """
    nrows, ncols = int(window.height), int(window.width)
    dx, dy = transform.a, -transform.e
    u0 = transform.c + dx * int(window.col_off)
    v0 = transform.f - dy * (int(window.row_off) + nrows)

    if (shapely.get_type_id(geoms) == _POLYGON).all():
        parts, owner = geoms, np.arange(len(geoms))
    else:
        parts, owner = shapely.get_parts(geoms, return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    exterior = np.ones(len(rings), dtype=bool)  # the first ring of each part
    exterior[1:] = ring_part[1:] != ring_part[:-1]
    xy, ring = shapely.get_coordinates(rings, return_index=True)
    u = (xy[:, 0] - u0) / dx
    v = (xy[:, 1] - v0) / dy
    same = ring[1:] == ring[:-1]  # consecutive vertices of one (closed) ring: an edge
    u1, v1, u2, v2, e_ring = u[:-1][same], v[:-1][same], u[1:][same], v[1:][same], ring[:-1][same]
    doubled_area = np.bincount(e_ring, weights=u1 * v2 - u2 * v1, minlength=len(rings))
    ring_sign = np.where(exterior, 1.0, -1.0) * np.sign(doubled_area)
    keep = u1 != u2  # vertical edges add nothing
    u1, v1, u2, v2, e_ring = u1[keep], v1[keep], u2[keep], v2[keep], e_ring[keep]
    e_owner = owner[ring_part[e_ring]]
    e_sign = ring_sign[e_ring]

    # cut at the column lines u = m, then each piece at the row lines v = n (in order: no sort)
    ua, va, ub, vb, piece_edge = _split(u1, v1, u2, v2, ncols)
    column = np.floor((ua + ub) / 2)
    keep = (ua != ub) & (column >= 0) & (column < ncols)
    ua, va, ub, vb, piece_edge = ua[keep], va[keep], ub[keep], vb[keep], piece_edge[keep]
    va, ua, vb, ub, sub = _split(va, ua, vb, ub, nrows)
    piece_edge, col = piece_edge[sub], column[keep][sub]
    du = ub - ua
    mid = (va + vb) / 2
    row = np.floor(mid)
    inside = (du != 0) & (row >= 0)
    col, row, mid, du, piece_edge = (a[inside] for a in (col, row, mid, du, piece_edge))
    north = row >= nrows
    height = np.where(north, 0.0, np.clip(mid - row, 0.0, 1.0))
    row = np.where(north, nrows, row)
    weight = -du * e_sign[piece_edge]
    return (
        e_owner[piece_edge],
        col.astype(np.intp),
        row.astype(np.intp),
        height,
        weight,
    )


def _band_total(band: _Band, width: int, height: int) -> tuple[float, int, int]:
    """Sum and count the valid pixels of the whole band, a chunk of rows at a time."""
    step = max(1, _TOTAL_CHUNK_CELLS // max(width, 1))
    partial: list[float] = []
    n_valid = 0
    for row in range(0, height, step):
        vals, invalid = band.read(row, 0, min(step, height - row), width)
        partial.append(float(vals[~invalid].sum()))
        n_valid += int(invalid.size - np.count_nonzero(invalid))
    return math.fsum(partial), n_valid, width * height - n_valid


def _window(geoms: np.ndarray, transform: Affine, width: int, height: int) -> Window | None:
    """Pixel window covering the geometries' bounds (one pixel of margin), or None if none."""
    if len(geoms) == 0:
        return None
    xmin, ymin, xmax, ymax = shapely.total_bounds(geoms)
    dx, dy = transform.a, -transform.e
    col0 = max(0, math.floor((xmin - transform.c) / dx) - 1)
    col1 = min(width, math.ceil((xmax - transform.c) / dx) + 1)
    row0 = max(0, math.floor((transform.f - ymax) / dy) - 1)
    row1 = min(height, math.ceil((transform.f - ymin) / dy) + 1)
    if col1 <= col0 or row1 <= row0:
        return None
    return Window(col0, row0, col1 - col0, row1 - row0)


def _polygonal(geoms: np.ndarray) -> np.ndarray:
    """Keep the polygonal part of each geometry (empty polygon where there is none)."""
    out = geoms.copy()
    types = shapely.get_type_id(out)
    other = ~np.isin(types, (_POLYGON, _MULTIPOLYGON))
    out[other] = shapely.Polygon()
    collection = np.flatnonzero(np.isin(types, _COLLECTIONS) & (types != _MULTIPOLYGON))
    if len(collection):
        parts, owner = shapely.get_parts(geoms[collection], return_index=True)
        while True:  # flatten nested collections and multi-polygons inside collections
            nested = np.isin(shapely.get_type_id(parts), _COLLECTIONS)
            if not nested.any():
                break
            sub, sub_owner = shapely.get_parts(parts[nested], return_index=True)
            parts = np.concatenate([parts[~nested], sub])
            owner = np.concatenate([owner[~nested], owner[nested][sub_owner]])
        keep = (shapely.get_type_id(parts) == _POLYGON) & ~shapely.is_empty(parts)
        if keep.any():
            merged = shapely.multipolygons(parts[keep], indices=owner[keep])
            owners = np.unique(owner[keep])
            out[collection[owners]] = merged[owners]
    return out


def _split(
    a1: np.ndarray, b1: np.ndarray, a2: np.ndarray, b2: np.ndarray, top: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cut segments ``(a1, b1)-(a2, b2)`` where ``a`` crosses an integer in ``[0, top]``.

    The cut points are generated in order along each segment (ascending or descending lines),
    with ``a`` set exactly to the line and ``b`` interpolated. Returns the pieces' end points and
    the index of the segment each comes from.
    """
    lo = np.maximum(np.floor(np.minimum(a1, a2)) + 1, 0)
    hi = np.minimum(np.ceil(np.maximum(a1, a2)) - 1, top)
    count = np.maximum(hi - lo + 1, 0).astype(np.intp)
    seg = np.repeat(np.arange(len(a1)), count)
    step = np.arange(len(seg)) - np.repeat(np.cumsum(count) - count, count)
    line = np.where((a2 > a1)[seg], lo[seg] + step, hi[seg] - step)
    b_at = b1[seg] + (line - a1[seg]) / (a2 - a1)[seg] * (b2 - b1)[seg]
    # points of segment s: its start, its cuts, its end, at offsets first[s]...first[s] + count + 1
    first = np.cumsum(count + 2) - (count + 2)
    a = np.empty(first[-1] + count[-1] + 2 if len(count) else 0)
    b = np.empty_like(a)
    a[first], b[first] = a1, b1
    cut = first[seg] + 1 + step
    a[cut], b[cut] = line, b_at
    last = first + count + 1
    a[last], b[last] = a2, b2
    starts = np.ones(len(a), dtype=bool)
    starts[last] = False
    start = np.flatnonzero(starts)
    return a[start], b[start], a[start + 1], b[start + 1], np.repeat(np.arange(len(a1)), count + 1)


def _raster_crs(declared: Any, override: Any) -> CRS | None:
    """Return the raster's CRS: ``override`` if given, else the declared one, else None."""
    if override:
        return CRS.from_user_input(override)
    return CRS.from_user_input(declared) if declared else None


def _north_up(
    transform: Affine, height: int, *, path: Path | None, label: str
) -> tuple[Affine, bool]:
    """Return the north-up transform of a band and whether to flip its rows to get it."""
    if transform.b != 0 or transform.d != 0 or transform.a <= 0 or transform.e == 0:
        msg = f"{label}rotated, sheared or mirrored rasters are not supported ({tuple(transform)})"
        raise InputError(msg, path=path, hint="warp the raster to a north-up grid first")
    if transform.e < 0:
        return transform, False
    top = transform.f + transform.e * height
    return Affine(transform.a, 0.0, transform.c, 0.0, -transform.e, top), True


def _file_reader(src: Any, band: int, *, flip: bool) -> ReadWindow:
    """Window reader of one band of an open rasterio dataset, rows north to south."""

    def read(row: int, col: int, nrows: int, ncols: int) -> np.ma.MaskedArray:
        if flip:
            row = src.height - row - nrows
        data = src.read(band, window=Window(col, row, ncols, nrows), masked=True)
        return data[::-1] if flip else data

    return read


# --- reading ---------------------------------------------------------------------------------


class _Band:
    """Windows of one band as float64 values and invalid flags, the last window cached."""

    def __init__(self, read: ReadWindow, *, scale: float, offset: float):
        self._read = read
        self._scale = scale
        self._offset = offset
        self._key: tuple[int, int, int, int] | None = None
        self._last: tuple[np.ndarray, np.ndarray] = (np.empty((0, 0)), np.empty((0, 0), bool))

    def read(self, row: int, col: int, nrows: int, ncols: int) -> tuple[np.ndarray, np.ndarray]:
        """Values (NaN where invalid) and invalid flags of a window, rows north to south."""
        key = (row, col, nrows, ncols)
        if key != self._key:
            data = self._read(row, col, nrows, ncols)
            values = np.array(np.ma.getdata(data), dtype=np.float64)
            if self._scale != 1.0:
                values *= self._scale
            if self._offset != 0.0:
                values += self._offset
            invalid = np.ma.getmaskarray(data) | ~np.isfinite(values)
            values[invalid] = np.nan
            self._key, self._last = key, (values, invalid)
        return self._last
