"""The indices in real builds: a city with only crimes and stops, and city-file changes."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyogrio
import pytest

from geo_usm.pipeline import build

ROOT = Path(__file__).resolve().parents[2]
TRAFFORD = ROOT / "sample_data" / "trafford"

MINIMAL = """
name = "Crimes and stops only"
crs = "EPSG:27700"
h3_resolutions = [9]

[units]
path = "data/trafford_layers.gpkg"
layer = "lsoa_2011"
id = "lsoa11cd"
name = "lsoa11nm"

[layers.crimes]
kind = "crimes"
path = "data/trafford_crime_2018_11.gpkg"
layer = "crimes"
[layers.crimes.columns]
month = "month"
category = "category"

[layers.bus_stops]
kind = "transit"
path = "data/trafford_layers.gpkg"
layer = "bus_stops"
[layers.bus_stops.columns]
record_id = "atco_code"
"""


def _gpkg(out: Path, layer: str):  # type: ignore[no-untyped-def]
    return pyogrio.read_dataframe(out / "public" / "diagnosis.gpkg", layer=layer)


def _city(tmp_path: Path, text: str) -> Path:
    shutil.copytree(TRAFFORD / "data", tmp_path / "data")
    path = tmp_path / "city.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_city_with_only_crimes_and_stops_builds_what_it_can(tmp_path):
    result = build(_city(tmp_path, MINIMAL), tmp_path / "out")
    assert result.output is not None
    units = _gpkg(result.output, "units")
    gaps = _gpkg(result.output, "indicator_gaps")
    # one risk indicator (crime density): no overall risk index, and the reason says why
    assert units["risk_index"].isna().all()
    why = gaps[(gaps["grid"] == "units") & (gaps["indicator"] == "risk_index")]
    assert len(why) and why["null_reason"].str.contains("crime_density").all()
    # stops give one resilience indicator: its dimension's sub-index, no overall index
    assert units["risk_crime_and_violence"].notna().all()
    assert units["resilience_mobility"].notna().all()
    assert units["resilience_index"].isna().all()
    why = gaps[(gaps["grid"] == "units") & (gaps["indicator"] == "resilience_index")]
    assert len(why) and why["null_reason"].str.contains("only 1 resilience indicator").all()
    assert units["gi_class"].notna().all()  # hotspots need only the crimes
    assert (result.output / "public" / "risk_surface.tif").is_file()


def test_switching_an_indicator_off_or_reweighting_changes_the_indices(camden_build, tmp_path):
    base = _gpkg(camden_build, "units").set_index("unit_id")
    city = tmp_path / "camden"
    shutil.copytree(ROOT / "sample_data" / "camden", city)
    text = (city / "city.toml").read_text(encoding="utf-8")
    (city / "city.toml").write_text(
        text + '\n[indices]\nexclude = ["crime_density"]\n', encoding="utf-8"
    )
    off = build(city / "city.toml", tmp_path / "off")
    assert off.output is not None
    changed = _gpkg(off.output, "units").set_index("unit_id")
    assert not np.allclose(changed["risk_index"], base["risk_index"])
    explanations = _gpkg(off.output, "explanations")
    assert "crime_density" not in set(explanations["indicator"])
    # the resilience index does not read crime density: unchanged
    np.testing.assert_allclose(changed["resilience_index"], base["resilience_index"])


def test_rebuild_gives_identical_indices(camden_build, tmp_path):
    again = build(ROOT / "sample_data" / "camden" / "city.toml", tmp_path / "again")
    assert again.output is not None
    for layer in ("units", "explanations", "peer_groups", "priority_areas"):
        a = _gpkg(camden_build, layer)
        b = _gpkg(again.output, layer)
        assert a.drop(columns="geometry", errors="ignore").equals(
            b.drop(columns="geometry", errors="ignore")
        ), layer


def test_unknown_indicator_in_indices_is_a_city_file_error(tmp_path):
    from geo_usm.errors import CityFileError

    path = _city(tmp_path, MINIMAL + '\n[indices]\nexclude = ["crime_dnesity"]\n')
    with pytest.raises(CityFileError, match="crime_dnesity"):
        build(path, tmp_path / "out")
