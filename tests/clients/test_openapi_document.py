"""The live server's ``/api`` is a valid OpenAPI 3.0 document with the right media type."""

from __future__ import annotations

import httpx
import pytest
from openapi_spec_validator import OpenAPIV30SpecValidator, validate

from tests.fixtures.live_server import LiveServer

pytestmark = pytest.mark.clients

OPENAPI_JSON = "application/vnd.oai.openapi+json;version=3.0"


def test_live_api_document_validates(live_server: LiveServer) -> None:
    with httpx.Client(trust_env=False, timeout=10) as client:
        landing = client.get(f"{live_server.url}/").json()
        (desc,) = [ln for ln in landing["links"] if ln["rel"] == "service-desc"]
        assert desc["type"] == OPENAPI_JSON
        assert desc["href"] == f"{live_server.url}/api"
        response = client.get(desc["href"])
    assert response.status_code == 200
    assert response.headers["content-type"] == OPENAPI_JSON
    document = response.json()
    assert document["openapi"].startswith("3.0.")
    OpenAPIV30SpecValidator(document).validate()
    validate(document)


def test_live_landing_links_resolve(live_server: LiveServer) -> None:
    with httpx.Client(trust_env=False, timeout=10) as client:
        for link in client.get(f"{live_server.url}/").json()["links"]:
            response = client.get(link["href"])
            assert response.status_code == 200, link
            assert response.headers["content-type"].startswith(link["type"]), link
