"""The diagnosis of a grid feature: the route, and its assembly by geo_usm.diagnosis."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from geo_usm import store
from geo_usm.catalog import PUBLIC_GPKG, Catalog, Column, OutputLayer
from geo_usm.diagnosis import SECTIONS, Diagnoses
from tests.fixtures.synthetic_build import BUILD_ID

SECTION_NAMES = [s.name for s in SECTIONS]


def _first(client: TestClient, cid: str) -> str:
    return str(client.get(f"/collections/{cid}/items?limit=1").json()["features"][0]["id"])


@pytest.mark.parametrize("cid", ["units", "hex", "hex_r8"])
def test_diagnosis_of_a_feature(client: TestClient, cid: str) -> None:
    fid = _first(client, cid)
    response = client.get(f"/collections/{cid}/items/{fid}/diagnosis")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["etag"] == f'"{BUILD_ID}"'
    assert "max-age" in response.headers["cache-control"]
    doc = response.json()
    assert (doc["grid"], doc["id"], doc["build_id"]) == (cid, fid, BUILD_ID)
    assert doc["indicators"] == []  # the synthetic build's indicators table is empty
    for name in SECTION_NAMES:  # today's builds have none of the sections: null, with a reason
        assert doc[name] is None
        assert doc["unavailable"][name].startswith("this build has no ")
    assert doc["other"]["crime_count"]["unit"] == "count"
    rels = {link["rel"]: link["href"] for link in doc["links"]}
    assert rels["self"] == f"http://testserver/collections/{cid}/items/{fid}/diagnosis"
    again = client.get(
        f"/collections/{cid}/items/{fid}/diagnosis", headers={"If-None-Match": f'"{BUILD_ID}"'}
    )
    assert again.status_code == 304 and again.headers["etag"] == f'"{BUILD_ID}"'


def test_feature_links_to_its_diagnosis(client: TestClient) -> None:
    fid = _first(client, "units")
    links = client.get(f"/collections/units/items/{fid}").json()["links"]
    assert any(link["href"].endswith(f"/items/{fid}/diagnosis") for link in links)


@pytest.mark.parametrize(
    "url",
    [
        "/collections/units/items/nope/diagnosis",
        "/collections/study_area/items/Camden/diagnosis",  # not a grid
        "/collections/crosswalk/items/x/diagnosis",
        "/collections/nope/items/x/diagnosis",
    ],
)
def test_diagnosis_404(client: TestClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_diagnosis_refuses_unknown_parameters(client: TestClient) -> None:
    fid = _first(client, "units")
    assert client.get(f"/collections/units/items/{fid}/diagnosis?x=1").status_code == 400


def test_diagnosis_of_a_real_build(camden_build: Path) -> None:
    """Indicators with their metadata; a NULL has the reason indicator_gaps records."""
    public = store.public_dir(camden_build)
    catalog = store.load_catalog(store.load_manifest(public))
    table = store.read_layer(public, catalog.layer("indicators"))
    gaps = store.read_layer(public, catalog.layer("indicator_gaps"))
    gap = gaps[(gaps["grid"] == "units") & (gaps["feature"] != "*")].iloc[0]
    with TestClient(create_app(Settings(build_dir=camden_build))) as client:
        doc = client.get(f"/collections/units/items/{gap['feature']}/diagnosis").json()
    entries = {i["id"]: i for i in doc["indicators"]}
    units_columns = set(catalog.layer("units").column_names)
    assert list(entries) == [i for i in table["id"] if i in units_columns]
    missing = entries[gap["indicator"]]
    assert missing["value"] is None and missing["quality"] == "null"
    assert missing["null_reason"] == gap["null_reason"]
    row = table.set_index("id").loc["crime_rate"]
    rate = entries["crime_rate"]
    assert (rate["title"], rate["unit"], rate["direction"]) == (
        row["title"],
        row["unit"],
        row["direction"],
    )
    assert rate["min_input"] == row["min_input"]
    units = store.read_layer(public, catalog.layer("units"))
    assert rate["coverage"]["features"] == len(units)
    if rate["value"] is not None:
        assert rate["quality"] == "value" and 0 < rate["percentile"] <= 100


def _units_layer(columns: list[Column]) -> OutputLayer:
    return OutputLayer(
        name="units",
        title="Units",
        description="Units.",
        store="public",
        file=PUBLIC_GPKG,
        geometry="MultiPolygon",
        id_column="unit_id",
        grid=True,
        columns=tuple(columns),
    )


def _table_layer(name: str, columns: list[str]) -> OutputLayer:
    return OutputLayer(
        name=name,
        title=name,
        description=name,
        store="public",
        file=PUBLIC_GPKG,
        columns=tuple(Column(name=c, type="string", description=c) for c in columns),
    )


def test_sections_come_from_the_catalogue() -> None:
    """Index, hotspot, peer group and progress sections appear when the build has them."""

    def col(name: str, type_: str = "float", unit: str = "") -> Column:
        return Column(name=name, type=type_, unit=unit, description=f"The {name}.")  # type: ignore[arg-type]

    columns = [
        col("unit_id", "string"),
        col("crime_rate", unit="per 1,000 residents"),
        col("risk_index", unit="score 0-100"),
        col("risk_index_p05"),
        col("risk_index_p95"),
        col("risk_explanation", "string"),
        col("resilience_index"),
        col("gi_z"),
        col("gi_class", "string"),
        col("peer_group", "integer"),
        col("mystery"),
    ]
    frame = pd.DataFrame(
        {
            "unit_id": ["A", "B"],
            "crime_rate": [10.0, None],
            "risk_index": [70.0, 20.0],
            "risk_index_p05": [60.0, 10.0],
            "risk_index_p95": [80.0, 30.0],
            "risk_explanation": ['{"crime_rate": 0.8}', None],
            "resilience_index": [40.0, 50.0],
            "gi_z": [3.1, -0.2],
            "gi_class": ["hot_99", "not_significant"],
            "peer_group": [2, 1],
            "mystery": [1.0, 2.0],
        }
    )
    catalog = Catalog(
        layers=(
            _units_layer(columns),
            _table_layer("progress", ["grid", "feature", "target", "status"]),
            _table_layer("peer_groups", ["grid", "feature", "peer_group", "size"]),
        )
    )
    tables = {
        "indicators": pd.DataFrame(
            {"id": ["crime_rate"], "title": ["Crimes per 1,000"], "null_reason": [""]}
        ),
        "indicator_gaps": pd.DataFrame(
            {
                "grid": ["units"],
                "feature": ["B"],
                "indicator": ["crime_rate"],
                "null_reason": ["fewer than 50 residents"],
            }
        ),
        "progress": pd.DataFrame(
            {
                "grid": ["units", "units"],
                "feature": ["A", "B"],
                "target": ["-10%", "-10%"],
                "status": ["on track", "off track"],
            }
        ),
        # one profile row per group for every feature ('*'), the group stored as a float
        "peer_groups": pd.DataFrame(
            {
                "grid": ["units", "units"],
                "feature": ["*", "*"],
                "peer_group": [1.0, 2.0],
                "size": ["5", "7"],
            }
        ),
    }
    diagnoses = Diagnoses(catalog, {"units": frame}, tables, build_id="b1")
    a = diagnoses.diagnose("units", "A")
    assert a["indicators"][0]["title"] == "Crimes per 1,000"
    risk = a["indices"]["indices"]["risk_index"]
    assert risk["value"] == 70.0 and risk["range"] == {"p05": 60.0, "p95": 80.0}
    assert risk["explanation"] == {"crime_rate": 0.8}
    assert "range" not in a["indices"]["indices"]["resilience_index"]
    assert a["hotspot"]["columns"]["gi_class"]["value"] == "hot_99"
    assert a["peer_group"]["columns"]["peer_group"]["value"] == 2
    assert a["peer_group"]["tables"]["peer_groups"] == [
        {"grid": "units", "feature": "*", "peer_group": 2.0, "size": "7"}
    ]
    assert a["progress"]["tables"]["progress"] == [
        {"grid": "units", "feature": "A", "target": "-10%", "status": "on track"}
    ]
    assert a["trend"] is None and "trend" in a["unavailable"]
    assert list(a["other"]) == ["mystery"]
    b = diagnoses.diagnose("units", "B")
    assert b["indicators"][0]["null_reason"] == "fewer than 50 residents"
    assert b["indices"]["indices"]["risk_index"]["explanation"] is None
