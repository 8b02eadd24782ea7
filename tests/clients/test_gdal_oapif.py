"""GDAL's OAPIF driver reads every feature of the collections, paging through next links."""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely

from tests.fixtures.live_server import LiveServer

pytestmark = [pytest.mark.clients, pytest.mark.usefixtures("gdal_http")]


#: The id column of each collection of the Camden sample build.
ID_COLUMNS = {"hex": "h3", "hex_r8": "h3", "units": "unit_id", "study_area": "name"}


def _assert_same(got: gpd.GeoDataFrame, want: gpd.GeoDataFrame, cid: str) -> None:
    assert len(got) == len(want)
    assert got["id"].tolist() == want[ID_COLUMNS[cid]].astype(str).tolist()
    for column in (c for c in want.columns if c != want.geometry.name):
        if pd.api.types.is_float_dtype(want[column]):
            np.testing.assert_allclose(got[column].astype(float), want[column], rtol=1e-12)
        else:
            assert got[column].tolist() == want[column].tolist(), column
    assert got.crs is not None and got.crs.equals("EPSG:4326")
    assert all(shapely.equals_exact(got.geometry.values, want.geometry.values, tolerance=1e-6))


def test_gdal_lists_only_the_public_collections(
    live_server: LiveServer, expected: dict[str, gpd.GeoDataFrame]
) -> None:
    layers = pyogrio.list_layers(f"OAPIF:{live_server.url}")
    assert [str(name) for name, _ in layers] == ["hex", "hex_r8", "units", "study_area"]


@pytest.mark.parametrize("cid", ["hex", "units"])
def test_gdal_pages_through_every_feature(
    live_server: LiveServer, expected: dict[str, gpd.GeoDataFrame], cid: str
) -> None:
    want = expected[cid]
    page_size = max(2, len(want) // 5)  # about five pages
    before = len(live_server.requests())
    got = pyogrio.read_dataframe(f"OAPIF:{live_server.url}", layer=cid, PAGE_SIZE=page_size)
    _assert_same(got, want, cid)
    served = live_server.requests()[before:]
    pages = [
        r
        for r in served
        if r.startswith(f"/collections/{cid}/items?") and f"limit={page_size}" in r
    ]
    assert len(pages) >= math.ceil(len(want) / page_size)
    assert sum("offset=" in r for r in pages) >= math.ceil(len(want) / page_size) - 1


def test_gdal_reads_every_layer_with_its_default_page_size(
    live_server: LiveServer, expected: dict[str, gpd.GeoDataFrame]
) -> None:
    for cid, want in expected.items():
        got = pyogrio.read_dataframe(f"OAPIF:{live_server.url}", layer=cid)
        _assert_same(got, want, cid)


def test_gdal_spatial_filter_is_sent_as_bbox(
    live_server: LiveServer, expected: dict[str, gpd.GeoDataFrame]
) -> None:
    want = expected["hex"]
    minx, miny, maxx, maxy = want.total_bounds
    box = (minx, miny, (minx + maxx) / 2, (miny + maxy) / 2)
    before = len(live_server.requests())
    got = pyogrio.read_dataframe(f"OAPIF:{live_server.url}", layer="hex", bbox=box, PAGE_SIZE=20)
    selected = want[want.intersects(shapely.box(*box))]
    assert 0 < len(selected) < len(want)
    assert sorted(got["id"]) == sorted(selected["h3"])
    assert any("bbox=" in r for r in live_server.requests()[before:])
