"""Hotspot-map evaluation (hit rate, PAI, PEI*, RRI) and crime concentration measures."""

from __future__ import annotations

import numpy as np
import pytest

from geo_usm.stats.evaluation import (
    gini,
    gini_adjusted,
    hit_rates,
    lorenz,
    rolling_evaluation,
    top_share,
)

# Ten equal cells ranked 0..9 by score; test crimes 10, training crimes 17.
SCORE = np.array([9, 8, 7, 6, 5, 4, 3, 2, 1, 0.0])
TEST = np.array([3, 0, 2, 1, 0, 0, 4, 0, 0, 0.0])
TRAIN = np.array([5, 4, 3, 2, 1, 1, 1, 0, 0, 0.0])


def test_hit_rates_hand_computed():
    res = hit_rates(SCORE, TEST, np.ones(10), (0.1, 0.2, 0.3), train_counts=TRAIN)
    # 10 % of the area = the top cell: 3 of 10 test crimes.
    r = res[0.1]
    assert (r.n_features, r.area_share, r.hits, r.n_test) == (1, 0.1, 3.0, 10.0)
    assert r.hit_rate == pytest.approx(0.3)
    assert r.pai == pytest.approx(3.0)
    assert r.pei_star == pytest.approx(3 / 4)  # best single cell has 4
    assert r.rri == pytest.approx((3 / 5) / (10 / 17))
    # 20 %: cells 0 and 1 catch 3; the best two cells (4 + 3) catch 7.
    r = res[0.2]
    assert r.hit_rate == pytest.approx(0.3)
    assert r.pai == pytest.approx(1.5)
    assert r.pei_star == pytest.approx(3 / 7)
    assert r.rri == pytest.approx((3 / 9) / (10 / 17))
    # 30 %: cells 0-2 catch 5; best three cells 4 + 3 + 2 = 9.
    r = res[0.3]
    assert r.pai == pytest.approx(0.5 / 0.3)
    assert r.pei_star == pytest.approx(5 / 9)
    assert r.rri == pytest.approx((5 / 12) / (10 / 17))


def test_hit_rates_unequal_areas_ties_and_nan_scores():
    score = np.array([1.0, 5.0, 5.0, np.nan])
    test = np.array([1.0, 2.0, 6.0, 1.0])
    area = np.array([1.0, 2.0, 1.0, 4.0])  # total 8
    res = hit_rates(score, test, area, (0.25, 0.5))
    # Tie between cells 1 and 2 broken by feature order: cell 1 (area 2) first -> 25 % reached.
    r = res[0.25]
    assert (r.n_features, r.area_share, r.hits) == (1, 0.25, 2.0)
    assert r.pai == pytest.approx((2 / 10) / 0.25)
    # Best area-2 selection by test density: cell 2 (6 per unit) then cell 0 (1 per unit).
    assert r.pei_star == pytest.approx(((2 / 10) / 0.25) / ((7 / 10) / 0.25))
    assert np.isnan(res[0.25].rri)  # no training counts
    # 50 % (area 4): cells 1, 2 then 0 -> area 4, the NaN score ranks last.
    r = res[0.5]
    assert (r.n_features, r.hits, r.area_share) == (3, 9.0, 0.5)
    assert r.pei_star == pytest.approx(1.0)


def test_hit_rates_no_test_crime_and_errors():
    res = hit_rates(SCORE, np.zeros(10), np.ones(10), (0.1,))
    assert np.isnan(res[0.1].hit_rate) and np.isnan(res[0.1].pai) and np.isnan(res[0.1].pei_star)
    with pytest.raises(ValueError, match="shares"):
        hit_rates(SCORE, TEST, np.ones(10), (0.0,))
    with pytest.raises(ValueError, match="area"):
        hit_rates(SCORE, TEST, np.zeros(10))
    with pytest.raises(ValueError, match="expected 10"):
        hit_rates(SCORE, TEST[:5], np.ones(10))


def test_rolling_evaluation_matches_hit_rates_per_split():
    rng = np.random.default_rng(42)
    lam = rng.gamma(0.5, 2.0, size=(60, 1))
    counts = rng.poisson(lam, size=(60, 15)).astype(float)
    area = np.ones(60)
    table, summary = rolling_evaluation(
        counts, area, train=12, labels=[f"2024-{m:02d}" for m in range(1, 16)]
    )
    assert list(table.columns) == [
        "split",
        "train_periods",
        "test_period",
        "share",
        "area_share",
        "hit_rate",
        "pai",
        "pei_star",
        "rri",
        "n_test",
    ]
    assert len(table) == 3 * 3
    first = table[table["split"] == 0].set_index("share")
    assert first.loc[0.05, "train_periods"] == "2024-01..2024-12"
    assert first.loc[0.05, "test_period"] == "2024-13"
    ref = hit_rates(
        counts[:, :12].sum(axis=1), counts[:, 12], area, train_counts=counts[:, :12].sum(1)
    )
    for share, r in ref.items():
        assert first.loc[share, "pai"] == pytest.approx(r.pai)
        assert first.loc[share, "pei_star"] == pytest.approx(r.pei_star)
        assert first.loc[share, "rri"] == pytest.approx(r.rri)
    assert summary[0.1]["pai"] == pytest.approx(table[table["share"] == 0.1]["pai"].mean())
    assert summary[0.1]["n_splits"] == 3
    # A custom score (here: the last period only) is used for ranking.
    table2, _ = rolling_evaluation(counts, area, train=12, score=lambda w: w[:, -1])
    ref2 = hit_rates(counts[:, 11], counts[:, 12], area)
    assert table2.iloc[0]["hit_rate"] == pytest.approx(ref2[0.05].hit_rate)
    with pytest.raises(ValueError, match="train"):
        rolling_evaluation(counts, area, train=15)


# --------------------------------------------------------------------------- concentration


def test_gini_known_distributions():
    assert gini([4, 4, 4, 4]) == pytest.approx(0.0)
    assert gini([0, 0, 0, 0, 10]) == pytest.approx(4 / 5)  # (n - 1) / n
    assert gini([1, 2, 3, 4]) == pytest.approx(0.25)  # mean |xi - xj| = 1.25, mean 2.5
    assert np.isnan(gini([0, 0, 0]))
    with pytest.raises(ValueError, match="non-negative"):
        gini([1, -1])


def test_gini_adjusted_bernasco_steenbeek_examples():
    # lorenzgini::gini examples: 10 places, 8 crimes -> G = 0.8, generalized G' = 0.75
    sparse = [5, 2, 1] + [0] * 7
    assert gini(sparse) == pytest.approx(0.8)
    assert gini_adjusted(sparse) == pytest.approx(0.75)
    # 10 places, 20 crimes: not sparse, G' = G = 0.78
    dense = [10, 8, 2] + [0] * 7
    assert gini_adjusted(dense) == pytest.approx(gini(dense)) == pytest.approx(0.78)
    # maximal equality given the data: each crime in its own place -> G' = 0
    assert gini_adjusted([1, 1, 1] + [0] * 7) == pytest.approx(0.0)


def test_top_share_and_lorenz():
    counts = [10, 5, 5, 0, 0]
    assert top_share(counts, 0.2) == pytest.approx(10 / 20)
    assert top_share(counts, 0.3) == pytest.approx(12.5 / 20)  # 1.5 features: 10 + half of 5
    assert top_share(counts, 0.6) == pytest.approx(1.0)
    assert top_share(counts, 0.0) == 0.0
    x, y = lorenz([1, 2, 3])
    np.testing.assert_allclose(x, [0, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(y, [0, 1 / 6, 1 / 2, 1])
    x, y = lorenz(counts, descending=True)
    assert y[1] == pytest.approx(top_share(counts, 0.2))
    # Gini = 1 - 2 * area under the (ascending) Lorenz curve (trapezoids)
    xa, ya = lorenz(counts)
    area = np.sum((ya[1:] + ya[:-1]) / 2 * np.diff(xa))
    assert gini(counts) == pytest.approx(1 - 2 * area)
