"""The GLMM front end: formula forms, options, bad input, diagnostics, the result contract,
and the compiled/NumPy passes giving the same numbers."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import coevidence as cv
from coevidence.exceptions import (
    DesignDfWarning,
    MissingDataWarning,
    ModelSpecificationError,
    OptionError,
)
from coevidence.models.mixed.datasets import load_dataset
from coevidence.models.mixed.glmm import parse_family
from coevidence.testing import check_result

CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


@pytest.fixture(scope="module")
def cbpp():
    return load_dataset("cbpp")


@pytest.fixture(scope="module")
def cbpp_fit(cbpp):
    return cv.fit_mixed(CBPP, cbpp, family="binomial")


def bernoulli(seed=0, n_prov=12, n_org=6, n_wave=5, beta=(-0.5, 0.2, 0.3, 0.15),
              sd_prov=0.4, sd_org=0.6):
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_prov):
        arm = p % 2
        up = rng.normal(0, sd_prov)
        for o in range(n_org):
            uo = rng.normal(0, sd_org)
            for w in range(n_wave):
                for _ in range(3):
                    eta = beta[0] + beta[1] * w + beta[2] * arm + beta[3] * w * arm + up + uo
                    rows.append((f"p{p}", f"p{p}o{o}", w, arm, float(rng.random() < 1 / (
                        1 + np.exp(-eta)))))
    return pd.DataFrame(rows, columns=["provider_id", "org_id", "wave", "arm", "y"])


# ----------------------------------------------------------------------------- families
def test_parse_family_forms():
    assert parse_family("binomial") == ("binomial", "logit")
    assert parse_family(("binomial", "cloglog")) == ("binomial", "cloglog")
    assert parse_family("binomial(link = \"probit\")") == ("binomial", "probit")
    assert parse_family("poisson", "log") == ("poisson", "log")
    for bad, msg in [("gaussian", "linear mixed model"), ("gamma", "one of"),
                     ("poisson(link='identity')", "not available"), (3, "string")]:
        with pytest.raises(OptionError, match=msg):
            parse_family(bad)
    with pytest.raises(OptionError, match="twice"):
        parse_family("binomial(link='probit')", "logit")


def test_lmm_options_refused_with_family(cbpp):
    for kw in ({"reml": False}, {"df_method": "kenward_roger"}, {"cov_type": "cr2"},
               {"engine": "statsmodels"}):
        with pytest.raises(OptionError, match="would be ignored"):
            cv.fit_mixed(CBPP, cbpp, family="binomial", **kw)
    with pytest.raises(OptionError, match="only apply with family"):
        cv.fit_mixed("incidence ~ period + (1 | herd)", cbpp, nagq=5)


def test_nagq_needs_one_scalar_effect():
    d = bernoulli()
    with pytest.raises(ModelSpecificationError, match="single scalar random effect"):
        cv.fit_mixed("y ~ wave + (1 | provider_id/org_id)", d, family="binomial", nagq=5)
    with pytest.raises(OptionError, match="nagq"):
        cv.fit_mixed("y ~ wave + (1 | org_id)", d, family="binomial", nagq=-1)


def test_crossed_factors_refused_with_reason():
    d = bernoulli().assign(rater=lambda x: np.arange(len(x)) % 7)
    with pytest.raises(ModelSpecificationError, match="nested"):
        cv.fit_mixed("y ~ wave + (1 | org_id) + (1 | rater)", d, family="binomial")


# ----------------------------------------------------------------------------- responses
def test_response_forms_agree(cbpp, cbpp_fit):
    prop = cbpp.assign(p=cbpp.incidence / cbpp["size"])
    r2 = cv.fit_mixed("p ~ period + (1 | herd)", prop, family="binomial", weights="size")
    r3 = cv.fit_mixed("incidence / size ~ period + (1 | herd)", cbpp, family="binomial",
                      weights="size")
    for r in (r2, r3):
        np.testing.assert_allclose(r.params, cbpp_fit.params, rtol=1e-8)
        assert r.log_lik == pytest.approx(cbpp_fit.log_lik, abs=1e-8)
    d = bernoulli()
    a = quiet(cv.fit_mixed, "y ~ wave * arm + (1 | org_id)", d, family="binomial")
    b = quiet(cv.fit_mixed, "yb ~ wave * arm + (1 | org_id)",
              d.assign(yb=d.y.astype(bool)), family="binomial")
    c = quiet(cv.fit_mixed, "yf ~ wave * arm + (1 | org_id)",
              d.assign(yf=np.where(d.y > 0, "yes", "no")), family="binomial")
    np.testing.assert_allclose(b.params, a.params, rtol=1e-10)
    np.testing.assert_allclose(c.params, a.params, rtol=1e-10)


def test_bad_responses_name_the_row(cbpp):
    bad = cbpp.copy()
    bad.loc[3, "incidence"] = -1
    with pytest.raises(ModelSpecificationError, match="negative counts.*row 3"):
        cv.fit_mixed(CBPP, bad, family="binomial")
    d = bernoulli()
    d.loc[5, "y"] = 2.0
    with pytest.raises(ModelSpecificationError, match=r"\[0, 1\].*row 5"):
        cv.fit_mixed("y ~ wave + (1 | org_id)", d, family="binomial")
    d.loc[5, "y"] = -1.0
    with pytest.raises(ModelSpecificationError, match="non-negative.*row 5"):
        cv.fit_mixed("y ~ wave + (1 | org_id)", d, family="poisson")
    with pytest.raises(ModelSpecificationError, match="no random-effects term"):
        cv.fit_mixed("incidence ~ period", cbpp, family="poisson")
    with pytest.raises(ModelSpecificationError, match="offset"):
        cv.fit_mixed("incidence ~ period + offset(nope(size)) + (1 | herd)", cbpp,
                     family="poisson")


def test_missing_rows_dropped_with_counts_and_input_unchanged(cbpp):
    d = cbpp.copy()
    d.loc[[0, 7], "incidence"] = np.nan
    d.loc[11, "size"] = np.nan
    before = d.copy()
    with pytest.warns(MissingDataWarning):
        r = cv.fit_mixed(CBPP, d, family="binomial")
    pd.testing.assert_frame_equal(d, before)
    assert r.nobs == 53 and r.n_dropped == 3
    assert int(r.glance()["n_dropped"].item()) == 3
    with pytest.warns(MissingDataWarning, match="offset"):
        r = cv.fit_mixed("incidence ~ period + (1 | herd)", cbpp, family="poisson",
                         offset=np.r_[np.nan, np.log(cbpp["size"].to_numpy()[1:])])
    assert r.nobs == 55


def test_offset_shifts_intercept_exactly(cbpp):
    r0 = cv.fit_mixed("incidence ~ period + (1 | herd)", cbpp, family="poisson")
    r1 = cv.fit_mixed("incidence ~ period + offset(log(2) + 0 * size) + (1 | herd)", cbpp,
                      family="poisson")
    assert r1.params.iloc[0] == pytest.approx(r0.params.iloc[0] - np.log(2), abs=1e-7)
    np.testing.assert_allclose(r1.params.iloc[1:], r0.params.iloc[1:], atol=1e-7)


# ----------------------------------------------------------------------------- result
def test_result_contract_and_pickle(cbpp_fit):
    check_result(cbpp_fit)
    back = pickle.loads(pickle.dumps(cbpp_fit))
    pd.testing.assert_frame_equal(back.tidy(), cbpp_fit.tidy())
    assert "binomial ( logit )" in cbpp_fit.summary()
    assert "<table" in cbpp_fit._repr_html_()


def test_tidy_exponentiate_and_predict(cbpp_fit):
    t, e = cbpp_fit.tidy(), cbpp_fit.tidy(exponentiate=True)
    np.testing.assert_allclose(e["estimate"], np.exp(t["estimate"]))
    np.testing.assert_allclose(e["conf_low"], np.exp(t["conf_low"]))
    np.testing.assert_allclose(e["p_value"], t["p_value"])
    assert np.all(np.isinf(t["df"]))
    cond = cbpp_fit.predict(level="conditional", type="response")["fitted"].to_numpy()
    np.testing.assert_allclose(cond, cbpp_fit.fitted(), rtol=1e-10)
    pop = cbpp_fit.predict(interval="confidence", type="response")
    assert np.all((pop["lower"] < pop["fitted"]) & (pop["fitted"] < pop["upper"]))


def test_residuals_add_up(cbpp_fit):
    dev = cbpp_fit.residuals("deviance")
    assert float(np.sum(dev ** 2)) == pytest.approx(cbpp_fit.deviance, rel=1e-10)
    pear = cbpp_fit.residuals("pearson")
    assert float(np.sum(pear ** 2)) == pytest.approx(
        float(cbpp_fit.overdispersion()["pearson_chi2"].item()), rel=1e-10)
    with pytest.raises(ValueError):
        cbpp_fit.residuals("studentized")


def test_icc_latent_scale(cbpp_fit):
    tau = float(cbpp_fit.variance_components()["vcov"].iloc[0])
    assert float(cbpp_fit.icc()["icc"].iloc[0]) == pytest.approx(tau / (tau + np.pi ** 2 / 3))


def test_numpy_fallback_gives_same_numbers(cbpp):
    from coevidence.models.mixed._fast import _linalg
    from coevidence.models.mixed._glmm import _kernels

    d = bernoulli(seed=3)
    f = "y ~ wave * arm + (1 + wave | org_id) + (1 | provider_id)"
    a = quiet(cv.fit_mixed, f, d, family="binomial")
    old = (_kernels.USE_NUMBA, _linalg.USE_NUMBA)
    try:
        _kernels.USE_NUMBA = _linalg.USE_NUMBA = False
        b = quiet(cv.fit_mixed, f, d, family="binomial")
    finally:
        _kernels.USE_NUMBA, _linalg.USE_NUMBA = old
    np.testing.assert_allclose(b.params, a.params, rtol=1e-6, atol=1e-8)
    assert b.log_lik == pytest.approx(a.log_lik, abs=1e-7)


@settings(max_examples=6, deadline=None, derandomize=True)
@given(seed=st.integers(0, 10_000))
def test_row_order_and_labels_do_not_matter(seed):
    d = bernoulli(seed=seed % 7, n_prov=6, n_org=4, n_wave=3)
    f = "y ~ wave + arm + (1 | provider_id/org_id)"
    a = quiet(cv.fit_mixed, f, d, family="binomial")
    perm = np.random.default_rng(seed).permutation(len(d))
    shuffled = d.iloc[perm].assign(org_id=lambda x: "x" + x.org_id)
    b = quiet(cv.fit_mixed, f, shuffled, family="binomial")
    np.testing.assert_allclose(b.params, a.params, rtol=1e-5, atol=1e-6)
    assert b.log_lik == pytest.approx(a.log_lik, abs=1e-6)


def test_singular_fit_is_reported():
    rng = np.random.default_rng(1)
    d = pd.DataFrame({"g": np.repeat(np.arange(30), 10), "x": rng.normal(size=300)})
    d["y"] = (rng.random(300) < 1 / (1 + np.exp(-0.3 * d.x))).astype(float)  # no group effect
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        r = cv.fit_mixed("y ~ x + (1 | g)", d, family="binomial")
    if r.theta[0] < 1e-4:
        assert r.diagnostics.singular and bool(r.glance()["singular"].item())
        assert any("singular" in str(x.message) for x in w)
        assert bool(r.diagnostics.boundary["at_boundary"].any())
    else:  # the estimate is small but interior: not flagged
        assert not r.diagnostics.singular


def test_between_cluster_z_tests_warn_with_few_clusters():
    d = bernoulli()
    with pytest.warns(DesignDfWarning, match="provider_id"):
        cv.fit_mixed("y ~ wave * arm + (1 | org_id)", d, family="binomial")


def test_nagq0_matches_glmer_nagq0(cbpp, cbpp_fit):
    """lme4's nAGQ = 0 (``make_glmm_nagq0.R``): beta from PIRLS, covariance from RX."""
    import json
    from pathlib import Path

    ref = json.loads((Path(__file__).resolve().parents[3] / "fixtures" / "glmm"
                      / "glmm_nagq0.json").read_text())["cbpp_logit_nagq0"]
    r0 = cv.fit_mixed(CBPP, cbpp, family="binomial", nagq=0)
    assert r0.glance()["estimator"].item() == "nagq0"
    assert r0.diagnostics.vcov_source == "rx"
    np.testing.assert_allclose(r0.params, ref["beta"], rtol=1e-5)
    np.testing.assert_allclose(r0.theta, [ref["theta"]], rtol=1e-5)
    np.testing.assert_allclose(r0.tidy()["std_error"], ref["se_rx"], rtol=1e-4)
    assert r0.log_lik == pytest.approx(ref["loglik"], abs=1e-5)
    assert r0.log_lik <= cbpp_fit.log_lik + 1e-8  # Laplace is maximised over beta as well
