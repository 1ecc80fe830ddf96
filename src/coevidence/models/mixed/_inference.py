"""Small-sample inference for fixed effects: Satterthwaite (lmerTest), Kenward-Roger, CR2.

Satterthwaite follows lmerTest 3.1 exactly in method: the variance parameters are lme4's
``(theta, sigma)`` (so boundary fits work), their asymptotic covariance is ``2 H^-1`` with ``H``
the numerical Hessian of the (RE)ML deviance, and the gradient of ``L' vcov(beta) L`` comes from
a numerical Jacobian of ``vcov(beta)``; both use Richardson extrapolation as numDeriv does.

CR2 is the Bell-McCaffrey bias-reduced cluster-robust covariance with the fitted marginal
covariance ``V`` as working model (Pustejovsky & Tipton 2018, as clubSandwich computes it for
lme4 fits), with Satterthwaite ("BM") degrees of freedom per coefficient.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla

from coevidence.models.mixed._likelihood import (
    LMMEvaluator,
    covariances_from_varpar,
    theta_from,
    varpar_from,
)

__all__ = ["SatterthwaiteDF", "cr2", "kenward_roger", "satterthwaite", "theta_sigma_map"]


def theta_sigma_map(sizes: tuple[int, ...]) -> Callable[[np.ndarray], np.ndarray]:
    """Map lmerTest's ``(theta, sigma)`` to coevidence's ``varpar`` (covariances, sigma^2)."""

    def to_varpar(x: np.ndarray) -> np.ndarray:
        sigma = x[-1]
        pos, covs = 0, []
        for k in sizes:
            lo = np.zeros((k, k))
            for j in range(k):
                for i in range(j, k):
                    lo[i, j] = x[pos]
                    pos += 1
            covs.append(sigma**2 * lo @ lo.T)
        return varpar_from(tuple(covs), sigma**2)

    return to_varpar


def _steps(x: np.ndarray) -> np.ndarray:
    return np.where(np.abs(x) > 1e-4, 1e-3 * np.abs(x), 1e-4)


def _richardson_jacobian(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """d f / d x_i (f array-valued), central differences with one Richardson step."""
    h0 = _steps(x)
    out = []
    for i in range(len(x)):
        ests = []
        for h in (h0[i], h0[i] / 2):
            e = np.zeros_like(x)
            e[i] = h
            ests.append((np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * h))
        out.append((4 * ests[1] - ests[0]) / 3)
    return np.stack(out)


def _richardson_hessian(f: Callable[[np.ndarray], float], x: np.ndarray) -> np.ndarray:
    k = len(x)
    h0 = _steps(x)
    f0 = f(x)

    def hess(hs: np.ndarray) -> np.ndarray:
        H = np.zeros((k, k))
        for i in range(k):
            ei = np.zeros(k)
            ei[i] = hs[i]
            H[i, i] = (f(x + 2 * ei) - 2 * f0 + f(x - 2 * ei)) / (4 * hs[i] ** 2)
            for j in range(i):
                ej = np.zeros(k)
                ej[j] = hs[j]
                H[i, j] = H[j, i] = (
                    f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)
                ) / (4 * hs[i] * hs[j])
        return H

    return (4 * hess(h0 / 2) - hess(h0)) / 3


@dataclass(frozen=True)
class SatterthwaiteDF:
    """Ingredients of Satterthwaite df, reusable for any contrast ``L``."""

    vcov_beta: np.ndarray
    jacobian: np.ndarray  # (n_varpar, p, p): d vcov / d (theta, sigma)
    vcov_varpar: np.ndarray  # 2 H^-1 in (theta, sigma)
    hessian: np.ndarray

    def df(self, L: np.ndarray) -> np.ndarray:
        """Degrees of freedom for each row of ``L`` (a 1-d contrast per row)."""
        L = np.atleast_2d(np.asarray(L, dtype=float))
        out = np.empty(L.shape[0])
        for r, row in enumerate(L):
            v = row @ self.vcov_beta @ row
            g = np.einsum("kij,i,j->k", self.jacobian, row, row)
            denom = g @ self.vcov_varpar @ g
            out[r] = 2 * v**2 / denom if denom > 0 else np.inf
        return out

    def df_f(self, L: np.ndarray) -> float:
        """Denominator df of the F test of ``L beta = 0`` (lmerTest's ``contestMD``)."""
        L = np.atleast_2d(np.asarray(L, dtype=float))
        if L.shape[0] == 1:
            return float(self.df(L)[0])
        VLbeta = L @ self.vcov_beta @ L.T  # noqa: N806
        w, P = np.linalg.eigh(VLbeta)  # noqa: N806
        q = int(np.sum(w > 1e-8 * w.max()))
        PtL = (P.T @ L)[::-1][:q]  # noqa: N806
        nu = self.df(PtL)
        nu = nu[nu > 2]
        if len(nu) < q:
            return float("nan")
        E = np.sum(nu / (nu - 2))  # noqa: N806
        return float(2 * E / (E - q)) if E > q else float("nan")


def satterthwaite(
    varpar: np.ndarray,
    sizes: tuple[int, ...],
    objective_at: Callable[[np.ndarray], float],
    vcov_at: Callable[[np.ndarray], np.ndarray],
) -> SatterthwaiteDF:
    """Satterthwaite ingredients at the fitted variance parameters (lmerTest's method).

    Examples
    --------
    >>> import numpy as np
    >>> # see tests/models/mixed for a check against lmerTest on sleepstudy
    """
    covs, s2 = covariances_from_varpar(varpar, sizes)
    x0 = np.append(theta_from(covs, s2), np.sqrt(s2))
    to_vp = theta_sigma_map(sizes)

    def f(x: np.ndarray) -> float:
        return objective_at(to_vp(x))

    def g(x: np.ndarray) -> np.ndarray:
        return vcov_at(to_vp(x))

    H = _richardson_hessian(f, x0)  # noqa: N806
    try:
        A = 2 * np.linalg.inv(H)  # noqa: N806
    except np.linalg.LinAlgError:
        A = 2 * np.linalg.pinv(H)  # noqa: N806
    J = _richardson_jacobian(g, x0)  # noqa: N806
    return SatterthwaiteDF(vcov_beta=vcov_at(varpar), jacobian=J, vcov_varpar=A, hessian=H)


# ----------------------------------------------------------------------------------- CR2


def _sym_inv_sqrt(B: np.ndarray) -> np.ndarray:
    w, U = np.linalg.eigh((B + B.T) / 2)  # noqa: N806
    w = np.where(w > 1e-12 * max(w.max(), 1e-300), w, np.inf)
    return (U / np.sqrt(w)) @ U.T


class CR2:
    """CR2 covariance and Bell-McCaffrey df for the GLS fixed effects of a mixed model.

    Clusters must contain whole groups of every random-effect factor, so that the model's
    marginal covariance is block diagonal by cluster.

    Without weights the estimator is GLS with ``W_j = V_j^{-1}`` and the working model is
    ``V`` itself (clubSandwich's ``inverse_var`` case). With group ``weights`` the estimator is
    the weighted GLS of the pseudo-likelihood fit, ``W_j = V_{w,j}^{-1}`` (see
    :meth:`~coevidence.models.mixed._likelihood.LMMEvaluator.weighted_marginal`), while the
    working covariance of the data stays the model's ``V`` (the weights are not a variance):
    the adjustment matrices and the df then follow Pustejovsky & Tipton (2018) for a weight
    matrix that is not the inverse working covariance, as clubSandwich's ``CR2`` with
    ``inverse_var = FALSE``.
    """

    def __init__(self, ev: LMMEvaluator, varpar: np.ndarray, clusters: np.ndarray,
                 weights: np.ndarray | None = None) -> None:
        prob = ev.problem
        X, y = prob.X, prob.y  # noqa: N806
        V = ev.marginal_blocks(varpar)  # noqa: N806
        Vw = V if weights is None else ev.weighted_marginal(varpar, weights)  # noqa: N806
        codes = np.asarray(clusters)
        order = np.argsort(codes, kind="stable")
        bounds = np.flatnonzero(np.diff(codes[order])) + 1
        idx = np.split(order, bounds)
        self.n_clusters = len(idx)
        self.inverse_var = weights is None
        Vb, Wb = [], []  # noqa: N806
        for ix in idx:
            Vj = V[ix][:, ix].toarray()  # noqa: N806
            Vb.append(Vj)
            Wb.append(np.linalg.inv(Vj if weights is None else Vw[ix][:, ix].toarray()))
        XtWX = sum(X[ix].T @ Wj @ X[ix] for ix, Wj in zip(idx, Wb))  # noqa: N806
        M = np.linalg.inv(XtWX)  # noqa: N806
        beta = M @ sum(X[ix].T @ Wj @ y[ix] for ix, Wj in zip(idx, Wb))
        e = y - X @ beta
        self.beta = beta
        self.idx, self.M, self.Vb, self.Wb = idx, M, Vb, Wb
        # K = sum_j X_j' W_j Phi_j W_j X_j (= X'WX when W = Phi^-1)
        self.K = XtWX if self.inverse_var else sum(
            X[ix].T @ Wj @ Vj @ Wj @ X[ix] for ix, Vj, Wj in zip(idx, Vb, Wb))
        MKM = M @ self.K @ M  # noqa: N806
        self.Aj, meat = [], np.zeros_like(M)
        for ix, Vj, Wj in zip(idx, Vb, Wb):
            Xj = X[ix]  # noqa: N806
            Dj = sla.cholesky(Vj, lower=False)  # Dj' Dj = Vj  # noqa: N806
            if self.inverse_var:
                mid = Vj - Xj @ M @ Xj.T
            else:  # [(I - H) Phi (I - H)']_jj with H = X M X' W
                HPhi = Xj @ M @ (Xj.T @ Wj @ Vj)  # noqa: N806
                mid = Vj - HPhi - HPhi.T + Xj @ MKM @ Xj.T
            Bj = Dj @ mid @ Dj.T  # noqa: N806
            Aj = Dj.T @ _sym_inv_sqrt(Bj) @ Dj  # noqa: N806
            self.Aj.append(Aj)
            u = Xj.T @ Wj @ Aj @ e[ix]
            meat += np.outer(u, u)
        self.vcov = M @ meat @ M
        self.X = X

    def df(self, c: np.ndarray) -> float:
        """Bell-McCaffrey degrees of freedom for the contrast ``c' beta``."""
        c = np.asarray(c, dtype=float)
        Mc = self.M @ c  # noqa: N806
        s, t, quad = [], [], []
        for ix, Vj, Wj, Aj in zip(self.idx, self.Vb, self.Wb, self.Aj):
            uj = Aj.T @ Wj @ self.X[ix] @ Mc
            s.append(self.X[ix].T @ uj)
            if not self.inverse_var:
                t.append(self.X[ix].T @ (Wj @ (Vj @ uj)))
            quad.append(uj @ Vj @ uj)
        S = np.stack(s)  # noqa: N806
        if self.inverse_var:
            G = -S @ self.M @ S.T  # noqa: N806
        else:
            T = np.stack(t)  # noqa: N806
            SMT = S @ self.M @ T.T  # noqa: N806
            G = S @ (self.M @ self.K @ self.M) @ S.T - SMT - SMT.T  # noqa: N806
        G[np.diag_indices_from(G)] += np.asarray(quad)
        return float(np.trace(G) ** 2 / np.sum(G**2))


def cr2(ev: LMMEvaluator, varpar: np.ndarray, clusters: np.ndarray,
        weights: np.ndarray | None = None) -> CR2:
    """CR2 (Bell-McCaffrey) cluster-robust covariance; see :class:`CR2`.

    Examples
    --------
    >>> # see tests/models/mixed/test_mixed_inference.py
    """
    return CR2(ev, varpar, clusters, weights)


def _blocks(ev: LMMEvaluator) -> list[np.ndarray]:
    """Row sets over which V is block diagonal: the coarsest factor if all others nest in it."""
    terms = ev.problem.terms
    coarse = min(terms, key=lambda t: t.n_levels)
    codes = coarse.codes
    for t in terms:
        pairs = np.unique(np.stack([t.codes, codes], axis=1), axis=0)
        if len(pairs) != t.n_levels:
            return [np.arange(ev.n)]
    order = np.argsort(codes, kind="stable")
    return np.split(order, np.flatnonzero(np.diff(codes[order])) + 1)


def kenward_roger(ev: LMMEvaluator, varpar: np.ndarray, max_block: int = 5000):
    """Kenward-Roger adjusted covariance and df (pbkrtest's ``vcovAdj16`` / ``.KR_adjust``).

    ``V`` is linear in ``varpar`` (covariance elements and sigma^2), so the second-derivative
    terms vanish, as in pbkrtest. Every trace is accumulated over the blocks in which ``V`` is
    block diagonal (the groups of the coarsest factor when all factors are nested in it), so
    the cost is linear in the number of groups; a block (or a crossed design) larger than
    ``max_block`` rows is refused.

    Returns
    -------
    (vcov_adjusted, df_function)

    Examples
    --------
    >>> # see tests/models/mixed/test_mixed_reference.py for checks against pbkrtest
    """
    prob = ev.problem
    blocks = _blocks(ev)
    biggest = max(len(b) for b in blocks)
    if biggest > max_block:
        from coevidence.exceptions import ModelSpecificationError

        raise ModelSpecificationError(
            f"Kenward-Roger needs dense {biggest} x {biggest} blocks of V here (the random "
            f"effects are crossed or a top-level group is large); refused above {max_block} "
            "rows (use df_method='satterthwaite')"
        )
    X = prob.X  # noqa: N806
    Vs = ev.marginal_blocks(varpar)  # noqa: N806
    p = X.shape[1]
    # per block: W_b = V_b^-1 and the derivative matrices G_rb (constant; V linear in varpar)
    per_block = []
    for ix in blocks:
        Wb = np.linalg.inv(Vs[ix][:, ix].toarray())  # noqa: N806
        Gb = []  # noqa: N806
        for t in prob.terms:
            codes = t.codes[ix]
            same = codes[:, None] == codes[None, :]
            k = len(t.columns)
            for i in range(k):
                for j in range(i + 1):
                    Zi, Zj = t.Z[ix, i], t.Z[ix, j]  # noqa: N806
                    if i == j:
                        Gb.append(same * np.outer(Zi, Zi))
                    else:
                        Gb.append(same * (np.outer(Zi, Zj) + np.outer(Zj, Zi)))
        Gb.append(np.eye(len(ix)))
        per_block.append((ix, Wb, Gb))
    m = len(per_block[0][2])
    XtWX = np.zeros((p, p))  # noqa: N806
    P = [np.zeros((p, p)) for _ in range(m)]  # X' S^-1 G_r S^-1 X  # noqa: N806
    Q = {(r, s): np.zeros((p, p)) for r in range(m) for s in range(r, m)}  # noqa: N806
    K = np.zeros((m, m))  # tr(S^-1 G_r S^-1 G_s)  # noqa: N806
    for ix, Wb, Gb in per_block:  # noqa: N806
        Xb = X[ix]  # noqa: N806
        WX = Wb @ Xb  # noqa: N806
        XtWX += Xb.T @ WX
        H = [G @ Wb for G in Gb]  # G_r W  # noqa: N806
        O = [h @ Xb for h in H]  # G_r W X  # noqa: N806, E741
        for r in range(m):
            P[r] += WX.T @ O[r]
            for s in range(r, m):
                Q[r, s] += O[r].T @ Wb @ O[s]
                K[r, s] += np.sum(H[r].T * H[s])
    for r in range(m):
        for s in range(r + 1, m):
            K[s, r] = K[r, s]
            Q[s, r] = Q[r, s].T
    Phi = np.linalg.inv(XtWX)  # noqa: N806
    IE2 = np.empty((m, m))  # noqa: N806
    for r in range(m):
        for s in range(r, m):
            IE2[r, s] = IE2[s, r] = (K[r, s] - 2 * np.sum(Phi * Q[r, s].T)
                                     + np.sum((Phi @ P[r]) * (P[s] @ Phi)))
    W = 2 * (np.linalg.inv(IE2) if np.min(np.abs(np.linalg.eigvalsh(IE2))) > 1e-10  # noqa: N806
             else np.linalg.pinv(IE2))
    U = np.zeros_like(Phi)  # noqa: N806
    for r in range(m):
        for s in range(m):
            U += W[r, s] * (Q[r, s] - P[r] @ Phi @ P[s])
    vcov_adj = Phi + 2 * Phi @ U @ Phi

    return vcov_adj, KenwardRogerDF(Phi, P, W)


class KenwardRogerDF:
    """(denominator df, F scaling) for ``L beta = 0``, as pbkrtest's ``Lb_ddf`` (which
    lmerTest uses for ``ddf="Kenward-Roger"``: Theta from the unadjusted covariance).

    A plain object holding the pieces (picklable, unlike a closure).
    """

    def __init__(self, Phi: np.ndarray, P: list, W: np.ndarray) -> None:  # noqa: N803
        self.Phi, self.P, self.W = Phi, P, W

    def __call__(self, L: np.ndarray) -> tuple[float, float]:
        Phi, P, W = self.Phi, self.P, self.W  # noqa: N806
        m = len(P)
        L = np.atleast_2d(np.asarray(L, dtype=float))  # noqa: N806
        q = np.linalg.matrix_rank(L)
        Theta = L.T @ np.linalg.solve(L @ Phi @ L.T, L)  # noqa: N806
        TPhi = Theta @ Phi  # noqa: N806
        us = [TPhi @ P[r] @ Phi for r in range(m)]
        A1 = A2 = 0.0  # noqa: N806
        for r in range(m):
            for s in range(m):
                A1 += W[r, s] * np.trace(us[r]) * np.trace(us[s])  # noqa: N806
                A2 += W[r, s] * np.sum(us[r] * us[s].T)  # noqa: N806
        B = (A1 + 6 * A2) / (2 * q)  # noqa: N806
        g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
        den = 3 * q + 2 * (1 - g)
        c1, c2, c3 = g / den, (q - g) / den, (q + 2 - g) / den
        V0, V1, V2 = 1 + c1 * B, 1 - c2 * B, 1 - c3 * B  # noqa: N806
        rho = (1 / q) * ((1 - A2 / q) / V1) ** 2 * V0 / V2
        ddf = 4 + (q + 2) / (q * rho - 1)
        scale = 1.0 if abs(ddf - 2) < 1e-2 else ddf * (1 - A2 / q) / (ddf - 2)
        return float(ddf), float(scale)
