"""fit_event_study: input checks, dropped units are reported, result interface."""

import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import coevidence as cv
from coevidence.exceptions import MissingDataWarning, ModelSpecificationError, StudyValidationError
from coevidence.results.base import TIDY_COLUMNS

sys.path.insert(0, str(Path(__file__).parent))
from _did_sim import simulate_staggered


@pytest.fixture(scope="module")
def df():
    return simulate_staggered(n_units=120, seed=1)[0]


def test_first_treated_must_be_constant_within_unit(df):
    bad = df.copy()
    bad.loc[bad.index[(bad["org_id"] == 30)][2], "first_treated"] = 99.0
    with pytest.raises(StudyValidationError, match="must be constant within 'org_id'") as err:
        cv.fit_event_study(bad, "research_use")
    assert set(err.value.failures["row"]) == set(np.flatnonzero(bad["org_id"] == 30))


def test_zero_cannot_mean_never_when_period_zero_exists(df):
    bad = df.assign(wave=df["wave"] - 1, first_treated=(df["first_treated"] - 1).fillna(0))
    with pytest.raises(StudyValidationError, match="cannot mean 'never treated'"):
        cv.fit_event_study(bad, "research_use")
    ok = df.assign(first_treated=df["first_treated"].fillna(0))  # periods start at 1: 0 = never
    a = cv.fit_event_study(ok, "research_use").tidy()
    b = cv.fit_event_study(df, "research_use").tidy()
    pd.testing.assert_frame_equal(a, b)


def test_duplicates_and_missing_are_reported(df):
    with pytest.raises(StudyValidationError, match="duplicated org_id x wave"):
        cv.fit_event_study(pd.concat([df, df.iloc[[0]]]), "research_use")
    holed = df.copy()
    holed.loc[holed.index[5], "research_use"] = np.nan
    before = holed.copy()
    with pytest.warns(MissingDataWarning) as rec:
        res = cv.fit_event_study(holed, "research_use")
    pd.testing.assert_frame_equal(holed, before)
    msgs = " ".join(str(w.message) for w in rec)
    assert "dropped 1 of" in msgs and "dropped 1 units not observed in every period" in msgs
    assert (
        res.diagnostics.n_rows_dropped_missing == 1
        and res.diagnostics.n_units_dropped_unbalanced == 1
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingDataWarning)
        two = cv.fit_event_study(holed, "research_use", estimator="two_stage")
    assert two.diagnostics.n_units_dropped_unbalanced == 0 and two.diagnostics.n_obs == len(df) - 1


def test_always_treated_units_dropped_with_warning(df):
    early = df.assign(first_treated=np.where(df["org_id"] < 3, 1.0, df["first_treated"]))
    with pytest.warns(MissingDataWarning, match="dropped 3 units treated in the first period"):
        res = cv.fit_event_study(early, "research_use")
    assert res.diagnostics.n_units_always_treated == 3


def test_bad_options(df):
    with pytest.raises(ValueError, match="estimator"):
        cv.fit_event_study(df, "research_use", estimator="did_imputation")
    with pytest.raises(ValueError, match="anticipation"):
        cv.fit_event_study(df, "research_use", anticipation=-1)
    with pytest.raises(ValueError, match="bootstrap"):
        cv.fit_event_study(df, "research_use", bootstrap_reps=10)
    with pytest.raises(ModelSpecificationError, match="twfe"):
        cv.fit_event_study(df, "research_use", estimator="twfe").aggregate("group")
    with pytest.raises(ModelSpecificationError, match="by="):
        cv.fit_event_study(df, "research_use").compare("a", "b")
    with pytest.raises(ModelSpecificationError, match="no treated units"):
        cv.fit_event_study(df.assign(first_treated=np.nan), "research_use")


def test_result_interface(df):
    res = cv.fit_event_study(df, "research_use")
    assert tuple(res.tidy().columns) == TIDY_COLUMNS
    for kind in ("simple", "event", "group", "calendar"):
        t = res.aggregate(kind)
        assert tuple(t.tidy().columns) == TIDY_COLUMNS and t.glance().shape[0] == 1
        assert kind in t.summary() or "Aggregated" in t.summary()
    s = res.summary()
    for text in (
        "Callaway & Sant'Anna",
        "Control group: never_treated",
        "Covariance: analytic",
        "Degrees of freedom",
        "Pre-trend Wald test",
    ):
        assert text in s
    assert res.glance().shape[0] == 1 and "<table" in res._repr_html_()
    with pytest.raises(AttributeError):
        res.info = {}
    tw = cv.fit_event_study(df, "research_use", estimator="twfe")
    assert tw.tidy()["term"].str.startswith("e=").all()
    with pytest.raises(ModelSpecificationError):
        _ = tw.gt


def test_no_never_treated_units(df):
    allt = df[df["first_treated"].notna()]
    with pytest.raises(ModelSpecificationError, match="not_yet_treated"):
        cv.fit_event_study(allt, "research_use")
    cs = cv.fit_event_study(allt, "research_use", control="not_yet_treated")
    assert cs.gt["time"].max() < allt["first_treated"].max()
    assert any("last cohort" in n for n in cs.diagnostics.notes)
    two = cv.fit_event_study(allt, "research_use", estimator="two_stage")
    assert any("last cohort" in n for n in two.diagnostics.notes)
    sa = cv.fit_event_study(allt, "research_use", estimator="sun_abraham")
    assert any("control group" in n for n in sa.diagnostics.notes)
    tw = cv.fit_event_study(allt, "research_use", estimator="twfe")
    assert any("second reference" in n for n in tw.diagnostics.notes)


def test_bootstrap_options_change_output(df):
    base = {"bootstrap_reps": 199, "seed": 5}
    a = cv.fit_event_study(df, "research_use", **base)
    b = cv.fit_event_study(df, "research_use", bootstrap_weights="rademacher", **base)
    c = cv.fit_event_study(
        df.assign(prov=df["org_id"] % 10), "research_use", cluster="prov", **base
    )
    d = cv.fit_event_study(df, "research_use", conf_level=0.8, **base)
    sa, sb, sc = (r.tidy()["std_error"].to_numpy() for r in (a, b, c))
    assert not np.allclose(sa, sb) and not np.allclose(sa, sc)
    assert "clustered by prov" in c.summary()
    wa = a.aggregate("event").frame()
    wd = d.aggregate("event").frame()
    assert (
        (wd["uniform_high"] - wd["uniform_low"]) < (wa["uniform_high"] - wa["uniform_low"])
    ).all()
    # cluster= no longer needs the bootstrap: analytic cluster-robust (CR2-type) SEs
    an = cv.fit_event_study(df.assign(prov=df["org_id"] % 10), "research_use", cluster="prov")
    assert "analytic (influence function), clustered by prov" in an.summary()
    assert (an.tidy()["df"] <= 9).all()
    with pytest.raises(StudyValidationError, match="constant within"):
        cv.fit_event_study(
            df.assign(prov=np.arange(len(df)) % 3), "research_use", cluster="prov", **base
        )
