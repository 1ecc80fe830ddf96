"""Group (propensity) weights in linear mixed and growth models, against R
(tests/fixtures/weights_mixed/make_weights_mixed.R: lmer on replicated data, clubSandwich CR0
and CR2, a hand-written weighted ML) and by their invariances."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import coevidence as cv
from coevidence.exceptions import ModelSpecificationError, OptionError

FIX = Path(__file__).parents[2] / "fixtures" / "weights_mixed"
MODELS = {
    "slope2": ("y ~ wave * treat + x1 + (wave | org)", "org"),
    "int3": ("y ~ wave * treat + x1 + (1 | org) + (1 | prov)", "prov"),
    "slope3": ("y ~ wave * treat + x1 + (wave | org) + (1 | prov)", "prov"),
}


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return pd.read_csv(FIX / "weights_mixed_data.csv")


@pytest.fixture(scope="module")
def ref() -> dict:
    return json.loads((FIX / "weights_mixed_ref.json").read_text())


def _fit(formula, d, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cv.fit_mixed(formula, d, **kw)


def _cr0(res, cluster: str) -> tuple[np.ndarray, np.ndarray]:
    """CR0 of the weighted GLS estimator, from the CR2 object's pieces (no adjustment)."""
    from coevidence.models.mixed._inference import CR2
    from coevidence.models.mixed._likelihood import LMMEvaluator

    prob = res._problem
    codes = pd.factorize(res.data[cluster])[0]
    rob = CR2(LMMEvaluator(prob), res._fit.varpar, codes, prob.weights)
    e = prob.y - prob.X @ rob.beta
    meat = sum(np.outer(u, u) for u in (prob.X[ix].T @ W @ e[ix]
                                        for ix, W in zip(rob.idx, rob.Wb)))
    return rob.M @ meat @ rob.M, rob.beta


@pytest.mark.parametrize("reml", [True, False], ids=["reml", "ml"])
@pytest.mark.parametrize("name", list(MODELS))
def test_integer_weights_equal_lmer_on_replicated_data(data, ref, name, reml):
    """Every organisation with weight w counted w times (``weights_scale="none"``): lme4's
    numbers on the replicated data (fixed effects, theta, sigma, criterion, BLUPs) and
    clubSandwich's CR0 of that fit clustered by the original units."""
    r = ref[f"{name}_{'reml' if reml else 'ml'}"]
    formula, cluster = MODELS[name]
    res = _fit(formula, data, weights="w", weights_scale="none", reml=reml, cluster=cluster)
    assert res.cov_type == "cr2" and res.df_method == "bell_mccaffrey"
    np.testing.assert_allclose(res.params.to_numpy(), r["fixef"], rtol=0, atol=2e-6)
    np.testing.assert_allclose(res._fit.theta, r["theta"], rtol=0, atol=2e-5)
    assert np.sqrt(res._fit.sigma2) == pytest.approx(r["sigma"][0], rel=1e-5)
    assert res._fit.objective == pytest.approx(r["crit"][0], abs=1e-6)
    w = res.weights_info
    assert (w.level, w.n_groups, w.scaled, w.scale) == ("org", 80, False, 1.0)
    blup = res.ranef()["org"].loc[r["ranef_org"]].to_numpy()
    np.testing.assert_allclose(blup, np.asarray(r["ranef"]), atol=5e-5)
    cr0, beta = _cr0(res, cluster)
    np.testing.assert_allclose(beta, r["fixef"], atol=2e-6)
    np.testing.assert_allclose(cr0, np.asarray(r["cr0"]), rtol=2e-4, atol=1e-9)


def test_cr2_algebra_matches_clubsandwich_lm_weights(data, ref):
    """CR2 and BM df for a weight matrix that is not V^-1 (clubSandwich inverse_var = FALSE):
    a mixed model at zero random-effect variance and unit residual variance is lm(weights=)."""
    from dataclasses import replace

    from coevidence.models.mixed._inference import CR2
    from coevidence.models.mixed._likelihood import LMMEvaluator
    from coevidence.models.mixed.formula import build_problem

    r = ref["lm_cr2"]
    prob, _ = build_problem("y ~ wave * treat + x1 + (1 | org)", data)
    prob = replace(prob, weights=data["w_ate"].to_numpy())
    rob = CR2(LMMEvaluator(prob), np.array([0.0, 1.0]), pd.factorize(data["prov"])[0],
              prob.weights)
    np.testing.assert_allclose(rob.beta, r["beta"], rtol=1e-10)
    np.testing.assert_allclose(rob.vcov, np.asarray(r["vcov"]), rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose([rob.df(c) for c in np.eye(5)], r["df"], rtol=1e-9)


def test_non_integer_weights_match_hand_written_weighted_ml(data, ref):
    r = ref["hand_ml"]
    res = _fit("y ~ wave * treat + x1 + (wave | org)", data, weights="w_ate", reml=False)
    np.testing.assert_allclose(res.params.to_numpy(), r["beta"], atol=5e-6)
    vc = res.variance_components()
    D = np.asarray(r["D"])
    got = vc.set_index(["term1"]).loc[["(Intercept)", "wave"]]
    got = got[got["term2"].isna()]["vcov"].to_numpy()
    np.testing.assert_allclose(got, np.diag(D), rtol=2e-5)
    assert res._fit.sigma2 == pytest.approx(r["sigma2"][0], rel=2e-5)
    assert res._fit.objective == pytest.approx(r["deviance"][0], abs=1e-6)


@settings(max_examples=6, deadline=None)
@given(c=st.floats(0.01, 100.0))
def test_results_do_not_depend_on_the_weights_scale(data, c):
    """Weights are scaled to mean 1: multiplying them by any constant changes nothing."""
    f = "y ~ wave * treat + x1 + (1 | org) + (1 | prov)"
    a = _fit(f, data, weights="w_ate")
    b = _fit(f, data, weights=data["w_ate"].to_numpy() * c)
    np.testing.assert_allclose(b.params, a.params, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(b.vcov, a.vcov, rtol=1e-7, atol=1e-14)
    assert b.weights_info.source == "values" and b.weights_info.scaled


def test_equal_weights_are_the_unweighted_fit_with_cr2(data):
    """Constant weights: the unweighted estimates, and the unweighted CR2 (the general
    W != V^-1 algebra reduces to clubSandwich's inverse-variance case)."""
    f = MODELS["slope3"][0]
    a = _fit(f, data, cov_type="cr2")
    b = _fit(f, data, weights=np.full(len(data), 3.7))
    np.testing.assert_allclose(b.params, a.params, atol=1e-7)
    np.testing.assert_allclose(b.vcov, a.vcov, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(b.tidy()["df"], a.tidy()["df"], rtol=1e-5)


def test_growth_with_propensity_weights(data):
    """fit_growth passes weights on; CR2 by the assignment level is the default."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arms = data.assign(arm=pd.Categorical(np.where(data["treat"] == 1, "co_creation", "push"),
                                              categories=["push", "co_creation"]))
        g = cv.fit_growth(arms, "y", time="wave", arm="arm", levels=["org", "prov"],
                          weights="w_ate")
    assert g.cov_type == "cr2" and g.weights_info.level == "org"
    assert g.growth.design.assignment_level == "org"  # treat varies within providers
    direct = _fit(g.formula, arms, weights="w_ate", cluster="prov")
    np.testing.assert_allclose(g.vcov.to_numpy(), direct.vcov.to_numpy(), rtol=1e-8)
    assert "Weights 'w_ate' on the 80 org groups" in g.summary()
    gl = g.glance().iloc[0]
    assert np.isnan(gl["aic"]) and gl["weights"] == "w_ate" and 0 < gl["weights_ess"] < 80


def test_weights_are_checked_and_explained(data):
    f = "y ~ wave * treat + x1 + (wave | org)"
    bad = data.assign(w2=data["w_ate"].where(data.index != 7))
    with pytest.raises(ModelSpecificationError, match=r"finite and > 0.*first rows \[7\]"):
        _fit(f, bad, weights="w2")
    varying = data.assign(w3=data["w"] + 0.01 * data["wave"])
    with pytest.raises(ModelSpecificationError, match="vary within .* org group.*precision"):
        _fit(f, varying, weights="w3")
    with pytest.raises(OptionError, match="cov_type='model'"):
        _fit(f, data, weights="w", cov_type="model")
    with pytest.raises(OptionError, match="not a column"):
        _fit(f, data, weights="nope")
    with pytest.raises(OptionError, match="weights_scale"):
        _fit(f, data, weights_scale="none")
    with pytest.raises(OptionError, match="fast engine"):
        _fit(f, data, weights="w", engine="statsmodels")
    res = _fit(f, data, weights="w")
    for call in (lambda: res.refit(data["y"].to_numpy()), lambda: cv.anova(res),
                 lambda: cv.ranova(res), lambda: res.confint()):
        with pytest.raises(OptionError, match="pseudo-likelihood"):
            call()
    assert len(res.confint(method="wald"))
    # a row dropped for a missing outcome may have any weight; none is lost silently
    miss = data.assign(y=data["y"].where(data.index != 3), w4=data["w"].where(data.index != 3))
    with pytest.warns(cv.MissingDataWarning if hasattr(cv, "MissingDataWarning") else Warning):
        r2 = cv.fit_mixed(f, miss, weights="w4")
    assert r2.nobs == len(data) - 1 and list(r2.data.index[:4]) == [0, 1, 2, 4]


def test_inputs_not_modified(data):
    before = data.copy()
    _fit(MODELS["int3"][0], data, weights="w_ate")
    pd.testing.assert_frame_equal(data, before)


def test_weighted_growth_recovers_the_slope_difference_under_confounding():
    """Known truth: the confounder raises both the chance of co-creation and the growth, so
    the unweighted slope difference is biased; ATE-weighted growth recovers tau = 0.3."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "bench_missing_calibration",
        Path(__file__).parents[3] / "benchmarks" / "bench_missing_calibration.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    d = bench.sim_growth(np.random.default_rng(7), 480, 0.3)
    f = "y ~ wave * arm + (wave | org) + (1 | prov)"
    naive = _fit(f, d).tidy().set_index("term").loc["wave:arm"]
    with warnings.catch_warnings():  # a few large comparison weights: the WeightWarning
        warnings.simplefilter("ignore")
        w = cv.propensity_weights(d, treatment="arm", covariates=["x"], unit="org").weights
    wt = _fit(f, d, weights=w).tidy().set_index("term").loc["wave:arm"]
    assert naive.estimate - 0.3 > 4 * naive.std_error  # confounded upwards
    assert abs(wt.estimate - 0.3) < 2.5 * wt.std_error
    assert wt.conf_low < 0.3 < wt.conf_high and 5 < wt.df < 12  # BM df with 12 providers


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), nested=st.booleans(), reml=st.booleans())
def test_integer_weights_are_replicated_groups(seed, nested, reml):
    """Property: an organisation with integer weight w is w copies of itself, for random
    designs (unbalanced waves, 1-3 copies), with or without a provider level."""
    rng = np.random.default_rng(seed)
    n_org = 24
    org = np.repeat(np.arange(n_org), rng.integers(2, 6, n_org))
    prov = org % 4
    d = pd.DataFrame({"org": org, "prov": prov, "t": rng.integers(0, 5, len(org)),
                      "x": rng.normal(size=len(org))})
    d["y"] = (rng.normal(size=n_org)[org] + rng.normal(0, 0.5, 4)[prov] + 0.3 * d["t"]
              + d["x"] + rng.normal(size=len(d)))
    w = rng.integers(1, 4, n_org)
    d["w"] = w[org].astype(float)
    rep = pd.concat([d[d["org"] == g].assign(org=f"{g}_{k}") for g in range(n_org)
                     for k in range(w[g])], ignore_index=True)
    f = "y ~ t + x + (1 | org)" + (" + (1 | prov)" if nested else "")
    a = _fit(f, d, weights="w", weights_scale="none", reml=reml)
    b = _fit(f, rep, reml=reml)
    np.testing.assert_allclose(a.params, b.params, atol=1e-6)
    np.testing.assert_allclose(a._fit.theta, b._fit.theta, atol=1e-4)
    assert a._fit.objective == pytest.approx(b._fit.objective, abs=1e-6)
