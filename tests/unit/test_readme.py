"""The README's examples stay true: the annotated city file and custom kind load as shown."""

import re
import tomllib
from pathlib import Path

from geo_usm.cityfile import load_city
from geo_usm.schema import LayerKind, load_kinds

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```toml\n(.*?)```", README, flags=re.S)


def test_annotated_city_file_is_valid(tmp_path):
    city_text = next(b for b in BLOCKS if "[units]" in b)
    kind_text = next(b for b in BLOCKS if 'kind = "cctv"' in b)
    (tmp_path / "kinds").mkdir()
    (tmp_path / "kinds" / "cctv.toml").write_text(kind_text, encoding="utf-8")
    (tmp_path / "city.toml").write_text(city_text, encoding="utf-8")
    city = load_city(tmp_path / "city.toml")
    assert set(city.config.layers) == {
        "delitos",
        "robos_por_colonia",
        "incidentes",
        "postes",
        "paradas",
        "poblacion",
    }
    delitos = city.config.layers["delitos"]
    assert delitos.format.decimal == ","
    assert delitos.format.where is not None
    assert delitos.placeholders is not None and delitos.placeholders.points
    counts = city.config.layers["robos_por_colonia"]
    assert {"unit_code", "count", "month", "category"} <= set(counts.columns)
    assert "cctv" in city.kinds
    LayerKind.model_validate(tomllib.loads(kind_text))


def test_kinds_table_lists_every_builtin_kind_and_field():
    for name, kind in load_kinds().items():
        row = next(line for line in README.splitlines() if line.startswith(f"| `{name}` |"))
        for field in kind.fields:
            assert field in row, (name, field)
        if kind.count_field:
            assert kind.count_field in row
