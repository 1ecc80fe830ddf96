"""Simple slopes and Johnson-Neyman bounds against lme4/lmerTest and plm (fixtures from R)."""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import coevidence as cv
from coevidence.exceptions import DesignDfWarning, ModelSpecificationError, OptionError
from coevidence.testing import check_result

FIX = Path(__file__).parents[2] / "fixtures" / "moderation"
R = json.loads((FIX / "moderation_r.json").read_text())


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return pd.read_csv(FIX / "moderation_data.csv")


@pytest.fixture(scope="module")
def twoway(data):
    return cv.fit_mixed("y ~ x * m + (1 | org)", data)


@pytest.fixture(scope="module")
def growth(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cv.fit_mixed(R["growth"]["formula"], data)


def assert_slopes_match(result, rows, rtol=1e-5):
    t = result.tidy()
    want = pd.DataFrame(rows)
    np.testing.assert_allclose(result.at, want["at"], rtol=0, atol=0)
    np.testing.assert_allclose(t["estimate"], want["estimate"], rtol=rtol, atol=1e-8)
    np.testing.assert_allclose(t["std_error"], want["std_error"], rtol=rtol)
    np.testing.assert_allclose(t["df"], want["df"], rtol=1e-4)
    np.testing.assert_allclose(t["p_value"], want["p_value"], rtol=1e-3, atol=1e-10)


def test_fit_matches_lme4(twoway):
    np.testing.assert_allclose(twoway.params[R["twoway"]["names"]],
                               list(R["twoway"]["fixef"].values()), rtol=1e-6)
    np.testing.assert_allclose(twoway.vcov.loc[R["twoway"]["names"], R["twoway"]["names"]],
                               np.array(R["twoway"]["vcov"]), rtol=1e-5)


def test_simple_slopes_match_lmertest(twoway):
    ss = cv.simple_slopes(twoway, focal="x", moderator="m", at=[-1.5, -0.5, 0, 1, 2])
    assert_slopes_match(ss, R["twoway"]["slopes"])
    check_result(ss)


def test_johnson_neyman_satterthwaite_matches_uniroot(twoway):
    jn = cv.johnson_neyman(twoway, focal="x", moderator="m")
    np.testing.assert_allclose(jn.bounds, R["twoway"]["jn_satterthwaite"], rtol=1e-6)
    assert jn.info["method"].startswith("root finding")
    # the t interval touches zero at each bound
    t = jn.tidy().set_index("term")
    for b in jn.bounds:
        row = t.loc[f"x | m={b:.6g}"]
        assert min(abs(row["conf_low"]), abs(row["conf_high"])) < 1e-8
        assert row["p_value"] == pytest.approx(0.05, abs=1e-8)
    # significant outside the two bounds (the interaction is strong)
    assert jn.regions[0][0] == -np.inf and jn.regions[-1][1] == np.inf
    jn90 = cv.johnson_neyman(twoway, focal="x", moderator="m", conf_level=0.90)
    np.testing.assert_allclose(jn90.bounds, R["twoway"]["jn_satterthwaite_90"], rtol=1e-6)
    check_result(jn)


def test_johnson_neyman_constant_df_is_the_quadratic(data):
    fit = cv.fit_mixed("y ~ x * m + (1 | org)", data, df_method="residual")
    assert float(fit.tidy()["df"].iloc[0]) == R["twoway"]["df_residual"]
    jn = cv.johnson_neyman(fit, focal="x", moderator="m")
    assert jn.info["method"] == "exact quadratic roots"
    np.testing.assert_allclose(jn.bounds, R["twoway"]["jn_residual"], rtol=1e-6)


def test_three_way_growth_moderator_within(growth):
    g = R["growth"]
    np.testing.assert_allclose(growth.params[g["names"]], list(g["fixef"].values()),
                               rtol=1e-5, atol=1e-7)
    s1 = cv.simple_slopes(growth, focal="time", moderator="m_within", at=[-1, 0, 1],
                          condition={"trt": 1})
    assert_slopes_match(s1, g["slopes_cc1"], rtol=1e-4)
    s0 = cv.simple_slopes(growth, focal="time", moderator="m_within", at=[-1, 0, 1])
    assert s0.info["held_at_zero"] == ("m_between", "trt")
    assert_slopes_match(s0, g["slopes_cc0"], rtol=1e-4)
    jn = cv.johnson_neyman(growth, focal="time", moderator="m_within", condition={"trt": 1})
    inside = [b for b in jn.bounds if -50 <= b <= 50]
    np.testing.assert_allclose(inside, np.atleast_1d(g["jn_cc1"]), rtol=1e-5)


def test_panel_result_matches_plm(data):
    fit = cv.fit_panel(data, "y", unit="org", time="time", formula="x * m")
    p = R["panel"]
    np.testing.assert_allclose(fit.params[list(p["coef"])], list(p["coef"].values()), rtol=1e-7)
    ss = cv.simple_slopes(fit, focal="x", moderator="m", at=[-1, 0, 1.5])
    assert_slopes_match(ss, p["slopes"], rtol=1e-7)
    with pytest.raises(OptionError, match="range"):
        cv.johnson_neyman(fit, focal="x", moderator="m")
    jn = cv.johnson_neyman(fit, focal="x", moderator="m", range=(-3, 3))
    np.testing.assert_allclose(jn.bounds, p["jn"], rtol=1e-9)
    jn90 = cv.johnson_neyman(fit, focal="x", moderator="m", range=(-3, 3), conf_level=0.9)
    np.testing.assert_allclose(jn90.bounds, p["jn_90"], rtol=1e-9)
    check_result(jn)


def test_plot_and_describe(twoway):
    jn = cv.johnson_neyman(twoway, focal="x", moderator="m")
    ax = jn.plot()
    assert ax.get_xlabel() == "m" and len(ax.lines) >= 2
    assert "differs from 0" in jn.describe()
    back = pickle.loads(pickle.dumps(jn))
    assert back.bounds == jn.bounds


def test_default_at_and_binary_moderator(data, twoway):
    ss = cv.simple_slopes(twoway, focal="x", moderator="m")
    m = data["m"]
    np.testing.assert_allclose(ss.at, [m.mean() - m.std(), m.mean(), m.mean() + m.std()])
    with pytest.warns(DesignDfWarning):  # x:trt is a between-org term (fine for this check)
        fit = cv.fit_mixed("y ~ x * trt + (1 | org)", data)
    s = cv.simple_slopes(fit, focal="x", moderator="trt")
    np.testing.assert_array_equal(s.at, [0.0, 1.0])
    # the slope at trt = 0 is the x coefficient, at trt = 1 the sum
    est = fit.params
    np.testing.assert_allclose(s.estimate, [est["x"], est["x"] + est["x:trt"]], rtol=1e-12)


def test_errors_name_the_problem(twoway):
    with pytest.raises(OptionError, match="not a term"):
        cv.simple_slopes(twoway, focal="z", moderator="m")
    with pytest.raises(OptionError, match="same"):
        cv.simple_slopes(twoway, focal="m", moderator="m")
    with pytest.raises(OptionError, match="repeated"):
        cv.simple_slopes(twoway, focal="x", moderator="m", at=[1, 1])
    with pytest.raises(OptionError, match="condition"):
        cv.simple_slopes(twoway, focal="x", moderator="m", condition={"q": 1})
    with pytest.raises(OptionError, match="conf_level"):
        cv.johnson_neyman(twoway, focal="x", moderator="m", conf_level=1.5)


def test_no_interaction_is_refused(data):
    fit = cv.fit_mixed("y ~ x + m + (1 | org)", data)
    with pytest.raises(ModelSpecificationError, match="no 'x' x 'm' interaction"):
        cv.johnson_neyman(fit, focal="x", moderator="m")


@settings(max_examples=25, deadline=None)
@given(a=st.floats(-2, 2), b=st.floats(-2, 2), v00=st.floats(0.01, 1), v11=st.floats(0.01, 1),
       r=st.floats(-0.9, 0.9), df=st.sampled_from([5.0, 30.0, np.inf]))
def test_property_bounds_have_t_equal_to_the_critical_value(a, b, v00, v11, r, df):
    """At every bound the |t| equals the critical value; between bounds significance flips."""
    from scipy import stats

    from coevidence.models.moderation.model import _Contrasts, _jn_bounds, _regions

    c = _Contrasts.__new__(_Contrasts)
    c.beta = np.array([a, b])
    v01 = r * np.sqrt(v00 * v11)
    c.V = np.array([[v00, v01], [v01, v11]])
    c.L0, c.L1 = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    c._df_for, c._df_const, c.varying_df = None, df, False
    q = stats.t.ppf(0.975, df) if np.isfinite(df) else stats.norm.ppf(0.975)
    bounds = _jn_bounds(c, 0.95)
    for m in bounds:
        assert abs(c.estimate(m)) / c.se(m) == pytest.approx(q, rel=1e-6)
    regions = _regions(c, bounds, 0.95)
    for m in np.linspace(-20, 20, 41):
        sig = abs(c.estimate(m)) / c.se(m) > q
        inside = any(lo <= m <= hi for lo, hi in regions)
        if min((abs(m - x) for x in bounds), default=1) > 1e-6:
            assert sig == inside


def test_interaction_as_focal_is_the_arm_difference_in_slopes(growth):
    """focal="time:trt": the arm difference in time slopes at moderator values, from lme4's
    coefficients (time:trt + v * time:trt:m_within)."""
    b = R["growth"]["fixef"]
    ss = cv.simple_slopes(growth, focal="time:trt", moderator="m_within", at=[-1, 0, 2])
    want = [b["time:trt"] + v * b["time:trt:m_within"] for v in (-1, 0, 2)]
    np.testing.assert_allclose(ss.estimate, want, rtol=1e-5)
    V = growth.vcov
    se2 = [V.loc["time:trt", "time:trt"] + 2 * v * V.loc["time:trt", "time:trt:m_within"]
           + v * v * V.loc["time:trt:m_within", "time:trt:m_within"] for v in (-1, 0, 2)]
    np.testing.assert_allclose(ss.std_error, np.sqrt(se2), rtol=1e-10)
    assert ss.df[1] == pytest.approx(float(growth.tidy().set_index("term").loc["time:trt", "df"]))


def test_growth_result_factor_moderator_agrees_with_slopes():
    """On a fit_growth result, the time slope by arm dummy equals cv.slopes (emmeans-checked),
    including the design-aware df (``df_for`` carries the between-cluster bounds)."""
    from coevidence.design.simulate import SimulationSpec, simulate_study

    spec = SimulationSpec(n_providers=6, orgs_per_provider=4, respondents_per_org=2, n_waves=4,
                          responses="scores")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = cv.fit_growth(simulate_study(spec, seed=2).panel(), "research_use")
    ss = cv.simple_slopes(g, focal="time", moderator="ta_modelco_creation")
    np.testing.assert_array_equal(ss.at, [0.0, 1.0])
    ref = cv.slopes(g).set_index("arm").loc[["push", "co_creation"]]
    t = ss.tidy()
    for col in ("estimate", "std_error", "df", "conf_low", "conf_high"):
        np.testing.assert_allclose(t[col], ref[col], rtol=1e-10)
