"""A city the samples do not contain, described as a new user would from the README.

Salford (Greater Manchester) from the shared real data: its 2011 LSOAs given as a CSV with a WKT
column, and the police.uk burglaries of 2016-2019 rewritten the way other portals publish them:
gzipped, projected x/y in UTM zone 30N, the date split over YEAR, MONTH, DAY, HOUR, MINUTE, no
category column (the file is one category), and one "location not known" point holding many
records. DAY, HOUR and MINUTE are SYNTHETIC (seeded): police.uk publishes months only.

The counts per LSOA are checked against an independent geopandas spatial join.
"""

import gzip
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
from pyproj import Transformer

from geo_usm.ingest import PLACEHOLDER
from geo_usm.pipeline import build

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "greater_manchester"

CITY = """
name = "Salford (test city)"
crs = "EPSG:27700"
h3_resolutions = [9, 8]

[units]
path = "lsoa.csv"
wkt = "geometry_wkt"
crs = "EPSG:27700"
id = "lsoa11cd"
name = "lsoa11nm"

[layers.burglary]
kind = "crimes"
path = "burglary.csv.gz"
crs = "EPSG:32630"
{extra}
[layers.burglary.columns]
x = "X"
y = "Y"
category = {{ value = "Burglary" }}
datetime = {{ year = "YEAR", month = "MONTH", day = "DAY", hour = "HOUR", minute = "MINUTE" }}
"""


@pytest.fixture(scope="module")
def salford(tmp_path_factory):
    if not DATA.is_dir():
        pytest.skip("shared data not present")
    tmp = tmp_path_factory.mktemp("salford")
    lsoa = pyogrio.read_dataframe(DATA / "gm_boundaries.gpkg", layer="lsoa_2011")
    lsoa = lsoa[lsoa["lsoa11nm"].str.startswith("Salford")].reset_index(drop=True)
    table = pd.DataFrame(lsoa.drop(columns="geometry"))
    table["geometry_wkt"] = lsoa.geometry.to_wkt()
    table.to_csv(tmp / "lsoa.csv", index=False)

    crimes = pd.read_csv(DATA / "gmp_burglary_2016_02_to_2019_01.csv")
    west, south, east, north = lsoa.to_crs(4326).total_bounds
    near = crimes["longitude"].between(west - 0.01, east + 0.01) & crimes["latitude"].between(
        south - 0.01, north + 0.01
    )
    crimes = crimes[near].reset_index(drop=True)
    to_utm = Transformer.from_crs(4326, 32630, always_xy=True)
    x, y = to_utm.transform(crimes["longitude"].to_numpy(), crimes["latitude"].to_numpy())
    rng = np.random.default_rng(20261124)  # SYNTHETIC day and time of day
    n = len(crimes)
    year, month = crimes["month"].str.split("-", expand=True).astype(int).T.to_numpy()
    out = pd.DataFrame(
        {
            "X": np.round(x, 1),
            "Y": np.round(y, 1),
            "YEAR": year,
            "MONTH": month,
            "DAY": rng.integers(1, 29, n),
            "HOUR": rng.integers(0, 24, n),
            "MINUTE": rng.integers(0, 60, n),
        }
    )
    # "location not known": 12% extra records on one point inside the borough
    centre = lsoa.geometry.iloc[0].representative_point()
    px, py = Transformer.from_crs(27700, 32630, always_xy=True).transform(centre.x, centre.y)
    stuck = out.sample(n=int(0.12 * n), random_state=1).assign(X=round(px, 1), Y=round(py, 1))
    out = pd.concat([out, stuck], ignore_index=True)
    with gzip.open(tmp / "burglary.csv.gz", "wt", encoding="utf-8", newline="") as fh:
        out.to_csv(fh, index=False)
    return tmp, lsoa, out, (round(px, 1), round(py, 1)), len(stuck)


def independent_counts(lsoa, records):
    pts = gpd.GeoDataFrame(
        records, geometry=gpd.points_from_xy(records["X"], records["Y"]), crs=32630
    ).to_crs(27700)
    joined = gpd.sjoin(pts, lsoa[["lsoa11cd", "geometry"]], predicate="within")
    return joined.groupby("lsoa11cd").size()


def test_unseen_city_builds_from_the_readme_with_independent_counts(salford):
    tmp, lsoa, records, point, n_stuck = salford
    (tmp / "city.toml").write_text(CITY.format(extra=""), encoding="utf-8")
    result = build(tmp / "city.toml", tmp / "out")
    (report,) = result.layers
    assert report.read == len(records)
    (note,) = [n for n in report.notes if n.startswith("possible placeholder location")]
    assert f"{n_stuck:,} of {len(records):,} records" in note

    want = independent_counts(lsoa, records)
    units = pyogrio.read_dataframe(tmp / "out" / "public" / "diagnosis.gpkg", layer="units")
    got = units.set_index("unit_id")["crime_count"]
    assert int(got.sum()) == report.accepted == int(want.sum())
    assert (got.reindex(want.index).fillna(0).astype(int) == want).all()
    months = result.manifest["layers"]["burglary"]["periods"]
    assert (months[0], months[-1]) == ("2016-02", "2019-01")

    # the placeholder listed as the README says: its records are rejected with that reason
    extra = f"placeholders = {{ points = [[{point[0]}, {point[1]}]] }}"
    (tmp / "city.toml").write_text(CITY.format(extra=extra), encoding="utf-8")
    result = build(tmp / "city.toml", tmp / "out")
    (report,) = result.layers
    at = records["X"].eq(point[0]) & records["Y"].eq(point[1])
    stuck_inside = int(independent_counts(lsoa, records[at]).sum())
    assert report.rejects_by_reason[PLACEHOLDER] == stuck_inside
    assert not [n for n in report.notes if n.startswith("possible placeholder")]
    kept = records[~at]
    assert report.accepted == int(independent_counts(lsoa, kept).sum())
