"""Fixtures of the client tests: a live server over the build, GDAL settings, expected layers.

The server machinery is in ``tests/fixtures/live_server.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest

from tests.fixtures.live_server import LiveServer, live_server_for

#: The collections of the Camden sample build, in catalogue order (written out on purpose).
COLLECTIONS = ("hex", "hex_r8", "units", "study_area")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "clients: tests with real clients against a live server")


@pytest.fixture(scope="session")
def build_dir(camden_build: Path) -> Path:
    """Real clients read the real Camden sample build."""
    return camden_build


@pytest.fixture(scope="session")
def live_server(
    build_dir: Path,
    trafford_build: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveServer]:
    """One server over both samples: Camden at the root, each under /cities/{cityId}."""
    log = tmp_path_factory.mktemp("server") / "uvicorn.log"
    with ExitStack() as stack:
        with pytest.MonkeyPatch.context() as mp:  # the server's environment only
            mp.setenv("USM_EXTRA_BUILD_DIRS", str(trafford_build))
            server = stack.enter_context(live_server_for(build_dir, log))
        yield server


@pytest.fixture(scope="session")
def gdal_http(live_server: LiveServer) -> Iterator[None]:
    """GDAL with the OAPIF driver, HTTP timeouts and no retries on errors."""
    if "OAPIF" not in pyogrio.list_drivers():
        pytest.skip("this GDAL has no OAPIF driver")
    options = {"GDAL_HTTP_TIMEOUT": "30", "GDAL_HTTP_MAX_RETRY": "0"}
    previous = {key: pyogrio.get_gdal_config_option(key) for key in options}
    pyogrio.set_gdal_config_options(options)
    yield
    pyogrio.set_gdal_config_options(previous)


@pytest.fixture(scope="session")
def expected(build_dir: Path) -> dict[str, gpd.GeoDataFrame]:
    """The collections as stored, reprojected to CRS84, keyed by collection id, in order."""
    gpkg = build_dir / "public" / "diagnosis.gpkg"
    return {n: pyogrio.read_dataframe(gpkg, layer=n).to_crs("OGC:CRS84") for n in COLLECTIONS}
