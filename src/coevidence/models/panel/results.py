"""Result of :func:`coevidence.fit_panel` (linear panel estimators)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from coevidence.results.base import (
    TIDY_COLUMNS,
    ResultBase,
    df_method_code,
    freeze,
    glance_frame,
    tidy_frame,
    wald_tests,
)

__all__ = ["PanelDiagnostics", "PanelResult", "TestResult"]

_ESTIMATOR_LABEL = {
    "within": "within (fixed effects)",
    "random": "random effects (GLS, Swamy-Arora variance components)",
    "first_difference": "first difference",
    "between": "between (OLS on unit means)",
    "pooled": "pooled OLS",
}


@dataclass(frozen=True)
class PanelDiagnostics:
    """What happened during a panel fit (no warnings are the only record of anything).

    Attributes
    ----------
    n_rows_input : int
        Rows in the frame given.
    n_dropped_missing : int
        Rows dropped for missing outcome/regressor/cluster values (a MissingDataWarning said so).
    n_dropped_differencing : int
        First-difference only: rows with no preceding period of the same unit (each unit's first
        period, plus rows after a gap in time).
    n_clusters : int or None
        Number of clusters for cluster-robust covariances.
    few_clusters : bool
        True when ``n_clusters`` is below the few-cluster threshold (a FewClustersWarning said so).
    balanced : bool
        Every unit observed in every period.
    tests : dict
        Specification tests: ``F_pooled`` (within: all unit effects zero; plm ``pFtest``),
        ``breusch_pagan`` (random: plm ``plmtest(type="bp")``), each a dict with statistic, df and
        p_value.
    variance_components : dict
        Random effects: ``sigma2_unit``, ``sigma2_idiosyncratic``, ``rho``; ``theta`` (one value
        per unit when unbalanced, summarised by min/max).
    notes : tuple of str
        Other facts worth knowing (e.g. the bootstrap weights used).
    """

    n_rows_input: int
    n_dropped_missing: int = 0
    n_dropped_differencing: int = 0
    n_clusters: int | None = None
    few_clusters: bool = False
    balanced: bool = True
    tests: dict[str, dict[str, float]] = field(default_factory=dict)
    variance_components: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # read-only mappings: the diagnostics of a result cannot be changed
        object.__setattr__(self, "tests", freeze(dict(self.tests)))
        object.__setattr__(self, "variance_components", freeze(dict(self.variance_components)))
        object.__setattr__(self, "notes", tuple(self.notes))


class PanelResult(ResultBase):
    """A fitted linear panel model (within, random, first-difference, between or pooled).

    Produced by :func:`coevidence.fit_panel`; immutable. ``params``, ``std_errors`` and ``cov``
    are labelled pandas objects; ``tidy()`` and ``glance()`` return frames; ``summary()`` states
    the estimator, the covariance type, the small-sample convention and the df used for tests.

    Examples
    --------
    >>> import coevidence as cv
    >>> from coevidence.datasets.panel import load_grunfeld
    >>> fe = cv.fit_panel(load_grunfeld(), "inv", unit="firm", time="year",
    ...                   regressors=["value", "capital"])
    >>> round(float(fe.params["value"]), 4)
    0.1101
    """

    def __init__(
        self,
        *,
        params: pd.Series,
        cov: pd.DataFrame,
        df: pd.Series,
        estimator: str,
        effects: str | None,
        cov_type: str,
        small_sample: str,
        df_method: str,
        outcome: str,
        unit: str,
        time: str,
        cluster: str | None,
        nobs: int,
        n_units: int,
        n_periods: int,
        df_resid: int,
        ssr: float,
        rsquared: float,
        rsquared_within: float,
        rsquared_between: float,
        rsquared_overall: float,
        diagnostics: PanelDiagnostics,
        engine_result: Any = None,
        bootstrap: dict[str, Any] | None = None,
        conf_level: float | None = None,
    ) -> None:
        self._params = params.copy()
        self._cov = cov.copy()
        self._std_errors = pd.Series(
            np.sqrt(np.diag(cov.to_numpy())), index=params.index, name="std_error"
        )
        self._df = df.copy()
        if bootstrap is not None:
            bootstrap = freeze(dict(bootstrap))
            level = float(bootstrap["conf_level"])
        else:
            level = 0.95 if conf_level is None else float(conf_level)
        self.conf_level = level
        self.estimator = estimator
        self.effects = effects
        self.cov_type = cov_type
        self.small_sample = small_sample
        self.df_method = df_method
        self.outcome = outcome
        self.unit = unit
        self.time = time
        self.cluster = cluster
        self.nobs = nobs
        self.n_units = n_units
        self.n_periods = n_periods
        self.df_resid = df_resid
        self.ssr = ssr
        self.rsquared = rsquared
        self.rsquared_within = rsquared_within
        self.rsquared_between = rsquared_between
        self.rsquared_overall = rsquared_overall
        self.diagnostics = diagnostics
        self.engine_result = engine_result
        self._bootstrap = bootstrap
        self._freeze()

    # -- estimates (copies: changing them cannot change the result) ----------------------------
    @property
    def params(self) -> pd.Series:
        """Coefficients (a new Series on every access)."""
        return self._params.copy()

    @property
    def cov(self) -> pd.DataFrame:
        """Covariance of the coefficients used for inference (a new DataFrame each time)."""
        return self._cov.copy()

    @property
    def vcov(self) -> pd.DataFrame:
        """Alias of :attr:`cov` (the name other result families use)."""
        return self._cov.copy()

    @property
    def std_errors(self) -> pd.Series:
        """Standard errors (a new Series on every access)."""
        return self._std_errors.copy()

    @property
    def df(self) -> pd.Series:
        """Degrees of freedom of each coefficient's test (a new Series on every access)."""
        return self._df.copy()

    # -- inference -----------------------------------------------------------------------------
    @property
    def tstats(self) -> pd.Series:
        """Estimate / standard error."""
        return (self._params / self._std_errors).rename("statistic")

    @property
    def pvalues(self) -> pd.Series:
        """Two-sided p-values (t with ``df``, normal where df is infinite, or wild bootstrap)."""
        return self.tidy().set_index("term")["p_value"]

    def tidy(self, conf_level: float | None = None) -> pd.DataFrame:
        """One row per coefficient with :data:`~coevidence.results.base.TIDY_COLUMNS`.

        ``conf_level`` defaults to the fit's (:attr:`conf_level`). With
        ``cov_type="wild_bootstrap"`` the p-values are restricted (null-imposed) wild cluster
        bootstrap p-values and the interval is the bootstrap-t interval computed at the fit's
        ``conf_level``; asking for another level raises ``ValueError``.
        """
        conf_level = self._level(conf_level)
        est = self._params.to_numpy()
        se = self._std_errors.to_numpy()
        df = self._df.to_numpy(dtype=float)
        stat, p, lo, hi = wald_tests(est, se, df, conf_level)
        if self._bootstrap is not None:
            if not math.isclose(conf_level, self._bootstrap["conf_level"]):
                raise ValueError(
                    "wild-bootstrap intervals were computed at conf_level="
                    f"{self._bootstrap['conf_level']}; refit with fit_panel(..., conf_level={conf_level})"
                )
            p = np.array(self._bootstrap["p_value"], dtype=float)
            lo = np.array(self._bootstrap["conf_low"], dtype=float)
            hi = np.array(self._bootstrap["conf_high"], dtype=float)
        out = pd.DataFrame(
            {
                "term": self._params.index.astype(str),
                "estimate": est,
                "std_error": se,
                "statistic": stat,
                "df": df,
                "p_value": p,
                "conf_low": lo,
                "conf_high": hi,
            }
        )
        return out[list(TIDY_COLUMNS)]

    def glance(self) -> pd.DataFrame:
        """One row: sizes, fit statistics, estimator and inference settings."""
        return glance_frame(
            estimator=self.estimator,
            outcome=self.outcome,
            nobs=self.nobs,
            cov_type=self.cov_type,
            df_method=df_method_code(self.df_method),
            effects=self.effects if self.effects is not None else "none",
            small_sample=self.small_sample,
            **{f"n_groups_{self.unit}": self.n_units},
            n_obs=self.nobs,  # the name panel results used before the common contract
            n_units=self.n_units,
            n_periods=self.n_periods,
            n_clusters=self.diagnostics.n_clusters,
            df_resid=self.df_resid,
            r_squared=self.rsquared,
            r_squared_within=self.rsquared_within,
            r_squared_between=self.rsquared_between,
            r_squared_overall=self.rsquared_overall,
            ssr=self.ssr,
            conf_level=self.conf_level,
        )

    def summary(self) -> str:
        """Plain-text report: estimator, covariance, small-sample convention, df, coefficients."""
        d = self.diagnostics
        lines = [
            f"Panel model: {_ESTIMATOR_LABEL[self.estimator]}",
            (
                f"Effects: {self.effects or 'none'}    Outcome: {self.outcome}    "
                f"Unit: {self.unit}    Time: {self.time}"
            ),
            (
                f"Observations: {self.nobs}    Units: {self.n_units}    Periods: {self.n_periods}"
                f"    Balanced: {'yes' if d.balanced else 'no'}"
            ),
            f"Covariance: {_cov_label(self.cov_type, self.cluster, d.n_clusters)}",
            f"Small-sample convention: {_ss_label(self.cov_type, self.small_sample)}",
            f"Degrees of freedom for tests: {self.df_method}",
            (
                f"R-squared: {self.rsquared:.4f}  (within {self.rsquared_within:.4f}, between "
                f"{self.rsquared_between:.4f}, overall {self.rsquared_overall:.4f})"
            ),
        ]
        if d.n_dropped_missing:
            lines.append(f"Rows dropped for missing values: {d.n_dropped_missing}")
        if d.n_dropped_differencing:
            lines.append(f"Rows lost to differencing: {d.n_dropped_differencing}")
        if d.few_clusters:
            lines.append(
                f"Warning: only {d.n_clusters} clusters; prefer cov_type='cr2' or 'wild_bootstrap'."
            )
        if d.variance_components:
            vc = d.variance_components
            lines.append("Variance components: " + ", ".join(f"{k} {v:.6g}" for k, v in vc.items()))
        tab = self.tidy()
        lines.append("")
        lines.append(tab.to_string(index=False, float_format=lambda v: f"{v:.6g}"))
        for name, t in d.tests.items():
            lines.append(
                f"{name}: statistic {t['statistic']:.4f}, df {t['df']}, p {t['p_value']:.4g}"
            )
        for note in d.notes:
            lines.append(f"Note: {note}")
        return "\n".join(lines)


def _cov_label(cov_type: str, cluster: str | None, n_clusters: int | None) -> str:
    if cov_type == "unadjusted":
        return "unadjusted (classical, homoskedastic)"
    if cov_type == "robust":
        return "heteroskedasticity-robust (White) on the transformed data"
    if cov_type == "driscoll_kraay":
        return "Driscoll-Kraay (periods as clusters, Bartlett-weighted cross-period terms)"
    what = {
        "clustered": "cluster-robust (CR1)",
        "cr2": "cluster-robust CR2 (Bell-McCaffrey)",
        "wild_bootstrap": "cluster-robust CR1 SEs; p-values from the restricted wild cluster bootstrap",
    }[cov_type]
    return f"{what}, clustered by {cluster} ({n_clusters} clusters)"


def _ss_label(cov_type: str, small_sample: str) -> str:
    if cov_type == "unadjusted":
        return "none needed (sigma^2 = SSR / residual df)"
    if cov_type == "cr2":
        return "CR2 bias-reduced adjustment (no further factor)"
    if cov_type == "robust":
        return "none (HC0)" if small_sample == "none" else "HC1: n / residual df"
    if cov_type == "driscoll_kraay":
        return {
            "none": "none (HC0, plm vcovSCC's default)",
            "plm_hc1": "plm 'HC1': N/(N-k)",
            "plm_sss": "plm 'sss': T/(T-1) * (N-1)/(N-k), periods as clusters",
        }[small_sample]
    return {
        "stata": "Stata: G/(G-1) * (N-1)/(N-K), K counts the constant and non-nested dummies",
        "plm_sss": "plm 'sss': G/(G-1) * (N-1)/(N-k), k = columns of the transformed X",
        "fixest_crv1": "fixest CRV1: G/(G-1) * (N-1)/(N-K), K excludes fixed effects nested in clusters",
        "plm_hc1": "plm 'HC1': N_resid/(N - k)",
        "none": "none (HC0 cluster sandwich)",
    }[small_sample]


class TestResult(ResultBase):
    """A specification test (e.g. :func:`coevidence.hausman`): statistic, df, p-value.

    ``tidy()`` holds the per-term pieces (for Hausman: the coefficient differences and the
    square roots of the diagonal of the covariance difference); ``glance()`` the test itself.

    Examples
    --------
    >>> import pandas as pd
    >>> t = TestResult(name="demo", statistic=2.0, df=1, p_value=0.157,
    ...                distribution="chi-squared", terms=pd.DataFrame({"term": ["x"],
    ...                "estimate": [0.1], "std_error": [0.07]}), method="illustration")
    >>> float(t.glance()["p_value"].iloc[0])
    0.157
    """

    __test__ = False  # not a pytest class

    def __init__(
        self,
        *,
        name: str,
        statistic: float,
        df: int,
        p_value: float,
        distribution: str,
        terms: pd.DataFrame,
        method: str,
    ) -> None:
        self.name = name
        self.statistic = statistic
        self.df = df
        self.p_value = p_value
        self.distribution = distribution
        self.method = method
        self._terms = terms.copy()
        self._freeze()

    def tidy(self, conf_level: float | None = None) -> pd.DataFrame:
        """Per-term pieces with normal-based intervals (differences and their SEs)."""
        t = self._terms
        return tidy_frame(t["term"].astype(str), t["estimate"], t["std_error"], np.inf,
                          self._level(conf_level))

    def glance(self) -> pd.DataFrame:
        """One row: the common keys, then test name, statistic, df, p-value, distribution."""
        return glance_frame(
            estimator=self.name,
            outcome=None,
            nobs=None,
            cov_type=self.method,
            df_method=self.distribution,
            test=self.name,
            statistic=self.statistic,
            df=self.df,
            p_value=self.p_value,
            distribution=self.distribution,
            method=self.method,
        )

    def summary(self) -> str:
        """Plain text: the test, its statistic, df and p-value, and how it was computed."""
        return (
            f"{self.name}\n{self.distribution} = {self.statistic:.4f} on {self.df} df, "
            f"p = {self.p_value:.4g}\nEstimator/covariance: {self.method}"
        )
