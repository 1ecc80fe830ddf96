"""engagement_features: hand-computed values on a small study, edge cases, a property."""

from __future__ import annotations

import datetime as dt
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import coevidence as cv
from coevidence import Study
from coevidence.data.features import ENGAGEMENT_FEATURE_COLUMNS, engagement_features
from coevidence.exceptions import OptionError

WAVES = [("2024-01-01", 0), ("2024-07-01", 1), ("2025-01-01", 2)]
DESIGN = {
    "id": "feat", "randomisation_unit": "organization",
    "arms": [{"id": "push", "ta_model": "push"}, {"id": "cc", "ta_model": "co_creation"}],
    "waves": [{"index": i, "date": d} for d, i in WAVES],
    "start_date": "2023-12-01", "end_date": "2025-06-30",
}
PROVIDERS = [{"id": "P1", "kind": "researcher"}, {"id": "P2", "kind": "intermediary"}]


def _enc(date: str, minutes: float, mode: str, activity: str) -> dict:
    return {"date": date, "minutes": minutes, "mode": mode, "activity": activity}


def small_study() -> Study:
    """O1: full logs; O2: push, no engagement; O3: engagement without encounters;
    O4: encounters only (diagnosis on the first day, tied with a consultation)."""
    orgs = [
        {"id": "O1", "provider_id": "P1", "arm": "cc"},
        {"id": "O2", "provider_id": "P1", "arm": "push"},
        {"id": "O3", "provider_id": "P2", "arm": "cc"},
        {"id": "O4", "provider_id": "P2", "arm": "cc"},
    ]
    e1 = {
        "id": "E1", "org_id": "O1", "provider_ids": ["P1"], "ta_model": "co_creation",
        "start_date": "2024-02-01", "end_date": "2024-12-31", "joint_diagnosis": True,
        "encounters": [
            _enc("2024-02-01", 60, "video", "consultation"),   # first encounter: not diagnosis
            _enc("2024-02-10", 30, "phone", "diagnosis"),
            _enc("2024-07-01", 45, "in_person", "training"),   # exactly on wave 1's date
            _enc("2024-09-01", 120, "site_visit", "co_design"),
        ],
        "components": [
            {"id": "co_design", "order": 2, "introduced_on": "2024-09-01"},
            {"id": "joint_diagnosis", "order": 1, "introduced_on": "2024-02-10"},
        ],
        "adaptations": [
            {"date": "2024-05-01", "planned": True, "what_modified": "content"},
            {"date": "2024-10-01", "planned": False, "what_modified": "implementation",
             "target": "ta_strategy"},
        ],
        "relationship_ratings": [
            {"date": "2024-06-01", "rater": "organization", "value": 4},             # 0.75
            {"date": "2024-06-01", "rater": "provider", "dimension": "negative_interactions",
             "value": 1},                                                             # 1 - 0
            {"date": "2024-12-01", "rater": "organization", "dimension": "trust_rapport",
             "value": 5, "scale_min": 0, "scale_max": 10},                            # 0.5
        ],
        "agreements": [
            {"kind": "publication", "agreed_on": "2024-02-01"},
            {"kind": "data_sharing"},  # no date: from the engagement's start
        ],
    }
    e3 = {
        "id": "E3", "org_id": "O3", "provider_ids": ["P2"], "ta_model": "co_creation",
        "start_date": "2024-06-01",
        "agreements": [{"kind": "data_sharing", "agreed_on": "2024-06-01"}],
    }
    e4 = {
        "id": "E4", "org_id": "O4", "provider_ids": ["P2"], "ta_model": "co_creation",
        "start_date": "2024-03-01",
        "encounters": [
            _enc("2024-03-01", 20, "phone", "consultation"),
            _enc("2024-03-01", 10, "email", "diagnosis"),
            _enc("2024-08-01", 15, "video", "consultation"),
        ],
    }
    return Study(DESIGN, providers=PROVIDERS, organizations=orgs, engagements=[e1, e3, e4])


@pytest.fixture(scope="module")
def feats() -> pd.DataFrame:
    return small_study().engagement_features()


def row(feats: pd.DataFrame, org: str, wave: int) -> pd.Series:
    sel = feats[(feats["org_id"] == org) & (feats["wave"] == wave)]
    assert len(sel) == 1
    return sel.iloc[0]


def assert_row(feats: pd.DataFrame, org: str, wave: int, **expected) -> None:
    r = row(feats, org, wave)
    for col, want in expected.items():
        got = r[col]
        if isinstance(want, float) and np.isnan(want):
            assert np.isnan(got), (org, wave, col, got)
        elif want is pd.NA:
            assert got is pd.NA, (org, wave, col, got)
        elif isinstance(want, float):
            assert got == pytest.approx(want, abs=1e-12), (org, wave, col, got, want)
        else:
            assert got == want, (org, wave, col, got, want)


def test_every_organisation_and_wave_is_kept_in_panel_key_order(feats: pd.DataFrame) -> None:
    assert list(feats.columns) == list(ENGAGEMENT_FEATURE_COLUMNS)
    assert len(feats) == 4 * 3
    assert list(feats["org_id"]) == [o for o in ("O1", "O2", "O3", "O4") for _ in range(3)]
    assert list(feats["wave"]) == [0, 1, 2] * 4
    assert feats["wave"].dtype == np.int64
    assert list(feats["feature_date"].iloc[:3]) == [pd.Timestamp(d) for d, _ in WAVES]


def test_full_logs_hand_computed(feats: pd.DataFrame) -> None:
    # wave 0 (2024-01-01): before TA starts
    assert_row(feats, "O1", 0, has_engagement=True, ta_started=False, dose_minutes_window=0.0,
               dose_minutes_cum=0.0, encounters_cum=0, diagnosis_first=pd.NA,
               joint_diagnosis=True, components_introduced=0, component_sequence="",
               adaptations_total=0, relationship_mean=float("nan"), relationship_n=0,
               agreements_in_force=0)
    # wave 1 (2024-07-01): window (2024-01-01, 2024-07-01] holds 60 + 30 + 45 (the boundary day)
    assert_row(feats, "O1", 1, ta_started=True, dose_minutes_window=135.0,
               dose_minutes_cum=135.0, encounters_cum=3, encounters_video=1,
               encounters_phone=1, encounters_in_person=1, encounters_site_visit=0,
               encounters_email=0, encounters_other=0,
               diagnosis_first=True,  # the first component is diagnosis (takes precedence)
               components_introduced=1, component_sequence="joint_diagnosis",
               adaptations_total=1, adaptations_content=1, adaptations_implementation=0,
               adaptations_planned=1, adaptations_unplanned=0, adaptations_ta_strategy=0,
               relationship_mean=0.875, relationship_n=2,
               agreements_in_force=2, agreements_publication=1, agreements_data_sharing=1,
               agreements_other=0)
    # wave 2 (2025-01-01): window (2024-07-01, 2025-01-01] excludes the 2024-07-01 encounter;
    # the engagement ended 2024-12-31, so its agreements are no longer in force
    assert_row(feats, "O1", 2, dose_minutes_window=120.0, dose_minutes_cum=255.0,
               encounters_cum=4, encounters_site_visit=1,
               components_introduced=2, component_sequence="joint_diagnosis;co_design",
               adaptations_total=2, adaptations_implementation=1, adaptations_unplanned=1,
               adaptations_ta_strategy=1, relationship_mean=0.75, relationship_n=3,
               agreements_in_force=0, agreements_publication=0)


def test_push_organisation_without_engagement_gets_zeros_and_missing(feats) -> None:
    for w in (0, 1, 2):
        assert_row(feats, "O2", w, has_engagement=False, ta_started=False,
                   dose_minutes_window=0.0, dose_minutes_cum=0.0, encounters_cum=0,
                   diagnosis_first=pd.NA, joint_diagnosis=pd.NA, components_introduced=0,
                   component_sequence="", adaptations_total=0,
                   relationship_mean=float("nan"), relationship_n=0, agreements_in_force=0)


def test_engagement_without_encounters(feats: pd.DataFrame) -> None:
    assert_row(feats, "O3", 0, ta_started=False, agreements_in_force=0)
    for w in (1, 2):  # open-ended: its agreement stays in force
        assert_row(feats, "O3", w, has_engagement=True, ta_started=True, dose_minutes_cum=0.0,
                   encounters_cum=0, diagnosis_first=pd.NA, joint_diagnosis=False,
                   agreements_in_force=1, agreements_data_sharing=1)


def test_diagnosis_from_encounters_without_components(feats: pd.DataFrame) -> None:
    assert_row(feats, "O4", 0, diagnosis_first=pd.NA, dose_minutes_cum=0.0)
    # a diagnosis encounter on the first encounter day (tied with a consultation) counts
    assert_row(feats, "O4", 1, diagnosis_first=True, dose_minutes_window=30.0,
               dose_minutes_cum=30.0, encounters_phone=1, encounters_email=1)
    assert_row(feats, "O4", 2, diagnosis_first=True, dose_minutes_window=15.0,
               dose_minutes_cum=45.0, encounters_video=1)


def test_window_length_option() -> None:
    f12 = engagement_features(small_study(), window_months=12)
    # wave 2: (2024-01-01, 2025-01-01] holds every O1 encounter
    assert row(f12, "O1", 2)["dose_minutes_window"] == 255.0
    f1 = engagement_features(small_study(), window_months=1)
    assert row(f1, "O1", 1)["dose_minutes_window"] == 45.0  # only 2024-07-01 in (06-01, 07-01]
    for bad in (0, -3, 2.5, True, "6"):
        with pytest.raises(OptionError, match="window_months"):
            engagement_features(small_study(), window_months=bad)


def test_joins_onto_the_panel_of_the_example_study() -> None:
    study = cv.load_example_study()
    feats = cv.engagement_features(study)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the example's unscorable responses are reported
        panel = study.panel(unit="organization")
    merged = panel.merge(feats, on=["org_id", "wave"], how="left", validate="one_to_one")
    assert len(merged) == len(panel) == len(feats)
    assert merged["dose_minutes_cum"].notna().all()
    # no TA, no dose; dose only ever counted up to the wave date
    none = merged["phase"] == "none"
    assert (merged.loc[none, "dose_minutes_cum"] == 0).all()
    assert (feats["dose_minutes_window"] <= feats["dose_minutes_cum"] + 1e-9).all()


# ------------------------------------------------------------------ property
day = st.integers(min_value=0, max_value=540)  # days after 2023-12-01, inside the study


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(day, st.integers(0, 240)), min_size=0, max_size=12),
       st.integers(1, 12))
def test_cumulative_dose_is_the_running_sum_of_the_log(log, window) -> None:
    base = dt.date(2023, 12, 1)
    start = base + dt.timedelta(days=min((d for d, _ in log), default=0))
    enc = [_enc(str(base + dt.timedelta(days=d)), m, "video", "consultation") for d, m in log]
    eng = {"id": "E1", "org_id": "O1", "provider_ids": ["P1"], "ta_model": "co_creation",
           "start_date": str(start), "encounters": enc}
    study = Study(DESIGN, providers=PROVIDERS,
                  organizations=[{"id": "O1", "provider_id": "P1", "arm": "cc"}],
                  engagements=[eng])
    f = engagement_features(study, window_months=window)
    assert np.all(np.diff(f["dose_minutes_cum"].to_numpy()) >= 0)
    assert np.all(np.diff(f["encounters_cum"].to_numpy()) >= 0)
    for (d, _), r in zip(WAVES, f.itertuples(), strict=True):
        wave_date = pd.Timestamp(d)
        lo = wave_date - pd.DateOffset(months=window)
        dates = [pd.Timestamp(base + dt.timedelta(days=x)) for x, _ in log]
        cum = sum(m for t, (_, m) in zip(dates, log, strict=True) if t <= wave_date)
        win = sum(m for t, (_, m) in zip(dates, log, strict=True) if lo < t <= wave_date)
        assert r.dose_minutes_cum == pytest.approx(cum)
        assert r.dose_minutes_window == pytest.approx(win)
        assert r.encounters_cum == sum(t <= wave_date for t in dates)
