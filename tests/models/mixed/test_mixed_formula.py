"""lme4-style formula parsing and problem building."""

import warnings

import numpy as np
import pandas as pd
import pytest

from coevidence.exceptions import MissingDataWarning, ModelSpecificationError
from coevidence.models.mixed.formula import build_problem, parse_formula


@pytest.fixture
def df():
    rng = np.random.default_rng(1)
    n = 60
    return pd.DataFrame(
        {
            "y": rng.normal(size=n),
            "time": np.tile(np.arange(3.0), 20),
            "ta_model": np.repeat(["push", "co_creation"], 30),
            "provider_id": np.repeat(["P1", "P2", "P3", "P4"], 15),
            "org_local": np.tile(np.repeat(["A", "B", "C", "D", "E"], 3), 4),
        }
    )


def test_fixed_names_follow_r_treatment_contrasts(df):
    p, _ = build_problem("y ~ time * ta_model + (1 | provider_id)", df)
    # alphabetical levels as R: co_creation is the reference for a character column
    assert p.fixed_names == ("(Intercept)", "time", "ta_modelpush", "time:ta_modelpush")
    d2 = df.assign(ta_model=pd.Categorical(df["ta_model"], ["push", "co_creation"]))
    p2, _ = build_problem("y ~ ta_model * time + (1 | provider_id)", d2)
    assert p2.fixed_names == ("(Intercept)", "ta_modelco_creation", "time",
                              "ta_modelco_creation:time")


def test_interaction_names_use_first_appearance_order():
    from coevidence.models.mixed.datasets import load_dataset

    p, _ = build_problem("m_ach ~ meanses * cses + sector * cses + (cses | school)",
                         load_dataset("hsb82"))
    assert p.fixed_names[-1] == "cses:sectorCatholic"


def test_nested_grouping_recodes_inner_ids_uniquely(df):
    p, info = build_problem("y ~ time + (1 | provider_id/org_local)", df)
    groups = [t.group for t in p.terms]
    assert groups == ["org_local:provider_id", "provider_id"]
    inner = p.terms[0]
    assert inner.n_levels == 20  # 5 local ids x 4 providers, not 5
    assert "A:P1" in inner.levels and "A:P2" in inner.levels
    # the same label in two providers gets two codes
    a1 = inner.codes[(df["org_local"] == "A") & (df["provider_id"] == "P1")]
    a2 = inner.codes[(df["org_local"] == "A") & (df["provider_id"] == "P2")]
    assert len(set(a1)) == 1 and set(a1) != set(a2)
    assert info.group_columns == ("provider_id", "org_local")


@pytest.mark.parametrize(
    ("formula", "cols", "corr"),
    [
        ("y ~ time + (1 + time | provider_id)", [("(Intercept)", "time")], [True]),
        ("y ~ time + (time | provider_id)", [("(Intercept)", "time")], [True]),
        ("y ~ time + (0 + time | provider_id)", [("time",)], [False]),
        ("y ~ time + (1 | provider_id) + (0 + time | provider_id)",
         [("(Intercept)",), ("time",)], [False, False]),
        ("y ~ time + (1 + time || provider_id)", [("(Intercept)",), ("time",)], [False, False]),
    ],
)
def test_random_term_shapes(df, formula, cols, corr):
    p, _ = build_problem(formula, df)
    assert [t.columns for t in p.terms] == cols
    assert [t.correlated for t in p.terms] == corr
    for t in p.terms:
        assert t.Z.shape == (len(df), len(t.columns))
        if "time" in t.columns:
            np.testing.assert_array_equal(t.Z[:, t.columns.index("time")], df["time"])


def test_lme4_term_order_reverses_ties_when_reordering(df):
    d = df.assign(org=df["provider_id"] + df["org_local"])
    p, _ = build_problem("y ~ time + (1 | provider_id) + (1 | org) + (0 + time | org)", d)
    assert [(t.group, t.columns) for t in p.terms] == [
        ("org", ("time",)), ("org", ("(Intercept)",)), ("provider_id", ("(Intercept)",))]


def test_missing_rows_dropped_with_count_and_input_untouched(df):
    d = df.copy()
    d.loc[[3, 10], "y"] = np.nan
    d.loc[20, "time"] = np.nan
    before = d.copy()
    with pytest.warns(MissingDataWarning, match="3 of 60 rows dropped"):
        p, info = build_problem("y ~ time + (1 | provider_id)", d)
    pd.testing.assert_frame_equal(d, before)
    assert len(p.y) == 57 and info.n_dropped == 3
    assert info.dropped_by_column == {"y": 2, "time": 1}
    assert 3 not in info.row_index and 4 in info.row_index


def test_no_warning_without_missing(df):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        problem, _ = build_problem("y ~ time + (1 | provider_id)", df)
    assert len(problem.y) == len(df)


@pytest.mark.parametrize(
    ("formula", "match"),
    [
        ("y time", "exactly one '~'"),
        ("y ~ time", "no random-effects term"),
        ("y ~ time + (1 | nope)", "nope"),
        ("y ~ time + ( | provider_id)", "nothing left"),
        ("y ~ time + (1 | provider_id/org_local:x)", "cannot mix"),
        ("log(y) ~ time + (1 | provider_id)", "outcome"),
        ("ta_model ~ time + (1 | provider_id)", "numeric"),
    ],
)
def test_bad_formulas_raise_clear_errors(df, formula, match):
    with pytest.raises(ModelSpecificationError, match=match):
        build_problem(formula, df)


def test_rank_deficient_fixed_part_is_refused(df):
    d = df.assign(time2=df["time"] * 2)
    with pytest.raises(ModelSpecificationError, match="rank deficient"):
        build_problem("y ~ time + time2 + (1 | provider_id)", d)


def test_parse_formula_expands_nesting_and_double_bar():
    p = parse_formula("y ~ x + (1 + t || a/b)")
    assert [(r.expr, r.group, r.correlated) for r in p.random] == [
        ("1", "a", False), ("0 + t", "a", False), ("1", "b:a", False), ("0 + t", "b:a", False)]
