"""The sparse engine: profiled (RE)ML for any random-effects structure, crossed factors included.

lme4's penalised least squares formulation (Bates et al. 2015, "Fitting Linear Mixed-Effects
Models Using lme4", section 3), on the full random-effects system::

    A(theta) = Lambda' Z'Z Lambda + I          (q x q, sparse; q = total random-effect levels)
    M(theta) = [X y]'[X y] - B' A^-1 B,         B = Lambda' Z'[X y]
    ML:   d(theta) = log|A| + n (1 + log(2 pi r2 / n))
    REML: d(theta) = log|A| + log|M_XX| + (n - p) (1 + log(2 pi r2 / (n - p)))

with ``r2 = M_yy - M_yX M_XX^-1 M_Xy`` the penalised residual sum of squares. ``Z`` is a
``scipy.sparse`` matrix with lme4's column layout (term by term in lme4's order, levels major,
the term's columns within a level), ``Lambda`` is block diagonal (``I_G kron T_k`` per term) and
is refilled from theta through a fixed index map (lme4's ``Lind``). Nothing about the grouping
factors is assumed: crossed, partially crossed and nested factors are all the same computation.

Factorisation of ``A`` (the choice and its limits):

* the usual crossed case, a first term (the most levels, lme4's order) with at least as many
  random effects as all the others together and those others at most ``DENSE_MAX``: block
  elimination (:class:`_BlockFactor`). The first term's block of ``A`` is block diagonal (one
  row has one level of a factor), so it is factorised by batched ``k x k`` Cholesky factors
  and only the Schur complement on the other terms is dense; the cross block ``Z1'Z2`` is kept
  dense when it has at most 4e6 entries. Cost per evaluation O(G1 k1^2 q2 + G1 k1 q2^2 +
  q2^3), with no sparse products: 500 x 100 crossed levels at 20k rows fit in about a third
  of lme4's time. Otherwise:
* ``q <= DENSE_MAX`` (2000): dense Cholesky (LAPACK). Cost per deviance evaluation O(q^3),
  memory O(q^2): about 8 MB and well under 0.1 s at q = 1000; 32 MB and ~0.3 s at q = 2000.
* larger ``q``: sparse LU of the symmetric positive definite ``A`` by SuperLU
  (``scipy.sparse.linalg.splu``) with a symmetric minimum-degree ordering of ``A + A'``,
  diagonal pivoting and symmetric mode, i.e. in effect a sparse ``L D L'`` with a fill-reducing
  ordering; ``log|A|`` is the sum of ``log|U_ii|`` (``A`` is SPD, so ``det A > 0``). Cost and
  memory depend on the fill-in, which for crossed factors is that of the Schur complement on
  the smaller factor: roughly O(nnz(A) + q_small^2) memory and O(q_small^3) time per
  evaluation in the worst (fully crossed) case, where ``q_small`` is the number of levels of
  the smaller crossed factor(s). Tens of thousands of levels on one factor crossed with a few
  thousand on another are practical; two crossed factors with ~10^4 levels each are not
  (CHOLMOD's supernodal factorisation would be faster by a constant factor, not in order;
  scikit-sparse is deliberately not a dependency since it needs SuiteSparse from the system).
  Conditional variances of the random effects need the diagonal blocks of ``A^-1``: computed
  by solving in chunks of 256 columns, O(q nnz(LU)) once per fit.

The optimiser works on theta with lme4's bounds (diagonal elements of each ``T_k`` >= 0):
bounded L-BFGS-B from lme4's start (with the block elimination, the analytic gradient of
:meth:`_BlockFactor.gradient` wherever every ``T_k`` is invertible; otherwise a
central-difference gradient), a bounded Nelder-Mead restart
from its answer if it did not converge, then Newton steps on the free parameters (Hessian by
differencing the gradient) which take the gradient to ~0 so that the optimum, not a stopping
point of the optimiser, is reported (skipped when the optimiser's answer already has a scaled
gradient below 1e-6, i.e. a Newton step under 1e-6 standard errors). Convergence is judged as lme4's ``checkConv`` does.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy import optimize

from coevidence.exceptions import ConvergenceFailure, ModelSpecificationError
from coevidence.models.mixed._engine import EngineFit, MixedProblem, OptimizerAttempt

__all__ = ["DENSE_MAX", "SparseEngine"]

#: Largest total number of random effects factorised densely; above it, sparse LU (SuperLU).
DENSE_MAX = 2000
#: lme4's ``check.conv.grad`` tolerance.
GRAD_TOL = 2e-3
_LOG2PI = float(np.log(2.0 * np.pi))


def _lme4_term_order(n_levels: list[int]) -> list[int]:
    """lme4's (``mkReTrms``) term order: by number of levels, decreasing (``rev(order(nl))``)."""
    nl = np.asarray(n_levels)
    if len(nl) > 1 and np.any(np.diff(nl) > 0):
        return [int(i) for i in np.argsort(nl, kind="stable")[::-1]]
    return list(range(len(nl)))


def _one_blas_thread():
    """One BLAS thread while fitting (threadpoolctl, if installed): the solves are thin and extra
    threads on a busy machine spin-wait each other into much slower fits. The library scan
    costs a few ms, so the controller is made once per process (the df evaluations enter this
    context dozens of times)."""
    global _CONTROLLER
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - optional
        return contextlib.nullcontext()
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="blas")


_CONTROLLER = None


def _non_finite(problem: MixedProblem) -> str:
    arrays = [("outcome y", np.asarray(problem.y, float)), ("fixed-effects matrix X",
                                                          np.asarray(problem.X, float))]
    arrays += [(f"random-effects matrix of ({' + '.join(t.columns)} | {t.group})",
                np.asarray(t.Z, float)) for t in problem.terms]
    for what, a in arrays:
        bad = ~np.isfinite(a)
        if bad.any():
            return f"{what} has {int(bad.sum())} non-finite value(s)"
    return ""


def _psd_factor(S: np.ndarray) -> np.ndarray | None:
    """Lower-triangular-ish F with F F' = S (Cholesky, or eigen when singular); None if not PSD."""
    try:
        return np.linalg.cholesky(S)
    except np.linalg.LinAlgError:
        w, U = np.linalg.eigh((S + S.T) / 2)
        if np.min(w) < -1e-10 * max(1.0, float(np.max(np.abs(w)))):
            return None
        # a lower-triangular factor from the QR of the symmetric root (keeps T lower)
        root = U * np.sqrt(np.clip(w, 0.0, None))
        _, r = np.linalg.qr(root.T)
        F = r.T
        return F * np.where(np.diag(F) < 0, -1.0, 1.0)


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
        key = ("_bw", dense_max)
        if key in self.__dict__:
            return self.__dict__[key]
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
        self.__dict__[key] = out
        return out


class _Factor:
    """The factorised system at one theta."""

    def __init__(self, sysm: _System, L, A, B, dense: bool) -> None:
        self.sysm, self.L, self.B, self.dense = sysm, L, B, dense
        p = sysm.p
        self.ok = False
        try:
            if dense:
                self._cho = sla.cho_factor(A.toarray(), lower=True, check_finite=False)
                self.ldA = 2.0 * float(np.sum(np.log(np.diag(self._cho[0]))))
            else:
                self._lu = spla.splu(A, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                                     options={"SymmetricMode": True})
                self.ldA = float(np.sum(np.log(np.abs(self._lu.U.diagonal()))))
            W = self.solve(B)
            M = sysm.XytXy - B.T @ W
            M = 0.5 * (M + M.T)
            R = np.linalg.cholesky(M[:p, :p])
        except (np.linalg.LinAlgError, RuntimeError, ValueError):
            return
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
            return self.ldA + self.ldRX2 + nr * (1.0 + _LOG2PI + np.log(self.pwrss / nr))
        return self.ldA + n * (1.0 + _LOG2PI + np.log(self.pwrss / n))

    def objective_sigma(self, reml: bool, sigma2: float) -> float:
        if not self.ok:
            return np.nan
        n, p = self.sysm.n, self.sysm.p
        nr = n - p if reml else n
        out = self.ldA + nr * (_LOG2PI + np.log(sigma2)) + self.pwrss / sigma2
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
        p = sysm.p
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
            W = self.solve(B)
            M = sysm.XytXy - B.T @ W
            M = 0.5 * (M + M.T)
            R = np.linalg.cholesky(M[:p, :p])
        except (np.linalg.LinAlgError, RuntimeError, ValueError):
            return
        self.W, self.M, self.R = W, M, R
        self.ldRX2 = 2.0 * float(np.sum(np.log(np.diag(R))))
        self.beta_c = sla.cho_solve((R, True), M[:p, p])
        self.pwrss = float(M[p, p] - M[:p, p] @ self.beta_c)
        self.ok = bool(np.isfinite(self.ldA) and np.isfinite(self.pwrss) and self.pwrss > 0)

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


class _AtVarpar:
    """``vcov(beta)`` or the (RE)ML criterion at given variance parameters; picklable."""

    def __init__(self, problem: MixedProblem, kind: str, dense_max: int, sysm=None) -> None:
        self.problem, self.kind, self.dense_max = problem, kind, dense_max
        self._sys = sysm

    def __getstate__(self) -> dict:
        return {"problem": self.problem, "kind": self.kind, "dense_max": self.dense_max}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._sys = None

    def __call__(self, vp: np.ndarray):
        with _one_blas_thread():
            return self._at(vp)

    def _at(self, vp: np.ndarray):
        if self._sys is None:
            self._sys = _System(self.problem)
        sysm = self._sys
        vp = np.asarray(vp, float)
        s2 = float(vp[-1])
        p = sysm.p
        bad = np.full((p, p), np.nan) if self.kind == "vcov" else np.nan
        if not s2 > 0:
            return bad
        # varpar is in problem term order; Ts in lme4 order
        per_term: dict[int, np.ndarray] = {}
        pos = 0
        for t_i, t in enumerate(self.problem.terms):
            k = len(t.columns)
            S = np.zeros((k, k))
            for r in range(k):
                for c in range(r + 1):
                    S[r, c] = S[c, r] = vp[pos]
                    pos += 1
            per_term[t_i] = S
        Ts = []
        for tm in sysm.terms:
            F = _psd_factor(per_term[tm.index] / s2)
            if F is None:
                return bad
            Ts.append(F)
        f = sysm.factor(sysm.theta_of_factors(Ts), self.dense_max)
        if not f.ok:
            return bad
        if self.kind == "vcov":
            return f.vcov(s2)
        return f.objective_sigma(bool(self.problem.reml), s2)


def _fd_grad(f, x: np.ndarray, lower: np.ndarray, f0: float | None = None) -> np.ndarray:
    """Central differences (one-sided at an active lower bound)."""
    g = np.empty_like(x)
    for i in range(len(x)):
        h = 1e-5 * max(1.0, abs(x[i]))
        e = np.zeros_like(x)
        e[i] = h
        if x[i] - h < lower[i]:
            f0 = f(x) if f0 is None else f0
            g[i] = (f(x + e) - f0) / h
        else:
            g[i] = (f(x + e) - f(x - e)) / (2 * h)
    return g


class SparseEngine:
    """Profiled REML/ML on the full sparse random-effects system (crossed factors welcome).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from coevidence.models.mixed.formula import build_problem
    >>> rng = np.random.default_rng(3)
    >>> df = pd.DataFrame({"a": np.repeat(np.arange(12), 6), "b": np.tile(np.arange(6), 12)})
    >>> df["y"] = rng.normal(size=12)[df.a] + rng.normal(size=6)[df.b] + rng.normal(size=72)
    >>> prob, _ = build_problem("y ~ 1 + (1 | a) + (1 | b)", df)
    >>> fit = SparseEngine().fit(prob)
    >>> fit.converged, fit.engine
    (True, 'sparse')
    """

    name = "sparse"

    def __init__(self, dense_max: int = DENSE_MAX) -> None:
        self.dense_max = int(dense_max)

    def supports(self, problem: MixedProblem) -> tuple[bool, str]:
        """Whether the model is fitted exactly (any grouping structure)."""
        if not problem.terms:
            return False, "the model has no random-effect terms"
        bad = _non_finite(problem)
        if bad:
            return False, bad
        X = np.asarray(problem.X, float)
        n, p = X.shape
        for t in problem.terms:
            if np.shape(t.codes) != (n,) or np.shape(t.Z) != (n, len(t.columns)):
                return False, f"term ({' + '.join(t.columns)} | {t.group}) has arrays of the wrong shape"
        if n <= p:
            return False, f"{n} rows for {p} fixed effects"
        if np.linalg.matrix_rank(X) < p:
            return False, "the fixed-effects model matrix is rank deficient"
        return True, ""

    def fit(self, problem: MixedProblem) -> EngineFit:
        """Fit the model; see :class:`~coevidence.models.mixed._engine.EngineFit`."""
        ok, reason = self.supports(problem)
        if not ok:
            raise ModelSpecificationError(f"sparse engine cannot fit this model: {reason}")
        with _one_blas_thread():
            return self._fit(problem)

    def _fit(self, problem: MixedProblem) -> EngineFit:
        sysm = _System(problem)
        n, p, reml = sysm.n, sysm.p, bool(problem.reml)
        yn = float(np.linalg.norm(np.asarray(problem.y, float)))
        if sysm.XytXy[p, p] <= (1e-12 * yn) ** 2:
            raise ModelSpecificationError(
                "the fixed effects reproduce the outcome exactly (residual sum of squares 0): "
                "there is no variation left for a mixed model"
            )
        theta, attempts, chosen = self._optimise(sysm, reml)
        f = sysm.factor(theta, self.dense_max)
        if not f.ok:
            raise ConvergenceFailure("sparse engine: no finite deviance at the optimum", attempts)
        objective = f.deviance(reml)
        sigma2 = f.pwrss / (n - p if reml else n)
        beta = f.beta_c + sysm.beta_ols
        vcov = f.vcov(sigma2)
        b = f.modes()
        Ts = [sysm.T(theta, j) for j in range(len(sysm.terms))]
        nt = len(problem.terms)
        covs: list[np.ndarray] = [np.empty((0, 0))] * nt
        ranef: list[pd.DataFrame] = [pd.DataFrame()] * nt
        condvar: list[pd.DataFrame] = [pd.DataFrame()] * nt
        report: list[float] = []
        for j, tm in enumerate(sysm.terms):
            t = problem.terms[tm.index]
            T = Ts[j]
            covs[tm.index] = sigma2 * (T @ T.T)
            report.extend(T[r, c] for c in range(tm.k) for r in range(c, tm.k))
            bj = b[tm.offset:tm.offset + tm.G * tm.k].reshape(tm.G, tm.k)
            blocks = f.inverse_blocks(tm.k, tm.offset, tm.G)
            cv = sigma2 * np.einsum("ij,gjk,ik->gi", T, blocks, T)
            cols = list(t.columns)
            ranef[tm.index] = pd.DataFrame(bj, index=t.levels, columns=cols)
            condvar[tm.index] = pd.DataFrame(cv, index=t.levels, columns=cols)
        varpar: list[float] = []
        for S in covs:
            k = S.shape[0]
            varpar.extend(S[r, c] for r in range(k) for c in range(r + 1))
        varpar.append(sigma2)
        return EngineFit(
            beta=beta,
            vcov_beta=vcov,
            covariances=tuple(covs),
            sigma2=float(sigma2),
            theta=np.asarray(report, float),
            loglik=-0.5 * objective,
            objective=float(objective),
            ranef=tuple(ranef),
            ranef_condvar=tuple(condvar),
            varpar=np.asarray(varpar, float),
            vcov_at=_AtVarpar(problem, "vcov", self.dense_max, sysm),
            objective_at=_AtVarpar(problem, "objective", self.dense_max, sysm),
            attempts=tuple(attempts),
            chosen=chosen,
            engine=self.name,
        )

    # ------------------------------------------------------------------ optimisation
    def _optimise(self, sysm: _System, reml: bool):
        lower = sysm.lower
        bounds = [(lo if np.isfinite(lo) else None, None) for lo in lower]
        cache: dict[bytes, float] = {}

        def dev(x: np.ndarray) -> float:
            x = np.maximum(np.asarray(x, float), lower)
            key = x.tobytes()
            if key not in cache:
                d = sysm.factor(x, self.dense_max).deviance(reml)
                cache[key] = float(d) if np.isfinite(d) else 1e300
            return cache[key]

        def grad(x: np.ndarray, f0: float | None = None) -> np.ndarray:
            """The analytic gradient of the block factorisation where it applies (interior
            theta), else central differences."""
            x = np.maximum(np.asarray(x, float), lower)
            fac = sysm.factor(x, self.dense_max)
            g = fac.gradient(x, reml) if isinstance(fac, _BlockFactor) else None
            if g is not None and np.all(np.isfinite(g)):
                d = fac.deviance(reml)
                cache.setdefault(x.tobytes(), float(d) if np.isfinite(d) else 1e300)
                return g
            return _fd_grad(dev, x, lower, f0)

        attempts: list[OptimizerAttempt] = []
        cands: list[tuple[float, np.ndarray]] = []

        def record(name, start, x, message, n_eval):
            x = np.maximum(np.asarray(x, float), lower)
            fx = dev(x)
            gn = self._conv_measure(dev, x, lower, grad)
            attempts.append(OptimizerAttempt(
                optimizer=name, start=tuple(float(s) for s in start),
                converged=bool(fx < 1e299 and gn < GRAD_TOL), objective=float(fx),
                n_evaluations=int(n_eval), gradient_norm=float(gn), message=str(message)))
            cands.append((fx, x))

        x0 = sysm.start()
        n0 = len(cache)
        r = optimize.minimize(dev, x0, jac=grad, method="L-BFGS-B",
                              bounds=bounds, options={"ftol": 1e-15, "gtol": 1e-9,
                                                      "maxiter": 2000})
        record("L-BFGS-B", x0, r.x, r.message, len(cache) - n0)
        if not attempts[-1].converged:
            xs = cands[-1][1]
            n0 = len(cache)
            r = optimize.minimize(dev, xs, method="Nelder-Mead", bounds=bounds,
                                  options={"xatol": 1e-10, "fatol": 1e-12, "maxfev": 20000,
                                           "adaptive": True})
            record("Nelder-Mead (bounded)", xs, r.x, r.message, len(cache) - n0)
        best = int(np.argmin([c[0] for c in cands]))
        xs = cands[best][1]
        if not (attempts[best].converged and attempts[best].gradient_norm < 1e-6):
            # polish unless the optimiser stopped where a Newton step is already below 1e-6
            # (lme4's scaled gradient: the step in units of the parameters' standard errors)
            n0 = len(cache)
            xp, msg = self._newton(dev, xs, lower, grad)
            record("Newton polish", xs, xp, msg, len(cache) - n0)
        objs = [c[0] for c in cands]
        chosen = int(np.argmin(objs))
        # prefer the converged attempt among those tied at the minimum
        for i, a in enumerate(attempts):
            if a.converged and objs[i] <= objs[chosen] + 1e-10 * max(1.0, abs(objs[chosen])):
                chosen = i
                break
        if objs[chosen] >= 1e299:
            raise ConvergenceFailure("sparse engine: no finite deviance found", attempts)
        return cands[chosen][1], attempts, chosen

    @staticmethod
    def _free(x, g, lower):
        return ~((x <= lower + 1e-10) & (g > 0))

    @staticmethod
    def _hessian(dev, x, lower, idx, grad=None):
        grad = grad or (lambda z: _fd_grad(dev, z, lower))
        H = np.empty((len(idx), len(idx)))
        for a, i in enumerate(idx):
            h = 1e-4 * max(1.0, abs(x[i]))
            e = np.zeros_like(x)
            e[i] = h
            lo = x - e if x[i] - h >= lower[i] else x
            hi = x + e
            H[:, a] = (grad(hi)[idx] - grad(lo)[idx]) / (hi[i] - lo[i])
        return 0.5 * (H + H.T)

    def _newton(self, dev, x, lower, grad=None, max_iter: int = 4):
        grad = grad or (lambda z, f0=None: _fd_grad(dev, z, lower, f0))
        x = x.copy()
        f = dev(x)
        msg = "Newton steps on the free parameters"
        for _ in range(max_iter):
            g = grad(x, f)
            idx = np.flatnonzero(self._free(x, g, lower))
            if not len(idx):
                break
            H = self._hessian(dev, x, lower, idx, grad)
            try:
                R = np.linalg.cholesky(H)
            except np.linalg.LinAlgError:
                msg = "Hessian not positive definite at the answer"
                break
            step = -sla.cho_solve((R, True), g[idx])
            t, moved = 1.0, False
            while t > 1e-4:
                xn = x.copy()
                xn[idx] = np.maximum(x[idx] + t * step, lower[idx])
                fn = dev(xn)
                if fn <= f:
                    moved = fn < f or np.array_equal(xn, x)
                    x, f = xn, fn
                    break
                t *= 0.5
            if not moved or np.max(np.abs(t * step)) < 1e-10 * max(1.0, float(np.max(np.abs(x)))):
                break
        return x, msg

    def _conv_measure(self, dev, x, lower, grad=None) -> float:
        """lme4's ``checkConv``: max over components of min(|g|, |chol(H)^-1 g|), projected."""
        if dev(x) >= 1e299:
            return float("inf")
        grad = grad or (lambda z: _fd_grad(dev, z, lower))
        g = grad(x)
        free = self._free(x, g, lower)
        idx = np.flatnonzero(free)
        if not len(idx):
            return 0.0
        gp = g[idx]
        try:
            R = np.linalg.cholesky(self._hessian(dev, x, lower, idx, grad))
            scaled = np.abs(sla.solve_triangular(R, gp, lower=True))
        except np.linalg.LinAlgError:
            scaled = np.full(len(idx), np.inf)
        return float(np.max(np.minimum(np.abs(gp), scaled)))
