"""Read one band of a raster with rasterio: valid pixel centres and their values."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import rasterio.errors
import rasterio.transform
from pyproj import CRS

from geo_usm.errors import InputError


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

    @property
    def n_nodata(self) -> int:
        """Number of nodata (masked or non-finite) pixels."""
        return self.n_pixels - len(self.values)


def read_raster(path: Path, *, band: int, crs: str | None, name: str) -> RasterPixels:
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
            data = src.read(band, masked=True)
            transform = src.transform
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
        n_pixels=int(data.size),
    )
