"""Row-by-row validation of metadata tables with the pydantic records (errors → failures)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ValidationError

from coevidence.data.frames import empty_failures, failures_frame

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
        raise TypeError(f"table {table!r} must be a pandas DataFrame, got {type(frame).__name__}")
    rows = frame.astype(object).to_dict("records")
    unknown = [c for c in frame.columns if c not in model.model_fields]
    problems: list[pd.DataFrame] = []
    if unknown:
        problems.append(
            failures_frame(table, [None] * len(unknown), None, unknown, "unknown column")
        )
        problems[-1]["column"] = unknown
    records: list[BaseModel | None] = []
    known = set(model.model_fields)
    for pos, raw in enumerate(rows):
        data = _row_dict({k: v for k, v in raw.items() if k in known})
        try:
            records.append(model.model_validate(data))
        except ValidationError as exc:
            records.append(None)
            for err in exc.errors(include_url=False):
                col = _column_for(model, err)
                value = raw.get(col) if col is not None else None
                problems.append(
                    failures_frame(table, [pos], col, [_clean(value)], str(err["msg"]))
                )
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
    for col in date_fields(model):
        if col in frame.columns:
            frame[col] = pd.to_datetime(frame[col]).astype("datetime64[ns]")
    return frame
