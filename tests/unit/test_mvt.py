"""The vectorised MVT encoder (:mod:`geo_usm.mvt`) against the spec and GDAL's MVT writer.

A small synthetic layer around Camden (H3 resolution 9 hexagons in EPSG:27700 with integer,
float, string and boolean columns and NULLs, plus a polygon with a hole and a long line) is
written by :func:`geo_usm.tiles.write_archive` and by GDAL's MVT writer (pyogrio, driver
``PMTiles``, the options the build used before); tiles are decoded with mapbox-vector-tile, and
the raw protobuf (its ``vector_tile_pb2``) is read for winding, value types and the tables.
"""

from __future__ import annotations

import gzip
import math
import warnings
from pathlib import Path
from typing import Any

import geopandas as gpd
import h3
import mapbox_vector_tile
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from mapbox_vector_tile.Mapbox import vector_tile_pb2
from pmtiles.tile import tileid_to_zxy, zxy_to_tileid

from geo_usm import mvt
from geo_usm.tiles import BUFFER, EXTENT, Archive, TileLayer, write_archive

CRS = "EPSG:27700"
MINZOOM, MAXZOOM = 11, 14
FIELDS = {
    "h3": "string",
    "count": "integer",
    "delta": "integer",
    "rate": "float",
    "flag": "boolean",
    "label": "string",
}


def _frame() -> gpd.GeoDataFrame:
    """Hexagons around Camden with typed columns and NULLs, a holed polygon and a long line."""
    cells = sorted(h3.grid_disk(h3.latlng_to_cell(51.545, -0.16, 9), 4))
    shapes = [shapely.Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(c)]) for c in cells]
    n = len(cells)
    rng = np.random.default_rng(7)
    rate = rng.gamma(2.0, 10.0, n)
    rate[::5] = np.nan
    count = rng.poisson(4.0, n).astype(float)
    count[1::6] = np.nan
    labels = np.array(["a", "b", None, "c"], dtype=object)[np.arange(n) % 4]
    frame = pd.DataFrame(
        {
            "h3": cells,
            "count": count,
            "delta": np.arange(n) - n // 2,
            "rate": rate,
            "flag": pd.array(np.arange(n) % 3 == 0, dtype="boolean"),
            "label": labels,
        }
    )
    frame.loc[2, "flag"] = pd.NA
    hexes = gpd.GeoDataFrame(frame, geometry=shapes, crs="EPSG:4326").to_crs(CRS)
    centre = shapely.Point(528500, 185000)
    holed = shapely.Polygon(
        centre.buffer(300, quad_segs=4).exterior.coords,
        [centre.buffer(120, quad_segs=4).exterior.coords[::-1]],
    )
    extra = gpd.GeoDataFrame(
        {"h3": ["holed", "line"], "count": [1.0, 2.0], "delta": [0, 0], "rate": [0.5, 1.5]},
        geometry=[holed, shapely.LineString([(524000, 182000), (533000, 188500)])],
        crs=CRS,
    )
    extra["flag"] = pd.array([True, False], dtype="boolean")
    extra["label"] = ["x", "y"]
    return gpd.GeoDataFrame(pd.concat([hexes, extra], ignore_index=True), crs=CRS)


def _tiles(path: Path) -> dict[int, bytes]:
    with Archive(path) as archive:
        assert archive.compressed
        return {tile_id: gzip.decompress(data) for tile_id, data in archive.tiles()}


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("mvt")
    frame = _frame()
    ours = tmp / "ours.pmtiles"
    layer = TileLayer("grid", frame, dict(FIELDS), MINZOOM, MAXZOOM)  # type: ignore[arg-type]
    entry = write_archive(ours, [layer], name="grid", description="test", attribution="test")
    gdal = tmp / "gdal.pmtiles"
    options = {
        "MINZOOM": MINZOOM,
        "MAXZOOM": MAXZOOM,
        "EXTENT": EXTENT,
        "BUFFER": BUFFER,
        "SIMPLIFICATION": 0.0,
        "NAME": "grid",
        "MAX_SIZE": 2_000_000_000,
        "MAX_FEATURES": 2_000_000_000,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pyogrio.write_dataframe(
            frame, gdal, layer="grid", driver="PMTiles", dataset_options=options
        )
    return {
        "frame": frame,
        "path": ours,
        "entry": entry,
        "ours": _tiles(ours),
        "gdal": _tiles(gdal),
    }


def _features(data: bytes) -> dict[str, dict[str, Any]]:
    layer = mapbox_vector_tile.decode(data, default_options={"y_coord_down": True})["grid"]
    return {f["properties"]["h3"]: f for f in layer["features"]}


def _shape(geometry: dict[str, Any]) -> shapely.Geometry:
    return shapely.geometry.shape(geometry)


def _raw_layer(data: bytes) -> Any:
    tile = vector_tile_pb2.tile()
    tile.ParseFromString(data)
    (layer,) = tile.layers
    return layer


def _rings(geometry: list[int]) -> list[list[tuple[int, int]]]:
    """Decode a polygon command stream into rings of tile coordinates (y down)."""
    rings: list[list[tuple[int, int]]] = []
    x = y = i = 0
    while i < len(geometry):
        command, count = geometry[i] & 7, geometry[i] >> 3
        i += 1
        if command == 7:
            continue
        if command == 1:
            rings.append([])
        for _ in range(count):
            dx, dy = geometry[i], geometry[i + 1]
            x += (dx >> 1) ^ -(dx & 1)
            y += (dy >> 1) ^ -(dy & 1)
            rings[-1].append((x, y))
            i += 2
    return rings


def _area(ring: list[tuple[int, int]]) -> float:
    return (
        sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(ring, ring[1:] + ring[:1], strict=True))
        / 2
    )


def test_same_tiles_features_and_attributes_as_gdal(written: dict[str, Any]) -> None:
    ours, gdal = written["ours"], written["gdal"]
    assert set(ours) == set(gdal)
    assert {tileid_to_zxy(t)[0] for t in ours} == set(range(MINZOOM, MAXZOOM + 1))
    for tile_id in gdal:
        got, expected = _features(ours[tile_id]), _features(gdal[tile_id])
        assert set(got) == set(expected), tileid_to_zxy(tile_id)
        for key, feature in expected.items():
            props = got[key]["properties"]
            assert set(props) == set(feature["properties"])
            for name, value in feature["properties"].items():
                if isinstance(value, float):
                    assert props[name] == pytest.approx(value, rel=1e-6)
                else:
                    assert props[name] == value


def test_geometries_match_gdal_after_quantisation(written: dict[str, Any]) -> None:
    ours, gdal = written["ours"], written["gdal"]
    compared = 0
    for tile_id in gdal:
        got, expected = _features(ours[tile_id]), _features(gdal[tile_id])
        for key, feature in expected.items():
            a, b = _shape(got[key]["geometry"]), _shape(feature["geometry"])
            assert a.geom_type == b.geom_type
            # vertices within rounding (1 unit each way) of GDAL's
            assert shapely.hausdorff_distance(a, b) <= math.sqrt(2) + 1e-9, (key, tile_id)
            if a.area > 100:
                assert a.area == pytest.approx(b.area, rel=0.02)
            compared += 1
    assert compared > 200


def test_winding_is_the_specs_exterior_clockwise_on_screen_holes_counter(
    written: dict[str, Any],
) -> None:
    holes = 0
    for data in written["ours"].values():
        layer = _raw_layer(data)
        assert layer.version == 2 and layer.extent == 4096 and layer.name == "grid"
        for feature in layer.features:
            if feature.type != 3:  # POLYGON
                continue
            rings = _rings(list(feature.geometry))
            areas = [_area(r) for r in rings]
            assert areas[0] > 0  # y down: positive area = clockwise on screen = exterior
            assert all(a != 0 for a in areas)
            assert all(len(set(r)) == len(r) >= 3 for r in rings)  # no repeated point
            holes += sum(a < 0 for a in areas)
    assert holes > 0


def test_hole_kept_as_a_hole(written: dict[str, Any]) -> None:
    frame = written["frame"]
    holed = frame.loc[frame["h3"] == "holed"].to_crs("EPSG:3857").geometry.iloc[0]
    with_hole = 0
    for tile_id, data in written["ours"].items():
        features = _features(data)
        if "holed" not in features:
            continue
        z, x, y = tileid_to_zxy(tile_id)
        size = 2 * mvt.HALF_WORLD / 2**z
        pad = size * BUFFER / EXTENT
        left, top = -mvt.HALF_WORLD + x * size, mvt.HALF_WORLD - y * size
        clipped = shapely.clip_by_rect(
            holed, left - pad, top - size - pad, left + size + pad, top + pad
        )
        expected_area = clipped.area * (EXTENT / size) ** 2
        geometry = features["holed"]["geometry"]
        assert geometry["type"] == "Polygon"
        exterior, *interiors = geometry["coordinates"]
        polygon = shapely.Polygon(exterior, interiors)
        assert polygon.is_valid
        assert polygon.area == pytest.approx(expected_area, rel=0.02)  # the hole is not filled
        assert len(interiors) == len(clipped.interiors)
        with_hole += len(interiors) == 1
    assert with_hole >= 3


def test_a_feature_crossing_a_tile_edge_is_in_both_tiles(written: dict[str, Any]) -> None:
    frame = written["frame"].iloc[:-2].to_crs("EPSG:3857")
    z = MAXZOOM
    size = 2 * mvt.HALF_WORLD / 2**z
    edges = -mvt.HALF_WORLD + size * np.arange(2**z + 1)
    crossing = 0
    for h3_id, geom in zip(frame["h3"], frame.geometry, strict=True):
        minx, miny, maxx, maxy = geom.bounds
        inside = edges[(edges > minx) & (edges < maxx)]
        if not len(inside):
            continue
        row = int((mvt.HALF_WORLD - (miny + maxy) / 2) // size)
        left, right = int((inside[0] - size / 2 + mvt.HALF_WORLD) // size), None
        right = left + 1
        for column in (left, right):
            data = written["ours"][zxy_to_tileid(z, column, row)]
            assert h3_id in _features(data)
        crossing += 1
    assert crossing > 3


def test_a_line_is_clipped_to_the_tile_and_its_buffer(written: dict[str, Any]) -> None:
    seen = 0
    for data in written["ours"].values():
        features = _features(data)
        if "line" not in features:
            continue
        geometry = features["line"]["geometry"]
        assert geometry["type"] in ("LineString", "MultiLineString")
        coords = np.array(shapely.get_coordinates(_shape(geometry)))
        assert coords.min() >= -BUFFER and coords.max() <= EXTENT + BUFFER
        seen += 1
    assert seen > 10


def test_nulls_omitted_and_values_typed_and_deduplicated(written: dict[str, Any]) -> None:
    frame = written["frame"].set_index("h3")
    kinds = {"int_value", "sint_value"}
    checked = 0
    for data in written["ours"].values():
        layer = _raw_layer(data)
        keys = list(layer.keys)
        assert len(set(keys)) == len(keys)
        encoded = [v.SerializeToString() for v in layer.values]
        assert len(set(encoded)) == len(encoded)  # each value once
        values = list(layer.values)
        for feature in layer.features:
            tags = dict(zip(feature.tags[::2], feature.tags[1::2], strict=True))
            props = {keys[k]: values[v] for k, v in tags.items()}
            h3_id = props["h3"].string_value
            row = frame.loc[h3_id]
            for name, kind in FIELDS.items():
                if name == "h3":
                    continue
                if pd.isna(row[name]):
                    assert name not in props  # NULL left out, never a zero
                    continue
                value = props[name]
                (set_field,) = value.ListFields()  # exactly one typed field
                field = set_field[0].name
                if kind == "integer":
                    assert field in kinds
                    assert getattr(value, field) == int(row[name])
                    assert (field == "sint_value") == (int(row[name]) < 0)
                elif kind == "float":
                    assert field == "double_value" and value.double_value == row[name]
                elif kind == "boolean":
                    assert field == "bool_value" and value.bool_value == bool(row[name])
                else:
                    assert field == "string_value" and value.string_value == row[name]
            checked += 1
    assert checked > 300


def test_the_archive_opens_with_pmtiles_and_gdal(written: dict[str, Any]) -> None:
    from pmtiles.reader import MmapSource, Reader, all_tiles

    path = written["path"]
    with path.open("rb") as f:
        reader = Reader(MmapSource(f))
        assert reader.header()["tile_compression"].name == "GZIP"
        assert reader.metadata()["vector_layers"][0]["id"] == "grid"
        stats = reader.metadata()["tilestats"]["layers"][0]
        assert stats["geometry"] == "Unknown" and stats["count"] == len(written["frame"])
        assert sum(1 for _ in all_tiles(reader.get_bytes)) == written["entry"]["tiles"]
    read = pyogrio.read_dataframe(path, layer="grid")
    assert set(read["h3"]) == set(written["frame"]["h3"])


def test_protobuf_primitives() -> None:
    values = np.array([0, 1, 127, 128, 300, 16383, 16384, 2**32 - 1, 2**35, 2**63 + 5], "u8")
    expected = b"".join(mvt.varint(int(v)) for v in values)
    assert mvt.encode_varints(values).tobytes() == expected
    assert mvt.varint(300) == b"\xac\x02"
    assert mvt.zigzag(np.array([0, -1, 1, -2, 2])).tolist() == [0, 1, 2, 3, 4]
    rng = np.random.default_rng(3)
    for z in (0, 1, 9, 17):
        x, y = rng.integers(0, 2**z, 50), rng.integers(0, 2**z, 50)
        expected_ids = [zxy_to_tileid(z, int(a), int(b)) for a, b in zip(x, y, strict=True)]
        assert mvt.tile_ids(z, x, y).tolist() == expected_ids


def test_collapsed_rings_and_points() -> None:
    tiny = shapely.box(0, 0, 0.01, 0.01)  # collapses to one point at zoom 0
    point = shapely.MultiPoint([(1000.0, 2000.0), (-5e5, 3e5)])
    frame = pd.DataFrame({"n": [1, 2]})
    attributes = mvt.prepare_attributes(frame, {"n": "integer"})
    tiles = mvt.encode_layer("t", np.array([tiny, point]), attributes, 0, 0)
    decoded = mapbox_vector_tile.decode(tiles[0])["t"]["features"]
    assert [f["properties"]["n"] for f in decoded] == [2]
    assert decoded[0]["geometry"]["type"] == "MultiPoint"


def test_feature_ids_and_a_layer_without_attributes() -> None:
    squares = np.array([shapely.box(5e3 + i * 1e3, 5e3, 5.5e3 + i * 1e3, 5.5e3) for i in range(3)])
    attributes = mvt.prepare_attributes(pd.DataFrame(index=range(3)), {})
    ids = np.array([7, 300, 2**40])
    tiles = mvt.encode_layer("t", squares, attributes, 10, 10, ids=ids)
    (data,) = tiles.values()
    decoded = mapbox_vector_tile.decode(data)["t"]
    assert [f["id"] for f in decoded["features"]] == ids.tolist()
    assert all(f["properties"] == {} for f in decoded["features"])
    layer = _raw_layer(data)
    assert list(layer.keys) == [] and list(layer.values) == []
