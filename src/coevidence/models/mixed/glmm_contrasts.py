"""Arm contrasts of a GLMM on the response scale: predicted probabilities or rates by arm and
wave, their differences and ratios, with delta-method standard errors.

Two kinds of prediction, and the result says which (column ``averaging``):

- ``"conditional"``: for a typical cluster, random effects at 0 (``g^-1(x' beta)``). This is
  what ``emmeans(..., type = "response")`` reports for a ``glmer`` fit.
- ``"marginal"``: averaged over the random-effect distribution, ``E_b[g^-1(x' beta + z' b)]``
  (population-averaged; 41-node Gauss-Hermite over the total random-effect variance of the
  row, ``z' Sigma z`` summed over the terms). The variance components are treated as known
  in the delta method, as ``emmeans`` does with ``bias.adjust``.

For logit and log links the conditional and marginal contrasts differ (the marginal ones are
closer to 0 on the logit scale); for a rate with a log link the ratio is the same.
Predictions are at offset 0: with ``offset(log(exposure))`` they are rates per unit of
exposure.

Examples
--------
>>> import coevidence as cv
>>> from coevidence.models.mixed.datasets import load_dataset
>>> cbpp = load_dataset("cbpp")
>>> res = cv.fit_mixed("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
...                    family="binomial")
>>> tab = cv.response_contrast(res, arm="period", time=None)
>>> tab.loc[tab["measure"] == "difference", "contrast"].tolist()[:1]
['2 - 1']
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
from scipy import stats

from coevidence.exceptions import ModelSpecificationError, OptionError
from coevidence.models.mixed._glmm import _kernels as K

__all__ = ["response_contrast"]

_COLUMNS = ["contrast", "time", "measure", "estimate", "std_error", "statistic", "p_value",
            "conf_low", "conf_high", "averaging"]
_NODES = 41


def _predict(result, grid: pd.DataFrame, averaging: str) -> tuple[float, np.ndarray]:
    """Equal-weight mean prediction over the grid rows and its gradient in beta."""
    from coevidence.models.mixed.formula import random_matrix
    from coevidence.models.mixed.results import _as_fitted_types

    X = result.fixed_matrix(grid)
    beta = result.params.to_numpy()
    eta = X @ beta
    link = result._data.link
    if averaging == "conditional":
        mu, d = K.link_inverse(link, eta)
        return float(mu.mean()), (d[:, None] * X).mean(0)
    s2 = np.zeros(len(grid))
    typed = _as_fitted_types(result._info.data, grid)
    for t_i, spec in enumerate(result._info.random):
        Z, _ = random_matrix(spec.expr, typed)
        s2 += np.einsum("ij,jk,ik->i", Z, result._term_cov(t_i), Z)
    x, w = np.polynomial.hermite.hermgauss(_NODES)
    z, w = x * np.sqrt(2.0), w / np.sqrt(np.pi)
    e = eta[:, None] + np.sqrt(s2)[:, None] * z[None, :]
    mu, d = K.link_inverse(link, e)
    m = (mu * w).sum(1)
    dm = (d * w).sum(1)
    return float(m.mean()), (dm[:, None] * X).mean(0)


def response_contrast(
    result,
    *,
    arm: str | None = None,
    time: str | None = None,
    times=None,
    reference: str | None = None,
    averaging: str = "conditional",
    covariates: str = "wave",
    conf_level: float | None = None,
) -> pd.DataFrame:
    """Predicted probabilities (binomial) or rates (Poisson) by arm, with arm differences and
    ratios, per wave, on the response scale.

    Parameters
    ----------
    result : GlmmResult
        From :func:`coevidence.fit_mixed` with ``family=`` (or ``fit_growth(family=)``).
    arm, time : str, optional
        The arm and time columns; from the growth specification or inferred as in
        :func:`coevidence.contrast`. ``time=None`` with no time in the model compares arms once.
    times : sequence, optional
        The time values to report (default: every value in the data).
    reference : str, optional
        The arm level others are compared with (default: the first level).
    averaging : {"conditional", "marginal"}
        Random effects at 0, or averaged over their distribution (see the module docstring).
    covariates : {"wave", "mean"}
        Other numeric covariates at the wave's mean or the overall mean; categorical ones are
        averaged over their levels with equal weights (as emmeans).
    conf_level : float, optional
        Default: the fit's.

    Returns
    -------
    DataFrame
        Columns ``contrast, time, measure, estimate, std_error, statistic, p_value, conf_low,
        conf_high, averaging``. ``measure`` is ``"probability"``/``"rate"`` (one row per arm;
        no test), ``"difference"`` (z test of 0) or ``"ratio"`` (z test of log ratio 0; the
        CI is exp of the log-scale interval, the SE the delta-method SE of the ratio).
    """
    from coevidence.models.mixed.contrasts import _view
    from coevidence.models.mixed.glmm_results import GlmmResult

    if not isinstance(result, GlmmResult):
        raise ModelSpecificationError(
            "response_contrast needs a GLMM result (fit_mixed with family=); for a linear "
            "mixed model the response scale is the link scale: use contrast()")
    if averaging not in ("conditional", "marginal"):
        raise OptionError(f"averaging must be 'conditional' or 'marginal', got {averaging!r}")
    if covariates not in ("wave", "mean"):
        raise OptionError(f"covariates must be 'wave' or 'mean', got {covariates!r}")
    level = result._level(conf_level)
    z = stats.norm.ppf(0.5 + level / 2)
    view = _one_arm_view(result, arm) if time is None else _view(result, arm, time)
    arms = list(view.arms)
    ref = arms[0] if reference is None else str(reference)
    if ref not in arms:
        raise ModelSpecificationError(f"reference {ref!r} is not an arm level; levels: {arms}")
    if view.time is None:
        time_values = [None]
    else:
        from coevidence.models.mixed.contrasts import _time_values

        time_values = _time_values(view) if times is None else list(times)
    V = result.vcov.to_numpy()
    measure = "probability" if result.family == "binomial" else "rate"
    rows = []
    for t in time_values:
        preds = {}
        for a in arms:
            grid = _grid(view, a, t, covariates)
            preds[a] = _predict(result, grid, averaging)
        for a in arms:
            est, g = preds[a]
            se = float(np.sqrt(g @ V @ g))
            lo, hi = _response_limits(result, est, se, z)
            rows.append([a, t, measure, est, se, np.nan, np.nan, lo, hi, averaging])
        p0, g0 = preds[ref]
        for a in arms:
            if a == ref:
                continue
            p1, g1 = preds[a]
            gd = g1 - g0
            d = p1 - p0
            se = float(np.sqrt(gd @ V @ gd))
            stat, p, q = _test(result, gd, d / se, level)
            rows.append([f"{a} - {ref}", t, "difference", d, se, stat, p, d - q * se,
                         d + q * se, averaging])
            lr = float(np.log(p1 / p0))
            gl = g1 / p1 - g0 / p0
            sel = float(np.sqrt(gl @ V @ gl))
            stat, p, q = _test(result, gl, lr / sel, level)
            rows.append([f"{a} / {ref}", t, "ratio", float(np.exp(lr)), float(np.exp(lr)) * sel,
                         stat, p, float(np.exp(lr - q * sel)), float(np.exp(lr + q * sel)),
                         averaging])
    return pd.DataFrame(rows, columns=_COLUMNS)


def _test(result, grad: np.ndarray, stat: float, level: float) -> tuple[float, float, float]:
    """(statistic, p, critical value): z, or t with the result's df for a contrast that loads
    on a between-cluster term whose df a design-aware growth model bounded."""
    df = result.df_for(grad)
    if np.isfinite(df):
        return stat, float(2 * stats.t.sf(abs(stat), df)), float(stats.t.ppf(0.5 + level / 2, df))
    return stat, float(2 * stats.norm.sf(abs(stat))), float(stats.norm.ppf(0.5 + level / 2))


def _response_limits(result, est: float, se: float, z: float) -> tuple[float, float]:
    """Limits of a predicted mean: delta-method on the link scale, back-transformed."""
    if result.link == "logit":
        g = np.log(est / (1 - est))
        s = se / (est * (1 - est))
        lo, hi = g - z * s, g + z * s
        return float(1 / (1 + np.exp(-lo))), float(1 / (1 + np.exp(-hi)))
    if result.link == "log":
        s = se / est
        return float(est * np.exp(-z * s)), float(est * np.exp(z * s))
    return est - z * se, est + z * se


def _one_arm_view(result, arm):
    """The view with the time inferred, or (a model without a time) an arm-only view."""
    from coevidence.models.mixed.contrasts import _View, _view

    try:
        return _view(result, arm, None)
    except ModelSpecificationError as exc:
        if "time" not in str(exc):
            raise
    info = result._info
    data = info.data
    if arm is None or arm not in data.columns:
        raise ModelSpecificationError(f"give arm= (a column of the model), got {arm!r}")
    a = data[arm]
    arms = (tuple(str(c) for c in a.cat.categories if (a == c).any())
            if isinstance(a.dtype, pd.CategoricalDtype) else tuple(sorted(map(str, a.unique()))))
    unit = None
    ignore = frozenset([info.outcome, *info.group_columns])
    return _View(arm, None, arms[0], arms, "none", (), data.copy(), unit, ignore, None)


def _grid(view, arm_value, time_value, covariates: str) -> pd.DataFrame:
    from coevidence.models.mixed.contrasts import _reference_rows

    if view.time is not None:
        grid = _reference_rows(view, arm_value, time_value, covariates)
    else:
        # no time in the model: the arm stands in for it (rows at that arm level)
        grid = _reference_rows(replace(view, time=view.arm), arm_value, arm_value, "mean")
    col = view.frame[view.arm]
    if pd.api.types.is_numeric_dtype(col) and not isinstance(col.dtype, pd.CategoricalDtype):
        grid[view.arm] = float(arm_value)
    return grid
