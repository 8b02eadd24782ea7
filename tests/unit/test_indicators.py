"""Indicators on a toy city whose answers are written here, and on the real samples.

The toy city: four 1 km squares U1 (south-west), U2 (south-east), U3 (north-west), U4
(north-east) in British National Grid, 1000/1500/800/1200 residents. Streets: one east-west
street along y = Y0 + 500 across U1 and U2, one north-south street along x = X0 + 500 across
U1 and U3, crossing at a shared vertex. Every expected value below is worked out by hand.
"""

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely

from geo_usm.cityfile import load_city
from geo_usm.errors import CityFileError
from geo_usm.pipeline import build
from tests.unit.test_ingest import X0, Y0, make_units

CRIMES = [  # x, y, category, datetime
    (X0 + 200, Y0 + 200, "Robbery", "2024-03-01 22:00"),
    (X0 + 300, Y0 + 200, "Robbery", "2024-03-02 23:00"),
    (X0 + 400, Y0 + 200, "Burglary", "2024-03-03 10:00"),
    (X0 + 600, Y0 + 200, "Anti-social behaviour", "2024-03-04 03:00"),
    (X0 + 1200, Y0 + 200, "Burglary", "2024-03-05 12:00"),
    (X0 + 1300, Y0 + 200, "Burglary", "2024-03-06 13:00"),
    (X0 + 1600, Y0 + 1600, "Drugs", "2024-03-07 20:00"),
]
LAMPS = [(X0 + 500, Y0 + 500), (X0 + 1500, Y0 + 500)]
STOP = (X0 + 500, Y0 + 1500)
PARK = shapely.box(X0 + 520, Y0 + 1800, X0 + 600, Y0 + 1900)  # 8,000 m2 in U3, 20 m off the street
AUDITS = [(X0 + 100, Y0 + 100, 3)] * 3 + [(X0 + 1100, Y0 + 100, 0)] * 2

CITY = """
name = "Toy"
crs = "EPSG:27700"
h3_resolutions = [9]
[units]
path = "unidades.gpkg"
layer = "barrios"
id = "codigo"
name = "nombre"
{population}
[layers.crimes]
kind = "crimes"
path = "crimes.csv"
crs = "EPSG:27700"
[layers.crimes.columns]
x = "x"
y = "y"
category = "category"
datetime = "when"
[layers.lamps]
kind = "lighting"
path = "lamps.csv"
crs = "EPSG:27700"
[layers.lamps.columns]
x = "x"
y = "y"
[layers.stops]
kind = "transit"
path = "stops.csv"
crs = "EPSG:27700"
[layers.stops.columns]
x = "x"
y = "y"
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
{audit_columns}
{extra}
"""
PARAMETERS = [
    "lighting",
    "openness",
    "visibility",
    "people",
    "security",
    "walk_path",
    "transport",
    "gender_usage",
    "feeling",
]


def toy_city(tmp_path, *, population='population = "pob"', extra=""):
    make_units(tmp_path)
    rows = "\n".join(f"{x},{y},{c},{t}" for x, y, c, t in CRIMES)
    (tmp_path / "crimes.csv").write_text("x,y,category,when\n" + rows + "\n")
    (tmp_path / "lamps.csv").write_text("x,y\n" + "\n".join(f"{x},{y}" for x, y in LAMPS))
    (tmp_path / "stops.csv").write_text(f"x,y\n{STOP[0]},{STOP[1]}\n")
    crossing = (X0 + 500, Y0 + 500)
    streets = [
        shapely.LineString([(X0, Y0 + 500), crossing, (X0 + 2000, Y0 + 500)]),
        shapely.LineString([(X0 + 500, Y0), crossing, (X0 + 500, Y0 + 2000)]),
    ]
    gpd.GeoDataFrame({"highway": ["residential"] * 2}, geometry=streets, crs=27700).to_file(
        tmp_path / "streets.gpkg"
    )
    gpd.GeoDataFrame({"leisure": ["park"]}, geometry=[PARK], crs=27700).to_file(
        tmp_path / "parks.gpkg"
    )
    header = "x,y," + ",".join(PARAMETERS)
    lines = [f"{x},{y}," + ",".join([str(s)] * 9) for x, y, s in AUDITS]
    (tmp_path / "audits.csv").write_text(header + "\n" + "\n".join(lines) + "\n")
    audit_columns = "\n".join(f'{p} = "{p}"' for p in PARAMETERS)
    (tmp_path / "city.toml").write_text(
        CITY.format(population=population, audit_columns=audit_columns, extra=extra)
    )
    return tmp_path / "city.toml"


def read(out, layer):
    return pyogrio.read_dataframe(out / "public" / "diagnosis.gpkg", layer=layer)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("toy")
    extra = "[indicators.change.night_share]\nmin_input = 1"
    result = build(toy_city(tmp, extra=extra), tmp / "out")
    units = read(tmp / "out", "units").set_index("unit_id")
    return result, units, tmp / "out"


def test_counts_rates_densities_and_shares_by_hand(toy):
    _, units, _ = toy
    got = units.loc[["U1", "U2", "U3", "U4"]]
    assert got["crime_count"].tolist() == [4, 2, 0, 1]
    np.testing.assert_allclose(got["crime_rate"], [4.0, 2 / 1.5, 0.0, 1 / 1.2], rtol=1e-12)
    np.testing.assert_allclose(got["crime_density"], [4, 2, 0, 1], rtol=1e-12)  # per km2
    np.testing.assert_allclose(got["violence_rate"], [2.0, 0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(got["property_rate"], [1.0, 2 / 1.5, 0, 0], rtol=1e-12)
    np.testing.assert_allclose(got["asb_rate"], [1.0, 0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(got["population_density"], [1000, 1500, 800, 1200], rtol=1e-9)
    # 22:00, 23:00 and 03:00 of U1's four; U3 has no crime: no value, not 0
    assert got["night_share"].iloc[:2].tolist() == [0.75, 0.0]
    assert np.isnan(got.loc["U3", "night_share"]) and got.loc["U4", "night_share"] == 1.0


def test_street_indicators_by_hand(toy):
    _, units, _ = toy
    # street length: U1 2,000 m, U2 1,000 m, U3 1,000 m, U4 none
    np.testing.assert_allclose(units["street_length_m"].loc[["U1", "U2", "U3"]], [2000, 1000, 1000])
    np.testing.assert_allclose(units["lamps_per_km"].loc[["U1", "U2", "U3"]], [0.5, 1.0, 0.0])
    # each lamp lights 60 m of each street through it: U1 120 m of 2,000, U2 60 m of 1,000
    np.testing.assert_allclose(
        units["lit_street_share"].loc[["U1", "U2", "U3"]], [0.06, 0.06, 0.0], atol=1e-9
    )
    assert np.isnan(units.loc["U4", "lamps_per_km"]) and np.isnan(
        units.loc["U4", "lit_street_share"]
    )
    np.testing.assert_allclose(units["public_space_share"], [0, 0, 0.008, 0], atol=1e-12)
    np.testing.assert_allclose(units["stop_density"], [0, 0, 1, 0], atol=1e-12)


def test_network_indicators_by_hand(tmp_path):
    # without population the sample points weigh the street length they stand for
    out = tmp_path / "out"
    build(toy_city(tmp_path, population=""), out)
    units = read(out, "units").set_index("unit_id")
    # U3: the north half of the N-S street, stop at its middle: mean |y - 1500| = 250 m
    # U1: N-S half (mean 1,000 m) and E-W half (1,000 m + mean |x - 500| = 1,250 m): 1,125 m
    # U2: E-W street from x = 1,000 to 2,000: 1,000 + mean(x - 500) = 2,000 m
    np.testing.assert_allclose(
        units["transit_distance"].loc[["U1", "U2", "U3"]], [1125, 2000, 250], atol=15
    )
    assert np.isnan(units.loc["U4", "transit_distance"])
    # the park is reached from the N-S street within 20 m of it (y 1,800-1,900): within a
    # 400 m walk are y >= ~1,380 of U3's 1,000 m, none of U1 and U2
    np.testing.assert_allclose(
        units["public_space_access"].loc[["U1", "U2", "U3"]], [0, 0, 0.62], atol=0.03
    )
    gaps = read(out, "indicator_gaps")
    u4 = gaps[(gaps.grid == "units") & (gaps.feature == "U4")].set_index("indicator")
    assert "street sample points" in u4.loc["transit_distance", "null_reason"]
    # no population at all: one row stands for every unit
    everywhere = gaps[(gaps.grid == "units") & (gaps.indicator == "crime_rate")]
    assert everywhere[["feature", "null_reason"]].values.tolist() == [
        ["*", "no population source in this city"]
    ]


def test_audit_score_and_thin_data_is_null_not_low(toy):
    _, units, out = toy
    assert units.loc["U1", "audit_score"] == pytest.approx(5.0)
    assert units.loc["U1", "audit_lighting"] == 3
    # two audit points in U2 scored 0: too few for a value (min_input 3), not a score of 0
    assert np.isnan(units.loc["U2", "audit_score"])
    gaps = read(out, "indicator_gaps")
    row = gaps[(gaps.grid == "units") & (gaps.feature == "U2") & (gaps.indicator == "audit_score")]
    assert row["null_reason"].tolist() == ["fewer than 3 audits records with a value"]


def test_population_and_counts_are_conserved_between_hexes_and_units(toy):
    _, units, out = toy
    hexes = read(out, "hex")
    assert hexes["population"].sum() == pytest.approx(units["population"].sum(), rel=1e-9)
    assert hexes["crime_count"].sum() == units["crime_count"].sum() == len(CRIMES)


def test_indicators_layer_describes_every_indicator_column(toy):
    result, _, out = toy
    table = read(out, "indicators").set_index("id")
    catalog = result.manifest["catalog"]["layers"]
    unit_columns = {
        c["name"] for c in next(lr for lr in catalog if lr["name"] == "units")["columns"]
    }
    assert set(table.index) <= unit_columns | {"population"}
    assert table.loc["night_share", "min_input"] == 1  # the city's change
    assert json.loads(table.loc["crime_rate", "coverage"])["units"] == 4
    assert table.loc["female_victim_share", "null_reason"].startswith("no crimes record has")
    assert set(table["direction"]) <= {"risk", "resilience", "context"}
    assert table.loc["lit_street_share", "sources"] == "lamps, streets"


def test_city_file_switches_changes_and_adds_indicators(tmp_path):
    extra = """
[indicators]
off = ["asb_rate"]
[indicators.change.lit_street_share]
params = { distance_m = 60 }
weight = 2
[indicators.local.burglary_rate]
title = "Burglaries per 1,000 residents"
unit = "per 1,000 residents"
method = "rate"
params = { kind = "crimes", where = "category = 'Burglary'" }
direction = "risk"
dimension = "crime_and_violence"
extensive = false
"""
    out = tmp_path / "out"
    build(toy_city(tmp_path, extra=extra), out)
    units = read(out, "units").set_index("unit_id")
    assert "asb_rate" not in units
    np.testing.assert_allclose(units["burglary_rate"].loc[["U1", "U2"]], [1.0, 2 / 1.5])
    # 60 m radius: 120 m per street through each lamp
    np.testing.assert_allclose(units["lit_street_share"].loc[["U1", "U2"]], [0.12, 0.12])
    table = read(out, "indicators").set_index("id")
    assert table.loc["burglary_rate", "tier"] == "local"
    assert table.loc["lit_street_share", "weight"] == 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[indicators]\noff = ["crime_rte"]', "unknown indicator 'crime_rte'"),
        (
            "[indicators.change.crime_rate]\nparams = { colour = 1 }",
            "unknown parameter(s) ['colour']",
        ),
        (
            '[indicators.local.x]\ntitle = "x"\nunit = "x"\nmethod = "mean"\n'
            'params = { kind = "audits", fields = ["brightness"] }\ndirection = "risk"\n'
            'dimension = "perception"\nextensive = false',
            "'brightness' is not a numeric field of kind 'audits'",
        ),
        (
            '[indicators.local.y]\ntitle = "y"\nunit = "y"\nmethod = "median"\n'
            'direction = "risk"\ndimension = "perception"\nextensive = false',
            "'indicators.local.y.method'",
        ),
        (
            '[indicators.local.crime_rate]\ntitle = "y"\nunit = "y"\nmethod = "count"\n'
            'params = { kind = "crimes" }\ndirection = "risk"\ndimension = "perception"\n'
            "extensive = true",
            "not a core indicator's",
        ),
    ],
)
def test_bad_indicator_configuration_names_file_and_name(tmp_path, extra, message):
    with pytest.raises(CityFileError) as err:
        load_city(toy_city(tmp_path, extra=extra))
    assert message in str(err.value)
    assert "city.toml" in str(err.value)


def test_population_from_a_table_keyed_by_unit_code(tmp_path):
    extra = """
[layers.census]
kind = "unit_table"
path = "census.csv"
[layers.census.columns]
unit_code = "LSOA"
population = "residents"
deprivation = "imd"
"""
    city = toy_city(tmp_path, population="", extra=extra)
    (tmp_path / "census.csv").write_text(
        "LSOA,residents,imd\nU1,1000,0.5\nU2,1500,\nU3,800,0.2\nX99,5,0.9\nU3,9,0.1\n"
    )
    result = build(city, tmp_path / "out")
    census = next(r for r in result.layers if r.name == "census")
    assert (census.read, census.accepted) == (5, 3)
    assert census.rejects_by_reason == {
        "unit code matches no admin unit": 1,
        "duplicate unit code (an earlier row has the same code)": 1,
    }
    assert any("1 of 4 units have no row" in n for n in census.notes)
    units = read(tmp_path / "out", "units").set_index("unit_id")
    np.testing.assert_allclose(units["population"].loc[["U1", "U2", "U3"]], [1000, 1500, 800])
    assert np.isnan(units.loc["U4", "population"])  # no row: unknown, not 0
    np.testing.assert_allclose(units["crime_rate"].loc[["U1", "U2", "U3"]], [4, 2 / 1.5, 0])
    assert np.isnan(units.loc["U4", "crime_rate"])
    assert units.loc["U1", "census_deprivation"] == 0.5
    assert np.isnan(units.loc["U2", "census_deprivation"])  # a row without a value
    hexes = read(tmp_path / "out", "hex")
    known = hexes["population"].dropna()
    assert 0 < known.sum() < 3300  # hexes touching U4 are unknown, the rest share 3,300


def test_population_twice_is_refused(tmp_path):
    extra = '[layers.census]\nkind = "unit_table"\npath = "c.csv"\n'
    extra += '[layers.census.columns]\nunit_code = "LSOA"\npopulation = "residents"\n'
    with pytest.raises(CityFileError, match="population is given 2 times"):
        load_city(toy_city(tmp_path, extra=extra))


def test_camden_lighting_agrees_with_geopandas(camden_result):
    """lit_street_share per LSOA against an independent buffer-union-overlay in geopandas."""
    out = camden_result.output
    units = read(out, "units").set_index("unit_id")
    data = camden_result.city.path.parent / "data"
    lamps = pyogrio.read_dataframe(data / "camden_street_lights.gpkg").to_crs(27700)
    streets = pyogrio.read_dataframe(data / "camden_streets.gpkg").to_crs(27700)
    lsoa = gpd.read_file(data / "camden_boundaries.gpkg", layer="lsoa_2011").to_crs(27700)
    borough = gpd.read_file(data / "camden_boundaries.gpkg", layer="borough").to_crs(27700)
    sample = lsoa.sort_values("lsoa11cd").iloc[::13]  # 11 LSOAs across the borough
    for _, row in sample.iterrows():
        area = row.geometry.intersection(borough.union_all())
        near = lamps[lamps.distance(area) <= 30]  # lamps across the boundary light it too
        lit = shapely.union_all(shapely.buffer(near.geometry.values, 30, quad_segs=16))
        inside = gpd.clip(streets, area)
        total = inside.length.sum()
        covered = inside.intersection(lit).length.sum()
        want = covered / total
        got = units.loc[row["lsoa11cd"], "lit_street_share"]
        # buffers are 64-gons (inscribed): they lose up to 0.04 m per 30 m radius
        assert got == pytest.approx(want, abs=5e-4), row["lsoa11cd"]
        assert units.loc[row["lsoa11cd"], "street_length_m"] == pytest.approx(total, rel=1e-6)


def test_samples_compute_what_their_data_allows(camden_result, trafford_result):
    camden = read(camden_result.output, "indicators").set_index("id")
    for name in ("crime_rate", "lamps_per_km", "lit_street_share", "transit_distance"):
        assert json.loads(camden.loc[name, "coverage"])["units"] >= 130, name
    assert camden.loc["night_share", "null_reason"] == "no time of day in the data (months only)"
    trafford = read(trafford_result.output, "indicators").set_index("id")
    for name in ("stop_density", "public_space_share"):
        assert json.loads(trafford.loc[name, "coverage"])["units"] == 138, name
    assert trafford.loc["crime_rate", "null_reason"] == "no population source in this city"
    assert pd.notna(trafford.loc["transit_distance", "null_reason"])


def test_population_raster_is_aggregated_exactly_at_edges(tmp_path):
    """A SYNTHETIC 100 m population raster offset by 50 m: every pixel on a unit edge is split.

    Pixel values are 1 + column index, so the exact sums are known by hand: a unit spans ten
    columns, two of them halved.
    """
    import rasterio
    from rasterio.transform import from_origin

    west, north = X0 - 50, Y0 + 2050
    cols, rows = 21, 21  # X0-50 .. X0+2050
    values = np.tile(np.arange(1, cols + 1, dtype="float32"), (rows, 1))
    with rasterio.open(
        tmp_path / "pop.tif",
        "w",
        driver="GTiff",
        width=cols,
        height=rows,
        count=1,
        dtype="float32",
        crs="EPSG:27700",
        transform=from_origin(west, north, 100, 100),
        nodata=-1,
    ) as dst:
        dst.write(values, 1)
    extra = '[layers.pop]\nkind = "raster"\npath = "pop.tif"\npopulation = true\nunit = "persons"\n'
    out = tmp_path / "out"
    build(toy_city(tmp_path, population="", extra=extra), out)
    units = read(out, "units").set_index("unit_id")
    # U1 (x 0..1000 from X0) covers column 0 (value 1) by half, columns 1-9 (2..10) whole and
    # column 10 (value 11) by half, over 10 rows: 10 * (0.5 + 54 + 5.5) = 600
    # U2 (x 1000..2000): 10 * (0.5 * 11 + (12 + ... + 20) + 0.5 * 21) = 10 * 160 = 1600
    np.testing.assert_allclose(
        units["pop_sum"].loc[["U1", "U2", "U3", "U4"]], [600, 1600, 600, 1600]
    )
    np.testing.assert_allclose(units["population"], units["pop_sum"])
    hexes = read(out, "hex")
    assert hexes["pop_sum"].sum() == pytest.approx(4400, rel=1e-9)  # conserved
    assert hexes["population"].sum() == pytest.approx(4400, rel=1e-9)
    np.testing.assert_allclose(units.loc["U1", "crime_rate"], 4 / 600 * 1000)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ('{ kind = "crimes", fields = ["victim_age"] }', "'victim_age' is sensitive"),
        ('{ kind = "crimes", fields = ["hour"] }', "'hour' is not a numeric field"),
        ('{ kind = "crimes", fields = ["category"] }', "'category' is not a numeric field"),
    ],
)
def test_sensitive_or_text_fields_cannot_be_averaged(tmp_path, params, message):
    extra = (
        '[indicators.local.x]\ntitle = "x"\nunit = "x"\nmethod = "mean"\n'
        f'params = {params}\ndirection = "risk"\ndimension = "perception"\nextensive = false'
    )
    with pytest.raises(CityFileError, match=message):
        load_city(toy_city(tmp_path, extra=extra))


def test_conditions_on_victims_need_ten_records(tmp_path):
    extra = "[indicators.change.female_victim_share]\nmin_input = 3"
    with pytest.raises(CityFileError, match="sensitive field 'victim_sex' needs min_input >= 10"):
        load_city(toy_city(tmp_path, extra=extra))


def test_unmapped_category_groups_are_null_not_zero(tmp_path):
    extra = "[indicators.category_groups]\nviolence = ['Homicidio']\nproperty = ['Burglary']"
    build(toy_city(tmp_path, extra=extra), tmp_path / "out")
    units = read(tmp_path / "out", "units").set_index("unit_id")
    assert units["violence_rate"].isna().all() and units["asb_rate"].isna().all()
    np.testing.assert_allclose(units["property_rate"], [1.0, 2 / 1.5, 0, 0])
    table = read(tmp_path / "out", "indicators").set_index("id")
    assert "map the data's categories" in table.loc["violence_rate", "null_reason"]


def test_a_custom_kind_total_cannot_take_an_indicator_column(tmp_path):
    city = toy_city(tmp_path)
    (tmp_path / "kinds").mkdir()
    (tmp_path / "kinds" / "rate.toml").write_text(
        'kind = "rate"\ntitle = "x"\ngeometry = "point"\ncount_field = "crime_rate"\n'
    )
    city.write_text('kinds_dir = "kinds"\n' + city.read_text())
    with pytest.raises(CityFileError, match="'crime_rate' would be written by the total of kind"):
        load_city(city)


def test_hexes_outside_every_unit_have_no_data_not_zeros(tmp_path):
    city = toy_city(tmp_path)
    study = shapely.box(X0 - 1000, Y0, X0 + 2000, Y0 + 2000)  # 1 km west of the units
    gpd.GeoDataFrame({"name": ["x"]}, geometry=[study], crs=27700).to_file(tmp_path / "sa.gpkg")
    text = city.read_text().replace("[units]", '[study_area]\npath = "sa.gpkg"\n[units]', 1)
    city.write_text(text)
    build(city, tmp_path / "out")
    hexes = read(tmp_path / "out", "hex")
    west = hexes.geometry.centroid.x < X0 - 300  # well outside every unit
    assert west.sum() > 5
    for column in ("crime_count", "crime_density", "population", "count_crimes", "lamp_count"):
        assert hexes.loc[west, column].isna().all(), column
    assert hexes.loc[~west, "crime_count"].notna().any()
    assert hexes["crime_count"].sum() == len(CRIMES)
    gaps = read(tmp_path / "out", "indicator_gaps")
    assert "outside every admin unit" in " ".join(gaps["null_reason"])


def test_indicators_are_reproducible(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    for where in (first, second):
        where.mkdir()
        build(toy_city(where), where / "out")
    for layer in ("units", "hex", "indicators", "indicator_gaps"):
        a = read(first / "out", layer).drop(columns="geometry", errors="ignore")
        b = read(second / "out", layer).drop(columns="geometry", errors="ignore")
        pd.testing.assert_frame_equal(a, b)
