"""The conformance declaration ``/conformance``."""

from __future__ import annotations

from fastapi.testclient import TestClient

BASE = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/"


def test_conformance_classes(client: TestClient) -> None:
    response = client.get("/conformance")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    classes = response.json()["conformsTo"]
    assert {BASE + "core", BASE + "geojson", BASE + "oas30"} <= set(classes)
    assert len(classes) == len(set(classes))


def test_conformance_accepts_f_json_and_refuses_unknown(client: TestClient) -> None:
    assert client.get("/conformance?f=json").status_code == 200
    assert client.get("/conformance?limit=3").status_code == 400
