"""Power for stepped-wedge cluster-randomised designs (Hussey & Hughes 2007).

The treatment effect in the model ``Y_ijk = mu + beta_j + X_ij theta + a_i + e_ijk`` (fixed
period effects ``beta_j``, random cluster intercepts ``a_i ~ N(0, tau2)``, ``n`` persons per
cluster-period with residual variance ``sigma_e2``) estimated by GLS on the cluster-period means
has variance (Hussey & Hughes 2007, Contemp. Clin. Trials 28:182, eq. 8)::

    Var(theta) = I s2 (s2 + T tau2) / ((I U - W) s2 + (U**2 + I T U - T W - I V) tau2)

with ``s2 = sigma_e2 / n``, ``I`` clusters, ``T`` periods, ``U = sum X``, ``W = sum over periods
of (column total)**2`` and ``V = sum over clusters of (row total)**2``. coevidence standardizes
the outcome (``tau2 + sigma_e2 = 1``, ``rho2 = tau2``), so ``es`` is in SD units, and uses normal
quantiles as Hussey & Hughes do.

Design ``stepped_wedge``: ``J`` clusters cross over in ``steps`` equal groups after
``baseline_periods`` periods (``T = baseline_periods + steps``); ``mrss`` finds the smallest
number of clusters (a multiple of ``steps``) reaching the target power.

Examples
--------
>>> import coevidence as cv
>>> res = cv.power("stepped_wedge", es=0.3, J=12, steps=4, n=20, rho2=0.05)
>>> 0 < res.value < 1
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from coevidence.design._designs import COMMON, REQUIRED, Design, register_design
from coevidence.exceptions import OptionError

__all__ = ["hussey_hughes_variance", "stepped_wedge_matrix"]


def stepped_wedge_matrix(J: int, steps: int, baseline_periods: int = 1) -> np.ndarray:
    """Treatment indicators (clusters x periods) of a standard stepped-wedge design.

    ``J`` clusters are split into ``steps`` equal groups; group ``g`` (1-based) is treated from
    period ``baseline_periods + g - 1`` (0-based) on.

    Examples
    --------
    >>> stepped_wedge_matrix(4, 2).tolist()
    [[0, 1, 1], [0, 1, 1], [0, 0, 1], [0, 0, 1]]
    """
    if int(steps) != steps or steps < 1:
        raise OptionError(f"steps must be a positive integer, got {steps!r}")
    if int(J) != J or J < steps or J % steps:
        raise OptionError(f"J (clusters) must be a positive multiple of steps={steps}, got {J!r}")
    if int(baseline_periods) != baseline_periods or baseline_periods < 0:
        raise OptionError(
            f"baseline_periods must be a non-negative integer, got {baseline_periods!r}")
    per = int(J) // int(steps)
    T = int(baseline_periods) + int(steps)
    X = np.zeros((int(J), T), dtype=int)
    for g in range(int(steps)):
        X[g * per:(g + 1) * per, int(baseline_periods) + g:] = 1
    return X


def hussey_hughes_variance(X: np.ndarray, sigma2: float, tau2: float) -> float:
    """Var of the GLS treatment effect (Hussey & Hughes 2007, eq. 8).

    Parameters
    ----------
    X : array (clusters x periods)
        0/1 treatment indicators.
    sigma2 : float
        Variance of a cluster-period mean around its cluster's level (``sigma_e2 / n``).
    tau2 : float
        Between-cluster variance.

    Examples
    --------
    >>> round(hussey_hughes_variance(stepped_wedge_matrix(4, 2), 0.05, 0.05), 6)
    0.066667
    """
    X = np.asarray(X, dtype=float)
    I, T = X.shape
    U = X.sum()
    W = np.sum(X.sum(axis=0) ** 2)
    V = np.sum(X.sum(axis=1) ** 2)
    num = I * sigma2 * (sigma2 + T * tau2)
    den = (I * U - W) * sigma2 + (U ** 2 + I * T * U - T * W - I * V) * tau2
    if den <= 0:
        raise OptionError("the treatment effect is not identified by this stepped-wedge layout")
    return float(num / den)


def _sse2(q: Mapping[str, Any]) -> float:
    X = stepped_wedge_matrix(q["J"], q["steps"], q["baseline_periods"])
    return hussey_hughes_variance(X, (1 - q["rho2"]) / q["n"], q["rho2"])


def _check(q: Mapping[str, Any]) -> None:
    if not 0 <= q["rho2"] < 1:
        raise OptionError(f"rho2 must lie in [0, 1), got {q['rho2']!r}")


register_design(Design(
    name="stepped_wedge", title="Stepped-wedge cluster randomised trial (Hussey & Hughes 2007)",
    params={**COMMON, "J": REQUIRED, "steps": REQUIRED, "n": REQUIRED, "rho2": REQUIRED,
            "baseline_periods": 1},
    sse2=_sse2, df=lambda q: float("inf"), df_text="normal (z)", solve_for="J",
    mrss_rule="search", normal=True, step=lambda q: int(q["steps"]),
    min_size=lambda q: int(q["steps"]), check=_check,
    integer_params=("J", "steps", "n", "baseline_periods"),
    reference="Hussey & Hughes (2007), Contemporary Clinical Trials 28:182-191",
    aliases=("sw", "hussey_hughes"),
))
