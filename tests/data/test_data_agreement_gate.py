"""The aggregation gate: measures that require an agreement check are checked by study.panel()."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_tables

import coevidence as cv
from coevidence import Study
from coevidence.data.panel import AGREEMENT_REPORT_COLUMNS
from coevidence.exceptions import (
    AgreementWarning,
    MeasureError,
    MissingDataWarning,
    StudyValidationError,
)
from coevidence.measures.agreement import agreement

ITEMS = ("q1", "q2", "q3")


def _responses(value) -> pd.DataFrame:
    """Item responses of the tiny study's 8 respondents (2 per organisation), 3 waves."""
    rows = []
    for r in range(1, 9):
        org = (r - 1) // 2  # R1, R2 -> O1 (0); R3, R4 -> O2 (1); ...
        for w in (1, 2, 3):
            for q in ITEMS:
                rows.append({"respondent_id": f"R{r}", "measure_id": "ru", "wave": w, "item": q,
                             "value": float(value(org, r, w, int(q[1])))})
    return pd.DataFrame(rows)


def agreeing(org: int, r: int, w: int, q: int) -> int:
    """Members of an organisation agree (one item one point apart), organisations differ."""
    return 1 + org + (1 if (r % 2 == 0 and q == 3) else 0)


def disagreeing(org: int, r: int, w: int, q: int) -> int:
    """Within each organisation one member answers 1, the other 5: no agreement, no ICC."""
    return 1 if r % 2 else 5


def make_study(value=agreeing, *, check: bool = True, criteria: dict | None = None,
               min_respondents: int = 1, **changes) -> Study:
    t = tiny_tables()
    ru = t["measures"][0]
    rule = {"method": "mean", "min_respondents": min_respondents, "check_agreement": check}
    if criteria is not None:
        rule["agreement"] = criteria
    t["measures"][0] = ru.model_copy(update={
        "aggregation": type(ru.aggregation).model_validate(rule)})
    t["responses"] = _responses(value)
    t.update(changes)
    return Study.from_frames(t.pop("design"), measures=t.pop("measures"), **t)


def test_agreeing_scores_pass_silently() -> None:
    study = make_study(agreeing)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AgreementWarning)
        p = study.panel(unit="organization")
    assert p["ru"].notna().all()
    rep = study.agreement_report()
    assert list(rep.columns) == list(AGREEMENT_REPORT_COLUMNS)
    assert rep["measure_id"].tolist() == ["ru"] * 3 and rep["wave"].tolist() == [1, 2, 3]
    assert rep["supported"].tolist() == [True, True, True]
    assert (rep["failed"] == "").all() and (rep["note"] == "").all()
    assert (rep["n_units"] == 4).all() and (rep["n_respondents"] == 8).all()


def test_report_matches_agreement_on_each_wave() -> None:
    study = make_study(agreeing)
    rep = study.agreement_report().set_index("wave")
    resp = study.responses
    org = {r.id: r.org_id for r in study.respondents}
    for w in (1, 2, 3):
        wide = (resp[resp["wave"] == w].pivot(index="respondent_id", columns="item", values="value")
                .assign(org_id=lambda d: d.index.map(org)))
        ref = agreement(wide, unit="org_id", scale_range=(1, 5))
        assert rep.loc[w, "icc1"] == pytest.approx(ref.icc1, abs=1e-12)
        assert rep.loc[w, "icc2"] == pytest.approx(ref.icc2, abs=1e-12)
        assert rep.loc[w, "f_value"] == pytest.approx(ref.f_value, rel=1e-12)
        assert rep.loc[w, "median_rwg_j"] == pytest.approx(float(ref.per_unit["rwg_j"].median()))
        assert rep.loc[w, "mean_rwg_j"] == pytest.approx(float(ref.per_unit["rwg_j"].mean()))
        assert rep.loc[w, "n_units_rwg_j"] == 4


def test_failing_scores_warn_naming_measure_statistic_value_and_criterion() -> None:
    study = make_study(disagreeing)
    with pytest.warns(AgreementWarning) as rec:
        p = study.panel(unit="organization")
    messages = [str(w.message) for w in rec if issubclass(w.category, AgreementWarning)]
    assert len(messages) == 1  # one warning per outcome, every wave in it
    msg = messages[0]
    assert msg.startswith("ru: respondent scores of measure 'ru'")
    for part in ("wave 1:", "wave 3:", "median r_wg(j) = 0.000, needs >= 0.7 (rwg_min)",
                 "ICC(1) = ", "(icc1_min)", "strict_agreement=True"):
        assert part in msg, part
    assert p["ru"].notna().all()  # aggregated anyway (3 = mean of 1 and 5)
    assert (p["ru"] == 3.0).all()
    rep = study.agreement_report()
    assert rep["supported"].tolist() == [False, False, False]
    assert rep["failed"].str.contains("rwg_min").all()


def test_strict_option_raises_a_typed_error_with_every_failure() -> None:
    study = make_study(disagreeing)
    with pytest.raises(MeasureError, match="strict_agreement") as info:
        study.panel(unit="organization", strict_agreement=True)
    f = info.value.failures
    assert isinstance(info.value, ValueError)
    assert set(f["column"]) == {"ru"} and set(f["table"]) == {"responses"}
    assert f["rule"].str.startswith("wave ").all()
    rwg = f[f["rule"].str.contains("rwg_min")]
    assert len(rwg) == 3 and (rwg["value"] == 0.0).all()
    # agreeing data: strict is silent
    make_study(agreeing).panel(strict_agreement=True)


def test_bad_strict_argument() -> None:
    with pytest.raises(StudyValidationError, match="strict_agreement"):
        make_study().panel(strict_agreement="yes")  # type: ignore[arg-type]


def test_not_checked_without_the_flag_or_at_respondent_level() -> None:
    study = make_study(disagreeing, check=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AgreementWarning)
        study.panel()
        make_study(disagreeing).panel(unit="respondent", strict_agreement=True)
    assert study.agreement_report().empty
    assert list(study.agreement_report().columns) == list(AGREEMENT_REPORT_COLUMNS)
    # any outcome with respondent scores can be checked on request
    assert study.agreement_report(["ru"])["supported"].tolist() == [False] * 3


def test_criteria_come_from_the_measure() -> None:
    # ICC(2) of the agreeing data is high; a criterion set to None is not checked
    lax = make_study(disagreeing, criteria={"icc1_min": None, "f_alpha": None, "icc2_min": None,
                                            "rwg_min": None})
    with warnings.catch_warnings():
        warnings.simplefilter("error", AgreementWarning)
        lax.panel()
    assert lax.agreement_report()["supported"].tolist() == [True] * 3
    only_rwg = make_study(disagreeing, criteria={"icc1_min": None, "f_alpha": None,
                                                 "icc2_min": None, "rwg_min": 0.7})
    rep = only_rwg.agreement_report()
    only = r"median r_wg\(j\) = 0\.000, needs >= 0\.7 \(rwg_min\)"
    assert rep["failed"].str.fullmatch(only).all()
    strict_icc2 = make_study(agreeing, criteria={"icc2_min": 0.9999})
    icc2 = r"ICC\(2\) = 0\.9\d\d, needs >= 0\.9999 \(icc2_min\)"
    with pytest.warns(AgreementWarning, match=icc2):
        strict_icc2.panel()


def test_min_respondents_limits_the_units_checked() -> None:
    # R2 (O1) skips every item at wave 3: O1 has one scored respondent there
    resp = _responses(agreeing)
    skip = (resp["respondent_id"] == "R2") & (resp["wave"] == 3)
    resp["value"] = resp["value"].where(~skip)
    study = make_study(agreeing, min_respondents=2, responses=resp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingDataWarning)
        rep = study.agreement_report().set_index("wave")
    assert rep.loc[1, "n_units"] == 4 and rep.loc[3, "n_units"] == 3
    assert rep.loc[3, "n_respondents"] == 6


def test_too_few_units_is_reported_not_failed() -> None:
    # only O1 answers at wave 2: nothing can be computed there
    resp = _responses(agreeing)
    resp = resp[~((resp["wave"] == 2) & ~resp["respondent_id"].isin(["R1", "R2"]))]
    study = make_study(agreeing, responses=resp.reset_index(drop=True))
    rep = study.agreement_report().set_index("wave")
    assert rep.loc[2, "n_units"] == 1 and np.isnan(rep.loc[2, "icc1"])
    assert rep.loc[2, "supported"] is pd.NA and rep.loc[2, "failed"] == ""
    assert "fewer than 2 organisations" in rep.loc[2, "note"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", AgreementWarning)
        study.panel(strict_agreement=True)


def test_scores_without_items_leave_rwg_missing_with_a_note() -> None:
    t = tiny_tables()
    scores = pd.DataFrame({"unit_level": "respondent", "unit_id": [f"R{i}" for i in range(1, 9)],
                           "measure_id": "ru", "wave": 1,
                           "value": [1.0, 1.2, 2.0, 2.1, 3.0, 3.3, 4.0, 4.2]})
    study = make_study(agreeing, responses=t["responses"].iloc[0:0], scores=scores)
    rep = study.agreement_report()
    assert len(rep) == 1 and np.isnan(rep.loc[0, "median_rwg_j"])
    assert "needs item responses" in rep.loc[0, "note"]
    assert rep.loc[0, "supported"] is pd.NA  # ICC criteria met, r_wg(j) not assessable
    assert rep.loc[0, "icc1"] > 0.9


def test_builtin_oric_is_checked_per_subscale() -> None:
    oric = cv.get_measure("oric")
    assert oric.aggregation.check_agreement
    t = tiny_tables()
    rows = []
    for r in range(1, 9):
        org = (r - 1) // 2
        for w in (1, 2, 3):
            for item in oric.items:
                good = item.startswith("commitment")  # commitment: agreement; efficacy: none
                value = 1 + org if good else (1 if r % 2 else 5)
                rows.append({"respondent_id": f"R{r}", "measure_id": "oric", "wave": w,
                             "item": item, "value": float(value)})
    t["responses"] = pd.DataFrame(rows)
    t["measures"] = [oric, t["measures"][1]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cv.CoevidenceWarning)
        study = Study.from_frames(t.pop("design"), measures=t.pop("measures"), **t)
    with pytest.warns(AgreementWarning, match=r"^oric\.change_efficacy: .*measure 'oric'") as rec:
        study.panel()
    assert not any("change_commitment" in str(w.message) for w in rec
                   if issubclass(w.category, AgreementWarning))
    rep = study.agreement_report()
    assert sorted(rep["measure_id"].unique()) == ["oric.change_commitment", "oric.change_efficacy"]
    ok = rep.set_index("measure_id")["supported"]
    assert ok.loc["oric.change_commitment"].tolist() == [True] * 3
    assert ok.loc["oric.change_efficacy"].tolist() == [False] * 3


def test_report_errors_name_the_outcome() -> None:
    study = make_study()
    with pytest.raises(MeasureError, match="'nope'") as info:
        study.agreement_report(["nope"])
    assert info.value.failures.loc[0, "column"] == "measure_id"
    with pytest.raises(MeasureError, match="'oracle'.*no respondent-level scores"):
        study.agreement_report(["oracle"])  # organisation-level scores: nothing to check


def test_report_is_cached_and_a_copy() -> None:
    study = make_study(disagreeing)
    a = study.agreement_report()
    a.loc[0, "icc1"] = 99.0
    b = study.agreement_report()
    assert b.loc[0, "icc1"] != 99.0
    pd.testing.assert_frame_equal(b, study.agreement_report("ru"))


def test_example_study_panel_raises_no_agreement_warning() -> None:
    study = cv.load_example_study()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingDataWarning)
        warnings.simplefilter("error", AgreementWarning)
        study.panel()
        study.panel(strict_agreement=True)
        assert study.agreement_report().empty  # no built-in-gated measure in the example
        rep = study.agreement_report(["research_use", "capacity"])
    assert len(rep) == 12 and (rep["n_units"] == 180).all()
    first = rep.iloc[0]
    assert (first["measure_id"], first["wave"]) == ("research_use", 1)
    assert first["icc1"] == pytest.approx(0.327, abs=5e-4)
    assert first["icc2"] == pytest.approx(0.660, abs=5e-4)
    assert first["median_rwg_j"] == pytest.approx(0.942, abs=5e-4)
    # the ranges docs/study_data.md quotes: with about 4 respondents per organisation ICC(2)
    # stays below .70 except for research use at waves 5 and 6
    r = rep.round(2)
    assert r["median_rwg_j"].between(0.93, 0.95).all() and r["icc1"].between(0.26, 0.46).all()
    assert r["icc2"].between(0.59, 0.74).all() and (rep["f_p_value"] < 1e-10).all()
    assert (r["icc1"].min(), r["icc1"].max(), r["icc2"].min(), r["icc2"].max()) == (
        0.26, 0.46, 0.59, 0.74)
    above = rep[rep["icc2"] >= 0.70]
    assert above[["measure_id", "wave"]].values.tolist() == [["research_use", 5],
                                                             ["research_use", 6]]
