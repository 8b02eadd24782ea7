"""End-to-end builds: conservation, manifest, CRS choice, rasters, the sample cities."""

import json

import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio
from rasterio.transform import from_origin

from geo_usm.pipeline import build
from tests.unit.test_ingest import X0, Y0, make_units

NEW_CITY = """
name = "Villa Nueva"
h3_resolutions = [9, 10]
[units]
path = "unidades.gpkg"
id = "codigo"
name = "nombre"
[layers.incidentes]
kind = "crimes"
path = "incidentes.csv"
[layers.incidentes.format]
delimiter = ";"
decimal = ","
[layers.incidentes.columns]
lon = "Longitud"
lat = "Latitud"
datetime = "FechaHora"
category = "Categoría"
[layers.poblacion]
kind = "raster"
path = "poblacion_sintetica.tif"
statistic = "sum"
"""


def test_new_city_semicolon_decimal_comma_iso_dates_auto_utm(tmp_path):
    make_units(tmp_path)
    rng = np.random.default_rng(42)
    # points spread over the four 1 km squares (converted to lon/lat), plus a few outside
    from pyproj import Transformer

    to_wgs = Transformer.from_crs(27700, 4326, always_xy=True)
    x = rng.uniform(X0 - 200, X0 + 2200, 3000)
    y = rng.uniform(Y0 - 200, Y0 + 2200, 3000)
    lon, lat = to_wgs.transform(x, y)
    hours = rng.integers(0, 24, 3000)
    lines = ["Longitud;Latitud;FechaHora;Categoría"]
    lines += [
        f"{lo:.6f};{la:.6f};2024-05-{d:02d}T{h:02d}:30:00;Robo".replace(".", ",")
        for lo, la, d, h in zip(lon, lat, rng.integers(1, 29, 3000), hours, strict=True)
    ]
    (tmp_path / "incidentes.csv").write_text("\n".join(lines), encoding="utf-8")
    # SYNTHETIC seeded population raster, 50 m cells over the squares, 27700
    pop = rng.integers(0, 40, (44, 44)).astype("float32")
    pop[0, 0] = -1
    with rasterio.open(
        tmp_path / "poblacion_sintetica.tif",
        "w",
        driver="GTiff",
        height=44,
        width=44,
        count=1,
        dtype="float32",
        crs="EPSG:27700",
        nodata=-1,
        transform=from_origin(X0 - 100, Y0 + 2100, 50, 50),
    ) as dst:
        dst.write(pop, 1)
    (tmp_path / "city.toml").write_text(NEW_CITY, encoding="utf-8")
    result = build(tmp_path / "city.toml", tmp_path / "out")
    assert result.crs.to_epsg() == 32630  # London is in UTM zone 30N
    assert "chosen automatically" in result.crs_note
    crimes, popl = result.layers
    inside = ((x >= X0) & (x <= X0 + 2000) & (y >= Y0) & (y <= Y0 + 2000)).sum()
    assert crimes.accepted == inside
    assert crimes.read == crimes.accepted + crimes.rejected == 3000
    gpkg = tmp_path / "out" / "public" / "diagnosis.gpkg"
    units = pyogrio.read_dataframe(gpkg, layer="units")
    hex9 = pyogrio.read_dataframe(gpkg, layer="hex")
    hex10 = pyogrio.read_dataframe(gpkg, layer="hex_r10")
    for table in (units, hex9, hex10):
        assert table["crime_count"].sum() == inside
    # raster: pixels are aligned with the squares, so the exact area-weighted sum is the sum
    # of the pixels inside them, on every grid (to 1e-7: the units go through the UTM working
    # CRS and back to the raster's CRS, which moves their edges by micrometres)
    cx = X0 - 100 + 25 + 50 * np.arange(44)
    cy = Y0 + 2100 - 25 - 50 * np.arange(44)
    gx, gy = np.meshgrid(cx, cy)
    in_sq = (gx > X0) & (gx < X0 + 2000) & (gy > Y0) & (gy < Y0 + 2000) & (pop >= 0)
    expected = pop[in_sq].sum()
    for table in (units, hex9, hex10):
        assert table["poblacion_sum"].sum() == pytest.approx(expected, rel=1e-7)
    assert popl.rejects_by_reason["nodata pixel"] == 1
    crimes_layer = pyogrio.read_dataframe(
        tmp_path / "out" / "private" / "records.gpkg", layer="incidentes"
    )
    assert sorted(crimes_layer["datetime"].dt.hour.unique()) == list(range(24))
    # records with dates: city-wide counts per day in the time series, every day of the span
    series = pd.read_parquet(tmp_path / "out" / "public" / "time_series.parquet")
    days = series[(series["grid"] == "city") & (series["period"].str.len() == 10)]
    per_day = crimes_layer["datetime"].dt.strftime("%Y-%m-%d").value_counts().sort_index()
    assert days["value"].sum() == inside == per_day.sum()
    observed = days.set_index("period")["value"]
    assert (observed.reindex(per_day.index) == per_day).all()
    assert (observed.drop(per_day.index) == 0).all()  # days without records in the span


@pytest.mark.parametrize("which", ["camden_result", "trafford_result"])
def test_sample_cities_build_conserve_and_manifest(which, request):
    result = request.getfixturevalue(which)
    out = result.output
    manifest = json.loads((out / "public" / "manifest.json").read_text())
    for key in (
        "software",
        "build_id",
        "started",
        "finished",
        "city",
        "crs",
        "parameters",
        "inputs",
        "layers",
        "units",
        "hex",
        "attribution",
    ):
        assert key in manifest, key
    assert manifest["software"]["version"]
    assert len(manifest["city"]["sha256"]) == 64
    assert all(len(i["sha256"]) == 64 for i in manifest["inputs"])
    gpkg = out / "public" / "diagnosis.gpkg"
    private = out / "private" / "records.gpkg"
    analysis = {"hotspots", "hotspot_evaluation"}
    analysis |= {"explanations", "peer_groups", "priority_areas"}
    if which == "trafford_result":  # 36 months of burglary and a [progress] table
        analysis |= {"emerging_hotspots", "progress"}
    assert set(pyogrio.list_layers(gpkg)[:, 0]) == {
        "hex",
        "hex_r8",
        "units",
        "study_area",
        "crosswalk",
        "indicators",
        "indicator_gaps",
        *analysis,
    }
    assert (out / "public" / "risk_surface.tif").is_file()
    assert (out / "public" / "time_series.parquet").is_file()
    assert {"rejects", "crimes"} <= set(pyogrio.list_layers(private)[:, 0])
    units = pyogrio.read_dataframe(gpkg, layer="units")
    hexes = pyogrio.read_dataframe(gpkg, layer="hex")
    rejects = pyogrio.read_dataframe(private, layer="rejects")
    for name, entry in manifest["layers"].items():
        assert entry["read"] == entry["accepted"] + entry["rejected"] + entry["filtered"], name
        if entry["kind"] != "raster":
            assert (rejects["layer"] == name).sum() == entry["rejected"], name
            assert sum(entry["rejects_by_reason"].values()) == entry["rejected"]
            assert (
                len(pyogrio.read_dataframe(private, layer=name, read_geometry=False))
                == entry["accepted"]
            )
    city = result.city.config.layers
    crimes = sum(
        e["accepted"]
        for n, e in manifest["layers"].items()
        if e["kind"] == "crimes" and city[n].in_totals
    )
    assert units["crime_count"].sum() == hexes["crime_count"].sum() == crimes > 0
    for name, entry in manifest["layers"].items():
        if entry["kind"] not in ("raster", "streets", "public_space"):
            assert units[f"count_{name}"].sum() == hexes[f"count_{name}"].sum() == entry["accepted"]
    assert hexes["h3"].is_unique and units["unit_id"].is_unique
    assert ((hexes["area_share"] > 0) & (hexes["area_share"] <= 1)).all()
    assert (hexes["area_share"] < 1).any()  # boundary cells are in the cover
    assert manifest["synthetic_layers"] == ["audits_synthetic"]
