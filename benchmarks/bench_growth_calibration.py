"""Calibration of the arm x time test in provider-randomised TA growth studies.

What it measures
----------------
Studies randomised by TA provider are simulated with numpy alone (``tests/models/mixed/growth_sim.py``,
independent of coevidence's own simulator): ``y = 3 + 0.05 t + d * cc * t + v0_p + v1_p t +
u0_o + u1_o t + e`` with half the providers (at random) co-creation. On the *same* simulated
datasets five analyses of the co-creation minus push difference in slopes ``d`` are run:

1. ``pre-fix default``   ``fit_growth(..., random_slopes={"provider_id": False},
                          between_df="model")``: slope random at the organisation only,
                          Satterthwaite df (the default before the design-aware change);
2. ``new default``       ``fit_growth(panel, "research_use", levels=["provider_id", "org_id"])``:
                          slope random at organisation and provider, df bounded by G - 2 when
                          the provider slope variance is estimated at zero (``between_df="auto"``);
3. ``new, Satterthwaite`` the same model with ``between_df="model"`` (df never bounded);
4. ``CR2``               the new model with ``cov_type="cr2"`` (CR2 by provider, Bell-McCaffrey df);
5. ``two-stage``         ``fit_growth_two_stage(panel, ..., cluster="provider_id")`` (provider
                          OLS slopes, pooled t test, df = G - 2).

Optionally (``--randomization-reps N``) a randomisation test of the two-stage estimate
(``coevidence.models.randomization.model.randomization_test``, ``--n-permutations`` re-assignments of
the arm across providers; exact enumeration when there are fewer) on the first N datasets of
each scenario. It has no CI or df; only its rejection rate is reported.

Scenarios (``--scenarios``, default ``A,B,C,D``):

A. 12 providers randomised 6/6, 8 orgs each, 6 waves, provider slope SD 0.05, org slope SD 0.06;
   null (d = 0);
B. 8 providers, 8 orgs, 6 waves, 10% of rows missing at random; null;
C. as A with zero provider slope variance; null (is the default badly conservative?);
D. as A with d = 0.06 (rejection = power).

Per scenario x analysis the table gives the rejection rate at alpha = .05 with its Monte Carlo
SE, the 95% CI coverage of the true d, the median df, mean SE / SD of the estimates (SE
calibration: 1 is right, below 1 the SEs are too small), the share of fits that raised a
``BoundaryFitWarning`` / ``DesignDfWarning`` (warnings are suppressed but counted), failed fits
and mean seconds per fit (wall time inside a worker, which grows when the cores are shared,
and CPU time of the worker process).

``--power-study`` additionally runs ``coevidence.simulate_power`` on a ``SimulationSpec`` with a
provider slope variance (12 providers x 8 orgs x 3 respondents, 6 waves, arm_slope 0.08,
sd_provider_slope 0.03, sd_org_slope 0.06) for the built-in analyses ``growth``,
``growth_cr2``, ``growth_two_stage`` and the pre-fix model (a custom analysis defined here), on
the same simulated studies (same seed), next to ``analytic_power(spec, "growth")``.
``--scenarios none --power-study`` runs only the power study.

Run (defaults: about 1.15 CPU-seconds per dataset, so ~12 minutes on 2 free cores; 26 minutes
measured when the cores were shared with other jobs; ``--power-study`` adds ~4 minutes)::

    /work/venv/bin/python benchmarks/bench_growth_calibration.py            # defaults
    python benchmarks/bench_growth_calibration.py --reps 50 --scenarios A,D --out calib.csv
    python benchmarks/bench_growth_calibration.py --scenarios none --power-study --power-reps 200

Results are reproducible for a given ``--seed`` whatever the number of workers (dataset ``r``
of scenario ``s`` uses ``SeedSequence(seed, spawn_key=(s, r))``).
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")  # one BLAS thread per worker process

import argparse  # noqa: E402
import multiprocessing as mp  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "models" / "mixed"))

from growth_sim import provider_randomised_panel  # noqa: E402

import coevidence as cv  # noqa: E402
from coevidence.exceptions import BoundaryFitWarning, DesignDfWarning  # noqa: E402

TERM = "time:ta_modelco_creation"
OUTCOME = "research_use"
LEVELS = ["provider_id", "org_id"]
ALPHA = 0.05

SCENARIOS: dict[str, dict] = {
    "A": {"label": "A: 12 prov (6/6) x 8 orgs x 6 waves, prov slope SD .05, null",
          "sim": {"n_prov": 12, "n_org": 8, "n_waves": 6, "sd_prov_slope": 0.05,
                  "sd_org_slope": 0.06}, "truth": 0.0},
    "B": {"label": "B: 8 prov x 8 orgs x 6 waves, 10% attrition, null",
          "sim": {"n_prov": 8, "n_org": 8, "n_waves": 6, "sd_prov_slope": 0.05,
                  "sd_org_slope": 0.06, "attrition": 0.10}, "truth": 0.0},
    "C": {"label": "C: as A, zero provider slope variance, null",
          "sim": {"n_prov": 12, "n_org": 8, "n_waves": 6, "sd_prov_slope": 0.0,
                  "sd_org_slope": 0.06}, "truth": 0.0},
    "D": {"label": "D: as A, slope_diff = 0.06 (power)",
          "sim": {"n_prov": 12, "n_org": 8, "n_waves": 6, "sd_prov_slope": 0.05,
                  "sd_org_slope": 0.06, "slope_diff": 0.06}, "truth": 0.06},
}

# name -> keyword arguments of cv.fit_growth (None: the two-stage analysis)
ANALYSES: dict[str, dict | None] = {
    "pre-fix default": {"random_slopes": {"provider_id": False}, "between_df": "model"},
    "new default": {},
    "new, Satterthwaite df": {"between_df": "model"},
    "CR2 (Bell-McCaffrey)": {"cov_type": "cr2"},
    "two-stage": None,
}
RANDOMIZATION = "randomization (two-stage est.)"


def _two_stage_estimate(d: pd.DataFrame) -> float:
    return float(cv.fit_growth_two_stage(d, OUTCOME, cluster="provider_id").tidy()
                 .iloc[-1]["estimate"])


def _one(name: str, panel: pd.DataFrame, n_perm: int, seed: int) -> dict:
    """Run analysis ``name`` on ``panel``; warnings suppressed but counted."""
    row = {"analysis": name, "estimate": np.nan, "std_error": np.nan, "df": np.nan,
           "p_value": np.nan, "conf_low": np.nan, "conf_high": np.nan,
           "boundary_warning": False, "design_df_warning": False, "error": ""}
    t0, c0 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if name == RANDOMIZATION:
                from coevidence.models.randomization.model import randomization_test

                rt = randomization_test(panel, _two_stage_estimate, arm="ta_model",
                                        cluster="provider_id", n_permutations=n_perm,
                                        seed=seed)
                row.update(estimate=rt.estimate, p_value=rt.p_value)
            elif ANALYSES[name] is None:
                r = cv.fit_growth_two_stage(panel, OUTCOME, cluster="provider_id").tidy()
                r = r.iloc[-1]
                row.update({k: float(r[k]) for k in
                            ("estimate", "std_error", "df", "p_value", "conf_low", "conf_high")})
            else:
                res = cv.fit_growth(panel, OUTCOME, levels=LEVELS, **ANALYSES[name])
                r = res.tidy().set_index("term").loc[TERM]
                row.update({k: float(r[k]) for k in
                            ("estimate", "std_error", "df", "p_value", "conf_low", "conf_high")})
        except Exception as exc:  # a failed fit is recorded, never dropped
            row["error"] = f"{type(exc).__name__}: {exc}"[:200]
    row["seconds"] = time.perf_counter() - t0
    row["cpu_seconds"] = time.process_time() - c0
    row["boundary_warning"] = any(issubclass(w.category, BoundaryFitWarning) for w in caught)
    row["design_df_warning"] = any(issubclass(w.category, DesignDfWarning) for w in caught)
    return row


def run_dataset(task: tuple) -> list[dict]:
    """Simulate dataset ``rep`` of scenario ``key`` and run every analysis on it."""
    key, s_index, rep, seed, with_rand, n_perm = task
    ss = np.random.SeedSequence(seed, spawn_key=(s_index, rep))
    panel = provider_randomised_panel(np.random.default_rng(ss), **SCENARIOS[key]["sim"])
    names = list(ANALYSES) + ([RANDOMIZATION] if with_rand else [])
    rows = []
    for name in names:
        row = _one(name, panel, n_perm, seed + rep)
        row.update(scenario=key, rep=rep, truth=SCENARIOS[key]["truth"])
        rows.append(row)
    return rows


def summarise(reps: pd.DataFrame) -> pd.DataFrame:
    out = []
    order = list(ANALYSES) + [RANDOMIZATION]
    for (key, name), g in reps.groupby(["scenario", "analysis"], sort=False):
        ok = g[g["error"] == ""]
        n = len(ok)
        rej = float((ok["p_value"] < ALPHA).mean()) if n else np.nan
        truth = float(g["truth"].iloc[0])
        has_ci = ok["conf_low"].notna().any()
        cover = (float(((ok["conf_low"] <= truth) & (truth <= ok["conf_high"])).mean())
                 if has_ci else np.nan)
        sd = float(ok["estimate"].std(ddof=1)) if n > 1 else np.nan
        out.append({
            "scenario": key, "analysis": name, "order": order.index(name), "n": n,
            "failed": int(len(g) - n), "reject": rej,
            "mc_se": float(np.sqrt(rej * (1 - rej) / n)) if n else np.nan,
            "coverage": cover, "median_df": float(ok["df"].median()),
            "se_over_sd": float(ok["std_error"].mean()) / sd if sd and sd > 0 else np.nan,
            "boundary_warn": float(ok["boundary_warning"].mean()),
            "design_df_warn": float(ok["design_df_warning"].mean()),
            "sec_per_fit": float(g["seconds"].mean()),
            "cpu_sec_per_fit": float(g["cpu_seconds"].mean()),
        })
    return (pd.DataFrame(out).sort_values(["scenario", "order"]).drop(columns="order")
            .reset_index(drop=True))


def _f(x, fmt: str) -> str:
    return "-" if x is None or (isinstance(x, float) and not np.isfinite(x)) else format(x, fmt)


def markdown(summary: pd.DataFrame) -> str:
    lines = []
    for key, g in summary.groupby("scenario", sort=False):
        n = int(g["n"].max())
        lines += [f"### {SCENARIOS[key]['label']} (truth {SCENARIOS[key]['truth']:g}, "
                  f"{n} datasets)", "",
                  "| analysis | reject @.05 (MC SE) | 95% CI coverage | median df | "
                  "mean SE / SD | BoundaryFitWarning | DesignDfWarning | failed | s / fit | CPU s / fit |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in g.itertuples():
            lines.append(
                f"| {r.analysis} | {_f(r.reject, '.3f')} ({_f(r.mc_se, '.3f')}) | "
                f"{_f(r.coverage, '.3f')} | {_f(r.median_df, '.1f')} | "
                f"{_f(r.se_over_sd, '.2f')} | {_f(r.boundary_warn, '.2f')} | "
                f"{_f(r.design_df_warn, '.2f')} | {r.failed} | {_f(r.sec_per_fit, '.2f')} | "
                f"{_f(r.cpu_sec_per_fit, '.2f')} |")
        lines.append("")
    return "\n".join(lines)


# ------------------------------------------------------------------------------- power study
class PreFixGrowth:
    """The pre-fix default (slope random at the organisation only, Satterthwaite df) as a
    ``simulate_power`` analysis (module level so that it pickles to worker processes)."""

    name = "growth (pre-fix model)"

    def __call__(self, study) -> dict:
        panel = study.panel([OUTCOME], unit="organization")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = cv.fit_growth(panel, OUTCOME, levels=LEVELS,
                                random_slopes={"provider_id": False}, between_df="model")
        r = res.tidy().set_index("term").loc[TERM]
        out = {k: float(r[k]) for k in
               ("estimate", "std_error", "df", "p_value", "conf_low", "conf_high")}
        out["warning"] = ";".join(sorted({w.category.__name__ for w in caught
                                          if w.category.__module__.startswith("coevidence")}))
        return out

    def truth(self, spec) -> float:
        from coevidence.design.simulate import true_effects

        return float(true_effects(spec)[OUTCOME]["slope_difference"])


def power_study(n_reps: int, seed: int, workers: int) -> str:
    from coevidence.design.simulate import OutcomeSpec
    from coevidence.design.simulation_power import analytic_power

    spec = cv.SimulationSpec(
        n_providers=12, orgs_per_provider=8, respondents_per_org=3, n_waves=6,
        assignment="provider", attrition=0.03, ta_months=60, encounter_logs=False,
        responses="scores",
        outcomes=[OutcomeSpec(arm_slope=0.08, post_slope_change=0.0, sd_provider_slope=0.03,
                              sd_org_slope=0.06)],
    )
    analytic = analytic_power(spec, "growth")
    lines = ["### simulate_power: 12 providers x 8 orgs x 3 respondents, 6 waves, arm_slope "
             f"0.08, sd_provider_slope 0.03 ({n_reps} studies, seed {seed}; analytic "
             f"power [{analytic.design}] {float(analytic.value):.3f})", "",
             "| analysis | power (MC SE) | 95% CI coverage | bias | mean SE / SD | "
             "median df | failed | warned | seconds |", "|---|---|---|---|---|---|---|---|---|"]
    for analysis in ("growth", "growth_cr2", "growth_two_stage", PreFixGrowth()):
        res = cv.simulate_power(spec, analysis, n_reps=n_reps, seed=seed,
                                backend="processes" if workers > 1 else "serial",
                                n_workers=workers, chunk_size=4, progress=False)
        reps = res.replicates
        mdf = float(reps.loc[~reps["failed"], "df"].median()) if "df" in reps else np.nan
        lines.append(
            f"| {res.analysis} | {res.power:.3f} ({res.mc_se:.3f}) | {_f(res.coverage, '.3f')} "
            f"| {_f(res.bias, '.4f')} | {_f(res.mean_std_error / res.sd_estimate, '.2f')} | "
            f"{_f(mdf, '.1f')} | {res.n_failed} | {res.n_warned} | {res.seconds:.0f} |")
        print(f"  power study: {res.analysis} done ({res.seconds:.0f} s)", file=sys.stderr,
              flush=True)
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------- main
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=300, help="datasets per scenario (300)")
    ap.add_argument("--seed", type=int, default=20261201)
    ap.add_argument("--scenarios", default="A,B,C,D",
                    help="comma-separated subset of A,B,C,D, or 'none'")
    ap.add_argument("--out", help="write the per-fit results to this CSV (and the summary to "
                                  "<out>.summary.csv)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes (2)")
    ap.add_argument("--randomization-reps", type=int, default=0,
                    help="also run a randomisation test on the first N datasets per scenario")
    ap.add_argument("--n-permutations", type=int, default=199)
    ap.add_argument("--power-study", action="store_true",
                    help="also compare simulate_power across analyses")
    ap.add_argument("--power-reps", type=int, default=200)
    args = ap.parse_args(argv)

    keys = [] if args.scenarios.strip().lower() == "none" else [
        k.strip().upper() for k in args.scenarios.split(",") if k.strip()]
    unknown = [k for k in keys if k not in SCENARIOS]
    if unknown:
        ap.error(f"unknown scenario(s) {unknown}; choose from {list(SCENARIOS)}")
    started = time.perf_counter()
    print(f"# fit_growth calibration benchmark (coevidence {cv.__version__})\n")
    print(f"Command: {' '.join([Path(sys.executable).name, *sys.argv])}\n")
    if keys:
        tasks = [(k, list(SCENARIOS).index(k), r, args.seed, r < args.randomization_reps,
                  args.n_permutations) for k in keys for r in range(args.reps)]
        rows: list[dict] = []
        t0 = time.perf_counter()
        if args.workers > 1:
            ctx = mp.get_context("spawn")
            with ProcessPoolExecutor(args.workers, mp_context=ctx) as pool:
                for i, out in enumerate(pool.map(run_dataset, tasks, chunksize=2), 1):
                    rows.extend(out)
                    if i % 50 == 0 or i == len(tasks):
                        print(f"  {i}/{len(tasks)} datasets, {time.perf_counter() - t0:.0f} s",
                              file=sys.stderr, flush=True)
        else:
            for i, task in enumerate(tasks, 1):
                rows.extend(run_dataset(task))
                if i % 50 == 0 or i == len(tasks):
                    print(f"  {i}/{len(tasks)} datasets, {time.perf_counter() - t0:.0f} s",
                          file=sys.stderr, flush=True)
        reps = pd.DataFrame(rows)
        summary = summarise(reps)
        print(markdown(summary))
        errs = reps.loc[reps["error"] != "", ["analysis", "error"]]
        if len(errs):
            print("Failures (first 5 distinct):")
            for (a, e), n in errs.value_counts().head(5).items():
                print(f"- {n} x {a}: {e}")
            print()
        if args.out:
            reps.to_csv(args.out, index=False)
            summary.to_csv(f"{args.out}.summary.csv", index=False)
        print(f"{len(tasks)} datasets x {len(ANALYSES)} analyses in "
              f"{time.perf_counter() - t0:.0f} s with {args.workers} worker(s)\n")
    if args.power_study:
        t0 = time.perf_counter()
        print(power_study(args.power_reps, args.seed, args.workers))
        print(f"power study in {time.perf_counter() - t0:.0f} s\n")
    print(f"Total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
