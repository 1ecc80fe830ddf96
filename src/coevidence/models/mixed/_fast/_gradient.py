"""Analytic gradient of the profiled deviance with respect to theta.

With ``V = Lambda' Z'Z Lambda + I = L L'``, ``A = R_X' R_X``, ``u`` the spherical conditional
modes, ``e = y - X beta - Z Lambda u`` and ``F = Z' Omega^{-1} X`` (``Omega = I + Z Lambda
Lambda' Z'``), for a theta element at position (r, c) of a level's Lambda (``E = e_r e_c'``)::

    d log|L|^2   = 2 sum_g [V^{-1} Lambda' Z'Z]_{gg}[c, r]
    d r^2        = -2 sum_g (Z'e)_g[r] u_g[c]                       (envelope theorem)
    d log|R_X|^2 = -2 sum_g [Lambda' F_g A^{-1} F_g'][c, r]

The ``[V^{-1}]`` blocks needed are exactly those on the sparsity pattern of ``Z'Z`` (a group and
its ancestors), which the Takahashi recursion of :func:`selected_inverse` provides. Every sum is
over groups, so the gradient costs a small multiple of one deviance evaluation.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

from . import _fused
from . import _linalg as _la
from ._deviance import Blocks, Factor, selected_inverse_full, weight_logdet
from ._linalg import bltmul, bltsolve, bmm, bmv, bsum_aMbt, btdot, gsum, segsum
from ._structure import Structure

__all__ = ["deviance_gradient", "gradient_pieces"]


def _backsolve(fac: Factor, struct: Structure, C: list[np.ndarray]) -> list[np.ndarray]:
    """Solve ``L' T = C`` level by level, coarsest first (C already forward-solved)."""
    nl = len(struct.levels)
    T: list[np.ndarray] = [np.empty(0)] * nl
    for i in range(nl - 1, -1, -1):
        r = C[i].copy()
        for j in range(i + 1, nl):
            r -= bmm(fac.Ws[(i, j)], T[j][struct.anc[(i, j)]])
        T[i] = bltsolve(fac.Ls[i], r)
    return T


def _ztz_times(blocks: Blocks, struct: Structure, Y: list[np.ndarray]) -> list[np.ndarray]:
    """(Z'Z Y) per level for per-level stacks Y_i of shape (G_i, q_i, m)."""
    nl = len(struct.levels)
    out = [bmm(blocks.ZtZ[i], Y[i]) for i in range(nl)]
    for (i, j), A in blocks.ZtZa.items():  # i finer than j
        a = struct.anc[(i, j)]
        out[i] += bmm(A, Y[j][a])
        out[j] += segsum(btdot(A, Y[i]), struct.starts[(i, j)], struct.levels[j].G)
    return out


def gradient_pieces(
    blocks: Blocks, struct: Structure, lams: list[np.ndarray], fac: Factor, reml: bool,
    need_x: bool = False,
):
    """Per-level sums from which every derivative of the (RE)ML criterion is read off.

    Returns ``(S1, S2, S3, TF)``: for a level's Lambda element (r, c),
    ``d log|L|^2 = 2 S1[c, r]``, ``d pwrss = -2 S2[r, c]`` and ``d log|R_X|^2 = -2 S3[c, r]``
    (``S3`` is None unless ``reml`` or ``need_x``). With ``need_x`` also
    ``TF[li]`` (q, q, p, p) ``= sum_g F_g[r, :]' T_g[c, :]``, so that
    ``d (R_X' R_X) / d Lambda_rc = -(TF[r, c] + TF[r, c]')`` (the Jacobian of vcov(beta)).

    With group weights (``blocks.wg``) ``S1`` includes the derivative of the weighted
    log-determinant correction (:func:`._deviance.weight_logdet`).
    """
    S1, S2, S3, TF = _gradient_pieces(blocks, struct, lams, fac, reml, need_x)
    if blocks.wg is not None:
        wgrad = fac.wgrad if fac.wgrad is not None else weight_logdet(blocks, lams[0])[1]
        S1 = list(S1)
        S1[0] = S1[0] + 0.5 * wgrad.T
    return S1, S2, S3, TF


def _gradient_pieces(blocks, struct, lams, fac, reml, need_x):
    p = blocks.p
    nl = len(struct.levels)
    beta = fac.beta()
    w = np.append(-beta, 1.0)
    want_x = reml or need_x
    if nl == 1 and _la.USE_NUMBA and _fused.AVAILABLE and fac.Ls:
        Ainv = _fused.chol_inverse(fac.Lm[:p, :p]) if want_x else None
        s1, s2, s3, tf = _fused.grad1(lams[0], blocks.ZtZ[0], blocks.ZtXy[0], fac.Ls[0],
                                      fac.Vs[0], w, Ainv, want_x, need_x)
        return [s1], [s2], ([s3] if want_x else None), ([tf] if need_x else None)
    if nl == 2 and _la.USE_NUMBA and _fused.AVAILABLE and fac.Ls:
        Ainv = _fused.chol_inverse(fac.Lm[:p, :p]) if want_x else None
        S1, S2, S3, TF = _fused.grad2(lams, blocks, struct, fac, w, Ainv, want_x, need_x)
        return S1, S2, (S3 if want_x else None), TF
    # spherical modes u = (L L')^{-1} Lambda' Z'(y - X beta), and Z'e = Z'(y - X beta) - Z'Z b
    U = _backsolve(fac, struct, [bmv(V, w)[:, :, None] for V in fac.Vs])
    ZZb = _ztz_times(blocks, struct, [bltmul(lams[i].T, U[i]) for i in range(nl)])
    Zte = [bmv(blocks.ZtXy[i], w) - ZZb[i][:, :, 0] for i in range(nl)]
    if want_x:
        # T = (L L')^{-1} Lambda' Z'X and F = Z' Omega^{-1} X = Z'X - Z'Z Lambda T; note
        # Lambda' F = T, so sum_g Lambda' F_g A^{-1} F_g' = sum_g (T_g A^{-1}) F_g'
        TX = _backsolve(fac, struct, [V[:, :, :p] for V in fac.Vs])
        ZZT = _ztz_times(blocks, struct, [bltmul(lams[i].T, TX[i]) for i in range(nl)])
        Ainv = linalg.cho_solve((fac.Lm[:p, :p], True), np.eye(p))
    Zd, Zo = selected_inverse_full(fac, struct)
    S1, S2, S3, TF = [], [], [], []
    for li in range(nl):
        lam = lams[li]
        # sum_g P_gg, P = V^{-1} Lambda' Z'Z (same level, ancestors, descendants)
        P = _gsum(bmm(Zd[li], lam.T), blocks.ZtZ[li])
        for j in range(li + 1, nl):
            P += _gsum(bmm(Zo[(li, j)], lams[j].T), blocks.ZtZa[(li, j)].transpose(0, 2, 1))
        for i in range(li):
            P += _gsum(bltmul(lams[i].T, Zo[(i, li)]).transpose(0, 2, 1), blocks.ZtZa[(i, li)])
        S1.append(P)
        S2.append(Zte[li].T @ U[li][:, :, 0])
        if want_x:
            F = ZZT[li]  # F = Z'X - Z'Z Lambda T, in place (memory)
            np.subtract(blocks.ZtXy[li][:, :, :p], F, out=F)
            ZZT[li] = None
            S3.append(bsum_aMbt(TX[li], Ainv, F))
            if need_x:
                # (q, p, q, p) -> (r, c, a, b): sum_g F_g[r, a] T_g[c, b]
                TF.append(np.tensordot(F, TX[li], axes=([0], [0])).transpose(0, 2, 1, 3))
    return S1, S2, (S3 if want_x else None), (TF if need_x else None)


def deviance_gradient(
    blocks: Blocks, struct: Structure, lams: list[np.ndarray], fac: Factor, reml: bool
) -> np.ndarray:
    """Gradient of the profiled deviance (or REML criterion) in lme4's theta order."""
    n, p = blocks.n, blocks.p
    r2 = fac.pwrss
    S1, S2, S3, _ = gradient_pieces(blocks, struct, lams, fac, reml)
    grad = np.empty(len(struct.theta_level))
    nr = (n - p) if reml else n
    for k in range(len(grad)):
        li, r, c = struct.theta_level[k], struct.theta_row[k], struct.theta_col[k]
        g = 2.0 * S1[li][c, r] - (nr / r2) * 2.0 * S2[li][r, c]
        if reml:
            g -= 2.0 * S3[li][c, r]
        grad[k] = g
    return grad


_gsum = gsum
