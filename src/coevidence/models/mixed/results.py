"""The result of a linear mixed model fit: one immutable class for every engine.

Examples
--------
>>> import coevidence as cv
>>> from coevidence.models.mixed.datasets import load_dataset
>>> res = cv.fit_mixed("reaction ~ days + (days | subject)", load_dataset("sleepstudy"))
>>> round(float(res.tidy().loc[1, "estimate"]), 4)
10.4673
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from coevidence.exceptions import OptionError
from coevidence.results.base import ResultBase, _frame_html, glance_frame, tidy_frame

__all__ = ["MixedDiagnostics", "MixedResult"]


@dataclass(frozen=True)
class MixedDiagnostics:
    """Everything known about how trustworthy a mixed-model fit is.

    Attributes
    ----------
    attempts : DataFrame, one row per optimizer attempt (chosen one flagged).
    chosen : position of the kept attempt.
    converged : whether the kept attempt converged.
    gradient_norm : lme4's relative gradient max |H^-1 g| in (theta, sigma) at the optimum
        (as reported by the engine for the kept attempt).
    boundary : DataFrame, one row per variance parameter with its value, its size relative to
        the outcome's variance, and ``at_boundary`` (variance ~ 0 or correlation ~ +-1).
    singular : lme4's rule: a diagonal element of theta below 1e-4.
    hessian_eigenvalues : eigenvalues of the deviance Hessian in (theta, sigma).
    hessian_ok : Hessian positive definite (relative tolerance 1e-8).
    messages : human-readable problems (empty for a clean fit).

    Examples
    --------
    >>> import coevidence as cv
    >>> from coevidence.models.mixed.datasets import load_dataset
    >>> res = cv.fit_mixed("reaction ~ days + (days | subject)", load_dataset("sleepstudy"))
    >>> res.diagnostics.ok, res.diagnostics.singular
    (True, False)
    """

    attempts: pd.DataFrame
    chosen: int
    converged: bool
    gradient_norm: float
    boundary: pd.DataFrame
    singular: bool
    hessian_eigenvalues: np.ndarray
    hessian_ok: bool
    messages: tuple[str, ...] = ()
    engine_note: str = ""

    @property
    def ok(self) -> bool:
        """True when nothing needs the user's attention."""
        return not self.messages

    def __getattribute__(self, name: str) -> Any:
        # frames and arrays come out as copies: the diagnostics of a result cannot be changed
        value = object.__getattribute__(self, name)
        if name in _COPIED_FIELDS:
            return value.copy()
        return value


_COPIED_FIELDS = frozenset({"attempts", "boundary", "hessian_eigenvalues"})

#: ``cov_type`` codes of mixed results and their descriptions in ``summary()``.
_COV_LABEL = {
    "model": "model",
    "cr2": "cr2",
    "kenward_roger": "model (Kenward-Roger adjusted)",
}


@dataclass(frozen=True)
class _Inference:
    df_method: str
    cov_type: str
    vcov: np.ndarray
    df: np.ndarray
    df_fn: Any = field(repr=False)  # L (1-d) -> df


@dataclass(frozen=True)
class _DfBound:
    """df of ``L @ beta``: the base rule, at most the smallest bound of the columns L loads on
    (a module-level class so that results pickle)."""

    base: Any
    idx: np.ndarray
    caps: np.ndarray

    def __call__(self, L: np.ndarray) -> float:
        L = np.atleast_2d(np.asarray(L, dtype=float))
        d = float(self.base(L if L.shape[0] > 1 else L[0]))
        hit = np.any(np.abs(L[:, self.idx]) > 0, axis=0)
        if hit.any():
            d = min(d, float(self.caps[hit].min()))
        return d


class MixedResult(ResultBase):
    """A fitted linear mixed model (lme4-compatible quantities).

    Built by :func:`coevidence.fit_mixed` / :func:`coevidence.fit_growth`; do not construct it
    directly. Immutable: every accessor returns new pandas objects.

    Attributes
    ----------
    formula : str
    params : pandas.Series of fixed effects
    vcov : pandas.DataFrame, covariance of the fixed effects (model-based, Kenward-Roger adjusted
        or CR2, as ``cov_type``/``df_method`` say)
    diagnostics : MixedDiagnostics
    nobs : int
    reml : bool
    engine : str

    Examples
    --------
    >>> import coevidence as cv
    >>> from coevidence.models.mixed.datasets import load_dataset
    >>> res = cv.fit_mixed("reaction ~ days + (days | subject)", load_dataset("sleepstudy"))
    >>> g = res.glance().iloc[0]
    >>> int(g["nobs"]), bool(g["reml"]), g["df_method"]
    (180, True, 'satterthwaite')
    """

    def __init__(
        self, *, fit, problem, info, inference: _Inference, diagnostics, conf_level, growth=None
    ):
        self._fit = fit
        self._problem = problem
        self._info = info
        self._inf = inference
        self.formula: str = info.formula
        self.reml: bool = problem.reml
        self.engine: str = fit.engine
        self.nobs: int = len(problem.y)
        self.conf_level: float = float(conf_level)
        self.diagnostics: MixedDiagnostics = diagnostics
        self.df_method: str = inference.df_method
        self.cov_type: str = _cov_code(inference.cov_type)
        self.growth = growth
        self._freeze()

    @property
    def params(self) -> pd.Series:
        """Fixed effects (a new Series on every access)."""
        return pd.Series(self._fit.beta, index=list(self._problem.fixed_names), name="estimate")

    @property
    def vcov(self) -> pd.DataFrame:
        """Covariance of the fixed effects used for inference (a new DataFrame each time)."""
        names = list(self._problem.fixed_names)
        return pd.DataFrame(self._inf.vcov, index=names, columns=names)

    def with_growth(self, growth) -> MixedResult:
        """A copy carrying a growth-model specification (used by ``fit_growth``)."""
        return MixedResult(
            fit=self._fit, problem=self._problem, info=self._info, inference=self._inf,
            diagnostics=self.diagnostics, conf_level=self.conf_level, growth=growth,
        )

    def refit(self, y, *, warm_start: bool = False, cluster: str | None = None) -> MixedResult:
        """The model refitted to a new outcome ``y`` on the same rows (X and Z reused).

        See :func:`coevidence.models.mixed.refit.refit_mixed` (growth results:
        :func:`~coevidence.models.mixed.refit.refit_growth`, which also re-applies the design
        df rules). Equal to ``fit_mixed`` on the data with the new outcome.
        """
        from coevidence.models.mixed.refit import refit_growth, refit_mixed

        self._refuse_weighted("refit")
        if self.growth is not None and getattr(self.growth, "design", None) is not None:
            return refit_growth(self, y, warm_start=warm_start, stacklevel=3)
        return refit_mixed(self, y, warm_start=warm_start, cluster=cluster, stacklevel=3)

    def _with_df_bounds(self, bounds: dict[int, float]) -> tuple[MixedResult, bool]:
        """A copy whose df for contrasts loading on the columns in ``bounds`` are at most the
        smallest of their bounds (the between-cluster df of a design-aware growth model).
        Returns the copy and whether any df changed."""
        inf = self._inf
        idx = np.array(sorted(bounds), dtype=int)
        caps = np.array([bounds[i] for i in idx], dtype=float)
        df = np.asarray(inf.df, dtype=float).copy()
        above = ~(df[idx] <= caps)  # NaN or infinite df are bounded too
        df[idx[above]] = caps[above]
        new = _Inference(inf.df_method, inf.cov_type, inf.vcov, df,
                         _DfBound(inf.df_fn, idx, caps))
        res = MixedResult(
            fit=self._fit, problem=self._problem, info=self._info, inference=new,
            diagnostics=self.diagnostics, conf_level=self.conf_level, growth=self.growth,
        )
        return res, bool(above.any())

    @property
    def weights_info(self):
        """What the group weights were (``None`` for an unweighted fit): source, level,
        number of groups, scale, effective number of groups, range."""
        return getattr(self._info, "weights", None)

    def _refuse_weighted(self, what: str) -> None:
        if self.weights_info is not None:
            raise OptionError(
                f"{what} is not available for a weighted fit: its (RE)ML criterion is a "
                "pseudo-likelihood (each weighted group counted as copies), so likelihood "
                "comparisons, profiles and refits of it have no sampling meaning; use the CR2 "
                "tests of tidy() and contrasts")

    @property
    def data(self) -> pd.DataFrame:
        """A copy of the rows used in the fit (as coded for it)."""
        return self._info.data.copy()

    def fixed_matrix(self, newdata: pd.DataFrame) -> np.ndarray:
        """Fixed-effects model matrix for ``newdata`` (same coding as the fit)."""
        return _fixed_matrix_for(self._info, newdata)

    # ------------------------------------------------------------------ labels
    @cached_property
    def _labels(self) -> list[str]:
        """lme4's term labels: a repeated grouping factor gets ``.1``, ``.2`` suffixes."""
        return term_labels(self._problem.terms)

    # ------------------------------------------------------------------ core tables
    def tidy(self, conf_level: float | None = None) -> pd.DataFrame:
        """Fixed effects with SE, t statistic, df, p value and CI (columns of broom's tidy).

        Examples
        --------
        >>> from coevidence.models.mixed.datasets import load_dataset
        >>> import coevidence as cv
        >>> res = cv.fit_mixed("reaction ~ days + (1 | subject)", load_dataset("sleepstudy"))
        >>> res.tidy(conf_level=0.9).columns.tolist()[:3]
        ['term', 'estimate', 'std_error']
        """
        level = self._level(conf_level)
        est = self._fit.beta
        se = np.sqrt(np.diag(self._inf.vcov))
        return tidy_frame(self._problem.fixed_names, est, se, self._inf.df, level)

    @cached_property
    def _ngroups(self) -> dict[str, int]:
        return {t.group: t.n_levels for t in self._problem.terms}

    @property
    def n_params(self) -> int:
        """Number of parameters as lme4 counts them for AIC (fixed + variance + residual)."""
        return len(self._fit.beta) + len(self._fit.varpar)

    def glance(self) -> pd.DataFrame:
        """One row: nobs, groups per level, log-likelihood, AIC, BIC, REML, convergence, etc."""
        ll = float(self._fit.loglik)
        k = self.n_params
        row: dict[str, Any] = {}
        for g, n in self._ngroups.items():
            row[f"n_groups_{g}"] = n
        row.update(
            {
                "sigma": float(np.sqrt(self._fit.sigma2)),
                "log_lik": ll,
                "aic": -2 * ll + 2 * k,
                "bic": -2 * ll + np.log(self.nobs) * k,
                "deviance": float(self._fit.objective),
                "reml": self.reml,
                "converged": bool(self.diagnostics.converged),
                "singular": bool(self.diagnostics.singular),
                "optimizer": self._fit.attempts[self._fit.chosen].optimizer
                if self._fit.attempts
                else "",
                "engine": self.engine,
                "n_dropped": int(self._info.n_dropped),
                "conf_level": self.conf_level,
            }
        )
        if self.weights_info is not None:  # a pseudo-likelihood: no information criteria
            w = self.weights_info
            row.update({"aic": np.nan, "bic": np.nan, "weights": w.source,
                        "weights_level": w.level, "weights_ess": w.ess})
        return glance_frame(
            estimator="reml" if self.reml else "ml",
            outcome=getattr(self._info, "outcome", None),
            nobs=self.nobs,
            cov_type=self.cov_type,
            df_method=self.df_method,
            **row,
        )

    def variance_components(self) -> pd.DataFrame:
        """lme4's ``as.data.frame(VarCorr(m))``: group, term1, term2, vcov, sdcor.

        Variances have ``term2`` missing and ``sdcor`` the SD; covariances have ``sdcor`` the
        correlation. The residual is the last row (group ``"Residual"``).
        """
        rows = []
        for label, t, c in zip(self._labels, self._problem.terms, self._fit.covariances):
            sd = np.sqrt(np.clip(np.diag(c), 0, None))
            for i, a in enumerate(t.columns):
                rows.append((label, a, None, float(c[i, i]), float(sd[i])))
            for i in range(len(t.columns)):
                for j in range(i + 1, len(t.columns)):
                    corr = c[i, j] / (sd[i] * sd[j]) if sd[i] * sd[j] > 0 else np.nan
                    rows.append((label, t.columns[i], t.columns[j], float(c[i, j]), float(corr)))
        s2 = float(self._fit.sigma2)
        rows.append(("Residual", None, None, s2, float(np.sqrt(s2))))
        return pd.DataFrame(rows, columns=["group", "term1", "term2", "vcov", "sdcor"])

    def icc(self) -> pd.DataFrame:
        """Intraclass correlations from the random-intercept variances.

        For each grouping factor with a random intercept: ``tau_k / (sum of intercept variances
        + sigma^2)``. With random slopes this is the ICC where the slope variables are 0.
        """
        vc = self.variance_components()
        ints = vc[(vc["term1"] == "(Intercept)") & vc["term2"].isna()]
        total = float(ints["vcov"].sum() + self._fit.sigma2)
        return pd.DataFrame(
            {"group": ints["group"].to_numpy(), "icc": ints["vcov"].to_numpy() / total}
        )

    @property
    def theta(self) -> np.ndarray:
        """lme4's relative covariance factor parameters (``getME(m, "theta")``)."""
        return np.asarray(self._fit.theta).copy()

    @property
    def objective(self) -> float:
        """lme4's ``REMLcrit`` (REML fits) or ``deviance`` (ML fits): -2 log-likelihood."""
        return float(self._fit.objective)

    @property
    def log_lik(self) -> float:
        return float(self._fit.loglik)

    @property
    def sigma(self) -> float:
        return float(np.sqrt(self._fit.sigma2))

    def ranef(self, condvar: bool = False) -> dict[str, pd.DataFrame]:
        """Conditional modes (BLUPs) per grouping term, like ``lme4::ranef``.

        With ``condvar=True`` each frame gets ``<column>_condsd`` columns (lme4's conditional
        SDs, which ignore the uncertainty of the fixed effects).
        """
        out = {}
        for label, m, v in zip(self._labels, self._fit.ranef, self._fit.ranef_condvar):
            frame = m.copy()
            if condvar:
                for c in v.columns:
                    frame[f"{c}_condsd"] = np.sqrt(v[c].to_numpy())
            out[label] = frame
        return out

    def df_for(self, L: np.ndarray) -> float:
        """Degrees of freedom (by the result's ``df_method``) for the contrast ``L @ beta``."""
        return float(self._inf.df_fn(np.asarray(L, dtype=float)))

    # ------------------------------------------------------------------ lme4 parity
    def confint(self, method: str = "profile", *, parm=None, level: float | None = None,
                nsim: int = 500, seed=None) -> pd.DataFrame:
        """Confidence intervals as lme4's ``confint.merMod`` (profile, Wald or bootstrap).

        See :func:`coevidence.models.mixed.intervals.confint`; ``level`` defaults to the
        result's ``conf_level``.

        Examples
        --------
        >>> import coevidence as cv
        >>> from coevidence.models.mixed.datasets import load_dataset
        >>> m = cv.fit_mixed("reaction ~ days + (1 | subject)", load_dataset("sleepstudy"))
        >>> m.confint(method="wald")["term"].tolist()
        ['sd_(Intercept)|subject', 'sigma', '(Intercept)', 'days']
        """
        from coevidence.models.mixed.intervals import confint

        if method != "wald":
            self._refuse_weighted(f"confint(method={method!r})")
        return confint(self, method=method, parm=parm,
                       level=self.conf_level if level is None else level, nsim=nsim,
                       seed=seed)

    def residuals(self, type: str = "response", *, level: str = "conditional",
                  scaled: bool = False) -> pd.Series:
        """Residuals as lme4's ``residuals.merMod`` (conditional: ``y - fitted`` with BLUPs).

        See :func:`coevidence.models.mixed.intervals.residuals`.

        Examples
        --------
        >>> import coevidence as cv
        >>> from coevidence.models.mixed.datasets import load_dataset
        >>> m = cv.fit_mixed("reaction ~ days + (1 | subject)", load_dataset("sleepstudy"))
        >>> len(m.residuals(level="marginal"))
        180
        """
        from coevidence.models.mixed.intervals import residuals

        return residuals(self, type=type, level=level, scaled=scaled)

    def simulate(self, nsim: int = 1, *, seed=None, use_re: bool = False) -> pd.DataFrame:
        """Outcomes simulated from the fit, as lme4's ``simulate.merMod``.

        ``use_re=False`` (lme4's default) draws new random effects; ``use_re=True`` keeps
        the BLUPs. See :func:`coevidence.models.mixed.intervals.simulate`.

        Examples
        --------
        >>> import coevidence as cv
        >>> from coevidence.models.mixed.datasets import load_dataset
        >>> m = cv.fit_mixed("reaction ~ days + (1 | subject)", load_dataset("sleepstudy"))
        >>> m.simulate(2, seed=0).columns.tolist()
        ['sim_1', 'sim_2']
        """
        from coevidence.models.mixed.intervals import simulate

        return simulate(self, nsim=nsim, seed=seed, use_re=use_re)

    # ------------------------------------------------------------------ prediction
    def predict(
        self,
        newdata: pd.DataFrame | None = None,
        level: str = "population",
        interval: str | None = None,
        conf_level: float | None = None,
    ) -> pd.DataFrame:
        """Predicted outcome, population-level (fixed part) or conditional on the groups.

        Parameters
        ----------
        newdata : DataFrame, optional
            Rows to predict; defaults to the rows used in the fit. Groups not seen in the fit get
            random effects of 0 (lme4's ``allow.new.levels=TRUE``).
        level : {"population", "conditional"}
        interval : {None, "confidence", "prediction"}
            ``confidence``: uncertainty of the fixed part (plus the BLUP's conditional variance
            at ``level="conditional"``); ``prediction`` adds the residual variance (and, at the
            population level, the random-effect variance of the row).
        conf_level : float, optional

        Returns
        -------
        DataFrame with ``fitted`` and, with an interval, ``std_error``, ``df``, ``lower``,
        ``upper``; aligned with ``newdata``'s index. Confidence intervals of the population-level
        prediction use t with the fit's df for each row (the covariance and df of ``tidy()``);
        intervals that include a BLUP's or the residual variance use the normal (``df`` inf).
        """
        from coevidence.models.mixed.formula import random_matrix

        if level not in ("population", "conditional"):
            raise OptionError(f"level must be 'population' or 'conditional', got {level!r}")
        if interval not in (None, "confidence", "prediction"):
            raise OptionError(
                f"interval must be None, 'confidence' or 'prediction', got {interval!r}")
        data = self._info.data if newdata is None else newdata
        index = self._info.row_index if newdata is None else newdata.index
        if newdata is None:
            X = self._problem.X
        else:
            X = _fixed_matrix_for(self._info, newdata)
            need = [c for c in self._info.data.columns
                    if c != self._info.outcome and c not in newdata.columns
                    and (level == "conditional" or c not in self._info.group_columns)]
            if need and (level == "conditional" or interval is not None):
                from coevidence.exceptions import ModelSpecificationError

                raise ModelSpecificationError(
                    f"newdata lacks column(s) {need} used by the model {self.formula!r}"
                )
        fitted = X @ self._fit.beta
        # the covariance tidy() uses (model-based, Kenward-Roger adjusted or CR2)
        var = np.einsum("ij,jk,ik->i", X, self._inf.vcov, X)
        re_var = np.zeros(len(X))
        for spec, t, modes, cv, cov in zip(
            self._info.random, self._problem.terms, self._fit.ranef, self._fit.ranef_condvar,
            self._fit.covariances,
        ):
            Z, _ = random_matrix(spec.expr, _as_fitted_types(self._info.data, data))
            re_var += np.einsum("ij,jk,ik->i", Z, cov, Z)
            if level == "conditional":
                labels = _group_labels(data, spec.factors)
                pos = modes.index.get_indexer(labels)
                known = pos >= 0
                b = np.zeros_like(Z)
                b[known] = modes.to_numpy()[pos[known]]
                fitted = fitted + np.sum(Z * b, axis=1)
                cvals = np.zeros_like(Z)
                cvals[known] = cv.to_numpy()[pos[known]]
                cvals[~known] = np.diag(cov)
                var = var + np.sum(Z**2 * cvals, axis=1)
        out = pd.DataFrame({"fitted": fitted}, index=index)
        if interval is None:
            return out
        if interval == "prediction":
            var = var + self._fit.sigma2 + (re_var if level == "population" else 0.0)
        lvl = self.conf_level if conf_level is None else conf_level
        se = np.sqrt(var)
        if interval == "confidence" and level == "population":
            # the fixed part alone: t with the fit's own df for that row (as tidy() and
            # contrast() use), computed once per distinct row of X
            rows, inverse = np.unique(np.asarray(X, float), axis=0, return_inverse=True)
            df = np.array([float(self.df_for(r)) for r in rows])[np.ravel(inverse)]
        else:  # BLUP or residual variance included: no df theory, normal reference (as lme4)
            df = np.full(len(X), np.inf)
        q = np.where(np.isfinite(df), stats.t.ppf(0.5 + lvl / 2, np.where(np.isfinite(df), df, 1)),
                     stats.norm.ppf(0.5 + lvl / 2))
        out["std_error"] = se
        out["df"] = df
        out["lower"] = fitted - q * se
        out["upper"] = fitted + q * se
        return out

    # ------------------------------------------------------------------ text
    def summary(self) -> str:
        """lmer-style text: method, fit statistics, random effects, fixed effects."""
        g = self.glance().iloc[0]
        crit = "REML" if self.reml else "maximum likelihood"
        lines = [
            f"Linear mixed model fit by {crit} (engine: {self.engine})",
            f"Formula: {self.formula}",
            f"Estimator: {'REML' if self.reml else 'ML'}; covariance type: "
            f"{_COV_LABEL.get(self.cov_type, self.cov_type)}; "
            f"df method: {self.df_method}",
            "",
            f"{'REML criterion' if self.reml else 'deviance'}: {self._fit.objective:.4f}   "
            f"logLik: {g.log_lik:.4f}   AIC: {g.aic:.4f}   BIC: {g.bic:.4f}",
            "",
            "Random effects:",
        ]
        vc = self.variance_components()
        for _, r in vc[vc["term2"].isna()].iterrows():
            name = r["term1"] if isinstance(r["term1"], str) else ""
            lines.append(f"  {r['group']:<18} {name:<14} Variance {r['vcov']:12.5g}  Std.Dev. {r['sdcor']:10.5g}")
        for _, r in vc[vc["term2"].notna()].iterrows():
            lines.append(f"  {r['group']:<18} Corr({r['term1']}, {r['term2']}) = {r['sdcor']:.3f}")
        groups = "; ".join(f"{k}, {v}" for k, v in self._ngroups.items())
        lines.append(f"Number of obs: {self.nobs}, groups: {groups}")
        design = getattr(self.growth, "design", None)
        if design is not None:
            lines.append(design.describe())
        if self._info.n_dropped:
            lines.append(f"Rows dropped for missing values: {self._info.n_dropped}")
        if self.weights_info is not None:
            text = self.weights_info.describe()
            lines.append(text[0].upper() + text[1:] + "; the criterion above is a "
                         "pseudo-likelihood")
        lines += ["", "Fixed effects:"]
        lines.append(
            self.tidy().to_string(
                index=False, float_format=lambda v: f"{v:.5g}", justify="right"
            )
        )
        lines.append("")
        if self.diagnostics.messages:
            lines.append("Fit problems:")
            lines += [f"  - {m}" for m in self.diagnostics.messages]
        else:
            lines.append("Fit: converged, not singular, Hessian positive definite.")
        return "\n".join(lines)

    def _html(self) -> str:
        """Sectioned HTML: model, fixed effects, random effects, diagnostics (each labelled)."""

        def section(title: str, body: str) -> str:
            return (f"<section class='coevidence-section'><h4>{html.escape(title)}</h4>"
                    f"{body}</section>")

        g = self.glance().iloc[0]
        groups = ", ".join(f"{html.escape(str(k))}: {v}" for k, v in self._ngroups.items())
        crit = "REML criterion" if self.reml else "deviance"
        model = (
            f"<p><code>{html.escape(self.formula)}</code></p><ul>"
            f"<li>estimator: {'REML' if self.reml else 'ML'}; engine: "
            f"{html.escape(self.engine)}</li>"
            f"<li>covariance type: {html.escape(_COV_LABEL.get(self.cov_type, self.cov_type))};"
            f" df method: {html.escape(self.df_method)}</li>"
            f"<li>observations: {self.nobs}; groups: {groups}</li>"
            f"<li>{crit}: {float(self._fit.objective):.4f}; logLik: {float(g.log_lik):.4f}; "
            f"AIC: {float(g.aic):.4f}; BIC: {float(g.bic):.4f}</li>"
            + (f"<li>rows dropped for missing values: {int(self._info.n_dropped)}</li>"
               if self._info.n_dropped else "")
            + "</ul>"
        )
        design = getattr(self.growth, "design", None)
        if design is not None:
            model += f"<p>{html.escape(design.describe())}</p>"
        if self.diagnostics.messages:
            items = "".join(f"<li>{html.escape(m)}</li>" for m in self.diagnostics.messages)
            diag = f"<p><strong>Fit problems</strong></p><ul>{items}</ul>"
        else:
            diag = "<p>Converged, not singular, Hessian positive definite.</p>"
        parts = [
            "<div class='coevidence-result'><strong>MixedResult</strong>",
            section("Model", model),
            section("Fixed effects", _frame_html(self.tidy())),
            section("Random effects", _frame_html(self.variance_components())),
            section("Diagnostics", diag + _frame_html(self.glance())),
            "</div>",
        ]
        return "".join(parts)


def term_labels(terms) -> list[str]:
    """lme4's labels of random-effect terms: a repeated grouping factor gets ``.1``, ``.2``."""
    seen: dict[str, int] = {}
    out = []
    for t in terms:
        k = seen.get(t.group, 0)
        out.append(t.group if k == 0 else f"{t.group}.{k}")
        seen[t.group] = k + 1
    return out


def _cov_code(text: str) -> str:
    if "kenward" in text.lower():
        return "kenward_roger"
    return text.split(" ")[0]


def _as_fitted_types(fitted: pd.DataFrame, data: pd.DataFrame) -> pd.DataFrame:
    out = data.copy()
    for col in fitted.columns:
        if col in out.columns and isinstance(fitted[col].dtype, pd.CategoricalDtype):
            out[col] = pd.Categorical(out[col], categories=fitted[col].cat.categories)
    return out


def _fixed_matrix_for(info, newdata: pd.DataFrame) -> np.ndarray:
    from coevidence.exceptions import ModelSpecificationError

    if not isinstance(newdata, pd.DataFrame):
        raise TypeError(f"newdata must be a pandas DataFrame, got {type(newdata).__name__}")
    needed = _fixed_variables(info)
    missing = [c for c in needed if c not in newdata.columns]
    if missing:
        raise ModelSpecificationError(
            f"newdata lacks column(s) {missing} used by the model {info.formula!r}"
        )
    bad = newdata[needed].isna().any(axis=1)
    if bad.any():
        raise ModelSpecificationError(
            f"newdata has missing values in the model's columns at rows "
            f"{list(newdata.index[bad.to_numpy()][:10])}"
        )
    data = _as_fitted_types(info.data, newdata)
    mm = info.fixed_spec.get_model_matrix(data, na_action="raise")
    return np.asarray(mm[list(info.raw_fixed_names)], dtype=float)


def _fixed_variables(info) -> list[str]:
    """Data columns the fixed-effects part of the model uses."""
    out: list[str] = []
    for vars_ in info.fixed_spec.term_variables.values():
        out += [str(v) for v in vars_ if str(v) in info.data.columns and str(v) != info.outcome]
    return list(dict.fromkeys(out))


def _group_labels(data: pd.DataFrame, factors: tuple[str, ...]) -> np.ndarray:
    if len(factors) == 1:
        return data[factors[0]].to_numpy()
    label = data[factors[0]].astype(str)
    for f in factors[1:]:  # vectorised (a per-row join is ~1000x slower)
        label = label + ":" + data[f].astype(str)
    return label.to_numpy()
