"""Declared column specs for observation tables, checked by vectorised rules.

Observation tables (item responses, scores) can hold millions of rows, so they are never turned
into one pydantic object per row. A :class:`FrameSpec` declares the columns; :meth:`FrameSpec.check`
coerces a *copy* of the input to canonical dtypes and returns every problem found at once as a
failures frame (table, row, column, value, rule).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from coevidence.exceptions import FAILURE_COLUMNS

__all__ = ["Column", "FrameSpec", "empty_failures", "failures_frame"]

Kind = Literal["string", "integer", "number", "date", "boolean"]

_TRUE = {"true", "t", "yes", "y", "1", "1.0"}
_FALSE = {"false", "f", "no", "n", "0", "0.0"}


def empty_failures() -> pd.DataFrame:
    """A failures frame with no rows."""
    return pd.DataFrame({c: pd.Series(dtype=object) for c in FAILURE_COLUMNS})


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
        vals = list(values)
    else:
        vals = [values] * n
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
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"table {self.table!r} must be a pandas DataFrame, got {type(frame).__name__}")
        out = frame.reset_index(drop=True)  # a new object; the input is never modified
        problems: list[pd.DataFrame] = []
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
                keys = out.loc[dup, list(self.key)].astype(str).agg("|".join, axis=1).to_numpy()
                problems.append(
                    failures_frame(
                        self.table, pos, ",".join(self.key), keys,
                        f"duplicate key ({', '.join(self.key)})",
                    )
                )
        failures = pd.concat(problems, ignore_index=True) if problems else empty_failures()
        return out, failures


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
            num = pd.to_numeric(s, errors="coerce")
            bad_type = ~isna_in & num.isna().to_numpy()
        if bad_type.any():
            pos = np.flatnonzero(bad_type)
            fails.append(failures_frame(table, pos, col.name, s.to_numpy()[pos], "not a number"))
        vals = num.to_numpy(dtype=float, na_value=np.nan)
        if col.kind == "integer":
            frac = ~np.isnan(vals) & (vals != np.round(vals))
            if frac.any():
                pos = np.flatnonzero(frac)
                fails.append(failures_frame(table, pos, col.name, s.to_numpy()[pos], "not a whole number"))
                vals = np.where(frac, np.nan, vals)
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
        out = pd.to_datetime(s, errors="coerce", format="mixed") if s.dtype == object or s.dtype == "str" \
            else pd.to_datetime(s, errors="coerce")
        out = out.astype("datetime64[ns]")
        bad = ~isna_in & out.isna().to_numpy()
        if bad.any():
            pos = np.flatnonzero(bad)
            fails.append(failures_frame(table, pos, col.name, s.to_numpy()[pos], "not a date"))
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
