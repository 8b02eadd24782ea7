"""Composite indices: hand-computed toy cities, contributions, seeds, peer groups, rules."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from geo_usm import indices
from geo_usm.catalog import PUBLIC_GPKG
from geo_usm.errors import LayerDefinitionError
from geo_usm.indicators import _core_file
from geo_usm.indices import IndicesConfig, PriorityRules, compute

SPECS = _core_file().indicators
IDS = np.array(["a", "b", "c", "d"], dtype=object)
# two risk indicators in crime_and_violence, one in mobility
TOY = pd.DataFrame(
    {
        "crime_density": [0.0, 10.0, 20.0, 40.0],
        "asb_rate": [4.0, 2.0, 0.0, 2.0],
        "transit_distance": [100.0, 300.0, 200.0, 400.0],
    }
)
QUIET = IndicesConfig(draws=0)


def _run(values: pd.DataFrame = TOY, config: IndicesConfig = QUIET, **kw) -> indices.IndexResult:
    return compute("units", IDS[: len(values)], values, SPECS, config, **kw)


# ---------------------------------------------------------------- hand-computed indices

# normalised values of the toy city, by hand
HAND = {
    "minmax": ([0, 0.25, 0.5, 1], [1, 0.5, 0, 0.5], [0, 2 / 3, 1 / 3, 1]),
    # average ranks: asb 4, 2.5, 1, 2.5
    "rank": ([0, 1 / 3, 2 / 3, 1], [1, 0.5, 0, 0.5], [0, 2 / 3, 1 / 3, 1]),
}


def _z(x: list[float]) -> np.ndarray:
    v = np.array(x)
    z = (v - v.mean()) / v.std()
    return (np.clip(z, -3, 3) + 3) / 6


HAND["zscore"] = (
    _z([0, 10, 20, 40]),
    _z([4, 2, 0, 2]),
    _z([100, 300, 200, 400]),
)


@pytest.mark.parametrize("method", ["minmax", "zscore", "rank"])
@pytest.mark.parametrize("aggregation", ["arithmetic", "geometric"])
def test_hand_computed_index(method: str, aggregation: str) -> None:
    a, b, c = (np.asarray(v, dtype=float) for v in HAND[method])
    if aggregation == "arithmetic":
        crime = 100 * (a + b) / 2
        mobility = 100 * c
        risk = (crime + mobility) / 2
    else:
        ya, yb, yc = 1 + 99 * a, 1 + 99 * b, 1 + 99 * c
        crime = np.sqrt(ya * yb)
        mobility = yc
        risk = np.sqrt(crime * mobility)
    cfg = IndicesConfig(draws=0, normalisation=method, aggregation=aggregation)  # type: ignore[arg-type]
    out = _run(config=cfg).columns
    np.testing.assert_allclose(out["risk_crime_and_violence"], crime, rtol=1e-12)
    np.testing.assert_allclose(out["risk_mobility"], mobility, rtol=1e-12)
    np.testing.assert_allclose(out["risk_index"], risk, rtol=1e-12)


def test_minmax_arithmetic_literal_values() -> None:
    out = _run(config=IndicesConfig(draws=0, normalisation="minmax")).columns
    np.testing.assert_allclose(
        out["risk_index"], [25.0, 52.083333333333, 29.166666666667, 87.5], rtol=1e-10
    )


def test_normalise_keeps_nulls_and_constant_columns() -> None:
    x = np.array([[1.0, 5.0], [np.nan, 5.0], [3.0, 5.0]])
    for method in ("minmax", "zscore", "rank"):
        y = indices.normalise(x, method)
        assert np.isnan(y[1, 0])
        assert np.all(y[:, 1] == 0.5)
        assert y[0, 0] < y[2, 0]


# ---------------------------------------------------------------- contributions


@pytest.mark.parametrize("aggregation", ["arithmetic", "geometric"])
def test_contributions_add_up_with_missing_values(aggregation: str) -> None:
    values = TOY.copy()
    values.loc[1, "asb_rate"] = np.nan  # b: crime sub-index from crime_density alone
    cfg = IndicesConfig(draws=0, aggregation=aggregation)  # type: ignore[arg-type]
    res = _run(values, cfg)
    ex = res.explanations
    for name in ("risk_index", "risk_crime_and_violence", "risk_mobility"):
        part = ex[ex["index"] == name]
        sums = part.groupby("feature")["contribution"].sum()
        weights = part.groupby("feature")["weight"].sum()
        got = res.columns[name].to_numpy()
        np.testing.assert_allclose(sums.reindex(IDS).to_numpy(), got, atol=1e-9, rtol=0)
        np.testing.assert_allclose(weights.to_numpy(), 1.0, atol=1e-12)
    row = ex[(ex.feature == "b") & (ex["index"] == "risk_index") & (ex.indicator == "asb_rate")]
    assert row.status.item() == "missing" and row.weight.item() == 0
    assert res.columns.loc[1, "risk_missing"] == "asb_rate"
    assert "no value for asb_rate" in res.columns.loc[1, "risk_explanation"]


def test_explanation_names_drivers_against_the_median() -> None:
    res = _run(config=IndicesConfig(draws=0, normalisation="minmax"))
    text = res.columns.loc[3, "risk_explanation"]  # d: the highest risk
    assert text.startswith("Risk index 88 of 100 (city median 41), raised most by")
    assert "walking distance to the nearest stop 400 (city median 250)" in text
    assert res.columns.loc[0, "risk_explanation"].split(",")[1].startswith(" kept low by")


# ---------------------------------------------------------------- NULLs with reasons


def test_too_few_inputs_is_null_with_reason() -> None:
    values = TOY.copy()
    values.loc[2, ["asb_rate", "crime_density"]] = np.nan
    res = _run(values, IndicesConfig(draws=0, min_inputs=2))
    assert np.isnan(res.columns.loc[2, "risk_index"])
    gap = res.gaps[(res.gaps.indicator == "risk_index")]
    assert gap.feature.tolist() == ["c"]
    assert "values of 1 of 3 risk indicator(s) (needs 2)" in gap.null_reason.item()
    assert res.columns.loc[2, "risk_explanation"].startswith("No risk index: values of 1 of 3")


def test_index_needs_min_indicators_on_the_grid() -> None:
    res = _run(TOY[["crime_density"]])  # like Trafford: crime density only
    assert res.columns["risk_index"].isna().all()
    assert res.columns["risk_crime_and_violence"].notna().all()
    gap = res.gaps[res.gaps.indicator == "risk_index"]
    assert gap.feature.tolist() == ["*"]
    assert "only 1 risk indicator(s) have values" in gap.null_reason.item()
    assert res.columns["resilience_index"].isna().all()
    assert res.manifest["indices"]["risk_index"]["left_out"]["asb_rate"] == (
        "no value on this grid"
    )


def test_context_and_components_never_enter_by_default() -> None:
    chosen = indices.selection(IndicesConfig(), SPECS)
    assert "crime_count" not in chosen["risk"] and "population" not in chosen["resilience"]
    assert "audit_score" in chosen["resilience"]
    assert not any(m.startswith("audit_") and m != "audit_score" for m in chosen["resilience"])
    cfg = IndicesConfig(include=["audit_lighting", "audit_feeling", "crime_density"])
    assert indices.selection(cfg, SPECS) == {
        "risk": ["crime_density"],
        "resilience": ["audit_lighting", "audit_feeling"],
    }


# ---------------------------------------------------------------- configuration


def test_check_config_problems() -> None:
    assert indices.check_config(IndicesConfig(), SPECS) == []
    cfg = IndicesConfig(
        exclude=["nope"],
        weights={"crime_count": 2.0},
        include=["audit_score", "audit_lighting", "crime_count"],
        dimension_weights={"weather": 1.0},
    )
    problems = indices.check_config(cfg, SPECS)
    text = "\n".join(problems)
    assert "indices.exclude names unknown or switched-off indicator(s) ['nope']" in text
    assert "['crime_count'] have direction 'context'" in text
    assert "unknown dimension(s) ['weather']" in text
    assert "audit_lighting (part of audit_score) twice" in text


def test_config_is_strict() -> None:
    with pytest.raises(ValueError, match="normalisation"):
        IndicesConfig.model_validate({"normalisation": "log"})
    with pytest.raises(ValueError, match="extra"):
        IndicesConfig.model_validate({"wieghts": {}})
    with pytest.raises(ValueError, match="k_range"):
        IndicesConfig.model_validate({"peer_groups": {"k_range": [5, 2]}})


def test_index_columns_declared_once() -> None:
    cols = indices.index_columns(IndicesConfig(), SPECS)
    names = [c.name for c in cols]
    assert len(set(names)) == len(names)
    for need in (
        "risk_index",
        "resilience_index",
        "risk_index_p05",
        "risk_index_p95",
        "resilience_index_p05",
        "resilience_index_p95",
        "risk_top_fifth",
        "resilience_top_fifth",
        "risk_explanation",
        "resilience_explanation",
        "risk_crime_and_violence",
        "resilience_urban_environment",
        "peer_group",
    ):
        assert need in names
    assert "risk_population" not in names
    res = _run()
    assert list(res.columns.columns) == names
    for layer, decl in (
        (res.explanations, indices.EXPLANATIONS_COLUMNS),
        (res.peer_groups, indices.PEER_GROUPS_COLUMNS),
        (res.priority_areas, indices.PRIORITY_AREAS_COLUMNS),
    ):
        assert list(layer.columns) == [c.name for c in decl]
        assert [c.name for c in decl][:2] == ["grid", "feature"]


def test_weight_and_switched_off_indicator_change_the_index() -> None:
    base = _run().columns["risk_index"].to_numpy()
    heavier = _run(config=IndicesConfig(draws=0, weights={"asb_rate": 3.0}))
    off = _run(config=IndicesConfig(draws=0, exclude=["asb_rate"]))
    assert not np.allclose(base, heavier.columns["risk_index"])
    assert not np.allclose(base, off.columns["risk_index"])
    assert "asb_rate" not in off.manifest["indices"]["risk_index"]["indicators"]
    # with asb_rate off, the crime sub-index is crime density's rank alone
    np.testing.assert_allclose(off.columns["risk_crime_and_violence"], [0, 100 / 3, 200 / 3, 100])


# ---------------------------------------------------------------- Monte Carlo


def _city(n: int = 60, seed: int = 3) -> tuple[np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ids = np.array([f"u{i:03d}" for i in range(n)], dtype=object)
    values = pd.DataFrame(
        {
            "crime_density": rng.gamma(2, 50, n),
            "asb_rate": rng.gamma(2, 2, n),
            "violence_rate": rng.gamma(2, 1, n),
            "transit_distance": rng.uniform(80, 500, n),
            "lamps_per_km": rng.uniform(5, 40, n),
            "lit_street_share": rng.uniform(0.2, 1, n),
            "stop_density": rng.uniform(0, 60, n),
        }
    )
    values.loc[0, :] = [5000, 90, 40, 900, 1, 0.05, 0]  # high risk, low resilience everywhere
    values.loc[5, "asb_rate"] = np.nan
    return ids, values


def test_same_seed_identical_results_other_seed_differs() -> None:
    ids, values = _city()
    cfg = IndicesConfig(draws=200, seed=7)
    one = compute("hex", ids, values, SPECS, cfg)
    two = compute("hex", ids, values, SPECS, cfg)
    for name in ("columns", "explanations", "peer_groups", "priority_areas", "gaps"):
        a, b = getattr(one, name), getattr(two, name)
        assert a.to_csv() == b.to_csv()
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert json.dumps(one.manifest, sort_keys=True) == json.dumps(two.manifest, sort_keys=True)
    other = compute("hex", ids, values, SPECS, IndicesConfig(draws=200, seed=8))
    assert not np.allclose(other.columns["risk_index_p05"], one.columns["risk_index_p05"])
    np.testing.assert_array_equal(other.columns["risk_index"], one.columns["risk_index"])


def test_uncertainty_columns_and_sensitivity() -> None:
    ids, values = _city()
    res = compute("hex", ids, values, SPECS, IndicesConfig(draws=300))
    cols = res.columns
    for d in ("risk", "resilience"):
        lo, hi = cols[f"{d}_index_p05"], cols[f"{d}_index_p95"]
        assert (lo <= hi + 1e-12).all() and lo.min() >= 0 and hi.max() <= 100
        top = cols[f"{d}_top_fifth"]
        assert top.between(0, 1).all()
        # about a fifth of the features are in the top fifth of each draw
        assert abs(top.mean() - 0.2) < 0.03
    assert cols.loc[0, "risk_top_fifth"] == 1.0 and cols.loc[0, "risk_position"] == "top fifth"
    assert cols.loc[0, "resilience_top_fifth"] == 0.0
    assert set(cols["risk_position"]) <= {"top fifth", "not top fifth", "depends on choices"}
    assert (cols["risk_position"] == "depends on choices").any()
    sens = res.manifest["indices"]["risk_index"]["sensitivity"]
    for key in ("normalisation", "aggregation", "left_out_indicator"):
        assert 0 <= sens[key] <= 1
    assert sens["most_influential"] in (
        "normalisation",
        "aggregation",
        "left_out_indicator",
        "weights",
        "dimension_weights",
    )
    assert res.manifest["seed"] == indices.DEFAULT_SEED and res.manifest["draws"] == 300


def test_no_draws_leaves_ranges_null_with_reason() -> None:
    res = _run()
    assert res.columns["risk_index_p05"].isna().all()
    gap = res.gaps[res.gaps.indicator == "risk_index_p05"]
    assert gap.null_reason.item() == "uncertainty analysis switched off (indices.draws = 0)"


# ---------------------------------------------------------------- peer groups


def test_planted_peer_groups_are_recovered() -> None:
    from sklearn.metrics import adjusted_rand_score

    rng = np.random.default_rng(11)
    centres = np.array([[10, 1, 0.9], [200, 8, 0.3], [60, 20, 0.6]])
    truth = np.repeat([0, 1, 2], [40, 30, 20])
    noise = rng.normal(0, 1, (len(truth), 3)) * np.array([3, 0.5, 0.02])
    x = centres[truth] + noise
    values = pd.DataFrame(x, columns=["crime_density", "asb_rate", "lit_street_share"])
    ids = np.array([f"f{i}" for i in range(len(truth))], dtype=object)
    res = compute("units", ids, values, SPECS, IndicesConfig(draws=0))
    groups = res.columns["peer_group"].to_numpy(dtype=int)
    assert adjusted_rand_score(truth, groups) == 1.0
    assert res.manifest["peer_groups"]["k"] == 3
    assert set(res.manifest["peer_groups"]["silhouette"]) == {"2", "3", "4", "5", "6"}
    # numbered by size, largest first: the planted group of 40 is group 1
    assert (groups[truth == 0] == 1).all() and (groups[truth == 2] == 3).all()
    layer = res.peer_groups
    profiles = layer.dropna(subset=["peer_group"]).drop_duplicates("peer_group")
    assert len(profiles) == 3
    assert profiles.profile.iloc[0].startswith("Group 1 (40 units): ")
    assert "lower crimes per km2" in profiles.profile.iloc[0]
    loadings = layer[layer.component.notna()]
    assert set(loadings.indicator) == {"crime_density", "asb_rate", "lit_street_share"}
    assert not any(w in " ".join(layer.profile) for w in ("worse", "better", "worst", "best"))
    fixed = compute("units", ids, values, SPECS, IndicesConfig(draws=0, peer_groups={"k": 2}))
    assert fixed.manifest["peer_groups"]["k"] == 2


def test_peer_groups_null_with_reason_when_inputs_missing() -> None:
    ids, values = _city()
    res = compute("hex", ids, values, SPECS, IndicesConfig(draws=0))
    assert pd.isna(res.columns.loc[5, "peer_group"])
    gap = res.gaps[(res.gaps.indicator == "peer_group")]
    assert gap.feature.tolist() == ["u005"]
    assert "no value for asb_rate" in gap.null_reason.item()


# ---------------------------------------------------------------- priority areas


RULES = PriorityRules.model_validate(
    {
        "rules": [
            {
                "id": "dark_night",
                "title": "Dark streets, night crime",
                "approach": "situational",
                "points_to": "lighting",
                "reason": "lit {lit_street_share} (median {lit_street_share.median}), night "
                "{night_share} (>= {night_share.threshold})",
                "when": [
                    {"column": "lit_street_share", "op": "<=", "quantile": 0.5},
                    {"column": "night_share", "op": ">=", "value": 0.5},
                ],
            },
            {
                "id": "stops_hot",
                "title": "Stops in hotspots",
                "approach": "law_enforcement",
                "points_to": "patrols",
                "reason": "{gi_class}",
                "when": [
                    {"column": "stop_density", "op": ">", "value": 0},
                    {"column": "gi_class", "op": "in", "values": ["hot_99", "hot_95"]},
                ],
            },
        ]
    }
)


def test_priority_rules_on_a_fixture() -> None:
    ids = np.array([f"p{i}" for i in range(6)], dtype=object)
    values = pd.DataFrame(
        {
            "lit_street_share": [0.1, 0.2, 0.3, 0.9, 0.95, np.nan],
            "night_share": [0.7, np.nan, 0.2, 0.8, 0.9, 0.9],
            "stop_density": [0.0, 3.0, 5.0, 1.0, 0.0, 2.0],
        }
    )
    no_gi = compute("units", ids, values, SPECS, QUIET, rules=RULES)
    pa = no_gi.priority_areas
    # p1 has no night share, p5 no lit share: never selected
    assert pa.feature.tolist() == ["p0"]
    assert pa.reason.item() == "lit 0.10 (median 0.30), night 0.70 (>= 0.50)"
    assert "(median of the city; city median 0.30)" in pa.evidence.item()
    assert pa.approach.item() == "situational"
    report = no_gi.manifest["priorities"]
    assert report["stops_hot"]["applicable"] is False
    assert "gi_class is not available" in report["stops_hot"]["reason"]
    extra = pd.DataFrame({"gi_class": ["hot_99", "hot_95", None, "cold_95", "hot_99", "hot_90"]})
    with_gi = compute("units", ids, values, SPECS, QUIET, rules=RULES, extra=extra)
    hot = with_gi.priority_areas[with_gi.priority_areas.rule == "stops_hot"]
    assert hot.feature.tolist() == ["p1"]  # p0, p4: no stop; p2: no class; p5: hot_90
    assert hot.reason.item() == "hot_95"


def test_default_rules_load_and_bad_rules_fail(tmp_path: Path) -> None:
    rules = indices.load_rules()
    assert {r.approach for r in rules.rules} == {"situational", "social", "law_enforcement"}
    bad = tmp_path / "rules.toml"
    bad.write_text(
        '[[rules]]\nid = "x"\ntitle = "t"\napproach = "social"\npoints_to = "p"\n'
        'reason = "{other}"\nwhen = [{ column = "risk_index", op = ">=", quantile = 0.8 }]\n',
        encoding="utf-8",
    )
    with pytest.raises(LayerDefinitionError, match="no condition reads"):
        indices.load_rules(bad)
    with pytest.raises(ValueError, match="exactly one of"):
        indices.Condition.model_validate({"column": "a", "op": "<", "value": 1.0, "quantile": 0.5})


# ---------------------------------------------------------------- real data


def test_real_camden_units(camden_build: Path) -> None:
    units = gpd.read_file(camden_build / PUBLIC_GPKG, layer="units")
    values = units[[m for m in SPECS if m in units]].astype(float)
    ids = units["unit_id"].to_numpy()
    cfg = IndicesConfig()
    res = compute("units", ids, values, SPECS, cfg)
    cols = res.columns
    for d in ("risk", "resilience"):
        for c in (f"{d}_index", f"{d}_index_p05", f"{d}_index_p95"):
            assert cols[c].notna().all()
            assert cols[c].between(0, 100).all()
        ex = res.explanations[res.explanations["index"] == f"{d}_index"]
        sums = ex.groupby("feature", sort=False)["contribution"].sum().reindex(ids)
        np.testing.assert_allclose(sums.to_numpy(), cols[f"{d}_index"], atol=1e-9, rtol=0)
    assert cols["peer_group"].notna().all()
    assert res.manifest["peer_groups"]["k"] >= 2
    again = compute("units", ids, values, SPECS, cfg)
    pd.testing.assert_frame_equal(res.columns, again.columns, check_exact=True)
    pd.testing.assert_frame_equal(res.explanations, again.explanations, check_exact=True)
