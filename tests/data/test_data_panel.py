"""The tidy panel: columns, one row per unit x wave, time since TA, phases, dose, outcomes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_tables

from coevidence import CoevidenceError, Study
from coevidence.exceptions import MissingDataWarning
from coevidence.data.panel import PANEL_COLUMNS


@pytest.fixture
def study() -> Study:
    t = tiny_tables()
    return Study.from_frames(t.pop("design"), measures=t.pop("measures"), **t)


def test_one_row_per_org_and_wave_with_stable_columns(study: Study) -> None:
    p = study.panel(unit="organization")
    assert len(p) == 4 * 3
    assert not p.duplicated(["org_id", "wave"]).any()
    base = [c for c in PANEL_COLUMNS if c != "respondent_id"]
    assert list(p.columns) == [*base, "oracle", "oracle_n", "ru", "ru_n"]
    assert p["time"].tolist()[:3] == [0.0, 1.0, 2.0]
    assert str(p["ta_model"].dtype) == "category"
    assert list(p["ta_model"].cat.categories) == ["push", "co_creation", "hybrid", "none"]
    assert (p.loc[p["org_id"] == "O3", "ta_model"] == "co_creation").all()


def test_time_since_engagement_and_phase(study: Study) -> None:
    p = study.panel(["ru"]).set_index(["org_id", "wave"])
    # E1: 2024-02-01 .. 2024-10-01; waves 2024-01-15, 2024-07-15, 2025-01-15
    assert p.loc[("O1", 1), "phase"] == "before"
    assert p.loc[("O1", 2), "phase"] == "during"
    assert p.loc[("O1", 3), "phase"] == "after"
    assert p.loc[("O1", 1), "years_since_start"] == pytest.approx(-17 / 365.25)
    assert p.loc[("O1", 2), "years_since_end"] == 0.0
    assert p.loc[("O1", 3), "years_since_end"] == pytest.approx(106 / 365.25)
    # E4 is open-ended: still "during" at the last wave, never "after"
    assert p.loc[("O4", 3), "phase"] == "during" and p.loc[("O4", 3), "years_since_end"] == 0.0


def test_cumulative_dose_counts_encounters_up_to_the_date(study: Study) -> None:
    p = study.panel(["ru"]).set_index(["org_id", "wave"])
    # E3 encounters: 2024-02-05 (90, 15), 2024-09-01 (45)
    assert p.loc[("O3", 1), "cum_minutes"] == 0
    assert p.loc[("O3", 2), ["cum_minutes", "cum_encounters"]].tolist() == [105.0, 2]
    assert p.loc[("O3", 3), ["cum_minutes", "cum_encounters"]].tolist() == [150.0, 3]
    assert p.loc[("O2", 3), "cum_encounters"] == 0  # an engagement without a log
    assert (p.groupby(level="org_id")["cum_minutes"].diff().dropna() >= 0).all()


def test_respondent_scores_are_averaged_to_organisations(study: Study) -> None:
    p = study.panel(["ru"]).set_index(["org_id", "wave"])
    r = study.panel(["ru"], unit="respondent")
    assert len(r) == 8 * 3 and "respondent_id" in r.columns
    manual = r.groupby(["org_id", "wave"])["ru"].agg(["mean", "count"])
    np.testing.assert_allclose(p["ru"].to_numpy(), manual["mean"].to_numpy())
    assert (p["ru_n"].to_numpy() == manual["count"].to_numpy()).all()
    # ru item mean for R1 wave 1: values (1+1+1)%5+1=4, (1+1+2)%5+1=5, (1+1+3)%5+1=1 -> 10/3
    assert r.set_index(["respondent_id", "wave"]).loc[("R1", 1), "ru"] == pytest.approx(10 / 3)


def test_missing_observations_stay_visible(study: Study) -> None:
    p = study.panel(["oracle"])
    assert p["oracle"].notna().sum() == 4 and len(p) == 12  # only wave 1 observed
    obs = study.panel(["oracle"], waves="observed")
    assert len(obs) == 4 and (obs["wave"] == 1).all()
    assert obs["oracle_n"].tolist() == [1, 1, 1, 1]


def test_unknown_outcome_and_bad_arguments(study: Study) -> None:
    with pytest.raises(CoevidenceError, match="have no scores"):
        study.panel(["nope"])
    with pytest.raises(ValueError, match="unit must be"):
        study.panel(unit="district")  # type: ignore[arg-type]


def test_panel_does_not_change_the_study(study: Study) -> None:
    before = study.to_frames()
    p = study.panel()
    p.loc[0, "ru"] = -100
    after = study.to_frames()
    for k in before:
        pd.testing.assert_frame_equal(before[k], after[k])


def test_example_panel_reflects_the_design() -> None:
    import coevidence as cv

    p = cv.load_example_study().panel(unit="organization")
    assert len(p) == 180 * 6
    assert set(p["phase"].unique()) == {"before", "during", "after"}
    assert p.groupby("wave")["phase"].agg(lambda s: s.mode()[0]).tolist() == [
        "before", "during", "during", "during", "after", "after"]
    assert {"research_use", "capacity", "research_use_n"} <= set(p.columns)


def test_panel_is_invariant_to_the_order_of_input_rows() -> None:
    """Shuffling every input table's rows gives the same panel."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    t0 = tiny_tables()
    reference = Study.from_frames(t0.pop("design"), measures=t0.pop("measures"), **t0).panel()

    @settings(max_examples=15, deadline=None)
    @given(st.integers(0, 2**32 - 1))
    def check(seed: int) -> None:
        t = tiny_tables()
        rng = np.random.default_rng(seed)
        for k, v in list(t.items()):
            if isinstance(v, pd.DataFrame):
                t[k] = v.iloc[rng.permutation(len(v))].reset_index(drop=True)
        shuffled = Study.from_frames(t.pop("design"), measures=t.pop("measures"), **t).panel()
        pd.testing.assert_frame_equal(shuffled, reference)

    check()


def test_organisation_outcomes_follow_each_measures_aggregation_rule() -> None:
    t = tiny_tables()
    ru = t["measures"][0]
    t["measures"][0] = ru.model_copy(update={"aggregation": ru.aggregation.model_copy(
        update={"method": "median", "min_respondents": 2})})
    # respondent R2 (org O1) skips every item at wave 3: O1 has one scored respondent there
    resp = t["responses"]
    t["responses"] = resp.assign(value=resp["value"].where(~((resp["respondent_id"] == "R2") & (resp["wave"] == 3))))
    study = Study.from_frames(t.pop("design"), measures=t.pop("measures"), **t)
    with pytest.warns(MissingDataWarning, match="1 of 24"):
        p = study.panel(["ru"]).set_index(["org_id", "wave"])
    r = study.panel(["ru"], unit="respondent")
    med = r.groupby(["org_id", "wave"])["ru"].median()
    assert p.loc[("O1", 3), "ru_n"] == 1 and np.isnan(p.loc[("O1", 3), "ru"])
    keep = p["ru_n"] >= 2
    np.testing.assert_allclose(p.loc[keep, "ru"], med[keep.to_numpy()])
    none = ru.model_copy(update={"aggregation": ru.aggregation.model_copy(update={"method": "none"})})
    t2 = tiny_tables()
    t2["measures"][0] = none
    s2 = Study.from_frames(t2.pop("design"), measures=t2.pop("measures"), **t2)
    assert "ru" not in s2.panel(unit="organization").columns
    assert "ru" in s2.panel(unit="respondent").columns


def test_unscored_responses_are_reported_not_dropped() -> None:
    t = tiny_tables()
    resp = t["responses"]
    t["responses"] = resp.assign(value=resp["value"].where(~((resp["respondent_id"] == "R2") & (resp["wave"] == 3))))
    study = Study.from_frames(t.pop("design"), measures=t.pop("measures"), **t)
    with pytest.warns(MissingDataWarning, match=r"1 of 24 respondent-wave scale scores .* \(ru: 1\)"):
        p = study.panel(["ru"], unit="respondent")
    assert np.isnan(p.set_index(["respondent_id", "wave"]).loc[("R2", 3), "ru"])
    assert len(p) == 24
    rep = study.scoring_report()
    assert rep[["measure_id", "n_scores", "n_scored", "n_not_scored"]].values.tolist() == [["ru", 24, 23, 1]]
    assert rep["reasons"].item().endswith("(1)")
    assert len(study.scoring_report(detail=True)) == 24
