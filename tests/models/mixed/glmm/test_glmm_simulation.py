"""GLMMs recover known parameters from simulated TA studies (binary and count research use).

Stated tolerances: each fixed effect within 4 SEs of the truth in every replicate and the
replicate mean within 0.12 (logit) / 0.06 (log) of it; provider and organisation SDs within
0.25 of the truth on average (a few dozen clusters: SDs are estimated with SE ~0.1-0.15).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import coevidence as cv

BETA_B = np.array([-0.6, 0.15, 0.2, 0.2])  # intercept, wave, arm, wave:arm (logit)
SD_PROV, SD_ORG = 0.5, 0.7


def simulate_binary(seed: int, n_prov=24, n_org=8, n_wave=5, n_resp=3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    prov = np.repeat(np.arange(n_prov), n_org * n_wave * n_resp)
    org = np.repeat(np.arange(n_prov * n_org), n_wave * n_resp)
    wave = np.tile(np.repeat(np.arange(n_wave), n_resp), n_prov * n_org).astype(float)
    arm = (prov % 2).astype(float)
    eta = (BETA_B[0] + BETA_B[1] * wave + BETA_B[2] * arm + BETA_B[3] * wave * arm
           + rng.normal(0, SD_PROV, n_prov)[prov] + rng.normal(0, SD_ORG, n_prov * n_org)[org])
    y = (rng.random(len(eta)) < 1 / (1 + np.exp(-eta))).astype(float)
    return pd.DataFrame({"provider_id": prov, "org_id": org, "wave": wave, "arm": arm, "y": y})


def simulate_counts(seed: int, n_org=150, n_wave=6) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    org = np.repeat(np.arange(n_org), n_wave)
    wave = np.tile(np.arange(n_wave), n_org).astype(float)
    arm = (org % 2).astype(float)
    months = rng.integers(1, 7, len(org)).astype(float)
    eta = -0.4 + 0.05 * wave + 0.3 * arm + np.log(months) + rng.normal(0, 0.4, n_org)[org]
    return pd.DataFrame({"org_id": org, "wave": wave, "arm": arm, "months": months,
                         "decisions": rng.poisson(np.exp(eta)).astype(float)})


def _fit(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cv.fit_mixed(*args, **kwargs)


def test_binary_nested_recovers_fixed_effects_and_sds():
    est, sds = [], []
    for seed in range(4):
        r = _fit("y ~ wave * arm + (1 | provider_id/org_id)", simulate_binary(seed),
                 family="binomial")
        t = r.tidy()
        assert np.all(np.abs(t["estimate"] - BETA_B) < 4 * t["std_error"]), t
        est.append(t["estimate"].to_numpy())
        vc = r.variance_components().set_index("group")["sdcor"]
        sds.append([vc["provider_id"], vc["org_id:provider_id"]])
        assert r.diagnostics.converged
    np.testing.assert_allclose(np.mean(est, axis=0), BETA_B, atol=0.12)
    np.testing.assert_allclose(np.mean(sds, axis=0), [SD_PROV, SD_ORG], atol=0.25)


def test_poisson_offset_recovers_rate_ratio_and_sd():
    est, sds = [], []
    for seed in range(3):
        r = _fit("decisions ~ wave + arm + offset(log(months)) + (1 | org_id)",
                 simulate_counts(seed), family="poisson")
        t = r.tidy()
        assert np.all(np.abs(t["estimate"] - [-0.4, 0.05, 0.3]) < 4 * t["std_error"])
        est.append(t["estimate"].to_numpy())
        sds.append(float(r.variance_components()["sdcor"].iloc[0]))
    np.testing.assert_allclose(np.mean(est, axis=0), [-0.4, 0.05, 0.3], atol=0.06)
    assert np.mean(sds) == pytest.approx(0.4, abs=0.08)


def test_marginal_rate_is_conditional_times_lognormal_factor():
    """For a log link with a random intercept, E[exp(eta + b)] = exp(eta) exp(tau / 2)."""
    r = _fit("decisions ~ wave + arm + offset(log(months)) + (1 | org_id)",
             simulate_counts(7), family="poisson")
    tau = float(r.variance_components()["vcov"].iloc[0])
    cond = cv.response_contrast(r, arm="arm", time="wave", times=[2.0])
    marg = cv.response_contrast(r, arm="arm", time="wave", times=[2.0], averaging="marginal")
    rates = (cond["measure"] == "rate").to_numpy()
    np.testing.assert_allclose(marg.loc[rates, "estimate"],
                               cond.loc[rates, "estimate"] * np.exp(tau / 2), rtol=1e-8)
    ratio = (cond["measure"] == "ratio").to_numpy()
    np.testing.assert_allclose(marg.loc[ratio, "estimate"], cond.loc[ratio, "estimate"],
                               rtol=1e-10)


def test_growth_binary_is_design_aware():
    """fit_growth(family=) puts a random slope at the assignment level and tests the
    between-provider terms with t on the between-within df (G - q), not z."""
    d = simulate_binary(11, n_prov=10)
    panel = d.assign(ta_model=np.where(d.arm > 0, "co_creation", "push"), time=d.wave)
    r = _fit_growth(panel)
    assert r.growth.design.assignment_level == "provider_id"
    t = r.tidy().set_index("term")
    assert t.loc["time:ta_modelco_creation", "df"] == pytest.approx(10 - 2)
    assert np.isinf(t.loc["time", "df"]) or t.loc["time", "df"] <= 8
    rc = cv.response_contrast(r, times=[4.0])
    diff = rc[rc["measure"] == "difference"].iloc[0]
    assert np.isfinite(diff["p_value"]) and diff["conf_low"] < diff["estimate"] < diff["conf_high"]


def _fit_growth(panel):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cv.fit_growth(panel, "y", levels=("provider_id", "org_id"), family="binomial",
                             random_slope=False)
