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
                options={"ftol": 1e-15, "gtol": 1e-9, "maxiter": 500, "maxcor": 20},
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
    objs = np.array([a.objective for a in attempts])
    conv = np.array([a.converged for a in attempts])
    if conv.any():
        cand = np.flatnonzero(conv)
        chosen = int(cand[np.argmin(objs[cand])])
    else:
        chosen = int(np.argmin(objs))
    return xs[chosen], attempts, chosen
