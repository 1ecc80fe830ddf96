"""Crossed and partially crossed random effects (issue 17): the sparse engine against lme4.

References: tests/fixtures/crossed/crossed_reference.json, written by
tests/fixtures/crossed/make_crossed_fixtures.R (lme4 + lmerTest, tight optimizer tolerances).
Contract: 1e-6 on fixed effects, 1e-5 on variance components and the log-likelihood.
"""

from __future__ import annotations

import json
import pickle
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import coevidence as cv
from coevidence.exceptions import BoundaryFitWarning, ModelSpecificationError
from coevidence.models.mixed._crossed import SparseEngine
from coevidence.models.mixed.formula import build_problem

HERE = Path(__file__).resolve().parents[2] / "fixtures" / "crossed"
REF = json.loads((HERE / "crossed_reference.json").read_text())
DATA = {
    "penicillin": pd.read_csv(HERE / "penicillin.csv"),
    "org_provider": pd.read_csv(HERE / "org_provider.csv"),
}
NAMES = sorted(REF)
TOL_BETA = 1e-6
TOL_VC = 1e-5


def _data(name: str) -> pd.DataFrame:
    return DATA["penicillin" if name.startswith("penicillin") else "org_provider"]


def _close(a, b, tol, what):
    a, b = np.asarray(a, float), np.asarray(b, float)
    err = np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b)))
    assert err < tol, f"{what}: max (relative) difference {err:.3g} >= {tol}"


@pytest.fixture(scope="module")
def fits():
    out = {}
    for name in NAMES:
        r = REF[name]
        prob, _ = build_problem(r["formula"], _data(name), reml=r["reml"])
        out[name] = (prob, SparseEngine().fit(prob))
    return out


@pytest.mark.parametrize("name", NAMES)
def test_engine_matches_lme4(fits, name):
    r = REF[name]
    prob, fit = fits[name]
    assert fit.converged
    assert list(prob.fixed_names) == list(np.atleast_1d(r["fixed_names"]))
    _close(fit.beta, np.atleast_1d(r["beta"]), TOL_BETA, "beta")
    _close(np.sqrt(np.diag(fit.vcov_beta)), np.atleast_1d(r["se"]), TOL_BETA, "se")
    _close(fit.vcov_beta, np.atleast_2d(r["vcov"]), TOL_BETA, "vcov")
    _close(fit.theta, np.atleast_1d(r["theta"]), TOL_VC, "theta")
    _close(fit.sigma2, r["sigma2"], TOL_VC, "sigma2")
    assert abs(fit.loglik - r["loglik"]) < TOL_VC
    assert abs(fit.objective - r["objective"]) < 2 * TOL_VC
    # lme4 lists the covariance matrices per term in its order (= the problem's order)
    assert len(fit.covariances) == len(r["covariances"])
    for mine, theirs in zip(fit.covariances, r["covariances"]):
        _close(mine, np.atleast_2d(theirs), TOL_VC, "covariance")


@pytest.mark.parametrize("name", NAMES)
def test_ranef_matches_lme4(fits, name):
    prob, fit = fits[name]
    re_ = pd.DataFrame(REF[name]["ranef"])
    re_["group"] = re_["grpvar"].str.replace(r"\.\d+$", "", regex=True)
    for t, modes, cvar in zip(prob.terms, fit.ranef, fit.ranef_condvar):
        for col in t.columns:
            sub = re_[(re_["group"] == t.group) & (re_["term"] == col)].set_index("grp")
            assert len(sub) == t.n_levels
            idx = [str(v) for v in modes.index]
            _close(modes[col].to_numpy(), sub.loc[idx, "condval"].to_numpy(), TOL_VC, "modes")
            _close(np.sqrt(cvar[col].to_numpy()), sub.loc[idx, "condsd"].to_numpy(), TOL_VC,
                   "condsd")


def test_sparse_and_dense_factorisations_agree(fits):
    name = "org_provider_reml"
    prob, fit = fits[name]
    sparse = SparseEngine(dense_max=0).fit(prob)
    _close(sparse.beta, fit.beta, 1e-8, "beta")
    _close(sparse.varpar, fit.varpar, 1e-6, "varpar")
    assert abs(sparse.loglik - fit.loglik) < 1e-8
    vp = fit.varpar * 1.1
    assert abs(sparse.objective_at(vp) - fit.objective_at(vp)) < 1e-8
    _close(sparse.vcov_at(vp), fit.vcov_at(vp), 1e-8, "vcov_at")


def test_objective_at_reproduces_the_fit(fits):
    _prob, fit = fits["penicillin_reml"]
    assert abs(fit.objective_at(fit.varpar) - fit.objective) < 1e-8
    _close(fit.vcov_at(fit.varpar), fit.vcov_beta, 1e-10, "vcov_at")
    assert np.isnan(fit.objective_at(np.r_[fit.varpar[:-1], -1.0]))


@pytest.mark.parametrize("name", ["penicillin_reml", "org_provider_reml", "org_provider_ml"])
def test_fit_mixed_auto_uses_sparse_with_satterthwaite_df(name):
    r = REF[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = cv.fit_mixed(r["formula"], _data(name), reml=r["reml"])
    assert res.engine == "sparse"
    td = res.tidy()
    _close(td["estimate"], np.atleast_1d(r["beta"]), TOL_BETA, "estimate")
    _close(td["std_error"], np.atleast_1d(r["se"]), TOL_BETA, "std_error")
    # lmerTest's df are finite differences too; agreement is ~1e-6 relative
    df_ref = np.atleast_1d(r["df_satterthwaite"])
    assert np.max(np.abs(td["df"].to_numpy() - df_ref) / df_ref) < 1e-4
    assert not res.diagnostics.singular
    pickle.loads(pickle.dumps(res))


def test_nested_designs_keep_the_fast_engine():
    from coevidence.models.mixed.datasets import load_dataset

    sleep = load_dataset("sleepstudy")
    res = cv.fit_mixed("reaction ~ days + (days | subject)", sleep)
    assert res.engine == "fast"
    # and the sparse engine agrees with it on a nested model
    prob, _ = build_problem("reaction ~ days + (days | subject)", sleep)
    sp_fit = SparseEngine().fit(prob)
    _close(sp_fit.beta, res._fit.beta, 1e-7, "beta")
    _close(sp_fit.varpar, res._fit.varpar, 1e-5, "varpar")
    assert abs(sp_fit.loglik - res._fit.loglik) < 1e-6


def test_engine_choice_messages():
    df = _data("penicillin_reml")
    f = "diameter ~ 1 + (1 | plate) + (1 | sample)"
    with pytest.raises(ModelSpecificationError, match="crossed"):
        cv.fit_mixed(f, df, engine="fast")
    with pytest.raises(ModelSpecificationError):
        cv.fit_mixed(f, df, engine="statsmodels")
    res = cv.fit_mixed(f, df, engine="sparse")
    assert res.engine == "sparse"


def test_singular_crossed_fit_is_flagged():
    rng = np.random.default_rng(7)
    df = pd.DataFrame({"a": np.repeat(np.arange(15), 4), "b": np.tile(np.arange(4), 15)})
    df["y"] = rng.normal(size=15)[df["a"]] + rng.normal(size=len(df))  # no b variation
    df["y"] -= df.groupby("b")["y"].transform("mean")  # b means exactly equal
    with pytest.warns(BoundaryFitWarning):
        res = cv.fit_mixed("y ~ 1 + (1 | a) + (1 | b)", df)
    assert res.engine == "sparse"
    assert res.diagnostics.singular
    assert re.search("b", " ".join(res.diagnostics.messages))


def _crossed_data() -> pd.DataFrame:
    """1500 rows, factor a (120 levels, random slopes on x) crossed with b (15 levels)."""
    rng = np.random.default_rng(4)
    n = 1500
    d = pd.DataFrame({"a": rng.integers(0, 120, n), "b": rng.integers(0, 15, n),
                      "x": rng.normal(size=n)})
    d["y"] = (rng.normal(size=120)[d.a] + (0.3 * rng.normal(size=120))[d.a] * d.x
              + rng.normal(size=15)[d.b] + d.x + rng.normal(size=n))
    return d


@pytest.mark.parametrize("formula", [
    "y ~ x + (1 | a) + (1 | b)",
    "y ~ x + (1 + x | a) + (1 | b) + (0 + x | b)",
])
def test_block_elimination_equals_the_full_factorisation(formula):
    """The block elimination of the first (largest) term gives the same deviance, solves,
    modes and conditional variances as the dense and the sparse-LU factorisations of A."""
    from coevidence.models.mixed._crossed_system import _BlockFactor, _System

    prob, _ = build_problem(formula, _crossed_data())
    sysm = _System(prob)
    theta = sysm.start() * 0.7 + 0.05 * np.arange(sysm.n_theta)
    blk = sysm.factor(theta)
    assert isinstance(blk, _BlockFactor)
    for dense_max in (10_000, 0):  # dense Cholesky of A, then sparse LU
        full_sys = _System(prob)
        full_sys._blockwise_pieces[dense_max] = None  # force the full factorisation
        full = full_sys.factor(theta, dense_max)
        for reml in (True, False):
            assert blk.deviance(reml) == pytest.approx(full.deviance(reml), rel=1e-12)
        np.testing.assert_allclose(blk.modes(), full.modes(), rtol=1e-9, atol=1e-12)
        tm = sysm.terms[0]
        np.testing.assert_allclose(blk.inverse_blocks(tm.k, tm.offset, tm.G),
                                   full.inverse_blocks(tm.k, tm.offset, tm.G), atol=1e-12)
    fit = SparseEngine().fit(prob)
    assert fit.converged


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("formula", [
    "y ~ x + (1 | a) + (1 | b)",
    "y ~ x + (1 + x | a) + (1 | b) + (0 + x | b)",
    "y ~ x + (1 | a) + (1 + x | b)",
])
def test_block_gradient_equals_finite_differences(formula, reml):
    """The analytic gradient of the block factorisation (interior theta) against central
    differences of the criterion; at a variance on its bound it defers to differences."""
    from coevidence.models.mixed._crossed import _fd_grad
    from coevidence.models.mixed._crossed_system import _System

    prob, _ = build_problem(formula, _crossed_data())
    sysm = _System(prob)
    theta = sysm.start() * 0.7 + 0.05 * np.arange(sysm.n_theta)
    g = sysm.factor(theta).gradient(theta, reml)
    fd = _fd_grad(lambda t: sysm.factor(t).deviance(reml), theta, sysm.lower)
    np.testing.assert_allclose(g, fd, rtol=0, atol=1e-6 * max(1.0, np.abs(fd).max()))
    at_bound = theta.copy()
    at_bound[0] = 0.0
    assert sysm.factor(at_bound).gradient(at_bound, reml) is None


def test_nested_check_is_the_pairs_definition():
    """``_nested_in`` (O(n) parent map) against its definition by distinct pairs."""
    from coevidence.models.mixed._sm import _nested_in

    rng = np.random.default_rng(0)
    for _ in range(500):
        n, gi, go = rng.integers(1, 40), rng.integers(1, 8), rng.integers(1, 4)
        inner = rng.integers(0, gi, n)
        outer = rng.integers(0, go, gi)[inner]
        if rng.random() < 0.5:
            outer[rng.integers(0, n)] = rng.integers(0, go)
        pairs = np.unique(np.stack([inner, outer], axis=1), axis=0)
        assert _nested_in(inner, outer) == (len(pairs) == len(np.unique(inner)))
