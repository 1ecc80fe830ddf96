"""Refits of a fitted mixed model to new outcomes (issue 17): same numbers as a fresh fit."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest

import coevidence as cv
from coevidence.exceptions import ModelSpecificationError
from coevidence.models.mixed.datasets import load_dataset

pytestmark = pytest.mark.filterwarnings("ignore::coevidence.exceptions.CoevidenceWarning")

FORMULA = "y ~ time * arm + (1 + time | org) + (1 | provider)"


def _three_level(seed: int, n_prov: int = 10, orgs: int = 6, waves: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    prov = np.repeat(np.arange(n_prov), orgs * waves)
    org = np.repeat(np.arange(n_prov * orgs), waves)
    time = np.tile(np.arange(waves, dtype=float), n_prov * orgs)
    arm = np.where(prov % 2 == 0, "b", "a")
    y = (1.0 + 0.2 * time + 0.1 * time * (arm == "b") + rng.normal(0, 0.5, n_prov)[prov]
         + rng.normal(0, 0.4, n_prov * orgs)[org]
         + rng.normal(0, 0.1, n_prov * orgs)[org] * time + rng.normal(0, 0.5, len(prov)))
    return pd.DataFrame({"y": y, "time": time, "arm": arm, "org": org.astype(str),
                         "provider": prov.astype(str)})


def assert_same_fit(a, b, tol=1e-8):
    ta, tb = a.tidy(), b.tidy()
    assert list(ta["term"]) == list(tb["term"])
    for col in ("estimate", "std_error", "df", "p_value", "conf_low", "conf_high"):
        np.testing.assert_allclose(ta[col], tb[col], rtol=tol, atol=tol)
    np.testing.assert_allclose(a.vcov.to_numpy(), b.vcov.to_numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(a._fit.theta, b._fit.theta, rtol=tol, atol=tol)
    np.testing.assert_allclose(a._fit.objective, b._fit.objective, rtol=tol, atol=tol)
    assert a.diagnostics.singular == b.diagnostics.singular
    assert a.diagnostics.messages == b.diagnostics.messages


@pytest.mark.parametrize("kw", [{}, {"reml": False}, {"df_method": "kenward_roger"},
                                {"cov_type": "cr2", "cluster": "provider"},
                                {"df_method": "residual", "conf_level": 0.9}])
def test_refit_equals_fresh_fit(kw):
    base = _three_level(1)
    res = cv.fit_mixed(FORMULA, base, **kw)
    for seed in (2, 3):
        new = _three_level(seed)
        fresh = cv.fit_mixed(FORMULA, new, **kw)
        ref = res.refit(new["y"].to_numpy(), cluster=kw.get("cluster"))
        assert_same_fit(ref, fresh, tol=1e-12)
        assert ref.nobs == fresh.nobs and ref.df_method == fresh.df_method
        assert ref.cov_type == fresh.cov_type
        np.testing.assert_array_equal(ref.data["y"].to_numpy(), new["y"].to_numpy())


def test_refit_sleepstudy_and_series_alignment():
    data = load_dataset("sleepstudy")
    f = "reaction ~ days + (days | subject)"
    res = cv.fit_mixed(f, data)
    y = data["reaction"] + np.random.default_rng(5).normal(0, 20, len(data))
    assert_same_fit(res.refit(y), cv.fit_mixed(f, data.assign(reaction=y)), tol=1e-12)
    shuffled = y.sample(frac=1.0, random_state=1)  # aligned on the index, not the order
    assert_same_fit(res.refit(shuffled), cv.fit_mixed(f, data.assign(reaction=y)), tol=1e-12)


def test_warm_start_reaches_the_same_optimum():
    res = cv.fit_mixed(FORMULA, _three_level(1))
    new = _three_level(4)
    fresh = cv.fit_mixed(FORMULA, new)
    warm = res.refit(new["y"].to_numpy(), warm_start=True)
    np.testing.assert_allclose(warm._fit.objective, fresh._fit.objective, rtol=1e-9)
    np.testing.assert_allclose(warm.params, fresh.params, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(warm.tidy()["df"], fresh.tidy()["df"], rtol=1e-3)


def test_missing_outcome_falls_back_to_a_fresh_fit():
    base = _three_level(1)
    res = cv.fit_mixed(FORMULA, base)
    new = _three_level(2)
    y = new["y"].to_numpy().copy()
    y[[3, 50, 51]] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = res.refit(y)
        fresh = cv.fit_mixed(FORMULA, new.assign(y=y))
    assert ref.nobs == len(y) - 3
    assert_same_fit(ref, fresh, tol=1e-12)


def test_refit_of_a_pickled_result_and_bad_length():
    res = pickle.loads(pickle.dumps(cv.fit_mixed(FORMULA, _three_level(1))))
    new = _three_level(6)
    assert_same_fit(res.refit(new["y"].to_numpy()), cv.fit_mixed(FORMULA, new), tol=1e-12)
    with pytest.raises(ModelSpecificationError):
        res.refit(new["y"].to_numpy()[:-1])


def test_growth_refit_equals_fit_growth():
    from coevidence.design.simulate import OutcomeSpec, SimulationSpec, simulate_study

    o = OutcomeSpec(response_min=-20, response_max=30, intercept=5.0, slope=0.1, arm_slope=0.12,
                    post_slope_change=0.0, sd_provider=0.3, sd_provider_slope=0.05,
                    sd_org_intercept=0.4, sd_org_slope=0.08, sd_respondent=0.5,
                    sd_residual=0.3, round_items=False, n_items=4)
    spec = SimulationSpec(n_providers=6, orgs_per_provider=3, respondents_per_org=2, n_waves=4,
                          assignment="provider", attrition=0.0, encounter_logs=False,
                          ta_months=60, responses="scores", outcomes=[o])
    panel = simulate_study(spec, seed=1).panel(["research_use"], unit="organization")
    kw = dict(levels=("provider_id", "org_id"), assigned_at="provider_id")
    res = cv.fit_growth(panel, "research_use", **kw)
    rng = np.random.default_rng(3)
    for _ in range(2):
        y = panel["research_use"].to_numpy() + rng.normal(0, 0.5, len(panel))
        fresh = cv.fit_growth(panel.assign(research_use=y), "research_use", **kw)
        ref = res.refit(y)
        assert_same_fit(ref, fresh, tol=1e-12)
        assert ref.growth.design == fresh.growth.design


# ----------------------------------------------------------------------------- lean path
def _refitter_of(res):
    from coevidence.models.mixed.refit import _refitter

    return _refitter(res)


@pytest.mark.parametrize("reml", [True, False])
def test_lean_estimates_equal_fresh_fit(reml):
    """Refitter.estimates / refit_many: beta, SE, Satterthwaite df of every coefficient and of
    an arm-by-time contrast equal a fresh fit_mixed (to 1e-10; in fact bit for bit)."""
    res = cv.fit_mixed(FORMULA, _three_level(0), reml=reml)
    refitter = _refitter_of(res)
    names = list(res.params.index)
    L = np.zeros(len(names))
    L[names.index("armb")] = 1.0
    L[names.index("time:armb")] = 3.0  # arm difference at time 3
    frames = [_three_level(s) for s in (1, 2, 3, 4)]
    lean = refitter.refit_many([d["y"].to_numpy() for d in frames], L)
    for d, e in zip(frames, lean, strict=True):
        fresh = cv.fit_mixed(FORMULA, d, reml=reml)
        t = fresh.tidy()
        for got, col in ((e.beta, "estimate"), (e.std_error, "std_error"), (e.df, "df")):
            np.testing.assert_allclose(got, t[col].to_numpy(), rtol=1e-10, atol=1e-12)
        assert np.array_equal(e.beta, t["estimate"].to_numpy())
        assert np.array_equal(e.df, t["df"].to_numpy())
        V = fresh.vcov.to_numpy()
        np.testing.assert_allclose(e.estimate, L @ fresh.params.to_numpy(), rtol=1e-10)
        np.testing.assert_allclose(e.contrast_se, np.sqrt(L @ V @ L), rtol=1e-10)
        np.testing.assert_allclose(e.contrast_df, fresh._inf.df_fn(L[None, :]), rtol=1e-10)
        assert 0 <= e.p_value <= 1
        assert e.messages == tuple(fresh.diagnostics.messages)
        assert e.converged == fresh.diagnostics.converged
        assert e.singular == fresh.diagnostics.singular
        np.testing.assert_allclose(e.theta, fresh._fit.theta, rtol=1e-10, atol=1e-12)


def test_lean_warm_start_and_other_df():
    res = cv.fit_mixed(FORMULA, _three_level(0))
    refitter = _refitter_of(res)
    ys = [_three_level(s)["y"].to_numpy() for s in (5, 6, 7)]
    cold = refitter.refit_many(ys)
    warm = refitter.refit_many(ys, warm_start=True)
    for a, b in zip(cold, warm, strict=True):
        np.testing.assert_allclose(a.beta, b.beta, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(a.df, b.df, rtol=1e-4)
    r = refitter.estimates(ys[0], df_method="residual")
    assert np.all(r.df == len(ys[0]) - len(r.beta))
    assert np.array_equal(r.beta, cold[0].beta)
    with pytest.raises(ModelSpecificationError):
        refitter.estimates(ys[0], np.ones(2))
    with pytest.raises(ModelSpecificationError):
        refitter.estimates(ys[0], df_method="kenward_roger")
