"""HEAD on every GET route: the status and headers of the GET, no body."""

from __future__ import annotations

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from api.routers import features, service

#: One URL per GET route, with a real collection and feature.
URLS = [
    "/",
    "/conformance",
    "/collections",
    "/collections/hex",
    "/collections/hex/items?limit=3",
    "/api",
    "/api?f=html",
    "/api.html",
    "/healthz",
    "/cities",
    "/collections/hex/queryables",
    "/collections/hex/sortables",
]


def _feature_url(client: TestClient) -> str:
    feature = client.get("/collections/units/items?limit=1").json()["features"][0]
    return f"/collections/units/items/{feature['id']}"


def test_every_get_route_is_listed() -> None:
    routes = [*features.router.routes, *service.router.routes]
    paths = {route.path for route in routes if isinstance(route, APIRoute)}
    assert all(route.methods == {"GET"} for route in routes if isinstance(route, APIRoute))
    listed = {url.split("?")[0].replace("/hex", "/{collectionId}") for url in URLS}
    listed.add("/collections/{collectionId}/items/{featureId:path}")
    listed.add("/collections/{collectionId}/items/{featureId}/diagnosis")
    assert paths == listed


@pytest.mark.parametrize("url", [*URLS, "feature"])
def test_head_answers_like_get_without_a_body(client: TestClient, url: str) -> None:
    url = _feature_url(client) if url == "feature" else url
    get, head = client.get(url), client.head(url)
    assert get.status_code == head.status_code == 200, url
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    # the Content-Length of the (possibly gzip-compressed) body the GET sent
    assert head.headers["content-length"] == get.headers["content-length"]
    assert len(get.content) > 0


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/collections/nope", 404),
        ("/collections/hex/items/nope", 404),
        ("/no/such/path", 404),
        ("/collections/hex/items?limit=0", 400),
        ("/collections/hex/items?datetime=", 400),
        ("/?f=xml", 400),
    ],
)
def test_head_errors_have_the_get_status_and_no_body(
    client: TestClient, url: str, status: int
) -> None:
    get, head = client.get(url), client.head(url)
    assert get.status_code == head.status_code == status
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    assert get.headers["content-type"] == "application/problem+json"
    assert int(head.headers["content-length"]) == len(get.content)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_other_methods_are_405_allowing_get_and_head(client: TestClient, method: str) -> None:
    for url in ("/", "/collections/hex/items", _feature_url(client)):
        response = client.request(method, url)
        assert response.status_code == 405
        assert response.headers["allow"] == "GET, HEAD"
        assert response.json()["code"] == "MethodNotAllowed"
