"""Temporal statistics of the diagnosis: trend tests, emerging hot spots, rate ratios, targets.

Every function here is pure numpy/scipy, vectorised over features (rows are grid features, columns
are periods in time order); none reads or writes files.

Emerging hot spot patterns
--------------------------
:func:`emerging_classes` follows ArcGIS Pro's *Emerging Hot Spot Analysis* ("How Emerging Hot Spot
Analysis works", pro.arcgis.com ``learnmoreemerging.htm``). The tool computes a Gi* z-score and
p-value for every bin (feature x time step), then a Mann-Kendall trend test on each location's
series of z-scores, and classifies each location. The definitions (hot spot wording; the cold
patterns mirror them with "cold" for "hot" and "low counts" for "high counts"):

- *New*: "A location that is a statistically significant hot spot for the final time step and has
  never been a statistically significant hot spot before."
- *Consecutive*: "A location with a single uninterrupted run of at least two statistically
  significant hot spot bins in the final time-step intervals. The location has never been a
  statistically significant hot spot prior to the final hot spot run and less than ninety percent
  of all bins are statistically significant hot spots."
- *Intensifying*: "A location that has been a statistically significant hot spot for ninety
  percent of the time-step intervals, including the final time step. In addition, the intensity of
  clustering of high counts in each time step is increasing overall and that increase is
  statistically significant."
- *Persistent*: "A location that has been a statistically significant hot spot for ninety percent
  of the time-step intervals with no discernible trend indicating an increase or decrease in the
  intensity of clustering over time."
- *Diminishing*: "A location that has been a statistically significant hot spot for ninety
  percent of the time-step intervals, including the final time step. In addition, the intensity of
  clustering in each time step is decreasing overall and that decrease is statistically
  significant."
- *Sporadic*: "A statistically significant hot spot for the final time-step interval with a
  history of also being an on-again and off-again hot spot. Less than ninety percent of the
  time-step intervals have been statistically significant hot spots and none of the time-step
  intervals have been statistically significant cold spots."
- *Oscillating*: "A statistically significant hot spot for the final time-step interval that has a
  history of also being a statistically significant cold spot during a prior time step. Less than
  ninety percent of the time-step intervals have been statistically significant hot spots."
- *Historical*: "The most recent time period is not hot, but at least ninety percent of the
  time-step intervals have been statistically significant hot spots."
- *No pattern detected*: "Does not fall into any of the hot or cold spot patterns defined above."

How the wording becomes rules (choices where the text is silent are marked *ours*):

- A bin is a significant hot (cold) spot when its p-value is below ``alpha`` and its z-score is
  positive (negative). ArcGIS counts a bin as significant from the 90 % confidence level on (its
  Gi_Bin classes +-1, +-2, +-3 are 90, 95 and 99 % confidence), hence ``alpha=0.10``. Pass
  FDR-adjusted p-values to reproduce ArcGIS's FDR correction.
- "ninety percent of the time-step intervals" is ``n_hot >= 0.9 * T`` over all ``T`` periods,
  evaluated exactly in integers (``10 * n_hot >= 9 * T``).
- Intensity trend: Mann-Kendall test (:func:`mann_kendall`) on the location's z-scores; the trend
  is significant when its p-value is below ``trend_alpha`` (default 0.10, the same 90 % level;
  *ours*, ArcGIS's exact level for this step was not found in its pages). An intensifying hot spot
  has an increasing z trend, an intensifying cold spot a decreasing one (its low-value clustering
  grows stronger), and the reverse for diminishing.
- Persistent requires the final step to be hot (*ours*): a location with >= 90 % hot steps whose
  final step is not hot is, by the text, historical.
- Sporadic requires the final step to be hot, as in the current ArcGIS Pro wording quoted above
  (ArcMap's older wording, "an on-again then off-again hot spot", did not).
- Precedence (*ours*): the definitions overlap at the edges (a location hot only at the final step
  but cold before is both "new" and "oscillating"), so the first matching definition in ArcGIS's
  table order wins: new, consecutive, intensifying, persistent, diminishing, sporadic,
  oscillating, historical; all hot patterns are tried before the cold ones.
- ArcGIS needs at least ten time steps for the analysis; with fewer periods than ``min_periods``
  (default 10) no pattern is assigned and :attr:`EmergingResult.reason` says why.

References
----------
Mann, H. B. (1945). Nonparametric tests against trend. Econometrica 13(3), 245-259.
Kendall, M. G. (1975). Rank Correlation Methods. Griffin.
Sen, P. K. (1968). Estimates of the regression coefficient based on Kendall's tau. JASA 63, 1379.
Hirsch, R. M., Slack, J. R., Smith, R. A. (1982). Techniques of trend analysis for monthly water
quality data. Water Resources Research 18(1), 107-121 (seasonal Kendall test).
Esri. How Emerging Hot Spot Analysis works. ArcGIS Pro tool reference.

"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "EMERGING_PATTERNS",
    "EmergingResult",
    "MKResult",
    "RateRatio",
    "TargetResult",
    "emerging_classes",
    "mann_kendall",
    "rate_ratio_test",
    "seasonal_mann_kendall",
    "target_in_reach",
]

#: Rows x periods x periods elements processed at once by the pairwise Mann-Kendall kernel.
_CHUNK_ELEMENTS = 2_000_000

#: The 17 pattern names, hot patterns in ArcGIS's table order, then cold, then no pattern.
_KINDS = (
    "new",
    "consecutive",
    "intensifying",
    "persistent",
    "diminishing",
    "sporadic",
    "oscillating",
    "historical",
)
EMERGING_PATTERNS: tuple[str, ...] = (
    *(f"{k}_hot" for k in _KINDS),
    *(f"{k}_cold" for k in _KINDS),
    "no_pattern",
)

#: R's ``binom.test`` tolerance when comparing probabilities for the two-sided p-value.
_R_REL_ERR = 1 + 1e-7


# --------------------------------------------------------------------------- Mann-Kendall


@dataclass(frozen=True)
class MKResult:
    """Mann-Kendall trend test, one value per row (0-d arrays for a 1-D input).

    Attributes
    ----------
    s : numpy.ndarray
        Mann-Kendall score S (sum of signs of later minus earlier values).
    var_s : numpy.ndarray
        Variance of S with the tie correction.
    z : numpy.ndarray
        Continuity-corrected standard normal score.
    p : numpy.ndarray
        Two-sided p-value.
    tau : numpy.ndarray
        Kendall's tau, ``S / (n (n - 1) / 2)`` (summed over seasons for the seasonal test).
    slope : numpy.ndarray
        Sen's slope per period (per cycle for the seasonal test).
    intercept : numpy.ndarray
        Intercept of the Kendall-Theil line, as pymannkendall computes it.
    n : numpy.ndarray
        Number of non-missing values (integers, also given for rows too short to test).

    """

    s: np.ndarray
    var_s: np.ndarray
    z: np.ndarray
    p: np.ndarray
    tau: np.ndarray
    slope: np.ndarray
    intercept: np.ndarray
    n: np.ndarray


def _as_rows(x: np.ndarray, name: str) -> tuple[np.ndarray, bool]:
    """Return ``x`` as a float 2-D array (rows x periods) and whether it was 1-D."""
    arr = np.asarray(x, dtype=float)
    if arr.ndim == 1:
        return arr[np.newaxis, :], True
    if arr.ndim != 2:
        msg = f"{name} must be 1-D (periods) or 2-D (features x periods), got {arr.ndim}-D"
        raise ValueError(msg)
    return arr, False


def _nanmedian_rows(a: np.ndarray) -> np.ndarray:
    """Median of each row ignoring NaN (NaN for an all-NaN row), without a loop per row."""
    if a.shape[1] == 0:
        return np.full(a.shape[0], np.nan)
    srt = np.sort(a, axis=1)  # NaN sort last
    k = np.count_nonzero(~np.isnan(a), axis=1)
    lo = np.clip((k - 1) // 2, 0, None)
    hi = np.clip(k // 2, 0, a.shape[1] - 1)
    a_lo = np.take_along_axis(srt, lo[:, None], axis=1)[:, 0]
    a_hi = np.take_along_axis(srt, hi[:, None], axis=1)[:, 0]
    med = (a_lo + a_hi) / 2
    return np.where(k > 0, med, np.nan)


def _mk_core(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """S, Var(S), n and the Sen pairwise slopes of each row of ``x`` (NaN ignored).

    Pairwise differences over periods are built by broadcasting; rows are processed in chunks so
    that memory stays bounded for long feature lists.
    """
    rows, t = x.shape
    i_idx, j_idx = np.triu_indices(t, 1)
    gaps = (j_idx - i_idx).astype(float)
    s = np.empty(rows)
    var_s = np.empty(rows)
    n = np.count_nonzero(~np.isnan(x), axis=1)
    slopes = np.empty((rows, i_idx.size))
    step = max(1, _CHUNK_ELEMENTS // max(1, t * t))
    for start in range(0, rows, step):
        block = x[start : start + step]
        diff = block[:, j_idx] - block[:, i_idx]
        s[start : start + step] = np.nansum(np.sign(diff), axis=1)
        slopes[start : start + step] = diff / gaps
        valid = ~np.isnan(block)
        # Each value's tie-group size (itself included): a group of size g contributes
        # g (g - 1) (2g + 5) once, i.e. (g - 1) (2g + 5) per member.
        group = np.sum(block[:, :, None] == block[:, None, :], axis=2)
        ties = np.where(valid, (group - 1) * (2 * group + 5), 0).sum(axis=1)
        nb = n[start : start + step]
        var_s[start : start + step] = (nb * (nb - 1) * (2 * nb + 5) - ties) / 18
    return s, var_s, n, slopes


def _z_and_p(s: np.ndarray, var_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Continuity-corrected z and two-sided normal p-value (z = 0 when S = 0)."""
    num = s - np.sign(s)
    safe = np.where(var_s > 0, var_s, 1.0)
    z = np.where((s != 0) & (var_s > 0), num / np.sqrt(safe), 0.0)
    p = 2 * stats.norm.sf(np.abs(z))
    return z, p


def _median_valid_index(x: np.ndarray) -> np.ndarray:
    """Median position (0-based) of the non-missing values of each row."""
    pos = np.broadcast_to(np.arange(x.shape[1], dtype=float), x.shape)
    return _nanmedian_rows(np.where(np.isnan(x), np.nan, pos))


def _finish(result: dict[str, np.ndarray], bad: np.ndarray, one_d: bool) -> MKResult:
    """Blank out unusable rows and squeeze a 1-D input back to 0-d arrays."""
    out: dict[str, np.ndarray] = {}
    for key, val in result.items():
        arr = val.copy()
        if key != "n":
            arr = arr.astype(float)
            arr[bad] = np.nan
        out[key] = arr[0] if one_d else arr
    return MKResult(**out)


def mann_kendall(x: np.ndarray) -> MKResult:
    """Mann-Kendall trend test of each row, with Sen's slope.

    Parameters
    ----------
    x : numpy.ndarray
        Values, features x periods (periods in time order); a 1-D series is accepted and gives
        0-d results. NaN periods are ignored in their row.

    Returns
    -------
    MKResult
        S, tie-corrected variance, continuity-corrected z, two-sided p, Kendall's tau, Sen's
        slope and intercept, and the number of values used. Rows with fewer than three values
        are NaN throughout.

    Notes
    -----
    Equal to ``pymannkendall.original_test`` (Hussain & Mahmud 2019), the reference analysts use:
    S and its variance are computed on the non-missing values in their order,
    ``Var(S) = [n (n-1) (2n+5) - sum_g g (g-1) (2g+5)] / 18`` over tie groups ``g``,
    ``z = (S - sign(S)) / sqrt(Var(S))``, ``p = 2 (1 - Phi(|z|))``, ``tau = S / (n (n-1) / 2)``.
    Sen's slope is the median of ``(x_j - x_i) / (j - i)`` over pairs ``i < j`` of non-missing
    values, with ``j - i`` the true distance in periods (gaps count). The intercept is
    ``median(x) - median(positions of non-missing values) * slope``.

    """
    rows, one_d = _as_rows(x, "x")
    s, var_s, n, slopes = _mk_core(rows)
    z, p = _z_and_p(s, var_s)
    pairs = n * (n - 1) / 2
    tau = s / np.where(pairs > 0, pairs, 1.0)
    slope = _nanmedian_rows(slopes)
    intercept = _nanmedian_rows(rows) - _median_valid_index(rows) * slope
    result = {
        "s": s,
        "var_s": var_s,
        "z": z,
        "p": p,
        "tau": tau,
        "slope": slope,
        "intercept": intercept,
        "n": n,
    }
    return _finish(result, n < 3, one_d)


def seasonal_mann_kendall(x: np.ndarray, period: int = 12) -> MKResult:
    """Seasonal Mann-Kendall test (Hirsch-Slack) of each row, with the seasonal Sen slope.

    Parameters
    ----------
    x : numpy.ndarray
        Values, features x periods (1-D accepted), periods in time order starting at season 0.
        A series whose length is not a multiple of ``period`` is padded with NaN at the end.
    period : int
        Length of the seasonal cycle (12 for monthly data).

    Returns
    -------
    MKResult
        S and Var(S) summed over seasons, z and p from those sums, tau = S / total pairs within
        seasons, the seasonal Sen slope (per cycle) and its intercept, and the number of values.
        Rows with fewer than three values or no season with two values are NaN.

    Notes
    -----
    Equal to ``pymannkendall.seasonal_test``: each season is an independent Mann-Kendall series
    over the cycles (NaN ignored), the statistics are summed, and the slope is the median of the
    within-season pairwise slopes ``(x_j - x_i) / (j - i)`` with ``j - i`` in cycles.

    """
    if int(period) != period or period < 1:
        msg = f"period must be a positive integer, got {period!r}"
        raise ValueError(msg)
    period = int(period)
    rows, one_d = _as_rows(x, "x")
    f, t = rows.shape
    pad = (-t) % period
    padded = np.pad(rows, ((0, 0), (0, pad)), constant_values=np.nan)
    cycles = padded.shape[1] // period
    # (features, cycles, seasons) -> one series over cycles per (feature, season)
    by_season = padded.reshape(f, cycles, period).transpose(0, 2, 1).reshape(f * period, cycles)
    s_k, var_k, n_k, slopes_k = _mk_core(by_season)
    s = s_k.reshape(f, period).sum(axis=1)
    var_s = var_k.reshape(f, period).sum(axis=1)
    n_season = n_k.reshape(f, period)
    pairs = (n_season * (n_season - 1) / 2).sum(axis=1)
    n = n_season.sum(axis=1)
    z, p = _z_and_p(s, var_s)
    tau = s / np.where(pairs > 0, pairs, 1.0)
    slope = _nanmedian_rows(slopes_k.reshape(f, -1))
    intercept = _nanmedian_rows(rows) - _median_valid_index(rows) / period * slope
    result = {
        "s": s,
        "var_s": var_s,
        "z": z,
        "p": p,
        "tau": tau,
        "slope": slope,
        "intercept": intercept,
        "n": n,
    }
    return _finish(result, (n < 3) | (pairs == 0), one_d)


# --------------------------------------------------------------------------- emerging hot spots


@dataclass(frozen=True)
class EmergingResult:
    """Space-time pattern of each feature (see the module notes for the definitions).

    Attributes
    ----------
    pattern : numpy.ndarray or None
        One of :data:`EMERGING_PATTERNS` per feature (object array of str); ``None`` when the
        series is too short to classify (see ``reason``).
    reason : str or None
        Why no pattern was assigned, else ``None``.
    n_hot, n_cold : numpy.ndarray
        Number of periods in which the feature is a significant hot / cold spot.
    trend_tau, trend_z, trend_p : numpy.ndarray
        Mann-Kendall tau, z and p of the feature's Gi* z-scores over time.
    count_tau, count_p, count_slope : numpy.ndarray or None
        Mann-Kendall tau, p and Sen's slope of the feature's counts, when counts were given.
    n_periods : int
        Number of periods (time steps).
    alpha, trend_alpha : float
        Significance levels used for the bins and for the trend.

    """

    pattern: np.ndarray | None
    reason: str | None
    n_hot: np.ndarray
    n_cold: np.ndarray
    trend_tau: np.ndarray
    trend_z: np.ndarray
    trend_p: np.ndarray
    count_tau: np.ndarray | None
    count_p: np.ndarray | None
    count_slope: np.ndarray | None
    n_periods: int
    alpha: float
    trend_alpha: float


def _side_codes(
    spot: np.ndarray, other: np.ndarray, stronger: np.ndarray, weaker: np.ndarray
) -> np.ndarray:
    """Index into ``_KINDS`` (or -1) for one side (hot or cold) of the classification.

    ``spot`` and ``other`` are boolean features x periods matrices of significant bins on this
    side and on the opposite side; ``stronger`` / ``weaker`` flag a significant trend towards
    stronger / weaker clustering on this side.
    """
    t = spot.shape[1]
    n_spot = spot.sum(axis=1)
    n_other = other.sum(axis=1)
    final = spot[:, -1]
    ninety = 10 * n_spot >= 9 * t
    trailing = np.cumprod(spot[:, ::-1], axis=1).sum(axis=1)
    conditions = [
        final & (n_spot == 1),
        final & (trailing >= 2) & (n_spot == trailing) & ~ninety,
        ninety & final & stronger,
        ninety & final & ~stronger & ~weaker,
        ninety & final & weaker,
        final & ~ninety & (n_other == 0),
        final & ~ninety & (n_other > 0),
        ~final & ninety,
    ]
    return np.select(conditions, list(range(len(_KINDS))), default=-1)


def emerging_classes(
    z: np.ndarray,
    p: np.ndarray,
    *,
    alpha: float = 0.10,
    trend_alpha: float = 0.10,
    counts: np.ndarray | None = None,
    min_periods: int = 10,
) -> EmergingResult:
    """Emerging hot spot pattern of each feature from its per-period Gi* z-scores and p-values.

    Parameters
    ----------
    z, p : numpy.ndarray
        Gi* z-scores and p-values, features x periods, periods in time order. Missing bins (NaN)
        are not significant; the Mann-Kendall trend ignores them.
    alpha : float
        A bin is significant when ``p < alpha`` (0.10: ArcGIS's 90 % confidence level).
    trend_alpha : float
        The z-score trend is significant when its Mann-Kendall p-value is ``< trend_alpha``.
    counts : numpy.ndarray, optional
        Counts, features x periods, whose Mann-Kendall trend is reported alongside.
    min_periods : int
        Fewest periods to classify (ArcGIS needs ten time steps).

    Returns
    -------
    EmergingResult
        Patterns (or the reason there are none), per-feature significant-period counts and the
        trend statistics.

    Notes
    -----
    The definitions, ArcGIS's wording and the precedence between overlapping definitions are
    in the module docstring.

    """
    zz, _ = _as_rows(z, "z")
    pp, _ = _as_rows(p, "p")
    if zz.shape != pp.shape:
        msg = f"z and p must have the same shape, got {zz.shape} and {pp.shape}"
        raise ValueError(msg)
    if not (0 < alpha < 1 and 0 < trend_alpha < 1):
        msg = f"alpha and trend_alpha must be in (0, 1), got {alpha} and {trend_alpha}"
        raise ValueError(msg)
    t = zz.shape[1]
    with np.errstate(invalid="ignore"):
        sig = pp < alpha
    hot = sig & (zz > 0)
    cold = sig & (zz < 0)
    trend = mann_kendall(zz)
    with np.errstate(invalid="ignore"):
        trend_sig = trend.p < trend_alpha
    up = trend_sig & (trend.s > 0)
    down = trend_sig & (trend.s < 0)

    count_tau = count_p = count_slope = None
    if counts is not None:
        cc, _ = _as_rows(counts, "counts")
        if cc.shape != zz.shape:
            msg = f"counts must have the shape of z {zz.shape}, got {cc.shape}"
            raise ValueError(msg)
        ct = mann_kendall(cc)
        count_tau, count_p, count_slope = ct.tau, ct.p, ct.slope

    pattern: np.ndarray | None = None
    reason: str | None = None
    if t < min_periods:
        reason = (
            f"{t} period(s): emerging hot spot patterns need at least {min_periods} time steps "
            "(ArcGIS's Emerging Hot Spot Analysis needs ten); use shorter periods or a longer span"
        )
    else:
        hot_code = _side_codes(hot, cold, up, down)
        cold_code = _side_codes(cold, hot, down, up)
        code = np.where(
            hot_code >= 0,
            hot_code,
            np.where(cold_code >= 0, cold_code + len(_KINDS), 2 * len(_KINDS)),
        )
        pattern = np.asarray(EMERGING_PATTERNS, dtype=object)[code]

    return EmergingResult(
        pattern=pattern,
        reason=reason,
        n_hot=hot.sum(axis=1),
        n_cold=cold.sum(axis=1),
        trend_tau=trend.tau,
        trend_z=trend.z,
        trend_p=trend.p,
        count_tau=count_tau,
        count_p=count_p,
        count_slope=count_slope,
        n_periods=t,
        alpha=alpha,
        trend_alpha=trend_alpha,
    )


# --------------------------------------------------------------------------- rate ratio


@dataclass(frozen=True)
class RateRatio:
    """Exact comparison of two Poisson rates (arrays broadcast from the inputs).

    Attributes
    ----------
    ratio : numpy.ndarray
        Rate ratio estimate ``(c1 / t1) / (c0 / t0)`` (inf when ``c0 = 0 < c1``).
    p_value : numpy.ndarray
        Two-sided exact p-value of ratio = 1, as R's ``poisson.test``.
    ci_low, ci_high : numpy.ndarray
        Exact confidence interval of the ratio (``ci_high`` inf when ``c0 = 0``).
    conf : float
        Confidence level of the interval.

    """

    ratio: np.ndarray
    p_value: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    conf: float


def _binom_two_sided(x: np.ndarray, n: np.ndarray, prob: np.ndarray) -> np.ndarray:
    """R ``binom.test`` two-sided ("minlike") p-values, vectorised by binary search.

    The outcomes at least as extreme as ``x`` are those with probability ``<= dbinom(x) *
    (1 + 1e-7)`` on the other side of the mean ``m = n p``. The binomial probabilities are
    monotone on each side of ``m`` (non-increasing on ``[ceil(m), n]``, non-decreasing on
    ``[0, floor(m)]``), so the count of such outcomes is found by a binary search run on all
    the (x, n, p) triples at once.
    """
    dist = stats.binom
    thr = dist.pmf(x, n, prob) * _R_REL_ERR
    m = n * prob
    below = x < m
    # x < m: first k in [ceil(m), n] with pmf(k) <= thr; y = n - k + 1 outcomes.
    # x > m: first k in [0, floor(m)] with pmf(k) > thr; y = k outcomes.
    lo = np.where(below, np.ceil(m), 0.0)
    hi = np.where(below, n + 1.0, np.floor(m) + 1.0)
    while np.any(lo < hi):
        mid = np.floor((lo + hi) / 2)
        small = dist.pmf(mid, n, prob) <= thr
        go_left = np.where(below, small, ~small)
        active = lo < hi
        hi = np.where(active & go_left, mid, hi)
        lo = np.where(active & ~go_left, mid + 1, lo)
    y = np.where(below, n - lo + 1, lo)
    p_below = dist.cdf(x, n, prob) + dist.sf(n - y, n, prob)
    p_above = dist.cdf(y - 1, n, prob) + dist.sf(x - 1, n, prob)
    pval = np.where(below, p_below, p_above)
    pval = np.where(x == m, 1.0, pval)
    return np.minimum(1.0, pval)


def rate_ratio_test(
    c1: np.ndarray | float,
    t1: np.ndarray | float,
    c0: np.ndarray | float,
    t0: np.ndarray | float,
    conf: float = 0.95,
) -> RateRatio:
    """Exact conditional test comparing two Poisson counts with exposures (e.g. period lengths).

    Parameters
    ----------
    c1, c0 : array_like
        Counts in the compared period (1) and the reference period (0); non-negative integers.
    t1, t0 : array_like
        Exposures of the two periods (e.g. days or years), positive.
    conf : float
        Confidence level of the interval.

    Returns
    -------
    RateRatio
        Ratio, two-sided p-value and exact confidence interval, broadcast over the inputs.
        Where ``c0 + c1 = 0`` every value is NaN (no warning).

    Notes
    -----
    Given ``n = c0 + c1``, ``c1 ~ Binomial(n, t1 / (t0 + t1))`` under equal rates. The p-value is
    R's ``poisson.test(c(c1, c0), c(t1, t0))``: ``binom.test`` two-sided, summing the
    probabilities of outcomes no more likely than the observed one (relative tolerance 1e-7).
    The interval maps the Clopper-Pearson interval ``(pL, pU)`` of the binomial proportion to
    ``pp / (1 - pp) * t0 / t1``. Counts repeat a lot on sparse grids, so the work is done once
    per distinct ``(c1, n, t1 / (t0 + t1))`` and broadcast back.

    """
    if not 0 < conf < 1:
        msg = f"conf must be in (0, 1), got {conf}"
        raise ValueError(msg)
    a1, e1, a0, e0 = np.broadcast_arrays(
        np.asarray(c1, dtype=float),
        np.asarray(t1, dtype=float),
        np.asarray(c0, dtype=float),
        np.asarray(t0, dtype=float),
    )
    counts = np.concatenate([a1.ravel(), a0.ravel()])
    if np.any(~np.isfinite(counts)) or np.any(counts < 0) or np.any(counts != np.round(counts)):
        msg = "counts c1 and c0 must be finite non-negative integers"
        raise ValueError(msg)
    expo = np.concatenate([e1.ravel(), e0.ravel()])
    if np.any(~np.isfinite(expo)) or np.any(expo <= 0):
        msg = "exposures t1 and t0 must be finite and positive"
        raise ValueError(msg)
    shape = a1.shape
    x = a1.ravel()
    n = x + a0.ravel()
    prob = e1.ravel() / (e0.ravel() + e1.ravel())
    keys = np.column_stack([x, n, prob])
    uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    ux, un, uprob = uniq[:, 0], uniq[:, 1], uniq[:, 2]
    ok = un > 0
    pval = np.full(ux.shape, np.nan)
    pval[ok] = _binom_two_sided(ux[ok], un[ok], uprob[ok])
    a = 1 - conf
    low = np.full(ux.shape, np.nan)
    high = np.full(ux.shape, np.nan)
    xs, ns = ux[ok], un[ok]
    low[ok] = np.where(xs > 0, stats.beta.ppf(a / 2, np.maximum(xs, 1), ns - xs + 1), 0.0)
    high[ok] = np.where(xs < ns, stats.beta.ppf(1 - a / 2, xs + 1, np.maximum(ns - xs, 1)), 1.0)
    odds = e0.ravel() / e1.ravel()
    with np.errstate(divide="ignore", invalid="ignore"):
        ci_low = low[inverse] / (1 - low[inverse]) * odds
        ci_high = high[inverse] / (1 - high[inverse]) * odds
        ratio = (x / e1.ravel()) / (a0.ravel() / e0.ravel())
    empty = n == 0
    ratio[empty] = np.nan
    return RateRatio(
        ratio=ratio.reshape(shape),
        p_value=pval[inverse].reshape(shape),
        ci_low=ci_low.reshape(shape),
        ci_high=ci_high.reshape(shape),
        conf=conf,
    )


# --------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class TargetResult:
    """Progress towards a target change, per feature.

    Attributes
    ----------
    annual_change : numpy.ndarray
        Observed compound yearly change (0.05 = +5 % a year), NaN where not computable.
    projected : numpy.ndarray
        Value at the target year if the observed yearly change continues.
    required : numpy.ndarray
        Value the target asks for, ``baseline * (1 + target_change)``.
    on_track : pandas.arrays.BooleanArray
        Whether the projection meets the target; ``<NA>`` where not computable.

    """

    annual_change: np.ndarray
    projected: np.ndarray
    required: np.ndarray
    on_track: pd.arrays.BooleanArray


def target_in_reach(
    baseline: np.ndarray,
    current: np.ndarray,
    *,
    baseline_mid: float,
    current_mid: float,
    target_change: float,
    target_year: float,
) -> TargetResult:
    """Whether the observed change since a baseline keeps a target within reach.

    Parameters
    ----------
    baseline, current : numpy.ndarray
        Values (counts or rates) in the baseline and the current period, one per feature
        (1-D; a scalar is taken as one feature).
    baseline_mid, current_mid : float
        Middles of the two periods in decimal years (e.g. 2019.5 for the year 2019).
    target_change : float
        Target relative change from the baseline, e.g. -0.25 for a 25 % reduction.
    target_year : float
        Decimal year by which the target should be met.

    Returns
    -------
    TargetResult
        Yearly change, projection, required value and ``on_track``.

    Notes
    -----
    The rule: ``r = (current / baseline) ** (1 / (current_mid - baseline_mid)) - 1`` is the
    compound yearly change; ``projected = current * (1 + r) ** (target_year - current_mid)``;
    ``required = baseline * (1 + target_change)``. A reduction target (``target_change <= 0``,
    including "no increase") is on track when ``projected <= required``, an increase target
    when ``projected >= required``. Where the baseline is 0, negative or missing, or the current
    value is missing or negative, every output is NaN and ``on_track`` is ``<NA>``: a change
    relative to nothing cannot be judged. A current value of 0 gives ``r = -1`` and a projection
    of 0.

    """
    if not current_mid > baseline_mid:
        msg = f"current_mid ({current_mid}) must be after baseline_mid ({baseline_mid})"
        raise ValueError(msg)
    if target_year < current_mid:
        msg = f"target_year ({target_year}) must not be before current_mid ({current_mid})"
        raise ValueError(msg)
    b, c = np.broadcast_arrays(
        np.atleast_1d(np.asarray(baseline, dtype=float)),
        np.atleast_1d(np.asarray(current, dtype=float)),
    )
    if b.ndim != 1:
        msg = f"baseline and current must be 1-D (one value per feature), got {b.ndim}-D"
        raise ValueError(msg)
    valid = np.isfinite(b) & np.isfinite(c) & (b > 0) & (c >= 0)
    safe_b = np.where(valid, b, 1.0)
    safe_c = np.where(valid, c, 1.0)
    ratio = safe_c / safe_b
    change = ratio ** (1 / (current_mid - baseline_mid)) - 1
    projected = safe_c * (1 + change) ** (target_year - current_mid)
    required = safe_b * (1 + target_change)
    meets = projected <= required if target_change <= 0 else projected >= required
    nan = np.nan
    on_track = pd.array(np.where(valid, meets, False), dtype="boolean")
    on_track[~valid] = pd.NA
    return TargetResult(
        annual_change=np.where(valid, change, nan),
        projected=np.where(valid, projected, nan),
        required=np.where(valid, required, nan),
        on_track=on_track,
    )
