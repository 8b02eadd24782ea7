"""The health check ``/healthz``."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
from fastapi.testclient import TestClient


def test_health(client: TestClient, build_dir: Path, expected: dict[str, gpd.GeoDataFrame]) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    doc = response.json()
    manifest = json.loads((build_dir / "public" / "manifest.json").read_text())
    assert doc["status"] == "ok"
    assert doc["build_id"] == manifest["build_id"]
    assert doc["collections"] == {cid: len(frame) for cid, frame in expected.items()}
