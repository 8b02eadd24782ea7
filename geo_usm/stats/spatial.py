"""Spatial statistics for hotspots: weights, Getis-Ord Gi*, Moran's I, FDR, Empirical Bayes rates.

Pure functions of arrays and ``scipy.sparse`` weights; no I/O. The results are those of PySAL
(``esda`` / ``libpysal``), which crime analysts compare with ArcGIS and GeoDa, computed in a
vectorised way (the tests pin the equality with esda).

Conventions
-----------
- Weights are binary ``scipy.sparse.csr_matrix`` (0/1, float64), symmetric, with a zero
  diagonal, ``n x n`` in input order (:func:`hex_weights`, :func:`queen_weights`). The statistics
  accept any sparse matrix of that shape and use only its pattern (non-zero off-diagonal
  entries): Gi* uses it binary with the focal unit added (star), Moran's I row-standardises it.
- Missing values are the caller's business: pass only the features that have a value, with the
  matching sub-matrix of the weights (:func:`subset`). ``y`` must be finite.
- A constant ``y`` (variance 0) gives NaN statistics and p-values, silently.
- Permutation inference takes an explicit ``seed`` (``numpy.random.default_rng(seed)``); the same
  seed gives the same output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import shapely
from h3ronpy import grid_disk
from scipy import sparse
from scipy.special import ndtr

__all__ = [
    "GiResult",
    "LisaResult",
    "eb_global",
    "eb_spatial",
    "enough_data",
    "fdr_bh",
    "gi_class",
    "gi_star",
    "global_moran",
    "hex_weights",
    "lisa_class",
    "local_moran",
    "queen_weights",
    "subset",
]

#: Default number of permutations (PySAL's and GeoDa's default).
PERMUTATIONS = 999
#: Default significance levels of the Gi* confidence bins (99, 95 and 90 %).
GI_LEVELS = (0.01, 0.05, 0.10)
#: Labels of the local Moran quadrants, as esda numbers them.
QUADRANTS = {1: "HH", 2: "LH", 3: "LL", 4: "HL"}
#: Cells of permuted values held at once by the global Moran permutations (memory bound).
_BLOCK_CELLS = 4_000_000

Seed = int | np.random.Generator | None


@dataclass(frozen=True)
class GiResult:
    """Getis-Ord Gi* per feature.

    Attributes
    ----------
    z : numpy.ndarray
        Analytic z-scores (esda ``G_Local(..., transform="B", star=True).Zs``).
    p : numpy.ndarray
        Two-sided normal p-values of ``z``, ``2 * (1 - Phi(|z|))``.
    p_sim : numpy.ndarray or None
        Folded pseudo p-values of conditional randomisation (None without permutations).
    g : numpy.ndarray
        The statistic: the sum of ``y`` over the feature and its neighbours over the sum of ``y``.

    """

    z: np.ndarray
    p: np.ndarray
    p_sim: np.ndarray | None
    g: np.ndarray


@dataclass(frozen=True)
class LisaResult:
    """Local Moran's I per feature.

    Attributes
    ----------
    i : numpy.ndarray
        Local Moran's I with row-standardised weights (esda ``Moran_Local(...).Is``).
    p_sim : numpy.ndarray
        Folded pseudo p-values of conditional randomisation (NaN for islands and constant ``y``).
    q : numpy.ndarray
        Quadrant as esda numbers it: 1 HH, 2 LH, 3 LL, 4 HL; 0 where undefined (constant ``y``).
    z : numpy.ndarray
        Standardised ``y`` (population standard deviation, as esda).

    """

    i: np.ndarray
    p_sim: np.ndarray
    q: np.ndarray
    z: np.ndarray


# --------------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------------


def _binary(rows: np.ndarray, cols: np.ndarray, n: int) -> sparse.csr_matrix:
    """Binary symmetric csr matrix of the pairs ``(rows, cols)`` (both directions, no diagonal)."""
    keep = rows != cols
    r = np.concatenate([rows[keep], cols[keep]])
    c = np.concatenate([cols[keep], rows[keep]])
    w = sparse.csr_matrix((np.ones(len(r)), (r, c)), shape=(n, n))
    w.sum_duplicates()
    w.data[:] = 1.0
    w.sort_indices()
    return w


def hex_weights(cells: np.ndarray, k: int = 1) -> sparse.csr_matrix:
    """Contiguity weights of H3 cells: the cells of each cell's k-ring that are in ``cells``.

    Parameters
    ----------
    cells : numpy.ndarray
        Distinct H3 cell indices (uint64) of one resolution, typically the cover of a city.
    k : int, default 1
        Grid distance: neighbours are the cells at distance 1 to ``k``.

    Returns
    -------
    scipy.sparse.csr_matrix
        Binary (0/1, float64), symmetric, zero diagonal, ``n x n`` in the order of ``cells``.
        A cell none of whose k-ring cells is in ``cells`` is an island (an empty row).

    """
    cells = np.ascontiguousarray(cells, dtype=np.uint64)
    n = len(cells)
    if k < 1:
        msg = f"k must be at least 1, got {k}"
        raise ValueError(msg)
    if n == 0:
        return sparse.csr_matrix((0, 0))
    order = np.argsort(cells, kind="stable")
    ranked = cells[order]
    if (ranked[1:] == ranked[:-1]).any():
        msg = "cells must be distinct H3 indices"
        raise ValueError(msg)
    disks = pa.array(grid_disk(cells, k))
    if disks.null_count or disks.values.null_count:
        msg = "cells must be valid H3 cell indices"
        raise ValueError(msg)
    # the Arrow buffers read directly (Array.offsets.to_numpy pays a slow first call)
    buffers = disks.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int64)[disks.offset : disks.offset + n + 1]
    found = np.frombuffer(buffers[3], dtype=np.uint64)[offsets[0] : offsets[-1]]
    offsets = offsets - offsets[0]
    rows = np.repeat(np.arange(n), np.diff(offsets))
    pos = np.minimum(np.searchsorted(ranked, found), n - 1)
    cols = order[pos]
    keep = (ranked[pos] == found) & (cols != rows)
    # grid distance is symmetric: the rows, already in order, make the csr matrix directly
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows[keep], minlength=n), out=indptr[1:])
    indices = cols[keep]
    w = sparse.csr_matrix((np.ones(len(indices)), indices, indptr), shape=(n, n))
    w.sort_indices()
    return w


def queen_weights(
    geoms: np.ndarray, *, tolerance: float = 0.0
) -> tuple[sparse.csr_matrix, np.ndarray]:
    """Queen contiguity of polygons (libpysal's semantics), islands joined to their nearest polygon.

    Two polygons are neighbours when they share at least one vertex coordinate (exact equality,
    exterior and interior rings of every part), as ``libpysal.weights.Queen.from_dataframe``.
    A polygon with no such neighbour (an island) gets its single nearest polygon (shapely
    distance) as neighbour, and the pair is made symmetric.

    Parameters
    ----------
    geoms : numpy.ndarray
        Polygons and multipolygons (shapely), in feature order.
    tolerance : float
        Polygons whose boundaries come within this distance (CRS units) are neighbours too:
        boundaries digitised or generalised separately touch without sharing vertices. With
        0, exactly libpysal's vertex rule; the build uses 1 m.

    Returns
    -------
    w : scipy.sparse.csr_matrix
        Binary (0/1, float64), symmetric, zero diagonal, ``n x n`` in input order.
    islands : numpy.ndarray
        Positions (int64) of the polygons that had no contiguous neighbour and were joined to
        their nearest polygon (the build reports them).

    Notes
    -----
    Vertices are grouped by sorting their coordinates; the polygon-vertex incidence matrix ``A``
    gives the neighbours as the non-zero pattern of ``A @ A.T``.

    """
    geoms = np.asarray(geoms, dtype=object)
    n = len(geoms)
    types = shapely.get_type_id(geoms)
    bad = ~np.isin(types, (3, 6)) | shapely.is_empty(geoms)
    if bad.any():
        msg = (
            f"queen weights need non-empty polygons; {int(bad.sum())} feature(s) are not, "
            f"the first at position {int(np.flatnonzero(bad)[0])}"
        )
        raise ValueError(msg)
    xy, owner = shapely.get_coordinates(geoms, return_index=True)
    order = np.lexsort((xy[:, 1], xy[:, 0]))
    xs, ys, owner = xy[order, 0], xy[order, 1], owner[order]
    new = np.ones(len(xs), dtype=bool)
    new[1:] = (xs[1:] != xs[:-1]) | (ys[1:] != ys[:-1])
    vertex = np.cumsum(new) - 1
    # distinct (vertex, polygon) pairs; only vertices of at least two polygons matter
    pair = np.unique(vertex.astype(np.int64) * n + owner)
    v, p = pair // n, pair % n
    shared = np.bincount(v)[v] > 1
    v, p = v[shared], p[shared]
    if len(v):
        _, v = np.unique(v, return_inverse=True)
        a = sparse.csr_matrix((np.ones(len(v)), (p, v)), shape=(n, int(v.max()) + 1))
        adj = (a @ a.T).tocoo()
        rows, cols = adj.row, adj.col
    else:
        rows = cols = np.zeros(0, dtype=np.int64)
    tree = shapely.STRtree(geoms)
    if tolerance > 0:
        near_src, near_dst = tree.query(geoms, predicate="dwithin", distance=tolerance)
        rows = np.concatenate([rows, near_src])
        cols = np.concatenate([cols, near_dst])
    degree = np.bincount(rows[rows != cols], minlength=n)
    islands = np.flatnonzero(degree == 0).astype(np.int64)
    if len(islands) and n > 1:
        src, dst = tree.query_nearest(geoms[islands], exclusive=True, all_matches=False)
        rows = np.concatenate([rows, islands[src]])
        cols = np.concatenate([cols, dst])
    return _binary(np.asarray(rows, np.int64), np.asarray(cols, np.int64), n), islands


def subset(w: sparse.spmatrix | sparse.sparray, mask: np.ndarray) -> sparse.csr_matrix:
    """Sub-matrix of weights for the features kept by ``mask`` (those with a value).

    Parameters
    ----------
    w : scipy sparse matrix
        ``n x n`` weights.
    mask : numpy.ndarray
        Boolean mask of length ``n`` (or integer positions) of the features to keep.

    Returns
    -------
    scipy.sparse.csr_matrix
        Rows and columns of the kept features, in their order. Features whose only neighbours
        were dropped become islands.

    """
    w = sparse.csr_matrix(w)
    idx = np.asarray(mask)
    if idx.dtype == bool:
        if idx.shape != (w.shape[0],):
            msg = f"mask has shape {idx.shape}, the weights {w.shape}"
            raise ValueError(msg)
        idx = np.flatnonzero(idx)
    out: sparse.csr_matrix = w[idx][:, idx].tocsr()
    return out


def _pattern(w: sparse.spmatrix | sparse.sparray, n: int) -> sparse.csr_matrix:
    """Return the binary off-diagonal pattern of ``w`` (float64 csr) for ``n`` features."""
    if w.shape != (n, n):
        msg = f"weights of shape {w.shape} for {n} values"
        raise ValueError(msg)
    w = sparse.csr_matrix(w, dtype=np.float64, copy=True)
    w.setdiag(0.0)
    w.eliminate_zeros()
    w.data[:] = 1.0
    w.sort_indices()
    return w


def _values(y: np.ndarray | Sequence[float]) -> np.ndarray:
    """``y`` as a finite float64 vector."""
    out = np.asarray(y, dtype=np.float64).ravel()
    if not np.isfinite(out).all():
        msg = (
            "y must be finite: pass only the features with a value and the sub-matrix of the "
            "weights (geo_usm.stats.spatial.subset)"
        )
        raise ValueError(msg)
    return out


def _two_sided(z: np.ndarray) -> np.ndarray:
    """Two-sided normal p-value ``2 * (1 - Phi(|z|))``, NaN kept."""
    with np.errstate(invalid="ignore"):
        out: np.ndarray = 2.0 * ndtr(-np.abs(z))
    return out


# --------------------------------------------------------------------------------------------
# Conditional randomisation
# --------------------------------------------------------------------------------------------


def _draw_ids(n: int, m: int, permutations: int, rng: np.random.Generator) -> np.ndarray:
    """``(permutations, m)`` ids: each row an ordered sample of ``m`` distinct ids of ``range(n)``.

    Robert Floyd's algorithm draws each row's set (a loop over the ``m`` columns, vectorised over
    the rows), then the row is shuffled, so every prefix of a row is a uniform sample too. When
    ``m`` is large against ``n``, whole permutations of ``range(n)`` are cheaper.
    """
    if m * m > 4 * n:
        full = np.broadcast_to(np.arange(n, dtype=np.int64), (permutations, n))
        return rng.permuted(full, axis=1)[:, :m]
    out = np.empty((permutations, m), dtype=np.int64)
    for c, j in enumerate(range(n - m, n)):
        t = rng.integers(0, j + 1, size=permutations)
        seen = (out[:, :c] == t[:, None]).any(axis=1)
        out[:, c] = np.where(seen, j, t)
    return rng.permuted(out, axis=1)


def _count_larger(
    y: np.ndarray,
    k: np.ndarray,
    observed: np.ndarray,
    up: np.ndarray,
    permutations: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Per feature, the permutations whose statistic is at least the observed one.

    The statistics (Gi*, local Moran with row-standardised weights) are monotone in the sum of
    the ``k_i`` neighbour values, so this counts sums instead of statistics: where ``up`` the
    statistic increases with the sum (count ``sum >= observed``), elsewhere it decreases (count
    ``sum <= observed``). Ties count as "at least", as in esda.

    One matrix of random ids ``rids`` (``permutations x (max k + 1)``, rows of distinct ids of
    ``range(n)``) is shared by all features, as esda does. Feature ``i`` takes the first ``k_i``
    ids of each row; where ``i`` itself is among them, it is replaced by the id at position
    ``k_i``, which makes an exact uniform draw of ``k_i`` of the other ``n - 1`` features. The
    prefix sums ``T[p, k]`` are sorted once per column, counts come from ``searchsorted``, and
    the few (feature, permutation) pairs needing the replacement are corrected afterwards:
    ``O(n log permutations)`` instead of ``O(n permutations k)``.
    """
    n = len(y)
    kmax = int(k.max())
    m = min(kmax + 1, n)
    ids = _draw_ids(n, m, permutations, rng)
    prefix = np.zeros((permutations, m + 1))
    np.cumsum(y[ids], axis=1, out=prefix[:, 1:])
    ranked = np.sort(prefix, axis=0)
    larger = np.zeros(n, dtype=np.int64)
    for kv in np.unique(k[k > 0]):  # one pass per distinct neighbour count
        column = ranked[:, kv]
        sel_up = (k == kv) & up
        sel_down = (k == kv) & ~up
        larger[sel_up] = permutations - np.searchsorted(column, observed[sel_up], side="left")
        larger[sel_down] = np.searchsorted(column, observed[sel_down], side="right")
    # (permutation, position) where the id drawn is the feature itself, within its own prefix
    perm, pos = np.nonzero(k[ids] > np.arange(m))
    if len(perm):
        i = ids[perm, pos]
        ki = k[i]
        before = prefix[perm, ki]
        after = before - y[i] + y[ids[perm, ki]]
        obs, direction = observed[i], up[i]
        was = np.where(direction, before >= obs, before <= obs)
        now = np.where(direction, after >= obs, after <= obs)
        larger += np.bincount(i, weights=now.astype(np.int64) - was, minlength=n).astype(np.int64)
    return larger


def _folded(larger: np.ndarray, permutations: int) -> np.ndarray:
    """Fold counts into esda's pseudo p-value ``(min(larger, P - larger) + 1) / (P + 1)``."""
    low = np.minimum(larger, permutations - larger)
    out: np.ndarray = (low + 1.0) / (permutations + 1.0)
    return out


def _rng(seed: Seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


# --------------------------------------------------------------------------------------------
# Getis-Ord Gi*
# --------------------------------------------------------------------------------------------


def gi_star(
    y: np.ndarray | Sequence[float],
    w: sparse.spmatrix | sparse.sparray,
    *,
    permutations: int = 0,
    seed: Seed = None,
) -> GiResult:
    """Getis-Ord Gi* hot and cold spots, binary weights with the focal feature included.

    Parameters
    ----------
    y : array_like
        Finite values (counts, rates) of the features with a value.
    w : scipy sparse matrix
        ``n x n`` weights; only the off-diagonal pattern is used (binary), the focal feature is
        added (star).
    permutations : int, default 0
        Conditional randomisations for ``p_sim``; 0 computes the analytic z and p only.
    seed : int, numpy.random.Generator or None
        Seed of the randomisation (``numpy.random.default_rng(seed)``).

    Returns
    -------
    GiResult
        ``z``, two-sided ``p``, ``p_sim`` (or None) and the statistic ``g``. NaN everywhere for
        a constant ``y`` or a zero sum; NaN z and p for a feature neighbouring all others.

    Notes
    -----
    ``z`` equals ``esda.G_Local(y, w, transform="B", star=True).Zs``: with ``S`` the sum of
    ``y``, ``c_i`` the feature's neighbours plus one, ``ybar`` and ``s2`` the mean and the
    population variance of ``y``, ``G_i = sum_{j in N_i or i} y_j / S``,
    ``E[G_i] = c_i / n`` and ``V[G_i] = c_i (n - c_i) / ((n - 1) n^2) * s2 / ybar^2`` (Ord and
    Getis 1995).

    ``p`` is two-sided, ``2 * (1 - Phi(|z|))``, as ArcGIS's 90/95/99 % confidence bins use;
    esda's ``p_norm`` is the one-sided ``1 - Phi(|z|)``, half of it.

    With ``permutations``: conditional randomisation, the focal value fixed and the neighbour
    values drawn without replacement from the other ``n - 1`` features; ``larger`` is the number
    of simulated statistics at least the observed one and ``p_sim = (min(larger, P - larger) +
    1) / (P + 1)`` (esda, GeoDa). It is NaN for islands (nothing to permute; esda reports
    ``1 / (P + 1)`` there).

    References
    ----------
    Getis, A. and Ord, J. K. (1992). The analysis of spatial association by use of distance
    statistics. Geographical Analysis 24(3). Ord, J. K. and Getis, A. (1995). Local spatial
    autocorrelation statistics: distributional issues and an application. Geographical
    Analysis 27(4).

    """
    yv = _values(y)
    n = len(yv)
    wb = _pattern(w, n)
    k = np.diff(wb.indptr)
    lag = wb @ yv
    total = yv.sum()
    nan = np.full(n, np.nan)
    if n < 2 or np.ptp(yv) == 0 or total == 0:
        return GiResult(
            z=nan, p=nan.copy(), p_sim=nan.copy() if permutations else None, g=nan.copy()
        )
    g = (lag + yv) / total
    z = _gi_z(yv[:, None], wb, lag[:, None])[:, 0]
    p_sim = None
    if permutations:
        up = np.full(n, total > 0)
        larger = _count_larger(yv, k, lag, up, permutations, _rng(seed))
        p_sim = np.where(k > 0, _folded(larger, permutations), np.nan)
    return GiResult(z=z, p=_two_sided(z), p_sim=p_sim, g=g)


def _gi_z(y: np.ndarray, wb: sparse.csr_matrix, lag: np.ndarray) -> np.ndarray:
    """Return the analytic Gi* z-scores of every column of ``y`` (features x columns).

    ``wb`` is the binary pattern without the diagonal and ``lag = wb @ y``; columns whose values
    are all equal (or sum to 0) are NaN.
    """
    n = y.shape[0]
    card = np.diff(wb.indptr)[:, None] + 1.0
    total = y.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / n
        var = y.var(axis=0)
        g = (lag + y) / total
        variance = card * (n - card) / (n - 1) / n**2 * var / mean**2
        z = np.where(variance > 0, (g - card / n) / np.sqrt(variance), np.nan)
    z[:, (np.ptp(y, axis=0) == 0) | (total == 0)] = np.nan
    return z


def gi_star_columns(
    y: np.ndarray, w: sparse.spmatrix | sparse.sparray
) -> tuple[np.ndarray, np.ndarray]:
    """Return analytic Gi* z-scores and two-sided p-values of each column of ``y``.

    The same statistic as :func:`gi_star` (binary weights, the feature itself included) for a
    features x columns matrix at once, e.g. every month of a space-time cube. Columns whose
    values are all equal are NaN.
    """
    yv = np.asarray(y, dtype=float)
    if yv.ndim != 2 or not np.isfinite(yv).all():
        msg = "y must be a finite 2-D array (features x columns)"
        raise ValueError(msg)
    wb = _pattern(w, yv.shape[0])
    z = _gi_z(yv, wb, wb @ yv)
    return z, _two_sided(z)


# --------------------------------------------------------------------------------------------
# Moran's I
# --------------------------------------------------------------------------------------------


def _standardise(yv: np.ndarray) -> np.ndarray | None:
    """``(y - mean) / std`` (population), None for a constant ``y``."""
    if len(yv) < 2 or np.ptp(yv) == 0:
        return None
    d = yv - yv.mean()
    out: np.ndarray = d / np.sqrt(np.mean(d * d))
    return out


def local_moran(
    y: np.ndarray | Sequence[float],
    w: sparse.spmatrix | sparse.sparray,
    *,
    permutations: int = PERMUTATIONS,
    seed: Seed,
) -> LisaResult:
    """Local Moran's I (LISA) with row-standardised weights and conditional randomisation.

    Parameters
    ----------
    y : array_like
        Finite values of the features with a value.
    w : scipy sparse matrix
        ``n x n`` weights; the off-diagonal pattern is row-standardised here.
    permutations : int, default 999
        Conditional randomisations for ``p_sim`` (0: NaN ``p_sim``).
    seed : int, numpy.random.Generator or None
        Seed of the randomisation (explicit, as PySAL's and GeoDa's ``seed``).

    Returns
    -------
    LisaResult
        ``i``, ``p_sim``, quadrant ``q`` and standardised ``z``.

    Notes
    -----
    ``I_i = (n - 1) z_i lag_i / sum(z^2)`` with ``lag_i`` the mean of ``z`` over the
    neighbours, equal to ``esda.Moran_Local(y, w, transformation="r").Is``; quadrants as esda:
    1 HH (``z > 0``, ``lag > 0``), 2 LH, 3 LL, 4 HL (a zero counts as low).

    Conditional randomisation as esda's (the focal value fixed, ``k_i`` neighbour values drawn
    without replacement from the other ``n - 1``), folded pseudo p-value
    ``(min(larger, P - larger) + 1) / (P + 1)``. The simulated ``I_i`` is
    ``z_i (sum / k_i) (n - 1) / sum(z^2)``: it increases with the sum of the drawn values when
    ``z_i > 0`` and decreases when ``z_i < 0``. Where it cannot vary, the distribution is
    degenerate and esda's fold gives ``1 / (P + 1)``; here ``p_sim`` is 1 where ``z_i = 0``
    and NaN for islands.

    References
    ----------
    Anselin, L. (1995). Local indicators of spatial association - LISA. Geographical
    Analysis 27(2).

    """
    yv = _values(y)
    n = len(yv)
    wb = _pattern(w, n)
    k = np.diff(wb.indptr)
    z = _standardise(yv)
    nan = np.full(n, np.nan)
    if z is None:
        return LisaResult(i=nan, p_sim=nan.copy(), q=np.zeros(n, dtype=np.int64), z=nan.copy())
    with np.errstate(invalid="ignore", divide="ignore"):
        lag = np.where(k > 0, (wb @ z) / k, 0.0)
    i = (n - 1) * z * lag / (z @ z)
    high, high_lag = z > 0, lag > 0
    q = np.select(
        [high & high_lag, ~high & high_lag, ~high & ~high_lag], [1, 2, 3], default=4
    ).astype(np.int64)
    p_sim = nan.copy()
    if permutations:
        larger = _count_larger(yv, k, wb @ yv, z > 0, permutations, _rng(seed))
        p_sim = np.where(z == 0, 1.0, _folded(larger, permutations))
        p_sim[k == 0] = np.nan
    return LisaResult(i=i, p_sim=p_sim, q=q, z=z)


def _row_standardised(wb: sparse.csr_matrix) -> sparse.csr_matrix:
    k = np.diff(wb.indptr)
    out = wb.copy()
    out.data = np.repeat(1.0 / np.maximum(k, 1), k)
    return out


def global_moran(
    y: np.ndarray | Sequence[float],
    w: sparse.spmatrix | sparse.sparray,
    *,
    permutations: int = PERMUTATIONS,
    seed: Seed,
) -> dict[str, float]:
    """Global Moran's I with row-standardised weights, normal and permutation inference.

    Parameters
    ----------
    y : array_like
        Finite values of the features with a value.
    w : scipy sparse matrix
        ``n x n`` weights; the off-diagonal pattern is row-standardised here.
    permutations : int, default 999
        Random permutations of ``y`` for ``p_sim`` (0: NaN).
    seed : int, numpy.random.Generator or None
        Seed of the permutations.

    Returns
    -------
    dict
        ``I``, ``EI`` (``-1 / (n - 1)``), ``VI_norm``, ``z_norm``, ``p_norm`` (two-sided),
        ``p_sim`` (folded, as esda) and ``n``. NaN statistics for a constant ``y``.

    Notes
    -----
    ``I = n / S0 * z' W z / z' z`` with ``z = y - mean``; the variance under normality is
    ``(n^2 S1 - n S2 + 3 S0^2) / ((n^2 - 1) S0^2) - EI^2`` (Cliff and Ord 1981), as
    ``esda.Moran(y, w, transformation="r")``. For Columbus' CRIME with queen weights I = 0.5002.

    """
    yv = _values(y)
    n = len(yv)
    wr = _row_standardised(_pattern(w, n))
    out = {"I": np.nan, "EI": np.nan, "VI_norm": np.nan, "z_norm": np.nan}
    out |= {"p_norm": np.nan, "p_sim": np.nan, "n": float(n)}
    if n < 3 or np.ptp(yv) == 0:
        return out
    z = yv - yv.mean()
    s0 = float(wr.sum())
    zz = float(z @ z)
    moran = n / s0 * float(z @ (wr @ z)) / zz
    sym = wr + wr.T
    s1 = 0.5 * float(sym.multiply(sym).sum())
    s2 = float(
        ((np.asarray(wr.sum(axis=1)).ravel() + np.asarray(wr.sum(axis=0)).ravel()) ** 2).sum()
    )
    ei = -1.0 / (n - 1)
    vi = (n * n * s1 - n * s2 + 3 * s0 * s0) / ((n - 1) * (n + 1) * s0 * s0) - ei**2
    z_norm = float((moran - ei) / np.sqrt(vi)) if vi > 0 else np.nan
    out |= {"I": moran, "EI": ei, "VI_norm": vi, "z_norm": z_norm}
    out["p_norm"] = float(_two_sided(np.asarray(z_norm)))
    if permutations:
        rng = _rng(seed)
        sims = np.empty(permutations)
        block = max(1, min(permutations, _BLOCK_CELLS // n))
        for start in range(0, permutations, block):  # blocks of permutations, bounded memory
            b = min(block, permutations - start)
            zp = np.empty((n, b))
            for j in range(b):  # one permutation per column (not a loop over features)
                zp[:, j] = rng.permutation(z)
            sims[start : start + b] = np.einsum("ij,ij->j", zp, wr @ zp)
        sims *= n / s0 / zz
        larger = int((sims >= moran).sum())
        out["p_sim"] = float(_folded(np.asarray(larger), permutations))
    return out


# --------------------------------------------------------------------------------------------
# Multiple testing and classes
# --------------------------------------------------------------------------------------------


def fdr_bh(p: np.ndarray | Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (false discovery rate), NaN kept as NaN.

    Parameters
    ----------
    p : array_like
        p-values in [0, 1]; NaN for features without a test (not counted in ``m``).

    Returns
    -------
    numpy.ndarray
        ``min(1, min_{j >= i} p_(j) m / j)`` in the input order, as
        ``scipy.stats.false_discovery_control(p, method="bh")``. A feature is significant at
        FDR ``alpha`` when its adjusted p-value is at most ``alpha``.

    References
    ----------
    Benjamini, Y. and Hochberg, Y. (1995). Controlling the false discovery rate: a practical and
    powerful approach to multiple testing. JRSS B 57(1).

    """
    pv = np.asarray(p, dtype=np.float64)
    out = np.full(pv.shape, np.nan)
    ok = ~np.isnan(pv)
    vals = pv[ok]
    if ((vals < 0) | (vals > 1)).any():
        msg = "p-values must lie in [0, 1]"
        raise ValueError(msg)
    m = len(vals)
    if m == 0:
        return out
    order = np.argsort(vals, kind="stable")
    scaled = vals[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    res = np.empty(m)
    res[order] = adjusted
    out[ok] = res
    return out


def _level_name(level: float) -> str:
    return f"{round(100 * (1 - level), 6):g}"


def gi_class(
    z: np.ndarray | Sequence[float],
    p: np.ndarray | Sequence[float],
    levels: Sequence[float] = GI_LEVELS,
) -> np.ndarray:
    """Gi* confidence bins: ``hot_99`` ... ``cold_90`` or ``not_significant``.

    Parameters
    ----------
    z : array_like
        Gi* z-scores (the sign gives hot or cold).
    p : array_like
        The p-values to judge: analytic, permutation or FDR-adjusted, the caller's choice.
    levels : sequence of float, default (0.01, 0.05, 0.10)
        Significance levels; a feature takes the strictest level with ``p < level`` (esda's
        strict inequality), named by its confidence (0.01 -> ``99``).

    Returns
    -------
    numpy.ndarray
        Object array of labels; None where ``p`` (or ``z``) is NaN.

    """
    zv = np.asarray(z, dtype=np.float64)
    pv = np.asarray(p, dtype=np.float64)
    out = np.full(zv.shape, "not_significant", dtype=object)
    for level in sorted(levels, reverse=True):  # loosest first, stricter levels overwrite
        sig = pv < level
        name = _level_name(level)
        out[sig & (zv > 0)] = f"hot_{name}"
        out[sig & (zv < 0)] = f"cold_{name}"
    out[np.isnan(pv) | np.isnan(zv)] = None
    return out


def lisa_class(
    q: np.ndarray | Sequence[int], p: np.ndarray | Sequence[float], alpha: float = 0.05
) -> np.ndarray:
    """LISA cluster labels ``HH``, ``LL``, ``LH``, ``HL`` or ``not_significant``.

    Parameters
    ----------
    q : array_like
        Quadrants as :func:`local_moran` gives them (1 HH, 2 LH, 3 LL, 4 HL, 0 undefined).
    p : array_like
        The p-values to judge (``p_sim`` or FDR-adjusted).
    alpha : float, default 0.05
        Significance when ``p < alpha`` (esda's ``get_cluster_labels``).

    Returns
    -------
    numpy.ndarray
        Object array of labels; None where ``p`` is NaN or the quadrant undefined.

    """
    qv = np.asarray(q, dtype=np.int64)
    pv = np.asarray(p, dtype=np.float64)
    out = np.full(qv.shape, "not_significant", dtype=object)
    sig = pv < alpha
    for code, name in QUADRANTS.items():
        out[sig & (qv == code)] = name
    out[np.isnan(pv) | ~np.isin(qv, list(QUADRANTS))] = None
    return out


# --------------------------------------------------------------------------------------------
# Empirical Bayes rates
# --------------------------------------------------------------------------------------------


def _rate_inputs(
    events: np.ndarray | Sequence[float], base: np.ndarray | Sequence[float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    e = np.asarray(events, dtype=np.float64).ravel()
    b = np.asarray(base, dtype=np.float64).ravel()
    if e.shape != b.shape:
        msg = f"{len(e)} event counts for {len(b)} base values"
        raise ValueError(msg)
    valid = np.isfinite(e) & np.isfinite(b) & (b > 0)
    return e, b, valid


def _shrink(rate: np.ndarray, prior: np.ndarray, var: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``prior + (rate - prior) * var / (var + prior / b)``, the prior where that is 0 / 0."""
    den = var + prior / b
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = np.where(den > 0, var / den, 0.0)
    out: np.ndarray = prior + (rate - prior) * weight
    return out


def eb_global(
    events: np.ndarray | Sequence[float], base: np.ndarray | Sequence[float]
) -> np.ndarray:
    """Marshall's global Empirical Bayes rates, shrunk toward the overall rate.

    Parameters
    ----------
    events : array_like
        Event counts per feature.
    base : array_like
        Population at risk per feature.

    Returns
    -------
    numpy.ndarray
        Smoothed rates; NaN where the base is 0 or NaN or the count NaN (those features take no
        part in the prior).

    Notes
    -----
    Overall rate ``m = sum(e) / sum(b)``, prior variance
    ``v = sum(b (r - m)^2) / sum(b) - m / mean(b)``, and ``r_i* = w_i r_i + (1 - w_i) m`` with
    ``w_i = v / (v + m / b_i)``: ``esda.smoothing.Empirical_Bayes``. A negative ``v`` is set to
    0 (every rate shrunk to ``m``), as Marshall and GeoDa do; esda leaves it negative.

    References
    ----------
    Marshall, R. J. (1991). Mapping disease and mortality rates using empirical Bayes
    estimators. Applied Statistics 40(2).

    """
    e, b, valid = _rate_inputs(events, base)
    out = np.full(len(e), np.nan)
    if not valid.any():
        return out
    ev, bv = e[valid], b[valid]
    m = ev.sum() / bv.sum()
    rate = ev / bv
    var = max((bv * (rate - m) ** 2).sum() / bv.sum() - m / bv.mean(), 0.0)
    out[valid] = _shrink(rate, np.full(len(ev), m), np.full(len(ev), var), bv)
    return out


def eb_spatial(
    events: np.ndarray | Sequence[float],
    base: np.ndarray | Sequence[float],
    w: sparse.spmatrix | sparse.sparray,
) -> np.ndarray:
    """Spatial Empirical Bayes rates, shrunk toward the rate of each feature's neighbourhood.

    Parameters
    ----------
    events : array_like
        Event counts per feature.
    base : array_like
        Population at risk per feature.
    w : scipy sparse matrix
        ``n x n`` weights (the off-diagonal pattern is used, binary).

    Returns
    -------
    numpy.ndarray
        Smoothed rates; NaN where the base is 0 or NaN or the count NaN. Those features are
        left out of their neighbours' neighbourhoods (the statistics run on the sub-matrix).

    Notes
    -----
    ``esda.smoothing.Spatial_Empirical_Bayes``: over the neighbourhood ``N_i`` (the feature and
    its neighbours), the prior rate ``m_i = sum e / sum b``, the prior variance
    ``v_i = sum_j b_j (r_j - m_i)^2 / sum b - m_i / (sum b / |N_i|)`` (0 when negative) and
    ``r_i* = m_i + (r_i - m_i) v_i / (v_i + m_i / b_i)``; where ``v_i`` and ``m_i`` are both 0,
    ``m_i`` (esda gives NaN there).

    """
    e, b, valid = _rate_inputs(events, base)
    n = len(e)
    wb = _pattern(w, n)
    out = np.full(n, np.nan)
    if not valid.any():
        return out
    ws = subset(wb, valid)
    ev, bv = e[valid], b[valid]
    nv = len(ev)
    hood = (ws + sparse.identity(nv, format="csr")).tocoo()
    size = np.bincount(hood.row, minlength=nv)
    e_hood = np.bincount(hood.row, weights=ev[hood.col], minlength=nv)
    b_hood = np.bincount(hood.row, weights=bv[hood.col], minlength=nv)
    prior = e_hood / b_hood
    rate = ev / bv
    spread = np.bincount(
        hood.row, weights=(rate[hood.col] - prior[hood.row]) ** 2 * bv[hood.col], minlength=nv
    )
    var = np.maximum(spread / b_hood - prior / (b_hood / size), 0.0)
    out[valid] = _shrink(rate, prior, var, bv)
    return out


# --------------------------------------------------------------------------------------------
# Minimum data
# --------------------------------------------------------------------------------------------


def enough_data(
    y: np.ndarray | Sequence[float],
    *,
    min_features: int = 30,
    min_incidents: int | None = 30,
) -> str | None:
    """Why a hot spot analysis of ``y`` should not run, or None when it may.

    Parameters
    ----------
    y : array_like
        Values of every feature (NaN for no value).
    min_features : int, default 30
        Features with a value needed (ArcGIS's optimized hot spot analysis wants 30).
    min_incidents : int or None, default 30
        Incidents needed (the sum of ``y``) when ``y`` counts incidents; None skips the rule.

    Returns
    -------
    str or None
        The reason, e.g. ``"12 features with a value, at least 30 needed"``, or None.

    """
    yv = np.asarray(y, dtype=np.float64).ravel()
    have = np.isfinite(yv)
    count = int(have.sum())
    if count < min_features:
        return f"{count} features with a value, at least {min_features} needed"
    if min_incidents is not None:
        total = float(yv[have].sum())
        if total < min_incidents:
            return f"{total:g} incidents, at least {min_incidents} needed"
    if np.ptp(yv[have]) == 0:
        return f"all {count} features have the same value"
    return None
