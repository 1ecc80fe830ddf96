"""Two-stage (Gardner / did2s) event study at scale (issue 17).

The first stage, the second stage and the GMM influence functions are computed group-wise
(unit effects eliminated exactly, only ``q x q`` dense algebra with q = periods - 1 +
covariates), so the fit is linear in rows. These tests pin the numbers to a dense reference
implementation of the same estimator (the pre-issue-17 algebra: full dummy design, normal
equations, ``n_units x p1`` score matrix) and check that memory does not grow with
``n_units**2``.
"""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pandas as pd
import pytest

import coevidence as cv
from coevidence.datasets.panel import load_mpdta
from coevidence.models.did._regression import LongPanel, two_stage_cells

KW = {"unit": "countyreal", "time": "year", "first_treated": "first.treat"}


def _copies(mp: pd.DataFrame, k: int) -> pd.DataFrame:
    return pd.concat(
        [mp.assign(countyreal=mp["countyreal"] + c * 10**5) for c in range(k)], ignore_index=True
    )


def _panel(d: pd.DataFrame, covs=(), by=None) -> LongPanel:
    d = d.sort_values(["countyreal", "year"]).reset_index(drop=True)
    ucode, units = pd.factorize(d["countyreal"], sort=True)
    tcode, periods = pd.factorize(d["year"], sort=True)
    g = d.groupby("countyreal")["first.treat"].first().reindex(units).to_numpy(dtype=float)
    G_unit = np.where(g == 0, np.inf, g)
    if by is None:
        lev = np.full(len(units), "", dtype=object)
    else:
        lev = d.groupby("countyreal")[by].first().reindex(units).astype(str).to_numpy(object)
    X = d[list(covs)].to_numpy(dtype=float) if covs else None
    return LongPanel(
        d["lemp"].to_numpy(dtype=float),
        ucode,
        tcode,
        np.asarray(periods, dtype=float),
        G_unit,
        lev,
        X,
    )


def _dense_reference(p: LongPanel, anticipation: int) -> tuple[np.ndarray, np.ndarray]:
    """The estimator with dense dummy matrices: estimates and per-unit influence functions."""
    n, nu = len(p.y), p.n_units
    untreated = p.time < p.G - anticipation
    tseen = np.zeros(p.T, dtype=bool)
    tseen[p.t[untreated]] = True
    tcols = np.flatnonzero(tseen)[1:]
    U = np.zeros((n, nu))
    U[np.arange(n), p.u] = 1.0
    Tm = (p.t[:, None] == tcols[None, :]).astype(float)
    X1 = np.hstack([U, Tm] + ([p.X] if p.X is not None else []))
    w0 = untreated.astype(float)
    X10 = w0[:, None] * X1
    A = X10.T @ X10
    gamma = np.linalg.solve(A, X10.T @ p.y)
    ytil = p.y - X1 @ gamma
    e1 = w0 * ytil
    L = p.level_unit[p.u]
    trows = np.isfinite(p.G)
    keys = sorted(
        set(zip(L[trows].tolist(), p.G[trows].tolist(), p.time[trows].tolist(), strict=True)),
        key=lambda x: (str(x[0]), x[1], x[2]),
    )
    X2 = np.column_stack(
        [trows & (L == lv) & (p.G == g) & (p.time == t) for lv, g, t in keys]
    ).astype(float)
    counts = X2.sum(axis=0)
    beta = X2.T @ ytil / counts
    e2 = np.where(trows, ytil - X2 @ beta, 0.0)
    B = np.linalg.solve(A, X1.T @ X2)
    S1 = U.T @ (e1[:, None] * X10)
    S2 = U.T @ (e2[:, None] * X2)
    return beta, nu * (S2 - S1 @ B) / counts


@pytest.fixture(scope="module")
def mpdta():
    mp = load_mpdta()
    rng = np.random.default_rng(17)
    mp["xc"] = rng.normal(size=len(mp))
    mp["half"] = mp["countyreal"] % 2
    return mp


@pytest.mark.parametrize(
    ("covs", "anticipation", "drop04", "unbalanced", "by"),
    [
        ((), 0, False, False, None),
        (("lpop", "xc"), 0, False, False, None),
        (("xc",), 1, True, False, None),
        ((), 0, False, True, None),
        (("xc",), 0, False, False, "half"),
    ],
)
def test_matches_dense_reference(mpdta, covs, anticipation, drop04, unbalanced, by):
    d = mpdta
    if drop04:
        d = d[d["first.treat"] != 2004]
    if unbalanced:
        rng = np.random.default_rng(3)
        d = d.drop(index=rng.choice(d.index[d["year"] > 2004], 150, replace=False))
    p = _panel(d, covs, by)
    cells, _ = two_stage_cells(p, anticipation)
    beta, inf = _dense_reference(p, anticipation)
    np.testing.assert_allclose(cells.estimate, beta, rtol=0, atol=1e-10)
    np.testing.assert_allclose(cells.inf, inf, rtol=0, atol=1e-9)


def test_stacked_copies_same_estimates_scaled_variance(mpdta):
    """K identical copies: identical cell estimates, variance divided by K (CR0 by unit)."""
    kw = {**KW, "estimator": "two_stage", "cluster": "countyreal", "small_sample": "none"}
    one = cv.fit_event_study(mpdta, "lemp", **kw).aggregate("event").tidy()
    four = cv.fit_event_study(_copies(mpdta, 4), "lemp", **kw).aggregate("event").tidy()
    np.testing.assert_allclose(four["estimate"], one["estimate"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(four["std_error"] * 2, one["std_error"], rtol=1e-9)


def test_memory_is_linear_in_rows(mpdta):
    """20 copies (10,000 units): the dense n_units x p1 score matrix alone would be 800 MB."""
    p = _panel(_copies(mpdta, 20), ("xc",))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tracemalloc.start()
        try:
            two_stage_cells(p, 0)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 2_000 * len(p.y), peak  # ~ a few dozen doubles per row; 50k rows -> < 100 MB
