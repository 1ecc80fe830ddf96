"""within_between(): unit means and deviations of time-varying predictors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import panels

import coevidence as cv
from coevidence.data.decompose import within_between
from coevidence.exceptions import StudyValidationError


def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "provider_id": ["p", "p", "p", "p", "q", "q"],
        "org_id": ["a", "a", "b", "b", "c", "c"],
        "wave": [1, 2, 1, 2, 1, 2],
        "dose": [0.0, 100.0, 200.0, 300.0, 50.0, np.nan],
        "hours": [1, 2, 3, 4, 5, 6],
    }, index=[10, 11, 12, 13, 14, 15])


def test_one_level_values_counts_and_missing():
    d = frame()
    before = d.copy()
    out = within_between(d, "dose")
    pd.testing.assert_frame_equal(d, before)  # input untouched
    assert list(out.columns) == [*d.columns, "dose_between", "dose_within", "dose_n"]
    assert out.index.tolist() == d.index.tolist()
    pd.testing.assert_frame_equal(out[d.columns], d)
    assert out["dose_between"].tolist() == [50.0, 50.0, 250.0, 250.0, 50.0, 50.0]
    assert out["dose_within"].tolist()[:5] == [-50.0, 50.0, -50.0, 50.0, 0.0]
    assert np.isnan(out.loc[15, "dose_within"])  # missing value: missing within part
    assert out["dose_n"].tolist() == [2, 2, 2, 2, 1, 1]
    assert str(out["dose_n"].dtype) == "int64"


def test_several_columns_and_options():
    out = within_between(frame(), ["dose", "hours"], suffixes=("_b", "_w"), counts=False)
    assert list(out.columns)[-4:] == ["dose_b", "dose_w", "hours_b", "hours_w"]
    assert out["hours_b"].tolist() == [1.5, 1.5, 3.5, 3.5, 5.5, 5.5]
    grand = within_between(frame(), "dose", center="grand")
    mean = frame()["dose"].mean()  # 130
    np.testing.assert_allclose(grand["dose_between"], [50 - mean] * 2 + [250 - mean] * 2
                               + [50 - mean] * 2)
    present = frame()["dose"].notna()
    assert grand.loc[present, "dose_between"].sum() == pytest.approx(0.0, abs=1e-9)
    assert cv.within_between is within_between


def test_nested_levels():
    out = within_between(frame(), "dose", unit=["provider_id", "org_id"])
    assert list(out.columns)[-5:] == ["dose_between_provider_id", "dose_between_org_id",
                                      "dose_within", "dose_n_provider_id", "dose_n_org_id"]
    # provider p: mean of 0, 100, 200, 300 = 150; q: 50 (its missing row left out)
    assert out["dose_between_provider_id"].tolist() == [150.0] * 4 + [50.0] * 2
    assert out["dose_between_org_id"].tolist() == [-100.0, -100.0, 100.0, 100.0, 0.0, 0.0]
    assert out["dose_n_provider_id"].tolist() == [4, 4, 4, 4, 1, 1]
    parts = out[["dose_between_provider_id", "dose_between_org_id", "dose_within"]].sum(axis=1)
    np.testing.assert_allclose(parts[:5], frame()["dose"][:5])


def test_a_unit_without_values_and_an_empty_frame():
    d = frame().assign(dose=lambda x: x["dose"].where(x["org_id"] != "c"))
    out = within_between(d, "dose")
    c = out[out["org_id"] == "c"]
    assert c["dose_between"].isna().all() and c["dose_within"].isna().all()
    assert (c["dose_n"] == 0).all()
    empty = within_between(frame().iloc[0:0], "dose")
    assert empty.empty and "dose_within" in empty.columns


def test_errors_name_table_column_and_value():
    d = frame()
    with pytest.raises(StudyValidationError, match="column 'nope'.*column is missing"):
        within_between(d, "nope")
    with pytest.raises(StudyValidationError, match="column 'org'.*unit column is missing"):
        within_between(d, "dose", unit="org")
    numeric = "column 'org_id', value '[^']+': must be numeric"
    with pytest.raises(StudyValidationError, match=numeric):
        within_between(d.assign(org_id2=d["org_id"]), "org_id", unit="org_id2")
    with pytest.raises(StudyValidationError, match="is a unit column"):
        within_between(d, "wave", unit="wave")
    missing_id = d.assign(org_id=d["org_id"].where(d.index != 12))
    with pytest.raises(StudyValidationError, match="row 2, column 'org_id': unit id is missing"):
        within_between(missing_id, "dose")
    crossed = d.assign(provider_id=["p", "q", "p", "p", "q", "q"])
    with pytest.raises(StudyValidationError,
                       match="column 'org_id', value 'a': appears in more than one 'provider_id'"):
        within_between(crossed, "dose", unit=["provider_id", "org_id"])
    with pytest.raises(StudyValidationError, match="column 'dose_within'.*already exists"):
        within_between(d.assign(dose_within=1.0), "dose")
    with pytest.raises(StudyValidationError, match="column 'suffixes'.*two different"):
        within_between(d, "dose", suffixes=("_x", "_x"))
    with pytest.raises(StudyValidationError, match="column 'center', value \"'unit'\""):
        within_between(d, "dose", center="unit")  # type: ignore[arg-type]
    with pytest.raises(StudyValidationError, match="at least one column"):
        within_between(d, [])
    with pytest.raises(StudyValidationError, match="must be a pandas DataFrame"):
        within_between(d.to_dict(), "dose")  # type: ignore[arg-type]
    with pytest.raises(ValueError):  # a typed error that is also a ValueError
        within_between(d, "nope")


# ----------------------------------------------------------------- properties

def _close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-6)


@settings(max_examples=80, deadline=None)
@given(panels(), st.sampled_from(["none", "grand"]))
def test_parts_add_up_and_within_sums_to_zero(d, center):
    out = within_between(d, "x", center=center)
    multi = within_between(d, "x", unit=["provider_id", "org_id"], center=center)
    present = d["x"].notna()
    grand = d["x"].mean() if center == "grand" and present.any() else 0.0
    _close((out["x_between"] + out["x_within"])[present], (d["x"] - grand)[present])
    parts = (multi["x_between_provider_id"] + multi["x_between_org_id"]
             + multi["x_within"])[present]
    _close(parts, (d["x"] - grand)[present])
    _close(out["x_within"], multi["x_within"])
    sums = out[present].groupby("org_id")["x_within"].sum()
    _close(sums, np.zeros(len(sums)))
    org_dev = multi[present].groupby("provider_id")["x_between_org_id"].sum()
    _close(org_dev, np.zeros(len(org_dev)))
    assert len(out) == len(d) and out.index.equals(d.index)
    assert (out["x_n"] == d.groupby("org_id")["x"].transform("count")).all()


@settings(max_examples=60, deadline=None)
@given(panels(), st.randoms(use_true_random=False))
def test_invariant_to_row_order(d, rnd):
    order = list(range(len(d)))
    rnd.shuffle(order)
    shuffled = d.iloc[order]
    a = within_between(d, "x", unit=["provider_id", "org_id"])
    b = within_between(shuffled, "x", unit=["provider_id", "org_id"]).loc[d.index]
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9, atol=1e-6)
