"""Simulation-based power throughput: serial vs processes vs a Dask LocalCluster.

Replicates per second of ``coevidence.simulate_power`` for a 3-level growth design (waves in
organisations in TA providers, providers randomised) analysed with the real mixed growth model
(``analysis="growth"``: ``coevidence.fit_growth``, REML, Satterthwaite df). Each backend runs
the same replicates (same seeds) and must give identical results; timings include start-up of
the worker pool / cluster, as a user would experience them, except the last row (a Dask client
started and warmed before timing: the steady-state rate). Reported as ratios to serial.

Run: ``python benchmarks/bench_power.py [n_reps] [n_workers]`` (defaults 40 and 2).
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


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main(*args)
