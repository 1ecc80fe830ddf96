"""Bounded minimisation of the profiled deviance over theta, with an attempt ladder.

lme4 minimises over theta with the diagonal elements of Lambda bounded below by 0 (nloptwrap /
bobyqa). The deviance depends on Lambda only through Lambda Lambda', which is unchanged when a
column of Lambda flips sign, so the bounded problem and the unconstrained one have the same
solutions up to that flip (``Structure.canonical``). A gradient method that runs into the
bound stalls there (the gradient of an isolated diagonal element vanishes at 0 by symmetry),
so the first attempt is L-BFGS-B with the analytic gradient (``_gradient``) *without* bounds,
mapped back to the bounded form. If it does not converge: bounded Powell and Nelder-Mead from
the best point so far, each followed by a gradient run; if the best answer has a diagonal
element at its bound, an interior restart; finally a few Newton steps. Every attempt is kept.
Convergence is judged as lme4 does, on the gradient at the answer (components pushing against
an active bound excluded).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import linalg, optimize

from .._engine import OptimizerAttempt

__all__ = ["GRAD_TOL", "minimise", "projected"]

#: lme4's default tolerance for the gradient convergence check (``check.conv.grad``).
GRAD_TOL = 2e-3

#: No Newton polish when the gradient method already converged with every gradient component
#: below this (deviance units): lme4's check, min(|g|, |chol(H)^-1 g|) < GRAD_TOL, holds
#: whatever the Hessian, and the polish would move theta by about |g| / curvature, far below
#: the accuracy contract (small fits and refits end here, saving k + 1 evaluations).
POLISH_SKIP = 1e-5


def projected(g: np.ndarray, x: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """The gradient with components pushing against an active lower bound zeroed."""
    return np.where((x <= lower + 1e-10) & (g > 0), 0.0, g)


class _Memo:
    """``fg`` remembering its last few points: the optimiser's final point, the start of the
    Newton polish and the restart checks are often points already evaluated."""

    def __init__(self, fg: Callable[[np.ndarray], tuple[float, np.ndarray]], size: int = 8):
        self.fg, self.size = fg, size
        self._seen: dict[bytes, tuple[float, np.ndarray]] = {}
        self.hit = False

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        key = np.ascontiguousarray(x, dtype=float).tobytes()
        out = self._seen.get(key)
        self.hit = out is not None
        if out is None:
            out = self.fg(np.array(x, dtype=float))
            if len(self._seen) >= self.size:
                self._seen.pop(next(iter(self._seen)))
            self._seen[key] = out
        v, g = out
        return v, np.array(g, dtype=float, copy=True)


@dataclass
class _Counter:
    fg: Callable[[np.ndarray], tuple[float, np.ndarray]]
    n: int = 0

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        v, g = self.fg(x)
        if not getattr(self.fg, "hit", False):  # evaluations, not look-ups of a _Memo
            self.n += 1
        v = float(v)
        if not math.isfinite(v) or not np.isfinite(g).all():
            return 1e300, np.zeros_like(x)
        return v, g

    def f(self, x: np.ndarray) -> float:
        return self(x)[0]


_DIRECT = {"ok": None}  # whether scipy's L-BFGS-B routine can be driven directly (below)


def lbfgsb(fun, x0: np.ndarray, bounds, *, ftol: float, gtol: float, maxiter: int,
           maxcor: int):
    """``scipy.optimize.minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=bounds,
    options=...)``, iterate for iterate, without its per-evaluation wrappers.

    ``minimize`` wraps ``fun`` in ``MemoizeJac`` and ``ScalarFunction`` (copies, array-API
    conversions, caches), which for a small model costs as much as an evaluation. This drives
    the same routine (``scipy.optimize._lbfgsb.setulb``, SciPy >= 1.15) with the same
    arguments and the same loop as ``scipy.optimize._lbfgsb_py._minimize_lbfgsb``, so the
    iterates and the answer are the same (the tests check this against ``minimize``). With a
    SciPy whose routine takes other arguments, ``minimize`` itself runs.

    Returns an object with ``x``, ``fun``, ``success``, ``message``, ``nit``.
    """
    if _DIRECT["ok"] is not False:
        try:
            return _lbfgsb_direct(fun, x0, bounds, ftol, gtol, maxiter, maxcor)
        except _NoDirect:
            _DIRECT["ok"] = False
    return optimize.minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                             options={"ftol": ftol, "gtol": gtol, "maxiter": maxiter,
                                      "maxcor": maxcor})


class _NoDirect(Exception):
    pass


def _routine():
    """SciPy's L-BFGS-B routine and its message tables (``_NoDirect`` if not found)."""
    import scipy

    try:
        major, minor = (int(v) for v in scipy.__version__.split(".")[:2])
        if (major, minor) < (1, 15):  # the Fortran routine, with other arguments
            raise _NoDirect
        from scipy.optimize import _lbfgsb
        from scipy.optimize._lbfgsb_py import status_messages, task_messages
    except (ImportError, ValueError) as err:  # pragma: no cover - SciPy layout changed
        raise _NoDirect from err
    return _lbfgsb.setulb, status_messages, task_messages


def _lbfgsb_direct(fun, x0, bounds, ftol, gtol, maxiter, maxcor, maxls: int = 20,
                   maxfun: int = 15000):
    setulb, status_messages, task_messages = _routine()
    x0 = np.asarray(x0, dtype=float).ravel()
    n = len(x0)
    m = int(maxcor)
    factr = ftol / np.finfo(float).eps
    nbd = np.zeros(n, np.int32)
    low = np.zeros(n, np.float64)
    upp = np.zeros(n, np.float64)
    if bounds is not None:  # old-style (lower, upper) pairs, None for no bound
        lb = np.array([-np.inf if b[0] is None else b[0] for b in bounds], float)
        ub = np.array([np.inf if b[1] is None else b[1] for b in bounds], float)
        x0 = np.clip(x0, lb, ub)
        for i in range(n):
            fl, fu = np.isfinite(lb[i]), np.isfinite(ub[i])
            if fl:
                low[i] = lb[i]
            if fu:
                upp[i] = ub[i]
            nbd[i] = {(False, False): 0, (True, False): 1, (True, True): 2, (False, True): 3}[
                (bool(fl), bool(fu))]
    x = np.array(x0, dtype=np.float64)
    f = np.array(0.0, dtype=np.float64)
    g = np.zeros((n,), dtype=np.float64)
    wa = np.zeros(2 * m * n + 5 * n + 11 * m * m + 8 * m, np.float64)
    iwa = np.zeros(3 * n, dtype=np.int32)
    task = np.zeros(2, dtype=np.int32)
    ln_task = np.zeros(2, dtype=np.int32)
    lsave = np.zeros(4, dtype=np.int32)
    isave = np.zeros(44, dtype=np.int32)
    dsave = np.zeros(29, dtype=np.float64)
    nit = nfev = 0
    first = _DIRECT["ok"] is None
    while True:
        g = g.astype(np.float64)
        if first:
            try:
                setulb(m, x, low, upp, nbd, f, g, factr, gtol, wa, iwa, task, lsave, isave,
                       dsave, maxls, ln_task)
            except (TypeError, ValueError) as err:  # another SciPy's routine
                raise _NoDirect from err
            if task[0] != 3:  # from START the routine always asks for f and g first
                raise _NoDirect
            first = False
            _DIRECT["ok"] = True
        else:
            setulb(m, x, low, upp, nbd, f, g, factr, gtol, wa, iwa, task, lsave, isave, dsave,
                   maxls, ln_task)
        if task[0] == 3:
            v, gr = fun(np.copy(x))
            f = float(v)
            g = np.atleast_1d(gr)
            nfev += 1
        elif task[0] == 1:
            nit += 1
            if nit >= maxiter:
                task[0], task[1] = 5, 504
            elif nfev > maxfun:
                task[0], task[1] = 5, 502
        else:
            break
    success = bool(task[0] == 4)
    msg = status_messages[int(task[0])] + ": " + task_messages[int(task[1])]
    return optimize.OptimizeResult(x=x, fun=f, jac=g, nit=nit, nfev=nfev, success=success,
                                   message=msg)


def _hessian(cf, x: np.ndarray, g: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Forward differences of the analytic gradient on the coordinates ``idx``, symmetrised."""
    H = np.empty((len(idx), len(idx)))
    for a, k in enumerate(idx):
        h = 1e-5 * max(0.1, abs(x[k]))
        e = np.zeros_like(x)
        e[k] = h
        H[:, a] = (cf(x + e)[1][idx] - g[idx]) / h
    return 0.5 * (H + H.T)


def _newton_polish(fg, x, lower, attempts, xs, canon, max_iter: int = 2) -> None:
    """Newton steps (analytic gradient, Hessian by differencing it) on the free parameters.

    L-BFGS-B stops where its line search no longer sees progress in f; one or two Newton steps
    take the gradient itself to ~0. Convergence is then judged as lme4's ``checkConv`` does:
    every component of min(|g|, |chol(H)^{-1} g|) below :data:`GRAD_TOL`.
    """
    cf = _Counter(fg)
    start = x.copy()
    f, g = cf(x)
    scaled = np.full(len(x), np.inf)
    message = "Newton steps on the free parameters from the best attempt"
    for _ in range(max_iter):
        free = ~((x <= lower + 1e-10) & (g > 0))
        idx = np.flatnonzero(free)
        if not len(idx):
            scaled = np.zeros(len(x))
            break
        H = _hessian(cf, x, g, idx)
        try:
            R = np.linalg.cholesky(H)
        except np.linalg.LinAlgError:
            message = "Hessian not positive definite at the answer"
            scaled = np.full(len(x), np.inf)
            break
        step = -linalg.cho_solve((R, True), g[idx])
        t, moved = 1.0, False
        while t > 1e-3:
            xn = x.copy()
            xn[idx] = x[idx] + t * step
            fn, gn = cf(xn)
            if fn <= f + 1e-12 * max(1.0, abs(f)):
                x, f, g, moved = xn, fn, gn, True
                break
            t *= 0.25
        # the scaled gradient at the (new) point, with the Hessian just computed
        scaled = np.zeros(len(x))
        scaled[idx] = linalg.solve_triangular(R, g[idx], lower=True)
        if not moved or np.max(np.abs(t * step)) < 1e-6 * max(1.0, float(np.max(np.abs(x)))):
            break
    xc = canon(x)
    if not np.array_equal(xc, x):
        x = xc
        f, g = cf(x)
    gp = projected(g, x, lower)
    crit = np.minimum(np.abs(gp), np.abs(scaled))
    gnorm = float(np.max(crit)) if len(crit) else 0.0
    attempts.append(
        OptimizerAttempt(
            optimizer="Newton polish",
            start=tuple(float(s) for s in start),
            converged=bool(np.isfinite(f) and f < 1e299 and gnorm < GRAD_TOL),
            objective=float(f),
            n_evaluations=cf.n,
            gradient_norm=gnorm,
            message=message,
        )
    )
    xs.append(x)


def minimise(fg, x0: np.ndarray, lower: np.ndarray, canon=None, xscale=None):
    """Run the ladder on ``fg(theta) -> (deviance, gradient)``.

    ``xscale`` (positive, one per parameter) rescales the variables seen by L-BFGS-B
    (``z = theta * xscale``): the deviance's curvature in a level's theta grows with that
    level's number of groups, so thousands of organisations and a dozen providers differ by
    orders of magnitude, which a quasi-Newton method otherwise spends many steps learning.

    Returns (best theta, attempts, index of the chosen attempt).
    """
    xscale = np.ones(len(x0)) if xscale is None else np.asarray(xscale, float)
    fg = _Memo(fg)
    bounds = [(lo if np.isfinite(lo) else None, None) for lo in lower]
    attempts: list[OptimizerAttempt] = []
    xs: list[np.ndarray] = []
    scale = 1.0

    canon = canon if canon is not None else (lambda x: np.clip(x, lower, None))

    def run(name: str, start: np.ndarray) -> None:
        cf = _Counter(fg)
        if name.startswith("L-BFGS-B"):

            def scaled(z):
                v, g = cf(z / xscale)
                return v / scale, g / (scale * xscale)

            zb = [(None if lo is None else lo * s, None) for (lo, _), s in zip(bounds, xscale)]
            res = lbfgsb(scaled, start * xscale, None if name.endswith("unbounded") else zb,
                         ftol=1e-13, gtol=1e-9, maxiter=500, maxcor=20)
            res.x = np.asarray(res.x) / xscale
        elif name == "Powell":
            res = optimize.minimize(
                cf.f,
                start,
                method="Powell",
                bounds=bounds,
                options={"xtol": 1e-10, "ftol": 1e-14, "maxfev": 20000},
            )
        else:
            res = optimize.minimize(
                cf.f,
                np.maximum(start, np.where(np.isfinite(lower), lower, -np.inf)),
                method="Nelder-Mead",
                bounds=bounds,
                options={"xatol": 1e-10, "fatol": 1e-12, "maxfev": 20000, "adaptive": True},
            )
        x = canon(np.asarray(res.x, float))
        fx, g = cf(x)
        g = projected(g, x, lower)
        gnorm = float(np.max(np.abs(g))) if len(g) else 0.0
        # the optimizer's own verdict; lme4's gradient check is made by the Newton polish
        ok = bool(np.isfinite(fx) and fx < 1e299 and res.success)
        attempts.append(
            OptimizerAttempt(
                optimizer=name,
                start=tuple(float(s) for s in start),
                converged=ok,
                objective=float(fx),
                n_evaluations=cf.n,
                gradient_norm=gnorm,
                message=str(getattr(res, "message", "")),
            )
        )
        xs.append(x)

    f0 = fg(x0)[0]
    scale = max(1.0, abs(f0)) if np.isfinite(f0) else 1.0
    run("L-BFGS-B unbounded", x0)
    bounded = np.isfinite(lower)

    def best_index() -> int:
        return int(np.argmin([a.objective for a in attempts]))

    # A diagonal theta element at its bound has zero gradient by symmetry (the deviance is even
    # in it when the rest of its column is zero), so a gradient method can stall there: restart
    # from the interior and keep whichever answer is better.
    near = bounded & (xs[best_index()] < lower + 1e-4)
    if near.any():
        restart = xs[best_index()].copy()
        restart[near] = 0.1
        run("L-BFGS-B unbounded", restart)
    best = attempts[best_index()]
    if not (best.converged and best.gradient_norm < POLISH_SKIP):
        _newton_polish(fg, xs[best_index()], lower, attempts, xs, canon)
    if not attempts[-1].converged:
        for name in ("Powell", "Nelder-Mead"):
            run(name, xs[best_index()])
            run("L-BFGS-B", xs[-1])
            _newton_polish(fg, xs[best_index()], lower, attempts, xs, canon)
            if attempts[-1].converged:
                break
    objs = np.array([a.objective for a in attempts])
    conv = np.array([a.converged for a in attempts])
    # objectives within rounding of the best count as ties, broken by the smaller gradient
    ok = conv if conv.any() else np.ones_like(conv)
    fmin = float(np.min(objs[ok]))
    tie = ok & (objs <= fmin + 1e-10 * max(1.0, abs(fmin)))
    cand = np.flatnonzero(tie)
    chosen = int(cand[np.argmin([attempts[c].gradient_norm for c in cand])])
    return xs[chosen], attempts, chosen
