"""Benchmark: crossed random effects, coevidence's sparse engine vs lme4, glmm and mixedlm (one run).

Two crossed random intercepts, ``y ~ x + (1 | a) + (1 | b)`` REML, on simulated data:

* 20k rows, 500 x 100 levels; 200k rows, 5000 x 200 levels.

Each package fits the same CSV (fit call only, best of ``--repeats``; coevidence also with
its Satterthwaite df). Printed: seconds, the ratio to coevidence's fit, and the REML criterion
(``-2 logLik``) and its difference from coevidence's. A peer that is missing or fails is
reported, not fatal.

Usage::

    python benchmarks/bench_crossed.py              # both sizes
    python benchmarks/bench_crossed.py --sizes 20000 --repeats 1
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
import warnings

import numpy as np
import pandas as pd

SIZES = {20_000: (500, 100), 200_000: (5000, 200)}
FORMULA = "y ~ x + (1 | a) + (1 | b)"
R_SCRIPT = """
suppressMessages(library(lme4)); d <- read.csv(commandArgs(TRUE)[1]); reps <- as.integer(commandArgs(TRUE)[2])
best <- Inf
for (i in seq_len(reps)) { t <- system.time(m <- lmer(y ~ x + (1 | a) + (1 | b), d))[["elapsed"]]; best <- min(best, t) }
cat(sprintf("%.6f", best), sprintf("%.8f", REMLcrit(m)), "\\n")
"""


def simulate(n: int, seed: int = 1) -> pd.DataFrame:
    ga, gb = SIZES[n]
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, ga, n), rng.integers(0, gb, n)
    x = rng.normal(size=n)
    y = 1 + 0.3 * x + rng.normal(size=ga)[a] + 0.5 * rng.normal(size=gb)[b] + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "a": a, "b": b})


def best_of(fn, repeats: int):
    out, best = None, np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def run(n: int, repeats: int) -> list[dict]:
    import coevidence as cv

    d = simulate(n)
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cv.fit_mixed(FORMULA, d.iloc[:2000], df_method="residual")  # warm-up
        t, r = best_of(lambda: cv.fit_mixed(FORMULA, d, df_method="residual"), repeats)
        rows.append({"package": "coevidence (fit)", "s": t, "crit": r._fit.objective})
        t, r = best_of(lambda: cv.fit_mixed(FORMULA, d).tidy(), repeats)
        rows.append({"package": "coevidence (fit + Satterthwaite df)", "s": t, "crit": np.nan})
    base = rows[0]["s"]
    ref = rows[0]["crit"]
    with tempfile.TemporaryDirectory() as tmp:
        csv = os.path.join(tmp, "d.csv")
        d.to_csv(csv, index=False)
        if shutil.which("Rscript"):
            script = os.path.join(tmp, "fit.R")
            with open(script, "w") as fh:
                fh.write(R_SCRIPT)
            try:
                out = subprocess.run(["Rscript", script, csv, str(repeats)], capture_output=True,
                                     text=True, timeout=1800, check=True).stdout.split()
                rows.append({"package": "lme4", "s": float(out[0]), "crit": float(out[1])})
            except Exception as exc:  # noqa: BLE001
                rows.append({"package": "lme4", "s": np.nan, "crit": np.nan, "note": str(exc)[:80]})
    for name, fn in _peers(d).items():
        try:
            t, crit = best_of(fn, repeats)
            rows.append({"package": name, "s": t, "crit": crit})
        except Exception as exc:  # noqa: BLE001
            rows.append({"package": name, "s": np.nan, "crit": np.nan,
                         "note": f"{type(exc).__name__}: {str(exc)[:80]}"})
    for r in rows:
        r["n"] = n
        r["ratio_to_coevidence_fit"] = r["s"] / base
        r["crit_minus_coevidence"] = r["crit"] - ref
    return rows


def _peers(d: pd.DataFrame) -> dict:
    peers = {}
    try:
        import mixedlm

        def _mixedlm():
            m = mixedlm.lmer(FORMULA, d, REML=True)
            return -2 * float(m.logLik().value)
        peers["mixedlm"] = _mixedlm
    except ImportError:
        pass
    try:
        import glmm

        def _glmm():
            m = glmm.fit(d, FORMULA, reml=True)
            ll = getattr(m, "loglik", None)
            if ll is None:
                ll = getattr(m, "log_likelihood", np.nan)
            return -2 * float(ll() if callable(ll) else ll)
        peers["glmm"] = _glmm
    except ImportError:
        pass
    return peers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    rows = [r for n in a.sizes for r in run(n, a.repeats)]
    tab = pd.DataFrame(rows)[["n", "package", "s", "ratio_to_coevidence_fit", "crit",
                             "crit_minus_coevidence"] + (["note"] if any("note" in r for r in rows)
                                                         else [])]
    print(tab.to_markdown(index=False, floatfmt=".4g"))
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
