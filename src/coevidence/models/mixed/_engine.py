"""The contract between the mixed-model front end and its numerical engines.

The front end (formula parsing, result class, inference) builds a :class:`MixedProblem` from an
lme4-style formula and a DataFrame, hands it to an engine, and gets an :class:`EngineFit` back.
Engines: ``"fast"`` (coevidence's profiled-deviance engine, ``_fast``), ``"statsmodels"``
(statsmodels MixedLM, ``_sm``). Both expose the variance-parameter functions that Satterthwaite
and Kenward-Roger inference need, so inference is written once, engine-independently.

Variance parameters (``varpar``) follow lmerTest: for each random-effect term, the elements of
the lower triangle (row-major) of its covariance matrix in the *outcome's units* (variances and
covariances, not relative factors), followed by the residual variance sigma^2.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd

__all__ = ["EngineFit", "MixedEngine", "MixedProblem", "OptimizerAttempt", "RandomTerm"]


@dataclass(frozen=True)
class RandomTerm:
    """One random-effect term ``(expr | group)`` after parsing and re-coding.

    Attributes
    ----------
    group : str
        Name of the grouping factor as lme4 labels it (``"subject"``, ``"org_id:provider_id"``
        for the inner level of ``provider_id/org_id``).
    codes : numpy.ndarray
        Integer codes 0..n_levels-1, one per row (nested ids already made unique).
    levels : pandas.Index
        The level labels, aligned with ``codes``.
    columns : tuple[str, ...]
        Names of the random-effect columns, e.g. ``("(Intercept)", "time")``.
    Z : numpy.ndarray
        Shape (n_rows, len(columns)): the model-matrix columns for this term.
    correlated : bool
        Unstructured covariance (``(1 + time | g)``) if True; only meaningful with > 1 column.
        Uncorrelated terms on the same factor are given as separate terms, as lme4 does.
    """

    group: str
    codes: np.ndarray
    levels: pd.Index
    columns: tuple[str, ...]
    Z: np.ndarray
    correlated: bool = True

    @property
    def n_levels(self) -> int:
        return len(self.levels)


@dataclass(frozen=True)
class MixedProblem:
    """A linear mixed model ready to fit: ``y = X beta + sum_k Z_k b_k + e``.

    ``weights`` (optional, one per row, constant within each group of the finest grouping
    factor) are sampling or propensity weights of those groups: a group with weight ``w``
    counts as ``w`` copies of itself in the (pseudo-)likelihood. Only the fast engine fits
    them.
    """

    y: np.ndarray
    X: np.ndarray
    fixed_names: tuple[str, ...]
    terms: tuple[RandomTerm, ...]
    reml: bool = True
    weights: np.ndarray | None = None


@dataclass(frozen=True)
class OptimizerAttempt:
    """One optimizer run, kept in ``result.diagnostics`` whatever its outcome."""

    optimizer: str
    start: tuple[float, ...]
    converged: bool
    objective: float
    n_evaluations: int
    gradient_norm: float
    message: str = ""


@dataclass(frozen=True)
class EngineFit:
    """What an engine returns.

    Attributes
    ----------
    beta, vcov_beta : fixed effects and their covariance (at the fitted variance parameters).
    covariances : one covariance matrix per random term (outcome units), same order as terms.
    sigma2 : residual variance.
    theta : lme4's relative Cholesky factor parameters (for comparison with ``getME(m, "theta")``).
    loglik : log-likelihood (REML log-likelihood for REML fits, as lme4 reports it).
    objective : -2 * loglik (lme4's ``REMLcrit``/``deviance``).
    ranef : one DataFrame per term: index = levels, columns = term columns (conditional modes).
    ranef_condvar : conditional variances per term (DataFrame like ``ranef``, diagonal only).
    varpar : fitted variance parameters (see module docstring).
    vcov_at : varpar -> vcov(beta); used for Satterthwaite df (Jacobian).
    objective_at : varpar -> -2 loglik (same REML/ML criterion); used for the Hessian.
    attempts : every optimizer attempt, in order; the chosen one is ``attempts[chosen]``.
    """

    beta: np.ndarray
    vcov_beta: np.ndarray
    covariances: tuple[np.ndarray, ...]
    sigma2: float
    theta: np.ndarray
    loglik: float
    objective: float
    ranef: tuple[pd.DataFrame, ...]
    ranef_condvar: tuple[pd.DataFrame, ...]
    varpar: np.ndarray
    vcov_at: Callable[[np.ndarray], np.ndarray] = field(repr=False)
    objective_at: Callable[[np.ndarray], float] = field(repr=False)
    attempts: tuple[OptimizerAttempt, ...] = ()
    chosen: int = 0
    engine: str = ""

    @property
    def converged(self) -> bool:
        return bool(self.attempts) and self.attempts[self.chosen].converged


class MixedEngine(Protocol):
    """An engine: ``supports(problem)`` says whether it fits the model *exactly*."""

    name: str

    def supports(self, problem: MixedProblem) -> tuple[bool, str]: ...

    def fit(self, problem: MixedProblem) -> EngineFit: ...
