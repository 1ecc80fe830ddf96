"""``fit_mixed``: lme4-style linear mixed models with lmerTest-style inference.

Examples
--------
>>> import coevidence as cv
>>> from coevidence.models.mixed.datasets import load_dataset
>>> res = cv.fit_mixed("reaction ~ days + (days | subject)", load_dataset("sleepstudy"))
>>> res.tidy()[["term", "estimate"]].round(3).values.tolist()
[['(Intercept)', 251.405], ['days', 10.467]]
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from coevidence.exceptions import (
    BoundaryFitWarning,
    FitWarning,
    ModelSpecificationError,
    OptionError,
)
from coevidence.models._shared.options import keyword_only
from coevidence.models.mixed._engine import EngineFit, MixedProblem
from coevidence.models.mixed.formula import FormulaInfo, build_problem
from coevidence.models.mixed.results import MixedDiagnostics, MixedResult, _Inference

__all__ = ["fit_mixed"]

DF_METHODS = ("satterthwaite", "kenward_roger", "residual", "z")
COV_TYPES = ("model", "cr2")
ENGINES = ("auto", "fast", "statsmodels", "sparse")
SINGULAR_TOL = 1e-4  # lme4's isSingular tolerance on theta
BOUNDARY_REL = 1e-6  # variance / outcome variance below this is "at zero"
CORR_TOL = 1e-6  # |corr| > 1 - CORR_TOL is "at +-1"
GRAD_TOL = 2e-3  # lme4's check.conv.grad tolerance on max |H^-1 g|


def _fast_engine() -> tuple[object | None, str]:
    try:
        from coevidence.models.mixed._fast import FastEngine
    except ImportError as exc:
        return None, f"fast engine not available ({exc})"
    return FastEngine(), ""


def _choose_engine(problem: MixedProblem, engine: str):
    from coevidence.models.mixed._sm import StatsmodelsEngine

    if engine not in ENGINES:
        raise OptionError(f"engine must be one of {ENGINES}, got {engine!r}")
    note = ""
    if engine in ("auto", "fast"):
        fast, note = _fast_engine()
        if fast is not None:
            ok, reason = fast.supports(problem)
            if ok:
                return fast, ""
            note = f"fast engine does not support this model: {reason}"
            if engine == "fast" or problem.weights is not None:
                raise ModelSpecificationError(note + (
                    " (weighted fits need it)" if problem.weights is not None else ""))
        elif engine == "fast" or problem.weights is not None:
            raise ModelSpecificationError(note)
    if engine == "sparse":
        return _sparse_engine(problem, "")
    sm = StatsmodelsEngine()
    ok, reason = sm.supports(problem)
    if not ok:
        if engine == "auto":  # crossed / partially crossed factors: the sparse engine
            return _sparse_engine(problem, note)
        extra = f" ({note})" if note else ""
        raise ModelSpecificationError(reason + extra)
    return sm, note


def _sparse_engine(problem: MixedProblem, note: str):
    from coevidence.models.mixed._crossed import SparseEngine

    sparse = SparseEngine()
    ok, reason = sparse.supports(problem)
    if not ok:
        extra = f" ({note})" if note else ""
        raise ModelSpecificationError(f"sparse engine cannot fit this model: {reason}{extra}")
    return sparse, note


@keyword_only(2, ("reml", "engine", "df_method", "cov_type", "cluster", "conf_level"))
def fit_mixed(
    formula: str,
    data: pd.DataFrame,
    *,
    reml: bool = True,
    engine: str = "auto",
    df_method: str = "satterthwaite",
    cov_type: str | None = None,
    cluster: str | None = None,
    conf_level: float = 0.95,
    family=None,
    link: str | None = None,
    nagq: int = 1,
    weights=None,
    weights_scale: str = "mean",
    offset=None,
    start: dict | None = None,
) -> MixedResult:
    """Fit a linear mixed model written in lme4 syntax (or, with ``family=``, a GLMM).

    Parameters
    ----------
    formula : str
        ``"y ~ time * ta_model + (1 + time | org_id) + (1 | provider_id)"``; nested
        ``(1 | provider_id/org_id)``, uncorrelated ``(1 | g) + (0 + time | g)`` or ``||``.
    data : pandas.DataFrame
        Not modified. Rows with missing values in used columns are dropped with a
        :class:`~coevidence.exceptions.MissingDataWarning` giving the count.
    reml : bool, default True
        REML (as ``lmer``'s default) or maximum likelihood.
    engine : {"auto", "fast", "statsmodels", "sparse"}
        ``auto`` uses coevidence's fast engine when it is installed and supports the model
        (nested or single grouping factors), else statsmodels MixedLM, else (crossed or
        partially crossed factors) the sparse engine, which fits any structure on the full
        sparse random-effects system. A model the chosen engine cannot fit exactly raises
        :class:`~coevidence.exceptions.ModelSpecificationError`.
    df_method : {"satterthwaite", "kenward_roger", "residual", "z"}
        Denominator df for t tests and CIs: lmerTest's Satterthwaite (default), pbkrtest's
        Kenward-Roger (REML only; also adjusts the covariance), n - p, or normal (z).
    cov_type : {"model", "cr2"}, optional
        Model-based covariance (the default without weights) or Bell-McCaffrey CR2
        cluster-robust (the default, and the only choice, with ``weights``); with CR2 the df
        are the BM Satterthwaite df, whatever ``df_method`` says, and ``df_method`` is reported
        as ``"bell_mccaffrey"``.
    cluster : str, optional
        Cluster column for ``cov_type="cr2"``; default: the coarsest grouping factor. Every
        random-effect factor must be nested in the clusters.
    conf_level : float, default 0.95
    weights : str or array_like, optional
        Linear models: sampling or propensity weights of the groups of the *finest* grouping
        factor (one value per group, repeated on its rows; e.g. organisation weights from
        :func:`coevidence.propensity_weights`). A group with weight ``w`` counts as ``w``
        copies of itself (pseudo-likelihood; with integer weights exactly ``lmer`` on the
        replicated data); weights are scaled to mean 1 and inference is CR2 by cluster. Not
        lme4's precision weights: weights that vary within a group are refused. See
        :mod:`coevidence.models.mixed._weights` and the Weighting page of the docs. With
        ``family=``: prior weights or binomial trials, as ``glmer``.
    weights_scale : {"mean", "none"}, default "mean"
        Linear models with ``weights``: scale the group weights to mean 1 (results then do
        not depend on the weights' scale), or use them as given (replication counts).
    family : {"binomial", "poisson"} or R-style ``"binomial(link = 'probit')"``, optional
        Fit a generalised linear mixed model (lme4's ``glmer``) instead: see
        :func:`coevidence.models.mixed.glmm.fit_glmm` for ``link``, ``nagq`` (0, 1 = Laplace,
        > 1 adaptive Gauss-Hermite quadrature), ``weights`` (prior weights or binomial trials),
        ``offset`` and ``start``. ``cbind(successes, failures)`` on the left of the formula and
        ``offset(expr)`` terms on the right are understood. The options ``reml``, ``engine``,
        ``df_method``, ``cov_type`` and ``cluster`` are for linear models and are refused.
        Returns a :class:`~coevidence.models.mixed.glmm_results.GlmmResult`.

    Returns
    -------
    MixedResult

    Raises
    ------
    ModelSpecificationError
        Unreadable formula, unknown column, or a model the engine cannot fit exactly; a
        constant (zero-variance) outcome, an outcome missing in every row, or ``inf``/``-inf``
        in the outcome or a numeric covariate (the message names the column, the count and the
        first 0-based rows).
    ConvergenceFailure
        No optimizer attempt produced a usable fit.

    Warns
    -----
    BoundaryFitWarning
        Singular fit (a variance at 0 or a correlation at +-1).
    FitWarning
        Non-convergence or a Hessian that is not positive definite.
    DesignDfWarning
        A term that varies only between clusters of some level (a grouping factor of the model,
        ``cluster``, or a label column of ``data`` in which the model's groups are nested), such
        as the arm of a study randomised by provider or its interaction with time, is tested with
        df far above the between-cluster df: the message names the level, the cluster count,
        the df used and the fix.

    Notes
    -----
    Results do not depend on the outcome's units: the Satterthwaite Hessian and Jacobian are
    taken in (theta, sigma / sd(y)), so an outcome scaled by ``1e-8`` or ``1e8`` gives the same
    df (to finite-difference roundoff, about 1e-6 relative) and the same Hessian check.

    Examples
    --------
    >>> from coevidence.models.mixed.datasets import load_dataset
    >>> res = fit_mixed("reaction ~ days + (days | subject)", load_dataset("sleepstudy"))
    >>> round(float(res.tidy()["df"][1]), 2)
    17.0
    """
    if weights_scale != "mean" and (weights is None or family is not None):
        raise OptionError("weights_scale= applies to a linear model with weights= only")
    if family is not None:
        from coevidence.models.mixed._design import design_guard

        res = _fit_glmm_from_mixed(formula, data, reml=reml, engine=engine,
                                   df_method=df_method, cov_type=cov_type, cluster=cluster,
                                   conf_level=conf_level, family=family, link=link, nagq=nagq,
                                   weights=weights, offset=offset, start=start)
        design_guard(res, data, stacklevel=3)
        return res
    glmm_only = {"link": link, "offset": offset, "start": start}
    given = [k for k, v in glmm_only.items() if v is not None] + (["nagq"] if nagq != 1 else [])
    if given:
        raise OptionError(f"fit_mixed: {', '.join(given)} only apply with family= (a GLMM)")
    res = _fit_mixed(formula, data, reml=reml, engine=engine, df_method=df_method,
                     cov_type=cov_type, cluster=cluster, conf_level=conf_level, stacklevel=4,
                     weights=weights, weights_scale=weights_scale)
    from coevidence.models.mixed._design import design_guard

    design_guard(res, data, extra=[cluster] if cluster else (), stacklevel=3)
    return res


def _fit_glmm_from_mixed(formula, data, *, reml, engine, df_method, cov_type, cluster,
                         conf_level, **glmm):
    """``fit_mixed(..., family=)``: refuse the linear-model options, then ``fit_glmm``."""
    from coevidence.models.mixed.glmm import fit_glmm

    lmm_only = {"reml": (reml, True), "engine": (engine, "auto"),
                "df_method": (df_method, "satterthwaite"), "cov_type": (cov_type, "model"),
                "cluster": (cluster, None)}
    given = [f"{k}={v!r}" for k, (v, default) in lmm_only.items()
             if v != default and not (k == "cov_type" and v is None)]
    if given:
        raise OptionError(
            f"fit_mixed with family=: {', '.join(given)} would be ignored (GLMMs are fitted by "
            "maximum likelihood on the fast engine with z tests, as glmer)")
    return fit_glmm(formula, data, conf_level=conf_level, **glmm)


def _fit_mixed(
    formula: str,
    data: pd.DataFrame,
    reml: bool = True,
    engine: str = "auto",
    df_method: str = "satterthwaite",
    cov_type: str | None = None,
    cluster: str | None = None,
    conf_level: float = 0.95,
    stacklevel: int = 3,
    weights=None,
    weights_scale: str = "mean",
) -> MixedResult:
    """:func:`fit_mixed` without the design-df guard (callers run it themselves)."""
    if cov_type is None:
        cov_type = "model" if weights is None else "cr2"
    if df_method not in DF_METHODS:
        raise OptionError(f"df_method must be one of {DF_METHODS}, got {df_method!r}")
    if cov_type not in COV_TYPES:
        raise OptionError(f"cov_type must be one of {COV_TYPES}, got {cov_type!r}")
    if not 0 < conf_level < 1:
        raise OptionError(f"conf_level must be in (0, 1), got {conf_level!r}")
    if df_method == "kenward_roger" and not reml:
        raise ModelSpecificationError("Kenward-Roger df are defined for REML fits; use reml=True")
    if cluster is not None and cov_type != "cr2":
        raise OptionError("cluster= is only used with cov_type='cr2'")
    if weights is None:
        problem, info = build_problem(formula, data, reml=reml)
    else:
        problem, info = _weighted_problem(formula, data, weights, weights_scale, reml, engine,
                                          cov_type)
    eng, note = _choose_engine(problem, engine)
    fit: EngineFit = eng.fit(problem)
    return _assemble(fit, problem, info, df_method, cov_type, cluster, conf_level, note,
                     stacklevel)


def _weighted_problem(formula, data, weights, scale, reml, engine, cov_type):
    """The problem of a group-weighted linear mixed model (see ``_weights.py``), after the
    options that cannot go with weights are refused."""
    from dataclasses import replace

    from coevidence.models.mixed._weights import build_weighted_problem

    if cov_type != "cr2":
        raise OptionError(
            "weights= with cov_type='model' is refused: model-based standard errors would "
            "treat each weighted group as that many independent groups; weighted fits use "
            "CR2 by cluster (leave cov_type unset, or pass 'cr2')")
    if engine not in ("auto", "fast"):
        raise OptionError(f"weights= are fitted by the fast engine only, not engine={engine!r}")
    problem, info, winfo = build_weighted_problem(formula, data, weights, reml, scale)
    return problem, replace(info, weights=winfo)


def _assemble(fit, problem, info, df_method, cov_type, cluster, conf_level, note,
              stacklevel=3) -> MixedResult:
    p = len(problem.fixed_names)
    sizes = tuple(len(t.columns) for t in problem.terms)
    # the Satterthwaite ingredients (Hessian and Jacobian in (theta, sigma)) are computed only
    # when the df need them; otherwise the Hessian check of the diagnostics runs on first access
    if df_method == "satterthwaite" and cov_type != "cr2":
        sat, h_scaled = _scaled_satterthwaite(fit, problem, sizes)
    else:
        sat = h_scaled = None
    inference = _inference(fit, problem, info, sat, df_method, cov_type, cluster, p)
    diag = _diagnostics(fit, problem, sat, note, h_scaled)
    result = MixedResult(
        fit=fit, problem=problem, info=info, inference=inference, diagnostics=diag,
        conf_level=conf_level,
    )
    # a lazy Hessian check is not forced here: the fit-time warning carries what is known
    messages = diag.messages if sat is not None else diag._known_messages()
    if messages:
        category = BoundaryFitWarning if diag.singular else FitWarning
        warnings.warn(
            f"mixed model {info.formula!r}: " + "; ".join(messages)
            + " (see result.diagnostics)",
            category,
            stacklevel=stacklevel,
        )
    return result


def _scaled_satterthwaite(fit: EngineFit, problem: MixedProblem, sizes: tuple[int, ...]):
    """Satterthwaite ingredients in (theta, sigma), and the Hessian in (theta, sigma / s).

    ``s = sd(y)``. The Hessian's positive-definiteness check is made on the scaled Hessian so
    that its relative tolerance does not depend on the outcome's units. Returns the
    ingredients and the scaled Hessian.

    An engine whose ``vcov_at`` offers ``satterthwaite_pieces`` (the fast engine) gives the
    Hessian as central differences of its analytic gradient and the Jacobian of vcov(beta)
    analytically (``2 k + 1`` evaluations, steps relative to each parameter, so unit-free).
    Otherwise both are Richardson finite differences of ``objective_at`` / ``vcov_at``, taken
    in (theta, sigma / s) so that the absolute part of the steps does not break the df of an
    outcome measured on a tiny scale (``y * 1e-8``).
    """
    from coevidence.models.mixed._inference import SatterthwaiteDF, satterthwaite

    sd = float(np.std(problem.y))
    s = sd if np.isfinite(sd) and sd > 0 else 1.0
    s2 = s * s
    vp = np.asarray(fit.varpar, dtype=float)
    k = len(vp)
    d = np.ones(k)
    d[-1] = 1.0 / s  # x_scaled = D x: sigma_s = sigma / s
    pieces = getattr(fit.vcov_at, "satterthwaite_pieces", None)
    if pieces is not None:
        from coevidence.models.mixed._likelihood import covariances_from_varpar, theta_from

        covs, sig2 = covariances_from_varpar(vp, sizes)
        x0 = np.append(theta_from(covs, sig2), np.sqrt(sig2))
        vcov, J, H = pieces(x0)
    if pieces is not None and np.all(np.isfinite(H)) and np.all(np.isfinite(J)):
        H_s = H / np.outer(d, d)
        try:
            A_s = 2 * np.linalg.inv(H_s)
        except np.linalg.LinAlgError:
            A_s = 2 * np.linalg.pinv(H_s)
        sat = SatterthwaiteDF(vcov_beta=vcov, jacobian=J, vcov_varpar=A_s / np.outer(d, d),
                              hessian=H)
        return sat, H_s
    # generic path (also the fallback if an analytic evaluation failed, e.g. a step that left
    # the parameter space)
    sat_s = satterthwaite(
        vp / s2,
        sizes,
        lambda v: fit.objective_at(np.asarray(v) * s2),
        lambda v: np.asarray(fit.vcov_at(np.asarray(v) * s2)) / s2,
    )
    if s == 1.0:
        return sat_s, sat_s.hessian
    H = sat_s.hessian * np.outer(d, d)
    A = sat_s.vcov_varpar / np.outer(d, d)
    J = np.asarray(sat_s.jacobian) * (s2 * d)[:, None, None]
    sat = SatterthwaiteDF(vcov_beta=np.asarray(sat_s.vcov_beta) * s2, jacobian=J,
                          vcov_varpar=A, hessian=H)
    return sat, sat_s.hessian


class _HessianCheck:
    """The deviance-Hessian check of the diagnostics, computed on first use (picklable).

    Returns ``(eigenvalues, eigenvalues of the scaled Hessian)``.
    """

    def __init__(self, fit: EngineFit, problem: MixedProblem, sizes: tuple[int, ...]) -> None:
        self.fit, self.problem, self.sizes = fit, problem, sizes

    def __call__(self):
        sat, hs = _scaled_satterthwaite(self.fit, self.problem, self.sizes)
        return _hessian_eigen(sat.hessian, hs)


def _hessian_eigen(h: np.ndarray, hs: np.ndarray):
    eig = np.linalg.eigvalsh((h + h.T) / 2)
    # positive definiteness is judged on the Hessian in outcome-SD units (same sign pattern by
    # congruence, but the relative tolerance does not then depend on the outcome's units)
    eig_s = np.linalg.eigvalsh((hs + hs.T) / 2)
    hess_ok = bool(np.all(eig_s > 1e-8 * max(abs(eig_s).max(), 1e-300)))
    return eig, hess_ok


_LAZY_FIELDS = frozenset({"hessian_eigenvalues", "hessian_ok", "messages"})


class _LazyDiagnostics(MixedDiagnostics):
    """:class:`MixedDiagnostics` whose Hessian check runs on first access.

    Fits whose df do not need the Satterthwaite Hessian (``df_method`` "residual", "z",
    "kenward_roger", ``cov_type="cr2"``) do not pay for it at fit time; reading
    ``hessian_eigenvalues``, ``hessian_ok``, ``messages`` (or ``ok``) computes it once.
    """

    def _resolve(self) -> None:
        state = object.__getattribute__(self, "__dict__")
        check = state.get("_check")
        if check is None:
            return
        eig, hess_ok = check()
        msgs = list(state["_base_messages"])
        if not hess_ok and not state["singular"]:
            msgs.insert(
                state["_hess_pos"],
                "the deviance Hessian is not positive definite "
                f"(smallest eigenvalue {eig.min():.3g})",
            )
        object.__setattr__(self, "hessian_eigenvalues", eig)
        object.__setattr__(self, "hessian_ok", hess_ok)
        object.__setattr__(self, "messages", tuple(msgs))
        state["_check"] = None

    def _known_messages(self) -> tuple[str, ...]:
        """The messages known without the Hessian check (those warned about at fit time)."""
        state = object.__getattribute__(self, "__dict__")
        if state.get("_check") is None:
            return object.__getattribute__(self, "messages")
        return tuple(state["_base_messages"])

    def __getattribute__(self, name: str):
        if name in _LAZY_FIELDS:
            object.__getattribute__(self, "_resolve")()
        return super().__getattribute__(name)


def _inference(fit, problem, info: FormulaInfo, sat, df_method, cov_type, cluster, p):
    from coevidence.models.mixed._inference import cr2, kenward_roger
    from coevidence.models.mixed._likelihood import LMMEvaluator

    eye = np.eye(p)
    if cov_type == "cr2":
        codes = _cluster_codes(problem, info, cluster)
        ev = LMMEvaluator(problem)
        rob = cr2(ev, fit.varpar, codes, problem.weights)
        dfs = np.array([rob.df(row) for row in eye])
        return _Inference("bell_mccaffrey", "cr2", rob.vcov, dfs, rob.df)
    vcov = np.asarray(fit.vcov_beta)
    if df_method == "satterthwaite":
        return _Inference(df_method, "model", vcov, sat.df(eye), sat.df_f)
    if df_method == "kenward_roger":
        ev = LMMEvaluator(problem)
        vadj, df_fn = kenward_roger(ev, fit.varpar)
        dfs = np.array([df_fn(row)[0] for row in eye])
        return _Inference(df_method, "model (Kenward-Roger adjusted)", vadj, dfs,
                          _FirstOf(df_fn))
    if df_method == "residual":
        d = float(len(problem.y) - p)
        return _Inference(df_method, "model", vcov, np.full(p, d), _ConstantDF(d))
    return _Inference("z", "model", vcov, np.full(p, np.inf), _ConstantDF(np.inf))


class _ConstantDF:
    """The same df for every contrast (residual df, or infinity for z tests); picklable."""

    def __init__(self, df: float) -> None:
        self.df = float(df)

    def __call__(self, L: np.ndarray) -> float:
        return self.df


class _FirstOf:
    """The df of a (df, F scale) pair returned by ``fn``; picklable."""

    def __init__(self, fn) -> None:
        self.fn = fn

    def __call__(self, L: np.ndarray) -> float:
        return self.fn(L)[0]


def _cluster_codes(problem: MixedProblem, info: FormulaInfo, cluster: str | None) -> np.ndarray:
    from coevidence.models.mixed._sm import _nested_in

    if cluster is None:
        coarse = min(problem.terms, key=lambda t: t.n_levels)
        codes = coarse.codes
        label = coarse.group
    else:
        if cluster not in info.data.columns and cluster not in getattr(info, "extra_columns", ()):
            raise ModelSpecificationError(
                f"cluster column {cluster!r} must be one of the model's columns "
                f"(grouping factors: {list(info.group_columns)})"
            )
        codes = pd.factorize(info.data[cluster])[0]
        label = cluster
    bad = [t.group for t in problem.terms if not _nested_in(t.codes, codes)]
    if bad:
        raise ModelSpecificationError(
            f"CR2 needs every random-effect factor nested in the clusters; {bad} cut across "
            f"clusters of {label!r}"
        )
    return codes


def _diagnostics(
    fit: EngineFit, problem: MixedProblem, sat, note: str, h_scaled: np.ndarray | None = None
) -> MixedDiagnostics:
    attempts = pd.DataFrame([a.__dict__ for a in fit.attempts])
    if len(attempts):
        attempts["chosen"] = np.arange(len(attempts)) == fit.chosen
    from coevidence.models.mixed._fast._diagnose import fit_verdict

    if sat is not None:
        eig, hess_ok = _hessian_eigen(
            sat.hessian, sat.hessian if h_scaled is None else h_scaled
        )
    else:  # computed on first access (_LazyDiagnostics)
        eig, hess_ok = np.empty(0), True
    grad = fit.attempts[fit.chosen].gradient_norm if fit.attempts else float("nan")
    verdict = fit_verdict(
        problem.terms, fit.covariances, fit.theta, float(np.var(problem.y)), fit.converged,
        grad, hess_ok, float(eig.min()) if len(eig) else float("nan"),
        boundary_rel=BOUNDARY_REL, corr_tol=CORR_TOL, singular_tol=SINGULAR_TOL,
        grad_tol=GRAD_TOL)
    boundary = pd.DataFrame(
        list(verdict.rows),
        columns=["group", "parameter", "kind", "value", "relative", "at_boundary"],
    )
    singular, messages, hess_pos = verdict.singular, list(verdict.messages), verdict.hess_pos
    cls = MixedDiagnostics if sat is not None else _LazyDiagnostics
    diag = cls(
        attempts=attempts,
        chosen=int(fit.chosen),
        converged=bool(fit.converged),
        gradient_norm=float(grad),
        boundary=boundary,
        singular=bool(singular),
        hessian_eigenvalues=eig,
        hessian_ok=hess_ok,
        messages=tuple(messages),
        engine_note=note,
    )
    if sat is None:
        state = object.__getattribute__(diag, "__dict__")
        sizes = tuple(len(t.columns) for t in problem.terms)
        state.update(_check=_HessianCheck(fit, problem, sizes), _base_messages=tuple(messages),
                     _hess_pos=hess_pos)
    return diag
