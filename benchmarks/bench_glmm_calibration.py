"""Calibration of GLMM inference in provider-randomised TA studies with a binary outcome.

What it measures
----------------
Binary research-use indicators (``cites_research``) are simulated with numpy alone: providers
randomised half/half to co-creation, organisations within providers, respondents x waves
within organisations::

    logit P(y = 1) = -0.5 + 0.1 t + d cc t + v0_p + v1_p t + u0_o + u1_o t

On the same data sets three analyses of the arm x time coefficient ``d`` (log-odds per wave):

1. ``glmer default``  ``fit_mixed("y ~ time * arm + (1 + time | org_id)", family="binomial")``:
                      what a user ports from glmer: z tests, slope random at the organisation
                      only;
2. ``growth z``       ``fit_growth(..., family="binomial")``'s model (slope random at provider
                      and organisation) with z tests;
3. ``growth default`` ``fit_growth(..., family="binomial")``: the same model, t tests with the
                      between-within df (G - 2) for the between-provider terms.

Scenarios: A. 10 providers, 6 orgs each, 5 waves, 3 respondents, provider slope SD 0.1, null;
B. 16 providers, null; C. as A with d = 0.25 (rejection = power).

Per scenario x analysis: rejection rate at alpha = .05 (Monte Carlo SE), 95% CI coverage of d,
mean SE / SD of the estimates, seconds per fit.

Usage: ``python benchmarks/bench_glmm_calibration.py --reps 300`` (about 2 s per data set).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

import coevidence as cv

SCENARIOS = {
    "A": {"n_prov": 10, "d": 0.0},
    "B": {"n_prov": 16, "d": 0.0},
    "C": {"n_prov": 10, "d": 0.25},
}


def simulate(rng, n_prov, d, n_org=6, n_wave=5, n_resp=3, sd_p=(0.4, 0.1), sd_o=(0.6, 0.1)):
    cc_prov = rng.permutation(np.r_[np.zeros(n_prov // 2), np.ones(n_prov - n_prov // 2)])
    prov = np.repeat(np.arange(n_prov), n_org * n_wave * n_resp)
    org = np.repeat(np.arange(n_prov * n_org), n_wave * n_resp)
    t = np.tile(np.repeat(np.arange(n_wave), n_resp), n_prov * n_org).astype(float)
    cc = cc_prov[prov]
    vp = rng.normal(0, 1, (n_prov, 2)) * sd_p
    vo = rng.normal(0, 1, (n_prov * n_org, 2)) * sd_o
    eta = -0.5 + 0.1 * t + d * cc * t + vp[prov, 0] + vp[prov, 1] * t + vo[org, 0] + vo[org, 1] * t
    y = (rng.random(len(t)) < 1 / (1 + np.exp(-eta))).astype(float)
    return pd.DataFrame({"provider_id": prov, "org_id": org, "time": t,
                         "ta_model": np.where(cc > 0, "co_creation", "push"), "arm": cc, "y": y})


def analyses(df):
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        r = cv.fit_mixed("y ~ time * arm + (1 + time | org_id)", df, family="binomial")
        row = r.tidy().set_index("term").loc["time:arm"]
        out["glmer default"] = (row["estimate"], row["std_error"], np.inf,
                                time.perf_counter() - t0)
        t0 = time.perf_counter()
        g = cv.fit_growth(df, "y", levels=("provider_id", "org_id"), family="binomial")
        el = time.perf_counter() - t0
        row = g.tidy().set_index("term").loc["time:ta_modelco_creation"]
        out["growth z"] = (row["estimate"], row["std_error"], np.inf, el)
        out["growth default"] = (row["estimate"], row["std_error"], row["df"], el)
    return out


def summarise(name, d, results) -> list[dict]:
    from scipy import stats

    rows = []
    for analysis in results[0]:
        est = np.array([r[analysis][0] for r in results])
        se = np.array([r[analysis][1] for r in results])
        df = np.array([r[analysis][2] for r in results])
        q = np.where(np.isfinite(df), stats.t.ppf(0.975, np.where(np.isfinite(df), df, 1)),
                     stats.norm.ppf(0.975))
        reject = np.abs(est / se) > q
        cover = np.abs(est - d) <= q * se
        n = len(est)
        rows.append({"scenario": name, "analysis": analysis, "reps": n,
                     "rejection": reject.mean(), "mc_se": np.sqrt(reject.mean()
                                                                  * (1 - reject.mean()) / n),
                     "coverage": cover.mean(), "se_over_sd": se.mean() / est.std(ddof=1),
                     "median_df": float(np.median(df)),
                     "sec_per_fit": float(np.mean([r[analysis][3] for r in results]))})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--scenarios", default="A,B,C")
    ap.add_argument("--seed", type=int, default=20261201)
    args = ap.parse_args()
    rows = []
    for name in args.scenarios.split(","):
        sc = SCENARIOS[name]
        rng = np.random.default_rng([args.seed, ord(name)])
        results = [analyses(simulate(rng, sc["n_prov"], sc["d"])) for _ in range(args.reps)]
        rows += summarise(name, sc["d"], results)
        print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}"),
              flush=True)


if __name__ == "__main__":
    main()
