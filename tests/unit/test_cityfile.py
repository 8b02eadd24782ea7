from pathlib import Path

import pytest

from geo_usm.cityfile import load_city
from geo_usm.errors import CityFileError
from geo_usm.schema import load_kinds

ROOT = Path(__file__).resolve().parents[2]

MINIMAL = """
name = "Testville"
[units]
path = "units.gpkg"
id = "code"
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "city.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_minimal_city_file_defaults(tmp_path):
    city = load_city(write(tmp_path, MINIMAL))
    assert city.config.h3_resolutions == [9]
    assert city.config.crs is None
    assert city.resolve(city.config.units.path) == tmp_path / "units.gpkg"
    assert len(city.sha256) == 64


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ("colour = 'red'", "unknown key 'colour'"),
        ("[layers.c]\nkind='crimes'\npath='c.csv'\nsheeet=1", "unknown key 'layers.c.sheeet'"),
        (
            "[layers.c]\nkind='crimes'\npath='c.csv'\n[layers.c.format]\ndelimter=';'",
            "unknown key 'layers.c.format.delimter'",
        ),
        ("[layers.c]\nkind='crimez'\npath='c.csv'", "unknown kind 'crimez'"),
        (
            "[layers.c]\nkind='crimes'\npath='c.csv'\n[layers.c.columns]\nfoo='bar'",
            "unknown key 'foo' for kind 'crimes'",
        ),
        (
            "[layers.c]\nkind='crimes'\npath='c.csv'\n[layers.c.columns]\nx='e'\ny='n'",
            "x/y columns need 'crs'",
        ),
        (
            "[layers.c]\nkind='crimes'\npath='c.csv'\n[layers.c.columns]\nlon='a'",
            "map both 'lon' and 'lat'",
        ),
        ("crs = 'EPSG:999999'", "unknown CRS"),
        ("h3_resolutions = [9, 9]", "must not repeat"),
        ("[layers.hex]\nkind='crimes'\npath='c.csv'", "layer name 'hex'"),
        (
            "[layers.c]\nkind='crimes'\npath='c.csv'\n[layers.c.format]\ndecimal=';'",
            "decimal must be",
        ),
    ],
)
def test_bad_city_files_name_key_and_file(tmp_path, extra, needle):
    path = write(
        tmp_path,
        MINIMAL.replace('name = "Testville"', f'name = "Testville"\n{extra}', 1)
        if not extra.startswith("[")
        else MINIMAL + "\n" + extra,
    )
    with pytest.raises(CityFileError) as err:
        load_city(path)
    assert needle in str(err.value)
    assert str(path) in str(err.value)


def test_missing_units_and_not_toml(tmp_path):
    with pytest.raises(CityFileError, match="missing required key 'units'"):
        load_city(write(tmp_path, 'name = "x"'))
    with pytest.raises(CityFileError, match="not valid TOML"):
        load_city(write(tmp_path, "name = "))
    with pytest.raises(CityFileError, match="not found"):
        load_city(tmp_path / "nope.toml")


def test_builtin_kinds_are_declared_in_layers_dir():
    kinds = load_kinds()
    assert {
        "crimes",
        "audits",
        "perception",
        "lighting",
        "public_space",
        "transit",
        "streets",
        "raster",
    } <= set(kinds)
    assert kinds["crimes"].count_field == "crime_count"
    assert kinds["crimes"].fields["victim_age"].sensitive
    audits = kinds["audits"]
    assert {f: (s.min, s.max) for f, s in audits.fields.items() if f != "record_id"} == {
        p: (0, 3)
        for p in (
            "lighting",
            "openness",
            "visibility",
            "people",
            "security",
            "walk_path",
            "transport",
            "gender_usage",
            "feeling",
        )
    }


def test_custom_kind_dir(tmp_path):
    kinds = tmp_path / "kinds"
    kinds.mkdir()
    (kinds / "cctv.toml").write_text(
        'kind = "cctv"\ntitle = "CCTV"\ngeometry = "point"\ncount_field = "cctv_count"\n'
        '[fields.location]\ntype = "string"\n',
        encoding="utf-8",
    )
    text = MINIMAL.replace('name = "Testville"', 'name = "T"\nkinds_dir = "kinds"') + (
        "[layers.cams]\nkind='cctv'\npath='c.csv'\n[layers.cams.columns]\nlocation='loc'\n"
    )
    city = load_city(write(tmp_path, text))
    assert city.kinds[city.config.layers["cams"].kind].count_field == "cctv_count"
    (kinds / "bad.toml").write_text('kind = "bad"\ntitle="B"\ngeometry="point"\nwat=1\n')
    with pytest.raises(Exception, match="unknown key 'wat'"):
        load_city(write(tmp_path, text))


@pytest.mark.parametrize("city", ["camden", "trafford"])
def test_sample_city_files_load(city):
    c = load_city(ROOT / "sample_data" / city / "city.toml")
    assert c.config.layers
    for name, layer in c.config.layers.items():
        assert c.resolve(layer.path).exists(), name
