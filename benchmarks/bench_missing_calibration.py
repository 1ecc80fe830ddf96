"""Calibration of multiple imputation + pooling under MAR dropout, and of propensity weighting.

What it measures
----------------
**Imputation** (scenario ``mi``): ``G`` organisations (half treated) observed at waves 0..3,
``y = u_j + 0.2 wave + 0.3 arm x wave + e`` (``sd(u) = 0.8``, ``sd(e) = 0.6``). Treated
organisations with high outcomes drop out: at wave ``t`` an organisation still present leaves
with probability ``logit^-1(-1 + 2 (y_{t-1} - 1))`` if treated, 0.1 otherwise (missing at
random: dropout depends on the last observed outcome; about half the treated are gone by wave
3). The estimand is the arm difference at wave 3 (truth 0.9), estimated by the difference in
means of the wave-3 rows (pooled-variance t). For each data set the table compares complete
cases with ``coevidence.impute(..., cluster="org", by="arm", predictors=["wave"])`` (random
intercepts, ``norm`` and ``pmm``; fixed intercepts) pooled with Rubin's rules: mean estimate,
bias, SD, mean SE, coverage of the 95% interval (Monte Carlo SE in brackets) and seconds per
data set.

**Weighting** (scenario ``ipw``): ``G`` organisations, confounder ``x ~ N(0, 1)``,
``P(treated) = logit^-1(1.2 x)``, ``y = 1 + x + 0.3 t + e``: the naive difference, ATE and
overlap weights (``propensity_weights``) with a weighted pooled regression (``fit_panel``,
HC1 SEs).

**Weighted growth** (scenario ``growth``): 12 providers x ``G/12`` organisations x waves 0..4,
confounder ``x ~ N(0, 1)`` per organisation, ``P(co-creation) = logit^-1(1.2 x)`` (assigned to
organisations, not randomised), ``y = u_p + u_j + (0.2 + 0.25 x + tau arm) wave + e`` with
``sd(u_p) = 0.3``, ``sd(u_j) = 0.8``, ``sd(e) = 0.6`` and 10% of org-waves missing. The estimand
is the arm x wave slope difference ``tau`` (0.3, and 0 for the type I error run), estimated by
``fit_mixed("y ~ wave * arm + (wave | org) + (1 | prov)", weights=w)`` with ATE and overlap
weights from ``propensity_weights(unit="org")`` (CR2 by provider, Bell-McCaffrey df), against
the unweighted model (model-based Satterthwaite df).

Run::

    /work/venv/bin/python benchmarks/bench_missing_calibration.py            # 200 reps, m = 20
    python benchmarks/bench_missing_calibration.py --reps 50 --m 5 --scenarios mi
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

import coevidence as cv
from coevidence.results.base import tidy_frame

TRUTH_MI, TRUTH_IPW, TRUTH_GROWTH = 0.9, 0.3, 0.3


def sim_dropout(rng: np.random.Generator, G: int) -> pd.DataFrame:
    org, wave = np.repeat(np.arange(G), 4), np.tile(np.arange(4), G)
    arm = np.repeat(np.arange(G) % 2, 4)
    y = np.repeat(rng.normal(0, 0.8, G), 4) + 0.2 * wave + 0.3 * arm * wave \
        + rng.normal(0, 0.6, 4 * G)
    Y, obs, a = y.reshape(G, 4), np.ones((G, 4), bool), arm[::4]
    for t in range(1, 4):
        p = np.where(a == 1, 1 / (1 + np.exp(-(-1.0 + 2.0 * (Y[:, t - 1] - 1.0)))), 0.1)
        obs[:, t] = obs[:, t - 1] & (rng.random(G) >= p)
    d = pd.DataFrame({"org": org, "wave": wave, "arm": arm, "y": y})
    d.loc[~obs.ravel(), "y"] = np.nan
    return d


def last_wave_diff(c: pd.DataFrame) -> pd.DataFrame:
    c = c[(c.wave == 3) & c.y.notna()]
    y1, y0 = c.y[c.arm == 1].to_numpy(), c.y[c.arm == 0].to_numpy()
    df = len(y1) + len(y0) - 2
    s2 = (((y1 - y1.mean()) ** 2).sum() + ((y0 - y0.mean()) ** 2).sum()) / df
    return tidy_frame(["arm"], [y1.mean() - y0.mean()],
                      [np.sqrt(s2 * (1 / len(y1) + 1 / len(y0)))], df)


def run_mi(reps: int, m: int, G: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    variants = {"mi_norm_random": {"method": "norm"}, "mi_pmm_random": {"method": "pmm"},
                "mi_norm_fixed": {"method": "norm", "cluster_effect": "fixed"}}
    for _ in range(reps):
        d = sim_dropout(rng, G)
        s = int(rng.integers(2**31))
        r = last_wave_diff(d).iloc[0]
        rows.append({"analysis": "complete_case", "est": r.estimate, "se": r.std_error,
                     "cover": r.conf_low <= TRUTH_MI <= r.conf_high, "seconds": 0.0,
                     "missing_treated_w3": d.loc[(d.wave == 3) & (d.arm == 1), "y"].isna().mean()})
        for name, kw in variants.items():
            t0 = time.perf_counter()
            imp = cv.impute(d, m=m, seed=s, cluster="org", by="arm", predictors=["wave"], **kw)
            p = imp.pool(last_wave_diff).tidy(pooling=True).iloc[0]
            rows.append({"analysis": name, "est": p.estimate, "se": p.std_error,
                         "cover": p.conf_low <= TRUTH_MI <= p.conf_high, "fmi": p.fmi,
                         "seconds": time.perf_counter() - t0})
    return pd.DataFrame(rows)


def run_ipw(reps: int, G: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(reps):
        x = rng.normal(size=G)
        t = (rng.random(G) < 1 / (1 + np.exp(-1.2 * x))).astype(int)
        y = 1 + x + TRUTH_IPW * t + rng.normal(size=G)
        d = pd.DataFrame({"org": np.arange(G), "wave": 1, "x": x, "t": t, "y": y})
        rows.append({"analysis": "naive", "est": y[t == 1].mean() - y[t == 0].mean(),
                     "se": np.nan, "cover": np.nan, "seconds": 0.0})
        for est in ("ate", "overlap"):
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                w = cv.propensity_weights(d, treatment="t", covariates=["x"],
                                          estimand=est).weights
            f = cv.fit_panel(d, "y", unit="org", time="wave", regressors=["t"],
                             estimator="pooled", cov_type="robust", weights=w)
            r = f.tidy().set_index("term").loc["t"]
            rows.append({"analysis": f"ipw_{est}", "est": r.estimate, "se": r.std_error,
                         "cover": r.conf_low <= TRUTH_IPW <= r.conf_high,
                         "seconds": time.perf_counter() - t0})
    return pd.DataFrame(rows)


def sim_growth(rng: np.random.Generator, G: int, tau: float) -> pd.DataFrame:
    P = 12
    prov = np.arange(G) % P
    x = rng.normal(size=G)
    arm = (rng.random(G) < 1 / (1 + np.exp(-1.2 * x))).astype(int)
    up, uj = rng.normal(0, 0.3, P), rng.normal(0, 0.8, G)
    org, wave = np.repeat(np.arange(G), 5), np.tile(np.arange(5), G)
    slope = 0.2 + 0.25 * x + tau * arm
    y = up[prov][org] + uj[org] + slope[org] * wave + rng.normal(0, 0.6, 5 * G)
    d = pd.DataFrame({"prov": prov[org], "org": org, "wave": wave, "x": x[org],
                      "arm": arm[org], "y": y})
    return d[rng.random(len(d)) > 0.1].reset_index(drop=True)


def run_growth(reps: int, G: int, seed: int, tau: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    f = "y ~ wave * arm + (wave | org) + (1 | prov)"
    rows = []
    for _ in range(reps):
        d = sim_growth(rng, G, tau)
        for analysis in ("unweighted", "ate", "overlap"):
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if analysis == "unweighted":
                    res = cv.fit_mixed(f, d)
                else:
                    w = cv.propensity_weights(d, treatment="arm", covariates=["x"], unit="org",
                                              estimand=analysis).weights
                    res = cv.fit_mixed(f, d, weights=w)
            r = res.tidy().set_index("term").loc["wave:arm"]
            rows.append({"analysis": analysis, "est": r.estimate, "se": r.std_error,
                         "df": r.df, "cover": r.conf_low <= tau <= r.conf_high,
                         "reject": r.p_value < 0.05, "seconds": time.perf_counter() - t0})
    return pd.DataFrame(rows)


def summarise(res: pd.DataFrame, truth: float) -> pd.DataFrame:
    res = res.assign(cover=res["cover"].astype(float))
    g = res.groupby("analysis", sort=False)
    n = g.size()
    out = pd.DataFrame({
        "reps": n,
        "mean": g["est"].mean(),
        "bias": g["est"].mean() - truth,
        "mc_se_bias": g["est"].std() / np.sqrt(n),
        "sd": g["est"].std(),
        "mean_se": g["se"].mean(),
        "coverage": g["cover"].mean(),
        "mc_se_cov": np.sqrt(g["cover"].mean() * (1 - g["cover"].mean()) / n),
        "seconds": g["seconds"].mean(),
    })
    return out.round(4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--m", type=int, default=20)
    ap.add_argument("--G", type=int, default=60)
    ap.add_argument("--seed", type=int, default=20261201)
    ap.add_argument("--scenarios", default="mi,ipw,growth")
    a = ap.parse_args()
    sc = a.scenarios.split(",")
    if "mi" in sc:
        res = run_mi(a.reps, a.m, a.G, a.seed)
        print(f"MAR dropout, G = {a.G}, m = {a.m}, truth {TRUTH_MI}; treated missing at wave 3: "
              f"{res['missing_treated_w3'].mean():.2f}")
        print(summarise(res, TRUTH_MI).to_string())
    if "ipw" in sc:
        res = run_ipw(a.reps, 800, a.seed)
        print(f"\nConfounded assignment, G = 800, truth {TRUTH_IPW}")
        print(summarise(res, TRUTH_IPW).to_string())
    if "growth" in sc:
        for tau in (TRUTH_GROWTH, 0.0):
            res = run_growth(a.reps, 120, a.seed, tau)
            out = summarise(res, tau)
            out["reject_5pct"] = res.groupby("analysis", sort=False)["reject"].mean().round(4)
            out["mean_df"] = res.groupby("analysis", sort=False)["df"].mean().round(2)
            print(f"\nWeighted growth, 120 organisations in 12 providers, tau = {tau}")
            print(out.to_string())


if __name__ == "__main__":
    main()
