"""Schema records: JSON round trip, strictness, immutability and their own rules."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from strategies import RECORD_STRATEGIES

from coevidence.schemas import (
    Encounter,
    Engagement,
    EngagementPhase,
    Organization,
    Provider,
    RelationshipRating,
    StudyDesign,
)


@pytest.mark.parametrize("name", sorted(RECORD_STRATEGIES))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_json_round_trip_is_exact(name: str, data: st.DataObject) -> None:
    """Every record survives model_dump_json -> model_validate_json unchanged."""
    record = data.draw(RECORD_STRATEGIES[name])
    again = type(record).model_validate_json(record.model_dump_json())
    assert again == record
    assert again.model_dump() == record.model_dump()


def test_unknown_fields_are_rejected() -> None:
    """extra='forbid': a typo is an error, never a silently dropped value."""
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Provider(id="P1", kind="researcher", knd="x")


def test_records_are_immutable() -> None:
    p = Provider(id="P1", kind="researcher")
    with pytest.raises(ValidationError):
        p.id = "P2"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("model", "kwargs", "match"),
    [
        (Encounter, {"date": "2024-01-01", "minutes": -5}, "greater than or equal to 0"),
        (Engagement, {"id": "E1", "org_id": "O1", "provider_ids": ("P1",), "ta_model": "push",
                      "start_date": "2024-05-01", "end_date": "2024-01-01"}, "before start_date"),
        (Engagement, {"id": "E1", "org_id": "O1", "provider_ids": (), "ta_model": "push",
                      "start_date": "2024-05-01"}, "at least 1"),
        (Engagement, {"id": "E1", "org_id": "O1", "provider_ids": ("P1",), "ta_model": "none",
                      "start_date": "2024-05-01"}, "cannot be 'none'"),
        (Engagement, {"id": "E1", "org_id": "O1", "provider_ids": ("P1", "P1"), "ta_model": "push",
                      "start_date": "2024-05-01"}, "must not repeat"),
        (Engagement, {"id": "E1", "org_id": "O1", "provider_ids": ("P1",), "ta_model": "push",
                      "start_date": "2024-05-01",
                      "components": [{"id": "a", "order": 1, "introduced_on": "2024-05-01"},
                                     {"id": "b", "order": 1, "introduced_on": "2024-06-01"}]},
         "orders must be unique"),
        (EngagementPhase, {"phase": "implementation", "start_date": "2024-05-01",
                           "end_date": "2024-04-01"}, "before start_date"),
        (RelationshipRating, {"date": "2024-01-01", "rater": "provider", "value": 7}, "outside the rating scale"),
        (Organization, {"id": "bad id with spaces"}, "should match pattern"),
        (StudyDesign, {"id": "s", "arms": [{"id": "a", "ta_model": "push"}],
                       "waves": [{"index": 2, "date": "2024-01-01"}, {"index": 1, "date": "2024-06-01"}],
                       "start_date": "2023-01-01", "end_date": "2025-01-01"}, "wave indices must increase"),
        (StudyDesign, {"id": "s", "arms": [{"id": "a", "ta_model": "push"}, {"id": "a", "ta_model": "none"}],
                       "waves": [{"index": 1, "date": "2024-01-01"}],
                       "start_date": "2023-01-01", "end_date": "2025-01-01"}, "duplicate arm ids"),
        (StudyDesign, {"id": "s", "arms": [{"id": "a", "ta_model": "push"}],
                       "waves": [{"index": 1, "date": "2026-01-01"}],
                       "start_date": "2023-01-01", "end_date": "2025-01-01"}, "outside the study window"),
    ],
)
def test_record_rules(model: type, kwargs: dict, match: str) -> None:
    """Each record enforces its own rules with a message naming the problem."""
    with pytest.raises(ValidationError, match=match):
        model(**kwargs)


def test_engagement_derived_quantities() -> None:
    e = Engagement(id="E1", org_id="O1", provider_ids=("P1",), ta_model="co_creation",
                   start_date=dt.date(2024, 1, 1), end_date=dt.date(2025, 1, 1),
                   encounters=[{"date": "2024-02-01", "minutes": 30}, {"date": "2024-03-01", "minutes": 45.5}])
    assert e.total_minutes == pytest.approx(75.5)
    assert e.duration_years == pytest.approx(366 / 365.25)
    assert Engagement(id="E2", org_id="O1", provider_ids=("P1",), ta_model="push",
                      start_date=dt.date(2024, 1, 1)).duration_years is None
