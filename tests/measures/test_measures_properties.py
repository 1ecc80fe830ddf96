"""Hypothesis properties of scoring and reliability."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from strategies import item_matrices, measure_definitions, wide_responses

from coevidence.measures._rules import reverse_key
from coevidence.measures.reliability import reliability
from coevidence.measures.scoring import score

pytestmark = pytest.mark.usefixtures("quiet")
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@SETTINGS
@given(
    lo=st.integers(-5, 5), width=st.integers(1, 20),
    data=st.data(),
)
def test_reverse_keying_twice_is_identity(lo, width, data):
    hi = lo + width
    vals = data.draw(st.lists(st.one_of(st.integers(lo, hi).map(float), st.just(np.nan)),
                              min_size=1, max_size=30))
    x = np.array(vals)
    once = reverse_key(x, lo, hi)
    assert np.all((np.isnan(x)) | ((once >= lo) & (once <= hi)))
    np.testing.assert_array_equal(reverse_key(once, lo, hi), x)


@SETTINGS
@given(items=item_matrices(), data=st.data())
def test_alpha_invariant_to_item_and_row_order(items, data):
    assume(items.var().min() > 0 and items.sum(axis=1).var() > 0)
    cols = data.draw(st.permutations(list(items.columns)))
    rows = data.draw(st.permutations(list(range(len(items)))))
    base = reliability(items)
    moved = reliability(items.iloc[rows][cols])
    assert moved.alpha == pytest.approx(base.alpha, abs=1e-9)
    lo, hi = moved.alpha_ci
    assert (lo, hi) == pytest.approx(base.alpha_ci, abs=1e-9)
    stats_a = base.item_stats.set_index("item").sort_index()
    stats_b = moved.item_stats.set_index("item").sort_index()
    np.testing.assert_allclose(stats_a["alpha_if_deleted"], stats_b["alpha_if_deleted"],
                               atol=1e-9)


@SETTINGS
@given(data=st.data())
def test_scoring_invariant_to_row_order(data):
    m = data.draw(measure_definitions())
    frame = data.draw(wide_responses(m, min_units=1, max_units=12))
    order = data.draw(st.permutations(list(range(len(frame)))))
    a = score(frame, m).scores
    b = score(frame.iloc[order], m).scores
    pd.testing.assert_frame_equal(a, b)
    long = frame.melt(id_vars="respondent_id", var_name="item", value_name="value")
    c = score(long.iloc[::-1], m).scores
    pd.testing.assert_frame_equal(a, c, check_dtype=False)


@SETTINGS
@given(data=st.data())
def test_missing_item_rule_is_monotone(data):
    m = data.draw(measure_definitions())
    frame = data.draw(wide_responses(m, min_units=1, max_units=12))
    k = len(m.items)
    hide = np.array(data.draw(st.lists(st.booleans(), min_size=k * len(frame),
                                       max_size=k * len(frame)))).reshape(len(frame), k)
    fewer = frame.copy()
    fewer[list(m.items)] = fewer[list(m.items)].mask(hide)
    a = score(frame, m)
    b = score(fewer, m)
    for s in m.scales():
        # hiding answers never creates a score, and never increases the items answered
        assert not (a.scores[s.id].isna() & b.scores[s.id].notna()).any()
    la = a.long().set_index(["respondent_id", "scale"])["n_items_answered"]
    lb = b.long().set_index(["respondent_id", "scale"])["n_items_answered"]
    assert (lb <= la).all()
    ra, rb = a.report.set_index("scale"), b.report.set_index("scale")
    assert (rb["n_scored"] <= ra["n_scored"]).all()


@SETTINGS
@given(data=st.data())
def test_complete_scores_within_theoretical_range_and_sum_is_k_times_mean(data):
    m = data.draw(measure_definitions())
    frame = data.draw(wide_responses(m, allow_missing=False))
    r = score(frame, m)
    for s in m.scales():
        lo, hi = m.scale_range(s.id)
        v = r.scores[s.id]
        assert v.notna().all()
        assert ((v >= lo - 1e-9) & (v <= hi + 1e-9)).all()
    if m.scoring.value in ("sum", "mean"):
        as_sum = type(m).model_validate({**m.model_dump(), "scoring": "sum"})
        as_mean = type(m).model_validate({**m.model_dump(), "scoring": "mean"})
        first = m.subscales[0]
        np.testing.assert_allclose(score(frame, as_sum).scores[first.id],
                                   score(frame, as_mean).scores[first.id] * len(first.items))
