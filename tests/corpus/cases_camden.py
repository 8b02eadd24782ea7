"""The real Camden crime file (police.uk, June 2019), as a data team would mangle it.

The sample's CSV is re-saved the ways real exports come out (gzip, UTF-16, Excel's semicolons
and decimal commas, Windows line ends, a cut download, stray quotes, a zip with a README) and
read against the sample's real LSOA boundaries. As published it gives 4,075 records: 3,701
accepted, 265 outside the borough's LSOAs and 109 repeated crime ids; every re-saving that
keeps the data must give the same accounting.
"""

from __future__ import annotations

import csv as csvlib
import gzip
import io
import zipfile
from pathlib import Path

from tests.corpus.corpus import Case
from tests.corpus.toy import city, layer

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "camden" / "data"
SOURCE = (SAMPLE / "camden_crime_2019_06.csv").read_text(encoding="utf-8")
LINES = SOURCE.splitlines()
UNITS = f"""
[units]
path = "{(SAMPLE / "camden_boundaries.gpkg").as_posix()}"
layer = "lsoa_2011"
id = "lsoa11cd"
name = "lsoa11nm"
"""
COLUMNS = """
lon = "longitude"
lat = "latitude"
month = "month"
category = "category"
record_id = "crime_id"
"""
OUTSIDE = "outside the study area"
DUPLICATE = "duplicate record_id"
DUPLICATE_REASON = "duplicate record_id (an earlier row has the same value)"
UNBALANCED = "unbalanced quote (a quoted field is not closed)"
AS_PUBLISHED = {"crimes": {"read": 4075, "accepted": 3701, "rejected": 374, "filtered": 0}}
REASONS = {"crimes": {OUTSIDE: 265, DUPLICATE: 109}}


def camden(
    name: str,
    data: str | bytes,
    *,
    path: str = "crimes.csv",
    fmt: str = "",
    columns: str = COLUMNS,
    extra: str = "",
    **kw,
) -> Case:
    """The Camden crimes saved as ``data``; by default the as-published accounting."""
    if not kw.get("exit"):
        kw.setdefault("layers", AS_PUBLISHED)
        kw.setdefault("reasons", REASONS)
    return Case(
        f"camden-{name}",
        files={path: data},
        city=city(
            layer(path=path, columns=columns, fmt=fmt, extra=extra), units=UNITS, name="Camden"
        ),
        **kw,
    )


def excel_export() -> str:
    """The file as a European Excel saves it: ';' between fields, ',' in numbers."""
    out = io.StringIO()
    writer = csvlib.writer(out, delimiter=";", lineterminator="\r\n")
    for i, row in enumerate(csvlib.reader(io.StringIO(SOURCE))):
        writer.writerow(row if i == 0 else [v.replace(".", ",") if _number(v) else v for v in row])
    return out.getvalue()


def _number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return "." in value


def stray_quotes() -> str:
    """A double quote opening the location of every 100th record, never closed."""
    out = [LINES[0]]
    for i, line in enumerate(LINES[1:], start=1):
        out.append(line.replace(",On or near ", ',"On or near ', 1) if i % 100 == 0 else line)
    return "\n".join(out) + "\n"


def zipped(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buffer.getvalue()


def _quotes_rejected(outcome) -> None:
    (report,) = outcome.result.layers
    assert report.rejects_by_reason.get(UNBALANCED) == QUOTED, report.rejects_by_reason
    assert set(report.rejects_by_reason) == {UNBALANCED, OUTSIDE, DUPLICATE_REASON}


def _member_hint(outcome) -> None:
    assert "format.member" not in outcome.stderr, "the hint names format.member, an unknown key"
    assert "member" in outcome.stderr


QUOTED = sum(
    1 for i, line in enumerate(LINES[1:], start=1) if i % 100 == 0 and "On or near" in line
)

CASES = [
    camden("as-published", SOURCE),
    camden(
        "gzipped",
        gzip.compress(SOURCE.encode()),
        path="crimes.csv.gz",
    ),
    camden("utf16-with-bom", SOURCE.encode("utf-16")),
    camden("crlf-cp1252", SOURCE.replace("\n", "\r\n").encode("cp1252"), fmt='encoding = "cp1252"'),
    camden(
        "excel-semicolons-and-decimal-commas", excel_export(), fmt='delimiter = ";"\ndecimal = ","'
    ),
    camden(
        "excel-export-read-as-comma",
        excel_export(),
        fmt='delimiter = ","',
        exit=2,
        says=("format.delimiter = ';'",),
    ),
    camden(
        "stray-quote-every-100th-record",
        # each stray quote costs its own record only (the records after it are read)
        stray_quotes(),
        layers={"crimes": {"read": 4075}},
        reasons=None,
        check=lambda d, o: _quotes_rejected(o),
    ),
    camden(
        "download-cut-mid-line",
        SOURCE[: int(len(SOURCE) * 0.6)],
        layers={"crimes": {"read": 2463, "accepted": 2297, "rejected": 166}},
        reasons={"crimes": {OUTSIDE: 98, DUPLICATE: 67, "missing coordinates": 1}},
    ),
    camden(
        "where-one-category",
        SOURCE,
        fmt="where = \"category = 'Burglary'\"",
        layers={"crimes": {"read": 4075, "filtered": 4075 - 271}},
        reasons=None,
    ),
    camden(
        "x-y-from-easting-northing",
        SOURCE,
        columns=COLUMNS.replace('lon = "longitude"', 'x = "easting"').replace(
            'lat = "latitude"', 'y = "northing"'
        ),
        extra='crs = "EPSG:27700"',
        layers={"crimes": {"read": 4075}},
        reasons=None,
    ),
    camden(
        "month-mapped-as-datetime",
        SOURCE,
        columns=COLUMNS.replace("month =", "datetime ="),
        exit=2,
        says=("none of its 4,075 rows was accepted", "unparseable date ('month')"),
    ),
    camden(
        "header-in-capitals",
        SOURCE.replace(LINES[0], LINES[0].upper(), 1),
        exit=2,
        says=("column 'longitude' (mapped to 'lon') is not in the file", "LONGITUDE"),
    ),
    camden(
        "zip-with-a-readme",
        zipped({"crimes.csv": SOURCE, "README.txt": "Police data, Open Government Licence"}),
        path="crimes.zip",
        exit=2,
        says=("holds several data files", "README.txt"),
        check=lambda d, o: _member_hint(o),
    ),
]
