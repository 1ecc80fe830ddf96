"""Every public argument of score / reliability / agreement changes the output or raises."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from coevidence.exceptions import MeasureError
from coevidence.measures.agreement import agreement
from coevidence.measures.reliability import reliability
from coevidence.measures.scoring import score
from coevidence.schemas.measure import MeasureDefinition

from _measures_helpers import read_data

pytestmark = pytest.mark.usefixtures("quiet")

M = MeasureDefinition(id="m", response_min=1, response_max=5, items=("a", "b", "c"),
                      missing={"min_answered": 1})
LONG = pd.DataFrame({
    "pid": [1, 1, 1, 1, 2, 2],
    "t": [0, 0, 1, 1, 0, 1],
    "org": ["o", "o", "o", "o", "p", "p"],
    "code": ["a", "b", "a", "c", "a", "b"],
    "answer": [1, 3, 5, 5, 2, 4],
})


def test_score_column_arguments_are_used():
    r = score(LONG, M, unit="pid", wave="t", item="code", value="answer")
    assert r.scores.to_dict("list") == {"pid": [1, 1, 2, 2], "t": [0, 1, 0, 1],
                                        "total": [2.0, 5.0, 2.0, 4.0]}
    # without the wave, (pid, item) cells collide across waves: an error, not a silent merge
    with pytest.raises(MeasureError, match="duplicated cell"):
        score(LONG, M, unit="pid", wave=None, item="code", value="answer")
    with pytest.raises(MeasureError, match="required column"):
        score(LONG, M, unit="respondent_id", wave="t", item="code", value="answer")
    with pytest.raises(MeasureError, match="required column"):
        score(LONG, M, unit="pid", wave="t", item="code", value="value", layout="long")
    kept = score(LONG, M, unit="pid", wave="t", item="code", value="answer", keep=["org"])
    assert kept.scores["org"].tolist() == ["o", "o", "p", "p"]


def test_score_layout_argument():
    wide = pd.DataFrame({"respondent_id": [1], "item": [3], "value": [4]})
    m = MeasureDefinition(id="w", response_min=1, response_max=5, items=("item", "value"))
    assert score(wide, m, layout="wide").scores["total"].tolist() == [3.5]
    with pytest.raises(MeasureError, match="unknown item code"):
        score(wide, m, layout="long")


def test_reliability_arguments():
    d = read_data("bfi_agree.csv")
    base = reliability(d, min_value=1, max_value=6)
    rev = reliability(d, reverse=["A1"], min_value=1, max_value=6)
    assert rev.alpha != base.alpha
    assert reliability(d).alpha == base.alpha  # range only matters for reversal and checks
    with pytest.raises(MeasureError):
        reliability(d, min_value=2, max_value=6)
    with pytest.raises(MeasureError):
        reliability(d, min_value=1, max_value=5)
    narrow = reliability(d, conf_level=0.5)
    assert narrow.alpha_ci[1] - narrow.alpha_ci[0] < base.alpha_ci[1] - base.alpha_ci[0]


def test_agreement_arguments():
    d = read_data("sim_org.csv")
    base = agreement(d, unit="org_id", scale_range=(1, 5))
    wider = agreement(d, unit="org_id", scale_range=(1, 7))
    assert (wider.per_unit["rwg_j"] >= base.per_unit["rwg_j"]).all()
    assert wider.null_variance == pytest.approx(4.0)
    two = agreement(d, unit="org_id", scale_range=(1, 5), items=["i1", "i2"])
    assert two.icc1 != base.icc1 and two.items == ("i1", "i2")
    nv = agreement(d, unit="org_id", null_variance=1.0)
    assert nv.null_variance == 1.0 and not np.allclose(nv.per_unit["rwg_j"],
                                                       base.per_unit["rwg_j"])
    assert not agreement(d, unit="org_id", scale_range=(1, 5), rwg_threshold=0.99
                         ).aggregation_supported
    assert not agreement(d, unit="org_id", scale_range=(1, 5), icc2_threshold=0.99
                         ).aggregation_supported
    assert not agreement(d, unit="org_id", scale_range=(1, 5), f_alpha=1e-30
                         ).aggregation_supported
    few = agreement(d, unit="org_id", scale_range=(1, 5), min_respondents=10).per_unit
    assert (few["aggregate"].isna() == (few["n"] < 10)).all() and few["aggregate"].isna().any()
    m = MeasureDefinition(id="x", response_min=0, response_max=6, items=("i1",),
                          aggregation={"min_respondents": 8})
    via = agreement(d, unit="org_id", measure=m).per_unit
    assert (via["aggregate"].isna() == (via["n"] < 8)).all()
    d2 = d.rename(columns={"org_id": "team"})
    assert agreement(d2, unit="team", scale_range=(1, 5)).icc1 == pytest.approx(base.icc1)
