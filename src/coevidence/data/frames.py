"""Declared column specs for observation tables, checked by vectorised rules.

Observation tables (item responses, scores) can hold millions of rows, so they are never turned
into one pydantic object per row. A :class:`FrameSpec` declares the columns; :meth:`FrameSpec.check`
coerces a *copy* of the input to canonical dtypes and returns every problem found at once as a
failures frame (table, row, column, value, rule).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from coevidence.exceptions import FAILURE_COLUMNS

__all__ = ["Column", "FrameSpec", "empty_failures", "failures_frame", "snippet"]

Kind = Literal["string", "integer", "number", "date", "boolean"]

_TRUE = {"true", "t", "yes", "y", "1", "1.0"}
_FALSE = {"false", "f", "no", "n", "0", "0.0"}


_EMPTY_FAILURES = pd.DataFrame({c: pd.Series(dtype=object) for c in FAILURE_COLUMNS})


def empty_failures() -> pd.DataFrame:
    """A failures frame with no rows."""
    return _EMPTY_FAILURES.copy()


#: Longest text of a value a failure shows (a bounded snippet, never a whole file's contents).
SNIPPET_CHARS = 60


def snippet(value: object) -> object:
    """``value`` as a failure shows it: scalars as they are, long text and containers cut short."""
    if value is None or isinstance(value, (bool, int, float, np.number, np.bool_, pd.Timestamp)):
        return value
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value[: SNIPPET_CHARS * 4]).decode("utf-8", "replace")
    if isinstance(value, str):
        return value if len(value) <= SNIPPET_CHARS else value[: SNIPPET_CHARS - 3] + "..."
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a value whose repr fails is shown by its type
        text = f"<{type(value).__name__}>"
    if isinstance(value, (list, tuple, dict, set)) or len(text) > SNIPPET_CHARS:
        return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 3] + "..."
    return value


def failures_frame(
    table: str,
    rows: Sequence[object] | np.ndarray,
    column: str | None,
    values: Sequence[object] | np.ndarray | object,
    rule: str,
) -> pd.DataFrame:
    """Build a failures frame for many rows breaking one rule."""
    rows = list(rows)
    n = len(rows)
    if isinstance(values, (list, tuple, np.ndarray, pd.Series, pd.Index)):
        vals = [snippet(v) for v in values]
    else:
        vals = [snippet(values)] * n
    return pd.DataFrame(
        {
            "table": [table] * n,
            "row": rows,
            "column": [column] * n,
            "value": vals,
            "rule": [rule] * n,
        },
        columns=list(FAILURE_COLUMNS),
    )


@dataclass(frozen=True)
class Column:
    """One declared column.

    Parameters
    ----------
    name : str
        Column name (snake_case).
    kind : {"string", "integer", "number", "date", "boolean"}
        Logical type; values are coerced to it (``str``, nullable ``Int64``, ``float64``,
        ``datetime64``, nullable ``boolean``).
    required : bool
        The column must be present.
    nullable : bool
        Missing values are allowed.
    minimum, maximum : float, optional
        Inclusive bounds for numbers.
    choices : tuple of str, optional
        Allowed values for strings.
    description : str
        What the column holds (used in the docs and in data package table schemas).
    """

    name: str
    kind: Kind
    required: bool = True
    nullable: bool = False
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    description: str = ""

    def frictionless(self) -> dict[str, object]:
        """This column as a Frictionless Table Schema field descriptor."""
        ftype = {"string": "string", "integer": "integer", "number": "number",
                 "date": "date", "boolean": "boolean"}[self.kind]
        constraints: dict[str, object] = {}
        if not self.nullable:
            constraints["required"] = True
        if self.minimum is not None:
            constraints["minimum"] = self.minimum
        if self.maximum is not None:
            constraints["maximum"] = self.maximum
        if self.choices is not None:
            constraints["enum"] = list(self.choices)
        out: dict[str, object] = {"name": self.name, "type": ftype}
        if self.description:
            out["description"] = self.description
        if constraints:
            out["constraints"] = constraints
        return out


@dataclass(frozen=True)
class FrameSpec:
    """A table's declared columns and unique key.

    Examples
    --------
    >>> spec = FrameSpec("scores", (Column("unit_id", "string"), Column("value", "number",
    ...                  minimum=0)), key=("unit_id",))
    >>> frame, failures = spec.check(pd.DataFrame({"unit_id": ["a", "a"], "value": [1, -1]}))
    >>> sorted(failures["rule"])
    ['below minimum 0', 'duplicate key (unit_id)']
    """

    table: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    allow_extra: bool = True
    _by_name: dict[str, Column] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {c.name: c for c in self.columns})

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        return self._by_name[name]

    def frictionless_schema(self) -> dict[str, object]:
        """The Frictionless Table Schema for this table."""
        schema: dict[str, object] = {"fields": [c.frictionless() for c in self.columns]}
        if self.key:
            schema["primaryKey"] = list(self.key)
        return schema

    def empty(self) -> pd.DataFrame:
        """An empty, correctly typed frame with the declared columns."""
        frame, _ = self.check(pd.DataFrame({c.name: pd.Series(dtype=object) for c in self.columns}))
        return frame

    def check(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Coerce a copy of ``frame`` and collect every failure.

        Returns
        -------
        coerced : pandas.DataFrame
            Same rows in the same order (positional index), declared columns coerced; extra
            columns kept as they are.
        failures : pandas.DataFrame
            One row per problem (table, row, column, value, rule); ``row`` is the 0-based
            position in the input.
        """
        problems: list[pd.DataFrame] = []
        if not isinstance(frame, pd.DataFrame):
            problems.append(failures_frame(self.table, [None], None, [type(frame).__name__],
                                           "the table must be a pandas DataFrame"))
            return self.empty(), pd.concat(problems, ignore_index=True)
        out = frame.reset_index(drop=True)  # a new object; the input is never modified
        out, problems = _clean_columns(self.table, out)
        missing = [c.name for c in self.columns if c.required and c.name not in out.columns]
        for name in missing:
            problems.append(failures_frame(self.table, [None], name, [None], "required column is missing"))
        extra = [c for c in out.columns if c not in self._by_name]
        if extra and not self.allow_extra:
            for name in extra:
                problems.append(failures_frame(self.table, [None], name, [None], "unknown column"))
        new_cols: dict[str, pd.Series] = {}
        for col in self.columns:
            if col.name not in out.columns:
                continue
            coerced, fails = _coerce(self.table, col, out[col.name])
            new_cols[col.name] = coerced
            problems.extend(fails)
        if new_cols:
            out = out.assign(**new_cols)
        if self.key and all(k in out.columns for k in self.key):
            dup = out.duplicated(list(self.key), keep="first").to_numpy()
            if dup.any():
                pos = np.flatnonzero(dup)
                keys = np.array(["|".join("" if pd.isna(v) else str(v) for v in row)
                                 for row in out.loc[dup, list(self.key)].itertuples(index=False)],
                                dtype=object)
                problems.append(
                    failures_frame(
                        self.table, pos, ",".join(self.key), keys,
                        f"duplicate key ({', '.join(self.key)})",
                    )
                )
        if missing:  # already reported; typed empty columns let the cross-record rules run
            dtypes = {"string": object, "integer": "Int64", "number": "float64",
                      "date": "datetime64[ns]", "boolean": "boolean"}
            out = out.assign(**{name: pd.Series([None] * len(out), index=out.index,
                                                dtype=object).astype(dtypes[self.column(name).kind])
                                for name in missing})
        failures = pd.concat(problems, ignore_index=True) if problems else empty_failures()
        return out, failures


def _as_float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return np.nan


#: The dates a study can hold (those of ``datetime64[ns]``).
DATE_MIN, DATE_MAX = pd.Timestamp.min.ceil("D"), pd.Timestamp.max.floor("D")
TZ_RULE = "date has a time zone (give the local date, without a time zone)"
RANGE_RULE = (f"date out of range (must be between {DATE_MIN:%Y-%m-%d} and {DATE_MAX:%Y-%m-%d})")


def _one_date(value: object) -> tuple[object, str | None]:
    """Parse one value as a naive date: (Timestamp or NaT, the rule it broke or None)."""
    import datetime as _dt

    if isinstance(value, (_dt.datetime, pd.Timestamp)) and value.tzinfo is not None:
        return pd.NaT, TZ_RULE
    if isinstance(value, _dt.date) and not isinstance(value, _dt.datetime):
        if not DATE_MIN.date() <= value <= DATE_MAX.date():
            return pd.NaT, RANGE_RULE
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (str, _dt.date, np.datetime64, pd.Timestamp)):
        return pd.NaT, "not a date"
    try:
        ts = pd.Timestamp(value)
    except (OverflowError, pd.errors.OutOfBoundsDatetime):
        return pd.NaT, RANGE_RULE
    except (TypeError, ValueError):
        if isinstance(value, str):
            try:  # out of nanosecond range, but a real date?
                _dt.date.fromisoformat(value.strip()[:10])
                return pd.NaT, RANGE_RULE
            except ValueError:
                pass
        return pd.NaT, "not a date"
    if ts is pd.NaT or pd.isna(ts):
        return pd.NaT, "not a date"
    if ts.tzinfo is not None:
        return pd.NaT, TZ_RULE
    try:
        ts = ts.as_unit("ns")
    except (OverflowError, pd.errors.OutOfBoundsDatetime, ValueError):
        return pd.NaT, RANGE_RULE
    return ts, None


def _to_dates(s: pd.Series, isna_in: np.ndarray) -> tuple[pd.Series, dict[str, np.ndarray]]:
    """Coerce to ``datetime64[ns]``; values that fail are NaT, returned by rule."""
    out: pd.Series | None = None
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        out = None  # every value has a time zone: reported one by one below
    elif pd.api.types.is_datetime64_dtype(s.dtype):
        try:
            out = s.astype("datetime64[ns]")
        except (OverflowError, pd.errors.OutOfBoundsDatetime, ValueError, TypeError):
            out = None
    elif pd.api.types.is_numeric_dtype(s.dtype) or s.dtype == bool:
        out = None
    else:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                parsed = pd.to_datetime(s, errors="coerce", format="mixed")
            if not isinstance(parsed.dtype, pd.DatetimeTZDtype):
                out = parsed.astype("datetime64[ns]")
        except (OverflowError, pd.errors.OutOfBoundsDatetime, ValueError, TypeError):
            out = None
    if out is not None:
        bad = ~isna_in & out.isna().to_numpy()
        if not bad.any():
            return out, {}
        todo = np.flatnonzero(bad)
        values = out.to_numpy().copy()
    else:
        todo = np.flatnonzero(~isna_in)
        values = np.full(len(s), np.datetime64("NaT"), dtype="datetime64[ns]")
    raw = s.to_numpy(dtype=object) if not isinstance(s.dtype, pd.DatetimeTZDtype) else s.array
    by_rule: dict[str, list[int]] = {}
    for pos in todo:
        ts, rule = _one_date(raw[pos])
        if rule is None:
            values[pos] = np.datetime64(ts.to_datetime64(), "ns")  # type: ignore[union-attr]
        else:
            by_rule.setdefault(rule, []).append(int(pos))
    result = pd.Series(values, index=s.index, dtype="datetime64[ns]")
    return result, {rule: np.array(pos, dtype=int) for rule, pos in by_rule.items()}


def _clean_columns(table: str, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """Report duplicated and non-text column names; keep the first of duplicated columns."""
    problems: list[pd.DataFrame] = []
    if isinstance(frame.columns, pd.MultiIndex):
        problems.append(failures_frame(table, [None], None, [snippet(list(frame.columns[:3]))],
                                       "column names must be one row of text (not a MultiIndex)"))
        frame = frame.set_axis([" ".join(map(str, c)) for c in frame.columns], axis=1)
    cols = list(frame.columns)
    for pos, name in enumerate(cols):
        if not isinstance(name, str):
            problems.append(failures_frame(table, [None], None, [snippet(name)],
                                           "column name is not text"))
    dup = pd.Index(cols).duplicated(keep="first")
    if dup.any():
        for name in dict.fromkeys(c for c, d in zip(cols, dup, strict=True) if d):
            problems.append(failures_frame(table, [None], str(name), [None], "duplicated column"))
        frame = frame.loc[:, ~dup]
    return frame, problems


def _coerce(table: str, col: Column, s: pd.Series) -> tuple[pd.Series, list[pd.DataFrame]]:
    fails: list[pd.DataFrame] = []
    isna_in = s.isna().to_numpy()
    if col.kind == "string":
        out = s.astype("str")
        out = out.where(~isna_in, np.nan)
        if col.choices is not None:
            bad = ~isna_in & ~out.isin(col.choices).to_numpy()
            if bad.any():
                pos = np.flatnonzero(bad)
                fails.append(failures_frame(table, pos, col.name, s.to_numpy()[pos],
                                            f"not one of {list(col.choices)}"))
    elif col.kind in ("integer", "number"):
        if s.dtype == bool or str(s.dtype) == "boolean":
            num = pd.Series(np.full(len(s), np.nan), index=s.index)
            bad_type = ~isna_in
        else:
            src = s
            if s.dtype == object:  # True is not the number 1; a list is not a number
                odd = s.map(lambda v: isinstance(v, (bool, np.bool_, list, dict, tuple, set)))
                src = s.mask(odd.to_numpy(dtype=bool), "not a number")
            num = pd.to_numeric(src, errors="coerce")
            bad_type = ~isna_in & num.isna().to_numpy()
        if bad_type.any():
            pos = np.flatnonzero(bad_type)
            fails.append(failures_frame(table, pos, col.name, s.to_numpy()[pos], "not a number"))
        try:
            vals = num.to_numpy(dtype=float, na_value=np.nan)
        except (TypeError, ValueError):  # e.g. a complex number
            vals = np.array([_as_float(v) for v in num], dtype=float)
            odd = ~isna_in & ~bad_type & np.isnan(vals)
            if odd.any():
                pos = np.flatnonzero(odd)
                fails.append(failures_frame(table, pos, col.name, s.to_numpy()[pos], "not a number"))
        nonfinite = np.isinf(vals)
        if nonfinite.any():
            pos = np.flatnonzero(nonfinite)
            fails.append(failures_frame(table, pos, col.name, s.to_numpy()[pos],
                                        "not a finite number"))
            vals = np.where(nonfinite, np.nan, vals)
        if col.kind == "integer":
            with np.errstate(invalid="ignore"):
                frac = ~np.isnan(vals) & (vals != np.round(vals))
                huge = ~np.isnan(vals) & ~frac & (np.abs(vals) >= 2.0**53)
            if frac.any():
                pos = np.flatnonzero(frac)
                fails.append(failures_frame(table, pos, col.name, s.to_numpy()[pos], "not a whole number"))
            if huge.any():
                pos = np.flatnonzero(huge)
                fails.append(failures_frame(table, pos, col.name, s.to_numpy()[pos],
                                            "whole number too large"))
            vals = np.where(frac | huge, np.nan, vals)
            out = pd.Series(pd.array(np.where(np.isnan(vals), 0, vals).astype("int64"), dtype="Int64"),
                            index=s.index)
            out = out.mask(np.isnan(vals))
        else:
            out = pd.Series(vals, index=s.index, dtype="float64")
        with np.errstate(invalid="ignore"):
            if col.minimum is not None:
                low = vals < col.minimum
                if low.any():
                    pos = np.flatnonzero(low)
                    fails.append(failures_frame(table, pos, col.name, s.to_numpy()[pos],
                                                f"below minimum {col.minimum:g}"))
            if col.maximum is not None:
                high = vals > col.maximum
                if high.any():
                    pos = np.flatnonzero(high)
                    fails.append(failures_frame(table, pos, col.name, s.to_numpy()[pos],
                                                f"above maximum {col.maximum:g}"))
    elif col.kind == "date":
        out, date_fails = _to_dates(s, isna_in)
        for rule, pos in date_fails.items():
            fails.append(failures_frame(table, pos, col.name, s.to_numpy()[pos], rule))
    elif col.kind == "boolean":
        if s.dtype == bool:
            out = s.astype("boolean")
        else:
            text = s.astype("str").str.strip().str.lower()
            true = text.isin(_TRUE).to_numpy()
            false = text.isin(_FALSE).to_numpy()
            bad = ~isna_in & ~true & ~false
            if bad.any():
                pos = np.flatnonzero(bad)
                fails.append(failures_frame(table, pos, col.name, s.to_numpy()[pos], "not true/false"))
            out = pd.Series(pd.array(true, dtype="boolean"), index=s.index).mask(isna_in | bad)
    else:  # pragma: no cover - guarded by the Kind literal
        raise ValueError(col.kind)
    if not col.nullable:
        nulls = isna_in
        if nulls.any():
            pos = np.flatnonzero(nulls)
            fails.append(failures_frame(table, pos, col.name, [None] * len(pos), "missing value"))
    return out, fails
