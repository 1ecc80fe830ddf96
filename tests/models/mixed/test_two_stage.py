"""fit_growth_two_stage against scipy's t tests on slopes computed by hand."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import coevidence as cv

from growth_sim import provider_randomised_panel  # noqa: E402


@pytest.fixture(scope="module")
def panel():
    return provider_randomised_panel(np.random.default_rng(3), n_prov=10, attrition=0.1)


def _slopes(panel):
    m = panel.groupby(["provider_id", "ta_model", "time"])["research_use"].mean().reset_index()
    out = {}
    for (p, a), g in m.groupby(["provider_id", "ta_model"]):
        out.setdefault(a, []).append(np.polyfit(g["time"], g["research_use"], 1)[0])
    return {a: np.array(v) for a, v in out.items()}


@pytest.mark.parametrize("welch", [False, True])
def test_matches_scipy_ttest_on_cluster_slopes(panel, welch):
    before = panel.copy()
    res = cv.fit_growth_two_stage(panel, "research_use", welch=welch)
    pd.testing.assert_frame_equal(panel, before)
    s = _slopes(panel)
    ref = stats.ttest_ind(s["co_creation"], s["push"], equal_var=not welch)
    row = res.tidy().set_index("term").loc["slope: co_creation - push"]
    assert row["estimate"] == pytest.approx(s["co_creation"].mean() - s["push"].mean())
    assert row["statistic"] == pytest.approx(ref.statistic)
    assert row["p_value"] == pytest.approx(ref.pvalue)
    assert row["df"] == pytest.approx(ref.df)
    ci = ref.confidence_interval(0.95)
    assert (row["conf_low"], row["conf_high"]) == pytest.approx((ci.low, ci.high))
    assert res.n_clusters == 10 and res.glance()["n_clusters"].iloc[0] == 10
    assert len(res.cluster_slopes) == 10


def test_errors_name_the_problem(panel):
    with pytest.raises(cv.CoevidenceError, match="four different"):
        cv.fit_growth_two_stage(panel, "research_use", cluster="time")
    with pytest.raises(cv.CoevidenceError, match="varies within"):
        cv.fit_growth_two_stage(panel.assign(w=panel["time"] % 2), "research_use", cluster="w")
    with pytest.raises(cv.CoevidenceError, match="no column"):
        cv.fit_growth_two_stage(panel, "capacity")
    small = panel[panel["provider_id"].isin(["P00", "P01", "P02"])]
    arms = small.groupby("ta_model")["provider_id"].nunique()
    if (arms < 2).any():
        with pytest.raises(cv.CoevidenceError, match="at least two clusters"):
            cv.fit_growth_two_stage(small, "research_use")
