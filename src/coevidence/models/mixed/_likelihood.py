"""Engine-independent (RE)ML evaluation of a :class:`MixedProblem` at given variance parameters.

Used by the statsmodels engine (to compute lme4-comparable quantities from its estimates and the
``vcov_at``/``objective_at`` functions that Satterthwaite inference differentiates) and by the
inference code. Cost per evaluation is O(q^3) in the number q of random effects after one
O(n q) precomputation of the cross products ``Z'Z``, ``Z'X``, ``Z'y`` (n rows never revisited),
so it is meant for moderate q (a few thousand random effects at most).

``V = sigma2 I + Z D Z'`` with ``D`` block diagonal. With ``M = sigma2 I + Z'Z D`` (no inverse
of ``D`` is needed, so boundary and slightly indefinite ``D`` are fine)::

    V^-1 = (I - Z D M^-1 Z') / sigma2,   log|V| = (n - q) log sigma2 + log|M|.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from coevidence.models.mixed._engine import MixedProblem

__all__ = ["LMMEvaluator", "covariances_from_varpar", "theta_from", "varpar_from"]

_LOG2PI = float(np.log(2.0 * np.pi))


def _tri_index(k: int) -> list[tuple[int, int]]:
    """Lower-triangle positions of a k x k matrix, row-major: (0,0), (1,0), (1,1), (2,0)..."""
    return [(i, j) for i in range(k) for j in range(i + 1)]


def varpar_from(covariances: tuple[np.ndarray, ...], sigma2: float) -> np.ndarray:
    """Pack per-term covariance matrices and the residual variance into ``varpar``.

    Examples
    --------
    >>> varpar_from((np.array([[4.0, 1.0], [1.0, 2.0]]),), 3.0)
    array([4., 1., 2., 3.])
    """
    out = [c[i, j] for c in covariances for (i, j) in _tri_index(c.shape[0])]
    return np.asarray([*out, sigma2], dtype=float)


def covariances_from_varpar(
    varpar: np.ndarray, sizes: tuple[int, ...]
) -> tuple[tuple[np.ndarray, ...], float]:
    """Inverse of :func:`varpar_from` given the number of columns of each term.

    Examples
    --------
    >>> covs, s2 = covariances_from_varpar(np.array([4.0, 1.0, 2.0, 3.0]), (2,))
    >>> covs[0].tolist(), s2
    ([[4.0, 1.0], [1.0, 2.0]], 3.0)
    """
    varpar = np.asarray(varpar, dtype=float)
    pos, covs = 0, []
    for k in sizes:
        c = np.zeros((k, k))
        for i, j in _tri_index(k):
            c[i, j] = c[j, i] = varpar[pos]
            pos += 1
        covs.append(c)
    if pos != len(varpar) - 1:
        raise ValueError(f"varpar has {len(varpar)} elements, expected {pos + 1}")
    return tuple(covs), float(varpar[-1])


def _lower_factor(c: np.ndarray) -> np.ndarray:
    """Lower-triangular L with L L' = c for positive semi-definite c (zeros allowed)."""
    k = c.shape[0]
    try:
        return np.linalg.cholesky(c)
    except np.linalg.LinAlgError:
        w, u = np.linalg.eigh((c + c.T) / 2)
        root = u * np.sqrt(np.clip(w, 0.0, None))
        r = np.linalg.qr(root.T, mode="r")  # root' = Q R  ->  root root' = R' R
        lo = r.T[:k, :k]
        signs = np.where(np.diag(lo) < 0, -1.0, 1.0)
        return lo * signs


def theta_from(covariances: tuple[np.ndarray, ...], sigma2: float) -> np.ndarray:
    """lme4's ``theta``: lower-triangular relative factors, column-major, term by term.

    Examples
    --------
    >>> theta_from((np.array([[4.0]]),), 1.0)
    array([2.])
    """
    out: list[float] = []
    sigma = np.sqrt(sigma2)
    for c in covariances:
        lo = _lower_factor(c) / sigma
        k = c.shape[0]
        out += [lo[i, j] for j in range(k) for i in range(j, k)]
    return np.asarray(out)


@dataclass(frozen=True)
class _Parts:
    beta: np.ndarray
    vcov: np.ndarray
    objective: float
    minv_ztr: np.ndarray  # M^-1 Z' r
    minv: np.ndarray
    D: np.ndarray


class LMMEvaluator:
    """Profiled pieces of a linear mixed model at arbitrary variance parameters.

    Parameters
    ----------
    problem : MixedProblem

    Examples
    --------
    >>> import pandas as pd
    >>> from coevidence.models.mixed.formula import build_problem
    >>> df = pd.DataFrame({"y": [1.0, 2.0, 2.5, 4.0, 3.0, 5.0], "g": [1, 1, 2, 2, 3, 3]})
    >>> ev = LMMEvaluator(build_problem("y ~ 1 + (1 | g)", df)[0])
    >>> round(ev.objective(np.array([1.0, 1.0])), 4) > 0
    True
    """

    def __init__(self, problem: MixedProblem) -> None:
        self.problem = problem
        self.reml = problem.reml
        y, X = problem.y, problem.X
        self.n, self.p = X.shape
        self.sizes = tuple(len(t.columns) for t in problem.terms)
        offsets, q = [], 0
        for t in problem.terms:
            offsets.append(q)
            q += t.n_levels * len(t.columns)
        self.q = q
        self.offsets = tuple(offsets)
        rows_all, cols_all, vals_all = [], [], []
        for t, off in zip(problem.terms, offsets):
            k = len(t.columns)
            rows_all.append(np.repeat(np.arange(self.n), k))
            cols_all.append((off + t.codes[:, None] * k + np.arange(k)[None, :]).ravel())
            vals_all.append(t.Z.ravel())
        Z = sp.csr_matrix(
            (np.concatenate(vals_all), (np.concatenate(rows_all), np.concatenate(cols_all))),
            shape=(self.n, q),
        )
        self.Z = Z
        self.ZtZ = (Z.T @ Z).tocsc()
        self.ZtX = np.asarray(Z.T @ X)
        self.Zty = np.asarray(Z.T @ y).ravel()
        self.XtX = X.T @ X
        self.Xty = X.T @ y
        self.yty = float(y @ y)

    # ------------------------------------------------------------------ helpers
    def _d_template(self):
        rows, cols = [], []
        for t, off in zip(self.problem.terms, self.offsets):
            k = len(t.columns)
            base = off + np.arange(t.n_levels)[:, None, None] * k
            ii = np.broadcast_to(np.arange(k)[None, :, None], (t.n_levels, k, k))
            jj = np.broadcast_to(np.arange(k)[None, None, :], (t.n_levels, k, k))
            rows.append((base + ii).ravel())
            cols.append((base + jj).ravel())
        r, c = np.concatenate(rows), np.concatenate(cols)
        tmpl = sp.csc_matrix((np.arange(1, len(r) + 1, dtype=float), (r, c)), shape=(self.q, self.q))
        perm = tmpl.data.astype(np.int64) - 1
        return perm, tmpl.indices.copy(), tmpl.indptr.copy()

    def D_matrix(self, covariances: tuple[np.ndarray, ...]) -> sp.csc_matrix:
        """Sparse block-diagonal covariance of all random effects (level-major within term)."""
        if not hasattr(self, "_dtmpl"):
            self._dtmpl = self._d_template()
        perm, indices, indptr = self._dtmpl
        data = np.concatenate(
            [np.tile(np.asarray(c, dtype=float).ravel(), t.n_levels)
             for t, c in zip(self.problem.terms, covariances)]
        )
        return sp.csc_matrix((data[perm], indices, indptr), shape=(self.q, self.q))

    def _factor(self, varpar: np.ndarray):
        covs, s2 = covariances_from_varpar(varpar, self.sizes)
        if not s2 > 0:
            raise np.linalg.LinAlgError("residual variance must be positive")
        D = self.D_matrix(covs)  # noqa: N806
        M = (s2 * sp.identity(self.q, format="csc") + self.ZtZ @ D).tocsc()  # noqa: N806
        try:
            lu = spla.splu(M)
        except RuntimeError as exc:  # exactly singular
            raise np.linalg.LinAlgError(str(exc)) from exc
        d = lu.U.diagonal()
        if np.any(d == 0) or not np.all(np.isfinite(d)):
            raise np.linalg.LinAlgError("singular M")
        logdet_m = float(np.sum(np.log(np.abs(d))))
        return D, s2, lu, logdet_m

    def _parts(self, varpar: np.ndarray, full: bool = False) -> _Parts:
        D, s2, lu, logdet_m = self._factor(varpar)  # noqa: N806
        minv_zx = lu.solve(self.ZtX) if self.p else np.zeros((self.q, 0))
        minv_zy = lu.solve(self.Zty)
        DZtX = D @ self.ZtX  # noqa: N806
        xvx = (self.XtX - self.ZtX.T @ (D @ minv_zx)) / s2
        xvy = (self.Xty - DZtX.T @ minv_zy) / s2
        yvy = (self.yty - self.Zty @ (D @ minv_zy)) / s2
        xvx = (xvx + xvx.T) / 2
        cf = sla.cho_factor(xvx, check_finite=False)
        beta = sla.cho_solve(cf, xvy, check_finite=False)
        rvr = yvy - beta @ xvy
        logdet_v = (self.n - self.q) * np.log(s2) + logdet_m
        if self.reml:
            logdet_x = 2.0 * float(np.sum(np.log(np.diag(cf[0]))))
            obj = logdet_v + logdet_x + rvr + (self.n - self.p) * _LOG2PI
        else:
            obj = logdet_v + rvr + self.n * _LOG2PI
        vcov = sla.cho_solve(cf, np.eye(self.p), check_finite=False)
        ztr = self.Zty - self.ZtX @ beta
        minv_ztr = lu.solve(ztr)
        minv = lu.solve(np.eye(self.q)) if full else np.empty((0, 0))
        return _Parts(beta, vcov, float(obj), minv_ztr, minv, D)

    # ------------------------------------------------------------------ public
    def objective(self, varpar: np.ndarray) -> float:
        """-2 log-likelihood (REML or ML as the problem says); ``inf`` where undefined."""
        try:
            return self._objective(np.asarray(varpar, dtype=float))
        except (np.linalg.LinAlgError, ValueError, sla.LinAlgError):
            return float("inf")

    def _objective(self, varpar: np.ndarray) -> float:
        return self._parts(varpar).objective

    def vcov(self, varpar: np.ndarray) -> np.ndarray:
        """Covariance of the GLS fixed effects ``(X' V^-1 X)^-1`` at ``varpar``."""
        return self._parts(np.asarray(varpar, dtype=float)).vcov

    def beta(self, varpar: np.ndarray) -> np.ndarray:
        """GLS fixed effects at ``varpar``."""
        return self._parts(np.asarray(varpar, dtype=float)).beta

    def conditional_modes(
        self, varpar: np.ndarray
    ) -> tuple[tuple[pd.DataFrame, ...], tuple[pd.DataFrame, ...]]:
        """BLUPs ``D Z' V^-1 r`` and lme4's conditional variances, one frame per term."""
        parts = self._parts(np.asarray(varpar, dtype=float), full=True)
        D = parts.D  # noqa: N806
        b = D @ parts.minv_ztr
        cond = D.toarray() - D @ (parts.minv @ (self.ZtZ @ D).toarray())
        cdiag = np.diag(cond).copy()
        modes, variances = [], []
        for t, off in zip(self.problem.terms, self.offsets):
            k = len(t.columns)
            sl = slice(off, off + t.n_levels * k)
            modes.append(pd.DataFrame(b[sl].reshape(t.n_levels, k), index=t.levels, columns=list(t.columns)))
            variances.append(
                pd.DataFrame(
                    np.clip(cdiag[sl], 0.0, None).reshape(t.n_levels, k),
                    index=t.levels,
                    columns=list(t.columns),
                )
            )
        return tuple(modes), tuple(variances)

    def marginal_blocks(self, varpar: np.ndarray) -> sp.csr_matrix:
        """Sparse ``V = sigma2 I + Z D Z'`` (for robust and Kenward-Roger computations)."""
        covs, s2 = covariances_from_varpar(np.asarray(varpar, dtype=float), self.sizes)
        D = self.D_matrix(covs)  # noqa: N806
        return (self.Z @ D @ self.Z.T + s2 * sp.identity(self.n)).tocsr()

    def weighted_marginal(self, varpar: np.ndarray, weights: np.ndarray) -> sp.csr_matrix:
        """``V_w = S (sigma2 I + Z_f D_f Z_f') S + Z_c D_c Z_c'`` with ``S = diag(w^-1/2)``: the
        inverse of the weight matrix of the group-weighted GLS estimator.

        ``f`` is the finest grouping factor (whose groups carry the ``weights``, one per row,
        constant within its groups) and ``c`` the coarser ones. ``V_w^{-1}`` applied to a
        cluster's rows gives what the data with each finest group replicated ``w`` times
        would give (see ``_fast._deviance._weighted_view``).
        """
        covs, s2 = covariances_from_varpar(np.asarray(varpar, dtype=float), self.sizes)
        D = self.D_matrix(covs)  # noqa: N806
        finest = max(self.problem.terms, key=lambda t: t.n_levels).group
        r_scale = 1.0 / np.sqrt(np.asarray(weights, dtype=float))
        Zw = self.Z.tocoo()  # noqa: N806
        fine_col = np.zeros(self.q, dtype=bool)
        for t, off in zip(self.problem.terms, self.offsets):
            if t.group == finest:
                fine_col[off:off + t.n_levels * len(t.columns)] = True
        vals = np.where(fine_col[Zw.col], Zw.data * r_scale[Zw.row], Zw.data)
        Zw = sp.csr_matrix((vals, (Zw.row, Zw.col)), shape=Zw.shape)  # noqa: N806
        return (Zw @ D @ Zw.T + sp.diags(s2 / np.asarray(weights, dtype=float))).tocsr()
