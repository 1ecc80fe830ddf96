"""numba-compiled kernels for the batched small-block operations of :mod:`._linalg`.

Optional: installed with ``pip install coevidence[fast]`` (numba). When numba cannot be
imported, or the environment variable ``COEVIDENCE_NO_NUMBA`` is set to a non-empty value other
than ``0``, :data:`AVAILABLE` is False and :mod:`._linalg` uses its pure-NumPy code, which gives
the same numbers (to rounding: the sums are taken in the same order where it matters, and the
tests check 1e-12 agreement).

Every kernel loops over groups outermost with the q x q (q <= 4 or so) work inlined, so one
pass over memory replaces the several temporaries of the vectorised NumPy version. Inputs are
float64 and C-contiguous (the callers in :mod:`._linalg` make sure of it).
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["AVAILABLE"]

AVAILABLE = False

if os.environ.get("COEVIDENCE_NO_NUMBA", "") in ("", "0"):
    try:
        from numba import njit
    except ImportError:  # pragma: no cover - optional dependency
        njit = None
    else:
        AVAILABLE = True

if AVAILABLE:

    @njit(cache=True, nogil=True)
    def bchol(D):
        G, q = D.shape[0], D.shape[1]
        L = np.zeros_like(D)
        for g in range(G):
            for j in range(q):
                s = D[g, j, j]
                for k in range(j):
                    s -= L[g, j, k] * L[g, j, k]
                d = np.sqrt(s) if s >= 0.0 else np.nan
                L[g, j, j] = d
                for i in range(j + 1, q):
                    r = D[g, i, j]
                    for k in range(j):
                        r -= L[g, i, k] * L[g, j, k]
                    L[g, i, j] = r / d
        return L

    @njit(cache=True, nogil=True)
    def blsolve(L, C):
        G, q, m = C.shape
        W = np.empty((G, q, m))
        for g in range(G):
            for i in range(q):
                for c in range(m):
                    r = C[g, i, c]
                    for k in range(i):
                        r -= L[g, i, k] * W[g, k, c]
                    W[g, i, c] = r / L[g, i, i]
        return W

    @njit(cache=True, nogil=True)
    def bltsolve(L, C):
        G, q, m = C.shape
        X = np.empty((G, q, m))
        for g in range(G):
            for i in range(q - 1, -1, -1):
                for c in range(m):
                    r = C[g, i, c]
                    for k in range(i + 1, q):
                        r -= L[g, k, i] * X[g, k, c]
                    X[g, i, c] = r / L[g, i, i]
        return X

    @njit(cache=True, nogil=True)
    def bltmul(lam, A):
        # out[g, a, c] = sum_k lam[k, a] A[g, k, c]
        G, q, m = A.shape
        r = lam.shape[1]
        out = np.zeros((G, r, m))
        for g in range(G):
            for k in range(q):
                for a in range(r):
                    la = lam[k, a]
                    if la != 0.0:
                        for c in range(m):
                            out[g, a, c] += la * A[g, k, c]
        return out

    @njit(cache=True, nogil=True)
    def bcongr(la, A, lb):
        # out[g, a, b] = sum_{k, c} la[k, a] A[g, k, c] lb[c, b]
        G, q, m = A.shape
        ra, rb = la.shape[1], lb.shape[1]
        out = np.zeros((G, ra, rb))
        tmp = np.empty((ra, m))
        for g in range(G):
            tmp[:, :] = 0.0
            for k in range(q):
                for a in range(ra):
                    v = la[k, a]
                    if v != 0.0:
                        for c in range(m):
                            tmp[a, c] += v * A[g, k, c]
            for a in range(ra):
                for c in range(m):
                    t = tmp[a, c]
                    for b in range(rb):
                        out[g, a, b] += t * lb[c, b]
        return out

    @njit(cache=True, nogil=True)
    def btdot(A, B):
        # out[g, a, b] = sum_k A[g, k, a] B[g, k, b]
        G, q, na = A.shape
        nb = B.shape[2]
        out = np.zeros((G, na, nb))
        for g in range(G):
            for k in range(q):
                for a in range(na):
                    v = A[g, k, a]
                    for b in range(nb):
                        out[g, a, b] += v * B[g, k, b]
        return out

    @njit(cache=True, nogil=True)
    def sub_btdot_seg(out, A, B, anc):
        # out[anc[g]] -= A_g' B_g   (segsum of btdot, without the (G, a, b) temporary)
        G, q, na = A.shape
        nb = B.shape[2]
        for g in range(G):
            h = anc[g]
            for k in range(q):
                for a in range(na):
                    v = A[g, k, a]
                    for b in range(nb):
                        out[h, a, b] -= v * B[g, k, b]

    @njit(cache=True, nogil=True)
    def bmm3(A, B):
        G, na, q = A.shape
        nb = B.shape[2]
        out = np.zeros((G, na, nb))
        for g in range(G):
            for a in range(na):
                for k in range(q):
                    v = A[g, a, k]
                    for b in range(nb):
                        out[g, a, b] += v * B[g, k, b]
        return out

    @njit(cache=True, nogil=True)
    def bmm2(A, B):
        G, na, q = A.shape
        nb = B.shape[1]
        out = np.zeros((G, na, nb))
        for g in range(G):
            for a in range(na):
                for k in range(q):
                    v = A[g, a, k]
                    for b in range(nb):
                        out[g, a, b] += v * B[k, b]
        return out

    @njit(cache=True, nogil=True)
    def bmv(A, w):
        G, q, m = A.shape
        out = np.zeros((G, q))
        for g in range(G):
            for i in range(q):
                s = 0.0
                for c in range(m):
                    s += A[g, i, c] * w[c]
                out[g, i] = s
        return out

    @njit(cache=True, nogil=True)
    def bsum_abt(A, B):
        G, na, k = A.shape
        nb = B.shape[1]
        out = np.zeros((na, nb))
        for g in range(G):
            for i in range(na):
                for j in range(nb):
                    s = 0.0
                    for c in range(k):
                        s += A[g, i, c] * B[g, j, c]
                    out[i, j] += s
        return out

    @njit(cache=True, nogil=True)
    def gsum(X, Y):
        # sum_g X_g Y_g for X (G, a, b), Y (G, b, d)
        G, na, nb = X.shape
        nd = Y.shape[2]
        out = np.zeros((na, nd))
        for g in range(G):
            for a in range(na):
                for b in range(nb):
                    v = X[g, a, b]
                    for d in range(nd):
                        out[a, d] += v * Y[g, b, d]
        return out
