"""Study: every cross-record rule, all problems at once, inputs never mutated."""

from __future__ import annotations

import copy

import pandas as pd
import pytest
from conftest import tiny_tables

from coevidence import Study, StudyValidationError
from coevidence.exceptions import MESSAGE_CAP


def build(t: dict) -> Study:
    t = dict(t)
    return Study.from_frames(t.pop("design"), measures=t.pop("measures"), **t)


def failures_of(t: dict) -> pd.DataFrame:
    with pytest.raises(StudyValidationError) as info:
        build(t)
    return info.value.failures


def test_valid_study_builds_and_keeps_everything(tables: dict) -> None:
    study = build(tables)
    assert study.n_units("organization") == 4 and study.n_units("respondent") == 8
    assert len(study.responses) == len(tables["responses"])  # nothing dropped
    assert len(study.scores) == 4
    assert sum(len(e.encounters) for e in study.engagements) == 6


def test_inputs_are_not_mutated(tables: dict) -> None:
    before = copy.deepcopy(tables)
    study = build(tables)
    for name, frame in tables.items():
        if isinstance(frame, pd.DataFrame):
            pd.testing.assert_frame_equal(frame, before[name])
    # and the study's tables are copies: editing them leaves the study unchanged
    r = study.responses
    r.loc[0, "value"] = 99.0
    assert study.responses.loc[0, "value"] != 99.0


RULES = [
    # (table, mutate, expected (table, row, column, value, rule fragment))
    ("organizations", lambda t: t["organizations"].assign(provider_id=["P1", "P1", "P9", "P2"]),
     ("organizations", 2, "provider_id", "P9", "unknown provider id")),
    ("organizations", lambda t: t["organizations"].assign(arm=["push", "push", "cc", "ccc"]),
     ("organizations", 3, "arm", "ccc", "unknown arm id")),
    ("organizations", lambda t: t["organizations"].assign(parent_id=[None, "O7", None, None]),
     ("organizations", 1, "parent_id", "O7", "unknown parent organisation id")),
    ("organizations", lambda t: pd.concat([t["organizations"], t["organizations"].iloc[[2]]], ignore_index=True),
     ("organizations", 4, "id", "O3", "duplicate id")),
    ("providers", lambda t: pd.concat([t["providers"], t["providers"].iloc[[0]]], ignore_index=True),
     ("providers", 2, "id", "P1", "duplicate id")),
    ("respondents", lambda t: t["respondents"].assign(org_id=["O1"] * 7 + ["O5"]),
     ("respondents", 7, "org_id", "O5", "unknown organisation id")),
    ("engagements", lambda t: t["engagements"].assign(org_id=["O1", "O2", "O3", "O8"]),
     ("engagements", 3, "org_id", "O8", "unknown organisation id")),
    ("engagements", lambda t: t["engagements"].assign(provider_ids=["P1", "P1;P7", "P2", "P2"]),
     ("engagements", 1, "provider_ids", "P7", "unknown provider id")),
    ("engagements", lambda t: t["engagements"].assign(ta_model=["push", "co_creation", "co_creation", "co_creation"]),
     ("engagements", 1, "ta_model", "co_creation", "conflicts with the organisation's arm")),
    ("engagements", lambda t: t["engagements"].assign(end_date=["2024-01-01", "2024-10-01", "2024-10-01", None]),
     ("engagements", 0, "end_date", "2024-01-01", "end_date is before start_date")),
    ("encounters", lambda t: t["encounters"].assign(minutes=[60, -30, 90, 15, 45, 20]),
     ("encounters", 1, "minutes", -30, "greater than or equal to 0")),
    ("encounters", lambda t: t["encounters"].assign(date=["2024-02-10", "2024-12-01", "2024-02-05",
                                                          "2024-02-05", "2024-09-01", "2024-03-01"]),
     ("encounters", 1, "date", "2024-12-01", "dated outside its engagement")),
    ("encounters", lambda t: t["encounters"].assign(engagement_id=["E1", "E1", "E3", "E9", "E3", "E4"]),
     ("encounters", 3, "engagement_id", "E9", "unknown engagement id")),
    ("encounters", lambda t: t["encounters"].assign(provider_id=[None, None, "P1", None, None, None]),
     ("encounters", 2, "provider_id", "P1", "not one of the engagement's providers")),
    ("responses", lambda t: pd.concat([t["responses"], t["responses"].iloc[[4]]], ignore_index=True),
     ("responses", 72, "respondent_id,measure_id,wave,item", "R1|ru|2|q2", "duplicate key")),
    ("responses", lambda t: t["responses"].assign(respondent_id=["R99"] + ["R1"] * 0 + t["responses"]["respondent_id"].tolist()[1:]),
     ("responses", 0, "respondent_id", "R99", "unknown respondent id")),
    ("responses", lambda t: t["responses"].assign(wave=[7] + t["responses"]["wave"].tolist()[1:]),
     ("responses", 0, "wave", 7, "unknown wave")),
    ("responses", lambda t: t["responses"].assign(item=["q9"] + t["responses"]["item"].tolist()[1:]),
     ("responses", 0, "item", "q9", "unknown item of ru")),
    ("responses", lambda t: t["responses"].assign(value=[6.0] + t["responses"]["value"].tolist()[1:]),
     ("responses", 0, "value", 6.0, "outside the response range")),
    ("responses", lambda t: t["responses"].assign(measure_id=["xx"] + t["responses"]["measure_id"].tolist()[1:]),
     ("responses", 0, "measure_id", "xx", "unknown measure id")),
    ("responses", lambda t: t["responses"].assign(date=["2030-01-01"] + [None] * 71),
     ("responses", 0, "date", "2030-01-01", "dated outside the study window")),
    ("scores", lambda t: t["scores"].assign(unit_id=["O1", "O2", "O3", "O44"]),
     ("scores", 3, "unit_id", "O44", "unknown organization id")),
    ("scores", lambda t: t["scores"].assign(unit_level=["organization", "school", "organization", "organization"]),
     ("scores", 1, "unit_level", "school", "not one of")),
]


@pytest.mark.parametrize(("table", "mutate", "expected"), RULES, ids=[r[2][4][:30] + f"-{r[0]}" for r in RULES])
def test_each_rule_names_table_row_column_value(table: str, mutate, expected: tuple) -> None:
    t = tiny_tables()
    t[table] = mutate(t)
    f = failures_of(t)
    tab, row, col, value, rule = expected
    hit = f[(f["table"] == tab) & (f["row"] == row) & (f["column"] == col)
            & f["rule"].str.contains(rule, regex=False)]
    assert len(hit) == 1, f.to_string()
    assert hit["value"].item() == value
    assert len(f) == 1, f"expected exactly one problem, got\n{f.to_string()}"


def test_phase_overlap_is_reported(tables: dict) -> None:
    tables["engagement_phases"] = pd.DataFrame({
        "engagement_id": ["E1", "E1"], "phase": ["pre_implementation", "implementation"],
        "start_date": ["2024-02-01", "2024-03-01"], "end_date": ["2024-04-01", "2024-09-01"]})
    f = failures_of(tables)
    assert f[["table", "row", "column", "rule"]].values.tolist() == [
        ["engagement_phases", 1, "start_date", "phase starts before the previous phase ends"]]


def test_all_problems_reported_together_and_message_is_capped(tables: dict) -> None:
    tables["respondents"] = tables["respondents"].assign(org_id="O9")
    tables["encounters"] = tables["encounters"].assign(minutes=-1)
    with pytest.raises(StudyValidationError) as info:
        build(tables)
    err = info.value
    assert set(err.failures["table"]) == {"respondents", "encounters"}
    assert len(err.failures) == 8 + 6
    assert isinstance(err, ValueError)
    msg = str(err)
    assert msg.startswith("14 problems found")
    assert "table 'respondents' row 0, column 'org_id', value 'O9': unknown organisation id" in msg
    big = tiny_tables()
    big["responses"] = big["responses"].assign(value=9.0)
    with pytest.raises(StudyValidationError, match=rf"and {72 - MESSAGE_CAP} more"):
        build(big)


def test_constructor_from_records_runs_the_same_rules(tables: dict) -> None:
    study = build(tables)
    orgs = list(study.organizations)
    orgs[0] = orgs[0].model_copy(update={"provider_id": "P5"})
    with pytest.raises(StudyValidationError, match="unknown provider id"):
        Study(study.design, providers=study.providers, organizations=orgs,
              respondents=study.respondents, engagements=study.engagements,
              measures=study.measures.values())


def test_to_frames_round_trips(tables: dict) -> None:
    study = build(tables)
    again = Study.from_frames(study.design, measures=study.measures.values(), **study.to_frames())
    assert again == study
    assert again != build({**tiny_tables(), "scores": None})


def test_unknown_table_column_is_an_error(tables: dict) -> None:
    tables["providers"] = tables["providers"].assign(knd="x")
    f = failures_of(tables)
    assert f[["table", "column", "rule"]].values.tolist() == [["providers", "knd", "unknown column"]]
