"""Refits of the fast engine: new outcome vectors on an unchanged design (issue 17).

Everything the deviance needs that depends only on ``X`` and ``Z`` -- the structure analysis,
``Z'Z`` (per level and across levels), ``Z'X`` and ``X'X`` -- is kept; a refit recomputes only
the outcome's cross-products ``Z'y``, ``X'y`` and ``y'y`` (with exactly the operations of
:func:`~._deviance.precompute`, so a refit started where a fresh fit starts gives the fresh
fit's numbers bit for bit) and optionally warm-starts the optimizer at a previous theta.

The fit itself is :meth:`FastEngine._fit` given the kept structure and blocks (one code path
for fits and refits).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy import linalg

from ....exceptions import ModelSpecificationError
from .._engine import EngineFit, MixedProblem
from ._deviance import Blocks, precompute
from ._structure import Structure, analyse
from .engine import FastEngine, _one_blas_thread

__all__ = ["Refitter", "refit_blocks"]


def refit_blocks(blocks: Blocks, struct: Structure, problem: MixedProblem) -> Blocks:
    """``blocks`` with the outcome's cross-products recomputed for ``problem.y``.

    ``problem`` must have the X and Z of the problem ``blocks`` were computed from; the result is
    identical (bit for bit) to ``precompute(problem, struct)``.
    """
    X = np.asarray(problem.X, dtype=float)
    y0 = np.asarray(problem.y, dtype=float)
    n, p = X.shape
    if n != blocks.n or p != blocks.p:
        raise ModelSpecificationError(
            f"refit: the outcome has {n} rows for {p} fixed effects; the fit had {blocks.n} "
            f"and {blocks.p}"
        )
    XtX = blocks.XytXy[:p, :p]
    beta_ols = linalg.solve(XtX, X.T @ y0, assume_a="pos")
    y = y0 - X @ beta_ols
    ZtXy = []
    for i, lv in enumerate(struct.levels):
        B = blocks.ZtXy[i].copy()
        for a, t in enumerate(_level_columns(problem, lv)):
            w = y if _is_one(t) else t * y
            B[:, a, p] = np.bincount(lv.codes, weights=w, minlength=lv.G)
        ZtXy.append(B)
    XytXy = blocks.XytXy.copy()
    XytXy[:p, p] = XytXy[p, :p] = X.T @ y
    XytXy[p, p] = y @ y
    return Blocks(ZtZ=blocks.ZtZ, ZtZa=blocks.ZtZa, ZtXy=ZtXy, XytXy=XytXy, n=n, p=p,
                  beta_ols=beta_ols)


def _level_columns(problem: MixedProblem, lv) -> list[np.ndarray]:
    return [np.asarray(problem.terms[t].Z, dtype=float)[:, k]
            for t in lv.term_idx for k in range(np.shape(problem.terms[t].Z)[1])]


def _is_one(v: np.ndarray) -> bool:
    return bool(v[0] == 1.0 and np.all(v == 1.0))


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
        with _one_blas_thread():
            blocks = refit_blocks(self.blocks, self.struct, problem)
            return self.engine._fit(problem, self.struct, blocks, start)

    def internal_theta(self, fit: EngineFit) -> np.ndarray:
        """The optimizer's theta of a fit (its reported theta in the structure's order)."""
        return _internal_theta(self.struct, fit)


def _internal_theta(struct: Structure, fit: EngineFit) -> np.ndarray:
    """Map ``fit.theta`` (lme4's reported layout) back to the optimizer's parameterisation.

    ``report_theta`` places each optimizer element at one reported position (a 0/1 selection,
    plus structural zeros for uncorrelated multi-column terms), so its transpose inverts it.
    """
    k = len(struct.start())
    R = np.column_stack([struct.report_theta(e) for e in np.eye(k)])
    return R.T @ np.asarray(fit.theta, float)
