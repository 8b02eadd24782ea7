"""Errors: one map from exception types to statuses, OGC exception bodies everywhere."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.errors import InvalidParameterError, status_for
from api.main import create_app
from api.provider import BBox, BuildInfo, CollectionInfo, ItemsPage, Provider
from api.settings import Settings
from geo_usm.catalog import Column
from geo_usm.errors import BuildError, GeoUsmError, InputError, NotFoundError


class FakeProvider(Provider):
    """A provider with one collection whose items raise a chosen exception."""

    def __init__(self, error: Exception):
        self.error = error

    @property
    def info(self) -> BuildInfo:
        return BuildInfo(Path("/secret/builds/x"), "b1", "Testville", None, ())

    def collections(self) -> list[CollectionInfo]:
        return [self.collection("hex")]

    def collection(self, collection_id: str) -> CollectionInfo:
        h3 = Column(name="h3", type="string", description="H3 cell index.")
        return CollectionInfo("hex", "Hexes", "Test hexes", (0.0, 0.0, 1.0, 1.0), 1, "h3", (h3,))

    def items(
        self, collection_id: str, *, bbox: BBox | None = None, offset: int = 0, limit: int = 10
    ) -> ItemsPage:
        raise self.error

    def item(self, collection_id: str, feature_id: str) -> bytes:
        return b'{"type":"Feature","id":"a","geometry":null,"properties":{"h3":"a"}}'


def _client(error: Exception) -> TestClient:
    app = create_app(Settings(build_dir=Path("/nonexistent")), provider=FakeProvider(error))
    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InvalidParameterError("bad"), 400),
        (NotFoundError("gone"), 404),
        (BuildError("broken", path="/secret/builds/x/diagnosis.gpkg"), 500),
        (InputError("bad input"), 500),
        (GeoUsmError("generic"), 500),
        (RuntimeError("bug"), 500),
    ],
)
def test_status_map(error: Exception, status: int) -> None:
    assert status_for(error) == status
    response = _client(error).get("/collections/hex/items")
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()  # problem details (RFC 7807) with the OGC exception members
    assert set(body) == {"type", "title", "status", "detail", "code", "description"}
    assert body["status"] == status and body["detail"] == body["description"]
    assert "/secret" not in body["description"]


def test_client_errors_keep_message_and_hint() -> None:
    response = _client(NotFoundError("no such thing", hint="try another")).get(
        "/collections/hex/items"
    )
    assert response.json() == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "no such thing (try another)",
        "code": "NotFound",
        "description": "no such thing (try another)",
    }


def test_routes_work_against_a_fake_provider() -> None:
    client = _client(RuntimeError())
    assert client.get("/collections").json()["collections"][0]["id"] == "hex"
    doc = client.get("/collections/hex/items/a").json()
    assert doc["id"] == "a" and doc["links"][0]["rel"] == "self"


def test_unknown_path_and_method(client: TestClient) -> None:
    response = client.get("/no/such/path")
    assert response.status_code == 404
    assert response.json()["code"] == "NotFound"
    response = client.post("/collections")
    assert response.status_code == 405
    assert response.json()["code"] == "MethodNotAllowed"
