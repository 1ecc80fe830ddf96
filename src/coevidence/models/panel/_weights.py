"""Weighted least squares for ``fit_panel(..., weights=)``.

The estimators transform the data as without weights (pooled: none; within with unit effects:
unit demeaning; first differences: differencing within unit), then every transformed row is
multiplied by ``sqrt(w)``: the coefficients are WLS, ``(X~'W X~)^{-1} X~'W y~``, and every
covariance estimator (classical ``s^2 (X~'W X~)^{-1}`` with ``s^2 = sum w e^2 / df``, HC,
CR1, CR2) works on the scaled rows, which gives the usual weighted sandwich (scores
``w e x``, as R ``lm(weights =)`` with ``sandwich``; ``survey::svyglm`` is CR0 times
``G / (G - 1)``). Unit demeaning before weighting equals weighted demeaning only when the
weights are constant within unit, which is therefore required for ``within`` and
``first_difference`` (propensity weights of organisations are). Random effects, between and
time/two-way within estimators are refused: their transformations would need weighted
variance components or weighted period means that are not implemented.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from coevidence.exceptions import ModelSpecificationError, OptionError
from coevidence.models._shared.data import weights_column as _weights_column

__all__ = ["WEIGHTED_COV_TYPES", "apply_weights", "check_weights_options", "weights_column"]

WEIGHTED_COV_TYPES = ("unadjusted", "robust", "clustered", "cr2")
_COLUMN = "__coevidence_weights__"


def check_weights_options(estimator: str, effects: str | None, cov_type: str) -> None:
    """Refuse weights where weighted estimation is not implemented (or not valid)."""
    ok = (estimator == "pooled" or (estimator == "within" and effects == "unit")
          or estimator == "first_difference")
    if not ok:
        raise OptionError(
            f"weights= is not available for estimator={estimator!r}"
            + (f" with effects={effects!r}" if estimator == "within" else "")
            + ": weighted estimation is implemented for 'pooled', 'within' with unit effects "
            "(put period dummies in the formula, e.g. '... + C(wave)') and 'first_difference'")
    if cov_type not in WEIGHTED_COV_TYPES:
        raise OptionError(f"weights= is not available with cov_type={cov_type!r}; use one of "
                          f"{list(WEIGHTED_COV_TYPES)}")


def weights_column(panel: pd.DataFrame, weights: Any) -> tuple[pd.DataFrame, str | None]:
    """The frame (a new one if the weights are given as values) and the weights column name.

    ``(panel, None)`` without weights.
    """
    return _weights_column(panel, weights, _COLUMN)


def check_weight_values(w: np.ndarray, ucodes: np.ndarray, estimator: str) -> None:
    """Weights must be finite and positive; constant within unit unless pooled."""
    bad = np.flatnonzero(~np.isfinite(w) | (w <= 0))
    if len(bad):
        raise ModelSpecificationError(
            f"weights must be finite and positive: {len(bad)} rows are not (first "
            f"values {w[bad[:5]].tolist()})")
    if estimator != "pooled":
        lo = np.full(ucodes.max() + 1, np.inf)
        hi = np.full(ucodes.max() + 1, -np.inf)
        np.minimum.at(lo, ucodes, w)
        np.maximum.at(hi, ucodes, w)
        if (hi - lo > 1e-12 * np.maximum(1.0, hi)).any():
            raise ModelSpecificationError(
                f"weights vary within unit: estimator={estimator!r} needs one weight "
                "per unit (e.g. propensity weights of organisations); use estimator='pooled' "
                "for row weights")


class _WeightedEngine:
    """Stand-in for the linearmodels result: WLS coefficients and classical covariance."""

    def __init__(self, names: list[str], beta: np.ndarray, cov: np.ndarray, df_resid: int):
        self.params = pd.Series(beta, index=names)
        self.cov = pd.DataFrame(cov, index=names, columns=names)
        self.df_resid = df_resid


def apply_weights(fit: Any, pdata: Any) -> Any:
    """The weighted fit: transformed rows scaled by ``sqrt(w)``, WLS coefficients.

    ``fit`` unchanged when ``pdata.w`` (the weights of the prepared rows) is None. First
    differences have fewer rows than the prepared data: they take their unit's weight.
    """
    if pdata.w is None:
        return fit
    check_weight_values(pdata.w, pdata.ucodes, fit.estimator)
    unit_w = np.zeros(pdata.n_units)
    unit_w[pdata.ucodes] = pdata.w
    w_rows = unit_w[fit.row_units] if fit.estimator == "first_difference" else pdata.w
    w = np.asarray(w_rows, dtype=float)
    s = np.sqrt(w)
    Xs, ys = fit.Xt * s[:, None], fit.yt * s
    beta, *_ = np.linalg.lstsq(Xs, ys, rcond=None)
    e = ys - Xs @ beta
    s2 = float(e @ e) / fit.df_resid
    cov = s2 * np.linalg.pinv(Xs.T @ Xs)
    intercept = fit.estimator != "within"
    yc = fit.yt - (np.sum(w * fit.yt) / w.sum() if intercept else 0.0)
    r2 = 1 - float(e @ e) / float(np.sum(w * yc**2))
    nan = float("nan")
    rsq = {"rsquared": r2, "rsquared_within": r2 if fit.estimator == "within" else nan,
           "rsquared_between": nan, "rsquared_overall": nan}
    note = (f"weighted least squares (weights: sum {w.sum():.6g} over "
            f"{len(w)} rows; min {w.min():.4g}, max {w.max():.4g})")
    return replace(fit, beta=beta, Xt=Xs, yt=ys, rsquared=rsq, tests={},
                   engine=_WeightedEngine(list(fit.names), beta, cov, fit.df_resid),
                   notes=[*fit.notes, note])
