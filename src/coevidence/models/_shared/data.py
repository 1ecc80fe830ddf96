"""Validation of long panel frames given by column names (shared by the panel-family fitters).

Users pass a long frame and column names; nothing here asks for a MultiIndex. Every problem is
collected and raised together as :class:`~coevidence.exceptions.StudyValidationError`, naming the
table, the 0-based row position, the column and the offending value.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from coevidence.exceptions import (
    MissingDataWarning,
    ModelSpecificationError,
    StudyValidationError,
)

__all__ = [
    "TABLE",
    "check_columns",
    "check_finite",
    "check_identifiers",
    "check_outcome_variation",
    "drop_missing",
]

#: Table name used in error messages.
TABLE = "panel"


def _failure(row: object, column: object, value: object, rule: str) -> dict[str, object]:
    return {"table": TABLE, "row": row, "column": column, "value": value, "rule": rule}


def check_columns(
    panel: pd.DataFrame, columns: Sequence[str | None], numeric: Sequence[str] = ()
) -> None:
    """Raise if a named column is absent, or a column in ``numeric`` is not numeric/boolean."""
    if not isinstance(panel, pd.DataFrame):
        raise TypeError(f"panel must be a pandas DataFrame, got {type(panel).__name__}")
    failures = []
    for col in dict.fromkeys(c for c in columns if c is not None):
        if col not in panel.columns:
            failures.append(_failure(None, col, None, "column not found in the panel"))
    for col in dict.fromkeys(numeric):
        if col in panel.columns and not (
            pd.api.types.is_numeric_dtype(panel[col]) or pd.api.types.is_bool_dtype(panel[col])
        ):
            failures.append(
                _failure(None, col, str(panel[col].dtype), "column must be numeric (or boolean)")
            )
    if failures:
        raise StudyValidationError(pd.DataFrame(failures), what="the panel's columns")


def check_identifiers(panel: pd.DataFrame, unit: str, time: str) -> None:
    """Raise if a unit or time identifier is missing, or a unit x time pair occurs twice.

    Rows are reported by 0-based position in ``panel``.
    """
    failures = []
    pos = np.arange(len(panel))
    for col in (unit, time):
        bad = pos[panel[col].isna().to_numpy()]
        for r in bad:
            failures.append(_failure(int(r), col, None, f"missing identifier in {col!r}"))
    ok = ~(panel[unit].isna() | panel[time].isna()).to_numpy()
    sub = panel.loc[ok, [unit, time]]
    dup = sub.duplicated(keep=False).to_numpy()
    if dup.any():
        rows = pos[ok][dup]
        for r in rows:
            failures.append(
                _failure(
                    int(r),
                    f"{unit}, {time}",
                    f"({panel[unit].iloc[r]!r}, {panel[time].iloc[r]!r})",
                    f"duplicated {unit} x {time} pair: a panel needs one row per unit and time",
                )
            )
    if failures:
        raise StudyValidationError(pd.DataFrame(failures), what="the panel's identifiers")


def drop_missing(
    panel: pd.DataFrame, columns: Sequence[str], what: str
) -> tuple[pd.DataFrame, int]:
    """Return ``panel`` without rows missing any of ``columns`` and the number dropped.

    Warns with :class:`~coevidence.exceptions.MissingDataWarning` (giving the count and the
    columns) when rows are dropped; never drops silently. Raises
    :class:`~coevidence.exceptions.StudyValidationError` for infinite values (see
    :func:`check_finite`) and :class:`~coevidence.exceptions.ModelSpecificationError` when a
    column is missing in every row.
    """
    cols = list(dict.fromkeys(columns))
    check_finite(panel, cols)
    empty = [c for c in cols if len(panel) and bool(panel[c].isna().all())]
    if empty:
        raise ModelSpecificationError(
            f"{what}: column(s) {empty} are missing (NaN) in every one of the {len(panel)} rows"
        )
    miss = panel[cols].isna().any(axis=1).to_numpy()
    n = int(miss.sum())
    if n:
        per = {c: int(panel[c].isna().sum()) for c in cols if panel[c].isna().any()}
        warnings.warn(
            f"{what}: dropped {n} of {len(panel)} rows with missing values "
            f"(missing per column: {per})",
            MissingDataWarning,
            stacklevel=3,
        )
        return panel.loc[~miss], n
    return panel, 0


def check_finite(panel: pd.DataFrame, columns: Sequence[str], max_rows: int = 20) -> None:
    """Raise :class:`~coevidence.exceptions.StudyValidationError` if a numeric column holds inf.

    The error names each column, its count of ``inf``/``-inf`` values and (up to ``max_rows``
    per column) the 0-based row positions and values. Missing values (NaN) are not flagged here.
    """
    failures = []
    counts = {}
    for col in dict.fromkeys(columns):
        if col not in panel.columns or not pd.api.types.is_numeric_dtype(panel[col]):
            continue
        if pd.api.types.is_bool_dtype(panel[col]):
            continue
        vals = panel[col].to_numpy(dtype=float, na_value=np.nan)
        bad = np.flatnonzero(np.isinf(vals))
        if len(bad):
            counts[col] = len(bad)
            for r in bad[:max_rows]:
                failures.append(
                    _failure(
                        int(r),
                        col,
                        float(vals[r]),
                        f"infinite value ({len(bad)} in {col!r}; first rows "
                        f"{[int(b) for b in bad[:5]]})",
                    )
                )
    if failures:
        detail = ", ".join(f"{c!r}: {n} infinite" for c, n in counts.items())
        raise StudyValidationError(pd.DataFrame(failures), what=f"the panel's values ({detail})")


def check_outcome_variation(data: pd.DataFrame, outcome: str, what: str) -> None:
    """Raise :class:`~coevidence.exceptions.ModelSpecificationError` for a constant outcome.

    A zero-variance outcome (on the complete rows used) leaves nothing to estimate: every
    coefficient is 0 with a standard error of 0 (or NaN), so fits refuse it.
    """
    y = data[outcome].to_numpy(dtype=float)
    if len(y) and np.ptp(y) == 0:
        raise ModelSpecificationError(
            f"{what}: outcome {outcome!r} has no variation (it is {y[0]:g} in all {len(y)} rows "
            "used); standard errors and tests would be 0 or NaN"
        )


#: Column that carries weights given as values (not as a column name) into a model frame.
WEIGHT_COLUMN = "__coevidence_weights__"


def weights_column(frame: pd.DataFrame, weights, column: str = WEIGHT_COLUMN
                   ) -> tuple[pd.DataFrame, str | None]:
    """``(frame, column)``: the frame (a new one when the weights are given as values) and the
    name of its weights column; ``(frame, None)`` without weights.

    Examples
    --------
    >>> import pandas as pd
    >>> f, col = weights_column(pd.DataFrame({"a": [1, 2]}), [0.5, 2.0])
    >>> f[col].tolist()
    [0.5, 2.0]
    """
    from coevidence.exceptions import OptionError

    if weights is None:
        return frame, None
    if isinstance(weights, str):
        if weights not in frame.columns:
            raise OptionError(f"weights={weights!r} is not a column of the panel")
        return frame, weights
    if isinstance(weights, pd.Series):
        if not weights.index.equals(frame.index):
            raise OptionError("weights given as a Series must have the panel's index")
        values = weights.to_numpy(dtype=float)
    else:
        values = np.asarray(weights, dtype=float)
    if values.shape != (len(frame),):
        raise OptionError(f"weights has {values.size} values for the panel's {len(frame)} rows")
    return frame.assign(**{column: values}), column
