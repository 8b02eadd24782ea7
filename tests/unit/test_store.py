"""The public part of a build holds aggregates only; the private part holds the records."""

import hashlib
import json

import pandas as pd
import pyogrio
import pytest

#: Every public layer and column of the Camden sample build, written out: the contract.
CAMDEN_PUBLIC_LAYERS = {
    "hex",
    "hex_r8",
    "units",
    "study_area",
    "crosswalk",
    "indicators",
    "indicator_gaps",
    "hotspots",
    "hotspot_evaluation",
    "explanations",
    "peer_groups",
    "priority_areas",
}
RECORD_LEVEL = {
    "source_row",
    "record_id",
    "datetime",
    "month",
    "category",
    "victim_sex",
    "victim_age",
    "original",
    "reason",
    "source_file",
}


@pytest.mark.parametrize("which", ["camden_result", "trafford_result"])
def test_public_part_has_no_record_level_data(which, request):
    result = request.getfixturevalue(which)
    public = result.output / "public"
    assert sorted(p.name for p in public.iterdir()) == [
        "aggregates.parquet",
        "diagnosis.gpkg",
        "manifest.json",
        "risk_surface.tif",
        "tiles",
        "time_series.parquet",
    ]
    # tiles: the grids, and a basemap of infrastructure only (streets, public space)
    tilesets = {p.name for p in (public / "tiles").iterdir()}
    assert tilesets == {"hex.pmtiles", "hex_r8.pmtiles", "units.pmtiles", "basemap.pmtiles"}
    layers = {str(n) for n, _ in pyogrio.list_layers(public / "diagnosis.gpkg")}
    if which == "camden_result":
        assert layers == CAMDEN_PUBLIC_LAYERS
    inputs = set(result.city.config.layers)
    assert not layers & (inputs | {"rejects"})
    for layer in layers:
        info = pyogrio.read_info(public / "diagnosis.gpkg", layer=layer)
        columns = set(info["fields"])
        if layer == "priority_areas":  # why a unit needs attention, not a reject's reason
            columns.discard("reason")
        assert not columns & RECORD_LEVEL, (layer, columns & RECORD_LEVEL)
        if layer in ("hex", "hex_r8", "units"):
            # a layer's accepted-record count is the most a grid can hold: aggregates only
            assert info["features"] < 5000
    long = pd.read_parquet(public / "aggregates.parquet")
    assert list(long.columns) == ["grid", "feature", "period", "variable", "value"]
    grids = {
        g: set(pyogrio.read_dataframe(public / "diagnosis.gpkg", layer=g, read_geometry=False)[k])
        for g, k in (("units", "unit_id"), ("hex", "h3"), ("hex_r8", "h3"))
    }
    for grid, features in long.groupby("grid", observed=True)["feature"]:
        assert set(features) <= grids[str(grid)]
    manifest = json.loads((public / "manifest.json").read_text())
    for layer in manifest["catalog"]["layers"]:
        if layer["store"] == "public":
            assert layer["access"] == "public"
            assert all(c["access"] == "public" for c in layer["columns"])
        else:
            assert layer["file"].startswith("private/")
    private = {str(n) for n, _ in pyogrio.list_layers(result.output / "private" / "records.gpkg")}
    kinds = result.city.kinds
    vector_inputs = {
        n for n, cfg in result.city.config.layers.items() if kinds[cfg.kind].geometry != "raster"
    }
    assert private == vector_inputs | {"rejects"}


def test_sensitive_columns_need_the_custodian_role(camden_result):
    catalog = camden_result.manifest["catalog"]
    crimes = next(layer for layer in catalog["layers"] if layer["name"] == "crimes")
    access = {c["name"]: c["access"] for c in crimes["columns"]}
    assert access["victim_sex"] == access["victim_age"] == "custodian"
    assert access["category"] == "analyst"
    rejects = next(layer for layer in catalog["layers"] if layer["name"] == "rejects")
    assert rejects["access"] == "custodian"


def test_manifest_artefact_hashes(camden_result):
    for art in camden_result.manifest["artefacts"]:
        path = camden_result.output / art["path"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == art["sha256"]
        assert path.stat().st_size == art["bytes"]


def test_camden_lengths_and_areas_match_geopandas_overlay(camden_result):
    """Real data, independent computation: clip with geopandas, compare per unit."""
    import geopandas as gpd
    import numpy as np
    import shapely

    out = camden_result.output
    city = camden_result.city.config
    units = pyogrio.read_dataframe(out / "public" / "diagnosis.gpkg", layer="units")
    borough = pyogrio.read_dataframe(
        camden_result.city.resolve(city.study_area.path), layer=city.study_area.layer
    ).to_crs(units.crs)
    region = gpd.GeoDataFrame(
        {"unit_id": units["unit_id"]},
        geometry=shapely.intersection(units.geometry.values, borough.union_all()),
        crs=units.crs,
    )
    streets = pyogrio.read_dataframe(out / "private" / "records.gpkg", layer="streets")
    clipped = gpd.overlay(streets[["geometry"]], region, how="intersection", keep_geom_type=True)
    expected = clipped.geometry.length.groupby(clipped["unit_id"]).sum()
    got = units.set_index("unit_id")["streets_length_m"]
    np.testing.assert_allclose(got.loc[expected.index], expected, rtol=1e-6, atol=1e-3)
    assert got.drop(expected.index).eq(0).all()
    parks = pyogrio.read_dataframe(out / "private" / "records.gpkg", layer="osm_parks")
    footprint = gpd.GeoDataFrame(geometry=[parks.union_all()], crs=parks.crs)
    cut = gpd.overlay(footprint, region, how="intersection", keep_geom_type=True)
    expected = cut.geometry.area.groupby(cut["unit_id"]).sum()
    got = units.set_index("unit_id")["osm_parks_area_m2"]
    np.testing.assert_allclose(got.loc[expected.index], expected, rtol=1e-6, atol=1e-3)
    assert got.sum() == pytest.approx(expected.sum(), rel=1e-9)
