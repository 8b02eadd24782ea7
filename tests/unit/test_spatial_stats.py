"""geo_usm.stats.spatial against esda / libpysal (test-only references) and hand-worked values.

Real data: libpysal's bundled examples (Columbus, St Louis homicides and other polygon sets that
ship with the package, nothing downloaded) and the H3 cells of a real area (a res-9 disk of
radius 12 around a London cell) with a seeded Poisson variable.
"""

from __future__ import annotations

import itertools
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import pytest
import shapely
from scipy import sparse, stats

from geo_usm.stats import spatial as sp

esda = pytest.importorskip("esda")
libpysal = pytest.importorskip("libpysal")
from libpysal.examples import get_path  # noqa: E402

#: Polygon sets shipped inside libpysal (no download).
BUNDLED = [
    "columbus.shp",
    "sids2.shp",
    "stl_hom.shp",
    "G_utm.shp",
    "mexicojoin.shp",
    "us48.shp",
    "tokyomet262.shp",
    "10740.shp",
    "Polygon.shp",
    "Polygon_Holes.shp",
]
PERMS = 999


@contextmanager
def quiet() -> Iterator[None]:
    """Run a reference library whose own warnings (deprecations, islands) are not ours."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def pysal_w(w: sparse.csr_matrix):  # type: ignore[no-untyped-def]
    with quiet():
        return libpysal.weights.WSP(w).to_W(silence_warnings=True)


def neighbour_sets(w: sparse.csr_matrix) -> list[set[int]]:
    w = w.tocsr()
    return [set(w.indices[w.indptr[i] : w.indptr[i + 1]].tolist()) for i in range(w.shape[0])]


def assert_weights_shape(w: sparse.csr_matrix, n: int) -> None:
    assert isinstance(w, sparse.csr_matrix)
    assert w.shape == (n, n)
    assert w.dtype == np.float64
    assert set(np.unique(w.data)) <= {1.0}
    assert (w.diagonal() == 0).all()
    assert abs(w - w.T).nnz == 0


def psim_agrees(ours: np.ndarray, ref: np.ndarray, permutations: int) -> None:
    """Two independent Monte Carlo estimates of the same folded pseudo p-values agree.

    Each estimate has a standard error about ``sqrt(p (1 - p) / P)``; the difference of two has
    ``sqrt(2)`` of it. Bound used: ``|diff| < 5 sqrt(p (1 - p) / P) + 2 / P`` (3.5 standard
    errors of the difference, plus the discreteness of the counts) for at least 99 % of the
    observations, and a mean absolute difference under 0.025 (its expectation is about
    ``0.8 sqrt(2 p (1 - p) / P)``, at most 0.018 for P = 999 since folded p-values are at most
    0.5).
    """
    ok = ~np.isnan(ours) & ~np.isnan(ref)
    p = (ours[ok] + ref[ok]) / 2
    diff = np.abs(ours[ok] - ref[ok])
    bound = 5 * np.sqrt(p * (1 - p) / permutations) + 2 / permutations
    assert (diff < bound).mean() >= 0.99
    assert diff.mean() < 0.025


# ------------------------------------------------------------------------------------------
# fixtures
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def columbus() -> gpd.GeoDataFrame:
    return gpd.read_file(get_path("columbus.shp"))


@pytest.fixture(scope="module")
def columbus_w(columbus: gpd.GeoDataFrame) -> sparse.csr_matrix:
    w, islands = sp.queen_weights(columbus.geometry.values)
    assert len(islands) == 0
    return w


@pytest.fixture(scope="module")
def columbus_queen(columbus: gpd.GeoDataFrame):  # type: ignore[no-untyped-def]
    with quiet():
        return libpysal.weights.Queen.from_dataframe(columbus, use_index=False)


@pytest.fixture(scope="module")
def hexes() -> tuple[np.ndarray, np.ndarray]:
    """H3 res-9 disk of radius 12 around a London cell (469 cells, shuffled), seeded Poisson y.

    The Poisson mean has spatial structure: a hot spot 3 cells east of the centre and a cold
    area, so the statistics have something to find.
    """
    centre = h3.latlng_to_cell(51.5155, -0.1415, 9)
    cells = np.array([h3.str_to_int(c) for c in h3.grid_disk(centre, 12)], dtype=np.uint64)
    rng = np.random.default_rng(20240611)
    cells = rng.permutation(cells)
    hot = h3.grid_ring(centre, 3)[0]
    cold = h3.grid_ring(centre, 9)[5]
    d_hot = np.array([h3.grid_distance(hot, h3.int_to_str(int(c))) for c in cells])
    d_cold = np.array([h3.grid_distance(cold, h3.int_to_str(int(c))) for c in cells])
    mean = 3.0 + 8.0 * np.exp(-((d_hot / 3.0) ** 2)) - 2.5 * np.exp(-((d_cold / 3.0) ** 2))
    y = rng.poisson(mean).astype(np.float64)
    return cells, y


# ------------------------------------------------------------------------------------------
# weights
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2])
def test_hex_weights_are_the_k_ring_within_the_cover(
    hexes: tuple[np.ndarray, np.ndarray], k: int
) -> None:
    cells, _ = hexes
    w = sp.hex_weights(cells, k=k)
    assert_weights_shape(w, len(cells))
    pos = {int(c): i for i, c in enumerate(cells)}
    expected = []
    for c in cells:
        ring = {h3.str_to_int(x) for x in h3.grid_disk(h3.int_to_str(int(c)), k)} - {int(c)}
        expected.append({pos[x] for x in ring if x in pos})
    assert neighbour_sets(w) == expected
    # the interior cells have the full ring, the edge fewer
    assert np.diff(w.indptr).max() == 3 * k * (k + 1)


def test_hex_weights_islands_and_bad_input() -> None:
    a = h3.latlng_to_cell(51.5, -0.12, 9)
    far = h3.latlng_to_cell(53.48, -2.24, 9)
    nb = h3.grid_ring(a, 1)[0]
    cells = np.array([h3.str_to_int(x) for x in (a, far, nb)], dtype=np.uint64)
    w = sp.hex_weights(cells)
    assert neighbour_sets(w) == [{2}, set(), {0}]
    with pytest.raises(ValueError, match="distinct"):
        sp.hex_weights(cells[[0, 0, 1]])
    with pytest.raises(ValueError, match="at least 1"):
        sp.hex_weights(cells, k=0)
    assert sp.hex_weights(np.zeros(0, dtype=np.uint64)).shape == (0, 0)


def test_queen_weights_equal_libpysal_on_columbus(
    columbus_w: sparse.csr_matrix, columbus_queen
) -> None:  # type: ignore[no-untyped-def]
    assert_weights_shape(columbus_w, 49)
    ids = columbus_queen.id_order
    expected = [{ids.index(j) for j in columbus_queen.neighbors[i]} for i in ids]
    assert neighbour_sets(columbus_w) == expected


@pytest.mark.parametrize("name", BUNDLED)
def test_queen_weights_equal_libpysal_on_bundled_polygons(name: str) -> None:
    df = gpd.read_file(get_path(name))
    w, islands = sp.queen_weights(df.geometry.values)
    assert_weights_shape(w, len(df))
    with quiet():
        ref = libpysal.weights.Queen.from_dataframe(df, use_index=False)
    assert islands.tolist() == sorted(ref.islands)
    ref_sets = [set(ref.neighbors[i]) for i in range(len(df))]
    ours = neighbour_sets(w)
    geoms = np.asarray(df.geometry.values, dtype=object)
    extra = 0
    for i, (mine, theirs) in enumerate(zip(ours, ref_sets, strict=True)):
        assert theirs <= mine
        added = mine - theirs
        extra += len(added)
        # only islands gain neighbours: their nearest polygon (and that polygon the island)
        assert not added or i in islands or added <= set(islands.tolist())
    for i in islands:
        dist = shapely.distance(geoms[i], geoms)
        dist[i] = np.inf
        assert min(dist[j] for j in ours[i]) == dist.min()
    assert extra <= 2 * len(islands)


def test_queen_weights_join_a_far_island_to_its_nearest_polygon(
    columbus: gpd.GeoDataFrame, columbus_w: sparse.csr_matrix
) -> None:
    geoms = columbus.geometry.values
    _, _, maxx, maxy = shapely.total_bounds(geoms)
    far = shapely.box(maxx + 10, maxy + 10, maxx + 11, maxy + 11)
    w, islands = sp.queen_weights(np.append(np.asarray(geoms, dtype=object), far))
    n = len(geoms)
    assert islands.tolist() == [n]
    nearest = int(np.argmin(shapely.distance(far, np.asarray(geoms, dtype=object))))
    assert neighbour_sets(w)[n] == {nearest}
    assert w[nearest, n] == 1.0
    assert abs(w[:n, :n] - columbus_w).nnz == 0
    with pytest.raises(ValueError, match="non-empty polygons"):
        sp.queen_weights(np.array([shapely.box(0, 0, 1, 1), shapely.Point(0, 0)], dtype=object))


def test_queen_treats_vertices_by_exact_equality() -> None:
    a = shapely.box(0, 0, 1, 1)
    b = shapely.box(1, 1, 2, 2)  # shares the corner (1, 1): queen neighbours
    c = shapely.box(2 + 1e-12, 0, 3, 1)  # within 1e-12 of b, no shared vertex: an island
    d = shapely.Polygon([(-1, 0), (0, 0), (-0.5, -1)])  # shares (0, 0) with a
    w, islands = sp.queen_weights(np.array([a, b, c, d], dtype=object))
    assert islands.tolist() == [2]
    assert neighbour_sets(w) == [{1, 3}, {0, 2}, {1}, {0}]


def test_subset() -> None:
    w = sparse.csr_matrix(np.array([[0, 1, 1], [1, 0, 0], [1, 0, 0]], dtype=float))
    s = sp.subset(w, np.array([True, False, True]))
    assert s.toarray().tolist() == [[0, 1], [1, 0]]
    assert sp.subset(w, np.array([1, 2])).toarray().tolist() == [[0, 0], [0, 0]]
    with pytest.raises(ValueError, match="mask"):
        sp.subset(w, np.array([True, False]))


# ------------------------------------------------------------------------------------------
# Moran's I and Gi* against esda
# ------------------------------------------------------------------------------------------


def test_global_moran_columbus(columbus: gpd.GeoDataFrame, columbus_w, columbus_queen) -> None:  # type: ignore[no-untyped-def]
    y = columbus["CRIME"].to_numpy()
    ours = sp.global_moran(y, columbus_w, seed=7)
    assert ours["I"] == pytest.approx(0.5002, abs=1e-4)
    np.random.seed(1)  # esda.Moran draws from numpy's global generator
    with quiet():
        ref = esda.Moran(y, columbus_queen, transformation="r", permutations=PERMS)
    for key in ("I", "EI", "VI_norm", "z_norm", "p_norm"):
        assert ours[key] == pytest.approx(getattr(ref, key), rel=1e-9, abs=1e-12)
    assert ours["p_sim"] == ref.p_sim == 0.001  # I is far in the tail: no permutation beats it


def test_global_moran_psim_within_monte_carlo_error(hexes) -> None:  # type: ignore[no-untyped-def]
    cells, y = hexes
    w = sp.hex_weights(cells)
    noise = np.random.default_rng(3).poisson(3.0, len(y)).astype(float)
    ours = sp.global_moran(noise, w, seed=11)
    np.random.seed(2)
    with quiet():
        ref = esda.Moran(noise, pysal_w(w), transformation="r", permutations=PERMS)
    assert ours["I"] == pytest.approx(ref.I, rel=1e-9)
    assert ours["z_norm"] == pytest.approx(ref.z_norm, rel=1e-9)
    p = ref.p_sim
    assert abs(ours["p_sim"] - p) < 5 * np.sqrt(p * (1 - p) / PERMS) + 2 / PERMS


@pytest.mark.parametrize("weights", ["ours", "libpysal"])
def test_local_moran_and_gi_star_columbus(
    columbus: gpd.GeoDataFrame, columbus_w, columbus_queen, weights: str
) -> None:  # type: ignore[no-untyped-def]
    y = columbus["CRIME"].to_numpy()
    w = columbus_w if weights == "ours" else columbus_queen.sparse.tocsr()
    lisa = sp.local_moran(y, w, seed=42)
    gi = sp.gi_star(y, w, permutations=PERMS, seed=42)
    with quiet():
        ref_l = esda.Moran_Local(y, columbus_queen, transformation="r", permutations=PERMS, seed=1)
        ref_g = esda.G_Local(
            y, columbus_queen, transform="B", star=True, permutations=PERMS, seed=1
        )
    np.testing.assert_allclose(lisa.i, ref_l.Is, rtol=0, atol=1e-9)
    np.testing.assert_allclose(lisa.z, ref_l.z, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(lisa.q, ref_l.q)
    np.testing.assert_allclose(gi.z, ref_g.Zs, rtol=0, atol=1e-9)
    np.testing.assert_allclose(gi.g, ref_g.Gs, rtol=0, atol=1e-12)
    np.testing.assert_allclose(gi.p, 2 * ref_g.p_norm, rtol=1e-12)  # esda's p_norm: one-sided
    assert gi.p_sim is not None
    psim_agrees(lisa.p_sim, ref_l.p_sim, PERMS)
    psim_agrees(gi.p_sim, ref_g.p_sim, PERMS)


def test_local_moran_and_gi_star_hexes(hexes) -> None:  # type: ignore[no-untyped-def]
    cells, y = hexes
    w = sp.hex_weights(cells)
    lw = pysal_w(w)
    lisa = sp.local_moran(y, w, seed=5)
    gi = sp.gi_star(y, w, permutations=PERMS, seed=5)
    with quiet():
        ref_l = esda.Moran_Local(y, lw, transformation="r", permutations=PERMS, seed=9)
        ref_g = esda.G_Local(y, lw, transform="B", star=True, permutations=PERMS, seed=9)
    np.testing.assert_allclose(lisa.i, ref_l.Is, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(lisa.q, ref_l.q)
    np.testing.assert_allclose(gi.z, ref_g.Zs, rtol=0, atol=1e-9)
    assert gi.p_sim is not None
    # Integer counts tie the observed statistic often. Ties count as "at least" (esda's rule);
    # we compare sums of y, exactly, while esda compares floating-point statistics (float32
    # when numba is installed) whose rounding breaks many exact ties the other way. So the
    # permutation p-values are compared on y with ties broken (a jitter below the data's
    # resolution); the count with ties is checked against the definition elsewhere.
    jittered = y + np.random.default_rng(8).uniform(0, 1e-3, len(y))
    lisa_j = sp.local_moran(jittered, w, seed=5)
    gi_j = sp.gi_star(jittered, w, permutations=PERMS, seed=5)
    with quiet():
        ref_j = esda.Moran_Local(jittered, lw, transformation="r", permutations=PERMS, seed=9)
        ref_gj = esda.G_Local(jittered, lw, transform="B", star=True, permutations=PERMS, seed=9)
    psim_agrees(lisa_j.p_sim, ref_j.p_sim, PERMS)
    assert gi_j.p_sim is not None
    psim_agrees(gi_j.p_sim, ref_gj.p_sim, PERMS)
    # the planted hot spot is found
    assert (gi.z > 2.58).sum() >= 5
    assert gi.p_sim.min() == pytest.approx(1 / (PERMS + 1))


def brute_larger(
    y: np.ndarray, k: np.ndarray, observed: np.ndarray, up: np.ndarray, ids: np.ndarray
) -> np.ndarray:
    """The definition, one feature and one permutation at a time (reference for the fast count)."""
    out = np.zeros(len(y), dtype=np.int64)
    for i, p in itertools.product(range(len(y)), range(ids.shape[0])):
        if k[i] == 0:
            continue
        drawn = list(ids[p, : k[i]])
        if i in drawn:
            drawn.remove(i)
            drawn.append(ids[p, k[i]])
        s = y[drawn].sum()
        out[i] += s >= observed[i] if up[i] else s <= observed[i]
    return out


@pytest.mark.parametrize("data", ["columbus", "hexes"])
def test_fast_permutation_count_equals_the_definition(data: str, columbus_w, hexes) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    if data == "columbus":
        w = columbus_w
    else:
        cells, _ = hexes
        w = sp.hex_weights(cells[:120])  # a broken-up subset: islands and ragged edges
    n = w.shape[0]
    y = rng.poisson(2.0, n).astype(float)  # integers: many ties, counted as esda (>=)
    k = np.diff(w.indptr)
    observed = w @ y
    up = rng.random(n) < 0.5
    permutations = 199
    m = min(int(k.max()) + 1, n)
    ids = sp._draw_ids(n, m, permutations, np.random.default_rng(99))
    fast = sp._count_larger(y, k, observed, up, permutations, np.random.default_rng(99))
    np.testing.assert_array_equal(fast, brute_larger(y, k, observed, up, ids))


@pytest.mark.parametrize(("n", "m"), [(5, 3), (5, 5), (7, 2)])
def test_random_ids_are_uniform_ordered_samples(n: int, m: int) -> None:
    draws = 120_000
    ids = sp._draw_ids(n, m, draws, np.random.default_rng(2))
    assert (np.sort(ids, axis=1)[:, 1:] != np.sort(ids, axis=1)[:, :-1]).all()
    counts = Counter(map(tuple, ids.tolist()))
    cells = len(list(itertools.permutations(range(n), m)))
    assert len(counts) == cells
    expected = draws / cells
    chi2 = sum((c - expected) ** 2 / expected for c in counts.values())
    assert stats.chi2.sf(chi2, cells - 1) > 1e-4
    # the draw for feature 0 with 2 neighbours: a uniform pair of the others
    pairs = Counter()
    for row in ids[:, : min(m, 3)].tolist():
        drawn = row[:2]
        if 0 in drawn and len(row) > 2:
            drawn = [x for x in drawn if x != 0] + [row[2]]
        if 0 not in drawn:
            pairs[frozenset(drawn)] += 1
    if m >= 3:
        assert len(pairs) == (n - 1) * (n - 2) // 2
        values = np.array(list(pairs.values()))
        assert values.std() / values.mean() < 0.05


def test_same_seed_same_output(hexes) -> None:  # type: ignore[no-untyped-def]
    cells, y = hexes
    w = sp.hex_weights(cells)
    a = sp.local_moran(y, w, seed=123)
    b = sp.local_moran(y, w, seed=123)
    c = sp.local_moran(y, w, seed=124)
    np.testing.assert_array_equal(a.p_sim, b.p_sim)
    assert not np.array_equal(a.p_sim, c.p_sim)
    g1 = sp.gi_star(y, w, permutations=99, seed=np.random.default_rng(5))
    g2 = sp.gi_star(y, w, permutations=99, seed=5)
    assert g1.p_sim is not None and g2.p_sim is not None
    np.testing.assert_array_equal(g1.p_sim, g2.p_sim)
    assert sp.global_moran(y, w, seed=1) == sp.global_moran(y, w, seed=1)


def test_constant_y_gives_nan_without_warnings(columbus_w: sparse.csr_matrix) -> None:
    y = np.full(49, 0.1)
    gi = sp.gi_star(y, columbus_w, permutations=99, seed=0)
    assert gi.p_sim is not None
    for arr in (gi.z, gi.p, gi.p_sim, gi.g):
        assert np.isnan(arr).all()
    lisa = sp.local_moran(y, columbus_w, seed=0)
    assert np.isnan(lisa.i).all() and np.isnan(lisa.p_sim).all()
    assert (lisa.q == 0).all()
    glob = sp.global_moran(y, columbus_w, seed=0)
    assert np.isnan(glob["I"]) and np.isnan(glob["p_sim"])
    assert np.isnan(sp.gi_star(np.zeros(49), columbus_w).z).all()
    assert (sp.gi_class(gi.z, gi.p) == None).all()  # noqa: E711


def test_islands_and_degenerate_features(columbus_w: sparse.csr_matrix) -> None:
    w = columbus_w.tolil()
    w[0, :] = 0
    w[:, 0] = 0
    w = w.tocsr()
    w.eliminate_zeros()
    y = np.arange(49, dtype=float)  # y[24] is the mean: z = 0, the local I cannot vary
    gi = sp.gi_star(y, w, permutations=99, seed=0)
    lisa = sp.local_moran(y, w, seed=0)
    assert gi.p_sim is not None and np.isnan(gi.p_sim[0]) and np.isfinite(gi.z[0])
    assert np.isnan(lisa.p_sim[0]) and lisa.i[0] == 0
    assert lisa.p_sim[24] == 1.0 and lisa.i[24] == 0
    assert np.isfinite(lisa.p_sim[1:5]).all()


def test_inputs_are_checked(columbus_w: sparse.csr_matrix) -> None:
    y = np.arange(49, dtype=float)
    y[3] = np.nan
    with pytest.raises(ValueError, match="subset"):
        sp.gi_star(y, columbus_w)
    with pytest.raises(ValueError, match="shape"):
        sp.local_moran(np.arange(10.0), columbus_w, seed=0)


# ------------------------------------------------------------------------------------------
# FDR, classes, minimum data
# ------------------------------------------------------------------------------------------


def test_fdr_bh_hand_example() -> None:
    # m = 5 tests (the NaN is none). Sorted: 0.005, 0.01, 0.03, 0.04, 0.041;
    # p * m / rank: 0.025, 0.025, 0.05, 0.05, 0.041; running minimum from the largest rank:
    # 0.041, 0.041, 0.041, 0.025, 0.025 (the step-up lowers 0.05 to 0.041).
    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan, 0.041])
    expected = np.array([0.025, 0.041, 0.041, 0.025, np.nan, 0.041])
    np.testing.assert_allclose(sp.fdr_bh(p), expected, rtol=1e-12)
    ok = ~np.isnan(p)
    np.testing.assert_allclose(
        sp.fdr_bh(p)[ok], stats.false_discovery_control(p[ok], method="bh"), rtol=1e-12
    )
    rng = np.random.default_rng(0)
    q = np.concatenate([rng.uniform(0, 1, 500), rng.uniform(0, 0.001, 50)])
    np.testing.assert_allclose(sp.fdr_bh(q), stats.false_discovery_control(q), rtol=1e-12)
    assert sp.fdr_bh([1.0, 1.0]).tolist() == [1.0, 1.0]
    assert np.isnan(sp.fdr_bh([np.nan])).all()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        sp.fdr_bh([0.5, 1.5])


def test_gi_class() -> None:
    z = np.array([3.0, 2.2, 1.7, 1.0, -3.0, -2.2, -1.7, 0.0, 2.0, np.nan])
    p = np.array([0.005, 0.03, 0.09, 0.3, 0.005, 0.03, 0.09, 1.0, np.nan, 0.5])
    assert sp.gi_class(z, p).tolist() == [
        "hot_99",
        "hot_95",
        "hot_90",
        "not_significant",
        "cold_99",
        "cold_95",
        "cold_90",
        "not_significant",
        None,
        None,
    ]
    # strict inequality (esda): p exactly at a level is not within it
    assert sp.gi_class([2.0], [0.05]).tolist() == ["hot_90"]
    assert sp.gi_class([2.0], [0.0005], levels=(0.001, 0.01)).tolist() == ["hot_99.9"]
    # the analytic p of z = 1.96 sits at 0.05
    z = np.array([1.0, 1.7, 2.0, 2.7, -2.7])
    assert sp.gi_class(z, 2 * stats.norm.sf(np.abs(z))).tolist() == [
        "not_significant",
        "hot_90",
        "hot_95",
        "hot_99",
        "cold_99",
    ]


def test_lisa_class() -> None:
    q = np.array([1, 2, 3, 4, 1, 0, 3])
    p = np.array([0.01, 0.01, 0.04, 0.001, 0.2, 0.01, np.nan])
    assert sp.lisa_class(q, p, 0.05).tolist() == [
        "HH",
        "LH",
        "LL",
        "HL",
        "not_significant",
        None,
        None,
    ]
    assert sp.lisa_class([1], [0.05], 0.05).tolist() == ["not_significant"]


def test_enough_data() -> None:
    y = np.full(40, np.nan)
    y[:12] = 5
    assert sp.enough_data(y) == "12 features with a value, at least 30 needed"
    y = np.zeros(40)
    y[:17] = 1
    assert sp.enough_data(y) == "17 incidents, at least 30 needed"
    assert sp.enough_data(y, min_incidents=None) is None
    assert sp.enough_data(np.arange(40.0)) is None
    assert sp.enough_data(np.full(40, 2.0)) == "all 40 features have the same value"
    assert sp.enough_data(np.arange(10.0), min_features=5, min_incidents=None) is None


# ------------------------------------------------------------------------------------------
# Empirical Bayes rates against esda.smoothing
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stl() -> tuple[np.ndarray, np.ndarray, object]:
    df = pd.read_csv(get_path("stl_hom.csv"))
    with quiet():
        w = libpysal.io.open(get_path("stl.gal")).read()
    w.id_order = sorted(w.id_order, key=int)  # the records' order, as esda's example does
    return df["HC8893"].to_numpy(float), df["PO8893"].to_numpy(float), w


def test_eb_global_equals_esda(stl) -> None:  # type: ignore[no-untyped-def]
    e, b, _ = stl
    with quiet():
        ref = esda.smoothing.Empirical_Bayes(e, b).r.ravel()
    np.testing.assert_allclose(sp.eb_global(e, b), ref, rtol=1e-9)
    # base 0 or NaN: NaN, and the others as esda without those features
    e2, b2 = np.append(e, [3.0, 2.0]), np.append(b, [0.0, np.nan])
    out = sp.eb_global(e2, b2)
    assert np.isnan(out[-2:]).all()
    np.testing.assert_allclose(out[:-2], ref, rtol=1e-9)


def test_eb_global_negative_prior_variance_is_zero() -> None:
    # rates that vary less than Poisson noise: the method-of-moments variance is negative
    e = np.array([10.0, 11.0, 9.0, 10.0])
    b = np.full(4, 1000.0)
    np.testing.assert_allclose(sp.eb_global(e, b), np.full(4, 0.01))


def test_eb_spatial_equals_esda(stl) -> None:  # type: ignore[no-untyped-def]
    e, b, w = stl
    with quiet():
        ref = esda.smoothing.Spatial_Empirical_Bayes(e, b, w).r.ravel()
        mat = w.sparse.tocsr()
    np.testing.assert_allclose(sp.eb_spatial(e, b, mat), ref, rtol=1e-9)


def test_eb_spatial_leaves_out_features_without_base(stl) -> None:  # type: ignore[no-untyped-def]
    e, b, w = stl
    with quiet():
        mat = w.sparse.tocsr()
    b2 = b.copy()
    b2[[3, 10]] = [0.0, np.nan]
    out = sp.eb_spatial(e, b2, mat)
    assert np.isnan(out[[3, 10]]).all()
    keep = np.isfinite(b2) & (b2 > 0)
    np.testing.assert_allclose(out[keep], sp.eb_spatial(e[keep], b2[keep], sp.subset(mat, keep)))
    assert np.isfinite(out[keep]).all()
