"""fit_panel against R plm 2.6-2 (tests/fixtures/panel/grunfeld_plm.json, copied from
/work/shared/reference) and clubSandwich 0.5.8 CR2 (grunfeld_cr2.json, made by grunfeld_cr2.R)."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import coevidence as cv
import coevidence.exceptions
from coevidence.datasets.panel import load_grunfeld
from coevidence.exceptions import FewClustersWarning

FIX = Path(__file__).parents[2] / "fixtures" / "panel"
PLM = {m["model_id"]: m for m in json.loads((FIX / "grunfeld_plm.json").read_text())["models"]}
PLM_TESTS = json.loads((FIX / "grunfeld_plm.json").read_text())["tests"]
CR2 = json.loads((FIX / "grunfeld_cr2.json").read_text())["models"]
KW = {"unit": "firm", "time": "year", "regressors": ["value", "capital"]}
SPECS = {
    "grunfeld_pooling": {"estimator": "pooled"},
    "grunfeld_within_individual": {"estimator": "within"},
    "grunfeld_within_twoways": {"estimator": "within", "effects": "twoway"},
    "grunfeld_random_swar": {"estimator": "random"},
    "grunfeld_first_difference": {"estimator": "first_difference"},
    "grunfeld_between": {"estimator": "between"},
}
CONVENTIONS = {"HC0": "none", "HC1": "plm_hc1", "sss": "plm_sss", "stata_equivalent": "stata"}


@pytest.fixture(scope="module")
def grunfeld():
    return load_grunfeld()


def _fit(g, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FewClustersWarning)
        return cv.fit_panel(g, "inv", **KW, **kw)


@pytest.mark.parametrize("model_id", list(SPECS))
def test_classical_estimates_and_ses_match_plm(grunfeld, model_id):
    ref = PLM[model_id]
    res = cv.fit_panel(grunfeld, "inv", **KW, **SPECS[model_id])
    terms = [c["term"].replace("(Intercept)", "Intercept") for c in ref["coefficients_classical"]]
    assert list(res.params.index) == terms
    est = np.array([c["estimate"] for c in ref["coefficients_classical"]])
    se = np.array([c["std_error"] for c in ref["coefficients_classical"]])
    pv = np.array([c["p_value"] for c in ref["coefficients_classical"]])
    np.testing.assert_allclose(res.params.to_numpy(), est, rtol=0, atol=1e-6)
    np.testing.assert_allclose(res.std_errors.to_numpy(), se, rtol=0, atol=1e-4)
    np.testing.assert_allclose(res.std_errors.to_numpy(), se, rtol=1e-8)
    np.testing.assert_allclose(res.tidy()["p_value"].to_numpy(), pv, rtol=1e-6, atol=1e-300)
    assert res.nobs == ref["nobs"]
    assert res.df_resid == ref["df_residual"]
    assert res.rsquared == pytest.approx(ref["r_squared"], abs=1e-8)
    assert res.ssr == pytest.approx(ref["sum_squared_residuals"], rel=1e-9)


CLUSTER_CASES = [
    (mid, conv)
    for mid in SPECS
    for conv in CONVENTIONS
    if "clustered_by_group" in PLM[mid] and conv in PLM[mid]["clustered_by_group"]
]


@pytest.mark.parametrize(("model_id", "conv"), CLUSTER_CASES)
def test_clustered_ses_match_plm_each_convention(grunfeld, model_id, conv):
    block = PLM[model_id]["clustered_by_group"][conv]
    with pytest.warns(cv.exceptions.FewClustersWarning, match="10 clusters"):
        res = cv.fit_panel(
            grunfeld,
            "inv",
            **KW,
            **SPECS[model_id],
            cov_type="clustered",
            small_sample=CONVENTIONS[conv],
        )
    ref = np.array(list(block["std_error"].values()))
    np.testing.assert_allclose(res.std_errors.to_numpy(), ref, rtol=1e-8, atol=1e-4)
    if "p_value_t_dfresid" in block:  # plm's coeftest uses t(residual df) for its own types
        np.testing.assert_allclose(
            res.tidy()["p_value"], list(block["p_value_t_dfresid"].values()), rtol=1e-6
        )
    assert res.glance()["n_clusters"].iloc[0] == 10
    assert res.diagnostics.few_clusters


@pytest.mark.parametrize(
    "model_id", ["grunfeld_within_individual", "grunfeld_within_twoways", "grunfeld_pooling"]
)
def test_fixest_crv1_equals_stata_here(grunfeld, model_id):
    # fixest counts one intercept for FE nested in the clusters, like Stata's xtreg; pyfixest
    # 0.60 feols(..., vcov={"CRV1": "firm"}) gives exactly the stata_equivalent numbers here.
    ref = np.array(
        list(PLM[model_id]["clustered_by_group"]["stata_equivalent"]["std_error"].values())
    )
    with pytest.warns(cv.exceptions.FewClustersWarning):
        res = cv.fit_panel(
            grunfeld, "inv", **KW, **SPECS[model_id], cov_type="clustered", small_sample="fixest_crv1"
        )
    np.testing.assert_allclose(res.std_errors.to_numpy(), ref, rtol=1e-8)
    assert (res.df == 9).all()


def test_fixest_crv1_time_effects_value_from_pyfixest(grunfeld):
    # pyfixest 0.60: feols("inv ~ value + capital | year", vcov={"CRV1": "firm"}).se()
    with pytest.warns(cv.exceptions.FewClustersWarning):
        res = cv.fit_panel(
            grunfeld, "inv", **KW, effects="time", cov_type="clustered", small_sample="fixest_crv1"
        )
    np.testing.assert_allclose(res.std_errors.to_numpy(), [0.01803855, 0.10393422], atol=5e-9)


@pytest.mark.parametrize(("small_sample", "key"), [("none", "white_HC0"), ("stata", "white_HC1")])
def test_between_robust_matches_sandwich(grunfeld, small_sample, key):
    ref = np.array(list(PLM["grunfeld_between"][key]["std_error"].values()))
    res = cv.fit_panel(
        grunfeld, "inv", **KW, estimator="between", cov_type="robust", small_sample=small_sample
    )
    np.testing.assert_allclose(res.std_errors.to_numpy(), ref, rtol=1e-8)


@pytest.mark.parametrize(
    ("name", "spec"),
    [
        ("pooling", SPECS["grunfeld_pooling"]),
        ("within", {}),
        ("twoways", {"effects": "twoway"}),
        ("random", {"estimator": "random"}),
    ],
)
def test_cr2_and_satterthwaite_df_match_clubsandwich(grunfeld, name, spec):
    ref = CR2[name]
    res = cv.fit_panel(grunfeld, "inv", **KW, **spec, cov_type="cr2")
    np.testing.assert_allclose(res.params.to_numpy(), ref["estimate"], rtol=1e-9)
    np.testing.assert_allclose(res.std_errors.to_numpy(), ref["std_error"], rtol=1e-8)
    np.testing.assert_allclose(res.df.to_numpy(), ref["df"], rtol=1e-8)
    np.testing.assert_allclose(res.tidy()["p_value"].to_numpy(), ref["p_value"], rtol=1e-7)
    assert "Satterthwaite" in res.summary()


def test_specification_tests_match_plm(grunfeld):
    fe = cv.fit_panel(grunfeld, "inv", **KW)
    re_ = cv.fit_panel(grunfeld, "inv", **KW, estimator="random")
    h = cv.hausman(fe, re_)
    ref = PLM_TESTS["hausman_within_vs_random"]
    assert h.statistic == pytest.approx(ref["statistic"], rel=1e-7)
    assert h.df == ref["df"] and h.p_value == pytest.approx(ref["p_value"], rel=1e-6)
    f = fe.diagnostics.tests["F_pooled"]
    assert f["statistic"] == pytest.approx(
        PLM_TESTS["F_test_individual_effects"]["statistic"], rel=1e-8
    )
    assert f["df"] == (9, 188)
    bp = re_.diagnostics.tests["breusch_pagan"]
    assert bp["statistic"] == pytest.approx(PLM_TESTS["breusch_pagan_lm"]["statistic"], rel=1e-8)
    vc = re_.diagnostics.variance_components
    ref_vc = PLM["grunfeld_random_swar"]["variance_components"]
    assert vc["sigma2_idiosyncratic"] == pytest.approx(ref_vc["sigma2_idiosyncratic"], rel=1e-8)
    assert vc["sigma2_unit"] == pytest.approx(ref_vc["sigma2_individual"], rel=1e-8)
    assert vc["theta"] == pytest.approx(ref_vc["theta"], rel=1e-8)
    assert "Hausman" in h.summary() and h.tidy().shape == (2, 8)


def test_hausman_refuses_robust_covariances(grunfeld):
    fe = cv.fit_panel(grunfeld, "inv", **KW, cov_type="cr2")
    re_ = cv.fit_panel(grunfeld, "inv", **KW, estimator="random")
    with pytest.raises(cv.exceptions.ModelSpecificationError, match="unadjusted"):
        cv.hausman(fe, re_)
    with pytest.raises(cv.exceptions.ModelSpecificationError, match="order"):
        cv.hausman(re_, re_)
