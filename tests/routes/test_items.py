"""The features of a collection ``/collections/{collectionId}/items``."""

from __future__ import annotations

import math
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from tests.fixtures.synthetic_build import ID_COLUMNS

GEOJSON = "application/geo+json"
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


def _links(doc: dict) -> dict[str, str]:
    return {link["rel"]: link["href"] for link in doc["links"]}


def _walk(client: TestClient, url: str, *, max_pages: int = 1000) -> tuple[list[dict], int]:
    """Follow ``next`` links from ``url``; return every feature and the number of pages."""
    features: list[dict] = []
    pages = 0
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.text
        doc = response.json()
        assert doc["numberReturned"] == len(doc["features"])
        features += doc["features"]
        pages += 1
        assert pages <= max_pages
        url = _links(doc).get("next", "")
    return features, pages


def test_first_page(client: TestClient, expected: dict[str, gpd.GeoDataFrame]) -> None:
    response = client.get("/collections/hex/items")
    assert response.status_code == 200
    assert response.headers["content-type"] == GEOJSON
    doc = response.json()
    assert doc["type"] == "FeatureCollection"
    assert doc["numberMatched"] == len(expected["hex"])
    assert doc["numberReturned"] == len(doc["features"]) == 10  # default limit
    assert TIMESTAMP.fullmatch(doc["timeStamp"])
    links = _links(doc)
    assert links["self"] == "http://testserver/collections/hex/items?limit=10"
    assert links["next"] == "http://testserver/collections/hex/items?limit=10&offset=10"
    assert links["collection"] == "http://testserver/collections/hex"
    assert "prev" not in links
    types = {link["rel"]: link["type"] for link in doc["links"]}
    assert types["next"] == types["self"] == GEOJSON


@pytest.mark.parametrize("limit", [1, 7, 100])
def test_next_links_page_through_everything_once(
    client: TestClient, expected: dict[str, gpd.GeoDataFrame], limit: int
) -> None:
    for cid, frame in expected.items():
        features, pages = _walk(client, f"/collections/{cid}/items?limit={limit}")
        ids = [f["id"] for f in features]
        assert ids == frame[ID_COLUMNS[cid]].astype(str).tolist()
        assert pages == max(1, math.ceil(len(frame) / limit))


def test_features_match_the_build(
    client: TestClient, expected: dict[str, gpd.GeoDataFrame]
) -> None:
    for cid, frame in expected.items():
        doc = client.get(f"/collections/{cid}/items", params={"limit": 10000}).json()
        assert doc["numberReturned"] == len(frame)
        columns = [c for c in frame.columns if c != frame.geometry.name]
        got = pd.DataFrame([f["properties"] for f in doc["features"]])
        assert list(got.columns) == columns  # every attribute, in order
        for column in columns:
            want = frame[column]
            if pd.api.types.is_float_dtype(want):
                np.testing.assert_allclose(got[column].astype(float), want, rtol=1e-12)
            else:
                assert got[column].tolist() == want.tolist(), column
        for feature, geometry in zip(doc["features"], frame.geometry.values, strict=True):
            assert feature["type"] == "Feature"
            assert feature["id"] == feature["properties"][ID_COLUMNS[cid]]
            served = shapely.geometry.shape(feature["geometry"])
            assert served.geom_type == geometry.geom_type
            assert shapely.equals_exact(served, geometry, tolerance=1e-6)  # CRS84, lon/lat
            lon, lat = shapely.get_coordinates(served).T
            assert ((lon > -1) & (lon < 1)).all() and ((lat > 50) & (lat < 53)).all()


def test_missing_values_are_null(client: TestClient, expected: dict[str, gpd.GeoDataFrame]) -> None:
    units = expected["units"]
    if "population" not in units or not units["population"].isna().any():
        pytest.skip("no unit without population in this build")
    unit_id = units.loc[units["population"].isna(), "unit_id"].iloc[0]
    doc = client.get("/collections/units/items", params={"limit": 10000}).json()
    (feature,) = [f for f in doc["features"] if f["id"] == unit_id]
    assert feature["properties"]["population"] is None


def test_offset_and_prev(client: TestClient, expected: dict[str, gpd.GeoDataFrame]) -> None:
    ids = expected["hex"]["h3"].tolist()
    doc = client.get("/collections/hex/items?limit=5&offset=12").json()
    assert [f["id"] for f in doc["features"]] == ids[12:17]
    links = _links(doc)
    assert links["prev"] == "http://testserver/collections/hex/items?limit=5&offset=7"
    assert links["next"] == "http://testserver/collections/hex/items?limit=5&offset=17"
    first = client.get("/collections/hex/items?limit=5&offset=3").json()
    assert _links(first)["prev"] == "http://testserver/collections/hex/items?limit=5"


def test_last_page_has_no_next(client: TestClient, expected: dict[str, gpd.GeoDataFrame]) -> None:
    n = len(expected["units"])
    doc = client.get(f"/collections/units/items?limit=5&offset={n - 2}").json()
    assert doc["numberReturned"] == 2
    assert "next" not in _links(doc)
    beyond = client.get(f"/collections/units/items?offset={n + 50}").json()
    assert beyond["numberReturned"] == 0 and beyond["numberMatched"] == n
    assert "next" not in _links(beyond)


@pytest.mark.parametrize(
    ("given", "used"),
    [("1", 1), ("+3", 3), ("10000", 10000), ("20000", 10000), ("9" * 40, 10000)],
)
def test_limit_is_clamped(
    client: TestClient, expected: dict[str, gpd.GeoDataFrame], given: str, used: int
) -> None:
    response = client.get("/collections/hex/items", params={"limit": given})
    assert response.status_code == 200
    doc = response.json()
    assert doc["numberReturned"] == min(used, len(expected["hex"]))
    assert parse_qs(urlsplit(_links(doc)["self"]).query)["limit"] == [str(used)]


def test_limits_come_from_the_settings(build_dir: Path) -> None:
    app = create_app(Settings(build_dir=build_dir, default_limit=3, max_limit=4))
    with TestClient(app) as client:
        assert client.get("/collections/units/items").json()["numberReturned"] == 3
        assert client.get("/collections/units/items?limit=50").json()["numberReturned"] == 4


@pytest.mark.parametrize(
    "query",
    [
        "limit=abc",
        "limit=1.5",
        "limit=",
        "limit=0",
        "limit=-5",
        "limit=%201",
        "offset=-1",
        "offset=x",
        "offset=",
        "bbox=1,2,3",
        "bbox=a,b,c,d",
        "bbox=1,2,3,4,5",
        "bbox=1,2,3,4,5,6,7",
        "bbox=0,60,1,50",
        "bbox=0,0,-1,10,-10,1",
        "bbox=nan,0,1,1",
        "bbox=",
        "bbox=0,0,inf,1",
        "bbox=0,0,1_0,1",
        "bbox=0,0,,1",
        "datetime=yesterday",
        "datetime=2019-13-01",
        "datetime=2019-02-29",
        "datetime=2019-06-01T25:00:00Z",
        "datetime=2019-06-01T23:59:60Z",
        "datetime=2020-01-01/2019-01-01",
        "datetime=../..",
        "datetime=/",
        "datetime=a/b/c",
        "datetime=",
        "foo=bar",
        "filter=crime_count>1",
        "bbox-crs=EPSG:4326",
        "limit=1&limit=2",
        "f=xml",
    ],
)
def test_invalid_query_is_400(client: TestClient, query: str) -> None:
    response = client.get(f"/collections/hex/items?{query}")
    assert response.status_code == 400, query
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "InvalidParameterValue"
    assert body["description"]


@pytest.mark.parametrize(
    "value",
    [
        "2019-06-15T12:00:00Z",
        "2019-06-15",
        "2019-06-15T12:00:00+01:00",
        "2019-06-15t12:00:00z",
        "2019-01-01T00:00:00Z/2019-12-31T23:59:59Z",
        "../2019-12-31",
        "2019-01-01/..",
        "2019-01-01/",
        "/2019-01-01",
        "2019-06-15T12:00:00.250Z",
        "2020-02-29",
        "2000-02-29T00:00:00-23:59",
    ],
)
def test_any_valid_datetime_selects_everything(
    client: TestClient, expected: dict[str, gpd.GeoDataFrame], value: str
) -> None:
    response = client.get("/collections/hex/items", params={"datetime": value, "limit": 3})
    assert response.status_code == 200, response.text
    doc = response.json()
    assert doc["numberMatched"] == len(expected["hex"])
    assert parse_qs(urlsplit(_links(doc)["next"]).query)["datetime"] == [value]


def _boxes(frame: gpd.GeoDataFrame) -> list[tuple[float, float, float, float]]:
    minx, miny, maxx, maxy = frame.total_bounds
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    return [
        (minx, miny, cx, cy),
        (cx - 0.01, cy - 0.005, cx + 0.01, cy + 0.005),
        (minx - 1, miny - 1, maxx + 1, maxy + 1),
        (10.0, 10.0, 11.0, 11.0),
        (cx, cy, cx, cy),  # a point
    ]


def test_bbox_selects_intersecting_features(
    client: TestClient, expected: dict[str, gpd.GeoDataFrame]
) -> None:
    for cid, frame in expected.items():
        for box in _boxes(frame):
            text = ",".join(repr(float(v)) for v in box)
            want = frame.loc[
                frame.intersects(shapely.box(*box) if box[0] < box[2] else shapely.Point(box[:2])),
                ID_COLUMNS[cid],
            ]
            features, _ = _walk(client, f"/collections/{cid}/items?limit=7&bbox={text}")
            assert [f["id"] for f in features] == want.tolist(), (cid, box)
            doc = client.get(f"/collections/{cid}/items", params={"bbox": text}).json()
            assert doc["numberMatched"] == len(want)
            next_link = _links(doc).get("next")
            if next_link:
                assert parse_qs(urlsplit(next_link).query)["bbox"] == [text]


def test_bbox_with_heights_and_across_the_antimeridian(
    client: TestClient, expected: dict[str, gpd.GeoDataFrame]
) -> None:
    frame = expected["units"]
    minx, miny, maxx, maxy = frame.total_bounds
    cx = (minx + maxx) / 2
    flat = client.get(
        "/collections/units/items", params={"bbox": f"{minx},{miny},{cx},{maxy}"}
    ).json()
    with_heights = client.get(
        "/collections/units/items", params={"bbox": f"{minx},{miny},-10,{cx},{maxy},100"}
    ).json()
    assert flat["numberMatched"] == with_heights["numberMatched"] > 0
    # from 179 E eastwards across the antimeridian to the middle of the city
    crossing = client.get(
        "/collections/units/items", params={"bbox": f"179,{miny},{cx},{maxy}", "limit": 10000}
    ).json()
    want = frame.loc[frame.intersects(shapely.box(-180, miny, cx, maxy)), "unit_id"]
    assert [f["id"] for f in crossing["features"]] == want.tolist()
    assert 0 < len(want) < len(frame)


def test_bbox_beyond_the_poles_and_the_antimeridian(
    client: TestClient, expected: dict[str, gpd.GeoDataFrame]
) -> None:
    """Every schema-valid box is served: latitudes stop at the poles, longitudes wrap."""
    frame = expected["units"]
    minx, miny, maxx, maxy = frame.total_bounds
    cx = (minx + maxx) / 2

    def ids(bbox: str) -> list[str]:
        response = client.get("/collections/units/items", params={"bbox": bbox, "limit": 10000})
        assert response.status_code == 200, (bbox, response.text)
        return [f["id"] for f in response.json()["features"]]

    everything = frame["unit_id"].tolist()
    west = ids(f"{minx},{miny},{cx},{maxy}")
    assert 0 < len(west) < len(everything)
    assert ids(f"{minx},-100,{maxx},1e300") == ids(f"{minx},-90,{maxx},90") == everything
    assert ids(f"{minx + 360},{miny},{cx + 360},{maxy}") == west
    assert ids(f"{minx - 720},{miny},{cx - 720},{maxy}") == west
    assert ids(f"-200,{miny},160,{maxy}") == everything  # 360 degrees wide
    assert ids(f"179,{miny},{cx + 360},{maxy}") == ids(f"179,{miny},{cx},{maxy}") == west


def test_empty_datetime_is_refused_as_the_document_says(client: TestClient) -> None:
    document = client.get("/api").json()
    items = document["paths"]["/collections/{collectionId}/items"]["get"]
    (param,) = [p for p in items["parameters"] if p["name"] == "datetime"]
    assert param["schema"]["minLength"] == 1
    assert re.search(param["schema"]["pattern"], "") is None
    assert re.search(param["schema"]["pattern"], "2019-06-15") is not None
    for url in ("/collections/hex/items?datetime=", "/collections/hex/items?limit=2&datetime="):
        response = client.get(url)
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        assert body["code"] == "InvalidParameterValue" and body["status"] == 400
        assert "datetime" in body["description"]
    assert "400" in items["responses"]


@pytest.mark.parametrize("fmt", ["json", "geojson"])
def test_f_json_is_accepted_and_kept_in_links(client: TestClient, fmt: str) -> None:
    response = client.get(f"/collections/hex/items?f={fmt}&limit=2")
    assert response.status_code == 200
    assert response.headers["content-type"] == GEOJSON
    assert parse_qs(urlsplit(_links(response.json())["next"]).query)["f"] == [fmt]


def test_unknown_collection_items_is_404(client: TestClient) -> None:
    response = client.get("/collections/nope/items")
    assert response.status_code == 404
    assert response.json()["code"] == "NotFound"
