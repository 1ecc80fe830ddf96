"""The sparse engine's system: ``Z'Z``, ``Z'[X y]`` and ``Lambda(theta)`` of one problem, and
its factorisations at a theta (see :mod:`._crossed` for the formulation and the choices).

* :class:`_Factor`: dense Cholesky (``q <= DENSE_MAX``) or sparse LU of
  ``A = Lambda' Z'Z Lambda + I``;
* :class:`_BlockFactor`: block elimination of the term with the most levels (its part of ``A``
  is block diagonal), a dense Schur complement on the others, and the analytic gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from coevidence.models.mixed._engine import MixedProblem

__all__ = ["DENSE_MAX", "LOG2PI", "_BlockFactor", "_Factor", "_System", "_Term"]

#: Largest total number of random effects factorised densely; above it, sparse LU (SuperLU).
DENSE_MAX = 2000
LOG2PI = float(np.log(2.0 * np.pi))


def _lme4_term_order(n_levels: list[int]) -> list[int]:
    """lme4's (``mkReTrms``) term order: by number of levels, decreasing (``rev(order(nl))``)."""
    nl = np.asarray(n_levels)
    if len(nl) > 1 and np.any(np.diff(nl) > 0):
        return [int(i) for i in np.argsort(nl, kind="stable")[::-1]]
    return list(range(len(nl)))





@dataclass
class _Term:
    index: int  # into problem.terms
    k: int
    G: int
    offset: int  # first column of the term in Z
    pairs: list[tuple[int, int]]  # theta elements -> (row, col) in T (column-major lower tri)


class _System:
    """The fixed sparse structures of one problem: Z'Z, Z'[X y], the Lambda template."""

    def __init__(self, problem: MixedProblem) -> None:
        y = np.asarray(problem.y, float)
        X = np.asarray(problem.X, float)
        n, p = X.shape
        self.n, self.p = n, p
        terms = problem.terms
        self.order = _lme4_term_order([t.n_levels for t in terms])
        self.terms: list[_Term] = []
        rows, cols, vals = [], [], []
        off = 0
        for t_i in self.order:
            t = terms[t_i]
            k, G = len(t.columns), t.n_levels
            Zt = np.asarray(t.Z, float)
            codes = np.asarray(t.codes, np.int64)
            for j in range(k):
                rows.append(np.arange(n))
                cols.append(off + codes * k + j)
                vals.append(Zt[:, j])
            if t.correlated and k > 1:
                pairs = [(r, c) for c in range(k) for r in range(c, k)]
            else:
                pairs = [(r, r) for r in range(k)]
            self.terms.append(_Term(t_i, k, G, off, pairs))
            off += G * k
        self.q = off
        Z = sp.csc_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, off)
        )
        # residualise y on X (OLS) so that the Schur complements do not cancel catastrophically
        self.beta_ols = np.linalg.lstsq(X, y, rcond=None)[0]
        yc = y - X @ self.beta_ols
        Xy = np.column_stack([X, yc])
        self.ZtZ = (Z.T @ Z).tocsc()
        self.ZtXy = np.asarray(Z.T @ Xy)
        self.XytXy = Xy.T @ Xy
        self.Z = Z
        self.Xy = Xy
        # Lambda template: nonzero (row, col) and the theta element feeding it
        lr, lc, li = [], [], []
        pos = 0
        for tm in self.terms:
            base = tm.offset + np.arange(tm.G) * tm.k
            for e, (r, c) in enumerate(tm.pairs):
                lr.append(base + r)
                lc.append(base + c)
                li.append(np.full(tm.G, pos + e))
            pos += len(tm.pairs)
        self.n_theta = pos
        lr_a, lc_a, self.lind = np.concatenate(lr), np.concatenate(lc), np.concatenate(li)
        tmpl = sp.csc_matrix((np.arange(1, len(lr_a) + 1, dtype=float), (lr_a, lc_a)),
                             shape=(off, off))
        self._lam_indptr, self._lam_indices = tmpl.indptr, tmpl.indices
        self._lam_perm = tmpl.data.astype(np.int64) - 1  # CSC slot -> template entry
        lower = []
        for tm in self.terms:
            lower.extend(0.0 if r == c else -np.inf for r, c in tm.pairs)
        self.lower = np.asarray(lower)
        self._blockwise_pieces: dict[int, dict | None] = {}  # by dense_max

    # ------------------------------------------------------------------ theta <-> factors
    def lam(self, theta: np.ndarray) -> sp.csc_matrix:
        data = np.asarray(theta, float)[self.lind][self._lam_perm]
        return sp.csc_matrix((data, self._lam_indices, self._lam_indptr), shape=(self.q, self.q))

    def T(self, theta: np.ndarray, j: int) -> np.ndarray:
        """The k x k relative factor of term ``j`` (lme4 order)."""
        tm = self.terms[j]
        start = sum(len(t.pairs) for t in self.terms[:j])
        out = np.zeros((tm.k, tm.k))
        for e, (r, c) in enumerate(tm.pairs):
            out[r, c] = theta[start + e]
        return out

    def start(self) -> np.ndarray:
        return np.concatenate([[1.0 if r == c else 0.0 for r, c in tm.pairs] for tm in self.terms])

    def theta_of_factors(self, Ts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate([[T[r, c] for r, c in tm.pairs] for tm, T in zip(self.terms, Ts)])

    # ------------------------------------------------------------------ factorisation
    def factor(self, theta: np.ndarray, dense_max: int = DENSE_MAX) -> _Factor:
        L = self.lam(theta)
        bw = self._blockwise(dense_max)
        if bw is not None:
            return _BlockFactor(self, L, theta, bw)
        A = (L.T @ self.ZtZ @ L).tocsc() + sp.identity(self.q, format="csc")
        B = np.asarray(L.T @ self.ZtXy)
        return _Factor(self, L, A, B, dense=self.q <= dense_max)

    def _blockwise(self, dense_max: int):
        """The fixed pieces of the block elimination of the first term (None when it does not
        pay or does not fit in memory): ``Z1'Z1`` blocks, dense ``Z1'Z2``, ``Z2'Z2``, and
        ``Z'[X y]`` split at the first term.

        The first term (the most levels, in lme4's order) has a block-diagonal part of ``A``
        (k x k blocks: one row has one level of a factor), so it is eliminated with batched
        small Cholesky factors and only the Schur complement on the other terms is dense:
        per evaluation O(G1 k1^2 q2 + G1 k1 q2^2 + q2^3) with no sparse products.
        """
        if dense_max in self._blockwise_pieces:
            return self._blockwise_pieces[dense_max]
        out = None
        first = self.terms[0]
        n1, q2 = first.G * first.k, self.q - first.G * first.k
        if len(self.terms) > 1 and 0 < q2 <= dense_max and n1 >= q2 and n1 * q2 <= 4_000_000:
            k, G = first.k, first.G
            Z11 = self.ZtZ[:n1, :n1].tocoo()
            A1 = np.zeros((G, k, k))
            A1[Z11.row // k, Z11.row % k, Z11.col % k] = Z11.data
            out = {"n1": n1, "k": k, "G": G, "A1": A1,
                   "C": self.ZtZ[:n1, n1:].toarray().reshape(G, k, q2),
                   "A22": self.ZtZ[n1:, n1:].toarray(),
                   "B1": self.ZtXy[:n1].reshape(G, k, -1), "B2": self.ZtXy[n1:]}
        self._blockwise_pieces[dense_max] = out
        return out


class _Factor:
    """The factorised system at one theta."""

    def __init__(self, sysm: _System, L, A, B, dense: bool) -> None:
        self.sysm, self.L, self.B, self.dense = sysm, L, B, dense
        self.ok = False
        try:
            if dense:
                self._cho = sla.cho_factor(A.toarray(), lower=True, check_finite=False)
                self.ldA = 2.0 * float(np.sum(np.log(np.diag(self._cho[0]))))
            else:
                self._lu = spla.splu(A, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                                     options={"SymmetricMode": True})
                self.ldA = float(np.sum(np.log(np.abs(self._lu.U.diagonal()))))
            self._profile(B)
        except (np.linalg.LinAlgError, RuntimeError, ValueError):
            return

    def _profile(self, B: np.ndarray) -> None:
        """``A^-1 B``, the Schur complement ``M`` on ``[X y]``, ``R_X``, beta and the penalised
        RSS (raises ``LinAlgError`` if ``M_XX`` is not positive definite)."""
        sysm = self.sysm
        p = sysm.p
        W = self.solve(B)
        M = sysm.XytXy - B.T @ W
        M = 0.5 * (M + M.T)
        R = np.linalg.cholesky(M[:p, :p])
        self.W, self.M, self.R = W, M, R
        self.ldRX2 = 2.0 * float(np.sum(np.log(np.diag(R))))
        self.beta_c = sla.cho_solve((R, True), M[:p, p])
        self.pwrss = float(M[p, p] - M[:p, p] @ self.beta_c)
        self.ok = bool(np.isfinite(self.ldA) and np.isfinite(self.pwrss) and self.pwrss > 0)

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        if self.dense:
            return sla.cho_solve(self._cho, rhs, check_finite=False)
        return self._lu.solve(np.asarray(rhs, float))

    def deviance(self, reml: bool) -> float:
        if not self.ok:
            return np.inf
        n, p = self.sysm.n, self.sysm.p
        if reml:
            nr = n - p
            return self.ldA + self.ldRX2 + nr * (1.0 + LOG2PI + np.log(self.pwrss / nr))
        return self.ldA + n * (1.0 + LOG2PI + np.log(self.pwrss / n))

    def objective_sigma(self, reml: bool, sigma2: float) -> float:
        if not self.ok:
            return np.nan
        n, p = self.sysm.n, self.sysm.p
        nr = n - p if reml else n
        out = self.ldA + nr * (LOG2PI + np.log(sigma2)) + self.pwrss / sigma2
        return out + self.ldRX2 if reml else out

    def vcov(self, sigma2: float) -> np.ndarray:
        p = self.sysm.p
        return sigma2 * sla.cho_solve((self.R, True), np.eye(p))

    def modes(self) -> np.ndarray:
        """Conditional modes b = Lambda u of the random effects (lme4's ``ranef``)."""
        p = self.sysm.p
        u = self.W[:, p] - self.W[:, :p] @ self.beta_c
        return self.L @ u

    def inverse_blocks(self, k: int, offset: int, G: int) -> np.ndarray:
        """Diagonal k x k blocks of A^-1 for the G levels of a term, shape (G, k, k)."""
        out = np.empty((G, k, k))
        width = 256 - 256 % k if k <= 256 else k
        q = self.sysm.q
        for s in range(0, G * k, width):
            cols = np.arange(offset + s, min(offset + G * k, offset + s + width))
            E = np.zeros((q, len(cols)))
            E[cols, np.arange(len(cols))] = 1.0
            S = self.solve(E)[cols]  # rows and columns of this chunk
            g0 = s // k
            for g in range(len(cols) // k):
                out[g0 + g] = S[g * k:(g + 1) * k, g * k:(g + 1) * k]
        return out


class _BlockFactor(_Factor):
    """The factorised system by block elimination of the first term (see
    :meth:`_System._blockwise`); the same numbers as :class:`_Factor`."""

    def __init__(self, sysm: _System, L, theta: np.ndarray, bw: dict) -> None:
        self.sysm, self.L, self.dense = sysm, L, False
        self.ok = False
        k, G, n1 = bw["k"], bw["G"], bw["n1"]
        T1 = sysm.T(theta, 0)
        L2 = L[n1:, n1:]
        try:
            D = np.einsum("ji,gjk,kl->gil", T1, bw["A1"], T1, optimize=False)
            D[:, np.arange(k), np.arange(k)] += 1.0
            Lb = np.linalg.cholesky(D)
            ld1 = 2.0 * float(np.log(np.diagonal(Lb, axis1=1, axis2=2)).sum())
            self._Linv = np.linalg.inv(Lb)  # (G, k, k)
            C = (L2.T @ bw["C"].reshape(n1, -1).T).T.reshape(G, k, -1)  # Z1'Z2 Lambda2
            C = np.einsum("ji,gjq->giq", T1, C, optimize=False)  # Lambda1' Z1'Z2 Lambda2
            self._W = np.matmul(self._Linv, C).reshape(n1, -1)  # L1^-1 A12
            S = np.asarray(L2.T @ (L2.T @ bw["A22"]).T).T - self._W.T @ self._W
            S[np.diag_indices_from(S)] += 1.0
            self._cho = sla.cho_factor(0.5 * (S + S.T), lower=True, check_finite=False)
            self.ldA = ld1 + 2.0 * float(np.sum(np.log(np.diag(self._cho[0]))))
            B1 = np.einsum("ji,gjm->gim", T1, bw["B1"], optimize=False).reshape(n1, -1)
            self.B = B = np.vstack([B1, np.asarray(L2.T @ bw["B2"])])
            self._n1, self._k, self._G = n1, k, G
            self._profile(B)
        except (np.linalg.LinAlgError, RuntimeError, ValueError):
            return

    def gradient(self, theta: np.ndarray, reml: bool) -> np.ndarray | None:
        """Analytic gradient of the profiled criterion (lme4's theta order), or None when some
        term's relative factor is singular (a variance at its bound: use differences).

        With ``Q = A^-1 Lambda' Z'Z`` and ``Lambda`` invertible, ``Q Lambda = I - A^-1``, so
        ``d log|A| / d Lambda_rc = 2 [(sum_g (I - A^-1_gg)) T^-1]_cr`` needs only the summed
        diagonal blocks of ``A^-1``; the penalised RSS and ``log|R_X|^2`` terms are those of
        the fast engine's :mod:`._fast._gradient` (envelope theorem, ``F = Z'X - Z'Z Lambda
        T_X``) on the full system.
        """
        if not self.ok:
            return None
        sysm = self.sysm
        Ts = [sysm.T(theta, j) for j in range(len(sysm.terms))]
        if any(np.min(np.abs(np.diag(T))) < 1e-8 for T in Ts):
            return None
        n, p = sysm.n, sysm.p
        diag_sums = [self.inverse_blocks(tm.k, tm.offset, tm.G).sum(axis=0) for tm in sysm.terms]
        w = np.append(-self.beta_c, 1.0)
        u = self.W[:, p] - self.W[:, :p] @ self.beta_c
        Ze = sysm.ZtXy @ w - sysm.ZtZ @ (self.L @ u)
        if reml:
            Tx = self.W[:, :p]
            F = sysm.ZtXy[:, :p] - sysm.ZtZ @ (self.L @ Tx)
            Minv = sla.cho_solve((self.R, True), np.eye(p))
        nr = n - p if reml else n
        grad = []
        for j, tm in enumerate(sysm.terms):
            sl = slice(tm.offset, tm.offset + tm.G * tm.k)
            S1 = (tm.G * np.eye(tm.k) - diag_sums[j]) @ np.linalg.inv(Ts[j])
            S2 = Ze[sl].reshape(tm.G, tm.k).T @ u[sl].reshape(tm.G, tm.k)
            if reml:
                S3 = np.einsum("gap,pq,gbq->ab", Tx[sl].reshape(tm.G, tm.k, p), Minv,
                               F[sl].reshape(tm.G, tm.k, p), optimize=True)
            for r, c in tm.pairs:
                g = 2.0 * S1[c, r] - (nr / self.pwrss) * 2.0 * S2[r, c]
                if reml:
                    g -= 2.0 * S3[c, r]
                grad.append(g)
        return np.asarray(grad)

    def _inverse_parts(self):
        """Diagonal blocks of ``A^-1`` for the first term, ``L1^-T (I + W S^-1 W') L1^-1``
        per level, and ``S^-1`` (the other terms' block of ``A^-1``); computed once."""
        if "_inv_parts" not in self.__dict__:
            n1, k1, G1 = self._n1, self._k, self._G
            Y = np.matmul(self._Linv.transpose(0, 2, 1), self._W.reshape(G1, k1, -1))
            Zs = sla.solve_triangular(self._cho[0], Y.reshape(n1, -1).T, lower=True,
                                      check_finite=False).T.reshape(G1, k1, -1)
            first = (np.matmul(self._Linv.transpose(0, 2, 1), self._Linv)
                     + np.matmul(Zs, Zs.transpose(0, 2, 1)))
            Sinv = sla.cho_solve(self._cho, np.eye(self._cho[0].shape[0]), check_finite=False)
            self._inv_parts = (first, Sinv)
        return self._inv_parts

    def inverse_blocks(self, k: int, offset: int, G: int) -> np.ndarray:
        """Diagonal k x k blocks of A^-1 for the G levels of a term, shape (G, k, k)."""
        first, Sinv = self._inverse_parts()
        if offset == 0:
            return first.copy()
        o = offset - self._n1
        idx = o + np.arange(G)[:, None] * k + np.arange(k)[None, :]  # (G, k)
        return Sinv[idx[:, :, None], idx[:, None, :]]

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        rhs = np.asarray(rhs, float)
        vec = rhs.ndim == 1
        rhs = rhs[:, None] if vec else rhs
        n1, k, G = self._n1, self._k, self._G
        m = rhs.shape[1]
        c1 = np.matmul(self._Linv, rhs[:n1].reshape(G, k, m)).reshape(n1, m)
        x2 = sla.cho_solve(self._cho, rhs[n1:] - self._W.T @ c1, check_finite=False)
        r1 = (c1 - self._W @ x2).reshape(G, k, m)
        x1 = np.matmul(self._Linv.transpose(0, 2, 1), r1).reshape(n1, m)
        out = np.vstack([x1, x2])
        return out[:, 0] if vec else out
