"""Build ``sample_data/`` (Camden and Trafford) from the shared real open data.

Run once from the repository root; the outputs are committed::

    .venv/bin/python scripts/make_sample_data.py  # --shared ../shared/data --out sample_data
    .venv/bin/python scripts/make_sample_data.py --skip-audits  # real data only

What it does (see sample_data/README.md for sources and licences):

* ``camden/data/``: byte copies of the Camden crime CSV (June 2019), the boundaries, the council
  street lights, the OSM street segments and the full OSM extract of the borough (.osm.pbf).
* ``trafford/data/``:
  - ``trafford_crime_2018_11.gpkg`` (layer ``crimes``): the GMP November 2018 crimes whose
    ``lad21nm`` (attribute, from a spatial join done upstream) is ``Trafford``;
  - ``trafford_burglary_2016_02_to_2019_01.csv``: the 36-month GMP burglary series, rows kept
    when the point lies inside the union of Trafford's 138 LSOAs buffered by 200 m (so ~10 % of
    the kept rows are just outside Trafford and exercise the 'outside the study area' rejects);
    the source text of every kept row is written unchanged;
  - ``trafford_layers.gpkg``: byte copy (bus stops, Metrolink stops, greenspace, CCTV, LSOAs).
* the SYNTHETIC audit layers, via ``make_synthetic_audits.py`` (same seed every run).

GeoPackages are written with a fixed ``OGR_CURRENT_DATE`` so that reruns give identical bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
from pathlib import Path

import pandas as pd
import pyogrio
import shapely
from pyproj import Transformer

REPO = Path(__file__).resolve().parent.parent
CAMDEN_FILES = (
    "camden_crime_2019_06.csv",
    "camden_boundaries.gpkg",
    "camden_street_lights.gpkg",
    "camden_streets.gpkg",
    "osm_camden_2021-07.osm.pbf",
)
TRAFFORD_BUFFER_M = 200.0
#: Fixed gpkg_contents.last_change so that rewritten GeoPackages are byte-identical.
FIXED_GPKG_DATE = "2026-01-01T00:00:00Z"


def _resolve(p: str) -> Path:
    path = Path(p)
    return path if path.is_absolute() else (REPO / path).resolve()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _copy(src: Path, dst_dir: Path) -> Path:
    dst_dir.mkdir(parents=True, exist_ok=True)
    dst = dst_dir / src.name
    shutil.copyfile(src, dst)
    print(f"  copied {src.name} ({dst.stat().st_size / 1e6:.2f} MB, sha256 {_sha256(dst)[:12]})")
    return dst


def build_camden(shared: Path, out: Path) -> None:
    print("camden:")
    for name in CAMDEN_FILES:
        _copy(shared / "london_camden" / name, out / "camden" / "data")


def _trafford_area(layers_gpkg: Path) -> shapely.Geometry:
    """Union of Trafford's LSOAs (two of them have self-intersecting rings: repaired)."""
    lsoa = pyogrio.read_dataframe(layers_gpkg, layer="lsoa_2011")
    return shapely.union_all(shapely.make_valid(lsoa.geometry.to_numpy()))


def build_trafford(shared: Path, out: Path) -> None:
    print("trafford:")
    gm = shared / "greater_manchester"
    data = out / "trafford" / "data"
    layers = _copy(gm / "trafford_layers.gpkg", data)
    area = _trafford_area(layers)

    # crimes, November 2018: attribute filter on the district joined upstream.
    crimes = pyogrio.read_dataframe(
        gm / "gmp_street_crime_2018_11.gpkg", layer="crimes", where="lad21nm = 'Trafford'"
    )
    crimes = crimes.sort_values(["snap_point_id", "category"], kind="stable")
    dst = data / "trafford_crime_2018_11.gpkg"
    dst.unlink(missing_ok=True)
    pyogrio.write_dataframe(
        crimes, dst, layer="crimes", driver="GPKG", layer_options={"SPATIAL_INDEX": "NO"}
    )
    inside = shapely.contains_xy(
        area, shapely.get_x(crimes.geometry.values), shapely.get_y(crimes.geometry.values)
    )
    print(
        f"  wrote {dst.name}: {len(crimes):,} crimes (lad21nm = 'Trafford'), "
        f"{int((~inside).sum())} of them outside the LSOA union"
    )

    # burglary series: keep points inside the Trafford LSOA union + 200 m, source text unchanged.
    src = gm / "gmp_burglary_2016_02_to_2019_01.csv"
    table = pd.read_csv(src, dtype=str, keep_default_na=False)
    lon = pd.to_numeric(table["longitude"], errors="coerce").to_numpy(dtype=float)
    lat = pd.to_numeric(table["latitude"], errors="coerce").to_numpy(dtype=float)
    x, y = Transformer.from_crs(4326, 27700, always_xy=True).transform(lon, lat)
    buffered = shapely.buffer(area, TRAFFORD_BUFFER_M)
    shapely.prepare(buffered)
    shapely.prepare(area)
    keep = shapely.contains_xy(buffered, x, y)
    strictly = shapely.contains_xy(area, x, y)
    dst = data / "trafford_burglary_2016_02_to_2019_01.csv"
    table.loc[keep].to_csv(dst, index=False, lineterminator="\n")
    months = table.loc[keep, "month"]
    print(
        f"  wrote {dst.name}: {int(keep.sum()):,} of {len(table):,} rows "
        f"({int(strictly.sum()):,} inside the LSOA union, {int((keep & ~strictly).sum())} in the "
        f"{TRAFFORD_BUFFER_M:.0f} m ring), {months.nunique()} months "
        f"{months.min()}..{months.max()}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shared",
        default="../shared/data",
        help="shared data folder (relative paths: from the repository root)",
    )
    parser.add_argument(
        "--out",
        default="sample_data",
        help="output folder (relative paths: from the repository root)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the synthetic audits (default: make_synthetic_audits.SEED)",
    )
    parser.add_argument(
        "--skip-audits", action="store_true", help="do not (re)generate the synthetic audit layers"
    )
    args = parser.parse_args(argv)
    shared, out = _resolve(args.shared), _resolve(args.out)
    if not (shared / "london_camden").is_dir() or not (shared / "greater_manchester").is_dir():
        print(f"error: {shared} has no london_camden/ and greater_manchester/", file=sys.stderr)
        return 2
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": FIXED_GPKG_DATE})
    build_camden(shared, out)
    build_trafford(shared, out)
    if not args.skip_audits:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import make_synthetic_audits  # sibling script, not a package

        seed = make_synthetic_audits.SEED if args.seed is None else args.seed
        make_synthetic_audits.build_all(out, seed)
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"total size of {out}: {total / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
