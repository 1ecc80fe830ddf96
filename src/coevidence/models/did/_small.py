"""Few-cluster inference for Callaway & Sant'Anna cells: CR2-type leverage adjustment and
Bell-McCaffrey (Satterthwaite) degrees of freedom.

Why cluster-robust SEs shrink with few clusters
-----------------------------------------------
A group-time cell compares the mean change of a treated cohort with the mean change of its
comparison units. Its influence function is a residual from those group means, so the residuals
of each comparison group sum to zero. When the arm (or the start period) is assigned by provider,
each group is made of a handful of providers, and summing residuals within providers loses one
provider's worth of variation per group: with ``m`` clusters in a group the cluster-summed
(CR0 / did-style clustered bootstrap) variance has expectation ``(m - 1) / m`` of the truth --
half of it with two providers per cohort, whatever the total number of clusters. A ``G / (G - 1)``
factor cannot repair that.

The fix is Bell & McCaffrey's CR2 (Pustejovsky & Tipton 2018). For a difference of group means the
hat matrix restricted to cluster ``c`` within group ``g`` is ``J / n_g``, so
``1' (I - H_cc)^{-1/2} = (1 - m_cg / n_g)^{-1/2} 1'``: each unit's influence value is multiplied
by ``(1 - m_cg / n_g)^{-1/2}``, ``m_cg`` being the number of units of its cluster in its group
(treated cohort or comparison units) in that cell. This is the exact CR2 for cells without
covariates; with covariates it adjusts for the leverage of the group mean and ignores the smaller
leverage of the covariates. A group formed by a single cluster has no between-cluster variation
left to estimate (factor 0, the Moore-Penrose choice of CR2); the caller warns.

Degrees of freedom
------------------
The Bell-McCaffrey df of an estimate are ``tr(Omega)^2 / tr(Omega^2)`` with ``Omega`` the
covariance of the adjusted cluster sums under a working model of independent, homoskedastic
period shocks (unit effects cancel in the differences). For an estimate ``sum_k w_k ATT_k`` the
cluster sums are ``sum_t R_t eps_t`` with ``R_t = sum_k w_k (1{t_k = t} - 1{b_k = t}) P_k`` and
``P_k`` the (cluster x unit) map from outcome changes to adjusted cluster sums of cell ``k``, so
``Omega = sum_t R_t R_t'``. Units with the same cluster and the same cell memberships share a
column of ``P_k``, which keeps the computation small.
"""

from __future__ import annotations

import numpy as np

from coevidence.models.did._cs import Cells

__all__ = ["bm_df", "cluster_codes", "cs_leverage", "share_scale"]

#: above this many clusters the Bell-McCaffrey df are not computed (they are then ~ G - 1)
BM_MAX_CLUSTERS = 200
_ONE = 1 - 1e-12


def cluster_codes(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Integer codes 0..G-1 for cluster labels (NaN-safe, as strings) and G."""
    _, codes = np.unique(np.asarray(values, dtype=object).astype(str), return_inverse=True)
    codes = codes.ravel().astype(np.int64)
    return codes, int(codes.max()) + 1 if len(codes) else 0


def cs_leverage(
    cells: Cells, codes: np.ndarray, G: int
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """CR2-type factors ``(1 - m_cg / n_g)^{-1/2}`` per unit and cell.

    Returns the n_units x n_cells factor matrix (1 outside a cell's sample) and the list of
    ``(cell, side)`` pairs (side +1 treated, -1 comparison) whose group is a single cluster.
    """
    if cells.members is None:
        raise ValueError("cells without membership information")  # pragma: no cover - internal
    n, K = cells.members.shape
    F = np.ones((n, K))
    single: list[tuple[int, int]] = []
    for k in range(K):
        if cells.reference[k]:
            continue
        for side in (1, -1):
            mask = cells.members[:, k] == side
            ng = int(mask.sum())
            if ng == 0:
                continue
            share = np.bincount(codes[mask], minlength=G) / ng
            f = np.where(share < _ONE, 1.0 / np.sqrt(np.clip(1.0 - share, 1e-300, None)), 0.0)
            F[mask, k] = f[codes[mask]]
            if (share >= _ONE).any():
                single.append((k, side))
    return F, single


def share_scale(codes: np.ndarray, G: int) -> np.ndarray:
    """CR2 factor for the cohort-share part of the influence function (leverage ``n_c / n``)."""
    share = np.bincount(codes, minlength=G) / len(codes)
    f = np.where(share < _ONE, 1.0 / np.sqrt(np.clip(1.0 - share, 1e-300, None)), 0.0)
    return f[codes]


def _p_matrices(cells: Cells, codes: np.ndarray, G: int):
    """Per-cell maps (K x G x n_types) from unit outcome changes to adjusted cluster sums."""
    mem = cells.members
    n, K = mem.shape
    key = np.column_stack([codes, mem.astype(np.int64)])
    uniq, inv, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    inv = inv.ravel()
    tc = uniq[:, 0]  # cluster of each type
    tm = uniq[:, 1:]  # membership of each type in each cell
    ntype = len(uniq)
    P = np.zeros((K, G, ntype))
    for k in range(K):
        if cells.reference[k]:
            continue
        for side in (1, -1):
            mask = mem[:, k] == side
            ng = int(mask.sum())
            if ng == 0:
                continue
            m = np.bincount(codes[mask], minlength=G).astype(float)
            share = m / ng
            f = np.where(share < _ONE, 1.0 / np.sqrt(np.clip(1.0 - share, 1e-300, None)), 0.0)
            a = side * n / ng
            v = f * m / ng  # G
            cols = np.flatnonzero(tm[:, k] == side)
            block = -np.repeat(v[:, None], len(cols), axis=1)
            block[tc[cols], np.arange(len(cols))] += f[tc[cols]]
            P[k][:, cols] = a * block
    return P, counts.astype(float), inv


def bm_df(
    cells: Cells, W: np.ndarray, codes: np.ndarray, G: int, cache: dict | None = None
) -> np.ndarray:
    """Bell-McCaffrey df for the estimates ``W' ATT`` (W: n_cells x m cell weights).

    Capped at ``G - 1``; NaN where an estimate has no estimable between-cluster variance.
    ``cache`` (a dict owned by the caller) keeps the design-only matrices between calls.
    """
    W = np.asarray(W, dtype=float)
    if W.ndim == 1:
        W = W[:, None]
    if cache is not None and "P" in cache:
        P, counts = cache["P"], cache["counts"]
    else:
        P, counts, _ = _p_matrices(cells, codes, G)
        if cache is not None:
            cache.update(P=P, counts=counts)
    periods = np.unique(np.r_[cells.time, cells.base[np.isfinite(cells.base)]])
    m = W.shape[1]
    omega = np.zeros((m, G, G))
    for t in periods:
        coef = (cells.time == t).astype(float) - (cells.base == t).astype(float)
        C = W * coef[:, None]  # K x m
        if not np.any(C):
            continue
        R = np.einsum("km,kgt->mgt", C, P)  # m x G x types
        omega += np.einsum("mgt,t,mht->mgh", R, counts, R)
    tr = np.einsum("mgg->m", omega)
    tr2 = np.einsum("mgh,mhg->m", omega, omega)
    with np.errstate(invalid="ignore", divide="ignore"):
        df = np.where(tr2 > 1e-300, tr**2 / tr2, np.nan)
    return np.minimum(df, G - 1)
