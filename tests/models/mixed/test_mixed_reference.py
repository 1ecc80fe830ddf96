"""fit_mixed against lme4 1.1-31 / lmerTest / pbkrtest (tests/fixtures/mixed/README.md)."""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from coevidence import fit_mixed
from coevidence.exceptions import BoundaryFitWarning, MissingDataWarning
from coevidence.models.mixed.datasets import load_dataset

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "mixed"


def _models(name):
    return json.loads((FIX / f"{name}.json").read_text())["models"]


CASES = [(ds, m) for ds in ("sleepstudy", "hsb82", "early") for m in _models(ds)]
IDS = [m["model_id"] for _, m in CASES]
_CACHE = {}


def _fit(ds, m, engine):
    key = (m["model_id"], engine)
    if key not in _CACHE:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BoundaryFitWarning)
            _CACHE[key] = fit_mixed(m["formula"], load_dataset(ds), reml=m["REML"], engine=engine)
    return _CACHE[key]


def _ref_vc(m):
    out = []
    for r in m["random_effects"]:
        if "covariance_matrix" in r and r["covariance_matrix"] is not None:
            out.append(np.array(r["covariance_matrix"]["values"], dtype=float))
        else:
            out.append(np.array([[v for v in r["variance"].values()][0]]))
    return out


@pytest.mark.parametrize(("ds", "m"), CASES, ids=IDS)
def test_statsmodels_engine_matches_lme4(ds, m):
    res = _fit(ds, m, "statsmodels")
    tidy = res.tidy()
    ref = pd.DataFrame(m["fixed_effects"])
    assert tidy["term"].tolist() == ref["term"].tolist()
    np.testing.assert_allclose(tidy["estimate"], ref["estimate"], rtol=1e-4)
    np.testing.assert_allclose(tidy["std_error"], ref["std_error"], rtol=1e-3)
    np.testing.assert_allclose(tidy["df"], ref["df_satterthwaite"], rtol=1e-2)
    assert abs(res.log_lik - m["logLik"]) < 1e-4
    # variance components (covariance matrices) and residual variance, 1e-3 relative to scale
    mine = [c for c in res._fit.covariances]
    for a, b in zip(mine, _ref_vc(m)):
        np.testing.assert_allclose(a, b, atol=1e-3 * np.abs(b).max())
    assert res.sigma**2 == pytest.approx(m["residual"]["variance"], rel=1e-3)
    g = res.glance().iloc[0]
    assert g["aic"] == pytest.approx(m["AIC"], abs=1e-3)
    assert g["bic"] == pytest.approx(m["BIC"], abs=1e-3)
    assert g["nobs"] == m["nobs"]
    assert bool(g["singular"]) == bool(m["singular"])


@pytest.mark.parametrize(("ds", "m"), CASES[:4], ids=IDS[:4])
def test_theta_and_conditional_modes_match_lme4(ds, m):
    res = _fit(ds, m, "statsmodels")
    np.testing.assert_allclose(res.theta, m["theta"]["values"], rtol=2e-3, atol=1e-4)
    modes = m["conditional_modes"]
    ranef = res.ranef(condvar=True)
    for label, frame in ranef.items():
        ref = modes[label] if label in modes else modes[label.split(".")[0]]
        for term, vals in ref["terms"].items():
            if term not in frame.columns:
                continue
            np.testing.assert_allclose(frame[term], vals["condval"], rtol=1e-3, atol=1e-3)
            np.testing.assert_allclose(frame[f"{term}_condsd"], vals["condsd"], rtol=1e-3)


@pytest.mark.parametrize(
    ("ds", "m"), [c for c in CASES if c[1]["REML"]],
    ids=[i for c, i in zip(CASES, IDS) if c[1]["REML"]],
)
def test_kenward_roger_matches_pbkrtest(ds, m):
    res = fit_mixed(m["formula"], load_dataset(ds), df_method="kenward_roger",
                    engine="statsmodels") if not m["singular"] else None
    if res is None:
        with pytest.warns(BoundaryFitWarning):
            res = fit_mixed(m["formula"], load_dataset(ds), df_method="kenward_roger",
                            engine="statsmodels")
    ref = pd.DataFrame(m["fixed_effects"])
    tidy = res.tidy()
    np.testing.assert_allclose(tidy["df"], ref["df_kenward_roger"], rtol=1e-2)
    np.testing.assert_allclose(tidy["std_error"], ref["std_error_kenward_roger"], rtol=1e-3)
    assert res.glance()["df_method"].iloc[0] == "kenward_roger"


def test_singular_early_fit_is_reported():
    m = next(x for x in _models("early") if x["model_id"] == "early_growth_reml")
    assert m["singular"]
    with pytest.warns(BoundaryFitWarning, match="singular"):
        res = fit_mixed(m["formula"], load_dataset("early"), engine="statsmodels")
    d = res.diagnostics
    assert d.singular and not d.ok
    row = d.boundary[d.boundary["kind"] == "correlation"].iloc[0]
    assert row["at_boundary"] and row["value"] == pytest.approx(-1, abs=1e-4)
    assert res.glance()["singular"].iloc[0]
    assert "singular" in res.summary()
    # fixed effects still match lme4 at the boundary
    ref = pd.DataFrame(m["fixed_effects"])
    np.testing.assert_allclose(res.params.to_numpy(), ref["estimate"], rtol=1e-4)


def test_clean_fit_issues_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = fit_mixed("reaction ~ days + (days | subject)", load_dataset("sleepstudy"),
                        engine="statsmodels")
    assert res.diagnostics.ok and res.diagnostics.hessian_ok
    att = res.diagnostics.attempts
    assert len(att) >= 2 and att["chosen"].sum() == 1


TA3 = json.loads((FIX / "ta3_mixed_lme4.json").read_text())["models"]


# the reference models (fitted in lme4 as published) have no provider slope: the guard says so
@pytest.mark.filterwarnings("ignore::coevidence.exceptions.DesignDfWarning")
@pytest.mark.parametrize("m", TA3, ids=[m["model_id"] for m in TA3])
def test_three_level_ta_design_matches_lme4(m):
    data = pd.read_csv(FIX / "ta3_mixed.csv")
    data["ta_model"] = pd.Categorical(data["ta_model"], ["push", "co_creation"])
    with pytest.warns(MissingDataWarning, match="2 of 388"):
        res = fit_mixed(m["formula"], data, reml=m["REML"], engine="statsmodels")
    ref = pd.DataFrame(m["fixed_effects"])
    tidy = res.tidy()
    assert tidy["term"].tolist() == ref["term"].tolist()
    np.testing.assert_allclose(tidy["estimate"], ref["estimate"], rtol=1e-4)
    np.testing.assert_allclose(tidy["std_error"], ref["std_error"], rtol=1e-3)
    np.testing.assert_allclose(tidy["df"], ref["df_satterthwaite"], rtol=1e-2)
    assert abs(res.log_lik - m["logLik"]) < 1e-4
    vc = res.variance_components()
    rvc = pd.DataFrame(m["varcorr"])
    assert vc["group"].tolist() == rvc["grp"].tolist()
    np.testing.assert_allclose(vc["vcov"], rvc["vcov"], rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(res.theta, m["theta"], rtol=1e-3, atol=1e-4)
    assert res.nobs == m["nobs"] == 386
    if m["REML"]:
        kr = fit_mixed(m["formula"], data.dropna(subset=["y"]), df_method="kenward_roger",
                       engine="statsmodels").tidy()
        np.testing.assert_allclose(kr["df"], ref["df_kenward_roger"], rtol=1e-2)
        np.testing.assert_allclose(kr["std_error"], ref["std_error_kenward_roger"], rtol=1e-3)


def test_joint_f_test_df_match_lmertest_contest():
    ref = json.loads((FIX / "hsb82_contest.json").read_text())
    L = np.asarray(ref["L"], dtype=float)
    d = load_dataset("hsb82")
    sat = _fit("hsb82", next(m for m in _models("hsb82") if m["REML"]), "statsmodels")
    assert sat.df_for(L) == pytest.approx(ref["DenDF_satterthwaite"], rel=1e-2)
    kr = fit_mixed(ref["formula"], d, df_method="kenward_roger", engine="statsmodels")
    assert kr.df_for(L) == pytest.approx(ref["DenDF_kenward_roger"], rel=1e-4)
