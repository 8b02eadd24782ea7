"""The dashboard's routes over the Camden build, without a browser: negotiation of ``/``, the
indicators table, the layer catalogue with its fixed class breaks, the panel's extra data.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pandas as pd
import pytest

from api.dependencies import accepts_html
from api.routers.dashboard import CLASSES, numeric_classes
from tests.fixtures.live_server import LiveServer

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.fixture(scope="module")
def http(dashboard_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=dashboard_server.url, trust_env=False, timeout=30.0) as client:
        yield client


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (BROWSER_ACCEPT, True),
        ("text/html", True),
        ("*/*", False),
        (None, False),
        ("application/json", False),
        ("application/json, text/html;q=0.5", False),
        ("text/html;q=0", False),
        ("text/html;q=oops", False),
    ],
)
def test_wants_html(accept: str | None, html: bool) -> None:
    assert accepts_html(accept) is html


def test_root_is_the_dashboard_for_browsers_and_json_otherwise(http: httpx.Client) -> None:
    page = http.get("/", headers={"Accept": BROWSER_ACCEPT})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "Accept" in page.headers["vary"]
    assert "/static/vendor/maplibre-gl.css" in page.text
    for url in re.findall(r'(?:src|href)="([^"#]+)"', page.text):  # nothing from elsewhere
        assert url.startswith(str(http.base_url).rstrip("/")), url
    landing = http.get("/", headers={"Accept": "application/json"})
    assert landing.headers["content-type"].startswith("application/json")
    assert any(link["rel"] == "service-desc" for link in landing.json()["links"])
    assert http.get("/", headers={"Accept": "*/*"}).json()["links"]
    assert http.get("/?f=json", headers={"Accept": BROWSER_ACCEPT}).json()["links"]
    assert http.get("/?bogus=1", headers={"Accept": BROWSER_ACCEPT}).status_code == 400
    assert http.get("/?bogus=1").status_code == 400


def test_static_files_and_vendored_maplibre(http: httpx.Client) -> None:
    module = http.get("/static/dashboard.js")
    assert module.status_code == 200
    assert "./vendor/maplibre-gl.mjs" in module.text
    assert http.get("/static/vendor/maplibre-gl.mjs").status_code == 200
    assert http.get("/static/vendor/maplibre-gl-worker.mjs").status_code == 200


def test_indicators_table(http: httpx.Client) -> None:
    rows = http.get("/indicators").json()["indicators"]
    by_id = {row["id"]: row for row in rows}
    assert by_id["crime_rate"]["direction"] == "risk"
    assert by_id["crime_rate"]["sources"] == ["crimes"]
    assert by_id["crime_rate"]["synthetic"] is False
    assert by_id["audit_score"]["synthetic"] is True  # from audits_synthetic
    assert by_id["night_share"]["null_reason"]
    assert by_id["crime_rate"]["coverage"]["units"] == 133
    assert http.get("/indicators?x=1").status_code == 400


def test_layer_catalogue_has_fixed_breaks_per_grid(http: httpx.Client) -> None:
    meta = http.get("/dashboard/layers.json").json()
    assert [g["id"] for g in meta["grids"]] == ["hex", "hex_r8", "units"]
    layers = {layer["id"]: layer for layer in meta["layers"]}
    indicators = {row["id"] for row in http.get("/indicators").json()["indicators"]}
    assert indicators <= set(layers)  # a layer per indicator (empty ones disabled)
    crime = layers["crime_rate"]["grids"]["units"]
    assert crime["method"] == "Quantiles"
    assert len(crime["breaks"]) <= CLASSES
    assert crime["breaks"] == sorted(crime["breaks"])
    assert crime["breaks"][-1] == crime["max"]
    assert sum(crime["counts"]) + crime["nodata"] == 133
    assert layers["night_share"]["grids"] == {}
    assert meta["synthetic_layers"] == ["audits_synthetic"]
    assert meta["attribution"]
    units = next(g for g in meta["grids"] if g["id"] == "units")
    assert len(units["features"]) == 133


def test_feature_extra_has_series_and_gaps(http: httpx.Client) -> None:
    meta = http.get("/dashboard/layers.json").json()
    unit = next(g for g in meta["grids"] if g["id"] == "units")["features"][0]["id"]
    extra = http.get(f"/dashboard/features/units/{unit}").json()
    assert extra["gaps"]["night_share"]
    for series in extra["series"]:
        assert len(series["periods"]) == len(series["values"]) >= 2
    assert http.get("/dashboard/features/units/nope").status_code == 404
    assert http.get(f"/dashboard/features/nogrid/{unit}").status_code == 404


def test_numeric_classes() -> None:
    assert numeric_classes(pd.Series([None, float("nan")], dtype=float)) is None
    few = numeric_classes(pd.Series([1.0, 2.0, 2.0, None]))
    assert few is not None
    assert few["method"] == "unique values"
    assert few["breaks"] == [1.0, 2.0]
    assert few["counts"] == [1, 2]
    many = numeric_classes(pd.Series(range(100), dtype=float))
    assert many is not None
    assert many["breaks"] == [19.8, 39.6, 59.4, 79.2, 99.0]
    assert many["counts"] == [20, 20, 20, 20, 20]
    zeros = numeric_classes(pd.Series([0.0] * 60 + list(range(1, 41)), dtype=float))
    assert zeros is not None
    assert zeros["breaks"] == [0.0, 10.75, 20.5, 30.25, 40.0]  # 0 alone, then quartiles
    assert zeros["counts"] == [60, 10, 10, 10, 10]
