"""Temporal statistics: Mann-Kendall vs pymannkendall, emerging patterns, rate ratio, targets."""

from __future__ import annotations

import warnings

import numpy as np
import pymannkendall as pmk
import pytest
from scipy.stats import binomtest

from geo_usm.stats.temporal import (
    EMERGING_PATTERNS,
    emerging_classes,
    mann_kendall,
    rate_ratio_test,
    seasonal_mann_kendall,
    target_in_reach,
)

FIELDS = [("s", "s"), ("var_s", "var_s"), ("z", "z"), ("p", "p"), ("tau", "Tau")]
FIELDS += [("slope", "slope"), ("intercept", "intercept")]


def _count_series(seed: int, rows: int, periods: int, nan_share: float) -> np.ndarray:
    """Sparse monthly counts with ties, a few trends and missing periods."""
    rng = np.random.default_rng(seed)
    level = rng.gamma(1.0, 2.0, size=(rows, 1))
    trend = rng.normal(0, 0.03, size=(rows, 1))
    lam = level * np.exp(trend * np.arange(periods))
    x = rng.poisson(lam).astype(float)
    x[rng.random(x.shape) < nan_share] = np.nan
    return x


def _assert_matches(res, i: int, ref) -> None:
    for ours, theirs in FIELDS:
        got = float(getattr(res, ours)[i])
        want = float(getattr(ref, theirs))
        assert got == pytest.approx(want, rel=1e-9, abs=1e-9), (i, ours, got, want)


def test_mann_kendall_equals_pymannkendall_with_ties_and_nan():
    x = _count_series(7, rows=80, periods=36, nan_share=0.1)
    x[0] = 3.0  # all tied: S = 0, Var(S) = 0
    x[1, :] = np.arange(36.0)  # strict trend, no ties
    res = mann_kendall(x)
    assert res.s.shape == (80,)
    for i in range(x.shape[0]):
        _assert_matches(res, i, pmk.original_test(x[i]))
    assert res.p[0] == 1.0
    assert res.z[0] == 0.0


def test_mann_kendall_one_dimensional_and_short_rows():
    x = _count_series(3, rows=1, periods=24, nan_share=0.2)[0]
    res = mann_kendall(x)
    assert res.p.shape == ()
    _assert_matches(res, (), pmk.original_test(x))

    short = np.array([[1.0, np.nan, 2.0, np.nan], [1.0, 2.0, 3.0, 5.0]])
    res = mann_kendall(short)
    assert np.isnan(res.p[0]) and np.isnan(res.slope[0]) and np.isnan(res.tau[0])
    assert res.n[0] == 2
    _assert_matches(res, 1, pmk.original_test(short[1]))


@pytest.mark.parametrize(("periods", "period"), [(36, 12), (34, 12), (30, 4)])
def test_seasonal_mann_kendall_equals_pymannkendall(periods, period):
    x = _count_series(11, rows=40, periods=periods, nan_share=0.08)
    res = seasonal_mann_kendall(x, period=period)
    for i in range(x.shape[0]):
        _assert_matches(res, i, pmk.seasonal_test(x[i], period=period))


def test_seasonal_mann_kendall_rejects_bad_period():
    with pytest.raises(ValueError, match="period"):
        seasonal_mann_kendall(np.ones((2, 24)), period=0)


# --------------------------------------------------------------------------- emerging patterns

SIG_P, NOT_SIG_P = 0.01, 0.5
UP = np.linspace(2.0, 6.0, 12)
FLAT = np.array([3, 4, 3.5, 3.2, 3.8, 3.1, 3.9, 3.3, 3.7, 3.4, 3.6, 3.5])


def _series(spec: str) -> tuple[np.ndarray, np.ndarray]:
    """Z and p of a 12-step series: H = hot, C = cold, . = not significant."""
    z = np.array([{"H": 3.0, "C": -3.0, ".": 0.5}[ch] for ch in spec])
    p = np.array([NOT_SIG_P if ch == "." else SIG_P for ch in spec])
    return z, p


def _planted() -> tuple[np.ndarray, np.ndarray, list[str]]:
    rows: list[tuple[np.ndarray, np.ndarray, str]] = []
    for sign, side, opp in ((1, "H", "C"), (-1, "C", "H")):
        name = "hot" if sign == 1 else "cold"
        all_sig = np.full(12, SIG_P)
        for spec, kind in [
            ("." * 11 + side, "new"),
            ("." * 9 + side * 3, "consecutive"),
            (f"{side}..{side}..{side}....{side}", "sporadic"),
            (f"{opp}..{side}..{opp}...{side}{side}", "oscillating"),
            (side * 11 + ".", "historical"),
        ]:
            z, p = _series(spec)
            rows.append((z, p, f"{kind}_{name}"))
        # Intensifying: clustering grows stronger (z away from 0); diminishing: weaker.
        rows.append((sign * UP, all_sig, f"intensifying_{name}"))
        rows.append((sign * FLAT, all_sig, f"persistent_{name}"))
        rows.append((sign * UP[::-1], all_sig, f"diminishing_{name}"))
    for spec in ("." * 12, "H..H........", "CC.........."):
        z, p = _series(spec)
        rows.append((z, p, "no_pattern"))
    z = np.vstack([r[0] for r in rows])
    p = np.vstack([r[1] for r in rows])
    return z, p, [r[2] for r in rows]


def test_emerging_classes_recovers_all_17_planted_patterns():
    z, p, expected = _planted()
    res = emerging_classes(z, p)
    assert res.reason is None
    assert res.pattern is not None
    assert list(res.pattern) == expected
    assert set(expected) == set(EMERGING_PATTERNS)
    assert len(EMERGING_PATTERNS) == 17
    persistent = expected.index("persistent_hot")
    assert res.trend_p[persistent] > 0.10
    # per-feature counts and the z trend (pymannkendall on the z-scores)
    sig = p < 0.10
    np.testing.assert_array_equal(res.n_hot, (sig & (z > 0)).sum(axis=1))
    np.testing.assert_array_equal(res.n_cold, (sig & (z < 0)).sum(axis=1))
    for i in range(z.shape[0]):
        ref = pmk.original_test(z[i])
        assert res.trend_tau[i] == pytest.approx(ref.Tau, abs=1e-12)
        assert res.trend_p[i] == pytest.approx(ref.p, abs=1e-12)
    assert res.count_tau is None


def test_emerging_classes_precedence_significance_level_and_count_trend():
    # Hot only at the final step after cold steps: "new" and "oscillating" both fit; table order.
    z, p = _series("CCCC.......H")
    assert emerging_classes(z[None], p[None]).pattern[0] == "new_hot"
    # p = 0.08 is significant at ArcGIS's 90 % level, not at 95 %.
    z, p = _series("." * 11 + "H")
    p[-1] = 0.08
    assert emerging_classes(z[None], p[None]).pattern[0] == "new_hot"
    assert emerging_classes(z[None], p[None], alpha=0.05).pattern[0] == "no_pattern"
    counts = np.arange(12.0)[None]
    res = emerging_classes(z[None], p[None], counts=counts)
    assert res.count_tau is not None and res.count_tau[0] == pytest.approx(1.0)
    assert res.count_slope is not None and res.count_slope[0] == pytest.approx(1.0)


def test_emerging_classes_too_few_periods_gives_a_reason():
    z = np.full((3, 6), 3.0)
    p = np.full((3, 6), 0.01)
    res = emerging_classes(z, p)
    assert res.pattern is None
    assert res.reason is not None and "6 period" in res.reason and "10" in res.reason
    np.testing.assert_array_equal(res.n_hot, [6, 6, 6])
    with pytest.raises(ValueError, match="same shape"):
        emerging_classes(z, p[:, :5])


# --------------------------------------------------------------------------- rate ratio


def test_rate_ratio_r_documentation_example():
    # R: poisson.test(c(11, 6+8+7), c(800, 1083+1050+878))
    # rate ratio 1.971488, p-value = 0.07967, 95 % CI 0.8584264 4.2772659
    res = rate_ratio_test(11, 800, 6 + 8 + 7, 1083 + 1050 + 878)
    assert float(res.ratio) == pytest.approx(1.971488, abs=1e-6)
    assert float(res.p_value) == pytest.approx(0.07967, abs=5e-6)
    assert float(res.ci_low) == pytest.approx(0.8584264, abs=1e-7)
    assert float(res.ci_high) == pytest.approx(4.2772659, abs=1e-7)


def test_rate_ratio_p_and_ci_equal_scipy_binomtest_on_a_grid():
    c1 = np.array([0, 1, 2, 3, 5, 9, 10, 17, 40, 0, 7, 120, 3])
    c0 = np.array([4, 0, 2, 8, 5, 1, 30, 3, 41, 1, 0, 80, 3])
    t1 = np.array([1.0, 1, 2, 1, 3, 1, 12, 0.5, 1, 2, 1, 7, 1])
    t0 = np.array([1.0, 3, 1, 1, 1, 2, 36, 0.5, 1, 1, 1, 5, 1])
    res = rate_ratio_test(c1, t1, c0, t0, conf=0.9)
    for i in range(c1.size):
        n = int(c1[i] + c0[i])
        prob = t1[i] / (t0[i] + t1[i])
        ref = binomtest(int(c1[i]), n, prob)
        assert res.p_value[i] == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-12)
        ci = ref.proportion_ci(0.9, method="exact")
        low = ci.low / (1 - ci.low) * t0[i] / t1[i]
        assert res.ci_low[i] == pytest.approx(low, rel=1e-8, abs=1e-12)
        if ci.high < 1:
            assert res.ci_high[i] == pytest.approx(
                ci.high / (1 - ci.high) * t0[i] / t1[i], rel=1e-8
            )
        else:
            assert np.isinf(res.ci_high[i])


def test_rate_ratio_zero_total_is_nan_without_warning_and_broadcasts():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = rate_ratio_test(np.array([[0, 3], [0, 2]]), 1.0, np.array([[0, 0], [4, 2]]), 2.0)
    assert res.ratio.shape == (2, 2)
    assert np.isnan(res.ratio[0, 0]) and np.isnan(res.p_value[0, 0]) and np.isnan(res.ci_low[0, 0])
    assert np.isinf(res.ratio[0, 1]) and np.isinf(res.ci_high[0, 1])
    assert res.ratio[1, 0] == 0.0 and res.ci_low[1, 0] == 0.0
    with pytest.raises(ValueError, match="non-negative integers"):
        rate_ratio_test(1.5, 1.0, 2, 1.0)
    with pytest.raises(ValueError, match="positive"):
        rate_ratio_test(1, 0.0, 2, 1.0)


def test_rate_ratio_interval_covers_the_truth_in_simulation():
    rng = np.random.default_rng(20240601)
    rate1, rate0, t1, t0 = 0.5, 0.4, 40.0, 60.0  # expected counts 20 and 24, true ratio 1.25
    c1 = rng.poisson(rate1 * t1, 4000)
    c0 = rng.poisson(rate0 * t0, 4000)
    res = rate_ratio_test(c1, t1, c0, t0)
    covered = (res.ci_low <= rate1 / rate0) & (rate1 / rate0 <= res.ci_high)
    # Exact (Clopper-Pearson based) intervals are conservative: at least ~95 %.
    assert 0.94 <= covered.mean() <= 0.99
    # Under equal rates the exact test keeps its level (type I error <= 5 %, up to noise).
    null = rate_ratio_test(rng.poisson(0.4 * t1, 4000), t1, rng.poisson(0.4 * t0, 4000), t0)
    assert 0.02 <= (null.p_value < 0.05).mean() <= 0.055


# --------------------------------------------------------------------------- target in reach


def test_target_in_reach_hand_example():
    res = target_in_reach(
        np.array([100.0, 100.0, 0.0, np.nan, 50.0]),
        np.array([81.0, 100.0, 5.0, 4.0, 0.0]),
        baseline_mid=2019.5,
        current_mid=2021.5,
        target_change=-0.3,
        target_year=2024.5,
    )
    assert res.annual_change[0] == pytest.approx(-0.1)
    assert res.projected[0] == pytest.approx(81 * 0.9**3)  # 59.049
    assert res.required[0] == pytest.approx(70.0)
    assert res.annual_change[1] == pytest.approx(0.0)
    assert res.projected[1] == pytest.approx(100.0)
    assert np.isnan(res.annual_change[2]) and np.isnan(res.projected[3])
    assert res.projected[4] == 0.0
    assert list(res.on_track.to_numpy(dtype=object, na_value=None)) == [
        True,
        False,
        None,
        None,
        True,
    ]


def test_target_in_reach_increase_target_and_errors():
    res = target_in_reach(
        [10.0, 10.0],
        [12.1, 10.5],
        baseline_mid=2020.0,
        current_mid=2022.0,
        target_change=0.3,
        target_year=2023.0,
    )
    assert res.projected[0] == pytest.approx(13.31)
    assert list(res.on_track) == [True, False]
    with pytest.raises(ValueError, match="after"):
        target_in_reach(
            [1.0], [1.0], baseline_mid=2022, current_mid=2022, target_change=-0.1, target_year=2030
        )
