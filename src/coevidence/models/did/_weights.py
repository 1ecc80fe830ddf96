"""Unit weights for ``fit_event_study(..., weights=)`` (Callaway & Sant'Anna), as R ``did``'s
``weightsname``.

Each organisation carries one weight (e.g. a propensity or sampling weight), normalised to mean 1
over the analysed units. A group-time cell is DRDID's ``reg_did_panel`` with ``i.weights``
(weights renormalised within the 2x2 comparison): the weighted mean change of the treated
cohort minus the weighted outcome-regression prediction of its change from the comparison units
(weighted least squares; without covariates the weighted mean change of the comparison units),
with the matching influence function. Aggregations weight cohorts by their *weighted* shares
``mean(w 1{G = g})`` and the influence of estimating the shares uses the weighted indicators,
as ``did::aggte``. The estimate is the effect in the weighted population of units (the ATT of
the population the weights represent).

Not available with weights: the doubly robust cell (``est_method="dr"`` with covariates), the
other estimators, and the CR2 small-sample adjustment (its leverage algebra is unweighted): use
``small_sample="cr1"`` or ``"none"`` with ``cluster=``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from coevidence.exceptions import ModelSpecificationError, OptionError
from coevidence.models._shared.data import weights_column

__all__ = ["WEIGHT_COLUMN", "check_weight_options", "unit_weights", "weighted_reg_cell",
           "with_weight_column"]

WEIGHT_COLUMN = "__coevidence_weights__"


def with_weight_column(panel: pd.DataFrame, weights: Any) -> tuple[pd.DataFrame, str | None]:
    """``(panel, column)``: a new frame holding the weights when they are given as values."""
    return weights_column(panel, weights, WEIGHT_COLUMN)


def check_weight_options(opts: Any, small_sample: str) -> None:
    """Refuse the estimators and adjustments that are not implemented with weights."""
    if opts.estimator != "callaway_santanna":
        raise OptionError(f"weights= is available for estimator='callaway_santanna' only, not "
                          f"{opts.estimator!r}")
    if opts.covariates and opts.est_method == "dr":
        raise OptionError("weights= with covariates needs est_method='reg' (the weighted doubly "
                          "robust cell is not implemented)")
    if small_sample == "cr2":
        raise OptionError("weights= is not available with the CR2 adjustment; give "
                          "small_sample='cr1' or 'none' (with cluster=)")


def unit_weights(data: pd.DataFrame, column: str, ucode: np.ndarray, n_units: int) -> np.ndarray:
    """One weight per unit code (constant within unit, positive), normalised to mean 1."""
    w = data[column].to_numpy(dtype=float)
    if not np.isfinite(w).all() or (w <= 0).any():
        raise ModelSpecificationError("weights must be finite and positive in every row used")
    lo = np.full(n_units, np.inf)
    hi = np.full(n_units, -np.inf)
    np.minimum.at(lo, ucode, w)
    np.maximum.at(hi, ucode, w)
    if (hi - lo > 1e-12 * np.maximum(1.0, hi)).any():
        raise ModelSpecificationError("weights vary within unit: fit_event_study needs one "
                                      "weight per unit (e.g. an organisation's propensity weight)")
    return lo / lo.mean()


def weighted_reg_cell(dy: np.ndarray, D: np.ndarray, X: np.ndarray | None,
                      iw: np.ndarray) -> tuple[float, np.ndarray]:
    """DRDID ``reg_did_panel`` with ``i.weights``: ATT and influence function of one 2x2."""
    n = len(dy)
    iw = iw / iw.mean()
    X = np.ones((n, 1)) if X is None else X
    w_ols = iw * (1 - D)
    sw = np.sqrt(w_ols)
    beta = np.linalg.lstsq(X * sw[:, None], dy * sw, rcond=None)[0]
    out = X @ beta
    XpX_inv = np.linalg.inv((X * w_ols[:, None]).T @ X / n)
    lin_ols = (w_ols * (dy - out))[:, None] * X @ XpX_inv
    w_t = iw * D
    eta_t = np.mean(w_t * dy) / w_t.mean()
    eta_c = np.mean(w_t * out) / w_t.mean()
    inf_t = (w_t * dy - w_t * eta_t) / w_t.mean()
    inf_c1 = w_t * out - w_t * eta_c
    inf_c2 = lin_ols @ np.mean(w_t[:, None] * X, axis=0)
    return eta_t - eta_c, inf_t - (inf_c1 + inf_c2) / w_t.mean()
