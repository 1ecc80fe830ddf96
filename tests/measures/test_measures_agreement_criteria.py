"""agreement() without a scale range (bh1996 vs multilevel::ICC1/ICC2) and the agreement
criteria of a measure's aggregation rule (schema, defaults, JSON round trips)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import coevidence as cv
from coevidence.exceptions import MeasureError
from coevidence.measures.agreement import RWG_NEEDS_RANGE, agreement
from coevidence.measures.registry import get_measure
from coevidence.schemas.measure import AggregationRule, AgreementCriteria, MeasureDefinition

from _measures_helpers import load_reference, read_data

BH = load_reference("icc_bh1996_reference.json")


@pytest.fixture(scope="module")
def bh1996() -> pd.DataFrame:
    return read_data("bh1996.csv")


@pytest.mark.parametrize("entry", BH, ids=[e["variable"] for e in BH])
def test_icc_matches_multilevel_without_a_scale_range(entry, bh1996):
    frame = bh1996[[entry["group"], entry["variable"]]]
    a = agreement(frame, unit=entry["group"])  # a plain frame: no measure, no range
    assert a.icc1 == pytest.approx(entry["icc1"], abs=1e-12)
    assert a.icc2 == pytest.approx(entry["icc2"], abs=1e-12)
    assert a.f_value == pytest.approx(entry["f_value"], rel=1e-10)
    assert a.f_p_value == pytest.approx(entry["f_p_value"], rel=1e-6)
    assert (a.f_df1, a.f_df2) == (entry["df_between"], entry["df_within"])
    assert a.n_obs == entry["n_obs"] and len(a.per_unit) == entry["n_groups"]
    # r_wg(j) needs the response range: NaN, with a note, instead of an error
    assert a.per_unit["rwg_j"].isna().all() and np.isnan(a.null_variance)
    assert a.note == RWG_NEEDS_RANGE and "scale_range" in a.note
    crit = a.criteria.set_index("criterion")
    assert crit.loc["median_rwg_j", "met"] is pd.NA
    assert crit.loc["median_rwg_j", "note"] == RWG_NEEDS_RANGE
    assert bool(crit.loc["icc1", "met"]) and bool(crit.loc["f_test_p_value", "met"])
    assert not a.aggregation_supported  # r_wg(j) could not be assessed
    assert "Note: r_wg(j) needs the response scale range" in a.summary()
    # the same through items= on the whole frame
    b = agreement(bh1996, unit=entry["group"], items=[entry["variable"]])
    assert b.icc1 == a.icc1 and b.icc2 == a.icc2


def test_range_given_fills_rwg_and_clears_the_note(bh1996):
    d = pd.DataFrame({"org_id": [1, 1, 1, 2, 2, 2], "a": [4, 4, 5, 2, 1, 2]})
    with_range = agreement(d, unit="org_id", scale_range=(1, 5))
    assert with_range.note == "" and with_range.per_unit["rwg_j"].notna().all()
    assert (with_range.criteria["note"] == "").all()
    nv = agreement(d, unit="org_id", null_variance=2.0)
    assert nv.note == "" and nv.rwg_j.tolist() == with_range.rwg_j.tolist()


def test_thresholds_default_to_the_measures_criteria():
    d = read_data("sim_org.csv")
    base = MeasureDefinition(id="m", response_min=1, response_max=5,
                             items=tuple(f"i{j}" for j in range(1, 7)))
    plain = agreement(d, unit="org_id", measure=base)
    assert plain.criteria["threshold"].tolist() == [0.0, 0.05, 0.70, 0.70]
    assert plain.criteria["criterion"].tolist() == ["icc1", "f_test_p_value", "icc2",
                                                    "median_rwg_j"]
    strict = base.model_copy(update={"aggregation": AggregationRule(
        agreement={"icc2_min": 0.99, "rwg_min": None})})
    s = agreement(d, unit="org_id", measure=strict)
    assert s.criteria["criterion"].tolist() == ["icc1", "f_test_p_value", "icc2"]
    assert s.icc2_threshold == 0.99 and not s.aggregation_supported
    # an explicit argument wins over the measure
    assert agreement(d, unit="org_id", measure=strict, icc2_threshold=0.1).aggregation_supported
    assert agreement(d, unit="org_id", scale_range=(1, 5), icc1_threshold=0.9
                     ).criteria.set_index("criterion").loc["icc1", "met"] == False  # noqa: E712


def test_no_within_variance_and_no_variance_at_all():
    d = pd.DataFrame({"g": [1, 1, 2, 2], "x": [1.0, 1.0, 3.0, 3.0]})
    a = agreement(d, unit="g", scale_range=(1, 5))
    assert (a.icc1, a.icc2, a.f_value, a.f_p_value) == (1.0, 1.0, np.inf, 0.0)
    flat = agreement(d.assign(x=2.0), unit="g", scale_range=(1, 5))
    assert np.isnan(flat.icc1) and not flat.aggregation_supported
    crit = flat.criteria.set_index("criterion")
    assert crit.loc["icc1", "met"] is pd.NA and "do not vary" in crit.loc["icc1", "note"]


def test_errors_name_the_table_column_and_value():
    d = pd.DataFrame({"g": [1, 2, 3], "x": [1.0, 2.0, 3.0]})
    with pytest.raises(MeasureError, match="at least 2 respondents") as info:
        agreement(d, unit="g")
    assert info.value.failures.loc[0, "column"] == "g"
    with pytest.raises(MeasureError, match="must be a pandas DataFrame"):
        agreement([1, 2], unit="g")  # type: ignore[arg-type]
    with pytest.raises(MeasureError, match=r"scale_range must be \(min, max\)"):
        agreement(d, unit="g", scale_range=(5, 1))
    with pytest.raises(MeasureError, match="table 'scores'.*column 'x'.*must be numeric"):
        agreement(d.assign(x="a"), unit="g")


# ----------------------------------------------------------------- the schema


def test_criteria_defaults_and_sources_documented():
    c = AgreementCriteria()
    assert (c.icc1_min, c.f_alpha, c.icc2_min, c.rwg_min) == (0.0, 0.05, 0.70, 0.70)
    doc = AgreementCriteria.__doc__ or ""
    for source in ("Bliese 2000", "James, Demaree & Wolf 1984", "LeBreton & Senter"):
        assert source in doc
    assert AggregationRule().agreement == c and not AggregationRule().check_agreement


@pytest.mark.parametrize("bad, match", [
    ({"rwg_min": 1.5}, "less than or equal to 1"),
    ({"f_alpha": 0}, "greater than 0"),
    ({"icc2_min": -2}, "greater than or equal to -1"),
    ({"extra": 1}, "Extra inputs"),
])
def test_criteria_validation(bad, match):
    with pytest.raises(ValidationError, match=match):
        AgreementCriteria(**bad)


def test_check_needs_an_aggregating_method():
    with pytest.raises(ValidationError, match="check_agreement needs an aggregation method"):
        AggregationRule(method="none", check_agreement=True)


def test_old_definitions_without_criteria_still_load():
    old = {"method": "mean", "min_respondents": 2, "check_agreement": True}
    rule = AggregationRule.model_validate_json(json.dumps(old))
    assert rule.agreement == AgreementCriteria()


def test_builtin_oric_requires_the_check_with_the_default_criteria():
    oric = get_measure("oric")
    assert oric.aggregation.check_agreement
    assert oric.aggregation.agreement == AgreementCriteria()
    assert oric.aggregation.min_respondents == 2
    others = [m for m in cv.list_measures()["id"] if m != "oric"]
    assert not any(get_measure(m).aggregation.check_agreement for m in others
                   if get_measure(m).level != "document")


threshold = st.one_of(st.none(), st.floats(0, 1, allow_nan=False))


@settings(max_examples=60, deadline=None)
@given(icc1=st.one_of(st.none(), st.floats(-1, 0.99, allow_nan=False)),
       alpha=st.one_of(st.none(), st.floats(1e-6, 0.5, allow_nan=False)),
       icc2=threshold, rwg=threshold, method=st.sampled_from(["mean", "median"]),
       n=st.integers(1, 50), check=st.booleans())
def test_json_round_trip(icc1, alpha, icc2, rwg, method, n, check):
    rule = AggregationRule(method=method, min_respondents=n, check_agreement=check,
                           agreement={"icc1_min": icc1, "f_alpha": alpha, "icc2_min": icc2,
                                      "rwg_min": rwg})
    assert AggregationRule.model_validate_json(rule.model_dump_json()) == rule
    m = MeasureDefinition(id="m", response_min=1, response_max=5, items=("a",), aggregation=rule)
    assert MeasureDefinition.model_validate_json(m.model_dump_json()) == m
    assert MeasureDefinition.model_validate(json.loads(m.model_dump_json())) == m
