"""Benchmark: coevidence's binomial GLMM (Laplace) vs lme4, glmmTMB, mixedlm and glmm (issue 10).

The issue's model: a binary outcome with nested random intercepts, organisations within TA
providers, fitted by the Laplace approximation::

    y ~ x + arm + (1 | provider_id/org_id)        family = binomial (logit), Laplace

Simulated data (``simulate``): 25 rows per organisation, 10 organisations per provider, the
arm assigned per provider, ``x`` standard normal; intercept -0.5, x 0.4, arm 0.3, provider SD
0.5, organisation SD 0.7. At 10k rows: 400 organisations in 40 providers; at 100k rows: 4,000
in 400.

Peers (each fitted in its own subprocess, timing the fit call only; a peer that is missing,
fails or times out is reported as such in the table, never a crash):

* coevidence: ``cv.fit_mixed(formula, df, family="binomial")`` (Laplace is its default);
  ``res.log_lik``, ``res.params``. While its GLMM does not exist yet (or if it fails) the
  error is printed and the peers are still run; ``--peers-only`` skips it.
* lme4: ``glmer(f, data, family = binomial)`` with lme4's default control, via
  ``Rscript bench_glmm.R`` (CSV read and factors made before the clock starts).
* lme4_tight: the same with ``glmerControl(tolPwrss = 1e-12)`` (see below).
* glmmTMB: ``glmmTMB(f, data, family = binomial)``, same script.
* mixedlm: ``mixedlm.glmer(formula, df, family=mixedlm.families.Binomial())`` (lme4 port,
  Rust core).
* glmm: ``glmm.fit(df, formula, family="binomial")`` (nagq=1, Laplace).

Printed per size: seconds (median of ``--repeats``; default 3 at 10k rows, 1 at 100k), the
ratio to coevidence (peer seconds / coevidence seconds, so > 1 means coevidence is faster),
peak resident memory of the fit (Linux ``VmHWM`` after a reset), the log-likelihood and its
difference from the best one in the row (flagged above 1e-3: not the same optimum), and a flag
when a peer reports non-convergence. lme4's default PIRLS tolerance (``tolPwrss = 1e-7``)
leaves its Laplace log-likelihood below the converged value (3e-4 on cbpp, ~1e-2 at 100k rows
here); ``lme4_tight`` shows the value once PIRLS is converged (see
``tests/fixtures/glmm/README.md``).

Usage::

    python benchmarks/bench_glmm.py                           # 10k and 100k rows, every peer
    python benchmarks/bench_glmm.py --peers-only              # without coevidence
    python benchmarks/bench_glmm.py --sizes 10000 --repeats 1 # smoke run
    python benchmarks/bench_glmm.py --no-mixedlm --peer-cap 600

Prints the machine load (the machine may be shared: compare ratios, which are measured in the
same run) and a Markdown table; writes the raw numbers to ``benchmarks/results/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_mixed import _fmt_t, _load, _vm  # noqa: E402  (house helpers, not copied)

FORMULA = "y ~ x + arm + (1 | provider_id/org_id)"
ROWS_PER_ORG = 25
ORGS_PER_PROVIDER = 10
TRUTH = {"(Intercept)": -0.5, "x": 0.4, "arm": 0.3, "sd_provider": 0.5, "sd_org": 0.7}
FLAG_LOGLIK = 1e-3
PY_PEERS = ("coevidence", "mixedlm", "glmm")
R_PEERS = ("lme4", "lme4_tight", "glmmTMB")
PEER_MODULES = {"coevidence": "coevidence", "mixedlm": "mixedlm", "glmm": "glmm"}


def simulate(n: int, seed: int = 10) -> pd.DataFrame:
    """The binary nested design with ``n`` rows (a multiple of 25 is used as is)."""
    rng = np.random.default_rng(seed)
    n_org = max(ORGS_PER_PROVIDER, n // ROWS_PER_ORG)
    n_prov = max(2, n_org // ORGS_PER_PROVIDER)
    org = np.repeat(np.arange(n_org), ROWS_PER_ORG)[:n]
    prov = np.minimum(org // ORGS_PER_PROVIDER, n_prov - 1)
    arm_prov = rng.permutation(np.arange(n_prov) % 2)
    arm = arm_prov[prov].astype(float)
    x = rng.standard_normal(len(org))
    u_prov = rng.normal(0.0, TRUTH["sd_provider"], n_prov)
    u_org = rng.normal(0.0, TRUTH["sd_org"], n_org)
    eta = TRUTH["(Intercept)"] + TRUTH["x"] * x + TRUTH["arm"] * arm + u_prov[prov] + u_org[org]
    y = (rng.random(len(org)) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
    return pd.DataFrame(
        {
            "y": y,
            "x": x,
            "arm": arm,
            "provider_id": [f"p{p:04d}" for p in prov],
            "org_id": [f"o{o:05d}" for o in org],
        }
    )


# ------------------------------------------------------------------------------ workers
def _timed(fn, df, repeats: int):
    base = _vm("VmRSS")
    times, res = [], None
    for _ in range(repeats):
        try:  # reset the peak-RSS counter so VmHWM measures the fit, not the data generation
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = fn(df)
        times.append(time.perf_counter() - t0)
    peak = _vm("VmHWM")
    msgs = sorted({f"{w.category.__name__}: {w.message}"[:200] for w in caught})
    return res, {"times": times, "rss_before_mb": base, "peak_rss_mb": peak, "messages": msgs}


def worker_coevidence(n: int, repeats: int) -> dict:
    import coevidence as cv

    df = simulate(n)
    # warm-up on a small data set: loads (or, after an edit, compiles) the cached numba
    # kernels, a once-per-process cost that is not part of a fit
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cv.fit_mixed(FORMULA, simulate(2000), family="binomial")
    warm = time.perf_counter() - t0
    res, out = _timed(lambda d: cv.fit_mixed(FORMULA, d, family="binomial"), df, repeats)
    out["warmup_seconds"] = warm
    params = res.params
    conv = getattr(getattr(res, "diagnostics", None), "converged", None)
    out.update(
        beta=[float(v) for v in np.asarray(params, float).ravel()],
        fixed_names=[str(k) for k in getattr(params, "index", range(len(params)))],
        loglik=float(res.log_lik),
        converged=None if conv is None else bool(conv),
        version=cv.__version__ if hasattr(cv, "__version__") else "",
    )
    return out


def worker_mixedlm(n: int, repeats: int) -> dict:
    import mixedlm

    df = simulate(n)
    res, out = _timed(
        lambda d: mixedlm.glmer(FORMULA, d, family=mixedlm.families.Binomial()), df, repeats
    )
    fixef = res.fixef()
    out.update(
        beta=[float(v) for v in (fixef.values() if isinstance(fixef, dict) else np.ravel(fixef))],
        fixed_names=list(fixef) if isinstance(fixef, dict) else [],
        loglik=float(res.logLik().value),
        converged=bool(res.converged),
        version=importlib.metadata.version("mixedlm"),
    )
    return out


def worker_glmm(n: int, repeats: int) -> dict:
    import glmm

    df = simulate(n)
    res, out = _timed(lambda d: glmm.fit(d, FORMULA, family="binomial"), df, repeats)
    out.update(
        beta=np.asarray(res.beta, float).tolist(),
        loglik=float(res.loglik),
        converged=bool(res.converged),
        singular=bool(res.singular),
        version=importlib.metadata.version("glmm"),
    )
    return out


WORKERS = {"coevidence": worker_coevidence, "mixedlm": worker_mixedlm, "glmm": worker_glmm}


# ------------------------------------------------------------------------------ driver
def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _run(cmd: list[str], timeout: float | None) -> dict:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)
        return json.loads(_last_line(out.stdout))
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish within {timeout:.0f} s (stopped)"}
    except subprocess.CalledProcessError as exc:
        return {"error": _last_line(exc.stderr or "") or str(exc)}
    except (json.JSONDecodeError, IndexError) as exc:
        return {"error": f"no result from the worker ({exc})"}


def _run_py(peer: str, n: int, repeats: int, timeout: float | None) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", peer, "--n", str(n)]
    return _run([*cmd, "--repeats", str(repeats)], timeout)


def _run_r(peer: str, csv: Path, repeats: int, timeout: float | None) -> dict:
    return _run(["Rscript", str(HERE / "bench_glmm.R"), str(csv), peer, str(repeats)], timeout)


def _r_available(pkg: str) -> bool:
    if shutil.which("Rscript") is None:
        return False
    r = subprocess.run(
        ["Rscript", "-e", f"library({pkg}); library(jsonlite)"],
        capture_output=True,
        text=True,
        check=False,
    )
    return r.returncode == 0


def _installed(peer: str) -> bool:
    try:
        return importlib.util.find_spec(PEER_MODULES[peer]) is not None
    except (ImportError, ValueError):
        return False


def _median(res: dict) -> float | None:
    t = res.get("times") if isinstance(res, dict) else None
    return statistics.median(t) if t else None


def _table(n: int, row: dict) -> str:
    lls = {p: r["loglik"] for p, r in row.items() if isinstance(r, dict) and "loglik" in r}
    best = max(lls.values()) if lls else None
    base = _median(row.get("coevidence", {}))
    out = [
        f"### {n:,} rows",
        "",
        "| peer | seconds (median) | ratio to coevidence | peak MB | logLik | best − logLik | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for peer, r in row.items():
        if "error" in r:
            out.append(f"| {peer} | — | — | — | — | — | {r['error'][:160]} |")
            continue
        t = _median(r)
        ratio = f"{t / base:.2f}" if base and t else "—"
        d = best - r["loglik"]
        notes = []
        if r.get("converged") is False:
            notes.append("**NOT CONVERGED**")
        if d > FLAG_LOGLIK:
            notes.append("**not at the best optimum**")
        if r.get("singular"):
            notes.append("singular")
        if r.get("messages"):
            notes.append("; ".join(m[:80] for m in r["messages"][:2]))
        if r.get("version"):
            notes.append(f"v{r['version']}")
        peak = r.get("peak_rss_mb")
        peak_s = f"{peak:.0f}" if isinstance(peak, (int, float)) and peak == peak else "—"
        out.append(
            f"| {peer} | {_fmt_t(t)} | {ratio} | {peak_s} | {r['loglik']:.6f} | {d:.2e} |"
            f" {' '.join(notes)} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    ap.add_argument(
        "--repeats", type=int, default=None, help="fits per timing (default 3 below 100k, 1)"
    )
    ap.add_argument("--peers-only", action="store_true", help="do not run coevidence")
    ap.add_argument("--peer-cap", type=float, default=1800.0, help="seconds allowed per peer")
    for peer in ("lme4", "lme4_tight", "glmmTMB", "mixedlm", "glmm"):
        ap.add_argument(f"--no-{peer}", action="store_true")
    ap.add_argument("--worker", choices=list(WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        print(json.dumps(WORKERS[args.worker](args.n, args.repeats or 1)))
        return 0

    peers = [p for p in PY_PEERS if not (p == "coevidence" and args.peers_only)]
    peers = [p for p in peers if not getattr(args, f"no_{p}", False)]
    r_peers = [p for p in R_PEERS if not getattr(args, f"no_{p}")]
    r_ok = {p: _r_available(p) for p in {q.removesuffix("_tight") for q in r_peers}}
    print("coevidence GLMM benchmark (binomial logit, Laplace), nested provider/org intercepts")
    print(f"model: {FORMULA}")
    print(f"start: {time.strftime('%Y-%m-%d %H:%M:%S')}, {_load()}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            repeats = args.repeats or (3 if n < 100_000 else 1)
            df = simulate(n)
            csv = Path(tmp) / f"glmm_{n}.csv"
            df.to_csv(csv, index=False)
            print(
                f"\n{n:,} rows: {df['org_id'].nunique():,} organisations in "
                f"{df['provider_id'].nunique():,} providers, mean y {df['y'].mean():.3f}, "
                f"{repeats} repeat(s); {_load()}"
            )
            row: dict = {}
            for peer in peers:
                if not _installed(peer):
                    row[peer] = {"error": "not installed"}
                else:
                    row[peer] = _run_py(peer, n, repeats, args.peer_cap)
                print(f"  {peer}: {_fmt_t(_median(row[peer]))} {row[peer].get('error', '')}")
            for peer in r_peers:
                if not r_ok[peer.removesuffix("_tight")]:
                    row[peer] = {"error": f"Rscript with {peer} and jsonlite not available"}
                else:
                    row[peer] = _run_r(peer, csv, repeats, args.peer_cap)
                print(f"  {peer}: {_fmt_t(_median(row[peer]))} {row[peer].get('error', '')}")
            results.append({"n": n, "repeats": repeats, "load": _load(), "peers": row})
    print()
    for res in results:
        print(_table(res["n"], res["peers"]))
        print()
    outdir = HERE / "results"
    outdir.mkdir(exist_ok=True)
    path = outdir / f"bench_glmm_{time.strftime('%Y%m%d_%H%M%S')}.json"
    path.write_text(json.dumps({"formula": FORMULA, "truth": TRUTH, "runs": results}, indent=1))
    print(f"raw numbers: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
