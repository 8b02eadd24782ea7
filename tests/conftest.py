"""Shared fixtures: real builds of the sample cities, made once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from geo_usm.pipeline import Result, build

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_data"


@pytest.fixture(scope="session")
def camden_result(tmp_path_factory: pytest.TempPathFactory) -> Result:
    out = tmp_path_factory.mktemp("builds") / "camden"
    return build(SAMPLES / "camden" / "city.toml", out)


@pytest.fixture(scope="session")
def camden_build(camden_result: Result) -> Path:
    assert camden_result.output is not None
    return camden_result.output


@pytest.fixture(scope="session")
def trafford_result(tmp_path_factory: pytest.TempPathFactory) -> Result:
    out = tmp_path_factory.mktemp("builds") / "trafford"
    return build(SAMPLES / "trafford" / "city.toml", out)


@pytest.fixture(scope="session")
def trafford_build(trafford_result: Result) -> Path:
    assert trafford_result.output is not None
    return trafford_result.output
