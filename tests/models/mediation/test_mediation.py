"""Multilevel mediation against lme4 parts (to ~1e-6) and lavaan MSEM (stated tolerance), and
by simulation (known b_within, b_between and indirect effect; Monte Carlo CI coverage)."""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import coevidence as cv
from coevidence.exceptions import MissingDataWarning, OptionError, StudyValidationError
from coevidence.testing import check_result

FIX = Path(__file__).parents[2] / "fixtures" / "mediation"
R = json.loads((FIX / "mediation_r.json").read_text())


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return pd.read_csv(FIX / "mediation_data.csv")


@pytest.fixture(scope="module")
def res(data):
    return cv.fit_mediation(data, "y", treatment="x", mediator="m", cluster="g", seed=1)


def assert_part_matches(fit, part, rtol=1e-6):
    names = part["names"]
    np.testing.assert_allclose(fit.params[names], part["fixef"], rtol=rtol, atol=1e-9)
    np.testing.assert_allclose(fit.vcov.loc[names, names], np.array(part["vcov"]),
                               rtol=1e-5, atol=1e-10)
    np.testing.assert_allclose(fit.tidy().set_index("term").loc[names, "df"], part["df"],
                               rtol=1e-4)


def test_component_models_match_lme4(res):
    ref = R["lme4_211_none"]
    assert_part_matches(res.mediator_model, ref["mediator"])
    assert_part_matches(res.outcome_model, ref["outcome"])


@pytest.mark.parametrize("cov", ["none", "w"])
def test_effects_and_ses_match_lme4_parts(data, cov):
    ref = R[f"lme4_211_{cov}"]
    fit = cv.fit_mediation(data, "y", treatment="x", mediator="m", cluster="g",
                           covariates=None if cov == "none" else ["w"], n_draws=200, seed=2)
    t = fit.tidy().set_index("term")
    for k in ("a", "b_within", "b_between", "direct", "indirect", "total"):
        assert t.loc[k, "estimate"] == pytest.approx(ref[k], rel=1e-6, abs=1e-9), k
    ctx = ref["contextual"]
    assert t.loc["contextual", "estimate"] == pytest.approx(ctx["estimate"], rel=1e-6)
    assert t.loc["contextual", "std_error"] == pytest.approx(ctx["std_error"], rel=1e-5)
    assert t.loc["contextual", "df"] == pytest.approx(ctx["df"], rel=1e-4)
    assert t.loc["indirect", "std_error"] == pytest.approx(ref["indirect_se"], rel=1e-5)
    assert t.loc["total", "std_error"] == pytest.approx(ref["total_se"], rel=1e-5)
    se = dict(zip(ref["outcome"]["names"], ref["outcome"]["se"]))
    assert t.loc["b_between", "std_error"] == pytest.approx(se["m_between"], rel=1e-5)


def test_one_one_one_matches_lme4_parts(data):
    ref = R["lme4_111"]
    fit = cv.fit_mediation(data, "y2", treatment="z", mediator="m2", cluster="g",
                           design="1-1-1", n_draws=200, seed=3)
    assert_part_matches(fit.mediator_model, ref["mediator"])
    assert_part_matches(fit.outcome_model, ref["outcome"])
    t = fit.tidy().set_index("term")
    for k in ("indirect_within", "indirect_between"):
        assert t.loc[k, "estimate"] == pytest.approx(ref[k], rel=1e-6)
        assert t.loc[k, "std_error"] == pytest.approx(ref[f"{k}_se"], rel=1e-5)
    assert t.loc["contextual", "estimate"] == pytest.approx(ref["contextual"]["estimate"],
                                                            rel=1e-6)


def test_agreement_with_lavaan_msem(res):
    """lavaan's two-level SEM uses latent cluster means (ML); we use observed means (REML).
    a, b_within and c' agree to 0.3 lavaan SEs; b_between and the products, which carry the
    sampling error of the observed means (attenuation, Lüdtke et al. 2008), to 0.5 SEs, and
    our estimate of b_between is the smaller one. SEs agree within 20%."""
    lav = R["lavaan_211"]
    assert R["lavaan_converged"]
    t = res.tidy().set_index("term")
    pairs = {"a": "a", "b_within": "bw", "direct": "cp", "b_between": "bb",
             "indirect": "indirect", "contextual": "contextual", "total": "total"}
    for ours, theirs in pairs.items():
        diff = abs(t.loc[ours, "estimate"] - lav[theirs]["estimate"]) / lav[theirs]["std_error"]
        assert diff < (0.3 if ours in ("a", "b_within", "direct") else 0.5), (ours, diff)
        assert t.loc[ours, "std_error"] == pytest.approx(lav[theirs]["std_error"], rel=0.2), ours
    assert t.loc["b_between", "estimate"] < lav["bb"]["estimate"]
    assert abs(t.loc["b_within", "estimate"] - lav["bw"]["estimate"]) < 1e-3


def test_result_contract(res):
    check_result(res)
    assert res.glance()["estimator"].iloc[0] == "multilevel_mediation"
    back = pickle.loads(pickle.dumps(res))
    np.testing.assert_array_equal(back.draws, res.draws)
    assert "contextual" in res.summary() and "sequential ignorability" in res.summary()


def test_monte_carlo_interval_is_percentile_of_draws(res):
    j = list(res.params.index).index("indirect")
    lo, hi = np.quantile(res.draws[:, j], [0.05, 0.95])
    t = res.tidy(conf_level=0.9).set_index("term")
    assert t.loc["indirect", "conf_low"] == pytest.approx(lo)
    assert t.loc["indirect", "conf_high"] == pytest.approx(hi)
    # draws centre on the estimate (joint normal of the two models' estimates)
    assert np.mean(res.draws[:, j]) == pytest.approx(res.indirect, abs=0.01)
    same = cv.fit_mediation(pd.read_csv(FIX / "mediation_data.csv"), "y", treatment="x",
                            mediator="m", cluster="g", seed=1)
    np.testing.assert_array_equal(same.draws, res.draws)


def test_cluster_bootstrap(data):
    fit = cv.fit_mediation(data, "y", treatment="x", mediator="m", cluster="g",
                           ci="bootstrap", n_draws=20, seed=4)
    t = fit.tidy().set_index("term")
    assert fit.glance()["cov_type"].iloc[0] == "cluster_bootstrap"
    assert fit.info["n_failed"] == 0 and fit.draws.shape == (20, 7)
    assert np.isinf(t["df"]).all()
    # the bootstrap SD of the indirect effect is near the delta-method SE (0.102)
    assert 0.06 < t.loc["indirect", "std_error"] < 0.16
    np.testing.assert_allclose(t["estimate"], cv.fit_mediation(
        data, "y", treatment="x", mediator="m", cluster="g", n_draws=10).params)
    check_result(fit)


def test_input_checks(data):
    with pytest.raises(StudyValidationError, match="constant within"):
        cv.fit_mediation(data, "y", treatment="w", mediator="m", cluster="g")
    with pytest.raises(OptionError, match="design"):
        cv.fit_mediation(data, "y", treatment="x", mediator="m", cluster="g", design="2-2-1")
    with pytest.raises(OptionError, match="ci"):
        cv.fit_mediation(data, "y", treatment="x", mediator="m", cluster="g", ci="sobel")
    with pytest.raises(OptionError, match="n_draws"):
        cv.fit_mediation(data, "y", treatment="x", mediator="m", cluster="g", n_draws=1)
    with pytest.raises(StudyValidationError):
        cv.fit_mediation(data, "y", treatment="x", mediator="nope", cluster="g")
    with pytest.raises(TypeError):
        cv.fit_mediation(data, "y", "x", "m", "g")  # options are keyword-only
    d = data.copy()
    d.loc[[3, 7], "m"] = np.nan
    before = d.copy()
    with pytest.warns(MissingDataWarning, match="dropped 2"):
        fit = cv.fit_mediation(d, "y", treatment="x", mediator="m", cluster="g", n_draws=10)
    assert fit.nobs == len(d) - 2 and fit.info["n_dropped"] == 2
    pd.testing.assert_frame_equal(d, before)


# ---------------------------------------------------------------------------- simulation
TRUE = {"a": 0.5, "b_within": 0.3, "b_between": 0.8, "direct": 0.2}


def _simulate(rng, J=40, n=10):
    g = np.repeat(np.arange(J), n)
    x = rng.permutation(np.arange(J) % 2)[g]
    m = TRUE["a"] * x + rng.normal(0, 0.5, J)[g] + rng.normal(size=J * n)
    d = pd.DataFrame({"org": g, "arm": x, "use": m})
    mbar = d.groupby("org")["use"].transform("mean").to_numpy()
    d["practice"] = (TRUE["direct"] * x + TRUE["b_within"] * (m - mbar)
                     + TRUE["b_between"] * mbar + rng.normal(0, 0.3, J)[g]
                     + rng.normal(size=J * n))
    return d


def test_simulation_recovers_paths_and_covers_the_indirect_effect():
    """80 studies of 40 clusters x 10 rows: the means of a, b_within, b_between and a * b_b
    are within 3 Monte Carlo SEs of the truth, and the 95% Monte Carlo interval of the
    indirect effect (and the t interval of b_between) covers the truth in >= 70 of 80
    (P(fewer | coverage 0.95) = 0.002)."""
    rng = np.random.default_rng(20261201)
    reps = 80
    est, cover, cover_bb = [], 0, 0
    truth = TRUE["a"] * TRUE["b_between"]
    for r in range(reps):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = cv.fit_mediation(_simulate(rng), "practice", treatment="arm",
                                   mediator="use", cluster="org", n_draws=1000, seed=r)
        t = fit.tidy().set_index("term")
        est.append(t["estimate"])
        cover += t.loc["indirect", "conf_low"] <= truth <= t.loc["indirect", "conf_high"]
        cover_bb += t.loc["b_between", "conf_low"] <= TRUE["b_between"] <= t.loc[
            "b_between", "conf_high"]
    E = pd.DataFrame(est)
    for k, v in {**TRUE, "indirect": truth}.items():
        mc_se = E[k].std(ddof=1) / np.sqrt(reps)
        assert abs(E[k].mean() - v) < 3 * mc_se + 1e-3, (k, E[k].mean(), v, mc_se)
    assert cover >= 70, cover
    assert cover_bb >= 70, cover_bb
