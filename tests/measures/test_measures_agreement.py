"""agreement(): ICC(1), ICC(2), r_wg(j) against R's multilevel (bhr2000 and a simulated set)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from coevidence.exceptions import MeasureError, MissingDataWarning
from coevidence.measures.agreement import AgreementResult, agreement
from coevidence.measures.registry import get_measure
from coevidence.results.base import TIDY_COLUMNS

from _measures_helpers import load_reference, read_data

REF = load_reference("agreement_reference.json")
FILES = {"bhr2000_11": "bhr2000.csv", "sim_org": "sim_org.csv"}


@pytest.mark.parametrize("entry", REF, ids=[e["dataset"] for e in REF])
def test_matches_multilevel(entry):
    data = read_data(FILES[entry["dataset"]])
    # ranvar = 2 is the uniform null of a 5-point scale: (5**2 - 1) / 12
    a = agreement(data, unit=entry["group"], items=entry["items"], scale_range=(1, 5))
    assert a.null_variance == pytest.approx(entry["ranvar"])
    assert a.icc1 == pytest.approx(entry["icc1"], abs=1e-12)
    assert a.icc2 == pytest.approx(entry["icc2"], abs=1e-12)
    assert a.f_value == pytest.approx(entry["f_value"], rel=1e-10)
    assert a.f_p_value == pytest.approx(entry["f_p_value"], rel=1e-6)
    ref = pd.DataFrame(entry["rwg_j"])
    ref["unit"] = ref["unit"].astype(str)
    mine = a.per_unit.assign(unit=a.per_unit[entry["group"]].astype(int).astype(str))
    merged = ref.merge(mine, on="unit", suffixes=("_r", ""))
    assert len(merged) == len(ref) == len(a.per_unit)
    np.testing.assert_allclose(merged["rwg_j_r"].astype(float), merged["rwg_j"], atol=1e-12)
    assert (merged["n_r"] == merged["n"]).all()


def test_flags_and_thresholds():
    data = read_data("sim_org.csv")
    a = agreement(data, unit="org_id", scale_range=(1, 5))
    assert a.aggregation_supported
    strict = agreement(data, unit="org_id", scale_range=(1, 5), icc2_threshold=0.95)
    assert not strict.aggregation_supported
    assert not strict.criteria.set_index("criterion").loc["icc2", "met"]
    per = agreement(data, unit="org_id", scale_range=(1, 5), rwg_threshold=0.9).per_unit
    assert (per["agreement_supported"] == (per["rwg_j"] >= 0.9)).all()


def test_no_between_unit_variance_not_supported():
    rng = np.random.default_rng(3)
    d = pd.DataFrame({f"i{j}": rng.integers(1, 6, 200) for j in range(4)})
    d["org_id"] = np.repeat(np.arange(20), 10)
    a = agreement(d, unit="org_id", scale_range=(1, 5))
    assert not a.aggregation_supported
    assert a.per_unit["rwg_j"].max() < 0.7  # uniform answers: no agreement


def test_measure_supplies_range_and_min_respondents():
    oric = get_measure("oric")
    d = pd.DataFrame({"org_id": [1, 1, 2, 3, 3], "s": [4.0, 4.5, 3.0, 2.0, 2.5]})
    a = agreement(d, unit="org_id", measure=oric)
    assert a.null_variance == pytest.approx(2.0)
    per = a.per_unit.set_index("org_id")
    assert np.isnan(per.loc[2, "aggregate"]) and per.loc[1, "aggregate"] == pytest.approx(4.25)
    assert np.isnan(per.loc[2, "rwg_j"])  # one respondent


def test_single_item_rwg_and_missing_rows():
    d = pd.DataFrame({"org_id": [1, 1, 1, 2, 2, 2], "x": [4.0, 5.0, np.nan, 1.0, 2.0, 1.0]})
    with pytest.warns(MissingDataWarning, match="1 of 6"):
        a = agreement(d, unit="org_id", scale_range=(1, 5))
    # single item: rwg = 1 - s2 / sigma2_EU
    assert a.rwg_j.loc[1] == pytest.approx(1 - 0.5 / 2)
    assert a.rwg_j.loc[2] == pytest.approx(1 - (1 / 3) / 2)
    assert a.n_dropped == 1


def test_interface_and_errors():
    data = read_data("sim_org.csv")
    a = agreement(data, unit="org_id", scale_range=(1, 5))
    assert isinstance(a, AgreementResult)
    assert list(a.tidy().columns) == list(TIDY_COLUMNS)
    assert len(a.glance()) == 1
    for word in ("Estimator", "Covariance type", "Df method"):
        assert word in a.summary()
    with pytest.raises(AttributeError):
        a.icc1 = 0.0
    with pytest.raises(MeasureError, match="unit column"):
        agreement(data, unit="nope", scale_range=(1, 5))
    no_range = agreement(data, unit="org_id")  # ICC(1)/ICC(2) need no range; r_wg(j) does
    assert no_range.icc1 == pytest.approx(a.icc1) and "scale_range" in no_range.note
    with pytest.raises(MeasureError, match="column is missing"):
        agreement(data, unit="org_id", items=["zz"], scale_range=(1, 5))
    with pytest.raises(MeasureError, match="numeric"):
        agreement(data.assign(i1="x"), unit="org_id", scale_range=(1, 5))
    with pytest.raises(MeasureError, match="2 units"):
        agreement(data.assign(org_id=1), unit="org_id", scale_range=(1, 5))
