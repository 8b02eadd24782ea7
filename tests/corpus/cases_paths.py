"""Paths, devices and boundaries: FIFOs, /dev/zero, links, directories, --out, units, study area.

Cases that could block or exhaust the test process (a FIFO, /dev/zero) run as a child process
with a timeout and a 4 GiB address-space limit.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import geopandas as gpd
import shapely

from tests.corpus.corpus import Case, Outcome
from tests.corpus.toy import UNITS, X0, Y0, city, csv, layer, rows

R = rows(10)
GOOD = {"crimes.csv": csv(R)}
OK10 = {"crimes": {"read": 10, "accepted": 10, "rejected": 0, "filtered": 0}}
GIB = 1024**3
#: Units read from ``u2.gpkg`` (written by the case), without name and population.
U2 = 'name = "Toy"\ncrs = "EPSG:27700"\n[units]\npath = "u2.gpkg"\nlayer = "units"\nid = "code"\n'


def square(i: int, j: int = 0) -> shapely.Polygon:
    return shapely.box(X0 + i * 1000, Y0 + j * 1000, X0 + (i + 1) * 1000, Y0 + (j + 1) * 1000)


def boundaries(name: str = "u2.gpkg", ids=("A", "B"), geoms=None, crs=27700, **columns):
    """Return a setup writing a boundary file (layer ``units``, id column ``code``)."""

    def setup(directory: Path) -> None:
        shapes = list(geoms) if geoms is not None else [square(i) for i in range(len(ids))]
        gdf = gpd.GeoDataFrame({"code": list(ids), **columns}, geometry=shapes, crs=crs)
        with warnings.catch_warnings():  # pyogrio warns when writing without a CRS
            warnings.simplefilter("ignore")
            if name.endswith(".gpkg"):
                gdf.to_file(directory / name, layer="units")
            else:
                gdf.to_file(directory / name)

    return setup


def link(target: str, name: str = "crimes.csv"):
    return lambda d: os.symlink(target, d / name)


def fifo(name: str = "crimes.csv"):
    def setup(directory: Path) -> None:
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(directory / name)

    return setup


def _same(path: Path, content: str) -> None:
    assert path.is_file() and path.read_text() == content, f"{path} was changed"


def untouched(path: str, content: str):
    """A check: the file at ``path`` still holds ``content`` and nothing was added beside it."""

    def check(directory: Path, outcome: Outcome) -> None:
        _same(directory / path, content)
        assert sorted(os.listdir((directory / path).parent)) == [Path(path).name]
        assert not (directory / "out").exists()

    return check


STUDY = city(top='[study_area]\npath = "sa.gpkg"\nlayer = "units"\n')
STUDY_EMPTY_OK = city(
    layer(extra="may_be_empty = true"), top='[study_area]\npath = "sa.gpkg"\nlayer = "units"\n'
)

CASES = [
    # --- devices and special files (child process: they could block or never end) --------
    Case(
        "path-input-dev-zero",
        files={},
        city=city(layer(path="/dev/zero")),
        exit=2,
        says=("/dev/zero: is a character device", "not a regular file"),
        names="/dev/zero",
        subprocess=True,
        timeout=30,
        memory_limit=4 * GIB,
    ),
    Case(
        "path-input-link-to-dev-zero",
        setup=link("/dev/zero"),
        city=city(),
        exit=2,
        says=("crimes.csv: is a character device",),
        subprocess=True,
        timeout=30,
        memory_limit=4 * GIB,
    ),
    Case(
        "path-input-fifo",
        setup=fifo(),
        city=city(),
        exit=2,
        says=("crimes.csv: is a named pipe (FIFO)", "save the data to a file"),
        subprocess=True,
        timeout=30,
    ),
    Case(
        "path-units-fifo",
        files=GOOD,
        setup=fifo("u2.gpkg"),
        city=U2 + layer(),
        exit=2,
        says=("u2.gpkg: is a named pipe (FIFO)",),
        subprocess=True,
        timeout=30,
    ),
    Case(
        "path-units-dev-zero",
        files=GOOD,
        city=city(units=UNITS.replace("units.gpkg", "/dev/zero")),
        exit=2,
        says=("/dev/zero: is a character device",),
        names="/dev/zero",
        subprocess=True,
        timeout=30,
        memory_limit=4 * GIB,
    ),
    Case(
        "path-city-file-fifo",
        files=GOOD,
        setup=fifo("city.toml"),
        exit=2,
        says=("city.toml", "named pipe"),
        subprocess=True,
        timeout=6,
    ),
    Case(
        "path-city-file-dev-zero",
        files=GOOD,
        setup=link("/dev/zero", "city.toml"),
        exit=2,
        says=("city.toml", "character device"),
        subprocess=True,
        timeout=30,
        memory_limit=4 * GIB,
    ),
    Case(
        "path-kind-file-fifo",
        files=GOOD,
        setup=fifo("kinds/cctv.toml"),
        city=city(top='kinds_dir = "kinds"'),
        exit=2,
        says=("cctv.toml", "named pipe"),
        subprocess=True,
        timeout=6,
    ),
    Case(
        "path-kind-file-dev-zero",
        files=GOOD,
        setup=lambda d: (d / "kinds").mkdir() or os.symlink("/dev/zero", d / "kinds/cctv.toml"),
        city=city(top='kinds_dir = "kinds"'),
        exit=2,
        says=("cctv.toml", "character device"),
        subprocess=True,
        timeout=30,
        memory_limit=4 * GIB,
    ),
    # --- directories and links (safe in-process: refused before any read) ------------------
    Case(
        "path-input-directory",
        setup=lambda d: (d / "crimes.csv").mkdir(),
        city=city(),
        exit=2,
        says=("crimes.csv: is a directory",),
    ),
    Case(
        "path-input-symlink-loop",
        setup=lambda d: (link("b.csv")(d), link("crimes.csv", "b.csv")(d)),
        city=city(),
        exit=2,
        says=("crimes.csv: is a symbolic link loop",),
    ),
    Case(
        "path-input-dangling-symlink",
        setup=link("gone.csv"),
        city=city(),
        exit=2,
        says=("crimes.csv: is a symbolic link to a missing file (gone.csv)",),
    ),
    Case(
        "path-input-is-the-city-file",
        files=GOOD,
        city=city(layer(path="city.toml")),
        exit=2,
        says=("city.toml",),
    ),
    Case(
        "path-kinds-dir-is-a-file",
        files=GOOD | {"kinds": "not a directory"},
        city=city(top='kinds_dir = "kinds"'),
        exit=2,
        says=("kinds",),
    ),
    # --- --out ------------------------------------------------------------------------------
    Case(
        "path-out-below-a-regular-file",
        files=GOOD | {"afile": "x"},
        city=city(),
        command="build",
        args=("--out", "{dir}/afile/out"),
        exit=2,
        says=("afile is a file, not a directory", "--out"),
        check=lambda d, o: _same(d / "afile", "x"),
    ),
    Case(
        "path-out-foreign-directory",
        files=GOOD | {"docs/thesis.txt": "precious"},
        city=city(),
        command="build",
        args=("--out", "{dir}/docs"),
        exit=2,
        says=("is not a geo-usm build", "choose another --out"),
        check=untouched("docs/thesis.txt", "precious"),
    ),
    Case(
        "path-out-existing-file",
        files=GOOD | {"notes/afile": "x"},
        city=city(),
        command="build",
        args=("--out", "{dir}/notes/afile"),
        exit=2,
        says=("is not a geo-usm build",),
        check=untouched("notes/afile", "x"),
    ),
    Case(
        "path-out-symlink-to-a-foreign-directory",
        files=GOOD | {"docs/thesis.txt": "precious"},
        setup=link("docs", "mylink"),
        city=city(),
        command="build",
        args=("--out", "{dir}/mylink"),
        exit=2,
        says=("is not a geo-usm build",),
        check=lambda d, o: _link_kept(d / "mylink", "docs"),
    ),
    Case(
        "path-out-dev-null",
        files=GOOD,
        city=city(),
        command="build",
        args=("--out", "/dev/null"),
        exit=2,
        says=("/dev/null",),
        names="/dev/null",
    ),
    # --- vector files ---------------------------------------------------------------------
    Case(
        "path-gpkg-several-layers-none-chosen",
        setup=lambda d: (boundaries("m.gpkg")(d), _second_layer(d / "m.gpkg")),
        city=city(layer(path="m.gpkg", columns='category = { value = "x" }\n')),
        exit=2,
        says=("file has several layers", "set 'layer'"),
    ),
    Case(
        "path-geojson-truncated",
        files={"c.geojson": '{"type": "FeatureCollection", "features": [{"type": "Feature", '},
        city=city(layer(path="c.geojson", columns='category = "cat"\n')),
        exit=2,
        says=("c.geojson",),
    ),
    # --- units and study area ---------------------------------------------------------------
    Case(
        "path-units-empty-layer",
        files=GOOD,
        setup=boundaries(ids=[], geoms=[]),
        city=U2 + layer(),
        exit=2,
        says=("u2.gpkg: the units layer has no features",),
    ),
    Case(
        "path-units-without-crs",
        files=GOOD,
        setup=boundaries("u2.shp", crs=None),
        city=U2.replace("u2.gpkg", "u2.shp").replace('layer = "units"\n', "") + layer(),
        exit=2,
        says=("u2.shp: file has no CRS",),
    ),
    Case(
        "path-units-duplicate-ids",
        files=GOOD,
        setup=boundaries(ids=["A", "A"]),
        city=U2 + layer(),
        exit=2,
        says=("units: duplicate 'code' values: A",),
    ),
    Case(
        "path-units-empty-id",
        files=GOOD,
        setup=boundaries(ids=["A", None]),
        city=U2 + layer(),
        exit=2,
        says=("units: empty 'code' in row(s) 2",),
    ),
    Case(
        "path-units-id-column-missing",
        files=GOOD,
        city=city(units=UNITS.replace('id = "code"', 'id = "CODE"')),
        exit=2,
        says=("column 'CODE' (units.id) is not in the layer; columns are: code, name, pop",),
    ),
    Case(
        "path-units-layer-missing",
        files=GOOD,
        city=city(units=UNITS.replace('layer = "units"', 'layer = "wards"')),
        exit=2,
        says=("no layer 'wards'; the layers are: units",),
    ),
    Case(
        "path-units-are-points",
        files=GOOD,
        setup=boundaries(geoms=[shapely.Point(X0 + 5, Y0 + 5), shapely.Point(X0 + 1500, Y0)]),
        city=U2 + layer(),
        exit=2,
        says=("must contain only polygons", "record 1 (a Point)"),
    ),
    Case(
        "path-units-population-not-numeric",
        files=GOOD,
        setup=boundaries(pop=["many", "few"]),
        city=U2 + 'population = "pop"\n' + layer(),
        exit=2,
        says=("population column 'pop' is not numeric in row(s) 1, 2",),
    ),
    Case(
        "path-study-area-no-features",
        files=GOOD,
        setup=boundaries("sa.gpkg", ids=[], geoms=[]),
        city=STUDY,
        exit=2,
        says=("sa.gpkg: the study area layer has no features",),
    ),
    Case(
        "path-study-area-outside-every-unit",
        files=GOOD,
        setup=boundaries("sa.gpkg", ids=["far"], geoms=[shapely.box(0, 0, 100, 100)]),
        city=STUDY_EMPTY_OK,
        command="build",
        exit=2,
        says=("study area",),
    ),
    Case(
        "path-study-area-one-square",
        files=GOOD,
        setup=boundaries("sa.gpkg", ids=["sq"], geoms=[square(0)]),
        city=STUDY,
        command="build",
        layers={"crimes": {"read": 10, "accepted": 2, "rejected": 8}},
        reasons={"crimes": {"outside the study area": 8}},
    ),
]


def _link_kept(path: Path, target: str) -> None:
    assert path.is_symlink() and os.readlink(path) == target, f"{path} was replaced"
    _same(path.parent / target / "thesis.txt", "precious")


def _second_layer(path: Path) -> None:
    gdf = gpd.read_file(path, layer="units")
    gdf.to_file(path, layer="other")
