"""Every record is accepted or rejected with a reason; reasons are the documented ones."""

import json

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely

from geo_usm.errors import InputError, ProblemsError
from geo_usm.pipeline import build, validate

# Four 1 km squares in British National Grid around King's Cross (real coordinates).
X0, Y0 = 529000, 182000


def make_units(tmp_path):
    squares = [
        shapely.box(X0 + i * 1000, Y0 + j * 1000, X0 + (i + 1) * 1000, Y0 + (j + 1) * 1000)
        for j in range(2)
        for i in range(2)
    ]
    gdf = gpd.GeoDataFrame(
        {
            "codigo": ["U1", "U2", "U3", "U4"],
            "nombre": ["Uno", "Dos", "Tres", "Cuatro"],
            "pob": [1000, 1500, 800, 1200],
        },
        geometry=squares,
        crs=27700,
    )
    gdf.to_file(tmp_path / "unidades.gpkg", layer="barrios")


CITY = """
name = "Prueba"
crs = "EPSG:27700"
[units]
path = "unidades.gpkg"
layer = "barrios"
id = "codigo"
name = "nombre"
population = "pob"
[layers.delitos]
kind = "crimes"
path = "delitos.csv"
crs = "EPSG:27700"
categories = ["Robo", "Hurto"]
[layers.delitos.format]
delimiter = ";"
decimal = ","
[layers.delitos.columns]
record_id = "folio"
x = "este"
y = "norte"
datetime = "fecha_hora"
category = "tipo"
victim_sex = "sexo_victima"
victim_age = "edad_victima"
"""


def lonlat_row(x, y):
    return f"{x};{y}".replace(".", ",")


ROWS = [
    # folio;este;norte;fecha_hora;tipo;sexo;edad  -> expected reason (None = accepted)
    ("A1;529500,5;182500,25;2024-03-01T22:15:00;Robo;Mujer;34", None),
    ("A2;530500;182500;2024-03-02T01:00:00+01:00;Hurto;H;19", None),
    ("A3;529500;183500;2024-03-03;Hurto;;", None),
    ("A4;;182500;2024-03-01T10:00:00;Robo;M;20", "missing coordinates"),
    ("A5;abc;182500;2024-03-01T10:00:00;Robo;M;20", "unparseable coordinates"),
    ("A6;0;0;2024-03-01T10:00:00;Robo;M;20", "coordinates (0, 0)"),
    ("A7;540000;182500;2024-03-01T10:00:00;Robo;M;20", "outside the study area"),
    ("A8;529500;182500;ayer;Robo;M;20", "unparseable date"),
    ("A9;529500;182500;;Robo;M;20", "missing date"),
    ("A10;529500;182500;2024-03-01T10:00:00;Fraude;M;20", "category not in the configured list"),
    ("A1;529600;182600;2024-03-01T10:00:00;Robo;M;20", "duplicate record_id"),
    # an invalid optional attribute is cleaned to NULL; the crime is kept
    ("A12;529500;182500;2024-03-01T10:00:00;Robo;M;130", None),
    ("A13;529500;182500;2024-03-01T10:00:00;Robo;M;veinte", None),
    ("A14;529500;182500;2024-03-01T10:00:00;;M;20", "missing required value"),
    ("A15;529500;182500;2024-03-01T10:00:00;Robo;M;20,5", None),
    ("A19;529500;182500;2024-03-01T10:00:00;Robo;M;-1", None),
    (";529700;182700;2024-03-01T10:00:00;Robo;Otro;40", None),
    ("A17;529500;182500;2024-03-01T10:00:00;Robo;M", None),  # short row: age missing
    ("A18;529500;182500;2024-03-01T10:00:00;Robo;M;20;extra;x", "wrong number of fields"),
]


@pytest.fixture
def city(tmp_path):
    make_units(tmp_path)
    header = "folio;este;norte;fecha_hora;tipo;sexo_victima;edad_victima"
    (tmp_path / "delitos.csv").write_text(
        "\n".join([header] + [r for r, _ in ROWS]) + "\n", encoding="utf-8"
    )
    (tmp_path / "city.toml").write_text(CITY, encoding="utf-8")
    return tmp_path / "city.toml"


def test_every_record_accepted_or_rejected_with_reason(city, tmp_path):
    result = build(city, tmp_path / "out")
    (report,) = result.layers
    expected_rejects = [r for _, r in ROWS if r]
    assert report.read == len(ROWS)
    assert report.rejected == len(expected_rejects)
    assert report.read == report.accepted + report.rejected
    private = tmp_path / "out" / "private" / "records.gpkg"
    gpkg = tmp_path / "out" / "public" / "diagnosis.gpkg"
    rejects = pyogrio.read_dataframe(private, layer="rejects").sort_values("source_row")
    got = dict(zip(rejects.source_row, rejects.reason, strict=True))
    for number, (_, reason) in enumerate(ROWS, start=1):
        if reason:
            assert reason in got[number], (number, got.get(number))
        else:
            assert number not in got
    original = json.loads(rejects.set_index("source_row").loc[8, "original"])
    assert original["fecha_hora"] == "ayer"
    assert set(rejects["source_file"]) == {"delitos.csv"}
    crimes = pyogrio.read_dataframe(private, layer="delitos")
    assert report.cleaned == {
        "victim_age": {
            "value out of range [0.0, 120.0] ('edad_victima')": 2,
            "unparseable number ('edad_victima')": 1,
            "not a whole number ('edad_victima')": 1,
        }
    }
    kept = crimes.set_index("record_id").loc[["A12", "A13", "A15", "A19"]]
    assert kept["victim_age"].isna().all()
    assert crimes["victim_sex"].tolist()[:2] == ["female", "male"]
    assert crimes["victim_sex"].isna().iloc[2]
    assert crimes.loc[crimes["record_id"].isna(), "victim_sex"].tolist() == ["other"]
    assert crimes["datetime"].dt.hour.tolist()[:2] == [22, 1]  # local wall-clock time kept
    assert crimes["unit_id"].tolist()[:3] == ["U1", "U2", "U3"]
    units = pyogrio.read_dataframe(gpkg, layer="units")
    hexes = pyogrio.read_dataframe(gpkg, layer="hex")
    assert units["crime_count"].sum() == hexes["crime_count"].sum() == report.accepted


def test_validate_reports_every_fatal_problem_at_once(city, tmp_path):
    text = city.read_text(encoding="utf-8")
    text = text.replace('tipo"', 'tipo_delito"').replace('"delitos.csv"', '"delitos.csv"', 1)
    text += '\n[layers.luces]\nkind = "lighting"\npath = "luces.csv"\n'
    city.write_text(text, encoding="utf-8")
    with pytest.raises(ProblemsError) as err:
        validate(city)
    msg = str(err.value)
    assert "column 'tipo_delito' (mapped to 'category') is not in the file" in msg
    assert "luces.csv: input file not found" in msg
    assert not (tmp_path / "out").exists()


def test_fatal_errors_name_file_and_column(city, tmp_path):
    city.write_text(city.read_text(encoding="utf-8").replace('id = "codigo"', 'id = "code"'))
    with pytest.raises(InputError, match=r"unidades.gpkg: units: column 'code'"):
        build(city, tmp_path / "out")


def test_units_without_crs_is_fatal(tmp_path):
    gdf = gpd.GeoDataFrame({"id": ["a"]}, geometry=[shapely.box(0, 0, 1, 1)])
    with pytest.warns(UserWarning, match="crs"):
        gdf.to_file(tmp_path / "u.shp")
    (tmp_path / "city.toml").write_text('name="x"\n[units]\npath="u.shp"\nid="id"\n')
    with pytest.raises(ProblemsError, match="no CRS"):
        validate(tmp_path / "city.toml")


def test_polygons_invalid_and_outside(tmp_path):
    make_units(tmp_path)
    bowtie = shapely.Polygon(
        [(X0 + 10, Y0 + 10), (X0 + 200, Y0 + 200), (X0 + 200, Y0 + 10), (X0 + 10, Y0 + 200)]
    )
    park = shapely.box(X0 + 100, Y0 + 100, X0 + 300, Y0 + 300)
    far = shapely.box(X0 + 9000, Y0, X0 + 9100, Y0 + 100)
    gpd.GeoDataFrame(
        {"nombre": ["mala", "parque", "lejos"]}, geometry=[bowtie, park, far], crs=27700
    ).to_file(tmp_path / "parques.geojson")
    (tmp_path / "city.toml").write_text(
        CITY.split("[layers.delitos]")[0]
        + (
            '[layers.parques]\nkind="public_space"\npath="parques.geojson"\n'
            '[layers.parques.columns]\nname="nombre"\n'
        )
    )
    result = build(tmp_path / "city.toml", tmp_path / "out")
    (report,) = result.layers
    assert (report.read, report.accepted, report.rejected) == (3, 1, 2)
    assert any(
        k.startswith("invalid geometry: Self-intersection") for k in report.rejects_by_reason
    )
    assert report.rejects_by_reason["outside the study area"] == 1
    assert np.isclose(result.manifest["parameters"]["study_area_m2"], 4e6)
