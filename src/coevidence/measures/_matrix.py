"""Validate item responses and lay them out as a units x items float matrix (vectorised).

Every bad cell is collected (never only the first): unknown item codes, wrong types, values
outside the response range, non-whole values on a discrete scale, missing key values and
duplicated (unit, wave, item) cells. The caller raises one :class:`MeasureError` with them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from coevidence.schemas.measure import MeasureDefinition

__all__ = ["ResponseMatrix", "build_long", "build_wide"]

_TABLE = "responses"


@dataclass(frozen=True)
class ResponseMatrix:
    """Validated responses: ``keys`` (one row per unit/wave) aligned with ``values``."""

    keys: pd.DataFrame
    values: np.ndarray  # float, units x measure.items, NaN = unanswered
    failures: pd.DataFrame
    items_absent: tuple[str, ...]  # measure items nobody answered


def _fail(rows: np.ndarray, column: str, values: Sequence[object], rule: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "table": _TABLE,
            "row": np.asarray(rows, dtype=object),
            "column": column,
            "value": list(values),
            "rule": rule,
        }
    )


def _numeric(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Float values and a mask of cells with a wrong (non-numeric) type."""
    if pd.api.types.is_bool_dtype(col.dtype):
        return np.full(len(col), np.nan), col.notna().to_numpy()
    if pd.api.types.is_numeric_dtype(col.dtype):
        return col.to_numpy(dtype=float, na_value=np.nan), np.zeros(len(col), dtype=bool)
    if isinstance(col.dtype, pd.CategoricalDtype) or not pd.api.types.is_object_dtype(col.dtype):
        # strings, categories, datetimes: every non-missing value has the wrong type
        return np.full(len(col), np.nan), col.notna().to_numpy()
    numeric = (int, float, np.integer, np.floating)
    ok = col.map(
        lambda v: v is None or (isinstance(v, numeric) and not isinstance(v, (bool, np.bool_)))
    ).to_numpy(dtype=bool)
    vals = pd.to_numeric(col.where(ok), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    wrong = ~ok & col.notna().to_numpy()
    return vals, wrong


def _value_failures(
    vals: np.ndarray,
    wrong: np.ndarray,
    raw: pd.Series,
    rows: np.ndarray,
    column: str,
    measure: MeasureDefinition,
) -> list[pd.DataFrame]:
    out = []
    if wrong.any():
        out.append(
            _fail(rows[wrong], column, raw.to_numpy()[wrong],
                  "wrong type: responses must be numbers")
        )
    lo, hi = measure.response_min, measure.response_max
    with np.errstate(invalid="ignore"):
        bad_range = (vals < lo) | (vals > hi) | np.isinf(vals)
    if bad_range.any():
        out.append(
            _fail(
                rows[bad_range],
                column,
                vals[bad_range],
                f"out of range: {measure.id!r} responses must lie in [{lo:g}, {hi:g}]",
            )
        )
    if measure.discrete:
        with np.errstate(invalid="ignore"):
            frac = np.isfinite(vals) & (vals != np.round(vals)) & ~bad_range
        if frac.any():
            out.append(
                _fail(rows[frac], column, vals[frac],
                      f"{measure.id!r} responses must be whole numbers")
            )
    return out


def _key_failures(frame: pd.DataFrame, keys: Sequence[str], rows: np.ndarray) -> list[pd.DataFrame]:
    out = []
    for k in keys:
        miss = frame[k].isna().to_numpy()
        if miss.any():
            out.append(_fail(rows[miss], k, [None] * int(miss.sum()), "missing identifier"))
    return out


def _factorize_keys(frame: pd.DataFrame, keys: Sequence[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """Integer unit codes (0..n-1, in sorted key order) and the unique key frame."""
    combined = np.zeros(len(frame), dtype=np.int64)
    for k in keys:
        try:
            codes, uniques = pd.factorize(frame[k], sort=True, use_na_sentinel=True)
        except TypeError:  # mixed, unorderable ids: keep first-seen order
            codes, uniques = pd.factorize(frame[k], sort=False, use_na_sentinel=True)
        combined = combined * (len(uniques) + 1) + (codes + 1)
    ucodes, inverse = np.unique(combined, return_inverse=True)
    first = np.zeros(len(ucodes), dtype=np.int64)
    first[inverse[::-1]] = np.arange(len(frame))[::-1]  # first occurrence of each unit
    key_frame = frame[list(keys)].iloc[first].reset_index(drop=True)
    return inverse.astype(np.int64), key_frame


def build_long(
    frame: pd.DataFrame,
    measure: MeasureDefinition,
    keys: Sequence[str],
    item: str,
    value: str,
    rows: np.ndarray | None = None,
) -> ResponseMatrix:
    """Validate a long table (one row per unit x wave x item) and pivot it to a matrix."""
    rows = np.arange(len(frame)) if rows is None else rows
    failures = _key_failures(frame, keys, rows)
    items = list(measure.items)
    # factorize first (fast on any dtype), then map the few distinct codes to item positions
    codes, uniq = pd.factorize(frame[item], use_na_sentinel=True)
    lookup = pd.Index(items, dtype=object).get_indexer(pd.Index(np.asarray(uniq, dtype=object)))
    lookup = np.append(lookup, -1).astype(np.int64)  # code -1 (missing item) -> unknown
    icodes = lookup[codes]
    unknown = icodes < 0
    if unknown.any():
        failures.append(
            _fail(
                rows[unknown],
                item,
                frame[item].to_numpy()[unknown],
                f"unknown item code for measure {measure.id!r}",
            )
        )
    vals, wrong = _numeric(frame[value])
    failures += _value_failures(vals, wrong, frame[value], rows, value, measure)
    units, key_frame = _factorize_keys(frame, keys)
    k = len(items)
    ok = ~unknown
    flat = units[ok] * k + icodes[ok]
    order = np.argsort(flat, kind="stable")
    sflat = flat[order]
    dup_sorted = np.zeros(len(sflat), dtype=bool)
    if len(sflat) > 1:
        same = sflat[1:] == sflat[:-1]
        dup_sorted[1:] |= same
        dup_sorted[:-1] |= same
    if dup_sorted.any():
        pos = np.flatnonzero(ok)[order[dup_sorted]]
        pos.sort()
        failures.append(
            _fail(
                rows[pos],
                item,
                frame[item].to_numpy()[pos],
                f"duplicated cell: more than one response for the same {'/'.join(keys)} and item",
            )
        )
    matrix = np.full((len(key_frame), k), np.nan)
    matrix[units[ok], icodes[ok]] = vals[ok]
    present = np.bincount(icodes[ok & ~np.isnan(vals)], minlength=k) > 0
    absent = tuple(i for i, p in zip(items, present, strict=True) if not p)
    fail = pd.concat(failures, ignore_index=True) if failures else _fail(np.array([]), "", [], "")
    return ResponseMatrix(key_frame, matrix, fail, absent)


def build_wide(
    frame: pd.DataFrame, measure: MeasureDefinition, keys: Sequence[str]
) -> ResponseMatrix:
    """Validate a wide table (one row per unit x wave, one column per item code)."""
    rows = np.arange(len(frame))
    failures = _key_failures(frame, keys, rows)
    items = list(measure.items)
    extra = [c for c in frame.columns if c not in items and c not in keys]
    for c in extra:
        failures.append(
            _fail(
                np.array([None]),
                str(c),
                [None],
                f"unknown item code for measure {measure.id!r} (pass identifier columns as keep=)",
            )
        )
    matrix = np.full((len(frame), len(items)), np.nan)
    for j, code in enumerate(items):
        if code not in frame.columns:
            continue
        vals, wrong = _numeric(frame[code])
        failures += _value_failures(vals, wrong, frame[code], rows, code, measure)
        matrix[:, j] = vals
    if keys:
        dup = frame.duplicated(subset=list(keys), keep=False).to_numpy()
        if dup.any():
            failures.append(
                _fail(rows[dup], keys[0], frame[keys[0]].to_numpy()[dup],
                      f"duplicated row: more than one row for the same {'/'.join(keys)}")
            )
    absent = tuple(i for j, i in enumerate(items) if np.isnan(matrix[:, j]).all())
    key_frame = frame[list(keys)].reset_index(drop=True)
    if keys:
        try:
            order = key_frame.sort_values(list(keys), kind="stable").index.to_numpy()
        except TypeError:  # mixed, unorderable ids: keep input order
            order = np.arange(len(key_frame))
        key_frame = key_frame.iloc[order].reset_index(drop=True)
        matrix = matrix[order]
    fail = pd.concat(failures, ignore_index=True) if failures else _fail(np.array([]), "", [], "")
    return ResponseMatrix(key_frame, matrix, fail, absent)
