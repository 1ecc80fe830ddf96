"""score(): every rule against hand computation, validation listing every bad cell, reports."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from coevidence.exceptions import MeasureError, MissingDataWarning, UnverifiedMeasureWarning
from coevidence.measures.registry import get_measure
from coevidence.measures.scoring import ScoreResult, score, score_responses_table
from coevidence.results.base import TIDY_COLUMNS
from coevidence.schemas.measure import MeasureDefinition

pytestmark = pytest.mark.usefixtures("quiet")


def defn(**kw):
    base = {"id": "m", "response_min": 1, "response_max": 5, "items": ("a", "b", "c", "d")}
    return MeasureDefinition(**{**base, **kw})


WIDE = pd.DataFrame({
    "respondent_id": [1, 2, 3],
    "a": [1, 5, 2],
    "b": [2, 4, np.nan],
    "c": [3, 3, np.nan],
    "d": [4, 2, 4],
})


def long_of(wide: pd.DataFrame) -> pd.DataFrame:
    return wide.melt(id_vars="respondent_id", var_name="item", value_name="value").dropna()


def test_mean_and_sum_with_reverse_keys():
    m = defn(reverse_items=("d",), missing={"min_answered": 1})
    r = score(WIDE, m)
    # d reversed: 6 - d -> 2, 4, 2
    assert r.scores["total"].tolist() == pytest.approx([(1 + 2 + 3 + 2) / 4, (5 + 4 + 3 + 4) / 4,
                                                        (2 + 2) / 2])
    s = score(WIDE, defn(scoring="sum", reverse_items=("d",), missing={"min_answered": 1}))
    # sum prorated to 4 items for respondent 3: (2 + 2) * 4 / 2
    assert s.scores["total"].tolist() == pytest.approx([8, 16, 8])
    nopro = score(WIDE, defn(scoring="sum", reverse_items=("d",),
                             missing={"min_answered": 1, "prorate": False}))
    assert nopro.scores["total"].tolist() == pytest.approx([8, 16, 4])


def test_missing_rule_all_items_by_default_and_reported():
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        r = score(WIDE, defn())
    assert np.isnan(r.scores["total"].iloc[2])
    rep = r.report.iloc[0]
    assert (rep["n_units"], rep["n_scored"], rep["n_not_scored"], rep["n_too_few_items"]) == (
        3, 2, 1, 1)
    assert any(issubclass(x.category, MissingDataWarning) and "1 of 3" in str(x.message)
               for x in w)
    long = r.long()
    row = long[long["respondent_id"] == 3].iloc[0]
    assert (row["scored"], row["reason"], row["n_items_answered"], row["n_items"]) == (
        False, "too_few_items", 2, 4)


def test_min_fraction_and_no_items_answered():
    wide = WIDE.copy()
    wide.loc[3] = [4, np.nan, np.nan, np.nan, np.nan]
    r = score(wide, defn(missing={"min_fraction": 0.5}))
    assert r.scores["total"].notna().tolist() == [True, True, True, False]
    rep = r.report.iloc[0]
    assert rep["n_no_items_answered"] == 1 and rep["n_too_few_items"] == 0
    assert rep["n_prorated"] == 1


def test_difference_sum():
    m = defn(response_min=0, response_max=10, scoring="difference_sum",
             subscales=[{"id": "gap", "pairs": [["a", "b"], ["c", "d"]]}],
             missing={"min_answered": 1})
    wide = pd.DataFrame({"respondent_id": [1, 2], "a": [9, 8], "b": [3, np.nan], "c": [7, 5],
                         "d": [7, 1]})
    r = score(wide, m)
    # respondent 2: only the second pair is complete -> (5 - 1) * 2 / 1
    assert r.scores["gap"].tolist() == [6.0 + 0.0, 8.0]
    assert r.long()["n_items_answered"].tolist() == [2, 1]


def test_weighted():
    m = defn(response_min=0, response_max=1, scoring="weighted",
             subscales=[{"id": "w", "items": ["a", "b", "c"],
                         "weights": {"a": 2.0, "b": 1.0, "c": 0.5}}],
             missing={"min_answered": 2})
    wide = pd.DataFrame({"respondent_id": [1, 2], "a": [1, 1], "b": [0, np.nan], "c": [1, 1]})
    r = score(wide, m)
    # respondent 2 prorated by total weight / answered weight = 3.5 / 2.5
    assert r.scores["w"].tolist() == pytest.approx([2.5, 2.5 * 3.5 / 2.5])


def test_custom_scorer_receives_reverse_keyed_values():
    seen = {}

    def scorer(values, items):
        seen["items"] = items
        return np.nanmax(values, axis=1)

    m = defn(scoring="custom", scorer=scorer, reverse_items=("a",), missing={"min_answered": 1})
    r = score(WIDE, m)
    assert seen["items"] == ("a", "b", "c", "d")
    assert r.scores["total"].tolist() == [5.0, 4.0, 4.0]


def test_custom_scorer_nan_is_reported_and_wrong_shape_raises():
    m = defn(scoring="custom", scorer=lambda v, i: np.where(v[:, 0] > 1, v[:, 0], np.nan),
             missing={"min_answered": 1})
    r = score(WIDE, m)
    assert r.report.loc[0, "n_scorer_returned_nan"] == 1
    bad = defn(scoring="custom", scorer=lambda v, i: np.ones(2), missing={"min_answered": 1})
    with pytest.raises(MeasureError, match="shape"):
        score(WIDE, bad)


def test_composite_reverses_adverse_component():
    m = get_measure("ebpas15")
    row = {c: 0 for c in m.items}
    row.update({f"appeal_{i}": 4 for i in range(1, 5)})
    row.update({f"divergence_{i}": 3 for i in range(1, 5)})
    row.update({"openness_1": 2, "openness_2": 2, "openness_3": 1, "openness_4": 1})
    wide = pd.DataFrame([{"respondent_id": "r1", **row}])
    r = score(wide, m).scores.iloc[0]
    assert (r["appeal"], r["requirements"], r["openness"], r["divergence"]) == (4, 0, 1.5, 3)
    # total = mean(appeal, requirements, openness, 4 - divergence)
    assert r["total"] == pytest.approx((4 + 0 + 1.5 + 1) / 4)


def test_seer_sum_and_brownson_gaps():
    seer = get_measure("seer_confidence")
    wide = pd.DataFrame([{"respondent_id": 1, **{c: 5 for c in seer.items}},
                         {"respondent_id": 2, **{c: 1 for c in seer.items}}])
    assert score(wide, seer).scores["total"].tolist() == [35.0, 7.0]
    gaps = get_measure("brownson_ebdm_gaps")
    vals = {c: (8 if c.endswith("_imp") else 5) for c in gaps.items}
    r = score(pd.DataFrame([{"respondent_id": 1, **vals}]), gaps)
    assert r.scores["gap_total"].tolist() == [30.0]


def test_long_equals_wide_and_waves_and_keep():
    m = defn(missing={"min_answered": 1})
    a = score(WIDE, m).scores
    b = score(long_of(WIDE), m).scores
    pd.testing.assert_frame_equal(a, b, check_dtype=False)
    two = pd.concat([long_of(WIDE).assign(wave=0), long_of(WIDE).assign(wave=1)])
    two["org_id"] = two["respondent_id"].map({1: "o1", 2: "o1", 3: "o2"})
    r = score(two, m, keep=["org_id"])
    assert list(r.scores.columns) == ["respondent_id", "wave", "org_id", "total"]
    assert len(r.scores) == 6
    assert r.scores.groupby("wave")["total"].apply(list).tolist() == [a["total"].tolist()] * 2


def test_registered_id_and_unverified_warning():
    m = get_measure("sieu")
    wide = pd.DataFrame([{"respondent_id": 1, **{c: 3 for c in m.items}}])
    with pytest.warns(UnverifiedMeasureWarning, match="sieu"):
        r = score(wide, "sieu")
    assert any("not verified" in n for n in r.notes)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnverifiedMeasureWarning)
        score(pd.DataFrame([{"respondent_id": 1, **{c: 3 for c in get_measure("aim").items}}]),
              "aim")


def test_every_bad_cell_listed_once():
    long = long_of(WIDE).reset_index(drop=True)
    long = long.astype({"value": object})
    long.loc[0, "value"] = 9  # out of range
    long.loc[1, "value"] = "x"  # wrong type
    long.loc[2, "item"] = "zz"  # unknown item
    long.loc[3, "value"] = 2.5  # not a whole number
    long.loc[4, "respondent_id"] = None  # missing id
    long = pd.concat([long, long.iloc[[6]]], ignore_index=True)  # duplicated cell
    with pytest.raises(MeasureError) as info:
        score(long, defn(missing={"min_answered": 1}))
    f = info.value.failures
    assert list(f.columns) == ["table", "row", "column", "value", "rule"]
    got = {(int(r.row), r.column) for r in f.itertuples()}
    assert {(0, "value"), (1, "value"), (2, "item"), (3, "value"), (4, "respondent_id"),
            (6, "item"), (len(long) - 1, "item")} == got
    assert "out of range" in str(info.value) and "wrong type" in str(info.value)


def test_wide_unknown_column_missing_column_duplicates_and_bool():
    m = defn(missing={"min_answered": 1})
    with pytest.raises(MeasureError, match="unknown item code"):
        score(WIDE.assign(arm="x"), m)
    assert score(WIDE.assign(arm="x"), m, keep=["arm"]).scores["arm"].tolist() == ["x"] * 3
    with pytest.raises(MeasureError, match="required column"):
        score(WIDE.drop(columns="respondent_id"), m)
    with pytest.raises(MeasureError, match="duplicated row"):
        score(pd.concat([WIDE, WIDE.iloc[[0]]]), m)
    with pytest.raises(MeasureError, match="wrong type"):
        score(WIDE.assign(a=[True, False, True]), m)
    with pytest.raises(MeasureError, match="wrong type"):
        score(WIDE.assign(a=["1", "2", "3"]), m)
    with pytest.raises(TypeError):
        score(WIDE.to_numpy(), m)
    with pytest.raises(ValueError, match="layout"):
        score(WIDE, m, layout="tall")


def test_items_absent_noted():
    r = score(WIDE.drop(columns="d"), defn(missing={"min_answered": 1}))
    assert any("no response" in n and "d" in n for n in r.notes)
    r2 = score(WIDE.drop(columns="d"), defn(missing={"min_answered": 1},
                                            full_item_set_administered=False))
    assert any("full item set was not administered" in n for n in r2.notes)


def test_other_measure_rows_rejected():
    long = long_of(WIDE).assign(measure_id="m")
    long.iloc[0, long.columns.get_loc("measure_id")] = "other"
    with pytest.raises(MeasureError, match="another measure"):
        score(long, defn(missing={"min_answered": 1}))


def test_input_not_mutated_and_row_order():
    long = long_of(WIDE)
    before = long.copy()
    m = defn(reverse_items=("a",), missing={"min_answered": 1})
    a = score(long, m).scores
    pd.testing.assert_frame_equal(long, before)
    b = score(long.iloc[::-1], m).scores
    pd.testing.assert_frame_equal(a, b)


def test_result_interface():
    r = score(WIDE, defn(missing={"min_answered": 1}))
    assert isinstance(r, ScoreResult)
    assert list(r.tidy().columns) == list(TIDY_COLUMNS)
    t = r.tidy().iloc[0]
    v = r.scores["total"]
    assert t["estimate"] == pytest.approx(v.mean())
    assert t["std_error"] == pytest.approx(v.std() / np.sqrt(3))
    assert len(r.glance()) == 1
    text = r.summary()
    for word in ("Estimator", "Covariance type", "Df method"):
        assert word in text
    with pytest.raises(AttributeError):
        r.measure = None


def test_score_responses_table_contract():
    ebpas = get_measure("ebpas15")
    aim = get_measure("aim")
    rows = []
    for rid, org in [("r1", "o1"), ("r2", "o1")]:
        for wave in (1, 2):
            for c in ebpas.items:
                rows.append((rid, org, "ebpas15", wave, c, 2))
            for c in aim.items:
                rows.append((rid, org, "aim", wave, c, 4))
    t = pd.DataFrame(rows, columns=["respondent_id", "org_id", "measure_id", "wave", "item",
                                    "value"])
    t = t.drop(index=[0]).assign(date=pd.Timestamp("2024-01-01"))  # r1 wave 1 misses one item
    out = score_responses_table(t, {"ebpas15": ebpas, "aim": aim})
    assert list(out.columns) == ["respondent_id", "org_id", "wave", "measure_id", "scale",
                                 "score", "n_items_answered", "n_items", "scored", "reason"]
    assert len(out) == 2 * 2 * (5 + 1)
    assert set(out["measure_id"]) == {"aim", "ebpas15", "ebpas15.appeal", "ebpas15.requirements",
                                      "ebpas15.openness", "ebpas15.divergence"}
    assert (out.loc[out.measure_id == "aim", "score"] == 4).all()
    r1w1 = out[(out.respondent_id == "r1") & (out.wave == 1)].set_index("measure_id")
    assert not r1w1.loc["ebpas15.appeal", "scored"]
    assert r1w1.loc["ebpas15.appeal", "reason"] == "too_few_items"
    assert r1w1.loc["ebpas15", "reason"] == "component_not_scored"
    other = out[(out.respondent_id == "r2")].set_index(["wave", "measure_id"])
    assert other.loc[(1, "ebpas15"), "score"] == pytest.approx((2 + 2 + 2 + 2) / 4)


def test_score_responses_table_collects_errors_across_measures():
    aim = get_measure("aim")
    t = pd.DataFrame({
        "respondent_id": ["r1"] * 3, "org_id": "o", "wave": 1,
        "measure_id": ["aim", "aim", "unknown"], "item": ["aim_1", "zz", "q"],
        "value": [7, 3, 1],
    })
    with pytest.raises(MeasureError) as info:
        score_responses_table(t, {"aim": aim})
    f = info.value.failures
    assert sorted(f["row"].astype(int).tolist()) == [0, 1, 2]
    with pytest.raises(MeasureError, match="required column"):
        score_responses_table(t.drop(columns="org_id"), {"aim": aim})


def test_mixed_type_ids_do_not_crash():
    m = defn(missing={"min_answered": 1})
    long = pd.DataFrame({"respondent_id": [1, "x", "x", 1], "item": ["a", "a", "b", "b"],
                         "value": [1, 2, 3, 4]})
    r = score(long, m).scores.set_index("respondent_id")["total"]
    assert r.to_dict() == {1: 2.5, "x": 2.5}


def test_example_study_table_matches_direct_scoring():
    import coevidence as cv

    study = cv.load_example_study()
    resp = study.responses
    orgs = {r.id: r.org_id for r in study.respondents}
    table = score_responses_table(resp.assign(org_id=resp["respondent_id"].map(orgs)),
                                  study.measures)
    assert set(table["measure_id"]) == set(study.measures)
    for mid, m in study.measures.items():
        direct = score(resp[resp["measure_id"] == mid].drop(columns=["date"]), m).scores
        mine = table[table["measure_id"] == mid].sort_values(["respondent_id", "wave"])
        np.testing.assert_allclose(mine["score"].to_numpy(), direct["total"].to_numpy())
        assert mine["org_id"].tolist() == mine["respondent_id"].map(orgs).tolist()


def test_aggregate_to_organisation():
    m = defn(missing={"min_answered": 1}, aggregation={"method": "median", "min_respondents": 2})
    long = pd.concat([long_of(WIDE).assign(wave=w) for w in (1, 2)], ignore_index=True)
    long["org_id"] = long["respondent_id"].map({1: "o1", 2: "o1", 3: "o2"})
    r = score(long, m, keep=["org_id"])
    agg = r.aggregate("org_id")
    assert list(agg.columns) == ["org_id", "wave", "scale", "n_respondents", "n_not_scored",
                                 "score", "aggregated"]
    o1 = agg[(agg.org_id == "o1") & (agg.wave == 1)].iloc[0]
    per = r.scores[(r.scores.org_id == "o1") & (r.scores.wave == 1)]["total"]
    assert o1["score"] == pytest.approx(per.median()) and o1["n_respondents"] == 2
    o2 = agg[(agg.org_id == "o2")]
    assert o2["score"].isna().all() and not o2["aggregated"].any()  # one respondent < 2
    with pytest.raises(MeasureError, match="keep"):
        r.aggregate("arm")
    none = defn(missing={"min_answered": 1}, aggregation={"method": "none"})
    with pytest.raises(MeasureError, match="must not be aggregated"):
        score(long, none, keep=["org_id"]).aggregate("org_id")
    no_wave = score(long[long.wave == 1].drop(columns="wave"), m, keep=["org_id"])
    assert list(no_wave.aggregate("org_id").columns)[:2] == ["org_id", "scale"]
