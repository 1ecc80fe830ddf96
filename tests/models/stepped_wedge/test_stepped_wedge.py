"""fit_stepped_wedge against R (sw_reference.R: lme4 1.1-31 REML; lm + clubSandwich 0.5.8 CR2)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import coevidence as cv
from coevidence.exceptions import FewClustersWarning, StudyValidationError
from coevidence.results.base import TIDY_COLUMNS

FIX = Path(__file__).parents[2] / "fixtures" / "panel"
REF = json.loads((FIX / "sw_reference.json").read_text())
KW = {"unit": "cluster", "time": "period", "first_treated": "start"}


@pytest.fixture(scope="module")
def sw():
    return pd.read_csv(FIX / "sw_sim.csv")


def _tab(res):
    return res.tidy().set_index("term")


def test_fixed_cluster_effects_cr2_match_clubsandwich(sw):
    imm = _tab(cv.fit_stepped_wedge(sw, "y", **KW, model="immediate"))
    r = REF["fixed_immediate"]
    assert imm.loc["treatment", "estimate"] == pytest.approx(r["estimate"], rel=1e-9)
    assert imm.loc["treatment", "std_error"] == pytest.approx(r["std_error"], rel=1e-8)
    assert imm.loc["treatment", "df"] == pytest.approx(r["df"], rel=1e-8)
    eti = _tab(cv.fit_stepped_wedge(sw, "y", **KW))
    r = REF["fixed_eti"]
    rows = [f"exposure_{s}" for s in range(1, 5)]
    np.testing.assert_allclose(eti.loc[rows, "estimate"], r["estimate"], rtol=1e-9)
    np.testing.assert_allclose(eti.loc[rows, "std_error"], r["std_error"], rtol=1e-8)
    np.testing.assert_allclose(eti.loc[rows, "df"], r["df"], rtol=1e-8)
    assert eti.loc["TATE", "estimate"] == pytest.approx(r["tate"], rel=1e-9)
    assert eti.loc["TATE", "std_error"] == pytest.approx(r["tate_se"], rel=1e-8)
    assert eti.loc["TATE", "df"] == pytest.approx(
        r["tate_df_htz"], rel=1e-7
    )  # HTZ df for one constraint
    assert eti.loc["LTE", "estimate"] == eti.loc["exposure_4", "estimate"]


def test_random_cluster_intercept_matches_lme4(sw):
    imm = cv.fit_stepped_wedge(sw, "y", **KW, model="immediate", cluster_effects="random")
    r = REF["random_immediate"]
    t = _tab(imm)
    assert t.loc["treatment", "estimate"] == pytest.approx(r["estimate"], abs=1e-5)
    assert t.loc["treatment", "std_error"] == pytest.approx(r["std_error"], rel=1e-4)
    assert imm.info["sigma2_cluster"] == pytest.approx(r["sigma2_cluster"], rel=1e-4)
    assert imm.info["sigma2_residual"] == pytest.approx(r["sigma2_residual"], rel=1e-5)
    eti = cv.fit_stepped_wedge(sw, "y", **KW, cluster_effects="random")
    r = REF["random_eti"]
    t = _tab(eti)
    rows = [f"exposure_{s}" for s in range(1, 5)]
    np.testing.assert_allclose(t.loc[rows, "estimate"], r["estimate"], atol=1e-5)
    np.testing.assert_allclose(t.loc[rows, "std_error"], r["std_error"], rtol=1e-4)
    assert eti.tate == pytest.approx(r["tate"], abs=1e-5)
    assert t.loc["TATE", "std_error"] == pytest.approx(r["tate_se"], rel=1e-4)
    assert "REML mixed model" in eti.summary() and "ICC" in eti.summary()


def test_treated_indicator_equals_first_treated(sw):
    d = sw.assign(on=(sw["period"] >= sw["start"]).astype(int))
    a = cv.fit_stepped_wedge(d, "y", unit="cluster", time="period", treated="on").tidy()
    b = cv.fit_stepped_wedge(sw, "y", **KW).tidy()
    pd.testing.assert_frame_equal(a, b)
    bad = d.copy()
    bad.loc[(bad["cluster"] == 2) & (bad["period"] == 3), "on"] = 0  # switches back
    with pytest.raises(
        StudyValidationError, match="once a cluster is treated it stays treated"
    ) as err:
        cv.fit_stepped_wedge(bad, "y", unit="cluster", time="period", treated="on")
    assert len(err.value.failures) == 5


def test_immediate_effect_misleads_when_effects_build_up():
    # effect 0.5 per period of exposure: the Hussey-Hughes single coefficient is far below the
    # time-averaged effect the exposure-time model recovers (Kenny et al. 2022)
    rng = np.random.default_rng(3)
    rows = []
    for c in range(24):
        start = 1 + c % 4
        for t in range(6):
            s = max(0, t - start + 1)
            rows.append((c, t, start, rng.normal(0, 0.5) + 0.5 * s + rng.normal(0, 0.3)))
    d = pd.DataFrame(rows, columns=["org_id", "wave", "start", "y"])
    eti = cv.fit_stepped_wedge(d, "y", first_treated="start")
    imm = _tab(cv.fit_stepped_wedge(d, "y", first_treated="start", model="immediate")).loc[
        "treatment"
    ]
    t = _tab(eti)
    true_tate = 0.5 * np.mean(np.arange(1, 6))
    assert abs(t.loc["TATE", "estimate"] - true_tate) < 3 * t.loc["TATE", "std_error"]
    assert abs(t.loc["LTE", "estimate"] - 2.5) < 3 * t.loc["LTE", "std_error"]
    assert imm["estimate"] < true_tate - 5 * imm["std_error"]


def test_options_and_interface(sw):
    with pytest.warns(FewClustersWarning, match="12 clusters"):
        res = cv.fit_stepped_wedge(sw, "y", **KW, cov_type="clustered")
    assert (res.tidy()["df"] == 11).all()
    un = cv.fit_stepped_wedge(sw, "y", **KW, cov_type="unadjusted")
    assert not np.allclose(un.tidy()["std_error"], res.tidy()["std_error"])
    assert tuple(res.tidy().columns) == TIDY_COLUMNS and res.glance().shape[0] == 1
    s = res.summary()
    assert (
        "exposure-time indicators" in s
        and "Covariance: cluster-robust CR1" in s
        and "Degrees of freedom" in s
    )
    with pytest.raises(ValueError, match="exactly one"):
        cv.fit_stepped_wedge(sw, "y", unit="cluster", time="period")
    pooled = cv.fit_stepped_wedge(sw, "y", **KW, max_exposure=2)
    assert "exposure_3" not in set(pooled.tidy()["term"])


def test_covariates_are_used(sw):
    rng = np.random.default_rng(0)
    x = rng.normal(size=len(sw))
    d = sw.assign(x=x, y=sw["y"] + 0.8 * x)
    res = _tab(cv.fit_stepped_wedge(d, "y", **KW, covariates=["x"]))
    assert res.loc["x", "estimate"] == pytest.approx(0.8, abs=0.15)
    base = _tab(cv.fit_stepped_wedge(sw, "y", **KW))
    assert res.loc["TATE", "estimate"] == pytest.approx(base.loc["TATE", "estimate"], abs=0.1)
    assert res.loc["TATE", "estimate"] != base.loc["TATE", "estimate"]
