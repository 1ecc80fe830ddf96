"""The numbers of docs/models/dose.md: cumulative dose is arm x time in disguise on the example."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

import coevidence as cv
from coevidence.exceptions import CoevidenceWarning


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CoevidenceWarning)
        p = cv.load_example_study().panel(unit="organization")
    return p.assign(ta_hours=p["cum_minutes"] / 60).dropna(subset=["research_use"])


def _row(result, term: str) -> pd.Series:
    return result.tidy().set_index("term").loc[term]


def test_the_naive_dose_effect(panel):
    naive = cv.fit_panel(panel, "research_use", formula="ta_hours", cov_type="cr2",
                         cluster="provider_id")
    r = _row(naive, "ta_hours")
    assert r["estimate"] == pytest.approx(0.0102, abs=5e-5)
    assert r["std_error"] == pytest.approx(0.0015, abs=5e-5)
    assert (r["conf_low"], r["conf_high"]) == pytest.approx((0.00657, 0.01375), abs=5e-6)
    assert r["p_value"] == pytest.approx(0.0004, abs=5e-5)
    means = panel.groupby(["arm", "wave"])["ta_hours"].mean().unstack().round(1)
    assert means.loc["co_creation"].tolist() == [0.0, 16.0, 32.3, 48.5, 60.2, 60.2]
    assert means.loc["push"].tolist() == [0.0, 5.2, 10.3, 15.4, 19.0, 19.0]


def test_within_between_with_arm_by_wave(panel):
    dose = cv.within_between(panel, "ta_hours")
    dose["arm"] = pd.Categorical(dose["arm"], categories=["push", "co_creation"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CoevidenceWarning)
        honest = cv.fit_mixed("research_use ~ ta_hours_within + ta_hours_between + C(wave) * arm"
                              " + (1 | provider_id) + (1 | org_id)", dose, cov_type="cr2")
        blend = cv.fit_mixed("research_use ~ ta_hours_within + ta_hours_between"
                             " + (1 | provider_id) + (1 | org_id)", dose, cov_type="cr2")
        arms = cv.fit_mixed("research_use ~ C(wave) * arm + (1 | provider_id) + (1 | org_id)",
                            dose, cov_type="cr2")
    w = _row(honest, "ta_hours_within")
    assert w["estimate"] == pytest.approx(-0.0150, abs=5e-5)
    assert w["std_error"] == pytest.approx(0.0074, abs=5e-5)
    assert (w["conf_low"], w["conf_high"]) == pytest.approx((-0.03238, 0.00245), abs=5e-6)
    assert w["p_value"] == pytest.approx(0.082, abs=5e-4)
    b = _row(honest, "ta_hours_between")
    assert (b["estimate"], b["conf_low"], b["conf_high"]) == pytest.approx(
        (-0.0007, -0.0550, 0.0536), abs=5e-5)
    assert _row(blend, "ta_hours_within")["estimate"] == pytest.approx(0.0102, abs=5e-5)
    a6 = _row(arms, "armco_creation:C(wave)6")
    assert (a6["estimate"], a6["conf_low"], a6["conf_high"]) == pytest.approx(
        (0.50, 0.22, 0.79), abs=5e-3)
    # arm and wave explain 99% of the variance of dose; the rest has SD ~1.1 hours
    cell = dose.groupby(["arm", "wave"], observed=True)["ta_hours"].transform("mean")
    assert 1 - ((dose["ta_hours"] - cell).var() / dose["ta_hours"].var()) == pytest.approx(
        0.99, abs=5e-3)
    resid = dose["ta_hours_within"] - dose.groupby(["arm", "wave"], observed=True)[
        "ta_hours_within"].transform("mean")
    assert resid.std() == pytest.approx(1.15, abs=0.01)
    between = dose.groupby("arm", observed=True)["ta_hours_between"].agg(["min", "max"])
    assert between.round(0).loc["push"].tolist() == [9, 14]
    assert between.round(0).loc["co_creation"].tolist() == [32, 42]


def test_twoway_fixed_effects_with_arm_specific_waves_agree(panel):
    p = panel.assign(co=(panel["arm"] == "co_creation").astype(float))
    for wave in range(2, 7):
        p[f"co_w{wave}"] = p["co"] * (p["wave"] == wave)
    regressors = ["ta_hours", *[f"co_w{w}" for w in range(2, 7)]]
    fe = cv.fit_panel(p, "research_use", regressors=regressors, effects="twoway", cov_type="cr2",
                      cluster="provider_id")
    assert _row(fe, "ta_hours")["estimate"] == pytest.approx(-0.01497, abs=5e-6)
