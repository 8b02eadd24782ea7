"""The collections ``/collections`` and ``/collections/{collectionId}``."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.provider import Provider
from geo_usm import store

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


def _catalogue(build_dir: Path) -> list[dict]:
    """The layers of the build's catalogue, as the manifest holds them (plain JSON)."""
    manifest = json.loads((build_dir / "public" / "manifest.json").read_text())
    layers: list[dict] = manifest["catalog"]["layers"]
    return layers


def test_collections_are_the_catalogues_public_geometry_layers(
    client: TestClient, build_dir: Path
) -> None:
    response = client.get("/collections")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    ids = [c["id"] for c in response.json()["collections"]]
    assert ids == ["hex", "hex_r8", "units", "study_area"]
    # exactly the catalogue's public layers with geometry, in catalogue order
    layers = _catalogue(build_dir)
    served = [
        layer["name"]
        for layer in layers
        if layer["store"] == "public" and layer["access"] == "public" and layer["geometry"]
    ]
    assert ids == served
    # the build does hold other layers: a public table, a long table and private layers
    others = {layer["name"]: layer["store"] for layer in layers if layer["name"] not in ids}
    assert others == {
        "crosswalk": "public",
        "aggregates": "public",
        "indicators": "public",
        "indicator_gaps": "public",
        "crimes": "private",
        "rejects": "private",
    }
    private_gpkg = build_dir / "private" / "records.gpkg"
    assert {str(n) for n, _ in pyogrio.list_layers(private_gpkg)} == {"crimes", "rejects"}


@pytest.mark.parametrize("name", ["crimes", "rejects", "crosswalk", "aggregates", "nope"])
def test_private_table_or_unknown_collection_is_404(client: TestClient, name: str) -> None:
    for path in (
        f"/collections/{name}",
        f"/collections/{name}/items",
        f"/collections/{name}/items/c000001",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("application/problem+json")
        body = response.json()
        assert body["code"] == "NotFound"
        assert "diagnosis.gpkg" not in body["description"]
        assert "records.gpkg" not in body["description"]


def test_collection_documents(
    client: TestClient, build_dir: Path, expected: dict[str, gpd.GeoDataFrame]
) -> None:
    listed = {c["id"]: c for c in client.get("/collections").json()["collections"]}
    declared = {layer["name"]: layer for layer in _catalogue(build_dir)}
    for cid, frame in expected.items():
        response = client.get(f"/collections/{cid}")
        assert response.status_code == 200
        doc = response.json()
        assert doc == listed[cid]
        assert doc["title"] == declared[cid]["title"]
        assert doc["description"] == declared[cid]["description"]
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


def test_collection_info_carries_the_catalogue_columns(app: FastAPI, build_dir: Path) -> None:
    provider: Provider = app.state.provider
    catalog = store.load_catalog(store.load_manifest(build_dir / "public"))
    for info in provider.collections():
        layer = catalog.layer(info.id)
        assert info.columns == layer.columns
        assert info.properties == tuple(layer.column_names)
        assert info.id_column == layer.id_column
    hex_columns = {c.name: c for c in provider.collection("hex").columns}
    assert hex_columns["count_crimes"].unit == "count"
    assert hex_columns["count_crimes"].sources == ("crimes",)
    assert hex_columns["perception_count"].null_reason
    assert hex_columns["area_share"].extensive is False


def test_collections_self_link(client: TestClient) -> None:
    doc = client.get("/collections").json()
    assert {"rel": "self", "href": "http://testserver/collections"}.items() <= (
        doc["links"][0].items()
    )


def test_collection_refuses_unknown_query(client: TestClient) -> None:
    assert client.get("/collections/hex?f=json").status_code == 200
    assert client.get("/collections/hex?bbox=0,0,1,1").status_code == 400
    assert client.get("/collections?limit=1").status_code == 400
