"""Refits of the fast engine: new outcome vectors on an unchanged design (issue 17).

Everything the deviance needs that depends only on ``X`` and ``Z`` -- the structure analysis,
``Z'Z`` (per level and across levels), ``Z'X`` and ``X'X`` -- is kept; a refit recomputes only
the outcome's cross-products ``Z'y``, ``X'y`` and ``y'y`` (with exactly the operations of
:func:`~._deviance.precompute`, so a refit started where a fresh fit starts gives the fresh
fit's numbers bit for bit) and optionally warm-starts the optimizer at a previous theta.

The fit itself is :meth:`FastEngine._fit` given the kept structure and blocks (one code path
for fits and refits). The lean path (:meth:`Refitter.estimates`, :meth:`Refitter.refit_many`)
runs the same optimizer and Satterthwaite computations operation for operation (so its numbers
are those of a fresh fit) but builds no ``MixedResult``, random-effect tables, DataFrames or
diagnostics frames: it returns what a power simulation reads (:class:`RefitEstimates`).

For one or two nested levels without weights, every evaluation of the criterion and its
analytic gradient -- of fits and refits alike -- is a few numba calls of
:class:`._evaluator.Evaluator` (``FastEngine._optimum`` and
:func:`._derivatives.satterthwaite_pieces` take it), so the lean path is that evaluator, the
optimiser and the Satterthwaite ingredients, with no result objects.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ....exceptions import ModelSpecificationError
from .._blas import one_blas_thread
from .._engine import EngineFit, MixedProblem
from ._deviance import Blocks, precompute, with_outcome
from ._structure import Structure, analyse
from .engine import FastEngine, _AtVarpar

__all__ = ["RefitEstimates", "Refitter", "refit_blocks", "wald_one"]

class _LeanAt(_AtVarpar):
    """``_AtVarpar`` whose Satterthwaite pieces run under the caller's BLAS limit."""

    def satterthwaite_pieces(self, x0: np.ndarray):
        from ._derivatives import satterthwaite_pieces

        struct, blocks = self._pieces()
        return satterthwaite_pieces(blocks, struct, self.problem, x0)


@dataclass(frozen=True)
class RefitEstimates:
    """What a refit's inference needs, without a ``MixedResult`` (:meth:`Refitter.estimates`).

    ``std_error`` and ``df`` are per coefficient (``df`` Satterthwaite, or the residual df /
    infinity for ``df_method="residual"`` / ``"z"``), exactly as ``tidy()`` of a fresh
    ``fit_mixed``; ``estimate``, ``contrast_se``, ``contrast_df``, ``p_value`` are those of the
    contrast ``L`` (a row of weights on the coefficients; NaN when none was given).
    ``messages`` are the fit's diagnostics messages (the warnings a fresh fit would give):
    empty for a clean fit. ``boundary``: the ``(group, parameter, kind)`` rows of
    ``diagnostics.boundary`` that are at the boundary.
    """

    beta: np.ndarray
    vcov: np.ndarray
    std_error: np.ndarray
    df: np.ndarray
    theta: np.ndarray
    internal_theta: np.ndarray
    varpar: np.ndarray
    objective: float
    converged: bool
    singular: bool
    hessian_ok: bool
    gradient_norm: float
    messages: tuple[str, ...]
    boundary: tuple[tuple[str, str, str], ...] = ()
    estimate: float = float("nan")
    contrast_se: float = float("nan")
    contrast_df: float = float("nan")
    statistic: float = float("nan")
    p_value: float = float("nan")

    @property
    def ok(self) -> bool:
        """Converged, not singular, positive-definite Hessian, small gradient (no warning)."""
        return not self.messages


def refit_blocks(blocks: Blocks, struct: Structure, problem: MixedProblem) -> Blocks:
    """``blocks`` with the outcome's cross-products recomputed for ``problem.y``.

    ``problem`` must have the X and Z of the problem ``blocks`` were computed from; the result is
    identical (bit for bit) to ``precompute(problem, struct)`` (both go through
    :func:`~._deviance.with_outcome`).
    """
    n, p = np.shape(problem.X)
    if n != blocks.n or p != blocks.p:
        raise ModelSpecificationError(
            f"refit: the outcome has {n} rows for {p} fixed effects; the fit had {blocks.n} "
            f"and {blocks.p}"
        )
    return with_outcome(blocks, struct, problem)

class Refitter:
    """The y-independent part of a fast-engine fit, refitting new outcome vectors.

    Parameters
    ----------
    problem : MixedProblem
        The template (its ``y`` is only used for the first cross-products).
    struct, blocks : optional
        Already computed structure and blocks of ``problem`` (e.g. from a fitted result's
        ``vcov_at``); computed when omitted.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from coevidence.models.mixed._engine import MixedProblem, RandomTerm
    >>> from coevidence.models.mixed._fast import FastEngine
    >>> rng = np.random.default_rng(1)
    >>> g = np.repeat(np.arange(20), 5)
    >>> term = RandomTerm("g", g, pd.Index(range(20)), ("(Intercept)",), np.ones((100, 1)))
    >>> def problem(seed):
    ...     r = np.random.default_rng(seed)
    ...     y = 1.0 + r.normal(size=20)[g] + r.normal(size=100)
    ...     return MixedProblem(y, np.ones((100, 1)), ("(Intercept)",), (term,))
    >>> refitter = Refitter(problem(1))
    >>> new = problem(2)
    >>> bool(np.array_equal(refitter.fit(new.y).beta, FastEngine().fit(new).beta))
    True
    """

    def __init__(self, problem: MixedProblem, struct: Structure | None = None,
                 blocks: Blocks | None = None) -> None:
        if struct is None:
            struct, reason = analyse(problem)
            if struct is None:
                raise ModelSpecificationError(f"fast engine cannot fit this model: {reason}")
        self.problem = problem
        self.struct = struct
        self.blocks = blocks if blocks is not None else precompute(problem, struct)
        self.engine = FastEngine()

    def problem_for(self, y: np.ndarray) -> MixedProblem:
        """The template problem with outcome ``y`` (same rows)."""
        y = np.asarray(y, dtype=float)
        if y.shape != (self.blocks.n,):
            raise ModelSpecificationError(
                f"refit: y must have shape ({self.blocks.n},), got {y.shape}")
        if not np.all(np.isfinite(y)):
            raise ModelSpecificationError(
                "refit: y has non-finite values; rows with a missing outcome change the design "
                "(fit the model afresh)")
        return replace(self.problem, y=y)

    def fit(self, y: np.ndarray, start: np.ndarray | None = None) -> EngineFit:
        """Fit outcome ``y``; ``start``: internal theta to start from (default: the engine's
        usual start, giving exactly a fresh fit's answer)."""
        problem = self.problem_for(y)
        with one_blas_thread():
            blocks = refit_blocks(self.blocks, self.struct, problem)
            return self.engine._fit(problem, self.struct, blocks, start)

    def internal_theta(self, fit: EngineFit) -> np.ndarray:
        """The optimizer's theta of a fit (its reported theta in the structure's order)."""
        return _internal_theta(self.struct, fit)

    # ------------------------------------------------------------------ lean path
    def estimates(self, y: np.ndarray, contrast: np.ndarray | None = None, *,
                  start: np.ndarray | None = None, df_method: str = "satterthwaite"
                  ) -> RefitEstimates:
        """Estimates, SEs and df of outcome ``y`` (and of ``contrast``) without a MixedResult.

        The same numbers as ``fit_mixed`` on the new outcome (``start=None``): the optimizer,
        vcov and Satterthwaite ingredients are computed with exactly a fresh fit's operations.
        ``df_method``: ``"satterthwaite"`` (default), ``"residual"`` or ``"z"``.
        """
        with one_blas_thread():
            return self._estimates(y, contrast, start, df_method)

    def refit_many(self, Y, contrast: np.ndarray | None = None, *, warm_start: bool = False,
                   df_method: str = "satterthwaite") -> list[RefitEstimates]:
        """:meth:`estimates` for each outcome (rows of ``Y``, or an iterable of vectors).

        ``warm_start=True`` starts each fit at the previous one's theta (fewer evaluations; the
        same optimum to the optimizer's tolerance, not bit for bit).
        """
        out: list[RefitEstimates] = []
        start = None
        with one_blas_thread():
            for y in Y:
                e = self._estimates(y, contrast, start, df_method)
                out.append(e)
                if warm_start and e.converged and np.all(np.isfinite(e.internal_theta)):
                    start = e.internal_theta
        return out

    def _core_fit(self, problem: MixedProblem, blocks: Blocks, start):
        """:meth:`FastEngine._optimum` (the fit's own code path) without the random-effect
        tables, so the same numbers."""
        struct, engine = self.struct, self.engine
        opt = engine._optimum(problem, struct, blocks, start)
        theta, attempts, chosen, objective = opt.theta, opt.attempts, opt.chosen, opt.objective
        beta, sigma2, vcov, covs, varpar = opt.beta, opt.sigma2, opt.vcov, opt.covs, opt.varpar
        fit = EngineFit(
            beta=beta, vcov_beta=vcov, covariances=covs, sigma2=float(sigma2),
            theta=struct.report_theta(theta), loglik=-0.5 * objective,
            objective=float(objective), ranef=(), ranef_condvar=(), varpar=varpar,
            vcov_at=_LeanAt(engine, problem, "vcov", struct, blocks),
            objective_at=_LeanAt(engine, problem, "objective", struct, blocks),
            attempts=tuple(attempts), chosen=chosen, engine=engine.name,
        )
        return fit, theta

    def _estimates(self, y, contrast, start, df_method) -> RefitEstimates:
        from coevidence.models.mixed.api import (
            BOUNDARY_REL,
            CORR_TOL,
            GRAD_TOL,
            SINGULAR_TOL,
            _hessian_eigen,
            _scaled_satterthwaite,
        )

        from ._diagnose import fit_verdict

        problem = self.problem_for(y)
        blocks = refit_blocks(self.blocks, self.struct, problem)
        fit, itheta = self._core_fit(problem, blocks, start)
        p = blocks.p
        terms = problem.terms
        sizes = tuple(len(t.columns) for t in terms)
        vcov = np.asarray(fit.vcov_beta)
        if df_method == "satterthwaite":
            sat, h_scaled = _scaled_satterthwaite(fit, problem, sizes)
            df = sat.df(np.eye(p))
            eig, hess_ok = _hessian_eigen(sat.hessian, h_scaled)
        elif df_method in ("residual", "z"):
            sat = None
            d = float(len(problem.y) - p) if df_method == "residual" else np.inf
            df = np.full(p, d)
            eig, hess_ok = np.empty(0), True  # as a fresh fit reports before its lazy check
        else:
            raise ModelSpecificationError(
                f"refit estimates: df_method must be 'satterthwaite', 'residual' or 'z', got "
                f"{df_method!r}")
        se = np.sqrt(np.diag(vcov))
        # the diagnostics rules of api._diagnostics (one function), without its frames
        grad = fit.attempts[fit.chosen].gradient_norm if fit.attempts else float("nan")
        verdict = fit_verdict(
            terms, fit.covariances, fit.theta, float(np.var(problem.y)), fit.converged, grad,
            hess_ok, float(eig.min()) if len(eig) else float("nan"),
            boundary_rel=BOUNDARY_REL, corr_tol=CORR_TOL, singular_tol=SINGULAR_TOL,
            grad_tol=GRAD_TOL)
        singular, messages, where = verdict.singular, verdict.messages, verdict.boundary
        theta = np.asarray(fit.theta)
        extra = {}
        if contrast is not None:
            L = np.asarray(contrast, float).reshape(-1)
            if L.shape != (p,):
                raise ModelSpecificationError(
                    f"refit estimates: the contrast needs {p} weights, got {L.shape}")
            est = float(L @ fit.beta)
            cse = float(np.sqrt(L @ vcov @ L))
            cdf = float(sat.df(L[None, :])[0]) if sat is not None else float(df[0])
            stat, pv, _, _ = wald_one(est, cse, cdf)
            extra = {"estimate": est, "contrast_se": cse, "contrast_df": cdf,
                     "statistic": float(stat), "p_value": float(pv)}
        return RefitEstimates(
            beta=np.asarray(fit.beta), vcov=vcov, std_error=se, df=np.asarray(df, float),
            theta=theta, internal_theta=np.asarray(itheta, float),
            varpar=np.asarray(fit.varpar), objective=float(fit.objective),
            converged=bool(fit.converged), singular=bool(singular), hessian_ok=bool(hess_ok),
            gradient_norm=float(grad), messages=tuple(messages), boundary=tuple(where),
            **extra)


def wald_one(estimate: float, std_error: float, df: float, conf_level: float = 0.95):
    """``results.base.wald_tests`` for one coefficient, through ``scipy.special`` directly
    (the same functions ``scipy.stats.t`` / ``norm`` evaluate, without their per-call
    overhead of about 0.2 ms each, as much as a small refit's optimiser step).

    Examples
    --------
    >>> stat, p, lo, hi = wald_one(2.0, 1.0, 10.0)
    >>> round(p, 4), round(lo, 3)
    (0.0734, -0.228)
    """
    from scipy import special

    if not 0 < conf_level < 1:
        raise ValueError(f"conf_level must be in (0, 1), got {conf_level}")
    est, se, df = float(estimate), float(std_error), float(df)
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = est / se
    a = 0.5 + conf_level / 2
    if np.isfinite(df):
        p = 2.0 * float(special.stdtr(df, -abs(stat)))
        q = float(special.stdtrit(df, a))
    else:
        p = 2.0 * float(special.ndtr(-abs(stat)))
        q = float(special.ndtri(a))
    return stat, p, est - q * se, est + q * se


def _internal_theta(struct: Structure, fit: EngineFit) -> np.ndarray:
    """Map ``fit.theta`` (lme4's reported layout) back to the optimizer's parameterisation.

    ``report_theta`` places each optimizer element at one reported position (a 0/1 selection,
    plus structural zeros for uncorrelated multi-column terms), so its transpose inverts it.
    """
    k = len(struct.start())
    R = np.column_stack([struct.report_theta(e) for e in np.eye(k)])
    return R.T @ np.asarray(fit.theta, float)
