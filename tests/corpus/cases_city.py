"""The city file: types, ranges, unknown keys at every level, names, kinds, filters, mappings."""

from __future__ import annotations

from tests.corpus.corpus import Case
from tests.corpus.toy import COLUMNS, UNITS, city, csv, layer, rows

R = rows(10)
GOOD = {"crimes.csv": csv(R)}
OK10 = {"crimes": {"read": 10, "accepted": 10, "rejected": 0, "filtered": 0}}
CITY = "{dir}/city.toml"


def refused(name: str, text: str, *says: str, files: dict | None = None, **kw) -> Case:
    """A city file that must be refused (exit 2) with a message saying ``says``."""
    return Case(name, files=GOOD if files is None else files, city=text, exit=2, says=says, **kw)


KIND = """kind = "cctv"
title = "CCTV cameras"
geometry = "point"
count_field = "{count_field}"
temporal = {temporal}
{top}
[fields.record_id]
type = "string"
unique = true
{fields}"""
CCTV_COLUMNS = 'record_id = "id"\nlon = "lon"\nlat = "lat"\n'


def kind_case(
    name: str,
    *says: str,
    count_field: str = "cctv_count",
    temporal: str = "false",
    top: str = "",
    fields: str = "",
    exit: int = 2,
    **kw,
) -> Case:
    """A city with a custom kind ``cctv`` in ``kinds/`` and one layer of it."""
    kind = KIND.format(count_field=count_field, temporal=temporal, top=top, fields=fields)
    return Case(
        name,
        files={"crimes.csv": csv(R), "kinds/cctv.toml": kind},
        city=city(layer("cams", kind="cctv", columns=CCTV_COLUMNS), top='kinds_dir = "kinds"'),
        exit=exit,
        says=says,
        **kw,
    )


NULLS = [*R, "E1,-0.134636,51.526572,2024-03-01,", "E2,-0.134636,51.526572,2024-03-01,"]

CASES = [
    # --- types and ranges ------------------------------------------------------------------
    refused("city-h3-true", city(top="h3_resolutions = [true]"), "'h3_resolutions.0'", "integer"),
    refused("city-h3-string", city(top='h3_resolutions = ["9"]'), "'h3_resolutions.0'", "'9'"),
    refused("city-h3-float", city(top="h3_resolutions = [9.0]"), "'h3_resolutions.0'", "integer"),
    refused("city-h3-16", city(top="h3_resolutions = [16]"), "between 0 and 15"),
    refused("city-h3-negative", city(top="h3_resolutions = [-1]"), "between 0 and 15"),
    refused("city-h3-repeated", city(top="h3_resolutions = [9, 8, 9]"), "must not repeat"),
    refused("city-h3-empty", city(top="h3_resolutions = []"), "'h3_resolutions'", "at least 1"),
    refused("city-h3-not-a-list", city(top="h3_resolutions = 9"), "'h3_resolutions'", "list"),
    refused(
        "city-h3-15-over-max-cells",
        city(top="h3_resolutions = [15]"),
        "h3_resolutions: the H3 cover would have about",
        "(resolution 15: ~",
        "more than max_cells = 2,000,000",
        "coarser resolutions",
    ),
    refused(
        "city-max-cells-1",
        city(top="max_cells = 1"),
        "(resolution 9: ~",
        "more than max_cells = 1",
    ),
    refused("city-max-cells-zero", city(top="max_cells = 0"), "'max_cells'"),
    refused(
        "city-in-totals-yes",
        city(layer(extra='in_totals = "yes"')),
        "'layers.crimes.in_totals'",
        "boolean",
        "'yes'",
    ),
    refused(
        "city-synthetic-no",
        city(layer(extra='synthetic = "no"')),
        "'layers.crimes.synthetic'",
        "boolean",
    ),
    refused(
        "city-may-be-empty-1",
        city(layer(extra="may_be_empty = 1")),
        "'layers.crimes.may_be_empty'",
        "boolean",
    ),
    refused(
        "city-max-reject-share-2",
        city(layer(extra="max_reject_share = 2")),
        "'layers.crimes.max_reject_share'",
        "less than or equal to 1",
    ),
    refused(
        "city-max-reject-share-negative",
        city(layer(extra="max_reject_share = -0.1")),
        "'layers.crimes.max_reject_share'",
    ),
    refused("city-snap-m-5-km", city(layer(extra="snap_m = 5000")), "'layers.crimes.snap_m'"),
    refused(
        "city-decimal-semicolon",
        city(layer(fmt='decimal = ";"')),
        "'layers.crimes.format.decimal'",
        "'.' or ','",
    ),
    # --- unknown keys at every level --------------------------------------------------------
    refused("city-unknown-key-top", city(top='colour = "red"'), "unknown key 'colour'"),
    refused(
        "city-unknown-key-units", city(units=UNITS + "colour = 1\n"), "unknown key 'units.colour'"
    ),
    refused(
        "city-unknown-key-study-area",
        city(top='[study_area]\npath = "units.gpkg"\nlayer = "units"\ncolour = 1\n'),
        "unknown key 'study_area.colour'",
    ),
    refused(
        "city-unknown-key-layer",
        city(layer(extra='colour = "red"')),
        "unknown key 'layers.crimes.colour'",
    ),
    refused(
        "city-unknown-key-format",
        city(layer(fmt='quotechar = "x"')),
        "unknown key 'layers.crimes.format.quotechar'",
    ),
    refused(
        "city-unknown-key-format-member",
        # member is a key of the layer, not of its format
        city(layer(fmt='member = "a.csv"')),
        "unknown key 'layers.crimes.format.member'",
    ),
    refused(
        "city-unknown-key-columns",
        city(layer(columns=COLUMNS + 'colour = "x"\n')),
        "layers.crimes.columns: unknown key 'colour' for kind 'crimes'",
        "allowed: category",
    ),
    refused(
        "city-unknown-key-placeholders",
        city(layer(extra="placeholders = { points = [[0, 0]], radius = 3 }")),
        "unknown key 'layers.crimes.placeholders.radius'",
    ),
    refused(
        "city-unknown-key-date-parts",
        city(layer(columns=COLUMNS.replace('"date"', '{ year = "y", month = "m", week = "w" }'))),
        "unknown key 'layers.crimes.columns.datetime.week'",
    ),
    refused(
        "city-unknown-key-constant",
        city(layer(columns=COLUMNS.replace('"category"', '{ value = "x", extra = 1 }', 1))),
        "unknown key 'layers.crimes.columns.category.extra'",
    ),
    refused(
        "city-unknown-key-indicators",
        city(top="[indicators]\ncolour = 1\n"),
        "unknown key 'indicators.colour'",
    ),
    refused(
        "city-unknown-kind-and-unknown-column",
        city(layer(kind="crime"), layer("thefts", columns=COLUMNS + 'colour = "x"\n')),
        "2 problems",
        "layers.crimes.kind: unknown kind 'crime'",
        "layers.thefts.columns: unknown key 'colour'",
    ),
    refused(
        "city-unknown-kind-and-unknown-column-same-layer",
        city(layer(kind="crime", columns=COLUMNS + 'colour = "x"\n')),
        "layers.crimes.kind: unknown kind 'crime'",
        "'colour'",
    ),
    refused(
        "city-reserved-and-invalid-layer-names",
        city(layer("units"), layer("Bad-Name"), layer("hex_r8")),
        "3 problems",
        "layers.units: layer name 'units'",
        "layers.Bad-Name: layer name 'Bad-Name'",
        "layers.hex_r8: layer name 'hex_r8'",
    ),
    refused(
        "city-categories-on-a-kind-without-category",
        city(layer("lamps", kind="lighting", extra='categories = ["a"]', columns=CCTV_COLUMNS)),
        "layers.lamps.categories: kind 'lighting' has no category field",
    ),
    # --- custom kinds -----------------------------------------------------------------------
    kind_case("city-kind-ok", exit=0, layers={"cams": {"read": 10, "accepted": 10, "rejected": 0}}),
    kind_case(
        "city-kind-count-field-area-share",
        "output column 'area_share' would be written by the grids and by the total of kind",
        count_field="area_share",
    ),
    kind_case(
        "city-kind-count-field-h3",
        "output column 'h3' would be written by the grids",
        count_field="h3",
    ),
    kind_case(
        "city-kind-count-field-crime-count",
        "output column 'crime_count' would be written by the total of kind 'crimes'",
        count_field="crime_count",
    ),
    kind_case(
        "city-kind-month-field",
        "kinds/cctv.toml",
        "field name(s) ['month'] are reserved",
        temporal="true",
        fields='[fields.month]\ntype = "string"\n',
    ),
    kind_case(
        "city-kind-datetime-field",
        "field name(s) ['datetime'] are reserved",
        temporal="true",
        fields='[fields.datetime]\ntype = "string"\n',
    ),
    kind_case("city-kind-unknown-key", "kinds/cctv.toml", "unknown key 'colour'", top="colour = 1"),
    kind_case(
        "city-kind-field-type-unknown",
        "kinds/cctv.toml",
        "fields.size.type",
        fields='[fields.size]\ntype = "number"\n',
    ),
    refused(
        "city-kinds-dir-missing",
        city(top='kinds_dir = "nokinds"'),
        "nokinds: layer-kind directory not found",
    ),
    refused(
        "city-kind-file-not-toml",
        city(top='kinds_dir = "kinds"'),
        "kinds/cctv.toml: not valid TOML",
        files={"crimes.csv": csv(R), "kinds/cctv.toml": "kind = "},
    ),
    refused(
        "city-kind-name-not-file-name",
        city(top='kinds_dir = "kinds"'),
        "kind 'crimes' must match the file name 'cctv.toml'",
        files={
            "crimes.csv": csv(R),
            "kinds/cctv.toml": KIND.format(
                count_field="c_count", temporal="false", top="", fields=""
            ).replace('kind = "cctv"', 'kind = "crimes"'),
        },
    ),
    # --- row filters ------------------------------------------------------------------------
    refused(
        "city-where-bad-syntax",
        city(layer(fmt="where = \"category = 'Robbery' AND\"")),
        "layers.crimes.format.where",
        "at character 25",
    ),
    refused(
        "city-where-unterminated-text",
        city(layer(fmt='where = "category = \'Robbery"')),
        "layers.crimes.format.where",
        "unterminated text at character 12",
    ),
    refused(
        "city-where-sql-injection",
        city(layer(fmt='where = "id; DROP TABLE crimes"')),
        "layers.crimes.format.where",
        "unexpected character ';' at character 3",
    ),
    refused("city-where-empty", city(layer(fmt='where = ""')), "layers.crimes.format.where"),
    refused(
        "city-where-missing-column",
        city(layer(fmt="where = \"colour = 'red'\"")),
        "layer 'crimes': format.where",
        "column(s) 'colour' that the table does not have",
        "its columns are: id, lon, lat, date, category",
    ),
    Case(
        "city-where-filters",
        files=GOOD,
        city=city(layer(fmt="where = \"category = 'Robbery'\"")),
        layers={"crimes": {"read": 10, "accepted": 5, "rejected": 0, "filtered": 5}},
    ),
    Case(
        "city-where-null-keeps-nothing",
        # a comparison with an empty value keeps nothing (SQL's rule): filtered, not rejected
        files={"crimes.csv": csv(NULLS)},
        city=city(layer(fmt="where = \"category <> 'Robbery'\"")),
        layers={"crimes": {"read": 12, "accepted": 5, "rejected": 0, "filtered": 7}},
    ),
    Case(
        "city-where-is-null",
        files={"crimes.csv": csv(NULLS)},
        city=city(layer(fmt="where = \"category IS NULL OR category <> 'Robbery'\"")),
        layers={"crimes": {"read": 12, "accepted": 5, "rejected": 2, "filtered": 5}},
        reasons={"crimes": {"missing required value": 2}},
    ),
    Case(
        "city-where-keeps-nothing",
        files=GOOD,
        city=city(layer(fmt="where = \"category = 'Arson'\"")),
        exit=2,
        says=("filter",),
    ),
    # --- column mappings --------------------------------------------------------------------
    refused(
        "city-constant-location",
        city(layer(columns=COLUMNS.replace('lon = "lon"', "lon = { value = -0.13 }"))),
        "columns.lon: a location or count cannot be a constant",
    ),
    refused(
        "city-constant-count",
        city(layer(columns=COLUMNS + "count = { value = 3 }\n")),
        "columns.count: a location or count cannot be a constant",
    ),
    refused(
        "city-date-parts-on-category",
        city(layer(columns=COLUMNS.replace('"category"', '{ year = "a", month = "b" }', 1))),
        "columns.category: date parts are only for 'datetime' or 'month'",
    ),
    refused(
        "city-unit-code-on-a-line-kind",
        city(layer("roads", kind="streets", columns='unit_code = "id"\n')),
        "layers.roads.columns.unit_code: only point kinds can be located by unit code",
    ),
    refused(
        "city-lon-without-lat",
        city(layer(columns='lon = "lon"\ndatetime = "date"\ncategory = "category"\n')),
        "'layers.crimes'",
        "map both 'lon' and 'lat'",
    ),
    refused(
        "city-x-y-without-crs",
        city(layer(columns=COLUMNS.replace("lon =", "x =").replace("lat =", "y ="))),
        "x/y columns need 'crs'",
    ),
    refused(
        "city-lon-lat-and-unit-code",
        city(layer(columns=COLUMNS + 'unit_code = "id"\n')),
        "map only one of lon/lat, x/y, wkt or unit_code",
    ),
    # --- CRS --------------------------------------------------------------------------------
    refused(
        "city-crs-unknown",
        city(layer(extra='crs = "EPSG:99999"')),
        "'layers.crimes.crs'",
        "unknown CRS 'EPSG:99999'",
    ),
    refused(
        "city-crs-in-feet",
        city().replace("EPSG:27700", "EPSG:2249"),
        "crs 'EPSG:2249'",
        "us survey foot",
    ),
    refused(
        "city-crs-geographic",
        city().replace("EPSG:27700", "EPSG:4326", 1),
        "crs 'EPSG:4326' is not a projected CRS",
    ),
    # --- the file itself --------------------------------------------------------------------
    # a TOML syntax error names the line and column: that is what to do
    refused("city-not-toml", 'name = "x"\n[units\n', "not valid TOML", "line 2", hint=False),
    refused(
        "city-same-layer-twice",
        city(layer(), layer()),
        "not valid TOML",
        "('layers', 'crimes')",
        hint=False,
    ),
    refused("city-empty", "", "missing required key 'name'", "missing required key 'units'"),
    refused("city-no-units", city(units=""), "missing required key 'units'"),
    Case("city-with-bom", files=GOOD, city="\ufeff" + city(), layers=OK10),
    Case("city-without-layers", files=GOOD, city=city(units=UNITS).split("[layers")[0]),
    Case(
        "city-saved-as-utf16",
        files=GOOD | {"city.toml": city().encode("utf-16")},
        exit=2,
        says=("UTF-8",),
    ),
    Case(
        "city-saved-as-latin1",
        files=GOOD | {"city.toml": city(name="Z\xfcrich").encode("latin-1")},
        exit=2,
        says=("UTF-8",),
    ),
    Case(
        "city-missing",
        exit=2,
        says=("city file not found",),
    ),
    Case(
        "city-is-a-directory",
        setup=lambda d: (d / "city.toml").mkdir(),
        exit=2,
        says=("city.toml",),
    ),
    Case(
        "city-input-missing",
        files={},
        city=city(layer(path="nope.csv")),
        exit=2,
        says=("nope.csv: input file not found", "check 'path'"),
    ),
    Case(
        "city-every-problem-at-once",
        files=GOOD,
        city=city(
            layer(path="nope.csv"),
            layer("thefts", columns=COLUMNS.replace('"date"', '"fecha"')),
        ),
        exit=2,
        says=(
            "2 problem(s) found",
            "nope.csv: input file not found",
            "layer 'thefts': column 'fecha' (mapped to 'datetime') is not in the file",
        ),
    ),
]

assert all(c.target == CITY for c in CASES)
