"""The result of a GLMM fit (:func:`coevidence.fit_mixed` with ``family=``).

The same interface as :class:`~coevidence.models.mixed.results.MixedResult` (``params``,
``vcov``, ``tidy``, ``glance``, ``variance_components``, ``ranef``, ``predict``, ``summary``),
with what is particular to GLMMs: estimates on the link scale, ``tidy(exponentiate=True)`` for
odds or rate ratios, z tests (as ``glmer``), an overdispersion check and response-scale
predictions (conditional on random effects at zero, or marginal over them).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from coevidence.models.mixed._glmm import _kernels as K
from coevidence.results.base import ResultBase, glance_frame, tidy_frame

__all__ = ["GlmmDiagnostics", "GlmmResult"]


@dataclass(frozen=True)
class GlmmDiagnostics:
    """Convergence and boundary diagnostics of a GLMM fit."""

    converged: bool
    singular: bool
    messages: tuple[str, ...]
    n_evaluations: int
    gradient: tuple[float, ...]
    vcov_source: str  # "hessian" (lme4's default) or "rx"
    optimizer: str
    boundary: pd.DataFrame | None = None  # per variance / correlation: value, at_boundary

    @property
    def ok(self) -> bool:
        return bool(self.converged and not self.singular)


class GlmmResult(ResultBase):
    """A fitted generalised linear mixed model (Laplace, nAGQ = 0 or adaptive quadrature).

    Examples
    --------
    >>> import coevidence as cv
    >>> from coevidence.models.mixed.datasets import load_dataset
    >>> res = cv.fit_mixed("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...                    load_dataset("cbpp"), family="binomial")
    >>> g = res.glance()
    >>> g["family"].item(), round(float(g["log_lik"].item()), 3)
    ('binomial', -92.026)
    """

    def __init__(self, *, fit, problem, info, data, family, link, outcome, formula, diagnostics,
                 conf_level, n_dropped, growth=None, df_caps=None):
        self._fit = fit
        self._problem = problem
        self._info = info
        self._data = data
        self.family: str = family
        self.link: str = link
        self.nagq: int = int(fit.nagq)
        self.outcome: str = outcome
        self.formula: str = formula
        self.diagnostics = diagnostics
        self.conf_level = float(conf_level)
        self.nobs: int = len(problem.y)
        self.n_dropped: int = int(n_dropped)
        # df: z tests (glmer's), unless a design-aware growth model bounded the df of the
        # between-cluster terms by G - q (t tests; Li & Redden 2015)
        self._df_caps = df_caps  # None or (column indices, caps)
        self.df_method = "z" if df_caps is None else "between_within"
        self.cov_type = "model"
        self.reml = False
        self.engine = "fast"
        self.growth = growth
        self._freeze()

    def _copy(self, **changes) -> GlmmResult:
        kw = dict(fit=self._fit, problem=self._problem, info=self._info, data=self._data,
                  family=self.family, link=self.link, outcome=self.outcome,
                  formula=self.formula, diagnostics=self.diagnostics,
                  conf_level=self.conf_level, n_dropped=self.n_dropped, growth=self.growth,
                  df_caps=self._df_caps)
        kw.update(changes)
        return GlmmResult(**kw)

    def with_growth(self, growth) -> GlmmResult:
        """A copy carrying a growth-model specification (used by ``fit_growth``)."""
        return self._copy(growth=growth)

    def _with_df_bounds(self, bounds: dict[int, float]) -> tuple[GlmmResult, bool]:
        """A copy whose tests of contrasts loading on the columns in ``bounds`` use t with at
        most the smallest of their bounds as df (the between-within df of a design-aware
        growth model); other terms keep z tests."""
        idx = np.array(sorted(bounds), dtype=int)
        caps = np.array([bounds[i] for i in idx], dtype=float)
        return self._copy(df_caps=(idx, caps)), bool(len(idx))

    @property
    def _df(self) -> np.ndarray:
        df = np.full(len(self._fit.beta), np.inf)
        if self._df_caps is not None:
            idx, caps = self._df_caps
            df[idx] = caps
        return df

    # ------------------------------------------------------------------ coefficients
    @property
    def params(self) -> pd.Series:
        """Fixed effects on the link scale (a new Series on every access)."""
        return pd.Series(self._fit.beta, index=list(self._problem.fixed_names), name="estimate")

    @property
    def vcov(self) -> pd.DataFrame:
        """Covariance of the fixed effects (lme4's default: from the Hessian over theta and
        beta; ``diagnostics.vcov_source`` says which was used)."""
        names = list(self._problem.fixed_names)
        return pd.DataFrame(self._fit.vcov, index=names, columns=names)

    def df_for(self, L: np.ndarray) -> float:
        """df for the contrast ``L @ beta``: infinite (z tests, as ``glmer`` reports them)
        unless it loads on a between-cluster term whose df were bounded (``fit_growth``)."""
        if self._df_caps is None:
            return float("inf")
        idx, caps = self._df_caps
        L = np.atleast_2d(np.asarray(L, dtype=float))
        hit = np.any(np.abs(L[:, idx]) > 0, axis=0)
        return float(caps[hit].min()) if hit.any() else float("inf")

    @property
    def data(self) -> pd.DataFrame:
        """A copy of the rows used in the fit (as coded for it)."""
        return self._info.data.copy()

    def fixed_matrix(self, newdata: pd.DataFrame) -> np.ndarray:
        """Fixed-effects model matrix for ``newdata`` (same coding as the fit)."""
        from coevidence.models.mixed.results import _fixed_matrix_for

        return _fixed_matrix_for(self._info, newdata)

    def tidy(self, conf_level: float | None = None, exponentiate: bool = False) -> pd.DataFrame:
        """Fixed effects with SE, z statistic, p value and CI (link scale).

        With ``exponentiate=True`` estimates and limits are exponentiated (odds ratios for
        logit, rate ratios for log links) and ``std_error`` is the delta-method SE
        ``exp(b) * se`` (as ``broom.mixed``); statistic and p value are unchanged.

        Examples
        --------
        >>> import coevidence as cv
        >>> from coevidence.models.mixed.datasets import load_dataset
        >>> res = cv.fit_mixed("cbind(incidence, size - incidence) ~ period + (1 | herd)",
        ...                    load_dataset("cbpp"), family="binomial")
        >>> round(float(res.tidy(exponentiate=True)["estimate"][1]), 3)
        0.371
        """
        level = self._level(conf_level)
        est = self._fit.beta
        se = np.sqrt(np.diag(self._fit.vcov))
        out = tidy_frame(self._problem.fixed_names, est, se, self._df, level)
        if exponentiate:
            out["estimate"] = np.exp(est)
            out["std_error"] = np.exp(est) * se
            out["conf_low"] = np.exp(out["conf_low"])
            out["conf_high"] = np.exp(out["conf_high"])
        return out

    # ------------------------------------------------------------------ labels and groups
    @cached_property
    def _labels(self) -> list[str]:
        from coevidence.models.mixed.results import term_labels

        return term_labels(self._problem.terms)

    def _term_cov(self, t_i: int) -> np.ndarray:
        struct = self._data.struct
        li, sl = struct.term_level[t_i]
        lam = self._fit.lams[li][sl, sl]
        return lam @ lam.T

    @property
    def n_params(self) -> int:
        """Parameters as lme4 counts them for AIC: fixed effects + covariance parameters."""
        return len(self._fit.beta) + len(self._data.struct.theta_row)

    # ------------------------------------------------------------------ model-level
    @property
    def objective(self) -> float:
        """lme4's deviance criterion: ``-2 logLik`` (for ``nagq > 1`` on lme4's
        deviance-residual scale, as ``glmer`` reports it)."""
        return float(self._fit.objective)

    @property
    def log_lik(self) -> float:
        return -0.5 * float(self._fit.objective)

    @property
    def theta(self) -> np.ndarray:
        """lme4's ``getME(m, "theta")``."""
        return self._data.struct.report_theta(self._fit.theta)

    @property
    def deviance(self) -> float:
        """lme4's ``deviance()`` of a GLMM: the sum of squared deviance residuals."""
        return float(self._fit.dev_resid_sum)

    def overdispersion(self) -> pd.DataFrame:
        """Pearson chi-square / residual df, with the chi-square p value (Poisson, binomial).

        Ratios well above 1 with a small p value signal overdispersion (consider an
        observation-level random effect ``(1 | obs_id)``). As ``performance::
        check_overdispersion`` for ``glmer`` fits.
        """
        chi2 = float(self._fit.pearson_chi2)
        df = self.nobs - self.n_params
        return pd.DataFrame([{"pearson_chi2": chi2, "df_residual": df, "ratio": chi2 / df,
                              "p_value": float(stats.chi2.sf(chi2, df))}])

    def glance(self) -> pd.DataFrame:
        """One row: nobs, groups per level, log-likelihood, AIC, BIC, deviance, family, etc."""
        ll = self.log_lik
        k = self.n_params
        row: dict[str, Any] = {}
        for t in self._problem.terms:
            row[f"n_groups_{t.group}"] = t.n_levels
        row.update({
            "family": self.family,
            "link": self.link,
            "nagq": self.nagq,
            "log_lik": ll,
            "aic": -2 * ll + 2 * k,
            "bic": -2 * ll + np.log(self.nobs) * k,
            "deviance": self.deviance,
            "df_residual": self.nobs - k,
            "converged": bool(self.diagnostics.converged),
            "singular": bool(self.diagnostics.singular),
            "engine": self.engine,
            "n_dropped": self.n_dropped,
            "conf_level": self.conf_level,
        })
        if self.family == "poisson":
            row["dispersion_ratio"] = float(self.overdispersion()["ratio"].item())
        est = {0: "nagq0", 1: "laplace"}.get(self.nagq, f"agq{self.nagq}")
        return glance_frame(estimator=est, outcome=self.outcome, nobs=self.nobs,
                            cov_type=self.cov_type, df_method=self.df_method, **row)

    def variance_components(self) -> pd.DataFrame:
        """lme4's ``as.data.frame(VarCorr(m))`` (no residual row for binomial/Poisson)."""
        rows = []
        for t_i, (label, t) in enumerate(zip(self._labels, self._problem.terms, strict=True)):
            c = self._term_cov(t_i)
            sd = np.sqrt(np.clip(np.diag(c), 0, None))
            for i, a in enumerate(t.columns):
                rows.append((label, a, None, float(c[i, i]), float(sd[i])))
            for i in range(len(t.columns)):
                for j in range(i + 1, len(t.columns)):
                    corr = c[i, j] / (sd[i] * sd[j]) if sd[i] * sd[j] > 0 else np.nan
                    rows.append((label, t.columns[i], t.columns[j], float(c[i, j]), float(corr)))
        return pd.DataFrame(rows, columns=["group", "term1", "term2", "vcov", "sdcor"])

    def icc(self) -> pd.DataFrame:
        """Latent-scale ICCs of the random intercepts: ``tau_k / (sum tau + pi^2 / 3)`` for logit
        (``+ 1`` for probit, ``+ pi^2 / 6`` for cloglog); for Poisson the lognormal
        approximation ``tau_k / (sum tau + log(1 + 1/lambda))`` at the mean rate (Nakagawa,
        Johnson & Schielzeth 2017)."""
        vc = self.variance_components()
        ints = vc[(vc["term1"] == "(Intercept)") & vc["term2"].isna()]
        tau = ints["vcov"].to_numpy()
        if self.family == "binomial":
            resid = {"logit": np.pi ** 2 / 3, "probit": 1.0, "cloglog": np.pi ** 2 / 6}[self.link]
        else:
            lam = float(np.exp(self._fit.beta[0] + 0.5 * tau.sum()))
            resid = float(np.log1p(1.0 / lam))
        return pd.DataFrame({"group": ints["group"].to_numpy(),
                             "icc": tau / (tau.sum() + resid)})

    def ranef(self, condvar: bool = False) -> dict[str, pd.DataFrame]:
        """Conditional modes per grouping term (``lme4::ranef``); with ``condvar=True`` also
        ``<column>_condsd`` (lme4's conditional SDs)."""
        struct = self._data.struct
        out = {}
        for t_i, (label, term) in enumerate(zip(self._labels, self._problem.terms, strict=True)):
            li, sl = struct.term_level[t_i]
            lv = struct.levels[li]
            b = (self._fit.u[li] @ self._fit.lams[li].T)[:, sl]
            cv = np.einsum("gii->gi", self._fit.condvar[li])[:, sl]
            full_b = np.zeros((term.n_levels, b.shape[1]))
            full_v = np.zeros_like(full_b)
            full_b[lv.used] = b
            full_v[lv.used] = cv
            frame = pd.DataFrame(full_b, index=term.levels, columns=list(term.columns))
            if condvar:
                for j, c in enumerate(term.columns):
                    frame[f"{c}_condsd"] = np.sqrt(full_v[:, j])
            out[label] = frame
        return out

    # ------------------------------------------------------------------ predictions
    def fitted(self, type: str = "response") -> np.ndarray:  # noqa: A002 - R's argument name
        """Fitted values with the conditional modes (``fitted(m)``; ``type="link"`` for eta)."""
        if type not in ("response", "link"):
            raise ValueError(f"type must be 'response' or 'link', got {type!r}")
        eta = np.asarray(self._fit.eta, float)
        return eta.copy() if type == "link" else K.link_inverse(self._data.link, eta)[0]

    def residuals(self, type: str = "deviance") -> np.ndarray:  # noqa: A002
        """Residuals as ``residuals(m, type=)``: ``deviance`` (default), ``pearson``,
        ``response`` or ``working``."""
        d = self._data
        eta = np.asarray(self._fit.eta, float)
        mu, dm = K.link_inverse(d.link, eta)
        if type == "response":
            return d.y - mu
        if type == "pearson":
            return (d.y - mu) * np.sqrt(d.m / K.variance(d.fam, mu))
        if type == "working":
            return (d.y - mu) / dm
        if type == "deviance":
            dev = K.deviance_residuals(d.fam, d.y, d.m, mu)
            return np.sign(d.y - mu) * np.sqrt(np.clip(dev, 0, None))
        raise ValueError("type must be 'deviance', 'pearson', 'response' or 'working'")

    def predict(self, newdata: pd.DataFrame | None = None, level: str = "population",
                interval: str | None = None, conf_level: float | None = None, *,
                type: str = "link") -> pd.DataFrame:  # noqa: A002 - lme4's argument name
        """Predictions on the link (lme4's default) or response scale.

        Parameters
        ----------
        newdata : DataFrame, optional
            Rows to predict; defaults to the rows of the fit. Groups not seen in the fit get
            random effects of 0 (``allow.new.levels = TRUE``).
        level : {"population", "conditional"}
            Random effects at 0, or at their conditional modes.
        interval : {None, "confidence"}
            Delta-method interval: the fixed part's covariance (plus the conditional variance
            of the modes at ``level="conditional"``), normal reference; on the response scale
            the back-transformed link-scale limits.
        type : {"link", "response"}

        Returns
        -------
        DataFrame with ``fitted`` and, with an interval, ``std_error`` (on the scale of
        ``type``), ``df`` (inf), ``lower`` and ``upper``; aligned with ``newdata``'s index.
        """
        from coevidence.exceptions import OptionError
        from coevidence.models.mixed.formula import random_matrix
        from coevidence.models.mixed.results import (
            _as_fitted_types,
            _fixed_matrix_for,
            _group_labels,
        )

        if level not in ("population", "conditional"):
            raise OptionError(f"level must be 'population' or 'conditional', got {level!r}")
        if interval not in (None, "confidence"):
            raise OptionError(f"interval must be None or 'confidence', got {interval!r}")
        if type not in ("link", "response"):
            raise OptionError(f"type must be 'link' or 'response', got {type!r}")
        lvl = self._level(conf_level)
        data = self._info.data if newdata is None else newdata
        index = self._info.row_index if newdata is None else newdata.index
        X = self._problem.X if newdata is None else _fixed_matrix_for(self._info, newdata)
        eta = X @ self._fit.beta
        var = np.einsum("ij,jk,ik->i", X, self._fit.vcov, X)
        if level == "conditional":
            modes = self.ranef(condvar=True)
            for t_i, (spec, label, term) in enumerate(
                    zip(self._info.random, self._labels, self._problem.terms, strict=True)):
                Z, _ = random_matrix(spec.expr, _as_fitted_types(self._info.data, data))
                frame = modes[label]
                cols = list(term.columns)
                pos = frame.index.get_indexer(_group_labels(data, spec.factors))
                known = pos >= 0
                b = np.zeros_like(Z)
                b[known] = frame[cols].to_numpy()[pos[known]]
                eta = eta + np.sum(Z * b, axis=1)
                cvals = np.zeros_like(Z)
                cvals[known] = frame[[f"{c}_condsd" for c in cols]].to_numpy()[pos[known]] ** 2
                cvals[~known] = np.diag(self._term_cov(t_i))
                var = var + np.sum(Z ** 2 * cvals, axis=1)
        link = self._data.link
        fitted = eta if type == "link" else K.link_inverse(link, eta)[0]
        out = pd.DataFrame({"fitted": fitted}, index=index)
        if interval is None:
            return out
        se = np.sqrt(var)
        df = np.full(len(X), np.inf)
        if self._df_caps is not None and level == "population":
            rows, inverse = np.unique(np.asarray(X, float), axis=0, return_inverse=True)
            df = np.array([self.df_for(r) for r in rows])[np.ravel(inverse)]
        z = np.where(np.isfinite(df), stats.t.ppf(0.5 + lvl / 2, np.where(np.isfinite(df), df, 1)),
                     stats.norm.ppf(0.5 + lvl / 2))
        lo, hi = eta - z * se, eta + z * se
        if type == "response":
            se = K.link_inverse(link, eta)[1] * se
            lo, hi = K.link_inverse(link, lo)[0], K.link_inverse(link, hi)[0]
        out["std_error"] = se
        out["df"] = df
        out["lower"] = lo
        out["upper"] = hi
        return out

    # ------------------------------------------------------------------ text
    def summary(self) -> str:
        tid = self.tidy()
        g = self.glance().iloc[0]
        method = {0: "nAGQ = 0 (PIRLS estimates of beta)", 1: "Laplace approximation"}.get(
            self.nagq, f"adaptive Gauss-Hermite quadrature, {self.nagq} nodes")
        lines = [
            f"Generalized linear mixed model fit by maximum likelihood ({method})",
            f" Family: {self.family} ( {self.link} )",
            f"Formula: {self.formula}",
            f"Observations: {self.nobs}" + "".join(
                f"; {t.group}: {t.n_levels}" for t in self._problem.terms),
            f"     AIC      BIC   logLik deviance df.resid\n"
            f"{g['aic']:8.1f} {g['bic']:8.1f} {g['log_lik']:8.1f} {g['deviance']:8.1f} "
            f"{int(g['df_residual']):8d}",
            "Covariance: model-based (inverse Hessian over theta and beta); df method: "
            + ("normal (z) tests, as glmer" if self._df_caps is None else
               "t with between-within df (clusters - cluster-level terms) for the "
               "between-cluster terms, z for the others"),
            "Random effects:",
        ]
        vc = self.variance_components()
        for _, r in vc.iterrows():
            if r["term2"] is None or pd.isna(r["term2"]):
                lines.append(f" {r['group']:<14} {r['term1']:<14} var {r['vcov']:.4g}  "
                             f"sd {r['sdcor']:.4g}")
            else:
                lines.append(f" {r['group']:<14} corr({r['term1']}, {r['term2']}) "
                             f"{r['sdcor']:.3f}")
        lines.append("Fixed effects (link scale):")
        lines.append(tid.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        for msg in self.diagnostics.messages:
            lines.append(f"Note: {msg}")
        return "\n".join(lines)

    def _html(self) -> str:
        import html

        parts = [f"<div class='coevidence-result'><strong>{html.escape(type(self).__name__)}: "
                 f"{html.escape(self.family)} ({html.escape(self.link)})</strong>",
                 "<p>Model</p>", self.glance().to_html(index=False, border=0),
                 "<p>Fixed effects (link scale)</p>",
                 self.tidy().to_html(index=False, border=0, float_format=lambda v: f"{v:.4g}"),
                 "<p>Random effects</p>", self.variance_components().to_html(index=False,
                                                                             border=0),
                 "</div>"]
        return "".join(parts)

