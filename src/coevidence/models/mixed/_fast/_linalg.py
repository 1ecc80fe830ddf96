"""Batched small dense linear algebra over a stack of groups, shape ``(G, q, q)``.

``q`` (random effects per group) is small (1-4), ``G`` (groups) can be in the hundreds of
thousands. The loops below run over the q rows/columns only; every operation inside is one
vectorised numpy call over all G groups, so the cost is O(G q^3) with no Python loop over groups.
"""

from __future__ import annotations

import numpy as np

__all__ = ["bchol", "bcongr", "bltsolve", "blsolve", "btdot", "bltmul", "segsum"]


def bchol(D: np.ndarray) -> np.ndarray:
    """Lower Cholesky factors of a stack of symmetric positive-definite ``(G, q, q)`` blocks.

    Non-positive pivots give NaN (the caller treats the evaluation as failed).
    """
    G, q, _ = D.shape
    if q == 1:
        with np.errstate(invalid="ignore"):
            return np.sqrt(D)
    L = np.zeros_like(D)
    with np.errstate(invalid="ignore", divide="ignore"):
        for j in range(q):
            s = D[:, j, j]
            if j:
                s = s - np.einsum("gk,gk->g", L[:, j, :j], L[:, j, :j])
            d = np.sqrt(s)
            L[:, j, j] = d
            if j + 1 < q:
                r = D[:, j + 1 :, j]
                if j:
                    r = r - np.einsum("gik,gk->gi", L[:, j + 1 :, :j], L[:, j, :j])
                L[:, j + 1 :, j] = r / d[:, None]
    return L


def blsolve(L: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Solve ``L W = C`` per group (L lower triangular ``(G, q, q)``, C ``(G, q, m)``)."""
    q = L.shape[1]
    if q == 1:
        return C / L
    W = np.empty(C.shape)
    for i in range(q):
        r = C[:, i, :]
        if i:
            r = r - np.einsum("gk,gkm->gm", L[:, i, :i], W[:, :i, :])
        W[:, i, :] = r / L[:, i, i][:, None]
    return W


def bltsolve(L: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Solve ``L' x = c`` per group (L lower ``(G, q, q)``, c ``(G, q)`` or ``(G, q, m)``)."""
    q = L.shape[1]
    vec = c.ndim == 2
    c3 = c[:, :, None] if vec else c
    if q == 1:
        x = c3 / L
    else:
        x = np.empty(c3.shape)
        for i in range(q - 1, -1, -1):
            r = c3[:, i, :]
            if i + 1 < q:
                r = r - np.einsum("gk,gkm->gm", L[:, i + 1 :, i], x[:, i + 1 :, :])
            x[:, i, :] = r / L[:, i, i][:, None]
    return x[:, :, 0] if vec else x


def bltmul(lam: np.ndarray, A: np.ndarray) -> np.ndarray:
    """``lam' A_g`` for every group (lam ``(q, q)``, A ``(G, q, m)``)."""
    G, q, m = A.shape
    # (lam' A_g) = (A_g' lam)' ; one BLAS call on the (G*m, q) stack
    At = np.ascontiguousarray(A.transpose(0, 2, 1)).reshape(G * m, q)
    return (At @ lam).reshape(G, m, q).transpose(0, 2, 1)


def bcongr(lam_a: np.ndarray, A: np.ndarray, lam_b: np.ndarray) -> np.ndarray:
    """``lam_a' A_g lam_b`` for every group, as a new C-contiguous array."""
    G, qa, qb = A.shape
    Ab = (A.reshape(G * qa, qb) @ lam_b).reshape(G, qa, lam_b.shape[1])
    return np.ascontiguousarray(bltmul(lam_a, Ab))


def btdot(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``A_g' B_g`` for every group (A ``(G, q, a)``, B ``(G, q, b)``) -> ``(G, a, b)``."""
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
