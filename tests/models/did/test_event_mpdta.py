"""Callaway & Sant'Anna on mpdta against the published R did numbers (mpdta_published.json),
plus peer checks: moderndid analytic SEs with a covariate, pyfixest did2s for the two-stage."""

import json
from pathlib import Path

import numpy as np
import pytest

import coevidence as cv
from coevidence.datasets.panel import load_mpdta

FIX = Path(__file__).parents[2] / "fixtures" / "panel"
PUB = json.loads((FIX / "mpdta_published.json").read_text())
PEER = json.loads((FIX / "peer_did.json").read_text())
KW = {"unit": "countyreal", "time": "year", "first_treated": "first.treat"}
HALF4 = 5e-5 + 1e-12  # agreement to 4 printed decimals


@pytest.fixture(scope="module")
def mpdta():
    return load_mpdta()


@pytest.fixture(scope="module")
def cs(mpdta):
    return cv.fit_event_study(mpdta, "lemp", **KW)


def test_group_time_atts_and_analytic_ses(cs):
    gt = cs.gt
    ref = PUB["att_gt"]
    assert gt["group"].tolist() == ref["group"] and gt["time"].tolist() == ref["time"]
    np.testing.assert_allclose(gt["estimate"], ref["att"], atol=HALF4, rtol=0)
    np.testing.assert_allclose(gt["std_error"], ref["analytic_se"], atol=HALF4, rtol=0)
    assert cs.tidy()["term"].iloc[1] == "ATT(g=2004, t=2005)"
    assert cs.pretrend_test()["p_value"] == pytest.approx(PUB["pretest_p"], abs=5e-6)
    assert cs.pretrend_test()["df"] == 5


def test_simple_aggregate(cs):
    t = cs.aggregate("simple").tidy()
    assert round(t["estimate"].iloc[0], 2) == PUB["simple"]["att"]
    assert t["estimate"].iloc[0] == pytest.approx(PUB["simple"]["att_computed"], abs=5e-7)
    assert t["std_error"].iloc[0] == pytest.approx(PUB["simple"]["se_computed"], abs=5e-7)


def test_event_aggregate(cs):
    t = cs.aggregate("event").frame()
    ref = PUB["dynamic"]
    body = t[~t["overall"]]
    assert body["event_time"].tolist() == ref["e"]
    np.testing.assert_allclose(body["estimate"], ref["att"], atol=HALF4)
    np.testing.assert_allclose(body["std_error"], ref["se_computed"], atol=HALF4)
    ov = t[t["overall"]].iloc[0]
    assert ov["estimate"] == pytest.approx(ref["overall"], abs=HALF4)
    assert ov["estimate"] == pytest.approx(ref["overall_computed"], abs=5e-7)
    assert ov["std_error"] == pytest.approx(ref["overall_se_computed"], abs=5e-7)


def test_event_aggregate_balanced(cs):
    t = cs.aggregate("event", balance_e=1).frame()
    ref = PUB["dynamic_balance_e1"]
    body = t[~t["overall"]]
    assert body["event_time"].tolist() == ref["e"]
    np.testing.assert_allclose(body["estimate"], ref["att"], atol=HALF4)
    assert t[t["overall"]]["estimate"].iloc[0] == pytest.approx(ref["overall"], abs=HALF4)


@pytest.mark.parametrize("kind", ["group", "calendar"])
def test_group_and_calendar_aggregates(cs, kind):
    t = cs.aggregate(kind).frame()
    ref = PUB[kind]
    body = t[~t["overall"]]
    np.testing.assert_allclose(body["estimate"], ref["att"], atol=HALF4)
    if "se_computed" in ref:
        np.testing.assert_allclose(body["std_error"], ref["se_computed"], atol=HALF4)
    ov = t[t["overall"]].iloc[0]
    assert ov["estimate"] == pytest.approx(ref["overall_computed"], abs=5e-7)
    assert ov["std_error"] == pytest.approx(ref["overall_se_computed"], abs=5e-7)


@pytest.mark.parametrize(
    ("control", "key", "peer"),
    [
        ("never_treated", "covariate_lpop_dr_never", "nevertreated"),
        ("not_yet_treated", "covariate_lpop_dr_notyet", "notyettreated"),
    ],
)
def test_doubly_robust_with_covariate(mpdta, control, key, peer):
    res = cv.fit_event_study(mpdta, "lemp", **KW, covariates=["lpop"], control=control)
    gt = res.gt
    np.testing.assert_allclose(gt["estimate"], PUB[key]["att"], atol=HALF4)
    assert res.pretrend_test()["p_value"] == pytest.approx(PUB[key]["pretest_p"], abs=5e-6)
    ref = PEER["cs_mpdta_moderndid"][peer]
    np.testing.assert_allclose(gt["estimate"], ref["att"], rtol=1e-8)
    np.testing.assert_allclose(gt["std_error"], ref["se"], rtol=1e-6)
    reg = cv.fit_event_study(
        mpdta, "lemp", **KW, covariates=["lpop"], control=control, est_method="reg"
    )
    assert not np.allclose(reg.gt["estimate"], gt["estimate"])  # est_method is used


def test_sun_abraham_equals_cs_with_universal_base(mpdta):
    # balanced panel, never-treated controls: the interaction-weighted estimator's cohort effects
    # are the CS group-time effects with a universal base period (Sun & Abraham 2021, sec. 4)
    sa = cv.fit_event_study(mpdta, "lemp", **KW, estimator="sun_abraham").gt.sort_values(
        ["group", "time"]
    )
    csu = cv.fit_event_study(mpdta, "lemp", **KW, base_period="universal").gt.sort_values(
        ["group", "time"]
    )
    np.testing.assert_allclose(sa["estimate"], csu["estimate"], atol=1e-10)
    post = (sa["time"] >= sa["group"]).to_numpy()
    np.testing.assert_allclose(
        sa["std_error"].to_numpy()[post], csu["std_error"].to_numpy()[post], rtol=1e-6
    )


def test_two_stage_matches_pyfixest_did2s(mpdta):
    ref = PEER["did2s_mpdta_pyfixest"]
    d = mpdta[mpdta["first.treat"] != 2004]
    res = cv.fit_event_study(d, "lemp", **KW, estimator="two_stage")
    s = res.aggregate("simple").tidy().iloc[0]
    # pyfixest demeans iteratively (tolerance ~1e-8); ours is exact
    assert s["estimate"] == pytest.approx(ref["static"]["estimate"], rel=1e-5)
    assert s["std_error"] == pytest.approx(ref["static"]["std_error"], rel=1e-5)
    ev = res.aggregate("event").frame()
    ev = ev[~ev["overall"]]
    assert ev["event_time"].tolist() == ref["event"]["event_time"]
    np.testing.assert_allclose(ev["estimate"], ref["event"]["estimate"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(ev["std_error"], ref["event"]["std_error"], rtol=1e-5)


def test_multiplier_bootstrap(mpdta, cs):
    a = cv.fit_event_study(mpdta, "lemp", **KW, bootstrap_reps=499, seed=3)
    b = cv.fit_event_study(mpdta, "lemp", **KW, bootstrap_reps=499, seed=3)
    c = cv.fit_event_study(mpdta, "lemp", **KW, bootstrap_reps=499, seed=4)
    ta, tb, tc = a.tidy(), b.tidy(), c.tidy()
    np.testing.assert_array_equal(ta["std_error"], tb["std_error"])
    assert not np.array_equal(ta["std_error"], tc["std_error"])
    np.testing.assert_array_equal(ta["estimate"], cs.tidy()["estimate"])
    ratio = ta["std_error"] / cs.tidy()["std_error"]
    assert ratio.between(0.8, 1.25).all()
    fr = a.aggregate("event").frame()
    assert ((fr["uniform_high"] - fr["uniform_low"]) > (fr["conf_high"] - fr["conf_low"])).all()
    assert "multiplier bootstrap (499 draws" in a.summary()
