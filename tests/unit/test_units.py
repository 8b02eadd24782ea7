import geopandas as gpd
import h3
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import CRS

from geo_usm import grids
from geo_usm.assign import PolygonIndex, assign_points
from geo_usm.geo import cells_to_parent, point_cells
from geo_usm.units import SpatialFrame

BNG = CRS.from_epsg(27700)


def grid_units(n=6, size=400.0, x0=529000.0, y0=182000.0):
    polys = [
        shapely.box(x0 + i * size, y0 + j * size, x0 + (i + 1) * size, y0 + (j + 1) * size)
        for j in range(n)
        for i in range(n)
    ]
    # an irregular split of one square so that not everything is axis-aligned
    return gpd.GeoDataFrame(
        {"unit_id": [f"U{k:03d}" for k in range(len(polys))]}, geometry=polys, crs=BNG
    )


def reference_lookup(polys_wgs, lon, lat):
    pts = shapely.points(lon, lat)
    tree = shapely.STRtree(polys_wgs)
    pt, poly = tree.query(pts, predicate="intersects")
    out = np.full(len(lon), -1)
    order = np.lexsort((poly, pt))
    pt, poly = pt[order], poly[order]
    first = np.unique(pt, return_index=True)[1]
    out[pt[first]] = poly[first]
    return out


def test_polygon_index_matches_exact_test_everywhere():
    rng = np.random.default_rng(7)
    seeds = shapely.points(rng.uniform(-0.20, -0.10, 300), rng.uniform(51.50, 51.56, 300))
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(seeds)))
    box = shapely.box(-0.19, 51.505, -0.11, 51.555)
    polys = shapely.intersection(cells, box)
    index = PolygonIndex(polys, max_pixels=200_000)  # coarse on purpose: many ambiguous pixels
    lon = rng.uniform(-0.21, -0.09, 200_000)
    lat = rng.uniform(51.49, 51.57, 200_000)
    # points exactly on vertices and edges too
    verts = shapely.get_coordinates(polys)
    lon = np.concatenate([lon, verts[:, 0]])
    lat = np.concatenate([lat, verts[:, 1]])
    np.testing.assert_array_equal(index.lookup(lon, lat), reference_lookup(polys, lon, lat))


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.tuples(st.floats(-0.13, -0.10), st.floats(51.50, 51.53)), min_size=1, max_size=50)
)
def test_polygon_index_property(points):
    polys = grid_units().to_crs(4326).geometry.values
    index = PolygonIndex(np.asarray(polys), max_pixels=50_000)
    lon, lat = np.asarray(points).T
    np.testing.assert_array_equal(index.lookup(lon, lat), reference_lookup(polys, lon, lat))


def test_cover_includes_boundary_cells_of_narrow_area():
    # a 60 m wide, 3 km long strip: H3's centre fill at res 9 misses most of it
    strip = shapely.box(529000, 182000, 532000, 182060)
    units = gpd.GeoDataFrame({"unit_id": ["S"]}, geometry=[strip], crs=BNG)
    frame = SpatialFrame(units, None, [9], BNG)
    cover = grids.hex_cover(frame.study_area, frame.study_wgs, 9, frame.crs)
    centre = h3.h3shape_to_cells(h3.geo_to_h3shape(shapely.geometry.mapping(frame.study_wgs)), 9)
    assert len(cover) > len(centre)
    assert set(centre) <= set(cover["h3"])
    assert ((cover["area_share"] > 0) & (cover["area_share"] <= 1)).all()
    covered = (cover["area_m2"] * cover["area_share"]).sum()
    assert covered == pytest.approx(strip.area, rel=1e-9)
    # every point of the strip falls in a cover cell
    rng = np.random.default_rng(3)
    lon, lat = (
        gpd.GeoSeries(
            shapely.points(rng.uniform(529000, 532000, 5000), rng.uniform(182000, 182060, 5000)),
            crs=BNG,
        )
        .to_crs(4326)
        .pipe(lambda s: (s.x.values, s.y.values))
    )
    a = frame.assign(lon, lat)
    assert a.inside.all()
    assert np.isin(a.cells[9], cover["cell"].to_numpy()).all()


def test_crosswalk_shares_and_conservation():
    units = grid_units()
    frame = SpatialFrame(units, None, [9, 8], BNG)
    for res in (9, 8):
        cover = grids.hex_cover(frame.study_area, frame.study_wgs, res, frame.crs)
        cw = grids.crosswalk(cover, frame.units)
        np.testing.assert_allclose(cw.groupby("unit_id")["unit_share"].sum(), 1.0, rtol=1e-9)
        by_hex = cw.groupby("h3")["hex_share"].sum()
        share = cover.set_index("h3")["area_share"]
        np.testing.assert_allclose(by_hex, share.loc[by_hex.index], rtol=1e-9)


def test_parent_bit_arithmetic_matches_h3():
    rng = np.random.default_rng(1)
    cells = point_cells(rng.uniform(-180, 180, 2000), rng.uniform(-85, 85, 2000), 11)
    for parent in (0, 5, 8, 9, 10, 11):
        expected = [h3.str_to_int(h3.cell_to_parent(h3.int_to_str(int(c)), parent)) for c in cells]
        np.testing.assert_array_equal(cells_to_parent(cells, 11, parent), expected)


def test_assign_threads_do_not_change_results():
    units = grid_units(n=10, size=300)
    frame = SpatialFrame(units, None, [9, 8], BNG)
    rng = np.random.default_rng(11)
    lon = rng.uniform(-0.13, -0.08, 250_000)
    lat = rng.uniform(51.50, 51.54, 250_000)
    kwargs = {"unit_index": frame.unit_index, "study_index": None, "resolutions": [9, 8]}
    a1 = assign_points(lon, lat, threads=1, **kwargs)
    a2 = assign_points(lon, lat, threads=2, **kwargs)
    np.testing.assert_array_equal(a1.unit, a2.unit)
    np.testing.assert_array_equal(a1.cells[8], a2.cells[8])
