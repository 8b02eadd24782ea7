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

The coverage fractions come from exactextract [1]_, which computes them exactly from the polygon
boundaries (no sub-pixel sampling), in C++.

References
----------
.. [1] Baston, D. (2024). exactextract: fast and accurate raster zonal statistics.
   https://github.com/isciences/exactextract

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
from exactextract import exact_extract
from exactextract.feature import Feature, FeatureSource
from exactextract.operation import Operation
from exactextract.raster import RasterSource
from exactextract.writer import Writer
from pyproj import CRS
from rasterio.windows import Window

from geo_usm.errors import InputError

__all__ = ["COLUMNS", "ZonalStats", "zonal_stats", "zonal_stats_array"]

#: Columns of :attr:`ZonalStats.table`, in order.
COLUMNS = ("sum", "coverage", "nodata_coverage", "outside_coverage", "mean")

#: Largest number of pixels exactextract holds in memory at once (per source; float64).
MAX_CELLS_IN_MEMORY = 1 << 24

#: Rows of pixels read at a time when totalling the whole band (bounded memory).
_TOTAL_CHUNK_CELLS = 1 << 24

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
    if not CRS.from_user_input(geoseries.crs).equals(raster_crs):
        geoseries = geoseries.to_crs(raster_crs)
    geoms = _polygonal(np.asarray(geoseries.array, dtype=object))
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
    """Run exactextract over ``window`` of ``band``; arrays of sum, coverage, nodata coverage.

    The features are handed over as WKB with their position as id and the results written
    straight into arrays: exactextract's GeoDataFrame source and pandas writer go through
    GeoJSON and dictionaries per feature, several times slower. ``raster-sequential`` reads
    each block of pixels once for all the polygons over it; ``feature-sequential`` would read a
    window per polygon.
    """
    values = _WindowSource(band, transform, window, nodata=False)
    flags = _WindowSource(band, transform, window, nodata=True)
    ops = [
        Operation("sum", "sum", values),
        Operation("count", "coverage", values),
        Operation("sum", "nodata_coverage", flags),
    ]
    writer = _ArrayWriter(len(geoms), ("sum", "coverage", "nodata_coverage"))
    out: dict[str, np.ndarray] = exact_extract(
        values,
        _WkbFeatures(shapely.to_wkb(geoms)),
        ops,
        include_cols=["id"],
        strategy="raster-sequential",
        max_cells_in_memory=MAX_CELLS_IN_MEMORY,
        output=writer,
    )
    return out["sum"], out["coverage"], out["nodata_coverage"]


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


# --- adapters to exactextract's Python interfaces ---------------------------------------------


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


class _WindowSource(RasterSource):  # type: ignore[misc]
    """A window of a band as an exactextract raster: its values, or its nodata flags (0/1)."""

    def __init__(self, band: _Band, transform: Affine, window: Window, *, nodata: bool):
        super().__init__()
        self._band = band
        self._row0, self._col0 = int(window.row_off), int(window.col_off)
        self._nrows, self._ncols = int(window.height), int(window.width)
        self._nodata = nodata
        dx, dy = transform.a, -transform.e
        xmin = transform.c + dx * self._col0
        ymax = transform.f - dy * self._row0
        self._extent = (xmin, ymax - dy * self._nrows, xmin + dx * self._ncols, ymax)
        # distinct names: exactextract keys results by (stat, source name)
        self.set_name("nodata" if nodata else "value")

    def res(self) -> tuple[float, float]:
        xmin, ymin, xmax, ymax = self._extent
        return (xmax - xmin) / self._ncols, (ymax - ymin) / self._nrows

    def extent(self) -> tuple[float, float, float, float]:
        return self._extent

    def srs_wkt(self) -> None:
        return None  # the polygons were reprojected to the raster's CRS beforehand

    def nodata_value(self) -> None:
        return None  # nodata is NaN in the values, and absent from the flags

    def read_window(self, x0: int, y0: int, nx: int, ny: int) -> np.ndarray:
        values, invalid = self._band.read(self._row0 + y0, self._col0 + x0, ny, nx)
        return invalid.astype(np.float64) if self._nodata else values


class _WkbFeature(Feature):  # type: ignore[misc]
    """An input feature: a WKB polygon and its position as ``id``."""

    def __init__(self, position: int, wkb: bytes):
        super().__init__()
        self._id = position
        self._wkb = wkb

    def geometry(self) -> bytes:
        return self._wkb

    def get(self, name: str) -> int:
        return self._id

    def fields(self) -> list[str]:
        return ["id"]


class _WkbFeatures(FeatureSource):  # type: ignore[misc]
    """The polygons as exactextract features."""

    def __init__(self, wkbs: np.ndarray):
        super().__init__()
        self._wkbs = wkbs

    def count(self) -> int:
        return len(self._wkbs)

    def __iter__(self) -> Any:
        for position, wkb in enumerate(self._wkbs):
            yield _WkbFeature(position, wkb)

    def srs_wkt(self) -> None:
        return None


class _Row(Feature):  # type: ignore[misc]
    """An output feature: collects the fields exactextract sets."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, Any] = {}

    def set(self, name: str, value: Any) -> None:
        self.values[name] = value

    def set_geometry(self, geometry: Any) -> None:
        pass  # the results need no geometry; exactextract calls this from copy_to

    def set_geometry_format(self) -> str:
        return "wkb"


class _ArrayWriter(Writer):  # type: ignore[misc]
    """Writes each feature's results into arrays, at the feature's ``id``."""

    def __init__(self, n: int, names: tuple[str, ...]):
        super().__init__()
        self.columns = {name: np.zeros(n) for name in names}
        self._row = _Row()  # reused: copy_to sets every field of every feature

    def add_operation(self, op: Any) -> None:
        pass

    def add_column(self, name: str) -> None:
        pass

    def add_geometry(self) -> None:
        pass

    def write(self, feature: Any) -> None:
        feature.copy_to(self._row)
        values = self._row.values
        position = values["id"]
        for name, column in self.columns.items():
            column[position] = values[name]

    def finish(self) -> None:
        pass

    def features(self) -> dict[str, np.ndarray]:
        return self.columns
