"""fit_panel: input validation, options that must change the output, and result behaviour."""

import warnings

import numpy as np
import pandas as pd
import pytest

import coevidence as cv
from coevidence.datasets.panel import load_grunfeld
from coevidence.exceptions import (
    FewClustersWarning,
    MissingDataWarning,
    ModelSpecificationError,
    StudyValidationError,
)
from coevidence.results.base import TIDY_COLUMNS

KW = {"unit": "firm", "time": "year", "regressors": ["value", "capital"]}


@pytest.fixture
def g():
    return load_grunfeld()


def test_duplicated_unit_time_rows_are_named(g):
    bad = pd.concat([g, g.iloc[[5]]], ignore_index=True)
    with pytest.raises(StudyValidationError) as err:
        cv.fit_panel(bad, "inv", **KW)
    f = err.value.failures
    assert sorted(f["row"]) == [5, 200]
    assert "duplicated firm x year" in str(err.value) and "row 200" in str(err.value)


def test_missing_identifiers_are_named(g):
    bad = g.astype({"firm": float})
    bad.loc[7, "firm"] = np.nan
    bad.loc[9, "year"] = np.nan if False else bad.loc[9, "year"]
    with pytest.raises(StudyValidationError, match=r"row 7, column 'firm'.*missing identifier"):
        cv.fit_panel(bad, "inv", **KW)


def test_missing_column_and_non_numeric(g):
    with pytest.raises(StudyValidationError, match="'nope'.*column not found"):
        cv.fit_panel(g, "inv", unit="firm", time="year", regressors=["value", "nope"])
    with pytest.raises(StudyValidationError, match="'value'.*numeric"):
        cv.fit_panel(g.assign(value=g["value"].astype(str)), "inv", **KW)
    with pytest.raises(StudyValidationError, match="'org_id'"):
        cv.fit_panel(g, "inv", regressors=["value"])  # default unit/time are the study panel's


def test_missing_values_are_dropped_with_a_count_and_input_untouched(g):
    h = g.copy()
    h.loc[[3, 50], "inv"] = np.nan
    before = h.copy()
    with pytest.warns(MissingDataWarning, match="dropped 2 of 200"):
        res = cv.fit_panel(h, "inv", **KW)
    pd.testing.assert_frame_equal(h, before)
    assert res.nobs == 198 and res.diagnostics.n_dropped_missing == 2
    assert not res.diagnostics.balanced
    assert "Rows dropped for missing values: 2" in res.summary()


def test_row_order_does_not_matter_and_input_not_mutated(g):
    shuffled = g.sample(frac=1.0, random_state=3)
    before = shuffled.copy()
    a = cv.fit_panel(g, "inv", **KW, estimator="first_difference")
    b = cv.fit_panel(shuffled, "inv", **KW, estimator="first_difference")
    pd.testing.assert_frame_equal(shuffled, before)
    np.testing.assert_allclose(a.params, b.params, rtol=1e-12)
    assert a.diagnostics.n_dropped_differencing == 10


def test_first_difference_skips_gaps(g):
    # periods are the distinct time values present; firms 1-3 miss 1940, so their 1941 rows
    # have no first difference
    h = g[~((g["year"] == 1940) & (g["firm"] <= 3))]
    res = cv.fit_panel(h, "inv", **KW, estimator="first_difference")
    assert res.nobs == 197 - 10 - 3
    assert res.diagnostics.n_dropped_differencing == 13
    assert any("gap" in n for n in res.diagnostics.notes)


def test_formula_equals_regressors_and_categoricals_work(g):
    a = cv.fit_panel(g, "inv", **KW, estimator="pooled")
    b = cv.fit_panel(
        g, formula="inv ~ value + capital", unit="firm", time="year", estimator="pooled"
    )
    pd.testing.assert_series_equal(a.params, b.params)
    c = cv.fit_panel(
        g.assign(big=np.where(g["firm"] <= 3, "yes", "no")),
        formula="value + C(big):capital",
        outcome="inv",
        unit="firm",
        time="year",
    )
    assert len(c.params) == 3
    with pytest.raises(ValueError, match="exactly one"):
        cv.fit_panel(g, "inv", unit="firm", time="year")


def test_absorbed_regressor_is_named(g):
    h = g.assign(size=g["firm"] * 2.0)
    with pytest.raises(ModelSpecificationError, match="'size'.*absorbed by the unit effects"):
        cv.fit_panel(h, "inv", unit="firm", time="year", regressors=["value", "size"])


def test_invalid_option_combinations(g):
    with pytest.raises(ModelSpecificationError, match="random"):
        cv.fit_panel(g, "inv", **KW, estimator="random", effects="twoway")
    with pytest.raises(ValueError, match="cov_type must be"):
        cv.fit_panel(g, "inv", **KW, cov_type="HC3")
    with pytest.raises(ValueError, match="cluster=.firm. would be ignored"):
        cv.fit_panel(g, "inv", **KW, cluster="firm")
    with pytest.raises(ValueError, match="small_sample"):
        cv.fit_panel(g, "inv", **KW, cov_type="clustered", small_sample="stata13")


def test_small_sample_and_cov_options_change_output(g):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FewClustersWarning)
        ses = {
            ss: cv.fit_panel(g, "inv", **KW, cov_type="clustered", small_sample=ss).std_errors["value"]
            for ss in ("none", "plm_hc1", "plm_sss", "stata")
        }
    assert len(set(np.round(list(ses.values()), 12))) == 4
    r0 = cv.fit_panel(g, "inv", **KW, cov_type="robust", small_sample="none").std_errors
    r1 = cv.fit_panel(g, "inv", **KW, cov_type="robust").std_errors
    np.testing.assert_allclose((r1 / r0) ** 2, 200 / 188)


def test_few_clusters_warning_only_for_cr1_and_recorded(g):
    with pytest.warns(FewClustersWarning, match=r"only 10 clusters .* \(< 42\)"):
        res = cv.fit_panel(g, "inv", **KW, cov_type="clustered")
    assert res.diagnostics.few_clusters and "only 10 clusters" in res.summary()
    with warnings.catch_warnings():
        warnings.simplefilter("error", FewClustersWarning)
        cr2 = cv.fit_panel(g, "inv", **KW, cov_type="cr2")
    assert cr2.diagnostics.few_clusters


def test_wild_cluster_bootstrap(g):
    a = cv.fit_panel(g, "inv", **KW, cov_type="wild_bootstrap", seed=11, bootstrap_reps=399)
    b = cv.fit_panel(g, "inv", **KW, cov_type="wild_bootstrap", seed=11, bootstrap_reps=399)
    c = cv.fit_panel(
        g, "inv", **KW, cov_type="wild_bootstrap", seed=11, bootstrap_reps=399, bootstrap_weights="webb"
    )
    pd.testing.assert_frame_equal(a.tidy(), b.tidy())
    assert not np.allclose(a.tidy()["p_value"], c.tidy()["p_value"])
    t = a.tidy()
    # p = share of bootstrap |t*| >= |t| (can be 0 with few draws); intervals contain the estimate
    assert (t["p_value"] >= 0).all() and (t["p_value"] <= 1).all()
    assert t["p_value"].iloc[1] * 399 == pytest.approx(round(t["p_value"].iloc[1] * 399))
    assert (t["conf_low"] < t["estimate"]).all() and (t["estimate"] < t["conf_high"]).all()
    assert "wild cluster bootstrap" in a.summary()
    with pytest.raises(ValueError, match="conf_level"):
        a.tidy(conf_level=0.9)
    # a coefficient that is truly zero: WCR p-values are roughly uniform, not tiny
    rng = np.random.default_rng(0)
    noise = g.assign(z=rng.normal(size=len(g)))
    pz = (
        cv.fit_panel(
            noise,
            "inv",
            unit="firm",
            time="year",
            regressors=["value", "z"],
            cov_type="wild_bootstrap",
            seed=2,
            bootstrap_reps=199,
        )
        .tidy()
        .set_index("term")["p_value"]
    )
    assert pz["z"] > 0.05 and pz["value"] < 0.05


def test_result_interface(g):
    res = cv.fit_panel(g, "inv", **KW, cov_type="cr2")
    tid = res.tidy()
    assert tuple(tid.columns) == TIDY_COLUMNS
    assert res.glance().shape[0] == 1
    s = res.summary()
    for text in (
        "within (fixed effects)",
        "Covariance: cluster-robust CR2",
        "Small-sample convention",
        "Degrees of freedom for tests",
    ):
        assert text in s
    assert "<table" in res._repr_html_()
    with pytest.raises(AttributeError, match="immutable"):
        res.params = None
    narrow = res.tidy(conf_level=0.5)
    assert (narrow["conf_high"] - narrow["conf_low"] < tid["conf_high"] - tid["conf_low"]).all()


def test_wild_bootstrap_conf_level(g):
    a = cv.fit_panel(g, "inv", **KW, cov_type="wild_bootstrap", seed=1, bootstrap_reps=299).tidy()
    b = cv.fit_panel(
        g, "inv", **KW, cov_type="wild_bootstrap", seed=1, bootstrap_reps=299, conf_level=0.8
    ).tidy(conf_level=0.8)
    assert ((b["conf_high"] - b["conf_low"]) < (a["conf_high"] - a["conf_low"])).all()
    np.testing.assert_array_equal(a["p_value"], b["p_value"])


@pytest.mark.parametrize("estimator", ["within", "pooled", "random", "first_difference"])
def test_relabelling_and_reordering_do_not_change_estimates(g, estimator):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    base = cv.fit_panel(g, "inv", **KW, estimator=estimator, cov_type="cr2")

    @settings(max_examples=8, deadline=None)
    @given(st.permutations(list(range(1, 11))), st.integers(0, 2**31 - 1))
    def check(perm, seed):
        relabel = dict(zip(range(1, 11), [f"f{p:02d}" for p in perm], strict=True))
        h = g.assign(firm=g["firm"].map(relabel)).sample(frac=1.0, random_state=seed)
        res = cv.fit_panel(h, "inv", **KW, estimator=estimator, cov_type="cr2")
        np.testing.assert_allclose(res.params, base.params, rtol=1e-10)
        np.testing.assert_allclose(res.std_errors, base.std_errors, rtol=1e-8)
        np.testing.assert_allclose(res.df, base.df, rtol=1e-8)

    check()


def test_collinear_regressors_and_unused_categories(g):
    h = g.assign(v2=g["value"] * 2.0)
    with pytest.raises(ModelSpecificationError, match="collinear"):
        cv.fit_panel(
            h, "inv", unit="firm", time="year", regressors=["value", "v2"], estimator="pooled"
        )
    with pytest.raises(ModelSpecificationError, match=r"\['zero'\] are zero"):
        cv.fit_panel(
            g.assign(zero=0.0), "inv", unit="firm", time="year", regressors=["value", "zero"]
        )
    cat = pd.Categorical(
        np.where(g["year"] < 1945, "early", "late"), categories=["early", "late", "never"]
    )
    res = cv.fit_panel(g.assign(era=cat), formula="inv ~ value + C(era)", unit="firm", time="year")
    assert list(res.params.index) == ["value", "C(era)[T.late]"]


def test_formula_transforms_drop_their_missing_rows():
    """A column used only inside a transform (``scale(x)``, ``np.log(x)``) has its missing
    rows dropped and counted like any other (it crashed with 'Empty data passed' before)."""
    import warnings

    import coevidence as cv
    from coevidence.exceptions import MissingDataWarning

    rng = np.random.default_rng(0)
    d = pd.DataFrame({"u": np.repeat(range(20), 3), "t": np.tile(range(3), 20),
                      "x": rng.uniform(1, 2, 60)})
    d["y"] = d["x"] + rng.normal(size=60)
    d.loc[[3, 10], "x"] = np.nan
    for f in ("scale(x)", "np.log(x)"):
        with pytest.warns(MissingDataWarning, match="dropped 2 of 60"):
            r = cv.fit_panel(d, "y", unit="u", time="t", formula=f, estimator="pooled")
        assert r.nobs == 58
        kept = d.dropna()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = cv.fit_panel(kept.assign(z=np.log(kept["x"]) if f.startswith("np") else
                                           (kept["x"] - kept["x"].mean()) / kept["x"].std()),
                               "y", unit="u", time="t", formula="z", estimator="pooled")
        assert r.tidy()["estimate"].iloc[1] == pytest.approx(ref.tidy()["estimate"].iloc[1],
                                                            rel=1e-10)
