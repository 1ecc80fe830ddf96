"""Benchmark: panel and staggered-DiD fits against the libraries users would otherwise call.

Workloads and peers (same process, same data; ratios coevidence / peer are printed, and the
estimates are checked to agree):

1. fit_panel within, firm FE, cluster-robust (Stata factor) on a 2,000 x 10 simulated panel vs
   linearmodels ``PanelOLS(...).fit(cov_type="clustered", cluster_entity=True)`` (the engine
   coevidence wraps; the difference is coevidence's validation and covariance rebuild).
2. fit_panel with cov="cr2" on the same data (no Python peer; reported in seconds only).
3. fit_event_study Callaway & Sant'Anna on mpdta (500 counties x 5 years) vs moderndid
   ``att_gt(..., boot=False)``.
4. fit_event_study two-stage on mpdta without the 2004 cohort vs pyfixest ``did2s``.

5. ``--scale``: the two-stage estimator and Callaway & Sant'Anna on 10x, 25x and 50x copies of
   mpdta (unit ids ``countyreal + copy * 10**5``, so 50x = 25,000 counties, 125,000 rows), each
   fit in a fresh subprocess (after a warm-up fit on mpdta) reporting the wall time of fit plus
   ``aggregate("event")``, the peak resident memory (``ru_maxrss``) and its growth during the
   fit, to show the two-stage fit (stage 1, stage 2 and the GMM variance) is linear in rows.

Run: ``python benchmarks/bench_panel_did.py [repeats]`` or
``python benchmarks/bench_panel_did.py --scale [copies ...]``
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings

import numpy as np
import pandas as pd

import coevidence as cv
from coevidence.datasets.panel import load_mpdta


def best_of(fn, repeats: int) -> tuple[float, object]:
    best, out = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(repeats: int = 3) -> None:
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    n, T = 2000, 10
    u = np.repeat(np.arange(n), T)
    t = np.tile(np.arange(T), n)
    x1, x2 = rng.normal(size=n * T), rng.normal(size=n * T)
    y = rng.normal(size=n)[u] + 0.5 * x1 - 0.2 * x2 + rng.normal(size=n * T)
    df = pd.DataFrame({"org_id": u, "wave": t, "x1": x1, "x2": x2, "y": y})
    kw = {"regressors": ["x1", "x2"], "cov": "clustered"}
    t_cv, r_cv = best_of(lambda: cv.fit_panel(df, "y", **kw), repeats)

    from linearmodels import PanelOLS

    def lm():
        p = df.set_index(["org_id", "wave"])
        return PanelOLS(p["y"], p[["x1", "x2"]], entity_effects=True).fit(
            cov_type="clustered", cluster_entity=True
        )

    t_lm, r_lm = best_of(lm, repeats)
    assert np.allclose(r_cv.params.to_numpy(), r_lm.params.to_numpy(), rtol=1e-10)
    print(
        f"fit_panel within clustered   {t_cv:8.3f} s   linearmodels {t_lm:8.3f} s   ratio {t_cv / t_lm:5.2f}"
    )
    t_cr2, _ = best_of(
        lambda: cv.fit_panel(df.iloc[: 500 * T], "y", regressors=["x1", "x2"], cov="cr2"), 1
    )
    print(f"fit_panel within CR2 (500 units x 10)  {t_cr2:8.3f} s   (no Python peer)")

    mp = load_mpdta()
    ekw = {"unit": "countyreal", "time": "year", "first_treated": "first.treat"}
    t_cs, r_cs = best_of(lambda: cv.fit_event_study(mp, "lemp", **ekw), repeats)
    import moderndid

    mpl = moderndid.load_mpdta()
    t_md, r_md = best_of(
        lambda: moderndid.att_gt(
            data=mpl,
            yname="lemp",
            tname="year",
            idname="countyreal",
            gname="first.treat",
            boot=False,
        ),
        repeats,
    )
    assert np.allclose(r_cs.gt["estimate"], np.asarray(r_md.att_gt), atol=1e-10)
    print(
        f"Callaway-Sant'Anna mpdta     {t_cs:8.3f} s   moderndid    {t_md:8.3f} s   ratio {t_cs / t_md:5.2f}"
    )

    import pyfixest as pf

    d = mp[mp["first.treat"] != 2004].rename(columns={"first.treat": "g"})
    d = d.assign(D=((d.g > 0) & (d.year >= d.g)).astype(int))
    t_2s, r_2s = best_of(
        lambda: cv.fit_event_study(
            d, "lemp", unit="countyreal", time="year", first_treated="g", estimator="two_stage"
        ).aggregate("simple"),
        repeats,
    )
    t_pf, r_pf = best_of(
        lambda: pf.did2s(
            d,
            yname="lemp",
            first_stage="~ 0 | countyreal + year",
            second_stage="~ D",
            treatment="D",
            cluster="countyreal",
        ),
        repeats,
    )
    assert abs(r_2s.estimate[0] - r_pf.coef().iloc[0]) < 1e-6
    print(
        f"two-stage DiD (did2s)        {t_2s:8.3f} s   pyfixest     {t_pf:8.3f} s   ratio {t_2s / t_pf:5.2f}"
    )


def mpdta_copies(copies: int) -> pd.DataFrame:
    """``copies`` stacked copies of mpdta with unit ids unique per copy."""
    mp = load_mpdta()
    parts = [mp.assign(countyreal=mp["countyreal"] + c * 10**5) for c in range(copies)]
    return pd.concat(parts, ignore_index=True)


_SCALE_CHILD = """
import json, resource, sys, time, warnings
warnings.simplefilter("ignore")
sys.path.insert(0, {here!r})
import coevidence as cv
from bench_panel_did import mpdta_copies
kw = dict(unit="countyreal", time="year", first_treated="first.treat")
cv.fit_event_study(mpdta_copies(1), "lemp", estimator={estimator!r}, **kw).aggregate("event")
d = mpdta_copies({copies})
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
r = cv.fit_event_study(d, "lemp", estimator={estimator!r}, **kw)
agg = r.aggregate("event")
dt = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(dict(rows=len(d), seconds=dt, peak_mb=peak / 1024, fit_mb=(peak - base) / 1024)))
"""


def scale(copies_list: list[int]) -> None:
    """Time and peak memory of two-stage vs Callaway & Sant'Anna on stacked mpdta copies."""
    here = os.path.dirname(os.path.abspath(__file__))
    print(
        f"{'copies':>6} {'rows':>8} {'estimator':>18} {'seconds':>9} {'peak MB':>9} {'fit MB':>8}"
    )
    for copies in copies_list:
        res = {}
        for est in ("two_stage", "callaway_santanna"):
            code = _SCALE_CHILD.format(here=here, copies=copies, estimator=est)
            out = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=False
            )
            if out.returncode:
                raise RuntimeError(out.stderr)
            res[est] = json.loads(out.stdout.strip().splitlines()[-1])
            r = res[est]
            print(
                f"{copies:>6} {r['rows']:>8} {est:>18} {r['seconds']:9.3f} "
                f"{r['peak_mb']:9.0f} {r['fit_mb']:8.0f}"
            )
        ratio = res["two_stage"]["seconds"] / res["callaway_santanna"]["seconds"]
        print(f"{'':>6} {'':>8} {'time ratio 2s/CS':>18} {ratio:9.2f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--scale":
        scale([int(a) for a in sys.argv[2:]] or [10, 25, 50])
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
