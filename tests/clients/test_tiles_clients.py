"""Real clients of the tiles over the Camden sample: a live server, mapbox-vector-tile, GDAL.

The Camden build's ``public/`` part is copied and given its tilesets by
:func:`geo_usm.tiles.write_tilesets` (grids read back from ``diagnosis.gpkg``, basemap with the
streets and parks records), so the shared build is not modified.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import mapbox_vector_tile
import morecantile
import pyogrio
import pytest
import shapely
from click.testing import CliRunner

from geo_usm import store
from geo_usm.cli import main
from geo_usm.tiles import write_tilesets
from tests.fixtures.live_server import LiveServer, live_server_for

TMS = morecantile.tms.get("WebMercatorQuad")


@pytest.fixture(scope="module")
def camden_tiled(build_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    public = tmp_path_factory.mktemp("camden_tiles") / "public"
    shutil.copytree(store.public_dir(build_dir), public, ignore=shutil.ignore_patterns("tiles"))
    catalog = store.load_catalog(store.load_manifest(public))
    frames = {layer.name: store.read_layer(public, layer) for layer in catalog.collections()}
    records = store.public_dir(build_dir).parent / "private" / "records.gpkg"
    basemap = {
        "study_area": frames["study_area"],
        "boundaries": frames["units"],
        "streets": pyogrio.read_dataframe(records, layer="streets"),
        "parks": pyogrio.read_dataframe(records, layer="osm_parks"),
    }
    write_tilesets(public, catalog, frames, basemap, attribution="Camden sample")
    return public


@pytest.fixture(scope="module")
def tiles_server(
    camden_tiled: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    log = tmp_path_factory.mktemp("tiles_server") / "uvicorn.log"
    with live_server_for(camden_tiled, log) as server:
        yield server


def test_a_z12_tile_carries_every_camden_hex_it_touches(
    camden_tiled: Path, tiles_server: LiveServer
) -> None:
    hexes = pyogrio.read_dataframe(camden_tiled / "diagnosis.gpkg", layer="hex")
    tilejson = httpx.get(f"{tiles_server.url}/collections/hex/tiles/WebMercatorQuad/tilejson.json")
    template = tilejson.json()["tiles"][0]
    centre = hexes.to_crs("EPSG:4326").union_all().centroid
    tile = TMS.tile(centre.x, centre.y, 12)
    url = template.format(z=tile.z, x=tile.x, y=tile.y)
    response = httpx.get(url, headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    layer = mapbox_vector_tile.decode(response.content)["hex"]
    got = {f["properties"]["h3"]: f for f in layer["features"]}
    bounds = TMS.xy_bounds(tile)
    box = shapely.box(bounds.left, bounds.bottom, bounds.right, bounds.top)
    projected = hexes.to_crs("EPSG:3857")
    touching = set(projected.loc[projected.intersects(box), "h3"])
    assert len(touching) > 50
    assert touching <= set(got)
    stored = hexes.set_index("h3")
    for h3_id in touching:
        value = stored.loc[h3_id, "crime_count"]
        if value != value:  # NULL (NaN when read): left out of the tile, never a zero
            assert "crime_count" not in got[h3_id]["properties"]
        else:
            assert got[h3_id]["properties"]["crime_count"] == value
        assert got[h3_id]["geometry"]["type"] == "Polygon"


def test_gdal_and_the_pmtiles_reader_open_the_export(camden_tiled: Path, tmp_path: Path) -> None:
    from pmtiles.reader import MmapSource, Reader, all_tiles

    out = tmp_path / "camden.pmtiles"
    result = CliRunner().invoke(main, ["export", str(camden_tiled), "--pmtiles", str(out)])
    assert result.exit_code == 0, result.output
    layers = [str(name) for name, _ in pyogrio.list_layers(out)]
    assert layers == ["hex", "hex_r8", "units", "study_area", "boundaries", "streets", "parks"]
    hexes = pyogrio.read_dataframe(out, layer="hex")
    assert len(hexes) > 0
    stored = pyogrio.read_dataframe(camden_tiled / "diagnosis.gpkg", layer="hex", max_features=1)
    assert {c for c in stored.columns if c != "geometry"} <= set(hexes.columns)
    assert set(hexes["h3"]) == set(
        pyogrio.read_dataframe(camden_tiled / "diagnosis.gpkg", layer="hex")["h3"]
    )
    with out.open("rb") as f:
        reader = Reader(MmapSource(f))
        assert reader.metadata()["vector_layers"][0]["id"] == "hex"
        assert sum(1 for _ in all_tiles(reader.get_bytes)) > 0
