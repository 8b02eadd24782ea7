"""GDAL and OWSLib read every collection of both samples to the last feature.

The live server serves the Camden and Trafford samples (``/cities``); each city's API is read
as a client would, from its landing page under ``/cities/{cityId}/``, paging through ``next``
links only. What is read must equal the stored layer, feature for feature.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import geopandas as gpd
import httpx
import pyogrio
import pytest
from owslib.ogcapi.features import Features

from geo_usm import store
from tests.fixtures.live_server import LiveServer

pytestmark = pytest.mark.clients


@pytest.fixture(scope="module")
def cities(live_server: LiveServer, camden_build: Path, trafford_build: Path) -> list[dict]:
    """Each city served with its build directory, matched by build id."""
    with httpx.Client(trust_env=False, timeout=10) as client:
        listed = client.get(f"{live_server.url}/cities").json()["cities"]
    builds = {}
    for build in (camden_build, trafford_build):
        manifest = json.loads((build / "public" / "manifest.json").read_text())
        builds[manifest["build_id"]] = build
    assert sorted(c["build_id"] for c in listed) == sorted(builds)
    return [{**c, "build": builds[c["build_id"]]} for c in listed]


def _stored(build: Path) -> dict[str, tuple[str, gpd.GeoDataFrame]]:
    """Every collection the catalogue declares: its id column and its stored frame."""
    public = store.public_dir(build)
    catalog = store.load_catalog(store.load_manifest(public))
    out = {}
    for layer in catalog.collections():
        frame = store.read_layer(public, layer)
        assert layer.id_column is not None
        out[layer.name] = (layer.id_column, frame)
    return out


@pytest.mark.usefixtures("gdal_http")
def test_gdal_reads_every_collection_of_both_samples(
    live_server: LiveServer, cities: list[dict]
) -> None:
    for city in cities:
        url = f"OAPIF:{city['href'].rstrip('/')}"
        stored = _stored(city["build"])
        assert [str(n) for n, _ in pyogrio.list_layers(url)] == list(stored)
        for cid, (id_column, want) in stored.items():
            page_size = max(2, math.ceil(len(want) / 3))  # at least three pages
            before = len(live_server.requests())
            got = pyogrio.read_dataframe(url, layer=cid, PAGE_SIZE=page_size)
            assert got["id"].tolist() == want[id_column].astype(str).tolist(), (city["id"], cid)
            assert got.crs is not None and got.crs.equals("EPSG:4326")
            pages = [
                r
                for r in live_server.requests()[before:]
                if f"/cities/{city['id']}/collections/{cid}/items?" in r
            ]
            assert len(pages) >= math.ceil(len(want) / page_size), (city["id"], cid)


def test_owslib_reads_every_collection_of_both_samples(cities: list[dict]) -> None:
    with httpx.Client(trust_env=False, timeout=30) as client:
        for city in cities:
            service = Features(city["href"].rstrip("/"))
            stored = _stored(city["build"])
            assert service.feature_collections() == list(stored)
            for cid, (id_column, want) in stored.items():
                page = service.collection_items(cid, limit=max(2, math.ceil(len(want) / 3)))
                assert page["numberMatched"] == len(want)
                ids = [f["id"] for f in page["features"]]
                while nxt := [ln["href"] for ln in page["links"] if ln["rel"] == "next"]:
                    page = client.get(nxt[0]).json()
                    ids += [f["id"] for f in page["features"]]
                assert ids == want[id_column].astype(str).tolist(), (city["id"], cid)
                first = service.collection_item(cid, ids[0])
                assert first["id"] == ids[0]
