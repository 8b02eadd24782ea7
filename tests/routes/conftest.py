"""Fixtures of the route tests: an app over a build, a TestClient and the expected layers."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
from fastapi import FastAPI
from starlette.exceptions import StarletteDeprecationWarning

from api.main import create_app
from api.settings import Settings
from tests.fixtures.synthetic_build import (
    COLLECTIONS,
    build_dir,  # noqa: F401
    synthetic_build,  # noqa: F401
)

with warnings.catch_warnings():
    # Starlette 1.x prefers httpx2 for its TestClient; the test extra installs httpx, which
    # still works. Remove once httpx2 is in the test dependencies.
    warnings.filterwarnings(
        "ignore", r"Using `httpx` with `starlette\.testclient`", StarletteDeprecationWarning
    )
    from fastapi.testclient import TestClient


@pytest.fixture(scope="session")
def app(build_dir: Path) -> FastAPI:  # noqa: F811
    return create_app(Settings(build_dir=build_dir))


@pytest.fixture(scope="session")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def gpkg(build_dir: Path) -> Path:  # noqa: F811
    return build_dir / "public" / "diagnosis.gpkg"


@pytest.fixture(scope="session")
def expected(gpkg: Path) -> dict[str, gpd.GeoDataFrame]:
    """The collections as stored, reprojected to CRS84, keyed by collection id, in order."""
    return {n: pyogrio.read_dataframe(gpkg, layer=n).to_crs("OGC:CRS84") for n in COLLECTIONS}
