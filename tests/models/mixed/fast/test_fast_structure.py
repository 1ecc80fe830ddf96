"""Structure handling, the variance-parameter functions, and a dense cross-check (4 levels)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from fast_helpers import FIXTURES, build, data_for, load_models
from scipy import linalg

from coevidence.exceptions import ModelSpecificationError
from coevidence.models.mixed._engine import MixedProblem, RandomTerm
from coevidence.models.mixed._fast import FastEngine, is_singular, theta_lower
from coevidence.models.mixed._fast._deviance import factorize, precompute
from coevidence.models.mixed._fast._gradient import deviance_gradient
from coevidence.models.mixed._fast._structure import analyse, lme4_term_order


def _term(name, codes, Z, cols, correlated=True):
    codes = np.asarray(codes)
    return RandomTerm(
        name,
        codes,
        pd.Index(np.arange(codes.max() + 1)),
        tuple(cols),
        np.asarray(Z, float),
        correlated,
    )


def nested_problem(seed=0, n_top=3, branching=(3, 3, 4), reml=True):
    """A 4-level nested design (waves in units in orgs in regions), slopes at two levels."""
    rng = np.random.default_rng(seed)
    b1, b2, b3 = branching
    region = np.repeat(np.arange(n_top), b1 * b2 * b3)
    org = np.repeat(np.arange(n_top * b1), b2 * b3)
    unit = np.repeat(np.arange(n_top * b1 * b2), b3)
    t = np.tile(np.arange(b3, dtype=float), n_top * b1 * b2)
    n = len(t)
    x = rng.normal(size=n)
    X = np.column_stack([np.ones(n), t, x])
    y = (
        1
        + 0.3 * t
        + 0.5 * x
        + rng.normal(0, 0.7, n_top)[region]
        + rng.normal(0, 0.8, n_top * b1)[org]
        + rng.normal(0, 0.2, n_top * b1)[org] * t
        + rng.normal(0, 0.5, n_top * b1 * b2)[unit]
        + rng.normal(0, 0.4, n)
    )
    one = np.ones((n, 1))
    terms = (
        _term("unit", unit, np.column_stack([one[:, 0], t]), ("(Intercept)", "time")),
        _term("org", org, np.column_stack([one[:, 0], t]), ("(Intercept)", "time")),
        _term("region", region, one, ("(Intercept)",)),
        _term("org", org, x[:, None], ("x",), correlated=False),
    )
    # note: 'org' appears twice (correlated intercept/slope + an uncorrelated x slope)
    return MixedProblem(y, X, ("(Intercept)", "time", "x"), terms, reml=reml)


def dense_objective(problem, varpar):
    """-2 log-lik (or REML criterion) from the marginal covariance V = Z Sigma_b Z' + s2 I."""
    Zs, Sig = [], []
    pos = 0
    for term in problem.terms:
        k = len(term.columns)
        S = np.zeros((k, k))
        if term.correlated and k > 1:
            for r in range(k):
                for c in range(r + 1):
                    S[r, c] = S[c, r] = varpar[pos]
                    pos += 1
        else:
            S[np.diag_indices(k)] = varpar[pos : pos + k]
            pos += k
        G = term.n_levels
        J = np.zeros((len(problem.y), G))
        J[np.arange(len(problem.y)), term.codes] = 1.0
        Zs.append((J[:, :, None] * term.Z[:, None, :]).reshape(len(problem.y), G * k))
        Sig.append(np.kron(np.eye(G), S))
    s2 = varpar[-1]
    Z = np.hstack(Zs)
    Sb = linalg.block_diag(*Sig)
    n, p = problem.X.shape
    V = Z @ Sb @ Z.T + s2 * np.eye(n)
    Vi = np.linalg.inv(V)
    XtVX = problem.X.T @ Vi @ problem.X
    beta = np.linalg.solve(XtVX, problem.X.T @ Vi @ problem.y)
    r = problem.y - problem.X @ beta
    out = np.linalg.slogdet(V)[1] + r @ Vi @ r
    if problem.reml:
        out += (n - p) * np.log(2 * np.pi) + np.linalg.slogdet(XtVX)[1]
    else:
        out += n * np.log(2 * np.pi)
    blup = Sb @ Z.T @ Vi @ r
    condcov = Sb - Sb @ Z.T @ Vi @ Z @ Sb  # Cov(b | y) at fixed beta (lme4's condVar)
    return out, np.linalg.inv(XtVX), beta, blup, np.diag(condcov), Sb


@pytest.mark.parametrize("reml", [True, False])
def test_fast_four_level_matches_dense_computation(reml):
    problem = nested_problem(reml=reml)
    engine = FastEngine()
    assert engine.supports(problem) == (True, "")
    fit = engine.fit(problem)
    assert fit.converged
    obj, vcov, beta, blup, condvar, _ = dense_objective(problem, fit.varpar)
    assert fit.objective == pytest.approx(obj, rel=1e-10)
    assert fit.objective_at(fit.varpar) == pytest.approx(obj, rel=1e-10)
    np.testing.assert_allclose(fit.vcov_beta, vcov, rtol=1e-8)
    np.testing.assert_allclose(fit.beta, beta, rtol=1e-8)
    ours_b = np.concatenate([fit.ranef[i].to_numpy().ravel() for i in range(4)])
    ours_v = np.concatenate([fit.ranef_condvar[i].to_numpy().ravel() for i in range(4)])
    np.testing.assert_allclose(ours_b, blup, atol=1e-7 * np.abs(blup).max())
    np.testing.assert_allclose(ours_v, condvar, rtol=1e-7, atol=1e-12)
    # a perturbed parameter vector is worse, and the dense and fast objectives agree there too
    rng = np.random.default_rng(3)
    vp = fit.varpar * (1 + 0.05 * rng.uniform(-1, 1, len(fit.varpar)))
    obj2, vcov2, *_ = dense_objective(problem, vp)
    assert fit.objective_at(vp) == pytest.approx(obj2, rel=1e-10)
    assert obj2 > obj
    np.testing.assert_allclose(fit.vcov_at(vp), vcov2, rtol=1e-8)


def test_fast_gradient_matches_finite_differences():
    for reml in (True, False):
        problem = nested_problem(seed=5, reml=reml)
        struct, _ = analyse(problem)
        blocks = precompute(problem, struct)
        rng = np.random.default_rng(1)
        for _ in range(3):
            theta = struct.start() + rng.uniform(-0.4, 0.4, len(struct.lower))
            lams = struct.lambdas(theta)
            g = deviance_gradient(blocks, struct, lams, factorize(blocks, struct, lams, True), reml)
            n = len(problem.y)
            fd = np.empty_like(g)
            for k in range(len(theta)):
                e = np.zeros_like(theta)
                e[k] = 1e-6
                fp = factorize(blocks, struct, struct.lambdas(theta + e)).deviance(n, reml)
                fm = factorize(blocks, struct, struct.lambdas(theta - e)).deviance(n, reml)
                fd[k] = (fp - fm) / 2e-6
            np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-5)


def test_fast_rejects_crossed_factors():
    rng = np.random.default_rng(0)
    a = np.tile(np.arange(5), 8)
    b = np.repeat(np.arange(8), 5)  # every a level meets every b level: crossed
    one = np.ones((40, 1))
    problem = MixedProblem(
        rng.normal(size=40),
        one,
        ("(Intercept)",),
        (_term("b", b, one, ["(Intercept)"]), _term("a", a, one, ["(Intercept)"])),
    )
    ok, reason = FastEngine().supports(problem)
    assert not ok
    assert "crossed" in reason and "'a'" in reason and "'b'" in reason
    with pytest.raises(ModelSpecificationError, match="crossed"):
        FastEngine().fit(problem)


def test_fast_rejects_rank_deficient_fixed_effects():
    problem = nested_problem()
    X = np.column_stack([problem.X, problem.X[:, 1] * 2.0])
    bad = MixedProblem(problem.y, X, (*problem.fixed_names, "t2"), problem.terms)
    ok, reason = FastEngine().supports(bad)
    assert not ok and "rank deficient" in reason


def test_fast_does_not_mutate_inputs():
    problem = nested_problem()
    copies = [problem.y.copy(), problem.X.copy()] + [t.Z.copy() for t in problem.terms]
    codes = [t.codes.copy() for t in problem.terms]
    FastEngine().fit(problem)
    for a, b in zip([problem.y, problem.X] + [t.Z for t in problem.terms], copies, strict=True):
        np.testing.assert_array_equal(a, b)
    for t, c in zip(problem.terms, codes, strict=True):
        np.testing.assert_array_equal(t.codes, c)


def test_fast_unused_levels_get_prior_moments():
    """Levels present in ``levels`` but without rows: mode 0, conditional variance = prior."""
    problem = nested_problem()
    t0 = problem.terms[2]
    levels = pd.Index([*t0.levels, "ghost"])
    term = RandomTerm(t0.group, t0.codes, levels, t0.columns, t0.Z, t0.correlated)
    p2 = MixedProblem(
        problem.y, problem.X, problem.fixed_names, (*problem.terms[:2], term, problem.terms[3])
    )
    fit = FastEngine().fit(p2)
    ref = FastEngine().fit(problem)
    assert fit.ranef[2].loc["ghost"].iloc[0] == 0.0
    assert fit.ranef_condvar[2].loc["ghost"].iloc[0] == pytest.approx(fit.covariances[2][0, 0])
    np.testing.assert_allclose(fit.beta, ref.beta, rtol=1e-9)


def test_lme4_term_order_reproduces_mkReTrms():
    assert lme4_term_order([18, 18]) == [0, 1]  # no increase: kept
    assert lme4_term_order([100, 12]) == [0, 1]
    assert lme4_term_order([12, 100]) == [1, 0]
    assert lme4_term_order([5, 18, 18]) == [2, 1, 0]  # rev(order(nl)): ties reversed


def test_fast_theta_layout_and_bounds():
    problem = nested_problem()
    lower = theta_lower(problem)
    # unit (2x2, 96 groups), org (2x2 + 1 uncorrelated, 9 groups), region (1, 3 groups)
    assert np.isneginf(lower).sum() == 2
    assert len(lower) == 3 + 3 + 1 + 1


def _satterthwaite(fit, L):
    """lmerTest's Satterthwaite df for contrast L from vcov_at / objective_at."""
    v = fit.varpar
    h = 1e-4 * np.maximum(np.abs(v), 1e-2)
    k = len(v)

    def f(x):
        return float(L @ fit.vcov_at(x) @ L)

    g = np.array(
        [(f(v + h[i] * np.eye(k)[i]) - f(v - h[i] * np.eye(k)[i])) / (2 * h[i]) for i in range(k)]
    )
    H = np.empty((k, k))
    E = np.eye(k)
    for i in range(k):
        for j in range(k):
            H[i, j] = (
                fit.objective_at(v + h[i] * E[i] + h[j] * E[j])
                - fit.objective_at(v + h[i] * E[i] - h[j] * E[j])
                - fit.objective_at(v - h[i] * E[i] + h[j] * E[j])
                + fit.objective_at(v - h[i] * E[i] - h[j] * E[j])
            ) / (4 * h[i] * h[j])
    A = 2.0 * np.linalg.inv(H)
    return 2.0 * f(v) ** 2 / (g @ A @ g)


@pytest.mark.parametrize("file", ["sleepstudy_reference.json", "hsb82_reference.json"])
def test_fast_varpar_functions_give_lmertest_satterthwaite_df(file):
    model = next(m for m in json.loads((FIXTURES / file).read_text())["models"] if m["REML"])
    problem = build(model["formula"], data_for(model["model_id"]), True)
    fit = FastEngine().fit(problem)
    np.testing.assert_allclose(fit.vcov_at(fit.varpar), fit.vcov_beta, rtol=1e-12)
    assert fit.objective_at(fit.varpar) == pytest.approx(fit.objective, rel=1e-12)
    for j, fe in enumerate(model["fixed_effects"]):
        L = np.eye(len(fit.beta))[j]
        assert _satterthwaite(fit, L) == pytest.approx(fe["df_satterthwaite"], rel=2e-3), fe


def test_fast_varpar_layout_matches_lmertest_convention():
    model = load_models("ta3_growth_lme4.json")[0]
    problem = build(model["formula"], data_for(model["model_id"]), True)
    fit = FastEngine().fit(problem)
    S_org, S_prov = fit.covariances
    expected = [S_org[0, 0], S_org[1, 0], S_org[1, 1], S_prov[0, 0], fit.sigma2]
    np.testing.assert_allclose(fit.varpar, expected, rtol=1e-14)
    assert not is_singular(fit, problem)
    # an indefinite covariance cannot be a variance matrix: NaN, not a silent answer
    bad = fit.varpar.copy()
    bad[1] = 10 * np.sqrt(bad[0] * bad[2])
    assert np.isnan(fit.objective_at(bad))
    assert np.isnan(fit.vcov_at(bad)).all()


def test_fast_multicolumn_uncorrelated_term_equals_split_terms():
    """A diagonal (correlated=False) 2-column term is the same model as two 1-column terms."""
    problem = nested_problem(seed=2)
    unit = problem.terms[0]
    diag = RandomTerm(unit.group, unit.codes, unit.levels, unit.columns, unit.Z, False)
    split = (
        RandomTerm(unit.group, unit.codes, unit.levels, unit.columns[:1], unit.Z[:, :1], False),
        RandomTerm(unit.group, unit.codes, unit.levels, unit.columns[1:], unit.Z[:, 1:], False),
    )
    p_diag = MixedProblem(problem.y, problem.X, problem.fixed_names, (diag, *problem.terms[1:]))
    p_split = MixedProblem(problem.y, problem.X, problem.fixed_names, (*split, *problem.terms[1:]))
    a, b = FastEngine().fit(p_diag), FastEngine().fit(p_split)
    assert a.objective == pytest.approx(b.objective, rel=1e-10)
    np.testing.assert_allclose(a.beta, b.beta, rtol=1e-7)
    assert a.covariances[0][0, 1] == 0.0
    np.testing.assert_allclose(
        np.diag(a.covariances[0]), [b.covariances[0][0, 0], b.covariances[1][0, 0]], rtol=1e-5
    )
    # reported theta and varpar keep the full lower triangle (the off-diagonal is exactly 0)
    assert len(a.theta) == len(theta_lower(p_diag)) == 3 + 3 + 1 + 1
    assert a.theta[1] == 0.0
    assert len(a.varpar) == 3 + 3 + 1 + 1 + 1 and a.varpar[1] == 0.0
    assert a.objective_at(a.varpar) == pytest.approx(a.objective, rel=1e-12)


def test_fast_nested_slash_syntax_equals_explicit_terms():
    """(1 | provider_id/org_id) is (1 | org_id:provider_id) + (1 | provider_id)."""
    data = data_for("ta3")
    a = FastEngine().fit(build("y ~ time * ta_model + (1 | provider_id/org_id)", data, True))
    b = FastEngine().fit(
        build("y ~ time * ta_model + (1 | org_id) + (1 | provider_id)", data, True)
    )
    assert a.objective == pytest.approx(b.objective, rel=1e-12)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-6)
    np.testing.assert_allclose(a.beta, b.beta, rtol=1e-9)


def test_fast_rejects_non_finite_values_naming_row_and_column():
    problem = nested_problem()
    y = problem.y.copy()
    y[7] = np.nan
    bad = MixedProblem(y, problem.X, problem.fixed_names, problem.terms)
    ok, reason = FastEngine().supports(bad)
    assert not ok and "row 7" in reason and "outcome" in reason
    with pytest.raises(ModelSpecificationError, match="row 7"):
        FastEngine().fit(bad)


def test_fast_rejects_an_outcome_the_fixed_effects_fit_exactly():
    problem = nested_problem()
    exact = MixedProblem(
        problem.X @ np.array([1.0, 2.0, -1.0]), problem.X, problem.fixed_names, problem.terms
    )
    with pytest.raises(ModelSpecificationError, match="residual sum of squares 0"):
        FastEngine().fit(exact)
