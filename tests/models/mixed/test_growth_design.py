"""fit_growth's design-aware random structure, the between-cluster df rule and the df guard."""

import warnings

import numpy as np
import pandas as pd
import pytest

import coevidence as cv
from coevidence.exceptions import BoundaryFitWarning, DesignDfWarning, ModelSpecificationError
from coevidence.models.mixed.growth import growth_formula

from growth_sim import provider_randomised_panel  # noqa: E402

TERM = "time:ta_modelco_creation"


@pytest.fixture(scope="module")
def panel():
    return provider_randomised_panel(np.random.default_rng(11), sd_prov_slope=0.08)


@pytest.fixture(scope="module")
def res(panel):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return cv.fit_growth(panel, "research_use")


def test_assignment_level_found_in_the_data_and_said(res):
    d = res.growth.design
    assert d.assignment_level == "provider_id" and d.n_clusters == 12 and d.source == "data"
    assert "constant within each of the 12 'provider_id' clusters" in d.reason
    assert res.formula == ("research_use ~ time * ta_model + (1 + time | org_id) + "
                           "(1 + time | provider_id)")
    assert d.random_slopes == (("org_id", True), ("provider_id", "correlated"))
    assert "Arm assigned at 'provider_id'" in d.describe()
    # Satterthwaite df of the arm x time term come from the 12 providers, not the 96 orgs
    assert 8 < res.tidy().set_index("term").loc[TERM, "df"] < 14


def test_organisation_randomised_study_gets_no_provider_slope(panel):
    rng = np.random.default_rng(2)
    orgs = panel["org_id"].unique()
    arm = dict(zip(orgs, rng.permutation(np.resize(["push", "co_creation"], len(orgs)))))
    d = panel.assign(ta_model=panel["org_id"].map(arm))
    r = cv.fit_growth(d, "research_use")
    assert r.growth.design.assignment_level == "org_id"
    assert r.formula.endswith("(1 + time | org_id) + (1 | provider_id)")


def test_assignment_from_study_design_and_argument(panel):
    class Design:
        randomisation_unit = "provider"

    r = cv.fit_growth(panel, "research_use", design=Design())
    assert r.growth.design.source == "study design"
    assert r.growth.design.assignment_level == "provider_id"
    r2 = cv.fit_growth(panel, "research_use", assigned_at="provider_id")
    assert r2.growth.design.source == "argument"
    np.testing.assert_allclose(r2.params, r.params)

    class OrgDesign:
        randomisation_unit = "organization"

    with pytest.raises(ModelSpecificationError, match="not one of levels"):
        cv.fit_growth(panel, "research_use", levels=["provider_id"], design=OrgDesign())
    with pytest.raises(ModelSpecificationError, match="'ta_model' varies within 'w'"):
        cv.fit_growth(panel.assign(w=panel["time"]), "research_use",
                      levels=["w", "org_id"], assigned_at="w")
    with pytest.raises(ModelSpecificationError, match="assigned_at='district'"):
        cv.fit_growth(panel, "research_use", assigned_at="district")


def test_real_study_design_is_used():
    study = cv.load_example_study()
    panel = study.panel(["research_use"], unit="organization")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = cv.fit_growth(panel, "research_use", design=study)
    assert r.growth.design.source == "study design"
    assert r.growth.design.reason == "randomisation_unit='provider'"


def test_per_level_control_and_raw_override(panel):
    f = growth_formula("y", levels=["provider_id", "org_id"], assigned_at="provider_id",
                       random_slopes={"provider_id": "uncorrelated", "org_id": False})
    assert f == "y ~ time * ta_model + (1 | org_id) + (1 | provider_id) + (0 + time | provider_id)"
    r = cv.fit_growth(panel, "research_use", random_slopes={"provider_id": "uncorrelated"})
    assert "(0 + time | provider_id)" in r.formula
    raw = "(1 + time | provider_id) + (1 | org_id)"
    r2 = cv.fit_growth(panel, "research_use", random_effects=raw)
    assert r2.formula == "research_use ~ time * ta_model + " + raw
    assert r2.growth.design.random_effects == raw
    with pytest.raises(ModelSpecificationError, match="random_slopes names 'district'"):
        cv.fit_growth(panel, "research_use", random_slopes={"district": True})
    with pytest.raises(ModelSpecificationError, match=r"random_slopes\['org_id'\]"):
        cv.fit_growth(panel, "research_use", random_slopes={"org_id": "sometimes"})
    with pytest.raises(ModelSpecificationError, match="random_effects"):
        cv.fit_growth(panel, "research_use", random_effects="org_id")
    with pytest.raises(ModelSpecificationError, match="between_df"):
        cv.fit_growth(panel, "research_use", between_df="never")


def test_levels_above_the_assignment_level_get_an_intercept_only(panel):
    region = panel["provider_id"].map(lambda p: f"R{int(p[1:]) % 3}")
    d = panel.assign(region=region)
    # the arm is not constant within regions, so providers stay the assignment level
    r = cv.fit_growth(d, "research_use", levels=["region", "provider_id", "org_id"])
    assert r.growth.design.assignment_level == "provider_id"
    assert "(1 | region)" in r.formula and "(1 + time | provider_id)" in r.formula


def _null_slope_panel():
    """Provider slope variance truly zero: its estimate sits at the boundary."""
    for seed in range(40):
        p = provider_randomised_panel(np.random.default_rng(seed), sd_prov_slope=0.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = cv.fit_growth(p, "research_use", random_slopes={"provider_id": "uncorrelated"},
                              between_df="model")
        if r.growth.design.slope_at_boundary:
            return p, r
    raise AssertionError("no boundary fit found")


def test_boundary_keeps_the_between_cluster_df():
    panel, free = _null_slope_panel()
    assert free.tidy().set_index("term").loc[TERM, "df"] > 40  # fallen back towards #orgs
    with pytest.warns(BoundaryFitWarning):
        auto = cv.fit_growth(panel, "research_use", random_slopes={"provider_id": "uncorrelated"})
    t = auto.tidy().set_index("term")
    assert t.loc[TERM, "df"] == pytest.approx(10.0)
    assert t.loc["ta_modelco_creation", "df"] == pytest.approx(10.0)
    assert auto.growth.design.df_bounded and auto.growth.design.slope_at_boundary
    assert "bounded by 10" in auto.growth.design.describe()
    # contrasts inherit the bound, estimates and SEs are unchanged
    c = cv.contrast(auto, at=[5])
    assert c["df"].max() <= 10.0 + 1e-12
    np.testing.assert_allclose(auto.params, free.params)
    np.testing.assert_allclose(auto.tidy()["std_error"], free.tidy()["std_error"])
    assert auto.df_for(np.array([0, 0, 0, 1.0])) == pytest.approx(10.0)


def test_bound_always_and_model_never(panel, res):
    b = cv.fit_growth(panel, "research_use", between_df="bound")
    assert (b.tidy()["df"] <= 10 + 1e-12).all() and b.growth.design.df_bounded
    m = cv.fit_growth(panel, "research_use", between_df="model")
    pd.testing.assert_frame_equal(m.tidy(), res.tidy())


def test_cr2_clusters_by_the_assignment_level(panel):
    r = cv.fit_growth(panel, "research_use", cov_type="cr2")
    assert r.df_method == "bell_mccaffrey"
    explicit = cv.fit_growth(panel, "research_use", cov_type="cr2", cluster="provider_id")
    pd.testing.assert_frame_equal(r.tidy(), explicit.tidy())
    assert r.tidy().set_index("term").loc[TERM, "df"] < 12


def test_guard_warns_for_the_naive_model_and_names_the_fix(panel):
    panel = panel.assign(ta_model=pd.Categorical(panel["ta_model"], ["push", "co_creation"]))
    naive = "research_use ~ time * ta_model + (1 + time | org_id) + (1 | provider_id)"
    with pytest.warns(DesignDfWarning) as rec:
        cv.fit_mixed(naive, panel)
    msg = str(rec[0].message)
    for part in ("'time:ta_modelco_creation'", "12 levels of 'provider_id'", "satterthwaite",
                 "(1 + time | provider_id)", "cov_type='cr2'"):
        assert part in msg, (part, msg)
    # provider_id not in the model at all: found among the data's label columns
    with pytest.warns(DesignDfWarning, match="'ta_modelco_creation' varies only between"):
        cv.fit_mixed("research_use ~ time * ta_model + (1 + time | org_id)", panel)
    # through fit_growth's override too
    with pytest.warns(DesignDfWarning):
        cv.fit_growth(panel, "research_use", random_slopes={"provider_id": False})


def test_guard_is_quiet_for_valid_models(panel):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cv.fit_mixed("research_use ~ time * ta_model + (1 + time | provider_id) + "
                     "(1 + time | org_id)", panel)
        cv.fit_mixed("research_use ~ time * ta_model + (1 + time | org_id) + (1 | provider_id)",
                     panel, cov_type="cr2", cluster="provider_id")
        # a relabelled copy of the arm is not an assignment level
        cv.fit_mixed("research_use ~ time * ta_model + (1 + time | provider_id) + "
                     "(1 + time | org_id)", panel.assign(arm_label=panel["ta_model"] + "!"))
        # no between-cluster term at all
        cv.fit_mixed("research_use ~ time + (1 + time | org_id)", panel)
    assert not [w for w in caught if issubclass(w.category, DesignDfWarning)]


def test_inputs_not_modified(panel):
    before = panel.copy()
    cv.fit_growth(panel, "research_use")
    pd.testing.assert_frame_equal(panel, before)


def test_summary_and_html_state_the_design(res):
    assert "Arm assigned at 'provider_id'" in res.summary()
    assert "Arm assigned at" in res._repr_html_()


@pytest.mark.parametrize("seed", [0, 1])
def test_contrasts_invariant_to_row_order_and_flip_with_the_reference(panel, seed):
    base = cv.contrast(cv.fit_growth(panel, "research_use"), at=[0, 5])
    shuffled = panel.sample(frac=1.0, random_state=seed)
    again = cv.contrast(cv.fit_growth(shuffled, "research_use"), at=[0, 5])
    np.testing.assert_allclose(again["estimate"], base["estimate"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(again["std_error"], base["std_error"], rtol=1e-4)
    flipped = cv.contrast(cv.fit_growth(panel, "research_use", reference="co_creation"),
                          at=[0, 5])
    np.testing.assert_allclose(flipped["estimate"], -base["estimate"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(flipped["std_error"], base["std_error"], rtol=1e-4)
