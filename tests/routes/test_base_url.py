"""Links behind a proxy: the ``base_url`` setting wins over the request; allowed hosts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydantic
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings

BASE = "https://maps.example.org/usm/camden"
FORGED = {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}


def _hrefs(doc: Any) -> Iterator[str]:
    """Every ``href`` of a JSON document, however deep."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key == "href" and isinstance(value, str):
                yield value
            else:
                yield from _hrefs(value)
    elif isinstance(doc, list):
        for value in doc:
            yield from _hrefs(value)


def _urls(client: TestClient) -> list[str]:
    """The URLs of every document with links, following a next link and reaching a prev."""
    feature = client.get("/collections/hex/items?limit=1").json()["features"][0]["id"]
    return [
        "/",
        "/collections",
        "/collections/hex",
        "/collections/hex/items?limit=2&offset=4&bbox=-1,50,1,53&datetime=2019-06-15",
        f"/collections/hex/items/{feature}",
    ]


@pytest.fixture(scope="module")
def behind_proxy(build_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(build_dir=build_dir, base_url=BASE + "/"))) as client:
        yield client


def test_base_url_wins_over_a_forged_host(behind_proxy: TestClient) -> None:
    seen: set[str] = set()
    for url in _urls(behind_proxy):
        response = behind_proxy.get(url, headers=FORGED)
        assert response.status_code == 200, url
        assert "evil" not in response.text, url
        hrefs = list(_hrefs(response.json()))
        assert hrefs, url
        for href in hrefs:
            assert href.startswith(BASE + "/"), (url, href)
        seen |= {link["rel"] for link in response.json()["links"]}
    assert {"self", "service-desc", "service-doc", "conformance", "data", "items"} <= seen
    assert {"next", "prev", "collection"} <= seen
    landing = behind_proxy.get("/", headers=FORGED).json()
    assert {link["href"] for link in landing["links"]} >= {
        f"{BASE}/",
        f"{BASE}/api",
        f"{BASE}/api.html",
        f"{BASE}/conformance",
        f"{BASE}/collections",
    }


def test_base_url_in_the_api_definition(behind_proxy: TestClient) -> None:
    document = behind_proxy.get("/api", headers=FORGED).json()
    assert document["servers"] == [{"url": BASE}]
    page = behind_proxy.get("/api.html", headers=FORGED).text
    assert f'href="{BASE}/api"' in page and f'href="{BASE}/collections"' in page
    assert "evil" not in page


def test_without_base_url_links_follow_the_request(client: TestClient) -> None:
    """Documented behaviour for local use: the request's Host makes the links."""
    doc = client.get("/collections", headers={"Host": "localhost:8000"}).json()
    assert doc["links"][0]["href"] == "http://localhost:8000/collections"
    assert "servers" not in client.get("/api").json()


def test_base_url_from_the_environment(build_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USM_BUILD_DIR", str(build_dir))
    monkeypatch.setenv("USM_BASE_URL", "http://proxy.example:8080")
    with TestClient(create_app()) as client:
        doc = client.get("/collections/units", headers=FORGED).json()
    assert doc["links"][0]["href"] == "http://proxy.example:8080/collections/units"


@pytest.mark.parametrize(
    "value",
    ["maps.example.org", "/usm", "ftp://maps.example.org", "https://a.org/?x=1", "https://"],
)
def test_base_url_must_be_an_absolute_http_url(build_dir: Path, value: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="base_url"):
        Settings(build_dir=build_dir, base_url=value)


def test_allowed_hosts_refuse_other_hosts(build_dir: Path) -> None:
    settings = Settings(build_dir=build_dir, allowed_hosts="maps.example.org, *.usm.example")
    assert settings.allowed_hosts == ["maps.example.org", "*.usm.example"]
    with TestClient(create_app(settings), base_url="http://maps.example.org") as client:
        assert client.get("/collections").status_code == 200
        for host in ("maps.example.org:8443", "usm.example", "a.b.usm.example", "MAPS.example.org"):
            assert client.get("/", headers={"Host": host}).status_code == 200, host
        for host in ("evil.example", "maps.example.org.evil.example", "evilusm.example", ""):
            response = client.get("/collections", headers={"Host": host})
            assert response.status_code == 400, host
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["code"] == "InvalidParameterValue"
            head = client.head("/collections", headers={"Host": host})
            assert head.status_code == 400 and head.content == b""


def test_allowed_hosts_are_validated(build_dir: Path) -> None:
    with pytest.raises(pydantic.ValidationError, match="wildcard"):
        Settings(build_dir=build_dir, allowed_hosts=["maps.*.org"])
