"""The fit-diagnostics rules of a mixed-model fit, as one function on plain arrays (issue 17).

Used by ``api._diagnostics`` (which builds the ``MixedDiagnostics`` frames of a result) and by
the lean refits of :mod:`._refit` (``Refitter.estimates``, no frames): one place for the
boundary, singularity and convergence rules, so both paths give the same verdicts and
messages.

* a variance is *at the boundary* when ``variance / var(y) < boundary_rel``; a correlation when
  ``|corr| > 1 - corr_tol``;
* the fit is *singular* when some parameter is at the boundary or (lme4's ``isSingular``) a
  diagonal element of a term's relative factor is below ``singular_tol``;
* messages, in this order: non-convergence; singular fit (naming the boundary parameters); a
  Hessian that is not positive definite (only for a non-singular fit); a gradient at the optimum
  above ``grad_tol`` (converged, non-singular fits).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FitVerdict", "fit_verdict"]


@dataclass(frozen=True)
class FitVerdict:
    """What :func:`fit_verdict` decides.

    ``rows``: one ``(group, parameter, kind, value, relative, at_boundary)`` per variance /
    correlation (terms in problem order, lower triangle row by row); ``singular``;
    ``messages``; ``hess_pos``: where a Hessian message goes in ``messages`` (for a check made
    later); ``gradient_norm``.
    """

    rows: tuple[tuple[str, str, str, float, float, bool], ...]
    singular: bool
    messages: tuple[str, ...]
    hess_pos: int
    gradient_norm: float

    @property
    def boundary(self) -> tuple[tuple[str, str, str], ...]:
        """``(group, parameter, kind)`` of the parameters at the boundary."""
        return tuple((g, p, k) for g, p, k, _, _, at in self.rows if at)


def fit_verdict(terms, covariances, theta, var_y: float, converged: bool, gradient_norm: float,
                hess_ok: bool, min_eigenvalue: float, *, boundary_rel: float, corr_tol: float,
                singular_tol: float, grad_tol: float) -> FitVerdict:
    """Boundary rows, singularity and messages of a fit (see the module docstring).

    ``terms``: the problem's random terms (``group``, ``columns``); ``covariances``: their
    covariance matrices; ``theta``: lme4's theta (per term the lower triangle, column-major).

    Examples
    --------
    >>> import numpy as np
    >>> from types import SimpleNamespace
    >>> t = SimpleNamespace(group="g", columns=("(Intercept)",))
    >>> v = fit_verdict([t], [np.array([[0.0]])], np.array([0.0]), 1.0, True, 1e-5, True,
    ...                 1.0, boundary_rel=1e-6, corr_tol=1e-6, singular_tol=1e-4,
    ...                 grad_tol=2e-3)
    >>> v.singular, v.messages
    (True, ('singular fit (boundary at g:(Intercept))',))
    """
    theta = np.asarray(theta, dtype=float)
    var_y = float(var_y) or 1.0
    rows = []
    singular = False
    pos = 0
    for t, c in zip(terms, covariances, strict=True):
        c = np.atleast_2d(np.asarray(c, dtype=float))
        k = len(t.columns)
        d = np.diag(c)
        sd = np.sqrt(np.clip(d, 0, None))
        for i in range(k):
            for j in range(i + 1):
                if i == j:
                    val = float(d[i])
                    rel = val / var_y
                    at = rel < boundary_rel
                    kind = "variance"
                else:
                    s = sd[i] * sd[j]
                    val = float(c[i, j] / s) if s > 0 else float("nan")
                    rel = val
                    at = bool(np.isfinite(val) and abs(val) > 1 - corr_tol)
                    kind = "correlation"
                name = t.columns[i] if i == j else f"{t.columns[j]},{t.columns[i]}"
                rows.append((t.group, name, kind, val, rel, bool(at)))
        diag_pos = [pos + sum(k - m for m in range(j)) for j in range(k)]
        if np.any(np.abs(theta[diag_pos]) < singular_tol):
            singular = True
        pos += k * (k + 1) // 2
    at_b = [(g, p) for g, p, _, _, _, at in rows if at]
    singular = singular or bool(at_b)
    messages = []
    if not converged:
        messages.append("the optimizer did not converge")
    if singular:
        detail = ", ".join(f"{g}:{p}" for g, p in at_b) or "theta"
        messages.append(f"singular fit (boundary at {detail})")
    hess_pos = len(messages)
    if not hess_ok and not singular:
        messages.append(
            f"the deviance Hessian is not positive definite (smallest eigenvalue "
            f"{min_eigenvalue:.3g})")
    grad = float(gradient_norm)
    if converged and not singular and np.isfinite(grad) and grad > grad_tol:
        messages.append(f"relative gradient at the optimum {grad:.3g} exceeds {grad_tol}")
    return FitVerdict(tuple(rows), bool(singular), tuple(messages), hess_pos, grad)
