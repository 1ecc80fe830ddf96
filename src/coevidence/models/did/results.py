"""Results of :func:`coevidence.fit_event_study` (staggered adoption / event studies)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from coevidence.results.base import (
    ResultBase,
    df_method_code,
    freeze,
    glance_frame,
    read_only,
    tidy_frame,
)

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

    def __post_init__(self) -> None:
        # read-only mappings: the diagnostics of a result cannot be changed
        object.__setattr__(self, "cohort_sizes", freeze(dict(self.cohort_sizes)))
        object.__setattr__(self, "pretrend", freeze(dict(self.pretrend)))
        object.__setattr__(self, "notes", tuple(self.notes))


_DF_CHOICE = {"bm": "bell_mccaffrey", "cluster": "g_minus_1", "normal": "z", "fixed": "fixed"}


def _codes(info: dict[str, Any]) -> tuple[str, str]:
    """(cov_type, df_method) option codes of an event-study fit's ``info``."""
    se = str(info.get("se_type", ""))
    if se.startswith("multiplier bootstrap"):
        cov = "multiplier_bootstrap"
    elif info.get("small_sample") == "cr2":
        cov = "cr2"
    else:
        cov = "clustered"
    choice = info.get("df_choice")
    df = _DF_CHOICE.get(choice) if choice else None
    return cov, df or df_method_code(info.get("df_method"))


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
        conf_level: float | None = None,
    ) -> None:
        self.title = title
        self._terms = tuple(terms)
        self.estimate = read_only(np.asarray(estimate, dtype=float))
        self.std_error = read_only(np.asarray(std_error, dtype=float))
        self.df = read_only(np.broadcast_to(np.asarray(df, dtype=float), self.estimate.shape))
        self.info = freeze(dict(info))
        self._extra = extra.reset_index(drop=True) if extra is not None else None
        self.crit_uniform = (
            read_only(crit_uniform) if isinstance(crit_uniform, np.ndarray) else crit_uniform
        )
        level = conf_level if conf_level is not None else info.get("conf_level", 0.95)
        self.conf_level = float(level)
        self._freeze()

    @property
    def terms(self) -> list[str]:
        """Term labels (a new list on every access)."""
        return list(self._terms)

    @property
    def extra(self) -> pd.DataFrame | None:
        """Descriptive columns (event time, group, level, ...), a copy, or None."""
        return None if self._extra is None else self._extra.copy()

    def _at_level(self, conf_level: float) -> EffectTable:
        """A copy whose stored confidence level is ``conf_level``."""
        if conf_level == self.conf_level:
            return self
        return EffectTable(
            title=self.title, terms=list(self._terms), estimate=self.estimate,
            std_error=self.std_error, info=dict(self.info), extra=self._extra,
            crit_uniform=self.crit_uniform, df=self.df, conf_level=conf_level,
        )

    def tidy(self, conf_level: float | None = None) -> pd.DataFrame:
        """One row per effect; pointwise t (or z) intervals (uniform bands: ``frame()``)."""
        return tidy_frame(self._terms, self.estimate, self.std_error, self.df,
                          self._level(conf_level))

    def frame(self, conf_level: float | None = None) -> pd.DataFrame:
        """``tidy()`` plus descriptive columns (event time, group, level, uniform band).

        The uniform (sup-t) band's bootstrap critical value is multiplied by ``t_df / z`` at
        the fit's level when tests are t tests, so that it is never narrower than the
        pointwise interval with few clusters.
        """
        out = self.tidy(conf_level)
        if self._extra is not None:
            out = pd.concat([out, self._extra], axis=1)
        crit = self.crit_uniform
        if crit is not None and np.all(np.isfinite(crit)):
            out["uniform_low"] = self.estimate - crit * self.std_error
            out["uniform_high"] = self.estimate + crit * self.std_error
        return out

    def glance(self) -> pd.DataFrame:
        """One row: the common keys, then the settings (title, control group, se type, ...)."""
        i = self.info
        cov, dfm = _codes(i)
        rest = _settings(i)
        return glance_frame(
            estimator=i.get("estimator"), outcome=i.get("outcome"), nobs=i.get("n_obs"),
            cov_type=cov, df_method=dfm, title=self.title,
            **({f"n_groups_{i['unit']}": i["n_units"]} if "unit" in i and "n_units" in i else {}),
            **rest, df_method_description=i.get("df_method"), conf_level=self.conf_level,
        )

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
        self.info = freeze(dict(info))
        inference = getattr(engine, "inference", None)
        self.conf_level = float(getattr(inference, "conf_level", info.get("conf_level", 0.95)))
        self.estimator = info["estimator"]
        self.control = info.get("control")
        self.anticipation = info.get("anticipation")
        self.diagnostics = diagnostics
        self._freeze()

    @property
    def gt(self) -> pd.DataFrame:
        """Group-time effects with level, group, time, event_time, SE, df, reference flag, sizes."""
        return self._engine.gt_frame()

    def tidy(self, conf_level: float | None = None) -> pd.DataFrame:
        """Group-time effects (reference cells, fixed at 0, are left out)."""
        return self._engine.gt_table().tidy(self._level(conf_level))

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
        )._at_level(self.conf_level)

    def compare(self, level_a: object, level_b: object, kind: str = "simple") -> EffectTable:
        """Difference ``level_a - level_b`` of overall aggregated effects between ``by`` levels.

        Both come from one fit sharing the comparison units, so the SE uses the joint influence
        function (the covariance between the two is accounted for).
        """
        return self._engine.compare(level_a, level_b, kind)._at_level(self.conf_level)

    def pretrend_test(self) -> dict[str, float]:
        """Wald test that every pre-treatment effect is zero (did's pre-test of parallel trends).

        Chi-square as did when clustering by unit; with ``cluster=`` an F test with ``G - 1``
        denominator df (the covariance is estimated from G clusters).
        """
        return dict(self.diagnostics.pretrend)

    def glance(self) -> pd.DataFrame:
        """One row: estimator, control group, anticipation, sizes, SE type, pre-trend test."""
        d = self.diagnostics
        i = self.info
        cov, dfm = _codes(i)
        rest = _settings(i)
        return glance_frame(
            estimator=self.estimator,
            outcome=i.get("outcome"),
            nobs=d.n_obs,
            cov_type=cov,
            df_method=dfm,
            **{f"n_groups_{i.get('unit', 'unit')}": d.n_units},
            **rest,
            df_method_description=i.get("df_method"),
            n_units=d.n_units,
            n_obs=d.n_obs,  # the name event-study results used before the common contract
            pretrend_statistic=d.pretrend.get("statistic"),
            pretrend_df=d.pretrend.get("df"),
            pretrend_p_value=d.pretrend.get("p_value"),
            pretrend_test=d.pretrend.get("test", "chi2"),
            conf_level=self.conf_level,
        )

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


def _settings(info) -> dict:
    """The scalar settings of ``info`` that are not among the common glance keys."""
    return {k: v for k, v in info.items() if not isinstance(v, (list, dict, tuple))
            and k not in ("estimator", "outcome", "nobs", "cov_type", "df_method")}
