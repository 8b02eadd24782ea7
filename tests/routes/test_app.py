"""The app factory and settings: nothing at import, settings from USM_*, startup checks."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pydantic
import pytest
import shapely
from fastapi.testclient import TestClient

import api.main
from api.main import create_app
from api.provider import BuildProvider
from api.settings import Settings
from geo_usm import store
from geo_usm.errors import BuildError, NotFoundError


def test_no_app_at_import() -> None:
    assert not hasattr(api.main, "app")


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, build_dir: Path) -> None:
    monkeypatch.setenv("USM_BUILD_DIR", str(build_dir))
    monkeypatch.setenv("USM_MAX_LIMIT", "50")
    monkeypatch.setenv("USM_CORS_ORIGINS", "https://a.example, https://b.example")
    settings = Settings()  # type: ignore[call-arg]
    assert settings.build_dir == build_dir
    assert settings.max_limit == 50
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    with TestClient(create_app()) as client:  # the uvicorn --factory path
        response = client.get("/collections", headers={"Origin": "https://a.example"})
        assert response.headers["access-control-allow-origin"] == "https://a.example"
        assert client.get("/collections/hex/items?limit=900").json()["numberReturned"] <= 50


def test_no_cors_headers_by_default(client: TestClient) -> None:
    response = client.get("/collections", headers={"Origin": "https://a.example"})
    assert "access-control-allow-origin" not in response.headers


def test_settings_are_validated(build_dir: Path) -> None:
    with pytest.raises(pydantic.ValidationError):
        Settings(build_dir=build_dir, default_limit=20, max_limit=10)
    with pytest.raises(pydantic.ValidationError):
        Settings(build_dir=build_dir, max_limit=0)
    with pytest.raises(pydantic.ValidationError):
        Settings(build_dir=build_dir, unknown_key=1)  # type: ignore[call-arg]


def test_title_and_description_settings(build_dir: Path) -> None:
    app = create_app(Settings(build_dir=build_dir, title="My USM", description="Hello"))
    with TestClient(app) as client:
        doc = client.get("/").json()
        assert (doc["title"], doc["description"]) == ("My USM", "Hello")
        assert client.get("/api").json()["info"]["title"] == "My USM"


def test_link_to_build_is_resolved_at_startup(build_dir: Path) -> None:
    provider = BuildProvider(build_dir)
    assert provider.info.path == build_dir.resolve()


def test_not_a_build(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        create_app(Settings(build_dir=tmp_path))
    with pytest.raises(NotFoundError):
        create_app(Settings(build_dir=tmp_path / "missing"))


def _write_build(root: Path, layers: dict[str, gpd.GeoDataFrame], manifest: dict) -> Path:
    root.mkdir()
    for name, frame in layers.items():
        store.write_layer(root, name, frame)
    store.write_manifest(root, manifest)
    return root


def _square(**columns: object) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {k: [v] for k, v in columns.items()},
        geometry=[shapely.box(529000, 182000, 529500, 182500)],
        crs="EPSG:27700",
    )


def test_unusable_builds_are_refused(tmp_path: Path) -> None:
    only_private = {"crimes": _square(record_id="c1")}
    with pytest.raises(BuildError, match="no public layer"):
        BuildProvider(_write_build(tmp_path / "a", only_private, {}))
    no_id = {"hex": _square(resolution=9)}
    with pytest.raises(BuildError, match="no 'h3' column"):
        BuildProvider(_write_build(tmp_path / "b", no_id, {}))
    no_crs = {"units": _square(unit_id="u1").set_crs(None, allow_override=True)}
    with pytest.warns(UserWarning, match="'crs' was not provided"):
        _write_build(tmp_path / "c", no_crs, {})
    with pytest.raises(BuildError, match="no CRS"):
        BuildProvider(tmp_path / "c")


def test_sparse_manifest_is_tolerated(tmp_path: Path) -> None:
    build = _write_build(
        tmp_path / "d",
        {"units": _square(unit_id="u1", unit_name="One")},
        {"city": "Smalltown", "attribution": "Some data"},
    )
    with TestClient(create_app(Settings(build_dir=build))) as client:
        doc = client.get("/").json()
        assert "Smalltown" in doc["title"]
        assert doc["attribution"] == "Some data"
        assert doc["build"]["id"] == "d"
        items = client.get("/collections/units/items").json()
        assert items["numberMatched"] == 1
        assert items["features"][0]["properties"] == {"unit_id": "u1", "unit_name": "One"}


def test_repeated_ids_are_refused(tmp_path: Path) -> None:
    twice = gpd.GeoDataFrame(
        {"unit_id": ["u1", "u1"]},
        geometry=[shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)],
        crs="EPSG:27700",
    )
    with pytest.raises(BuildError, match="repeats 'unit_id' values: u1"):
        BuildProvider(_write_build(tmp_path / "e", {"units": twice}, {}))


def test_private_layers_are_never_read(
    build_dir: Path, monkeypatch: pytest.MonkeyPatch, public_layers: list[str]
) -> None:
    read: list[str] = []
    original = store.read_layer

    def spy(build: Path, name: str) -> gpd.GeoDataFrame:
        read.append(name)
        return original(build, name)

    monkeypatch.setattr(store, "read_layer", spy)
    BuildProvider(build_dir)
    assert sorted(read) == sorted(public_layers)


def test_empty_layer_is_served(tmp_path: Path) -> None:
    empty = _square(h3="89194ad36dbffff", resolution=9).iloc[:0]
    units = _square(unit_id="u1")
    build = _write_build(tmp_path / "f", {"hex": empty, "units": units}, {})
    with TestClient(create_app(Settings(build_dir=build))) as client:
        doc = client.get("/collections/hex").json()
        assert doc["extent"]["spatial"]["bbox"] == [[-180.0, -90.0, 180.0, 90.0]]
        items = client.get("/collections/hex/items?bbox=0,0,1,1").json()
        assert items["numberMatched"] == items["numberReturned"] == 0
        assert items["features"] == []
