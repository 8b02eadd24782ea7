import zipfile

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from geo_usm.errors import InputError
from geo_usm.ingest import _numbers, _text
from geo_usm.io import read_source


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
