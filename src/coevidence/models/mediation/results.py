"""The result of :func:`~coevidence.models.mediation.model.fit_mediation`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from coevidence.results.base import TIDY_COLUMNS, ResultBase, freeze, glance_frame, read_only

__all__ = ["MediationResult"]

_EXPLAIN = {
    "a": "treatment -> mediator (cluster level)",
    "a_within": "treatment -> mediator, within clusters",
    "a_between": "treatment -> mediator, between clusters",
    "b_within": "mediator -> outcome within clusters (deviation from the cluster mean)",
    "b_between": "mediator -> outcome between clusters (cluster mean)",
    "contextual": "b_between - b_within (the contextual effect)",
    "direct": "c': treatment -> outcome holding the mediator fixed",
    "direct_within": "c' within clusters",
    "direct_between": "c' between clusters",
    "indirect": "a * b_between",
    "indirect_within": "a_within * b_within",
    "indirect_between": "a_between * b_between",
    "total": "direct + indirect",
    "total_within": "direct_within + indirect_within",
    "total_between": "direct_between + indirect_between",
}


class MediationResult(ResultBase):
    """A fitted multilevel mediation model (from :func:`coevidence.fit_mediation`).

    Attributes
    ----------
    params : pandas.Series
        Every effect (a, b_within, b_between, contextual, direct, indirect, total).
    draws : numpy.ndarray
        Monte Carlo draws or bootstrap replicates of every effect (rows x effects,
        read-only; columns in the order of ``params``).
    mediator_model, outcome_model : MixedResult
        The component fits.
    design, ci : str
    conf_level : float
    info : FrozenDict
        Design, interval method, draws, clusters, rows, dropped rows, mean cluster size, the
        mediator's ICC (conditional on the treatment) and the two formulas.
    """

    def __init__(self, *, spec, terms, estimate, std_error, df, products, draws, ci, conf_level,
                 mediator_model, outcome_model, info: dict[str, Any]) -> None:
        self._spec = spec
        self._terms = tuple(terms)
        self._est = read_only(estimate)
        self._se = read_only(std_error)
        self._df = read_only(df)
        self._products = tuple(products)
        self._draws = read_only(draws)
        self.ci: str = ci
        self.design: str = spec.design
        self.conf_level: float = float(conf_level)
        self.mediator_model = mediator_model
        self.outcome_model = outcome_model
        self.outcome: str = spec.outcome
        self.treatment: str = spec.treatment
        self.mediator: str = spec.mediator
        self.cluster: str = spec.cluster
        self.nobs: int = int(info["nobs"])
        self.info = freeze(dict(info))
        self._freeze()

    # ------------------------------------------------------------------ accessors
    @property
    def params(self) -> pd.Series:
        """Estimates of every effect (a new Series on every access)."""
        return pd.Series(np.asarray(self._est), index=list(self._terms), name="estimate")

    @property
    def draws(self) -> np.ndarray:
        """Monte Carlo draws or bootstrap replicates (read-only, columns as ``params``)."""
        return self._draws

    @property
    def indirect(self) -> float:
        """The indirect effect (2-1-1: a * b_between; 1-1-1: the between indirect effect)."""
        key = "indirect" if "indirect" in self._terms else "indirect_between"
        return float(self._est[self._terms.index(key)])

    def _interval(self, j: int, level: float) -> tuple[float, float]:
        d = self._draws[:, j]
        d = d[np.isfinite(d)]
        if d.size < 2:
            return (np.nan, np.nan)
        lo, hi = np.quantile(d, [(1 - level) / 2, (1 + level) / 2])
        return float(lo), float(hi)

    def _mc_p(self, j: int) -> float:
        d = self._draws[:, j]
        d = d[np.isfinite(d)]
        if d.size == 0:
            return np.nan
        p = 2 * min(np.mean(d <= 0), np.mean(d >= 0))
        return float(min(1.0, max(p, 1 / d.size)))

    # ------------------------------------------------------------------ contract
    def tidy(self, conf_level: float | None = None) -> pd.DataFrame:
        """One row per effect with :data:`~coevidence.results.base.TIDY_COLUMNS`.

        ``ci="monte_carlo"``: paths, direct and contextual effects from the component models
        (t with Satterthwaite df); the indirect and total rows have the delta-method SE and z
        statistic, the Monte Carlo percentile interval and the Monte Carlo p-value.
        ``ci="bootstrap"``: every row has the bootstrap SD as SE, the percentile interval and
        the bootstrap p-value (df infinite).
        """
        level = self._level(conf_level)
        rows = []
        q = 0.5 + level / 2
        boot = self.ci == "bootstrap"
        for j, term in enumerate(self._terms):
            est = float(self._est[j])
            if boot:
                d = self._draws[:, j]
                se = float(np.nanstd(d, ddof=1))
                lo, hi = self._interval(j, level)
                rows.append((term, est, se, est / se if se > 0 else np.nan, np.inf,
                             self._mc_p(j), lo, hi))
                continue
            se, df = float(self._se[j]), float(self._df[j])
            stat = est / se if se > 0 else np.nan
            if term in self._products:
                lo, hi = self._interval(j, level)
                rows.append((term, est, se, stat, np.inf, self._mc_p(j), lo, hi))
            else:
                crit = stats.t.ppf(q, df) if np.isfinite(df) else stats.norm.ppf(q)
                p = (2 * stats.t.sf(abs(stat), df) if np.isfinite(df)
                     else 2 * stats.norm.sf(abs(stat)))
                rows.append((term, est, se, stat, df, float(p), est - crit * se, est + crit * se))
        return pd.DataFrame(rows, columns=list(TIDY_COLUMNS))

    def glance(self) -> pd.DataFrame:
        """One row: estimator, outcome, nobs, cov_type, df_method, design, ci, clusters, ..."""
        i = self.info
        return glance_frame(
            estimator="multilevel_mediation", outcome=self.outcome, nobs=self.nobs,
            cov_type="cluster_bootstrap" if self.ci == "bootstrap" else "model",
            df_method="bootstrap" if self.ci == "bootstrap" else str(i["df_method"]),
            design=self.design, ci=self.ci, treatment=self.treatment, mediator=self.mediator,
            n_groups=i["n_clusters"], n_draws=i["n_draws"], n_failed=i["n_failed"],
            n_dropped=i["n_dropped"], cluster_size_mean=i["cluster_size_mean"],
            icc_mediator=i["icc_mediator"], conf_level=self.conf_level)

    def summary(self) -> str:
        t = self.tidy()
        t.insert(1, "meaning", [_EXPLAIN.get(x, "") for x in t["term"]])
        method = ("Monte Carlo percentile intervals for the products "
                  f"({self.info['n_draws']} draws from the joint normal of the estimates)"
                  if self.ci == "monte_carlo" else
                  f"cluster bootstrap percentile intervals ({self.info['n_draws']} replications, "
                  f"{self.info['n_failed']} failed)")
        lines = [
            (f"Multilevel mediation ({self.design}): {self.treatment} -> {self.mediator} -> "
            f"{self.outcome}, clusters {self.cluster!r} ({self.info['n_clusters']}), "
            f"{self.nobs} rows"),
            f"Mediator model: {self.info['mediator_formula']}",
            f"Outcome model:  {self.info['outcome_formula']}",
            ("Paths: model-based SEs, t tests with "
            f"{self.info['df_method']} df; {method}."),
            "",
            t.to_string(index=False, float_format=lambda v: f"{v:.4g}"),
            "",
            ("Assumes sequential ignorability (no unmeasured mediator-outcome confounding, "
            "within or between clusters) and no treatment x mediator interaction."),
        ]
        return "\n".join(lines)
