"""Fixtures of the browser tests: headless Debian Chromium driven by playwright, no network.

Playwright's own browser download is never used: the system's ``chromium`` (Debian package)
is launched by path. Without it every browser test is skipped with a reason saying so (and
``make test`` prints a warning). Headless Chromium has no GPU: MapLibre's WebGL runs on
SwiftShader (``--use-angle=swiftshader``, ``--enable-unsafe-swiftshader``).

Screenshots are listed at the end of the test run (``pytest_terminal_summary``).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from api.routers.dashboard import MAPLIBRE
from tests.fixtures.live_server import LiveServer, live_server_for

#: Chromium flags: software WebGL (no GPU in CI or containers).
CHROMIUM_ARGS = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"]

_SCREENSHOTS: list[Path] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say where the screenshots of the dashboard were written."""
    for path in _SCREENSHOTS:
        terminalreporter.write_line(f"dashboard screenshot: {path}")


@pytest.fixture(scope="session")
def screenshots() -> list[Path]:
    """Screenshots written by the tests, listed at the end of the run."""
    return _SCREENSHOTS


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip(
            "BROWSER TESTS NOT RUN: no 'chromium' on PATH (Debian: apt-get install -y chromium)"
        )
    if not MAPLIBRE.is_file():
        pytest.skip(
            f"BROWSER TESTS NOT RUN: MapLibre GL is not vendored ({MAPLIBRE} is missing): "
            "run 'make install' (npm ci and scripts/vendor_js.sh)"
        )
    return path


@pytest.fixture(scope="session")
def dashboard_server(
    camden_build: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    log = tmp_path_factory.mktemp("dashboard-server") / "uvicorn.log"
    with live_server_for(camden_build, log) as server:
        yield server


@pytest.fixture(scope="session")
def two_cities_server(
    camden_build: Path, trafford_build: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """Camden and Trafford served together (Camden also at the root)."""
    log = tmp_path_factory.mktemp("two-cities-server") / "uvicorn.log"
    with ExitStack() as stack:
        with pytest.MonkeyPatch.context() as mp:  # the server's environment only
            mp.setenv("USM_EXTRA_BUILD_DIRS", str(trafford_build))
            server = stack.enter_context(live_server_for(camden_build, log))
        yield server


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()
