"""Benchmark: coevidence's mixed-model engine vs lme4, glmm, mixedlm, mixedlm-rs (and
statsmodels MixedLM), one run (issue 17).

Fits the simulated TA growth design of ``bench_mixed_design.py`` (waves 0-4 in organisations
in 12 TA providers, ~10% of org-waves missing) at 10k, 100k and 1M rows::

    2-level: y ~ time * ta_model + (time | org_id)                        REML
    3-level: y ~ time * ta_model + (time | org_id) + (1 | provider_id)    REML

Packages (each fit in its own subprocess; a peer that is not installed, fails or times out is
reported as such in the table, never a crash):

* coevidence: ``build_problem`` + ``FastEngine().fit`` ("fit"), then the lmerTest
  Satterthwaite ingredients ("fit + df": what ``fit_mixed`` pays with its default
  ``df_method="satterthwaite"``); peak resident memory during the fit (``VmHWM`` reset after the
  data are built). The issue's target -- below 600 MB at 1M rows, 3 levels -- is checked.
* lme4: ``lmer(f, d, REML = TRUE)`` via ``Rscript bench_mixed_lme4.R`` (fit only).
* glmm: ``glmm.fit(df, formula, reml=True, satterthwaite=True)`` (fit + df).
* mixedlm: ``mixedlm.lmer(formula, df, REML=True)`` (lme4 port, Rust core; fit only).
* mixedlm-rs: ``mixedlm_rs.mixedlm("y ~ time * ta_model", df, groups="org_id",
  re_formula="~time").fit(reml=True)`` (statsmodels API; one grouping factor, so 2-level only).
* statsmodels ``MixedLM``, under a time cap; its 3-level model has an *uncorrelated* org
  intercept and slope (variance components) -- a different model, flagged as such.

For every peer the table prints seconds, the ratio to coevidence (fit-only peers against
coevidence fit, glmm against coevidence fit + df), its REML log-likelihood and the difference
to coevidence's, flagged when above 1e-4 (not the same optimum) or when the model differs.

``--refits N`` adds the refit-throughput section: N outcomes redrawn from the model on one
~600-row 3-level design, fitted by coevidence (``fit_mixed`` once, then the public
``result.refit(y)``, looked up with ``getattr``; timed for a default Satterthwaite-df result
and a ``df_method="residual"`` result), lme4 (``refit(m, y)``), mixedlm
(``result.refit(newresp=y)``) and glmm (no refit method: ``glmm.fit`` afresh); plus
coevidence's lean path of power simulations (``Refitter.refit_many``: estimates, SEs and
Satterthwaite df of every coefficient and of a contrast, no result objects); mixedlm-rs
cannot fit the 3-level model. Every package fits the same outcomes; log-likelihoods are
compared refit by refit (lme4's at each refit's own theta, recomputed untimed, since
``refit()`` can report a different logLik).

Times are best-of-3 below 1M rows, one fit at 1M (``--repeats`` overrides).

Usage::

    python benchmarks/bench_mixed.py                       # everything (long: 1M rows)
    python benchmarks/bench_mixed.py --refits 200          # ... plus 200-refit throughput
    python benchmarks/bench_mixed.py --sizes 10000 --repeats 1 --refits 5   # smoke run
    python benchmarks/bench_mixed.py --sizes --refits 200  # refit section only
    python benchmarks/bench_mixed.py --sm-cap 120 --no-statsmodels --no-lme4 --no-glmm \\
        --no-mixedlm --no-mixedlm-rs --peer-cap 1800

Prints the machine load (the machine may be shared: compare ratios, which are measured in the
same run) and Markdown tables; writes the raw numbers to ``benchmarks/results/`` (git-ignored).
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
    try:  # hand the data generation's freed heap back to the OS (glibc keeps it otherwise)
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    base = _vm("VmRSS")
    try:  # reset the peak-RSS counter so VmHWM measures the fit, not the data generation
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    from coevidence.models.mixed.api import _scaled_satterthwaite

    # where the memory goes (first repeat): resident memory after each phase and the peak so
    # far; reading /proc/self/status does not reset the peak counter
    phases: dict[str, float] = {"data + imports": base, "import api": _vm("VmRSS")}
    times, fit_times, df_times = [], [], []
    for r in range(repeats):
        t0 = time.perf_counter()
        problem, _ = build_problem(FORMULAS[levels], df, reml=True)
        t1 = time.perf_counter()
        if r == 0:
            phases["build_problem"] = _vm("VmRSS")
            phases["peak to build_problem"] = _vm("VmHWM")
        fit = FastEngine().fit(problem)
        t2 = time.perf_counter()
        if r == 0:
            phases["fit"] = _vm("VmRSS")
            phases["peak to fit"] = _vm("VmHWM")
        _scaled_satterthwaite(fit, problem, tuple(len(t.columns) for t in problem.terms))
        t3 = time.perf_counter()
        times.append(t2 - t0)
        fit_times.append(t2 - t1)
        df_times.append(t3 - t0)
        peak = _vm("VmHWM")
        if r == 0:
            phases["satterthwaite df"] = _vm("VmRSS")
        del problem
    problem, _ = build_problem(FORMULAS[levels], df, reml=True)
    return {
        "times": times,
        "fit_times": fit_times,
        "df_times": df_times,
        "rss_before_mb": base,
        "peak_rss_mb": peak,
        "rss_phases_mb": phases,
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
        "loglik": float(res.llf),
        "converged": bool(res.converged),
    }


def worker_mixedlm(n: int, levels: int, repeats: int) -> dict:
    """``mixedlm`` (Rust-backed lme4 port): ``mixedlm.lmer(formula, data, REML=True)``."""
    import warnings

    import mixedlm

    df = simulate(n)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = mixedlm.lmer(FORMULAS[levels], df, REML=True)
        times.append(time.perf_counter() - t0)
    fixef = res.fixef()
    beta = list(fixef.values()) if isinstance(fixef, dict) else list(np.ravel(fixef))
    return {
        "times": times,
        "beta": [float(b) for b in beta],
        "loglik": float(res.logLik().value),
        "converged": bool(res.converged),
    }


def worker_mixedlm_rs(n: int, levels: int, repeats: int) -> dict:
    """``mixedlm-rs`` (statsmodels API, one grouping factor): 2-level model only."""
    import warnings

    import mixedlm_rs

    if levels != 2:
        return {
            "error": "not supported: one grouping factor only (no 3-level model)",
            "unsupported": True,
        }
    df = simulate(n)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = mixedlm_rs.mixedlm(
                "y ~ time * ta_model", df, groups="org_id", re_formula="~time"
            )
            res = model.fit(reml=True)
        times.append(time.perf_counter() - t0)
    return {
        "times": times,
        "beta": np.asarray(res.fe_params, float).tolist(),
        "loglik": float(res.llf),
        "converged": bool(res.converged),
    }


# ------------------------------------------------------------------------------ refit workers
REFIT_ROWS = 600  # the ~600-row 3-level design of the refit-throughput section


def refit_design(n_refits: int, seed: int = 17):
    """The 3-level refit design (``simulate(REFIT_ROWS)``) and ``n_refits`` new outcomes.

    Each outcome is a fresh draw of the model on the same rows (org intercept/slope, provider
    intercept, residual), so every refit has a different optimum; every peer fits the same ones.
    """
    df = simulate(REFIT_ROWS)
    rng = np.random.default_rng(seed)
    org = df["org_id"].to_numpy()
    prov = df["provider_id"].to_numpy()
    t = df["time"].to_numpy()
    slope = 0.3 + np.where(
        df["ta_model"].astype(str) == "co_creation",
        0.15,
        np.where(df["ta_model"].astype(str) == "hybrid", 0.05, 0.0),
    )
    n_org, n_prov = int(org.max()) + 1, int(prov.max()) + 1
    ys = np.empty((n_refits, len(df)))
    for k in range(n_refits):
        b = rng.multivariate_normal([0.0, 0.0], [[1.0, -0.12], [-0.12, 0.09]], n_org)
        a = rng.normal(0.0, 0.5, n_prov)
        ys[k] = 3.0 + a[prov] + b[org, 0] + (slope + b[org, 1]) * t + rng.normal(0, 0.6, len(df))
    return df, ys


def refit_fast(n_refits: int) -> dict:
    """coevidence: ``fit_mixed`` once, then ``result.refit(y)`` per outcome (public method).

    Timed twice: with the default Satterthwaite df (what a refit of a default ``fit_mixed``
    result pays) and for a ``df_method="residual"`` result (no Satterthwaite Hessian: the
    closest to the peers' fit-only refits). Uses ``getattr`` so a leaner public path, when one
    exists, is picked up without editing this benchmark; falls back to fresh ``fit_mixed``.
    """
    import warnings

    import coevidence as cv

    df, ys = refit_design(n_refits)
    out: dict = {"n_refits": n_refits, "rows": len(df)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for label, df_method in (("satterthwaite", "satterthwaite"), ("residual", "residual")):
            base = cv.fit_mixed(FORMULAS[3], df, engine="fast", df_method=df_method)
            refit = getattr(base, "refit", None)
            how = "result.refit(y)"
            if refit is None:  # no public refit: fresh fits
                how = "fit_mixed (no result.refit)"

                def refit(y, _m=df_method):
                    return cv.fit_mixed(FORMULAS[3], df.assign(y=y), engine="fast", df_method=_m)

            lls = []
            t0 = time.perf_counter()
            for y in ys:
                lls.append(float(refit(y).log_lik))
            out[label] = {"seconds": time.perf_counter() - t0, "loglik": lls, "how": how}
        # the lean path of simulate_power: estimates, SEs, Satterthwaite df of every coefficient
        # and of a contrast, no MixedResult (Refitter.refit_many)
        from coevidence.models.mixed.refit import _refitter

        base = cv.fit_mixed(FORMULAS[3], df, engine="fast")
        refitter = _refitter(base)
        if refitter is not None:
            L = np.zeros(len(base.params))
            L[-1] = 1.0
            variants = (
                ("lean", {}, "Refitter.refit_many(Y, contrast) (Satterthwaite df, no result "
                 "objects; exactly fit_mixed's numbers)"),
            )
            for key, kw, how in variants:
                try:
                    t0 = time.perf_counter()
                    est = refitter.refit_many(ys, L, **kw)
                    secs = time.perf_counter() - t0
                except TypeError:  # a coevidence without that option
                    continue
                out[key] = {
                    "seconds": secs,
                    "loglik": [-0.5 * e.objective for e in est],
                    "df": [np.asarray(e.df, float).tolist() for e in est],
                    "how": how,
                }
    return out


def refit_glmm(n_refits: int) -> dict:
    """glmm has no refit method: ``glmm.fit`` afresh on each outcome (fit only, no df)."""
    import warnings

    import glmm

    df, ys = refit_design(n_refits)
    lls = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        for y in ys:
            lls.append(float(glmm.fit(df.assign(y=y), FORMULAS[3], reml=True).loglik))
        secs = time.perf_counter() - t0
    return {"seconds": secs, "loglik": lls, "how": "glmm.fit afresh (no refit method)"}


def refit_mixedlm(n_refits: int) -> dict:
    """mixedlm: ``lmer`` once, then ``result.refit(newresp=y)`` (design matrices reused)."""
    import warnings

    import mixedlm

    df, ys = refit_design(n_refits)
    lls = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = mixedlm.lmer(FORMULAS[3], df, REML=True)
        t0 = time.perf_counter()
        for y in ys:
            lls.append(float(base.refit(newresp=y).logLik().value))
        secs = time.perf_counter() - t0
    return {"seconds": secs, "loglik": lls, "how": "result.refit(newresp=y)"}


REFIT_WORKERS = {"refit_fast": refit_fast, "refit_glmm": refit_glmm, "refit_mixedlm": refit_mixedlm}
PEER_WORKERS = {"mixedlm": worker_mixedlm, "mixedlm_rs": worker_mixedlm_rs}
# peer -> importable module (a missing module is reported as "not installed")
PEER_MODULES = {
    "glmm": "glmm",
    "mixedlm": "mixedlm",
    "mixedlm_rs": "mixedlm_rs",
    "statsmodels": "statsmodels",
}


# ------------------------------------------------------------------------------ driver
def _run_worker(
    kind: str, n: int, levels: int, repeats: int, timeout: float | None, extra: tuple = ()
) -> dict:
    """Run one worker in its own subprocess; a failure or time-out comes back as ``error``."""
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
        *extra,
    ]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish within {timeout:.0f} s (stopped)", "timeout": timeout}
    except subprocess.CalledProcessError as exc:
        return {"error": exc.stderr.strip().splitlines()[-1] if exc.stderr else str(exc)}
    except (json.JSONDecodeError, IndexError) as exc:
        return {"error": f"no result from the worker ({exc})"}


def _run_lme4(
    csv: Path, levels: int, repeats: int, refits: Path | None = None, timeout: float | None = 3600
) -> dict:
    cmd = ["Rscript", str(HERE / "bench_mixed_lme4.R"), str(csv), str(levels), str(repeats)]
    if refits is not None:
        cmd.append(str(refits))
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=timeout)
        return json.loads(out.stdout.strip().splitlines()[-1])
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish within {timeout:.0f} s (stopped)", "timeout": timeout}
    except subprocess.CalledProcessError as exc:
        return {"error": exc.stderr.strip().splitlines()[-1] if exc.stderr else str(exc)}
    except (json.JSONDecodeError, IndexError) as exc:
        return {"error": f"no result from Rscript ({exc})"}


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


def _installed(peer: str) -> bool:
    try:
        return importlib.util.find_spec(PEER_MODULES[peer]) is not None
    except (ImportError, ValueError):
        return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--sizes",
        type=int,
        nargs="*",
        default=[10_000, 100_000, 1_000_000],
        help="rows of the one-run comparison (none: skip it)",
    )
    ap.add_argument("--levels", type=int, nargs="+", default=[2, 3], choices=[2, 3])
    ap.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="fits per timing (default best of 3 below 1M rows, 1 at 1M)",
    )
    ap.add_argument(
        "--sm-cap",
        type=float,
        default=240.0,
        help="seconds allowed to one statsmodels fit (default 240)",
    )
    ap.add_argument(
        "--peer-cap",
        type=float,
        default=3600.0,
        help="seconds allowed to one peer worker (lme4, glmm, mixedlm, mixedlm-rs)",
    )
    ap.add_argument(
        "--refits",
        type=int,
        default=0,
        metavar="N",
        help="also time N refits of the ~600-row 3-level model per peer (e.g. 200)",
    )
    ap.add_argument("--no-statsmodels", action="store_true")
    ap.add_argument("--no-lme4", action="store_true")
    ap.add_argument("--no-glmm", action="store_true")
    ap.add_argument("--no-mixedlm", action="store_true")
    ap.add_argument("--no-mixedlm-rs", action="store_true")
    ap.add_argument(
        "--worker",
        choices=["fast", "statsmodels", "glmm", *PEER_WORKERS, *REFIT_WORKERS],
        help=argparse.SUPPRESS,
    )
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        if args.worker in REFIT_WORKERS:
            print(json.dumps(REFIT_WORKERS[args.worker](args.refits)))
            return 0
        fn = {
            "fast": worker_fast,
            "glmm": worker_glmm,
            "statsmodels": worker_statsmodels,
            **PEER_WORKERS,
        }[args.worker]
        print(json.dumps(fn(args.n, args.levels[0], args.repeats or 1)))
        return 0

    use_r = not args.no_lme4 and _lme4_available()
    wanted = {
        "glmm": not args.no_glmm,
        "mixedlm": not args.no_mixedlm,
        "mixedlm_rs": not args.no_mixedlm_rs,
    }
    print("coevidence mixed-model benchmark (REML), simulated TA growth design")
    print(f"start: {time.strftime('%Y-%m-%d %H:%M:%S')}, {_load()}")
    if not use_r:
        print("lme4: not run (Rscript with lme4 and jsonlite not available, or --no-lme4)")
    for peer, want in wanted.items():
        if want and not _installed(peer):
            print(f"{peer}: not installed (reported as such)")
    rows: list[dict] = []
    refit_res: dict | None = None
    sm_last: dict[int, tuple[int, float]] = {}  # levels -> (n, seconds) of the last finished fit
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            repeats = args.repeats or (3 if n < 1_000_000 else 1)
            csv = Path(tmp) / f"ta_{n}.csv"
            if use_r:
                simulate(n).to_csv(csv, index=False)
            for lev in args.levels:
                row: dict = {"n": n, "levels": lev, "load_before": _load()}
                row["fast"] = _run_worker("fast", n, lev, repeats, None)
                for peer, want in wanted.items():
                    if not want:
                        continue
                    if not _installed(peer):
                        row[peer] = {"error": "not installed", "missing": True}
                    elif peer == "mixedlm_rs" and lev != 2:
                        row[peer] = {
                            "error": "not supported: one grouping factor only",
                            "unsupported": True,
                        }
                    else:
                        row[peer] = _run_worker(peer, n, lev, repeats, args.peer_cap)
                if use_r:
                    row["lme4"] = _run_lme4(csv, lev, repeats, timeout=args.peer_cap)
                if not args.no_statsmodels and not _installed("statsmodels"):
                    row["statsmodels"] = {"error": "not installed", "missing": True}
                elif not args.no_statsmodels:
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
        if args.refits > 0:
            refit_res = _run_refits(args.refits, use_r, wanted, Path(tmp), args.peer_cap)
    print(f"end: {time.strftime('%Y-%m-%d %H:%M:%S')}, {_load()}")
    if rows:
        print()
        print(_table(rows))
        print()
        print(_peer_table(rows))
        print(_memory_check(rows))
    if refit_res is not None:
        print()
        print(_refit_table(refit_res))
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"bench_mixed_{time.strftime('%Y%m%d_%H%M%S')}.json"
    out.write_text(json.dumps({"rows": rows, "refits": refit_res}, indent=1))
    print(f"\nraw results: {out}")
    return 0


# ------------------------------------------------------------------------------ refit section
def _run_refits(n_refits: int, use_r: bool, wanted: dict, tmp: Path, cap: float) -> dict:
    """N refits of the ~600-row 3-level model per peer with a refit path (same outcomes)."""
    extra = ("--refits", str(n_refits))
    res: dict = {"n_refits": n_refits, "rows": REFIT_ROWS, "load_before": _load()}
    print(f"refits: {n_refits} x {REFIT_ROWS}-row 3-level model ...", flush=True)
    res["coevidence"] = _run_worker("refit_fast", REFIT_ROWS, 3, 1, None, extra)
    if use_r:
        df, ys = refit_design(n_refits)
        data_csv, y_csv = tmp / "refit_data.csv", tmp / "refit_y.csv"
        df.to_csv(data_csv, index=False)
        np.savetxt(y_csv, ys.T, delimiter=",", fmt="%.17g")  # one column per refit
        res["lme4"] = _run_lme4(data_csv, 3, 1, refits=y_csv, timeout=cap)
    else:
        res["lme4"] = {"error": "not run (no Rscript with lme4, or --no-lme4)"}
    for peer in ("glmm", "mixedlm"):
        if not wanted.get(peer):
            continue
        if not _installed(peer):
            res[peer] = {"error": "not installed", "missing": True}
        else:
            res[peer] = _run_worker(f"refit_{peer}", REFIT_ROWS, 3, 1, cap, extra)
    if wanted.get("mixedlm_rs"):
        res["mixedlm_rs"] = {
            "error": "not supported: one grouping factor only (3-level model)",
            "unsupported": True,
        }
    return res


def _refit_table(res: dict) -> str:
    n = res["n_refits"]
    co = res.get("coevidence", {})
    ref_ll = np.asarray(co["satterthwaite"]["loglik"]) if "satterthwaite" in co else None
    t_sat = co.get("satterthwaite", {}).get("seconds")
    t_res = co.get("residual", {}).get("seconds")
    lines = [
        (
            f"Refit throughput: {n} refits of the {res['rows']}-row 3-level model "
            f"(y ~ time * ta_model + (time | org_id) + (1 | provider_id), REML), same outcomes "
            f"for every package [{res['load_before']}]"
        ),
        "",
        (
            "| package | how | seconds | refits / s | × coevidence (resid. df) "
            "| × coevidence (Satt. df) | max abs Δ logLik vs coevidence | note |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    entries = []
    if "error" in co:
        entries.append(("coevidence", co))
    else:
        for label, key in (
            ("coevidence (Satterthwaite df)", "satterthwaite"),
            ("coevidence (residual df, no Hessian)", "residual"),
            ("coevidence lean refits (Satterthwaite df)", "lean"),
        ):
            if key in co:
                entries.append((label, co[key]))
    for peer in ("lme4", "glmm", "mixedlm", "mixedlm_rs"):
        if peer in res:
            entries.append((peer, res[peer]))
    for name, d in entries:
        if "error" in d or "seconds" not in d:
            err = d.get("error", "no result")
            lines.append(f"| {name} | — | — | — | — | — | — | {err} |")
            continue
        secs = float(d["seconds"])
        rate = n / secs if secs > 0 else float("nan")
        r_res = f"{secs / t_res:.2f}×" if t_res else "—"
        r_sat = f"{secs / t_sat:.2f}×" if t_sat else "—"
        dll, note = "—", ""
        ll = np.asarray(d.get("loglik", []), float)
        if ref_ll is not None and ll.shape == ref_ll.shape and ll.size:
            delta = ll - ref_ll
            worst = float(np.max(np.abs(delta)))
            dll = f"{worst:.1e}"
            bad = int(np.sum(np.abs(delta) > LOGLIK_TOL))
            if bad:
                note = (
                    f"FLAG: {bad}/{n} refits off the coevidence optimum by > {LOGLIK_TOL:g} "
                    f"(peer higher in {int(np.sum(delta > LOGLIK_TOL))})"
                )
        elif ref_ll is not None:
            note = "FLAG: log-likelihoods missing or of the wrong length"
        rep = np.asarray(d.get("loglik_reported", []), float)
        if rep.shape == ll.shape and rep.size:
            off = float(np.max(np.abs(rep - ll)))
            if off > LOGLIK_TOL:
                note = (note + "; " if note else "") + (
                    f"refit()'s reported logLik differs from the REML logLik at its own theta "
                    f"by up to {off:.2g} (the latter is compared)"
                )
        lines.append(
            f"| {name} | {d.get('how', '')} | {_fmt_t(secs)} | {rate:.1f} | {r_res} "
            f"| {r_sat} | {dll} | {note} |"
        )
    lines.append("")
    lines.append(
        "coevidence: fit_mixed once (untimed), then result.refit(y) per outcome (inference "
        "included: fixed-effect table with the result's df method); lme4: lmer() once, then "
        "refit(m, y); mixedlm: lmer() once, then result.refit(newresp=y); glmm: no refit "
        "method, glmm.fit() afresh (fit only). Peers' refits compute no df."
    )
    return "\n".join(lines)


# ------------------------------------------------------------------------------ reporting
LOGLIK_TOL = 1e-4  # a peer whose REML log-likelihood differs by more did not reach the optimum
PEER_LABELS = {
    "lme4": ("lme4 lmer()", "fit"),
    "glmm": ("glmm (with Satterthwaite df)", "df"),
    "mixedlm": ("mixedlm lmer()", "fit"),
    "mixedlm_rs": ("mixedlm-rs MixedLM.fit()", "fit"),
    "statsmodels": ("statsmodels MixedLM", "fit"),
}


def _peer_table(rows: list[dict]) -> str:
    """One line per (size, levels, package): seconds, ratio to coevidence, log-likelihood."""
    lines = [
        (
            "| rows | levels | package | seconds | × coevidence | REML logLik "
            "| Δ logLik (peer − coevidence) | note |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        f = row["fast"]
        tf = _best(f)
        tdf = float(np.min(f["df_times"])) if "df_times" in f else None
        llf = f.get("loglik")
        head = f"| {row['n']:,} | {row['levels']} |"
        if tf is None:
            lines.append(f"{head} coevidence | — | — | — | — | ERROR {f.get('error')} |")
        else:
            lines.append(
                f"{head} coevidence (fit) | {_fmt_t(tf)} | 1 | {llf:.6f} | 0 | "
                f"converged={f.get('converged')} |"
            )
            if tdf is not None:
                lines.append(
                    f"{head} coevidence (fit + Satterthwaite df) | {_fmt_t(tdf)} | "
                    f"1 (df) | {llf:.6f} | 0 | |"
                )
        for peer, (label, basis) in PEER_LABELS.items():
            d = row.get(peer)
            if d is None:
                continue
            if "times" not in d:
                lines.append(f"{head} {label} | — | — | — | — | {d.get('error')} |")
                continue
            tp = _best(d)
            base = tdf if basis == "df" else tf
            ratio = (
                f"{tp / base:.2f}×" + (" (vs fit + df)" if basis == "df" else "") if base else "—"
            )
            ll = d.get("loglik")
            notes = []
            different = peer == "statsmodels" and row["levels"] == 3
            if different:
                notes.append("DIFFERENT MODEL: uncorrelated org intercept/slope")
            if ll is None or llf is None:
                dl_txt, ll_txt = "—", "—" if ll is None else f"{ll:.6f}"
            else:
                dl = ll - llf
                dl_txt, ll_txt = f"{dl:+.1e}", f"{ll:.6f}"
                if abs(dl) > LOGLIK_TOL and not different:
                    who = "peer" if dl > 0 else "coevidence"
                    notes.append(f"FLAG: not the same optimum (|Δ| > {LOGLIK_TOL:g}; {who} higher)")
            if d.get("converged") is False:
                notes.append("peer reports non-convergence")
            lines.append(
                f"{head} {label} | {_fmt_t(tp)} | {ratio} | {ll_txt} | {dl_txt} | "
                f"{'; '.join(notes)} |"
            )
    lines.append("")
    lines.append(
        "× coevidence: peer seconds / coevidence seconds (fit-only peers against coevidence "
        "build_problem + FastEngine.fit; glmm, which always computes Satterthwaite df here, "
        "against coevidence fit + df). Δ logLik: REML log-likelihood, flagged beyond "
        f"{LOGLIK_TOL:g}. mixedlm-rs: one grouping factor only, so 2-level only."
    )
    return "\n".join(lines)


def _memory_check(rows: list[dict], limit_mb: float = 600.0) -> str:
    for row in rows:
        if row["n"] == 1_000_000 and row["levels"] == 3 and "peak_rss_mb" in row["fast"]:
            peak = row["fast"]["peak_rss_mb"]
            verdict = "OK" if peak < limit_mb else "OVER"
            phases = row["fast"].get("rss_phases_mb", {})
            detail = "; ".join(f"{k} {v:.0f}" for k, v in phases.items())
            return (
                f"\npeak RSS, coevidence, 1M rows, 3 levels: {peak:.0f} MB "
                f"(target < {limit_mb:.0f} MB): {verdict}"
                + (f"\n  resident MB after each phase (peak so far where said): {detail}"
                   if detail else "")
            )
    return f"\npeak RSS target (1M rows, 3 levels, < {limit_mb:.0f} MB): not measured in this run"


def _best(d: dict | None) -> float | None:
    return float(np.min(d["times"])) if d and "times" in d else None


def _print_row(row: dict) -> None:
    f = row["fast"]
    parts = [f"n={row['n']:>9,} {row['levels']}-level:"]
    parts.append(f"fast {_fmt_t(_best(f))}" if "times" in f else f"fast ERROR {f.get('error')}")
    if "df_times" in f:
        parts.append(f"fast + df {_fmt_t(float(np.min(f['df_times'])))}")
    for peer in ("glmm", "mixedlm", "mixedlm_rs", "lme4", "statsmodels"):
        d = row.get(peer)
        if d is not None:
            parts.append(f"{peer} {_fmt_t(_best(d))}" if "times" in d else f"{peer}: {d['error']}")
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
