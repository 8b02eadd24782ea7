"""geo_usm.grids against brute-force overlays computed independently with h3-py and GEOS."""

import functools
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import pytest
import shapely
from h3ronpy.vector import cells_to_wkb_polygons
from pyproj import CRS

from geo_usm import grids
from geo_usm.geo import WGS84, to_crs

ROOT = Path(__file__).resolve().parents[2]
CAMDEN = ROOT / "sample_data" / "camden" / "data" / "camden_boundaries.gpkg"
BNG = CRS.from_epsg(27700)
UTM30 = CRS.from_epsg(32630)
RTOL, ATOL = 1e-9, 1e-6  # areas in m2


# --------------------------------------------------------------------------------------------
# brute-force references


def reference_polygons(cells, crs):
    """Cell polygons from h3-py (the H3 C library), not from h3ronpy."""
    rings = [[(lng, lat) for lat, lng in h3.cell_to_boundary(h3.int_to_str(int(c)))] for c in cells]
    return to_crs(np.asarray([shapely.Polygon(r) for r in rings], dtype=object), WGS84, crs)


@functools.cache
def h3_overlap_cells(area, crs, res, margin):
    wgs = to_crs(np.asarray([area]), crs, WGS84)[0]
    shape = h3.geo_to_h3shape(shapely.geometry.mapping(wgs))
    cells = set(h3.h3shape_to_cells_experimental(shape, res, "overlap"))
    cells = {n for c in cells for n in h3.grid_disk(c, margin)}
    return np.sort(np.asarray([h3.str_to_int(c) for c in cells], dtype=np.uint64))


def reference_cover(study_area, crs, res, *, margin=1, seed=None):
    """Every cell overlapping the study area, by h3-py overlap fill + a margin, with GEOS shares.

    ``seed`` is a simpler outline of the same area for the fill (h3-py is slow on dense ones).
    """
    cells = h3_overlap_cells(study_area if seed is None else seed, crs, res, margin)
    polys = reference_polygons(cells, crs)
    area = shapely.area(polys)
    study = shapely.from_wkb(shapely.to_wkb(study_area))
    shapely.prepare(study)
    inter = np.where(shapely.contains_properly(study, polys), area, 0.0)
    edge = ~shapely.contains_properly(study, polys) & shapely.intersects(study, polys)
    with ThreadPoolExecutor(2) as pool:  # GEOS releases the GIL
        parts = np.array_split(polys[edge], 2)
        areas = pool.map(lambda p: shapely.area(shapely.intersection(p, study_area)), parts)
        inter[edge] = np.concatenate(list(areas))
    return pd.Series(inter / area, index=cells, name="area_share")


def reference_crosswalk(hexes, units):
    ov = gpd.overlay(hexes[["h3", "geometry"]], units[["unit_id", "geometry"]], keep_geom_type=True)
    ov["area_m2"] = ov.area
    ov = ov[ov["area_m2"] > 0]
    return ov.groupby(["h3", "unit_id"])["area_m2"].sum()


def assert_cover_matches(cover, ref, res):
    assert list(cover.columns) == ["h3", "resolution", "area_m2", "area_share", "geometry", "cell"]
    assert cover["cell"].dtype == np.uint64
    assert cover["resolution"].dtype == np.int64
    assert (cover["resolution"] == res).all()
    assert cover["cell"].is_monotonic_increasing
    assert list(cover.index) == list(range(len(cover)))
    assert list(cover["h3"]) == [h3.int_to_str(int(c)) for c in cover["cell"]]
    expected = ref[ref > 0]
    # the cover equals the cells with a positive overlap; only numerical slivers may differ
    missing = expected.index.difference(pd.Index(cover["cell"]))
    assert (expected.loc[missing] < 1e-9).all()
    assert set(cover["cell"]) <= set(expected.index)
    area = shapely.area(reference_polygons(cover["cell"], cover.crs))
    np.testing.assert_allclose(cover["area_m2"], area, rtol=RTOL)
    # compared as areas (m2) inside the study area
    got = pd.Series(cover["area_share"].to_numpy() * area, index=cover["cell"])
    want = expected.reindex(got.index, fill_value=0.0) * area
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
    assert ((cover["area_share"] > 0) & (cover["area_share"] <= 1)).all()


def assert_crosswalk_matches(cw, hexes, units, inside_units=None):
    assert list(cw.columns) == [
        "h3",
        "resolution",
        "unit_id",
        "area_m2",
        "hex_share",
        "unit_share",
    ]
    keys = list(zip(cw["h3"], cw["unit_id"], strict=True))
    assert keys == sorted(keys)
    ref = reference_crosswalk(hexes, units)
    got = cw.set_index(["h3", "unit_id"])["area_m2"]
    both = pd.concat([got.rename("got"), ref.rename("ref")], axis=1).fillna(0.0)
    np.testing.assert_allclose(both["got"], both["ref"], rtol=RTOL, atol=ATOL)
    hex_area = hexes.set_index("h3")["area_m2"]
    unit_area = units.set_index("unit_id")["area_m2"]
    np.testing.assert_allclose(cw["hex_share"], cw["area_m2"] / hex_area.loc[cw["h3"]].to_numpy())
    np.testing.assert_allclose(
        cw["unit_share"], cw["area_m2"] / unit_area.loc[cw["unit_id"]].to_numpy()
    )
    sums = cw.groupby("unit_id")["unit_share"].sum()
    inside = sums.index if inside_units is None else inside_units
    np.testing.assert_allclose(sums.loc[inside], 1.0, rtol=1e-9)


# --------------------------------------------------------------------------------------------
# Camden, as published and densified


def camden_units(densify=None):
    g = gpd.read_file(CAMDEN, layer="lsoa_2011").to_crs(BNG)
    geom = np.asarray(g.geometry.values)
    if densify:
        geom = shapely.segmentize(geom, densify)
    units = gpd.GeoDataFrame({"unit_id": g["lsoa11cd"].astype(str).to_numpy()}, geometry=geom)
    units = units.set_crs(BNG)
    units["area_m2"] = shapely.area(geom)
    return units


@pytest.fixture(scope="module", params=[None, 4.0], ids=["published", "densified_4m"])
def camden(request):
    units = camden_units(request.param)
    study = shapely.union_all(np.asarray(camden_units().geometry.values))
    if request.param:
        study = shapely.segmentize(study, request.param)
    study_wgs = to_crs(shapely.segmentize(np.asarray([study]), 10.0), BNG, WGS84)[0]
    return units, study, study_wgs


@pytest.mark.parametrize("res", [9, 10])
def test_camden_matches_brute_force(camden, res):
    units, study, study_wgs = camden
    cover = grids.hex_cover(study, study_wgs, res, BNG)
    seed = shapely.union_all(np.asarray(camden_units().geometry.values))
    assert_cover_matches(cover, reference_cover(study, BNG, res, seed=seed), res)
    cw = grids.crosswalk(cover, units)
    assert_crosswalk_matches(cw, cover, units)
    # conservation: the cover holds the whole study area
    assert (cover["area_m2"] * cover["area_share"]).sum() == pytest.approx(study.area, rel=1e-9)


def test_threads_do_not_change_results():
    units = camden_units(4.0)
    study = shapely.union_all(np.asarray(units.geometry.values))  # with slivers between units
    study_wgs = to_crs(shapely.segmentize(np.asarray([study]), 10.0), BNG, WGS84)[0]
    one = grids.hex_cover(study, study_wgs, 10, BNG, threads=1)
    two = grids.hex_cover(study, study_wgs, 10, BNG, threads=2)
    pd.testing.assert_frame_equal(one.drop(columns="geometry"), two.drop(columns="geometry"))
    pd.testing.assert_frame_equal(
        grids.crosswalk(one, units, threads=1), grids.crosswalk(one, units, threads=2)
    )


# --------------------------------------------------------------------------------------------
# a hand-made case: holes, a multipolygon, units that do not cover the study area


def lonlat_to_utm(lon, lat):
    p = to_crs(np.asarray([shapely.Point(lon, lat)]), WGS84, UTM30)[0]
    return p.x, p.y


@pytest.fixture(scope="module")
def handmade():
    x0, y0 = lonlat_to_utm(0.0, 51.5)
    x0, y0 = round(x0), round(y0)
    square = shapely.box(x0, y0, x0 + 1200, y0 + 1200)
    hole = shapely.box(x0 + 150, y0 + 150, x0 + 350, y0 + 350)  # a hole in the study area
    island = shapely.box(x0 + 1500, y0 + 100, x0 + 1530, y0 + 1000)  # a narrow second part
    study = shapely.MultiPolygon([shapely.Polygon(square.exterior, [hole.exterior]), island])
    west = shapely.Polygon(
        shapely.box(x0, y0, x0 + 600, y0 + 1200).exterior,
        [shapely.box(x0 + 300, y0 + 700, x0 + 450, y0 + 900).exterior],  # a hole in a unit
    ).difference(hole)
    east = shapely.MultiPolygon(  # two parts, a gap between them not covered by any unit
        [
            shapely.box(x0 + 600, y0, x0 + 1200, y0 + 500),
            shapely.box(x0 + 600, y0 + 700, x0 + 1200, y0 + 1200),
        ]
    )
    spill = shapely.box(x0 + 1400, y0 + 400, x0 + 1600, y0 + 600)  # half outside the study area
    units = gpd.GeoDataFrame({"unit_id": ["E", "S", "W"]}, geometry=[east, spill, west], crs=UTM30)
    units["area_m2"] = units.area
    study_wgs = to_crs(shapely.segmentize(np.asarray([study]), 10.0), UTM30, WGS84)[0]
    return units, study, study_wgs


@pytest.mark.parametrize("res", [10, 11])
def test_handmade_matches_brute_force(handmade, res):
    units, study, study_wgs = handmade
    cover = grids.hex_cover(study, study_wgs, res, UTM30)
    assert_cover_matches(cover, reference_cover(study, UTM30, res, margin=2), res)
    assert (cover["area_m2"] * cover["area_share"]).sum() == pytest.approx(study.area, rel=1e-9)
    cw = grids.crosswalk(cover, units)
    assert_crosswalk_matches(cw, cover, units, inside_units=["E", "W"])
    # the unit reaching out of the study area: its share in the cover's cells
    spill = units.geometry.iloc[1]
    covered = spill.intersection(shapely.union_all(np.asarray(cover.geometry.values))).area
    got = cw.loc[cw["unit_id"] == "S", "unit_share"].sum()
    assert got == pytest.approx(covered / spill.area, rel=1e-9)
    assert got < 1


def test_extra_cells_are_kept_with_zero_share(handmade):
    units, study, study_wgs = handmade
    far = h3.str_to_int(h3.latlng_to_cell(51.7, 0.3, 10))
    inside = h3.str_to_int(h3.latlng_to_cell(*study_wgs.geoms[0].centroid.coords[0][::-1], 10))
    extra = np.asarray([far, inside, far], dtype=np.uint64)
    base = grids.hex_cover(study, study_wgs, 10, UTM30)
    cover = grids.hex_cover(study, study_wgs, 10, UTM30, extra_cells=extra)
    assert set(cover["cell"]) == set(base["cell"]) | {far}
    assert cover.loc[cover["cell"] == far, "area_share"].item() == 0.0
    assert cover["cell"].is_monotonic_increasing
    assert grids.crosswalk(cover, units)["h3"].isin(base["h3"]).all()


def test_tiny_study_area_inside_one_cell():
    x0, y0 = lonlat_to_utm(0.0, 51.5)
    study = shapely.box(x0, y0, x0 + 3, y0 + 3)
    study_wgs = to_crs(np.asarray([study]), UTM30, WGS84)[0]
    cover = grids.hex_cover(study, study_wgs, 8, UTM30)
    assert 1 <= len(cover) <= 3
    assert (cover["area_m2"] * cover["area_share"]).sum() == pytest.approx(9.0, rel=1e-9)


# --------------------------------------------------------------------------------------------
# the building blocks


def random_polygons(rng, n=40):
    """Unions of random discs: multipolygons with holes and many vertices."""
    out = []
    for _ in range(n):
        k = rng.integers(3, 12)
        pts = shapely.points(rng.uniform(0, 400, k), rng.uniform(0, 400, k))
        blob = shapely.union_all(shapely.buffer(pts, rng.uniform(20, 90, k), quad_segs=24))
        blob = blob.difference(shapely.buffer(shapely.Point(rng.uniform(0, 400, 2)), 25))
        out.append(blob)
    return np.asarray(out, dtype=object)


def test_overlay_areas_matches_geos_for_any_cells_and_polygons():
    rng = np.random.default_rng(5)
    polygons = random_polygons(rng)  # they overlap each other
    centres = rng.uniform(-50, 450, (300, 2))
    angle = rng.uniform(0, 2 * np.pi, (300, 1)) + np.arange(6) * np.pi / 3
    r = rng.uniform(5, 60, (300, 1))
    hexes = shapely.polygons(
        np.stack([centres[:, :1] + r * np.cos(angle), centres[:, 1:] + r * np.sin(angle)], -1)
    )
    ell = shapely.Polygon([(0, 0), (100, 0), (100, 30), (30, 30), (30, 100), (0, 100)])
    ring = shapely.box(150, 150, 250, 250).difference(shapely.box(180, 180, 220, 220))
    odd = np.asarray([ell, ring], dtype=object)  # not convex, a hole: the GEOS path
    cells = np.concatenate([hexes, odd, hexes[:5][::-1]])  # some clockwise
    cells[-5:] = shapely.reverse(cells[-5:])
    c, p, area = grids.overlay_areas(cells, polygons, threads=2)
    tree = shapely.STRtree(polygons)
    rc, rp = tree.query(cells, predicate="intersects")
    ra = shapely.area(shapely.intersection(cells[rc], polygons[rp]))
    ref = pd.Series(ra, index=pd.MultiIndex.from_arrays([rc, rp]))
    got = pd.Series(area, index=pd.MultiIndex.from_arrays([c, p]))
    both = pd.concat([got.rename("got"), ref.rename("ref")], axis=1).fillna(0.0)
    np.testing.assert_allclose(both["got"], both["ref"], rtol=RTOL, atol=ATOL)
    assert (area > 0).all()
    assert np.all(np.diff(c * len(polygons) + p) > 0)


def test_ring_pieces_add_up_to_the_rings():
    rng = np.random.default_rng(8)
    polygons = shapely.segmentize(random_polygons(rng, 10), 0.5)
    rings = grids.rings_of(polygons)
    pieces = grids.ring_pieces(rings, 8)
    assert pieces.counts.max() <= 9
    signed = np.bincount(pieces.owner, pieces.areas(), minlength=len(polygons))
    np.testing.assert_allclose(signed, shapely.area(polygons), rtol=1e-9)


def test_subdivide_partitions_polygons():
    rng = np.random.default_rng(9)
    polygons = shapely.segmentize(random_polygons(rng, 10), 1.0)
    pieces, owner = grids.subdivide(polygons, 64, threads=2)
    assert shapely.is_valid(pieces).all()
    assert (shapely.get_num_coordinates(pieces) <= 64).all()
    area = np.bincount(owner, shapely.area(pieces), minlength=len(polygons))
    np.testing.assert_allclose(area, shapely.area(polygons), rtol=1e-9)


def test_cell_polygons_equal_h3ronpy_reprojected():
    cells = grids.candidate_cells(shapely.box(-0.2, 51.5, -0.1, 51.55), 9)
    pentagons = np.asarray([h3.str_to_int(c) for c in h3.get_pentagons(9)[:3]], dtype=np.uint64)
    cells = np.concatenate([cells, pentagons])
    mercator = CRS.from_epsg(3857)  # the pentagons are far from Britain
    polys = grids.cell_polygons(cells, mercator)
    wkb = np.asarray(cells_to_wkb_polygons(cells), dtype=object)
    expected = to_crs(shapely.from_wkb(wkb), WGS84, mercator)
    assert np.isfinite(shapely.get_coordinates(polys)).all()
    np.testing.assert_array_equal(shapely.get_coordinates(polys), shapely.get_coordinates(expected))
    assert shapely.equals_exact(polys, expected, tolerance=0).all()


def test_candidates_hold_every_cell_of_a_narrow_strip():
    # a 5 m wide strip, diagonal: most cells it crosses hold no centre inside it
    line = shapely.LineString([(-0.20, 51.50), (-0.12, 51.53)])
    strip = shapely.buffer(to_crs(np.asarray([line]), WGS84, BNG)[0], 2.5, cap_style="flat")
    strip_wgs = to_crs(shapely.segmentize(np.asarray([strip]), 10.0), BNG, WGS84)[0]
    cand = set(grids.candidate_cells(strip_wgs, 10))
    ref = reference_cover(strip, BNG, 10)
    assert set(ref[ref > 0].index) <= cand
