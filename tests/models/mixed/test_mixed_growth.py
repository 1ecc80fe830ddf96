"""fit_growth, contrasts, effect sizes, p adjustment, compare tables, predict, engines."""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import coevidence as cv
from coevidence.exceptions import ModelSpecificationError
from coevidence.models.mixed import api
from coevidence.models.mixed.datasets import load_dataset

from mixed_helpers import simulate_panel  # noqa: E402


@pytest.fixture(scope="module")
def panel():
    return simulate_panel(seed=3)


@pytest.fixture(scope="module")
def res(panel):
    return cv.fit_growth(panel, "research_use", random_slope="uncorrelated",
                         engine="statsmodels")


def test_growth_formula_and_reference_arm(res, panel):
    assert res.formula == ("research_use ~ time * ta_model + (1 | org_id) + "
                           "(0 + time | org_id) + (1 + time | provider_id)")
    assert res.growth.design.assignment_level == "provider_id"
    assert res.params.index.tolist() == ["(Intercept)", "time", "ta_modelco_creation",
                                         "time:ta_modelco_creation"]
    alt = cv.fit_growth(panel, "research_use", reference="co_creation", random_slope=False,
                        engine="statsmodels")
    assert "ta_modelpush" in alt.params.index
    base = cv.fit_growth(panel, "research_use", random_slope=False, engine="statsmodels")
    assert alt.params["time:ta_modelpush"] == pytest.approx(
        -base.params["time:ta_modelco_creation"], rel=1e-6)


def test_contrast_at_waves_and_slope_difference_match_coefficients(res):
    tab = cv.contrast(res, at=[0, 4])
    b, V = res.params.to_numpy(), res.vcov.to_numpy()
    for t, row in zip([0, 4], tab.iloc[:2].itertuples()):
        L = np.array([0, 0, 1, t])
        assert row.estimate == pytest.approx(L @ b)
        assert row.std_error == pytest.approx(np.sqrt(L @ V @ L))
        assert row.df == pytest.approx(res.df_for(L))
        q = stats.t.ppf(0.975, row.df)
        assert row.conf_low == pytest.approx(row.estimate - q * row.std_error)
    slope = tab.iloc[2]
    tidy = res.tidy().set_index("term").loc["time:ta_modelco_creation"]
    for col in ("estimate", "std_error", "df", "p_value", "conf_low", "conf_high"):
        assert slope[col] == pytest.approx(tidy[col], rel=1e-6)
    assert slope["contrast"] == "slope(time): co_creation - push"


def test_contrast_conf_level_and_several_outcomes(res, panel):
    narrow = cv.contrast(res, at=[2], conf_level=0.5)
    wide = cv.contrast(res, at=[2], conf_level=0.99)
    assert (narrow["conf_high"] - narrow["conf_low"]).iloc[0] < (
        wide["conf_high"] - wide["conf_low"]).iloc[0]
    other = cv.fit_growth(panel.assign(capacity=panel["research_use"] * 2 + 1), "capacity",
                          random_slope="uncorrelated", engine="statsmodels")
    both = cv.contrast({"research_use": res, "capacity": other}, at=[4], adjust="holm")
    assert set(both["outcome"]) == {"research_use", "capacity"}
    for _, grp in both.groupby("contrast"):
        np.testing.assert_allclose(grp["p_adjusted"], cv.adjust_pvalues(grp["p_value"], "holm"))


def test_contrast_without_an_arm_says_so():
    r = cv.fit_mixed("reaction ~ days + (1 | subject)", load_dataset("sleepstudy"))
    with pytest.raises(ModelSpecificationError, match="which column is the arm"):
        cv.contrast(r)
    with pytest.raises(ModelSpecificationError, match="arm='subject' is not"):
        cv.contrast(r, arm="subject")


def test_effect_size_is_feingold_d(res, panel):
    es = cv.effect_size(res).iloc[0]
    base = panel[panel["time"] == 0]
    g = [x["research_use"].to_numpy() for _, x in base.groupby("ta_model", observed=True)]
    sd = np.sqrt(sum((len(x) - 1) * x.var(ddof=1) for x in g) / (sum(map(len, g)) - 2))
    slope = res.params["time:ta_modelco_creation"]
    assert es["baseline_sd"] == pytest.approx(sd)
    assert es["d"] == pytest.approx(slope * 4 / sd)
    lo = res.tidy().set_index("term").loc["time:ta_modelco_creation", "conf_low"]
    assert es["conf_low"] == pytest.approx(lo * 4 / sd)
    es2 = cv.effect_size(res, duration=2.0, baseline_sd=1.0).iloc[0]
    assert es2["d"] == pytest.approx(slope * 2)


def test_adjust_pvalues_holm_and_bh_by_hand():
    p = np.array([0.01, 0.04, 0.03, 0.2])
    holm = np.array([0.04, 0.09, 0.09, 0.2])  # 4*.01, max(3*.03, .04)=.09, max(2*.04, .09), .2
    np.testing.assert_allclose(cv.adjust_pvalues(p, "holm"), holm)
    bh = np.array([0.04, 0.0533333333, 0.0533333333, 0.2])
    np.testing.assert_allclose(cv.adjust_pvalues(p, "bh"), bh)
    with pytest.raises(ValueError):
        cv.adjust_pvalues([0.5, 1.2])
    with pytest.raises(ValueError):
        cv.adjust_pvalues([0.5], "bonferroni")


@pytest.mark.parametrize("coding", ["categorical", "piecewise"])
def test_other_time_codings(panel, coding):
    # min_piece_years=0: every piece reported, including the short pre-TA one (see
    # tests/models/mixed/test_growth_sustainment.py for the default that flags it)
    extra = {"min_piece_years": 0.0} if coding == "piecewise" else {}
    r = cv.fit_growth(panel, "research_use", time_coding=coding, random_slope=False,
                      engine="statsmodels", **extra)
    tab = cv.contrast(r, at=[0, 4])
    assert len(tab) >= 2 and np.isfinite(tab["estimate"]).all()
    if coding == "categorical":
        assert "time_f4:ta_modelco_creation" in r.params.index
        # categorical: the contrast at wave 4 is the arm effect plus its wave-4 interaction
        b = r.params
        assert tab["estimate"].iloc[1] == pytest.approx(
            b["ta_modelco_creation"] + b["time_f4:ta_modelco_creation"])
    else:
        assert {"slope(ta_years): co_creation - push", "slope(post_years): co_creation - push"} <= set(
            tab["contrast"])


def test_fit_growth_errors(panel):
    with pytest.raises(ModelSpecificationError, match="no column"):
        cv.fit_growth(panel, "capacity")
    with pytest.raises(ModelSpecificationError, match="reference arm 'hybrid'"):
        cv.fit_growth(panel, "research_use", reference="hybrid")


def test_statsmodels_refuses_what_it_cannot_fit_exactly(panel):
    with pytest.raises(ModelSpecificationError, match="nested lower level"):
        cv.fit_mixed("research_use ~ time + (1 + time | org_id) + (1 | provider_id)", panel,
                     engine="statsmodels")
    crossed = panel.assign(rater=np.tile(["r1", "r2", "r3"], len(panel) // 3 + 1)[: len(panel)])
    with pytest.raises(ModelSpecificationError, match="crossed"):
        cv.fit_mixed("research_use ~ time + (1 | org_id) + (1 | rater)", crossed,
                     engine="statsmodels")


def test_auto_engine_falls_back_to_statsmodels_without_fast(monkeypatch, panel):
    monkeypatch.setattr(api, "_fast_engine", lambda: (None, "fast engine not available (test)"))
    r = cv.fit_mixed("research_use ~ time + (1 | org_id)", panel)
    assert r.engine == "statsmodels" and "not available" in r.diagnostics.engine_note
    with pytest.raises(ModelSpecificationError, match="not available"):
        cv.fit_mixed("research_use ~ time + (1 | org_id)", panel, engine="fast")


def test_predict_population_and_conditional():
    d = load_dataset("sleepstudy")
    r = cv.fit_mixed("reaction ~ days + (days | subject)", d, engine="statsmodels")
    pop = r.predict()
    np.testing.assert_allclose(pop["fitted"], r.params["(Intercept)"] + r.params["days"] * d["days"])
    cond = r.predict(level="conditional")
    re = r.ranef()["subject"]
    expect = (r.params["(Intercept)"] + re.loc[d["subject"], "(Intercept)"].to_numpy()
              + (r.params["days"] + re.loc[d["subject"], "days"].to_numpy()) * d["days"])
    np.testing.assert_allclose(cond["fitted"], expect)
    new = pd.DataFrame({"days": [0.0, 5.0], "subject": [308, 999]}, index=["a", "b"])
    pn = r.predict(new, level="conditional", interval="prediction")
    assert list(pn.index) == ["a", "b"]
    assert pn.loc["b", "fitted"] == pytest.approx(r.params["(Intercept)"] + 5 * r.params["days"])
    ci = r.predict(new, interval="confidence")
    pi = r.predict(new, interval="prediction")
    assert (pi["upper"] - pi["lower"] > ci["upper"] - ci["lower"]).all()
    with pytest.raises(ValueError):
        r.predict(level="subject")


def test_result_is_immutable_and_renders(res):
    with pytest.raises(AttributeError):
        res.formula = "x"
    text = res.summary()
    for s in ("REML", "covariance type: model", "df method: satterthwaite", "Random effects",
              "Fixed effects"):
        assert s in text
    assert "<table" in res._repr_html_()
    g = res.glance()
    assert len(g) == 1 and {"n_groups_org_id", "n_groups_provider_id", "engine"} <= set(g.columns)
    icc = res.icc()
    assert set(icc["group"]) == {"org_id.1", "provider_id"} or set(icc["group"]) == {"org_id", "provider_id"}
    assert ((icc["icc"] > 0) & (icc["icc"] < 1)).all()


def test_compare_tables_export_and_escape(res, panel):
    other = cv.fit_growth(panel, "research_use", random_slope=False, engine="statsmodels")
    tab = cv.compare({"slopes": res, "intercepts_only": other})
    frame = tab.to_frame()
    assert list(frame.columns) == ["slopes", "intercepts_only"]
    assert frame.loc["time", "slopes"].startswith(f"{res.params['time']:.3f} (")
    md = tab.to_markdown()
    assert "| time:ta_modelco_creation |" in md
    tex = tab.to_latex()
    assert r"ta\_modelco\_creation" in tex and "ta_model" not in tex
    assert r"intercepts\_only" in tex
    ci = cv.compare([res], stat="conf_int").to_frame()
    assert list(ci.columns) == ["(1)"] and "[" in ci.loc["time", "(1)"]


def test_every_fit_growth_argument_changes_the_model(panel):
    kw = dict(random_slope=False, engine="statsmodels")
    base = cv.fit_growth(panel, "research_use", **kw)
    rng = np.random.default_rng(0)
    withx = panel.assign(x=rng.normal(size=len(panel)))
    cov = cv.fit_growth(withx, "research_use", covariates=["x"], **kw)
    assert "x" in cov.params.index and "x" not in base.params.index
    cov2 = cv.fit_growth(withx, "research_use", covariates="I(x ** 2)", **kw)
    assert "I(x ** 2)" in cov2.params.index
    renamed = panel.rename(columns={"time": "t", "ta_model": "model"})
    r2 = cv.fit_growth(renamed, "research_use", time="t", arm="model", **kw)
    assert r2.params.index.tolist() == ["(Intercept)", "t", "modelco_creation",
                                        "t:modelco_creation"]
    np.testing.assert_allclose(r2.params.to_numpy(), base.params.to_numpy(), rtol=1e-6)
    one = cv.fit_growth(panel, "research_use", levels=["org_id"], **kw)
    assert one.formula.endswith("(1 | org_id)") and "provider_id" not in one.formula
    ml = cv.fit_growth(panel, "research_use", reml=False, **kw)
    assert not ml.reml and ml.log_lik != base.log_lik
    lvl = cv.fit_growth(panel, "research_use", conf_level=0.8, **kw)
    w80 = (lvl.tidy()["conf_high"] - lvl.tidy()["conf_low"]).to_numpy()
    w95 = (base.tidy()["conf_high"] - base.tidy()["conf_low"]).to_numpy()
    assert (w80 < w95).all()
    with pytest.raises(ValueError, match="random_slope"):
        cv.fit_growth(panel, "research_use", random_slope="sometimes")
    with pytest.raises(ValueError, match="time_coding"):
        cv.fit_growth(panel, "research_use", time_coding="quadratic")


def test_compare_digits_and_stat(res):
    a = cv.compare([res], digits=1).to_frame().loc["time", "(1)"]
    b = cv.compare([res], digits=4, stat="p_value").to_frame().loc["time", "(1)"]
    assert a == f"{res.params['time']:.1f} ({res.tidy()['std_error'][1]:.1f})"
    assert b.startswith(f"{res.params['time']:.4f} (")
    with pytest.raises(ValueError):
        cv.compare([])
    with pytest.raises(ValueError):
        cv.compare([res], stat="bogus")


def test_piecewise_slopes_and_slope_differences(panel):
    r = cv.fit_growth(panel, "research_use", time_coding="piecewise", random_slope=False,
                      engine="statsmodels", min_piece_years=0.0)
    tab = cv.contrast(r, at=[0, 4])
    b = r.params
    for piece in ("pre_years", "ta_years", "post_years"):
        row = tab.set_index("contrast").loc[f"slope({piece}): co_creation - push"]
        assert row["estimate"] == pytest.approx(b[f"{piece}:ta_modelco_creation"], rel=1e-8)
    sl = cv.slopes(r).set_index(["arm", "piece"])
    assert sl.loc[("push", "ta_years"), "estimate"] == pytest.approx(b["ta_years"], rel=1e-8)
    assert sl.loc[("co_creation", "ta_years"), "estimate"] == pytest.approx(
        b["ta_years"] + b["ta_years:ta_modelco_creation"], rel=1e-8)
