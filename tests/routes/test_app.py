"""The app factory and settings: nothing at import, settings from USM_*, what a build serves."""

from __future__ import annotations

import inspect
import json
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pydantic
import pyogrio
import pytest
import shapely
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import ValidationError

import api.main
from api.main import create_app
from api.provider import BuildProvider
from api.routers import features, service
from api.settings import Settings
from geo_usm import store
from geo_usm.catalog import PRIVATE_GPKG, PUBLIC_GPKG, Catalog, Column, OutputLayer
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


def test_routes_run_in_the_threadpool() -> None:
    """Routes run in worker threads, except items: its hot path (a page of ready-made
    features, about a millisecond) runs on the loop and hands downloads, filters and sorts to
    the threadpool."""
    routes = [*features.router.routes, *service.router.routes]
    endpoints = [route.endpoint for route in routes if isinstance(route, APIRoute)]
    assert len(endpoints) == len(routes) == 13
    assert [e.__name__ for e in endpoints if inspect.iscoroutinefunction(e)] == ["items"]
    source = inspect.getsource(features.items)
    assert source.count("await run_in_threadpool(") == 2


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
    assert build_dir.is_symlink()
    assert provider.info.path == build_dir.resolve() / "public"


def test_not_a_build(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        create_app(Settings(build_dir=tmp_path))
    with pytest.raises(NotFoundError):
        create_app(Settings(build_dir=tmp_path / "missing"))


def test_build_of_the_old_layout_is_refused(tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.mkdir()
    _square(h3="89194ad36dbffff").to_file(old / "diagnosis.gpkg", layer="hex")
    with pytest.raises(NotFoundError, match="older geo-usm"):
        create_app(Settings(build_dir=old))


def test_serves_a_copy_of_the_public_part_alone(
    build_dir: Path, tmp_path: Path, client: TestClient
) -> None:
    copy = tmp_path / "www" / "camden"
    shutil.copytree(build_dir / "public", copy)
    assert not (copy / "private").exists() and not (copy.parent / "private").exists()
    with TestClient(create_app(Settings(build_dir=copy))) as served:
        ids = [c["id"] for c in served.get("/collections").json()["collections"]]
        assert ids == ["hex", "hex_r8", "units", "study_area"]
        for cid in ids:
            url = f"/collections/{cid}/items?limit=10000"
            assert served.get(url).json()["features"] == client.get(url).json()["features"]
        assert (
            served.get("/healthz").json()["build_id"] == client.get("/healthz").json()["build_id"]
        )
        assert served.get("/collections/crimes").status_code == 404


def test_private_part_is_never_read(build_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    layers: list[str] = []
    files: list[Path] = []
    read_layer, read_dataframe = store.read_layer, pyogrio.read_dataframe

    def spy_layer(public: Path, layer: OutputLayer) -> pd.DataFrame:
        layers.append(layer.name)
        return read_layer(public, layer)

    def spy_dataframe(path: Path, *args: object, **kwargs: object) -> pd.DataFrame:
        files.append(Path(path))
        return read_dataframe(path, *args, **kwargs)

    monkeypatch.setattr(store, "read_layer", spy_layer)
    monkeypatch.setattr(pyogrio, "read_dataframe", spy_dataframe)
    BuildProvider(build_dir)
    # the public tables the diagnoses read, then the collections
    assert layers == ["indicators", "indicator_gaps", "hex", "hex_r8", "units", "study_area"]
    public = build_dir.resolve() / "public"
    assert files and all(f.parent == public and f.name == "diagnosis.gpkg" for f in files)


# --- hand-made catalogues: what is served comes from the catalogue, never from names ----------


def _column(name: str, type_: str = "string", **more: object) -> Column:
    return Column(name=name, type=type_, description=f"The {name}.", **more)  # type: ignore[arg-type]


def _layer(name: str, columns: list[Column], **more: object) -> OutputLayer:
    fields: dict[str, object] = {
        "title": f"Title of {name}",
        "description": f"Description of {name}.",
        "store": "public",
        "file": PUBLIC_GPKG,
        "geometry": "Polygon",
        "id_column": columns[0].name,
        "columns": tuple(columns),
    }
    return OutputLayer(name=name, **{**fields, **more})  # type: ignore[arg-type]


def _square(n: int = 1, **columns: object) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {k: v if isinstance(v, list) else [v] * n for k, v in columns.items()},
        geometry=[
            shapely.box(529000 + 600 * i, 182000, 529500 + 600 * i, 182500) for i in range(n)
        ],
        crs="EPSG:27700",
    )


def _write_build(
    root: Path,
    layers: list[tuple[OutputLayer, pd.DataFrame]],
    manifest: dict | None = None,
    *,
    declared: list[OutputLayer] | None = None,
) -> Path:
    """Write a build at ``root``: each layer through the store, the catalogue in the manifest.

    ``declared`` replaces the catalogue written into the manifest (to make it lie).
    """
    (root / store.PUBLIC).mkdir(parents=True)
    (root / store.PRIVATE).mkdir()
    for layer, frame in layers:
        store.write_layer(root, layer, frame)
    catalog = Catalog(layers=tuple(declared or [layer for layer, _ in layers]))
    store.write_manifest(
        root, {"build_id": root.name, **(manifest or {}), "catalog": catalog.model_dump()}
    )
    return root


def test_collections_come_from_the_catalogue_not_from_names(tmp_path: Path) -> None:
    zones = _layer(
        "zones",
        [_column("zone"), _column("lamps", "integer", unit="count"), _column("label")],
        title="Lighting zones",
    )
    blocks = _layer("blocks", [_column("block_id"), _column("share", "float")])
    # names the old name rules served, declared as a private layer and as a public table
    private_hexes = _layer(
        "hex_r7", [_column("h3")], store="private", file=PRIVATE_GPKG, access="analyst"
    )
    table = _layer("units", [_column("unit_id")], geometry=None, id_column=None)
    layers = [
        (zones, _square(2, zone=["z2", "z1"], lamps=[3.0, np.nan], label=["b", "a"])),
        (private_hexes, _square(h3="87194ad36ffffff")),
        (table, pd.DataFrame({"unit_id": ["u1"]})),
        (blocks, _square(block_id="b1", share=0.25)),
    ]
    build = _write_build(tmp_path / "named", layers, {"city": {"name": "Zoneville"}})
    provider = BuildProvider(build)
    assert [c.id for c in provider.collections()] == ["zones", "blocks"]
    with TestClient(create_app(Settings(build_dir=build))) as client:
        ids = [c["id"] for c in client.get("/collections").json()["collections"]]
        assert ids == ["zones", "blocks"]
        doc = client.get("/collections/zones").json()
        assert (doc["title"], doc["description"]) == ("Lighting zones", "Description of zones.")
        for name in ("hex_r7", "units", "hex"):
            assert client.get(f"/collections/{name}").status_code == 404
        features = client.get("/collections/zones/items").json()["features"]
        assert [f["id"] for f in features] == ["z2", "z1"]  # stored order, declared id column
        assert [list(f["properties"].items()) for f in features] == [
            [("zone", "z2"), ("lamps", 3), ("label", "b")],  # declared order; an integer
            [("zone", "z1"), ("lamps", None), ("label", "a")],  # NULL, not NaN
        ]
        assert isinstance(features[0]["properties"]["lamps"], int)
        item = client.get("/collections/blocks/items/b1").json()
        assert item["properties"] == {"block_id": "b1", "share": 0.25}


def test_unusable_builds_are_refused(tmp_path: Path) -> None:
    units = _layer("units", [_column("unit_id")])
    only_private = _layer(
        "crimes", [_column("record_id")], store="private", file=PRIVATE_GPKG, access="analyst"
    )
    with pytest.raises(BuildError, match="no public layer with geometry"):
        BuildProvider(_write_build(tmp_path / "a", [(only_private, _square(record_id="c1"))]))
    with pytest.raises(ValidationError, match="has geometry but no id column"):
        _layer("hex", [_column("h3")], id_column=None)  # the catalogue refuses it
    hexes = _layer("hex", [_column("h3")])
    root = _write_build(tmp_path / "b", [(hexes, _square(h3="x"))])
    manifest = json.loads((root / "public" / "manifest.json").read_text())
    manifest["catalog"]["layers"][0]["id_column"] = None  # a manifest edited by hand
    (root / "public" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BuildError, match="no id column"):
        BuildProvider(root)
    no_crs = _square(unit_id="u1").set_crs(None, allow_override=True)
    with pytest.warns(UserWarning, match="'crs' was not provided"):
        _write_build(tmp_path / "c", [(units, no_crs)])
    with pytest.raises(BuildError, match="no CRS"):
        BuildProvider(tmp_path / "c")
    more = _layer("units", [_column("unit_id"), _column("unit_name")])
    lying = _write_build(tmp_path / "d", [(units, _square(unit_id="u1"))], declared=[more])
    with pytest.raises(BuildError, match="does not match the catalogue"):
        BuildProvider(lying)
    missing = _write_build(tmp_path / "e", [(units, _square(unit_id="u1"))])
    (missing / PUBLIC_GPKG).unlink()
    with pytest.raises(BuildError, match="cannot read layer 'units'"):
        BuildProvider(missing)
    unwritten = _layer("blocks", [_column("block_id")])
    not_written = _write_build(
        tmp_path / "f", [(units, _square(unit_id="u1"))], declared=[units, unwritten]
    )
    with pytest.raises(BuildError, match="cannot read layer 'blocks'"):
        BuildProvider(not_written)
    broken = _write_build(tmp_path / "g", [(units, _square(unit_id="u1"))])
    manifest = broken / "public" / "manifest.json"
    manifest.write_text(json.dumps({"build_id": "x"}))
    with pytest.raises(BuildError, match="no output catalogue"):
        BuildProvider(broken)
    manifest.write_text(json.dumps({"catalog": {"layers": [{"name": "units"}]}}))
    with pytest.raises(BuildError, match="catalogue is invalid"):
        BuildProvider(broken)
    manifest.write_text("{not json")
    with pytest.raises(BuildError, match="cannot read the manifest"):
        BuildProvider(broken)


def test_sparse_manifest_is_tolerated(tmp_path: Path) -> None:
    units = _layer("units", [_column("unit_id"), _column("unit_name")])
    build = _write_build(
        tmp_path / "h",
        [(units, _square(unit_id="u1", unit_name="One"))],
        {"city": "Smalltown", "attribution": "Some data"},
    )
    manifest = json.loads((build / "public" / "manifest.json").read_text())
    del manifest["build_id"]
    (build / "public" / "manifest.json").write_text(json.dumps(manifest))
    with TestClient(create_app(Settings(build_dir=build))) as client:
        doc = client.get("/").json()
        assert "Smalltown" in doc["title"]
        assert doc["attribution"] == "Some data"
        assert doc["build"]["id"] == "h"  # the build directory's name
        items = client.get("/collections/units/items").json()
        assert items["numberMatched"] == 1
        assert items["features"][0]["properties"] == {"unit_id": "u1", "unit_name": "One"}


def test_repeated_ids_are_refused(tmp_path: Path) -> None:
    units = _layer("units", [_column("unit_id")])
    twice = _square(2, unit_id="u1")
    with pytest.raises(BuildError, match="repeats 'unit_id' values: u1"):
        BuildProvider(_write_build(tmp_path / "i", [(units, twice)]))
    empty_id = _square(2, unit_id=["u1", None])
    with pytest.raises(BuildError, match="empty 'unit_id' values"):
        BuildProvider(_write_build(tmp_path / "j", [(units, empty_id)]))


def test_empty_layer_is_served(tmp_path: Path) -> None:
    hexes = _layer("hex", [_column("h3"), _column("resolution", "integer")])
    units = _layer("units", [_column("unit_id")])
    empty = _square(h3="89194ad36dbffff", resolution=9).iloc[:0]
    build = _write_build(tmp_path / "k", [(hexes, empty), (units, _square(unit_id="u1"))])
    with TestClient(create_app(Settings(build_dir=build))) as client:
        doc = client.get("/collections/hex").json()
        assert doc["extent"]["spatial"]["bbox"] == [[-180.0, -90.0, 180.0, 90.0]]
        items = client.get("/collections/hex/items?bbox=0,0,1,1").json()
        assert items["numberMatched"] == items["numberReturned"] == 0
        assert items["features"] == []
