"""Row-by-row validation of metadata tables with the pydantic records (errors → failures)."""

from __future__ import annotations

import functools
import re
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ValidationError

from coevidence.data.frames import (
    RANGE_RULE,
    TZ_RULE,
    _clean_columns,
    _one_date,
    empty_failures,
    failures_frame,
)

__all__ = ["records_to_frame", "validate_rows"]

_LIST_FIELDS = {"provider_ids"}


def _clean(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    if value is pd.NaT or (isinstance(value, np.datetime64) and np.isnat(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.date() if value == value.normalize() else value.to_pydatetime()
    if isinstance(value, np.generic):
        return value.item()
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value


def _row_dict(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in row.items():
        value = _clean(value)
        if value is None or (isinstance(value, str) and value == "" and key not in ("name",)):
            continue  # absent: the record's default applies (or "Field required")
        if key in _LIST_FIELDS and isinstance(value, str):
            value = tuple(v.strip() for v in value.split(";") if v.strip())
        out[key] = value
    return out


def _pre_check(row: dict[str, Any], dates: set[str], floats: set[str],
               numbers: set[str]) -> dict[str, tuple[Any, str]]:
    """Problems the records would let through or crash on: non-finite numbers, dates that have
    a time zone or fall outside the range a study can hold."""
    out: dict[str, tuple[Any, str]] = {}
    for key, value in row.items():
        if key in numbers and isinstance(value, (bool, np.bool_)):
            out[key] = (bool(value), "not a number (true/false)")
        elif key in floats and isinstance(value, (float, np.floating)) and np.isinf(value):
            out[key] = (float(value), "not a finite number")
        elif key in floats and isinstance(value, str):
            try:
                if np.isinf(float(value)):
                    out[key] = (value, "not a finite number")
            except ValueError:
                pass
        elif key in dates and value is not None and not _is_missing(value):
            if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
                continue  # pydantic reports it
            _, rule = _one_date(value)
            if rule in (TZ_RULE, RANGE_RULE):
                out[key] = (_clean_or_same(value), rule)
    return out


def _is_missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _clean_or_same(value: Any) -> Any:
    try:
        return _clean(value)
    except Exception:  # noqa: BLE001 - e.g. an out-of-range Timestamp
        return str(value)


def _column_for(model: type[BaseModel], err: dict[str, Any]) -> str | None:
    loc = err.get("loc") or ()
    if loc and isinstance(loc[0], str):
        return loc[0]
    # a model-level rule: name the field its message mentions first
    msg = str(err.get("msg", ""))
    hits = [(m.start(), f) for f in model.model_fields for m in [re.search(rf"\b{f}\b", msg)] if m]
    return min(hits)[1] if hits else None


def validate_rows(
    table: str, frame: pd.DataFrame, model: type[BaseModel]
) -> tuple[list[BaseModel | None], pd.DataFrame]:
    """Validate each row of ``frame`` as ``model``.

    Returns the records (``None`` where a row failed) and the failures frame; ``row`` in the
    failures is the 0-based position in ``frame``.
    """
    if not isinstance(frame, pd.DataFrame):
        return [], failures_frame(table, [None], None, [type(frame).__name__],
                                  "the table must be a pandas DataFrame")
    frame, problems = _clean_columns(table, frame.reset_index(drop=True))
    rows = frame.astype(object).to_dict("records")
    unknown = [c for c in frame.columns if isinstance(c, str) and c not in model.model_fields]
    if unknown:
        problems.append(
            failures_frame(table, [None] * len(unknown), None, unknown, "unknown column")
        )
        problems[-1]["column"] = unknown
    missing = [name for name, f in model.model_fields.items()
               if f.is_required() and name not in frame.columns]
    for name in missing:
        problems.append(failures_frame(table, [None], name, [None], "required column is missing"))
    records: list[BaseModel | None] = []
    known = set(model.model_fields)
    dates, floats, numbers = _field_kinds(model)
    for pos, raw in enumerate(rows):
        own = {k: v for k, v in raw.items() if k in known}
        pre = _pre_check(own, dates, floats, numbers)
        data = _row_dict({k: v for k, v in own.items() if k not in pre})
        for col, (value, rule) in pre.items():
            problems.append(failures_frame(table, [pos], col, [value], rule))
        try:
            rec = model.model_validate(data)
        except ValidationError as exc:
            rec = None
            for err in exc.errors(include_url=False):
                col = _column_for(model, err)
                if col in pre or (col in missing and err.get("type") == "missing"):
                    continue  # reported above (once for the table, or as the real problem)
                value = raw.get(col) if col is not None else None
                problems.append(
                    failures_frame(table, [pos], col, [_clean(value)], str(err["msg"]))
                )
        records.append(None if pre else rec)
    failures = pd.concat(problems, ignore_index=True) if problems else empty_failures()
    return records, failures


def date_fields(model: type[BaseModel]) -> list[str]:
    """Names of the fields of ``model`` that hold dates."""
    return [name for name, f in model.model_fields.items() if "datetime.date" in repr(f.annotation)]


def records_to_frame(
    records: list[BaseModel], model: type[BaseModel], columns: list[str] | None = None
) -> pd.DataFrame:
    """Flatten records into a frame (enums as strings, lists joined with ``;``, dates parsed)."""
    columns = list(model.model_fields) if columns is None else columns
    data = []
    for rec in records:
        row = rec.model_dump(mode="json")
        for key in _LIST_FIELDS & row.keys():
            row[key] = ";".join(row[key])
        data.append(row)
    frame = pd.DataFrame(data, columns=columns)
    for col in _date_fields(model):
        if col in frame.columns:
            # the records dump dates as ISO 8601 text: no format guessing needed
            frame[col] = pd.to_datetime(frame[col], format="ISO8601").astype("datetime64[ns]")
    return frame


@functools.cache
def _field_kinds(model: type[BaseModel]) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(date, float, number) fields of ``model`` (cached: the models do not change)."""
    dates = set(date_fields(model))
    floats = {name for name, f in model.model_fields.items() if "float" in repr(f.annotation)}
    numbers = floats | {name for name, f in model.model_fields.items()
                        if repr(f.annotation) in ("<class 'int'>", "int | None",
                                                  "typing.Optional[int]")}
    return frozenset(dates), frozenset(floats), frozenset(numbers)


@functools.cache
def _date_fields(model: type[BaseModel]) -> tuple[str, ...]:
    return tuple(date_fields(model))
