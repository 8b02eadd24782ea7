import gzip
import os
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from geo_usm.errors import InputError
from geo_usm.ingest import _numbers, _text
from geo_usm.io import NUL_BYTE, read_polygons, read_source, readers
from geo_usm.io.text import MISPLACED_QUOTE, UNBALANCED_QUOTE


def test_semicolon_decimal_comma_bom_latin1(tmp_path):
    text = "Longitud;Latitud;Categoría\n-0,1262;51,5291;Robo\n-0,1340;51,5406;Hurto\n"
    p = tmp_path / "delitos.csv"
    p.write_bytes(text.encode("latin-1"))
    with pytest.raises(InputError, match="not valid utf-8") as err:
        read_source(p)
    assert "format.encoding" in str(err.value)
    raw = read_source(p, encoding="latin-1")
    assert list(raw.frame.columns) == ["Longitud", "Latitud", "Categoría"]
    assert raw.frame.iloc[0, 0] == "-0,1262"
    p.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    raw = read_source(p)  # BOM stripped, delimiter sniffed
    assert raw.frame.columns[0] == "Longitud"
    assert raw.n_read == 2


def test_ragged_rows_are_reported_not_dropped(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text("a,b,c\n1,2,3\n4,5,6,7\n8,9,10\n11,12,13,14,15\n", encoding="utf-8")
    raw = read_source(p)
    assert raw.n_read == 4
    assert raw.numbers.tolist() == [1, 3]
    assert [n for n, _, _ in raw.malformed] == [2, 4]


def test_tsv_excel_geojson_parquet_gtfs(tmp_path):
    df = pd.DataFrame({"lon": [-0.1, -0.2], "lat": [51.5, 51.6], "cat": ["x", "y"]})
    tsv = tmp_path / "t.tsv"
    df.to_csv(tsv, sep="\t", index=False)
    assert read_source(tsv).frame["cat"].tolist() == ["x", "y"]
    xlsx = tmp_path / "t.xlsx"
    df.to_excel(xlsx, sheet_name="datos", index=False)
    raw = read_source(xlsx, sheet="datos")
    assert raw.frame["cat"].tolist() == ["x", "y"]
    with pytest.raises(InputError, match="sheet"):
        read_source(xlsx, sheet="nope")
    gdf = gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(df.lon, df.lat), crs=4326)
    gj = tmp_path / "t.geojson"
    gdf.to_file(gj)
    raw = read_source(gj)
    assert raw.crs.to_epsg() == 4326
    assert shapely.get_x(raw.geometry).tolist() == [-0.1, -0.2]
    pq = tmp_path / "t.parquet"
    gdf.to_parquet(pq)
    assert len(read_source(pq).geometry) == 2
    stops = "stop_id,stop_name,stop_lat,stop_lon,location_type\nS1,Alpha,51.5,-0.1,0\n"
    (tmp_path / "stops.txt").write_text(stops, encoding="utf-8")
    raw = read_source(tmp_path / "stops.txt")
    assert raw.default_columns["lon"] == "stop_lon"
    with zipfile.ZipFile(tmp_path / "gtfs.zip", "w") as zf:
        zf.writestr("stops.txt", stops)
    assert read_source(tmp_path / "gtfs.zip").frame["stop_id"].tolist() == ["S1"]


def test_missing_file_and_multilayer(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_source(tmp_path / "none.csv")
    g = gpd.GeoDataFrame({"a": [1]}, geometry=[shapely.Point(0, 0)], crs=27700)
    p = tmp_path / "m.gpkg"
    g.to_file(p, layer="one")
    g.to_file(p, layer="two")
    with pytest.raises(InputError, match="several layers"):
        read_source(p)
    assert len(read_source(p, layer="two").frame) == 1


numbers = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).map(lambda v: round(v, 6))


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(numbers, min_size=1, max_size=30),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    decimal=st.sampled_from([".", ","]),
    bom=st.booleans(),
)
def test_csv_numbers_roundtrip(tmp_path_factory, values, delimiter, decimal, bom):
    if decimal == "," and delimiter == ",":
        delimiter = ";"
    lines = ["id" + delimiter + "valor"]
    lines += [f"r{i}{delimiter}{repr(v).replace('.', decimal)}" for i, v in enumerate(values)]
    p = tmp_path_factory.mktemp("csv") / "n.csv"
    p.write_bytes((b"\xef\xbb\xbf" if bom else b"") + "\n".join(lines).encode("utf-8"))
    raw = read_source(p, delimiter=delimiter)
    parsed, bad = _numbers(_text(raw.frame["valor"], set()), decimal)
    assert not bad.any()
    np.testing.assert_allclose(parsed, values, rtol=0, atol=0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=12), min_size=1, max_size=20))
def test_number_parser_never_crashes(texts):
    values, bad = _numbers(_text(pd.Series(texts, dtype=object), set()), ".")
    assert len(values) == len(texts)
    assert not (bad & np.isfinite(values)).any()


def test_clear_messages_for_wrong_layer_sheet_where(tmp_path):
    g = gpd.GeoDataFrame({"a": [1]}, geometry=[shapely.Point(0, 0)], crs=27700)
    g.to_file(tmp_path / "m.gpkg", layer="one")
    with pytest.raises(InputError, match="no layer 'nope'; the layers are: one"):
        read_source(tmp_path / "m.gpkg", layer="nope")
    pd.DataFrame({"a": [1]}).to_excel(tmp_path / "t.xlsx", sheet_name="datos", index=False)
    with pytest.raises(InputError, match="no sheet 'data'; the sheets are: datos"):
        read_source(tmp_path / "t.xlsx", sheet="data")
    (tmp_path / "fake.xlsx").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="is a text file, not an Excel workbook"):
        read_source(tmp_path / "fake.xlsx")
    (tmp_path / "t.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="only applies to vector files"):
        read_source(tmp_path / "t.csv", where="a = 1")


# --- CSV: every physical line accounted for -------------------------------------------------

CRIMES = (
    "crime_id,month,category,location,longitude,latitude\n"
    'a1,2019-06,Burglary,"On or near Judd Street, St Pancras",-0.126199,51.529117\n'
    'a2,2019-06,Robbery,"On or near ""The Crescent""",-0.134005,51.540608\n'
    'a3,2019-06,Theft,"On or near\nBarker Drive",-0.134005,51.540608\n'
)


def test_quoted_delimiters_doubled_quotes_and_line_breaks(tmp_path):
    p = tmp_path / "crimes.csv"
    p.write_text(CRIMES, encoding="utf-8")
    raw = read_source(p)
    assert raw.n_read == 3 and raw.malformed == []
    assert raw.frame["location"].tolist() == [
        "On or near Judd Street, St Pancras",
        'On or near "The Crescent"',
        "On or near\nBarker Drive",
    ]
    assert raw.lines.tolist() == [2, 3, 4]
    assert raw.delimiter == "," and raw.encoding == "utf-8"


def test_stray_quote_is_one_malformed_record_and_the_next_lines_are_read(tmp_path):
    text = (
        "crime_id,category,location,longitude,latitude\n"
        'b1,Burglary,"On or near Judd Street,-0.126199,51.529117\n'
        "b2,Robbery,On or near Barker Drive,-0.134005,51.540608\n"
        "b3,Theft,On or near Euston Road,-0.130000,51.527000\n"
    )
    p = tmp_path / "crimes.csv"
    p.write_text(text, encoding="utf-8")
    raw = read_source(p)
    assert raw.n_read == 3
    assert raw.malformed == [
        (1, 'b1,Burglary,"On or near Judd Street,-0.126199,51.529117', UNBALANCED_QUOTE)
    ]
    assert raw.frame["crime_id"].tolist() == ["b2", "b3"]
    assert raw.numbers.tolist() == [2, 3]
    assert raw.frame["longitude"].tolist() == ["-0.134005", "-0.130000"]


def test_quote_swallowing_more_than_the_csv_field_limit(tmp_path):
    rows = [f"r{i},Theft,street {i},-0.1,51.5" for i in range(6000)]  # ~170 KiB after the quote
    text = "id,category,location,lon,lat\n" + 'r_bad,Theft,"street,-0.1,51.5\n' + "\n".join(rows)
    p = tmp_path / "big.csv"
    p.write_text(text + "\n", encoding="utf-8")
    raw = read_source(p)
    assert raw.n_read == 6001
    assert [m[0] for m in raw.malformed] == [1]
    assert len(raw.frame) == 6000
    wkt = "POLYGON ((" + ", ".join(f"{i} {i}" for i in range(20000)) + "))"  # ~230 KiB field
    p.write_text(f'id,wkt\nu1,"{wkt}"\nu2,"POINT (1 2)"\n', encoding="utf-8")
    raw = read_source(p)
    assert raw.frame["wkt"].tolist() == [wkt, "POINT (1 2)"]


def test_misplaced_quote_and_literal_quote(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text('a,b,c\n1,"x"y,3\n4,5" pipe,6\n', encoding="utf-8")
    raw = read_source(p)
    assert raw.malformed == [(1, '1,"x"y,3', MISPLACED_QUOTE)]
    assert raw.frame.values.tolist() == [["4", '5" pipe', "6"]]


def test_blank_lines_are_not_records_and_header_only_file(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text("\n\na,b\r\n\r\n1,2\r\n   \r\n3,4\r\n\r\n", encoding="utf-8")
    raw = read_source(p)
    assert raw.n_read == 2
    assert raw.lines.tolist() == [5, 7]
    p.write_text("a,b\n", encoding="utf-8")
    raw = read_source(p)
    assert raw.n_read == 0 and list(raw.frame.columns) == ["a", "b"]


def test_trailing_delimiter_on_every_row_is_read_with_a_note(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text("month;lon;lat\n2019-06;-0,12;51,5;\n2019-07;-0,13;51,6;\n", encoding="utf-8")
    raw = read_source(p)
    assert raw.frame.values.tolist() == [["2019-06", "-0,12", "51,5"], ["2019-07", "-0,13", "51,6"]]
    assert any("end with the delimiter" in n for n in raw.notes)
    p.write_text("month,lon,\n2019-06,-0.12,\n", encoding="utf-8")  # header ends so too
    raw = read_source(p)
    assert list(raw.frame.columns) == ["month", "lon"] and raw.notes


def test_header_names_duplicate_or_empty(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text("id,lon,lat, lon\n1,2,3,4\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"duplicate column names.*'lon' \(columns 2, 4\)"):
        read_source(p)
    p.write_text(",lon,,lat\n1,2,3,4\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"2 columns of the header .* have no name: columns 1, 3"):
        read_source(p)
    p.write_text(",lon,lat\n0,2,3\n", encoding="utf-8")  # one unnamed column (an index) is fine
    assert list(read_source(p).frame.columns) == ["", "lon", "lat"]
    xlsx = tmp_path / "t.xlsx"
    pd.DataFrame([[1, 2]], columns=["a", "a "]).to_excel(xlsx, index=False)
    with pytest.raises(InputError, match=r"duplicate column names.*sheet 0, row 1"):
        read_source(xlsx)


def test_semicolon_file_with_a_comma_delimiter(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text("Longitud;Latitud;Tipo\n-0,12;51,5;Robo\n", encoding="utf-8")
    with pytest.raises(InputError, match="looks ';'-separated") as err:
        read_source(p, delimiter=",")
    assert "format.delimiter = ';'" in str(err.value)
    assert read_source(p).delimiter == ";"
    p.write_text("lon,lat\n-0,12;51,5\n-0,13;51,6\n", encoding="utf-8")  # header and data differ
    raw = read_source(p)
    assert len(raw.malformed) == 2 and "check the delimiter" in raw.notes[0]


def test_encodings_utf16_bom_and_wrong_declarations(tmp_path):
    text = "calle,tipo\nMayor,Robo con violencia\nSol,Hurto\n"
    p = tmp_path / "c.csv"
    p.write_bytes(text.encode("utf-16"))
    raw = read_source(p)
    assert raw.frame["tipo"].tolist() == ["Robo con violencia", "Hurto"]
    assert raw.encoding.startswith("utf-16") and raw.notes
    p.write_bytes(text.encode("utf-16-le"))
    with pytest.raises(InputError, match="UTF-16 text without a byte-order mark") as err:
        read_source(p)
    assert "utf-16-le" in str(err.value) and "latin" not in str(err.value)
    p.write_bytes(text.encode("utf-8"))
    with pytest.raises(InputError, match="no NUL bytes"):
        read_source(p, encoding="utf-16")
    with pytest.raises(InputError, match="unknown encoding"):
        read_source(p, encoding="klingon")


def test_messages_quoting_file_content_are_short(tmp_path):
    p = tmp_path / "c.csv"
    p.write_bytes(b"a,b\n1," + "\u00e9".encode("latin-1") * 100_000 + b"\n")
    with pytest.raises(InputError, match="not valid utf-8 text at line 2") as err:
        read_source(p)
    assert len(str(err.value)) < 600 and "cp1252" in str(err.value)
    p.write_bytes(b"x" * 3_000_000)  # one endless line: not a table, or a wrong encoding
    with pytest.raises(InputError, match=r"header .* longer than") as err:
        read_source(p)
    assert len(str(err.value)) < 600
    p.write_bytes(("a,b\n" + "1,2\n" * 50_000).encode("utf-16-le"))
    with pytest.raises(InputError) as err:
        read_source(p, encoding="latin-1")
    assert len(str(err.value)) < 600


def test_text_table_with_nul_bytes_in_a_few_lines(tmp_path):
    p = tmp_path / "c.csv"
    p.write_bytes(b"a,b\n1,2\n3,\x004\n" + b"5,6\n" * 200)
    raw = read_source(p)
    assert raw.n_read == 202 and raw.malformed == [(2, "3,\x004", NUL_BYTE)]


# --- files that are not files ----------------------------------------------------------------


def test_devices_fifos_directories_links_and_size(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="character device"):
        read_source(Path("/dev/zero"))
    fifo = tmp_path / "stream.csv"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="named pipe"):
        read_source(fifo)
    (tmp_path / "folder.csv").mkdir()
    (tmp_path / "folder.csv" / "thefts.csv").write_text("a\n1\n")
    with pytest.raises(InputError, match=r"is a directory, not a file; it contains: thefts.csv"):
        read_source(tmp_path / "folder.csv")
    (tmp_path / "a.csv").symlink_to(tmp_path / "b.csv")
    (tmp_path / "b.csv").symlink_to(tmp_path / "a.csv")
    with pytest.raises(InputError, match="symbolic link loop"):
        read_source(tmp_path / "a.csv")
    (tmp_path / "dangling.csv").symlink_to(tmp_path / "gone.csv")
    with pytest.raises(InputError, match="symbolic link to a missing file"):
        read_source(tmp_path / "dangling.csv")
    ok = tmp_path / "ok.csv"
    ok.write_text("a,b\n1,2\n")
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    with pytest.raises(InputError, match="permission denied"):
        read_source(ok)
    monkeypatch.undo()
    monkeypatch.setattr(readers, "MAX_FILE_BYTES", 5)
    with pytest.raises(InputError, match=r"the file is 8 bytes, more than the 5 bytes limit"):
        read_source(ok)
    bomb = tmp_path / "bomb.csv.gz"
    bomb.write_bytes(gzip.compress(b"a,b\n" + b"1,2\n" * 1000))
    monkeypatch.setattr(readers, "MAX_FILE_BYTES", 1000)
    with pytest.raises(InputError, match="decompresses to more than"):
        read_source(bomb)


# --- content, not names ------------------------------------------------------------------------


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.mark.parametrize(
    ("name", "data", "match", "hint"),
    [
        ("thefts.csv", b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "is a PNG image, not", "export the data"),
        ("thefts.csv", b"%PDF-1.7\n", "is a PDF document", "export the data"),
        ("thefts.csv", b"<!DOCTYPE html><html>", "is an HTML web page", "download the data"),
        (
            "thefts.csv",
            b"SQLite format 3\x00" + b"\0" * 52 + b"GPKG" + b"\0" * 30,
            "GeoPackage",
            "thefts.gpkg",
        ),
        ("thefts.csv", b"PAR1\x00\x00", "is a Parquet file", "thefts.parquet"),
        ("thefts.csv", gzip.compress(b"a,b\n1,2\n"), "gzip-compressed", "thefts.csv.gz"),
        ("thefts.zip", b"a,b\n1,2\n", "is a text file, not a zip archive", "thefts.csv"),
        ("thefts.csv.gz", b"a,b\n1,2\n", "is a text file, not a gzip", "thefts.csv"),
        ("wards.gpkg", b"a,b\n1,2\n", "is a text file, not a .gpkg file", "wards.csv"),
        ("thefts.parquet", b"a,b\n1,2\n", "is a text file, not a Parquet file", "thefts.csv"),
        ("thefts.csv", b"", "is empty", "export"),
    ],
)
def test_content_is_sniffed_not_the_name(tmp_path, name, data, match, hint):
    p = tmp_path / name
    p.write_bytes(data)
    with pytest.raises(InputError, match=match) as err:
        read_source(p)
    assert hint in str(err.value)


def test_archives_under_the_wrong_name(tmp_path):
    _zip(tmp_path / "thefts.csv", {"thefts.csv": "a,b\n1,2\n"})
    with pytest.raises(InputError, match=r"is a zip archive \(holding thefts.csv\)") as err:
        read_source(tmp_path / "thefts.csv")
    assert "thefts.csv.zip" in str(err.value)
    _zip(tmp_path / "book.xlsx", {"data.csv": "a,b\n1,2\n"})
    with pytest.raises(InputError, match=r"zip archive .*not a .xlsx file"):
        read_source(tmp_path / "book.xlsx")
    pd.DataFrame({"a": [1]}).to_excel(tmp_path / "real.xlsx", index=False)
    (tmp_path / "real.zip").write_bytes((tmp_path / "real.xlsx").read_bytes())
    with pytest.raises(InputError, match="is an Excel workbook") as err:
        read_source(tmp_path / "real.zip")
    assert "real.xlsx" in str(err.value)
    (tmp_path / "real.csv").write_bytes((tmp_path / "real.xlsx").read_bytes())
    with pytest.raises(InputError, match=r"is an Excel workbook .*not a delimited text table"):
        read_source(tmp_path / "real.csv")


def test_gdal_hints_with_path_syntax_are_rephrased(tmp_path):
    exc = pyogrio.errors.DataSourceError(
        "'/vsizip//data/t.zip/x.dat' not recognized as being in a supported file format.; It "
        "might help to specify the correct driver explicitly by prefixing the file path with "
        "'<DRIVER>:', e.g. 'CSV:path'."
    )
    text = readers.gdal_message(exc, "/vsizip//data/t.zip/x.dat", "x.dat")
    assert "CSV:" not in text and "prefix" not in text and "/vsi" not in text
    assert "x.dat" in text
    p = tmp_path / "thefts.dat"
    p.write_bytes(b"\x01\x02\x03 not a known format")
    with pytest.raises(InputError) as err:
        read_source(p)
    assert "CSV:" not in str(err.value) and "prefix" not in str(err.value)


# --- compressed inputs -------------------------------------------------------------------------


def _wards():
    return gpd.GeoDataFrame(
        {"code": ["W1", "W2"]},
        geometry=[shapely.box(0, 0, 100, 100), shapely.box(100, 0, 200, 100)],
        crs=27700,
    )


def test_gzip_of_every_format(tmp_path):
    (tmp_path / "thefts.csv.gz").write_bytes(gzip.compress(CRIMES.encode()))
    raw = read_source(tmp_path / "thefts.csv.gz")
    assert raw.n_read == 3 and raw.frame["location"].iloc[2] == "On or near\nBarker Drive"
    (tmp_path / "thefts.tsv.gz").write_bytes(gzip.compress(b"a\tb\n1\t2\n"))
    assert read_source(tmp_path / "thefts.tsv.gz").frame.values.tolist() == [["1", "2"]]
    wards = _wards()
    for suffix in (".geojson", ".gpkg", ".fgb"):
        plain = tmp_path / f"wards{suffix}"
        wards.to_file(plain)
        packed = tmp_path / f"wards{suffix}.gz"
        packed.write_bytes(gzip.compress(plain.read_bytes()))
        raw = read_source(packed)
        assert sorted(raw.frame["code"]) == ["W1", "W2"]  # FlatGeobuf orders features spatially
        assert raw.crs.to_epsg() == 27700
    pq = tmp_path / "wards.parquet"
    wards.to_parquet(pq)
    (tmp_path / "wards.parquet.gz").write_bytes(gzip.compress(pq.read_bytes()))
    assert len(read_source(tmp_path / "wards.parquet.gz").geometry) == 2
    (tmp_path / "data.gz").write_bytes(gzip.compress(b"a,b\n1,2\n"))
    raw = read_source(tmp_path / "data.gz")
    assert raw.n_read == 1 and raw.notes


def test_zip_members_chosen_by_name(tmp_path):
    wards = _wards()
    wards.to_file(tmp_path / "wards.gpkg")
    wards.to_file(tmp_path / "wards.geojson")
    wards.to_file(tmp_path / "wards.shp")
    one = _zip(tmp_path / "crimes.zip", {"export/crimes.csv": CRIMES})
    raw = read_source(one)
    assert raw.n_read == 3 and raw.member == "export/crimes.csv"
    shp = tmp_path / "wards_shp.zip"
    with zipfile.ZipFile(shp, "w") as zf:
        for ext in ("shp", "shx", "dbf", "prj"):
            zf.write(tmp_path / f"wards.{ext}", f"wards.{ext}")
    assert read_source(shp).frame["code"].tolist() == ["W1", "W2"]
    several = tmp_path / "bundle.zip"
    with zipfile.ZipFile(several, "w") as zf:
        zf.write(tmp_path / "wards.gpkg", "wards.gpkg")
        zf.write(tmp_path / "wards.geojson", "geo/wards.geojson")
        zf.writestr("crimes.csv", CRIMES)
        zf.writestr("README.md", "about")
    with pytest.raises(
        InputError, match=r"several data files: wards.gpkg, geo/wards.geojson, crimes.csv"
    ) as err:
        read_source(several)
    assert "format.member" not in str(err.value) and "layers.<name>.member" in str(err.value)
    assert read_source(several, member="wards.gpkg").crs.to_epsg() == 27700
    assert len(read_source(several, member="wards.geojson").geometry) == 2  # by file name
    assert read_source(several, member="crimes.csv").n_read == 3
    with pytest.raises(InputError, match=r"no member 'nope.csv'.*README.md"):
        read_source(several, member="nope.csv")
    with pytest.raises(InputError, match="only applies to a zip archive"):
        read_source(tmp_path / "wards.gpkg", member="x")
    _zip(tmp_path / "docs.zip", {"README.md": "x", "logo.png": b"\x89PNG"})
    with pytest.raises(InputError, match="holds no table or vector file"):
        read_source(tmp_path / "docs.zip")
    _zip(tmp_path / "nested.zip", {"inner.zip": b"PK"})
    with pytest.raises(InputError, match="no table or vector file"):
        read_source(tmp_path / "nested.zip")
    _zip(tmp_path / "nested2.zip", {"inner.csv.gz": b"x", "b.csv": "a\n1\n"})
    with pytest.raises(InputError, match="itself compressed"):
        read_source(tmp_path / "nested2.zip", member="inner.csv.gz")
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04" + b"\0" * 30)
    with pytest.raises(InputError, match="damaged"):
        read_source(tmp_path / "broken.zip")


def test_gtfs_zip_still_reads_its_stops(tmp_path):
    stops = "stop_id,stop_name,stop_lat,stop_lon\nS1,Alpha,51.5,-0.1\nS2,Beta,51.6,-0.2\n"
    feed = _zip(tmp_path / "gtfs.zip", {"stops.txt": stops, "routes.txt": "route_id\nR1\n"})
    raw = read_source(feed)
    assert raw.frame["stop_id"].tolist() == ["S1", "S2"]
    assert raw.default_columns == readers.GTFS_STOPS_COLUMNS


# --- WKT boundaries ----------------------------------------------------------------------------


def test_read_polygons_from_a_wkt_table(tmp_path):
    wards = _wards()
    table = pd.DataFrame({"code": wards["code"], "geometry_wkt": wards.geometry.to_wkt()})
    table.to_csv(tmp_path / "wards.csv", index=False)
    gdf = read_polygons(tmp_path / "wards.csv", wkt="geometry_wkt", crs="EPSG:27700")
    assert gdf.crs.to_epsg() == 27700 and list(gdf.columns) == ["code", "geometry"]
    assert gdf.geometry.equals(wards.geometry)
    with pytest.raises(InputError, match="column 'geometry_wkt' looks like WKT") as err:
        read_polygons(tmp_path / "wards.csv")
    assert "wkt = 'geometry_wkt'" in str(err.value)
    with pytest.raises(InputError, match="file has no CRS") as err:
        read_polygons(tmp_path / "wards.csv", wkt="geometry_wkt")
    assert "set crs" in str(err.value)
    with pytest.raises(InputError, match="no column 'wkt'"):
        read_polygons(tmp_path / "wards.csv", wkt="wkt", crs="EPSG:27700")
    with pytest.raises(InputError, match="not a CRS"):
        read_polygons(tmp_path / "wards.csv", wkt="geometry_wkt", crs="EPSG:999999999")
    table.to_excel(tmp_path / "wards.xlsx", index=False)
    assert len(read_polygons(tmp_path / "wards.xlsx", wkt="geometry_wkt", crs="EPSG:27700")) == 2
    table.to_parquet(tmp_path / "wards.parquet")
    with pytest.raises(InputError, match="looks like WKT"):
        read_polygons(tmp_path / "wards.parquet")
    assert len(read_polygons(tmp_path / "wards.parquet", wkt="geometry_wkt", crs=27700)) == 2
    ewkt = table.assign(geometry_wkt="SRID=27700;" + table["geometry_wkt"])
    ewkt.to_csv(tmp_path / "ewkt.csv", index=False)
    assert read_polygons(tmp_path / "ewkt.csv", wkt="geometry_wkt").crs.to_epsg() == 27700


def test_read_polygons_refuses_to_lose_a_unit(tmp_path):
    p = tmp_path / "wards.csv"
    p.write_text(
        'code,wkt\nW1,"POLYGON ((0 0, 1 0, 1 1, 0 0))"\nW2,"POLYGON ((0 0, 1"\nW3,\n',
        encoding="utf-8",
    )
    with pytest.raises(InputError, match=r"2 value.* of column 'wkt'") as err:
        read_polygons(p, wkt="wkt", crs="EPSG:27700")
    assert "record 2 (line 3)" in str(err.value) and "record 3 (line 4)" in str(err.value)
    p.write_text('code,wkt\nW1,"POLYGON ((0 0, 1 0, 1 1, 0 0))\nW2,"POLYGON EMPTY"\n')
    with pytest.raises(InputError, match=r"record 1 \(line 2\) cannot be read.*unbalanced quote"):
        read_polygons(p, wkt="wkt", crs="EPSG:27700")
    p.write_text('code,wkt\nW1,"POINT (1 1)"\n')
    with pytest.raises(InputError, match=r"only polygons.*record 1 \(a Point\)"):
        read_polygons(p, wkt="wkt", crs="EPSG:27700")


def test_file_geodatabase_directory_and_zipped(tmp_path):
    gdb = tmp_path / "wards.gdb"
    _wards().to_file(gdb, driver="OpenFileGDB", layer="wards")
    assert read_source(gdb).frame["code"].tolist() == ["W1", "W2"]
    with zipfile.ZipFile(tmp_path / "wards.zip", "w") as zf:
        for part in gdb.iterdir():
            zf.write(part, f"wards.gdb/{part.name}")
    raw = read_source(tmp_path / "wards.zip")
    assert raw.member == "wards.gdb" and len(raw.geometry) == 2


def test_many_lines_starting_with_spaces(tmp_path):
    lines = [" id, lon"] + [f" r{i}, {i}" if i % 7 else "   " for i in range(1, 2000)]
    p = tmp_path / "c.csv"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    raw = read_source(p)
    assert raw.n_read == sum(1 for i in range(1, 2000) if i % 7)
    assert list(raw.frame.columns) == ["id", "lon"]
