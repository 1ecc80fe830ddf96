"""Propensity weights, balance and weighted panel regressions against R
(tests/fixtures/missing/make_weighting.R: glm, hand-written weights and SMDs, lm(weights=),
sandwich, survey::svyglm)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import coevidence as cv
from coevidence.exceptions import ModelSpecificationError, OptionError
from coevidence.models.weighting import balance, love_plot, propensity_weights

FIX = Path(__file__).parents[2] / "fixtures" / "missing"
TOL = 1e-6


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    return pd.read_csv(FIX / "weighting_panel.csv")


@pytest.fixture(scope="module")
def rw() -> pd.DataFrame:
    return pd.read_csv(FIX / "weighting_weights.csv").set_index("org")


def _pw(panel, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return propensity_weights(panel, treatment="treat", covariates=["x1", "x2", "region"],
                                  unit="org", **kw)


@pytest.mark.parametrize("estimand,col,stab", [("ate", "w_ate", False), ("att", "w_att", False),
                                               ("overlap", "w_overlap", False),
                                               ("ate", "w_ate_stab", True)])
def test_weights_match_r_glm(panel, rw, estimand, col, stab):
    pw = _pw(panel, estimand=estimand, stabilize=stab)
    u = pw.units.set_index("org")
    np.testing.assert_allclose(u["propensity"], rw.loc[u.index, "ps"], rtol=TOL)
    np.testing.assert_allclose(u["weight"], rw.loc[u.index, col], rtol=TOL)
    # the row weights repeat each organisation's weight on its waves
    np.testing.assert_allclose(pw.weights, panel["org"].map(rw[col]), rtol=TOL)
    assert pw.weights.index.equals(panel.index)


def test_propensity_model_matches_r(panel):
    ref = pd.read_csv(FIX / "weighting_glm.csv")
    t = _pw(panel).tidy()
    np.testing.assert_allclose(t["estimate"], ref["estimate"], rtol=TOL)
    np.testing.assert_allclose(t["std_error"], ref["std_error"], rtol=TOL)
    assert t["term"].tolist() == ["(Intercept)", "x1", "x2", "regionB", "regionC"]


@pytest.mark.parametrize("estimand", ["ate", "att", "overlap"])
@pytest.mark.parametrize("binary", ["raw", "std"])
def test_balance_matches_r(panel, estimand, binary):
    ref = pd.read_csv(FIX / "weighting_balance.csv")
    ref = ref[(ref.estimand == estimand) & (ref.binary == binary)].reset_index(drop=True)
    tab = _pw(panel, estimand=estimand).balance(binary=binary)
    assert tab["covariate"].tolist() == ref["covariate"].tolist()
    for col in ("smd_unweighted", "smd_weighted", "variance_ratio_unweighted",
                "variance_ratio_weighted", "mean_treated_weighted", "mean_comparison_weighted"):
        np.testing.assert_allclose(tab[col].to_numpy(float), ref[col].to_numpy(float),
                                   rtol=TOL, atol=1e-12, err_msg=col)
    assert "unweighted" in tab.attrs["denominator"]


def test_overlap_weights_balance_means_exactly(panel):
    tab = _pw(panel, estimand="overlap").balance()
    # overlap weights from a logit give exact mean balance on every covariate in the model
    np.testing.assert_allclose(tab["smd_weighted"], 0.0, atol=1e-8)


@pytest.fixture(scope="module")
def reg() -> dict:
    return json.loads((FIX / "weighting_regression.json").read_text())


def test_weighted_pooled_matches_lm_sandwich_svyglm(panel, reg):
    r = reg["pooled"]
    w = _pw(panel).weights
    kw = dict(unit="org", time="wave", formula="y ~ D + treat + C(wave) + x1",
              estimator="pooled", weights=w)
    fit = cv.fit_panel(panel, **kw)
    np.testing.assert_allclose(fit.params.to_numpy(), r["coef"], rtol=TOL)
    np.testing.assert_allclose(fit.std_errors.to_numpy(), r["se_classical"], rtol=TOL)
    assert fit.df_resid == r["df_resid"]
    hc0 = cv.fit_panel(panel, **kw, cov_type="robust", small_sample="none")
    np.testing.assert_allclose(hc0.std_errors.to_numpy(), r["se_hc0"], rtol=TOL)
    cr0 = cv.fit_panel(panel, **kw, cov_type="clustered", small_sample="none")
    np.testing.assert_allclose(cr0.std_errors.to_numpy(), r["se_cr0"], rtol=TOL)
    G = panel["org"].nunique()
    np.testing.assert_allclose(cr0.std_errors.to_numpy() * np.sqrt(G / (G - 1)),
                               r["se_svyglm"], rtol=TOL)
    np.testing.assert_allclose(fit.params.to_numpy(), r["coef_svyglm"], rtol=TOL)
    cv.check_result(fit)
    assert any("weighted least squares" in n for n in fit.diagnostics.notes)
    # the weights given as a column name give the same fit
    byname = cv.fit_panel(panel.assign(w=w), **{**kw, "weights": "w"})
    np.testing.assert_allclose(byname.params, fit.params, rtol=1e-12)


def test_weighted_within_matches_lm_with_unit_dummies(panel, reg):
    r = reg["within"]
    w = _pw(panel).weights
    kw = dict(unit="org", time="wave", formula="y ~ D + C(wave)", estimator="within",
              weights=w)
    fit = cv.fit_panel(panel, **kw)
    np.testing.assert_allclose(fit.params.to_numpy(), r["coef"], rtol=TOL)
    np.testing.assert_allclose(fit.std_errors.to_numpy(), r["se_classical"], rtol=TOL)
    assert fit.df_resid == r["df_resid"]
    cr0 = cv.fit_panel(panel, **kw, cov_type="clustered", small_sample="none")
    np.testing.assert_allclose(cr0.std_errors.to_numpy(), r["se_cr0"], rtol=TOL)


def test_unit_weights_of_one_reproduce_the_unweighted_fit(panel):
    kw = dict(unit="org", time="wave", cov_type="cr2")
    for est, f in (("within", "y ~ D + C(wave)"), ("first_difference", "y ~ D"),
                   ("pooled", "y ~ D + C(wave)")):
        a = cv.fit_panel(panel, estimator=est, formula=f, **kw)
        b = cv.fit_panel(panel, estimator=est, formula=f, weights=np.full(len(panel), 2.5),
                         **kw)
        np.testing.assert_allclose(b.params, a.params, rtol=1e-10)
        np.testing.assert_allclose(b.std_errors, a.std_errors, rtol=1e-8)


def test_weights_refused_where_not_valid(panel):
    w = np.ones(len(panel))
    base = dict(unit="org", time="wave", formula="y ~ D")
    for kw in ({"estimator": "random"}, {"estimator": "between"},
               {"estimator": "within", "effects": "twoway"},
               {"estimator": "pooled", "cov_type": "driscoll_kraay"}):
        with pytest.raises(OptionError, match="weights="):
            cv.fit_panel(panel, **base, **kw, weights=w)
    with pytest.raises(ModelSpecificationError, match="vary within unit"):
        cv.fit_panel(panel, **base, estimator="within", weights=np.arange(len(panel)) + 1.0)
    with pytest.raises(ModelSpecificationError, match="positive"):
        cv.fit_panel(panel, **base, estimator="pooled", weights=np.r_[-1.0, w[1:]])
    with pytest.raises(OptionError, match="rows"):
        cv.fit_panel(panel, **base, estimator="pooled", weights=w[1:])


def test_propensity_refusals_and_warnings(panel):
    with pytest.raises(OptionError, match="stabilize"):
        _pw(panel, estimand="att", stabilize=True)
    with pytest.raises(ModelSpecificationError, match="vary within"):
        propensity_weights(panel, treatment="treat", covariates=["y"], unit="org")
    with pytest.raises(ModelSpecificationError, match="missing"):
        propensity_weights(panel.assign(x1=np.where(panel.org == "O001", np.nan, panel.x1)),
                           treatment="treat", covariates=["x1"], unit="org")
    with pytest.raises(OptionError, match="treated="):
        propensity_weights(panel.assign(arm=np.where(panel.treat == 1, "co", "push")),
                           treatment="arm", covariates=["x1"], unit="org")
    lab = propensity_weights(panel.assign(arm=np.where(panel.treat == 1, "co", "push")),
                             treatment="arm", treated="co", covariates=["x1"], unit="org")
    num = propensity_weights(panel, treatment="treat", covariates=["x1"], unit="org")
    np.testing.assert_allclose(lab.weights, num.weights)
    # a strongly predictive covariate: extreme weights are flagged
    rng = np.random.default_rng(3)
    x = rng.normal(size=300)
    d = pd.DataFrame({"x": x, "t": (rng.random(300) < 1 / (1 + np.exp(-3 * x))).astype(int)})
    with pytest.warns(cv.CoevidenceWarning, match="effective sample size"):
        pw = propensity_weights(d, treatment="t", covariates=["x"])
    trimmed = propensity_weights(d, treatment="t", covariates=["x"], trim=0.9)
    assert trimmed.units["weight"].max() < pw.units["weight"].max()
    assert trimmed.glance()["n_trimmed"].iloc[0] == 30
    cv.check_result(pw)


def test_love_plot(panel):
    import matplotlib

    matplotlib.use("Agg")
    ax = love_plot(_pw(panel).balance(), threshold=0.1)
    assert len(ax.get_yticklabels()) == 5
    with pytest.raises(OptionError):
        love_plot(pd.DataFrame({"a": [1]}))
    assert balance(panel.drop_duplicates("org"), treatment="treat",
                   covariates=["x1"])["smd_weighted"].iloc[0] == pytest.approx(
        balance(panel.drop_duplicates("org"), treatment="treat",
                covariates=["x1"])["smd_unweighted"].iloc[0])


def test_weighted_first_difference_is_wls_on_differences(panel):
    """An independent WLS (statsmodels) on the within-unit differences with unit weights."""
    import statsmodels.api as sm

    w = _pw(panel).weights
    fit = cv.fit_panel(panel, "y", unit="org", time="wave", regressors=["D"],
                       estimator="first_difference", weights=w)
    d = panel.assign(w=w).sort_values(["org", "wave"])
    g = d.groupby("org")
    diff = pd.DataFrame({"dy": g["y"].diff(), "dD": g["D"].diff(), "w": d["w"]}).dropna()
    ref = sm.WLS(diff["dy"], sm.add_constant(diff["dD"]), weights=diff["w"]).fit()
    np.testing.assert_allclose(fit.params.to_numpy(), ref.params.to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(fit.std_errors.to_numpy(), ref.bse.to_numpy(), rtol=1e-10)
