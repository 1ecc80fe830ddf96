"""The sparse engine: profiled (RE)ML for any random-effects structure, crossed factors included.

lme4's penalised least squares formulation (Bates et al. 2015, "Fitting Linear Mixed-Effects
Models Using lme4", section 3), on the full random-effects system::

    A(theta) = Lambda' Z'Z Lambda + I          (q x q, sparse; q = total random-effect levels)
    M(theta) = [X y]'[X y] - B' A^-1 B,         B = Lambda' Z'[X y]
    ML:   d(theta) = log|A| + n (1 + log(2 pi r2 / n))
    REML: d(theta) = log|A| + log|M_XX| + (n - p) (1 + log(2 pi r2 / (n - p)))

with ``r2 = M_yy - M_yX M_XX^-1 M_Xy`` the penalised residual sum of squares. ``Z`` is a
``scipy.sparse`` matrix with lme4's column layout (term by term in lme4's order, levels major,
the term's columns within a level), ``Lambda`` is block diagonal (``I_G kron T_k`` per term) and
is refilled from theta through a fixed index map (lme4's ``Lind``). Nothing about the grouping
factors is assumed: crossed, partially crossed and nested factors are all the same computation.

Factorisation of ``A`` (the choice and its limits):

* the usual crossed case, a first term (the most levels, lme4's order) with at least as many
  random effects as all the others together and those others at most ``DENSE_MAX``: block
  elimination (``_crossed_system._BlockFactor``). The first term's block of ``A`` is block diagonal (one
  row has one level of a factor), so it is factorised by batched ``k x k`` Cholesky factors
  and only the Schur complement on the other terms is dense; the cross block ``Z1'Z2`` is kept
  dense when it has at most 4e6 entries. Cost per evaluation O(G1 k1^2 q2 + G1 k1 q2^2 +
  q2^3), with no sparse products: 500 x 100 crossed levels at 20k rows fit in about half of
  lme4's time; conditional variances come from the elimination too. Otherwise:
* ``q <= DENSE_MAX`` (2000): dense Cholesky (LAPACK). Cost per deviance evaluation O(q^3),
  memory O(q^2): about 8 MB and well under 0.1 s at q = 1000; 32 MB and ~0.3 s at q = 2000.
* larger ``q``: sparse LU of the symmetric positive definite ``A`` by SuperLU
  (``scipy.sparse.linalg.splu``) with a symmetric minimum-degree ordering of ``A + A'``,
  diagonal pivoting and symmetric mode, i.e. in effect a sparse ``L D L'`` with a fill-reducing
  ordering; ``log|A|`` is the sum of ``log|U_ii|`` (``A`` is SPD, so ``det A > 0``). Cost and
  memory depend on the fill-in, which for crossed factors is that of the Schur complement on
  the smaller factor: roughly O(nnz(A) + q_small^2) memory and O(q_small^3) time per
  evaluation in the worst (fully crossed) case, where ``q_small`` is the number of levels of
  the smaller crossed factor(s). Tens of thousands of levels on one factor crossed with a few
  thousand on another are practical; two crossed factors with ~10^4 levels each are not
  (CHOLMOD's supernodal factorisation would be faster by a constant factor, not in order;
  scikit-sparse is deliberately not a dependency since it needs SuiteSparse from the system).
  Conditional variances of the random effects need the diagonal blocks of ``A^-1``: computed
  by solving in chunks of 256 columns, O(q nnz(LU)) once per fit.

The optimiser works on theta with lme4's bounds (diagonal elements of each ``T_k`` >= 0):
bounded L-BFGS-B from lme4's start (with the block elimination, the analytic gradient of
``_BlockFactor.gradient`` wherever every ``T_k`` is invertible; otherwise a
central-difference gradient), a bounded Nelder-Mead restart
from its answer if it did not converge, then Newton steps on the free parameters (Hessian by
differencing the gradient) which take the gradient to ~0 so that the optimum, not a stopping
point of the optimiser, is reported (skipped when the optimiser's answer already has a scaled
gradient below 1e-6, i.e. a Newton step under 1e-6 standard errors). Convergence is judged as lme4's ``checkConv`` does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.linalg as sla
from scipy import optimize

from coevidence.exceptions import ConvergenceFailure, ModelSpecificationError
from coevidence.models.mixed._blas import one_blas_thread as _one_blas_thread
from coevidence.models.mixed._crossed_system import DENSE_MAX, _BlockFactor, _System
from coevidence.models.mixed._engine import EngineFit, MixedProblem, OptimizerAttempt

__all__ = ["DENSE_MAX", "SparseEngine"]

#: lme4's ``check.conv.grad`` tolerance.
GRAD_TOL = 2e-3


def _non_finite(problem: MixedProblem) -> str:
    arrays = [("outcome y", np.asarray(problem.y, float)), ("fixed-effects matrix X",
                                                          np.asarray(problem.X, float))]
    arrays += [(f"random-effects matrix of ({' + '.join(t.columns)} | {t.group})",
                np.asarray(t.Z, float)) for t in problem.terms]
    for what, a in arrays:
        bad = ~np.isfinite(a)
        if bad.any():
            return f"{what} has {int(bad.sum())} non-finite value(s)"
    return ""


def _psd_factor(S: np.ndarray) -> np.ndarray | None:
    """Lower-triangular-ish F with F F' = S (Cholesky, or eigen when singular); None if not PSD."""
    try:
        return np.linalg.cholesky(S)
    except np.linalg.LinAlgError:
        w, U = np.linalg.eigh((S + S.T) / 2)
        if np.min(w) < -1e-10 * max(1.0, float(np.max(np.abs(w)))):
            return None
        # a lower-triangular factor from the QR of the symmetric root (keeps T lower)
        root = U * np.sqrt(np.clip(w, 0.0, None))
        _, r = np.linalg.qr(root.T)
        F = r.T
        return F * np.where(np.diag(F) < 0, -1.0, 1.0)


class _AtVarpar:
    """``vcov(beta)`` or the (RE)ML criterion at given variance parameters; picklable."""

    def __init__(self, problem: MixedProblem, kind: str, dense_max: int, sysm=None) -> None:
        self.problem, self.kind, self.dense_max = problem, kind, dense_max
        self._sys = sysm

    def __getstate__(self) -> dict:
        return {"problem": self.problem, "kind": self.kind, "dense_max": self.dense_max}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._sys = None

    def __call__(self, vp: np.ndarray):
        with _one_blas_thread():
            return self._at(vp)

    def _at(self, vp: np.ndarray):
        if self._sys is None:
            self._sys = _System(self.problem)
        sysm = self._sys
        vp = np.asarray(vp, float)
        s2 = float(vp[-1])
        p = sysm.p
        bad = np.full((p, p), np.nan) if self.kind == "vcov" else np.nan
        if not s2 > 0:
            return bad
        # varpar is in problem term order; Ts in lme4 order
        per_term: dict[int, np.ndarray] = {}
        pos = 0
        for t_i, t in enumerate(self.problem.terms):
            k = len(t.columns)
            S = np.zeros((k, k))
            for r in range(k):
                for c in range(r + 1):
                    S[r, c] = S[c, r] = vp[pos]
                    pos += 1
            per_term[t_i] = S
        Ts = []
        for tm in sysm.terms:
            F = _psd_factor(per_term[tm.index] / s2)
            if F is None:
                return bad
            Ts.append(F)
        f = sysm.factor(sysm.theta_of_factors(Ts), self.dense_max)
        if not f.ok:
            return bad
        if self.kind == "vcov":
            return f.vcov(s2)
        return f.objective_sigma(bool(self.problem.reml), s2)


def _fd_grad(f, x: np.ndarray, lower: np.ndarray, f0: float | None = None) -> np.ndarray:
    """Central differences (one-sided at an active lower bound)."""
    g = np.empty_like(x)
    for i in range(len(x)):
        h = 1e-5 * max(1.0, abs(x[i]))
        e = np.zeros_like(x)
        e[i] = h
        if x[i] - h < lower[i]:
            f0 = f(x) if f0 is None else f0
            g[i] = (f(x + e) - f0) / h
        else:
            g[i] = (f(x + e) - f(x - e)) / (2 * h)
    return g


class SparseEngine:
    """Profiled REML/ML on the full sparse random-effects system (crossed factors welcome).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from coevidence.models.mixed.formula import build_problem
    >>> rng = np.random.default_rng(3)
    >>> df = pd.DataFrame({"a": np.repeat(np.arange(12), 6), "b": np.tile(np.arange(6), 12)})
    >>> df["y"] = rng.normal(size=12)[df.a] + rng.normal(size=6)[df.b] + rng.normal(size=72)
    >>> prob, _ = build_problem("y ~ 1 + (1 | a) + (1 | b)", df)
    >>> fit = SparseEngine().fit(prob)
    >>> fit.converged, fit.engine
    (True, 'sparse')
    """

    name = "sparse"

    def __init__(self, dense_max: int = DENSE_MAX) -> None:
        self.dense_max = int(dense_max)

    def supports(self, problem: MixedProblem) -> tuple[bool, str]:
        """Whether the model is fitted exactly (any grouping structure)."""
        if not problem.terms:
            return False, "the model has no random-effect terms"
        bad = _non_finite(problem)
        if bad:
            return False, bad
        X = np.asarray(problem.X, float)
        n, p = X.shape
        for t in problem.terms:
            if np.shape(t.codes) != (n,) or np.shape(t.Z) != (n, len(t.columns)):
                return False, f"term ({' + '.join(t.columns)} | {t.group}) has arrays of the wrong shape"
        if n <= p:
            return False, f"{n} rows for {p} fixed effects"
        if np.linalg.matrix_rank(X) < p:
            return False, "the fixed-effects model matrix is rank deficient"
        return True, ""

    def fit(self, problem: MixedProblem) -> EngineFit:
        """Fit the model; see :class:`~coevidence.models.mixed._engine.EngineFit`."""
        ok, reason = self.supports(problem)
        if not ok:
            raise ModelSpecificationError(f"sparse engine cannot fit this model: {reason}")
        with _one_blas_thread():
            return self._fit(problem)

    def _fit(self, problem: MixedProblem) -> EngineFit:
        sysm = _System(problem)
        n, p, reml = sysm.n, sysm.p, bool(problem.reml)
        yn = float(np.linalg.norm(np.asarray(problem.y, float)))
        if sysm.XytXy[p, p] <= (1e-12 * yn) ** 2:
            raise ModelSpecificationError(
                "the fixed effects reproduce the outcome exactly (residual sum of squares 0): "
                "there is no variation left for a mixed model"
            )
        theta, attempts, chosen = self._optimise(sysm, reml)
        f = sysm.factor(theta, self.dense_max)
        if not f.ok:
            raise ConvergenceFailure("sparse engine: no finite deviance at the optimum", attempts)
        objective = f.deviance(reml)
        sigma2 = f.pwrss / (n - p if reml else n)
        beta = f.beta_c + sysm.beta_ols
        vcov = f.vcov(sigma2)
        b = f.modes()
        Ts = [sysm.T(theta, j) for j in range(len(sysm.terms))]
        nt = len(problem.terms)
        covs: list[np.ndarray] = [np.empty((0, 0))] * nt
        ranef: list[pd.DataFrame] = [pd.DataFrame()] * nt
        condvar: list[pd.DataFrame] = [pd.DataFrame()] * nt
        report: list[float] = []
        for j, tm in enumerate(sysm.terms):
            t = problem.terms[tm.index]
            T = Ts[j]
            covs[tm.index] = sigma2 * (T @ T.T)
            report.extend(T[r, c] for c in range(tm.k) for r in range(c, tm.k))
            bj = b[tm.offset:tm.offset + tm.G * tm.k].reshape(tm.G, tm.k)
            blocks = f.inverse_blocks(tm.k, tm.offset, tm.G)
            cv = sigma2 * np.einsum("ij,gjk,ik->gi", T, blocks, T)
            cols = list(t.columns)
            ranef[tm.index] = pd.DataFrame(bj, index=t.levels, columns=cols)
            condvar[tm.index] = pd.DataFrame(cv, index=t.levels, columns=cols)
        varpar: list[float] = []
        for S in covs:
            k = S.shape[0]
            varpar.extend(S[r, c] for r in range(k) for c in range(r + 1))
        varpar.append(sigma2)
        return EngineFit(
            beta=beta,
            vcov_beta=vcov,
            covariances=tuple(covs),
            sigma2=float(sigma2),
            theta=np.asarray(report, float),
            loglik=-0.5 * objective,
            objective=float(objective),
            ranef=tuple(ranef),
            ranef_condvar=tuple(condvar),
            varpar=np.asarray(varpar, float),
            vcov_at=_AtVarpar(problem, "vcov", self.dense_max, sysm),
            objective_at=_AtVarpar(problem, "objective", self.dense_max, sysm),
            attempts=tuple(attempts),
            chosen=chosen,
            engine=self.name,
        )

    # ------------------------------------------------------------------ optimisation
    def _optimise(self, sysm: _System, reml: bool):
        lower = sysm.lower
        bounds = [(lo if np.isfinite(lo) else None, None) for lo in lower]
        cache: dict[bytes, float] = {}

        def dev(x: np.ndarray) -> float:
            x = np.maximum(np.asarray(x, float), lower)
            key = x.tobytes()
            if key not in cache:
                d = sysm.factor(x, self.dense_max).deviance(reml)
                cache[key] = float(d) if np.isfinite(d) else 1e300
            return cache[key]

        def grad(x: np.ndarray, f0: float | None = None) -> np.ndarray:
            """The analytic gradient of the block factorisation where it applies (interior
            theta), else central differences."""
            x = np.maximum(np.asarray(x, float), lower)
            fac = sysm.factor(x, self.dense_max)
            g = fac.gradient(x, reml) if isinstance(fac, _BlockFactor) else None
            if g is not None and np.all(np.isfinite(g)):
                d = fac.deviance(reml)
                cache.setdefault(x.tobytes(), float(d) if np.isfinite(d) else 1e300)
                return g
            return _fd_grad(dev, x, lower, f0)

        attempts: list[OptimizerAttempt] = []
        cands: list[tuple[float, np.ndarray]] = []

        def record(name, start, x, message, n_eval):
            x = np.maximum(np.asarray(x, float), lower)
            fx = dev(x)
            gn = self._conv_measure(dev, x, lower, grad)
            attempts.append(OptimizerAttempt(
                optimizer=name, start=tuple(float(s) for s in start),
                converged=bool(fx < 1e299 and gn < GRAD_TOL), objective=float(fx),
                n_evaluations=int(n_eval), gradient_norm=float(gn), message=str(message)))
            cands.append((fx, x))

        x0 = sysm.start()
        n0 = len(cache)
        r = optimize.minimize(dev, x0, jac=grad, method="L-BFGS-B",
                              bounds=bounds, options={"ftol": 1e-15, "gtol": 1e-9,
                                                      "maxiter": 2000})
        record("L-BFGS-B", x0, r.x, r.message, len(cache) - n0)
        if not attempts[-1].converged:
            xs = cands[-1][1]
            n0 = len(cache)
            r = optimize.minimize(dev, xs, method="Nelder-Mead", bounds=bounds,
                                  options={"xatol": 1e-10, "fatol": 1e-12, "maxfev": 20000,
                                           "adaptive": True})
            record("Nelder-Mead (bounded)", xs, r.x, r.message, len(cache) - n0)
        best = int(np.argmin([c[0] for c in cands]))
        xs = cands[best][1]
        if not (attempts[best].converged and attempts[best].gradient_norm < 1e-6):
            # polish unless the optimiser stopped where a Newton step is already below 1e-6
            # (lme4's scaled gradient: the step in units of the parameters' standard errors)
            n0 = len(cache)
            xp, msg = self._newton(dev, xs, lower, grad)
            record("Newton polish", xs, xp, msg, len(cache) - n0)
        objs = [c[0] for c in cands]
        chosen = int(np.argmin(objs))
        # prefer the converged attempt among those tied at the minimum
        for i, a in enumerate(attempts):
            if a.converged and objs[i] <= objs[chosen] + 1e-10 * max(1.0, abs(objs[chosen])):
                chosen = i
                break
        if objs[chosen] >= 1e299:
            raise ConvergenceFailure("sparse engine: no finite deviance found", attempts)
        return cands[chosen][1], attempts, chosen

    @staticmethod
    def _free(x, g, lower):
        return ~((x <= lower + 1e-10) & (g > 0))

    @staticmethod
    def _hessian(dev, x, lower, idx, grad=None):
        grad = grad or (lambda z: _fd_grad(dev, z, lower))
        H = np.empty((len(idx), len(idx)))
        for a, i in enumerate(idx):
            h = 1e-4 * max(1.0, abs(x[i]))
            e = np.zeros_like(x)
            e[i] = h
            lo = x - e if x[i] - h >= lower[i] else x
            hi = x + e
            H[:, a] = (grad(hi)[idx] - grad(lo)[idx]) / (hi[i] - lo[i])
        return 0.5 * (H + H.T)

    def _newton(self, dev, x, lower, grad=None, max_iter: int = 4):
        grad = grad or (lambda z, f0=None: _fd_grad(dev, z, lower, f0))
        x = x.copy()
        f = dev(x)
        msg = "Newton steps on the free parameters"
        for _ in range(max_iter):
            g = grad(x, f)
            idx = np.flatnonzero(self._free(x, g, lower))
            if not len(idx):
                break
            H = self._hessian(dev, x, lower, idx, grad)
            try:
                R = np.linalg.cholesky(H)
            except np.linalg.LinAlgError:
                msg = "Hessian not positive definite at the answer"
                break
            step = -sla.cho_solve((R, True), g[idx])
            t, moved = 1.0, False
            while t > 1e-4:
                xn = x.copy()
                xn[idx] = np.maximum(x[idx] + t * step, lower[idx])
                fn = dev(xn)
                if fn <= f:
                    moved = fn < f or np.array_equal(xn, x)
                    x, f = xn, fn
                    break
                t *= 0.5
            if not moved or np.max(np.abs(t * step)) < 1e-10 * max(1.0, float(np.max(np.abs(x)))):
                break
        return x, msg

    def _conv_measure(self, dev, x, lower, grad=None) -> float:
        """lme4's ``checkConv``: max over components of min(|g|, |chol(H)^-1 g|), projected."""
        if dev(x) >= 1e299:
            return float("inf")
        grad = grad or (lambda z: _fd_grad(dev, z, lower))
        g = grad(x)
        free = self._free(x, g, lower)
        idx = np.flatnonzero(free)
        if not len(idx):
            return 0.0
        gp = g[idx]
        try:
            R = np.linalg.cholesky(self._hessian(dev, x, lower, idx, grad))
            scaled = np.abs(sla.solve_triangular(R, gp, lower=True))
        except np.linalg.LinAlgError:
            scaled = np.full(len(idx), np.inf)
        return float(np.max(np.minimum(np.abs(gp), scaled)))
