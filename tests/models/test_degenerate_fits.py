"""Degenerate panel, event-study and stepped-wedge inputs raise typed errors naming the problem."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import coevidence as cv
from coevidence.exceptions import (
    MissingDataWarning,
    ModelSpecificationError,
    StudyValidationError,
)

FIX = Path(__file__).parents[1] / "fixtures" / "panel"
PANEL_KW = {"unit": "firm", "time": "year", "regressors": ["value", "capital"]}
ES_KW = {"unit": "countyreal", "time": "year", "first_treated": "first.treat"}
SW_KW = {"unit": "cluster", "time": "period", "first_treated": "start"}


@pytest.fixture(scope="module")
def grunfeld():
    return cv.load_grunfeld()


@pytest.fixture(scope="module")
def mpdta():
    return cv.load_mpdta()


@pytest.fixture(scope="module")
def sw():
    return pd.read_csv(FIX / "sw_sim.csv")


def _with_inf(frame, col, rows, value=np.inf):
    out = frame.copy()
    out[col] = out[col].astype(float)
    out.loc[out.index[list(rows)], col] = value
    return out


@pytest.mark.parametrize("estimator", ["within", "random", "pooled", "first_difference"])
def test_panel_constant_outcome_raises(grunfeld, estimator):
    g = grunfeld.copy()
    g["inv"] = 3.0
    with pytest.raises(ModelSpecificationError, match="'inv' has no variation"):
        cv.fit_panel(g, "inv", **PANEL_KW, estimator=estimator)


def test_panel_inf_outcome_names_column_count_rows(grunfeld):
    g = _with_inf(grunfeld, "inv", [2, 5, 9], np.inf)
    g.loc[g.index[11], "inv"] = -np.inf
    with pytest.raises(StudyValidationError, match="'inv': 4 infinite") as exc:
        cv.fit_panel(g, "inv", **PANEL_KW)
    f = exc.value.failures
    assert list(f["row"]) == [2, 5, 9, 11]
    assert set(f["column"]) == {"inv"}
    assert "first rows [2, 5, 9, 11]" in f["rule"].iloc[0]


def test_panel_inf_regressor(grunfeld):
    g = _with_inf(grunfeld, "capital", [7], -np.inf)
    with pytest.raises(StudyValidationError, match="'capital': 1 infinite"):
        cv.fit_panel(g, "inv", **PANEL_KW)
    with pytest.raises(StudyValidationError, match="'capital': 1 infinite"):
        cv.fit_panel(g, formula="inv ~ value + capital", unit="firm", time="year")


def test_panel_all_missing_outcome(grunfeld):
    g = grunfeld.copy()
    g["inv"] = np.nan
    with pytest.raises(ModelSpecificationError, match=r"\['inv'\] are missing \(NaN\) in every"):
        cv.fit_panel(g, "inv", **PANEL_KW)


def test_event_study_degenerate_outcomes(mpdta):
    m = mpdta.copy()
    m["lemp"] = 1.0
    with pytest.raises(ModelSpecificationError, match="'lemp' has no variation"):
        cv.fit_event_study(m, "lemp", **ES_KW)
    m["lemp"] = np.nan
    with pytest.raises(ModelSpecificationError, match="missing \\(NaN\\) in every"):
        cv.fit_event_study(m, "lemp", **ES_KW)
    m = _with_inf(mpdta, "lemp", [0, 3])
    with pytest.raises(StudyValidationError, match="'lemp': 2 infinite") as exc:
        cv.fit_event_study(m, "lemp", **ES_KW)
    assert list(exc.value.failures["row"]) == [0, 3]


@pytest.mark.parametrize("cluster_effects", ["fixed", "random"])
def test_stepped_wedge_degenerate_outcomes(sw, cluster_effects):
    kw = {**SW_KW, "cluster_effects": cluster_effects}
    d = sw.copy()
    d["y"] = 1.0
    with pytest.raises(ModelSpecificationError, match="'y' has no variation"):
        cv.fit_stepped_wedge(d, "y", **kw)
    d["y"] = np.nan
    with pytest.raises(ModelSpecificationError, match="missing \\(NaN\\) in every"):
        cv.fit_stepped_wedge(d, "y", **kw)
    d = _with_inf(sw, "y", [4])
    with pytest.raises(StudyValidationError, match="'y': 1 infinite"):
        cv.fit_stepped_wedge(d, "y", **kw)


def test_nan_still_dropped_with_warning(grunfeld):
    g = grunfeld.copy()
    g.loc[g.index[:3], "inv"] = np.nan
    with pytest.warns(MissingDataWarning):
        res = cv.fit_panel(g, "inv", **PANEL_KW)
    assert np.isfinite(res.std_errors).all()
