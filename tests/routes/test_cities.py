"""Several builds in one service: /cities and each city's API under /cities/{cityId}/."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.routers.service import city_slugs
from api.settings import Settings
from tests.fixtures.synthetic_build import BUILD_ID


@pytest.fixture(scope="module")
def second_build(build_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the synthetic build's public part as another city."""
    copy = tmp_path_factory.mktemp("testville") / "public"
    shutil.copytree(build_dir / "public", copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["city"] = {"name": "Testville-sur-Mer"}
    manifest["build_id"] = "testville-1"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


@pytest.fixture(scope="module")
def two(build_dir: Path, second_build: Path) -> Iterator[TestClient]:
    settings = Settings(build_dir=build_dir, extra_build_dirs=[second_build])
    with TestClient(create_app(settings)) as client:
        yield client


def test_cities_lists_every_build(two: TestClient) -> None:
    response = two.get("/cities")
    assert response.status_code == 200
    cities = response.json()["cities"]
    assert [c["id"] for c in cities] == ["camden-synthetic", "testville-sur-mer"]
    assert [c["name"] for c in cities] == ["Camden (synthetic)", "Testville-sur-Mer"]
    assert cities[1]["href"] == "http://testserver/cities/testville-sur-mer/"
    assert cities[1]["build_id"] == "testville-1"
    west, south, east, north = cities[0]["bbox"]
    assert -0.3 < west < east < 0 and 51 < south < north < 52
    # the same list under a city
    assert two.get("/cities/testville-sur-mer/cities").json()["cities"] == cities


def test_each_city_has_its_api_under_its_prefix(two: TestClient) -> None:
    landing = two.get("/cities/testville-sur-mer/").json()
    assert landing["build"]["city"] == "Testville-sur-Mer"
    hrefs = {link["rel"]: link["href"] for link in landing["links"]}
    assert hrefs["data"] == "http://testserver/cities/testville-sur-mer/collections"
    assert hrefs["related"] == "http://testserver/cities"
    page = two.get("/cities/testville-sur-mer/collections/hex/items?limit=2").json()
    links = {link["rel"]: link["href"] for link in page["links"]}
    assert links["next"] == (
        "http://testserver/cities/testville-sur-mer/collections/hex/items?limit=2&offset=2"
    )
    root = two.get("/collections/hex/items?limit=2").json()
    assert [f["id"] for f in page["features"]] == [f["id"] for f in root["features"]]
    # the first build is at the root and under its city
    assert two.get("/").json()["build"]["id"] == BUILD_ID
    assert two.get("/cities/camden-synthetic/").json()["build"]["id"] == BUILD_ID
    fid = root["features"][0]["id"]
    diagnosis = two.get(f"/cities/testville-sur-mer/collections/hex/items/{fid}/diagnosis")
    assert diagnosis.status_code == 200
    assert diagnosis.headers["etag"] == '"testville-1"'
    api = two.get("/cities/testville-sur-mer/api").json()
    assert api["servers"] == [{"url": "/cities/testville-sur-mer"}]
    assert "/cities/{cityId}/" in api["info"]["description"]  # the URL contract
    head = two.head("/cities/testville-sur-mer/collections")
    assert head.status_code == 200 and head.content == b""


def test_unknown_city_is_404(two: TestClient) -> None:
    for url in ("/cities/nope/collections", "/cities/nope/"):
        response = two.get(url)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"


def test_base_url_setting_applies_to_cities(build_dir: Path, second_build: Path) -> None:
    settings = Settings(
        build_dir=build_dir,
        extra_build_dirs=[second_build],
        base_url="https://maps.example.org/usm/",
    )
    with TestClient(create_app(settings)) as client:
        cities = client.get("/cities").json()["cities"]
        assert cities[1]["href"] == "https://maps.example.org/usm/cities/testville-sur-mer/"
        doc = client.get("/cities/testville-sur-mer/collections").json()
        assert doc["links"][0]["href"] == (
            "https://maps.example.org/usm/cities/testville-sur-mer/collections"
        )


def test_one_build_lists_one_city(client: TestClient) -> None:
    cities = client.get("/cities").json()["cities"]
    assert [c["id"] for c in cities] == ["camden-synthetic"]
    assert client.get("/cities/camden-synthetic/collections").status_code == 200


def test_env_lists_extra_builds(build_dir: Path, second_build: Path) -> None:
    settings = Settings(build_dir=build_dir, extra_build_dirs=f"{second_build}:{second_build}")
    assert settings.extra_build_dirs == [second_build, second_build]
    with TestClient(create_app(settings)) as client:
        ids = [c["id"] for c in client.get("/cities").json()["cities"]]
    assert ids == ["camden-synthetic", "testville-sur-mer", "testville-sur-mer-2"]


def test_city_slugs_are_ascii_and_unique(build_dir: Path) -> None:
    class Named:
        def __init__(self, city: str):
            self.info = type("Info", (), {"city": city})()

    providers = [Named(n) for n in ("Greater Manchester", "Zürich", "Zurich", "!!!")]
    assert list(city_slugs(providers)) == ["greater-manchester", "zurich", "zurich-2", "city"]  # type: ignore[arg-type]
