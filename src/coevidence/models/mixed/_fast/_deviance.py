"""Cross-product blocks of ``[Z X y]`` and the blocked Cholesky of the profiled deviance.

Notation follows Bates, Maechler, Bolker & Walker (2015, JSS 67(1), section 3). For relative
covariance factor Lambda(theta)::

    L L'        = Lambda' Z'Z Lambda + I            (blocked, nested: no fill-in)
    L R_ZX      = Lambda' Z'[X y]
    R_X' R_X    = [X y]'[X y] - R_ZX' R_ZX          ((p+1) x (p+1); last pivot^2 = pwrss)

    ML:   d(theta)   = log|L|^2 + n (1 + log(2 pi r^2 / n))
    REML: d_R(theta) = log|L|^2 + log|R_X|^2 + (n - p)(1 + log(2 pi r^2 / (n - p)))

With nested factors the groups of the finest level are eliminated first (batched q x q Cholesky),
their Schur complements are summed onto their ancestors, and so on up the chain. Cost per
evaluation is O(sum_i G_i q_i^2 (p + 1)), independent of the number of rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg

from . import _fused
from . import _linalg as _la
from ._linalg import bchol, bcongr, blsolve, bltmul, bltsolve, bmm, bmv, sub_btdot_seg
from ._structure import Structure

__all__ = [
    "Blocks",
    "Factor",
    "conditional_u",
    "factorize",
    "precompute",
    "selected_inverse",
    "selected_inverse_full",
]

LOG2PI = float(np.log(2.0 * np.pi))


@dataclass
class Blocks:
    """Per-group cross products, computed once (memory O(sum_i G_i q_i (q_i + p)))."""

    ZtZ: list[np.ndarray]  # level i: (G_i, q_i, q_i)
    ZtZa: dict[tuple[int, int], np.ndarray]  # (i, j): (G_i, q_i, q_j), j coarser than i
    ZtXy: list[np.ndarray]  # level i: (G_i, q_i, p + 1)
    XytXy: np.ndarray  # (p + 1, p + 1)
    n: float  # rows (with weights: their sum, the rows of the replicated data)
    p: int
    beta_ols: np.ndarray  # y was replaced by y - X beta_ols; add beta_ols back to beta
    wg: np.ndarray | None = None  # weights of the finest level's groups (internal order)


def _level_Z(problem, lv) -> list[np.ndarray]:
    """The level's random-effect columns (views into the terms' Z: no stacked copy)."""
    cols = []
    for t in lv.term_idx:
        Z = np.asarray(problem.terms[t].Z, dtype=float)
        cols.extend(Z[:, k] for k in range(Z.shape[1]))
    return cols


def precompute(problem, struct: Structure) -> Blocks:
    """Compute every block of ``[Z X y]'[Z X y]`` that the deviance needs, with bincount.

    With ``problem.weights`` (row weights, constant within the groups of the finest level) the
    blocks are those of :func:`_weighted_view`, and ``n`` is the sum of the weights.

    The outcome is first replaced by its OLS residual ``y - X b`` (the deviance is invariant to
    ``y -> y - X g``, only beta moves by g): this removes the cancellation that a large outcome
    mean or trend would cause in the Schur complements and in the gradient. The blocks of
    ``Z`` and ``X`` are computed here; the outcome's by :func:`with_outcome` (which refits call
    on their own, for a new ``y``).
    """
    wg = None
    n_eff = None
    if getattr(problem, "weights", None) is not None:
        n_eff = float(np.sum(problem.weights))
        problem, wg = _weighted_view(problem, struct)
    X = np.asarray(problem.X, dtype=float)
    n, p = X.shape
    m = p + 1
    Zs = [_level_Z(problem, lv) for lv in struct.levels]
    ones = [[_is_one(z) for z in Z] for Z in Zs]
    ZtZ, ZtXy = [], []
    for i, lv in enumerate(struct.levels):
        Z = Zs[i]
        A = np.empty((lv.G, lv.q, lv.q))
        for a in range(lv.q):
            for b in range(a, lv.q):
                w = None if (ones[i][a] and ones[i][b]) else Z[a] * Z[b]
                A[:, a, b] = A[:, b, a] = _gsum(lv, w)
        ZtZ.append(A)
        B = np.empty((lv.G, lv.q, m))
        for a in range(lv.q):
            za = None if ones[i][a] else Z[a]
            for c in range(p):
                B[:, a, c] = _gsum(lv, X[:, c] if za is None else za * X[:, c])
        ZtXy.append(B)
    ZtZa = {}
    for i, j in struct.anc:
        lv = struct.levels[i]
        Zi, Zj = Zs[i], Zs[j]
        A = np.empty((lv.G, lv.q, struct.levels[j].q))
        for a in range(lv.q):
            for b in range(len(Zj)):
                both = ones[i][a] and ones[j][b]
                A[:, a, b] = _gsum(lv, None if both else Zi[a] * Zj[b])
        ZtZa[(i, j)] = A
    XytXy = np.empty((m, m))
    XytXy[:p, :p] = X.T @ X
    n_eff = n if n_eff is None else n_eff
    blocks = Blocks(ZtZ=ZtZ, ZtZa=ZtZa, ZtXy=ZtXy, XytXy=XytXy, n=n_eff, p=p,
                    beta_ols=np.zeros(p), wg=wg)
    return with_outcome(blocks, struct, problem, _columns=(Zs, ones), _in_place=True)


def _weighted_view(problem, struct: Structure):
    """The problem whose cross-products are those of the *replicated* data, and the weights
    of the finest level's groups.

    A group of the finest level with weight ``w`` counts as ``w`` copies of itself (inside
    the same groups of the coarser levels): the pseudo-likelihood of sampling weights at that
    level (Pfeffermann et al. 1998; Rabe-Hesketh & Skrondal 2006). With integer weights the
    criterion is exactly that of the data with every such group repeated ``w`` times.

    Replicated groups have identical blocks, so the system reduces to one copy per group with
    rows scaled by ``sqrt(w)`` and the finest level's columns scaled back by ``1 / sqrt(w)``
    (its random effects are then ``sqrt(w)`` times the copies'): every Schur complement,
    ``R_X`` and the penalised residual sum of squares are the replicated data's. Only
    ``log|L|^2`` differs: the replicated data count each finest group's ``log|L_g|^2`` ``w``
    times, which :func:`factorize` adds (:func:`weight_logdet`).
    """
    from dataclasses import replace

    rw = np.asarray(problem.weights, dtype=float)
    s = np.sqrt(rw)
    fine = set(struct.levels[0].term_idx)
    terms = tuple(t if i in fine else replace(t, Z=np.asarray(t.Z, float) * s[:, None])
                  for i, t in enumerate(problem.terms))
    view = replace(problem, y=np.asarray(problem.y, float) * s,
                   X=np.asarray(problem.X, float) * s[:, None], terms=terms, weights=None)
    lv = struct.levels[0]
    wg = np.zeros(lv.G)
    wg[lv.codes] = rw
    return view, wg


def weight_logdet(blocks: Blocks, lam: np.ndarray) -> tuple[float, np.ndarray]:
    """``sum_g (w_g - 1) log|Lambda' A_g Lambda + I|`` over the finest level's groups, and its
    derivative with respect to Lambda (``2 sum_g (w_g - 1) A_g Lambda D_g^{-1}``).

    The part of the replicated data's ``log|L|^2`` that the reduced system of
    :func:`_weighted_view` does not count (it counts each group once).
    """
    A = blocks.ZtZ[0]
    D = bcongr(lam, A, lam)
    idx = np.arange(lam.shape[0])
    D[:, idx, idx] += 1.0
    sign, ld = np.linalg.slogdet(D)
    c = blocks.wg - 1.0
    if np.any(sign <= 0):
        return np.inf, np.zeros_like(lam)
    Dinv = np.linalg.inv(D)
    grad = 2.0 * ((c[:, None, None] * A) @ lam @ Dinv).sum(axis=0)
    return float(c @ ld), grad


def with_outcome(blocks: Blocks, struct: Structure, problem, *, _columns=None,
                 _in_place: bool = False) -> Blocks:
    """``blocks`` with the outcome's cross-products (``Z'y``, ``X'y``, ``y'y`` of the OLS
    residual) computed for ``problem.y``; everything that depends only on ``X`` and ``Z`` is
    reused. ``problem`` must have the ``X`` and ``Z`` the blocks were computed from."""
    X = np.asarray(problem.X, dtype=float)
    y0 = np.asarray(problem.y, dtype=float)
    p = blocks.p
    XtX = blocks.XytXy[:p, :p]
    beta_ols = linalg.solve(XtX, X.T @ y0, assume_a="pos")
    y = y0 - X @ beta_ols
    Zs, ones = _columns if _columns is not None else (
        [_level_Z(problem, lv) for lv in struct.levels], None)
    ZtXy = blocks.ZtXy if _in_place else [B.copy() for B in blocks.ZtXy]
    for i, lv in enumerate(struct.levels):
        Z = Zs[i]
        for a in range(lv.q):
            one = ones[i][a] if ones is not None else _is_one(Z[a])
            ZtXy[i][:, a, p] = _gsum(lv, y if one else Z[a] * y)
    XytXy = blocks.XytXy if _in_place else blocks.XytXy.copy()
    XytXy[:p, p] = XytXy[p, :p] = X.T @ y
    XytXy[p, p] = y @ y
    return Blocks(ZtZ=blocks.ZtZ, ZtZa=blocks.ZtZa, ZtXy=ZtXy, XytXy=XytXy, n=blocks.n, p=p,
                  beta_ols=beta_ols, wg=blocks.wg)


def _gsum(lv, w):
    return np.bincount(lv.codes, weights=w, minlength=lv.G)


def _is_one(v) -> bool:
    return bool(v[0] == 1.0 and np.all(v == 1.0))


@dataclass
class Factor:
    """The blocked factorisation at one theta (kept for the final fit only)."""

    Ls: list[np.ndarray]  # level i: (G_i, q_i, q_i) lower Cholesky factors
    Ws: dict[tuple[int, int], np.ndarray]  # (i, j): L_i^{-1} (Schur-updated cross block)
    Vs: list[np.ndarray]  # level i: L_i^{-1} (Schur-updated Lambda' Z'[X y])
    Lm: np.ndarray  # lower Cholesky of the final (p+1) x (p+1) block
    ldL2: float  # log|L|^2
    ok: bool
    wgrad: np.ndarray | None = None  # with group weights: d weight_logdet / d Lambda_0

    @property
    def p(self) -> int:
        return self.Lm.shape[0] - 1

    @property
    def ldRX2(self) -> float:
        return float(2.0 * np.log(np.diag(self.Lm)[: self.p]).sum())

    @property
    def pwrss(self) -> float:
        return float(self.Lm[self.p, self.p] ** 2)

    def beta(self) -> np.ndarray:
        p = self.p
        return np.linalg.solve(self.Lm[:p, :p].T, self.Lm[p, :p])

    def deviance(self, n: int, reml: bool) -> float:
        """Profiled -2 log-likelihood (ML) or REML criterion."""
        if not self.ok:
            return np.inf
        r2 = self.pwrss
        if reml:
            nr = n - self.p
            return self.ldL2 + self.ldRX2 + nr * (1.0 + LOG2PI + np.log(r2 / nr))
        return self.ldL2 + n * (1.0 + LOG2PI + np.log(r2 / n))

    def objective_sigma(self, n: int, reml: bool, sigma2: float) -> float:
        """-2 log-likelihood (or REML criterion) at a given residual variance (not profiled)."""
        if not self.ok:
            return np.nan
        nr = n - self.p if reml else n
        out = self.ldL2 + nr * (LOG2PI + np.log(sigma2)) + self.pwrss / sigma2
        return out + self.ldRX2 if reml else out


def factorize(blocks: Blocks, struct: Structure, lams: list[np.ndarray], keep: bool = False):
    """Blocked Cholesky of the penalised system at the relative factors ``lams``.

    With group weights (``blocks.wg``) ``ldL2`` is the replicated data's (see
    :func:`_weighted_view`).
    """
    fac = _factorize(blocks, struct, lams, keep)
    if blocks.wg is not None and fac.ok:
        ld, fac.wgrad = weight_logdet(blocks, lams[0])
        fac.ldL2 += ld
        fac.ok = bool(np.isfinite(fac.ldL2))
    return fac


def _factorize(blocks: Blocks, struct: Structure, lams: list[np.ndarray], keep: bool):
    levels = struct.levels
    nl = len(levels)
    if nl == 1 and _la.USE_NUMBA and _fused.AVAILABLE:
        # one grouping factor: the whole factorisation is one fused pass over the groups
        L, V, VtV, ldL2 = _fused.factor1(lams[0], blocks.ZtZ[0], blocks.ZtXy[0])
        return _finish(blocks.XytXy - VtV, float(ldL2), [L] if keep else [], {},
                       [V] if keep else [])
    if nl == 2 and _la.USE_NUMBA and _fused.AVAILABLE:
        # two nested levels: one fused pass over the fine groups, one over the coarse ones
        Ls, Ws, Vs, VtV, ldL2 = _fused.factor2(lams, blocks, struct)
        if not keep:
            Ls, Ws, Vs = [], {}, []
        return _finish(blocks.XytXy - VtV, float(ldL2), Ls, Ws, Vs)
    D, B = [], []
    for i, lv in enumerate(levels):
        Di = bcongr(lams[i], blocks.ZtZ[i], lams[i])
        idx = np.arange(lv.q)
        Di[:, idx, idx] += 1.0
        D.append(Di)
        B.append(bltmul(lams[i], blocks.ZtXy[i]))
    C = {ij: bcongr(lams[ij[0]], A, lams[ij[1]]) for ij, A in blocks.ZtZa.items()}
    M = blocks.XytXy.copy()
    ldL2 = 0.0
    Ls, Ws, Vs = [], {}, []
    m = M.shape[0]
    for i, lv in enumerate(levels):
        L = bchol(D[i])
        idx = np.arange(lv.q)
        with np.errstate(divide="ignore", invalid="ignore"):
            ldL2 += 2.0 * float(np.log(L[:, idx, idx]).sum())
        D[i] = None  # done with: free the level's blocks as soon as possible (memory)
        V = blsolve(L, B[i])
        B[i] = None
        W = {j: blsolve(L, C.pop((i, j))) for j in range(i + 1, nl)}
        for j in range(i + 1, nl):
            st, an = struct.starts[(i, j)], struct.anc[(i, j)]
            sub_btdot_seg(D[j], W[j], W[j], an, st)
            for k in range(j + 1, nl):
                sub_btdot_seg(C[(j, k)], W[j], W[k], an, st)
            sub_btdot_seg(B[j], W[j], V, an, st)
        Vf = V.reshape(-1, m)
        M -= Vf.T @ Vf
        if keep:
            Ls.append(L)
            Vs.append(V)
            for j, Wj in W.items():
                Ws[(i, j)] = Wj
    return _finish(M, ldL2, Ls, Ws, Vs)


def _finish(M: np.ndarray, ldL2: float, Ls, Ws, Vs) -> Factor:
    """The last (p+1) x (p+1) Cholesky and the :class:`Factor`."""
    ok = bool(np.isfinite(ldL2))
    try:
        Lm = np.linalg.cholesky(M) if ok else np.full_like(M, np.nan)
    except np.linalg.LinAlgError:
        ok = False
        Lm = np.full_like(M, np.nan)
    ok = ok and bool(np.all(np.isfinite(Lm)))
    return Factor(Ls=Ls, Ws=Ws, Vs=Vs, Lm=Lm, ldL2=ldL2, ok=ok)


def conditional_u(fac: Factor, struct: Structure, beta: np.ndarray) -> list[np.ndarray]:
    """Spherical conditional modes u per level (b_i = Lambda_i u_i per group)."""
    nl = len(struct.levels)
    w = np.append(-beta, 1.0)
    c = [bmv(V, w) for V in fac.Vs]  # (G_i, q_i): L^{-1} Lambda' Z'(y - X beta)
    u: list[np.ndarray] = [np.empty(0)] * nl
    for i in range(nl - 1, -1, -1):
        r = c[i].copy()
        for j in range(i + 1, nl):
            ua = u[j][struct.anc[(i, j)]]  # (G_i, q_j)
            r -= np.einsum("gij,gj->gi", fac.Ws[(i, j)], ua, optimize=False)
        u[i] = bltsolve(fac.Ls[i], r)
    return u


def selected_inverse(fac: Factor, struct: Structure) -> list[np.ndarray]:
    """Diagonal blocks of (L L')^{-1} per group and level."""
    if len(struct.levels) <= 2 and _la.USE_NUMBA and _fused.AVAILABLE and fac.Ls:
        return _fused.selected_diag(fac, struct)
    return selected_inverse_full(fac, struct)[0]


def selected_inverse_full(fac: Factor, struct: Structure):
    """Blocks of (L L')^{-1} on the pattern of Z'Z (Takahashi recursion, coarsest level first).

    Returns ``(Zd, Zo)``: ``Zd[i]`` (G_i, q_i, q_i) diagonal blocks; ``Zo[(i, k)]``
    (G_i, q_i, q_k) the block between each group at level i and its ancestor at level k.
    """
    levels = struct.levels
    nl = len(levels)
    Zd: list[np.ndarray] = [np.empty(0)] * nl
    Zo: dict[tuple[int, int], np.ndarray] = {}  # (i, k): block (group at i, its ancestor at k)
    for i in range(nl - 1, -1, -1):
        L = fac.Ls[i]
        G, q = L.shape[0], L.shape[1]
        Linv = blsolve(L, np.broadcast_to(np.eye(q), (G, q, q)))
        for k in range(i + 1, nl):
            acc = np.zeros((G, q, levels[k].q))
            for j in range(i + 1, nl):
                if j == k:
                    Zjk = Zd[j][struct.anc[(i, j)]]
                elif j < k:
                    Zjk = Zo[(j, k)][struct.anc[(i, j)]]
                else:
                    Zjk = Zo[(k, j)][struct.anc[(i, k)]].transpose(0, 2, 1)
                acc += bmm(fac.Ws[(i, j)], Zjk)
            Zo[(i, k)] = -bltsolve(L, acc)
        inner = Linv.copy()
        for j in range(i + 1, nl):
            inner -= bmm(fac.Ws[(i, j)], Zo[(i, j)].transpose(0, 2, 1))
        Zd[i] = bltsolve(L, inner)
    return Zd, Zo
