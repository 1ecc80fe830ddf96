"""Calibration of ``fit_mediation`` (2-1-1): bias and Monte Carlo CI coverage by simulation.

What it measures
----------------
2-1-1 studies are simulated with numpy alone: ``J`` clusters of ``n`` rows, treatment ``x``
randomised to half the clusters, ``m = a x + u_j + e`` (cluster SD ``sd_u``, residual SD 1),
``y = c' x + b_W (m - mbar_j) + b_B mbar_j + v_j + e`` with ``mbar_j`` the **observed** cluster
mean (the model ``fit_mediation`` fits). Scenario ``L`` instead uses the **latent** cluster
mean ``a x + u_j`` in the outcome (the MSEM data-generating model): the observed-mean estimator
is then biased for ``b_B`` by the unreliability of cluster means (Lüdtke et al. 2008), which
the table shows.

Scenarios (``--scenarios``, default ``A,B,N,L``):

A. J = 40, n = 10, a = 0.5, b_W = 0.3, b_B = 0.8, c' = 0.2 (observed-mean model);
B. J = 20, n = 5, same paths (few, small clusters);
N. as A with a = 0 (null indirect effect: the rejection rate of the 95% MC interval is the
   type I error);
L. as A with the outcome driven by the latent cluster mean (sd_u = 0.5, n = 10: reliability
   of a cluster mean 0.71).

Per scenario and effect the table gives the mean estimate, bias, SD of the estimates, mean SE
(model-based; delta-method for products), coverage of the 95% interval (Monte Carlo percentile
for products, t for paths) with its Monte Carlo SE, the rejection rate of "interval excludes
0", and seconds per fit.

Run::

    /work/venv/bin/python benchmarks/bench_mediation_calibration.py            # 500 reps
    python benchmarks/bench_mediation_calibration.py --reps 100 --scenarios A,N
    python benchmarks/bench_mediation_calibration.py --bootstrap-reps 30 --scenarios A

``--bootstrap-reps R`` adds the cluster bootstrap (199 replications) on the first R datasets
of each scenario (about 20 s per dataset).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

import coevidence as cv

SCENARIOS = {
    "A": {"J": 40, "n": 10, "a": 0.5, "bw": 0.3, "bb": 0.8, "c": 0.2, "sd_u": 0.5,
          "latent": False},
    "B": {"J": 20, "n": 5, "a": 0.5, "bw": 0.3, "bb": 0.8, "c": 0.2, "sd_u": 0.5,
          "latent": False},
    "N": {"J": 40, "n": 10, "a": 0.0, "bw": 0.3, "bb": 0.8, "c": 0.2, "sd_u": 0.5,
          "latent": False},
    "L": {"J": 40, "n": 10, "a": 0.5, "bw": 0.3, "bb": 0.8, "c": 0.2, "sd_u": 0.5,
          "latent": True},
}


def simulate(rng: np.random.Generator, s: dict) -> pd.DataFrame:
    J, n = s["J"], s["n"]
    g = np.repeat(np.arange(J), n)
    x = rng.permutation(np.arange(J) % 2)[g]
    mu = s["a"] * x + rng.normal(0, s["sd_u"], J)[g]
    m = mu + rng.normal(size=J * n)
    d = pd.DataFrame({"org": g, "arm": x, "use": m})
    mbar = d.groupby("org")["use"].transform("mean").to_numpy()
    between = mu if s["latent"] else mbar
    d["practice"] = (s["c"] * x + s["bw"] * (m - mbar) + s["bb"] * between
                     + rng.normal(0, 0.3, J)[g] + rng.normal(size=J * n))
    return d


def run(scenarios: list[str], reps: int, boot_reps: int, seed: int) -> pd.DataFrame:
    rows = []
    for si, name in enumerate(scenarios):
        s = SCENARIOS[name]
        truth = {"a": s["a"], "b_within": s["bw"], "b_between": s["bb"], "direct": s["c"],
                 "indirect": s["a"] * s["bb"], "total": s["c"] + s["a"] * s["bb"],
                 "contextual": s["bb"] - s["bw"]}
        for method, n_rep in (("monte_carlo", reps), ("bootstrap", boot_reps)):
            recs = []
            secs = []
            for r in range(n_rep):
                rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(si, r)))
                d = simulate(rng, s)
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    fit = cv.fit_mediation(d, "practice", treatment="arm", mediator="use",
                                           cluster="org", ci=method,
                                           n_draws=2000 if method == "monte_carlo" else 199,
                                           seed=r)
                secs.append(time.perf_counter() - t0)
                t = fit.tidy().set_index("term")
                for k, v in truth.items():
                    recs.append({"effect": k, "estimate": t.loc[k, "estimate"],
                                 "se": t.loc[k, "std_error"],
                                 "cover": t.loc[k, "conf_low"] <= v <= t.loc[k, "conf_high"],
                                 "reject": not (t.loc[k, "conf_low"] <= 0 <= t.loc[k, "conf_high"])})
            if not recs:
                continue
            R = pd.DataFrame(recs)
            for k, grp in R.groupby("effect", sort=False):
                cov = grp["cover"].mean()
                rows.append({
                    "scenario": name, "ci": method, "effect": k, "truth": truth[k],
                    "reps": len(grp), "mean": grp["estimate"].mean(),
                    "bias": grp["estimate"].mean() - truth[k],
                    "sd": grp["estimate"].std(ddof=1), "mean_se": grp["se"].mean(),
                    "coverage": cov, "coverage_mcse": np.sqrt(cov * (1 - cov) / len(grp)),
                    "reject_0": grp["reject"].mean(), "sec_per_fit": float(np.mean(secs)),
                })
    return pd.DataFrame(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reps", type=int, default=500)
    p.add_argument("--bootstrap-reps", type=int, default=0)
    p.add_argument("--scenarios", default="A,B,N,L")
    p.add_argument("--seed", type=int, default=20261201)
    p.add_argument("--out", default=None, help="write the table as CSV here")
    a = p.parse_args()
    table = run([s for s in a.scenarios.split(",") if s], a.reps, a.bootstrap_reps, a.seed)
    with pd.option_context("display.width", 200, "display.max_rows", 200):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if a.out:
        table.to_csv(a.out, index=False)


if __name__ == "__main__":
    main()
