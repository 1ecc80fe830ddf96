"""Confidence intervals, residuals and simulation of a linear mixed model, as lme4 does them.

* :func:`confint` (``MixedResult.confint``): lme4's ``confint.merMod`` with ``method`` "wald",
  "profile" or "boot". Parameters are named and ordered as lme4 names them with
  ``oldNames = FALSE``: ``sd_(Intercept)|g``, ``cor_x.(Intercept)|g``, ..., ``sigma``, then the
  fixed effects.
* :func:`residuals` (``MixedResult.residuals``): ``residuals.merMod``.
* :func:`simulate` (``MixedResult.simulate``): ``simulate.merMod``.

Examples
--------
>>> import coevidence as cv
>>> from coevidence.models.mixed.datasets import load_dataset
>>> m = cv.fit_mixed("reaction ~ days + (days | subject)", load_dataset("sleepstudy"))
>>> m.confint(method="wald")["term"].tolist()[-2:]
['(Intercept)', 'days']
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import optimize, stats

from coevidence.exceptions import OptionError
from coevidence.models._shared.options import check_choice, check_conf_level

__all__ = ["confint", "residuals", "simulate"]


# ------------------------------------------------------------------------ parameters
def _sd_cor_names(m) -> list[str]:
    """lme4's ``oldNames = FALSE`` names of the variance parameters (theta order)."""
    out = []
    for t in m._problem.terms:
        cols = t.columns
        k = len(cols)
        for j in range(k):
            for i in range(j, k):
                if i == j:
                    out.append(f"sd_{cols[i]}|{t.group}")
                elif t.correlated:
                    out.append(f"cor_{cols[i]}.{cols[j]}|{t.group}")
    out.append("sigma")
    return out


def _sizes(m) -> tuple[int, ...]:
    return tuple(len(t.columns) for t in m._problem.terms)


def _sd_cor_from_fit(fit, terms) -> np.ndarray:
    out = []
    for t, c in zip(terms, fit.covariances):
        k = len(t.columns)
        sd = np.sqrt(np.clip(np.diag(c), 0, None))
        for j in range(k):
            for i in range(j, k):
                if i == j:
                    out.append(sd[i])
                elif t.correlated:
                    out.append(c[i, j] / (sd[i] * sd[j]) if sd[i] * sd[j] > 0 else 0.0)
    out.append(np.sqrt(fit.sigma2))
    return np.asarray(out, dtype=float)


def _varpar_from_sd_cor(s: np.ndarray, terms) -> np.ndarray:
    from coevidence.models.mixed._likelihood import varpar_from

    pos, covs = 0, []
    for t in terms:
        k = len(t.columns)
        R = np.eye(k)  # noqa: N806
        sd = np.zeros(k)
        for j in range(k):
            for i in range(j, k):
                if i == j:
                    sd[i] = s[pos]
                    pos += 1
                elif t.correlated:
                    R[i, j] = R[j, i] = s[pos]
                    pos += 1
        covs.append(R * np.outer(sd, sd))
    return varpar_from(tuple(covs), float(s[-1]) ** 2)


def _bounds(m) -> list[tuple[float, float]]:
    out = []
    for name in _sd_cor_names(m):
        out.append((-1.0, 1.0) if name.startswith("cor_") else (0.0, np.inf))
    return out


# ------------------------------------------------------------------------ confint
def confint(m, *, method: str = "profile", parm=None, level: float = 0.95, nsim: int = 500,
            seed=None) -> pd.DataFrame:
    """Confidence intervals of the variance parameters and fixed effects (lme4's ``confint``).

    Parameters
    ----------
    m : MixedResult
    method : {"profile", "wald", "boot"}, default "profile"
        ``"profile"``: likelihood-profile intervals. As lme4, a REML fit is refitted by ML
        and the ML deviance is profiled over each parameter on lme4's scale (standard
        deviations, correlations, ``sigma``, fixed effects), the others re-optimised; the
        limits are where the signed square root of the deviance change equals the normal
        quantile (found by root-finding, where lme4 interpolates a spline through a grid of
        profile points). A limit that would leave the parameter space is the boundary (0 for
        a standard deviation, +-1 for a correlation). ``"wald"``: fixed effects +- z SE (the
        model-based SE), variance parameters missing (as lme4). ``"boot"``: parametric
        bootstrap, percentile intervals of ``nsim`` refits to outcomes simulated from the fit
        with new random effects (``simulate(use_re=False)``).
    parm : str or list of str, optional
        Parameter names (``confint()["term"]``), or ``"beta_"`` (fixed effects) /
        ``"theta_"`` (variance parameters). Default: all.
    level : float, default 0.95
    nsim : int, default 500
        Bootstrap replicates (``method="boot"``).
    seed : int or numpy Generator, optional
        Bootstrap seed.

    Returns
    -------
    DataFrame with ``term``, ``lower``, ``upper`` (``estimate`` too), one row per parameter.

    Examples
    --------
    >>> import coevidence as cv
    >>> from coevidence.models.mixed.datasets import load_dataset
    >>> m = cv.fit_mixed("reaction ~ days + (1 | subject)", load_dataset("sleepstudy"))
    >>> ci = m.confint(method="profile", parm="beta_")
    >>> bool(ci["lower"].iloc[1] < 10.47 < ci["upper"].iloc[1])
    True
    """
    check_choice("method", method, ("profile", "wald", "boot"))
    level = check_conf_level(level)
    vnames = _sd_cor_names(m)
    fnames = list(m._problem.fixed_names)
    names = vnames + fnames
    if parm is None:
        want = names
    elif isinstance(parm, str) and parm in ("beta_", "theta_"):
        want = fnames if parm == "beta_" else vnames
    else:
        want = [parm] if isinstance(parm, str) else list(parm)
        bad = [p for p in want if p not in names]
        if bad:
            raise OptionError(f"parm has unknown parameter(s) {bad}; known: {names}")
    est = np.r_[_sd_cor_from_fit(m._fit, m._problem.terms), m._fit.beta]
    est_of = dict(zip(names, est))
    if method == "wald":
        z = stats.norm.ppf(0.5 + level / 2)
        se = dict(zip(fnames, np.sqrt(np.diag(np.asarray(m._fit.vcov_beta)))))
        rows = [(p, est_of[p], est_of[p] - z * se[p], est_of[p] + z * se[p]) if p in se
                else (p, est_of[p], np.nan, np.nan) for p in want]
    elif method == "profile":
        from coevidence.models.mixed._fast.engine import _one_blas_thread

        with _one_blas_thread():  # thin BLAS calls: extra threads only spin on busy cores
            rows = _profile_ci(m, want, vnames, fnames, level)
    else:
        rows = _boot_ci(m, want, names, level, nsim, seed)
    return pd.DataFrame(rows, columns=["term", "estimate", "lower", "upper"])


def _ml_fit(m):
    if not m.reml:
        return m
    from coevidence.models.mixed.anova import _refit

    return _refit(m, reml=False)


def _profile_ci(m, want, vnames, fnames, level):
    ml = _ml_fit(m)
    terms = ml._problem.terms
    s_hat = _sd_cor_from_fit(ml._fit, terms)
    beta_hat = np.asarray(ml._fit.beta, dtype=float)
    dev_at = ml._fit.objective_at
    base = float(ml._fit.objective)
    bounds = _bounds(ml)
    z = stats.norm.ppf(0.5 + level / 2)
    rows = []
    for p in want:
        if p in vnames:
            i = vnames.index(p)
            prof = _VarProfile(dev_at, terms, s_hat, i, bounds, base)
            lo_b, hi_b = bounds[i]
            center = s_hat[i]
            scale = max(abs(center) * 0.25, 1e-3 if p.startswith("cor_") else 1e-2 * s_hat[-1])
        else:
            j = fnames.index(p)
            prof = _FixedProfile(ml, j, base)
            lo_b, hi_b = -np.inf, np.inf
            center = beta_hat[j]
            scale = float(np.sqrt(np.asarray(ml._fit.vcov_beta)[j, j]))
        lo = _limit(prof, center, -1, -z, scale, lo_b)
        hi = _limit(prof, center, +1, z, scale, hi_b)
        est = s_hat[vnames.index(p)] if p in vnames else beta_hat[fnames.index(p)]
        if m.reml:  # the estimate reported is the fit's own
            own = np.r_[_sd_cor_from_fit(m._fit, m._problem.terms), m._fit.beta]
            est = own[(vnames + fnames).index(p)]
        rows.append((p, est, lo, hi))
    return rows


def _limit(prof, center, sign, target, scale, bound):
    """The value on one side of ``center`` where the signed root deviance equals ``target``."""
    prof.reset()
    step = scale
    prev = center
    for _ in range(60):
        x = center + sign * step
        if sign < 0 and x <= bound:
            x = bound
        if sign > 0 and x >= bound:
            x = bound
        zeta = prof.zeta(x)
        if not np.isfinite(zeta):
            return np.nan
        if (zeta - target) * sign >= 0:
            break
        if x == bound:
            return float(bound)
        prev = x
        step *= 2
    else:
        return np.nan
    a, b = (x, prev) if sign < 0 else (prev, x)
    return float(optimize.brentq(lambda v: prof.zeta(v) - target, a, b, xtol=1e-10,
                                 rtol=1e-12))


class _VarProfile:
    """Profiled ML deviance over one sd/cor/sigma parameter (the others re-optimised)."""

    def __init__(self, dev_at, terms, s_hat, i, bounds, base):
        self.dev_at, self.terms, self.s_hat, self.i, self.base = dev_at, terms, s_hat, i, base
        self.others = [k for k in range(len(s_hat)) if k != i]
        self.bounds = [bounds[k] for k in self.others]
        self.start = s_hat[self.others].copy()

    def reset(self):
        self.start = self.s_hat[self.others].copy()

    def _dev(self, rest, v):
        s = self.s_hat.copy()
        s[self.others] = rest
        s[self.i] = v
        val = self.dev_at(_varpar_from_sd_cor(s, self.terms))
        return float(val) if np.isfinite(val) else 1e300

    def zeta(self, v):
        if self.others:
            # scale-free steps: optimise x = rest / |start| where possible
            sc = np.where(np.abs(self.start) > 1e-8, np.abs(self.start), 1.0)
            bnds = [(lo / s, hi / s) for (lo, hi), s in zip(self.bounds, sc)]
            x0 = np.clip(self.start / sc, [b[0] for b in bnds], [b[1] for b in bnds])
            res = optimize.minimize(lambda x: self._dev(x * sc, v), x0, method="L-BFGS-B",
                                    bounds=bnds, options={"ftol": 1e-15, "gtol": 1e-9,
                                                          "maxiter": 2000})
            best = res
            self.start = best.x * sc
            dev = float(best.fun)
        else:
            dev = self._dev(np.empty(0), v)
        d = max(dev - self.base, 0.0)
        return float(np.sign(v - self.s_hat[self.i]) * np.sqrt(d))


class _FixedProfile:
    """Profiled ML deviance over one fixed effect (the model refitted with it as an offset)."""

    def __init__(self, ml, j, base):
        from dataclasses import replace

        from coevidence.models.mixed.api import _choose_engine

        prob = ml._problem
        X = np.asarray(prob.X, dtype=float)  # noqa: N806
        self.xj = X[:, j]
        self.y = np.asarray(prob.y, dtype=float)
        keep = [k for k in range(X.shape[1]) if k != j]
        self.prob = replace(prob, X=X[:, keep], reml=False,
                            fixed_names=tuple(prob.fixed_names[k] for k in keep))
        self.engine, _ = _choose_engine(self.prob, "auto")
        self.center = float(ml._fit.beta[j])
        self.base = base
        self._replace = replace

    def reset(self):
        pass

    def zeta(self, v):
        prob = self._replace(self.prob, y=self.y - self.xj * v)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = self.engine.fit(prob)
        d = max(float(fit.objective) - self.base, 0.0)
        return float(np.sign(v - self.center) * np.sqrt(d))


def _boot_ci(m, want, names, level, nsim, seed):
    if int(nsim) != nsim or nsim < 10:
        raise OptionError(f"nsim must be an integer >= 10, got {nsim!r}")
    sims = simulate(m, nsim=int(nsim), seed=seed, use_re=False)
    draws = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for c in sims.columns:
            r = m.refit(sims[c].to_numpy())
            draws.append(np.r_[_sd_cor_from_fit(r._fit, r._problem.terms), r._fit.beta])
    D = np.asarray(draws)  # noqa: N806
    est = np.r_[_sd_cor_from_fit(m._fit, m._problem.terms), m._fit.beta]
    a = (1 - level) / 2
    rows = []
    for p in want:
        k = names.index(p)
        col = D[:, k][np.isfinite(D[:, k])]
        rows.append((p, est[k], float(np.quantile(col, a)), float(np.quantile(col, 1 - a))))
    return rows


# ------------------------------------------------------------------------ residuals
def residuals(m, *, type: str = "response", level: str = "conditional",
              scaled: bool = False) -> pd.Series:
    """Residuals as lme4's ``residuals.merMod``.

    Parameters
    ----------
    m : MixedResult
    type : {"response", "pearson", "deviance"}
        For an unweighted linear mixed model the three are equal (lme4: Pearson residuals are
        ``sqrt(weights) * (y - mu)``, deviance residuals ``sign(y - mu) sqrt(dev_i)``).
    level : {"conditional", "marginal"}
        ``conditional``: ``y - X beta - Z b`` (BLUPs included, lme4's default);
        ``marginal``: ``y - X beta``.
    scaled : bool, default False
        Divide by the residual SD ``sigma`` (lme4's ``scaled = TRUE``).

    Returns
    -------
    pandas.Series aligned with the rows of the fit.

    Examples
    --------
    >>> import coevidence as cv
    >>> from coevidence.models.mixed.datasets import load_dataset
    >>> m = cv.fit_mixed("reaction ~ days + (days | subject)", load_dataset("sleepstudy"))
    >>> round(float(m.residuals().iloc[0]), 2)
    -4.1
    """
    check_choice("type", type, ("response", "pearson", "deviance"))
    check_choice("level", level, ("conditional", "marginal"))
    y = np.asarray(m._problem.y, dtype=float)
    mu = np.asarray(m._problem.X, float) @ np.asarray(m._fit.beta, float)
    if level == "conditional":
        mu = mu + _zb(m, [np.asarray(r.to_numpy(), float) for r in m._fit.ranef])
    r = y - mu
    if scaled:
        r = r / m.sigma
    return pd.Series(r, index=m._info.row_index, name=f"{type}_residual")


def _zb(m, modes: list[np.ndarray]) -> np.ndarray:
    out = np.zeros(len(m._problem.y))
    for t, b in zip(m._problem.terms, modes):
        out += np.sum(np.asarray(t.Z, float) * b[t.codes], axis=1)
    return out


# ------------------------------------------------------------------------ simulate
def simulate(m, *, nsim: int = 1, seed=None, use_re: bool = False) -> pd.DataFrame:
    """Outcomes simulated from the fitted model (lme4's ``simulate.merMod``).

    Parameters
    ----------
    m : MixedResult
    nsim : int, default 1
    seed : int or numpy Generator, optional
    use_re : bool, default False
        ``False`` (lme4's default ``re.form = NA`` / ``use.u = FALSE``): new random effects
        are drawn from their fitted distribution for every group, ``y* = X beta + Z b* + e*``.
        ``True`` (``re.form = NULL`` / ``use.u = TRUE``): the random effects are held at the
        BLUPs, ``y* = X beta + Z b_hat + e*``; only the residuals are new.

    Returns
    -------
    DataFrame with one column per simulation (``sim_1``, ``sim_2``, ...; lme4's names),
    aligned with the rows of the fit.

    Examples
    --------
    >>> import coevidence as cv
    >>> from coevidence.models.mixed.datasets import load_dataset
    >>> m = cv.fit_mixed("reaction ~ days + (1 | subject)", load_dataset("sleepstudy"))
    >>> m.simulate(nsim=3, seed=1).shape
    (180, 3)
    """
    if isinstance(nsim, bool) or int(nsim) != nsim or nsim < 1:
        raise OptionError(f"nsim must be a positive integer, got {nsim!r}")
    if not isinstance(use_re, bool):
        raise OptionError(f"use_re must be True or False, got {use_re!r}")
    nsim = int(nsim)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    n = len(m._problem.y)
    fixed = np.asarray(m._problem.X, float) @ np.asarray(m._fit.beta, float)
    out = np.empty((n, nsim))
    blup = _zb(m, [np.asarray(r.to_numpy(), float) for r in m._fit.ranef]) if use_re else None
    for s in range(nsim):
        mu = fixed.copy()
        if use_re:
            mu += blup
        else:
            for t, cov in zip(m._problem.terms, m._fit.covariances):
                k = len(t.columns)
                w, U = np.linalg.eigh(np.asarray(cov, float))  # noqa: N806
                root = U * np.sqrt(np.clip(w, 0, None))
                b = rng.standard_normal((t.n_levels, k)) @ root.T
                mu += np.sum(np.asarray(t.Z, float) * b[t.codes], axis=1)
        out[:, s] = mu + rng.normal(0.0, m.sigma, n)
    return pd.DataFrame(out, index=m._info.row_index,
                        columns=[f"sim_{i + 1}" for i in range(nsim)])
