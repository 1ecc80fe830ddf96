"""Simulation-based power: run the real analysis on many simulated studies.

:func:`simulate_power` draws ``n_reps`` studies from a :class:`~coevidence.SimulationSpec`
(replicate ``i`` uses the ``i``-th child of ``numpy.random.SeedSequence(seed).spawn(n_reps)``, so
the results do not depend on the backend or on the order replicates finish), runs the analysis
on each and summarises power (with its Monte Carlo standard error), bias, RMSE, confidence
interval coverage and the number of failed fits (failed replicates are counted, never dropped).

Backends: ``"serial"``; ``"processes"`` (a :class:`concurrent.futures.ProcessPoolExecutor`
with the ``spawn`` start method); ``"dask"`` (a ``distributed.Client`` passed as ``client=``, a
scheduler address as ``scheduler=``, or a ``LocalCluster`` on 127.0.0.1 with the dashboard off).
With ``out=`` every finished replicate is written to Parquet files in that folder as the run
goes; running the same call again resumes where it stopped (checksummed parts, see
``coevidence.design._store``). Workers of the ``processes`` backend exit when the parent dies.
"""

from __future__ import annotations

import math
import os
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from coevidence.design._analyses import ClusterMeans, Growth, resolve_analysis
from coevidence.exceptions import MissingExtraError, OptionError
from coevidence.models._shared.options import keyword_only
from coevidence.results.base import TIDY_COLUMNS, ResultBase

__all__ = ["SimulationPowerResult", "simulate_power", "analytic_power", "REPLICATE_COLUMNS",
           "ClusterMeans", "Growth"]

#: Columns of the per-replicate table (``result.replicates`` and the Parquet files).
REPLICATE_COLUMNS = ("rep", "estimate", "std_error", "df", "p_value", "conf_low", "conf_high",
                     "failed", "error", "warning")

Backend = Literal["serial", "processes", "dask"]


# --------------------------------------------------------------------------- one replicate
def run_replicate(spec: Any, analysis: Callable[[Any], Mapping[str, Any]],
                  seed: np.random.SeedSequence, rep: int) -> dict[str, Any]:
    """Simulate study ``rep`` with ``seed`` and analyse it; failures are recorded, not raised."""
    from coevidence.design.simulate import simulate_study

    row: dict[str, Any] = {"rep": int(rep), "estimate": np.nan, "std_error": np.nan,
                           "df": np.nan, "p_value": np.nan, "conf_low": np.nan,
                           "conf_high": np.nan, "failed": False, "error": "", "warning": ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # recorded by the analysis where it matters
            study = simulate_study(spec, seed=seed)
            out = analysis(study)
        for k in ("estimate", "std_error", "df", "p_value", "conf_low", "conf_high"):
            if k in out and out[k] is not None:
                row[k] = float(out[k])
        row["warning"] = str(out.get("warning", "") or "")
        if not (math.isfinite(row["estimate"]) and math.isfinite(row["p_value"])):
            row["failed"] = True
            row["error"] = "analysis returned a non-finite estimate or p-value"
    except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
        row["failed"] = True
        row["error"] = f"{type(exc).__name__}: {exc}"[:500]
    return row


def _run_chunk(spec: Any, analysis: Any, seeds: list[np.random.SeedSequence],
               reps: list[int]) -> list[dict[str, Any]]:
    return [run_replicate(spec, analysis, s, r) for s, r in zip(seeds, reps, strict=True)]


# --------------------------------------------------------------------------- result
class SimulationPowerResult(ResultBase):
    """Summary of a simulation-based power analysis (immutable).

    Attributes
    ----------
    power : float
        Share of successful replicates with ``p_value < alpha``.
    mc_se : float
        Monte Carlo standard error of ``power``: ``sqrt(power (1 - power) / n_ok)``.
    power_all : float
        Rejections over all replicates (failed fits counted as non-rejections).
    bias, rmse, coverage : float
        Of the estimate against ``truth`` (NaN when the truth is unknown); coverage is the
        share of confidence intervals containing the truth.
    mean_std_error, sd_estimate : float
        Average reported standard error and the empirical SD of the estimates.
    n_reps, n_ok, n_failed, n_warned : int
        Replicates run, succeeded, failed (never dropped silently) and with a fit warning.
    truth : float
    analytic : DesignResult or None
        An analytic power for comparison, when given.
    replicates : DataFrame
        One row per replicate (:data:`REPLICATE_COLUMNS`).

    Examples
    --------
    >>> import coevidence as cv
    >>> from coevidence.design.simulate import OutcomeSpec
    >>> spec = cv.SimulationSpec(n_providers=2, orgs_per_provider=6, respondents_per_org=2,
    ...     n_waves=2, assignment="organization", encounter_logs=False, responses="scores",
    ...     outcomes=[OutcomeSpec(arm_effect=0.5)])
    >>> res = cv.simulate_power(spec, "cluster_means", n_reps=4, seed=1)
    >>> res.n_reps, res.n_failed
    (4, 0)
    """

    def __init__(self, *, replicates: pd.DataFrame, alpha: float, truth: float,
                 analysis: str, backend: str, seconds: float, seed: Any,
                 analytic: Any = None) -> None:
        reps = replicates.sort_values("rep", kind="stable").reset_index(drop=True)
        self._replicates = reps
        self.alpha = float(alpha)
        self.truth = float(truth)
        self.analysis = analysis
        self.backend = backend
        self.seconds = float(seconds)
        self.seed = seed
        self.analytic = analytic
        ok = reps.loc[~reps["failed"]]
        self.n_reps = int(len(reps))
        self.n_failed = int(reps["failed"].sum())
        self.n_ok = self.n_reps - self.n_failed
        self.n_warned = int((ok["warning"].astype(str) != "").sum())
        reject = (ok["p_value"] < self.alpha).to_numpy()
        self.power = float(reject.mean()) if self.n_ok else float("nan")
        self.mc_se = (float(math.sqrt(self.power * (1 - self.power) / self.n_ok))
                      if self.n_ok else float("nan"))
        self.power_all = float(reject.sum() / self.n_reps) if self.n_reps else float("nan")
        est = ok["estimate"].to_numpy(float)
        self.sd_estimate = float(est.std(ddof=1)) if self.n_ok > 1 else float("nan")
        self.mean_std_error = float(ok["std_error"].mean()) if self.n_ok else float("nan")
        if math.isfinite(self.truth) and self.n_ok:
            err = est - self.truth
            self.bias = float(err.mean())
            self.rmse = float(math.sqrt(np.mean(err ** 2)))
            cover = (ok["conf_low"] <= self.truth) & (self.truth <= ok["conf_high"])
            self.coverage = float(cover.mean())
        else:
            self.bias = self.rmse = self.coverage = float("nan")
        self._freeze()

    @property
    def replicates(self) -> pd.DataFrame:
        """Per-replicate results (a copy)."""
        return self._replicates.copy()

    def tidy(self, conf_level: float = 0.95) -> pd.DataFrame:
        """Rows ``power``, ``bias``, ``rmse``, ``coverage`` with Monte Carlo standard errors."""
        from scipy import stats

        z = stats.norm.isf((1 - conf_level) / 2)
        n = max(self.n_ok, 1)
        cov_se = math.sqrt(self.coverage * (1 - self.coverage) / n) if math.isfinite(
            self.coverage) else float("nan")
        rows = [
            ("power", self.power, self.mc_se),
            ("bias", self.bias, self.sd_estimate / math.sqrt(n)),
            ("rmse", self.rmse, float("nan")),
            ("coverage", self.coverage, cov_se),
        ]
        out = []
        for term, est, se in rows:
            lo, hi = (est - z * se, est + z * se) if math.isfinite(se) else (np.nan, np.nan)
            out.append([term, est, se, np.nan, float(self.n_ok - 1), np.nan, lo, hi])
        return pd.DataFrame(out, columns=list(TIDY_COLUMNS))

    def glance(self) -> pd.DataFrame:
        """One row: power, mc_se, analytic_power, truth, n_reps, n_ok, n_failed, backend, ..."""
        return pd.DataFrame([{
            "power": self.power, "mc_se": self.mc_se, "power_all": self.power_all,
            "analytic_power": (float(self.analytic.value) if self.analytic is not None
                               else np.nan),
            "truth": self.truth, "bias": self.bias, "rmse": self.rmse,
            "coverage": self.coverage, "n_reps": self.n_reps, "n_ok": self.n_ok,
            "n_failed": self.n_failed, "n_warned": self.n_warned, "alpha": self.alpha,
            "analysis": self.analysis, "backend": self.backend, "seconds": self.seconds,
        }])

    def summary(self) -> str:
        """Plain-text report."""
        lines = [
            f"Simulation-based power: {self.n_reps} replicates ({self.n_ok} analysed, "
            f"{self.n_failed} failed fits, {self.n_warned} with fit warnings)",
            f"Estimator: {self.analysis} on each simulated study (seed {self.seed})",
            "Covariance type: as reported by the analysis (model-based unless it says otherwise)",
            "df method: as reported by the analysis per replicate",
            f"Power at alpha = {self.alpha:g}: {self.power:.3f} (Monte Carlo SE {self.mc_se:.3f});"
            f" counting failed fits as non-rejections: {self.power_all:.3f}",
        ]
        if self.analytic is not None:
            lines.append(f"Analytic approximation ({self.analytic.design}): "
                         f"{float(self.analytic.value):.3f}")
        if math.isfinite(self.truth):
            lines.append(f"Truth {self.truth:.4g}: bias {self.bias:.4g}, RMSE {self.rmse:.4g}, "
                         f"CI coverage {self.coverage:.3f}; mean SE {self.mean_std_error:.4g} "
                         f"vs SD of estimates {self.sd_estimate:.4g}")
        if self.n_failed:
            errs = self._replicates.loc[self._replicates["failed"], "error"].value_counts()
            lines.append("Failures: " + "; ".join(f"{n} x {e}" for e, n in errs.head(3).items()))
        lines.append(f"Backend: {self.backend}, {self.seconds:.1f} s")
        return "\n".join(lines)


# --------------------------------------------------------------------------- analytic twin
def analytic_power(spec: Any, analysis: str = "growth", alpha: float = 0.05,
                   outcome: str | None = None) -> Any:
    """The analytic power that approximates a simulation of ``spec`` (first outcome by default).

    ``analysis="cluster_means"``: the outcome at the last wave, cluster-randomised:
    :func:`coevidence.power` ``("cra3", ...)`` when providers are randomised (K providers, J
    organisations per provider, n respondents) or ``("cra2", ...)`` when organisations are
    (provider variance folded into the organisation level). Variance components at the last
    wave position ``t`` include the slope variances times ``t**2``; the measurement error of
    the item mean (from ``reliability``) is level-1 variance; the effect is the true mean
    difference in SD units.

    ``analysis="growth"``: ``("slopes_cra2", ...)`` with the randomised units as clusters:
    cluster slope variance ``tau_pi`` (provider slope variance), person-level slope variance
    ``tau_beta`` (organisation slopes) and occasion variance ``sigma2`` (residual plus
    measurement error, over respondents per organisation). Exact for the two-stage analysis of
    balanced, complete, unrounded data; an approximation for the mixed model and whenever
    items are rounded, scores clipped or respondents drop out.

    Examples
    --------
    >>> import coevidence as cv
    >>> spec = cv.SimulationSpec(n_providers=10, orgs_per_provider=4, n_waves=4)
    >>> round(analytic_power(spec, "growth").value, 3) > 0
    True
    """
    from coevidence.design.analytic import power as _power
    from coevidence.design.simulate import SimulationSpec, true_effects

    if not isinstance(spec, SimulationSpec):
        spec = SimulationSpec.model_validate(spec)
    o = spec.outcomes[0] if outcome is None else next(
        x for x in spec.outcomes if x.measure_id == outcome)
    if analysis == "stepped_wedge":
        return _stepped_wedge_twin(spec, o, alpha)
    te = true_effects(spec)[o.measure_id]
    t_last = spec.n_waves - 1
    err = o.error_variance()
    level1 = o.sd_respondent ** 2 + o.sd_residual ** 2 + err
    org = o.sd_org_intercept ** 2 + (o.sd_org_slope * t_last) ** 2
    prov = o.sd_provider ** 2 + (o.sd_provider_slope * t_last) ** 2
    if analysis == "cluster_means":
        total = level1 + org + prov
        es = float(te["difference_by_wave"][-1]) / math.sqrt(total)
        if spec.assignment == "provider":
            return _power("cra3", es=es, rho3=prov / total, rho2=org / total,
                          n=spec.respondents_per_org, J=spec.orgs_per_provider,
                          K=spec.n_providers, alpha=alpha)
        return _power("cra2", es=es, rho2=(org + prov) / total, n=spec.respondents_per_org,
                      J=spec.n_providers * spec.orgs_per_provider, alpha=alpha)
    if analysis not in ("growth", "growth_two_stage"):
        raise OptionError("analysis must be 'growth', 'cluster_means' or 'stepped_wedge', "
                         f"got {analysis!r}")
    sigma2 = (o.sd_residual ** 2 + err) / spec.respondents_per_org
    times = tuple(float(x) for x in range(spec.n_waves))
    es = float(te["slope_difference"])
    if spec.assignment == "provider":
        return _power("slopes_cra2", es=es, J=spec.n_providers, n=spec.orgs_per_provider,
                      times=times, sigma2=sigma2, tau_pi=o.sd_provider_slope ** 2,
                      tau_beta=o.sd_org_slope ** 2, alpha=alpha)
    return _power("slopes_cra2", es=es, J=spec.n_providers * spec.orgs_per_provider, n=1,
                  times=times, sigma2=sigma2, tau_pi=0.0,
                  tau_beta=o.sd_org_slope ** 2 + o.sd_provider_slope ** 2, alpha=alpha)


def _stepped_wedge_twin(spec: Any, o: Any, alpha: float) -> Any:
    """Hussey & Hughes power for a stepped-wedge spec (cluster-period means of the rollout unit).

    Respondents are followed over time, so their intercepts (and the organisation and provider
    intercepts) are constant within a cluster: between-cluster variance ``tau2``; the occasion
    residual and measurement error of the cluster-period mean are ``sigma2``.
    """
    from coevidence.design.analytic import power as _power

    if spec.assignment not in ("stepped_wedge", "staggered"):
        raise OptionError("analysis 'stepped_wedge' needs a stepped_wedge or staggered spec")
    steps = spec.n_steps or spec.n_waves - 1
    m = spec.respondents_per_org
    occ = o.sd_residual ** 2 + o.error_variance()
    if spec.rollout_unit == "provider":
        k = spec.orgs_per_provider
        J, size = spec.n_providers, k * m
        tau2 = o.sd_provider ** 2 + o.sd_org_intercept ** 2 / k + o.sd_respondent ** 2 / size
    else:
        J, size = spec.n_providers * spec.orgs_per_provider, m
        tau2 = o.sd_provider ** 2 + o.sd_org_intercept ** 2 + o.sd_respondent ** 2 / m
    sigma2 = occ / size
    scale = tau2 + sigma2 * size
    return _power("stepped_wedge", es=o.arm_effect / math.sqrt(scale), J=J, steps=steps,
                  n=size, rho2=tau2 / scale, baseline_periods=spec.n_waves - steps, alpha=alpha)


# --------------------------------------------------------------------------- parquet store
def _require_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError as exc:  # pragma: no cover - exercised by monkeypatching in tests
        raise MissingExtraError("pyarrow", "io", "write simulation results to Parquet") from exc


def _Store(out: Path, identity: dict[str, Any]) -> Any:
    """The checksummed Parquet store of one run (see ``coevidence.design._store``)."""
    from coevidence.design._store import Store

    _require_pyarrow()
    return Store(Path(out), identity, REPLICATE_COLUMNS, _frame)


def _frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows), columns=list(REPLICATE_COLUMNS))
    return frame.astype({"rep": "int64", "estimate": "float64", "std_error": "float64",
                         "df": "float64", "p_value": "float64", "conf_low": "float64",
                         "conf_high": "float64", "failed": "bool", "error": "object",
                         "warning": "object"})


# --------------------------------------------------------------------------- main entry
@keyword_only(2, ("n_reps", "seed", "backend", "client", "scheduler", "out", "progress"))
def simulate_power(
    spec: Any,
    analysis: Callable[[Any], Mapping[str, Any]] | str | None = None,
    *,
    n_reps: int = 200,
    seed: int = 0,
    backend: Backend = "serial",
    client: Any = None,
    scheduler: str | None = None,
    out: str | Path | None = None,
    progress: bool | None = None,
    alpha: float = 0.05,
    truth: float | None = None,
    analytic: Any = None,
    n_workers: int | None = None,
    chunk_size: int | None = None,
) -> SimulationPowerResult:
    """Estimate power by simulating studies from ``spec`` and analysing each one.

    Parameters
    ----------
    spec : SimulationSpec or dict
        The study to simulate (a dict or a YAML-loaded mapping is validated into a spec).
    analysis : callable, str or None
        ``analysis(study) -> {"estimate", "std_error", "p_value", "conf_low", "conf_high"[,
        "df"]}``, or a built-in: ``"growth"`` (3-level growth model with
        :func:`coevidence.fit_growth`), ``"growth_two_stage"`` (per-cluster OLS slopes, t test),
        ``"cluster_means"`` (cluster-mean t test at the last wave, a CRA2 analysis). ``None``:
        ``"growth"`` with three or more waves, else ``"cluster_means"``. Must be picklable for
        the ``processes`` and ``dask`` backends (a module-level function or class).
    n_reps : int
        Number of simulated studies.
    seed : int
        Root seed; replicate ``i`` uses ``SeedSequence(seed).spawn(n_reps)[i]``.
    backend : {"serial", "processes", "dask"}
    client : distributed.Client, optional
        Dask client to use (``backend="dask"``).
    scheduler : str, optional
        Dask scheduler address (``"tcp://host:8786"``) when no client is given; without
        either a ``LocalCluster`` on 127.0.0.1 (dashboard off) is started and closed.
    out : path, optional
        Folder for incremental results (``manifest.json`` and Parquet parts under
        ``replicates/``, readable with ``pandas.read_parquet(out / "replicates")``); a rerun
        with the same spec, analysis and seed
        resumes (finished replicates are read back, not recomputed). Parts are committed
        atomically under their sha256 and carry the run's plan and seed in their Parquet
        metadata; on resume a corrupt, truncated or foreign part is moved to
        ``out/quarantine/`` with a :class:`~coevidence.exceptions.ReplicateStoreWarning` and its
        replicates are run again. A folder of a different run (seed, spec or analysis, from
        the manifest or, when it is missing, from the parts) raises
        :class:`~coevidence.exceptions.ModelSpecificationError`. Needs pyarrow
        (``pip install 'coevidence[io]'``).
    progress : bool, optional
        tqdm progress bar (``tqdm.auto``: a widget in notebooks with the ``jupyter`` extra,
        ``pip install ".[jupyter]"``); default on when stderr is a terminal or the call runs
        in a Jupyter kernel, off otherwise (logs, CI).
    alpha : float
        Significance level for counting rejections.
    truth : float, optional
        True value of the estimand (default: from the built-in analysis and the spec).
    analytic : DesignResult, optional
        An analytic power (e.g. ``coevidence.power("cra2", ...)``) to report alongside.
    n_workers : int, optional
        Worker processes (``processes``; a started ``LocalCluster``); default 2.
    chunk_size : int, optional
        Replicates per task for ``processes``/``dask`` (larger chunks cut overhead, and a
        worker refits the mixed-model analyses of replicates that share a design, see
        ``coevidence.models.mixed.refit``). Default: about four tasks per worker, at most 50
        replicates each (``serial``: 1). Results do not depend on it.

    Returns
    -------
    SimulationPowerResult

    Examples
    --------
    >>> import coevidence as cv
    >>> from coevidence.design.simulate import OutcomeSpec
    >>> spec = cv.SimulationSpec(n_providers=2, orgs_per_provider=6, respondents_per_org=2,
    ...     n_waves=2, assignment="organization", encounter_logs=False, responses="scores",
    ...     outcomes=[OutcomeSpec(arm_effect=0.5)])
    >>> res = cv.simulate_power(spec, "cluster_means", n_reps=5, seed=3)
    >>> 0 <= res.power <= 1
    True
    """
    from coevidence.design.simulate import SimulationSpec

    if not isinstance(spec, SimulationSpec):
        spec = SimulationSpec.model_validate(spec)
    if isinstance(n_reps, bool) or not isinstance(n_reps, int | np.integer) or n_reps < 1:
        raise OptionError(f"n_reps must be a positive integer, got {n_reps!r}")
    if backend not in ("serial", "processes", "dask"):
        raise OptionError(f"backend must be 'serial', 'processes' or 'dask', got {backend!r}")
    if not 0 < alpha < 1:
        raise OptionError(f"alpha must lie in (0, 1), got {alpha!r}")
    if chunk_size is not None and (isinstance(chunk_size, bool) or chunk_size < 1):
        raise OptionError(f"chunk_size must be at least 1, got {chunk_size!r}")
    analysis = resolve_analysis(analysis, spec)
    if backend == "processes":
        _check_spawnable(analysis)
    name = getattr(analysis, "name", getattr(analysis, "__name__", type(analysis).__name__))
    if truth is None:
        try:
            truth = analysis.truth(spec) if hasattr(analysis, "truth") else float("nan")
        except ValueError:
            truth = float("nan")
    children = np.random.SeedSequence(seed).spawn(int(n_reps))
    store = None
    done = _frame([])
    if out is not None:
        store = _Store(Path(out), {"spec": spec.model_dump(mode="json"),
                                   "analysis": _analysis_id(analysis),
                                   "seed": seed, "n_reps": int(n_reps)})
        done = store.done()
        done = done[done["rep"] < n_reps]
    finished = set(done["rep"].tolist())
    todo = [i for i in range(int(n_reps)) if i not in finished]
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    pbar = _progress_bar(progress, int(n_reps), initial=int(n_reps) - len(todo), desc=name)
    buffer: list[dict[str, Any]] = []
    last_flush = time.perf_counter()

    def collect(batch: list[dict[str, Any]]) -> None:
        nonlocal last_flush
        rows.extend(batch)
        buffer.extend(batch)
        if pbar is not None:
            pbar.update(len(batch))
        if store is not None and (len(buffer) >= max(1, n_reps // 20)
                                  or time.perf_counter() - last_flush > 5):
            store.write(buffer)
            buffer.clear()
            last_flush = time.perf_counter()

    if chunk_size is None:
        chunk_size = _auto_chunk_size(len(todo), backend, n_workers, client)
    chunks = [todo[i:i + chunk_size] for i in range(0, len(todo), chunk_size)]
    try:
        if backend == "serial":
            for reps in chunks:
                collect(_run_chunk(spec, analysis, [children[r] for r in reps], reps))
        elif backend == "processes":
            _run_processes(spec, analysis, children, chunks, collect, n_workers)
        else:
            _run_dask(spec, analysis, children, chunks, collect, client, scheduler, n_workers)
    finally:
        if store is not None:
            store.write(buffer)
        if pbar is not None:
            pbar.close()
    seconds = time.perf_counter() - started
    frame = pd.concat([done, _frame(rows)], ignore_index=True) if len(done) else _frame(rows)
    return SimulationPowerResult(replicates=frame, alpha=alpha, truth=float(truth),
                                 analysis=name, backend=backend, seconds=seconds, seed=seed,
                                 analytic=analytic)


def _auto_chunk_size(n_todo: int, backend: str, n_workers: int | None, client: Any) -> int:
    """About four tasks per worker (balance against per-task overhead), at most 50 each."""
    if backend == "serial":
        return 1
    workers = n_workers or 2
    if backend == "processes":
        workers = n_workers or min(2, os.cpu_count() or 1)
    elif client is not None:
        try:
            workers = max(1, len(client.scheduler_info().get("workers", {})))
        except Exception:  # noqa: BLE001 - a client that cannot say: assume two
            workers = n_workers or 2
    return max(1, min(50, math.ceil(n_todo / (4 * workers))))


def _check_spawnable(analysis: Any) -> None:
    """Worker processes are spawned: an analysis defined interactively cannot be imported there."""
    import __main__

    mod = getattr(analysis, "__module__", type(analysis).__module__)
    if mod == "__main__" and not getattr(__main__, "__file__", None):
        raise OptionError(
            "backend='processes' needs an analysis that worker processes can import (defined "
            "in a module, not in a notebook or interactive session); use backend='dask' (which "
            "pickles interactive functions) or move the analysis into a .py module")


def _analysis_id(analysis: Any) -> str:
    if hasattr(analysis, "__dataclass_fields__"):
        return repr(analysis)
    mod = getattr(analysis, "__module__", type(analysis).__module__)
    qual = getattr(analysis, "__qualname__", type(analysis).__qualname__)
    return f"{mod}.{qual}"


def _in_notebook() -> bool:
    """True inside a Jupyter (ZMQ) kernel, where tqdm.auto draws a widget."""
    shell = sys.modules.get("IPython")
    ip = getattr(shell, "get_ipython", lambda: None)() if shell is not None else None
    return type(ip).__name__ == "ZMQInteractiveShell"


def _progress_bar(progress: bool | None, total: int, initial: int, desc: str) -> Any:
    if progress is None:  # a terminal or a notebook shows the bar; logs and CI do not
        progress = bool(getattr(sys.stderr, "isatty", lambda: False)()) or _in_notebook()
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=f"simulate_power[{desc}]", unit="rep")


#: One BLAS/OpenMP thread per worker process: the parallelism is across replicates.
_ONE_THREAD = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def _worker_init(parent: int) -> None:
    """Make a pool worker die with the parent process (no orphaned workers after a kill).

    Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``; everywhere: a daemon thread that exits the
    worker as soon as its parent process is gone (``os.getppid()`` changes).
    """
    import signal
    import threading

    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
        except Exception:  # noqa: BLE001 - the watchdog below still applies
            pass
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)

    def watchdog() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watchdog, name="coevidence-parent-watchdog", daemon=True).start()


def _run_processes(spec, analysis, children, chunks, collect, n_workers) -> None:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    if not chunks:
        return
    workers = n_workers or min(2, os.cpu_count() or 1)
    saved = {k: os.environ.get(k) for k in _ONE_THREAD}
    os.environ.update(_ONE_THREAD)  # inherited by the spawned workers only
    try:
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                   initializer=_worker_init, initargs=(os.getpid(),))
        futures = [pool.submit(_run_chunk, spec, analysis, [children[r] for r in reps], reps)
                   for reps in chunks]
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    with pool:
        try:
            for fut in as_completed(futures):
                collect(fut.result())
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def _run_dask(spec, analysis, children, chunks, collect, client, scheduler, n_workers) -> None:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError as exc:
        raise MissingExtraError("distributed", "dask", "run simulations on Dask") from exc
    if not chunks:
        return
    own_client = own_cluster = None
    if client is None:
        if scheduler is not None:
            client = own_client = Client(scheduler)
        else:
            own_cluster = LocalCluster(n_workers=n_workers or 2, threads_per_worker=1,
                                       processes=True, host="127.0.0.1",
                                       dashboard_address=None, env=dict(_ONE_THREAD))
            client = own_client = Client(own_cluster)
    token = uuid.uuid4().hex[:8]
    try:
        futures = [client.submit(_run_chunk, spec, analysis, [children[r] for r in reps], reps,
                                 key=f"coevidence-sim-{token}-{reps[0]}", pure=False, retries=3)
                   for reps in chunks]
        try:
            for fut in as_completed(futures):
                collect(fut.result())
        except BaseException:
            client.cancel(futures)
            raise
    finally:
        if own_client is not None:
            own_client.close()
        if own_cluster is not None:
            own_cluster.close()
