"""The fit's non-algorithmic shortcuts give the answers of the direct computations.

The design-df guard's constancy checks run on cached integer codes (no sorting or hashing per
question), the fast engine's rank check skips the SVD when ``X'X`` is well conditioned, and the
optimiser remembers points it has already evaluated.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from coevidence.models.mixed._design import _Codes, coarsest_constant_level, constant_within
from coevidence.models.mixed._fast._optimize import _Counter, _Memo
from coevidence.models.mixed._fast.engine import _full_column_rank


def _constant_ref(data, var, keys):
    keys = [keys] if isinstance(keys, str) else list(keys)
    grouped = data.assign(_v=data[var].astype(str)).groupby(keys, dropna=False)["_v"]
    return bool((grouped.nunique(dropna=False) <= 1).all())


def _coarsest_ref(data, var, levels):
    cands = []
    for g in levels:
        if g == var or not _constant_ref(data, var, g):
            continue
        per_value = data.groupby(data[var].astype(str), sort=False)[g].nunique()
        if (per_value >= 2).all():
            cands.append(g)
    if not cands:
        return None
    return min(cands, key=lambda g: (data[g].nunique(dropna=False), list(levels).index(g)))


@pytest.mark.parametrize("seed", range(6))
def test_constancy_checks_match_groupby(seed):
    rng = np.random.default_rng(seed)
    n = 400
    prov = rng.integers(0, 6, n)
    org = prov * 20 + rng.integers(0, 20, n)
    arm_of_prov = rng.integers(0, 3, 6)
    d = pd.DataFrame({
        "prov": prov.astype(str),
        "org": org,
        "arm": pd.Categorical(np.array(["a", "b", "c"])[arm_of_prov[prov]],
                              categories=["a", "b", "c", "unused"]),
        "x_org": rng.normal(size=200)[org],
        "time": rng.integers(0, 5, n).astype(float),
        "relabel": prov + 100,
    })
    if seed % 2:
        d.loc[d["org"] == org[0], "x_org"] = np.nan  # NaN is a value
    if seed % 3 == 0:
        d.loc[0, "x_org"] = 99.0  # no longer constant within org
    cache = _Codes(d)
    for var in ["arm", "x_org", "time", "relabel", "prov"]:
        for keys in ["prov", "org", ["prov", "org"], ["prov", "time"]]:
            want = _constant_ref(d, var, keys)
            assert constant_within(d, var, keys) == want, (var, keys)
            assert constant_within(d, var, keys, cache) == want, (var, keys)
        levels = ["org", "prov", "relabel"]
        assert coarsest_constant_level(d, var, levels, cache) == _coarsest_ref(d, var, levels)


def test_codes_nunique_matches_pandas():
    s = pd.DataFrame({"a": [1.0, np.nan, 1.0, 2.0], "b": list("xyxx")})
    c = _Codes(s)
    for col in s:
        for dropna in (True, False):
            assert c.nunique(col, dropna) == s[col].nunique(dropna=dropna)


def test_rank_fast_path_agrees_with_svd():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(500, 5))
    assert _full_column_rank(X)
    X[:, 4] = X[:, 0] - 2 * X[:, 1]  # exactly deficient
    assert not _full_column_rank(X)
    X[:, 4] += 1e-7 * rng.normal(size=500)  # ill-conditioned but full rank for matrix_rank
    assert _full_column_rank(X) == (np.linalg.matrix_rank(X) == 5)


def test_memo_counts_evaluations_not_lookups():
    calls = []

    def fg(x):
        calls.append(x.copy())
        return float(x @ x), 2 * x

    cf = _Counter(_Memo(fg))
    x = np.array([1.0, 2.0])
    v1, g1 = cf(x)
    g1[:] = 0.0  # callers may not alter the remembered gradient
    v2, g2 = cf(x.copy())
    assert v1 == v2 == 5.0 and np.array_equal(g2, [2.0, 4.0])
    assert cf.n == 1 and len(calls) == 1
    cf(np.array([0.0, 1.0]))
    assert cf.n == 2


@pytest.mark.parametrize("seed", range(4))
def test_used_codes_match_unique(seed):
    from coevidence.models.mixed._fast._structure import _used_codes

    rng = np.random.default_rng(seed)
    cases = [
        rng.integers(0, 50, 300),  # some codes unused
        rng.permutation(np.repeat(np.arange(20), 3)),  # every code used
        rng.integers(0, 50, 300).astype(np.int32),
        rng.integers(-5, 5, 100),  # negative: the sorting path
        rng.integers(0, 10**9, 50),  # huge codes: the sorting path
    ]
    for codes in cases:
        used, inv = _used_codes(codes)
        ref_used, ref_inv = np.unique(codes.astype(np.int64), return_inverse=True)
        np.testing.assert_array_equal(used, ref_used)
        np.testing.assert_array_equal(inv, ref_inv)
        assert inv.dtype == np.int64


def test_formula_rank_matches_matrix_rank():
    from coevidence.models.mixed.formula import _rank

    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 4))
    assert _rank(X) == np.linalg.matrix_rank(X) == 4
    Xd = np.column_stack([X, X[:, 0] + X[:, 1]])  # rank deficient
    assert _rank(Xd) == np.linalg.matrix_rank(Xd) == 4
    Xs = np.column_stack([X, 1e-7 * rng.normal(size=200)])  # ill-conditioned: SVD decides
    assert _rank(Xs) == np.linalg.matrix_rank(Xs)


def test_build_problem_does_not_copy_or_touch_the_data():
    from coevidence.models.mixed.formula import build_problem

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"y": rng.normal(size=40), "x": rng.normal(size=40),
                       "g": np.repeat(list("abcdefgh"), 5)})
    before = df.copy()
    _, info = build_problem("y ~ x + (1 | g)", df)
    pd.testing.assert_frame_equal(df, before)
    assert info.data["g"].dtype == "category" and df["g"].dtype == before["g"].dtype
    info.data.loc[info.data.index[0], "x"] = 99.0  # copy-on-write: the input is untouched
    assert df["x"].iloc[0] == before["x"].iloc[0]


def test_fit_verdict_rules():
    from types import SimpleNamespace

    from coevidence.models.mixed._fast._diagnose import fit_verdict

    t = SimpleNamespace(group="g", columns=("(Intercept)", "x"))
    kw = dict(boundary_rel=1e-6, corr_tol=1e-6, singular_tol=1e-4, grad_tol=2e-3)
    ok = fit_verdict([t], [np.array([[1.0, 0.2], [0.2, 0.5]])], np.array([1.0, 0.2, 0.6]), 1.0,
                     True, 1e-5, True, 1.0, **kw)
    assert not ok.singular and ok.messages == () and ok.boundary == ()
    corr1 = fit_verdict([t], [np.array([[1.0, 1.0], [1.0, 1.0]])], np.array([1.0, 1.0, 0.0]),
                        1.0, True, 1e-5, False, -1.0, **kw)
    assert corr1.singular and corr1.boundary == (("g", "(Intercept),x", "correlation"),)
    assert corr1.messages == ("singular fit (boundary at g:(Intercept),x)",)  # no Hessian msg
    bad = fit_verdict([t], [np.array([[1.0, 0.2], [0.2, 0.5]])], np.array([1.0, 0.2, 0.6]),
                      1.0, True, 0.01, False, -0.5, **kw)
    assert bad.messages == (
        "the deviance Hessian is not positive definite (smallest eigenvalue -0.5)",
        "relative gradient at the optimum 0.01 exceeds 0.002",
    )
    assert bad.hess_pos == 0
