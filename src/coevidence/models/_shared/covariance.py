"""Covariance estimators for linear panel fits on transformed data.

All functions take the *transformed* regressors ``X`` (demeaned, quasi-demeaned, differenced or
averaged, as the estimator requires), the residuals ``e`` on that scale and integer cluster codes.
By the Frisch-Waugh-Lovell theorem the sandwich built on transformed data equals the one from the
full dummy-variable regression, so small-sample factors are the only thing that differs between
software; they are applied here explicitly and named (see :data:`SMALL_SAMPLE`).

CR2 follows Bell & McCaffrey (2002) and Pustejovsky & Tipton (2018, JBES 36:672): adjustment
matrices ``A_g = (I - H_gg)^{-1/2}`` (symmetric Moore-Penrose square root) where ``H`` projects on
the full design, absorbed fixed effects included; degrees of freedom are the Satterthwaite
approximation under a working independence model. The wild cluster bootstrap is the restricted
(null imposed) WCR bootstrap-t of Cameron, Gelbach & Miller (2008) for p-values, with Rademacher
or Webb (2014) six-point weights; intervals are unrestricted (WCU) bootstrap-t intervals.
"""

from __future__ import annotations

import numpy as np

from coevidence.exceptions import OptionError

__all__ = [
    "SMALL_SAMPLE",
    "WILD_WEIGHTS",
    "cluster_meat",
    "cr2",
    "cr2_gls",
    "wild_cluster_bootstrap",
]

#: Named small-sample conventions for cluster-robust covariances.
SMALL_SAMPLE = ("stata", "plm_sss", "fixest_crv1", "plm_hc1", "none")

WILD_WEIGHTS = ("rademacher", "webb")


def cluster_meat(X: np.ndarray, e: np.ndarray, codes: np.ndarray, n_clusters: int) -> np.ndarray:
    """``sum_g X_g' e_g e_g' X_g`` (the HC0 cluster meat)."""
    scores = X * e[:, None]
    S = np.zeros((n_clusters, X.shape[1]))
    np.add.at(S, codes, scores)
    return S.T @ S


def _inv_sqrt_psd(B: np.ndarray, tol: float = 1e-10) -> np.ndarray:
    vals, vecs = np.linalg.eigh((B + B.T) / 2)
    keep = vals > tol * max(1.0, float(vals.max(initial=0.0)))
    inv = np.zeros_like(vals)
    inv[keep] = 1.0 / np.sqrt(vals[keep])
    return (vecs * inv) @ vecs.T


def cr2(
    X: np.ndarray, e: np.ndarray, codes: np.ndarray, n_clusters: int, Q: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """CR2 covariance and Satterthwaite (Bell-McCaffrey) df per coefficient.

    Parameters
    ----------
    X, e : transformed regressors (n x k) and residuals (n).
    codes : cluster code per row, 0..n_clusters-1.
    Q : orthonormal basis (n x r) of the column space of the full design (regressors and any
        absorbed fixed-effect dummies); ``H = Q Q'``.
    """
    M = np.linalg.pinv(X.T @ X)
    k = X.shape[1]
    groups = [np.flatnonzero(codes == g) for g in range(n_clusters)]
    A = []
    meat_scores = np.zeros((n_clusters, k))
    for g, idx in enumerate(groups):
        Qg = Q[idx]
        Ag = _inv_sqrt_psd(np.eye(len(idx)) - Qg @ Qg.T)
        A.append(Ag)
        meat_scores[g] = X[idx].T @ (Ag @ e[idx])
    V = M @ (meat_scores.T @ meat_scores) @ M
    df = np.empty(k)
    for j in range(k):
        c = M[:, j]
        U = [A[g] @ (X[idx] @ c) for g, idx in enumerate(groups)]
        uu = np.array([u @ u for u in U])
        W = np.vstack([Q[idx].T @ u for u, idx in zip(U, groups, strict=True)])  # G x r
        gram = np.diag(uu) - W @ W.T
        df[j] = np.trace(gram) ** 2 / np.sum(gram * gram)
    return V, df


def cr2_gls(
    X: np.ndarray, e: np.ndarray, codes: np.ndarray, n_clusters: int, phi_blocks: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """CR2 for a GLS fit with working covariance ``Phi`` (block-diagonal by cluster), as clubSandwich.

    ``X`` and ``e`` are on the original scale (``e = y - X beta``), ``W = Phi^{-1}``;
    ``A_g = D_g' B_g^{+1/2} D_g`` with ``Phi_g = D_g' D_g`` (upper Cholesky) and
    ``B_g = D_g (Phi_g - X_g M X_g') D_g'`` (Pustejovsky & Tipton 2018, eq. 5), since
    ``(I - H)_g Phi (I - H)_g' = Phi_g - X_g M X_g'`` when ``W = Phi^{-1}``. Satterthwaite df use
    the same working model.
    """
    k = X.shape[1]
    groups = [np.flatnonzero(codes == g) for g in range(n_clusters)]
    Ws = [np.linalg.inv(P) for P in phi_blocks]
    M = np.linalg.inv(sum(X[i].T @ W @ X[i] for i, W in zip(groups, Ws, strict=True)))
    A = []
    scores = np.zeros((n_clusters, k))
    for g, idx in enumerate(groups):
        Xg = X[idx]
        D = np.linalg.cholesky(phi_blocks[g]).T
        B = D @ (phi_blocks[g] - Xg @ M @ Xg.T) @ D.T
        Ag = D.T @ _inv_sqrt_psd(B) @ D
        A.append(Ag)
        scores[g] = Xg.T @ Ws[g] @ Ag @ e[idx]
    V = M @ (scores.T @ scores) @ M
    df = np.empty(k)
    for j in range(k):
        c = M[:, j]
        U = [A[g] @ Ws[g] @ (X[idx] @ c) for g, idx in enumerate(groups)]
        diag = np.array([u @ phi_blocks[g] @ u for g, u in enumerate(U)])
        Z = np.vstack([X[idx].T @ u for u, idx in zip(U, groups, strict=True)])  # G x k
        gram = np.diag(diag) - Z @ M @ Z.T
        df[j] = np.trace(gram) ** 2 / np.sum(gram * gram)
    return V, df


def _draw_weights(rng: np.random.Generator, kind: str, shape: tuple[int, int]) -> np.ndarray:
    if kind == "rademacher":
        return rng.choice(np.array([-1.0, 1.0]), size=shape)
    if kind == "webb":
        pts = np.array([-np.sqrt(1.5), -1.0, -np.sqrt(0.5), np.sqrt(0.5), 1.0, np.sqrt(1.5)])
        return rng.choice(pts, size=shape)
    raise OptionError(f"wild bootstrap weights must be one of {WILD_WEIGHTS}, got {kind!r}")


def _boot_t(
    X: np.ndarray,
    fitted: np.ndarray,
    resid: np.ndarray,
    codes: np.ndarray,
    G: int,
    W: np.ndarray,
    j: int,
    M: np.ndarray,
    center: float,
    factor: float,
) -> np.ndarray:
    """Bootstrap t statistics for coefficient j: y* = fitted + w_g * resid."""
    Ystar = fitted[:, None] + resid[:, None] * W[codes]  # n x B
    a = M[j]  # row j of (X'X)^-1
    xa = X @ a  # n
    bj = xa @ Ystar  # B
    Bhat = M @ (X.T @ Ystar)  # k x B
    Estar = Ystar - X @ Bhat
    S = np.zeros((G, Ystar.shape[1]))
    np.add.at(S, codes, xa[:, None] * Estar)
    se = np.sqrt(factor * np.sum(S * S, axis=0))
    return (bj - center) / se


def wild_cluster_bootstrap(
    X: np.ndarray,
    y: np.ndarray,
    codes: np.ndarray,
    n_clusters: int,
    *,
    reps: int,
    weights: str,
    seed: int | np.random.Generator | None,
    factor: float,
    conf_level: float,
) -> dict[str, np.ndarray]:
    """WCR p-values (H0: beta_j = 0) and WCU bootstrap-t intervals for every coefficient.

    Returns a dict with ``p_value``, ``conf_low``, ``conf_high`` (arrays of length k), the
    observed cluster-robust ``t`` and ``reps``.
    """
    rng = np.random.default_rng(seed)
    n, k = X.shape
    M = np.linalg.pinv(X.T @ X)
    beta = M @ X.T @ y
    resid = y - X @ beta
    S = np.zeros((n_clusters, k))
    np.add.at(S, codes, X * resid[:, None])
    V = factor * M @ (S.T @ S) @ M
    se = np.sqrt(np.diag(V))
    t_obs = beta / se
    Wd = _draw_weights(rng, weights, (n_clusters, reps))
    alpha = 1 - conf_level
    p = np.empty(k)
    lo = np.empty(k)
    hi = np.empty(k)
    for j in range(k):
        keep = [i for i in range(k) if i != j]
        Xr = X[:, keep]
        br = np.linalg.lstsq(Xr, y, rcond=None)[0] if keep else np.zeros(0)
        fit_r = Xr @ br if keep else np.zeros(n)
        t_r = _boot_t(X, fit_r, y - fit_r, codes, n_clusters, Wd, j, M, 0.0, factor)
        p[j] = np.mean(np.abs(t_r) >= abs(t_obs[j]))
        t_u = _boot_t(X, X @ beta, resid, codes, n_clusters, Wd, j, M, beta[j], factor)
        q_lo, q_hi = np.quantile(t_u, [alpha / 2, 1 - alpha / 2])
        lo[j] = beta[j] - q_hi * se[j]
        hi[j] = beta[j] - q_lo * se[j]
    return {"p_value": p, "conf_low": lo, "conf_high": hi, "t": t_obs, "reps": np.asarray(reps)}
