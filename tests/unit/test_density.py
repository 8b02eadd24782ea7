"""Kernel density surface and its COG: geo_usm.density."""

from __future__ import annotations

import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from pyproj import CRS, Transformer
from scipy.spatial import cKDTree

from geo_usm.density import (
    MIN_BANDWIDTH_CELLS,
    NODATA,
    UNITS,
    bandwidth,
    default_cell_size,
    kde_groups,
    kde_surface,
    read_surface,
    weighted_median,
    write_cog,
    write_surfaces,
)
from geo_usm.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
CAMDEN = ROOT / "sample_data" / "camden" / "data"
BNG = CRS.from_epsg(27700)

# A 2 km x 1.5 km study area on 20 m cells (edges are multiples of the cell size).
CELL = 20.0
X0, Y0, X1, Y1 = 530_000.0, 180_000.0, 532_000.0, 181_500.0
BOX = shapely.box(X0, Y0, X1, Y1)


def direct_density(
    surface_shape: tuple[int, int],
    transform: object,
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    h: float,
    kernel: str = "quartic",
) -> np.ndarray:
    """Density (per km2) at every cell centre by the kernel formula, one point at a time."""
    rows, cols = surface_shape
    cx, cy = np.meshgrid(np.arange(cols) + 0.5, np.arange(rows) + 0.5)
    a = transform  # affine: x = c*col + xoff, y = f*row + yoff
    gx = a.c + a.a * cx  # type: ignore[attr-defined]
    gy = a.f + a.e * cy  # type: ignore[attr-defined]
    out = np.zeros((rows, cols))
    for xi, yi, wi in zip(x, y, w, strict=True):
        u2 = ((gx - xi) ** 2 + (gy - yi) ** 2) / h**2
        if kernel == "quartic":
            k = 3 / (math.pi * h**2) * np.where(u2 < 1, (1 - u2) ** 2, 0.0)
        else:
            k = 2 / (math.pi * h**2) * np.where(u2 < 1, 1 - u2, 0.0)
        out += wi * k
    return out * 1e6


def cell_centres(rng: np.random.Generator, n: int, margin: int) -> tuple[np.ndarray, np.ndarray]:
    """Random cell centres of the BOX grid, some up to ``margin`` cells outside it."""
    cols = rng.integers(-margin, int((X1 - X0) / CELL) + margin, n)
    rows = rng.integers(-margin, int((Y1 - Y0) / CELL) + margin, n)
    return X0 + (cols + 0.5) * CELL, Y1 - (rows + 0.5) * CELL


# --- the surface against an independent computation ------------------------------------------


@pytest.mark.parametrize("binning", ["linear", "simple"])
@pytest.mark.parametrize("kernel", ["quartic", "epanechnikov"])
def test_fft_equals_direct_formula_for_points_at_cell_centres(kernel: str, binning: str) -> None:
    rng = np.random.default_rng(7)
    x, y = cell_centres(rng, 40, margin=8)  # some outside the area, within the bandwidth
    x, y = np.append(x, x[:3]), np.append(y, y[:3])  # coincident points, as police.uk's
    w = rng.uniform(0.5, 3.0, x.size)
    h = 137.0
    s = kde_surface(
        x, y, study_area=BOX, cell_size=CELL, bandwidth=h, weights=w, kernel=kernel, crs=BNG,
        binning=binning,
    )  # fmt: skip
    ref = direct_density(s.array.shape, s.transform, x, y, w, h, kernel)
    assert s.array.dtype == np.float32
    assert s.inside.all()
    # Binning is exact here; the tolerance covers float32 storage and FFT round-off.
    np.testing.assert_allclose(s.array, ref, rtol=1e-6, atol=1e-9 * ref.max())
    assert (s.array[ref == 0] == 0).all()  # no FFT noise where no kernel reaches
    assert s.bandwidth == h and s.bandwidth_rule == "caller-supplied"
    assert s.kernel == kernel and s.binning == binning


def test_binning_errors_stay_within_the_stated_bounds() -> None:
    rng = np.random.default_rng(11)
    x = rng.uniform(X0 - 200, X1 + 200, 40)  # some outside, near and beyond the padding
    y = rng.uniform(Y0 - 200, Y1 + 200, 40)
    h = 150.0
    peak = 3 / (math.pi * h**2) * 1e6
    errors = {}
    for binning in ("simple", "linear"):
        s = kde_surface(x, y, study_area=BOX, cell_size=CELL, bandwidth=h, binning=binning)
        ref = direct_density(s.array.shape, s.transform, x, y, np.ones(40), h)
        errors[binning] = np.abs(s.array - ref).max()
    # Simple: each point moves at most half a cell diagonal; steepest slope 8/(3 sqrt 3 h) peak.
    simple_bound = x.size * peak * 8 / (3 * math.sqrt(3) * h) * CELL / math.sqrt(2)
    # Linear: bilinear interpolation error, c^2/8 (|K_xx| + |K_yy|) <= c^2/8 * 16/h^2 peak.
    linear_bound = x.size * peak * CELL**2 / 8 * 16 / h**2
    assert 0 < errors["simple"] <= simple_bound
    assert 0 < errors["linear"] <= linear_bound
    assert errors["linear"] < errors["simple"] / 3


def test_linear_binning_keeps_weight_and_centroid() -> None:
    # One point between cell centres, far from the edges: the surface holds exactly its
    # weight (to the sampled kernel's mass) and is centred on it.
    x, y = np.array([X0 + 1007.3]), np.array([Y0 + 702.9])
    s = kde_surface(x, y, study_area=BOX, cell_size=CELL, bandwidth=200.0, weights=[2.5])
    rows, cols = np.nonzero(s.array > 0)
    gx, gy = s.transform * (cols + 0.5, rows + 0.5)
    v = s.array[rows, cols].astype(np.float64)
    assert s.integral == pytest.approx(2.5, rel=1e-3)
    assert np.average(gx, weights=v) == pytest.approx(x[0], abs=1e-3)
    assert np.average(gy, weights=v) == pytest.approx(y[0], abs=1e-3)


# --- the integral ---------------------------------------------------------------------------


def test_integral_is_n_when_no_kernel_crosses_the_boundary() -> None:
    rng = np.random.default_rng(3)
    x = rng.uniform(X0 + 400, X1 - 400, 500)
    y = rng.uniform(Y0 + 400, Y1 - 400, 500)
    s = kde_surface(x, y, study_area=BOX, cell_size=CELL, bandwidth=250.0, crs=BNG)
    assert s.n_points == 500 and s.total_weight == 500
    assert s.integral == pytest.approx(500, rel=1e-3)
    assert s.integral_share == pytest.approx(1.0, rel=1e-3)
    assert s.status == "ok" and s.reason is None


def test_integral_is_smaller_when_kernels_spill_over_the_boundary() -> None:
    # Points on the western edge: about half of each kernel falls outside.
    y = np.linspace(Y0 + 400, Y1 - 400, 50)
    x = np.full(50, X0)
    s = kde_surface(x, y, study_area=BOX, cell_size=CELL, bandwidth=200.0, crs=BNG)
    assert 0.4 < s.integral_share < 0.6
    # Points beyond the edge by more than the bandwidth add nothing.
    far = kde_surface(x - 250, y, study_area=BOX, cell_size=CELL, bandwidth=200.0, crs=BNG)
    assert far.integral == 0 and np.nanmax(far.array) == 0
    assert far.status == "ok"


def test_cells_outside_the_study_area_are_nodata() -> None:
    tri = shapely.Polygon([(X0, Y0), (X1, Y0), (X0, Y1)])
    x, y = np.array([X0 + 200.0]), np.array([Y0 + 200.0])
    s = kde_surface(x, y, study_area=tri, cell_size=CELL, bandwidth=300.0, crs=BNG)
    rows, cols = s.array.shape
    cx, cy = np.meshgrid(np.arange(cols) + 0.5, np.arange(rows) + 0.5)
    gx = X0 + cx * CELL
    gy = Y1 - cy * CELL
    centre_inside = shapely.contains_xy(tri, gx, gy)
    assert (np.isnan(s.array) == ~centre_inside).all()
    assert np.isnan(NODATA)
    full = kde_surface(x, y, study_area=BOX, cell_size=CELL, bandwidth=300.0)
    assert s.integral == pytest.approx(np.nansum(full.array[centre_inside]) * CELL**2 / 1e6)


# --- grid and defaults ----------------------------------------------------------------------


def test_grid_covers_the_bounds_snapped_to_the_cell_size() -> None:
    area = shapely.box(530_013.0, 180_007.0, 531_291.0, 181_104.0)
    s = kde_surface([530_500.0], [180_500.0], study_area=area, cell_size=25.0, bandwidth=100.0)
    t = s.transform
    rows, cols = s.array.shape
    assert (t.a, t.e) == (25.0, -25.0)
    assert (t.c, t.f) == (530_000.0, 181_125.0)
    assert (t.c + cols * 25.0, t.f - rows * 25.0) == (531_300.0, 180_000.0)
    assert s.crs is None
    from_area = kde_surface([530_500.0], [180_500.0], study_area=gpd.GeoSeries([area], crs=BNG))
    assert from_area.crs == BNG


def test_default_cell_size_follows_the_arcgis_rule_clamped() -> None:
    assert default_cell_size((0, 0, 7600, 6600)) == 26.0  # 6600 / 250 = 26.4
    assert default_cell_size((0, 0, 1000, 1000)) == 10.0
    assert default_cell_size((0, 0, 90_000, 60_000)) == 100.0


def test_no_points_gives_a_zero_surface_and_a_reason(tmp_path: Path) -> None:
    s = kde_surface([], [], study_area=BOX, cell_size=CELL, crs=BNG)
    assert s.status == "no_points" and s.is_empty and s.reason
    assert (s.array == 0).all() and s.integral == 0
    assert math.isnan(s.integral_share) and math.isnan(s.bandwidth)
    write_surfaces(tmp_path / "empty.tif", [(s, "all crimes")])
    arr, _, tags = read_surface(tmp_path / "empty.tif")
    assert (arr == 0).all() and tags["status"] == "no_points"


def test_the_rule_is_floored_at_a_few_cells() -> None:
    x = np.array([X0 + 500.0, X0 + 501.0, X0 + 502.0])
    s = kde_surface(x, np.full(3, Y0 + 500.0), study_area=BOX, cell_size=CELL, crs=BNG)
    assert s.status == "bandwidth_floor" and s.reason
    assert s.bandwidth == MIN_BANDWIDTH_CELLS * CELL
    one = kde_surface([X0 + 500.0], [Y0 + 500.0], study_area=BOX, cell_size=CELL)
    assert one.status == "bandwidth_floor" and one.integral == pytest.approx(1, rel=5e-3)


def test_groups_share_the_grid_and_bandwidth_and_add_up() -> None:
    rng = np.random.default_rng(5)
    x = rng.uniform(X0, X1, 300)
    y = rng.uniform(Y0, Y1, 300)
    labels = rng.choice(["burglary", "robbery", "theft"], 300)
    out = kde_groups(x, y, labels, study_area=BOX, cell_size=CELL, crs=BNG)
    assert [name for _, name in out] == ["all crimes", "burglary", "robbery", "theft"]
    first = out[0][0]
    assert first.bandwidth == bandwidth(x, y)[0]
    assert all(s.bandwidth == first.bandwidth and s.transform == first.transform for s, _ in out)
    assert sum(s.n_points for s, _ in out[1:]) == 300
    total = np.sum([s.array for s, _ in out[1:]], axis=0)
    np.testing.assert_allclose(total, first.array, rtol=1e-5, atol=1e-6 * np.nanmax(total))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"x": [np.nan], "y": [0.0]}, "missing or infinite"),
        ({"weights": [-1.0]}, "non-negative"),
        ({"crs": 4326}, "not a projected CRS"),
        ({"crs": 2263}, "not metres"),
        ({"kernel": "gaussian"}, "unknown kernel"),
        ({"binning": "nearest"}, "unknown binning"),
        ({"bandwidth": -5.0}, "positive"),
        ({"bandwidth": 5.0}, "less than one cell"),
        ({"cell_size": 0.0}, "positive"),
        ({"study_area": shapely.Point(0, 0)}, "polygons"),
        ({"cell_size": 0.1, "bandwidth": 100.0}, "more than"),
        ({"study_area": gpd.GeoSeries([BOX], crs=3857), "crs": BNG}, "reproject"),
    ],
)
def test_errors_the_user_can_fix(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"x": [X0 + 10.0], "y": [Y0 + 10.0], "study_area": BOX}
    args.update({"cell_size": CELL} if "cell_size" not in kwargs else {})
    args.update(kwargs)
    with pytest.raises(InputError, match=match):
        kde_surface(**args)  # type: ignore[arg-type]


# --- the bandwidth rule ---------------------------------------------------------------------


def test_bandwidth_rule_against_a_hand_computation() -> None:
    # Mean centre (0, 0); distances 1, 1, 1, 1, 10, 10.
    x = np.array([1.0, -1.0, 0.0, 0.0, 10.0, -10.0])
    y = np.array([0.0, 0.0, 1.0, -1.0, 0.0, 0.0])
    sd = math.sqrt((4 * 1 + 2 * 100) / 6)  # 5.83
    dm = 1.0
    assert math.sqrt(1 / math.log(2)) * dm < sd  # the median term wins: outliers are tamed
    h, rule = bandwidth(x, y)
    assert h == pytest.approx(0.9 * math.sqrt(1 / math.log(2)) * dm * 6**-0.2, rel=1e-12)
    assert "0.9 * min(SD, sqrt(1/ln 2) * Dm) * n^-0.2" in rule
    # Weights 2 on the outliers: n = 8, SD^2 = (4 + 400) / 8, weighted median (1 + 10) / 2.
    w = np.array([1, 1, 1, 1, 2, 2])
    hw, _ = bandwidth(x, y, w)
    sdw = math.sqrt(404 / 8)
    dmw = 5.5
    expected = 0.9 * min(sdw, math.sqrt(1 / math.log(2)) * dmw) * 8**-0.2
    assert hw == pytest.approx(expected, rel=1e-12)
    # Weights are counts: the same as repeating the points.
    hr, _ = bandwidth(np.repeat(x, w), np.repeat(y, w))
    assert hr == pytest.approx(hw, rel=1e-12)


def test_bandwidth_standard_distance_term() -> None:
    # Four points at distance 1: SD = Dm = 1 and SD < 1.2011 Dm.
    h, _ = bandwidth([1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 1.0, -1.0])
    assert h == pytest.approx(0.9 * 4**-0.2, rel=1e-12)


def test_bandwidth_override_and_degenerate_input() -> None:
    assert bandwidth([0.0], [0.0], override=250.0) == (250.0, "caller-supplied")
    with pytest.raises(InputError, match="two distinct"):
        bandwidth([5.0, 5.0], [1.0, 1.0])
    with pytest.raises(InputError, match="positive"):
        bandwidth([0.0, 1.0], [0.0, 1.0], override=0.0)


def test_weighted_median_matches_numpy_for_equal_weights() -> None:
    rng = np.random.default_rng(2)
    for n in (1, 2, 7, 10):
        v = rng.normal(size=n)
        assert weighted_median(v, np.ones(n)) == pytest.approx(np.median(v))
    assert weighted_median(np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 5.0])) == 3.0


# --- the COG --------------------------------------------------------------------------------


def test_cog_is_valid_and_carries_the_metadata(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    x = rng.uniform(X0, X1, 200)
    y = rng.uniform(Y0, Y1, 200)
    labels = np.where(rng.random(200) < 0.5, "violence", "theft")
    tri = shapely.Polygon([(X0, Y0), (X1, Y0), (X1, Y1)])
    out = kde_groups(x, y, labels, study_area=tri, cell_size=5.0, crs=BNG)
    path = tmp_path / "risk_surface.tif"
    write_surfaces(path, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["risk_surface.tif"]  # no tmp left
    first = out[0][0]
    with rasterio.open(path) as src:
        assert src.profile["driver"] == "GTiff"
        assert src.profile["tiled"] and src.profile["blockxsize"] == 256
        assert src.profile["compress"] == "deflate"
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert src.overviews(1) and src.overviews(3)
        assert src.count == 3
        assert src.descriptions == ("all crimes", "theft", "violence")
        assert src.units == (UNITS,) * 3
        assert CRS.from_user_input(src.crs.to_wkt()) == BNG
        assert src.transform == first.transform
        assert math.isnan(src.nodata)
        tags = src.tags()
        assert tags["units"] == UNITS
        assert float(tags["bandwidth_m"]) == pytest.approx(first.bandwidth, rel=1e-5)
        assert tags["bandwidth_rule"].startswith("arcgis-silverman")
        assert float(tags["cell_size_m"]) == 5.0
        assert int(tags["n_points"]) == 200
        assert float(tags["integral"]) == pytest.approx(first.integral, rel=1e-9)
        assert int(src.tags(2)["n_points"]) + int(src.tags(3)["n_points"]) == 200
        assert src.tags(1)["units"] == UNITS
        ov = src.read(1, out_shape=(src.height // 2, src.width // 2))  # read from overview
        assert np.isfinite(ov).any()
    arr, profile, tags2 = read_surface(path)
    assert arr.shape == (3, *first.array.shape)
    np.testing.assert_array_equal(np.isnan(arr[0]), ~first.inside)  # nodata outside
    assert (~first.inside).any()
    np.testing.assert_array_equal(arr[0], first.array)
    assert profile["descriptions"][0] == "all crimes" and tags2 == tags


def test_write_cog_replaces_an_existing_file_atomically(tmp_path: Path) -> None:
    path = tmp_path / "r.tif"
    path.write_bytes(b"old")
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    t = rasterio.transform.from_origin(0, 30, 10, 10)
    write_cog(path, [(a, "all crimes")], t, BNG, nodata=float("nan"), tags={"n_points": 5})
    arr, profile, tags = read_surface(path)
    np.testing.assert_array_equal(arr[0], a)
    assert tags["n_points"] == "5" and profile["count"] == 1
    with pytest.raises(ValueError, match="one shape"):
        write_cog(path, [(a, "a"), (a[:2], "b")], t, BNG, nodata=float("nan"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.tif"]


# --- real data: Camden, June 2019 -----------------------------------------------------------


def test_camden_crimes_real_data() -> None:
    borough = gpd.read_file(CAMDEN / "camden_boundaries.gpkg", layer="borough")
    assert CRS.from_user_input(borough.crs) == BNG
    crimes = pd.read_csv(CAMDEN / "camden_crime_2019_06.csv")
    to_bng = Transformer.from_crs(4326, 27700, always_xy=True)
    x, y = to_bng.transform(crimes["longitude"].to_numpy(), crimes["latitude"].to_numpy())
    area = borough.geometry.iloc[0]
    s = kde_surface(x, y, study_area=area, crs=BNG)
    print(
        f"\nCamden: n={s.n_points} cell={s.cell_size} m bandwidth={s.bandwidth:.1f} m "
        f"grid={s.array.shape} integral={s.integral:.1f} share={s.integral_share:.4f}"
    )
    assert s.cell_size == 27.0  # 6639 m / 250, whole metres
    assert 0.85 <= s.integral_share <= 1.0
    # The share of crimes located inside the borough bounds the share of density held there.
    assert s.integral_share < shapely.contains_xy(area, x, y).mean()
    # The hottest cell is in the King's Cross ward (the stations and their approaches, the
    # borough's busiest crime location), and is the hottest by the direct quartic formula too,
    # up to the binning error (points moved to cell centres).
    r, c = np.unravel_index(np.nanargmax(s.array), s.array.shape)
    hx, hy = s.transform * (c + 0.5, r + 0.5)
    wards = gpd.read_file(CAMDEN / "camden_boundaries.gpkg", layer="wards_2022")
    ward = wards.loc[wards.contains(shapely.Point(hx, hy)), "wd22nm"].tolist()
    rows, cols = np.nonzero(s.inside)
    gx, gy = s.transform * (cols + 0.5, rows + 0.5)
    pairs = cKDTree(np.column_stack([gx, gy])).sparse_distance_matrix(
        cKDTree(np.column_stack([x, y])), s.bandwidth, output_type="ndarray"
    )
    u2 = pairs["v"] ** 2 / s.bandwidth**2
    k = 3 / (math.pi * s.bandwidth**2) * (1 - u2) ** 2 * 1e6
    direct = np.bincount(pairs["i"], weights=k, minlength=rows.size)
    fft = s.array[rows, cols]
    err = np.abs(fft - direct).max() / direct.max()
    at = int(np.flatnonzero((rows == r) & (cols == c))[0])
    print(
        f"hottest cell ({hx:.0f}, {hy:.0f}) in {ward}: {fft.max():.0f}/km2 "
        f"(direct {direct.max():.0f}/km2 at the direct maximum); binning error <= {err:.2%} of max"
    )
    assert ward == ["King's Cross"]
    assert direct[at] >= 0.99 * direct.max()
    assert err < 0.01
