"""Contrasts between TA models in a growth model, growth-model effect sizes, p adjustment.

Examples
--------
>>> adjust_pvalues([0.01, 0.04, 0.03], method="holm").round(3).tolist()
[0.03, 0.06, 0.06]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from coevidence.results.base import wald_tests

from coevidence.exceptions import ModelSpecificationError
from coevidence.results.mixed import MixedResult

__all__ = ["adjust_pvalues", "contrast", "effect_size"]

_COLUMNS = ["contrast", "time", "estimate", "std_error", "statistic", "df", "p_value",
            "conf_low", "conf_high"]


def _spec(result: MixedResult):
    spec = getattr(result, "growth", None)
    if spec is None:
        raise ModelSpecificationError(
            "contrast() and effect_size() need a result of fit_growth (it records which "
            "columns are the arm and the time)"
        )
    return spec


def _template(result: MixedResult) -> pd.Series:
    """Covariates held at their mean (numeric) or most frequent level (categorical)."""
    data = result.data
    row = {}
    for col in data.columns:
        s = data[col]
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            row[col] = float(s.mean())
        else:
            row[col] = s.mode().iloc[0]
    return pd.Series(row)


def _grid(result: MixedResult, arm_value: str, time_value: float) -> pd.DataFrame:
    spec = _spec(result)
    data = result.data
    row = _template(result).to_dict()
    row[spec.arm] = arm_value
    row[spec.time] = time_value
    if spec.time_coding == "categorical":
        from coevidence.models.mixed.growth import time_label

        row[f"{spec.time}_f"] = time_label(time_value)
    if spec.time_coding == "piecewise":
        at = spec.frame[spec.frame[spec.time] == time_value]
        if at.empty:
            raise ValueError(f"no rows at {spec.time}={time_value!r} to place the pieces")
        for piece in spec.slope_terms:
            row[piece] = float(at[piece].mean())
    frame = pd.DataFrame([row])
    for col in data.columns:
        if isinstance(data[col].dtype, pd.CategoricalDtype):
            frame[col] = pd.Categorical(frame[col], categories=data[col].cat.categories)
    return frame


def _row(result: MixedResult, L: np.ndarray, label: str, time, level: float) -> dict:
    est = float(L @ result.params.to_numpy())
    se = float(np.sqrt(L @ result.vcov.to_numpy() @ L))
    df = result.df_for(L)
    stat, p, lo, hi = (float(v) for v in wald_tests(est, se, df, level))
    return {"contrast": label, "time": time, "estimate": est, "std_error": se,
            "statistic": stat, "df": df, "p_value": p, "conf_low": lo, "conf_high": hi}


def contrast(
    result: MixedResult | Mapping[str, MixedResult],
    at: Sequence[float] | None = None,
    treatment: str | None = None,
    slopes: bool = True,
    conf_level: float | None = None,
    adjust: str | None = None,
) -> pd.DataFrame:
    """Treatment arm minus the reference arm at chosen waves, and the difference in slopes.

    Uses the result's covariance and df method (Satterthwaite, Kenward-Roger, CR2/BM, ...).

    Parameters
    ----------
    result : MixedResult from :func:`fit_growth`, or a dict ``{outcome: result}``
    at : sequence of time values, optional
        Waves at which to compare the arms; default every observed time value.
    treatment : str, optional
        The arm compared with the reference; default every non-reference arm.
    slopes : bool, default True
        Add the difference in slope(s) (one row per time piece when piecewise).
    conf_level : float, optional
        Default: the result's.
    adjust : {None, "holm", "bh"}
        With several outcomes, adjust the p values across outcomes within each contrast row
        (column ``p_adjusted``).

    Returns
    -------
    DataFrame
        Columns ``contrast``, ``time``, ``estimate``, ``std_error``, ``statistic``, ``df``,
        ``p_value``, ``conf_low``, ``conf_high`` (and ``outcome``, ``p_adjusted`` for several
        outcomes).

    Examples
    --------
    >>> res = cv.fit_growth(panel, "research_use")  # doctest: +SKIP
    >>> contrast(res, at=[0, 5])  # doctest: +SKIP
    """
    if isinstance(result, Mapping):
        frames = []
        for name, res in result.items():
            f = contrast(res, at=at, treatment=treatment, slopes=slopes, conf_level=conf_level)
            f.insert(0, "outcome", name)
            frames.append(f)
        out = pd.concat(frames, ignore_index=True)
        if adjust is not None:
            key = out["contrast"] + "|" + out["time"].map(repr)
            out["p_adjusted"] = out.groupby(key, sort=False)["p_value"].transform(
                lambda s: adjust_pvalues(s.to_numpy(), method=adjust)
            )
        return out
    spec = _spec(result)
    level = result.conf_level if conf_level is None else float(conf_level)
    arms = [a for a in spec.arms[1:] if treatment is None or a == treatment]
    if not arms:
        raise ValueError(f"treatment {treatment!r} is not an arm of this model: {spec.arms[1:]}")
    times = sorted(spec.frame[spec.time].unique()) if at is None else list(at)
    rows = []
    for a in arms:
        label = f"{a} - {spec.reference}"
        for t in times:
            L = (result.fixed_matrix(_grid(result, a, t))
                 - result.fixed_matrix(_grid(result, spec.reference, t)))[0]
            rows.append(_row(result, L, label, t, level))
        if slopes:
            for piece in _slope_pieces(spec):
                L = _slope_vector(result, a, piece)
                rows.append(_row(result, L, f"slope({piece}): {label}", np.nan, level))
    return pd.DataFrame(rows, columns=_COLUMNS)


def _slope_pieces(spec) -> tuple[str, ...]:
    if spec.time_coding == "categorical":
        return ()
    return spec.slope_terms


def _slope_vector(result: MixedResult, arm: str, piece: str) -> np.ndarray:
    spec = _spec(result)
    names = list(result.params.index)
    L = np.zeros(len(names))
    # the interaction column of piece with the arm dummy (R naming: piece:armLEVEL)
    target = {f"{piece}:{spec.arm}{arm}", f"{spec.arm}{arm}:{piece}"}
    hit = [i for i, n in enumerate(names) if n in target]
    if len(hit) != 1:
        raise ModelSpecificationError(
            f"cannot find the {piece} x {spec.arm} interaction among {names}"
        )
    L[hit[0]] = 1.0
    return L


def effect_size(
    result: MixedResult,
    treatment: str | None = None,
    duration: float | None = None,
    baseline_sd: float | None = None,
    conf_level: float | None = None,
) -> pd.DataFrame:
    """Feingold's (2009, 2013) growth-model effect size ``d = slope difference x duration / SD``.

    Parameters
    ----------
    result : MixedResult from :func:`fit_growth` with linear time
    treatment : str, optional
        Default: every non-reference arm.
    duration : float, optional
        Length of the study in time units; default ``max(time) - min(time)``.
    baseline_sd : float, optional
        Default: the SD of the outcome at the first wave pooled over the two arms compared
        (Feingold 2009: the raw baseline SD).
    conf_level : float, optional

    Returns
    -------
    DataFrame
        Columns ``contrast``, ``d``, ``conf_low``, ``conf_high``, ``slope_difference``,
        ``duration``, ``baseline_sd``.

    Notes
    -----
    The CI is the slope difference's CI scaled the same way (Feingold 2013; the SD is treated
    as known).

    Examples
    --------
    >>> effect_size(res)  # doctest: +SKIP
    """
    spec = _spec(result)
    if spec.time_coding != "linear":
        raise ModelSpecificationError("effect_size needs time_coding='linear'")
    data = spec.frame
    t = data[spec.time]
    dur = float(t.max() - t.min()) if duration is None else float(duration)
    tab = contrast(result, at=[], treatment=treatment, slopes=True, conf_level=conf_level)
    rows = []
    for _, r in tab.iterrows():
        arm = r["contrast"].split(": ", 1)[1].split(" - ")[0]
        if baseline_sd is None:
            base = data[(t == t.min()) & data[spec.arm].isin([arm, spec.reference])]
            groups = [g[spec.outcome].to_numpy() for _, g in base.groupby(spec.arm, observed=True)]
            num = sum((len(g) - 1) * np.var(g, ddof=1) for g in groups)
            sd = float(np.sqrt(num / (sum(len(g) for g in groups) - len(groups))))
        else:
            sd = float(baseline_sd)
        k = dur / sd
        rows.append({"contrast": r["contrast"], "d": r["estimate"] * k,
                     "conf_low": r["conf_low"] * k, "conf_high": r["conf_high"] * k,
                     "slope_difference": r["estimate"], "duration": dur, "baseline_sd": sd})
    return pd.DataFrame(rows)


def adjust_pvalues(pvalues, method: str = "holm") -> np.ndarray:
    """Holm or Benjamini-Hochberg adjusted p values (for several outcomes).

    Parameters
    ----------
    pvalues : array-like
    method : {"holm", "bh"}

    Examples
    --------
    >>> adjust_pvalues([0.01, 0.02, 0.03], method="bh").round(3).tolist()
    [0.03, 0.03, 0.03]
    """
    from statsmodels.stats.multitest import multipletests

    methods = {"holm": "holm", "bh": "fdr_bh"}
    if method not in methods:
        raise ValueError(f"method must be 'holm' or 'bh', got {method!r}")
    p = np.asarray(pvalues, dtype=float)
    if p.size == 0:
        return p
    if np.any((p < 0) | (p > 1)) or np.any(np.isnan(p)):
        raise ValueError(f"p values must be in [0, 1]; got {p.tolist()}")
    return multipletests(p, method=methods[method])[1]
