"""Fused numba kernels for a single grouping factor (one level): factorisation and gradient.

With one grouping factor the penalised system is block diagonal, so the whole blocked
Cholesky (``L_g = chol(Lambda' A_g Lambda + I)``, ``V_g = L_g^{-1} Lambda' [Z'X Z'y]_g``, the
sum ``sum_g V_g' V_g`` and ``log|L|^2``) is one pass over the groups with the q x q work inlined,
and so are all the per-group sums of the analytic gradient (:func:`._gradient.gradient_pieces`):

* ``S1 = sum_g (L_g L_g')^{-1} Lambda' A_g``,
* ``S2 = sum_g (Z'e)_g u_g'`` with ``u_g = L_g^{-T} V_g w`` and ``(Z'e)_g = B_g w - A_g Lambda u_g``,
* ``S3 = sum_g T_g A^{-1} F_g'`` with ``T_g = L_g^{-T} V_g[:, :p]`` and
  ``F_g = B_g[:, :p] - A_g Lambda T_g``,
* ``TF[r, c, a, b] = sum_g F_g[r, a] T_g[c, b]`` (the Jacobian of vcov(beta)).

These give the same numbers as the level-by-level kernels of :mod:`._linalg` (to rounding)
without their temporaries. Used only when numba is available (:data:`._kernels.AVAILABLE`)
and ``_linalg.USE_NUMBA`` is on; otherwise the NumPy code of ``_deviance``/``_gradient`` runs.
"""

from __future__ import annotations

import numpy as np

from . import _kernels as _k

__all__ = ["AVAILABLE", "chol_inverse", "factor1", "factor2", "grad1", "grad2"]

AVAILABLE = _k.AVAILABLE

if AVAILABLE:
    from numba import njit

    @njit(cache=True, nogil=True)
    def _factor_gen(lam, A, B):
        G, q, m = B.shape
        L = np.zeros((G, q, q))
        V = np.empty((G, q, m))
        D = np.empty((q, q))
        T = np.empty((q, q))
        Bt = np.empty((q, m))
        ld = 0.0
        for g in range(G):
            # T = A_g Lambda; D = Lambda' T + I
            for i in range(q):
                for j in range(q):
                    s = 0.0
                    for k in range(q):
                        s += A[g, i, k] * lam[k, j]
                    T[i, j] = s
            for i in range(q):
                for j in range(q):
                    s = 0.0
                    for k in range(q):
                        s += lam[k, i] * T[k, j]
                    D[i, j] = s
                D[i, i] += 1.0
            # Cholesky
            for j in range(q):
                s = D[j, j]
                for k in range(j):
                    s -= L[g, j, k] * L[g, j, k]
                d = np.sqrt(s) if s >= 0.0 else np.nan
                L[g, j, j] = d
                ld += 2.0 * np.log(d)
                for i in range(j + 1, q):
                    r = D[i, j]
                    for k in range(j):
                        r -= L[g, i, k] * L[g, j, k]
                    L[g, i, j] = r / d
            # Bt = Lambda' B_g ; V = L^{-1} Bt
            for a in range(q):
                for c in range(m):
                    s = 0.0
                    for k in range(q):
                        s += lam[k, a] * B[g, k, c]
                    Bt[a, c] = s
            for i in range(q):
                for c in range(m):
                    r = Bt[i, c]
                    for k in range(i):
                        r -= L[g, i, k] * V[g, k, c]
                    V[g, i, c] = r / L[g, i, i]
        return L, V, ld

    @njit(cache=True, nogil=True)
    def _factor_q2(lam, A, B):
        # the same as _factor_gen for q = 2, with the 2 x 2 algebra in scalars
        G, _, m = B.shape
        L = np.empty((G, 2, 2))
        V = np.empty((G, 2, m))
        l00, l01, l10, l11 = lam[0, 0], lam[0, 1], lam[1, 0], lam[1, 1]
        ld = 0.0
        for g in range(G):
            a00, a01, a10, a11 = A[g, 0, 0], A[g, 0, 1], A[g, 1, 0], A[g, 1, 1]
            t00 = a00 * l00 + a01 * l10
            t01 = a00 * l01 + a01 * l11
            t10 = a10 * l00 + a11 * l10
            t11 = a10 * l01 + a11 * l11
            d00 = l00 * t00 + l10 * t10 + 1.0
            d10 = l01 * t00 + l11 * t10
            d11 = l01 * t01 + l11 * t11 + 1.0
            c00 = np.sqrt(d00) if d00 >= 0.0 else np.nan
            c10 = d10 / c00
            e = d11 - c10 * c10
            c11 = np.sqrt(e) if e >= 0.0 else np.nan
            L[g, 0, 0] = c00
            L[g, 0, 1] = 0.0
            L[g, 1, 0] = c10
            L[g, 1, 1] = c11
            ld += np.log(c00) + np.log(c11)
            for c in range(m):
                b0 = B[g, 0, c]
                b1 = B[g, 1, c]
                v0 = (l00 * b0 + l10 * b1) / c00
                V[g, 0, c] = v0
                V[g, 1, c] = ((l01 * b0 + l11 * b1) - c10 * v0) / c11
        return L, V, 2.0 * ld

    @njit(cache=True, nogil=True)
    def _grad_gen(lam, A, B, L, V, w, Ainv, want_x, need_x, Fo, To):
        G, q, m = B.shape
        p = m - 1
        S1 = np.zeros((q, q))
        S2 = np.zeros((q, q))
        S3 = np.zeros((q, q))
        c = np.empty(q)
        u = np.empty(q)
        b = np.empty(q)
        Li = np.empty((q, q))
        Zd = np.empty((q, q))
        LtA = np.empty((q, q))
        Tx = np.empty((q, p))
        LT = np.empty((q, p))
        F = np.empty((q, p))
        TA = np.empty((q, p))
        for g in range(G):
            # u = L^{-T} (V w)
            for i in range(q):
                s = 0.0
                for k in range(m):
                    s += V[g, i, k] * w[k]
                c[i] = s
            for i in range(q - 1, -1, -1):
                r = c[i]
                for k in range(i + 1, q):
                    r -= L[g, k, i] * u[k]
                u[i] = r / L[g, i, i]
            # b = Lambda u ; Z'e = B w - A b ; S2 += Z'e u'
            for i in range(q):
                s = 0.0
                for k in range(q):
                    s += lam[i, k] * u[k]
                b[i] = s
            for i in range(q):
                s = 0.0
                for k in range(m):
                    s += B[g, i, k] * w[k]
                for k in range(q):
                    s -= A[g, i, k] * b[k]
                for j in range(q):
                    S2[i, j] += s * u[j]
            # Zd = (L L')^{-1} = L^{-T} L^{-1}
            for j in range(q):  # Li = L^{-1}, column by column
                for i in range(q):
                    r = 1.0 if i == j else 0.0
                    for k in range(i):
                        r -= L[g, i, k] * Li[k, j]
                    Li[i, j] = r / L[g, i, i]
            for i in range(q):
                for j in range(q):
                    s = 0.0
                    for k in range(max(i, j), q):
                        s += Li[k, i] * Li[k, j]
                    Zd[i, j] = s
            # S1 += Zd Lambda' A_g
            for i in range(q):
                for j in range(q):
                    s = 0.0
                    for k in range(q):
                        s += lam[k, i] * A[g, k, j]
                    LtA[i, j] = s
            for i in range(q):
                for j in range(q):
                    s = 0.0
                    for k in range(q):
                        s += Zd[i, k] * LtA[k, j]
                    S1[i, j] += s
            if want_x:
                # Tx = L^{-T} V[:, :p]
                for cc in range(p):
                    for i in range(q - 1, -1, -1):
                        r = V[g, i, cc]
                        for k in range(i + 1, q):
                            r -= L[g, k, i] * Tx[k, cc]
                        Tx[i, cc] = r / L[g, i, i]
                # F = B[:, :p] - A Lambda Tx
                for i in range(q):
                    for cc in range(p):
                        s = 0.0
                        for k in range(q):
                            s += lam[i, k] * Tx[k, cc]
                        LT[i, cc] = s
                for i in range(q):
                    for cc in range(p):
                        s = B[g, i, cc]
                        for k in range(q):
                            s -= A[g, i, k] * LT[k, cc]
                        F[i, cc] = s
                # S3 += Tx Ainv F'
                for i in range(q):
                    for cc in range(p):
                        s = 0.0
                        for k in range(p):
                            s += Tx[i, k] * Ainv[k, cc]
                        TA[i, cc] = s
                for i in range(q):
                    for j in range(q):
                        s = 0.0
                        for k in range(p):
                            s += TA[i, k] * F[j, k]
                        S3[i, j] += s
                if need_x:
                    for i in range(q):
                        for cc in range(p):
                            Fo[g, i, cc] = F[i, cc]
                            To[g, i, cc] = Tx[i, cc]
        return S1, S2, S3

    @njit(cache=True, nogil=True)
    def _grad_q2(lam, A, B, L, V, w, Ainv, want_x, need_x, Fo, To):
        # the same as _grad_gen for q = 2, with the 2 x 2 algebra in scalars
        G, _, m = B.shape
        p = m - 1
        l00, l01, l10, l11 = lam[0, 0], lam[0, 1], lam[1, 0], lam[1, 1]
        s1_00 = s1_01 = s1_10 = s1_11 = 0.0
        s2_00 = s2_01 = s2_10 = s2_11 = 0.0
        s3_00 = s3_01 = s3_10 = s3_11 = 0.0
        tx0 = np.empty(p)
        tx1 = np.empty(p)
        ta0 = np.empty(p)
        ta1 = np.empty(p)
        for g in range(G):
            c00, c10, c11 = L[g, 0, 0], L[g, 1, 0], L[g, 1, 1]
            a00, a01, a10, a11 = A[g, 0, 0], A[g, 0, 1], A[g, 1, 0], A[g, 1, 1]
            v0 = v1 = bw0 = bw1 = 0.0
            for k in range(m):
                wk = w[k]
                v0 += V[g, 0, k] * wk
                v1 += V[g, 1, k] * wk
                bw0 += B[g, 0, k] * wk
                bw1 += B[g, 1, k] * wk
            i00 = 1.0 / c00
            i11 = 1.0 / c11
            u1 = v1 * i11
            u0 = (v0 - c10 * u1) * i00
            b0 = l00 * u0 + l01 * u1
            b1 = l10 * u0 + l11 * u1
            ze0 = bw0 - (a00 * b0 + a01 * b1)
            ze1 = bw1 - (a10 * b0 + a11 * b1)
            s2_00 += ze0 * u0
            s2_01 += ze0 * u1
            s2_10 += ze1 * u0
            s2_11 += ze1 * u1
            # (L L')^{-1} = L^{-T} L^{-1}
            i10 = -c10 * i00 * i11
            z00 = i00 * i00 + i10 * i10
            z01 = i10 * i11
            z11 = i11 * i11
            # Lambda' A
            m00 = l00 * a00 + l10 * a10
            m01 = l00 * a01 + l10 * a11
            m10 = l01 * a00 + l11 * a10
            m11 = l01 * a01 + l11 * a11
            s1_00 += z00 * m00 + z01 * m10
            s1_01 += z00 * m01 + z01 * m11
            s1_10 += z01 * m00 + z11 * m10
            s1_11 += z01 * m01 + z11 * m11
            if want_x:
                for cc in range(p):
                    t1 = V[g, 1, cc] * i11
                    t0 = (V[g, 0, cc] - c10 * t1) * i00
                    tx0[cc] = t0
                    tx1[cc] = t1
                for cc in range(p):
                    r0 = 0.0
                    r1 = 0.0
                    for k in range(p):
                        r0 += tx0[k] * Ainv[k, cc]
                        r1 += tx1[k] * Ainv[k, cc]
                    ta0[cc] = r0
                    ta1[cc] = r1
                for cc in range(p):
                    t0 = tx0[cc]
                    t1 = tx1[cc]
                    lt0 = l00 * t0 + l01 * t1
                    lt1 = l10 * t0 + l11 * t1
                    f0 = B[g, 0, cc] - (a00 * lt0 + a01 * lt1)
                    f1 = B[g, 1, cc] - (a10 * lt0 + a11 * lt1)
                    s3_00 += ta0[cc] * f0
                    s3_01 += ta0[cc] * f1
                    s3_10 += ta1[cc] * f0
                    s3_11 += ta1[cc] * f1
                    if need_x:
                        Fo[g, 0, cc] = f0
                        Fo[g, 1, cc] = f1
                        To[g, 0, cc] = t0
                        To[g, 1, cc] = t1
        S1 = np.array([[s1_00, s1_01], [s1_10, s1_11]])
        S2 = np.array([[s2_00, s2_01], [s2_10, s2_11]])
        S3 = np.array([[s3_00, s3_01], [s3_10, s3_11]])
        return S1, S2, S3


def _c(a):
    return np.ascontiguousarray(a, dtype=np.float64)


def chol_inverse(L: np.ndarray) -> np.ndarray:
    """``(L L')^{-1}`` for a lower-triangular L (numpy only: no scipy argument checks)."""
    Li = np.linalg.inv(L)
    return Li.T @ Li


def factor1(lam: np.ndarray, ZtZ: np.ndarray, ZtXy: np.ndarray):
    """``(L, V, sum_g V_g'V_g, log|L|^2)`` of one level (see the module docstring)."""
    kernel = _factor_q2 if ZtZ.shape[1] == 2 else _factor_gen
    L, V, ld = kernel(_c(lam), _c(ZtZ), _c(ZtXy))
    Vf = V.reshape(-1, V.shape[2])
    return L, V, Vf.T @ Vf, ld


def grad1(lam, ZtZ, ZtXy, L, V, w, Ainv, want_x: bool, need_x: bool):
    """``(S1, S2, S3, TF)`` of one level (see the module docstring); ``TF`` is None unless
    ``need_x``."""
    G, q, m = ZtXy.shape
    p = m - 1
    Ainv = np.eye(p) if Ainv is None else Ainv
    shape = (G, q, p) if need_x else (1, q, p)
    Fo, To = np.empty(shape), np.empty(shape)
    kernel = _grad_q2 if q == 2 else _grad_gen
    S1, S2, S3 = kernel(_c(lam), _c(ZtZ), _c(ZtXy), _c(L), _c(V), _c(w), _c(Ainv),
                        bool(want_x), bool(need_x), Fo, To)
    TF = np.tensordot(Fo, To, axes=([0], [0])).transpose(0, 2, 1, 3) if need_x else None
    return S1, S2, S3, TF


# ---------------------------------------------------------------------------- two nested levels
if AVAILABLE:

    @njit(cache=True, nogil=True, inline="always")
    def _mm(A, B, out):  # out = A B
        for i in range(A.shape[0]):
            for j in range(B.shape[1]):
                s = 0.0
                for k in range(A.shape[1]):
                    s += A[i, k] * B[k, j]
                out[i, j] = s

    @njit(cache=True, nogil=True, inline="always")
    def _mtm(A, B, out):  # out = A' B
        for i in range(A.shape[1]):
            for j in range(B.shape[1]):
                s = 0.0
                for k in range(A.shape[0]):
                    s += A[k, i] * B[k, j]
                out[i, j] = s

    @njit(cache=True, nogil=True, inline="always")
    def _chol(D, L):  # lower Cholesky; returns log|L|^2 (NaN pivots propagate)
        q = D.shape[0]
        ld = 0.0
        for j in range(q):
            s = D[j, j]
            for k in range(j):
                s -= L[j, k] * L[j, k]
            d = np.sqrt(s) if s >= 0.0 else np.nan
            L[j, j] = d
            ld += 2.0 * np.log(d)
            for i in range(j + 1, q):
                r = D[i, j]
                for k in range(j):
                    r -= L[i, k] * L[j, k]
                L[i, j] = r / d
            for i in range(j):
                L[i, j] = 0.0
        return ld

    @njit(cache=True, nogil=True, inline="always")
    def _fsolve(L, C, out):  # out = L^{-1} C
        for c in range(C.shape[1]):
            for i in range(L.shape[0]):
                r = C[i, c]
                for k in range(i):
                    r -= L[i, k] * out[k, c]
                out[i, c] = r / L[i, i]

    @njit(cache=True, nogil=True, inline="always")
    def _bsolve(L, C, out):  # out = L^{-T} C
        q = L.shape[0]
        for c in range(C.shape[1]):
            for i in range(q - 1, -1, -1):
                r = C[i, c]
                for k in range(i + 1, q):
                    r -= L[k, i] * out[k, c]
                out[i, c] = r / L[i, i]

    @njit(cache=True, nogil=True)
    def _factor2(lam0, lam1, A0, B0, Aa, A1, B1, anc):
        G0, q0, m = B0.shape
        G1, q1 = A1.shape[0], A1.shape[1]
        L0 = np.empty((G0, q0, q0))
        V0 = np.empty((G0, q0, m))
        W = np.empty((G0, q0, q1))
        L1 = np.empty((G1, q1, q1))
        V1 = np.empty((G1, q1, m))
        D1 = np.empty((G1, q1, q1))
        Bt1 = np.empty((G1, q1, m))
        t1 = np.empty((q1, q1))
        t0 = np.empty((q0, q0))
        D0 = np.empty((q0, q0))
        Bt0 = np.empty((q0, m))
        tc = np.empty((q0, q1))
        C = np.empty((q0, q1))
        for h in range(G1):
            _mm(A1[h], lam1, t1)
            _mtm(lam1, t1, D1[h])
            for i in range(q1):
                D1[h, i, i] += 1.0
            _mtm(lam1, B1[h], Bt1[h])
        # per-group scratch copies: array views of the stacks would cost reference counting
        a0 = np.empty((q0, q0))
        b0 = np.empty((q0, m))
        aa = np.empty((q0, q1))
        l0 = np.empty((q0, q0))
        v0 = np.empty((q0, m))
        w0 = np.empty((q0, q1))
        ld = 0.0
        for g in range(G0):
            h = anc[g]
            for i in range(q0):
                for j in range(q0):
                    a0[i, j] = A0[g, i, j]
                for c in range(m):
                    b0[i, c] = B0[g, i, c]
                for j in range(q1):
                    aa[i, j] = Aa[g, i, j]
            _mm(a0, lam0, t0)
            _mtm(lam0, t0, D0)
            for i in range(q0):
                D0[i, i] += 1.0
            ld += _chol(D0, l0)
            _mtm(lam0, b0, Bt0)
            _fsolve(l0, Bt0, v0)
            _mm(aa, lam1, tc)
            _mtm(lam0, tc, C)
            _fsolve(l0, C, w0)
            for a in range(q1):
                for b in range(q1):
                    s = 0.0
                    for k in range(q0):
                        s += w0[k, a] * w0[k, b]
                    D1[h, a, b] -= s
                for c in range(m):
                    s = 0.0
                    for k in range(q0):
                        s += w0[k, a] * v0[k, c]
                    Bt1[h, a, c] -= s
            for i in range(q0):
                for j in range(q0):
                    L0[g, i, j] = l0[i, j]
                for c in range(m):
                    V0[g, i, c] = v0[i, c]
                for j in range(q1):
                    W[g, i, j] = w0[i, j]
        for h in range(G1):
            ld += _chol(D1[h], L1[h])
            _fsolve(L1[h], Bt1[h], V1[h])
        return L0, V0, W, L1, V1, ld

    @njit(cache=True, nogil=True)
    def _factor2_21(lam0, lam1, A0, B0, Aa, A1, B1, anc):
        # _factor2 for q0 = 2, q1 = 1 (e.g. (1 + t | org) + (1 | provider)), scalars
        G0, _, m = B0.shape
        G1 = A1.shape[0]
        L0 = np.empty((G0, 2, 2))
        V0 = np.empty((G0, 2, m))
        W = np.empty((G0, 2, 1))
        L1 = np.empty((G1, 1, 1))
        V1 = np.empty((G1, 1, m))
        l00, l01, l10, l11 = lam0[0, 0], lam0[0, 1], lam0[1, 0], lam0[1, 1]
        k1 = lam1[0, 0]
        D1 = np.empty(G1)
        Bt1 = np.empty((G1, m))
        for h in range(G1):
            D1[h] = k1 * A1[h, 0, 0] * k1 + 1.0
            for c in range(m):
                Bt1[h, c] = k1 * B1[h, 0, c]
        ld = 0.0
        for g in range(G0):
            h = anc[g]
            a00, a01, a10, a11 = A0[g, 0, 0], A0[g, 0, 1], A0[g, 1, 0], A0[g, 1, 1]
            t00 = a00 * l00 + a01 * l10
            t01 = a00 * l01 + a01 * l11
            t10 = a10 * l00 + a11 * l10
            t11 = a10 * l01 + a11 * l11
            d00 = l00 * t00 + l10 * t10 + 1.0
            d10 = l01 * t00 + l11 * t10
            d11 = l01 * t01 + l11 * t11 + 1.0
            c00 = np.sqrt(d00) if d00 >= 0.0 else np.nan
            c10 = d10 / c00
            e = d11 - c10 * c10
            c11 = np.sqrt(e) if e >= 0.0 else np.nan
            L0[g, 0, 0] = c00
            L0[g, 0, 1] = 0.0
            L0[g, 1, 0] = c10
            L0[g, 1, 1] = c11
            ld += np.log(c00) + np.log(c11)
            q0_ = Aa[g, 0, 0] * k1
            q1_ = Aa[g, 1, 0] * k1
            w0 = (l00 * q0_ + l10 * q1_) / c00
            w1 = ((l01 * q0_ + l11 * q1_) - c10 * w0) / c11
            W[g, 0, 0] = w0
            W[g, 1, 0] = w1
            D1[h] -= w0 * w0 + w1 * w1
            for c in range(m):
                b0 = B0[g, 0, c]
                b1 = B0[g, 1, c]
                v0 = (l00 * b0 + l10 * b1) / c00
                v1 = ((l01 * b0 + l11 * b1) - c10 * v0) / c11
                V0[g, 0, c] = v0
                V0[g, 1, c] = v1
                Bt1[h, c] -= w0 * v0 + w1 * v1
        ld *= 2.0
        for h in range(G1):
            d = np.sqrt(D1[h]) if D1[h] >= 0.0 else np.nan
            L1[h, 0, 0] = d
            ld += 2.0 * np.log(d)
            for c in range(m):
                V1[h, 0, c] = Bt1[h, c] / d
        return L0, V0, W, L1, V1, ld

    @njit(cache=True, nogil=True)
    def _grad2_21(lam0, lam1, A0, B0, Aa, A1, B1, anc, L0, V0, W, L1, V1, w, Ainv, want_x,
                  need_x):
        # _grad2 for q0 = 2, q1 = 1, with the 2 x 2 and 1 x 1 algebra in scalars
        G0, _, m = B0.shape
        G1 = A1.shape[0]
        p = m - 1
        k = m if want_x else 1
        l00, l01, l10, l11 = lam0[0, 0], lam0[0, 1], lam0[1, 0], lam0[1, 1]
        k1 = lam1[0, 0]
        S1_0 = np.zeros((2, 2))
        S2_0 = np.zeros((2, 2))
        S3_0 = np.zeros((2, 2))
        S1_1 = np.zeros((1, 1))
        S2_1 = np.zeros((1, 1))
        S3_1 = np.zeros((1, 1))
        TF0 = np.zeros((2, 2, p, p)) if need_x else np.zeros((1, 1, 1, 1))
        TF1 = np.zeros((1, 1, p, p)) if need_x else np.zeros((1, 1, 1, 1))
        T1 = np.empty((G1, k))
        acc1 = np.empty((G1, k))
        Zd1 = np.empty(G1)
        for h in range(G1):
            d = L1[h, 0, 0]
            s = 0.0
            for c in range(m):
                s += V1[h, 0, c] * w[c]
            T1[h, 0] = s / d
            for c in range(1, k):
                T1[h, c] = V1[h, 0, c - 1] / d
            for c in range(k):
                acc1[h, c] = A1[h, 0, 0] * k1 * T1[h, c]
            Zd1[h] = 1.0 / (d * d)
        t0 = np.empty(k)
        t1 = np.empty(k)
        e0 = np.empty(k)
        e1 = np.empty(k)
        ta0 = np.empty(max(p, 1))
        ta1 = np.empty(max(p, 1))
        s2_00 = s2_01 = s2_10 = s2_11 = 0.0
        s3_00 = s3_01 = s3_10 = s3_11 = 0.0
        s1_00 = s1_01 = s1_10 = s1_11 = 0.0
        s1_1 = 0.0
        for g in range(G0):
            h = anc[g]
            c00, c10, c11 = L0[g, 0, 0], L0[g, 1, 0], L0[g, 1, 1]
            i00 = 1.0 / c00
            i11 = 1.0 / c11
            w0, w1 = W[g, 0, 0], W[g, 1, 0]
            a00, a01, a10, a11 = A0[g, 0, 0], A0[g, 0, 1], A0[g, 1, 0], A0[g, 1, 1]
            aa0, aa1 = Aa[g, 0, 0], Aa[g, 1, 0]
            for c in range(k):
                if c == 0:
                    r0 = 0.0
                    r1 = 0.0
                    b0 = 0.0
                    b1 = 0.0
                    for j in range(m):
                        r0 += V0[g, 0, j] * w[j]
                        r1 += V0[g, 1, j] * w[j]
                        b0 += B0[g, 0, j] * w[j]
                        b1 += B0[g, 1, j] * w[j]
                else:
                    r0 = V0[g, 0, c - 1]
                    r1 = V0[g, 1, c - 1]
                    b0 = B0[g, 0, c - 1]
                    b1 = B0[g, 1, c - 1]
                tt = T1[h, c]
                r0 -= w0 * tt
                r1 -= w1 * tt
                x1 = r1 * i11
                x0 = (r0 - c10 * x1) * i00
                y0 = l00 * x0 + l01 * x1
                y1 = l10 * x0 + l11 * x1
                yc = k1 * tt
                acc1[h, c] += aa0 * y0 + aa1 * y1
                t0[c] = x0
                t1[c] = x1
                e0[c] = b0 - (a00 * y0 + a01 * y1 + aa0 * yc)
                e1[c] = b1 - (a10 * y0 + a11 * y1 + aa1 * yc)
            s2_00 += e0[0] * t0[0]
            s2_01 += e0[0] * t1[0]
            s2_10 += e1[0] * t0[0]
            s2_11 += e1[0] * t1[0]
            if want_x:
                for c in range(p):
                    r0 = 0.0
                    r1 = 0.0
                    for j in range(p):
                        r0 += t0[j + 1] * Ainv[j, c]
                        r1 += t1[j + 1] * Ainv[j, c]
                    ta0[c] = r0
                    ta1[c] = r1
                for c in range(p):
                    s3_00 += ta0[c] * e0[c + 1]
                    s3_01 += ta0[c] * e1[c + 1]
                    s3_10 += ta1[c] * e0[c + 1]
                    s3_11 += ta1[c] * e1[c + 1]
                if need_x:
                    for a in range(p):
                        f0 = e0[a + 1]
                        f1 = e1[a + 1]
                        for b in range(p):
                            TF0[0, 0, a, b] += f0 * t0[b + 1]
                            TF0[0, 1, a, b] += f0 * t1[b + 1]
                            TF0[1, 0, a, b] += f1 * t0[b + 1]
                            TF0[1, 1, a, b] += f1 * t1[b + 1]
            # selected inverse: Zo = -L0^{-T} W Zd1, Zd0 = L0^{-T} (L0^{-1} - W Zo')
            z = Zd1[h]
            zb1 = w1 * z * i11
            zo1 = -zb1
            zo0 = -((w0 * z - c10 * zb1) * i00)
            li00 = i00
            li10 = -c10 * i00 * i11
            li11 = i11
            n00 = li00 - w0 * zo0
            n01 = -w0 * zo1
            n10 = li10 - w1 * zo0
            n11 = li11 - w1 * zo1
            x1 = n10 * i11
            z00 = (n00 - c10 * x1) * i00
            z10 = x1
            x1 = n11 * i11
            z01 = (n01 - c10 * x1) * i00
            z11 = x1
            m00 = l00 * a00 + l10 * a10
            m01 = l00 * a01 + l10 * a11
            m10 = l01 * a00 + l11 * a10
            m11 = l01 * a01 + l11 * a11
            ka0 = k1 * aa0
            ka1 = k1 * aa1
            s1_00 += z00 * m00 + z01 * m10 + zo0 * ka0
            s1_01 += z00 * m01 + z01 * m11 + zo0 * ka1
            s1_10 += z10 * m00 + z11 * m10 + zo1 * ka0
            s1_11 += z10 * m01 + z11 * m11 + zo1 * ka1
            s1_1 += zo0 * (l00 * aa0 + l10 * aa1) + zo1 * (l01 * aa0 + l11 * aa1)
        S1_0[0, 0], S1_0[0, 1], S1_0[1, 0], S1_0[1, 1] = s1_00, s1_01, s1_10, s1_11
        S2_0[0, 0], S2_0[0, 1], S2_0[1, 0], S2_0[1, 1] = s2_00, s2_01, s2_10, s2_11
        S3_0[0, 0], S3_0[0, 1], S3_0[1, 0], S3_0[1, 1] = s3_00, s3_01, s3_10, s3_11
        for h in range(G1):
            s = 0.0
            for c in range(m):
                s += B1[h, 0, c] * w[c]
            e0[0] = s - acc1[h, 0]
            for c in range(1, k):
                e0[c] = B1[h, 0, c - 1] - acc1[h, c]
            S2_1[0, 0] += e0[0] * T1[h, 0]
            if want_x:
                for c in range(p):
                    r0 = 0.0
                    for j in range(p):
                        r0 += T1[h, j + 1] * Ainv[j, c]
                    S3_1[0, 0] += r0 * e0[c + 1]
                if need_x:
                    for a in range(p):
                        for b in range(p):
                            TF1[0, 0, a, b] += e0[a + 1] * T1[h, b + 1]
            s1_1 += Zd1[h] * k1 * A1[h, 0, 0]
        S1_1[0, 0] = s1_1
        return S1_0, S2_0, S3_0, S1_1, S2_1, S3_1, TF0, TF1

    @njit(cache=True, nogil=True)
    def _grad2(lam0, lam1, A0, B0, Aa, A1, B1, anc, L0, V0, W, L1, V1, w, Ainv, want_x,
               need_x):
        G0, q0, m = B0.shape
        G1, q1 = A1.shape[0], A1.shape[1]
        p = m - 1
        k = m if want_x else 1  # columns: [V w, V[:, :p]]
        S1_0 = np.zeros((q0, q0))
        S2_0 = np.zeros((q0, q0))
        S3_0 = np.zeros((q0, q0))
        S1_1 = np.zeros((q1, q1))
        S2_1 = np.zeros((q1, q1))
        S3_1 = np.zeros((q1, q1))
        # TF[r, c, a, b] = sum_g F_g[r, a] T_g[c, b] (Jacobian of vcov(beta)), per level
        TF0 = np.zeros((q0, q0, p, p)) if need_x else np.zeros((1, 1, 1, 1))
        TF1 = np.zeros((q1, q1, p, p)) if need_x else np.zeros((1, 1, 1, 1))
        T1 = np.empty((G1, q1, k))
        Y1 = np.empty((G1, q1, k))
        acc1 = np.empty((G1, q1, k))
        Zd1 = np.empty((G1, q1, q1))
        c1 = np.empty((q1, k))
        Li1 = np.empty((q1, q1))
        eye1 = np.eye(q1)
        eye0 = np.eye(q0)
        # pass A: coarse level (modes, T, selected inverse)
        for h in range(G1):
            for i in range(q1):
                s = 0.0
                for c in range(m):
                    s += V1[h, i, c] * w[c]
                c1[i, 0] = s
                for c in range(1, k):
                    c1[i, c] = V1[h, i, c - 1]
            _bsolve(L1[h], c1, T1[h])
            _mm(lam1, T1[h], Y1[h])
            _mm(A1[h], Y1[h], acc1[h])
            _fsolve(L1[h], eye1, Li1)
            _bsolve(L1[h], Li1, Zd1[h])
        # pass B: the fine groups
        c0 = np.empty((q0, k))
        T0 = np.empty((q0, k))
        Y0 = np.empty((q0, k))
        Z0 = np.empty((q0, k))
        E0 = np.empty((q0, k))
        TA = np.empty((q0, p))
        Li0 = np.empty((q0, q0))
        WZ = np.empty((q0, q1))
        Zo = np.empty((q0, q1))
        inner = np.empty((q0, q0))
        Zd0 = np.empty((q0, q0))
        LA = np.empty((q0, q0))
        P0 = np.empty((q0, q0))
        LAa = np.empty((q1, q0))
        P1 = np.empty((q0, q0))
        LZ = np.empty((q0, q1))
        l0 = np.empty((q0, q0))
        a0 = np.empty((q0, q0))
        aa = np.empty((q0, q1))
        w0 = np.empty((q0, q1))
        zd1 = np.empty((q1, q1))
        for g in range(G0):
            h = anc[g]
            for i in range(q0):
                for j in range(q0):
                    l0[i, j] = L0[g, i, j]
                    a0[i, j] = A0[g, i, j]
                for j in range(q1):
                    aa[i, j] = Aa[g, i, j]
                    w0[i, j] = W[g, i, j]
            for i in range(q1):
                for j in range(q1):
                    zd1[i, j] = Zd1[h, i, j]
            for i in range(q0):
                s = 0.0
                for c in range(m):
                    s += V0[g, i, c] * w[c]
                c0[i, 0] = s
                for c in range(1, k):
                    c0[i, c] = V0[g, i, c - 1]
                for c in range(k):
                    s = 0.0
                    for j in range(q1):
                        s += w0[i, j] * T1[h, j, c]
                    c0[i, c] -= s
            _bsolve(l0, c0, T0)
            _mm(lam0, T0, Y0)
            # Z'Z Lambda T for the fine group, and its contribution to the coarse group
            for i in range(q0):
                for c in range(k):
                    s = 0.0
                    for j in range(q0):
                        s += a0[i, j] * Y0[j, c]
                    for j in range(q1):
                        s += aa[i, j] * Y1[h, j, c]
                    Z0[i, c] = s
            for a in range(q1):
                for c in range(k):
                    s = 0.0
                    for j in range(q0):
                        s += aa[j, a] * Y0[j, c]
                    acc1[h, a, c] += s
            for i in range(q0):
                s = 0.0
                for c in range(m):
                    s += B0[g, i, c] * w[c]
                E0[i, 0] = s - Z0[i, 0]
                for c in range(1, k):
                    E0[i, c] = B0[g, i, c - 1] - Z0[i, c]
            for i in range(q0):
                for j in range(q0):
                    S2_0[i, j] += E0[i, 0] * T0[j, 0]
            if want_x:
                for i in range(q0):
                    for c in range(p):
                        s = 0.0
                        for j in range(p):
                            s += T0[i, j + 1] * Ainv[j, c]
                        TA[i, c] = s
                for i in range(q0):
                    for j in range(q0):
                        s = 0.0
                        for c in range(p):
                            s += TA[i, c] * E0[j, c + 1]
                        S3_0[i, j] += s
                if need_x:
                    for r in range(q0):
                        for c in range(q0):
                            for a in range(p):
                                f = E0[r, a + 1]
                                for b in range(p):
                                    TF0[r, c, a, b] += f * T0[c, b + 1]
            # selected inverse: Zo = -L0^{-T} W Zd1, Zd0 = L0^{-T} (L0^{-1} - W Zo')
            _mm(w0, zd1, WZ)
            _bsolve(l0, WZ, Zo)
            for i in range(q0):
                for j in range(q1):
                    Zo[i, j] = -Zo[i, j]
            _fsolve(l0, eye0, Li0)
            for i in range(q0):
                for j in range(q0):
                    s = 0.0
                    for c in range(q1):
                        s += w0[i, c] * Zo[j, c]
                    inner[i, j] = Li0[i, j] - s
            _bsolve(l0, inner, Zd0)
            # S1_0 += Zd0 Lambda0' A0 + Zo Lambda1' Aa' ; S1_1 += Zo' Lambda0' Aa
            _mtm(lam0, a0, LA)
            _mm(Zd0, LA, P0)
            for i in range(q1):
                for j in range(q0):
                    s = 0.0
                    for c in range(q1):
                        s += lam1[c, i] * aa[j, c]
                    LAa[i, j] = s  # (Lambda1' Aa')[i, j]
            _mm(Zo, LAa, P1)
            for i in range(q0):
                for j in range(q0):
                    S1_0[i, j] += P0[i, j] + P1[i, j]
            _mtm(lam0, aa, LZ)  # Lambda0' Aa (q0 x q1)
            for i in range(q1):
                for j in range(q1):
                    s = 0.0
                    for c in range(q0):
                        s += Zo[c, i] * LZ[c, j]
                    S1_1[i, j] += s
        # pass C: the coarse groups' own sums
        E1 = np.empty((q1, k))
        TA1 = np.empty((q1, p))
        LA1 = np.empty((q1, q1))
        P11 = np.empty((q1, q1))
        for h in range(G1):
            for i in range(q1):
                s = 0.0
                for c in range(m):
                    s += B1[h, i, c] * w[c]
                E1[i, 0] = s - acc1[h, i, 0]
                for c in range(1, k):
                    E1[i, c] = B1[h, i, c - 1] - acc1[h, i, c]
            for i in range(q1):
                for j in range(q1):
                    S2_1[i, j] += E1[i, 0] * T1[h, j, 0]
            if want_x:
                for i in range(q1):
                    for c in range(p):
                        s = 0.0
                        for j in range(p):
                            s += T1[h, i, j + 1] * Ainv[j, c]
                        TA1[i, c] = s
                for i in range(q1):
                    for j in range(q1):
                        s = 0.0
                        for c in range(p):
                            s += TA1[i, c] * E1[j, c + 1]
                        S3_1[i, j] += s
                if need_x:
                    for r in range(q1):
                        for c in range(q1):
                            for a in range(p):
                                f = E1[r, a + 1]
                                for b in range(p):
                                    TF1[r, c, a, b] += f * T1[h, c, b + 1]
            _mtm(lam1, A1[h], LA1)
            _mm(Zd1[h], LA1, P11)
            for i in range(q1):
                for j in range(q1):
                    S1_1[i, j] += P11[i, j]
        return S1_0, S2_0, S3_0, S1_1, S2_1, S3_1, TF0, TF1


if AVAILABLE:

    @njit(cache=True, nogil=True)
    def _seldiag2(L0, W, L1, anc):
        # diagonal blocks of (L L')^{-1}: Zd1 = (L1 L1')^{-1}; per fine group
        # Zo = -L0^{-T} W Zd1[anc], Zd0 = L0^{-T} (L0^{-1} - W Zo')
        G0, q0 = L0.shape[0], L0.shape[1]
        G1, q1 = L1.shape[0], L1.shape[1]
        Zd0 = np.empty((G0, q0, q0))
        Zd1 = np.empty((G1, q1, q1))
        eye0 = np.eye(q0)
        eye1 = np.eye(q1)
        Li1 = np.empty((q1, q1))
        for h in range(G1):
            _fsolve(L1[h], eye1, Li1)
            _bsolve(L1[h], Li1, Zd1[h])
        l0 = np.empty((q0, q0))
        w0 = np.empty((q0, q1))
        WZ = np.empty((q0, q1))
        Zo = np.empty((q0, q1))
        Li0 = np.empty((q0, q0))
        inner = np.empty((q0, q0))
        out = np.empty((q0, q0))
        for g in range(G0):
            h = anc[g]
            for i in range(q0):
                for j in range(q0):
                    l0[i, j] = L0[g, i, j]
                for j in range(q1):
                    w0[i, j] = W[g, i, j]
            for i in range(q0):
                for j in range(q1):
                    s = 0.0
                    for c in range(q1):
                        s += w0[i, c] * Zd1[h, c, j]
                    WZ[i, j] = s
            _bsolve(l0, WZ, Zo)
            _fsolve(l0, eye0, Li0)
            for i in range(q0):
                for j in range(q0):
                    s = 0.0
                    for c in range(q1):
                        s += w0[i, c] * Zo[j, c]
                    inner[i, j] = Li0[i, j] + s  # Zo here is -(the Zo above)
            _bsolve(l0, inner, out)
            for i in range(q0):
                for j in range(q0):
                    Zd0[g, i, j] = out[i, j]
        return Zd0, Zd1


if AVAILABLE:

    @njit(cache=True, nogil=True)
    def _seldiag1(L):
        G, q = L.shape[0], L.shape[1]
        Zd = np.empty((G, q, q))
        eye = np.eye(q)
        Li = np.empty((q, q))
        for g in range(G):
            _fsolve(L[g], eye, Li)
            _bsolve(L[g], Li, Zd[g])
        return Zd


def selected_diag(fac, struct):
    """Diagonal blocks of ``(L L')^{-1}`` per level (as ``_deviance.selected_inverse``) for one
    or two nested levels, without the level-by-level temporaries; None otherwise."""
    nl = len(struct.levels)
    if nl == 1:
        return [_seldiag1(_c(fac.Ls[0]))]
    if nl == 2:
        an = np.ascontiguousarray(struct.anc[(0, 1)], dtype=np.int64)
        return list(_seldiag2(_c(fac.Ls[0]), _c(fac.Ws[(0, 1)]), _c(fac.Ls[1]), an))
    return None


def _args2(blocks, struct) -> tuple:
    """The blocks and ancestor codes as the two-level kernels take them (float64 / int64,
    C-contiguous). When they already are (the engine's own blocks), the tuple is kept on
    ``blocks``: a fit or refit calls the kernels some thirty times on the same blocks. Blocks
    that needed a copy (views into a buffer a caller may refill) are converted on every call."""
    src = (blocks.ZtZ[0], blocks.ZtXy[0], blocks.ZtZa[(0, 1)], blocks.ZtZ[1], blocks.ZtXy[1],
           struct.anc[(0, 1)])
    cached = blocks.__dict__.get("_fused2")
    if cached is not None and all(a is b for a, b in zip(cached[0], src, strict=True)):
        return cached[1]  # the same arrays (a caller replacing one gets a fresh preparation)
    args = (*(_c(a) for a in src[:5]), np.ascontiguousarray(src[5], dtype=np.int64))
    if all(a is b for a, b in zip(args, src, strict=True)):
        # no copy was needed, so the kernels see any in-place change of the blocks: keep
        blocks.__dict__["_fused2"] = (src, args)
    return args


def factor2(lams, blocks, struct):
    """``(Ls, Ws, Vs, sum V'V, log|L|^2)`` of two nested levels (finest first), fused."""
    kernel = _factor2_21 if (lams[0].shape[0], lams[1].shape[0]) == (2, 1) else _factor2
    L0, V0, W, L1, V1, ld = kernel(_c(lams[0]), _c(lams[1]), *_args2(blocks, struct))
    m = V0.shape[2]
    V0f, V1f = V0.reshape(-1, m), V1.reshape(-1, m)
    return [L0, L1], {(0, 1): W}, [V0, V1], V0f.T @ V0f + V1f.T @ V1f, ld


def grad2(lams, blocks, struct, fac, w, Ainv, want_x: bool, need_x: bool = False):
    """``(S1, S2, S3, TF)`` (lists over the two levels) of
    :func:`._gradient.gradient_pieces`; ``TF`` is None unless ``need_x``."""
    p = blocks.p
    Ainv = np.eye(p) if Ainv is None else Ainv
    kernel = _grad2_21 if (lams[0].shape[0], lams[1].shape[0]) == (2, 1) else _grad2
    out = kernel(
        _c(lams[0]), _c(lams[1]), *_args2(blocks, struct),
        _c(fac.Ls[0]), _c(fac.Vs[0]), _c(fac.Ws[(0, 1)]), _c(fac.Ls[1]), _c(fac.Vs[1]),
        _c(w), _c(Ainv), bool(want_x or need_x), bool(need_x))
    TF = [out[6], out[7]] if need_x else None
    return [out[0], out[3]], [out[1], out[4]], [out[2], out[5]], TF
