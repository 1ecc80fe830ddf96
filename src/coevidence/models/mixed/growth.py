"""``fit_growth``: the domain front door for multilevel growth models of a study panel.

Builds the lme4 formula from the panel contract (one row per unit x wave: ``time``,
``ta_model``, ids, ``years_since_start``/``years_since_end``) and fits it with
:func:`~coevidence.models.mixed.api.fit_mixed`.

Examples
--------
>>> import coevidence as cv
>>> from coevidence.models.mixed.growth import growth_formula
>>> growth_formula("research_use", levels=["provider_id", "org_id"])
'research_use ~ time * ta_model + (1 + time | org_id) + (1 | provider_id)'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from coevidence.exceptions import ModelSpecificationError
from coevidence.results.mixed import MixedResult

__all__ = ["GrowthSpec", "fit_growth", "growth_formula"]

TIME_CODINGS = ("linear", "categorical", "piecewise")
#: piecewise time columns added to a copy of the panel
PIECES = ("pre_years", "ta_years", "post_years")


@dataclass(frozen=True)
class GrowthSpec:
    """How a growth model was specified (kept on the result as ``result.growth``).

    Examples
    --------
    >>> spec = GrowthSpec("y", "time", "ta_model", "push", ("org_id",), True, "piecewise", (),
    ...                   ("push", "co_creation"))
    >>> spec.slope_terms
    ('pre_years', 'ta_years', 'post_years')
    """

    outcome: str
    time: str
    arm: str
    reference: str
    levels: tuple[str, ...]
    random_slope: bool | str
    time_coding: str
    covariates: tuple[str, ...]
    arms: tuple[str, ...]
    frame: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    @property
    def slope_terms(self) -> tuple[str, ...]:
        """The time variable(s) whose slope differs by arm."""
        if self.time_coding == "piecewise":
            return PIECES
        return (self.time,)


def growth_formula(
    outcome: str,
    time: str = "time",
    arm: str = "ta_model",
    levels: Sequence[str] = ("provider_id", "org_id"),
    random_slope: bool | str = True,
    time_coding: str = "linear",
    covariates: Sequence[str] | str | None = None,
) -> str:
    """The lme4 formula :func:`fit_growth` fits.

    ``levels`` go from the top (e.g. TA provider) to the unit measured repeatedly (e.g.
    organisation); the random slope, if any, is at the last level. ``random_slope="uncorrelated"``
    gives ``(1 | unit) + (0 + time | unit)`` (which statsmodels can fit with a provider level).

    Examples
    --------
    >>> growth_formula("y", levels=["org_id"], time_coding="categorical", random_slope=False)
    'y ~ time_f * ta_model + (1 | org_id)'
    """
    if time_coding not in TIME_CODINGS:
        raise ValueError(f"time_coding must be one of {TIME_CODINGS}, got {time_coding!r}")
    levels = list(levels)
    if not levels:
        raise ModelSpecificationError("levels must name at least one grouping column")
    if time_coding == "linear":
        fixed, slope = f"{time} * {arm}", time
    elif time_coding == "categorical":
        fixed, slope = f"{time}_f * {arm}", time
    else:
        fixed, slope = f"({' + '.join(PIECES)}) * {arm}", "ta_years"
    if isinstance(covariates, str):
        fixed += f" + {covariates}"
    elif covariates:
        fixed += "".join(f" + {c}" for c in covariates)
    unit = levels[-1]
    if random_slope is True or random_slope == "correlated":
        rand = [f"(1 + {slope} | {unit})"]
    elif random_slope == "uncorrelated":
        rand = [f"(1 | {unit})", f"(0 + {slope} | {unit})"]
    elif random_slope is False:
        rand = [f"(1 | {unit})"]
    else:
        raise ValueError(
            f"random_slope must be True, False or 'uncorrelated', got {random_slope!r}"
        )
    rand += [f"(1 | {g})" for g in reversed(levels[:-1])]
    return f"{outcome} ~ {fixed} + " + " + ".join(rand)


def fit_growth(
    panel: pd.DataFrame,
    outcome: str,
    time: str = "time",
    arm: str = "ta_model",
    reference: str = "push",
    levels: Sequence[str] = ("provider_id", "org_id"),
    random_slope: bool | str = True,
    time_coding: str = "linear",
    covariates: Sequence[str] | str | None = None,
    **fit_kwargs,
) -> MixedResult:
    """Fit a multilevel growth model comparing TA models over time.

    Parameters
    ----------
    panel : DataFrame
        ``study.panel(...)``: one row per unit x wave (not modified).
    outcome : str
        Outcome column (a measure id such as ``"research_use"``).
    time : str, default "time"
        Wave position (0, 1, 2, ...); used linearly or as a factor (``time_coding``).
    arm : str, default "ta_model"
        Treatment column; arms with no rows are dropped from its levels.
    reference : str, default "push"
        Reference arm (the contrasts are other arms minus this one).
    levels : sequence of str
        Grouping columns from the top down, e.g. ``["provider_id", "org_id"]``.
    random_slope : bool or "uncorrelated", default True
        Random slope of time for the last level (correlated with its intercept).
    time_coding : {"linear", "categorical", "piecewise"}
        ``piecewise`` has separate slopes before TA (``pre_years``: years_since_start when
        negative), during TA (``ta_years``) and after it (``post_years`` = years_since_end).
    covariates : list of str or a formula fragment, optional
    **fit_kwargs
        Passed to :func:`~coevidence.models.mixed.api.fit_mixed` (``reml``, ``engine``,
        ``df_method``, ``cov_type``, ``cluster``, ``conf_level``).

    Returns
    -------
    MixedResult
        With ``result.growth`` describing the specification (used by :func:`contrast`).

    Examples
    --------
    >>> import coevidence as cv
    >>> panel = cv.load_example_study().panel(unit="organization")  # doctest: +SKIP
    >>> res = cv.fit_growth(panel, "research_use")  # doctest: +SKIP
    """
    from coevidence.models.mixed.api import fit_mixed

    if not isinstance(panel, pd.DataFrame):
        raise TypeError(f"panel must be a pandas DataFrame, got {type(panel).__name__}")
    needed = [outcome, time, arm, *levels]
    if time_coding == "piecewise":
        needed += ["years_since_start", "years_since_end"]
    missing = [c for c in needed if c not in panel.columns]
    if missing:
        raise ModelSpecificationError(
            f"panel has no column(s) {missing}; it has {list(panel.columns)}"
        )
    data = panel.copy()
    present = pd.unique(data[arm].dropna().astype(str))
    if reference not in present:
        raise ModelSpecificationError(
            f"reference arm {reference!r} has no rows in column {arm!r}; arms present: "
            f"{sorted(present)}"
        )
    others = sorted(a for a in present if a != reference)
    if isinstance(data[arm].dtype, pd.CategoricalDtype):
        order = [str(c) for c in data[arm].cat.categories if str(c) in present]
        others = [a for a in order if a != reference]
    if not others:
        raise ModelSpecificationError(f"column {arm!r} has only the reference arm {reference!r}")
    arms = (reference, *others)
    data[arm] = pd.Categorical(data[arm].astype("string").astype(object), categories=list(arms))
    if time_coding == "categorical":
        values = sorted(data[time].dropna().unique())
        labels = [time_label(v) for v in values]
        data[f"{time}_f"] = pd.Categorical(data[time].map(time_label), categories=labels)
    if time_coding == "piecewise":
        ys, ye = data["years_since_start"].to_numpy(float), data["years_since_end"].to_numpy(float)
        data["pre_years"] = np.minimum(ys, 0.0)
        data["post_years"] = ye
        data["ta_years"] = np.maximum(ys, 0.0) - ye
    formula = growth_formula(outcome, time, arm, levels, random_slope, time_coding, covariates)
    res = fit_mixed(formula, data, **fit_kwargs)
    covs = (covariates,) if isinstance(covariates, str) else tuple(covariates or ())
    spec = GrowthSpec(
        outcome=outcome, time=time, arm=arm, reference=reference, levels=tuple(levels),
        random_slope=random_slope, time_coding=time_coding, covariates=covs, arms=arms,
        frame=_growth_frame(data, res, outcome, time, arm, time_coding),
    )
    return res.with_growth(spec)


def time_label(value) -> str:
    """Level label of a wave in categorical time coding, as R prints ``factor(time)``.

    Examples
    --------
    >>> time_label(4.0), time_label(0.5)
    ('4', '0.5')
    """
    if pd.isna(value):
        return value
    v = float(value)
    return str(int(v)) if v.is_integer() else repr(v)


def _growth_frame(data, res, outcome, time, arm, time_coding) -> pd.DataFrame:
    """Outcome, arm, time (and pieces) of the rows used in the fit."""
    cols = [outcome, arm, time] + (list(PIECES) if time_coding == "piecewise" else [])
    rows = res.data.index
    return data.loc[rows, list(dict.fromkeys(cols))].copy()
