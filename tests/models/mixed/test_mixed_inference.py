"""CR2 / Bell-McCaffrey and df options; Satterthwaite and KR are checked in the reference tests."""

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.linalg as sla

from coevidence import fit_mixed
from coevidence.exceptions import ModelSpecificationError
from coevidence.models.mixed._inference import cr2
from coevidence.models.mixed._likelihood import LMMEvaluator, varpar_from
from coevidence.models.mixed.datasets import load_dataset
from coevidence.models.mixed.formula import build_problem


@pytest.fixture(scope="module")
def early_problem():
    return build_problem("cog ~ age_c * trt + (1 | id)", load_dataset("early"))[0]


def test_cr2_is_exactly_unbiased_under_the_working_model(early_problem):
    ev = LMMEvaluator(early_problem)
    vp = varpar_from((np.array([[120.0]]),), 80.0)
    rob = cr2(ev, vp, early_problem.terms[0].codes)
    X = early_problem.X
    meat = np.zeros_like(rob.M)
    for ix, Vj, Wj, Aj in zip(rob.idx, rob.Vb, rob.Wb, rob.Aj):
        Ee = Vj - X[ix] @ rob.M @ X[ix].T  # E[e_j e_j'] when V is the true covariance
        meat += X[ix].T @ Wj @ Aj @ Ee @ Aj.T @ Wj @ X[ix]
    np.testing.assert_allclose(rob.M @ meat @ rob.M, ev.vcov(vp), rtol=1e-8)


def test_cr2_reduces_to_ols_cr2_when_the_random_variance_is_zero(early_problem):
    ev = LMMEvaluator(early_problem)
    vp = varpar_from((np.array([[0.0]]),), 50.0)
    codes = early_problem.terms[0].codes
    rob = cr2(ev, vp, codes)
    X, y = early_problem.X, early_problem.y
    XtX_inv = np.linalg.inv(X.T @ X)
    e = y - X @ XtX_inv @ X.T @ y
    meat = np.zeros_like(XtX_inv)
    for g in np.unique(codes):
        ix = codes == g
        H = X[ix] @ XtX_inv @ X[ix].T
        A = np.real(sla.sqrtm(np.linalg.inv(np.eye(ix.sum()) - H)))
        u = X[ix].T @ A @ e[ix]
        meat += np.outer(u, u)
    np.testing.assert_allclose(rob.vcov, XtX_inv @ meat @ XtX_inv, rtol=1e-8)


def test_bell_mccaffrey_df_matches_brute_force(early_problem):
    ev = LMMEvaluator(early_problem)
    vp = varpar_from((np.array([[120.0]]),), 80.0)
    codes = early_problem.terms[0].codes
    rob = cr2(ev, vp, codes)
    X = early_problem.X
    n = len(X)
    V = ev.marginal_blocks(vp).toarray()
    W = np.linalg.inv(V)
    IH = np.eye(n) - X @ rob.M @ X.T @ W
    for c in np.eye(X.shape[1]):
        gs = []
        for ix, Wj, Aj in zip(rob.idx, rob.Wb, rob.Aj):
            u = np.zeros(n)
            u[ix] = Aj.T @ Wj @ X[ix] @ rob.M @ c
            gs.append(IH.T @ u)
        G = np.array([[gi @ V @ gj for gj in gs] for gi in gs])
        assert rob.df(c) == pytest.approx(np.trace(G) ** 2 / np.sum(G**2), rel=1e-8)


def test_fit_mixed_cr2_option_changes_inference_and_is_reported():
    d = load_dataset("early")
    model = fit_mixed("cog ~ age_c * trt + (1 | id)", d, engine="statsmodels")
    robust = fit_mixed("cog ~ age_c * trt + (1 | id)", d, engine="statsmodels", cov_type="cr2")
    np.testing.assert_allclose(robust.params, model.params)
    assert not np.allclose(robust.tidy()["std_error"], model.tidy()["std_error"])
    g = robust.glance().iloc[0]
    assert g["cov_type"] == "cr2" and g["df_method"] == "bell_mccaffrey"
    assert "covariance type: cr2" in robust.summary()
    assert (robust.tidy()["df"] < 103).all()


def test_cr2_cluster_must_contain_the_groups():
    d = load_dataset("early")
    with pytest.raises(ModelSpecificationError, match="nested in the clusters"):
        fit_mixed("cog ~ age_c * trt + (1 | id)", d, cov_type="cr2", cluster="age_c",
                  engine="statsmodels")
    with pytest.raises(ValueError, match="only used with cov_type='cr2'"):
        fit_mixed("cog ~ age_c * trt + (1 | id)", d, cluster="id")


@pytest.mark.parametrize("method", ["residual", "z", "satterthwaite"])
def test_df_method_changes_the_df_column(method):
    d = load_dataset("sleepstudy")
    res = fit_mixed("reaction ~ days + (days | subject)", d, df_method=method,
                    engine="statsmodels")
    df = res.tidy()["df"]
    expected = {"residual": 178.0, "z": np.inf, "satterthwaite": 17.0}[method]
    np.testing.assert_allclose(df, expected, rtol=1e-3)
    assert res.glance()["df_method"].iloc[0] == method
    assert f"df method: {method}" in res.summary()
    assert res.df_for(np.array([0.0, 1.0])) == pytest.approx(df.iloc[1], rel=1e-6)


def test_kenward_roger_needs_reml():
    with pytest.raises(ModelSpecificationError, match="REML"):
        fit_mixed("reaction ~ days + (days | subject)", load_dataset("sleepstudy"), reml=False,
                  df_method="kenward_roger")


def test_bad_options_are_rejected():
    d = load_dataset("sleepstudy")
    for kw in ({"df_method": "bogus"}, {"cov_type": "hc0"}, {"engine": "lme4"},
               {"conf_level": 1.5}):
        with pytest.raises(ValueError):
            fit_mixed("reaction ~ days + (days | subject)", d, **kw)


def test_kenward_roger_refuses_blocks_that_are_too_large(early_problem):
    from coevidence.models.mixed._inference import kenward_roger

    ev = LMMEvaluator(early_problem)
    vp = varpar_from((np.array([[120.0]]),), 80.0)
    kenward_roger(ev, vp, max_block=3)  # blocks are children (3 waves): fine
    with pytest.raises(ModelSpecificationError, match="Kenward-Roger needs dense 3 x 3"):
        kenward_roger(ev, vp, max_block=2)


def test_params_and_vcov_cannot_be_mutated_through_the_result():
    res = fit_mixed("reaction ~ days + (1 | subject)", load_dataset("sleepstudy"))
    p = res.params
    p.iloc[0] = -1.0
    v = res.vcov
    v.iloc[0, 0] = -1.0
    assert res.params.iloc[0] > 200 and res.vcov.iloc[0, 0] > 0
    assert res.tidy()["estimate"].iloc[0] > 200


def test_unconverged_fit_is_reported_with_one_fit_warning():
    from coevidence.exceptions import FitWarning
    from coevidence.models.mixed._engine import OptimizerAttempt
    from coevidence.models.mixed._sm import StatsmodelsEngine
    from coevidence.models.mixed.api import _assemble

    problem, info = build_problem("reaction ~ days + (days | subject)",
                                  load_dataset("sleepstudy"))
    good = StatsmodelsEngine().fit(problem)
    # pretend the optimizer stopped early: the same fit flagged as not converged
    bad_attempt = OptimizerAttempt("test", (), False, good.objective, 1, 0.5, "stopped")
    import dataclasses

    bad = dataclasses.replace(good, attempts=(bad_attempt,), chosen=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = _assemble(bad, problem, info, "satterthwaite", "model", None, 0.95, "")
    fits = [w for w in caught if issubclass(w.category, FitWarning)]
    assert len(fits) == 1 and "did not converge" in str(fits[0].message)
    assert not res.glance()["converged"].iloc[0]
    assert "did not converge" in res.summary()


def test_no_usable_attempt_raises_convergence_failure():
    from coevidence.exceptions import ConvergenceFailure
    from coevidence.models.mixed._sm import StatsmodelsEngine

    problem, _ = build_problem("reaction ~ days + (days | subject)", load_dataset("sleepstudy"))
    eng = StatsmodelsEngine(ladder=(("bogus", ("no_such_method",), None),))
    with pytest.raises(ConvergenceFailure) as err:
        eng.fit(problem)
    assert len(err.value.attempts) == 1 and not err.value.attempts[0].converged


def test_predict_newdata_errors_name_the_problem():
    res = fit_mixed("reaction ~ days + (1 | subject)", load_dataset("sleepstudy"))
    with pytest.raises(ModelSpecificationError, match="lacks column"):
        res.predict(pd.DataFrame({"subject": [308]}))
    with pytest.raises(ModelSpecificationError, match="missing values"):
        res.predict(pd.DataFrame({"days": [np.nan], "subject": [308]}))
