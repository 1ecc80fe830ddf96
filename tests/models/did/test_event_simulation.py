"""Staggered starts with effects growing with exposure: the heterogeneity-robust estimators
recover the truth; the single-dummy TWFE coefficient is badly biased (both facts asserted)."""

import sys
from pathlib import Path

import numpy as np
import pytest

import coevidence as cv

sys.path.insert(0, str(Path(__file__).parent))
from _did_sim import simulate_staggered

SLOPE = 0.3


@pytest.fixture(scope="module")
def sim():
    return simulate_staggered(n_units=400, slope=SLOPE, seed=0)


@pytest.mark.parametrize("estimator", ["callaway_santanna", "sun_abraham", "two_stage"])
def test_robust_estimators_recover_truth(sim, estimator):
    df, truth = sim
    res = cv.fit_event_study(df, "research_use", estimator=estimator)
    s = res.aggregate("simple").tidy().iloc[0]
    assert abs(s["estimate"] - truth) < 3 * s["std_error"]
    assert s["conf_low"] < truth < s["conf_high"]
    ev = res.aggregate("event").frame()
    post = ev[(~ev["overall"]) & (ev["event_time"] >= 0)]
    true_e = SLOPE * (post["event_time"] + 1)
    z = (post["estimate"] - true_e) / post["std_error"]
    assert (np.abs(z) < 4).all()
    pre = ev[(~ev["overall"]) & (ev["event_time"] < -1)]
    assert (np.abs(pre["estimate"] / pre["std_error"]) < 4).all()
    assert res.pretrend_test()["p_value"] > 0.001


def test_single_dummy_twfe_is_biased(sim):
    df, truth = sim
    twfe = (
        cv.fit_event_study(df, "research_use", estimator="twfe").aggregate("simple").tidy().iloc[0]
    )
    cs = cv.fit_event_study(df, "research_use").aggregate("simple").tidy().iloc[0]
    # far from the truth (beyond 10 SEs) and less than half of it
    assert abs(twfe["estimate"] - truth) > 10 * twfe["std_error"]
    assert twfe["estimate"] < 0.5 * truth
    assert not (twfe["conf_low"] < truth < twfe["conf_high"])
    assert abs(cs["estimate"] - truth) < 3 * cs["std_error"]


def test_not_yet_treated_controls_and_anticipation_change_estimates(sim):
    df, truth = sim
    a = cv.fit_event_study(df, "research_use")
    b = cv.fit_event_study(df, "research_use", control="not_yet_treated")
    c = cv.fit_event_study(df, "research_use", anticipation=1)
    sb = b.aggregate("simple").tidy().iloc[0]
    assert abs(sb["estimate"] - truth) < 3 * sb["std_error"]
    assert not np.allclose(a.tidy()["estimate"], b.tidy()["estimate"])
    assert len(c.tidy()) != len(a.tidy()) or not np.allclose(
        a.tidy()["estimate"], c.tidy()["estimate"]
    )
    assert b.glance()["control"].iloc[0] == "not_yet_treated"


def test_push_versus_co_creation_comparison():
    df, _ = simulate_staggered(n_units=500, by_effect={"push": 0.1, "co_creation": 0.4}, seed=5)
    res = cv.fit_event_study(df, "research_use", by="ta_model")
    agg = res.aggregate("simple").tidy().set_index("term")
    assert set(agg.index) == {"push: ATT", "co_creation: ATT"}
    cmp_ = res.compare("co_creation", "push").tidy().set_index("term")
    diff = cmp_.loc["co_creation - push"]
    assert diff["estimate"] == pytest.approx(
        agg.loc["co_creation: ATT", "estimate"] - agg.loc["push: ATT", "estimate"]
    )
    truth = {}
    for m in ("push", "co_creation"):
        sub = df[(df["ta_model"] == m) & (df["wave"] >= df["first_treated"])]
        truth[m] = sub["tau"].mean()
    true_diff = truth["co_creation"] - truth["push"]
    assert abs(diff["estimate"] - true_diff) < 3 * diff["std_error"]
    assert diff["p_value"] < 1e-6
    # shared controls make the two level estimates positively correlated: SE of the difference is
    # below the independent-samples value
    se_ind = np.hypot(agg.loc["co_creation: ATT", "std_error"], agg.loc["push: ATT", "std_error"])
    assert diff["std_error"] < se_ind
    ev = res.aggregate("event", level="push").tidy()
    assert ev["term"].str.startswith("push: ").all()
    with pytest.raises(ValueError, match="not a level"):
        res.aggregate("event", level="hybrid")
    sa = cv.fit_event_study(df, "research_use", by="ta_model", estimator="sun_abraham")
    d_sa = sa.compare("co_creation", "push").tidy().set_index("term").loc["co_creation - push"]
    assert abs(d_sa["estimate"] - true_diff) < 3 * d_sa["std_error"]
