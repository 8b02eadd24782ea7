"""The dashboard in headless Chromium: the map renders, a unit's diagnosis opens, no network.

Every request not addressed to 127.0.0.1 is aborted and recorded; the test asserts there was
none (the page must work offline: MapLibre is vendored, the basemap comes from the build).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.fixtures.live_server import LiveServer

#: Longest wait for the map to load and draw, in milliseconds (a ceiling, not an assertion).
READY_MS = 90_000

#: JavaScript: a point of the map canvas (CSS pixels) where a grid feature is rendered, away
#: from the map's edges and controls, or null.
_FIND_FEATURE_POINT = """() => {
  const map = window.usmMap;
  const canvas = map.getCanvas().getBoundingClientRect();
  const w = canvas.width, h = canvas.height;
  for (let r = 0; r <= 0.35; r += 0.05) {
    for (let a = 0; a < 2 * Math.PI; a += Math.PI / 8) {
      const x = w / 2 + Math.cos(a) * r * w, y = h / 2 + Math.sin(a) * r * h;
      const hits = map.queryRenderedFeatures([x, y], {layers: ['grid-fill']});
      if (hits.length) {
        const column = window.usmDashboard.state.grid.id_column;
        return {x: canvas.left + x, y: canvas.top + y, id: String(hits[0].properties[column])};
      }
    }
  }
  return null;
}"""


@pytest.fixture
def page(browser: Any) -> Any:
    context = browser.new_context(viewport={"width": 1400, "height": 880})
    page = context.new_page()
    page.outside = []  # requests not to 127.0.0.1, aborted
    page.errors = []

    def route(request_route: Any) -> None:
        if urlsplit(request_route.request.url).hostname == "127.0.0.1":
            request_route.continue_()
        else:
            page.outside.append(request_route.request.url)
            request_route.abort()

    page.route("**/*", route)
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    yield page
    context.close()


def test_dashboard_renders_and_opens_a_diagnosis(
    page: Any, dashboard_server: LiveServer, tmp_path: Path, screenshots: list[Path]
) -> None:
    page.goto(f"{dashboard_server.url}/")
    page.wait_for_function("document.body.dataset.ready === 'true'", timeout=READY_MS)

    # MapLibre drew the hexagons (WebGL on SwiftShader).
    assert page.evaluate("window.usmMap.queryRenderedFeatures().length") > 0
    assert page.evaluate("window.usmMap.queryRenderedFeatures({layers: ['grid-fill']}).length") > 0
    assert page.title() == "Urban Safety Monitor: Camden"

    # One map layer per indicator with values in the build, listed in the switcher.
    meta = page.evaluate("window.usmDashboard.state.meta")
    options = page.eval_on_selector_all(
        "#layer-select option:not([disabled])", "els => els.map(e => e.value)"
    )
    with_values = [layer["id"] for layer in meta["layers"] if layer["grids"].get("hex")]
    assert "crime_rate" in options
    assert sorted(options) == sorted(with_values)

    # Legend, attribution and the synthetic badge are on screen.
    assert page.locator("#legend li").count() >= 2
    assert "OpenStreetMap" in page.locator("#attribution").inner_text()
    assert "SYNTHETIC" in page.locator("#synthetic-badge").inner_text()

    # Switch to the admin units and click one: its diagnosis panel opens.
    page.select_option("#layer-select", "crime_rate")
    page.wait_for_function("document.body.dataset.ready === 'true'", timeout=READY_MS)
    page.get_by_label("Administrative units").check()
    page.wait_for_function(
        "document.body.dataset.ready === 'true'"
        " && window.usmMap.getLayer('grid-fill').source === 'grid-units'",
        timeout=READY_MS,
    )
    assert page.evaluate("window.usmMap.queryRenderedFeatures({layers: ['grid-fill']}).length") > 0
    point = page.evaluate(_FIND_FEATURE_POINT)
    assert point is not None, "no unit rendered near the centre of the map"
    page.mouse.click(point["x"], point["y"])
    panel = page.locator("#panel")
    panel.wait_for(state="visible", timeout=READY_MS)
    page.wait_for_function(
        f"document.getElementById('panel').dataset.feature === {point['id']!r}",
        timeout=READY_MS,
    )
    text = panel.inner_text()
    assert point["id"] in text
    assert "Crimes per 1,000 residents" in text
    assert "no data: no time of day in the data" in text  # a quality flag
    assert "SYNTHETIC" in text  # the audit indicators come from a synthetic layer

    screenshot = tmp_path / "dashboard-camden.png"
    page.screenshot(path=str(screenshot))
    screenshots.append(screenshot)
    print(f"dashboard screenshot: {screenshot}")

    # Keyboard path: the unit finder opens a unit with audits, whose panel charts them by month.
    audited = page.evaluate(
        """async () => {
          const page = await (await fetch('/collections/units/items?limit=1000')).json();
          const f = page.features.find((f) => f.properties.audit_count > 0);
          return f ? f.properties.unit_id : null;
        }"""
    )
    assert audited is not None
    page.focus("#feature-select")
    page.select_option("#feature-select", audited)
    page.wait_for_function(
        f"document.getElementById('panel').dataset.feature === {audited!r}", timeout=READY_MS
    )
    assert page.locator("#panel svg[role=img]").count() >= 1
    assert page.evaluate("document.activeElement.id") == "panel-title"
    page.keyboard.press("Escape")
    assert page.locator("#panel").is_hidden()

    assert page.errors == []
    assert page.outside == [], f"requests left the machine: {page.outside}"


def test_cities_served_together_are_listed_and_switchable(
    page: Any, two_cities_server: LiveServer, tmp_path: Path, screenshots: list[Path]
) -> None:
    page.goto(f"{two_cities_server.url}/")
    page.wait_for_function("document.body.dataset.ready === 'true'", timeout=READY_MS)
    switch = page.get_by_label("City")
    assert switch.is_visible()
    names = page.eval_on_selector_all("#city-select option", "els => els.map(e => e.text)")
    assert names == ["Camden", "Trafford (Greater Manchester)"]

    switch.select_option(label="Trafford (Greater Manchester)")
    page.wait_for_url("**/cities/trafford-greater-manchester/", timeout=READY_MS)
    page.wait_for_function("document.body.dataset.ready === 'true'", timeout=READY_MS)
    assert "Trafford" in page.locator("h1").inner_text()
    assert page.evaluate("window.usmMap.queryRenderedFeatures({layers: ['grid-fill']}).length") > 0
    assert page.eval_on_selector("#city-select", "e => e.selectedOptions[0].text") == (
        "Trafford (Greater Manchester)"
    )

    screenshot = tmp_path / "dashboard-trafford.png"
    page.screenshot(path=str(screenshot))
    screenshots.append(screenshot)
    assert page.errors == []
    assert page.outside == [], f"requests left the machine: {page.outside}"
