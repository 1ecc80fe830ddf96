"""Derivatives of the (RE)ML criterion and of vcov(beta) in lmerTest's ``(theta, sigma)``.

lmerTest's Satterthwaite df need, at the fitted variance parameters ``x = (theta, sigma)``,

* the Hessian ``H`` of the (not profiled) criterion ``d(theta, sigma)`` (``objective_sigma``);
  its inverse gives the asymptotic covariance ``2 H^-1`` of ``x``;
* the Jacobian of ``vcov(beta) = sigma^2 (R_X' R_X)^-1`` with respect to ``x``.

The generic path (:mod:`coevidence.models.mixed._inference`) takes both by Richardson finite
differences of the criterion and of vcov (about 65 deviance evaluations for 4 parameters). Here
both come from the engine's analytic first derivatives (:func:`._gradient.gradient_pieces`):

* ``d d / d x`` is analytic; ``H`` is its central difference (``2 k`` gradient evaluations
  for ``k`` parameters, truncation error ``O(h^2)`` with ``h = 1e-4`` relative, far below the
  Richardson error of the deviance differences);
* the Jacobian of vcov is analytic: ``d (R_X' R_X) / d Lambda_rc = -(F' E_rc Lambda' F + t)``
  with ``F = Z' Omega^-1 X`` and ``Lambda' F = T`` (one evaluation).

``x`` is laid out as ``theta_from``: per problem term (problem order) the full lower triangle of
its relative factor, column-major, then sigma; a multi-column uncorrelated term thus gets its
structurally zero off-diagonal elements too, as in the generic path.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

from . import _evaluator
from ._deviance import Blocks, factorize
from ._gradient import gradient_pieces
from ._structure import Structure

__all__ = ["XLayout", "criterion_and_gradient", "satterthwaite_pieces", "x_layout"]


class XLayout:
    """Where each element of ``x`` sits: level, row and column in that level's Lambda."""

    def __init__(self, struct: Structure, problem) -> None:
        lv, rows, cols = [], [], []
        for t_i, term in enumerate(problem.terms):
            li, sl = struct.term_level[t_i]
            k = len(term.columns)
            for c in range(k):
                for r in range(c, k):
                    lv.append(li)
                    rows.append(sl.start + r)
                    cols.append(sl.start + c)
        self.level = np.asarray(lv, dtype=np.int64)
        self.row = np.asarray(rows, dtype=np.int64)
        self.col = np.asarray(cols, dtype=np.int64)
        self.q = [lv_.q for lv_ in struct.levels]

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(level, row, col)`` as the fused kernels take them."""
        return self.level, self.row, self.col

    def lambdas(self, x: np.ndarray) -> list[np.ndarray]:
        lams = [np.zeros((q, q)) for q in self.q]
        for k in range(len(self.level)):
            lams[self.level[k]][self.row[k], self.col[k]] = x[k]
        return lams


def x_layout(struct: Structure, problem) -> XLayout:
    """The :class:`XLayout` of a problem."""
    return XLayout(struct, problem)


def criterion_and_gradient(
    blocks: Blocks, struct: Structure, lay: XLayout, x: np.ndarray, reml: bool,
    jacobian: bool = False,
):
    """``d(x)``, ``d d / d x`` and (optionally) ``d vcov(beta) / d x`` plus ``vcov(beta)``.

    Returns ``(value, gradient, jac, vcov)``; ``jac`` (k, p, p) and ``vcov`` are None unless
    ``jacobian``. A failed factorisation gives NaN everywhere.
    """
    x = np.asarray(x, dtype=float)
    k = len(x)
    n, p = blocks.n, blocks.p
    sigma = float(x[-1])
    lams = lay.lambdas(x)
    fac = factorize(blocks, struct, lams, keep=True)
    if not fac.ok or not sigma > 0:
        nanj = np.full((k, p, p), np.nan) if jacobian else None
        return np.nan, np.full(k, np.nan), nanj, (np.full((p, p), np.nan) if jacobian else None)
    s2 = sigma * sigma
    value = fac.objective_sigma(n, reml, s2)
    S1, S2, S3, TF = gradient_pieces(blocks, struct, lams, fac, reml, need_x=jacobian)
    nr = (n - p) if reml else n
    g = np.empty(k)
    for i in range(k - 1):
        li, r, c = lay.level[i], lay.row[i], lay.col[i]
        gi = 2.0 * S1[li][c, r] - 2.0 * S2[li][r, c] / s2
        if reml:
            gi -= 2.0 * S3[li][c, r]
        g[i] = gi
    g[-1] = 2.0 * nr / sigma - 2.0 * fac.pwrss / (s2 * sigma)
    if not jacobian:
        return value, g, None, None
    Ainv = linalg.cho_solve((fac.Lm[:p, :p], True), np.eye(p))
    J = np.empty((k, p, p))
    for i in range(k - 1):
        li, r, c = lay.level[i], lay.row[i], lay.col[i]
        dA = -(TF[li][r, c] + TF[li][r, c].T)
        J[i] = -s2 * (Ainv @ dA @ Ainv)
    J[-1] = 2.0 * sigma * Ainv
    return value, g, J, s2 * Ainv


def _steps(x: np.ndarray) -> np.ndarray:
    """Central-difference steps: 1e-4 relative (theta elements near 0: absolute 1e-6).

    theta is unit-free and sigma > 0 gets a purely relative step, so the df do not depend on
    the outcome's units.
    """
    h = 1e-4 * np.maximum(np.abs(x), 1e-2)
    h[-1] = 1e-4 * abs(x[-1])
    return h


def satterthwaite_pieces(blocks: Blocks, struct: Structure, problem, x0: np.ndarray):
    """``(vcov_beta, jacobian, hessian)`` at ``x0`` in (theta, sigma), from analytic gradients.

    ``2 k + 1`` evaluations of the criterion and its gradient (the first one also gives the
    analytic Jacobian of vcov(beta)); with one or two levels (no group weights) each is a few
    numba calls (:func:`._evaluator.evaluator`), otherwise :func:`criterion_and_gradient`.
    """
    reml = bool(problem.reml)
    lay = x_layout(struct, problem)
    x0 = np.asarray(x0, dtype=float)
    k = len(x0)
    h = _steps(x0)
    ev = _evaluator.evaluator(blocks, struct, reml)
    if ev is not None:
        # one or two levels: the same evaluations, a few numba calls each (_evaluator.Evaluator)
        layout = lay.arrays()
        _, J, vcov = ev.jacobian(x0, layout)
        return vcov, J, ev.hessian(x0, h, layout)
    _, _, J, vcov = criterion_and_gradient(blocks, struct, lay, x0, reml, jacobian=True)
    H = np.empty((k, k))
    for i in range(k):
        e = np.zeros(k)
        e[i] = h[i]
        gp = criterion_and_gradient(blocks, struct, lay, x0 + e, reml)[1]
        gm = criterion_and_gradient(blocks, struct, lay, x0 - e, reml)[1]
        H[i] = (gp - gm) / (2.0 * h[i])
    H = 0.5 * (H + H.T)
    return vcov, J, H
