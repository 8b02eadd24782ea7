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


def test_indicator_table_is_generated_from_the_declarations():
    from geo_usm.indicators import markdown_table

    block = README.split("<!-- indicators:start -->\n", 1)[1].split("\n<!-- indicators:end -->")[0]
    assert block == markdown_table()


def test_indicator_examples_load(tmp_path):
    blocks = [b for b in BLOCKS if "[indicators" in b or "unit_table" in b]
    assert len(blocks) == 3
    city_text = next(b for b in BLOCKS if "[units]" in b)
    (tmp_path / "kinds").mkdir()
    kind_text = next(b for b in BLOCKS if 'kind = "cctv"' in b)
    (tmp_path / "kinds" / "cctv.toml").write_text(kind_text, encoding="utf-8")
    text = city_text.replace('population = "POB_TOT"', "") + "\n" + "\n".join(blocks)
    text = text.replace("[indicators.category_groups]", "[indicators.category_groups]", 1)
    # the three snippets go under one [indicators] table: the first snippet opens it
    (tmp_path / "city.toml").write_text(text, encoding="utf-8")
    city = load_city(tmp_path / "city.toml")
    assert "burglary_rate" in city.indicators.specs
    assert "asb_rate" not in city.indicators.specs
    assert city.indicators.category_groups["violence"][0] == "Homicidio"
