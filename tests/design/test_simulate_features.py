"""Engagement features varying within arm, a mediated practice outcome and binary / count
outcomes in the simulator: what is recorded in the logs, and known effects recovered by a
simple fit."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import coevidence as cv
from coevidence.design.simulate import (
    FeatureSpec,
    OutcomeSpec,
    SimulationSpec,
    simulate_study,
    true_effects,
)
from coevidence.exceptions import MissingDataWarning

QUIET = {"sd_provider": 0.1, "sd_org_intercept": 0.2, "sd_org_slope": 0.02, "sd_respondent": 0.25,
             "sd_residual": 0.25, "reliability": 0.98, "round_items": False}


def _fit(formula, data, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cv.fit_mixed(formula, data, **kw).tidy().set_index("term")


def assert_recovered(row, truth, k=3.0, floor=0.0):
    """|estimate - truth| < k SE (+ floor: allowance for a stated approximation)."""
    est, se = float(row["estimate"]), float(row["std_error"])
    assert abs(est - truth) < k * se + floor, f"estimate {est:.4f} (SE {se:.4f}) vs truth {truth}"


@pytest.fixture(scope="module")
def feature_study():
    spec = SimulationSpec(
        n_providers=10, orgs_per_provider=12, respondents_per_org=4, n_waves=4,
        assignment="organization", responses="scores",
        features=FeatureSpec(p_diagnosis_first=0.5, random_sequence=True, p_agreement=0.6,
                             agreement_window_days=120, dose_sd=0.5, relationship_sd=0.4),
        outcomes=(OutcomeSpec(measure_id="research_use", intercept=2.0, arm_slope=0.05,
                              post_slope_change=0.0, dose_effect=0.02,
                              relationship_effect=0.4, diagnosis_first_effect=0.25, **QUIET),),
    )
    return spec, simulate_study(spec, seed=11)


def _tables(study):
    fr = study.to_frames()
    eng = fr["engagements"].set_index("id")
    return fr, eng


def test_features_vary_within_arm_and_are_recorded(feature_study):
    _spec, study = feature_study
    fr, eng = _tables(study)
    comps = fr["components"].merge(eng[["ta_model"]], left_on="engagement_id", right_index=True)
    cc = comps[comps["ta_model"] == "co_creation"]
    first = cc[cc["order"] == 1].set_index("engagement_id")["id"]
    share = (first == "joint_diagnosis").mean()
    assert 0.3 < share < 0.7  # p = 0.5 over 60 engagements
    # when diagnosis is not first, its encounter comes at the component's introduction
    enc = fr["encounters"].sort_values(["engagement_id", "date"])
    first_enc = enc.groupby("engagement_id").first()["activity"]
    diag_first = first == "joint_diagnosis"
    assert (first_enc[diag_first.index[diag_first]] == "diagnosis").all()
    assert (first_enc[diag_first.index[~diag_first]] != "diagnosis").all()
    n_diag = enc[enc["activity"] == "diagnosis"].groupby("engagement_id").size()
    assert (n_diag.reindex(first.index) == 1).all()
    # component order after the first varies
    orders = cc.sort_values("order").groupby("engagement_id")["id"].agg(tuple)
    assert orders.nunique() >= 3
    # push engagements keep their fixed components and have no diagnosis
    push = comps[comps["ta_model"] == "push"]
    assert set(push["id"]) == {"packaged_training", "implementation_toolkit"}
    # agreements: made with probability 0.6 each, within the window
    agr = fr["agreements"].merge(eng[["start_date"]], left_on="engagement_id", right_index=True)
    rate = len(agr) / (2 * len(eng))
    assert 0.5 < rate < 0.7
    lag = (pd.to_datetime(agr["agreed_on"]) - pd.to_datetime(agr["start_date"])).dt.days
    assert lag.between(0, 120).all() and lag.nunique() > 10
    # dose varies within arm: minutes per encounter differ between organisations
    per_org = enc.groupby("engagement_id")["minutes"].mean()
    cv_cc = per_org[eng.index[eng["ta_model"] == "co_creation"]].std() / per_org.mean()
    assert cv_cc > 0.25
    # the truth is stored with the study
    assert '"features"' in study.design.description


def test_dose_effect_recovered_within_organisations(feature_study):
    _spec, study = feature_study
    panel = study.panel(unit="organization").dropna(subset=["research_use"])
    panel = panel.assign(hours=panel["cum_minutes"] / 60,
                         trt=(panel["ta_model"] == "co_creation").astype(float))
    d = cv.within_between(panel, "hours", unit="org_id")
    t = _fit("research_use ~ hours_within + hours_between + C(wave) * trt + (1 | org_id)", d)
    # the panel's dose is as of each observation date (0-20 days after the wave), the
    # generating dose as of the wave date: a small allowance for that
    assert_recovered(t.loc["hours_within"], 0.02, floor=0.003)


def test_relationship_and_diagnosis_first_effects_recovered(feature_study):
    _spec, study = feature_study
    fr, _eng = _tables(study)
    panel = study.panel(unit="organization").dropna(subset=["research_use"])
    ratings = (fr["relationship_ratings"].groupby("engagement_id")["value"].mean()
               .rename("rating"))
    comps = fr["components"]
    diag = (comps[(comps["id"] == "joint_diagnosis") & (comps["order"] == 1)]
            .set_index("engagement_id").assign(diag=1.0)["diag"])
    d = panel.join(ratings, on="engagement_id").join(diag, on="engagement_id")
    d["diag"] = d["diag"].fillna(0.0)
    d["trt"] = (d["ta_model"] == "co_creation").astype(float)
    d["post"] = (d["time"] >= 1).astype(float)
    d["rating_c"] = d["rating"] - d.groupby("ta_model")["rating"].transform("mean")
    d["hours"] = d["cum_minutes"] / 60
    t = _fit("research_use ~ C(wave) * trt + hours + rating_c:post + diag:post"
             " + (1 | org_id)", d)
    # the mean of 3-4 noisy ratings (SD 0.5) measures quality with reliability ~0.8, so the
    # rating slope is attenuated: truth 0.4 x (0.75 to 1)
    est = float(t.loc["rating_c:post", "estimate"])
    assert 0.4 * 0.6 < est < 0.4 * 1.15, est
    assert_recovered(t.loc["post:diag"] if "post:diag" in t.index else t.loc["diag:post"], 0.25)


def test_defaults_keep_fixed_features():
    spec = SimulationSpec(n_providers=2, orgs_per_provider=3, respondents_per_org=2,
                          n_waves=2)
    fr = simulate_study(spec, seed=4).to_frames()
    eng = fr["engagements"].set_index("id")
    cc = eng.index[eng["ta_model"] == "co_creation"]
    comps = fr["components"]
    first = comps[comps["order"] == 1].set_index("engagement_id")["id"]
    assert (first[cc] == "joint_diagnosis").all()
    assert len(fr["agreements"]) == 2 * len(eng)
    assert (fr["agreements"]["agreed_on"].astype(str).to_numpy()
            == eng.loc[fr["agreements"]["engagement_id"], "start_date"].astype(str).to_numpy()).all()
    assert true_effects(spec)["research_use"]["features"]["p_diagnosis_first"] == 1.0
    assert spec.features == FeatureSpec()


def test_mediated_practice_outcome_recovered_by_fit_mediation():
    spec = SimulationSpec(
        n_providers=8, orgs_per_provider=10, respondents_per_org=8, n_waves=2,
        assignment="organization", responses="scores", encounter_logs=False, attrition=0.0,
        outcomes=(
            OutcomeSpec(measure_id="research_use", intercept=2.5, slope=0.0, arm_slope=0.5,
                        post_slope_change=0.0, **QUIET),
            OutcomeSpec(measure_id="practice", intercept=1.2, slope=0.0, arm_slope=0.2,
                        post_slope_change=0.0, mediator="research_use", mediator_effect=0.6,
                        **QUIET),
        ),
    )
    truth = true_effects(spec)["practice"]["mediation"]
    assert truth["a_by_wave"][1] == pytest.approx(0.5)
    assert truth["indirect_by_wave"][1] == pytest.approx(0.3)
    assert truth["direct_by_wave"][1] == pytest.approx(0.2)
    study = simulate_study(spec, seed=5)
    p = study.panel(unit="respondent")
    p = p[p["wave"] == 2].dropna(subset=["research_use", "practice"])
    p = p.assign(trt=(p["ta_model"] == "co_creation").astype(float))
    res = cv.fit_mediation(p, "practice", treatment="trt", mediator="research_use",
                           cluster="org_id", n_draws=2000, seed=1)
    t = res.tidy().set_index("term")
    assert_recovered(t.loc["a"], 0.5)
    assert_recovered(t.loc["b_within"], 0.6, floor=0.02)  # item error: reliability 0.98
    assert_recovered(t.loc["b_between"], 0.6, floor=0.02)
    assert_recovered(t.loc["direct"], 0.2)
    assert_recovered(t.loc["indirect"], 0.3)
    assert t.loc["indirect", "conf_low"] < 0.3 < t.loc["indirect", "conf_high"]


def _glm(formula, data, family):
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    fam = sm.families.Binomial() if family == "binomial" else sm.families.Poisson()
    return smf.glm(formula, data, family=fam).fit()


@pytest.mark.parametrize("family,intercept,arm_slope", [("binomial", -0.4, 0.35),
                                                         ("poisson", 0.6, 0.2)])
def test_binary_and_count_outcomes_have_link_scale_truth(family, intercept, arm_slope):
    none = {"sd_provider": 0.0, "sd_org_intercept": 0.0, "sd_org_slope": 0.0, "sd_respondent": 0.0,
                "sd_residual": 0.0}
    spec = SimulationSpec(
        n_providers=10, orgs_per_provider=20, respondents_per_org=6, n_waves=4,
        assignment="organization", encounter_logs=False, attrition=0.0,
        outcomes=(OutcomeSpec(measure_id="use_any", family=family, intercept=intercept,
                              slope=0.1, arm_slope=arm_slope, post_slope_change=0.0, **none),),
    )
    te = true_effects(spec)["use_any"]
    assert te["link"] == ("logit" if family == "binomial" else "log")
    assert te["slope_difference"] == pytest.approx(arm_slope)
    study = simulate_study(spec, seed=8)  # items: one item per respondent x wave
    # 1% of items are skipped at random: those respondent x waves are missing (and warned)
    m = study.measures["use_any"] if isinstance(study.measures, dict) else next(
        x for x in study.measures if x.id == "use_any")
    assert len(m.items) == 1 and m.response_min == 0
    with pytest.warns(MissingDataWarning, match="use_any"):
        p = study.panel(unit="respondent")
    assert 0 < p["use_any"].isna().mean() < 0.03
    p = p.dropna(subset=["use_any"])
    vals = p["use_any"].to_numpy()
    assert np.array_equal(vals, np.round(vals)) and vals.min() == 0
    if family == "binomial":
        assert set(np.unique(vals)) == {0.0, 1.0}
    else:
        assert vals.max() > 3
    p = p.assign(trt=(p["ta_model"] == "co_creation").astype(float))
    fit = _glm("use_any ~ time * trt", p, family)
    est, se = fit.params["time:trt"], fit.bse["time:trt"]
    assert abs(est - arm_slope) < 3 * se, (est, se)
    assert abs(fit.params["Intercept"] - intercept) < 3 * fit.bse["Intercept"]


def test_spec_checks():
    with pytest.raises(ValueError, match="earlier outcome"):
        SimulationSpec(outcomes=(OutcomeSpec(measure_id="practice", mediator="research_use",
                                             mediator_effect=0.5),))
    with pytest.raises(ValueError, match="needs mediator"):
        OutcomeSpec(mediator_effect=0.5)
    with pytest.raises(ValueError, match="do not apply|does not apply|do\\(es\\) not apply"):
        OutcomeSpec(family="binomial", n_items=4)
    with pytest.raises(ValueError, match="encounter_logs"):
        SimulationSpec(encounter_logs=False, outcomes=(OutcomeSpec(dose_effect=0.01),))
    with pytest.raises(ValueError):
        FeatureSpec(p_diagnosis_first=1.5)
    with pytest.raises(ValueError, match="twice"):
        SimulationSpec(outcomes=(OutcomeSpec(), OutcomeSpec()))
