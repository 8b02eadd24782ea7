"""The aggregation engine on a hand-computable toy city, checked against geopandas overlays.

Three 1 km squares side by side in British National Grid (U1, U2, U3). Every expected value is
written out below from the geometry: counts by month, clipped street lengths, public-space
footprints (overlaps counted once), audit means, and NULL for the kinds the city has no data of.
"""

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio
import shapely

from geo_usm.errors import InputError, ProblemsError
from geo_usm.pipeline import build, validate

X0, Y0 = 529000.0, 182000.0
BNG = "EPSG:27700"

CITY = """
name = "Toy"
crs = "EPSG:27700"
h3_resolutions = [10, 9]
[units]
path = "units.gpkg"
id = "code"
[layers.crimes]
kind = "crimes"
path = "crimes.csv"
crs = "EPSG:27700"
[layers.crimes.columns]
x = "x"
y = "y"
month = "month"
category = "category"
weight = "weight"
[layers.streets]
kind = "streets"
path = "streets.gpkg"
[layers.parks]
kind = "public_space"
path = "parks.gpkg"
[layers.audits]
kind = "audits"
path = "audits.csv"
crs = "EPSG:27700"
[layers.audits.columns]
x = "x"
y = "y"
lighting = "lighting"
"""

CRIMES = [  # x, y (offsets from X0, Y0), month, weight
    (100, 100, "2024-01", 2.0),
    (200, 900, "2024-01", 0.5),
    (900, 500, "2024-03", 1.0),
    (1500, 500, "2024-02", 4.0),
]
STREETS = [
    shapely.LineString([(500, 500), (2500, 500)]),  # 500 m in U1, 1000 in U2, 500 in U3
    shapely.LineString([(2800, 200), (3300, 200)]),  # 200 m in U3, 300 m outside every unit
]
PARKS = [
    shapely.box(100, 100, 300, 300),  # overlaps the next one by 100 x 100
    shapely.box(200, 200, 400, 400),
    shapely.box(1900, 600, 2100, 700),  # 100 x 100 in U2 and in U3
]


def _shift(geoms):
    return [shapely.affinity.translate(g, X0, Y0) for g in geoms]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    d = tmp_path_factory.mktemp("toy")
    squares = [shapely.box(i * 1000, 0, (i + 1) * 1000, 1000) for i in range(3)]
    gpd.GeoDataFrame({"code": ["U1", "U2", "U3"]}, geometry=_shift(squares), crs=BNG).to_file(
        d / "units.gpkg"
    )
    rows = ["x,y,month,category,weight"] + [
        f"{X0 + x},{Y0 + y},{m},Burglary,{w}" for x, y, m, w in CRIMES
    ]
    (d / "crimes.csv").write_text("\n".join(rows) + "\n")
    gpd.GeoDataFrame({"name": ["a", "b"]}, geometry=_shift(STREETS), crs=BNG).to_file(
        d / "streets.gpkg"
    )
    gpd.GeoDataFrame({"name": ["p", "q", "r"]}, geometry=_shift(PARKS), crs=BNG).to_file(
        d / "parks.gpkg"
    )
    (d / "audits.csv").write_text(
        f"x,y,lighting\n{X0 + 1200},{Y0 + 300},1\n{X0 + 1700},{Y0 + 800},3\n"
    )
    (d / "city.toml").write_text(CITY)
    result = build(d / "city.toml", d / "out")
    return d, result


def _layer(toy, name):
    d, _ = toy
    return pyogrio.read_dataframe(d / "out" / "public" / "diagnosis.gpkg", layer=name)


def test_units_hand_computed(toy):
    units = _layer(toy, "units").set_index("unit_id")
    assert units["crime_count"].tolist() == [3, 1, 0]
    assert units["count_crimes"].tolist() == [3, 1, 0]
    np.testing.assert_allclose(units["crimes_weight_sum"], [3.5, 4.0, 0.0])
    np.testing.assert_allclose(units["streets_length_m"], [500, 1000, 700], atol=1e-6)
    np.testing.assert_allclose(units["street_length_m"], [500, 1000, 700], atol=1e-6)
    np.testing.assert_allclose(units["parks_area_m2"], [70_000, 10_000, 10_000], atol=1e-6)
    np.testing.assert_allclose(units["audits_lighting_mean"], [np.nan, 2.0, np.nan])
    assert units["audit_count"].tolist() == [0, 2, 0]
    # no data is NULL, never 0: the city has no transit, lighting or perception layer
    for column in ("stop_count", "lamp_count", "perception_count"):
        assert units[column].isna().all(), column


def test_hexes_match_independent_overlay(toy):
    d, _ = toy
    units = gpd.read_file(d / "units.gpkg")
    region = shapely.union_all(units.geometry.values)
    streets = gpd.GeoDataFrame(geometry=_shift(STREETS), crs=BNG)
    parks = shapely.union_all(_shift(PARKS))
    for name in ("hex", "hex_r9"):
        hexes = _layer(toy, name)
        clipped = shapely.intersection(hexes.geometry.values, region)
        lengths = [
            shapely.length(shapely.intersection(streets.geometry.values, c)).sum() for c in clipped
        ]
        np.testing.assert_allclose(hexes["streets_length_m"], lengths, atol=1e-6)
        areas = shapely.area(shapely.intersection(clipped, parks))
        np.testing.assert_allclose(hexes["parks_area_m2"], areas, atol=1e-6)
        assert hexes["crime_count"].sum() == 4
        assert hexes["stop_count"].isna().all()


def test_long_table_months_and_conservation(toy):
    d, result = toy
    long = pd.read_parquet(d / "out" / "public" / "aggregates.parquet")
    crime = long[long["variable"] == "crime_count"]
    units = crime[crime["grid"] == "units"].set_index(["feature", "period"])["value"]
    assert units.to_dict() == {
        ("U1", "all"): 3.0,
        ("U1", "2024-01"): 2.0,
        ("U1", "2024-03"): 1.0,
        ("U2", "all"): 1.0,
        ("U2", "2024-02"): 1.0,
    }
    for _, per_grid in crime.groupby("period", observed=True):
        totals = per_grid.groupby("grid", observed=True)["value"].sum()
        assert totals.nunique() == 1 and len(totals) == 3
    assert result.manifest["layers"]["crimes"]["periods"] == ["2024-01", "2024-02", "2024-03"]
    note = " ".join(result.manifest["layers"]["streets"]["notes"])
    assert "outside the admin units within the study area" in note
    # the long table never lists a variable without data
    assert "stop_count" not in set(long["variable"])


def test_catalogue_declares_every_column(toy):
    d, result = toy
    catalog = result.manifest["catalog"]
    for layer in catalog["layers"]:
        path = d / "out" / layer["file"]
        if path.suffix == ".parquet":
            columns = list(pd.read_parquet(path).columns)
        elif path.suffix == ".tif":  # a raster: its columns are the bands
            with rasterio.open(path) as src:
                columns = list(src.descriptions)
        else:
            info = pyogrio.read_info(path, layer=layer["name"])
            columns = list(info["fields"])
        assert columns == [c["name"] for c in layer["columns"]], layer["name"]
    units = next(layer for layer in catalog["layers"] if layer["name"] == "units")
    stop = next(c for c in units["columns"] if c["name"] == "stop_count")
    assert stop["null_reason"] == "no layer of kind 'transit' in this city"
    mean = next(c for c in units["columns"] if c["name"] == "audits_lighting_mean")
    assert mean["extensive"] is False and mean["unit"] == "score 0-3"


def test_artefacts_hashes(toy):
    import hashlib

    d, result = toy
    for art in result.manifest["artefacts"]:
        digest = hashlib.sha256((d / "out" / art["path"]).read_bytes()).hexdigest()
        assert digest == art["sha256"], art["path"]
    stores = {a["path"]: a["store"] for a in result.manifest["artefacts"]}
    assert stores == {
        "public/diagnosis.gpkg": "public",
        "public/aggregates.parquet": "public",
        "public/risk_surface.tif": "public",
        "public/time_series.parquet": "public",
        "private/records.gpkg": "private",
        **{f"public/tiles/{t}.pmtiles": "public" for t in ("hex", "hex_r9", "units", "basemap")},
    }


def _toy_city(toy, tmp_path, text):
    d, _ = toy
    for f in d.iterdir():
        if f.is_file():
            (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "city.toml").write_text(text)
    return tmp_path / "city.toml"


def test_feet_crs_is_refused(toy, tmp_path):
    city = _toy_city(toy, tmp_path, CITY.replace('crs = "EPSG:27700"\nh3', 'crs = "EPSG:2263"\nh3'))
    with pytest.raises(ProblemsError) as err:
        validate(city)
    assert "not metres" in str(err.value) and "foot" in str(err.value)
    with pytest.raises(InputError):
        build(city, tmp_path / "out")


def test_layer_with_no_accepted_row_is_a_problem(toy, tmp_path):
    text = CITY.replace(
        "[layers.crimes.columns]",
        '[layers.crimes.format]\nmonth_format = "%m/%Y"\n[layers.crimes.columns]',
    )
    city = _toy_city(toy, tmp_path, text)
    with pytest.raises(ProblemsError) as err:
        validate(city)
    assert "none of its 4 rows was accepted" in str(err.value)
    assert "unparseable date" in str(err.value)
    city.write_text(text.replace('kind = "crimes"', 'kind = "crimes"\nmay_be_empty = true'))
    result = validate(city)
    assert result.layers[0].accepted == 0


def test_most_rows_rejected_for_one_reason_is_a_problem(toy, tmp_path):
    city = _toy_city(toy, tmp_path, CITY)
    rows = (tmp_path / "crimes.csv").read_text().splitlines()
    rows[1:4] = [r.replace("2024-0", "bad-") for r in rows[1:4]]  # 3 of 4 rows
    (tmp_path / "crimes.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(ProblemsError) as err:
        validate(city)
    assert "3 of 4 rows (75%) rejected for one reason: unparseable date" in str(err.value)
    city.write_text(CITY.replace('kind = "crimes"', 'kind = "crimes"\nmax_reject_share = 0.8'))
    assert validate(city).layers[0].accepted == 1


def test_reports_are_json_ready(toy):
    _, result = toy
    json.dumps(result.manifest)


def _toy_variant(toy, tmp_path, *, text=CITY, streets=None, units=None):
    city = _toy_city(toy, tmp_path, text)
    if streets is not None:
        gpd.GeoDataFrame(
            {"name": [str(i) for i in range(len(streets))]}, geometry=_shift(streets), crs=BNG
        ).to_file(tmp_path / "streets.gpkg")
    if units is not None:
        gpd.GeoDataFrame(
            {"code": [f"U{i + 1}" for i in range(len(units))]}, geometry=_shift(units), crs=BNG
        ).to_file(tmp_path / "units.gpkg")
    return city


def test_a_street_along_a_shared_boundary_counts_once(toy, tmp_path):
    # 500 m exactly on the edge between U1 and U2: the first unit gets it, nobody twice
    city = _toy_variant(toy, tmp_path, streets=[shapely.LineString([(1000, 200), (1000, 700)])])
    build(city, tmp_path / "out")
    units = pyogrio.read_dataframe(tmp_path / "out/public/diagnosis.gpkg", layer="units")
    np.testing.assert_allclose(units["streets_length_m"], [500, 0, 0], atol=1e-6)
    for name in ("hex", "hex_r9"):
        hexes = pyogrio.read_dataframe(tmp_path / "out/public/diagnosis.gpkg", layer=name)
        assert hexes["streets_length_m"].sum() == pytest.approx(500, abs=1e-6)


def test_a_street_along_an_h3_edge_counts_once(toy, tmp_path):
    import h3

    hexes = _layer(toy, "hex")
    cell = hexes.loc[hexes["area_share"] == 1].iloc[0]
    ring = np.asarray(cell.geometry.exterior.coords)
    edge = shapely.LineString(ring[:2])  # an edge of a hexagon inside the units
    assert h3.is_valid_cell(cell["h3"])
    street = shapely.affinity.translate(edge, -X0, -Y0)
    city = _toy_variant(toy, tmp_path, streets=[street])
    build(city, tmp_path / "out")
    for name in ("units", "hex", "hex_r9"):
        layer = pyogrio.read_dataframe(tmp_path / "out/public/diagnosis.gpkg", layer=name)
        assert layer["streets_length_m"].sum() == pytest.approx(edge.length, rel=1e-6)


def test_lines_are_measured_inside_the_study_area_only(toy, tmp_path):
    gpd.GeoDataFrame(geometry=_shift([shapely.box(0, 0, 1500, 1000)]), crs=BNG).to_file(
        tmp_path / "study.gpkg"
    )
    text = CITY.replace("[units]", '[study_area]\npath = "study.gpkg"\n[units]')
    city = _toy_variant(toy, tmp_path, text=text)
    build(city, tmp_path / "out")
    units = pyogrio.read_dataframe(tmp_path / "out/public/diagnosis.gpkg", layer="units")
    np.testing.assert_allclose(units["streets_length_m"], [500, 500, 0], atol=1e-6)
    np.testing.assert_allclose(units["parks_area_m2"], [70_000, 0, 0], atol=1e-6)


def test_overlapping_units_are_refused(toy, tmp_path):
    units = [shapely.box(0, 0, 1200, 1000), shapely.box(800, 0, 2000, 1000)]
    city = _toy_variant(toy, tmp_path, units=units)
    with pytest.raises(ProblemsError, match="the admin units overlap"):
        validate(city)


def test_an_empty_layer_is_a_problem_unless_allowed(toy, tmp_path):
    city = _toy_variant(toy, tmp_path)
    (tmp_path / "crimes.csv").write_text("x,y,month,category,weight\n")
    with pytest.raises(ProblemsError, match="the source has no record"):
        validate(city)
    city.write_text(CITY.replace('kind = "crimes"', 'kind = "crimes"\nmay_be_empty = true'))
    assert validate(city).layers[0].read == 0


def test_output_names_that_clash_are_refused(toy, tmp_path):
    from geo_usm.errors import CityFileError

    text = CITY.replace("[layers.streets]", "[layers.street]").replace(
        "[layers.parks]", "[layers.public_space]"
    )
    city = _toy_variant(toy, tmp_path, text=text)
    with pytest.raises(CityFileError) as err:
        validate(city)
    assert "'street_length_m' would be written by the total of kind 'streets'" in str(err.value)
    assert "'public_space_area_m2'" in str(err.value)


def test_cleaned_values_counted_once_among_accepted_records(toy, tmp_path):
    text = CITY.replace('weight = "weight"', 'weight = "weight"\nvictim_sex = "sex"')
    city = _toy_variant(toy, tmp_path, text=text)
    rows = [
        "x,y,month,category,weight,sex",
        f"{X0 + 100},{Y0 + 100},2024-01,Burglary,-3,trans woman (J. Smith)",  # kept
        f"{X0 + 200},{Y0 + 100},2024-01,Burglary,1.5,f",  # kept
        f"{X0 + 9000},{Y0 + 100},2024-01,Burglary,-3,nonsense",  # rejected: outside
    ]
    (tmp_path / "crimes.csv").write_text("\n".join(rows) + "\n")
    result = build(city, tmp_path / "out")
    cleaned = result.layers[0].cleaned
    assert cleaned == {
        "weight": {"value out of range [0.0, None] ('weight')": 1},
        "victim_sex": {"not recognised as a sex: recorded as 'unknown' ('sex')": 1},
    }
    public = (tmp_path / "out" / "public" / "manifest.json").read_text()
    assert "Smith" not in public and "trans woman" not in public
    units = pyogrio.read_dataframe(tmp_path / "out/public/diagnosis.gpkg", layer="units")
    assert units["crimes_weight_sum"].tolist()[0] == pytest.approx(2.5)  # cleaned -> default 1
