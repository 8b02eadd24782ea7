"""``usm map``: a standalone HTML map that works offline, layers chosen from the catalogue."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from geo_usm.catalog import PUBLIC_GPKG, Catalog, Column, OutputLayer
from geo_usm.errors import NotFoundError
from geo_usm.maps import choose_layers, write_map

USM = [sys.executable, "-m", "geo_usm.cli"]


def _external_urls(page: str) -> set[str]:
    """URLs the page would load: scripts, stylesheets, images and CSS url() (not links)."""
    found = re.findall(r'src\s*=\s*["\'](https?://[^"\']+)', page)
    found += re.findall(r'<link[^>]*href\s*=\s*["\'](https?://[^"\']+)', page)
    found += re.findall(r"url\(\s*['\"]?(https?://[^)'\"]+)", page)
    return set(found)


def test_usm_map_writes_an_offline_map(camden_build: Path, tmp_path: Path) -> None:
    out = tmp_path / "maps" / "camden.html"
    result = subprocess.run(
        [*USM, "map", str(camden_build), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # the indices when the build has them, else the count indicators
    assert "risk_index" in result.stdout or "crime_count" in result.stdout
    page = out.read_text(encoding="utf-8")
    assert _external_urls(page) == set()  # nothing fetched: Leaflet is inlined
    assert "Leaflet 1.9.4" in page or "leafletjs.com" in page
    assert "cdn.jsdelivr" not in page and "code.jquery.com" not in page
    assert "Open Government Licence" in page  # the attribution is shown
    assert "SYNTHETIC" in page  # the build has a synthetic input layer
    assert "no data (NULL)" in page


def test_basemap_is_optional_and_attributed(camden_build: Path, tmp_path: Path) -> None:
    out = tmp_path / "with-basemap.html"
    write_map(
        camden_build,
        out,
        basemap="https://tiles.example.org/{z}/{x}/{y}.png",
        basemap_attribution="Tiles by Example",
    )
    page = out.read_text(encoding="utf-8")
    assert "https://tiles.example.org/{z}/{x}/{y}.png" in page
    assert "Tiles by Example" in page


def test_map_of_a_build_without_anything_to_draw(build_dir: Path, tmp_path: Path) -> None:
    # the synthetic build's indicators table is empty and it has no index
    with pytest.raises(NotFoundError, match="no index and no count"):
        write_map(build_dir, tmp_path / "x.html")


def test_indices_are_chosen_before_counts() -> None:
    def col(name: str) -> Column:
        return Column(name=name, type="float", description=name)

    units = OutputLayer(
        name="units",
        title="Units",
        description="Units.",
        store="public",
        file=PUBLIC_GPKG,
        geometry="MultiPolygon",
        id_column="unit_id",
        grid=True,
        columns=(
            Column(name="unit_id", type="string", description="id"),
            col("crime_count"),
            col("risk_index"),
            col("resilience_index"),
        ),
    )
    catalog = Catalog(layers=(units,))
    indicators = pd.DataFrame(
        {
            "id": ["crime_count"],
            "title": ["Recorded crimes"],
            "method": ["count"],
            "direction": ["context"],
            "sources": ["crimes"],
        }
    )
    layers = choose_layers(catalog, indicators, synthetic=set())
    assert [(m.column, m.direction) for m in layers] == [
        ("risk_index", "risk"),
        ("resilience_index", "resilience"),
    ]
    without = Catalog(layers=(units.model_copy(update={"columns": units.columns[:2]}),))
    (count,) = choose_layers(without, indicators, synthetic={"crimes"})
    assert (count.column, count.title, count.synthetic) == (
        "crime_count",
        "Recorded crimes (Units)",
        True,
    )
