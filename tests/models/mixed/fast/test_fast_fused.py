"""The fused one- and two-level kernels (``_fast/_fused.py``) agree with the level-by-level
NumPy code of ``_deviance.factorize`` and ``_gradient.gradient_pieces`` (issue 17)."""

import numpy as np
import pandas as pd
import pytest

from coevidence.models.mixed._engine import MixedProblem, RandomTerm
from coevidence.models.mixed._fast import _deviance, _fused, _gradient, _linalg, _structure

pytestmark = pytest.mark.skipif(not _fused.AVAILABLE, reason="numba not installed")


def _problem(q0: int, q1: int | None, reml: bool, seed: int = 0) -> MixedProblem:
    """Groups (40, or 40 nested in 7) with q0 (q1) random-effect columns, p = 3."""
    rng = np.random.default_rng(seed)
    n = 400
    g0 = rng.integers(0, 40, n)
    x = rng.normal(size=(n, 3))
    X = np.column_stack([np.ones(n), x[:, :2]])
    y = X @ [1.0, 0.5, -0.2] + rng.normal(size=40)[g0] + rng.normal(size=n)
    Z0 = np.column_stack([np.ones(n), x[:, : q0 - 1]]) if q0 > 1 else np.ones((n, 1))
    names0 = ("(Intercept)", "a", "b")[:q0]
    terms = [RandomTerm("g0", g0, pd.Index(range(40)), names0, Z0)]
    if q1 is not None:
        parent = rng.integers(0, 7, 40)
        g1 = parent[g0]
        Z1 = np.column_stack([np.ones(n), x[:, 2:2 + q1 - 1]]) if q1 > 1 else np.ones((n, 1))
        terms.append(RandomTerm("g1", g1, pd.Index(range(7)), ("(Intercept)", "c")[:q1], Z1))
    return MixedProblem(y, X, ("(Intercept)", "x1", "x2"), tuple(terms), reml=reml)


def _both(fn):
    old = _linalg.USE_NUMBA
    try:
        _linalg.USE_NUMBA = True
        a = fn()
        _linalg.USE_NUMBA = False
        b = fn()
    finally:
        _linalg.USE_NUMBA = old
    return a, b


def assert_close(a, b, rtol=1e-10):
    a, b = np.asarray(a), np.asarray(b)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * max(1.0, float(np.abs(b).max())))


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("q0,q1", [(1, None), (2, None), (3, None), (2, 1), (1, 2), (3, 2)])
def test_fused_matches_level_by_level(q0, q1, reml):
    prob = _problem(q0, q1, reml, seed=q0 + 3 * (q1 or 0))
    struct, _ = _structure.analyse(prob)
    blocks = _deviance.precompute(prob, struct)
    theta = np.linspace(0.4, 1.2, len(struct.start()))
    theta = np.where(struct.theta_row == struct.theta_col, theta, -0.3 * theta)
    lams = struct.lambdas(theta)

    def run():
        fac = _deviance.factorize(blocks, struct, lams, keep=True)
        pieces = _gradient.gradient_pieces(blocks, struct, lams, fac, reml, need_x=True)
        grad = _gradient.deviance_gradient(blocks, struct, lams, fac, reml)
        return fac, pieces, grad

    (fa, pa, ga), (fb, pb, gb) = _both(run)
    assert fa.ldL2 == pytest.approx(fb.ldL2, rel=1e-12)
    assert_close(fa.Lm, fb.Lm)
    for La, Lb in zip(fa.Ls, fb.Ls, strict=True):
        assert_close(La, Lb)
    for Va, Vb in zip(fa.Vs, fb.Vs, strict=True):
        assert_close(Va, Vb)
    assert fa.deviance(blocks.n, reml) == pytest.approx(fb.deviance(blocks.n, reml), rel=1e-12)
    for a_list, b_list in zip(pa, pb, strict=True):  # S1, S2, S3, TF per level
        for a, b in zip(a_list, b_list, strict=True):
            assert_close(a, b, rtol=1e-9)
    assert_close(ga, gb, rtol=1e-9)
    # the deviance of the fused factorisation is what the selected inverse / modes expect
    ua = _deviance.conditional_u(fa, struct, fa.beta())
    ub = _deviance.conditional_u(fb, struct, fb.beta())
    for a, b in zip(ua, ub, strict=True):
        assert_close(a, b, rtol=1e-9)


def test_fused_gradient_matches_finite_differences():
    prob = _problem(2, 1, True, seed=5)
    struct, _ = _structure.analyse(prob)
    blocks = _deviance.precompute(prob, struct)
    theta = np.array([0.8, -0.2, 0.5, 0.6])

    def dev(t):
        return _deviance.factorize(blocks, struct, struct.lambdas(t)).deviance(blocks.n, True)

    lams = struct.lambdas(theta)
    fac = _deviance.factorize(blocks, struct, lams, keep=True)
    g = _gradient.deviance_gradient(blocks, struct, lams, fac, True)
    h = 1e-6
    fd = np.array([(dev(theta + h * e) - dev(theta - h * e)) / (2 * h) for e in np.eye(4)])
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-6)


def test_failed_pivot_is_not_ok():
    prob = _problem(2, 1, True)
    struct, _ = _structure.analyse(prob)
    blocks = _deviance.precompute(prob, struct)
    lams = struct.lambdas(np.array([np.nan, 0.0, 1.0, 1.0]))
    assert not _deviance.factorize(blocks, struct, lams, keep=True).ok


@pytest.mark.parametrize("q0,q1", [(2, None), (3, None), (2, 1), (1, 2), (3, 2)])
def test_fused_selected_inverse_diagonal(q0, q1):
    prob = _problem(q0, q1, True, seed=11)
    struct, _ = _structure.analyse(prob)
    blocks = _deviance.precompute(prob, struct)
    theta = np.linspace(0.5, 1.0, len(struct.start()))
    lams = struct.lambdas(np.where(struct.theta_row == struct.theta_col, theta, 0.2))
    a, b = _both(lambda: _deviance.selected_inverse(
        _deviance.factorize(blocks, struct, lams, keep=True), struct))
    for x, y in zip(a, b, strict=True):
        assert_close(x, y)
