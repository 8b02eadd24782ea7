"""Items query beyond Part 1: property filters, sortby, properties, queryables, downloads."""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
from fastapi.testclient import TestClient

SCHEMA_JSON = "application/schema+json"


def _links(doc: dict) -> dict[str, str]:
    return {link["rel"]: link["href"] for link in doc["links"]}


def _all(client: TestClient, url: str) -> list[dict]:
    """Every feature, following next links."""
    features: list[dict] = []
    while url:
        doc = client.get(url).json()
        features += doc["features"]
        url = _links(doc).get("next", "")
    return features


def test_property_filter_is_typed_from_the_catalogue(
    client: TestClient, expected: dict[str, gpd.GeoDataFrame]
) -> None:
    units = expected["units"]
    value = int(units["crime_count"].mode().iloc[0])
    want = units.loc[units["crime_count"] == value, "unit_id"].tolist()
    doc = client.get(f"/collections/units/items?crime_count={value}&limit=1000").json()
    assert doc["numberMatched"] == len(want) > 0
    assert [f["id"] for f in doc["features"]] == want
    name = units["unit_name"].iloc[3]
    doc = client.get("/collections/units/items", params={"unit_name": name}).json()
    assert [f["properties"]["unit_name"] for f in doc["features"]] == [name]
    # NULL never matches
    assert client.get("/collections/units/items?perception_count=0").json()["numberMatched"] == 0


@pytest.mark.parametrize(
    "query",
    [
        "crime_count=abc",
        "crime_count=1.5",
        "crime_count=",
        "area_m2=x",
        "area_m2=inf",
        "sortby=nope",
        "sortby=",
        "sortby=crime_count,,h3",
        "properties=nope",
        "properties=",
        "unit_id=1",  # a property of another collection: unknown here
        "crime_count=1&crime_count=2",
    ],
)
def test_invalid_filter_sortby_properties_are_400(client: TestClient, query: str) -> None:
    response = client.get(f"/collections/hex/items?{query}")
    assert response.status_code == 400, query
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 400 and body["code"] == "InvalidParameterValue" and body["detail"]


def test_unknown_collection_with_filters_is_404(client: TestClient) -> None:
    assert client.get("/collections/nope/items?crime_count=1").status_code == 404


def test_sortby_orders_with_nulls_last_and_pages(
    client: TestClient, expected: dict[str, gpd.GeoDataFrame]
) -> None:
    units = expected["units"]
    want = units.sort_values(["crime_count", "unit_id"], ascending=[False, True], kind="stable")[
        "unit_id"
    ].tolist()
    got = [f["id"] for f in _all(client, "/collections/units/items?sortby=-crime_count,unit_id")]
    assert got == want
    # '+' left unencoded arrives as a space: ascending
    ascending = client.get("/collections/units/items?sortby=+crime_count&limit=1000").json()
    values = [f["properties"]["crime_count"] for f in ascending["features"]]
    assert values == sorted(values)


def test_properties_selects_and_orders_properties(client: TestClient) -> None:
    doc = client.get("/collections/units/items?properties=crime_count,unit_id&limit=3").json()
    for feature in doc["features"]:
        assert list(feature["properties"]) == ["crime_count", "unit_id"]
        assert feature["geometry"]["type"] in ("Polygon", "MultiPolygon")
    plain = client.get("/collections/units/items?limit=3").json()
    assert [f["id"] for f in doc["features"]] == [f["id"] for f in plain["features"]]
    assert [f["geometry"] for f in doc["features"]] == [f["geometry"] for f in plain["features"]]


def test_links_carry_the_selection(client: TestClient) -> None:
    url = "/collections/hex/items?limit=2&crime_count=0&sortby=-area_share&properties=h3"
    doc = client.get(url).json()
    query = parse_qs(urlsplit(_links(doc)["next"]).query)
    assert query["crime_count"] == ["0"]
    assert query["sortby"] == ["-area_share"]
    assert query["properties"] == ["h3"]
    assert query["offset"] == ["2"]
    features = _all(client, url)
    assert len(features) == doc["numberMatched"]


def test_bbox_combines_with_filters(
    client: TestClient, expected: dict[str, gpd.GeoDataFrame]
) -> None:
    minx, miny, maxx, maxy = expected["hex"].total_bounds
    box = f"{minx},{miny},{(minx + maxx) / 2},{maxy}"
    boxed = client.get(f"/collections/hex/items?bbox={box}&limit=10000").json()
    both = client.get(f"/collections/hex/items?bbox={box}&crime_count=0&limit=10000").json()
    zero = [f["id"] for f in boxed["features"] if f["properties"]["crime_count"] == 0]
    assert [f["id"] for f in both["features"]] == zero


def test_queryables_and_sortables_are_json_schema(client: TestClient) -> None:
    response = client.get("/collections/units/queryables")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(SCHEMA_JSON)
    schema = response.json()
    assert schema["$schema"] == "https://json-schema.org/draft/2019-09/schema"
    assert schema["$id"] == "http://testserver/collections/units/queryables"
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    props = schema["properties"]
    assert props["crime_count"]["type"] == "integer"
    assert props["crime_count"]["x-ogc-unit"] == "count"
    assert props["area_m2"]["type"] == "number"
    assert props["unit_name"]["type"] == "string"
    assert props["geometry"]["x-ogc-role"] == "primary-geometry"
    sortables = client.get("/collections/units/sortables").json()
    assert set(sortables["properties"]) == set(props) - {"geometry"}
    assert client.get("/collections/nope/queryables").status_code == 404


def test_collection_lists_its_fields_with_titles_and_units(client: TestClient) -> None:
    doc = client.get("/collections/units").json()
    fields = {f["name"]: f for f in doc["fields"]}
    assert fields["crime_count"]["unit"] == "count"
    assert fields["crime_count"]["type"] == "integer"
    assert fields["unit_name"]["unit"] is None
    assert fields["perception_count"]["null_reason"]
    rels = {link["rel"] for link in doc["links"]}
    assert "http://www.opengis.net/def/rel/ogc/1.0/queryables" in rels
    assert "enclosure" in rels and "alternate" in rels
    assert doc["diagnosis"].endswith("/collections/units/items/{featureId}/diagnosis")
    assert "diagnosis" not in client.get("/collections/study_area").json()


def test_csv_download_of_the_selection(
    client: TestClient, expected: dict[str, gpd.GeoDataFrame]
) -> None:
    response = client.get("/collections/units/items?f=csv&properties=unit_name,crime_count")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="' in response.headers["content-disposition"]
    table = pd.read_csv(io.StringIO(response.text))
    assert list(table.columns) == ["unit_id", "unit_name", "crime_count", "geometry"]
    assert len(table) == len(expected["units"])  # the whole collection, not a page
    assert table["geometry"].str.startswith(("POLYGON", "MULTIPOLYGON")).all()
    page = client.get("/collections/units/items?f=csv&limit=3&offset=2")
    assert len(pd.read_csv(io.StringIO(page.text))) == 3


def test_gpkg_download_reads_back(
    client: TestClient, expected: dict[str, gpd.GeoDataFrame], tmp_path: Path
) -> None:
    response = client.get("/collections/hex/items?f=gpkg&crime_count=0")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/geopackage+sqlite3"
    assert 'filename="camden-synthetic-hex.gpkg"' in response.headers["content-disposition"]
    path = tmp_path / "download.gpkg"
    path.write_bytes(response.content)
    frame = pyogrio.read_dataframe(path)
    want = expected["hex"]
    assert sorted(frame["h3"]) == sorted(want.loc[want["crime_count"] == 0, "h3"])
    assert frame.crs is not None and frame.crs.equals("OGC:CRS84")


def test_html_views_for_browsers(client: TestClient) -> None:
    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    feature = client.get("/collections/units/items?limit=1").json()["features"][0]["id"]
    for url in (
        "/conformance",
        "/collections",
        "/collections/units",
        "/collections/units/items?limit=5",
        f"/collections/units/items/{feature}",
        f"/collections/units/items/{feature}/diagnosis",
        "/collections/units/queryables",
        "/cities",
    ):
        for response in (client.get(url, headers=browser), client.get(url, params={"f": "html"})):
            assert response.status_code == 200, url
            assert response.headers["content-type"].startswith("text/html"), url
            assert response.text.startswith("<!DOCTYPE html>")
            assert "<script" not in response.text and "cdn" not in response.text.lower()
    # clients without an HTML preference keep JSON
    for accept in ("*/*", "application/json", "application/geo+json, application/json"):
        response = client.get("/collections", headers={"Accept": accept})
        assert response.headers["content-type"].startswith("application/json")


def test_gzip_for_large_responses(client: TestClient) -> None:
    raw = client.get(
        "/collections/hex/items?limit=100", headers={"Accept-Encoding": "gzip"}
    ).headers
    assert raw["content-encoding"] == "gzip"
    small = client.get("/conformance", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers
    plain = client.get("/collections/hex/items?limit=100", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert gzip.compress(plain.content)  # the plain body is the GeoJSON itself
    assert plain.json()["numberReturned"] == 100


def test_api_declares_each_collections_filters(client: TestClient) -> None:
    document = client.get("/api").json()
    units = document["paths"]["/collections/units/items"]["get"]
    params = {p["name"]: p for p in units["parameters"]}
    assert params["crime_count"]["schema"] == {"type": "integer"}
    assert params["area_m2"]["schema"] == {"type": "number"}
    assert "-crime_count" in params["sortby"]["schema"]["items"]["enum"]
    assert "unit_name" in params["properties"]["schema"]["items"]["enum"]
    assert "collectionId" not in params
    assert units["operationId"] == "getFeatures_units"
    diagnosis = document["paths"]["/collections/{collectionId}/items/{featureId}/diagnosis"]
    (cid,) = [p for p in diagnosis["get"]["parameters"] if p["name"] == "collectionId"]
    assert cid["schema"]["enum"] == ["hex", "hex_r8", "units"]
    assert "/cities" in document["paths"]
