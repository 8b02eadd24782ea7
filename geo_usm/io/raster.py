"""Read one band of a raster with rasterio: valid pixel centres and their values."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import rasterio.errors
import rasterio.transform
from pyproj import CRS
from rasterio.warp import transform_bounds
from rasterio.windows import Window, from_bounds

from geo_usm.errors import InputError
from geo_usm.geo import WGS84


@dataclass
class RasterPixels:
    """The valid pixels of one raster band.

    Attributes
    ----------
    x, y : numpy.ndarray
        Pixel-centre coordinates in ``crs``.
    values : numpy.ndarray
        Pixel values (float).
    crs : pyproj.CRS
        The raster's CRS.
    n_pixels : int
        Number of pixels in the band, valid or not.

    """

    x: np.ndarray
    y: np.ndarray
    values: np.ndarray
    crs: CRS
    n_pixels: int
    n_outside: int = 0

    @property
    def n_nodata(self) -> int:
        """Number of nodata (masked or non-finite) pixels within the window read."""
        return self.n_pixels - self.n_outside - len(self.values)


def read_raster(
    path: Path,
    *,
    band: int,
    crs: str | None,
    name: str,
    within: tuple[float, float, float, float] | None = None,
) -> RasterPixels:
    """Read the valid pixels of one band.

    Parameters
    ----------
    path
        The raster file.
    band
        1-based band number.
    crs
        CRS to assume when the file declares none (or to override it).
    name
        Layer name, for messages.
    within
        Lon/lat bounds (west, south, east, north) of the study area: only the pixels in this
        window are read (a national raster for one borough), the others counted as
        ``n_outside``.

    Raises
    ------
    InputError
        If the file is missing or unreadable, the band does not exist or no CRS is known.

    """
    if not path.exists():
        raise InputError("input file not found", path=path, hint="check 'path' in the city file")
    try:
        with rasterio.open(path) as src:
            if band > src.count:
                raise InputError(
                    f"layer '{name}': band {band} does not exist (the raster has {src.count})",
                    path=path,
                )
            src_crs = (
                CRS.from_user_input(crs)
                if crs
                else (CRS.from_user_input(src.crs) if src.crs else None)
            )
            if src_crs is None:
                raise InputError(
                    f"layer '{name}': the raster declares no CRS",
                    path=path,
                    hint=f"set layers.{name}.crs in the city file",
                )
            window = Window(0, 0, src.width, src.height)
            if within is not None:
                bounds = transform_bounds(WGS84, src_crs, *within, densify_pts=21)
                wanted = from_bounds(*bounds, transform=src.transform)
                wanted = (
                    Window(
                        wanted.col_off - 1, wanted.row_off - 1, wanted.width + 2, wanted.height + 2
                    )
                    .round_offsets()
                    .round_lengths()
                )
                try:
                    window = wanted.intersection(window)
                except rasterio.errors.WindowError:  # no overlap at all
                    window = Window(0, 0, 0, 0)
            data = src.read(band, masked=True, window=window)
            transform = src.window_transform(window)
            n_pixels = src.width * src.height
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"cannot read raster: {exc}", path=path) from None
    valid = ~np.ma.getmaskarray(data) & np.isfinite(np.ma.getdata(data))
    rows, cols = np.nonzero(valid)
    xs, ys = rasterio.transform.xy(transform, rows, cols, offset="center")
    return RasterPixels(
        x=np.asarray(xs, dtype=float),
        y=np.asarray(ys, dtype=float),
        values=np.ma.getdata(data)[rows, cols].astype(float),
        crs=src_crs,
        n_pixels=n_pixels,
        n_outside=n_pixels - int(data.size),
    )
