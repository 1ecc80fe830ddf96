r"""Within/between decomposition of time-varying predictors (unit means and deviations).

A predictor that changes over waves, such as cumulative TA minutes, mixes two associations: how
units that differ in their *average* value differ in the outcome (between) and how a unit's
outcome moves when its own value moves (within). A regression on the raw column estimates a
blend of the two, and in a TA study the blend is confounded with the design: cumulative dose
rises with time and faster in the more intensive arm, so it is the arm x time effect in
disguise. Splitting the predictor into its unit mean and the deviation from it (Mundlak 1978;
Bell & Jones 2015) separates the two; the within part, with arm x time in the model, is the
within-organisation dose association (see the docs page *Dose without confounding*).

For a column :math:`x` and units :math:`j` (one level):

.. math::

    x_{ij} = \underbrace{\bar x_j}_{\text{between}}
             + \underbrace{(x_{ij} - \bar x_j)}_{\text{within}}

and with nested levels (e.g. organisations in providers, ``unit=["provider_id", "org_id"]``),
the provider mean, the organisation mean's deviation from it and the row's deviation from the
organisation mean. Means are over the non-missing values of the unit (row weighted).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from coevidence.exceptions import StudyValidationError

__all__ = ["within_between"]


def _fail(failures: list[dict[str, object]], table: str, column: object, value: object,
          rule: str) -> None:
    failures.append({"table": table, "row": None, "column": column, "value": value,
                     "rule": rule})


def within_between(
    frame: pd.DataFrame,
    columns: str | Sequence[str],
    unit: str | Sequence[str] = "org_id",
    *,
    suffixes: tuple[str, str] = ("_between", "_within"),
    center: Literal["none", "grand"] = "none",
    counts: bool = True,
) -> pd.DataFrame:
    """Split time-varying columns into unit means (between) and deviations from them (within).

    Parameters
    ----------
    frame : pandas.DataFrame
        Long data, one row per unit x wave (e.g. ``study.panel()``). Never modified; no row is
        dropped or reordered.
    columns : str or sequence of str
        Numeric columns to decompose (e.g. ``"cum_minutes"``).
    unit : str or sequence of str, default "org_id"
        The unit column, or nested unit columns from the outermost level in
        (``["provider_id", "org_id"]``: organisations within providers).
    suffixes : (str, str), default ("_between", "_within")
        Appended to each column name. With one unit level the new columns are
        ``<column>_between`` (the unit mean) and ``<column>_within`` (the row's deviation from
        it). With nested levels there is one between column per level,
        ``<column>_between_<level>``: the outermost level's mean, then each inner level's mean
        minus the mean of the level around it; ``<column>_within`` is the row's deviation from
        the innermost unit's mean.
    center : {"none", "grand"}, default "none"
        ``"grand"`` subtracts the grand mean (over every non-missing value) from the outermost
        between column, so it is centred at 0; the parts then add up to the column minus the
        grand mean.
    counts : bool, default True
        Add ``<column>_n`` (one level) or ``<column>_n_<level>`` (nested levels): the number
        of non-missing values each unit mean is computed from.

    Returns
    -------
    pandas.DataFrame
        A copy of ``frame`` with the new columns appended, same index and row order. Missing
        values: a row whose value is missing gets its unit's mean as between part and a
        missing within part; a unit with no value at all gets missing parts (and count 0).
        Where the value is present, between + within == the value (up to rounding) and the
        within part sums to 0 within each unit.

    Raises
    ------
    StudyValidationError
        Naming the table, column and value: a missing or non-numeric column, a missing unit
        column or unit id, an inner unit that is not nested in one outer unit, a new column
        that already exists, or a bad ``suffixes`` or ``center``.

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"org_id": ["a", "a", "b", "b"], "dose": [0.0, 100.0, 0.0, None]})
    >>> within_between(d, "dose")
      org_id   dose  dose_between  dose_within  dose_n
    0      a    0.0          50.0        -50.0       2
    1      a  100.0          50.0         50.0       2
    2      b    0.0           0.0          0.0       1
    3      b    NaN           0.0          NaN       1

    Nested levels, organisations within providers, with a grand-mean-centred provider part:

    >>> d = pd.DataFrame({"provider_id": ["p", "p", "p", "p"], "org_id": ["a", "a", "b", "b"],
    ...                   "dose": [0.0, 100.0, 200.0, 300.0]})
    >>> out = within_between(d, "dose", unit=["provider_id", "org_id"], counts=False)
    >>> out[["dose_between_provider_id", "dose_between_org_id", "dose_within"]]
       dose_between_provider_id  dose_between_org_id  dose_within
    0                     150.0               -100.0        -50.0
    1                     150.0               -100.0         50.0
    2                     150.0                100.0        -50.0
    3                     150.0                100.0         50.0
    """
    failures: list[dict[str, object]] = []
    if not isinstance(frame, pd.DataFrame):
        _fail(failures, "frame", None, type(frame).__name__, "must be a pandas DataFrame")
        raise StudyValidationError(pd.DataFrame(failures), what="the input of within_between")
    cols = [columns] if isinstance(columns, str) else list(columns)
    levels = [unit] if isinstance(unit, str) else list(unit)
    if not cols:
        _fail(failures, "arguments", "columns", None, "give at least one column to decompose")
    if not levels:
        _fail(failures, "arguments", "unit", None, "give at least one unit column")
    if len(set(cols)) != len(cols):
        _fail(failures, "arguments", "columns", str(cols), "columns are repeated")
    if len(set(levels)) != len(levels):
        _fail(failures, "arguments", "unit", str(levels), "unit columns are repeated")
    if (not isinstance(suffixes, tuple | list) or len(suffixes) != 2
            or not all(isinstance(x, str) and x for x in suffixes) or suffixes[0] == suffixes[1]):
        _fail(failures, "arguments", "suffixes", repr(suffixes),
              "must be two different non-empty strings")
    if center not in ("none", "grand"):
        _fail(failures, "arguments", "center", repr(center), "must be 'none' or 'grand'")
    for c in levels:
        if c not in frame.columns:
            _fail(failures, "frame", c, None, "unit column is missing")
        elif frame[c].isna().any():
            rows = np.flatnonzero(frame[c].isna().to_numpy())
            failures.extend({"table": "frame", "row": int(r), "column": c, "value": None,
                             "rule": "unit id is missing"} for r in rows)
    for c in cols:
        if c in levels:
            _fail(failures, "frame", c, None, "is a unit column; it cannot be decomposed")
        elif c not in frame.columns:
            _fail(failures, "frame", c, None, "column is missing")
        elif not pd.api.types.is_numeric_dtype(frame[c].dtype):
            _fail(failures, "frame", c, str(frame[c].dtype), "must be numeric")
    if failures:
        raise StudyValidationError(pd.DataFrame(failures), what="the input of within_between")
    # inner levels must be nested: each inner id inside exactly one outer unit
    for outer, inner in zip(levels, levels[1:], strict=False):
        n_outer = frame.groupby(inner, sort=False)[outer].nunique()
        for ident in n_outer.index[n_outer > 1]:
            _fail(failures, "frame", inner, ident, f"appears in more than one {outer!r}; "
                  f"{inner!r} must be nested in {outer!r}")
    b_suffix, w_suffix = suffixes[0], suffixes[1]
    single = len(levels) == 1

    def between_name(c: str, lv: str) -> str:
        return f"{c}{b_suffix}" if single else f"{c}{b_suffix}_{lv}"

    def count_name(c: str, lv: str) -> str:
        return f"{c}_n" if single else f"{c}_n_{lv}"

    order: list[str] = []
    for c in cols:
        order += [between_name(c, lv) for lv in levels] + [f"{c}{w_suffix}"]
        if counts:
            order += [count_name(c, lv) for lv in levels]
    for name in dict.fromkeys(order):
        if name in frame.columns:
            _fail(failures, "frame", name, None,
                  "already exists; choose other suffixes or drop the column")
    if len(set(order)) != len(order):
        dup = sorted({n for n in order if order.count(n) > 1})
        _fail(failures, "arguments", "columns", str(dup), "the new column names collide")
    if failures:
        raise StudyValidationError(pd.DataFrame(failures), what="the input of within_between")

    # group codes per level (each level's groups are the cells of it and the levels around it)
    codes = [frame.groupby(levels[: k + 1], sort=False, observed=True).ngroup().to_numpy()
             for k in range(len(levels))]
    new: dict[str, np.ndarray] = {}
    for c in cols:
        x = frame[c].to_numpy(dtype=float, na_value=np.nan)
        present = ~np.isnan(x)
        means = []
        for k, lv in enumerate(levels):
            n = np.bincount(codes[k], weights=present.astype(float))
            total = np.bincount(codes[k], weights=np.where(present, x, 0.0))
            with np.errstate(invalid="ignore", divide="ignore"):
                means.append((total / n)[codes[k]])
            if counts:
                new[count_name(c, lv)] = n[codes[k]].astype("int64")
        grand = float(x[present].mean()) if center == "grand" and present.any() else 0.0
        for k, lv in enumerate(levels):
            new[between_name(c, lv)] = means[0] - grand if k == 0 else means[k] - means[k - 1]
        new[f"{c}{w_suffix}"] = x - means[-1]
    added = pd.DataFrame({name: new[name] for name in order}, index=frame.index)
    return pd.concat([frame, added], axis=1)
