"""The toy city every corpus case starts from: four 1 km squares around King's Cross.

Units are written once per session (:func:`make_units`); a case writes its own city file and
inputs next to a copy of them. The city file is built from small TOML snippets so that a case
states only what it changes.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import geopandas as gpd
import shapely

#: South-west corner of the toy city, British National Grid (EPSG:27700).
X0, Y0 = 529000, 182000
#: Centres of the four squares (BNG) and the same points in WGS84 (lon, lat).
CENTRES_BNG = [(529500, 182500), (530500, 182500), (529500, 183500), (530500, 183500)]
CENTRES_LONLAT = [
    (-0.134636, 51.526572),
    (-0.120229, 51.526342),
    (-0.134269, 51.535559),
    (-0.119859, 51.535329),
]
UNIT_IDS = ["U1", "U2", "U3", "U4"]

UNITS = """
[units]
path = "units.gpkg"
layer = "units"
id = "code"
name = "name"
population = "pop"
"""

#: The mapping of the toy crimes CSV (``crimes.csv``).
COLUMNS = """
record_id = "id"
lon = "lon"
lat = "lat"
datetime = "date"
category = "category"
"""

HEADER = "id,lon,lat,date,category"


def make_units(directory: Path, *, name: str = "units.gpkg") -> Path:
    """Write the four 1 km squares (layer ``units``: ``code``, ``name``, ``pop``)."""
    squares = [
        shapely.box(X0 + i * 1000, Y0 + j * 1000, X0 + (i + 1) * 1000, Y0 + (j + 1) * 1000)
        for j in range(2)
        for i in range(2)
    ]
    gdf = gpd.GeoDataFrame(
        {"code": UNIT_IDS, "name": ["One", "Two", "Three", "Four"], "pop": [1000, 1500, 800, 1200]},
        geometry=squares,
        crs=27700,
    )
    path = directory / name
    gdf.to_file(path, layer="units")
    return path


def rows(n: int = 10, *, start: int = 1, date: str = "2024-03-{day:02d}T10:00") -> list[str]:
    """Return ``n`` good crime rows (``id,lon,lat,date,category``), spread over the squares."""
    out = []
    for i in range(start, start + n):
        lon, lat = CENTRES_LONLAT[i % 4]
        lon, lat = round(lon + (i % 97) * 3e-5, 6), round(lat + (i // 4 % 89) * 3e-5, 6)
        day = 1 + i % 28
        category = ("Robbery", "Burglary")[i % 2]
        out.append(f"C{i},{lon},{lat},{date.format(day=day)},{category}")
    return out


def csv(lines: list[str], *, header: str = HEADER, newline: str = "\n") -> str:
    """Join a header and data lines into CSV text ending with a newline."""
    return newline.join([header, *lines]) + newline


def layer(
    name: str = "crimes",
    *,
    kind: str = "crimes",
    path: str = "crimes.csv",
    extra: str = "",
    fmt: str = "",
    columns: str = COLUMNS,
) -> str:
    """Return the TOML of one layer: ``extra`` keys, a ``format`` table and ``columns``."""
    text = f'\n[layers.{name}]\nkind = "{kind}"\npath = "{path}"\n{textwrap.dedent(extra)}'
    if fmt:
        text += f"\n[layers.{name}.format]\n{textwrap.dedent(fmt)}"
    if columns:
        text += f"\n[layers.{name}.columns]\n{textwrap.dedent(columns)}"
    return text


def city(*layers: str, top: str = "", units: str = UNITS, name: str = "Toy") -> str:
    """Return a whole city file: name, CRS, ``top`` keys, units and layers (default: crimes)."""
    head = f'name = "{name}"\ncrs = "EPSG:27700"\n{textwrap.dedent(top)}'
    return head + units + "".join(layers or (layer(),))
