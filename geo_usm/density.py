r"""Kernel density of crime points (crimes per km2) and its Cloud-Optimised GeoTIFF.

:func:`kde_surface` estimates the density of (optionally weighted) points on a raster grid that
covers the study area in the metric working CRS; :func:`write_cog` writes one or several such
surfaces as a single COG (``risk_surface.tif``) and :func:`read_surface` reads it back.

Notes
-----
**Kernel.** The default is the quartic (biweight) kernel of Silverman (1986, eq. 4.5), as used by
ArcGIS Kernel Density and CrimeStat:

.. math:: K_h(d) = \frac{3}{\pi h^2} \left(1 - \frac{d^2}{h^2}\right)^2 \quad (d < h),

zero beyond the search radius (bandwidth) :math:`h`. It integrates to 1 over the plane, so each
crime contributes one crime (times its weight) to the surface. The Epanechnikov kernel
:math:`\frac{2}{\pi h^2}(1 - d^2/h^2)` is offered as well.

**Method.** Points are binned to the cell centres of a grid padded by the kernel radius (so
points just outside the study area still contribute to the cells they reach) with
``numpy.bincount``, and the binned weights are convolved with the kernel sampled at cell-centre
offsets (:func:`scipy.signal.fftconvolve`). For points at cell centres this equals the kernel
formula evaluated at every cell centre (as ArcGIS does). Elsewhere binning adds an error:

* ``binning="simple"`` moves each point to the centre of its cell, at most half a cell along
  each axis (half a diagonal, ``cell_size / sqrt(2)``, in distance); a cell's error is at most
  that shift times the kernel's steepest slope, :math:`8/(3\sqrt{3}\,h)` times its peak, per
  point: first order in ``cell_size / h``.
* ``binning="linear"`` (the default; Wand and Jones 1995, linear binning) shares each point
  between the four nearest cell centres with bilinear weights, keeping its weight and its
  centroid; the error is second order, at most :math:`c^2 / 8` times the sum of the kernel's
  largest second derivatives along x and y (:math:`16 / h^2` times its peak) per point.

On Camden's 4,075 crimes of June 2019 (27 m cells, 386 m bandwidth) the largest difference from
the exact formula is 2.3% of the maximum density with simple binning and 0.27% with linear
binning. A floor of ``MIN_BANDWIDTH_CELLS`` cells on the rule keeps ``cell_size / h`` small
(see :func:`kde_surface`). FFT round-off (about 1e-16 of the largest value) is cleared
to exact zeros below ``ROUNDOFF`` times one crime's peak density (times the total weight in
millions, when above a million), so cells no kernel reaches are exactly 0.

**Values** are crimes per km2 (float32); cells whose centre is outside the study area are
nodata, written as NaN. The surface is not rescaled at the boundary: kernels of crimes near the
edge spill outside the study area, so the surface holds fewer crimes inside than were given.
:attr:`Surface.integral` reports how many it holds and :attr:`Surface.integral_share` the share
(no edge correction, as ArcGIS and CrimeStat; a corrected surface would no longer be comparable
with theirs).

**Grid.** The default cell size follows ArcGIS (the shorter side of the study area's bounds
divided by 250), rounded to whole metres and clamped to ``[MIN_CELL_SIZE, MAX_CELL_SIZE]``
(10-100 m): finer than 10 m is below the precision of published crime locations (police.uk snaps
them to map points), coarser than 100 m blurs street-level hotspots. The grid's edges are
multiples of the cell size (aligned to the CRS origin), so surfaces of one city line up run after
run.

References
----------
Silverman, B. W. (1986). *Density Estimation for Statistics and Data Analysis*. Chapman & Hall.
Wand, M. P. and Jones, M. C. (1995). *Kernel Smoothing*, appendix D (binning). Chapman & Hall.
Esri, ArcGIS Pro, "How Kernel Density works" (default search radius, quartic kernel).

"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely
from affine import Affine
from pyproj import CRS
from rasterio.features import geometry_mask
from scipy.signal import fftconvolve

from geo_usm.errors import InputError
from geo_usm.geo import metric_problem

#: Unit of the surface values, written as the bands' unit type and ``units`` tag.
UNITS = "crimes per km2"
#: Nodata value of :attr:`Surface.array` and of the COG.
NODATA = float("nan")
#: Default cell size bounds (metres) for the ArcGIS rule (shorter side / 250).
MIN_CELL_SIZE = 10.0
MAX_CELL_SIZE = 100.0
#: Number of cells across the shorter side of the study area's bounds (ArcGIS default).
CELLS_ACROSS = 250
#: Smallest bandwidth, in cells, the rule may give; below it the sampled kernel loses mass.
MIN_BANDWIDTH_CELLS = 3.0
#: Largest grid (cells, padding included) :func:`kde_surface` builds.
MAX_CELLS = 50_000_000
#: Values below this share of one crime's peak density are FFT round-off, set to 0.
ROUNDOFF = 1e-9
#: Name of the default bandwidth rule.
RULE_NAME = "arcgis-silverman"
RULE_DESCRIPTION = (
    "ArcGIS spatial Silverman rule: 0.9 * min(SD, sqrt(1/ln 2) * Dm) * n^-0.2, SD the "
    "(weighted) standard distance, Dm the (weighted) median distance to the (weighted) mean "
    "centre, n the number of points (sum of weights)"
)

_M2_PER_KM2 = 1e6
_BINNINGS = ("linear", "simple")
# name -> (normalising constant times h^2, power of (1 - d^2/h^2)); both integrate to 1.
_KERNELS: dict[str, tuple[float, int]] = {
    "quartic": (3.0 / math.pi, 2),
    "epanechnikov": (2.0 / math.pi, 1),
}


@dataclass(frozen=True)
class Surface:
    """A kernel density surface on a north-up grid in the working CRS.

    Attributes
    ----------
    array
        Density in crimes per km2, float32, shape (rows, cols); NaN (:data:`NODATA`) where the
        cell centre is outside the study area.
    transform
        Affine transform of the grid (north-up, square cells).
    crs
        The working CRS passed to :func:`kde_surface` (``None`` if none was given).
    cell_size
        Cell side in metres.
    bandwidth
        Search radius of the kernel in metres (NaN when there were no points and no override).
    bandwidth_rule
        How the bandwidth was chosen (rule name and description, or "caller-supplied").
    kernel
        Kernel name (``"quartic"`` or ``"epanechnikov"``).
    binning
        How points were put on the grid (``"linear"`` or ``"simple"``, see :func:`kde_surface`).
    n_points
        Number of points given.
    total_weight
        Sum of the weights (``n_points`` without weights): the crimes the kernels spread.
    integral
        Sum of density times cell area (km2) over the cells inside the study area: the expected
        number of crimes the surface holds inside it.
    integral_share
        ``integral / total_weight``; below 1 when kernels spill over the boundary (not
        rescaled). NaN when there are no points.
    status
        ``"ok"``, ``"no_points"`` (all-zero surface inside the study area: zero density is the
        truth when there are no crimes) or ``"bandwidth_floor"`` (the rule gave less than
        ``MIN_BANDWIDTH_CELLS`` cells, or no spread at all, and the floor was used).
    reason
        A sentence the caller can report when ``status`` is not ``"ok"``, else ``None``.

    """

    array: np.ndarray
    transform: Affine
    crs: CRS | None
    cell_size: float
    bandwidth: float
    bandwidth_rule: str
    kernel: str
    binning: str
    n_points: int
    total_weight: float
    integral: float
    integral_share: float
    status: str = "ok"
    reason: str | None = None

    @property
    def is_empty(self) -> bool:
        """Whether the surface was made from no points (it is zero inside the study area)."""
        return self.status == "no_points"

    @property
    def inside(self) -> np.ndarray:
        """Boolean mask of the cells whose centre is inside the study area."""
        return ~np.isnan(self.array)

    def tags(self) -> dict[str, str]:
        """Return the metadata tags :func:`write_surfaces` writes for this surface."""
        return {
            "units": UNITS,
            "kernel": self.kernel,
            "binning": self.binning,
            "bandwidth_m": f"{self.bandwidth:.6g}",
            "bandwidth_rule": self.bandwidth_rule,
            "cell_size_m": f"{self.cell_size:.6g}",
            "n_points": str(self.n_points),
            "total_weight": f"{self.total_weight:.10g}",
            "integral": f"{self.integral:.10g}",
            "integral_share": f"{self.integral_share:.6g}",
            "status": self.status,
            **({"reason": self.reason} if self.reason else {}),
        }


def _points(
    x: np.ndarray | Sequence[float],
    y: np.ndarray | Sequence[float],
    weights: np.ndarray | Sequence[float] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate coordinates and weights; return float64 arrays (weights default to 1)."""
    xa = np.asarray(x, dtype=np.float64).ravel()
    ya = np.asarray(y, dtype=np.float64).ravel()
    if xa.shape != ya.shape:
        msg = f"x and y differ in length ({xa.size} and {ya.size})"
        raise InputError(msg)
    bad = ~(np.isfinite(xa) & np.isfinite(ya))
    if bad.any():
        msg = f"{int(bad.sum())} point(s) have missing or infinite coordinates"
        raise InputError(msg, hint="drop records without a location before the density")
    if weights is None:
        return xa, ya, np.ones_like(xa)
    wa = np.asarray(weights, dtype=np.float64).ravel()
    if wa.shape != xa.shape:
        msg = f"weights have {wa.size} values for {xa.size} points"
        raise InputError(msg)
    if not (np.isfinite(wa).all() and (wa >= 0).all()):
        msg = "weights must be finite and non-negative"
        raise InputError(msg)
    return xa, ya, wa


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """Return the weighted median of ``values``.

    The smallest value at which the cumulative weight reaches half the total; when it reaches
    exactly half, the mean of that value and the next (so equal weights give ``numpy.median``).
    """
    order = np.argsort(values, kind="stable")
    v = values[order]
    cw = np.cumsum(weights[order])
    half = cw[-1] / 2.0
    i = int(np.searchsorted(cw, half, side="left"))
    i = min(i, v.size - 1)
    if math.isclose(cw[i], half, rel_tol=1e-12) and i + 1 < v.size:
        return float((v[i] + v[i + 1]) / 2.0)
    return float(v[i])


def _rule_bandwidth(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """ArcGIS rule on validated arrays; 0.0 when there is no spread (or no weight)."""
    total = float(w.sum())
    if x.size == 0 or total <= 0:
        return 0.0
    mx = float(np.dot(w, x) / total)
    my = float(np.dot(w, y) / total)
    dx = x - mx
    dy = y - my
    d2 = dx * dx + dy * dy
    sd = math.sqrt(float(np.dot(w, d2)) / total)
    dist = np.sqrt(d2)
    if np.all(w == w[0]):
        dm = float(np.median(dist))
    else:
        keep = w > 0
        dm = weighted_median(dist[keep], w[keep])
    return 0.9 * min(sd, math.sqrt(1.0 / math.log(2.0)) * dm) * total**-0.2


def bandwidth(
    x: np.ndarray | Sequence[float],
    y: np.ndarray | Sequence[float],
    weights: np.ndarray | Sequence[float] | None = None,
    *,
    override: float | None = None,
) -> tuple[float, str]:
    r"""Return the kernel search radius (metres) for the points, and how it was chosen.

    Parameters
    ----------
    x, y
        Point coordinates in the metric working CRS.
    weights
        Optional non-negative weight per point (a crime counted ``w`` times).
    override
        A caller-supplied bandwidth in metres; it wins over the rule.

    Returns
    -------
    tuple[float, str]
        The bandwidth and a description of the rule (for metadata and reports).

    Raises
    ------
    InputError
        If the override is not a positive finite number, or the rule is undefined (fewer than
        two distinct weighted locations): pass ``override`` then.

    Notes
    -----
    The default is the spatial variant of Silverman's rule of thumb used by ArcGIS Kernel
    Density (from ArcGIS 10.2.1):

    .. math:: h = 0.9 \, \min\left(SD, \sqrt{1/\ln 2}\, D_m\right) n^{-0.2}

    with the (weighted) mean centre :math:`(\bar x, \bar y)`, the standard distance
    :math:`SD = \sqrt{\sum w_i d_i^2 / \sum w_i}` (divisor n, as ArcGIS's Standard Distance
    tool), :math:`D_m` the (weighted) median of the distances :math:`d_i` to the mean centre
    and :math:`n = \sum w_i` (the number of points without weights). Using the median distance
    keeps a few far outliers from inflating the radius. Units are those of the coordinates
    (metres).

    """
    if override is not None:
        if not (math.isfinite(override) and override > 0):
            msg = f"bandwidth must be a positive number of metres, got {override!r}"
            raise InputError(msg)
        return float(override), "caller-supplied"
    xa, ya, wa = _points(x, y, weights)
    h = _rule_bandwidth(xa, ya, wa)
    if not h > 0:
        msg = "the bandwidth rule needs at least two distinct point locations"
        raise InputError(msg, hint="pass a bandwidth in metres")
    return h, f"{RULE_NAME}: {RULE_DESCRIPTION}"


def default_cell_size(bounds: tuple[float, float, float, float]) -> float:
    """Return the default cell size (metres) for a study area's bounds.

    The shorter side of the bounds divided by :data:`CELLS_ACROSS` (250, the ArcGIS default),
    rounded to whole metres and clamped to [:data:`MIN_CELL_SIZE`, :data:`MAX_CELL_SIZE`].
    """
    minx, miny, maxx, maxy = bounds
    side = min(maxx - minx, maxy - miny)
    return float(min(max(round(side / CELLS_ACROSS), MIN_CELL_SIZE), MAX_CELL_SIZE))


def _study_geoms(study_area: Any) -> list[shapely.Geometry]:
    """Return the polygonal parts of the study area as a list, validated."""
    if isinstance(study_area, shapely.Geometry):
        geoms = [study_area]
    else:
        geoms = list(getattr(study_area, "geometry", study_area))
    geoms = [g for g in geoms if g is not None and not g.is_empty]
    if not geoms or not all(g.geom_type in ("Polygon", "MultiPolygon") for g in geoms):
        msg = "the study area must be one or more non-empty polygons"
        raise InputError(msg)
    return geoms


def _kernel(name: str, h: float, cell: float) -> np.ndarray:
    """Return the kernel sampled at cell-centre offsets, per m2, shape (2r+1, 2r+1)."""
    coef, power = _KERNELS[name]
    r = math.ceil(h / cell)
    off = np.arange(-r, r + 1, dtype=np.float64) * cell
    u2 = (off[:, None] ** 2 + off[None, :] ** 2) / (h * h)
    return np.asarray(coef / (h * h) * np.clip(1.0 - u2, 0.0, None) ** power)


def _grid(bounds: tuple[float, float, float, float], cell: float) -> tuple[float, float, int, int]:
    """Return (west, north, rows, cols) of the bounds snapped outwards to the cell size."""
    minx, miny, maxx, maxy = bounds
    west = math.floor(minx / cell) * cell
    south = math.floor(miny / cell) * cell
    east = math.ceil(maxx / cell) * cell
    north = math.ceil(maxy / cell) * cell
    cols = max(round((east - west) / cell), 1)
    rows = max(round((north - south) / cell), 1)
    return west, north, rows, cols


def kde_surface(
    x: np.ndarray | Sequence[float],
    y: np.ndarray | Sequence[float],
    *,
    study_area: Any,
    cell_size: float | None = None,
    bandwidth: float | None = None,
    weights: np.ndarray | Sequence[float] | None = None,
    kernel: str = "quartic",
    crs: Any = None,
    binning: str = "linear",
) -> Surface:
    """Return the kernel density surface (crimes per km2) of points over a study area.

    Parameters
    ----------
    x, y
        Point coordinates in the metric working CRS (metres). Points outside the study area
        still spread density into it where their kernel reaches.
    study_area
        The study area in the same CRS: a shapely (multi)polygon, or a sequence/GeoSeries/
        GeoDataFrame of them. The grid covers its bounds, snapped outwards to the cell size;
        cells whose centre is outside it are nodata (NaN).
    cell_size
        Cell side in metres; default :func:`default_cell_size` (ArcGIS: shorter side / 250,
        whole metres, clamped to 10-100 m).
    bandwidth
        Search radius in metres; default :func:`bandwidth` (the ArcGIS spatial Silverman rule),
        floored at ``MIN_BANDWIDTH_CELLS`` cells (``status == "bandwidth_floor"`` then). A
        caller's value is used as given. For several surfaces meant to be compared or stacked
        (categories, periods), pass the same bandwidth and cell size to each
        (:func:`kde_groups` does).
    weights
        Optional non-negative weight per point.
    kernel
        ``"quartic"`` (default, as ArcGIS and CrimeStat) or ``"epanechnikov"``.
    crs
        The working CRS (anything pyproj accepts), passed through to the result; it must be
        projected in metres. Defaults to the study area's ``crs`` (a GeoSeries or
        GeoDataFrame), which must agree with it when both are given.
    binning
        ``"linear"`` (default: each point shared between the four nearest cell centres,
        second-order error) or ``"simple"`` (each point moved to its cell's centre, at most half a
        cell along each axis; first-order error).

    Returns
    -------
    Surface
        The density and its metadata (see :class:`Surface`). With no points (or zero total
        weight) the surface is zero inside the study area and ``status == "no_points"``.

    Raises
    ------
    InputError
        Bad coordinates, weights, study area, CRS, cell size, bandwidth or kernel, or a grid of
        more than ``MAX_CELLS`` cells.

    Notes
    -----
    Points are binned to cell centres (linearly by default) and the binned weights convolved
    with the sampled kernel by FFT; the module notes state the binning error.

    """
    xa, ya, wa = _points(x, y, weights)
    if kernel not in _KERNELS:
        msg = f"unknown kernel {kernel!r}; choose one of {', '.join(_KERNELS)}"
        raise InputError(msg)
    if binning not in _BINNINGS:
        msg = f"unknown binning {binning!r}; choose one of {', '.join(_BINNINGS)}"
        raise InputError(msg)
    out_crs = None
    area_crs = getattr(study_area, "crs", None)
    if area_crs is not None:
        if crs is not None and CRS.from_user_input(crs) != CRS.from_user_input(area_crs):
            msg = f"the study area's CRS {CRS.from_user_input(area_crs).name!r} is not {crs!r}"
            raise InputError(msg, hint="reproject the study area to the working CRS")
        crs = area_crs
    if crs is not None:
        out_crs = CRS.from_user_input(crs)
        problem = metric_problem(out_crs)
        if problem:
            msg = f"the working CRS {out_crs.name!r} {problem}"
            raise InputError(msg, hint="reproject the points and study area to a metric CRS")
    geoms = _study_geoms(study_area)
    minx, miny, maxx, maxy = shapely.total_bounds(np.asarray(geoms, dtype=object)).tolist()
    bounds = (minx, miny, maxx, maxy)
    cell = default_cell_size(bounds) if cell_size is None else float(cell_size)
    if not (math.isfinite(cell) and cell > 0):
        msg = f"cell size must be a positive number of metres, got {cell_size!r}"
        raise InputError(msg)
    west, north, rows, cols = _grid(bounds, cell)
    _check_size(rows, cols, cell)
    transform = Affine(cell, 0.0, west, 0.0, -cell, north)
    inside = geometry_mask(geoms, out_shape=(rows, cols), transform=transform, invert=True)

    total = float(wa.sum())
    status, reason = "ok", None
    if bandwidth is not None:
        h, rule = _bandwidth_override(bandwidth)
        if h < cell:
            msg = f"bandwidth {h:g} m is less than one cell ({cell:g} m)"
            raise InputError(msg, hint="use a larger bandwidth or a smaller cell size")
    if total <= 0:
        if bandwidth is None:
            h, rule = float("nan"), "none: no points"
        array = np.where(inside, np.float32(0.0), np.float32(NODATA)).astype(np.float32)
        reason = "no crime points: the density is zero everywhere inside the study area"
        return Surface(
            array=array, transform=transform, crs=out_crs, cell_size=cell, bandwidth=h,
            bandwidth_rule=rule, kernel=kernel, binning=binning, n_points=int(xa.size),
            total_weight=total, integral=0.0, integral_share=float("nan"), status="no_points",
            reason=reason,
        )  # fmt: skip
    if bandwidth is None:
        h = _rule_bandwidth(xa, ya, wa)
        rule = f"{RULE_NAME}: {RULE_DESCRIPTION}"
        floor = MIN_BANDWIDTH_CELLS * cell
        if not h >= floor:
            status = "bandwidth_floor"
            reason = (
                f"the bandwidth rule gave {h:.3g} m, below the floor of {MIN_BANDWIDTH_CELLS:g} "
                f"cells; {floor:g} m used"
            )
            rule += f"; floored at {MIN_BANDWIDTH_CELLS:g} cells"
            h = floor

    kern = _kernel(kernel, h, cell) * _M2_PER_KM2
    r = (kern.shape[0] - 1) // 2
    prows, pcols = rows + 2 * r, cols + 2 * r
    _check_size(prows, pcols, cell)
    counts = _bin(xa, ya, wa, west - r * cell, north + r * cell, (prows, pcols), cell, binning)
    if counts.any():
        density = fftconvolve(counts, kern, mode="valid")
        # Round-off grows with the total (about 1e-18 x total x peak, measured).
        density[density < ROUNDOFF * kern.max() * max(1.0, total / 1e6)] = 0.0
    else:
        density = np.zeros((rows, cols))
    integral = float(density[inside].sum() * (cell * cell / _M2_PER_KM2))
    array = np.where(inside, density, NODATA).astype(np.float32)
    return Surface(
        array=array, transform=transform, crs=out_crs, cell_size=cell, bandwidth=h,
        bandwidth_rule=rule, kernel=kernel, binning=binning, n_points=int(xa.size),
        total_weight=total, integral=integral, integral_share=integral / total, status=status,
        reason=reason,
    )  # fmt: skip


def _check_size(rows: int, cols: int, cell: float) -> None:
    """Refuse grids (padding included) of more than ``MAX_CELLS`` cells."""
    if rows * cols > MAX_CELLS:
        msg = (
            f"the density grid would have {rows} x {cols} cells (more than {MAX_CELLS:,}) "
            f"at a cell size of {cell:g} m"
        )
        raise InputError(msg, hint="use a larger cell size (or a smaller bandwidth)")


def _bin(
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    west: float,
    north: float,
    shape: tuple[int, int],
    cell: float,
    binning: str,
) -> np.ndarray:
    """Return the weights binned to the cell centres of a grid (row 0 at the top).

    ``"simple"`` gives each point to the cell holding it; ``"linear"`` shares it between the
    four nearest cell centres with bilinear weights. Points off the grid (or, for linear
    binning, next to its edge) are dropped: the callers pad the grid by the kernel radius so
    that they reach no cell of interest.
    """
    rows, cols = shape
    fx = (x - west) / cell
    fy = (north - y) / cell
    if binning == "simple":
        ok = (fx >= 0) & (fx < cols) & (fy >= 0) & (fy < rows)
        flat = fy[ok].astype(np.int64) * cols + fx[ok].astype(np.int64)
        weight = w[ok]
    else:
        # Keep the points whose four neighbouring centres are all on the grid: the others only
        # reach its outermost ring, which lies at least a kernel radius from every cell of
        # interest (the callers' padding), so dropping them changes nothing there.
        fx -= 0.5
        fy -= 0.5
        ok = (fx >= 0) & (fx < cols - 1) & (fy >= 0) & (fy < rows - 1)
        fx, fy, wk = fx[ok], fy[ok], w[ok]
        c0 = fx.astype(np.int64)
        r0 = fy.astype(np.int64)
        tx = fx - c0
        ty = fy - r0
        base = r0 * cols + c0
        flat = np.concatenate([base, base + 1, base + cols, base + cols + 1])
        wy0 = wk * (1 - ty)
        wy1 = wk * ty
        weight = np.concatenate([wy0 * (1 - tx), wy0 * tx, wy1 * (1 - tx), wy1 * tx])
    counts = np.bincount(flat, weight, minlength=rows * cols)
    return np.asarray(counts.reshape(rows, cols))


def _bandwidth_override(value: float) -> tuple[float, str]:
    """Validate a caller's bandwidth (the rule's override branch)."""
    return bandwidth(np.empty(0), np.empty(0), override=value)


def kde_groups(
    x: np.ndarray | Sequence[float],
    y: np.ndarray | Sequence[float],
    groups: np.ndarray | Sequence[Any] | None = None,
    *,
    study_area: Any,
    cell_size: float | None = None,
    bandwidth: float | None = None,
    weights: np.ndarray | Sequence[float] | None = None,
    kernel: str = "quartic",
    crs: Any = None,
    binning: str = "linear",
    all_name: str = "all crimes",
) -> list[tuple[Surface, str]]:
    """Return the surface of all points, then one per group, on one grid and one bandwidth.

    The bandwidth (and its floor) and the cell size are those of all points, so the group
    surfaces add up to the first one and can be compared cell by cell.

    Parameters
    ----------
    x, y, study_area, cell_size, bandwidth, weights, kernel, crs, binning
        As :func:`kde_surface`.
    groups
        One label per point (category group, period...); ``None`` gives the first band only.
        Groups come in sorted order of their labels.
    all_name
        Description of the first band.

    Returns
    -------
    list[tuple[Surface, str]]
        ``(surface, description)`` pairs ready for :func:`write_surfaces`.

    """
    xa, ya, wa = _points(x, y, weights)
    first = kde_surface(
        xa, ya, study_area=study_area, cell_size=cell_size, bandwidth=bandwidth, weights=wa,
        kernel=kernel, crs=crs, binning=binning,
    )  # fmt: skip
    out = [(first, all_name)]
    if groups is None:
        return out
    labels = np.asarray(groups)
    if labels.shape != xa.shape:
        msg = f"groups have {labels.size} labels for {xa.size} points"
        raise InputError(msg)
    h = None if math.isnan(first.bandwidth) else first.bandwidth
    codes, uniques = _factorize(labels)
    for i, label in enumerate(uniques):
        sel = codes == i
        surf = kde_surface(
            xa[sel], ya[sel], study_area=study_area, cell_size=first.cell_size, bandwidth=h,
            weights=wa[sel], kernel=kernel, crs=crs, binning=binning,
        )  # fmt: skip
        if h is not None:
            surf = _with_rule(surf, first.bandwidth_rule)
        out.append((surf, str(label)))
    return out


def _factorize(labels: np.ndarray) -> tuple[np.ndarray, list[Any]]:
    """Return integer codes and the sorted unique labels."""
    uniques, codes = np.unique(labels.astype(str), return_inverse=True)
    return codes.ravel(), uniques.tolist()


def _with_rule(surface: Surface, rule: str) -> Surface:
    """Return the surface with the bandwidth rule of the all-crimes band recorded."""
    return replace(surface, bandwidth_rule=f"{rule} (of all crimes)")


def _overview_count(rows: int, cols: int, block: int) -> int:
    """Return how many overview levels to build: down to one block, at least one if possible."""
    wanted = max(1, math.ceil(math.log2(max(rows, cols) / block))) if max(rows, cols) > 1 else 0
    possible = math.floor(math.log2(min(rows, cols))) if min(rows, cols) > 1 else 0
    return min(wanted, possible)


def write_cog(
    path: str | Path,
    bands: Sequence[tuple[np.ndarray, str]],
    transform: Affine,
    crs: Any,
    *,
    nodata: float,
    tags: Mapping[str, Any] | None = None,
    band_tags: Sequence[Mapping[str, Any]] | None = None,
    units: str = UNITS,
    blocksize: int = 256,
) -> None:
    """Write 2-D arrays as the bands of one Cloud-Optimised GeoTIFF, atomically.

    Parameters
    ----------
    path
        Output file (``risk_surface.tif``); written to a temporary file in the same directory
        and renamed over it, so readers never see a partial file.
    bands
        ``(array, description)`` pairs of equal shape; band 1 is all crimes by convention,
        further bands (category groups, periods) follow. Written as float32.
    transform, crs
        Grid transform and CRS (anything rasterio or pyproj accepts).
    nodata
        Nodata value (NaN for :class:`Surface` arrays).
    tags
        Dataset metadata (values are written as strings).
    band_tags
        Optional metadata per band, in band order.
    units
        Unit type of every band (also written as a ``units`` band tag).
    blocksize
        Tile size in pixels.

    Notes
    -----
    GDAL's COG driver (deflate, floating-point predictor, ``blocksize`` tiles) with internal
    overviews averaged (nodata-aware) down to about one tile, at least one level whenever the
    grid is at least 2 x 2 cells.

    """
    if not bands:
        msg = "write_cog needs at least one band"
        raise ValueError(msg)
    arrays = [np.asarray(a, dtype=np.float32) for a, _ in bands]
    shape = arrays[0].shape
    if len(shape) != 2 or any(a.shape != shape for a in arrays):
        msg = f"bands must be 2-D arrays of one shape, got {[a.shape for a in arrays]}"
        raise ValueError(msg)
    if band_tags is not None and len(band_tags) != len(arrays):
        msg = f"{len(band_tags)} band tag sets for {len(arrays)} bands"
        raise ValueError(msg)
    rows, cols = shape
    crs_in = CRS.from_user_input(crs).to_wkt() if crs is not None else None
    count = _overview_count(rows, cols, blocksize)
    options: dict[str, Any] = {
        "compress": "deflate",
        "predictor": "YES",
        "blocksize": blocksize,
        "overview_resampling": "average",
    }
    options.update({"overview_count": count} if count else {"overviews": "NONE"})
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        with rasterio.open(
            tmp, "w", driver="COG", width=cols, height=rows, count=len(arrays),
            dtype="float32", crs=crs_in, transform=transform, nodata=nodata, **options,
        ) as dst:  # fmt: skip
            dst.write(np.stack(arrays))
            dst.descriptions = tuple(name for _, name in bands)
            dst.units = tuple(units for _ in arrays)
            if tags:
                dst.update_tags(**{k: str(v) for k, v in tags.items()})
            for i in range(len(arrays)):
                extra = band_tags[i] if band_tags is not None else {}
                dst.update_tags(i + 1, units=units, **{k: str(v) for k, v in extra.items()})
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_surfaces(path: str | Path, surfaces: Sequence[tuple[Surface, str]]) -> None:
    """Write surfaces of one grid (band 1 all crimes) as one COG with their metadata.

    Dataset tags are those of the first surface (:meth:`Surface.tags`); each band carries its
    own ``n_points``, ``integral``, ``integral_share`` and ``status``.
    """
    if not surfaces:
        msg = "write_surfaces needs at least one surface"
        raise ValueError(msg)
    first = surfaces[0][0]
    for s, name in surfaces[1:]:
        if s.array.shape != first.array.shape or s.transform != first.transform:
            msg = f"surface {name!r} is not on the grid of {surfaces[0][1]!r}"
            raise ValueError(msg)
    band_keys = ("n_points", "total_weight", "integral", "integral_share", "status", "reason")
    band_tags = [{k: v for k, v in s.tags().items() if k in band_keys} for s, _ in surfaces]
    write_cog(
        path, [(s.array, name) for s, name in surfaces], first.transform, first.crs,
        nodata=NODATA, tags=first.tags(), band_tags=band_tags,
    )  # fmt: skip


def read_surface(path: str | Path) -> tuple[np.ndarray, dict[str, Any], dict[str, str]]:
    """Read a surface COG.

    Returns
    -------
    tuple[numpy.ndarray, dict, dict]
        The bands as float32 of shape (bands, rows, cols) with nodata as NaN, the rasterio
        profile (plus ``descriptions`` and ``units``), and the dataset tags.

    """
    with rasterio.open(path) as src:
        array = src.read().astype(np.float32)
        if src.nodata is not None and not math.isnan(src.nodata):
            array[array == src.nodata] = np.nan
        profile = dict(src.profile)
        profile["descriptions"] = src.descriptions
        profile["units"] = src.units
        tags = src.tags()
    return array, profile, tags
