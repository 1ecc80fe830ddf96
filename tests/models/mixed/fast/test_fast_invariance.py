"""Invariances of the fast engine (hypothesis): row order, group labels, outcome shift/scale."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coevidence.models.mixed._engine import MixedProblem, RandomTerm
from coevidence.models.mixed._fast import FastEngine


def simulate(seed: int, n_prov: int, orgs: int, waves: int):
    """3-level TA growth data: correlated org intercept/slope, provider intercept."""
    rng = np.random.default_rng(seed)
    n_org = n_prov * orgs
    prov_of_org = np.repeat(np.arange(n_prov), orgs)
    org = np.repeat(np.arange(n_org), waves)
    prov = prov_of_org[org]
    t = np.tile(np.arange(waves, dtype=float), n_org)
    arm = (prov % 2).astype(float)
    b = rng.multivariate_normal([0, 0], [[1.0, -0.15], [-0.15, 0.2]], n_org)
    y = (
        2
        + 0.4 * t
        + 0.3 * arm
        + 0.2 * arm * t
        + rng.normal(0, 0.6, n_prov)[prov]
        + b[org, 0]
        + b[org, 1] * t
        + rng.normal(0, 0.5, len(t))
    )
    return pd.DataFrame({"y": y, "t": t, "arm": arm, "org": org, "prov": prov})


def problem_of(df: pd.DataFrame, reml: bool) -> MixedProblem:
    n = len(df)
    X = np.column_stack([np.ones(n), df.t, df.arm, df.t * df.arm])
    oc, ol = pd.factorize(df.org, sort=True)
    pc, pl = pd.factorize(df.prov, sort=True)
    terms = (
        RandomTerm(
            "org",
            oc,
            pd.Index(ol),
            ("(Intercept)", "t"),
            np.column_stack([np.ones(n), df.t.to_numpy(float)]),
        ),
        RandomTerm("prov", pc, pd.Index(pl), ("(Intercept)",), np.ones((n, 1))),
    )
    return MixedProblem(
        df.y.to_numpy(float), X, ("(Intercept)", "t", "arm", "t:arm"), terms, reml=reml
    )


def assert_same(a, b, beta_b=None, scale=1.0, dll=0.0):
    """b's estimates equal a's after scaling the outcome by `scale` (intercept shift aside)."""
    se = np.sqrt(np.diag(a.vcov_beta)) * abs(scale)
    beta_a = a.beta * scale if beta_b is None else beta_b
    assert np.max(np.abs(b.beta - beta_a) / se) < 1e-5
    np.testing.assert_allclose(
        b.vcov_beta, a.vcov_beta * scale**2, atol=1e-5 * float(np.max(se)) ** 2
    )
    for Sa, Sb in zip(a.covariances, b.covariances, strict=True):
        d = np.sqrt(np.diag(Sa) * scale**2)
        np.testing.assert_allclose(Sb, Sa * scale**2, atol=1e-5 * (np.max(d) ** 2 + a.sigma2))
    assert b.sigma2 == __import__("pytest").approx(a.sigma2 * scale**2, rel=1e-6)
    np.testing.assert_allclose(b.theta, a.theta, atol=2e-5)
    assert abs(b.loglik - (a.loglik + dll)) < 1e-6 * max(1.0, abs(a.loglik))


designs = st.tuples(
    st.integers(0, 10_000), st.integers(3, 5), st.integers(3, 6), st.integers(3, 5), st.booleans()
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(design=designs, perm_seed=st.integers(0, 2**31 - 1))
def test_fast_invariant_to_row_order_and_group_labels(design, perm_seed):
    seed, n_prov, orgs, waves, reml = design
    df = simulate(seed, n_prov, orgs, waves)
    base = FastEngine().fit(problem_of(df, reml))
    rng = np.random.default_rng(perm_seed)
    shuffled = df.iloc[rng.permutation(len(df))].reset_index(drop=True)
    assert_same(base, FastEngine().fit(problem_of(shuffled, reml)))
    # relabel groups with arbitrary new ids (not in the same order)
    org_map = rng.permutation(df.org.max() + 1) * 7 + 1000
    prov_map = rng.permutation(df.prov.max() + 1) + 50
    relab = df.assign(org=org_map[df.org], prov=prov_map[df.prov])
    fit = FastEngine().fit(problem_of(relab, reml))
    assert_same(base, fit)
    # the same group gets the same conditional mode under its new label
    b0 = base.ranef[0].to_numpy()
    b1 = fit.ranef[0].loc[org_map[np.arange(len(b0))]].to_numpy()
    np.testing.assert_allclose(b1, b0, atol=1e-5 * np.sqrt(base.covariances[0][0, 0]))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    design=designs,
    shift=st.floats(-1e3, 1e3, allow_nan=False),
    scale=st.floats(0.01, 100.0).flatmap(lambda s: st.sampled_from([s, -s])),
)
def test_fast_outcome_shift_and_scale(design, shift, scale):
    seed, n_prov, orgs, waves, reml = design
    df = simulate(seed, n_prov, orgs, waves)
    base = FastEngine().fit(problem_of(df, reml))
    # shifting the outcome moves only the intercept
    fit = FastEngine().fit(problem_of(df.assign(y=df.y + shift), reml))
    beta = base.beta.copy()
    beta[0] += shift
    assert_same(base, fit, beta_b=beta)
    # scaling it scales fixed effects by s, variances by s^2; theta is scale free; the
    # log-likelihood moves by -(n or n - p) log|s| (the Jacobian of the transformation)
    fit = FastEngine().fit(problem_of(df.assign(y=df.y * scale), reml))
    n, p = len(df), 4
    dll = -(n - p if reml else n) * np.log(abs(scale))
    assert_same(base, fit, scale=scale, dll=dll)
