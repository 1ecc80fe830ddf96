"""Fixtures for the data-layer tests: a small valid study as tables."""

from __future__ import annotations

import pandas as pd
import pytest

from coevidence.schemas.measure import MeasureDefinition


def tiny_tables() -> dict:
    """A small valid study: 2 providers, 4 organisations (2 per arm), 8 respondents, 3 waves."""
    design = {
        "id": "tiny", "title": "tiny", "randomisation_unit": "provider",
        "arms": [{"id": "push", "ta_model": "push"}, {"id": "cc", "ta_model": "co_creation"}],
        "waves": [{"index": 1, "date": "2024-01-15"}, {"index": 2, "date": "2024-07-15"},
                  {"index": 3, "date": "2025-01-15"}],
        "start_date": "2024-01-01", "end_date": "2025-03-01",
    }
    measure = MeasureDefinition(id="ru", construct="research_use", level="person",
                                response_min=1, response_max=5, items=("q1", "q2", "q3"))
    oracle = MeasureDefinition(id="oracle", construct="capacity", level="organization",
                               response_min=0, response_max=2, items=tuple(f"d{i}" for i in range(1, 8)))
    providers = pd.DataFrame({"id": ["P1", "P2"], "kind": ["researcher", "intermediary"]})
    organizations = pd.DataFrame({"id": ["O1", "O2", "O3", "O4"], "sector": "education",
                                  "level": "district", "provider_id": ["P1", "P1", "P2", "P2"],
                                  "arm": ["push", "push", "cc", "cc"]})
    respondents = pd.DataFrame({"id": [f"R{i}" for i in range(1, 9)],
                                "org_id": ["O1", "O1", "O2", "O2", "O3", "O3", "O4", "O4"],
                                "role": "staff"})
    engagements = pd.DataFrame({
        "id": ["E1", "E2", "E3", "E4"], "org_id": ["O1", "O2", "O3", "O4"],
        "provider_ids": ["P1", "P1", "P2", "P2"], "ta_model": ["push", "push", "co_creation", "co_creation"],
        "start_date": "2024-02-01", "end_date": ["2024-10-01", "2024-10-01", "2024-10-01", None],
        "joint_diagnosis": [False, False, True, True],
    })
    encounters = pd.DataFrame({
        "engagement_id": ["E1", "E1", "E3", "E3", "E3", "E4"],
        "date": ["2024-02-10", "2024-08-01", "2024-02-05", "2024-02-05", "2024-09-01", "2024-03-01"],
        "minutes": [60, 30, 90, 15, 45, 20], "mode": "video", "activity": "consultation",
        "delivery": "group",
    })
    rows = []
    for r in range(1, 9):
        for w in (1, 2, 3):
            for q in ("q1", "q2", "q3"):
                rows.append({"respondent_id": f"R{r}", "measure_id": "ru", "wave": w, "item": q,
                             "value": float((r + w + int(q[1])) % 5 + 1)})
    responses = pd.DataFrame(rows)
    scores = pd.DataFrame({"unit_level": ["organization"] * 4, "unit_id": ["O1", "O2", "O3", "O4"],
                           "measure_id": "oracle", "wave": 1, "value": [1.0, 1.2, 1.4, 1.6]})
    return {"design": design, "measures": [measure, oracle], "providers": providers,
            "organizations": organizations, "respondents": respondents,
            "engagements": engagements, "encounters": encounters, "responses": responses,
            "scores": scores}


@pytest.fixture
def tables() -> dict:
    return tiny_tables()
