"""Memory layout of the problem that ``build_problem`` gives the fast engine (issue 17).

At 1M rows every per-row array costs 4-8 MB, so the random-effect columns share the fixed
effects' memory where they are the same columns, an all-ones Z is a zero-stride broadcast, and
group codes are int32 (the structure keeps them so). These tests check the layout, and that
the fit is the one of the plain layout (copied Z, int64 codes); no timing or memory thresholds.
"""

from __future__ import annotations

import pickle
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from coevidence.models.mixed._fast import FastEngine
from coevidence.models.mixed._fast._structure import analyse
from coevidence.models.mixed.formula import build_problem, random_matrix

FORMULAS = {  # the models of benchmarks/bench_mixed.py
    2: "y ~ time * ta_model + (time | org_id)",
    3: "y ~ time * ta_model + (time | org_id) + (1 | provider_id)",
}


@pytest.fixture(scope="module")
def ta():
    """Waves 0-4 of organisations in 12 providers (the design of bench_mixed_design.py)."""
    rng = np.random.default_rng(7)
    n_org = 700
    prov_of_org = rng.integers(0, 12, n_org)
    org = np.repeat(np.arange(n_org), 5)
    time = np.tile(np.arange(5.0), n_org)
    keep = rng.random(len(org)) > 0.1
    org, time = org[keep], time[keep]
    prov = prov_of_org[org]
    model = np.array(["push", "co_creation", "hybrid"])[prov % 3]
    b = rng.multivariate_normal([0.0, 0.0], [[1.0, -0.12], [-0.12, 0.09]], n_org)
    a = rng.normal(0.0, 0.5, 12)
    y = 3.0 + a[prov] + b[org, 0] + (0.3 + b[org, 1]) * time + rng.normal(0.0, 0.6, len(org))
    return pd.DataFrame({"y": y, "time": time,
                         "ta_model": pd.Categorical(model, ["push", "co_creation", "hybrid"]),
                         "org_id": org, "provider_id": prov})


def _plain(problem):
    """The same problem with private, writeable Z copies and int64 codes."""
    terms = tuple(replace(t, Z=np.array(t.Z, dtype=float), codes=t.codes.astype(np.int64))
                  for t in problem.terms)
    return replace(problem, X=np.array(problem.X), terms=terms)


def test_random_columns_are_read_only_views_of_x(ta):
    problem, _ = build_problem(FORMULAS[3], ta)
    X = problem.X
    assert not X.flags.writeable
    org, prov = problem.terms
    assert org.group == "org_id" and org.columns == ("(Intercept)", "time")
    for t in (org, prov):
        assert np.shares_memory(t.Z, X)
        assert not t.Z.flags.writeable
        np.testing.assert_array_equal(t.Z, random_matrix(" + ".join(
            "1" if c == "(Intercept)" else c for c in t.columns), ta)[0])
    with pytest.raises(ValueError):
        org.Z[0, 0] = 2.0


def test_intercept_without_fixed_intercept_is_a_broadcast():
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(30), 4)
    df = pd.DataFrame({"y": rng.normal(size=120) + rng.normal(size=30)[g],
                       "x": rng.normal(size=120), "g": g})
    problem, _ = build_problem("y ~ 0 + x + (1 | g)", df)
    Z = problem.terms[0].Z
    assert Z.shape == (120, 1) and Z.strides == (0, 0) and not Z.flags.writeable
    assert np.all(Z == 1.0)


def test_unevenly_placed_or_new_columns(ta):
    df = ta.assign(x=np.random.default_rng(1).normal(size=len(ta)))
    # (x | org_id): columns 0 and 2 of X -> a strided view
    problem, _ = build_problem("y ~ time + x + (x | org_id)", df)
    Z = problem.terms[0].Z
    assert np.shares_memory(Z, problem.X)
    np.testing.assert_array_equal(Z, problem.X[:, [0, 2]])
    # time is not a fixed effect: Z is its own array, as before
    problem, _ = build_problem("y ~ ta_model + (time | org_id)", df)
    Z = problem.terms[0].Z
    assert not np.shares_memory(Z, problem.X)
    np.testing.assert_array_equal(Z[:, 1], df["time"].to_numpy())


def test_codes_are_int32_and_the_structure_keeps_them(ta):
    problem, _ = build_problem(FORMULAS[3], ta)
    assert all(t.codes.dtype == np.int32 for t in problem.terms)
    struct, _ = analyse(problem)
    assert all(lv.codes.dtype == np.int32 for lv in struct.levels)
    # the coarsest level's codes need no renumbering: they are the problem's own array
    top = struct.levels[-1]
    assert top.codes is problem.terms[top.term_idx[0]].codes
    # int64 codes (a hand-built problem) stay int64
    struct64, _ = analyse(_plain(problem))
    assert all(lv.codes.dtype == np.int64 for lv in struct64.levels)
    for a, b in zip(struct.levels, struct64.levels, strict=True):
        np.testing.assert_array_equal(a.codes, b.codes)


def test_nested_interaction_codes_are_int32(ta):
    problem, _ = build_problem("y ~ time + (1 | provider_id/org_id)", ta)
    assert [t.group for t in problem.terms] == ["org_id:provider_id", "provider_id"]
    assert all(t.codes.dtype == np.int32 for t in problem.terms)


@pytest.mark.parametrize("levels", [2, 3])
def test_fit_equals_the_plain_layout(ta, levels):
    problem, _ = build_problem(FORMULAS[levels], ta)
    fit = FastEngine().fit(problem)
    ref = FastEngine().fit(_plain(problem))
    np.testing.assert_allclose(fit.beta, ref.beta, rtol=1e-12, atol=0)
    np.testing.assert_allclose(fit.theta, ref.theta, rtol=1e-12, atol=0)
    assert fit.loglik == pytest.approx(ref.loglik, rel=1e-14)
    for a, b in zip(fit.ranef, ref.ranef, strict=True):
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12)


def test_problem_pickles(ta):
    problem, _ = build_problem(FORMULAS[3], ta)
    back = pickle.loads(pickle.dumps(problem))
    np.testing.assert_array_equal(back.X, problem.X)
    for a, b in zip(back.terms, problem.terms, strict=True):
        np.testing.assert_array_equal(a.Z, b.Z)
        np.testing.assert_array_equal(a.codes, b.codes)


@pytest.mark.parametrize("seed", range(3))
def test_used_codes_in_int32(seed):
    from coevidence.models.mixed._fast._structure import _code_dtype, _used_codes

    rng = np.random.default_rng(seed)
    for codes in (rng.integers(0, 50, 300).astype(np.int32),  # some codes unused
                  rng.permutation(np.repeat(np.arange(20, dtype=np.int32), 3)),  # all used
                  rng.integers(0, 10**9, 50).astype(np.int32)):  # the sorting path
        assert _code_dtype(codes) == np.int32
        used, inv = _used_codes(codes, np.int32)
        ref_used, ref_inv = np.unique(codes.astype(np.int64), return_inverse=True)
        np.testing.assert_array_equal(used, ref_used)
        np.testing.assert_array_equal(inv, ref_inv)
        assert inv.dtype == np.int32
    every = np.arange(10, dtype=np.int32)
    assert _used_codes(every, np.int32)[1] is every  # no copy
    assert _code_dtype(np.arange(3)) == np.int64
