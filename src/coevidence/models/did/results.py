"""Results of :func:`coevidence.fit_event_study` (staggered adoption / event studies)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from coevidence.results.base import ResultBase, tidy_frame

__all__ = ["EffectTable", "EventStudyDiagnostics", "EventStudyResult"]

ESTIMATOR_LABEL = {
    "callaway_santanna": "Callaway & Sant'Anna (2021) group-time ATTs",
    "sun_abraham": "Sun & Abraham (2021) interaction-weighted event study",
    "two_stage": "Gardner (2021) two-stage difference-in-differences",
    "twfe": "two-way fixed effects (single dummy / dynamic), a biased benchmark under staggered adoption",
}


@dataclass(frozen=True)
class EventStudyDiagnostics:
    """Sample bookkeeping and checks of an event-study fit.

    Attributes
    ----------
    n_units, n_obs : int
        Units and rows used.
    n_rows_dropped_missing : int
        Rows dropped for a missing outcome or covariate (a MissingDataWarning said so).
    n_units_dropped_unbalanced : int
        Callaway & Sant'Anna only: units not observed in every period, dropped as R ``did`` does.
    n_units_always_treated : int
        Units treated in the first period (no pre-period), dropped.
    cohort_sizes : dict
        Units per first-treatment period (``inf`` = never treated).
    pretrend : dict
        Wald test that all pre-treatment effects are zero: statistic (the Wald chi-square), df,
        p_value; with ``cluster=`` (and t tests) the p value is from ``F(df, G - 1)`` on
        ``statistic / df`` and the dict adds ``df_denominator`` and ``test="F"``.
    notes : tuple of str
    """

    n_units: int
    n_obs: int
    n_rows_dropped_missing: int = 0
    n_units_dropped_unbalanced: int = 0
    n_units_always_treated: int = 0
    cohort_sizes: dict[float, int] = field(default_factory=dict)
    pretrend: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


class EffectTable(ResultBase):
    """A table of effects with standard errors (aggregations, contrasts).

    Tests and pointwise intervals use a t distribution with the ``df`` column (Bell-McCaffrey
    or ``G - 1`` df from the number of clusters) or the normal distribution where ``df`` is
    infinite (``fit_event_study(..., df="normal")``, as R ``did``); ``info["df_method"]`` says
    which and why.

    Examples
    --------
    >>> import coevidence as cv
    >>> from coevidence.datasets.panel import load_mpdta
    >>> es = cv.fit_event_study(load_mpdta(), "lemp", unit="countyreal", time="year",
    ...                         first_treated="first.treat", est_method="reg")
    >>> round(float(es.aggregate("simple").tidy()["estimate"].iloc[0]), 4)
    -0.04
    """

    def __init__(
        self,
        *,
        title: str,
        terms: list[str],
        estimate: np.ndarray,
        std_error: np.ndarray,
        info: dict[str, Any],
        extra: pd.DataFrame | None = None,
        crit_uniform: float | np.ndarray | None = None,
        df: np.ndarray | float = np.inf,
    ) -> None:
        self.title = title
        self.terms = list(terms)
        self.estimate = np.asarray(estimate, dtype=float)
        self.std_error = np.asarray(std_error, dtype=float)
        self.df = np.broadcast_to(np.asarray(df, dtype=float), self.estimate.shape).copy()
        self.df.setflags(write=False)
        self.info = dict(info)
        self.extra = extra.reset_index(drop=True) if extra is not None else None
        self.crit_uniform = crit_uniform
        self._freeze()

    def tidy(self, conf_level: float = 0.95) -> pd.DataFrame:
        """One row per effect; pointwise t (or z) intervals (uniform bands: ``frame()``)."""
        return tidy_frame(self.terms, self.estimate, self.std_error, self.df, conf_level)

    def frame(self, conf_level: float = 0.95) -> pd.DataFrame:
        """``tidy()`` plus descriptive columns (event time, group, level, uniform band).

        The uniform (sup-t) band's bootstrap critical value is multiplied by ``t_df / z`` at
        the fit's level when tests are t tests, so that it is never narrower than the
        pointwise interval with few clusters.
        """
        out = self.tidy(conf_level)
        if self.extra is not None:
            out = pd.concat([out, self.extra], axis=1)
        crit = self.crit_uniform
        if crit is not None and np.all(np.isfinite(crit)):
            out["uniform_low"] = self.estimate - crit * self.std_error
            out["uniform_high"] = self.estimate + crit * self.std_error
        return out

    def glance(self) -> pd.DataFrame:
        """One row of settings (estimator, control group, se type, ...)."""
        return pd.DataFrame([{"title": self.title, **self.info}])

    def summary(self) -> str:
        """Title, estimator, covariance (analytic IF or multiplier bootstrap), df, table."""
        lines = [self.title]
        for key in ("estimator", "control", "anticipation", "se_type", "df_method"):
            if key in self.info:
                lines.append(f"{key.replace('_', ' ').capitalize()}: {self.info[key]}")
        lines.append("")
        lines.append(self.tidy().to_string(index=False, float_format=lambda v: f"{v:.6g}"))
        return "\n".join(lines)


class EventStudyResult(ResultBase):
    """A fitted staggered-adoption analysis: group-time effects, aggregations, pre-trend test.

    ``tidy()`` gives one row per group-time effect (term ``"ATT(g=2004, t=2005)"``, prefixed with
    the ``by`` level when given); ``gt`` the same with group, time, event time and sample sizes.
    For ``estimator="twfe"`` there are no group-time cells: ``tidy()`` holds the dynamic TWFE
    event-time coefficients and ``aggregate("simple")`` the single-dummy coefficient.

    Examples
    --------
    >>> import coevidence as cv
    >>> from coevidence.datasets.panel import load_mpdta
    >>> es = cv.fit_event_study(load_mpdta(), "lemp", unit="countyreal", time="year",
    ...                         first_treated="first.treat")
    >>> es.aggregate("event").tidy()["term"].tolist()[:2]
    ['e=-3', 'e=-2']
    """

    def __init__(
        self, *, engine: Any, info: dict[str, Any], diagnostics: EventStudyDiagnostics
    ) -> None:
        self._engine = engine  # coevidence.models.did.event_study._Engine
        self.info = dict(info)
        self.estimator = info["estimator"]
        self.control = info.get("control")
        self.anticipation = info.get("anticipation")
        self.diagnostics = diagnostics
        self._freeze()

    @property
    def gt(self) -> pd.DataFrame:
        """Group-time effects with level, group, time, event_time, SE, df, reference flag, sizes."""
        return self._engine.gt_frame()

    def tidy(self, conf_level: float = 0.95) -> pd.DataFrame:
        """Group-time effects (reference cells, fixed at 0, are left out)."""
        return self._engine.gt_table().tidy(conf_level)

    def aggregate(
        self,
        kind: str = "simple",
        *,
        level: object | None = None,
        balance_e: int | None = None,
        min_e: float = -np.inf,
        max_e: float = np.inf,
    ) -> EffectTable:
        """Aggregate to ``"simple"``, ``"event"`` (dynamic), ``"group"`` or ``"calendar"`` effects.

        As R ``did::aggte``: cohort-share weights whose estimation enters the SEs; the overall
        effect is the last row (``"overall"``: for event, the mean of post-treatment event
        times; for group, cohort-share weighted; for calendar, the mean over periods).
        ``level`` picks one ``by`` level (default: every level, stacked). ``balance_e``,
        ``min_e``, ``max_e`` restrict event times as in ``aggte``.
        """
        return self._engine.aggregate(
            kind, level=level, balance_e=balance_e, min_e=min_e, max_e=max_e
        )

    def compare(self, level_a: object, level_b: object, kind: str = "simple") -> EffectTable:
        """Difference ``level_a - level_b`` of overall aggregated effects between ``by`` levels.

        Both come from one fit sharing the comparison units, so the SE uses the joint influence
        function (the covariance between the two is accounted for).
        """
        return self._engine.compare(level_a, level_b, kind)

    def pretrend_test(self) -> dict[str, float]:
        """Wald test that every pre-treatment effect is zero (did's pre-test of parallel trends).

        Chi-square as did when clustering by unit; with ``cluster=`` an F test with ``G - 1``
        denominator df (the covariance is estimated from G clusters).
        """
        return dict(self.diagnostics.pretrend)

    def glance(self) -> pd.DataFrame:
        """One row: estimator, control group, anticipation, sizes, SE type, pre-trend test."""
        d = self.diagnostics
        row = {
            **{k: v for k, v in self.info.items() if not isinstance(v, (list, dict, tuple))},
            "n_units": d.n_units,
            "n_obs": d.n_obs,
            "pretrend_statistic": d.pretrend.get("statistic"),
            "pretrend_df": d.pretrend.get("df"),
            "pretrend_p_value": d.pretrend.get("p_value"),
            "pretrend_test": d.pretrend.get("test", "chi2"),
        }
        return pd.DataFrame([row])

    def summary(self) -> str:
        """Estimator, control group, SE method, sample sizes, pre-test and the overall ATT."""
        d = self.diagnostics
        i = self.info
        lines = [
            f"Event study: {ESTIMATOR_LABEL[self.estimator]}",
            f"Outcome: {i['outcome']}    Unit: {i['unit']}    Time: {i['time']}    First treated: {i['first_treated']}",
            (
                f"Control group: {i.get('control')}    Anticipation: {i.get('anticipation')}    "
                f"Base period: {i.get('base_period', 'n/a')}    Cell estimator: {i.get('est_method', 'n/a')}"
            ),
            f"Covariance: {i['se_type']}",
            f"Degrees of freedom for tests: {i['df_method']}",
            f"Units: {d.n_units}    Observations: {d.n_obs}    Cohorts: "
            + ", ".join(
                f"{('never' if not np.isfinite(g) else f'{g:g}')}: {n}"
                for g, n in d.cohort_sizes.items()
            ),
        ]
        if d.n_rows_dropped_missing:
            lines.append(f"Rows dropped for missing values: {d.n_rows_dropped_missing}")
        if d.n_units_dropped_unbalanced:
            lines.append(
                f"Units dropped (not observed in every period): {d.n_units_dropped_unbalanced}"
            )
        if d.n_units_always_treated:
            lines.append(f"Units dropped (treated in the first period): {d.n_units_always_treated}")
        if d.pretrend and d.pretrend.get("df"):
            p = d.pretrend
            if p.get("test") == "F":
                lines.append(
                    f"Pre-trend Wald test: F({p['df']}, {p['df_denominator']:g}) = "
                    f"{p['statistic'] / p['df']:.4f}, p = {p['p_value']:.4g}"
                )
            else:
                lines.append(
                    f"Pre-trend Wald test: chi2({p['df']}) = {p['statistic']:.4f}, "
                    f"p = {p['p_value']:.4g}"
                )
        lines.append("")
        lines.append(
            self.aggregate("simple")
            .tidy()
            .to_string(index=False, float_format=lambda v: f"{v:.6g}")
        )
        for note in d.notes:
            lines.append(f"Note: {note}")
        return "\n".join(lines)
