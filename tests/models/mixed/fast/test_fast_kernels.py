"""The numba kernels of the fast engine agree with the pure-NumPy fallback (issue 17)."""

import numpy as np
import pytest

from coevidence.models.mixed._fast import _kernels, _linalg

pytestmark = pytest.mark.skipif(not _kernels.AVAILABLE, reason="numba not installed")


def _both(fn, *args):
    old = _linalg.USE_NUMBA
    try:
        _linalg.USE_NUMBA = True
        a = fn(*args)
        _linalg.USE_NUMBA = False
        b = fn(*args)
    finally:
        _linalg.USE_NUMBA = old
    return a, b


def assert_close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * max(1.0, np.abs(b).max()))


@pytest.mark.parametrize("q", [1, 2, 3])
def test_kernels_match_numpy(q):
    rng = np.random.default_rng(q)
    G, m = 37, 4
    R = rng.normal(size=(G, q, q))
    D = R @ R.transpose(0, 2, 1) + q * np.eye(q)
    L, Lnp = _both(_linalg.bchol, D)
    assert_close(L, Lnp)
    C = rng.normal(size=(G, q, m))
    assert_close(*_both(_linalg.blsolve, L, C))
    assert_close(*_both(_linalg.bltsolve, L, C))
    assert_close(*_both(_linalg.bltsolve, L, C[:, :, 0]))
    assert_close(*_both(_linalg.blsolve, L, C[:, :, :2]))  # non-contiguous view
    lam = np.tril(rng.normal(size=(q, q)))
    assert_close(*_both(_linalg.bltmul, lam, C))
    assert_close(*_both(_linalg.bcongr, lam, D, lam))
    B = rng.normal(size=(G, q, 3))
    assert_close(*_both(_linalg.btdot, C, B))
    assert_close(*_both(_linalg.bmm, D, C))
    assert_close(*_both(_linalg.bmm, C.transpose(0, 2, 1), rng.normal(size=(q, 2))))
    assert_close(*_both(_linalg.bmv, C, rng.normal(size=m)))
    assert_close(*_both(_linalg.bsum_abt, C, rng.normal(size=(G, 3, m))))
    M = rng.normal(size=(m, m))
    assert_close(*_both(_linalg.bsum_aMbt, C, M, rng.normal(size=(G, 2, m))))
    assert_close(*_both(_linalg.gsum, C.transpose(0, 2, 1), B))
    anc = np.sort(rng.integers(0, 5, size=G))
    anc = np.unique(anc, return_inverse=True)[1]
    starts = np.flatnonzero(np.r_[True, anc[1:] != anc[:-1]])

    def sub(out0):
        out = out0.copy()
        _linalg.sub_btdot_seg(out, C, B, anc, starts)
        return out

    assert_close(*_both(sub, rng.normal(size=(anc.max() + 1, m, 3))))


def test_non_positive_pivot_is_nan():
    D = np.array([[[1.0, 2.0], [2.0, 1.0]]])
    L, Lnp = _both(_linalg.bchol, D)
    assert np.isnan(L[0, 1, 1]) and np.isnan(Lnp[0, 1, 1])


def test_engine_fit_same_with_and_without_kernels():
    from coevidence.models.mixed._fast import FastEngine
    from coevidence.models.mixed.datasets import load_dataset
    from coevidence.models.mixed.formula import build_problem

    prob, _ = build_problem("m_ach ~ ses + (ses | school)", load_dataset("hsb82"))
    a, b = _both(lambda: FastEngine().fit(prob))
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(a.beta, b.beta, rtol=1e-9)
    assert a.objective == pytest.approx(b.objective, rel=1e-12, abs=1e-8)
