"""OWSLib's OGC API - Features client against the live server."""

from __future__ import annotations

import geopandas as gpd
import httpx
import pytest
from openapi_spec_validator import OpenAPIV30SpecValidator
from owslib.ogcapi.features import Features

from tests.fixtures.live_server import LiveServer

pytestmark = pytest.mark.clients

CORE = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core"


@pytest.fixture(scope="module")
def service(live_server: LiveServer) -> Features:
    return Features(live_server.url)


def test_owslib_conformance_and_collections(
    service: Features, expected: dict[str, gpd.GeoDataFrame]
) -> None:
    assert CORE in service.conformance()["conformsTo"]
    assert service.feature_collections() == ["hex", "hex_r8", "units", "study_area"]
    listed = service.collections()
    assert [c["id"] for c in listed["collections"]] == ["hex", "hex_r8", "units", "study_area"]
    hexes = service.collection("hex")
    assert hexes["id"] == "hex"
    assert hexes["extent"]["spatial"]["bbox"][0][0] == pytest.approx(
        expected["hex"].total_bounds[0], abs=1e-6
    )


def test_owslib_collection_items(service: Features, expected: dict[str, gpd.GeoDataFrame]) -> None:
    ids = expected["hex"]["h3"].tolist()
    page = service.collection_items("hex", limit=7)
    assert page["type"] == "FeatureCollection"
    assert page["numberReturned"] == 7
    assert page["numberMatched"] == len(ids)
    assert [f["id"] for f in page["features"]] == ids[:7]
    page = service.collection_items("hex", limit=7, offset=7)
    assert [f["id"] for f in page["features"]] == ids[7:14]


def test_owslib_follows_next_links_to_the_end(
    service: Features, expected: dict[str, gpd.GeoDataFrame]
) -> None:
    page = service.collection_items("units", limit=6)
    ids = [f["id"] for f in page["features"]]
    with httpx.Client(trust_env=False, timeout=10) as client:
        while nxt := [ln["href"] for ln in page["links"] if ln["rel"] == "next"]:
            page = client.get(nxt[0]).json()
            ids += [f["id"] for f in page["features"]]
    assert ids == expected["units"]["unit_id"].tolist()


def test_owslib_bbox_and_single_item(
    service: Features, expected: dict[str, gpd.GeoDataFrame]
) -> None:
    units = expected["units"]
    minx, miny, maxx, maxy = units.total_bounds
    page = service.collection_items("units", bbox=[minx, miny, (minx + maxx) / 2, maxy], limit=1000)
    assert 0 < page["numberMatched"] < len(units)
    unit_id = units["unit_id"].iloc[0]
    feature = service.collection_item("units", unit_id)
    assert feature["id"] == unit_id
    assert feature["properties"]["unit_id"] == unit_id


def test_owslib_finds_and_reads_the_openapi_document(service: Features) -> None:
    document = service.api()  # found through the service-desc link and its exact media type
    assert document["openapi"].startswith("3.0.")
    OpenAPIV30SpecValidator(document).validate()
