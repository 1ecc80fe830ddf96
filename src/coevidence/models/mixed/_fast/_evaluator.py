"""One whole evaluation of the (RE)ML criterion and its analytic gradient in a few numba calls.

For one or two nested levels without group weights: the level kernels of :mod:`._fused` (called
from Python, so that each is compiled once), then the last (p+1) x (p+1) Cholesky, beta and
A^{-1} (:func:`_tail`) and the assembly of the gradient, with no NumPy wrappers in between. The
same formulas as ``_deviance.factorize`` / ``Factor.deviance`` /
``_gradient.deviance_gradient`` and ``_derivatives.criterion_and_gradient``, to rounding.
Used by every fit and refit it applies to (``FastEngine._optimum``,
``_derivatives.satterthwaite_pieces``).
"""

from __future__ import annotations

import numpy as np

from ._fused import AVAILABLE, _args2, _c

__all__ = ["Evaluator", "evaluator"]

# (a small model's evaluation is ~40 us of numerics; through the wrappers of ``_deviance`` /
# ``_gradient`` ~150-200 us)
if AVAILABLE:
    from numba import njit

    from ._fused import (
        _factor2,
        _factor2_21,
        _factor_gen,
        _factor_q2,
        _grad2,
        _grad2_21,
        _grad_gen,
        _grad_q2,
    )

    _LOG2PI = float(np.log(2.0 * np.pi))

    @njit(cache=True, nogil=True)
    def _x_lams(x, lev, row, col, q0, q1):
        lam0 = np.zeros((q0, q0))
        lam1 = np.zeros((q1, q1))
        for k in range(len(lev)):
            if lev[k] == 0:
                lam0[row[k], col[k]] = x[k]
            else:
                lam1[row[k], col[k]] = x[k]
        return lam0, lam1

    @njit(cache=True, nogil=True)
    def _tail(XytXy, V0, V1, ld, want_ainv):
        """``(ok, Lm, w, Ainv)``: the Cholesky ``Lm`` of ``XytXy - sum_g V_g'V_g`` (both
        levels), ``w = (-beta, 1)`` and ``A^{-1} = (R_X'R_X)^{-1}`` (identity unless
        ``want_ainv``); ``ok`` False where ``ld`` or a pivot is not finite and positive."""
        G0, q0, m = V0.shape
        G1, q1 = V1.shape[0], V1.shape[1]
        p = m - 1
        VtV = np.zeros((m, m))
        for g in range(G0):
            for i in range(q0):
                for a in range(m):
                    va = V0[g, i, a]
                    for b in range(a + 1):
                        VtV[a, b] += va * V0[g, i, b]
        for g in range(G1):
            for i in range(q1):
                for a in range(m):
                    va = V1[g, i, a]
                    for b in range(a + 1):
                        VtV[a, b] += va * V1[g, i, b]
        Lm = np.zeros((m, m))
        w = np.zeros(m)
        Ainv = np.eye(p)
        ok = bool(np.isfinite(ld))
        for j in range(m):
            if not ok:
                break
            s = XytXy[j, j] - VtV[j, j]
            for k in range(j):
                s -= Lm[j, k] * Lm[j, k]
            if not s > 0.0 or not np.isfinite(s):
                ok = False
                break
            d = np.sqrt(s)
            Lm[j, j] = d
            for i in range(j + 1, m):
                r = XytXy[i, j] - VtV[i, j]
                for k in range(j):
                    r -= Lm[i, k] * Lm[j, k]
                Lm[i, j] = r / d
        if not ok:
            return False, Lm, w, Ainv
        w[p] = 1.0
        beta = np.empty(p)
        for i in range(p - 1, -1, -1):  # R_X beta = r: back substitution
            r = Lm[p, i]
            for k in range(i + 1, p):
                r -= Lm[k, i] * beta[k]
            beta[i] = r / Lm[i, i]
            w[i] = -beta[i]
        if want_ainv:  # A^{-1} = L11^{-T} L11^{-1}
            Li = np.zeros((p, p))
            for j in range(p):
                for i in range(j, p):
                    r = 1.0 if i == j else 0.0
                    for k in range(j, i):
                        r -= Lm[i, k] * Li[k, j]
                    Li[i, j] = r / Lm[i, i]
            for i in range(p):
                for j in range(p):
                    s = 0.0
                    for k in range(max(i, j), p):
                        s += Li[k, i] * Li[k, j]
                    Ainv[i, j] = s
        return True, Lm, w, Ainv

    @njit(cache=True, nogil=True)
    def _pick(li, S_0, S_1, a, b):
        return S_0[a, b] if li == 0 else S_1[a, b]

    @njit(cache=True, nogil=True)
    def _profiled(Lm, ld, n, reml, lev, row, col, S1_0, S2_0, S3_0, S1_1, S2_1, S3_1, grad):
        """The profiled deviance (ML) or REML criterion, its gradient written to ``grad``
        (lme4's theta layout: ``lev``, ``row``, ``col`` of each element in its level's Lambda);
        ``inf`` with a zero gradient where it is not finite."""
        p = Lm.shape[0] - 1
        r2 = Lm[p, p] * Lm[p, p]
        nr = n - p if reml else n
        dev = ld + nr * (1.0 + _LOG2PI + np.log(r2 / nr))
        if reml:
            for i in range(p):
                dev += 2.0 * np.log(Lm[i, i])
        for k in range(len(lev)):
            li, r, c = lev[k], row[k], col[k]
            g = 2.0 * _pick(li, S1_0, S1_1, c, r) - (nr / r2) * 2.0 * _pick(li, S2_0, S2_1, r, c)
            if reml:
                g -= 2.0 * _pick(li, S3_0, S3_1, c, r)
            grad[k] = g
        if not np.isfinite(dev):
            grad[:] = 0.0
            return np.inf
        return dev

    @njit(cache=True, nogil=True)
    def _criterion(Lm, ld, n, reml, sigma, lev, row, col, S1_0, S2_0, S3_0, S1_1, S2_1, S3_1,
                   grad):
        """``_derivatives.criterion_and_gradient`` at (theta, sigma): the value, and the
        gradient written to ``grad`` (last element: sigma)."""
        k = len(grad)
        p = Lm.shape[0] - 1
        pw = Lm[p, p] * Lm[p, p]
        s2 = sigma * sigma
        nr = n - p if reml else n
        value = ld + nr * (_LOG2PI + np.log(s2)) + pw / s2
        if reml:
            for i in range(p):
                value += 2.0 * np.log(Lm[i, i])
        for i in range(k - 1):
            li, r, c = lev[i], row[i], col[i]
            g = 2.0 * _pick(li, S1_0, S1_1, c, r) - 2.0 * _pick(li, S2_0, S2_1, r, c) / s2
            if reml:
                g -= 2.0 * _pick(li, S3_0, S3_1, c, r)
            grad[i] = g
        grad[k - 1] = 2.0 * nr / sigma - 2.0 * pw / (s2 * sigma)
        return value

    @njit(cache=True, nogil=True)
    def _vcov_jacobian(sigma, Ainv, lev, row, col, TF0, TF1):
        """``(jac, vcov)``: the analytic Jacobian of ``vcov(beta) = sigma^2 A^{-1}`` in (theta,
        sigma) (``d A / d Lambda_rc = -(TF[r, c] + TF[r, c]')``) and vcov(beta)."""
        k = len(lev) + 1
        p = Ainv.shape[0]
        s2 = sigma * sigma
        J = np.empty((k, p, p))
        dA = np.empty((p, p))
        tmp = np.empty((p, p))
        for i in range(k - 1):
            li, r, c = lev[i], row[i], col[i]
            for a in range(p):
                for b in range(p):
                    if li == 0:
                        dA[a, b] = TF0[r, c, a, b] + TF0[r, c, b, a]
                    else:
                        dA[a, b] = TF1[r, c, a, b] + TF1[r, c, b, a]
            for a in range(p):
                for b in range(p):
                    s = 0.0
                    for e in range(p):
                        s += dA[a, e] * Ainv[e, b]
                    tmp[a, b] = s
            for a in range(p):
                for b in range(p):
                    s = 0.0
                    for e in range(p):
                        s += Ainv[a, e] * tmp[e, b]
                    J[i, a, b] = s2 * s  # -s2 Ainv (-(TF + TF')) Ainv
        V = np.empty((p, p))
        for a in range(p):
            for b in range(p):
                J[k - 1, a, b] = 2.0 * sigma * Ainv[a, b]
                V[a, b] = s2 * Ainv[a, b]
        return J, V

    @njit(cache=True, nogil=True)
    def _tf1(Fo, To):
        # TF[r, c, a, b] = sum_g F_g[r, a] T_g[c, b] of one level
        G, q, p = Fo.shape
        TF = np.zeros((q, q, p, p))
        for g in range(G):
            for r in range(q):
                for c in range(q):
                    for a in range(p):
                        f = Fo[g, r, a]
                        for b in range(p):
                            TF[r, c, a, b] += f * To[g, c, b]
        return TF


class Evaluator:
    """The criterion and its analytic gradient for one set of blocks (one or two nested
    levels, no group weights), each evaluation a few numba calls (see above).

    ``fg(theta) -> (deviance, gradient)`` is the profiled criterion of the optimiser (what
    ``engine._optimum``'s ``dev_grad`` computes); :meth:`hessian` and :meth:`jacobian` the
    Satterthwaite pieces of :func:`._derivatives.satterthwaite_pieces` in its (theta, sigma)
    layout. :func:`evaluator` returns None where it does not apply.
    """

    def __init__(self, blocks, struct, reml: bool) -> None:
        nl = len(struct.levels)
        self.nl = nl
        self.reml = bool(reml)
        self.n = float(blocks.n)
        self.p = int(blocks.p)
        A0, B0 = _c(blocks.ZtZ[0]), _c(blocks.ZtXy[0])
        m = B0.shape[2]
        q0 = A0.shape[1]
        self.XytXy = _c(blocks.XytXy)
        if nl == 2:
            args = _args2(blocks, struct)
            q1 = args[3].shape[1]
            self._fk = _factor2_21 if (q0, q1) == (2, 1) else _factor2
            self._gk = _grad2_21 if (q0, q1) == (2, 1) else _grad2
            self._args = args
        else:
            q1 = 1
            self._fk = _factor_q2 if q0 == 2 else _factor_gen
            self._gk = _grad_q2 if q0 == 2 else _grad_gen
            self._args = (A0, B0)
            self._V1 = np.empty((0, 1, m))
            self._S0 = np.zeros((1, 1))
        self.q0, self.q1 = q0, q1
        self.theta_layout = tuple(np.ascontiguousarray(a, dtype=np.int64) for a in (
            struct.theta_level, struct.theta_row, struct.theta_col))

    def _pieces(self, x, layout, want_x: bool, need_x: bool):
        """``(ok, ld, Lm, Ainv, S, TF)`` at the Lambdas of ``x`` (``S`` the six gradient sums,
        ``TF`` the two Jacobian sums; None unless ``ok``)."""
        lam0, lam1 = _x_lams(x, *layout, self.q0, self.q1)
        wx = bool(want_x or need_x)
        if self.nl == 2:
            L0, V0, W, L1, V1, ld = self._fk(lam0, lam1, *self._args)
            ok, Lm, w, Ainv = _tail(self.XytXy, V0, V1, ld, wx)
            if not ok:
                return False, ld, Lm, Ainv, None, None
            out = self._gk(lam0, lam1, *self._args, L0, V0, W, L1, V1, w, Ainv, wx,
                           bool(need_x))
            return True, ld, Lm, Ainv, out[:6], out[6:]
        A0, B0 = self._args
        L0, V0, ld = self._fk(lam0, A0, B0)
        ok, Lm, w, Ainv = _tail(self.XytXy, V0, self._V1, ld, wx)
        if not ok:
            return False, ld, Lm, Ainv, None, None
        shape = (B0.shape[0] if need_x else 1, self.q0, self.p)
        Fo, To = np.empty(shape), np.empty(shape)
        S1, S2, S3 = self._gk(lam0, A0, B0, L0, V0, w, Ainv, wx, bool(need_x), Fo, To)
        z = self._S0
        TF = (_tf1(Fo, To), np.zeros((1, 1, self.p, self.p))) if need_x else None
        return True, ld, Lm, Ainv, (S1, S2, S3, z, z, z), TF

    def at(self, theta):
        """``(ok, deviance, beta, pwrss, Ainv)`` at ``theta`` without the gradient: beta of
        the residualised outcome (see ``_deviance.precompute``), ``Ainv = (R_X' R_X)^{-1}``."""
        lam0, lam1 = _x_lams(np.ascontiguousarray(theta, dtype=np.float64), *self.theta_layout,
                             self.q0, self.q1)
        if self.nl == 2:
            out = self._fk(lam0, lam1, *self._args)
            V0, V1, ld = out[1], out[4], out[5]
        else:
            _, V0, ld = self._fk(lam0, *self._args)
            V1 = self._V1
        ok, Lm, w, Ainv = _tail(self.XytXy, V0, V1, ld, True)
        if not ok:
            return False, np.inf, None, np.nan, None
        p, n = self.p, self.n
        r2 = float(Lm[p, p] ** 2)
        if self.reml:
            nr = n - p
            dev = ld + 2.0 * float(np.log(np.diag(Lm)[:p]).sum()) + nr * (
                1.0 + _LOG2PI + np.log(r2 / nr))
        else:
            dev = ld + n * (1.0 + _LOG2PI + np.log(r2 / n))
        return bool(np.isfinite(dev)), float(dev), -w[:p], r2, Ainv

    def fg(self, theta):
        """The profiled deviance or REML criterion at ``theta`` and its gradient."""
        theta = np.ascontiguousarray(theta, dtype=np.float64)
        grad = np.zeros(len(theta))
        ok, ld, Lm, _, S, _ = self._pieces(theta, self.theta_layout, self.reml, False)
        if not ok:
            return np.inf, grad
        dev = _profiled(Lm, ld, self.n, self.reml, *self.theta_layout, *S, grad)
        return float(dev), grad

    def criterion(self, x, layout):
        """``(value, gradient)`` of the criterion at ``x = (theta, sigma)`` (NaN where it
        fails), as ``_derivatives.criterion_and_gradient`` without the Jacobian."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        sigma = float(x[-1])
        ok, ld, Lm, _, S, _ = self._pieces(x, layout, self.reml, False) if sigma > 0 else (
            False, 0.0, None, None, None, None)
        if not ok:
            return np.nan, np.full(len(x), np.nan)
        grad = np.empty(len(x))
        value = _criterion(Lm, ld, self.n, self.reml, sigma, *layout, *S, grad)
        return float(value), grad

    def hessian(self, x0, h, layout):
        """Central differences (steps ``h``) of the criterion's analytic gradient, symmetrised
        (``_derivatives.satterthwaite_pieces``' Hessian)."""
        x0 = np.asarray(x0, dtype=float)
        k = len(x0)
        H = np.empty((k, k))
        for i in range(k):
            e = np.zeros(k)
            e[i] = h[i]
            gp = self.criterion(x0 + e, layout)[1]
            gm = self.criterion(x0 - e, layout)[1]
            H[i] = (gp - gm) / (2.0 * h[i])
        return 0.5 * (H + H.T)

    def jacobian(self, x0, layout):
        """``(ok, jacobian, vcov)`` of vcov(beta) at ``x0 = (theta, sigma)``; NaN where the
        factorisation fails."""
        x0 = np.ascontiguousarray(x0, dtype=np.float64)
        k, p = len(x0), self.p
        sigma = float(x0[-1])
        ok, _, _, Ainv, _, TF = self._pieces(x0, layout, True, True) if sigma > 0 else (
            False, 0.0, None, None, None, None)
        if not ok:
            return False, np.full((k, p, p), np.nan), np.full((p, p), np.nan)
        J, V = _vcov_jacobian(sigma, Ainv, layout[0], layout[1], layout[2], TF[0], TF[1])
        return True, J, V


def evaluator(blocks, struct, reml: bool):
    """An :class:`Evaluator` for ``blocks`` (kept on them), or None: numba unavailable or
    switched off (``_linalg.USE_NUMBA``), more than two levels, or group weights."""
    from . import _linalg as _la

    if not (AVAILABLE and _la.USE_NUMBA) or len(struct.levels) > 2:
        return None
    if getattr(blocks, "wg", None) is not None:
        return None
    key = "_evaluator_reml" if reml else "_evaluator_ml"
    cached = blocks.__dict__.get(key)
    if cached is not None and cached[0] is struct:
        return cached[1]
    ev = Evaluator(blocks, struct, reml)
    blocks.__dict__[key] = (struct, ev)
    return ev
