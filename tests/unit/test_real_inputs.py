"""Inputs as cities publish them: constants, split dates, unit codes, counts, placeholders,
snapping, row filters for every format, plausible dates and a strict city file.

The toy city is four 1 km squares in British National Grid around King's Cross; every expected
value below is counted by hand from the rows written in the test.
"""

import datetime as dt
import json

import numpy as np
import pandas as pd
import pyogrio
import pytest

from geo_usm.cityfile import load_city
from geo_usm.errors import CityFileError, ProblemsError
from geo_usm.ingest import PLACEHOLDER
from geo_usm.pipeline import build, validate
from tests.unit.test_ingest import X0, Y0, make_units

HEAD = """
name = "Toy"
crs = "EPSG:27700"
h3_resolutions = [9]
[units]
path = "unidades.gpkg"
layer = "barrios"
id = "codigo"
name = "nombre"
population = "pob"
"""


def write(tmp_path, layers: str, files: dict[str, str]) -> object:
    make_units(tmp_path)
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    city = tmp_path / "city.toml"
    city.write_text(HEAD + layers, encoding="utf-8")
    return city


def one_layer(result):
    (report,) = result.layers
    return report


def public(tmp_path, layer):
    return pyogrio.read_dataframe(tmp_path / "out" / "public" / "diagnosis.gpkg", layer=layer)


def private(tmp_path, layer):
    return pyogrio.read_dataframe(tmp_path / "out" / "private" / "records.gpkg", layer=layer)


# ---------------------------------------------------------------- constants and split dates

ASB = """
[layers.asb]
kind = "crimes"
path = "asb.csv"
crs = "EPSG:27700"
[layers.asb.columns]
x = "E"
y = "N"
category = { value = "Anti-social behaviour" }
datetime = { year = "YEAR", month = "MONTH", day = "DAY", hour = "HOUR", minute = "MINUTE" }
"""

ASB_ROWS = [
    # E, N, YEAR, MONTH, DAY, HOUR, MINUTE -> expected (datetime or reason)
    (f"{X0 + 500},{Y0 + 500},2024,3,1,22,15", dt.datetime(2024, 3, 1, 22, 15)),
    (f"{X0 + 1500},{Y0 + 500},2024,12,31,0,5", dt.datetime(2024, 12, 31, 0, 5)),
    (f"{X0 + 500},{Y0 + 1500},2024,2,29,,", dt.datetime(2024, 2, 29)),  # time missing: 00:00
    (f"{X0 + 500},{Y0 + 500},2024,13,1,10,0", "unparseable date"),
    (f"{X0 + 500},{Y0 + 500},2023,2,29,10,0", "unparseable date"),  # no 29 February in 2023
    (f"{X0 + 500},{Y0 + 500},,3,1,10,0", "missing date"),
    (f"{X0 + 500},{Y0 + 500},3000,1,1,10,0", "date outside the plausible range"),
    (f"{X0 + 500},{Y0 + 500},0,1,1,10,0", "unparseable date"),
    (f"{X0 + 500},{Y0 + 500},2024,3,1.5,10,0", "unparseable date"),
]


def test_constant_category_and_date_from_five_columns(tmp_path):
    text = "E,N,YEAR,MONTH,DAY,HOUR,MINUTE\n" + "\n".join(r for r, _ in ASB_ROWS) + "\n"
    city = write(tmp_path, ASB, {"asb.csv": text})
    report = one_layer(build(city, tmp_path / "out"))
    assert (report.read, report.accepted) == (len(ASB_ROWS), 3)
    assert report.cleaned == {"datetime": {"missing hour ('HOUR'): 0 used": 1}}
    crimes = private(tmp_path, "asb").sort_values("source_row")
    assert set(crimes["category"]) == {"Anti-social behaviour"}
    want = [w for _, w in ASB_ROWS if isinstance(w, dt.datetime)]
    assert list(crimes["datetime"].dt.to_pydatetime()) == want
    rejects = private(tmp_path, "rejects").set_index("source_row")
    for number, (_, expected) in enumerate(ASB_ROWS, start=1):
        if isinstance(expected, str):
            assert expected in rejects.loc[number, "reason"], number


def test_date_and_time_columns(tmp_path):
    layers = """
[layers.thefts]
kind = "crimes"
path = "thefts.csv"
crs = "EPSG:27700"
[layers.thefts.columns]
x = "E"
y = "N"
category = "TYPE"
datetime = { date = "DATE", time = "TIME" }
"""
    rows = [
        f"{X0 + 500},{Y0 + 500},Theft,2024-03-01,22:15",
        f"{X0 + 500},{Y0 + 500},Theft,2024-03-02,",
        f"{X0 + 500},{Y0 + 500},Theft,,10:00",
    ]
    city = write(tmp_path, layers, {"thefts.csv": "E,N,TYPE,DATE,TIME\n" + "\n".join(rows)})
    report = one_layer(build(city, tmp_path / "out"))
    assert (report.accepted, report.rejects_by_reason) == (2, {"missing date ('DATE+TIME')": 1})
    assert report.cleaned == {"datetime": {"missing time of day ('TIME'): 00:00 used": 1}}
    got = private(tmp_path, "thefts").sort_values("source_row")["datetime"].tolist()
    assert [t.isoformat() for t in got] == ["2024-03-01T22:15:00", "2024-03-02T00:00:00"]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("now", "unparseable date"),
        ("tomorrow", "unparseable date"),
        ("2019", "unparseable date"),  # a year is not a date and time
        ("June", "unparseable date"),
        ("3000-01-01", "date outside the plausible range"),
        ("9999-12-31", "date outside the plausible range"),
        ("1850-06-01", "date outside the plausible range"),
        ("2024-03-03", None),  # the day is not mistaken for a UTC offset
        ("2024-03-03T10:00:00Z", None),
    ],
)
def test_implausible_datetimes_are_rejects_not_crashes(tmp_path, value, reason):
    layers = """
[layers.c]
kind = "crimes"
path = "c.csv"
crs = "EPSG:27700"
may_be_empty = true
[layers.c.columns]
x = "E"
y = "N"
category = "T"
datetime = "D"
"""
    city = write(tmp_path, layers, {"c.csv": f"E,N,T,D\n{X0 + 5},{Y0 + 5},x,{value}\n"})
    report = one_layer(validate(city))
    if reason is None:
        assert report.accepted == 1, report.rejects_by_reason
        return
    assert report.accepted == 0
    (got,) = report.rejects_by_reason
    assert got.startswith(reason)


def test_month_in_2200_and_date_range_override(tmp_path):
    layers = """
[layers.c]
kind = "crimes"
path = "c.csv"
crs = "EPSG:27700"
max_reject_share = 1.0
[layers.c.format]
date_range = [2019-01-01, 2019-12-31]
[layers.c.columns]
x = "E"
y = "N"
category = "T"
month = "M"
"""
    rows = ["2019-06", "2200-01", "2018-12", "2019-12"]
    text = "E,N,T,M\n" + "".join(f"{X0 + 5},{Y0 + 5},x,{m}\n" for m in rows)
    report = one_layer(validate(write(tmp_path, layers, {"c.csv": text})))
    assert report.accepted == 2
    (reason,) = report.rejects_by_reason
    assert reason.startswith("date outside the plausible range 2019-01-01 to 2019-12-31")


def test_month_format_without_a_year_is_refused(tmp_path):
    layers = '[layers.c]\nkind = "crimes"\npath = "c.csv"\n[layers.c.format]\nmonth_format = "%m"\n'
    with pytest.raises(CityFileError, match="must contain a year"):
        load_city(write(tmp_path, layers, {}))


# ---------------------------------------------------------------- unit codes and counts

COUNTS = """
[layers.counts]
kind = "crimes"
path = "counts.csv"
[layers.counts.columns]
unit_code = "LSOA"
month = "MONTH"
category = "TYPE"
count = "N"
"""


def test_counts_per_unit_code_land_on_units_and_not_on_hexes(tmp_path):
    rows = [
        "U1,2024-01,Burglary,3",
        "U1,2024-02,Burglary,2",
        "U2,2024-01,Robbery,5",
        "U4,2024-01,Robbery,0",
        "E0999,2024-01,Robbery,7",  # a code of another boundary edition
        "U3,2024-01,Robbery,-1",
        "U3,2024-01,Robbery,1.5",
        ",2024-01,Robbery,4",
    ]
    city = write(tmp_path, COUNTS, {"counts.csv": "LSOA,MONTH,TYPE,N\n" + "\n".join(rows)})
    result = build(city, tmp_path / "out")
    report = one_layer(result)
    assert (report.read, report.accepted, report.rejected) == (8, 4, 4)
    assert report.rejects_by_reason == {
        "unit code matches no admin unit": 1,
        "count is not a whole number >= 0 ('N')": 2,
        "missing unit code ('LSOA')": 1,
    }
    assert any("E0999 (1)" in note for note in report.notes)
    units = public(tmp_path, "units").set_index("unit_id")
    assert units["count_counts"].to_dict() == {"U1": 5, "U2": 5, "U3": 0, "U4": 0}
    assert units["crime_count"].sum() == 10
    hexes = public(tmp_path, "hex")
    # no coordinates: the hexagons have no data for this layer (NULL, never a false 0)
    assert hexes["count_counts"].isna().all()
    assert hexes["crime_count"].isna().all()
    layers = {layer["name"]: layer for layer in result.manifest["catalog"]["layers"]}
    columns = {c["name"]: c for c in layers["hex"]["columns"]}
    assert "located by admin-unit code" in columns["count_counts"]["description"]
    assert "located by unit code" in columns["crime_count"]["description"]
    aggs = pd.read_parquet(tmp_path / "out" / "public" / "aggregates.parquet")
    monthly = aggs[(aggs.grid == "units") & (aggs.variable == "count_counts")]
    by_month = monthly[monthly.period != "all"].groupby("period", observed=True)["value"].sum()
    assert by_month.to_dict() == {"2024-01": 8.0, "2024-02": 2.0}


def test_unit_code_needs_a_point_kind(tmp_path):
    layers = '[layers.s]\nkind = "streets"\npath = "s.csv"\n[layers.s.columns]\nunit_code = "U"\n'
    with pytest.raises(CityFileError, match="only point kinds can be located by unit code"):
        load_city(write(tmp_path, layers, {}))


# ---------------------------------------------------------------- placeholders and snapping

PLACES = """
[layers.p]
kind = "crimes"
path = "p.csv"
crs = "EPSG:27700"
{extra}
[layers.p.columns]
x = "E"
y = "N"
category = "T"
"""


def spread_rows(n):
    rng = np.random.default_rng(7)
    xy = rng.uniform([X0 + 10, Y0 + 10], [X0 + 1990, Y0 + 1990], size=(n, 2))
    return [f"{x:.1f},{y:.1f},theft" for x, y in xy]


def test_possible_placeholder_is_reported_and_listed_one_rejected(tmp_path):
    stuck = f"{X0 + 1234.5},{Y0 + 987.0},theft"
    rows = spread_rows(100) + [stuck] * 25
    text = "E,N,T\n" + "\n".join(rows) + "\n"
    report = one_layer(validate(write(tmp_path, PLACES.format(extra=""), {"p.csv": text})))
    assert report.accepted == 125
    (note,) = [n for n in report.notes if n.startswith("possible placeholder location")]
    assert "25 of 125 records (20%)" in note
    listed = PLACES.format(extra=f"placeholders = {{ points = [[{X0 + 1234.5}, {Y0 + 987.0}]] }}")
    report = one_layer(validate(write(tmp_path, listed, {"p.csv": text})))
    assert (report.accepted, report.rejects_by_reason) == (100, {PLACEHOLDER: 25})
    assert not [n for n in report.notes if n.startswith("possible placeholder")]


def test_placeholder_marked_by_a_column_value(tmp_path):
    layers = PLACES.format(extra='placeholders = { column = "LOC", values = ["UNKNOWN"] }')
    layers = layers.replace("E,N,T", "E,N,T")
    rows = [f"{X0 + 5},{Y0 + 5},x,KNOWN", f"{X0 + 5},{Y0 + 6},x,UNKNOWN"]
    text = "E,N,T,LOC\n" + "\n".join(rows)
    report = one_layer(validate(write(tmp_path, layers, {"p.csv": text})))
    assert (report.accepted, report.rejects_by_reason) == (1, {PLACEHOLDER: 1})


def test_snapping_points_just_outside_the_units(tmp_path):
    rows = [
        f"{X0 + 500},{Y0 - 4},theft",  # 4 m south of U1
        f"{X0 + 2003},{Y0 + 1500},theft",  # 3 m east of U4
        f"{X0 + 500},{Y0 - 40},theft",  # 40 m: too far
        f"{X0 + 500},{Y0 + 500},theft",
    ]
    text = "E,N,T\n" + "\n".join(rows) + "\n"
    report = one_layer(validate(write(tmp_path, PLACES.format(extra=""), {"p.csv": text})))
    assert (report.accepted, report.snapped) == (1, 0)
    city = write(tmp_path, PLACES.format(extra="snap_m = 10"), {"p.csv": text})
    report = one_layer(build(city, tmp_path / "out"))
    assert (report.accepted, report.snapped) == (3, 2)
    assert report.rejects_by_reason == {"outside the study area": 1}
    records = private(tmp_path, "p").sort_values("source_row")
    assert records["unit_id"].tolist() == ["U1", "U4", "U1"]
    units = public(tmp_path, "units").set_index("unit_id")
    hexes = public(tmp_path, "hex")
    assert units["crime_count"].sum() == hexes["crime_count"].sum() == 3


# ---------------------------------------------------------------- one filter for every format


def test_where_filters_a_csv_and_counts_the_rows_it_drops(tmp_path):
    layers = PLACES.format(extra="[layers.p.format]\nwhere = \"T <> 'test' AND N > 0\"")
    rows = [
        f"{X0 + 5},{Y0 + 5},theft",
        f"{X0 + 5},{Y0 + 5},test",
        f"{X0 + 5},{Y0 + 5},TEST",  # comparison is exact: kept
        f"{X0 + 5},,theft",  # N is NULL: unknown, dropped by the filter
        f"{X0 + 9000},{Y0 + 5},theft",
    ]
    text = "E,N,T\n" + "\n".join(rows) + "\n"
    city = write(tmp_path, layers, {"p.csv": text})
    report = one_layer(build(city, tmp_path / "out"))
    assert (report.read, report.filtered, report.accepted, report.rejected) == (5, 2, 2, 1)
    manifest = json.loads((tmp_path / "out" / "public" / "manifest.json").read_text())
    entry = manifest["layers"]["p"]
    assert entry["read"] == entry["accepted"] + entry["rejected"] + entry["filtered"]
    rows_kept = private(tmp_path, "p")["source_row"].tolist()
    assert sorted(rows_kept) == [1, 3]


def test_bad_where_is_a_city_file_error_naming_the_layer(tmp_path):
    layers = PLACES.format(extra="[layers.p.format]\nwhere = \"T = 'x' AND\"")
    with pytest.raises(CityFileError, match=r"layers\.p\.format\.where"):
        load_city(write(tmp_path, layers, {}))


def test_where_on_a_missing_column_names_it(tmp_path):
    layers = PLACES.format(extra="[layers.p.format]\nwhere = \"status = 'x'\"")
    city = write(tmp_path, layers, {"p.csv": f"E,N,T\n{X0 + 5},{Y0 + 5},x\n"})
    with pytest.raises(ProblemsError, match="status"):
        validate(city)


# ---------------------------------------------------------------- a strict city file


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ("h3_resolutions = [true]", "'h3_resolutions.0': Input should be a valid integer"),
        ('h3_resolutions = ["9"]', "'h3_resolutions.0': Input should be a valid integer"),
        ("max_cells = 1.5", "'max_cells': Input should be a valid integer"),
    ],
)
def test_no_silent_coercion_at_top_level(tmp_path, snippet, message):
    city = write(tmp_path, "", {})
    city.write_text(HEAD.replace("h3_resolutions = [9]", snippet), encoding="utf-8")
    with pytest.raises(CityFileError) as err:
        load_city(city)
    assert message in str(err.value)


def test_every_problem_of_a_city_file_is_reported_at_once(tmp_path):
    layers = """
[layers.hex]
kind = "crimes"
path = "c.csv"
[layers.Bad-Name]
kind = "nope"
path = "c.csv"
in_totals = "yes"
synthetic = "no"
[layers.c]
kind = "crimes"
path = "c.csv"
colour = "red"
[layers.c.columns]
foo = "bar"
"""
    with pytest.raises(CityFileError) as err:
        load_city(write(tmp_path, layers, {}))
    msg = str(err.value)
    for expected in [
        "layers.hex: layer name 'hex'",
        "layers.Bad-Name: layer name 'Bad-Name'",
        "unknown kind 'nope'",
        "'layers.Bad-Name.in_totals': Input should be a valid boolean",
        "'layers.Bad-Name.synthetic': Input should be a valid boolean",
        "unknown key 'layers.c.colour'",
        "unknown key 'foo' for kind 'crimes'",
    ]:
        assert expected in msg, expected


@pytest.mark.parametrize(
    ("timezone", "hours"),
    [
        # no time zone: the wall-clock time written is kept, the offset dropped
        ("", [21, 21, 22, 10]),
        # Europe/London: UTC in winter, UTC+1 in summer; an offset-free value stays as written
        ('timezone = "Europe/London"', [21, 22, 22, 10]),
    ],
)
def test_timezone_says_how_to_read_offsets(tmp_path, timezone, hours):
    layers = """
[layers.c]
kind = "crimes"
path = "c.csv"
crs = "EPSG:27700"
[layers.c.columns]
x = "E"
y = "N"
category = "T"
datetime = "D"
"""
    values = [
        "2024-01-15T21:15:00Z",
        "2024-07-15T21:15:00Z",
        "2024-07-15T22:15:00+01:00",
        "2024-07-15 10:00",
    ]
    text = "E,N,T,D\n" + "".join(f"{X0 + 5},{Y0 + 5},x,{v}\n" for v in values)
    city = write(tmp_path, layers, {"c.csv": text})
    city.write_text(timezone + "\n" + city.read_text(encoding="utf-8"), encoding="utf-8")
    build(city, tmp_path / "out")
    got = private(tmp_path, "c").sort_values("source_row")["datetime"].dt.hour.tolist()
    assert got == hours


def test_unknown_timezone_is_refused(tmp_path):
    city = write(tmp_path, "", {})
    city.write_text('timezone = "Europe/Londres"\n' + city.read_text(encoding="utf-8"))
    with pytest.raises(CityFileError, match="unknown time zone 'Europe/Londres'"):
        load_city(city)


def test_validate_still_checks_the_layers_when_the_units_are_unusable(tmp_path):
    layers = PLACES.format(extra="") + '\n[layers.q]\nkind = "crimes"\npath = "missing.csv"\n'
    city = write(tmp_path, layers, {"p.csv": "E,N,Tipo\n1,2,x\n"})
    city.write_text(city.read_text().replace('id = "codigo"', 'id = "code"'))
    with pytest.raises(ProblemsError) as err:
        validate(city)
    problems = [str(p) for p in err.value.problems]
    assert len(problems) == 3, problems
    assert "units: column 'code'" in problems[0]
    assert "column 'T' (mapped to 'category') is not in the file" in problems[1]
    assert "missing.csv" in problems[2]
