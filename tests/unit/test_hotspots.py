"""Hotspots, trends and progress of the sample builds, checked against independent computations.

The grids are read back from the published GeoPackage; neighbours are rebuilt with h3 and
libpysal, statistics with esda and scipy, counts from the private records: nothing here calls
geo_usm's own statistics.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import h3
import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio
from scipy import stats

from geo_usm.errors import CityFileError
from geo_usm.pipeline import build

esda = pytest.importorskip("esda")
libpysal = pytest.importorskip("libpysal")

ROOT = Path(__file__).resolve().parents[2]
EMERGING = {
    f"{kind}_{side}"
    for kind in (
        "new",
        "consecutive",
        "intensifying",
        "persistent",
        "diminishing",
        "sporadic",
        "oscillating",
        "historical",
    )
    for side in ("hot", "cold")
} | {"no_pattern"}


def _read(build: Path, layer: str) -> pd.DataFrame:
    return pyogrio.read_dataframe(build / "public" / "diagnosis.gpkg", layer=layer)


def _manifest(build: Path) -> dict:
    return json.loads((build / "public" / "manifest.json").read_text())


def _hex_w(cells: list[str], k: int = 1):  # type: ignore[no-untyped-def]
    """Binary H3 k-ring weights among the given cells, built with h3-py."""
    present = set(cells)
    index = {c: i for i, c in enumerate(cells)}
    neighbours = {
        index[c]: [index[n] for n in h3.grid_disk(c, k) if n != c and n in present] for c in cells
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return libpysal.weights.W(neighbours, silence_warnings=True)


def _esda(cls, *args, **kwargs):  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls(*args, **kwargs)


@pytest.mark.parametrize("which", ["camden_build", "trafford_build"])
@pytest.mark.parametrize("grid", ["hex", "hex_r8"])
def test_hex_gi_star_and_local_moran_equal_esda(which, grid, request):
    build = request.getfixturevalue(which)
    hexes = _read(build, grid)
    hexes = hexes[hexes["crime_count"].notna()].reset_index(drop=True)
    w = _hex_w(hexes["h3"].tolist())
    y = hexes["crime_count"].to_numpy(dtype=float)
    gi = _esda(esda.G_Local, y, w, transform="B", star=True, permutations=0)
    np.testing.assert_allclose(hexes["gi_z"], gi.Zs, atol=1e-6)
    np.testing.assert_allclose(hexes["gi_p"], 2 * stats.norm.sf(np.abs(gi.Zs)), atol=1e-9)
    w.transform = "r"
    lisa = _esda(esda.Moran_Local, y, w, transformation="r", permutations=0)
    np.testing.assert_allclose(hexes["lisa_i"], lisa.Is, atol=1e-6)
    moran = _esda(esda.Moran, y, w, transformation="r", permutations=0)
    entry = _manifest(build)["hotspots"]["grids"][grid]["crime_count"]["global_moran"]
    assert entry["I"] == pytest.approx(moran.I, abs=1e-6)
    assert entry["z_norm"] == pytest.approx(moran.z_norm, abs=1e-5)


def test_unit_gi_star_equals_esda_with_queen_weights(trafford_build):
    units = _read(trafford_build, "units")
    w = _esda(libpysal.weights.Queen.from_dataframe, units, use_index=False)
    assert not w.islands  # Trafford's LSOAs share their vertices
    y = units["crime_count"].to_numpy(dtype=float)
    gi = _esda(esda.G_Local, y, w, transform="B", star=True, permutations=0)
    np.testing.assert_allclose(units["gi_z"], gi.Zs, atol=1e-6)
    w.transform = "r"
    lisa = _esda(esda.Moran_Local, y, w, transformation="r", permutations=0)
    np.testing.assert_allclose(units["lisa_i"], lisa.Is, atol=1e-6)


def test_unit_contiguity_tolerates_boundaries_without_shared_vertices(camden_build):
    """Camden's LSOAs touch without sharing vertices: libpysal's Queen finds only islands.

    A 1 m tolerance (libpysal's fuzzy contiguity with a 0.5 m buffer) finds the neighbours,
    and the build uses the same ones.
    """
    units = _read(camden_build, "units")
    strict = _esda(libpysal.weights.Queen.from_dataframe, units, use_index=False)
    assert len(strict.islands) == len(units)
    fuzzy = _esda(libpysal.weights.fuzzy_contiguity, units, buffering=True, buffer=0.5)
    assert not fuzzy.islands
    y = units["crime_count"].to_numpy(dtype=float)
    gi = _esda(esda.G_Local, y, fuzzy, transform="B", star=True, permutations=0)
    np.testing.assert_allclose(units["gi_z"], gi.Zs, atol=1e-6)
    grids = _manifest(camden_build)["hotspots"]["grids"]["units"]
    assert grids["islands"] == []


@pytest.mark.parametrize("which", ["camden_build", "trafford_build"])
def test_classes_follow_fdr_adjusted_p(which, request):
    build = request.getfixturevalue(which)
    table = _read(build, "hotspots")
    gi = table[(table["statistic"] == "gi_star") & (table["grid"] == "hex")]
    assert len(gi) > 30
    adjusted = stats.false_discovery_control(gi["p"].to_numpy())
    np.testing.assert_allclose(gi["p_fdr"], adjusted, rtol=1e-9)
    hot = gi["class"].str.startswith("hot")
    assert (gi.loc[hot, "value"] > 0).all() and (gi.loc[hot, "p_fdr"] < 0.10).all()
    assert set(gi["class"]) <= {
        "hot_99",
        "hot_95",
        "hot_90",
        "cold_99",
        "cold_95",
        "cold_90",
        "not_significant",
    }
    assert hot.any()  # both samples have significant crime clusters
    hexes = _read(build, "hex").set_index("h3")
    merged = gi.set_index("feature").join(hexes[["gi_class"]])
    assert (merged["class"] == merged["gi_class"]).all()
    lisa = table[(table["statistic"] == "local_moran") & (table["grid"] == "hex")]
    params = json.loads(lisa["parameters"].iloc[0])
    # enough permutations for the smallest pseudo p-value to survive the correction
    assert params["permutations"]["local_moran"] + 1 >= len(lisa) / 0.05


def test_empirical_bayes_equals_esda(camden_build):
    units = _read(camden_build, "units")
    pop = units["population"].to_numpy(dtype=float)
    events = units["crime_count"].to_numpy(dtype=float)
    eb = _esda(esda.smoothing.Empirical_Bayes, events, pop)
    np.testing.assert_allclose(units["crime_rate_eb"], eb.r.ravel() * 1000, rtol=1e-9)


def test_time_series_conserves_the_records(trafford_build):
    series = pd.read_parquet(trafford_build / "public" / "time_series.parquet")
    records = pyogrio.read_dataframe(
        trafford_build / "private" / "records.gpkg", layer="burglary_series", read_geometry=False
    )
    per_month = records.groupby("month").size().astype(float)
    var = series[series["variable"] == "count_burglary_series"]
    city = var[var["grid"] == "city"].set_index("period")["value"]
    assert len(city) == 36
    pd.testing.assert_series_equal(city.sort_index(), per_month, check_names=False)
    for grid in ("units", "hex", "hex_r8"):
        sums = var[var["grid"] == grid].groupby("period")["value"].sum()
        pd.testing.assert_series_equal(sums.sort_index(), per_month, check_names=False)
    trend = _manifest(trafford_build)["trends"]["series"]["count_burglary_series"]
    assert set(trend["month_of_year_index"]) == {f"{m:02d}" for m in range(1, 13)}


def test_progress_city_row_against_records_and_scipy(trafford_build):
    progress = _read(trafford_build, "progress")
    records = pyogrio.read_dataframe(
        trafford_build / "private" / "records.gpkg", layer="burglary_series", read_geometry=False
    )
    month = records["month"]
    baseline = int(((month >= "2016-02") & (month <= "2017-01")).sum())
    current = int(((month >= "2018-02") & (month <= "2019-01")).sum())
    city = progress[progress["grid"] == "city"].iloc[0]
    assert (city["baseline"], city["current"]) == (baseline, current)
    test = stats.binomtest(current, baseline + current, 0.5)
    assert city["p"] == pytest.approx(test.pvalue, rel=1e-9)
    assert city["rate_ratio"] == pytest.approx(current / baseline)
    assert city["on_track"] == 0  # burglary rose: halving by 2030 is out of reach
    for grid in ("units", "hex"):
        rows = progress[progress["grid"] == grid]
        assert rows["baseline"].sum() == baseline and rows["current"].sum() == current
    assert "rank" not in " ".join(progress.columns)  # never a league table


def test_emerging_hotspots_on_the_burglary_series(trafford_build):
    emerging = _read(trafford_build, "emerging_hotspots")
    hexes = _read(trafford_build, "hex")
    rows = emerging[(emerging["grid"] == "hex")]
    assert set(rows["feature"]) == set(hexes.loc[hexes["crime_count"].notna(), "h3"])
    assert set(emerging["pattern"]) <= EMERGING
    assert (emerging["periods"] == 36).all()
    assert (emerging["pattern"] != "no_pattern").any()
    burglary = emerging[emerging["variable"] == "count_burglary_series"]
    assert len(burglary) == len(emerging)  # one month of crime_count: not enough for trends
    notes = _manifest(trafford_build)["trends"]["emerging_hotspots"]
    assert notes["hex.crime_count"].startswith("not enough months")


def test_hotspot_evaluation_and_concentration(trafford_build):
    table = _read(trafford_build, "hotspot_evaluation")
    conc = table[(table["evaluation"] == "concentration") & (table["grid"] == "units")]
    units = _read(trafford_build, "units")
    counts = np.sort(units["crime_count"].to_numpy(dtype=float))
    n = len(counts)
    gini = float(((2 * np.arange(1, n + 1) - n - 1) * counts).sum() / (n * counts.sum()))
    value = conc.set_index(["variable", "metric"])["value"]
    assert value[("crime_count", "gini")] == pytest.approx(gini, rel=1e-9)
    rolling = table[(table["evaluation"] == "prior_counts") & (table["grid"] == "hex")]
    assert set(rolling["area_share"]) == {0.05, 0.10, 0.20}
    hit = rolling[rolling["metric"] == "hit_rate"]["value"]
    assert hit.between(0, 1).all() and hit.mean() > 0.05  # better than a random 5 %
    pai = rolling[rolling["metric"] == "pai"]["value"]
    assert (pai.dropna() >= 0).all()
    assert rolling["period"].nunique() == 36 - 12


@pytest.mark.parametrize("which", ["camden_build", "trafford_build"])
def test_risk_surface_is_a_cog_holding_the_crimes(which, request):
    build = request.getfixturevalue(which)
    manifest = _manifest(build)
    with rasterio.open(build / "public" / "risk_surface.tif") as src:
        assert src.crs.to_string() == manifest["crs"]["working"]
        assert src.overviews(1)
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        data = src.read(1)
        cell_km2 = abs(src.transform.a * src.transform.e) / 1e6
    band = manifest["density"]["bands"][0]
    integral = float(np.nansum(data) * cell_km2)
    assert integral == pytest.approx(band["integral"], rel=1e-3)
    assert 0.8 < band["integral_share"] <= 1.0
    assert np.isnan(data).any()  # nodata outside the study area


def _copy_city(tmp_path: Path, name: str, extra: str) -> Path:
    city = tmp_path / name
    shutil.copytree(ROOT / "sample_data" / name, city)
    with (city / "city.toml").open("a", encoding="utf-8") as fh:
        fh.write(extra)
    return city / "city.toml"


def test_unknown_hotspot_variable_is_a_city_file_error(tmp_path):
    city = _copy_city(tmp_path, "camden", '\n[hotspots]\nvariables = ["crime_cuont"]\n')
    with pytest.raises(CityFileError, match="crime_cuont"):
        build(city, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_progress_outside_the_data_is_refused(tmp_path):
    city = _copy_city(
        tmp_path,
        "camden",
        '\n[progress]\nbaseline = ["2018-01", "2018-12"]\ncurrent = ["2019-06", "2019-06"]\n'
        'targets = [{ variable = "crime_count", change = -0.5, year = 2030 }]\n',
    )
    with pytest.raises(CityFileError, match="go beyond the months of crime_count"):
        build(city, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_rebuild_gives_identical_hotspots(trafford_build, tmp_path):
    again = build(ROOT / "sample_data" / "trafford" / "city.toml", tmp_path / "again")
    assert again.output is not None
    for layer in ("hotspots", "emerging_hotspots", "progress"):
        pd.testing.assert_frame_equal(_read(trafford_build, layer), _read(again.output, layer))


def test_switching_crime_rate_off_drops_its_smoothed_rates(tmp_path):
    city = _copy_city(tmp_path, "trafford", '\n[indicators]\noff = ["crime_rate"]\n')
    result = build(city, tmp_path / "out")
    assert result.output is not None
    units = _read(result.output, "units")
    assert "crime_rate_eb" not in units and "crime_rate" not in units
    assert units["gi_class"].notna().all()


def test_naming_a_rate_that_is_not_one_is_a_city_file_error(tmp_path):
    city = _copy_city(tmp_path, "trafford", '\n[hotspots]\neb_rates = ["crime_density"]\n')
    with pytest.raises(CityFileError, match="eb_rates: 'crime_density' is not a rate"):
        build(city, tmp_path / "out")


def test_density_bands_per_category_group_add_up_to_all_crimes(tmp_path):
    city = _copy_city(tmp_path, "camden", '\n[density]\nby = ["category_group"]\n')
    result = build(city, tmp_path / "out")
    assert result.output is not None
    with rasterio.open(result.output / "public" / "risk_surface.tif") as src:
        names = src.descriptions
        data = src.read()
    assert names[0] == "all" and all(n.startswith("category_group_") for n in names[1:])
    assert len(names) == 5  # police.uk's four groups: violence, property, asb, other
    np.testing.assert_allclose(np.nansum(data[1:], axis=0), np.nan_to_num(data[0]), atol=1e-3)
    bands = result.manifest["density"]["bands"]
    assert sum(b["points"] for b in bands[1:]) == bands[0]["points"]
