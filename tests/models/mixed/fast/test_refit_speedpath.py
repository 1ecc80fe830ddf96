"""The fast refit path (issue 17): fused evaluations, the direct L-BFGS-B driver and
lean ``Refitter`` refits on it, checked against the engine's own code and fresh fits.

No timings here: only that the faster code computes the same numbers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import optimize

import coevidence as cv
from coevidence.models.mixed._fast import _evaluator, _fused, _optimize
from coevidence.models.mixed._fast import _linalg as la
from coevidence.models.mixed._fast._derivatives import (
    _steps,
    criterion_and_gradient,
    satterthwaite_pieces,
    x_layout,
)
from coevidence.models.mixed._fast._deviance import factorize, precompute
from coevidence.models.mixed._fast._gradient import deviance_gradient
from coevidence.models.mixed._fast._structure import analyse
from coevidence.models.mixed._likelihood import covariances_from_varpar, theta_from
from coevidence.models.mixed.formula import build_problem
from coevidence.models.mixed.refit import _refitter

pytestmark = [
    pytest.mark.filterwarnings("ignore::coevidence.exceptions.CoevidenceWarning"),
    pytest.mark.skipif(not _fused.AVAILABLE, reason="numba not installed"),
]


def _panel(seed: int, n_prov: int = 10, orgs: int = 6, waves: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    prov = np.repeat(np.arange(n_prov), orgs * waves)
    org = np.repeat(np.arange(n_prov * orgs), waves)
    time = np.tile(np.arange(waves, dtype=float), n_prov * orgs)
    x = rng.normal(size=len(prov))
    arm = np.where(prov % 2 == 0, "b", "a")
    y = (1.0 + 0.2 * time + 0.1 * time * (arm == "b") + 0.3 * x
         + rng.normal(0, 0.5, n_prov)[prov] + rng.normal(0, 0.3, n_prov)[prov] * time
         + rng.normal(0, 0.4, n_prov * orgs)[org]
         + rng.normal(0, 0.1, n_prov * orgs)[org] * time + rng.normal(0, 0.5, len(prov)))
    return pd.DataFrame({"y": y, "time": time, "x": x, "arm": arm, "org": org.astype(str),
                         "provider": prov.astype(str)})


#: one level (q = 1, 2, 3) and two nested levels ((2, 1): the specialised kernels; others:
#: the generic ones)
FORMULAS = [
    "y ~ time + (1 | org)",
    "y ~ time * arm + (1 + time | org)",
    "y ~ time + x + (1 + time + x | org)",
    "y ~ time * arm + (1 + time | org) + (1 | provider)",
    "y ~ time + (1 | org) + (1 | provider)",
    "y ~ time * arm + (1 + time | org) + (1 + time | provider)",
    "y ~ time + (1 | org) + (1 + time | provider)",
]


def _setup(formula, reml, seed=0):
    problem, _ = build_problem(formula, _panel(seed), reml=reml)
    struct, _ = analyse(problem)
    return problem, struct, precompute(problem, struct)


def _thetas(struct):
    rng = np.random.default_rng(5)
    start = struct.start()
    return [start, start * 0.7 + 0.05, start * 1.6 + rng.normal(0, 0.2, len(start))]


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("formula", FORMULAS)
def test_evaluator_matches_engine_deviance_and_gradient(formula, reml):
    _, struct, blocks = _setup(formula, reml)
    ev = _evaluator.evaluator(blocks, struct, reml)
    assert ev is not None
    for theta in _thetas(struct):
        lams = struct.lambdas(theta)
        fac = factorize(blocks, struct, lams, keep=True)
        d0 = fac.deviance(blocks.n, reml)
        g0 = deviance_gradient(blocks, struct, lams, fac, reml)
        d1, g1 = ev.fg(theta)
        np.testing.assert_allclose(d1, d0, rtol=1e-12)
        np.testing.assert_allclose(g1, g0, rtol=1e-9, atol=1e-9 * max(1.0, np.abs(g0).max()))
        ok, d2, beta, pwrss, Ainv = ev.at(theta)
        p = blocks.p
        assert ok
        np.testing.assert_allclose(d2, d1, rtol=1e-13)
        np.testing.assert_allclose(beta, fac.beta(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(pwrss, fac.pwrss, rtol=1e-12)
        np.testing.assert_allclose(Ainv, np.linalg.inv(fac.Lm[:p, :p] @ fac.Lm[:p, :p].T),
                                   rtol=1e-9)


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("formula", FORMULAS)
def test_evaluator_matches_satterthwaite_criterion(formula, reml):
    problem, struct, blocks = _setup(formula, reml)
    ev = _evaluator.evaluator(blocks, struct, reml)
    lay = x_layout(struct, problem)
    k = len(lay.level) + 1
    rng = np.random.default_rng(2)
    x0 = np.append(rng.uniform(0.3, 1.2, k - 1) * np.where(lay.row == lay.col, 1.0, 0.3), 0.7)
    v0, g0, J0, V0 = criterion_and_gradient(blocks, struct, lay, x0, reml, jacobian=True)
    v1, g1 = ev.criterion(x0, lay.arrays())
    ok, J1, V1 = ev.jacobian(x0, lay.arrays())
    assert ok
    np.testing.assert_allclose(v1, v0, rtol=1e-12)
    np.testing.assert_allclose(g1, g0, rtol=1e-9, atol=1e-9 * np.abs(g0).max())
    np.testing.assert_allclose(J1, J0, rtol=1e-9, atol=1e-12 * np.abs(J0).max())
    np.testing.assert_allclose(V1, V0, rtol=1e-11)
    # the Hessian: central differences of that gradient, as the NumPy path takes them
    h = _steps(x0)
    H0 = np.empty((k, k))
    for i in range(k):
        e = np.zeros(k)
        e[i] = h[i]
        H0[i] = (criterion_and_gradient(blocks, struct, lay, x0 + e, reml)[1]
                 - criterion_and_gradient(blocks, struct, lay, x0 - e, reml)[1]) / (2 * h[i])
    H0 = 0.5 * (H0 + H0.T)
    np.testing.assert_allclose(ev.hessian(x0, h, lay.arrays()), H0, rtol=1e-6,
                               atol=1e-7 * np.abs(H0).max())
    # outside the parameter space: NaN, as criterion_and_gradient
    bad = x0.copy()
    bad[-1] = -1.0
    assert np.isnan(ev.criterion(bad, lay.arrays())[0])
    assert not ev.jacobian(bad, lay.arrays())[0]


def test_evaluator_failed_factorisation_is_infinite():
    _, struct, blocks = _setup(FORMULAS[3], True)
    ev = _evaluator.evaluator(blocks, struct, True)
    theta = struct.start() * np.nan
    d, g = ev.fg(theta)
    assert d == np.inf and np.all(g == 0.0)


def test_evaluator_not_used_where_it_does_not_apply(monkeypatch):
    # three grouping levels
    df = _panel(0)
    df["region"] = (df["provider"].astype(int) // 5).astype(str)
    problem, _ = build_problem("y ~ time + (1 | org) + (1 | provider) + (1 | region)", df)
    struct, _ = analyse(problem)
    assert _evaluator.evaluator(precompute(problem, struct), struct, True) is None
    # numba switched off at run time
    problem, struct, blocks = _setup(FORMULAS[3], True)
    monkeypatch.setattr(la, "USE_NUMBA", False)
    assert _evaluator.evaluator(blocks, struct, True) is None
    monkeypatch.setattr(la, "USE_NUMBA", True)
    # group weights (Blocks.wg)
    blocks.__dict__["wg"] = np.ones(struct.levels[0].G)
    blocks.__dict__.pop("_evaluator_reml", None)
    assert _evaluator.evaluator(blocks, struct, True) is None


def test_satterthwaite_pieces_numpy_path_agrees(monkeypatch):
    """satterthwaite_pieces through the fused evaluations and through the NumPy path."""
    res = cv.fit_mixed(FORMULAS[3], _panel(1))
    problem = res._problem
    struct, blocks = res._fit.vcov_at._pieces()
    sizes = tuple(len(t.columns) for t in problem.terms)
    covs, s2 = covariances_from_varpar(res._fit.varpar, sizes)
    x0 = np.append(theta_from(covs, s2), np.sqrt(s2))
    V1, J1, H1 = satterthwaite_pieces(blocks, struct, problem, x0)
    monkeypatch.setattr(_evaluator, "evaluator", lambda *a, **k: None)
    V0, J0, H0 = satterthwaite_pieces(blocks, struct, problem, x0)
    np.testing.assert_allclose(V1, V0, rtol=1e-11)
    np.testing.assert_allclose(J1, J0, rtol=1e-9, atol=1e-12 * np.abs(J0).max())
    np.testing.assert_allclose(H1, H0, rtol=1e-6, atol=1e-8 * np.abs(H0).max())


# ------------------------------------------------------------------------- L-BFGS-B driver
def _rosen(x):
    f = 100.0 * (x[1] - x[0] ** 2) ** 2 + (1.0 - x[0]) ** 2
    g = np.array([-400.0 * x[0] * (x[1] - x[0] ** 2) - 2.0 * (1.0 - x[0]),
                  200.0 * (x[1] - x[0] ** 2)])
    return float(f), g


@pytest.mark.parametrize("bounds", [None, [(None, None), (1.5, None)],
                                    [(0.0, 0.5), (None, 2.0)], [(-2.0, None), (None, None)]])
def test_direct_lbfgsb_is_scipy_minimize(bounds, monkeypatch):
    """The direct driver of scipy's L-BFGS-B routine gives minimize's answer exactly (this
    also catches a SciPy whose routine changed)."""
    opts = {"ftol": 1e-13, "gtol": 1e-9, "maxiter": 500, "maxcor": 20}
    ref = optimize.minimize(_rosen, np.array([-1.2, 1.0]), jac=True, method="L-BFGS-B",
                            bounds=bounds, options=opts)
    monkeypatch.setitem(_optimize._DIRECT, "ok", None)
    got = _optimize.lbfgsb(_rosen, np.array([-1.2, 1.0]), bounds, **opts)
    assert _optimize._DIRECT["ok"] is True
    assert np.array_equal(got.x, ref.x)
    assert got.fun == ref.fun and got.nit == ref.nit
    assert got.success == ref.success and got.message == ref.message


def test_direct_lbfgsb_falls_back(monkeypatch):
    def broken(*args):
        raise TypeError("another signature")

    real = _optimize._routine
    monkeypatch.setattr(_optimize, "_routine", lambda: (broken, *real()[1:]))
    monkeypatch.setitem(_optimize._DIRECT, "ok", None)
    got = _optimize.lbfgsb(_rosen, np.array([-1.2, 1.0]), None, ftol=1e-13, gtol=1e-9,
                           maxiter=500, maxcor=20)
    assert _optimize._DIRECT["ok"] is False
    np.testing.assert_allclose(got.x, [1.0, 1.0], atol=1e-5)


# ------------------------------------------------------------------------- refits on the evaluator
@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("formula", [FORMULAS[1], FORMULAS[3], FORMULAS[5]])
def test_lean_refits_on_the_evaluator_match_fresh_fits(formula, reml):
    """Fits and lean refits both run on the fused evaluator: a refit gives a fresh fit's
    estimates bit for bit, its df (every coefficient's and the contrast's), log-likelihood,
    SEs, theta and diagnostics."""
    res = cv.fit_mixed(formula, _panel(0), reml=reml)
    refitter = _refitter(res)
    assert _evaluator.evaluator(refitter.blocks, refitter.struct, reml) is not None
    names = list(res.params.index)
    L = np.zeros(len(names))
    L[names.index("time")] = 1.0
    frames = [_panel(s) for s in range(1, 7)]
    est = refitter.refit_many([d["y"].to_numpy() for d in frames], L)
    for d, e in zip(frames, est, strict=True):
        fresh = cv.fit_mixed(formula, d, reml=reml)
        t = fresh.tidy()
        assert np.array_equal(e.beta, t["estimate"].to_numpy())
        np.testing.assert_allclose(e.df, t["df"].to_numpy(), rtol=1e-12)
        np.testing.assert_allclose(e.contrast_df, fresh._inf.df_fn(L[None, :]), rtol=1e-12)
        assert -0.5 * e.objective == pytest.approx(fresh.log_lik, abs=1e-9)
        np.testing.assert_allclose(e.std_error, t["std_error"].to_numpy(), rtol=1e-12)
        np.testing.assert_allclose(e.theta, fresh._fit.theta, rtol=0, atol=1e-12)
        assert e.messages == tuple(fresh.diagnostics.messages)
        assert e.converged == fresh.diagnostics.converged
        assert e.singular == fresh.diagnostics.singular


def test_three_levels_refit_without_the_evaluator():
    """Three grouping levels: no fused evaluator; refits still equal fresh fits."""
    df = _panel(0)
    df["region"] = (df["provider"].astype(int) // 5).astype(str)
    f = "y ~ time + (1 | org) + (1 | provider) + (1 | region)"
    refitter = _refitter(cv.fit_mixed(f, df))
    assert _evaluator.evaluator(refitter.blocks, refitter.struct, True) is None
    d3 = _panel(3).assign(region=df["region"])
    a = refitter.estimates(d3["y"].to_numpy())
    fresh = cv.fit_mixed(f, d3)
    assert np.array_equal(a.beta, fresh.tidy()["estimate"].to_numpy())


def test_refit_of_a_singular_fit():
    """A boundary (singular) optimum: the refit reports it as a fresh fit does."""
    rng = np.random.default_rng(4)
    df = _panel(0)
    refitter = _refitter(cv.fit_mixed(FORMULAS[4], df))
    y = 1.0 + 0.2 * df["time"].to_numpy() + rng.normal(0, 1.0, len(df))  # no group variance
    a = refitter.estimates(y)
    fresh = cv.fit_mixed(FORMULAS[4], df.assign(y=y))
    assert a.singular and fresh.diagnostics.singular
    assert a.messages == tuple(fresh.diagnostics.messages)
    assert abs(-0.5 * a.objective - fresh.log_lik) < 1e-9
