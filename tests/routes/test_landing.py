"""The landing page ``/``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

OPENAPI_JSON = "application/vnd.oai.openapi+json;version=3.0"


def _links(doc: dict) -> dict[str, dict]:
    return {link["rel"]: link for link in doc["links"]}


def test_landing_page(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    doc = response.json()
    assert doc["title"]
    assert doc["description"]
    links = _links(doc)
    assert {"self", "service-desc", "service-doc", "conformance", "data"} <= set(links)
    assert links["service-desc"]["type"] == OPENAPI_JSON
    assert links["service-desc"]["href"] == "http://testserver/api"
    assert links["service-doc"]["type"] == "text/html"
    assert links["service-doc"]["href"] == "http://testserver/api.html"
    assert links["conformance"]["href"] == "http://testserver/conformance"
    assert links["data"]["href"] == "http://testserver/collections"
    assert all(link["href"].startswith("http://testserver/") for link in doc["links"])


def test_landing_links_resolve_with_their_media_type(client: TestClient) -> None:
    for link in client.get("/").json()["links"]:
        response = client.get(link["href"])
        assert response.status_code == 200, link
        assert response.headers["content-type"].startswith(link["type"]), link


def test_landing_page_names_the_build(client: TestClient, build_dir: Path) -> None:
    doc = client.get("/").json()
    manifest = json.loads((build_dir / "public" / "manifest.json").read_text())
    assert manifest["city"]["name"] in doc["title"]
    assert doc["build"]["id"] == manifest["build_id"]
    for statement in manifest.get("attribution", []):
        assert statement in doc["attribution"]


def test_links_follow_the_request_base_url(app: FastAPI) -> None:
    with TestClient(app, base_url="https://usm.example.org") as other:
        doc = other.get("/").json()
    assert _links(doc)["data"]["href"] == "https://usm.example.org/collections"


def test_f_json_is_accepted(client: TestClient) -> None:
    assert client.get("/", params={"f": "json"}).status_code == 200


def test_f_html_is_the_dashboard(client: TestClient) -> None:
    response = client.get("/", params={"f": "html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize("query", ["f=xml", "foo=1", "f=json&f=json", "f=html&f=html"])
def test_bad_query_is_400(client: TestClient, query: str) -> None:
    response = client.get(f"/?{query}")
    assert response.status_code == 400
    assert response.json()["code"] == "InvalidParameterValue"
