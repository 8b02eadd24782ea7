"""The collections ``/collections`` and ``/collections/{collectionId}``."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from fastapi.testclient import TestClient

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


def test_only_aggregate_layers_are_collections(
    client: TestClient, layer_names: list[str], public_layers: list[str]
) -> None:
    response = client.get("/collections")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    ids = [c["id"] for c in response.json()["collections"]]
    assert sorted(ids) == sorted(public_layers)
    assert {"hex", "units"} <= set(ids)
    assert ids[0] == "hex" and ids[-1] == "units"
    private = set(layer_names) - set(public_layers)
    assert "crimes" in private or "crosswalk" in private  # the build holds private layers
    assert not private & set(ids)


@pytest.mark.parametrize("name", ["crimes", "crosswalk", "rejects", "study_area", "nope"])
def test_private_or_unknown_collection_is_404(client: TestClient, name: str) -> None:
    for path in (
        f"/collections/{name}",
        f"/collections/{name}/items",
        f"/collections/{name}/items/c000001",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("application/json")
        body = response.json()
        assert body["code"] == "NotFound"
        assert "diagnosis.gpkg" not in body["description"]


def test_collection_documents(client: TestClient, expected: dict[str, gpd.GeoDataFrame]) -> None:
    listed = {c["id"]: c for c in client.get("/collections").json()["collections"]}
    for cid, frame in expected.items():
        response = client.get(f"/collections/{cid}")
        assert response.status_code == 200
        doc = response.json()
        assert doc == listed[cid]
        assert doc["title"] and doc["description"]
        assert doc["itemType"] == "feature"
        spatial = doc["extent"]["spatial"]
        assert spatial["crs"] == CRS84
        (bbox,) = spatial["bbox"]
        np.testing.assert_allclose(bbox, frame.total_bounds, atol=1e-6)
        assert -180 <= bbox[0] <= bbox[2] <= 180 and -90 <= bbox[1] <= bbox[3] <= 90
        links = {link["rel"]: link for link in doc["links"]}
        assert links["self"]["href"] == f"http://testserver/collections/{cid}"
        assert links["items"]["href"] == f"http://testserver/collections/{cid}/items"
        assert links["items"]["type"] == "application/geo+json"


def test_collections_self_link(client: TestClient) -> None:
    doc = client.get("/collections").json()
    assert {"rel": "self", "href": "http://testserver/collections"}.items() <= (
        doc["links"][0].items()
    )


def test_collection_refuses_unknown_query(client: TestClient) -> None:
    assert client.get("/collections/hex?f=json").status_code == 200
    assert client.get("/collections/hex?bbox=0,0,1,1").status_code == 400
    assert client.get("/collections?limit=1").status_code == 400
