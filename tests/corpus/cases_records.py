"""Records: impossible places, swapped axes, placeholders, unit codes, counts, geometries.

A few of these run ``usm build``: then the private store must hold every accepted record and
every reject (checked for every build case by the runner).
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

from tests.corpus.corpus import Case
from tests.corpus.toy import CENTRES_BNG, COLUMNS, HEADER, city, csv, layer, rows

R = rows(10)
OUTSIDE = "outside the study area"


def swapped(lines: list[str], prefix: str = "S") -> list[str]:
    """The same rows with lon and lat exchanged (and new ids)."""
    out = []
    for i, line in enumerate(lines):
        _, lon, lat, *rest = line.split(",")
        out.append(",".join([f"{prefix}{i}", lat, lon, *rest]))
    return out


# --- x/y in British National Grid, a few metres outside the toy city ---------------------------
XY_HEADER = "id,x,y,date,category"
XY = [f"P{i},{529500 + i * 10},{182500 + i * 10},2024-03-01,Robbery" for i in range(10)]
NEAR = [
    "N1,528990,182500,2024-03-01,Robbery",  # 10 m west of the city
    "N2,528980,183500,2024-03-01,Robbery",  # 20 m west
    "F1,528500,182500,2024-03-01,Robbery",  # 500 m west
]
XY_COLUMNS = 'record_id = "id"\nx = "x"\ny = "y"\ndatetime = "date"\ncategory = "category"\n'

# --- tables of counts per unit and month ---------------------------------------------------
COUNTS_HEADER = "code,month,total"
COUNTS = [f"U{i % 4 + 1},2024-0{i % 9 + 1},{i}" for i in range(10)]
COUNTS_COLUMNS = (
    'unit_code = "code"\ncount = "total"\nmonth = "month"\ncategory = { value = "Robbery" }\n'
)


def counts(name: str, extra: list[str], **kw) -> Case:
    return Case(
        name,
        files={"t.csv": csv([*COUNTS, *extra], header=COUNTS_HEADER)},
        city=city(layer("per_unit", path="t.csv", columns=COUNTS_COLUMNS)),
        **kw,
    )


# --- WKT ------------------------------------------------------------------------------------
WKT_HEADER = "id,wkt,date,category"
WKT = [f'W{i},"POINT ({529500 + i} {182500 + i})",2024-03-01,Robbery' for i in range(10)]
WKT_COLUMNS = 'record_id = "id"\nwkt = "wkt"\ndatetime = "date"\ncategory = "category"\n'


def wkt(name: str, bad: str, reason: str | None, **kw) -> Case:
    """Ten good WKT points and one ``bad``; ``reason`` None means it is accepted."""
    return Case(
        name,
        files={"w.csv": csv([*WKT, f"X1,{bad},2024-03-01,Robbery"], header=WKT_HEADER)},
        city=city(layer(path="w.csv", columns=WKT_COLUMNS, extra='crs = "EPSG:27700"')),
        layers={"crimes": {"read": 11, "accepted": 11 if reason is None else 10}},
        reasons={"crimes": {reason: 1} if reason else {}},
        **kw,
    )


# --- vector files ---------------------------------------------------------------------------
VECTOR_COLUMNS = 'category = "cat"\ndatetime = "d"\n'


def points(name: str, extra, *, driver_ext: str = "gpkg"):
    """A setup writing the four centres plus ``extra`` geometries as ``c.<ext>``."""

    def setup(directory: Path) -> None:
        geoms = [shapely.Point(p) for p in CENTRES_BNG] + list(extra)
        gdf = gpd.GeoDataFrame(
            {"cat": ["Robbery"] * len(geoms), "d": ["2024-03-01"] * len(geoms)},
            geometry=geoms,
            crs=27700,
        )
        gdf.to_file(directory / f"c.{driver_ext}")

    return setup


def geojson_with(geometry: dict) -> str:
    features = [
        {
            "type": "Feature",
            "properties": {"cat": "Robbery", "d": "2024-03-01"},
            "geometry": g,
        }
        for g in [{"type": "Point", "coordinates": list(p)} for p in CENTRES_BNG] + [geometry]
    ]
    return json.dumps(
        {
            "type": "FeatureCollection",
            "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::27700"}},
            "features": features,
        }
    )


def vector(name: str, path: str, **kw) -> Case:
    return Case(name, city=city(layer(path=path, columns=VECTOR_COLUMNS)), **kw)


PLACEHOLDER = [f"P{i},-0.125,51.53,2024-03-01,Robbery" for i in range(25)]

CASES = [
    # --- impossible or implausible places --------------------------------------------------
    Case(
        "record-zero-zero",
        files={
            "crimes.csv": csv([*R, "Z1,0,0,2024-03-01,Robbery", "Z2,0.0,0.000,2024-03-01,Robbery"])
        },
        city=city(),
        command="build",
        layers={"crimes": {"read": 12, "accepted": 10, "rejected": 2}},
        reasons={"crimes": {"coordinates (0, 0)": 2}},
    ),
    Case(
        "record-coordinates-out-of-range",
        files={
            "crimes.csv": csv(
                [
                    *R,
                    "Z1,-0.13,95,2024-03-01,Robbery",
                    "Z2,200,51.5,2024-03-01,Robbery",
                    "Z3,nan,51.5,2024-03-01,Robbery",
                    "Z4,inf,51.5,2024-03-01,Robbery",
                    "Z5,,51.5,2024-03-01,Robbery",
                ]
            )
        },
        city=city(),
        layers={"crimes": {"read": 15, "accepted": 10, "rejected": 5}},
        reasons={
            "crimes": {
                "coordinates out of range for EPSG:4326": 2,
                "unparseable coordinates": 2,
                "missing coordinates": 1,
            }
        },
    ),
    Case(
        "record-lon-lat-swapped-all",
        # every point lands off Somalia: none accepted, the layer is refused
        files={"crimes.csv": csv(swapped(R))},
        city=city(),
        exit=2,
        says=("none of its 10 rows was accepted", f"most common reason: {OUTSIDE}"),
    ),
    Case(
        "record-lon-lat-swapped-most",
        # spatial reasons do not count towards max_reject_share (README): the layer is kept
        files={"crimes.csv": csv([*R[:1], *swapped(R[1:])])},
        city=city(),
        layers={"crimes": {"read": 10, "accepted": 1, "rejected": 9}},
        reasons={"crimes": {OUTSIDE: 9}},
    ),
    Case(
        "record-all-outside-may-be-empty",
        files={"crimes.csv": csv(swapped(R))},
        city=city(layer(extra="may_be_empty = true")),
        command="build",
        layers={"crimes": {"read": 10, "accepted": 0, "rejected": 10}},
        reasons={"crimes": {OUTSIDE: 10}},
    ),
    Case(
        "record-all-rejected",
        files={"crimes.csv": csv([r.replace("2024-03", "yy") for r in R])},
        city=city(),
        exit=2,
        says=("none of its 10 rows was accepted", "unparseable date", "may_be_empty"),
    ),
    Case(
        "record-snapped-near-the-edge",
        files={"xy.csv": csv([*XY, *NEAR], header=XY_HEADER)},
        city=city(
            layer(path="xy.csv", columns=XY_COLUMNS, extra='crs = "EPSG:27700"\nsnap_m = 25')
        ),
        layers={"crimes": {"read": 13, "accepted": 12, "rejected": 1, "snapped": 2}},
        reasons={"crimes": {OUTSIDE: 1}},
        notes={"crimes": ("2 point(s) up to 25 m outside the units",)},
    ),
    Case(
        "record-near-the-edge-without-snap",
        files={"xy.csv": csv([*XY, *NEAR], header=XY_HEADER)},
        city=city(layer(path="xy.csv", columns=XY_COLUMNS, extra='crs = "EPSG:27700"')),
        layers={"crimes": {"read": 13, "accepted": 10, "rejected": 3}},
        reasons={"crimes": {OUTSIDE: 3}},
    ),
    # --- placeholders ------------------------------------------------------------------------
    Case(
        "record-placeholder-noted",
        files={"crimes.csv": csv([*rows(100), *PLACEHOLDER])},
        city=city(),
        layers={"crimes": {"read": 125, "accepted": 125}},
        notes={"crimes": ("possible placeholder location: 25 of 125 records (20%)",)},
        says=("possible placeholder location", "layers.crimes.placeholders.points"),
    ),
    Case(
        "record-placeholder-listed",
        files={"crimes.csv": csv([*rows(100), *PLACEHOLDER])},
        city=city(layer(extra="placeholders = { points = [[-0.125, 51.53]] }")),
        layers={"crimes": {"read": 125, "accepted": 100, "rejected": 25}},
        reasons={"crimes": {"placeholder location": 25}},
    ),
    Case(
        "record-placeholder-column",
        files={"crimes.csv": csv([*R, "Q1,-0.13,51.53,2024-03-01,SIN UBICACION"])},
        city=city(
            layer(extra='placeholders = { column = "category", values = ["SIN UBICACION"] }')
        ),
        layers={"crimes": {"read": 11, "accepted": 10, "rejected": 1}},
        reasons={"crimes": {"placeholder location": 1}},
    ),
    # --- fields ------------------------------------------------------------------------------
    Case(
        "record-duplicate-ids",
        files={"crimes.csv": csv([*R, *R[:2]])},
        city=city(),
        command="build",
        layers={"crimes": {"read": 12, "accepted": 10, "rejected": 2}},
        reasons={"crimes": {"duplicate record_id": 2}},
    ),
    Case(
        "record-missing-category",
        files={"crimes.csv": csv([*R, "E1,-0.134636,51.526572,2024-03-01,"])},
        city=city(),
        layers={"crimes": {"read": 11, "accepted": 10, "rejected": 1}},
        reasons={"crimes": {"missing required value ('category')": 1}},
    ),
    Case(
        "record-categories-filter",
        # the city's own filter: half rejected, but it does not count towards max_reject_share
        files={"crimes.csv": csv(R)},
        city=city(layer(extra='categories = ["Robbery"]')),
        layers={"crimes": {"read": 10, "accepted": 5, "rejected": 5}},
        reasons={"crimes": {"category not in the configured list": 5}},
    ),
    Case(
        "record-invalid-optional-values-cleaned",
        # victim_age -1 and a negative weight: cleaned to NULL, the records kept
        files={"c.csv": csv([r + ",-1,-5" for r in R], header=HEADER + ",age,w")},
        city=city(layer(path="c.csv", columns=COLUMNS + 'victim_age = "age"\nweight = "w"\n')),
        layers={"crimes": {"read": 10, "accepted": 10, "rejected": 0}},
        says=(
            "10 value(s) of victim_age cleaned to NULL (record kept)",
            "10 value(s) of weight cleaned to NULL (record kept)",
        ),
    ),
    # --- unit codes and counts ---------------------------------------------------------------
    counts(
        "record-unit-codes-match-no-unit",
        ["E01000001,2024-03,4", "E01000001,2024-04,2", "XX,2024-03,1"],
        command="build",
        layers={"per_unit": {"read": 13, "accepted": 10, "rejected": 3}},
        reasons={"per_unit": {"unit code matches no admin unit": 3}},
        notes={"per_unit": ("match no admin unit: E01000001 (2), XX (1)",)},
        says=("E01000001 (2), XX (1)",),
    ),
    counts(
        "record-unit-code-missing-or-miscased",
        [",2024-03,4", "u1,2024-03,1"],
        layers={"per_unit": {"read": 12, "accepted": 10, "rejected": 2}},
        reasons={"per_unit": {"missing unit code": 1, "unit code matches no admin unit": 1}},
    ),
    counts(
        "record-count-negative-or-fractional",
        ["U1,2024-03,-1", "U2,2024-03,1.5", "U3,2024-03,", "U4,2024-03,abc"],
        layers={"per_unit": {"read": 14, "accepted": 10, "rejected": 4}},
        reasons={"per_unit": {"count is not a whole number >= 0": 3, "missing count": 1}},
    ),
    counts(
        "record-count-whole-number-spellings",
        ["U1,2024-03,2.0", "U2,2024-03,1e3"],
        layers={"per_unit": {"read": 12, "accepted": 12, "rejected": 0}},
    ),
    counts(
        "record-count-beyond-int64",
        ["U1,2024-03,99999999999999999999"],
        command="build",
        layers={"per_unit": {"read": 11, "accepted": 10, "rejected": 1}},
        check=lambda d, o: _no_negative_counts(d),
    ),
    # --- WKT ---------------------------------------------------------------------------------
    wkt("record-wkt-unparseable", '"POINT (abc)"', "unparseable WKT"),
    wkt("record-wkt-empty-cell", "", "missing geometry"),
    wkt("record-wkt-a-line-for-a-point-kind", '"LINESTRING (0 0, 1 1)"', "not a point"),
    wkt("record-wkt-multipoint", '"MULTIPOINT ((529500 182500), (529600 182600))"', "not a point"),
    wkt("record-wkt-point-z", '"POINT Z (529500 182500 5)"', None),
    wkt(
        "record-wkt-point-empty",
        "POINT EMPTY",
        "empty",
    ),
    wkt(
        "record-wkt-point-nan",
        '"POINT (nan nan)"',
        "coordinates",
    ),
    wkt(
        "record-wkt-point-inf",
        '"POINT (inf 0)"',
        "coordinates",
    ),
    # --- vector files ------------------------------------------------------------------------
    vector(
        "record-gpkg-empty-and-nan-points",
        "c.gpkg",
        setup=points("gpkg", [shapely.Point(), shapely.Point(np.nan, np.nan)]),
        layers={"crimes": {"read": 6, "accepted": 4, "rejected": 2}},
        reasons={"crimes": {"missing or empty geometry": 2}},
    ),
    vector(
        "record-gpkg-infinite-point",
        "c.gpkg",
        setup=points("gpkg", [shapely.Point(np.inf, 0)]),
        layers={"crimes": {"read": 5, "accepted": 4, "rejected": 1}},
    ),
    vector(
        "record-gpkg-polygon-in-a-point-layer",
        "c.gpkg",
        setup=points("gpkg", [shapely.Point(CENTRES_BNG[0]).buffer(10)]),
        layers={"crimes": {"read": 5, "accepted": 4, "rejected": 1}},
        reasons={"crimes": {"geometry is not a point": 1}},
    ),
    vector(
        "record-geojson-null-geometry",
        "c.geojson",
        files={"c.geojson": geojson_with(None)},
        layers={"crimes": {"read": 5, "accepted": 4, "rejected": 1}},
        reasons={"crimes": {"missing or empty geometry": 1}},
    ),
    vector(
        "record-geojson-point-without-coordinates",
        "c.geojson",
        files={"c.geojson": geojson_with({"type": "Point", "coordinates": []})},
        layers={"crimes": {"read": 5, "accepted": 4, "rejected": 1}},
        reasons={"crimes": {"missing or empty geometry": 1}},
    ),
]


def _no_negative_counts(directory: Path) -> None:
    import pyogrio

    units = pyogrio.read_dataframe(
        directory / "out" / "public" / "diagnosis.gpkg", layer="units", read_geometry=False
    )
    assert (units["crime_count"].dropna() >= 0).all(), units["crime_count"].tolist()
