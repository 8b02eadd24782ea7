"""Tiles: vector tiles of the grids, basemap, density tiles, TileJSON, tileset metadata.

A synthetic build gets its tilesets from :func:`geo_usm.tiles.write_tilesets` (its grids read
back from ``diagnosis.gpkg``, as the pipeline hands them over) and a small density surface; the
tiles are decoded with mapbox-vector-tile and compared with the stored layers.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mapbox_vector_tile
import morecantile
import numpy as np
import pytest
import rasterio
import shapely
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile
from rasterio.transform import from_origin
from starlette.exceptions import StarletteDeprecationWarning

from api.main import create_app
from api.settings import Settings
from geo_usm import store
from geo_usm.tiles import (
    SURFACE_BREAKS,
    SURFACE_COLORS,
    Archive,
    hex_zoom_range,
    write_tilesets,
)
from tests.fixtures.synthetic_build import BUILD_ID, write_synthetic_build

with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore", r"Using `httpx` with `starlette\.testclient`", StarletteDeprecationWarning
    )
    from fastapi.testclient import TestClient

MVT = "application/vnd.mapbox-vector-tile"
TMS = morecantile.tms.get("WebMercatorQuad")
GRIDS = ("hex", "hex_r8", "units")


def _surface(path: Path, crs: str, bounds: tuple[float, float, float, float]) -> None:
    """Write a float32 density GeoTIFF: a ramp over the west half, NaN elsewhere."""
    minx, miny, maxx, maxy = bounds
    size = 50.0
    width, height = int((maxx - minx) / size) + 1, int((maxy - miny) / size) + 1
    data = np.full((height, width), np.nan, dtype="float32")
    data[:, : width // 2] = np.linspace(0, 8000, width // 2, dtype="float32")[None, :]
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": 1,
        "dtype": "float32",
        "crs": crs,
        "transform": from_origin(minx, maxy, size, size),
        "nodata": float("nan"),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)


@pytest.fixture(scope="module")
def tiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = write_synthetic_build(tmp_path_factory.mktemp("tiled") / "city")
    public = store.public_dir(out)
    catalog = store.load_catalog(store.load_manifest(public))
    frames = {layer.name: store.read_layer(public, layer) for layer in catalog.collections()}
    basemap = {"study_area": frames["study_area"], "boundaries": frames["units"]}
    section = write_tilesets(public, catalog, frames, basemap, attribution="Test data")
    _surface(public / "risk_surface.tif", str(frames["units"].crs), frames["units"].total_bounds)
    return {"out": out, "public": public, "catalog": catalog, "frames": frames, "section": section}


@pytest.fixture(scope="module")
def tclient(tiled: dict[str, Any]) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(build_dir=tiled["out"]))) as test_client:
        yield test_client


def _centre_tile(tiled: dict[str, Any], name: str, z: int) -> morecantile.Tile:
    frame = tiled["frames"][name].to_crs("EPSG:4326")
    point = frame.geometry.iloc[len(frame) // 2].representative_point()
    return TMS.tile(point.x, point.y, z)


def _url(name: str, tile: morecantile.Tile) -> str:
    return f"/collections/{name}/tiles/WebMercatorQuad/{tile.z}/{tile.y}/{tile.x}"


def test_manifest_section_declares_every_tileset(tiled: dict[str, Any]) -> None:
    section = tiled["section"]
    assert set(section) == {*GRIDS, "basemap"}
    for name in GRIDS:
        entry = section[name]
        declared = tiled["catalog"].layer(name)
        assert entry["file"] == f"public/tiles/{name}.pmtiles"
        assert (tiled["out"] / entry["file"]).stat().st_size == entry["bytes"]
        assert [layer["id"] for layer in entry["layers"]] == [name]
        assert entry["layers"][0]["fields"] == {c.name: c.type for c in declared.columns}
        assert entry["extent"] == 4096
        west, south, east, north = entry["bounds"]
        assert -0.3 < west < east < 0.0 and 51.4 < south < north < 51.7
    assert (section["hex"]["minzoom"], section["hex"]["maxzoom"]) == hex_zoom_range(9) == (10, 13)
    assert (section["hex_r8"]["minzoom"], section["hex_r8"]["maxzoom"]) == (9, 12)
    assert [layer["id"] for layer in section["basemap"]["layers"]] == ["study_area", "boundaries"]


@pytest.mark.parametrize("name", GRIDS)
def test_a_tile_carries_every_feature_it_touches_with_its_attributes(
    tiled: dict[str, Any], tclient: TestClient, name: str
) -> None:
    z = tiled["section"][name]["minzoom"] + 2
    tile = _centre_tile(tiled, name, z)
    response = tclient.get(_url(name, tile))
    assert response.status_code == 200
    assert response.headers["content-type"] == MVT
    decoded = mapbox_vector_tile.decode(response.content)
    assert list(decoded) == [name]  # the layer is named as the collection (source-layer)
    layer = decoded[name]
    assert layer["extent"] == 4096
    declared = tiled["catalog"].layer(name)
    id_column = declared.id_column
    got = {f["properties"][id_column]: f["properties"] for f in layer["features"]}

    frame = tiled["frames"][name].to_crs("EPSG:3857")
    bounds = TMS.xy_bounds(tile)
    box = shapely.box(bounds.left, bounds.bottom, bounds.right, bounds.top)
    touching = set(frame.loc[frame.intersects(box), id_column])
    assert touching and touching <= set(got)
    buffered = box.buffer((bounds.right - bounds.left) * 80 / 4096 * 1.01, join_style="mitre")
    assert set(got) <= set(frame.loc[frame.intersects(buffered), id_column])

    stored = frame.set_index(id_column)
    for fid, props in got.items():
        row = stored.loc[fid]
        assert set(props) <= set(declared.column_names)
        for column in declared.columns:
            if column.name == id_column:
                continue
            value = row[column.name]
            if value is None or (isinstance(value, float) and np.isnan(value)):
                assert column.name not in props  # NULL is left out, never a zero
            elif column.type in ("integer", "float"):
                assert props[column.name] == pytest.approx(float(value), rel=1e-6)
            elif column.type == "string":
                assert props[column.name] == value


def test_tile_headers_gzip_and_revalidation(tclient: TestClient, tiled: dict[str, Any]) -> None:
    url = _url("hex", _centre_tile(tiled, "hex", 12))
    gz = tclient.get(url, headers={"Accept-Encoding": "gzip"})
    assert gz.headers["content-encoding"] == "gzip"
    assert gz.headers["etag"] == f'"{BUILD_ID}-gzip"'
    assert gz.headers["cache-control"].startswith("public")
    plain = tclient.get(url, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.headers["etag"] == f'"{BUILD_ID}"'
    assert plain.content == gz.content  # httpx decoded the gzip body
    again = tclient.get(
        url, headers={"Accept-Encoding": "identity", "If-None-Match": f'"{BUILD_ID}"'}
    )
    assert again.status_code == 304
    assert again.content == b""


def test_empty_tile_is_204_and_outside_limits_is_404(tclient: TestClient) -> None:
    empty = tclient.get("/collections/hex/tiles/WebMercatorQuad/12/0/0")
    assert empty.status_code == 204
    assert empty.content == b""
    assert empty.headers["etag"] == f'"{BUILD_ID}"'
    below = tclient.get("/collections/hex/tiles/WebMercatorQuad/3/0/0")
    assert below.status_code == 404
    assert "zoom levels 10 to 13" in below.json()["description"]
    outside = tclient.get("/collections/hex/tiles/WebMercatorQuad/12/4096/0")
    assert outside.status_code == 404
    for bad in ("12/-1/0", "x/0/0", "25/0/0"):
        assert tclient.get(f"/collections/hex/tiles/WebMercatorQuad/{bad}").status_code == 400
    assert tclient.get("/collections/hex/tiles/WebMercatorQuad/12/0/0?foo=1").status_code == 400


def test_collections_without_tiles_are_404(tclient: TestClient) -> None:
    response = tclient.get("/collections/study_area/tiles/WebMercatorQuad/tilejson.json")
    assert response.status_code == 404
    assert "collections with tiles: hex, hex_r8, units" in response.json()["description"]
    assert tclient.get("/collections/nope/tiles").status_code == 404


def test_a_build_without_tiles_says_so(client: TestClient) -> None:
    response = client.get("/collections/hex/tiles/WebMercatorQuad/12/1361/2046")
    assert response.status_code == 404
    assert "no vector tiles" in response.json()["description"]
    assert client.get("/tiles/basemap/WebMercatorQuad/tilejson.json").status_code == 404
    assert client.get("/collections/risk_surface/legend").status_code == 404


def test_tilejson(tclient: TestClient, tiled: dict[str, Any]) -> None:
    response = tclient.get("/collections/hex/tiles/WebMercatorQuad/tilejson.json")
    assert response.status_code == 200
    assert response.headers["etag"] == f'"{BUILD_ID}"'
    doc = response.json()
    assert doc["tilejson"] == "3.0.0"
    assert doc["tiles"] == ["http://testserver/collections/hex/tiles/WebMercatorQuad/{z}/{y}/{x}"]
    assert (doc["minzoom"], doc["maxzoom"]) == (10, 13)
    assert doc["bounds"] == pytest.approx(tiled["section"]["hex"]["bounds"], abs=1e-6)
    assert doc["attribution"]
    (layer,) = doc["vector_layers"]
    assert layer["id"] == "hex"
    declared = tiled["catalog"].layer("hex")
    assert list(layer["fields"]) == declared.column_names
    assert set(layer["fields"].values()) <= {"String", "Number", "Boolean"}


def test_tileset_metadata(tclient: TestClient) -> None:
    doc = tclient.get("/collections/units/tiles/WebMercatorQuad").json()
    assert doc["dataType"] == "vector"
    assert doc["tileMatrixSetURI"].endswith("/WebMercatorQuad")
    rels = {link["rel"] for link in doc["links"]}
    assert {"self", "item", "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme"} <= rels
    item = next(link for link in doc["links"] if link["rel"] == "item")
    assert item["href"].endswith("/{tileMatrix}/{tileRow}/{tileCol}")
    limits = doc["tileMatrixSetLimits"]
    assert [int(limit["tileMatrix"]) for limit in limits] == list(
        range(int(limits[0]["tileMatrix"]), int(limits[-1]["tileMatrix"]) + 1)
    )
    assert doc["layers"][0]["id"] == "units"
    assert "unit_id" in doc["layers"][0]["propertiesSchema"]["properties"]
    listing = tclient.get("/collections/units/tiles").json()
    assert listing["tilesets"][0]["links"][0]["href"].endswith("/units/tiles/WebMercatorQuad")


def test_basemap(tclient: TestClient, tiled: dict[str, Any]) -> None:
    doc = tclient.get("/tiles/basemap/WebMercatorQuad/tilejson.json").json()
    assert [layer["id"] for layer in doc["vector_layers"]] == ["study_area", "boundaries"]
    tile = _centre_tile(tiled, "units", doc["minzoom"] + 1)
    response = tclient.get(f"/tiles/basemap/WebMercatorQuad/{tile.z}/{tile.y}/{tile.x}")
    decoded = mapbox_vector_tile.decode(response.content)
    assert set(decoded) == {"study_area", "boundaries"}
    assert {"unit_id", "unit_name"} >= set(decoded["boundaries"]["features"][0]["properties"])


def test_density_tiles_and_legend(tclient: TestClient, tiled: dict[str, Any]) -> None:
    legend = tclient.get("/collections/risk_surface/legend").json()
    assert [c["color"] for c in legend["classes"]] == list(SURFACE_COLORS)
    assert [c["min"] for c in legend["classes"]] == list(SURFACE_BREAKS[:-1])
    assert legend["classes"][-1]["max"] is None
    doc = tclient.get("/collections/risk_surface/map/tiles/WebMercatorQuad/tilejson.json").json()
    assert doc["tiles"][0].endswith(
        "/collections/risk_surface/map/tiles/WebMercatorQuad/{z}/{y}/{x}"
    )
    west, south, east, north = doc["bounds"]
    z = doc["minzoom"] + 1
    tile = TMS.tile(west + (east - west) * 0.1, (south + north) / 2, z)
    url = f"/collections/risk_surface/map/tiles/WebMercatorQuad/{tile.z}/{tile.y}/{tile.x}"
    response = tclient.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # a PNG tile has no CRS
        with MemoryFile(response.content) as memory, memory.open() as png:
            rgba = png.read()
    assert rgba.shape == (4, 256, 256)
    opaque = rgba[3] > 0
    assert opaque.any()
    colours = {
        "#{:02x}{:02x}{:02x}".format(*rgba[:3, i, j])
        for i, j in zip(*np.nonzero(opaque), strict=True)
    }
    assert colours <= set(SURFACE_COLORS)
    east_tile = TMS.tile(east - (east - west) * 0.05, (south + north) / 2, 16)
    url = f"/collections/risk_surface/map/tiles/WebMercatorQuad/16/{east_tile.y}/{east_tile.x}"
    assert tclient.get(url).status_code == 204  # NaN there: no data at all
    assert (
        tclient.get("/collections/risk_surface/map/tiles/WebMercatorQuad/16/0/0").status_code == 204
    )


def test_archives_open_with_the_pmtiles_reader(tiled: dict[str, Any]) -> None:
    from pmtiles.reader import MmapSource, Reader

    path = tiled["public"] / "tiles" / "hex.pmtiles"
    with path.open("rb") as f:
        reader = Reader(MmapSource(f))
        assert reader.header()["min_zoom"] == 10
        assert reader.metadata()["vector_layers"][0]["id"] == "hex"
    with Archive(path) as archive:
        assert len(archive) == tiled["section"]["hex"]["tiles"]
