"""One feature ``/collections/{collectionId}/items/{featureId}``."""

from __future__ import annotations

import geopandas as gpd
import pytest
import shapely
from fastapi.testclient import TestClient

from tests.fixtures.synthetic_build import ID_COLUMNS


def test_every_feature_is_reachable(
    client: TestClient, expected: dict[str, gpd.GeoDataFrame]
) -> None:
    for cid, frame in expected.items():
        for position in sorted({0, len(frame) // 2, len(frame) - 1}):
            row = frame.iloc[position]
            fid = str(row[ID_COLUMNS[cid]])
            response = client.get(f"/collections/{cid}/items/{fid}")
            assert response.status_code == 200
            assert response.headers["content-type"] == "application/geo+json"
            doc = response.json()
            assert doc["type"] == "Feature"
            assert doc["id"] == fid
            assert doc["properties"][ID_COLUMNS[cid]] == fid
            served = shapely.geometry.shape(doc["geometry"])
            assert shapely.equals_exact(served, row.geometry, tolerance=1e-6)
            links = {link["rel"]: link for link in doc["links"]}
            assert links["self"]["href"] == f"http://testserver/collections/{cid}/items/{fid}"
            assert links["self"]["type"] == "application/geo+json"
            assert links["collection"]["href"] == f"http://testserver/collections/{cid}"


def test_item_equals_the_feature_in_the_page(client: TestClient) -> None:
    page = client.get("/collections/units/items?limit=3").json()
    for feature in page["features"]:
        doc = client.get(f"/collections/units/items/{feature['id']}").json()
        doc.pop("links")
        assert doc == feature


@pytest.mark.parametrize("fid", ["nope", "8928308280fffff", "E0100%2F1", "a/b"])
def test_missing_feature_is_404(client: TestClient, fid: str) -> None:
    response = client.get(f"/collections/units/items/{fid}")
    assert response.status_code == 404
    body = response.json()
    assert body["code"] == "NotFound"


def test_item_query(client: TestClient, expected: dict[str, gpd.GeoDataFrame]) -> None:
    fid = expected["hex"]["h3"].iloc[0]
    assert client.get(f"/collections/hex/items/{fid}?f=json").status_code == 200
    assert client.get(f"/collections/hex/items/{fid}?f=geojson").status_code == 200
    assert client.get(f"/collections/hex/items/{fid}?limit=1").status_code == 400
