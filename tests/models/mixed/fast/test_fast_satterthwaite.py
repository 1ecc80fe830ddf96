"""Satterthwaite ingredients of the fast engine from its analytic gradient (issue 17)."""

import pickle
import warnings

import numpy as np
import pytest

import coevidence as cv
from coevidence.exceptions import BoundaryFitWarning
from coevidence.models.mixed import api
from coevidence.models.mixed._fast import FastEngine
from coevidence.models.mixed._fast._derivatives import criterion_and_gradient, x_layout
from coevidence.models.mixed._fast._deviance import precompute
from coevidence.models.mixed._fast._structure import analyse
from coevidence.models.mixed._inference import theta_sigma_map
from coevidence.models.mixed._likelihood import covariances_from_varpar, theta_from
from coevidence.models.mixed.datasets import load_dataset
from coevidence.models.mixed.formula import build_problem

MODELS = [
    ("sleepstudy", "reaction ~ days + (days | subject)"),
    ("sleepstudy", "reaction ~ days + (days || subject)"),
    ("hsb82", "m_ach ~ ses + sector + (ses | school)"),
]


def _x0(fit, sizes):
    covs, s2 = covariances_from_varpar(fit.varpar, sizes)
    return np.append(theta_from(covs, s2), np.sqrt(s2))


class _Generic:
    """The same fit, seen without the analytic path (the Richardson code of _inference)."""

    def __init__(self, fit):
        self.varpar, self.objective_at = fit.varpar, fit.objective_at
        self.vcov_at = lambda v: fit.vcov_at(v)


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize(("ds", "formula"), MODELS)
def test_gradient_matches_objective_differences(ds, formula, reml):
    prob, _ = build_problem(formula, load_dataset(ds), reml=reml)
    fit = FastEngine().fit(prob)
    sizes = tuple(len(t.columns) for t in prob.terms)
    x = _x0(fit, sizes) * 1.1 + 0.01  # away from the optimum: the gradient is not 0
    struct, _ = analyse(prob)
    blocks = precompute(prob, struct)
    val, g, J, V = criterion_and_gradient(blocks, struct, x_layout(struct, prob), x, reml, True)
    to_vp = theta_sigma_map(sizes)
    assert val == pytest.approx(fit.objective_at(to_vp(x)), rel=1e-10)
    np.testing.assert_allclose(V, fit.vcov_at(to_vp(x)), rtol=1e-10)
    for i in range(len(x)):
        h = 1e-5 * max(abs(x[i]), 1e-1)
        e = np.zeros_like(x)
        e[i] = h
        fd = (fit.objective_at(to_vp(x + e)) - fit.objective_at(to_vp(x - e))) / (2 * h)
        assert g[i] == pytest.approx(fd, rel=1e-5, abs=1e-5)
        jd = (fit.vcov_at(to_vp(x + e)) - fit.vcov_at(to_vp(x - e))) / (2 * h)
        np.testing.assert_allclose(J[i], jd, rtol=1e-5, atol=1e-7 * np.abs(jd).max())


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize(("ds", "formula"), MODELS)
def test_analytic_satterthwaite_matches_richardson(ds, formula, reml):
    prob, _ = build_problem(formula, load_dataset(ds), reml=reml)
    fit = FastEngine().fit(prob)
    sizes = tuple(len(t.columns) for t in prob.terms)
    new, hs_new = api._scaled_satterthwaite(fit, prob, sizes)
    old, hs_old = api._scaled_satterthwaite(_Generic(fit), prob, sizes)
    scale = np.abs(hs_old).max()
    np.testing.assert_allclose(hs_new, hs_old, atol=1e-4 * scale)
    np.testing.assert_allclose(new.jacobian, old.jacobian, rtol=1e-6,
                               atol=1e-8 * np.abs(old.jacobian).max())
    eye = np.eye(len(prob.fixed_names))
    np.testing.assert_allclose(new.df(eye), old.df(eye), rtol=1e-5)


def test_no_satterthwaite_at_fit_time_unless_needed(monkeypatch):
    calls = []
    real = api._scaled_satterthwaite

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(api, "_scaled_satterthwaite", counting)
    d = load_dataset("sleepstudy")
    f = "reaction ~ days + (days | subject)"
    for kw in ({"df_method": "residual"}, {"df_method": "z"}, {"df_method": "kenward_roger"},
               {"cov_type": "cr2"}):
        res = cv.fit_mixed(f, d, **kw)
        assert not calls, kw
        # the Hessian check runs on first access, once, and gives what the eager path gives
        assert res.diagnostics.hessian_ok and res.diagnostics.ok
        assert len(calls) == 1
        assert len(res.diagnostics.hessian_eigenvalues) == 4
        assert len(calls) == 1
        calls.clear()
    ref = cv.fit_mixed(f, d)
    assert len(calls) == 1
    lazy = cv.fit_mixed(f, d, df_method="residual")
    np.testing.assert_allclose(lazy.diagnostics.hessian_eigenvalues,
                               ref.diagnostics.hessian_eigenvalues, rtol=1e-10)
    assert lazy.diagnostics.messages == ref.diagnostics.messages


def test_lazy_diagnostics_pickle_and_keep_boundary_warning():
    d = load_dataset("sleepstudy").copy()
    noise = np.random.default_rng(0).normal(size=10)  # the same in every subject
    d["reaction"] = d["days"] * 3.0 + noise[d["days"].to_numpy().astype(int)]
    with pytest.warns(BoundaryFitWarning, match="singular"):
        res = cv.fit_mixed("reaction ~ days + (1 | subject)", d, df_method="residual")
    back = pickle.loads(pickle.dumps(res))
    assert back.diagnostics.singular
    assert back.diagnostics.messages == res.diagnostics.messages
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert isinstance(back.diagnostics.hessian_ok, bool)
