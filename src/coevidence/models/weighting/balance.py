"""Covariate balance before and after weighting: standardised mean differences and a love plot.

Conventions are cobalt's (``bal.tab``), written out so that they can be checked by hand:

- **SMD denominator** (always from the *unweighted* groups, so weighting cannot change it):
  ``sqrt((s1^2 + s0^2) / 2)`` for ``estimand="ate"`` and ``"overlap"`` (the pooled SD), ``s1``
  (the treated group's SD) for ``"att"``. Continuous variances have divisor ``n - 1``, binary
  variances are ``p (1 - p)``.
- **Binary covariates** (0/1, boolean, and each level of a categorical covariate): the raw
  difference in proportions by default (cobalt's ``binary = "raw"``); ``binary="std"``
  standardises them as the continuous ones.
- **Weighted means** ``sum(w x) / sum(w)``; **weighted variances** (variance ratios)
  ``sum(w) / (sum(w)^2 - sum(w^2)) * sum(w (x - m_w)^2)`` (cobalt's ``col_w_var``); variance
  ratios (treated / comparison) for continuous covariates only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from coevidence.exceptions import ModelSpecificationError, OptionError
from coevidence.models._shared.data import check_columns
from coevidence.models._shared.options import check_choice

__all__ = ["balance", "love_plot"]

_DENOMINATOR = {
    "ate": "pooled SD of the unweighted groups, sqrt((s1^2 + s0^2) / 2)",
    "overlap": "pooled SD of the unweighted groups, sqrt((s1^2 + s0^2) / 2)",
    "att": "SD of the unweighted treated group, s1",
}


def _wmean(x: np.ndarray, w: np.ndarray) -> float:
    return float((w * x).sum() / w.sum())


def _wvar(x: np.ndarray, w: np.ndarray, binary: bool) -> float:
    m = _wmean(x, w)
    if binary:
        return m * (1 - m)
    sw = w.sum()
    return float(sw / (sw**2 - (w**2).sum()) * (w * (x - m) ** 2).sum())


def _columns(data: pd.DataFrame, covariates: list[str]) -> list[tuple[str, np.ndarray, bool]]:
    out = []
    for c in covariates:
        s = data[c]
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            x = s.to_numpy(dtype=float)
            out.append((c, x, bool(set(np.unique(x)) <= {0.0, 1.0})))
        else:
            levels = (list(s.cat.categories) if isinstance(s.dtype, pd.CategoricalDtype)
                      else sorted(s.dropna().unique().tolist()))
            for lev in levels:
                out.append((f"{c}_{lev}", (s == lev).to_numpy(dtype=float), True))
    return out


def balance(
    data: pd.DataFrame,
    *,
    treatment: str,
    covariates: Sequence[str],
    weights: str | Sequence[float] | pd.Series | None = None,
    estimand: str = "ate",
    treated: Any = None,
    binary: str = "raw",
) -> pd.DataFrame:
    """Balance table: group means, SMDs and variance ratios, unweighted and weighted.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per unit (``PropensityWeights.balance()`` collapses a panel for you).
    treatment : str
        Two-valued treatment column (``treated=`` names the treated value unless 0/1).
    covariates : list of str
        Numeric, boolean or categorical columns (one row per level for categoricals).
    weights : str or array_like, optional
        A column name or one weight per row; without weights only the unweighted columns
        are filled (the weighted ones equal them).
    estimand : {"ate", "att", "overlap"}
        Chooses the SMD denominator (see the module docstring).
    binary : {"raw", "std"}
        Raw difference in proportions for binary covariates (cobalt's default) or standardised.

    Returns
    -------
    pandas.DataFrame
        One row per covariate (level): ``covariate``, ``type`` (``"binary"``/``"continuous"``),
        ``mean_treated_unweighted``, ``mean_comparison_unweighted``, ``smd_unweighted``,
        ``variance_ratio_unweighted``, the same four ``*_weighted``, and ``denominator``
        (the SD used; 1 for raw binary differences). ``attrs["denominator"]`` says which.

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"t": [1, 1, 0, 0], "x": [1.0, 2.0, 0.0, 1.0]})
    >>> balance(d, treatment="t", covariates=["x"])[["covariate", "smd_unweighted"]]
      covariate  smd_unweighted
    0         x        1.414214
    """
    from coevidence.models.weighting.propensity import _treat01

    check_choice("estimand", estimand, ("ate", "att", "overlap"))
    check_choice("binary", binary, ("raw", "std"))
    covariates = [covariates] if isinstance(covariates, str) else list(covariates)
    check_columns(data, [treatment, *covariates, weights if isinstance(weights, str) else None])
    if weights is None:
        w = np.ones(len(data))
    elif isinstance(weights, str):
        w = data[weights].to_numpy(dtype=float)
    else:
        w = np.asarray(weights, dtype=float)
        if w.shape != (len(data),):
            raise OptionError(f"weights has {w.size} values for {len(data)} rows")
    if not np.isfinite(w).all() or (w < 0).any():
        rows = np.flatnonzero(~np.isfinite(w) | (w < 0))[:10].tolist()
        raise ModelSpecificationError(f"weights must be finite and >= 0; bad rows {rows}")
    miss = data[[treatment, *covariates]].isna().any(axis=1).to_numpy()
    if miss.any():
        raise ModelSpecificationError(
            f"balance(): {int(miss.sum())} rows have missing treatment or covariates "
            f"(rows {np.flatnonzero(miss)[:10].tolist()})")
    t, _ = _treat01(data[treatment], treated, treatment)
    g1, g0 = t == 1, t == 0
    rows = []
    for name, x, is_bin in _columns(data, covariates):
        one = np.ones(len(x))
        v1, v0 = _wvar(x[g1], one[g1], is_bin), _wvar(x[g0], one[g0], is_bin)
        if is_bin and binary == "raw":
            sd = 1.0
        elif estimand == "att":
            sd = float(np.sqrt(v1))
        else:
            sd = float(np.sqrt((v1 + v0) / 2))
        row: dict[str, Any] = {"covariate": name, "type": "binary" if is_bin else "continuous"}
        for tag, ww in (("unweighted", one), ("weighted", w)):
            m1, m0 = _wmean(x[g1], ww[g1]), _wmean(x[g0], ww[g0])
            row[f"mean_treated_{tag}"] = m1
            row[f"mean_comparison_{tag}"] = m0
            row[f"smd_{tag}"] = (m1 - m0) / sd if sd > 0 else np.nan
            row[f"variance_ratio_{tag}"] = (
                np.nan if is_bin else _wvar(x[g1], ww[g1], False) / _wvar(x[g0], ww[g0], False))
        row["denominator"] = sd
        rows.append(row)
    cols = ["covariate", "type"] + [f"{k}_{tag}" for tag in ("unweighted", "weighted")
                                    for k in ("mean_treated", "mean_comparison", "smd",
                                              "variance_ratio")] + ["denominator"]
    out = pd.DataFrame(rows)[cols]
    out.attrs["denominator"] = _DENOMINATOR[estimand] + (
        "; binary covariates: raw difference in proportions" if binary == "raw" else "")
    out.attrs["estimand"] = estimand
    return out


def love_plot(
    table: pd.DataFrame,
    ax: Any = None,
    *,
    threshold: float | None = 0.1,
    absolute: bool = True,
    title: str | None = None,
) -> Any:
    """Love plot: each covariate's SMD before (open) and after (filled) weighting.

    Parameters
    ----------
    table : pandas.DataFrame
        A :func:`balance` table (or ``PropensityWeights.balance()``).
    ax : matplotlib.axes.Axes, optional
    threshold : float or None, default 0.1
        Dashed reference line(s) at this (absolute) SMD.
    absolute : bool, default True
        Plot ``|SMD|``.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import pandas as pd
    >>> d = pd.DataFrame({"t": [1, 1, 0, 0], "x": [1.0, 2.0, 0.0, 1.0]})
    >>> love_plot(balance(d, treatment="t", covariates=["x"])).get_xlabel()
    'Absolute standardised mean difference'
    """
    need = {"covariate", "smd_unweighted", "smd_weighted"}
    if not need <= set(table.columns):
        raise OptionError(f"love_plot() needs a balance() table with columns {sorted(need)}")
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6, 0.4 * len(table) + 1.5))
    f = (lambda v: np.abs(v)) if absolute else (lambda v: v)
    y = np.arange(len(table))[::-1]
    before = f(table["smd_unweighted"].to_numpy(float))
    after = f(table["smd_weighted"].to_numpy(float))
    for yi, b, a in zip(y, before, after, strict=True):
        ax.plot([b, a], [yi, yi], color="0.7", lw=1, zorder=1)
    ax.scatter(before, y, facecolors="none", edgecolors="C3", label="unweighted", zorder=2)
    ax.scatter(after, y, color="C0", label="weighted", zorder=3)
    if threshold is not None:
        for v in ([threshold] if absolute else [-threshold, threshold]):
            ax.axvline(v, ls="--", color="0.5", lw=1)
    ax.axvline(0, color="0.3", lw=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels(table["covariate"].astype(str).tolist())
    ax.set_xlabel("Absolute standardised mean difference" if absolute
                  else "Standardised mean difference")
    ax.legend(loc="best", frameon=False)
    ax.set_title(title or f"Covariate balance ({table.attrs.get('estimand', 'ate').upper()})")
    return ax
