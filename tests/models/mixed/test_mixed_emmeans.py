"""contrast(), marginal_means(), slopes() on fit_mixed results against R's emmeans.

Fixtures: tests/fixtures/emmeans/ (make_data.py wrote growth3.csv: 12 providers randomised 6/6,
8 organisations each, 6 waves, a provider-level slope, 10% attrition and a time-varying post-TA
indicator; make_fixtures.R fitted lmerTest::lmer and ran emmeans 1.8.4-1 with lmer.df =
"satterthwaite" and "kenward-roger").
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import coevidence as cv

FIX = Path(__file__).parents[2] / "fixtures" / "emmeans"
REF = json.loads((FIX / "emmeans_growth3.json").read_text())
FORMULAS = {
    "M1": "y ~ time * ta_model + (1 + time | provider_id) + (1 + time | org_id)",
    "M2": "y ~ time * ta_model + post + (1 + time | provider_id) + (1 + time | org_id)",
}
METHODS = {"satterthwaite": "satterthwaite", "kenward_roger": "kenward_roger"}


@pytest.fixture(scope="module")
def data():
    d = pd.read_csv(FIX / "growth3.csv")
    d["ta_model"] = pd.Categorical(d["ta_model"], ["push", "co_creation"])
    return d


@pytest.fixture(scope="module")
def fits(data):
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a non-singular fit, no design warning
        for m, f in FORMULAS.items():
            for key, method in METHODS.items():
                out[m, key] = cv.fit_mixed(f, data, df_method=method)
    return out


def _check(ours, ref, est="estimate", df_rtol=2e-3):
    ref = pd.DataFrame(ref)
    assert len(ours) == len(ref)
    np.testing.assert_allclose(ours["estimate"], ref[est], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(ours["std_error"], ref["SE"], rtol=1e-4)
    np.testing.assert_allclose(ours["df"], ref["df"], rtol=df_rtol)
    np.testing.assert_allclose(ours["conf_low"], ref["lower.CL"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours["conf_high"], ref["upper.CL"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("model", list(FORMULAS))
def test_marginal_means_and_contrasts_by_wave_match_emmeans(fits, model, method):
    res, ref = fits[model, method], REF[model][method]
    mm = cv.marginal_means(res, covariates="mean")  # emmeans' default reference grid
    emm = pd.DataFrame(ref["emmeans"]).sort_values(["time", "ta_model"], key=lambda c: (
        c.map({"push": 0, "co_creation": 1}) if c.name == "ta_model" else c))
    mm = mm.sort_values(["time", "arm"], key=lambda c: (
        c.map({"push": 0, "co_creation": 1}) if c.name == "arm" else c))
    assert mm["arm"].tolist() == emm["ta_model"].tolist()
    _check(mm.reset_index(drop=True), emm.reset_index(drop=True))
    tab = cv.contrast(res, covariates="mean")
    waves = tab[tab["time"].notna()].reset_index(drop=True)
    assert (waves["contrast"] == "co_creation - push").all()
    _check(waves, ref["contrast"])
    p = pd.DataFrame(ref["contrast"])["p.value"]
    np.testing.assert_allclose(waves["p_value"], p, rtol=2e-3, atol=1e-6)
    slope = tab[tab["time"].isna()].reset_index(drop=True)
    assert slope["contrast"].tolist() == ["slope(time): co_creation - push"]
    _check(slope, [ref["slope_difference"]])


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("model", list(FORMULAS))
def test_slopes_by_arm_match_emtrends(fits, model, method):
    res, ref = fits[model, method], REF[model][method]
    sl = cv.slopes(res)
    assert sl["arm"].tolist() == ["push", "co_creation"]
    emt = pd.DataFrame(ref["emtrends"]).set_index("ta_model").loc[["push", "co_creation"]]
    _check(sl, emt.reset_index())


@pytest.mark.parametrize("method", list(METHODS))
def test_time_varying_covariate_at_each_waves_own_value(fits, data, method):
    """covariates="wave" (the default) evaluates post at its mean among each wave's rows, as
    emmeans does with at = list(time = t, post = mean(post[time == t]))."""
    res, ref = fits["M2", method], REF["M2"][method]
    mm = cv.marginal_means(res)
    emm = pd.DataFrame(ref["emmeans_wave_covariates"])
    key = lambda c: c.map({"push": 0, "co_creation": 1}) if c.name in ("arm", "ta_model") else c  # noqa: E731
    mm = mm.sort_values(["time", "arm"], key=key).reset_index(drop=True)
    emm = emm.sort_values(["time", "ta_model"], key=key).reset_index(drop=True)
    _check(mm, emm)
    # and the held-at-mean grid differs at the waves where post is not at its overall mean
    flat = cv.marginal_means(res, covariates="mean").sort_values(
        ["time", "arm"], key=key).reset_index(drop=True)
    late = mm["time"] == 5
    assert (mm.loc[late, "estimate"] - flat.loc[late, "estimate"]).abs().min() > 0.05
    tab = cv.contrast(res)
    _check(tab[tab["time"].notna()].reset_index(drop=True), ref["contrast_wave_covariates"])


def test_arm_and_time_inferred_or_given(fits, data):
    res = fits["M1", "satterthwaite"]
    given = cv.contrast(res, arm="ta_model", time="time")
    pd.testing.assert_frame_equal(given, cv.contrast(res))
    renamed = data.rename(columns={"time": "t", "ta_model": "arm"})
    other = cv.fit_mixed("y ~ t * arm + x * arm + (1 + t | provider_id) + (1 + t | org_id)",
                         renamed.assign(x=np.arange(len(renamed)) % 3))
    with pytest.raises(cv.CoevidenceError, match="which column is the time"):
        cv.contrast(other)
    tab = cv.contrast(other, time="t")
    assert tab["contrast"].iloc[0] == "co_creation - push"
    with pytest.raises(cv.CoevidenceError, match="covariates"):
        cv.contrast(res, covariates="median")


def test_effect_size_states_its_standardiser(fits):
    es = cv.effect_size(fits["M1", "satterthwaite"]).iloc[0]
    assert es["sd_level"] == "org_id"
    assert "pooled within arms" in es["sd_kind"]
    ref = REF["M1"]["satterthwaite"]["slope_difference"]
    assert es["slope_difference"] == pytest.approx(ref["estimate"], rel=1e-5)
    assert es["d"] == pytest.approx(ref["estimate"] * 5 / es["baseline_sd"], rel=1e-5)
