"""Few-cluster inference: event study clustered by provider (CR2-type adjustment, Bell-McCaffrey
df) and the stepped wedge with random cluster effects (fit_mixed, Satterthwaite df).

Independent checks: a group-time cell is the OLS coefficient of ``dy ~ 1 + D``, so its CR2 SE and
BM df must equal ``_panel_cov.cr2`` (which matches clubSandwich); the BM df of an aggregate must
equal ``tr(Omega)^2 / tr(Omega^2)`` with ``Omega`` built by pushing every unit-period basis
vector through the estimator. Calibration: null simulations with 8 providers.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import coevidence as cv
from coevidence.exceptions import FewClustersWarning, ModelSpecificationError, OptionError
from coevidence.models._shared import covariance as pc
from coevidence.models.did import _small as small
from coevidence.models.did._cs import cs_cells


def provider_panel(G=8, per=10, T=6, cohorts=(3, 4, 5), n_never=2, rho=0.3, seed=0, effect=0.0):
    """Orgs nested in providers; the start period is assigned by provider (``n_never`` never
    start), provider x period shocks with SD ``rho`` make provider-level correlation."""
    rng = np.random.default_rng(seed)
    starts = np.array([np.inf] * n_never + [cohorts[i % len(cohorts)] for i in range(G - n_never)])
    starts = rng.permutation(starts)
    prov = np.repeat(np.arange(G), per)
    n = G * per
    t = np.arange(1, T + 1)
    shock = rng.normal(0, rho, (G, T))
    y = (
        rng.normal(size=n)[:, None]
        + 0.1 * t[None, :]
        + shock[prov]
        + rng.normal(0, 0.5, (n, T))
        + effect * (t[None, :] >= starts[prov][:, None])
    )
    g = starts[prov]
    return pd.DataFrame(
        {
            "org_id": np.repeat(np.arange(n), T),
            "provider": np.repeat(prov, T),
            "wave": np.tile(t, n),
            "first_treated": np.repeat(np.where(np.isfinite(g), g, np.nan), T),
            "y": y.ravel(),
        }
    )


def quiet(fn, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FewClustersWarning)
        return fn(*a, **k)


# ------------------------------------------------------------------ exactness of the pieces


def test_cell_cr2_and_df_equal_ols_cr2():
    d = provider_panel(per=5, seed=3)
    d = d[~((d["provider"] == 1) & (d["org_id"] % 5 < 2))]  # unequal provider sizes
    es = cv.fit_event_study(d, "y", cluster="provider")
    Y = d.pivot(index="org_id", columns="wave", values="y")
    unit = d.groupby("org_id")[["provider", "first_treated"]].first().loc[Y.index]
    G_ = unit["first_treated"].to_numpy()
    checked = 0
    for _, r in es.gt[~es.gt["reference"]].iterrows():
        g, t = r["group"], r["time"]
        b = g - 1 if t >= g else t - 1
        sub = (G_ == g) | np.isnan(G_)
        dy = (Y[t] - Y[b]).to_numpy()[sub]
        X = np.column_stack([np.ones(sub.sum()), (G_[sub] == g).astype(float)])
        codes = pd.factorize(unit["provider"].to_numpy()[sub])[0]
        beta = np.linalg.lstsq(X, dy, rcond=None)[0]
        V, df = pc.cr2(X, dy - X @ beta, codes, codes.max() + 1, np.linalg.qr(X)[0])
        assert r["estimate"] == pytest.approx(beta[1], abs=1e-12)
        assert r["std_error"] == pytest.approx(np.sqrt(V[1, 1]), rel=1e-10)
        assert r["df"] == pytest.approx(df[1], rel=1e-8)
        checked += 1
    assert checked >= 10


def test_aggregate_bm_df_equals_brute_force_linear_map():
    d = provider_panel(G=6, per=4, T=5, cohorts=(3, 4), seed=2)
    es = cv.fit_event_study(d, "y", cluster="provider")
    eng = es._engine
    cells = eng.cells
    Y = d.pivot(index="org_id", columns="wave", values="y").to_numpy()
    n, T = Y.shape
    G_unit = d.groupby("org_id")["first_treated"].first().fillna(np.inf).to_numpy()
    periods = np.arange(1.0, T + 1)
    levels = np.full(n, "", dtype=object)
    codes = eng.inference.codes
    F, _ = small.cs_leverage(cells, codes, 6)
    agg = eng._agg_one("simple", "")
    w = agg.overall_weights
    # the map from unit-period outcomes to the adjusted cluster sums, one basis vector at a time
    L = np.zeros((6, n * T))
    for j in range(n * T):
        E = np.zeros(n * T)
        E[j] = 1.0
        c = cs_cells(E.reshape(n, T), G_unit, periods, levels, None, control="never_treated",
                     anticipation=0, base_period="varying", est_method="unconditional")
        inf = (c.inf * F) @ w
        np.add.at(L[:, j], codes, inf)
    omega = L @ L.T
    brute = np.trace(omega) ** 2 / np.sum(omega * omega)
    assert small.bm_df(cells, w, codes, 6)[0] == pytest.approx(min(brute, 5), rel=1e-10)
    assert es.aggregate("simple").tidy()["df"].iloc[0] == pytest.approx(min(brute, 5), rel=1e-10)


def test_bootstrap_and_analytic_cluster_se_agree():
    # the multiplier bootstrap perturbs the same CR2-adjusted cluster sums: its variance is the
    # analytic one; did's IQR-based SE of a sum of a few two-point variables is noisy, so only
    # the typical ratio is close to 1
    d = provider_panel(seed=11)
    an = cv.fit_event_study(d, "y", cluster="provider").aggregate("event").tidy()
    bs = cv.fit_event_study(
        d, "y", cluster="provider", bootstrap_reps=1999, bootstrap_weights="rademacher", seed=1
    ).aggregate("event").tidy()
    assert 0.85 < np.median(bs["std_error"] / an["std_error"]) < 1.2
    np.testing.assert_array_equal(bs["df"], an["df"])


# ------------------------------------------------------------------ the reported bug


def test_provider_clustered_se_no_longer_shrinks():
    # no provider-level correlation: cluster and unit SEs estimate the same thing, but the old
    # cluster-summed (did) SE lost a provider's worth of variation per cohort (2 per cohort)
    ratios_old, ratios_new = [], []
    for r in range(25):
        d = provider_panel(rho=0.0, seed=100 + r)
        u = cv.fit_event_study(d, "y").aggregate("simple").tidy()["std_error"].iloc[0]
        old = quiet(cv.fit_event_study, d, "y", cluster="provider", small_sample="none",
                    df="normal").aggregate("simple").tidy()["std_error"].iloc[0]
        new = cv.fit_event_study(d, "y", cluster="provider").aggregate("simple")
        ratios_old.append(old / u)
        ratios_new.append(new.tidy()["std_error"].iloc[0] / u)
    assert np.mean(ratios_old) < 0.92  # the shrinkage of the issue (~0.87)
    assert np.mean(ratios_new) >= 1.0  # CR2: at least the unit-level SE (~1.12)


def _null_rejections(reps, seed0):
    """Rejection rates at 5% of a post-treatment cell and of the simple ATT, 8 providers."""
    out = {k: [] for k in ("cell_z", "cell_g1", "cell_bm", "att_z", "att_bm")}
    for r in range(reps):
        d = provider_panel(per=6, rho=0.3, seed=seed0 + r)
        old = quiet(cv.fit_event_study, d, "y", cluster="provider", small_sample="none",
                    df="normal")
        new = cv.fit_event_study(d, "y", cluster="provider")
        pick = new.gt.loc[~new.gt["reference"], "event_time"].to_numpy() == 1
        c_new, c_old = new.tidy()[pick].iloc[0], old.tidy()[pick].iloc[0]
        out["cell_bm"].append(c_new["p_value"] < 0.05)
        out["cell_g1"].append(2 * stats.t.sf(abs(c_new["statistic"]), 7) < 0.05)  # same SE
        out["cell_z"].append(c_old["p_value"] < 0.05)
        out["att_z"].append(old.aggregate("simple").tidy()["p_value"].iloc[0] < 0.05)
        out["att_bm"].append(new.aggregate("simple").tidy()["p_value"].iloc[0] < 0.05)
    return {k: float(np.mean(v)) for k, v in out.items()}


@pytest.mark.slow
def test_null_calibration_with_8_providers():
    reps = 200
    rate = _null_rejections(reps, 5000)
    lo, hi = stats.binom.ppf([0.0005, 0.9995], reps, 0.05) / reps  # 99.9% band
    assert lo <= rate["cell_bm"] <= hi  # measured ~0.05
    assert rate["cell_z"] > 0.15  # did's clustered z tests: ~0.3
    assert rate["cell_g1"] > rate["cell_bm"]  # t(G - 1) is not enough for a cell: ~0.14
    assert rate["att_bm"] <= hi  # conservative (cohort-share term), never liberal
    assert rate["att_z"] > 0.08  # ~0.17


# ------------------------------------------------------------------ options and messages


def test_df_and_small_sample_options():
    d = provider_panel(seed=4)
    base = cv.fit_event_study(d, "y", cluster="provider")
    assert base.info["small_sample"] == "cr2" and base.info["df_choice"] == "bm"
    assert base.info["n_clusters"] == 8 and "Bell-McCaffrey" in base.info["df_method"]
    t = base.tidy()
    assert ((t["df"] >= 1) & (t["df"] <= 7)).all()
    g1 = cv.fit_event_study(d, "y", cluster="provider", df="cluster")
    assert (g1.tidy()["df"] == 7).all() and "G - 1 = 7" in g1.summary()
    np.testing.assert_array_equal(g1.tidy()["std_error"], t["std_error"])
    fixed = cv.fit_event_study(d, "y", cluster="provider", df=4.5)
    assert (fixed.tidy()["df"] == 4.5).all()
    with pytest.warns(FewClustersWarning, match="z tests with only 8 clusters"):
        z = cv.fit_event_study(d, "y", cluster="provider", df="normal")
    assert np.isinf(z.tidy()["df"]).all()
    # small_sample="none": the did-style cluster sums, by hand
    raw = cv.fit_event_study(d, "y", cluster="provider", small_sample="none")
    assert raw.info["df_choice"] == "cluster"
    unit = cv.fit_event_study(d, "y")
    inf = unit._engine.cells.inf[:, ~unit._engine.cells.reference]
    S = np.zeros((8, inf.shape[1]))
    np.add.at(S, raw._engine.inference.codes, inf)
    np.testing.assert_allclose(raw.tidy()["std_error"], np.sqrt((S**2).sum(0)) / len(inf))
    assert (raw.tidy()["std_error"].to_numpy() < t["std_error"].to_numpy()).all()
    # by unit (default): did's SEs with t(n - 1)
    assert (unit.tidy()["df"] == 79).all() and unit.info["small_sample"] == "none"
    # other estimators: CR1 factor and G - 1
    sa = cv.fit_event_study(d, "y", estimator="sun_abraham", cluster="provider")
    sa0 = cv.fit_event_study(d, "y", estimator="sun_abraham", cluster="provider",
                             small_sample="none")
    np.testing.assert_allclose(sa.tidy()["std_error"], sa0.tidy()["std_error"] * np.sqrt(8 / 7))
    assert (sa.tidy()["df"] == 7).all() and sa.info["small_sample"] == "cr1"
    for bad in ({"df": "satterthwaite"}, {"df": -1}, {"df": True}, {"small_sample": "cr3"}):
        with pytest.raises(OptionError):
            cv.fit_event_study(d, "y", cluster="provider", **bad)
    with pytest.raises(ModelSpecificationError, match="callaway_santanna"):
        cv.fit_event_study(d, "y", estimator="two_stage", cluster="provider", small_sample="cr2")
    with pytest.raises(ModelSpecificationError, match="small_sample='cr2'"):
        cv.fit_event_study(d, "y", cluster="provider", small_sample="cr1", df="bm")
    with pytest.raises(ModelSpecificationError, match="at least 2 clusters"):
        cv.fit_event_study(d.assign(one=1), "y", cluster="one")


def test_pretrend_is_an_f_test_with_clusters():
    d = provider_panel(seed=6)
    res = cv.fit_event_study(d, "y", cluster="provider")
    pre = res.pretrend_test()
    assert pre["test"] == "F" and pre["df_denominator"] == 7
    assert pre["p_value"] == pytest.approx(stats.f.sf(pre["statistic"] / pre["df"], pre["df"], 7))
    assert "Pre-trend Wald test: F(" in res.summary()
    assert "test" not in cv.fit_event_study(d, "y").pretrend_test()  # chi2 by unit, as did


def test_uniform_band_not_narrower_than_pointwise_with_t():
    d = provider_panel(seed=8)
    fr = cv.fit_event_study(d, "y", cluster="provider", bootstrap_reps=999, seed=2).aggregate(
        "event"
    ).frame()
    assert ((fr["uniform_high"] - fr["uniform_low"]) >= (fr["conf_high"] - fr["conf_low"])).all()


def test_single_cluster_cohort_warns():
    d = provider_panel(G=8, cohorts=(3, 4, 5), seed=1)
    solo = d["provider"] == d.loc[d["first_treated"] == 3, "provider"].iloc[0]
    d.loc[solo, "first_treated"] = 2.0  # cohort 2 = one provider
    with pytest.warns(FewClustersWarning, match="cohort 2.* consist"):
        res = cv.fit_event_study(d, "y", cluster="provider")
    assert any("single-cluster" in n for n in res.diagnostics.notes)


def test_mpdta_defaults_keep_did_parity_and_report_df():
    from coevidence.datasets.panel import load_mpdta

    m = load_mpdta()
    kw = {"unit": "countyreal", "time": "year", "first_treated": "first.treat"}
    a = cv.fit_event_study(m, "lemp", **kw)
    z = cv.fit_event_study(m, "lemp", **kw, df="normal")
    np.testing.assert_array_equal(a.tidy()["std_error"], z.tidy()["std_error"])
    assert (a.tidy()["df"] == 499).all() and np.isinf(z.tidy()["df"]).all()
    assert z.info["df_method"].startswith("normal (z), as R did")
    assert a.pretrend_test() == z.pretrend_test()
    with pytest.raises(ModelSpecificationError, match="at most 200 clusters"):
        cv.fit_event_study(m, "lemp", **kw, small_sample="cr2", df="bm")
    cr2 = cv.fit_event_study(m, "lemp", **kw, small_sample="cr2")  # HC2-like, t(499)
    assert (cr2.tidy()["df"] == 499).all()
    assert (cr2.tidy()["std_error"] >= a.tidy()["std_error"]).all()


# ------------------------------------------------------------------ stepped wedge


def sw_panel(G=8, T=6, seed=0, effect=0.0, tau=0.5):
    rng = np.random.default_rng(seed)
    start = 1 + np.arange(G) % (T - 1)
    u = rng.normal(0, tau, G)
    rows = [
        (c, t, start[c], u[c] + 0.2 * t + effect * (t >= start[c]) + rng.normal())
        for c in range(G)
        for t in range(T)
    ]
    return pd.DataFrame(rows, columns=["org_id", "wave", "start", "y"])


def test_stepped_wedge_random_uses_t_with_satterthwaite_df():
    d = sw_panel()
    res = cv.fit_stepped_wedge(d, "y", first_treated="start", cluster_effects="random")
    t = res.tidy().set_index("term")
    assert np.isfinite(t["df"]).all() and (t["df"] < len(d)).all()
    assert "Satterthwaite" in res.info["df_method"] and "fit_mixed" in res.info["df_method"]
    crit = stats.t.ppf(0.975, t.loc["TATE", "df"])
    assert t.loc["TATE", "conf_high"] == pytest.approx(
        t.loc["TATE", "estimate"] + crit * t.loc["TATE", "std_error"]
    )
    assert t.loc["TATE", "df"] != t.loc["exposure_1", "df"]  # its own df, not copied


def test_stepped_wedge_few_clusters_raise_or_warn():
    two = sw_panel(G=2, T=5)
    with pytest.raises(ModelSpecificationError, match="identically 0"):
        cv.fit_stepped_wedge(two, "y", first_treated="start", model="immediate")
    with pytest.warns(FewClustersWarning, match="only 2 clusters"):
        r = cv.fit_stepped_wedge(two, "y", first_treated="start", model="immediate",
                                 cluster_effects="random")
    assert r.tidy()["df"].iloc[0] < 10 and r.tidy()["std_error"].iloc[0] > 0.05
    one = sw_panel(G=4).assign(start=lambda x: np.where(x["org_id"] == 0, 2, 99))
    with pytest.raises(ModelSpecificationError, match="only 1 cluster"):
        cv.fit_stepped_wedge(one, "y", first_treated="start", cluster_effects="random")
    with pytest.raises(ModelSpecificationError, match="at least 2 clusters"):
        cv.fit_stepped_wedge(sw_panel(G=1, T=4).assign(start=2), "y", first_treated="start")
    with pytest.warns(FewClustersWarning, match="only 3 clusters"):
        cv.fit_stepped_wedge(sw_panel(G=3, T=4), "y", first_treated="start", model="immediate")
    with warnings.catch_warnings():
        warnings.simplefilter("error", FewClustersWarning)
        cv.fit_stepped_wedge(sw_panel(G=8), "y", first_treated="start")


@pytest.mark.slow
def test_stepped_wedge_random_null_calibration():
    # 4 clusters x 4 periods, one row per cluster-period: Satterthwaite t holds its level
    # (measured 0.055; 0.060 in 300 replications), the Wald z tests used before over-reject
    # (0.080; 0.097)
    reps = 200
    rej_t, rej_z = [], []
    for r in range(reps):
        d = sw_panel(G=4, T=4, seed=900 + r)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # few clusters; some fits are singular
            row = cv.fit_stepped_wedge(d, "y", first_treated="start", model="immediate",
                                       cluster_effects="random").tidy().iloc[0]
        rej_t.append(row["p_value"] < 0.05)
        rej_z.append(2 * stats.norm.sf(abs(row["statistic"])) < 0.05)
    lo, hi = stats.binom.ppf([0.0005, 0.9995], reps, 0.05) / reps
    assert lo <= np.mean(rej_t) <= hi
    assert np.mean(rej_z) - np.mean(rej_t) >= 0.02
