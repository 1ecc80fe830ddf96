"""The fast engine: profiled (RE)ML for nested linear mixed models, lme4-compatible output."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import linalg

from ....exceptions import ConvergenceFailure, ModelSpecificationError
from .._blas import one_blas_thread as _one_blas_thread
from .._engine import EngineFit, MixedProblem
from . import _evaluator
from ._deviance import conditional_u, factorize, precompute, selected_inverse
from ._gradient import deviance_gradient
from ._optimize import minimise
from ._structure import Structure, analyse

__all__ = ["SINGULAR_TOL", "FastEngine", "is_singular", "theta_lower"]

class _Optimum(NamedTuple):
    """A fit at its optimum before the random-effect tables (see ``FastEngine._optimum``)."""

    theta: np.ndarray
    attempts: list
    chosen: int
    fac: object
    objective: float
    beta_c: np.ndarray
    beta: np.ndarray
    sigma2: float
    vcov: np.ndarray
    lams: list
    covs: tuple
    varpar: np.ndarray


#: lme4's ``isSingular`` tolerance on the bounded (diagonal) theta elements.
SINGULAR_TOL = 1e-4




def _non_finite(problem: MixedProblem) -> str:
    """A message naming the first non-finite value in y, X or a random-effect Z, or ''."""
    arrays = [
        ("outcome y", np.asarray(problem.y, float)[:, None], ("y",)),
        ("fixed-effects matrix X", np.asarray(problem.X, float), problem.fixed_names),
    ]
    arrays += [
        (
            f"random-effects matrix of ({' + '.join(t.columns)} | {t.group})",
            np.asarray(t.Z, float),
            t.columns,
        )
        for t in problem.terms
    ]
    for what, A, names in arrays:
        ok = np.isfinite(A)
        if not ok.all():
            r, c = np.argwhere(~ok)[0]
            return (
                f"{what} has {int((~ok).sum())} non-finite value(s); first at row {r}, "
                f"column {names[c]!r}, value {A[r, c]!r}"
            )
    return ""


def _psd_factor(S: np.ndarray) -> np.ndarray | None:
    """A square factor F with F F' = S (Cholesky, or eigen for a singular PSD S); None if not PSD."""
    try:
        return np.linalg.cholesky(S)
    except np.linalg.LinAlgError:
        w, U = np.linalg.eigh(S)
        tol = 1e-10 * max(1.0, float(np.max(np.abs(w))))
        if np.min(w) < -tol:
            return None
        return U * np.sqrt(np.clip(w, 0.0, None))


def _full_column_rank(X: np.ndarray) -> bool:
    """``matrix_rank(X) == p`` (on the first 100000 rows, then all), with a cheap sufficient test.

    When the eigenvalues of ``X'X`` give ``s_min / s_max > 1e-4`` the singular values of ``X``
    are far above ``matrix_rank``'s tolerance (``s_max max(n, p) eps``), so no SVD is needed.
    """
    n, p = X.shape
    if p == 0:
        return True
    w = np.linalg.eigvalsh(X.T @ X)
    if np.isfinite(w).all() and w[-1] > 0 and w[0] > 1e-8 * w[-1]:
        return True
    return not (np.linalg.matrix_rank(X[: min(n, 100000)]) < p and np.linalg.matrix_rank(X) < p)


def theta_lower(problem: MixedProblem) -> np.ndarray:
    """lme4's lower bounds on theta (0 for diagonal elements of Lambda, -inf otherwise).

    In the order of ``EngineFit.theta`` (lme4's ``getME(m, "theta")``); the structure analysis
    does not need the grouping factors to be nested.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from coevidence.models.mixed._engine import MixedProblem, RandomTerm
    >>> g = np.repeat(np.arange(3), 2)
    >>> Z = np.column_stack([np.ones(6), np.arange(6.0)])
    >>> t = RandomTerm("g", g, pd.Index(range(3)), ("(Intercept)", "x"), Z)
    >>> theta_lower(MixedProblem(np.arange(6.0), Z, ("(Intercept)", "x"), (t,)))
    array([  0., -inf,   0.])
    """
    struct, reason = analyse(problem)
    if struct is None:
        raise ModelSpecificationError(reason)
    return struct.report_lower()


def is_singular(fit: EngineFit, problem: MixedProblem, tol: float = SINGULAR_TOL) -> bool:
    """lme4's ``isSingular``: some bounded theta element is within ``tol`` of its bound.

    That is a variance at zero or a correlation at +-1 (a covariance matrix of deficient rank).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from coevidence.models.mixed._engine import MixedProblem, RandomTerm
    >>> g = np.repeat(np.arange(10), 4)
    >>> y = np.tile([1.0, -1.0, 2.0, -2.0], 10)  # every group has the same mean
    >>> t = RandomTerm("g", g, pd.Index(range(10)), ("(Intercept)",), np.ones((40, 1)))
    >>> prob = MixedProblem(y, np.ones((40, 1)), ("(Intercept)",), (t,))
    >>> is_singular(FastEngine().fit(prob), prob)  # no between-group variation
    True
    """
    lower = theta_lower(problem)
    b = np.isfinite(lower)
    return bool(np.any(np.asarray(fit.theta)[b] < lower[b] + tol))


class _AtVarpar:
    """``vcov(beta)`` or the (RE)ML criterion at given variance parameters (``EngineFit.vcov_at``
    / ``objective_at`` of the fast engine).

    A module-level callable rather than a closure so that fitted results pickle; the
    precomputed structure and cross-products are dropped on pickling and rebuilt from the
    problem on first use.
    """

    def __init__(self, engine: FastEngine, problem: MixedProblem, kind: str, struct=None,
                 blocks=None) -> None:
        self.engine = engine
        self.problem = problem
        self.kind = kind
        self._struct = struct
        self._blocks = blocks

    def __getstate__(self) -> dict:
        return {"engine": self.engine, "problem": self.problem, "kind": self.kind}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._struct = self._blocks = None

    def _pieces(self):
        if self._struct is None or self._blocks is None:
            struct, _ = analyse(self.problem)
            assert struct is not None
            self._struct, self._blocks = struct, precompute(self.problem, struct)
        return self._struct, self._blocks

    def satterthwaite_pieces(self, x0: np.ndarray):
        """``(vcov_beta, jacobian, hessian)`` in lmerTest's (theta, sigma) at ``x0``, from the
        engine's analytic gradient (see :mod:`._derivatives`)."""
        from ._derivatives import satterthwaite_pieces

        struct, blocks = self._pieces()
        with _one_blas_thread():
            return satterthwaite_pieces(blocks, struct, self.problem, x0)

    def __call__(self, vp: np.ndarray):
        struct, blocks = self._pieces()
        f, s2 = self.engine._factor_at(self.problem, struct, blocks, vp)
        if self.kind == "vcov":
            p = blocks.p
            if f is None or not f.ok:
                return np.full((p, p), np.nan)
            return s2 * linalg.cho_solve((f.Lm[:p, :p], True), np.eye(p))
        if f is None:
            return np.nan
        return f.objective_sigma(blocks.n, bool(self.problem.reml), s2)


class FastEngine:
    """Profiled REML/ML for nested (or single) grouping factors, vectorised over groups.

    Follows lme4 (Bates et al. 2015, section 3): theta parameterises the relative covariance
    factor, the blocks of ``[Z X y]'[Z X y]`` are computed once, and each deviance evaluation is a
    blocked Cholesky with batched q x q factorisations per level (finest first, Schur complements
    summed onto the enclosing groups), so its cost depends on the number of groups, not rows.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from coevidence.models.mixed._engine import MixedProblem, RandomTerm
    >>> from coevidence.models.mixed._fast import FastEngine
    >>> rng = np.random.default_rng(1)
    >>> g = np.repeat(np.arange(20), 5)
    >>> y = 1.0 + rng.normal(size=20)[g] + rng.normal(size=100)
    >>> term = RandomTerm("g", g, pd.Index(range(20)), ("(Intercept)",), np.ones((100, 1)))
    >>> prob = MixedProblem(y, np.ones((100, 1)), ("(Intercept)",), (term,))
    >>> FastEngine().supports(prob)
    (True, '')
    >>> fit = FastEngine().fit(prob)
    >>> fit.converged
    True
    """

    name = "fast"

    def supports(self, problem: MixedProblem) -> tuple[bool, str]:
        """Whether the model is fitted exactly: nested or single grouping factors."""
        ok, reason, _ = self._check(problem)
        return ok, reason

    def _check(self, problem: MixedProblem) -> tuple[bool, str, Structure | None]:
        """``supports`` and the structure analysis, remembered for the last problem (the API
        asks ``supports`` and then fits the same problem)."""
        last = self.__dict__.get("_last_check")
        if last is not None and last[0] is problem:
            return last[1]
        out = self._check_uncached(problem)
        self._last_check = (problem, out)
        return out

    @staticmethod
    def _check_uncached(problem: MixedProblem) -> tuple[bool, str, Structure | None]:
        bad = _non_finite(problem)
        if bad:
            return False, bad, None
        struct, reason = analyse(problem)
        if struct is None:
            return False, reason, None
        n, p = np.shape(problem.X)
        if n <= p:
            return False, f"{n} rows for {p} fixed effects", None
        if not _full_column_rank(np.asarray(problem.X, float)):
            return False, "the fixed-effects model matrix is rank deficient", None
        return True, "", struct

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_last_check", None)
        return state

    def fit(self, problem: MixedProblem) -> EngineFit:
        """Fit the model; see :class:`~coevidence.models.mixed._engine.EngineFit`."""
        ok, reason, struct = self._check(problem)
        if not ok:
            raise ModelSpecificationError(f"fast engine cannot fit this model: {reason}")
        self.__dict__.pop("_last_check", None)  # do not keep the problem alive
        with _one_blas_thread():
            return self._fit(problem, struct)

    def _fit(self, problem: MixedProblem, struct: Structure | None = None,
             blocks=None, start: np.ndarray | None = None) -> EngineFit:
        """Fit ``problem``; a refit passes the structure and cross-product ``blocks`` it keeps
        (only the outcome's cross-products recomputed) and optionally a starting theta."""
        if struct is None:
            struct, _ = analyse(problem)
            assert struct is not None
        if blocks is None:
            blocks = precompute(problem, struct)
        opt = self._optimum(problem, struct, blocks, start)
        theta, attempts, chosen, fac, objective = opt[:5]
        beta_c, beta, sigma2, vcov, lams, covs, varpar = opt[5:]
        ranef, condvar = self._ranef(problem, struct, fac, lams, beta_c, sigma2, blocks.wg)

        vcov_at = _AtVarpar(self, problem, "vcov", struct, blocks)
        objective_at = _AtVarpar(self, problem, "objective", struct, blocks)

        return EngineFit(
            beta=beta,
            vcov_beta=vcov,
            covariances=covs,
            sigma2=float(sigma2),
            theta=struct.report_theta(theta),
            loglik=-0.5 * objective,
            objective=float(objective),
            ranef=ranef,
            ranef_condvar=condvar,
            varpar=varpar,
            vcov_at=vcov_at,
            objective_at=objective_at,
            attempts=tuple(attempts),
            chosen=chosen,
            engine=self.name,
        )


    def _optimum(self, problem: MixedProblem, struct: Structure, blocks, start=None) -> _Optimum:
        """Optimise theta on the kept ``blocks`` and compute everything but the random-effect
        tables (shared by fits and the lean refits of :mod:`._refit`: one code path)."""
        n, p, reml = blocks.n, blocks.p, bool(problem.reml)
        y = np.asarray(problem.y, float)
        if blocks.XytXy[p, p] <= (1e-12 * float(np.linalg.norm(y))) ** 2:
            raise ModelSpecificationError(
                "the fixed effects reproduce the outcome exactly (residual sum of squares 0): "
                "there is no variation left for a mixed model"
            )

        def dev_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
            lams = struct.lambdas(theta)
            fac = factorize(blocks, struct, lams, keep=True)
            d = fac.deviance(n, reml)
            if not np.isfinite(d):
                return np.inf, np.zeros_like(theta)
            return d, deviance_gradient(blocks, struct, lams, fac, reml)

        ev = _evaluator.evaluator(blocks, struct, reml)
        if ev is not None:  # one or two levels, no weights: the same criterion, fused
            dev_grad = ev.fg

        n_groups = np.array([struct.levels[li].G for li in struct.theta_level], float)
        x0 = struct.start() if start is None else np.asarray(start, float)
        theta, attempts, chosen = minimise(
            dev_grad, x0, struct.lower, struct.canonical, np.sqrt(n_groups)
        )
        fac = factorize(blocks, struct, struct.lambdas(theta), keep=True)
        if not fac.ok:
            raise ConvergenceFailure("fast engine: no finite deviance at the optimum", attempts)
        objective = fac.deviance(n, reml)
        beta_c = fac.beta()  # for the residualised outcome (see precompute)
        beta = beta_c + blocks.beta_ols
        sigma2 = fac.pwrss / (n - p if reml else n)
        L11 = fac.Lm[:p, :p]
        vcov = sigma2 * linalg.cho_solve((L11, True), np.eye(p))
        lams = struct.lambdas(theta)
        covs = tuple(self._term_cov(struct, lams, t_i, sigma2) for t_i in range(len(problem.terms)))
        varpar = self._varpar(problem, covs, sigma2)
        return _Optimum(theta, attempts, chosen, fac, objective, beta_c, beta, float(sigma2),
                        vcov, lams, covs, varpar)

    # ----------------------------------------------------------------------------- helpers
    @staticmethod
    def _level_of(struct: Structure, t_i: int):
        for li, lv in enumerate(struct.levels):
            for t, sl in zip(lv.term_idx, lv.col_slices, strict=True):
                if t == t_i:
                    return li, sl
        raise KeyError(t_i)

    def _term_cov(self, struct, lams, t_i, sigma2) -> np.ndarray:
        li, sl = self._level_of(struct, t_i)
        lam = lams[li][sl, sl]
        return sigma2 * (lam @ lam.T)

    def _ranef(self, problem, struct, fac, lams, beta, sigma2, wg=None):
        """The random-effect tables; frees the factor's blocks as it goes (memory: ``fac`` is
        not used after this)."""
        u = conditional_u(fac, struct, beta)
        fac.Vs = []  # only conditional_u needs them (25 MB at 1M rows, 3 levels)
        Zd = selected_inverse(fac, struct)
        if wg is not None:
            # the reduced weighted system (``_deviance._weighted_view``) carries sqrt(w) times
            # a finest group's modes, and its coupling to the coarser levels w times: back to
            # one copy's conditional mode and variance
            u[0] = u[0] / np.sqrt(wg)[:, None]
            own = np.linalg.inv(np.einsum("gij,gkj->gik", fac.Ls[0], fac.Ls[0]))
            Zd = [own + (Zd[0] - own) / wg[:, None, None], *Zd[1:]]
        fac.Ls, fac.Ws = [], {}
        modes: list[pd.DataFrame] = []
        cvars: list[pd.DataFrame] = []
        for t_i, term in enumerate(problem.terms):
            li, sl = self._level_of(struct, t_i)
            lv = struct.levels[li]
            lam = lams[li]
            b = (u[li] @ lam.T)[:, sl]
            cv = sigma2 * np.einsum("ij,gjk,ik->gi", lam, Zd[li], lam)[:, sl]
            k = len(term.columns)
            full_b = np.zeros((term.n_levels, k))
            lt = lam[sl, sl]
            full_v = np.tile(sigma2 * np.diag(lt @ lt.T), (term.n_levels, 1))  # unused: prior
            full_b[lv.used] = b
            full_v[lv.used] = cv
            cols = list(term.columns)
            modes.append(pd.DataFrame(full_b, index=term.levels, columns=cols, copy=False))
            cvars.append(pd.DataFrame(full_v, index=term.levels, columns=cols, copy=False))
        return tuple(modes), tuple(cvars)

    @staticmethod
    def _varpar(problem, covs, sigma2) -> np.ndarray:
        out: list[float] = []
        for S in covs:  # the contract: full lower triangle, row-major, for every term
            k = S.shape[0]
            out.extend(S[r, c] for r in range(k) for c in range(r + 1))
        out.append(sigma2)
        return np.asarray(out, float)

    def _factor_at(self, problem, struct, blocks, vp):
        vp = np.asarray(vp, float)
        s2 = float(vp[-1])
        if not s2 > 0:
            return None, s2
        lams = [np.zeros((lv.q, lv.q)) for lv in struct.levels]
        pos = 0
        for t_i, term in enumerate(problem.terms):
            k = len(term.columns)
            S = np.zeros((k, k))
            for r in range(k):
                for c in range(r + 1):
                    S[r, c] = S[c, r] = vp[pos]
                    pos += 1
            F = _psd_factor(S / s2)
            if F is None:
                return None, s2
            li, sl = self._level_of(struct, t_i)
            lams[li][sl, sl] = F
        return factorize(blocks, struct, lams), s2
