"""Batched small dense linear algebra over a stack of groups, shape ``(G, q, q)``.

``q`` (random effects per group) is small (1-4), ``G`` (groups) can be in the hundreds of
thousands. The loops below run over the q rows/columns only; every operation inside is one
vectorised numpy call over all G groups, so the cost is O(G q^3) with no Python loop over groups.

With numba installed (``pip install coevidence[fast]``) every function below runs a compiled
kernel from :mod:`._kernels` instead (one pass over the groups, no temporaries); the NumPy code
is the fallback and gives the same numbers. ``USE_NUMBA`` switches at run time (tests set it to
compare both paths); the environment variable ``COEVIDENCE_NO_NUMBA=1`` disables the kernels
at import.
"""

from __future__ import annotations

import numpy as np

from . import _kernels as _k

#: Use the numba kernels (True when numba imported and ``COEVIDENCE_NO_NUMBA`` is not set).
USE_NUMBA: bool = _k.AVAILABLE


def _c(a: np.ndarray) -> np.ndarray:
    """float64, C-contiguous (what the kernels are compiled for)."""
    return np.ascontiguousarray(a, dtype=np.float64)

__all__ = [
    "bchol",
    "bcongr",
    "blsolve",
    "bltmul",
    "bltsolve",
    "bmm",
    "bmv",
    "bsum_aMbt",
    "bsum_abt",
    "btdot",
    "gsum",
    "segsum",
    "sub_btdot_seg",
]


def bchol(D: np.ndarray) -> np.ndarray:
    """Lower Cholesky factors of a stack of symmetric positive-definite ``(G, q, q)`` blocks.

    Non-positive pivots give NaN (the caller treats the evaluation as failed).
    """
    if USE_NUMBA:
        return _k.bchol(_c(D))
    q = D.shape[1]
    if q == 1:
        with np.errstate(invalid="ignore"):
            return np.sqrt(D)
    L = np.zeros_like(D)
    with np.errstate(invalid="ignore", divide="ignore"):
        for j in range(q):
            s = D[:, j, j].copy()
            for k in range(j):
                s -= L[:, j, k] ** 2
            d = np.sqrt(s)
            L[:, j, j] = d
            for i in range(j + 1, q):
                r = D[:, i, j].copy()
                for k in range(j):
                    r -= L[:, i, k] * L[:, j, k]
                L[:, i, j] = r / d
    return L


def blsolve(L: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Solve ``L W = C`` per group (L lower triangular ``(G, q, q)``, C ``(G, q, m)``)."""
    if USE_NUMBA:
        return _k.blsolve(_c(L), _c(C))
    q = L.shape[1]
    if q == 1:
        return C / L
    W = np.empty(C.shape)
    for i in range(q):
        r = C[:, i, :].copy()
        for k in range(i):
            r -= L[:, i, k, None] * W[:, k, :]
        W[:, i, :] = r / L[:, i, i, None]
    return W


def bltsolve(L: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Solve ``L' x = c`` per group (L lower ``(G, q, q)``, c ``(G, q)`` or ``(G, q, m)``)."""
    q = L.shape[1]
    vec = c.ndim == 2
    c3 = c[:, :, None] if vec else c
    if USE_NUMBA:
        x = _k.bltsolve(_c(L), _c(c3))
        return x[:, :, 0] if vec else x
    if q == 1:
        x = c3 / L
    else:
        x = np.empty(c3.shape)
        for i in range(q - 1, -1, -1):
            r = c3[:, i, :].copy()
            for k in range(i + 1, q):
                r -= L[:, k, i, None] * x[:, k, :]
            x[:, i, :] = r / L[:, i, i, None]
    return x[:, :, 0] if vec else x


def bltmul(lam: np.ndarray, A: np.ndarray) -> np.ndarray:
    """``lam' A_g`` for every group (lam ``(q, r)``, A ``(G, q, m)``) -> ``(G, r, m)``.

    einsum, not a BLAS call: a tall-thin GEMM gains nothing from BLAS threads and loses a lot
    when the cores are shared with other work.
    """
    if USE_NUMBA:
        return _k.bltmul(_c(lam), _c(A))
    return np.einsum("ka,gkm->gam", lam, A, optimize=False)


def bcongr(lam_a: np.ndarray, A: np.ndarray, lam_b: np.ndarray) -> np.ndarray:
    """``lam_a' A_g lam_b`` for every group."""
    if USE_NUMBA:
        return _k.bcongr(_c(lam_a), _c(A), _c(lam_b))
    return np.einsum("ka,gkm,mb->gab", lam_a, A, lam_b, optimize=["einsum_path", (0, 1), (0, 1)])


def btdot(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``A_g' B_g`` for every group (A ``(G, q, a)``, B ``(G, q, b)``) -> ``(G, a, b)``."""
    if USE_NUMBA:
        return _k.btdot(_c(A), _c(B))
    q = A.shape[1]
    out = A[:, 0, :, None] * B[:, 0, None, :]
    for k in range(1, q):
        out += A[:, k, :, None] * B[:, k, None, :]
    return out


def segsum(A: np.ndarray, starts: np.ndarray, n_out: int) -> np.ndarray:
    """Sum consecutive runs of the leading axis (runs start at ``starts``)."""
    if len(starts) == A.shape[0] == n_out:
        return A
    if n_out == 1:
        return A.sum(axis=0, keepdims=True)
    return np.add.reduceat(A, starts, axis=0)


def sub_btdot_seg(
    out: np.ndarray, A: np.ndarray, B: np.ndarray, anc: np.ndarray, starts: np.ndarray
) -> None:
    """``out -= segsum(btdot(A, B))`` in place; group g of A, B adds to ``out[anc[g]]``.

    ``anc`` is non-decreasing with runs starting at ``starts`` (see :mod:`._structure`).
    """
    if USE_NUMBA and out.flags.c_contiguous and out.dtype == np.float64:
        _k.sub_btdot_seg(out, _c(A), _c(B), np.ascontiguousarray(anc, dtype=np.int64))
        return
    out -= segsum(btdot(A, B), starts, out.shape[0])


def gsum(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """sum_g X_g Y_g for stacks X (G, a, b) and Y (G, b, d), as one BLAS contraction."""
    if USE_NUMBA:
        return _k.gsum(_c(X), _c(Y))
    return np.tensordot(X, Y, axes=([0, 2], [0, 1]))


def bmm(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``A_g B_g`` for every group; B may be one matrix shared by all groups."""
    if USE_NUMBA:
        if B.ndim == 2:
            return _k.bmm2(_c(A), _c(B))
        return _k.bmm3(_c(A), _c(B))
    if B.ndim == 2:
        return np.einsum("gak,kb->gab", A, B, optimize=False)
    return np.matmul(A, B)


def bmv(A: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``A_g w`` for a stack A (G, q, m) and one vector w (m,) -> (G, q)."""
    if USE_NUMBA:
        return _k.bmv(_c(A), _c(w))
    return np.einsum("gqm,m->gq", A, w, optimize=False)


def bsum_abt(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``sum_g A_g B_g'`` for stacks A (G, a, k) and B (G, b, k) -> (a, b), without copies."""
    if USE_NUMBA:
        return _k.bsum_abt(_c(A), _c(B))
    a, b = A.shape[1], B.shape[1]
    out = np.empty((a, b))
    for i in range(a):
        for j in range(b):
            out[i, j] = np.einsum("gk,gk->", A[:, i, :], B[:, j, :], optimize=False)
    return out


def bsum_aMbt(A: np.ndarray, M: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``sum_g A_g M B_g'`` for stacks A (G, a, k), B (G, b, k) and one (k, k) matrix M.

    One GEMM forms ``sum_g vec(A_g) vec(B_g)'`` ((a k) x (b k)); M is applied to that.
    """
    # one GEMM beats the compiled per-group loop here (measured): no numba kernel
    G, a, k = A.shape
    b = B.shape[1]
    C = np.ascontiguousarray(A).reshape(G, a * k).T @ np.ascontiguousarray(B).reshape(G, b * k)
    return np.einsum("ikjl,kl->ij", C.reshape(a, k, b, k), M, optimize=False)
