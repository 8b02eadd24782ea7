"""The API definition ``/api`` (OpenAPI 3.0) and its HTML page ``/api.html``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from openapi_spec_validator import OpenAPIV30SpecValidator, validate
from pydantic import BaseModel, Field

from api.main import create_app
from api.openapi import convert_schema, to_openapi30
from api.settings import Settings

OPENAPI_JSON = "application/vnd.oai.openapi+json;version=3.0"
OGC_PATHS = [
    "/",
    "/conformance",
    "/collections",
    "/collections/{collectionId}",
    "/collections/{collectionId}/items",
    "/collections/{collectionId}/items/{featureId}",
    "/api",
]


@pytest.fixture(scope="module")
def document(client: TestClient) -> dict:
    response = client.get("/api")
    assert response.status_code == 200
    assert response.headers["content-type"] == OPENAPI_JSON
    return response.json()


def test_api_is_valid_openapi_30(document: dict) -> None:
    assert document["openapi"].startswith("3.0.")
    OpenAPIV30SpecValidator(document).validate()
    validate(document)  # picks the validator from the version field


def test_api_describes_the_ogc_operations(document: dict) -> None:
    assert set(OGC_PATHS) <= set(document["paths"])
    for path in OGC_PATHS:
        operation = document["paths"][path]["get"]
        assert "200" in operation["responses"]
        assert "422" not in operation["responses"]
    items = document["paths"]["/collections/{collectionId}/items"]["get"]
    content = items["responses"]["200"]["content"]
    assert list(content) == [
        "application/geo+json",
        "text/csv",
        "application/geopackage+sqlite3",
        "text/html",
    ]
    assert items["responses"]["400"]["content"]["application/problem+json"]["schema"] == {
        "$ref": "#/components/schemas/OgcException"
    }
    params = {p["name"]: p for p in items["parameters"]}
    assert {"collectionId", "limit", "offset", "bbox", "datetime", "f"} <= set(params)
    # larger limits are clamped, not refused: the schema has no maximum, the text names it
    assert params["limit"]["schema"] == {"type": "integer", "minimum": 1, "default": 10}
    assert "At most 10000 features" in params["limit"]["description"]
    assert params["offset"]["schema"]["minimum"] == 0
    bbox = params["bbox"]["schema"]
    assert bbox["type"] == "array" and bbox["items"] == {"type": "number"}
    assert [(s["minItems"], s["maxItems"]) for s in bbox["oneOf"]] == [(4, 4), (6, 6)]
    assert params["bbox"]["explode"] is False
    assert params["datetime"]["schema"]["minLength"] == 1  # datetime= is refused
    assert params["collectionId"]["in"] == "path"
    assert params["collectionId"]["schema"]["enum"] == ["hex", "hex_r8", "units", "study_area"]
    assert params["collectionId"]["example"] == "hex"
    for path in (
        "/collections/{collectionId}/items",
        "/collections/{collectionId}/items/{featureId}",
    ):
        for status, response in document["paths"][path]["get"]["responses"].items():
            media = "application/geo+json" if status == "200" else "application/problem+json"
            assert next(iter(response["content"])) == media, (path, status)
            assert "type" not in response["content"][media]["schema"], (path, status)
    feature = document["paths"]["/collections/{collectionId}/items/{featureId}"]["get"]
    assert feature["responses"]["200"]["content"]["application/geo+json"]["schema"] == {
        "$ref": "#/components/schemas/FeatureGeoJSON"
    }
    assert content["application/geo+json"]["schema"] == {
        "$ref": "#/components/schemas/FeatureCollectionGeoJSON"
    }
    api_content = document["paths"]["/api"]["get"]["responses"]["200"]["content"]
    assert api_content[OPENAPI_JSON] == {"schema": {"type": "object"}}
    operation_ids = [
        op["operationId"] for item in document["paths"].values() for op in item.values()
    ]
    assert len(operation_ids) == len(set(operation_ids))
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_api_limit_follows_the_settings(build_dir: Path) -> None:
    app = create_app(Settings(build_dir=build_dir, default_limit=25, max_limit=500))
    with TestClient(app) as client:
        document = client.get("/api").json()
    items = document["paths"]["/collections/{collectionId}/items"]["get"]
    (limit,) = [p for p in items["parameters"] if p["name"] == "limit"]
    assert limit["schema"] == {"type": "integer", "minimum": 1, "default": 25}
    assert "At most 500 features" in limit["description"]
    OpenAPIV30SpecValidator(document).validate()


def test_api_query(client: TestClient) -> None:
    assert client.get("/api?f=json").headers["content-type"] == OPENAPI_JSON
    assert client.get("/api?f=html").headers["content-type"].startswith("text/html")
    assert client.get("/api.html?f=html").headers["content-type"].startswith("text/html")
    assert client.get("/api.html?f=json").headers["content-type"] == OPENAPI_JSON
    for query in ("/api?f=yaml", "/api?limit=1", "/api.html?f=xml"):
        assert client.get(query).status_code == 400, query


def test_api_html_has_no_script(client: TestClient, document: dict) -> None:
    response = client.get("/api.html")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "<script" not in page.lower()
    assert "http://testserver/api" in page
    for path in OGC_PATHS:
        assert f"<code>{path}" in page or f">{path}</a>" in page


def test_no_fastapi_default_pages(client: TestClient) -> None:
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert client.get(path).status_code == 404


class _Child(BaseModel):
    name: str


class _Tricky(BaseModel):
    kind: Literal["a"]
    maybe_child: _Child | None = None
    child_with_description: _Child = Field(description="a child")
    maybe_number: float | None = Field(default=None, gt=0, lt=10, examples=[1.5])
    either: int | str
    many: list[int] | None = None


def test_conversion_of_fastapi_31_output() -> None:
    app = FastAPI()

    @app.post("/tricky", response_model=_Tricky)
    def tricky(body: _Tricky, q: int | None = None) -> _Tricky:
        return body

    original = app.openapi()
    assert original["openapi"].startswith("3.1")
    converted = to_openapi30(original)
    assert converted["openapi"] == "3.0.3"
    assert original["openapi"].startswith("3.1")  # the input is left alone
    OpenAPIV30SpecValidator(converted).validate()
    schema = converted["components"]["schemas"]["_Tricky"]["properties"]
    assert schema["kind"]["enum"] == ["a"]
    assert schema["maybe_child"]["nullable"] is True
    assert schema["maybe_child"]["allOf"] == [{"$ref": "#/components/schemas/_Child"}]
    assert schema["child_with_description"]["allOf"] == [{"$ref": "#/components/schemas/_Child"}]
    number = schema["maybe_number"]
    assert number["type"] == "number" and number["nullable"] is True
    assert number["minimum"] == 0 and number["exclusiveMinimum"] is True
    assert number["maximum"] == 10 and number["exclusiveMaximum"] is True
    assert number["example"] == 1.5 and "examples" not in number
    assert schema["either"]["anyOf"] == [{"type": "integer"}, {"type": "string"}]
    assert schema["many"]["type"] == "array" and schema["many"]["nullable"] is True


@pytest.mark.parametrize(
    ("given", "want"),
    [
        ({"type": ["string", "null"]}, {"type": "string", "nullable": True}),
        ({"type": "null"}, {"nullable": True}),
        ({"const": 3}, {"enum": [3]}),
        ({"type": "array"}, {"type": "array", "items": {}}),
        (
            {"prefixItems": [{"type": "number"}], "type": "array"},
            {"items": {"anyOf": [{"type": "number"}]}, "type": "array"},
        ),
        ({"$schema": "x", "type": "object", "patternProperties": {"^a": {}}}, {"type": "object"}),
        (True, True),
    ],
)
def test_convert_schema(given: object, want: object) -> None:
    assert convert_schema(given) == want
