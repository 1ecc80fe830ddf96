"""The result contract (issue 16): check_result over a fitted result of every family, and
compare() tables that never lose a row."""

import pickle
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import coevidence as cv
from coevidence.models.mixed.datasets import load_dataset
from coevidence.results.base import GLANCE_KEYS, FrozenDict
from coevidence.testing import RESULT_CHECKS, check_result

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "panel"
F = "reaction ~ days + (days | subject)"


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _growth_panel():
    return cv.load_example_study().panel(unit="organization")


def _sw():
    return pd.read_csv(FIX / "sw_sim.csv")


def _panel(**kw):
    return _quiet(cv.fit_panel, cv.load_grunfeld(), "inv", unit="firm", time="year",
                  regressors=["value", "capital"], **kw)


def _randomization():
    d = pd.DataFrame({"c": np.repeat(np.arange(6), 2), "a": np.repeat([0, 1, 0, 1, 0, 1], 2),
                      "y": np.arange(12.0)})
    return cv.randomization_test(
        d, lambda x: x.y[x.a == 1].mean() - x.y[x.a == 0].mean(), arm="a", cluster="c")


FITS = {
    "mixed_fast": lambda: _quiet(cv.fit_mixed, F, load_dataset("sleepstudy"), engine="fast"),
    "mixed_statsmodels": lambda: _quiet(cv.fit_mixed, F, load_dataset("sleepstudy"),
                                        engine="statsmodels"),
    "mixed_cr2": lambda: _quiet(cv.fit_mixed, F, load_dataset("sleepstudy"), cov_type="cr2"),
    "mixed_kenward_roger": lambda: _quiet(cv.fit_mixed, F, load_dataset("sleepstudy"),
                                          df_method="kenward_roger"),
    "mixed_conf90": lambda: _quiet(cv.fit_mixed, F, load_dataset("sleepstudy"), conf_level=0.9),
    "growth": lambda: _quiet(cv.fit_growth, _growth_panel(), "research_use",
                             random_slope=False),
    "growth_two_stage": lambda: _quiet(cv.fit_growth_two_stage, _growth_panel(),
                                       "research_use"),
    "panel_within_clustered": lambda: _panel(cov="clustered", cluster="firm"),
    "panel_random": lambda: _panel(estimator="random"),
    "panel_wild_bootstrap_90": lambda: _panel(cov="wild_bootstrap", cluster="firm",
                                              conf_level=0.9, bootstrap_reps=49, seed=1),
    "event_study_cs": lambda: _quiet(cv.fit_event_study, cv.load_mpdta(), "lemp",
                                     unit="countyreal", time="year",
                                     first_treated="first.treat"),
    "event_study_aggregate": lambda: _quiet(cv.fit_event_study, cv.load_mpdta(), "lemp",
                                            unit="countyreal", time="year",
                                            first_treated="first.treat").aggregate("event"),
    "event_study_twfe": lambda: _quiet(cv.fit_event_study, cv.load_mpdta(), "lemp",
                                       unit="countyreal", time="year",
                                       first_treated="first.treat", estimator="twfe"),
    "stepped_wedge_fixed": lambda: _quiet(cv.fit_stepped_wedge, _sw(), "y", unit="cluster",
                                          time="period", first_treated="start"),
    "stepped_wedge_random": lambda: _quiet(cv.fit_stepped_wedge, _sw(), "y", unit="cluster",
                                           time="period", first_treated="start",
                                           cluster_effects="random"),
    "randomization": _randomization,
}

_CACHE: dict = {}


def fitted(name):
    if name not in _CACHE:
        _CACHE[name] = FITS[name]()
    return _CACHE[name]


@pytest.mark.parametrize("name", list(FITS))
def test_every_family_meets_the_result_contract(name):
    table = check_result(fitted(name), raise_on_failure=False)
    assert table["check"].tolist() == list(RESULT_CHECKS)
    bad = table[~table["passed"]]
    assert bad.empty, bad.to_string()


def test_check_result_reports_a_broken_result():
    class Broken(type(fitted("panel_random"))):
        def glance(self):
            return pd.DataFrame([{"n_obs": 1}])

    res = fitted("panel_random")
    broken = Broken.__new__(Broken)
    broken.__dict__.update(res.__dict__)
    table = check_result(broken, raise_on_failure=False)
    assert not table.set_index("check").loc["glance_keys", "passed"]
    with pytest.raises(AssertionError, match="glance_keys"):
        check_result(broken)


def test_wild_bootstrap_at_90_is_displayable_and_keeps_its_level():
    res = fitted("panel_wild_bootstrap_90")
    assert res.conf_level == 0.9
    assert "could not be rendered" not in repr(res) + res._repr_html_()
    with pytest.raises(ValueError, match="wild-bootstrap"):
        res.tidy(conf_level=0.95)
    assert "(1)" in cv.compare([res]).to_frame().columns


def test_glance_keys_per_family():
    want = {
        "mixed_fast": ("reml", "model", "satterthwaite"),
        "mixed_cr2": ("reml", "cr2", "bell_mccaffrey"),
        "mixed_kenward_roger": ("reml", "kenward_roger", "kenward_roger"),
        "panel_within_clustered": ("within", "clustered", "g_minus_1"),
        "panel_random": ("random", "unadjusted", "z"),
        "stepped_wedge_fixed": ("fixed_effects", "cr2", "bell_mccaffrey"),
        "stepped_wedge_random": ("reml", "model", "satterthwaite"),
        "growth_two_stage": ("two_stage", "pooled", "residual"),
        "randomization": ("randomization", "randomization", "randomization"),
    }
    for name, (est, cov, dfm) in want.items():
        g = fitted(name).glance()
        assert tuple(g.columns[:5]) == GLANCE_KEYS
        row = g.iloc[0]
        assert (row["estimator"], row["cov_type"], row["df_method"]) == (est, cov, dfm), name


def test_estimates_and_diagnostics_cannot_change_the_result():
    res = fitted("panel_within_clustered")
    before = res.tidy()
    res.params.iloc[0] = 99.0
    res.cov.iloc[0, 0] = 99.0
    pd.testing.assert_frame_equal(res.tidy(), before)
    sw = fitted("stepped_wedge_fixed")
    with pytest.raises(TypeError):
        sw.info["n_obs"] = 0
    with pytest.raises(TypeError):
        sw.diagnostics["notes"] = ()
    es = fitted("event_study_cs")
    assert isinstance(es.info, FrozenDict) and isinstance(es.diagnostics.pretrend, FrozenDict)
    with pytest.raises(TypeError):
        es.diagnostics.cohort_sizes[0] = 1
    m = fitted("mixed_fast")
    m.diagnostics.boundary.iloc[0, 3] = -1.0
    assert m.diagnostics.boundary.iloc[0, 3] != -1.0


@pytest.mark.parametrize("name", ["mixed_fast", "mixed_statsmodels", "mixed_kenward_roger",
                                  "mixed_cr2", "stepped_wedge_random"])
def test_mixed_results_pickle_and_keep_their_df_rules(name):
    res = fitted(name)
    back = pickle.loads(pickle.dumps(res))
    pd.testing.assert_frame_equal(back.tidy(), res.tidy())
    if hasattr(res, "df_for"):
        L = np.array([0.5, 1.0])
        assert back.df_for(L) == pytest.approx(res.df_for(L))


def test_mixed_predict_uses_the_cr2_covariance():
    # random intercept only: CR2 differs from the model-based covariance (with random slopes
    # on the balanced sleepstudy they coincide)
    d = load_dataset("sleepstudy")
    cr2 = _quiet(cv.fit_mixed, "reaction ~ days + (1 | subject)", d, cov_type="cr2")
    model = _quiet(cv.fit_mixed, "reaction ~ days + (1 | subject)", d)
    new = pd.DataFrame({"days": [0.0]})
    se = cr2.predict(new, interval="confidence")["std_error"].iloc[0]
    assert se == pytest.approx(cr2.tidy()["std_error"].iloc[0], rel=1e-10)
    se_model = model.predict(new, interval="confidence")["std_error"].iloc[0]
    assert se_model == pytest.approx(model.tidy()["std_error"].iloc[0], rel=1e-10)
    assert se != pytest.approx(se_model, rel=1e-3)
    # the interval too: at days = 0 the prediction is the intercept, with tidy()'s t interval
    for res in (cr2, model, _quiet(cv.fit_mixed, "reaction ~ days + (1 | subject)", d,
                                   df_method="kenward_roger")):
        ci = res.predict(new, interval="confidence", conf_level=0.9).iloc[0]
        t = res.tidy().iloc[0]
        assert ci["df"] == pytest.approx(t["df"], rel=1e-8)
        half = float(stats.t.ppf(0.95, t["df"])) * t["std_error"]
        assert ci["upper"] - ci["fitted"] == pytest.approx(half, rel=1e-8)


def test_compare_never_loses_a_row_and_renders():
    fe = fitted("panel_within_clustered")
    re_ = fitted("panel_random")
    mixed = fitted("mixed_fast")
    tab = cv.compare({"FE": fe, "RE": re_, "LMM": mixed}, stars=True, sig_digits=3)
    frame = tab.to_frame()
    terms = {t for r in (fe, re_, mixed) for t in r.tidy()["term"]}
    assert terms <= set(frame.index)
    assert frame.loc["days", "FE"] == "" and frame.loc["value", "LMM"] == ""
    for row in ("nobs", "groups: firm", "groups: subject", "cov_type", "df_method"):
        assert row in frame.index, row
    assert frame.loc["nobs", "LMM"] == "180" and frame.loc["groups: subject", "LMM"] == "18"
    stacked = tab.to_frame("stacked")
    assert stacked.loc[("days", "below"), "LMM"].startswith("(")
    md = tab.to_markdown()
    assert "***" in md and "stars: *** p < 0.001" in md
    tex = tab.to_latex()
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"\hline" in tab.to_latex(booktabs=False)
    assert "<table" in tab._repr_html_() and "days" in str(tab)
    # per-column significant digits: each model gets its own decimals
    assert frame.loc["days", "LMM"].split("*")[0].count(".") == 1
    ci = cv.compare([mixed], stat="conf_int", digits={"(1)": 1}).to_frame()
    assert ci.loc["days", "(1)"].endswith("]") and "[" in ci.loc["days", "(1)"]


def test_compare_old_signature_still_works():
    res = fitted("mixed_fast")
    frame = cv.compare([res], "std_error", 2).to_frame()
    assert frame.loc["days", "(1)"].startswith(f"{res.params['days']:.2f} (")


def test_fitted_conf_level_is_kept_by_every_family():
    g = cv.load_grunfeld()
    kw = {"unit": "firm", "time": "year", "regressors": ["value", "capital"]}
    pan = cv.fit_panel(g, "inv", **kw, cov_type="clustered", conf_level=0.9)
    sw = _quiet(cv.fit_stepped_wedge, pd.read_csv(FIX / "sw_sim.csv"), "y",
                unit="cluster", time="period", first_treated="start", conf_level=0.9)
    for res in (pan, sw):
        assert res.conf_level == 0.9
        t = res.tidy()
        q = (t["conf_high"] - t["estimate"]) / t["std_error"]
        # 90% intervals: the half-width is the 0.95 quantile of t(df) (normal for infinite df)
        from scipy import stats

        assert np.allclose(q, stats.t.ppf(0.95, t["df"].where(np.isfinite(t["df"]), 1e12)))
