"""Simulation-based power throughput: serial vs processes vs a Dask LocalCluster.

Replicates per second of ``coevidence.simulate_power`` for a 3-level growth design (waves in
organisations in TA providers, providers randomised) analysed with the real mixed growth model
(``analysis="growth"``: ``coevidence.fit_growth``, REML, Satterthwaite df). Each backend runs
the same replicates (same seeds) and must give identical results; timings include start-up of
the worker pool / cluster, as a user would experience them, except the last row (a Dask client
started and warmed before timing: the steady-state rate). Reported as ratios to serial.

Run: ``python benchmarks/bench_power.py [n_reps] [n_workers]`` (defaults 40 and 2);
``python benchmarks/bench_power.py refits [n]`` (``fit_mixed`` loop vs full ``refit`` vs the
lean ``Refitter.refit_many`` vs glmm's fits, issue 17);
``python benchmarks/bench_power.py before_after [n_reps] 2 before after`` (serial vs processes
without and with automatic chunks and refits).
"""

from __future__ import annotations

import sys
import time
import warnings

import pandas as pd

from coevidence.design.simulate import OutcomeSpec, SimulationSpec
from coevidence.design.simulation_power import analytic_power, simulate_power

SPEC = SimulationSpec(
    n_providers=8, orgs_per_provider=4, respondents_per_org=4, n_waves=5, assignment="provider",
    ta_months=60, attrition=0.03, encounter_logs=False, responses="scores",
    outcomes=[OutcomeSpec(arm_slope=0.08, post_slope_change=0.0, sd_provider_slope=0.02)],
)


def main(n_reps: int = 40, n_workers: int = 2) -> pd.DataFrame:
    warnings.simplefilter("ignore")
    from distributed import Client, LocalCluster

    rows, reference = [], None
    cluster = client = None
    for backend in ("serial", "processes", "dask", "dask (warm client)"):
        kw: dict = {}
        if backend == "dask (warm client)":  # cluster start-up excluded: steady-state rate
            cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                   host="127.0.0.1", dashboard_address=None,
                                   env={"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
            client = Client(cluster)
            client.run(lambda: __import__("coevidence.design.simulation_power"))  # warm imports
            kw = {"client": client}
        t0 = time.perf_counter()
        res = simulate_power(SPEC, "growth", n_reps=n_reps, seed=2026,
                             backend=backend.split(" ")[0], n_workers=n_workers, chunk_size=2,
                             **kw)
        secs = time.perf_counter() - t0
        if reference is None:
            reference = res
        identical = res.replicates.equals(reference.replicates)
        rows.append({"backend": backend, "n_reps": n_reps, "seconds": secs,
                     "reps_per_second": n_reps / secs, "identical_to_serial": identical,
                     "power": res.power, "mc_se": res.mc_se, "n_failed": res.n_failed})
    if client is not None:
        client.close()
        cluster.close()
    out = pd.DataFrame(rows)
    out["speed_vs_serial"] = out["reps_per_second"] / out.loc[0, "reps_per_second"]
    analytic = analytic_power(SPEC, "growth")
    print(f"3-level growth design, {n_reps} replicates, {n_workers} workers "
          f"(analytic slopes_cra2 approximation: power {analytic.value:.3f})")
    print(out.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return out




# ----------------------------------------------------------------------------- issue 17
def refits(n: int = 200) -> dict:
    """``fit_mixed`` in a loop vs ``MixedResult.refit`` (cold and warm start) vs the lean
    ``Refitter.refit_many`` (estimate, SE, Satterthwaite df of the time x arm contrast; cold and
    warm) vs ``glmm.fit`` in a loop (when installed) on a ~600-row 3-level model,
    ``y ~ time * arm + (1 + time | org) + (1 | provider)`` (REML, Satterthwaite df)."""
    import numpy as np

    from coevidence.models.mixed.api import fit_mixed
    from coevidence.models.mixed.refit import _refitter

    warnings.simplefilter("ignore")
    rng = np.random.default_rng(17)
    n_prov, orgs, waves = 12, 10, 5
    prov = np.repeat(np.arange(n_prov), orgs * waves)
    org = np.repeat(np.arange(n_prov * orgs), waves)
    t = np.tile(np.arange(waves, dtype=float), n_prov * orgs)
    arm = np.where(prov % 2 == 0, "b", "a")
    base = pd.DataFrame({"time": t, "arm": arm, "org": org.astype(str),
                         "provider": prov.astype(str)})

    def draw():
        return (0.2 * t + 0.1 * t * (arm == "b") + rng.normal(0, 0.5, n_prov)[prov]
                + rng.normal(0, 0.4, n_prov * orgs)[org]
                + rng.normal(0, 0.1, n_prov * orgs)[org] * t + rng.normal(0, 0.5, len(t)))

    f = "y ~ time * arm + (1 + time | org) + (1 | provider)"
    ys = [draw() for _ in range(n)]
    res = fit_mixed(f, base.assign(y=draw()))
    t0 = time.perf_counter()
    loop = [fit_mixed(f, base.assign(y=y)) for y in ys]
    t1 = time.perf_counter()
    cold = [res.refit(y) for y in ys]
    t2 = time.perf_counter()
    warm = [res.refit(y, warm_start=True) for y in ys]
    t3 = time.perf_counter()
    L = (np.asarray(res.params.index) == "time:armb").astype(float)
    refitter = _refitter(res)  # what simulate_power keeps per design
    lean = refitter.refit_many(ys, L)
    t4 = time.perf_counter()
    lean_warm = refitter.refit_many(ys, L, warm_start=True)
    t5 = time.perf_counter()
    cols = ["estimate", "std_error", "df"]
    same = all(np.array_equal(a.tidy()[cols].to_numpy(), b.tidy()[cols].to_numpy())
               for a, b in zip(loop, cold, strict=True))
    lean_same = all(np.array_equal(a.tidy()[cols].to_numpy(),
                                   np.column_stack([e.beta, e.std_error, e.df]))
                    for a, e in zip(loop, lean, strict=True))
    dwarm = max(float(np.max(np.abs(a.params - b.params))) for a, b in zip(loop, warm))
    dlw = max(float(np.max(np.abs(a.params.to_numpy() - e.beta)))
              for a, e in zip(loop, lean_warm))
    out = {"rows": len(t), "n": n, "fit_mixed_loop_s": t1 - t0, "refit_cold_s": t2 - t1,
           "refit_warm_s": t3 - t2, "lean_cold_s": t4 - t3, "lean_warm_s": t5 - t4,
           "cold_identical": same, "lean_identical": lean_same,
           "warm_max_abs_diff_beta": dwarm, "lean_warm_max_abs_diff_beta": dlw}
    try:
        import glmm
    except ImportError:
        glmm = None
    if glmm is not None:
        glmm.fit(base.assign(y=ys[0]), f)  # warm-up
        t6 = time.perf_counter()
        gfits = [glmm.fit(base.assign(y=y), f) for y in ys]
        out["glmm_s"] = time.perf_counter() - t6
        out["glmm_max_abs_diff_beta"] = max(
            float(np.max(np.abs(np.asarray(g.beta) - a.params.to_numpy())))
            for g, a in zip(gfits, loop))
    for k in ("refit_cold_s", "refit_warm_s", "lean_cold_s", "lean_warm_s", "glmm_s"):
        if k in out:
            out[f"{k[:-2]}_vs_loop"] = out[k] / out["fit_mixed_loop_s"]
    if "glmm_s" in out:
        out["lean_cold_vs_glmm"] = out["lean_cold_s"] / out["glmm_s"]
        out["lean_warm_vs_glmm"] = out["lean_warm_s"] / out["glmm_s"]
    for k, v in out.items():
        print(f"{k:>30}: {v:.4g}" if isinstance(v, float) else f"{k:>30}: {v}")
    return out


def before_after(n_reps: int = 400, n_workers: int = 2) -> pd.DataFrame:
    """Serial vs processes, without (chunk_size=1, no refit cache: the old behaviour) and with
    the issue-17 changes (automatic chunks, refits of replicates sharing a design)."""
    from coevidence.design import _analyses

    warnings.simplefilter("ignore")
    o = OutcomeSpec(response_min=-20, response_max=30, intercept=5.0, slope=0.1, arm_slope=0.12,
                    post_slope_change=0.0, sd_provider=0.3, sd_provider_slope=0.05,
                    sd_org_intercept=0.4, sd_org_slope=0.08, sd_respondent=0.5,
                    sd_residual=0.3, round_items=False, n_items=4)
    spec = SimulationSpec(n_providers=6, orgs_per_provider=3, respondents_per_org=2, n_waves=4,
                          assignment="provider", attrition=0.0, encounter_logs=False,
                          ta_months=60, responses="scores", outcomes=[o])
    rows, ref = [], None
    for mode in sys.argv[4:] or ("after",):
        for backend in ("serial", "processes"):
            if mode == "before":
                _analyses._REFITS_SIZE = 0
                kw = {"chunk_size": 1}
            else:
                _analyses._REFITS_SIZE = 16
                kw = {}
            _analyses._REFITS.clear()
            t0 = time.perf_counter()
            res = simulate_power(spec, "growth", n_reps=n_reps, seed=2026, backend=backend,
                                 n_workers=n_workers, **kw)
            secs = time.perf_counter() - t0
            reps = res.replicates.sort_values("rep").reset_index(drop=True)
            ref = reps if ref is None else ref
            rows.append({"mode": mode, "backend": backend, "seconds": secs,
                         "identical": reps.equals(ref)})
            print(rows[-1], flush=True)
    return pd.DataFrame(rows)


if __name__ == "__main__":
    if sys.argv[1:2] == ["refits"]:
        refits(*[int(a) for a in sys.argv[2:3]])
    elif sys.argv[1:2] == ["before_after"]:
        before_after(*[int(a) for a in sys.argv[2:3]])
    else:
        main(*[int(a) for a in sys.argv[1:]])
