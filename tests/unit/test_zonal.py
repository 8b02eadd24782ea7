"""Exact zonal statistics: hand-computed fixtures, nodata, CRS handling, conservation, and a
brute-force check against shapely intersection areas."""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from rasterio.transform import from_origin

import geo_usm.zonal as zonal
from geo_usm.errors import InputError
from geo_usm.zonal import COLUMNS, zonal_stats, zonal_stats_array

BNG = "EPSG:27700"
X0, Y0 = 530_000.0, 180_000.0  # south-west corner of the 4x4 fixture, in BNG metres

# 4x4 raster, 10 m pixels, rows from north to south; pixel (row, col) spans
# x in [X0 + 10 col, X0 + 10 (col + 1)], y in [Y0 + 40 - 10 (row + 1), Y0 + 40 - 10 row].
VALUES = np.arange(1, 17, dtype="float64").reshape(4, 4)
#   1  2  3  4      y 30..40
#   5  6  7  8      y 20..30
#   9 10 11 12      y 10..20
#  13 14 15 16      y  0..10
TRANSFORM = from_origin(X0, Y0 + 40, 10, 10)


def local(geom):
    """Shift a geometry drawn in fixture-local metres (origin at the SW corner) to BNG."""
    return shapely.transform(geom, lambda xy: xy + np.array([X0, Y0]))


def frame(geoms, crs=BNG):
    return gpd.GeoSeries([local(g) for g in geoms], crs=crs)


def write_raster(
    path, values, transform=TRANSFORM, *, crs=BNG, nodata=None, dtype=None, scale=None, offset=None
):
    values = np.asarray(values)
    profile = {
        "driver": "GTiff",
        "width": values.shape[1],
        "height": values.shape[0],
        "count": 1,
        "dtype": dtype or values.dtype.name,
        "transform": transform,
        "nodata": nodata,
    }
    if crs is not None:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(values.astype(profile["dtype"]), 1)
        if scale is not None:
            dst.scales = (scale,)
            dst.offsets = (offset or 0.0,)
    return path


# polygons drawn on the fixture, with their hand-computed statistics
HALF_PIXEL = shapely.box(0, 30, 5, 40)  # west half of pixel (0, 0) = 1
FOUR_QUARTERS = shapely.box(5, 25, 15, 35)  # a quarter of pixels 1, 2, 5, 6
TRIANGLE = shapely.Polygon([(20, 0), (40, 0), (40, 20)])  # 16 whole, halves of 15 and 12
HOLED = shapely.box(0, 0, 20, 20).difference(shapely.box(5, 5, 15, 15))  # 3/4 of 9, 10, 13, 14
HALF_OUTSIDE = shapely.box(35, 10, 50, 20)  # half of pixel 12, 100 m2 beyond the east edge
SHAPES = [HALF_PIXEL, FOUR_QUARTERS, TRIANGLE, HOLED, HALF_OUTSIDE]
EXPECTED = {  # sum, coverage, outside_coverage (pixels of 100 m2)
    "sum": [0.5, (1 + 2 + 5 + 6) / 4, 16 + 15 / 2 + 12 / 2, 0.75 * (9 + 10 + 13 + 14), 12 / 2],
    "coverage": [0.5, 1.0, 2.0, 3.0, 0.5],
    "outside_coverage": [0.0, 0.0, 0.0, 0.0, 1.0],
}


def test_hand_computed(tmp_path):
    path = write_raster(tmp_path / "r.tif", VALUES)
    polys = frame(SHAPES)
    polys.index = ["half", "quarters", "triangle", "holed", "outside"]
    z = zonal_stats(polys, path)
    assert list(z.table.columns) == list(COLUMNS)
    assert list(z.table.index) == list(polys.index)
    for col, expected in EXPECTED.items():
        np.testing.assert_allclose(z.table[col], expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(z.table["nodata_coverage"], 0.0)
    np.testing.assert_allclose(
        z.table["mean"], np.divide(EXPECTED["sum"], EXPECTED["coverage"]), rtol=1e-12
    )
    assert z.raster_total == 136.0
    assert (z.n_valid_pixels, z.n_nodata_pixels) == (16, 0)
    assert z.pixel_area == 100.0
    assert z.covered_total == pytest.approx(sum(EXPECTED["sum"]), rel=1e-12)
    assert z.outside_total == pytest.approx(136.0 - sum(EXPECTED["sum"]), rel=1e-12)
    assert z.outside_share == pytest.approx(z.outside_total / 136.0, rel=1e-12)
    assert z.raster_crs.equals(BNG)


def test_nodata_value_is_excluded_and_counted(tmp_path):
    values = VALUES.copy()
    values[1, 1] = -9999  # the pixel of value 6
    path = write_raster(tmp_path / "r.tif", values, nodata=-9999)
    inside_nodata = shapely.box(12, 22, 17, 27)  # a quarter of the nodata pixel only
    z = zonal_stats(frame([FOUR_QUARTERS, inside_nodata, HALF_PIXEL]), path)
    t = z.table
    assert t["sum"].tolist() == pytest.approx([(1 + 2 + 5) / 4, 0.0, 0.5], rel=1e-12)
    assert t["coverage"].tolist() == pytest.approx([0.75, 0.0, 0.5], rel=1e-12)
    assert t["nodata_coverage"].tolist() == pytest.approx([0.25, 0.25, 0.0], rel=1e-12)
    assert t["mean"].iloc[0] == pytest.approx(2.0 / 0.75, rel=1e-12)
    assert math.isnan(t["mean"].iloc[1])  # "no data", not 0
    assert t["nodata_coverage"].iloc[2] == 0.0  # exactly
    assert z.raster_total == 136.0 - 6.0
    assert (z.n_valid_pixels, z.n_nodata_pixels) == (15, 1)


def test_nan_and_masked_pixels_are_nodata(tmp_path):
    values = VALUES.copy()
    values[1, 1] = np.nan  # value 6, NaN without a declared nodata value
    path = write_raster(tmp_path / "nan.tif", values)
    z = zonal_stats(frame([FOUR_QUARTERS]), path)
    assert z.table["sum"].iloc[0] == pytest.approx(2.0, rel=1e-12)
    assert z.table["nodata_coverage"].iloc[0] == pytest.approx(0.25, rel=1e-12)
    assert z.raster_total == 130.0

    masked = tmp_path / "masked.tif"
    write_raster(masked, VALUES)
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(masked, "r+") as dst:
        mask = np.full((4, 4), 255, dtype="uint8")
        mask[0, 1] = 0  # value 2 masked out
        dst.write_mask(mask)
    z = zonal_stats(frame([FOUR_QUARTERS]), masked)
    assert z.table["sum"].iloc[0] == pytest.approx((1 + 5 + 6) / 4, rel=1e-12)
    assert z.table["nodata_coverage"].iloc[0] == pytest.approx(0.25, rel=1e-12)
    assert (z.raster_total, z.n_nodata_pixels) == (134.0, 1)


def test_scale_and_offset_are_applied(tmp_path):
    raw = (VALUES * 2).astype("uint16")  # stored 2, 4, ... 32; real value = raw * 0.5 + 1
    path = write_raster(tmp_path / "r.tif", raw, scale=0.5, offset=1.0)
    z = zonal_stats(frame([FOUR_QUARTERS, HALF_PIXEL]), path)
    assert z.table["sum"].tolist() == pytest.approx([3.5 + 1.0, 0.5 * 2.0], rel=1e-12)
    assert z.raster_total == pytest.approx(136.0 + 16.0, rel=1e-12)


def test_empty_missing_and_mixed_geometries(tmp_path):
    path = write_raster(tmp_path / "r.tif", VALUES)
    mixed = shapely.GeometryCollection(
        [HALF_PIXEL, shapely.LineString([(0, 0), (40, 40)]), shapely.Point(3, 3)]
    )
    nested = shapely.GeometryCollection([shapely.MultiPolygon([HALF_PIXEL, TRIANGLE])])
    far = shapely.box(1000, 1000, 1010, 1010)  # 1 pixel's worth, wholly beyond the raster
    geoms = [mixed, nested, shapely.Polygon(), shapely.LineString([(0, 0), (5, 5)]), far]
    polys = gpd.GeoSeries([local(g) for g in geoms] + [None], crs=BNG)
    t = zonal_stats(polys, path).table
    assert t["sum"].tolist() == pytest.approx([0.5, 0.5 + 29.5, 0, 0, 0, 0], abs=1e-12)
    assert t["coverage"].tolist() == pytest.approx([0.5, 2.5, 0, 0, 0, 0], abs=1e-12)
    assert t["outside_coverage"].tolist() == pytest.approx([0, 0, 0, 0, 1.0, 0], abs=1e-12)
    assert t["mean"].isna().tolist() == [False, False, True, True, True, True]


def test_south_up_raster_equals_north_up(tmp_path):
    north = write_raster(tmp_path / "n.tif", VALUES)
    south_up = Affine(10, 0, X0, 0, 10, Y0)  # row 0 is the southernmost
    south = write_raster(tmp_path / "s.tif", VALUES[::-1], south_up)
    polys = frame(SHAPES)
    a, b = zonal_stats(polys, north), zonal_stats(polys, south)
    np.testing.assert_allclose(a.table, b.table, rtol=1e-12, atol=1e-12)
    arr = zonal_stats_array(polys, VALUES[::-1], south_up, crs=BNG)
    np.testing.assert_allclose(a.table, arr.table, rtol=1e-12, atol=1e-12)


def test_in_memory_band_matches_file(tmp_path):
    values = VALUES.copy()
    values[1, 1] = -1
    path = write_raster(tmp_path / "r.tif", values, nodata=-1, scale=2.0, offset=0.5)
    polys = frame(SHAPES)
    from_file = zonal_stats(polys, path)
    in_memory = zonal_stats_array(polys, values, TRANSFORM, crs=BNG, nodata=-1, scale=2, offset=0.5)
    np.testing.assert_allclose(from_file.table, in_memory.table, rtol=1e-12, atol=1e-12)
    assert from_file.raster_total == in_memory.raster_total == 2 * 130 + 0.5 * 15
    masked = np.ma.masked_equal(values, -1)
    np.testing.assert_allclose(
        zonal_stats_array(polys, masked, TRANSFORM, crs=BNG, scale=2, offset=0.5).table,
        from_file.table,
        rtol=1e-12,
        atol=1e-12,
    )


# --- refusals --------------------------------------------------------------------------------


def test_raster_without_crs_is_refused_naming_the_file(tmp_path):
    path = write_raster(tmp_path / "no_crs.tif", VALUES, crs=None)
    with pytest.raises(InputError, match="declares no CRS") as err:
        zonal_stats(frame([HALF_PIXEL]), path, name="population")
    assert err.value.path == str(path)
    assert "no_crs.tif" in str(err.value)
    assert "layers.population.crs" in str(err.value)
    # a CRS given for it (as layers.<name>.crs does) is used
    z = zonal_stats(frame([HALF_PIXEL]), path, crs=BNG)
    assert z.table["sum"].iloc[0] == pytest.approx(0.5, rel=1e-12)


def test_other_refusals(tmp_path):
    path = write_raster(tmp_path / "r.tif", VALUES)
    with pytest.raises(InputError, match="not found"):
        zonal_stats(frame([HALF_PIXEL]), tmp_path / "missing.tif")
    with pytest.raises(InputError, match="band 2 does not exist"):
        zonal_stats(frame([HALF_PIXEL]), path, band=2)
    with pytest.raises(InputError, match="polygons declare no CRS"):
        zonal_stats(frame([HALF_PIXEL], crs=None), path)
    rotated = write_raster(tmp_path / "rot.tif", VALUES, TRANSFORM * Affine.rotation(10))
    with pytest.raises(InputError, match="rotated") as err:
        zonal_stats(frame([HALF_PIXEL]), rotated)
    assert err.value.path == str(rotated)
    garbage = tmp_path / "garbage.tif"
    garbage.write_text("not a raster")
    with pytest.raises(InputError, match="cannot read raster") as err:
        zonal_stats(frame([HALF_PIXEL]), garbage)
    assert err.value.path == str(garbage)


# --- brute force: shapely intersection of every pixel box with every polygon ---------------------


def brute_force(geoms, values, invalid, transform):
    """Per-polygon sum, coverage, nodata and outside coverage from shapely areas."""
    h, w = values.shape
    rows, cols = np.indices((h, w))
    xmin = transform.c + cols * transform.a
    ymax = transform.f + rows * transform.e
    boxes = shapely.box(xmin, ymax + transform.e, xmin + transform.a, ymax).ravel()
    pixel_area = transform.a * -transform.e
    frac = shapely.area(shapely.intersection(geoms[:, None], boxes[None, :])) / pixel_area
    valid = ~invalid.ravel()
    extent = shapely.box(
        transform.c, transform.f + h * transform.e, transform.c + w * transform.a, transform.f
    )
    inside = shapely.area(shapely.intersection(geoms, extent))
    return {
        "sum": frac @ np.where(valid, values.ravel(), 0.0),
        "coverage": frac @ valid,
        "nodata_coverage": frac @ ~valid,
        "outside_coverage": (shapely.area(geoms) - inside) / pixel_area,
    }


def random_polygons(rng, bounds, n):
    """Convex hulls, discs with holes and two-part multipolygons around ``bounds`` (some beyond)."""
    xmin, ymin, xmax, ymax = bounds
    span = np.array([xmax - xmin, ymax - ymin])
    lo = np.array([xmin, ymin]) - 0.1 * span
    out = []
    for i in range(n):
        centre = lo + rng.random(2) * 1.2 * span
        size = (0.05 + 0.3 * rng.random()) * span.min()
        if i % 3 == 0:
            pts = centre + (rng.random((7, 2)) - 0.5) * size * 2
            out.append(shapely.MultiPoint(pts).convex_hull)
        elif i % 3 == 1:
            disc = shapely.Point(centre).buffer(size, quad_segs=5)
            out.append(disc.difference(shapely.Point(centre).buffer(size * 0.4, quad_segs=3)))
        else:
            a = shapely.box(*(centre - size / 2), *(centre + size / 2))
            b = shapely.affinity.rotate(a, rng.random() * 90).buffer(0)
            out.append(shapely.MultiPolygon([a, shapely.affinity.translate(b, size * 2, size)]))
    return np.array(out, dtype=object)


def assert_matches_brute_force(table, expected):
    for col, values in expected.items():
        scale = max(np.abs(values).max(), 1.0)
        np.testing.assert_allclose(table[col], values, rtol=1e-9, atol=1e-9 * scale, err_msg=col)


def test_against_brute_force(tmp_path):
    rng = np.random.default_rng(20240611)
    h, w = 9, 12
    transform = from_origin(X0 + 3.25, Y0 + 61.5, 7.5, 5.0)  # non-square pixels, odd origin
    values = rng.gamma(2.0, 50.0, (h, w))
    invalid = rng.random((h, w)) < 0.15
    stored = np.where(invalid, -9999.0, values)
    path = write_raster(tmp_path / "r.tif", stored, transform, nodata=-9999)
    geoms = random_polygons(rng, (X0 + 3.25, Y0 + 16.5, X0 + 93.25, Y0 + 61.5), 60)
    assert shapely.is_valid(geoms).all()
    z = zonal_stats(gpd.GeoSeries(geoms, crs=BNG), path)
    assert_matches_brute_force(z.table, brute_force(geoms, values, invalid, transform))
    assert z.table["outside_coverage"].gt(0).sum() > 5  # the fixture does reach outside
    assert z.raster_total == pytest.approx(values[~invalid].sum(), rel=1e-12)


def test_geographic_raster_against_bng_polygons(tmp_path):
    """A raster in EPSG:4326, polygons in EPSG:27700: the polygons are reprojected, not the
    raster, so the brute force on the polygons reprojected to 4326 agrees to 1e-9."""
    rng = np.random.default_rng(7)
    h, w = 6, 8
    transform = from_origin(-0.1400, 51.5250, 0.0015, 0.0010)  # central London
    values = rng.gamma(3.0, 100.0, (h, w))
    invalid = np.zeros((h, w), bool)
    invalid[2, 3] = True
    path = write_raster(
        tmp_path / "wgs84.tif", np.where(invalid, np.nan, values), transform, crs="EPSG:4326"
    )
    footprint = gpd.GeoSeries(
        [shapely.box(-0.1400, 51.5190, -0.1280, 51.5250)], crs="EPSG:4326"
    ).to_crs(BNG)
    geoms = random_polygons(rng, footprint.total_bounds, 40)
    polys = gpd.GeoSeries(geoms, crs=BNG)
    z = zonal_stats(polys, path)
    assert z.raster_crs.equals("EPSG:4326")
    assert z.pixel_area == pytest.approx(0.0015 * 0.0010, rel=1e-12)
    expected = brute_force(np.asarray(polys.to_crs("EPSG:4326").array), values, invalid, transform)
    assert_matches_brute_force(z.table, expected)
    # one polygon holding the whole raster collects the whole total: nothing resampled
    whole = gpd.GeoSeries([footprint.iloc[0].buffer(200)], crs=BNG)
    w_stats = zonal_stats(whole, path)
    assert w_stats.covered_total == pytest.approx(w_stats.raster_total, rel=1e-12)
    assert w_stats.table["coverage"].iloc[0] == pytest.approx(h * w - 1, rel=1e-12)
    assert w_stats.table["nodata_coverage"].iloc[0] == pytest.approx(1.0, rel=1e-12)


# --- conservation --------------------------------------------------------------------------------


def tiling(rng, extent, n):
    """A random Voronoi tiling of ``extent``."""
    xmin, ymin, xmax, ymax = extent.bounds
    pts = shapely.points(rng.uniform([xmin, ymin], [xmax, ymax], (n, 2)))
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=extent))
    return shapely.intersection(cells, extent)


@pytest.mark.parametrize("max_cells", [zonal.MAX_CELLS_IN_MEMORY, 37])
def test_conservation_over_a_tiling_and_its_pieces(tmp_path, monkeypatch, max_cells):
    monkeypatch.setattr(zonal, "MAX_CELLS_IN_MEMORY", max_cells)  # 37: many chunks
    monkeypatch.setattr(zonal, "_TOTAL_CHUNK_CELLS", max_cells)
    rng = np.random.default_rng(11)
    h, w = 20, 30
    transform = from_origin(X0, Y0 + 200, 10, 10)
    values = rng.gamma(2.0, 10.0, (h, w))
    values[rng.random((h, w)) < 0.1] = -9999
    path = write_raster(tmp_path / "r.tif", values, transform, nodata=-9999)
    extent = shapely.box(X0, Y0, X0 + 300, Y0 + 200)
    valid = values != -9999
    total = values[valid].sum()

    hexes = gpd.GeoSeries(tiling(rng, extent, 40), crs=BNG)  # stand-ins for hexagons
    units = gpd.GeoSeries(tiling(rng, extent, 7), crs=BNG)  # and for admin units
    z = zonal_stats(hexes, path)
    assert z.raster_total == pytest.approx(total, rel=1e-12)
    assert z.covered_total == pytest.approx(total, rel=1e-12)
    assert abs(z.outside_share) < 1e-12
    assert z.table["coverage"].sum() == pytest.approx(valid.sum(), rel=1e-12)
    assert z.table["nodata_coverage"].sum() == pytest.approx((~valid).sum(), rel=1e-12)
    assert z.table["outside_coverage"].sum() == pytest.approx(0.0, abs=1e-9)

    # pieces of hexagon x unit: regrouped by hexagon or by unit, the sums agree with each
    pieces = gpd.overlay(
        gpd.GeoDataFrame({"hex": range(len(hexes))}, geometry=hexes),
        gpd.GeoDataFrame({"unit": range(len(units))}, geometry=units),
        keep_geom_type=True,
    )
    zp = zonal_stats(pieces, path)
    assert zp.covered_total == pytest.approx(total, rel=1e-12)
    by_hex = zp.table["sum"].groupby(pieces["hex"]).sum()
    np.testing.assert_allclose(by_hex.sort_index(), z.table["sum"], rtol=1e-9, atol=1e-9)
    by_unit = zp.table["sum"].groupby(pieces["unit"]).sum()
    np.testing.assert_allclose(
        by_unit.sort_index(), zonal_stats(units, path).table["sum"], rtol=1e-9, atol=1e-9
    )


def test_share_outside_is_reported(tmp_path):
    path = write_raster(tmp_path / "r.tif", VALUES)
    west_half = frame([shapely.box(0, 0, 20, 40)])
    z = zonal_stats(west_half, path)
    west = VALUES[:, :2].sum()
    assert z.covered_total == pytest.approx(west, rel=1e-12)
    assert z.outside_share == pytest.approx((136 - west) / 136, rel=1e-12)


@pytest.mark.parametrize(("max_cells", "batch"), [(zonal.MAX_CELLS_IN_MEMORY, 1 << 16), (25, 7)])
def test_stripes_and_batches_do_not_change_results(tmp_path, monkeypatch, max_cells, batch):
    rng = np.random.default_rng(3)
    h, w = 9, 12
    transform = from_origin(X0, Y0 + 45, 7.5, 5.0)
    values = rng.gamma(2.0, 50.0, (h, w))
    invalid = rng.random((h, w)) < 0.15
    path = write_raster(tmp_path / "r.tif", np.where(invalid, -1.0, values), transform, nodata=-1)
    geoms = random_polygons(rng, (X0, Y0, X0 + 90, Y0 + 45), 30)
    monkeypatch.setattr(zonal, "MAX_CELLS_IN_MEMORY", max_cells)  # 25: stripes of 2 columns
    monkeypatch.setattr(zonal, "POLYGON_BATCH", batch)
    z = zonal_stats(gpd.GeoSeries(geoms, crs=BNG), path)
    assert_matches_brute_force(z.table, brute_force(geoms, values, invalid, transform))


def test_agrees_with_exactextract(tmp_path):
    """exactextract, an independent implementation, agrees to its single-precision fractions."""
    exactextract = pytest.importorskip("exactextract")
    rng = np.random.default_rng(5)
    h, w = 15, 20
    transform = from_origin(X0, Y0 + 150, 10, 10)
    values = rng.gamma(2.0, 50.0, (h, w))
    values[rng.random((h, w)) < 0.1] = np.nan
    path = write_raster(tmp_path / "r.tif", values, transform)
    polys = gpd.GeoDataFrame(
        geometry=random_polygons(rng, (X0, Y0, X0 + 200, Y0 + 150), 40), crs=BNG
    )
    ours = zonal_stats(polys, path).table
    with rasterio.open(path) as src:
        theirs = exactextract.exact_extract(src, polys, ["sum", "count"], output="pandas")
    np.testing.assert_allclose(ours["sum"], theirs["sum"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ours["coverage"], theirs["count"], rtol=1e-6, atol=1e-6)
