"""Bounded minimisation of the profiled deviance over theta, with an attempt ladder.

lme4 minimises over theta with the diagonal elements of Lambda bounded below by 0 (nloptwrap /
bobyqa). Here: L-BFGS-B with the analytic gradient (``_gradient``), then, if that attempt does
not converge, bounded Powell and Nelder-Mead from the best point so far (each followed by a
gradient polish). Every attempt is kept. Convergence is judged as lme4 does, on the gradient
at the answer (components pushing against an active bound excluded).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from .._engine import OptimizerAttempt

__all__ = ["GRAD_TOL", "minimise", "projected"]

#: lme4's default tolerance for the gradient convergence check (``check.conv.grad``).
GRAD_TOL = 2e-3


def projected(g: np.ndarray, x: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """The gradient with components pushing against an active lower bound zeroed."""
    return np.where((x <= lower + 1e-10) & (g > 0), 0.0, g)


@dataclass
class _Counter:
    fg: Callable[[np.ndarray], tuple[float, np.ndarray]]
    n: int = 0

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        self.n += 1
        v, g = self.fg(x)
        if not np.isfinite(v) or not np.all(np.isfinite(g)):
            return 1e300, np.zeros_like(x)
        return float(v), g

    def f(self, x: np.ndarray) -> float:
        return self(x)[0]


def _newton_polish(fg, x, lower, attempts, xs, max_iter: int = 4) -> None:
    """A few Newton steps (analytic gradient, Hessian by differencing it) on the free set.

    L-BFGS-B stops where its line search can no longer see progress in f; Newton on the
    gradient converges to where the gradient itself vanishes, ~1e-9 relative in theta.
    """
    cf = _Counter(fg)
    start = x.copy()
    f, g = cf(x)
    for _ in range(max_iter):
        free = ~((x <= lower + 1e-10) & (g > 0))
        if not free.any():
            break
        idx = np.flatnonzero(free)
        H = np.empty((len(idx), len(idx)))
        for a, k in enumerate(idx):
            h = 1e-5 * max(1.0, abs(x[k]))
            e = np.zeros_like(x)
            e[k] = h
            H[:, a] = (cf(x + e)[1][idx] - cf(x - e)[1][idx]) / (2.0 * h)
        H = 0.5 * (H + H.T)
        try:
            w = np.linalg.eigvalsh(H)
            if w[0] <= 0:
                break
            step = -np.linalg.solve(H, g[idx])
        except np.linalg.LinAlgError:
            break
        t = 1.0
        while t > 1e-4:
            xn = x.copy()
            xn[idx] = np.maximum(x[idx] + t * step, lower[idx])
            fn, gn = cf(xn)
            if fn <= f + 1e-12 * max(1.0, abs(f)):
                break
            t *= 0.5
        else:
            break
        done = np.max(np.abs(xn - x)) < 1e-12 * max(1.0, float(np.max(np.abs(x))))
        x, f, g = xn, fn, gn
        if done:
            break
    gp = projected(g, x, lower)
    gnorm = float(np.max(np.abs(gp))) if len(gp) else 0.0
    attempts.append(
        OptimizerAttempt(
            optimizer="Newton polish", start=tuple(float(s) for s in start),
            converged=bool(np.isfinite(f) and f < 1e299 and gnorm < GRAD_TOL),
            objective=float(f), n_evaluations=cf.n, gradient_norm=gnorm,
            message="Newton steps on the free parameters from the best attempt",
        )
    )
    xs.append(x)


def minimise(fg, x0: np.ndarray, lower: np.ndarray):
    """Run the ladder on ``fg(theta) -> (deviance, gradient)``.

    Returns (best theta, attempts, index of the chosen attempt).
    """
    bounds = [(lo if np.isfinite(lo) else None, None) for lo in lower]
    attempts: list[OptimizerAttempt] = []
    xs: list[np.ndarray] = []
    scale = 1.0

    def run(name: str, start: np.ndarray) -> None:
        cf = _Counter(fg)
        if name == "L-BFGS-B":

            def scaled(x):
                v, g = cf(x)
                return v / scale, g / scale

            res = optimize.minimize(
                scaled, start, jac=True, method="L-BFGS-B", bounds=bounds,
                options={"ftol": 1e-13, "gtol": 1e-9, "maxiter": 500, "maxcor": 20},
            )
        elif name == "Powell":
            res = optimize.minimize(
                cf.f, start, method="Powell", bounds=bounds,
                options={"xtol": 1e-10, "ftol": 1e-14, "maxfev": 20000},
            )
        else:
            res = optimize.minimize(
                cf.f, np.maximum(start, np.where(np.isfinite(lower), lower, -np.inf)),
                method="Nelder-Mead", bounds=bounds,
                options={"xatol": 1e-10, "fatol": 1e-12, "maxfev": 20000, "adaptive": True},
            )
        x = np.clip(np.asarray(res.x, float), lower, None)
        fx, g = cf(x)
        g = projected(g, x, lower)
        gnorm = float(np.max(np.abs(g))) if len(g) else 0.0
        ok = bool(np.isfinite(fx) and fx < 1e299 and gnorm < GRAD_TOL)
        attempts.append(
            OptimizerAttempt(
                optimizer=name, start=tuple(float(s) for s in start), converged=ok,
                objective=float(fx), n_evaluations=cf.n, gradient_norm=gnorm,
                message=str(getattr(res, "message", "")),
            )
        )
        xs.append(x)

    f0 = fg(x0)[0]
    scale = max(1.0, abs(f0)) if np.isfinite(f0) else 1.0
    run("L-BFGS-B", x0)
    for name in ("Powell", "Nelder-Mead"):
        if attempts[-1].converged:
            break
        best = int(np.argmin([a.objective for a in attempts]))
        run(name, xs[best])
        run("L-BFGS-B", xs[-1])  # polish the derivative-free answer with a gradient run
    # A diagonal theta element at its bound has zero gradient by symmetry (the deviance is even
    # in it when the rest of its column is zero), so a gradient method can stall there: restart
    # from the interior and keep whichever answer is better.
    best = int(np.argmin([a.objective for a in attempts]))
    bounded = np.isfinite(lower)
    near = bounded & (xs[best] < lower + 1e-4)
    if near.any():
        restart = xs[best].copy()
        restart[near] = 0.1
        run("L-BFGS-B", restart)
    best = int(np.argmin([a.objective for a in attempts]))
    _newton_polish(fg, xs[best], lower, attempts, xs)
    objs = np.array([a.objective for a in attempts])
    conv = np.array([a.converged for a in attempts])
    # objectives within rounding of the best count as ties, broken by the smaller gradient
    ok = conv if conv.any() else np.ones_like(conv)
    fmin = float(np.min(objs[ok]))
    tie = ok & (objs <= fmin + 1e-10 * max(1.0, abs(fmin)))
    cand = np.flatnonzero(tie)
    chosen = int(cand[np.argmin([attempts[c].gradient_norm for c in cand])])
    return xs[chosen], attempts, chosen
