"""Contrasts between arms in any mixed model (emmeans-style), marginal means and slopes by arm,
growth-model effect sizes, p adjustment.

Examples
--------
>>> adjust_pvalues([0.01, 0.04, 0.03], method="holm").round(3).tolist()
[0.03, 0.06, 0.06]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from coevidence.exceptions import ModelSpecificationError, OptionError
from coevidence.models.mixed.results import MixedResult, _fixed_variables
from coevidence.results.base import wald_tests

__all__ = ["adjust_pvalues", "contrast", "effect_size", "marginal_means", "slopes"]

_COLUMNS = ["contrast", "time", "estimate", "std_error", "statistic", "df", "p_value",
            "conf_low", "conf_high"]


@dataclass(frozen=True)
class _View:
    """What contrasts need to know about a mixed result: the arm, the time and the coding."""

    arm: str
    time: str
    reference: str
    arms: tuple[str, ...]
    time_coding: str  # linear | categorical | piecewise | numeric (any numeric time in a model)
    slope_terms: tuple[str, ...]
    frame: pd.DataFrame  # model rows: the model's columns (as coded), incl. arm and time
    unit: tuple[str, ...] | None  # the finest grouping factor's columns
    ignore: frozenset = frozenset()  # outcome and grouping columns: not covariates
    spec: object | None = None


def _view(result: MixedResult, arm: str | None = None, time: str | None = None) -> _View:
    """The arm and time of ``result``: from its growth specification, or given, or inferred."""
    from coevidence.models.mixed.glmm_results import GlmmResult

    if not isinstance(result, MixedResult | GlmmResult):
        raise ModelSpecificationError(
            f"contrasts need a MixedResult (from fit_mixed or fit_growth), got "
            f"{type(result).__name__}"
        )
    info = result._info
    data = info.data
    unit = None
    if result._problem.terms:
        pos = max(range(len(result._problem.terms)),
                  key=lambda i: result._problem.terms[i].n_levels)
        unit = tuple(info.random[pos].factors)
    ignore = frozenset([info.outcome, *info.group_columns])
    spec = getattr(result, "growth", None)
    if spec is not None and arm in (None, spec.arm) and time in (None, spec.time):
        frame = data.copy()
        for col in spec.frame.columns:
            if col not in frame.columns:
                frame[col] = spec.frame[col].to_numpy()
        return _View(spec.arm, spec.time, spec.reference, spec.arms, spec.time_coding,
                     spec.slope_terms, frame, unit, ignore, spec)
    fixed = [v for v in _fixed_variables(info) if v not in info.group_columns]
    if arm is None:
        cands = [v for v in fixed if not pd.api.types.is_numeric_dtype(data[v])
                 or isinstance(data[v].dtype, pd.CategoricalDtype)]
        if len(cands) != 1:
            raise ModelSpecificationError(
                f"cannot tell which column is the arm (candidates: {cands or 'none'}); give "
                f"arm= (and time=)"
            )
        arm = cands[0]
    if arm not in data.columns or arm not in fixed:
        raise ModelSpecificationError(
            f"arm={arm!r} is not a fixed-effect variable of the model {result.formula!r}"
        )
    if time is None:
        inter = set()
        for vars_ in info.fixed_spec.term_variables.values():
            names = {str(v) for v in vars_}
            if arm in names:
                inter |= {v for v in names if v != arm and v in data.columns}
        cands = [v for v in fixed if v in inter and v != arm]
        if len(cands) != 1:
            named = [v for v in fixed if v in ("time", "wave", "years", "period") and v != arm]
            cands = named if len(named) == 1 else cands
        if len(cands) != 1:
            raise ModelSpecificationError(
                f"cannot tell which column is the time (candidates: {cands or 'none'}); give "
                f"time="
            )
        time = cands[0]
    if time not in data.columns:
        raise ModelSpecificationError(f"time={time!r} is not a column of the model's data")
    a = data[arm]
    arms = (tuple(str(c) for c in a.cat.categories if (a == c).any())
            if isinstance(a.dtype, pd.CategoricalDtype) else tuple(sorted(map(str, a.unique()))))
    if len(arms) < 2:
        raise ModelSpecificationError(f"arm column {arm!r} has a single level in the fit")
    numeric = pd.api.types.is_numeric_dtype(data[time]) and not isinstance(
        data[time].dtype, pd.CategoricalDtype)
    coding = "numeric" if numeric else "categorical"
    return _View(arm, time, arms[0], arms, coding, (time,) if numeric else (), data.copy(),
                 unit, ignore, None)


def _time_values(view: _View) -> list:
    t = view.frame[view.time]
    if isinstance(t.dtype, pd.CategoricalDtype):
        return [c for c in t.cat.categories if (t == c).any()]
    return sorted(pd.unique(t.dropna()))


def _categorical(s: pd.Series) -> bool:
    return isinstance(s.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(s)


def _reference_rows(view: _View, arm_value, time_value, covariates: str) -> pd.DataFrame:
    """Reference-grid rows at (arm, time): numeric covariates at their mean (time-varying ones
    at the mean of the rows at that wave when ``covariates="wave"``); categorical covariates
    over all their levels (averaged with equal weights, as emmeans does)."""
    data = view.frame
    spec = view.spec
    at_t = data[data[view.time] == time_value]
    row: dict = {}
    cats: dict[str, list] = {}
    skip = {view.arm, view.time, *view.ignore}
    if spec is not None:
        skip |= set(_time_columns(spec)) | {f"{view.time}_f"}
    for col in data.columns:
        if col in skip:
            continue
        s = data[col]
        if _categorical(s):
            levels = (list(s.cat.categories) if isinstance(s.dtype, pd.CategoricalDtype)
                      else sorted(s.unique()))
            cats[col] = [lv for lv in levels if (s == lv).any()] or levels[:1]
        else:
            varying = view.unit is not None and not _constant(data, col, list(view.unit))
            if covariates == "wave" and varying and len(at_t):
                row[col] = float(at_t[col].mean())
            elif s.nunique() <= 2:
                # emmeans' cov.keep = "2": a two-valued covariate (a 0/1 indicator) is kept at
                # its values and averaged over them with equal weights
                cats[col] = sorted(float(v) for v in s.unique())
            else:
                row[col] = float(s.mean())
    row[view.arm] = arm_value
    row[view.time] = time_value
    if spec is not None and spec.time_coding == "categorical":
        from coevidence.models.mixed.growth import time_label

        row[f"{view.time}_f"] = time_label(time_value)
    if spec is not None and spec.time_coding == "piecewise":
        if at_t.empty:
            raise ModelSpecificationError(
                f"no rows at {view.time}={time_value!r} to place the pieces"
            )
        for piece in _time_columns(spec):
            row[piece] = float(at_t[piece].mean())
    grid = pd.DataFrame([row])
    for col, levels in cats.items():
        grid = grid.merge(pd.DataFrame({col: levels}), how="cross")
    for col in data.columns:
        if isinstance(data[col].dtype, pd.CategoricalDtype) and col in grid.columns:
            grid[col] = pd.Categorical(grid[col], categories=data[col].cat.categories)
    return grid


def _time_columns(spec) -> tuple[str, ...]:
    """Every time column of a growth specification (all pieces and shifts when piecewise)."""
    return tuple(getattr(spec, "time_columns", spec.slope_terms))


def _constant(data: pd.DataFrame, col: str, unit: list[str]) -> bool:
    from coevidence.models.mixed._design import constant_within

    return constant_within(data, col, unit)


def _L(result: MixedResult, view: _View, arm_value, time_value, covariates: str) -> np.ndarray:  # noqa: N802
    """Coefficient vector of the (equal-weight) mean prediction at (arm, time)."""
    return result.fixed_matrix(_reference_rows(view, arm_value, time_value, covariates)).mean(0)


def _row(result: MixedResult, L: np.ndarray, label: str, time, level: float) -> dict:
    est = float(L @ result.params.to_numpy())
    se = float(np.sqrt(L @ result.vcov.to_numpy() @ L))
    df = result.df_for(L)
    stat, p, lo, hi = (float(v) for v in wald_tests(est, se, df, level))
    return {"contrast": label, "time": time, "estimate": est, "std_error": se,
            "statistic": stat, "df": df, "p_value": p, "conf_low": lo, "conf_high": hi}


def _check_covariates(covariates: str) -> None:
    if covariates not in ("wave", "mean"):
        raise ModelSpecificationError(
            f"covariates must be 'wave' (time-varying covariates at each wave's mean) or "
            f"'mean' (every covariate at its overall mean, emmeans' default), got {covariates!r}"
        )


def _level(result: MixedResult, conf_level: float | None) -> float:
    level = result.conf_level if conf_level is None else float(conf_level)
    if not 0 < level < 1:
        raise ModelSpecificationError(f"conf_level must be in (0, 1), got {conf_level!r}")
    return level


def contrast(
    result: MixedResult | Mapping[str, MixedResult],
    at: Sequence[float] | None = None,
    treatment: str | None = None,
    slopes: bool = True,
    conf_level: float | None = None,
    adjust: str | None = None,
    *,
    arm: str | None = None,
    time: str | None = None,
    covariates: str = "wave",
) -> pd.DataFrame:
    """Treatment arm minus the reference arm at chosen waves, and the difference in slopes.

    Works on any :class:`MixedResult`: a :func:`fit_growth` result knows its arm and time; for
    a :func:`fit_mixed` result they are given (``arm=``, ``time=``) or inferred (the model's one
    categorical fixed variable, and the numeric variable it interacts with). Uses the result's
    covariance and df method (Satterthwaite, Kenward-Roger, CR2/BM) as fitted, so the numbers
    match ``emmeans`` on the same lme4 model.

    Parameters
    ----------
    result : MixedResult, or a dict ``{outcome: result}``
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
    arm, time : str, optional
        The arm and time columns (default: the growth specification's, or inferred).
    covariates : {"wave", "mean"}, default "wave"
        Other numeric covariates: ``"wave"`` evaluates covariates that vary within the
        repeated unit (a post-TA indicator, dose) at the mean of the rows at each wave and
        time-invariant ones as emmeans does; ``"mean"`` is emmeans' default reference grid for
        every covariate: numeric ones at their overall mean, except that a covariate with at
        most two distinct values (a 0/1 indicator) is kept at its values (emmeans'
        ``cov.keep = "2"``). Categorical covariates and those two-valued ones are averaged over
        their levels with equal weights (emmeans' default).

    Returns
    -------
    DataFrame
        Columns ``contrast``, ``time``, ``estimate``, ``std_error``, ``statistic``, ``df``,
        ``p_value``, ``conf_low``, ``conf_high`` (and ``outcome``, ``p_adjusted`` for several
        outcomes).

    Examples
    --------
    >>> import coevidence as cv
    >>> from coevidence.models.mixed.datasets import load_dataset
    >>> d = load_dataset("sleepstudy").assign(group=lambda x: (x.subject.astype(int) % 2)
    ...                                       .map({0: "a", 1: "b"}))
    >>> res = cv.fit_mixed("reaction ~ days * group + (days | subject)", d)
    >>> cv.contrast(res, at=[0, 9])["contrast"].tolist()
    ['b - a', 'b - a', 'slope(days): b - a']
    """
    if isinstance(result, Mapping):
        frames = []
        for name, res in result.items():
            f = contrast(res, at=at, treatment=treatment, slopes=slopes, conf_level=conf_level,
                         arm=arm, time=time, covariates=covariates)
            f.insert(0, "outcome", name)
            frames.append(f)
        out = pd.concat(frames, ignore_index=True)
        if adjust is not None:
            key = out["contrast"] + "|" + out["time"].map(repr)
            out["p_adjusted"] = out.groupby(key, sort=False)["p_value"].transform(
                lambda s: adjust_pvalues(s.to_numpy(), method=adjust)
            )
        return out
    _check_covariates(covariates)
    view = _view(result, arm, time)
    level = _level(result, conf_level)
    arms = [a for a in view.arms[1:] if treatment is None or a == treatment]
    if not arms:
        raise ModelSpecificationError(
            f"treatment {treatment!r} is not an arm of this model: {view.arms[1:]}"
        )
    times = _time_values(view) if at is None else list(at)
    rows = []
    for a in arms:
        label = f"{a} - {view.reference}"
        for t in times:
            L = (_L(result, view, a, t, covariates)
                 - _L(result, view, view.reference, t, covariates))
            rows.append(_row(result, L, label, t, level))
        if slopes:
            for piece in _slope_pieces(view):
                L = (_slope_L(result, view, a, piece, covariates)
                     - _slope_L(result, view, view.reference, piece, covariates))
                rows.append(_row(result, L, f"slope({piece}): {label}", np.nan, level))
    return pd.DataFrame(rows, columns=_COLUMNS)


def _slope_pieces(view: _View) -> tuple[str, ...]:
    if view.time_coding == "categorical":
        return ()
    return view.slope_terms


def _slope_L(result: MixedResult, view: _View, arm_value, piece: str,  # noqa: N802
             covariates: str) -> np.ndarray:
    """d prediction / d piece for one arm (emtrends): a unit step at the mean of time."""
    if view.spec is not None and view.time_coding == "piecewise":
        # any observed wave places the row; the pieces are then set to their means
        t0 = _time_values(view)[0]
        base = _reference_rows(view, arm_value, t0, "mean")
        for p in _time_columns(view.spec):
            base[p] = float(view.frame[p].mean())
        step = base.copy()
        step[piece] = step[piece] + 1.0
        return (result.fixed_matrix(step) - result.fixed_matrix(base)).mean(0)
    t0 = float(view.frame[view.time].mean())
    base = _reference_rows(view, arm_value, t0, "mean")
    step = base.copy()
    step[view.time] = t0 + 1.0
    if view.spec is not None:
        return (result.fixed_matrix(step) - result.fixed_matrix(base)).mean(0)
    # a non-linear time term (poly, I(time**2)): the derivative at the mean time
    h = 1e-4 * max(1.0, abs(t0))
    step[view.time] = t0 + h
    lo = base.copy()
    lo[view.time] = t0 - h
    return (result.fixed_matrix(step) - result.fixed_matrix(lo)).mean(0) / (2 * h)


def marginal_means(
    result: MixedResult,
    at: Sequence[float] | None = None,
    *,
    arm: str | None = None,
    time: str | None = None,
    covariates: str = "wave",
    conf_level: float | None = None,
) -> pd.DataFrame:
    """Estimated marginal means by arm x wave (``emmeans(m, ~ arm | time)``).

    Parameters
    ----------
    result : MixedResult
    at : sequence of time values, optional
        Default every observed wave.
    arm, time, covariates, conf_level
        As in :func:`contrast`.

    Returns
    -------
    DataFrame
        Columns ``arm``, ``time``, ``estimate``, ``std_error``, ``statistic``, ``df``,
        ``p_value``, ``conf_low``, ``conf_high``.

    Examples
    --------
    >>> import coevidence as cv
    >>> from coevidence.models.mixed.datasets import load_dataset
    >>> d = load_dataset("sleepstudy").assign(group=lambda x: (x.subject.astype(int) % 2)
    ...                                       .map({0: "a", 1: "b"}))
    >>> res = cv.fit_mixed("reaction ~ days * group + (days | subject)", d)
    >>> cv.marginal_means(res, at=[0])[["arm", "time"]].values.tolist()
    [['a', 0], ['b', 0]]
    """
    _check_covariates(covariates)
    view = _view(result, arm, time)
    level = _level(result, conf_level)
    times = _time_values(view) if at is None else list(at)
    rows = []
    for t in times:
        for a in view.arms:
            r = _row(result, _L(result, view, a, t, covariates), a, t, level)
            r["arm"] = r.pop("contrast")
            rows.append(r)
    cols = ["arm"] + [c for c in _COLUMNS if c != "contrast"]
    return pd.DataFrame(rows)[cols]


def slopes(
    result: MixedResult,
    *,
    arm: str | None = None,
    time: str | None = None,
    conf_level: float | None = None,
    pieces: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Slope of the outcome over time in each arm (``emtrends(m, ~ arm, var = "time")``).

    For a piecewise growth model, one row per arm and time piece. The difference of slopes is
    in :func:`contrast` (rows ``slope(...)``). ``pieces`` names the pieces to report (default:
    every piece except those too short to estimate, see ``fit_growth(min_piece_years=)``).

    Returns
    -------
    DataFrame
        Columns ``arm``, ``piece``, ``estimate``, ``std_error``, ``statistic``, ``df``,
        ``p_value``, ``conf_low``, ``conf_high``.

    Examples
    --------
    >>> import coevidence as cv
    >>> from coevidence.models.mixed.datasets import load_dataset
    >>> d = load_dataset("sleepstudy").assign(group=lambda x: (x.subject.astype(int) % 2)
    ...                                       .map({0: "a", 1: "b"}))
    >>> res = cv.fit_mixed("reaction ~ days * group + (days | subject)", d)
    >>> cv.slopes(res)["arm"].tolist()
    ['a', 'b']
    """
    view = _view(result, arm, time)
    level = _level(result, conf_level)
    if pieces is not None:
        allowed = _time_columns(view.spec) if view.spec is not None else view.slope_terms
        unknown = [p for p in pieces if p not in allowed]
        if unknown:
            raise ModelSpecificationError(f"unknown piece(s) {unknown}; the model has {allowed}")
        pieces = tuple(pieces)
    else:
        pieces = _slope_pieces(view)
    if not pieces:
        raise ModelSpecificationError("slopes need a numeric (not categorical) time")
    rows = []
    for a in view.arms:
        for piece in pieces:
            r = _row(result, _slope_L(result, view, a, piece, "mean"), a, np.nan, level)
            r["arm"] = r.pop("contrast")
            r["piece"] = piece
            rows.append(r)
    cols = ["arm", "piece"] + [c for c in _COLUMNS if c not in ("contrast", "time")]
    return pd.DataFrame(rows)[cols]


def effect_size(
    result: MixedResult,
    treatment: str | None = None,
    duration: float | None = None,
    baseline_sd: float | None = None,
    conf_level: float | None = None,
    *,
    arm: str | None = None,
    time: str | None = None,
) -> pd.DataFrame:
    """Feingold's (2009, 2013) growth-model effect size ``d = slope difference x duration / SD``.

    Works on any :class:`MixedResult` with a numeric time (see :func:`contrast` for ``arm``
    and ``time``).

    Parameters
    ----------
    result : MixedResult with linear time
    treatment : str, optional
        Default: every non-reference arm.
    duration : float, optional
        Length of the study in time units; default ``max(time) - min(time)``.
    baseline_sd : float, optional
        Default: the raw SD of the outcome at the first wave, pooled within the two arms
        compared (Feingold 2009), at the level of the model's rows (e.g. organisations for an
        organisation panel).
    conf_level : float, optional
    arm, time : str, optional

    Returns
    -------
    DataFrame
        Columns ``contrast``, ``d``, ``conf_low``, ``conf_high``, ``slope_difference``,
        ``duration``, ``baseline_sd``, ``sd_kind`` (what the SD is) and ``sd_level`` (the unit
        whose scores it is the SD of).

    Notes
    -----
    The CI is the slope difference's CI scaled the same way (Feingold 2013; the SD is treated
    as known). Standardising by the SD of organisation means gives a larger d than standardising
    by the SD of respondents' scores; ``sd_level`` says which one this is.

    Examples
    --------
    >>> import coevidence as cv
    >>> from coevidence.models.mixed.datasets import load_dataset
    >>> d = load_dataset("sleepstudy").assign(group=lambda x: (x.subject.astype(int) % 2)
    ...                                       .map({0: "a", 1: "b"}))
    >>> res = cv.fit_mixed("reaction ~ days * group + (days | subject)", d)
    >>> cv.effect_size(res)[["contrast", "sd_level"]].values.tolist()
    [['slope(days): b - a', 'subject']]
    """
    view = _view(result, arm, time)
    if view.time_coding not in ("linear", "numeric"):
        raise ModelSpecificationError("effect_size needs a linear (numeric) time coding")
    data = view.frame
    t = data[view.time]
    dur = float(t.max() - t.min()) if duration is None else float(duration)
    tab = contrast(result, at=[], treatment=treatment, slopes=True, conf_level=conf_level,
                   arm=view.arm, time=view.time)
    y = result._info.outcome
    sd_level = ":".join(view.unit) if view.unit else "observation"
    rows = []
    for _, r in tab.iterrows():
        a = r["contrast"].split(": ", 1)[1].split(" - ")[0]
        if baseline_sd is None:
            base = data[(t == t.min()) & data[view.arm].astype(str).isin([a, view.reference])]
            groups = [g[y].to_numpy() for _, g in base.groupby(view.arm, observed=True)]
            groups = [g for g in groups if len(g)]
            num = sum((len(g) - 1) * np.var(g, ddof=1) for g in groups)
            den = sum(len(g) for g in groups) - len(groups)
            if den <= 0:
                raise ModelSpecificationError(
                    "too few rows at the first wave for a baseline SD; give baseline_sd="
                )
            sd = float(np.sqrt(num / den))
            kind = (f"raw SD of {y!r} at {view.time}={t.min():g}, pooled within arms "
                    f"{a!r} and {view.reference!r}")
        else:
            sd = float(baseline_sd)
            kind = "given (baseline_sd=)"
        if not np.isfinite(sd) or sd <= 0:
            raise ModelSpecificationError(f"the standardising SD must be positive, got {sd!r}")
        k = dur / sd
        rows.append({"contrast": r["contrast"], "d": r["estimate"] * k,
                     "conf_low": r["conf_low"] * k, "conf_high": r["conf_high"] * k,
                     "slope_difference": r["estimate"], "duration": dur, "baseline_sd": sd,
                     "sd_kind": kind, "sd_level": sd_level if baseline_sd is None else "given"})
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
        raise OptionError(f"method must be 'holm' or 'bh', got {method!r}")
    p = np.asarray(pvalues, dtype=float)
    if p.size == 0:
        return p
    if np.any((p < 0) | (p > 1)) or np.any(np.isnan(p)):
        raise OptionError(f"p values must be in [0, 1]; got {p.tolist()}")
    return multipletests(p, method=methods[method])[1]
