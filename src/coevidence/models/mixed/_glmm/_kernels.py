"""The passes over the rows behind penalised IRLS: linear predictor, family terms and the
weighted cross-product blocks that the blocked Cholesky needs.

For the current random effects ``b`` (``b = Lambda u`` per group)::

    eta   = eta_fix + sum_levels z' b[g_level]                       (linear_predictor)
    mu    = linkinv(eta),  mu_eta = dmu/deta,  V = variance(mu)
    w     = m mu_eta^2 / V                  (Fisher working weight)  (family_terms)
    ztil  = (eta - base) + (y - mu) / mu_eta (working response)

and, per level ``i`` and group ``g``, ``acc_i[g, a, :] += w z_ia [z (levels >= i), x, ztil]`` (the
rows of ``Z_i' W [Z X ztil]`` that the nested factorisation uses) plus ``[x ztil]' W [x ztil]``
(accumulate).

The family terms are vectorised NumPy (its exp/log are SIMD; a compiled scalar loop calling
libm is several times slower); the gathers and the accumulation, which have no transcendental
functions, are compiled with numba when it is installed (else NumPy, same numbers).

Families and links follow R's ``binomial()`` / ``poisson()`` (including R's clamping of the mean
away from 0 and 1), which is what ``lme4::glmer`` uses.
"""

from __future__ import annotations

import math
import os

import numpy as np
from scipy.special import ndtr

__all__ = ["AVAILABLE", "FAMILIES", "LINKS", "accumulate", "deviance_residuals",
           "family_terms", "link_inverse", "linear_predictor"]

#: family code -> name
FAMILIES = {0: "binomial", 1: "poisson"}
#: link code -> name
LINKS = {0: "logit", 1: "probit", 2: "cloglog", 3: "log"}

_EPS = float(np.finfo(float).eps)
_THRESH = 30.0
_PROBIT_THRESH = 8.125890664701906  # -qnorm(DBL_EPSILON), as R's probit linkinv
_SQRT_2PI = math.sqrt(2.0 * math.pi)

AVAILABLE = False
if os.environ.get("COEVIDENCE_NO_NUMBA", "") in ("", "0"):
    try:
        from numba import njit
    except ImportError:  # pragma: no cover - optional dependency
        njit = None
    else:
        AVAILABLE = True

#: Use the compiled passes (tests switch it off to compare with the NumPy fallback).
USE_NUMBA: bool = AVAILABLE


# ----------------------------------------------------------------------------- family terms
def link_inverse(link: int, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mu, dmu/deta)`` as R's ``make.link`` computes them (with R's clamping)."""
    eta = np.asarray(eta, dtype=float)
    if link == 0:  # logit
        t = np.exp(np.clip(eta, -_THRESH, _THRESH))
        t = np.where(eta < -_THRESH, _EPS, np.where(eta > _THRESH, 1.0 / _EPS, t))
        mu = t / (1.0 + t)
        d = np.where((eta > _THRESH) | (eta < -_THRESH), _EPS, t / ((1.0 + t) ** 2))
        return mu, d
    if link == 1:  # probit
        mu = ndtr(np.clip(eta, -_PROBIT_THRESH, _PROBIT_THRESH))
        d = np.maximum(np.exp(-0.5 * eta * eta) / _SQRT_2PI, _EPS)
        return mu, d
    if link == 2:  # cloglog
        mu = np.clip(-np.expm1(-np.exp(eta)), _EPS, 1.0 - _EPS)
        e = np.minimum(eta, 700.0)
        d = np.maximum(np.exp(e) * np.exp(-np.exp(e)), _EPS)
        return mu, d
    mu = np.maximum(np.exp(eta), _EPS)  # log
    return mu, mu


def link_d2(link: int, eta: np.ndarray, mu: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Second derivative ``d^2 mu / d eta^2`` (unclamped formulas)."""
    if link == 0:
        return d * (1.0 - 2.0 * mu)
    if link == 1:
        return -eta * d
    if link == 2:
        return d * (1.0 - np.exp(np.minimum(eta, 700.0)))
    return mu


def variance(fam: int, mu: np.ndarray) -> np.ndarray:
    return mu * (1.0 - mu) if fam == 0 else mu


def _xlogx_const(fam: int, y: np.ndarray) -> np.ndarray:
    """Per row, the part of the deviance residual that does not depend on mu."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ylogy = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0)), 0.0)
        if fam == 0:
            return ylogy + np.where(y < 1, (1 - y) * np.log(np.where(y < 1, 1 - y, 1.0)), 0.0)
        return ylogy - y


def deviance_residuals(fam: int, y: np.ndarray, m: np.ndarray, mu: np.ndarray,
                       const: np.ndarray | None = None) -> np.ndarray:
    """Squared deviance residuals, R's ``family$dev.resids(y, mu, wt)``, per row."""
    c = _xlogx_const(fam, y) if const is None else const
    if fam == 0:
        return 2.0 * m * (c - y * np.log(mu) - (1.0 - y) * np.log1p(-mu))
    return 2.0 * m * (c - y * np.log(mu) + mu)


def family_terms(fam: int, link: int, y: np.ndarray, m: np.ndarray, eta: np.ndarray,
                 const: np.ndarray):
    """``(w, (y - mu) / mu_eta, dev)`` per row: working weights, working residuals and squared
    deviance residuals at ``eta``."""
    if link in (0, 3) and float(np.max(np.abs(eta), initial=0.0)) <= _THRESH:
        # canonical links away from R's clamping: one exp (and one log1p) per row
        t = np.exp(eta)
        if link == 0:  # logit: mu = t / (1 + t), log(1 - mu) = -log1p(t), log mu = eta - ...
            mu = t / (1.0 + t)
            d = mu * (1.0 - mu)
            dev = 2.0 * m * (const - y * eta + np.log1p(t))
        else:  # log: mu = t, log mu = eta
            mu = d = t
            dev = 2.0 * m * (const - y * eta + t)
        return m * d, (y - mu) / d, dev
    mu, d = link_inverse(link, eta)
    var = variance(fam, mu)
    w = m * d * d / var
    r = (y - mu) / d
    return w, r, deviance_residuals(fam, y, m, mu, const)


# ----------------------------------------------------------------------------- compiled passes
if AVAILABLE:

    @njit(cache=True, nogil=True)
    def _eta_nb(eta_fix, Z, codes, qs, cs, b_all, boff):
        n = eta_fix.shape[0]
        L = codes.shape[1]
        out = np.empty(n)
        for r in range(n):
            e = eta_fix[r]
            for i in range(L):
                qi = qs[i]
                bo = boff[i] + codes[r, i] * qi
                for a in range(qi):
                    e += Z[r, cs[i] + a] * b_all[bo + a]
            out[r] = e
        return out

    @njit(cache=True, nogil=True)
    def _acc_nb(w, zt, X, Z, codes, qs, cs, goff, widths, acc, glob):
        n = w.shape[0]
        L = codes.shape[1]
        Q = Z.shape[1]
        p = X.shape[1]
        ncol = Q + p + 1
        cvec = np.empty(ncol)
        for r in range(n):
            wr = w[r]
            for c in range(Q):
                cvec[c] = Z[r, c]
            for c in range(p):
                cvec[Q + c] = X[r, c]
            cvec[Q + p] = zt[r]
            for i in range(L):
                qi = qs[i]
                R = widths[i]
                c0 = cs[i]
                base_idx = goff[i] + codes[r, i] * qi * R
                for a in range(qi):
                    za = wr * cvec[c0 + a]
                    row = base_idx + a * R - c0
                    for c in range(c0, ncol):
                        acc[row + c] += za * cvec[c]
            for a in range(p + 1):
                va = wr * cvec[Q + a]
                for c in range(p + 1):
                    glob[a, c] += va * cvec[Q + c]


    @njit(cache=True, nogil=True)
    def _acc_int_nb(w, zt, X, codes, goff, widths, acc, glob):
        # every level a single intercept column (Z = 1): acc_i[g] += w [1 (levels >= i), x, zt]
        n = w.shape[0]
        L = codes.shape[1]
        p = X.shape[1]
        for r in range(n):
            wr = w[r]
            zr = zt[r]
            for i in range(L):
                b = goff[i] + codes[r, i] * widths[i]
                k = L - i
                for j in range(k):
                    acc[b + j] += wr
                for c in range(p):
                    acc[b + k + c] += wr * X[r, c]
                acc[b + k + p] += wr * zr
            for a in range(p):
                va = wr * X[r, a]
                for c in range(p):
                    glob[a, c] += va * X[r, c]
                glob[a, p] += va * zr
            glob[p, p] += wr * zr * zr
        for a in range(p):
            glob[p, a] = glob[a, p]


def linear_predictor(eta_fix, Z, codes, qs, cs, b_all, boff) -> np.ndarray:
    """``eta_fix + Z b`` for the stacked random effects ``b_all`` (level i at ``boff[i]``)."""
    if USE_NUMBA:
        return _eta_nb(eta_fix, Z, codes, qs, cs, b_all, boff)
    eta = np.array(eta_fix, dtype=float, copy=True)
    L = codes.shape[1]
    for i in range(L):
        qi = int(qs[i])
        end = int(boff[i + 1]) if i + 1 < L else len(b_all)
        B = b_all[int(boff[i]): end].reshape(-1, qi)
        eta += np.einsum("na,na->n", Z[:, cs[i]: cs[i] + qi], B[codes[:, i]], optimize=False)
    return eta


def accumulate(w, zt, X, Z, codes, qs, cs, goff, widths, acc, glob,
               intercepts_only: bool = False) -> None:
    """Fill ``acc`` (per-level blocks, flat) and ``glob`` (zeroed first); see the module doc.

    ``intercepts_only``: every level has one column and it is all ones (a faster loop).
    """
    acc[:] = 0.0
    glob[:] = 0.0
    if USE_NUMBA:
        if intercepts_only:
            _acc_int_nb(w, zt, X, codes, goff, widths, acc, glob)
        else:
            _acc_nb(w, zt, X, Z, codes, qs, cs, goff, widths, acc, glob)
        return
    C = np.column_stack([Z, X, zt])
    Q = Z.shape[1]
    L = codes.shape[1]
    for i in range(L):
        qi, R, c0 = int(qs[i]), int(widths[i]), int(cs[i])
        end = int(goff[i + 1]) if i + 1 < L else len(acc)
        G = (end - int(goff[i])) // (qi * R)
        block = acc[int(goff[i]): end].reshape(G, qi, R)
        for a in range(qi):
            za = w * Z[:, c0 + a]
            for c in range(c0, C.shape[1]):
                block[:, a, c - c0] = np.bincount(codes[:, i], weights=za * C[:, c], minlength=G)
    XZ = C[:, Q:]
    glob += (XZ * w[:, None]).T @ XZ

