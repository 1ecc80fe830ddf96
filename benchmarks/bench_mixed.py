"""Benchmark: coevidence's fast mixed-model engine vs lme4 and statsmodels MixedLM, one run.

Fits the simulated TA growth design of ``bench_mixed_design.py`` (waves 0-4 in organisations
in 12 TA providers, ~10% of org-waves missing) at 10k, 100k and 1M rows::

    2-level: y ~ time * ta_model + (time | org_id)                        REML
    3-level: y ~ time * ta_model + (time | org_id) + (1 | provider_id)    REML

with coevidence (``build_problem`` + ``FastEngine().fit``, timed together; then the lmerTest
Satterthwaite ingredients, timed separately, so "fast + df" is what ``fit_mixed`` pays with its
default ``df_method="satterthwaite"``), glmm (the Rust ``glmm`` package's Python port, REML with
its Satterthwaite df, when installed: ``pip install glmm``), lme4 (through
``Rscript bench_mixed_lme4.R``, when R and lme4 are installed; ``lmer()`` timed) and statsmodels
``MixedLM`` (the 3-level model only with an *uncorrelated* org intercept and slope, as variance
components: not the same model, labelled ``sm*``). Every fit runs in its own subprocess; the
fast worker reports its peak resident memory during the fit (``VmHWM`` reset after the data are
built), statsmodels runs under a time cap. Times are best-of-3 below 1M rows, one fit at 1M.

Usage::

    python benchmarks/bench_mixed.py                       # everything (several minutes)
    python benchmarks/bench_mixed.py --sizes 10000 100000  # a subset
    python benchmarks/bench_mixed.py --sm-cap 120 --no-statsmodels --no-lme4

Prints the machine load (the machine may be shared: compare ratios, which are measured in the
same run) and a Markdown table; writes the raw numbers to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_mixed_design import FORMULAS, simulate


# ------------------------------------------------------------------------------ workers
def _vm(field: str) -> float:
    """A /proc/self/status memory field, in MB (NaN where unavailable)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def worker_fast(n: int, levels: int, repeats: int) -> dict:
    from coevidence.models.mixed._fast import FastEngine, is_singular
    from coevidence.models.mixed.formula import build_problem

    df = simulate(n)
    base = _vm("VmRSS")
    try:  # reset the peak-RSS counter so VmHWM measures the fit, not the data generation
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    from coevidence.models.mixed.api import _scaled_satterthwaite

    times, fit_times, df_times = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        problem, _ = build_problem(FORMULAS[levels], df, reml=True)
        t1 = time.perf_counter()
        fit = FastEngine().fit(problem)
        t2 = time.perf_counter()
        _scaled_satterthwaite(fit, problem, tuple(len(t.columns) for t in problem.terms))
        t3 = time.perf_counter()
        times.append(t2 - t0)
        fit_times.append(t2 - t1)
        df_times.append(t3 - t0)
        peak = _vm("VmHWM")
        del problem
    problem, _ = build_problem(FORMULAS[levels], df, reml=True)
    return {
        "times": times,
        "fit_times": fit_times,
        "df_times": df_times,
        "rss_before_mb": base,
        "peak_rss_mb": peak,
        "beta": fit.beta.tolist(),
        "covariances": [c.tolist() for c in fit.covariances],
        "sigma2": fit.sigma2,
        "loglik": fit.loglik,
        "theta": fit.theta.tolist(),
        "converged": fit.converged,
        "singular": is_singular(fit, problem),
        "n_evaluations": sum(a.n_evaluations for a in fit.attempts),
        "attempts": [a.optimizer for a in fit.attempts],
    }


def worker_glmm(n: int, levels: int, repeats: int) -> dict:
    import warnings

    import glmm

    df = simulate(n)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = glmm.fit(df, FORMULAS[levels], reml=True, satterthwaite=True)
        times.append(time.perf_counter() - t0)
    return {
        "times": times,
        "beta": np.asarray(res.beta, float).tolist(),
        "loglik": float(res.loglik),
        "converged": bool(res.converged),
    }


def worker_statsmodels(n: int, levels: int, repeats: int) -> dict:
    import warnings

    import statsmodels.formula.api as smf

    df = simulate(n)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if levels == 2:
                model = smf.mixedlm("y ~ time * ta_model", df, groups="org_id", re_formula="~time")
            else:  # uncorrelated org intercept and slope as variance components
                model = smf.mixedlm(
                    "y ~ time * ta_model",
                    df,
                    groups="provider_id",
                    re_formula="1",
                    vc_formula={"org": "0 + C(org_id)", "org_time": "0 + C(org_id):time"},
                )
            res = model.fit(reml=True)
        times.append(time.perf_counter() - t0)
    return {
        "times": times,
        "beta": np.asarray(res.fe_params).tolist(),
        "converged": bool(res.converged),
    }


# ------------------------------------------------------------------------------ driver
def _run_worker(kind: str, n: int, levels: int, repeats: int, timeout: float | None) -> dict:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        kind,
        "--n",
        str(n),
        "--levels",
        str(levels),
        "--repeats",
        str(repeats),
    ]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish within {timeout:.0f} s (stopped)", "timeout": timeout}
    except subprocess.CalledProcessError as exc:
        return {"error": exc.stderr.strip().splitlines()[-1] if exc.stderr else str(exc)}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _run_lme4(csv: Path, levels: int, repeats: int) -> dict:
    cmd = ["Rscript", str(HERE / "bench_mixed_lme4.R"), str(csv), str(levels), str(repeats)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=3600)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        return {"error": str(exc)}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _lme4_available() -> bool:
    if shutil.which("Rscript") is None:
        return False
    r = subprocess.run(
        ["Rscript", "-e", "library(lme4); library(jsonlite)"],
        capture_output=True,
        text=True,
        check=False,
    )
    return r.returncode == 0


def _differences(fast: dict, ref: dict) -> dict:
    """Largest differences of the fast fit from lme4's (relative unless said otherwise)."""
    b, rb = np.asarray(fast["beta"]), np.asarray(ref["beta"])
    d_beta = float(np.max(np.abs(b - rb) / np.maximum(np.abs(rb), 1e-3)))
    d_vc = 0.0
    for S, R in zip(fast["covariances"], ref["covariances"], strict=True):
        S, R = np.atleast_2d(S), np.atleast_2d(R)
        scale = np.sqrt(np.outer(np.diag(R), np.diag(R)))
        d_vc = max(d_vc, float(np.max(np.abs(S - R) / scale)))
    d_vc = max(d_vc, abs(fast["sigma2"] - ref["sigma2"]) / ref["sigma2"])
    return {
        "beta_rel": d_beta,
        "varcomp_rel": d_vc,
        "loglik_abs": abs(fast["loglik"] - ref["loglik"]),
        "loglik_fast_minus_lme4": fast["loglik"] - ref["loglik"],
    }


def _fmt_t(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:.3g} s" if x < 10 else f"{x:.1f} s"


def _load() -> str:
    try:
        la = os.getloadavg()
        return f"load average {la[0]:.2f} / {la[1]:.2f} / {la[2]:.2f} on {os.cpu_count()} CPUs"
    except OSError:
        return "load average unavailable"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--levels", type=int, nargs="+", default=[2, 3], choices=[2, 3])
    ap.add_argument(
        "--sm-cap",
        type=float,
        default=240.0,
        help="seconds allowed to one statsmodels fit (default 240)",
    )
    ap.add_argument("--no-statsmodels", action="store_true")
    ap.add_argument("--no-lme4", action="store_true")
    ap.add_argument("--no-glmm", action="store_true")
    ap.add_argument("--worker", choices=["fast", "statsmodels", "glmm"], help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        fn = {"fast": worker_fast, "glmm": worker_glmm, "statsmodels": worker_statsmodels}[
            args.worker
        ]
        print(json.dumps(fn(args.n, args.levels[0], args.repeats)))
        return 0

    use_r = not args.no_lme4 and _lme4_available()
    use_glmm = not args.no_glmm and importlib.util.find_spec("glmm") is not None
    print("coevidence mixed-model benchmark (REML), simulated TA growth design")
    print(f"start: {time.strftime('%Y-%m-%d %H:%M:%S')}, {_load()}")
    if not use_r:
        print("lme4: not run (Rscript with lme4 and jsonlite not available, or --no-lme4)")
    rows: list[dict] = []
    sm_last: dict[int, tuple[int, float]] = {}  # levels -> (n, seconds) of the last finished fit
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            repeats = 3 if n < 1_000_000 else 1
            csv = Path(tmp) / f"ta_{n}.csv"
            if use_r:
                simulate(n).to_csv(csv, index=False)
            for lev in args.levels:
                row: dict = {"n": n, "levels": lev, "load_before": _load()}
                row["fast"] = _run_worker("fast", n, lev, repeats, None)
                if use_glmm:
                    row["glmm"] = _run_worker("glmm", n, lev, repeats, None)
                if use_r:
                    row["lme4"] = _run_lme4(csv, lev, repeats)
                if not args.no_statsmodels:
                    prev = sm_last.get(lev)
                    predicted = prev[1] * n / prev[0] if prev else 0.0
                    if prev and predicted > args.sm_cap:
                        row["statsmodels"] = {
                            "error": (
                                f"skipped: {prev[1]:.0f} s at {prev[0]:,} rows predicts "
                                f">= {predicted:.0f} s here, over the {args.sm_cap:.0f} s cap"
                            )
                        }
                    else:
                        row["statsmodels"] = _run_worker(
                            "statsmodels", n, lev, 1 if n >= 100_000 else repeats, args.sm_cap
                        )
                        if "times" in row["statsmodels"]:
                            sm_last[lev] = (n, min(row["statsmodels"]["times"]))
                        else:
                            sm_last[lev] = (n, args.sm_cap)
                if use_r and "times" in row.get("lme4", {}) and "times" in row["fast"]:
                    row["diff"] = _differences(row["fast"], row["lme4"])
                rows.append(row)
                _print_row(row)
    print(f"end: {time.strftime('%Y-%m-%d %H:%M:%S')}, {_load()}")
    print()
    print(_table(rows))
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"bench_mixed_{time.strftime('%Y%m%d_%H%M%S')}.json"
    out.write_text(json.dumps(rows, indent=1))
    print(f"\nraw results: {out}")
    return 0


def _best(d: dict | None) -> float | None:
    return float(np.min(d["times"])) if d and "times" in d else None


def _print_row(row: dict) -> None:
    f, r, s = row["fast"], row.get("lme4"), row.get("statsmodels")
    parts = [f"n={row['n']:>9,} {row['levels']}-level:"]
    parts.append(f"fast {_fmt_t(_best(f))}" if "times" in f else f"fast ERROR {f.get('error')}")
    if "df_times" in f:
        parts.append(f"fast + df {_fmt_t(float(np.min(f['df_times'])))}")
    gl = row.get("glmm")
    if gl is not None:
        parts.append(f"glmm {_fmt_t(_best(gl))}" if "times" in gl else f"glmm ERROR {gl['error']}")
    if r is not None:
        parts.append(f"lme4 {_fmt_t(_best(r))}" if "times" in r else f"lme4 ERROR {r['error']}")
    if s is not None:
        parts.append(
            f"statsmodels {_fmt_t(_best(s))}" if "times" in s else f"statsmodels: {s['error']}"
        )
    print("  ".join(parts), f"[{row['load_before']}]", flush=True)


def _table(rows: list[dict]) -> str:
    head = (
        "| rows | levels | fast | (engine fit only) | lme4 | statsmodels | lme4 / fast "
        "| statsmodels / fast "
        "| max rel. diff β | max rel. diff var. comp. | Δ logLik (fast − lme4) "
        "| fast peak RSS (fit) |"
    )
    lines = [head, "|" + "---|" * 12]
    notes = []
    for row in rows:
        f, r, s = row["fast"], row.get("lme4"), row.get("statsmodels")
        tf, tr, ts = _best(f), _best(r), _best(s)
        star = "*" if row["levels"] == 3 else ""
        s_txt = _fmt_t(ts) + star if ts is not None else ("not run" if s is None else "—†")
        sm_ratio = f"{ts / tf:.0f}×" if ts and tf else "—"
        if s is not None and "timeout" in s and tf:
            s_txt = f"> {s['timeout']:.0f} s{star} (stopped)"
            sm_ratio = f"> {s['timeout'] / tf:.0f}×"
        if s is not None and ts is None:
            notes.append(f"† {row['n']:,} rows, {row['levels']}-level: {s['error']}")
        d = row.get("diff", {})
        db = f"{d['beta_rel']:.1e}" if d else "—"
        dv = f"{d['varcomp_rel']:.1e}" if d else "—"
        dl = f"{d['loglik_fast_minus_lme4']:+.1e}" if d else "—"
        fit_only = _fmt_t(float(np.min(f["fit_times"]))) if "fit_times" in f else "—"
        mem = f"{f['peak_rss_mb']:.0f} MB" if "peak_rss_mb" in f else "—"
        lines.append(
            f"| {row['n']:,} | {row['levels']} | {_fmt_t(tf)} | {fit_only} | "
            f"{_fmt_t(tr) if r is not None else 'not run'} | {s_txt} | "
            f"{(f'{tr / tf:.1f}×' if tr and tf else '—')} | "
            f"{sm_ratio} | "
            f"{db} | {dv} | {dl} | {mem} |"
        )
    glmm_rows = [row for row in rows if row.get("glmm") and "df_times" in row["fast"]]
    if glmm_rows:
        lines.append("")
        lines.append("| rows | levels | fast + Satterthwaite df | glmm (with df) | fast / glmm |")
        lines.append("|---|---|---|---|---|")
        for row in glmm_rows:
            tdf = float(np.min(row["fast"]["df_times"]))
            tg = _best(row["glmm"])
            ratio = f"{tdf / tg:.1f}×" if tg else "—"
            lines.append(
                f"| {row['n']:,} | {row['levels']} | {_fmt_t(tdf)} | {_fmt_t(tg)} | {ratio} |"
            )
    lines.append("")
    lines.append(
        "fast = coevidence build_problem + FastEngine.fit (one BLAS thread; engine fit "
        "alone in the next column); lme4 = "
        "lmer() (lme4 default nloptwrap); best of 3 below 1M rows. * statsmodels "
        "3-level: uncorrelated org intercept/slope (variance components), not the "
        "same model. Peak RSS: whole fast worker process during the fit (data "
        "included)."
    )
    lines.extend(notes)
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
