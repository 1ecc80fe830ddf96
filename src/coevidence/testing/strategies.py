"""Hypothesis strategies for measure definitions and item responses (extra ``testing``).

Examples
--------
>>> from hypothesis import given, settings
>>> from coevidence.testing.strategies import measure_definitions, wide_responses
>>> @settings(max_examples=5, deadline=None)
... @given(measure_definitions().flatmap(lambda m: wide_responses(m)))
... def test_shape(frame):
...     assert "respondent_id" in frame.columns
>>> test_shape()
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from coevidence.exceptions import MissingExtraError
from coevidence.schemas.measure import MeasureDefinition

try:
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("hypothesis", "testing", "use coevidence.testing.strategies") from exc

__all__ = ["measure_definitions", "response_values", "wide_responses"]


def response_values(measure: MeasureDefinition, *, allow_missing: bool = True) -> Any:
    """One valid response (or NaN when ``allow_missing``).

    Examples
    --------
    >>> from coevidence.measures.registry import get_measure
    >>> strategy = response_values(get_measure("ebpas15"), allow_missing=False)
    """
    lo, hi = measure.response_min, measure.response_max
    if measure.discrete:
        base = st.integers(int(np.ceil(lo)), int(np.floor(hi))).map(float)
    else:
        base = st.floats(lo, hi, allow_nan=False, allow_infinity=False)
    return st.one_of(base, st.just(float("nan"))) if allow_missing else base


def wide_responses(
    measure: MeasureDefinition,
    *,
    min_units: int = 1,
    max_units: int = 15,
    allow_missing: bool = True,
) -> Any:
    """Wide frames: ``respondent_id`` (0..n-1) and one column per item of ``measure``.

    Examples
    --------
    >>> from coevidence.measures.registry import get_measure
    >>> strategy = wide_responses(get_measure("oric"), max_units=5)
    """
    k = len(measure.items)
    row = st.lists(response_values(measure, allow_missing=allow_missing), min_size=k, max_size=k)

    def build(rows: list[list[float]]) -> pd.DataFrame:
        frame = pd.DataFrame(np.array(rows, dtype=float).reshape(len(rows), k),
                             columns=list(measure.items))
        frame.insert(0, "respondent_id", np.arange(len(rows)))
        return frame

    return st.lists(row, min_size=min_units, max_size=max_units).map(build)


@st.composite
def measure_definitions(draw: Any, max_items: int = 8) -> MeasureDefinition:
    """Random valid definitions: sum/mean/weighted/difference rules, reverse keys, subscales.

    Examples
    --------
    >>> strategy = measure_definitions(max_items=5)
    """
    k = draw(st.integers(2, max_items))
    items = tuple(f"q{i}" for i in range(k))
    lo = draw(st.integers(-1, 1))
    hi = lo + draw(st.integers(1, 10))
    rule = draw(st.sampled_from(["sum", "mean", "weighted", "difference_sum"]))
    reverse = tuple(i for i in items if draw(st.booleans()))
    min_answered = draw(st.one_of(st.none(), st.integers(1, k)))
    prorate = draw(st.booleans())
    if rule == "difference_sum":
        pairs = [(items[i], items[i + 1]) for i in range(0, k - 1, 2)]
        subs = [{"id": "total", "pairs": pairs}]
        min_answered = None if min_answered is None else min(min_answered, len(pairs))
    elif rule == "weighted":
        w = draw(st.lists(st.floats(0.1, 5), min_size=k, max_size=k))
        subs = [{"id": "total", "items": items, "weights": dict(zip(items, w, strict=True))}]
    else:
        cut = draw(st.integers(1, k - 1))
        subs = [{"id": "first", "items": items[:cut]}, {"id": "second", "items": items[cut:]},
                {"id": "total", "scoring": "composite", "components": ["first", "second"]}]
    return MeasureDefinition.model_validate({
        "id": "generated", "response_min": lo, "response_max": hi, "items": items,
        "reverse_items": reverse, "scoring": rule, "subscales": subs,
        "missing": {"min_answered": min_answered, "prorate": prorate},
    })
