"""How good is the hotspot map, and how concentrated is crime? Pure numpy/pandas functions.

Hotspot-map evaluation ranks features by a score from a training period and measures how much
of a later (test) period's crime falls in the top-ranked features:

- hit rate ``n / N``: share of the test crimes in the selected features;
- PAI, the Prediction Accuracy Index (Chainey, Tompson & Uhlig 2008): ``(n / N) / (a / A)``,
  hit rate over the share of the area selected;
- PEI*, Hunt's Prediction Efficiency Index* (NIJ Real-Time Crime Forecasting Challenge 2016;
  White, Hunt & Green 2023), in Wheeler's formulation: ``PAI / PAI*`` where ``PAI*`` is the
  largest PAI a map of the same area could reach, i.e. one built from the test counts
  themselves. 1 means the map caught as many crimes as any map of that size could;
- RRI, Levine's Recapture Rate Index (2008): ``(n / n_train) / (N / N_train)``, the test crimes
  in the hotspots per training crime there, relative to the same ratio over the whole area.

Concentration: the Lorenz curve, the Gini coefficient, Bernasco & Steenbeek's generalized Gini
for sparse counts, and the share of crime in the top features.

References
----------
Chainey, S., Tompson, L., Uhlig, S. (2008). The utility of hotspot mapping for predicting spatial
patterns of crime. Security Journal 21, 4-28.
Levine, N. (2008). The "hottest" part of a hotspot: comments on "The utility of hotspot mapping
for predicting spatial patterns of crime". Security Journal 21, 295-302.
White, V. M., Hunt, J., Green, B. (2023). A discussion of current crime forecasting indices and
an improvement to the prediction efficiency index for applications. Security Journal.
Bernasco, W., Steenbeek, W. (2017). More places than crimes: implications for evaluating the law
of crime concentration at place. Journal of Quantitative Criminology 33(3), 451-467.

"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "DEFAULT_SHARES",
    "HitRate",
    "gini",
    "gini_adjusted",
    "hit_rates",
    "lorenz",
    "rolling_evaluation",
    "top_share",
]

#: Area shares at which hotspot maps are evaluated by default (5, 10 and 20 % of the area).
DEFAULT_SHARES: tuple[float, ...] = (0.05, 0.10, 0.20)

#: Relative tolerance when comparing cumulative areas with a target area (float round-off).
_AREA_RTOL = 1e-9


@dataclass(frozen=True)
class HitRate:
    """Evaluation of a hotspot selection covering a share of the area.

    Attributes
    ----------
    share : float
        Requested share of the total area.
    n_features : int
        Number of features selected.
    area_share : float
        Share of the total area actually selected (>= ``share``, whole features are taken).
    n_test : float
        Test-period crimes in the whole area (N).
    hits : float
        Test-period crimes in the selected features (n).
    hit_rate : float
        ``hits / n_test`` (NaN when there are no test crimes).
    pai : float
        ``hit_rate / area_share``.
    pei_star : float
        ``pai / pai_max``, with ``pai_max`` the PAI of the best selection of the same area made
        from the test counts (NaN when there are no test crimes).
    rri : float
        Recapture Rate Index (NaN without training counts or training crimes in the selection).

    """

    share: float
    n_features: int
    area_share: float
    n_test: float
    hits: float
    hit_rate: float
    pai: float
    pei_star: float
    rri: float


def _vector(values: np.ndarray | Sequence[float], name: str, size: int | None = None) -> np.ndarray:
    """Validate a 1-D float array (finite, non-negative) of an optional length."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        msg = f"{name} must be 1-D (one value per feature), got {arr.ndim}-D"
        raise ValueError(msg)
    if size is not None and arr.size != size:
        msg = f"{name} has {arr.size} values, expected {size} (one per feature)"
        raise ValueError(msg)
    return arr


def _counts(values: np.ndarray | Sequence[float], name: str, size: int | None = None) -> np.ndarray:
    """Validate counts: 1-D, finite and non-negative."""
    arr = _vector(values, name, size)
    if np.any(~np.isfinite(arr)) or np.any(arr < 0):
        msg = f"{name} must be finite and non-negative"
        raise ValueError(msg)
    return arr


def _rank(score: np.ndarray) -> np.ndarray:
    """Feature indices by decreasing score; ties by feature order; NaN scores last."""
    key = np.where(np.isnan(score), -np.inf, score)
    return np.argsort(-key, kind="stable")


def _take_until(cum_area: np.ndarray, target: float) -> int:
    """Count the leading features needed for the cumulative area to reach ``target``."""
    k = int(np.searchsorted(cum_area, target * (1 - _AREA_RTOL), side="left")) + 1
    return min(k, cum_area.size)


def _ratio(num: float, den: float) -> float:
    """``num / den``, NaN when the denominator is 0."""
    return float(num / den) if den > 0 else float("nan")


def hit_rates(
    score: np.ndarray | Sequence[float],
    test_counts: np.ndarray | Sequence[float],
    area: np.ndarray | Sequence[float],
    shares: Sequence[float] = DEFAULT_SHARES,
    *,
    train_counts: np.ndarray | Sequence[float] | None = None,
) -> dict[float, HitRate]:
    """Hit rate, PAI, PEI* and RRI of the features ranked by ``score``, at several area shares.

    Parameters
    ----------
    score : array_like
        Ranking score per feature, higher = hotter (training-period counts, Gi* z, ...).
    test_counts : array_like
        Crimes per feature in the test period.
    area : array_like
        Area per feature (any unit), positive.
    shares : sequence of float
        Shares of the total area to select, each in (0, 1].
    train_counts : array_like, optional
        Crimes per feature in the training period, for the RRI.

    Returns
    -------
    dict of float to HitRate
        One evaluation per requested share.

    Notes
    -----
    Features are taken in decreasing ``score`` order until their cumulative area reaches the
    share of the total area (the last feature is taken whole, so the area share selected can
    exceed the requested one; PAI uses the share actually selected). Ties in ``score`` are
    broken by feature order (the input order: deterministic, and neutral with respect to the
    test period); NaN scores rank last. ``PAI*`` ranks features by test-period density
    (``test_counts / area``, ties by feature order) and takes them until the same area as the
    evaluated selection is reached. With equal areas (an H3 grid) this is the exact optimum and
    ``PEI* = hits / max hits`` with the same number of features; with unequal areas the
    density-greedy selection is the usual approximation of the optimum.

    """
    s = _vector(score, "score")
    size = s.size
    if size == 0:
        msg = "no features to evaluate"
        raise ValueError(msg)
    test = _counts(test_counts, "test_counts", size)
    a = _vector(area, "area", size)
    if np.any(~np.isfinite(a)) or np.any(a <= 0):
        msg = "area must be finite and positive for every feature"
        raise ValueError(msg)
    train = None if train_counts is None else _counts(train_counts, "train_counts", size)
    bad = [x for x in shares if not 0 < x <= 1]
    if bad:
        msg = f"shares must be in (0, 1], got {bad}"
        raise ValueError(msg)

    order = _rank(s)
    cum_area = np.cumsum(a[order])
    total_area = cum_area[-1]
    cum_hits = np.cumsum(test[order])
    oracle = np.argsort(-(test / a), kind="stable")
    cum_area_best = np.cumsum(a[oracle])
    cum_hits_best = np.cumsum(test[oracle])
    n_test = float(test.sum())
    cum_train = None if train is None else np.cumsum(train[order])
    n_train = None if train is None else float(train.sum())

    out: dict[float, HitRate] = {}
    for share in shares:
        k = _take_until(cum_area, share * total_area)
        area_share = float(cum_area[k - 1] / total_area)
        hits = float(cum_hits[k - 1])
        hit_rate = _ratio(hits, n_test)
        pai = hit_rate / area_share
        k_best = _take_until(cum_area_best, cum_area[k - 1])
        pai_best = _ratio(float(cum_hits_best[k_best - 1]), n_test) / float(
            cum_area_best[k_best - 1] / total_area
        )
        pei_star = _ratio(pai, pai_best) if np.isfinite(pai_best) else float("nan")
        rri = float("nan")
        if cum_train is not None and n_train is not None:
            rri = _ratio(_ratio(hits, float(cum_train[k - 1])), _ratio(n_test, n_train))
        out[share] = HitRate(
            share=float(share),
            n_features=k,
            area_share=area_share,
            n_test=n_test,
            hits=hits,
            hit_rate=hit_rate,
            pai=pai,
            pei_star=pei_star,
            rri=rri,
        )
    return out


def rolling_evaluation(
    counts: np.ndarray,
    area: np.ndarray | Sequence[float],
    *,
    train: int,
    shares: Sequence[float] = DEFAULT_SHARES,
    score: Callable[[np.ndarray], np.ndarray] | None = None,
    labels: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, dict[float, dict[str, float]]]:
    """Rolling-origin evaluation of a hotspot map: train on ``train`` periods, test on the next.

    Parameters
    ----------
    counts : numpy.ndarray
        Crimes, features x periods (periods in time order).
    area : array_like
        Area per feature.
    train : int
        Number of periods in each training window.
    shares : sequence of float
        Area shares evaluated.
    score : callable, optional
        Maps a training window (features x ``train`` counts) to one score per feature, e.g. a
        Gi* z-score of the window's totals. Default: the window's total count per feature.
    labels : sequence of str, optional
        Names of the periods (e.g. ``"2024-03"``); default their 0-based indices.

    Returns
    -------
    table : pandas.DataFrame
        One row per split and share: ``split``, ``train_periods`` (first and last training
        period, ``"a..b"``), ``test_period``, ``share``, ``area_share``, ``hit_rate``, ``pai``,
        ``pei_star``, ``rri``, ``n_test``.
    summary : dict
        Per share, the mean over splits of ``hit_rate``, ``pai``, ``pei_star`` and ``rri``
        (NaN splits, e.g. test periods without crime, left out) and ``n_splits``.

    Notes
    -----
    Split ``i`` tests period ``t = train + i`` with the training window ``[t - train, t)``, for
    every ``t`` from ``train`` to the last period. The RRI compares the test period with the
    window's total counts.

    """
    c = np.asarray(counts, dtype=float)
    if c.ndim != 2:
        msg = f"counts must be 2-D (features x periods), got {c.ndim}-D"
        raise ValueError(msg)
    n_feat, n_per = c.shape
    if not 1 <= train < n_per:
        msg = f"train must be between 1 and {n_per - 1} periods, got {train}"
        raise ValueError(msg)
    names = [str(i) for i in range(n_per)] if labels is None else [str(x) for x in labels]
    if len(names) != n_per:
        msg = f"labels has {len(names)} names for {n_per} periods"
        raise ValueError(msg)
    a = _vector(area, "area", n_feat)

    rows = []
    for split, t in enumerate(range(train, n_per)):
        window = c[:, t - train : t]
        sc = window.sum(axis=1) if score is None else np.asarray(score(window), dtype=float)
        evaluation = hit_rates(sc, c[:, t], a, shares, train_counts=window.sum(axis=1))
        for share, res in evaluation.items():
            rows.append(
                {
                    "split": split,
                    "train_periods": f"{names[t - train]}..{names[t - 1]}",
                    "test_period": names[t],
                    "share": share,
                    "area_share": res.area_share,
                    "hit_rate": res.hit_rate,
                    "pai": res.pai,
                    "pei_star": res.pei_star,
                    "rri": res.rri,
                    "n_test": res.n_test,
                }
            )
    table = pd.DataFrame(rows)
    metrics = ["hit_rate", "pai", "pei_star", "rri"]
    means = table.groupby("share")[metrics].mean()
    summary: dict[float, dict[str, float]] = {}
    for share in means.index:
        entry = {m: float(means.loc[share, m]) for m in metrics}
        entry["n_splits"] = float(n_per - train)
        summary[float(share)] = entry
    return table, summary


# --------------------------------------------------------------------------- concentration


def lorenz(
    counts: np.ndarray | Sequence[float], *, descending: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Lorenz curve of crime over features.

    Parameters
    ----------
    counts : array_like
        Crimes per feature.
    descending : bool
        False (economics convention): features from least to most crime, the curve lies below
        the diagonal. True (crime-and-place convention): from most to least crime, so ``y`` at
        ``x = 0.05`` is the share of crime in the top 5 % of features.

    Returns
    -------
    x, y : numpy.ndarray
        Cumulative share of features and of crimes, ``n + 1`` points from (0, 0) to (1, 1);
        ``y`` is NaN when there is no crime.

    """
    c = _counts(counts, "counts")
    srt = np.sort(c)[::-1] if descending else np.sort(c)
    x = np.arange(c.size + 1) / max(c.size, 1)
    total = srt.sum()
    y = np.concatenate([[0.0], np.cumsum(srt)])
    y = y / total if total > 0 else np.full(y.shape, np.nan)
    return x, y


def gini(counts: np.ndarray | Sequence[float]) -> float:
    """Gini coefficient of crime over features.

    Parameters
    ----------
    counts : array_like
        Crimes per feature.

    Returns
    -------
    float
        ``G = sum_i (2i - n - 1) x_(i) / (n sum_i x_i)`` with ``x_(1) <= ... <= x_(n)``: the mean
        absolute difference over twice the mean (the "biased" Gini of R's ``DescTools::Gini``
        and ``ineq::Gini``). 0 when all features have the same count, ``(n - 1) / n`` when one
        feature has all the crime. NaN without crime.

    """
    c = _counts(counts, "counts")
    n = c.size
    total = c.sum()
    if n == 0 or total == 0:
        return float("nan")
    ranks = np.arange(1, n + 1)
    return float(np.sum((2 * ranks - n - 1) * np.sort(c)) / (n * total))


def gini_adjusted(counts: np.ndarray | Sequence[float]) -> float:
    """Generalized Gini for sparse counts (Bernasco & Steenbeek 2017).

    Parameters
    ----------
    counts : array_like
        Crimes per feature (integer counts).

    Returns
    -------
    float
        ``G' = max(1, n / N) (G - 1) + 1`` with ``n`` features, ``N`` crimes and ``G`` the
        :func:`gini`. When crimes are at least as many as features it equals ``G``; when they
        are fewer, the reference is the most equal distribution the data allow (``N`` features
        with one crime each), for which ``G' = 0``. NaN without crime.

    Notes
    -----
    Formula as in the authors' R package ``lorenzgini`` (``gini(x, generalized = TRUE,
    unbiased = FALSE)``); its example: counts 5, 2, 1 and seven zeros give ``G = 0.8`` and
    ``G' = 0.75``.

    """
    c = _counts(counts, "counts")
    g = gini(c)
    if np.isnan(g):
        return g
    return float(max(1.0, c.size / c.sum()) * (g - 1) + 1)


def top_share(counts: np.ndarray | Sequence[float], share: float = 0.05) -> float:
    """Share of crime in the top ``share`` of features (by their own counts).

    Parameters
    ----------
    counts : array_like
        Crimes per feature.
    share : float
        Share of the features, in [0, 1].

    Returns
    -------
    float
        The descending Lorenz curve at ``share``: with ``k = share * n`` (fractional in
        general), the crimes of the ``floor(k)`` features with most crime plus the fraction
        ``k - floor(k)`` of the next one, over all crimes. Ties do not matter (tied features
        contribute the same counts whichever is taken). NaN without crime.

    """
    if not 0 <= share <= 1:
        msg = f"share must be in [0, 1], got {share}"
        raise ValueError(msg)
    c = _counts(counts, "counts")
    total = c.sum()
    if total == 0:
        return float("nan")
    srt = np.sort(c)[::-1]
    k = share * c.size
    full = int(np.floor(k))
    taken = srt[:full].sum()
    if full < c.size:
        taken += (k - full) * srt[full]
    return float(taken / total)
