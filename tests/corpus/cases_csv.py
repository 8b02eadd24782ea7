"""Text tables and containers: quotes, headers, newlines, encodings, delimiters, gzip, zip."""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import pandas as pd

from tests.corpus.corpus import Case, Outcome
from tests.corpus.toy import HEADER, city, csv, layer, rows

R = rows(10)
GOOD = {"crimes.csv": csv(R)}
OK10 = {"crimes": {"read": 10, "accepted": 10, "rejected": 0, "filtered": 0}}
STRAY = 'C99,-0.134636,51.526572,2024-03-01T10:00,"Robbery'
LATIN1 = csv([*R[:5], "C50,-0.134636,51.526572,2024-03-01,Se\xf1al", *R[5:]]).encode("latin-1")
MANY = rows(3000, start=100)  # about 150 KiB of good rows


def zipped(members: dict[str, str | bytes]) -> bytes:
    """Return a zip archive holding ``members``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buffer.getvalue()


def damaged_zip() -> bytes:
    """A zip whose compressed data is overwritten with zeros (its directory is intact)."""
    raw = bytearray(zipped({"crimes.csv": csv(R)}))
    raw[40:60] = bytes(20)
    return bytes(raw)


def workbook(directory: Path, name: str = "crimes.xlsx", sheet: str = "Data") -> None:
    """Write the ten toy rows as an Excel workbook with one sheet."""
    frame = pd.DataFrame([r.split(",") for r in R], columns=HEADER.split(","))
    frame.to_excel(directory / name, sheet_name=sheet, index=False)


def frames(directory: Path, name: str, sheets: dict[str, pd.DataFrame]) -> None:
    with pd.ExcelWriter(directory / name) as writer:
        for sheet, frame in sheets.items():
            frame.to_excel(writer, sheet_name=sheet, index=False)


def dated_frame() -> pd.DataFrame:
    """Ten crimes with real Excel date cells."""
    return pd.DataFrame(
        {
            "id": [f"X{i}" for i in range(10)],
            "lon": [-0.1346] * 10,
            "lat": [51.5265 + i * 1e-4 for i in range(10)],
            "date": pd.date_range("2024-03-01 10:00", periods=10, freq="D"),
            "category": ["Robbery"] * 10,
        }
    )


def no_format_member(directory: Path, outcome: Outcome) -> None:
    """The hint must name a key the city file accepts: ``member`` is a layer key."""
    assert "format.member" not in outcome.stderr, "the hint names format.member, an unknown key"
    assert "member" in outcome.stderr


def xlsx(**kw: str) -> str:
    return city(layer(path="crimes.xlsx", **kw))


CASES = [
    # --- quotes ---------------------------------------------------------------------------
    Case(
        "csv-stray-quote",
        files={"crimes.csv": csv([*R[:3], STRAY, *R[3:]])},
        city=city(),
        layers={"crimes": {"read": 11, "accepted": 10, "rejected": 1}},
        reasons={"crimes": {"unbalanced quote": 1}},
        says=("1 rejected: unbalanced quote",),
    ),
    Case(
        "csv-stray-quote-before-128k",
        # one open quote followed by ~150 KiB of rows: it must not swallow them
        files={"crimes.csv": csv([*R[:3], STRAY, *MANY])},
        city=city(),
        layers={"crimes": {"read": 3004, "accepted": 3003, "rejected": 1}},
        reasons={"crimes": {"unbalanced quote": 1}},
    ),
    Case(
        "csv-quote-closed-150k-later",
        # an open quote whose only possible closing quote is 3000 lines (150 KiB) further on
        files={
            "crimes.csv": csv(
                [*R[:3], STRAY, *MANY, 'C98,-0.134636,51.526572,2024-03-01,Rob"bery"']
            )
        },
        city=city(),
        layers={"crimes": {"read": 3005, "accepted": 3004, "rejected": 1}},
        reasons={"crimes": {"unbalanced quote": 1}},
    ),
    Case(
        "csv-quoted-line-break",
        # a legitimate quoted field over two lines is one record
        files={"crimes.csv": csv([*R, 'M1,-0.134636,51.526572,2024-03-01,"Rob\nbery"'])},
        city=city(),
        layers={"crimes": {"read": 11, "accepted": 11, "rejected": 0}},
    ),
    Case(
        "csv-misplaced-quote",
        files={"crimes.csv": csv([*R, 'M1,"-0.134636"x,51.526572,2024-03-01,Robbery'])},
        city=city(),
        layers={"crimes": {"read": 11, "accepted": 10}},
        reasons={"crimes": {"misplaced quote": 1}},
    ),
    # --- fields and headers ---------------------------------------------------------------
    Case(
        "csv-trailing-delimiter-every-row",
        files={"crimes.csv": csv([r + "," for r in R])},
        city=city(),
        layers=OK10,
        notes={"crimes": ("end with the delimiter",)},
    ),
    Case(
        "csv-trailing-delimiter-two-rows",
        # a few rows with an extra empty field are rows with too many fields
        files={"crimes.csv": csv([r + ("," if i < 2 else "") for i, r in enumerate(R)])},
        city=city(),
        layers={"crimes": {"read": 10, "accepted": 8, "rejected": 2}},
        reasons={"crimes": {"wrong number of fields": 2}},
    ),
    Case(
        "csv-too-many-fields",
        files={"crimes.csv": csv([*R, "C50,-0.134636,51.526572,2024-03-01,Robbery,x,y"])},
        city=city(),
        layers={"crimes": {"read": 11, "accepted": 10}},
        reasons={"crimes": {"wrong number of fields": 1}},
    ),
    Case(
        "csv-too-few-fields",
        # a short row is padded with empty fields: here its date is missing
        files={"crimes.csv": csv([*R, "C50,-0.134636,51.526572"])},
        city=city(),
        layers={"crimes": {"read": 11, "accepted": 10}},
        reasons={"crimes": {"missing date": 1}},
    ),
    Case(
        "csv-decimal-comma-with-comma-delimiter",
        files={"crimes.csv": csv([r.replace(".", ",") for r in R])},
        city=city(),
        exit=2,
        says=("none of its 10 rows was accepted", "wrong number of fields"),
    ),
    Case(
        "csv-duplicate-header",
        files={"crimes.csv": csv(R, header="id,lon,lat,date,id")},
        city=city(),
        exit=2,
        says=("duplicate column names in the header", "'id'", "rename the columns"),
    ),
    Case(
        "csv-header-repeated-mid-file",
        # two exports concatenated: the second header is a record with no coordinates
        files={"crimes.csv": csv([*R[:5], HEADER, *R[5:]])},
        city=city(),
        layers={"crimes": {"read": 11, "accepted": 10}},
        reasons={"crimes": {"unparseable coordinates": 1}},
    ),
    Case(
        "csv-header-only",
        files={"crimes.csv": csv([])},
        city=city(),
        exit=2,
        says=("the source has no record", "may_be_empty"),
    ),
    Case(
        "csv-header-only-may-be-empty",
        files={"crimes.csv": csv([])},
        city=city(layer(extra="may_be_empty = true")),
        layers={"crimes": {"read": 0, "accepted": 0, "rejected": 0}},
    ),
    Case(
        "csv-huge-header",
        files={"crimes.csv": csv(R, header=HEADER + "," + ",".join(f"c{i}" for i in range(20000)))},
        city=city(),
        exit=2,
        says=("longer than 65,536 characters",),
        max_message=1024,
    ),
    Case(
        "csv-mapped-column-missing",
        files=GOOD,
        city=city(layer(columns='lon = "Longitude"\nlat = "lat"\ncategory = "category"\n')),
        exit=2,
        says=(
            "column 'Longitude' (mapped to 'lon') is not in the file",
            "columns are: id, lon, lat, date, category",
            "layers.crimes.columns.lon",
        ),
    ),
    Case(
        "csv-very-long-line",
        # a 5 MB free-text field in an unmapped column: the record is kept
        files={
            "crimes.csv": csv(
                [
                    *(r + "," for r in R),
                    "L1,-0.134636,51.526572,2024-03-01,Robbery," + "x" * 5_000_000,
                ],
                header=HEADER + ",notes",
            )
        },
        city=city(),
        layers={"crimes": {"read": 11, "accepted": 11, "rejected": 0}},
    ),
    # --- empty files and blank lines ------------------------------------------------------
    Case("csv-empty-file", files={"crimes.csv": b""}, city=city(), exit=2, says=("empty",)),
    Case(
        "csv-only-bom",
        files={"crimes.csv": b"\xef\xbb\xbf"},
        city=city(),
        exit=2,
        says=("empty",),
    ),
    Case(
        "csv-only-blank-lines",
        files={"crimes.csv": "\n \n\t\n"},
        city=city(),
        exit=2,
        says=("empty",),
    ),
    Case(
        "csv-blank-lines",
        files={"crimes.csv": csv([*R[:3], "", "   ", "\t", *R[3:]])},
        city=city(),
        layers=OK10,
    ),
    # --- newlines ----------------------------------------------------------------------------
    Case("csv-crlf", files={"crimes.csv": csv(R, newline="\r\n")}, city=city(), layers=OK10),
    Case("csv-cr-only", files={"crimes.csv": csv(R, newline="\r")}, city=city(), layers=OK10),
    Case(
        "csv-mixed-newlines",
        files={"crimes.csv": f"{HEADER}\n{R[0]}\r\n{R[1]}\r" + "\n".join(R[2:]) + "\n"},
        city=city(),
        layers=OK10,
    ),
    Case("csv-no-final-newline", files={"crimes.csv": csv(R)[:-1]}, city=city(), layers=OK10),
    # --- encodings ---------------------------------------------------------------------------
    Case(
        "csv-bom-utf8",
        files={"crimes.csv": csv(R).encode("utf-8-sig")},
        city=city(),
        layers=OK10,
    ),
    Case(
        "csv-bom-utf16-le",
        files={"crimes.csv": csv(R).encode("utf-16")},
        city=city(),
        layers=OK10,
        notes={"crimes": ("UTF-16 byte-order mark",)},
    ),
    Case(
        "csv-bom-utf16-be",
        files={"crimes.csv": b"\xfe\xff" + csv(R).encode("utf-16-be")},
        city=city(),
        layers=OK10,
    ),
    Case(
        "csv-bom-utf32",
        files={"crimes.csv": csv(R).encode("utf-32")},
        city=city(),
        layers=OK10,
        notes={"crimes": ("UTF-32 byte-order mark",)},
    ),
    Case(
        "csv-utf16-told-nothing",
        files={"crimes.csv": csv(R).encode("utf-16-le")},
        city=city(),
        exit=2,
        says=("looks like UTF-16", "format.encoding = 'utf-16-le'"),
        max_message=1024,
    ),
    Case(
        "csv-latin1-bytes-in-utf8",
        files={"crimes.csv": LATIN1},
        city=city(),
        exit=2,
        says=("not valid utf-8 text at line 7", "format.encoding"),
        max_message=1024,
    ),
    Case(
        "csv-latin1-declared",
        files={"crimes.csv": LATIN1},
        city=city(layer(fmt='encoding = "latin-1"')),
        layers={"crimes": {"read": 11, "accepted": 11}},
    ),
    Case(
        "csv-wrong-encoding-on-a-100k-line",
        # the message quotes the line, cut short
        files={
            "crimes.csv": csv(
                [*R[:5], "C50,-0.134636,51.526572,2024-03-01," + "x" * 100_000 + "Se\xf1al"]
            ).encode("latin-1")
        },
        city=city(),
        exit=2,
        says=("not valid utf-8 text at line 7", "format.encoding"),
        max_message=1024,
    ),
    Case(
        "csv-declared-ascii-for-utf8",
        files={"crimes.csv": csv([*R[:5], "C50,-0.134636,51.526572,2024-03-01," + "é" * 50_000])},
        city=city(layer(fmt='encoding = "ascii"')),
        exit=2,
        says=("not valid ascii text", "format.encoding"),
        max_message=1024,
    ),
    Case(
        "csv-declared-utf16-for-utf8",
        files=GOOD,
        city=city(layer(fmt='encoding = "utf-16"')),
        exit=2,
        says=("has no NUL bytes", "format.encoding"),
        max_message=1024,
    ),
    Case(
        "csv-unknown-encoding",
        files=GOOD,
        city=city(layer(fmt='encoding = "klingon"')),
        exit=2,
        says=("unknown encoding 'klingon'", "format.encoding"),
    ),
    # --- delimiters --------------------------------------------------------------------------
    Case(
        "csv-semicolon-read-with-comma",
        files={"crimes.csv": csv(R).replace(",", ";")},
        city=city(layer(fmt='delimiter = ","')),
        exit=2,
        says=("looks ';'-separated", "format.delimiter = ';'"),
    ),
    Case(
        "csv-semicolon-sniffed",
        files={"crimes.csv": csv(R).replace(",", ";")},
        city=city(),
        layers=OK10,
    ),
    Case(
        "csv-delimiter-two-characters",
        files=GOOD,
        city=city(layer(fmt='delimiter = ";;"')),
        exit=2,
        says=("delimiter must be one character",),
    ),
    # --- not a text table ----------------------------------------------------------------
    Case(
        "csv-zip-named-csv",
        files={"crimes.csv": zipped({"crimes.csv": csv(R)})},
        city=city(),
        exit=2,
        says=("is a zip archive", "rename it to crimes.csv.zip"),
    ),
    Case(
        "csv-png-named-csv",
        files={"crimes.csv": bytes.fromhex("89504e470d0a1a0a0000000d49484452") + bytes(100)},
        city=city(),
        exit=2,
        says=("is a PNG image",),
    ),
    Case(
        "csv-html-named-csv",
        files={"crimes.csv": "<!DOCTYPE html><html><body>404 Not Found</body></html>\n"},
        city=city(),
        exit=2,
        says=("HTML web page", "download the data again"),
    ),
    Case(
        "csv-geojson-named-csv",
        files={"crimes.csv": '{"type": "FeatureCollection", "features": []}'},
        city=city(),
        exit=2,
        says=("JSON or GeoJSON document", "rename it to crimes.geojson"),
    ),
    Case(
        "csv-binary-with-nul-bytes",
        files={"crimes.csv": csv(R).encode() + bytes(5000)},
        city=city(),
        exit=2,
        says=("binary file",),
        max_message=1024,
    ),
    Case(
        "csv-nul-byte-in-a-field",
        # a NUL inside a value: the record is either rejected, or kept with its value intact
        files={
            "crimes.csv": csv([*R[:5], "C50,-0.134636,51.526572,2024-03-01,Rob\x00bery", *R[5:]])
        },
        city=city(),
        command="build",
        layers={"crimes": {"read": 11}},
        check=lambda d, o: _nul_kept_or_rejected(d),
    ),
    # --- compression and containers ------------------------------------------------------
    Case(
        "csv-gzipped",
        files={"crimes.csv.gz": gzip.compress(csv(R).encode())},
        city=city(layer(path="crimes.csv.gz")),
        layers=OK10,
    ),
    Case(
        "csv-gz-that-is-plain-text",
        files={"crimes.csv.gz": csv(R)},
        city=city(layer(path="crimes.csv.gz")),
        exit=2,
        says=("not a gzip-compressed file", "rename it to crimes.csv"),
    ),
    Case(
        "csv-gz-truncated",
        files={"crimes.csv.gz": gzip.compress(csv(MANY).encode())[:5000]},
        city=city(layer(path="crimes.csv.gz")),
        exit=2,
        says=("damaged or truncated",),
    ),
    Case(
        "csv-zip-with-two-csvs",
        files={"crimes.zip": zipped({"a.csv": csv(R), "b.csv": csv(R)})},
        city=city(layer(path="crimes.zip")),
        exit=2,
        says=("holds several data files: a.csv, b.csv",),
        check=no_format_member,
    ),
    Case(
        "csv-zip-member-chosen",
        files={"crimes.zip": zipped({"a.csv": csv(R[:3]), "b.csv": csv(R)})},
        city=city(layer(path="crimes.zip", extra='member = "b.csv"')),
        layers=OK10,
    ),
    Case(
        "csv-zip-member-absent",
        files={"crimes.zip": zipped({"a.csv": csv(R), "b.csv": csv(R)})},
        city=city(layer(path="crimes.zip", extra='member = "c.csv"')),
        exit=2,
        says=("no member 'c.csv'", "a.csv, b.csv"),
        check=no_format_member,
    ),
    Case(
        "csv-zip-damaged",
        files={"crimes.zip": damaged_zip()},
        city=city(layer(path="crimes.zip")),
        exit=2,
        says=("zip",),
        check=lambda d, o: _not_called_gzip(o),
    ),
    Case(
        "csv-text-named-zip",
        files={"crimes.zip": csv(R)},
        city=city(layer(path="crimes.zip")),
        exit=2,
        says=("is a text file, not a zip archive", "rename it to crimes.csv"),
    ),
    Case(
        "csv-empty-zip",
        files={"crimes.zip": zipped({})},
        city=city(layer(path="crimes.zip")),
        exit=2,
        says=("holds no table or vector file",),
    ),
    Case(
        "csv-zip-named-xlsx",
        files={"crimes.xlsx": zipped({"x.txt": "hello"})},
        city=xlsx(),
        exit=2,
        says=("is a zip archive (holding x.txt), not a .xlsx file",),
    ),
    Case(
        "csv-text-named-xlsx",
        files={"crimes.xlsx": csv(R)},
        city=xlsx(),
        exit=2,
        says=("is a text file, not an Excel workbook",),
    ),
    Case(
        "csv-old-xls",
        files={"crimes.xls": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600)},
        city=city(layer(path="crimes.xls")),
        exit=2,
        says=("save the workbook as .xlsx",),
    ),
    Case("csv-xlsx", setup=workbook, city=xlsx(), layers=OK10),
    Case(
        "csv-xlsx-no-such-sheet",
        setup=workbook,
        city=xlsx(fmt='sheet = "2024"'),
        exit=2,
        says=("no sheet '2024'; the sheets are: Data", "format.sheet"),
    ),
    Case(
        "csv-xlsx-sheet-index-out-of-range",
        setup=workbook,
        city=xlsx(fmt="sheet = 3"),
        exit=2,
        says=("sheet 3", "Data", "format.sheet"),
    ),
    Case(
        "csv-xlsx-real-date-cells",
        setup=lambda d: frames(d, "crimes.xlsx", {"Data": dated_frame()}),
        city=xlsx(),
        layers=OK10,
    ),
    Case(
        "csv-xlsx-header-only",
        setup=lambda d: frames(d, "crimes.xlsx", {"Data": dated_frame().iloc[:0]}),
        city=xlsx(),
        exit=2,
        says=("the source has no record",),
    ),
    Case(
        "csv-xlsx-first-sheet-empty",
        # the data is on the second sheet; the first one is blank
        setup=lambda d: frames(d, "crimes.xlsx", {"Notes": pd.DataFrame(), "Data": dated_frame()}),
        city=xlsx(),
        exit=2,
        says=("Notes", "Data", "format.sheet"),
    ),
    Case(
        "csv-parquet-named-csv",
        setup=lambda d: dated_frame().to_parquet(d / "crimes.csv"),
        city=city(),
        exit=2,
        says=("is a Parquet file", "rename it to crimes.parquet"),
    ),
    Case(
        "csv-parquet-with-where",
        setup=lambda d: dated_frame().to_parquet(d / "crimes.parquet"),
        city=city(layer(path="crimes.parquet", fmt='where = "lat > 51.527"')),
        layers={"crimes": {"read": 10, "accepted": 4, "rejected": 0, "filtered": 6}},
    ),
    Case(
        "csv-unknown-extension",
        files={"crimes.dat": csv(R)},
        city=city(layer(path="crimes.dat")),
        exit=2,
        says=("crimes.dat",),
    ),
]


def _nul_kept_or_rejected(directory: Path) -> None:
    import pyogrio

    gpkg = directory / "out" / "private" / "records.gpkg"
    kept = pyogrio.read_dataframe(gpkg, layer="crimes", read_geometry=False)
    row = kept.loc[kept["record_id"] == "C50", "category"].tolist()
    assert row in ([], ["Rob\x00bery"]), f"the record was stored altered: {row}"


def _not_called_gzip(outcome: Outcome) -> None:
    assert "gzip" not in outcome.stderr, "a damaged zip archive is called a gzip file"
