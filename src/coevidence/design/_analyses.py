"""The analyses :func:`coevidence.simulate_power` runs on each simulated study.

An analysis is any callable ``analysis(study) -> mapping`` returning ``estimate``,
``std_error``, ``p_value``, ``conf_low``, ``conf_high`` (and optionally ``df``); it may raise when
a fit fails (the replicate is then counted as failed, never dropped). The built-in analyses also
know the true value of what they estimate (``truth(spec)``) so bias, RMSE and coverage can be
computed. They are module-level classes so that they pickle to worker processes and Dask workers.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from coevidence.exceptions import OptionError

__all__ = ["ClusterMeans", "Growth", "SteppedWedge", "resolve_analysis"]


def _cluster_column(study: Any) -> str:
    unit = getattr(study.design.randomisation_unit, "value", study.design.randomisation_unit)
    return "provider_id" if unit == "provider" else "org_id"


def _study_outcome(study: Any, outcome: str | None) -> str:
    return outcome or next(iter(study.measures))


def _outcome(spec: Any, outcome: str | None) -> str:
    return outcome or spec.outcomes[0].measure_id


def _t_test(a: np.ndarray, b: np.ndarray, conf_level: float) -> dict[str, float]:
    """Pooled-variance two-sample t test of mean(b) - mean(a)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        raise OptionError(f"too few clusters with data for a t test ({na} vs {nb})")
    df = na + nb - 2
    sp2 = ((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / df
    se = float(np.sqrt(sp2 * (1 / na + 1 / nb)))
    est = float(b.mean() - a.mean())
    tq = stats.t.isf((1 - conf_level) / 2, df)
    p = float(2 * stats.t.sf(abs(est / se), df)) if se > 0 else float("nan")
    return {"estimate": est, "std_error": se, "df": float(df), "p_value": p,
            "conf_low": est - tq * se, "conf_high": est + tq * se}


@dataclass(frozen=True)
class ClusterMeans:
    """Cluster-mean t test at one wave (the analysis a CRA2 power formula assumes).

    Respondent scores at ``wave`` (position; ``-1`` = last) are averaged within organisations
    and then within randomisation units (providers or organisations); the co-creation minus push
    difference of unit means is tested with a pooled two-sample t test (df = units - 2).

    Examples
    --------
    >>> ClusterMeans().name
    'cluster_means'
    """

    outcome: str | None = None
    wave: int = -1
    conf_level: float = 0.95
    name: str = "cluster_means"

    def __call__(self, study: Any) -> dict[str, float]:
        y = _study_outcome(study, self.outcome)
        panel = study.panel([y], unit="organization")
        times = np.sort(panel["time"].unique())
        at = panel[panel["time"] == times[self.wave]]
        unit = _cluster_column(study)
        means = at.groupby([unit, "ta_model"], observed=True)[y].mean().dropna().reset_index()
        push = means.loc[means["ta_model"] == "push", y].to_numpy()
        cc = means.loc[means["ta_model"] == "co_creation", y].to_numpy()
        return _t_test(push, cc, self.conf_level)

    def truth(self, spec: Any) -> float:
        from coevidence.design.simulate import true_effects

        te = true_effects(spec)[_outcome(spec, self.outcome)]
        return float(te["difference_by_wave"][self.wave])


#: Per-process cache of fitted growth models by design (issue 17): a replicate whose panel
#: matches a cached one in everything but the outcome values (same rows, randomisation, waves
#: and missing-outcome pattern) is refitted (``refit_growth``: X and Z cross-products reused,
#: the optimizer started as in a fresh fit, so the numbers are exactly ``fit_growth``'s). The
#: model-based growth analysis takes the lean path (``Refitter.estimates``: no MixedResult, no
#: frames, the design checks prepared once per template) when the refit is clean -- no fit
#: warning, no between-cluster df above the design limits -- and the full ``refit_growth``
#: otherwise, so a replicate's numbers and warnings are those of ``fit_growth`` either way.
_REFITS: OrderedDict[Any, tuple[Any, Any, Any, Any]] = OrderedDict()
_REFITS_SIZE = 16


def _design_key(analysis: Any, panel: Any, y: str) -> tuple[Any, Any]:
    """A hashable key and the frame that must match exactly for a refit."""
    import pandas as pd

    # what the growth fit reads: time, arm and grouping columns, plus the id / label columns
    # (the design-df checks look for levels in which the groups are nested); survey dates and
    # phases vary between replicates but are not used by the linear growth model
    cols = [c for c in panel.columns
            if c in ("time", "ta_model", "arm") or str(c).endswith("_id")]
    design = panel[cols].assign(_missing_outcome=panel[y].isna())
    digest = int(pd.util.hash_pandas_object(design, index=True).sum())
    return (repr(analysis), y, design.shape, digest), design


def _remember(key: Any, design: Any, res: Any, analysis: Any = None, panel: Any = None) -> None:
    from coevidence.models.mixed.refit import _refitter

    if res._fit.engine != "fast":
        return
    plan = _lean_plan(analysis, res, panel) if analysis is not None else None
    _REFITS[key] = (design, res, _refitter(res), plan)
    _REFITS.move_to_end(key)
    while len(_REFITS) > _REFITS_SIZE:
        _REFITS.popitem(last=False)


@dataclass(frozen=True)
class _LeanPlan:
    """The design checks of ``refit_growth`` for one template, prepared once.

    ``j``: the reported coefficient; ``level``: the assignment level; ``fall``: the
    ``(index, limit)`` of between-cluster terms whose df above ``limit`` make
    ``_design_inference`` bound the df; ``bounds``: those df bounds (coefficient -> cap);
    ``guard``: ``(index, limit)`` of ``design_guard`` (a df above warns ``DesignDfWarning``).
    """

    j: int
    level: str | None
    fall: tuple[tuple[int, float], ...]
    bounds: tuple[tuple[int, float], ...]
    guard: tuple[tuple[int, float], ...]
    conf_level: float


def _lean_plan(analysis: Any, res: Any, panel: Any) -> _LeanPlan | None:
    """``_design_inference`` and ``design_guard`` of ``refit_growth`` prepared for a template
    (everything but the df they compare is fixed by the design); None when the lean path does
    not apply (CR2, other df methods, piecewise time, a between term that is not modelled)."""
    from coevidence.models.mixed._design import (
        DESIGN_DF_FACTOR_MODELLED,
        between_terms,
        candidate_levels,
        modelled_at,
    )

    growth = getattr(res, "growth", None)
    if (getattr(analysis, "method", None) != "mixed" or res.cov_type == "cr2"
            or res.df_method != "satterthwaite" or growth is None or growth.design is None
            or growth.time_coding == "piecewise"):
        return None
    names = list(res.params.index)
    js = [i for i, n in enumerate(names) if "time" in str(n) and "co_creation" in str(n)]
    if len(js) != 1:
        return None
    info = res._info
    level = growth.design.assignment_level
    fall: list[tuple[int, float]] = []
    bounds: dict[int, float] = {}
    if level is not None:  # as growth._design_inference
        from coevidence.models.mixed.growth import between_df_bounds

        terms, _, bounds, bound = between_df_bounds(res, panel, level, {growth.time})
        limit = max(DESIGN_DF_FACTOR_MODELLED * bound, bound + 20)
        fall = [(bt.index, float(limit)) for bt in terms]
        if not terms:
            bounds = {}  # never applied
    guard: list[tuple[int, float]] = []
    levels = candidate_levels(info, panel, [level] if level else ())
    if levels:  # as _design.design_guard
        frame = info.data.copy()
        for col in levels:
            if col not in frame.columns:
                frame[col] = panel.loc[info.row_index, col].to_numpy()
        for bt in between_terms(info, frame, levels, names):
            if not np.isfinite(bt.df_bound):
                continue
            if not modelled_at(res, frame, bt):
                return None  # always warned about: left to refit_growth
            guard.append((bt.index, float(max(DESIGN_DF_FACTOR_MODELLED * bt.df_bound,
                                                  bt.df_bound + 20))))
    return _LeanPlan(js[0], level, tuple(fall), tuple(sorted(bounds.items())), tuple(guard),
                     float(res.conf_level))


def _lean_refit(plan: _LeanPlan, refitter: Any, yv: np.ndarray) -> dict[str, Any] | None:
    """The growth analysis's row from ``Refitter.estimates`` with ``refit_growth``'s design
    inference and warnings (their class names), without a MixedResult."""
    from coevidence.models.mixed._fast._refit import wald_one

    e = refitter.estimates(yv)
    notes = set()
    if e.messages:
        notes.add("BoundaryFitWarning" if e.singular else "FitWarning")
    df = e.df
    if plan.bounds:
        at_zero = any(g == plan.level and kind == "variance" and par != "(Intercept)"
                      for g, par, kind in e.boundary)
        fallen = any(not df[i] <= lim for i, lim in plan.fall)
        if at_zero or fallen:  # between_df="auto"
            idx = np.array([i for i, _ in plan.bounds], dtype=int)
            caps = np.array([c for _, c in plan.bounds], dtype=float)
            df = np.asarray(df, dtype=float).copy()
            above = ~(df[idx] <= caps)
            df[idx[above]] = caps[above]
    if any(not df[i] <= lim for i, lim in plan.guard):
        notes.add("DesignDfWarning")
    j = plan.j
    _, p, lo, hi = wald_one(e.beta[j], e.std_error[j], df[j], plan.conf_level)  # as tidy()
    return {"estimate": float(e.beta[j]), "std_error": float(e.std_error[j]),
            "df": float(df[j]), "p_value": p, "conf_low": lo,
            "conf_high": hi, "warning": ";".join(sorted(notes))}


@dataclass(frozen=True)
class Growth:
    """Difference in linear growth rates (co-creation minus push), the 3-level growth analysis.

    ``method="mixed"`` fits :func:`coevidence.fit_growth` on the organisation panel with its
    design-aware default (random intercept and slope for organisations and, when providers are
    randomised, for providers too; Satterthwaite df, bounded by the between-provider df when the
    provider slope variance is estimated at zero) and reports the ``time x ta_model``
    coefficient. ``method="cr2"`` is the same model with CR2 standard errors clustered by the
    randomisation unit and Bell-McCaffrey df. ``method="two_stage"`` computes each
    randomisation unit's OLS slope of its mean trajectory and compares slopes with a pooled t
    test (df = units - 2; :func:`coevidence.fit_growth_two_stage`, the analysis behind the
    ``slopes_cra2`` formula).

    Examples
    --------
    >>> Growth(method="two_stage").name
    'growth_two_stage'
    """

    outcome: str | None = None
    method: str = "mixed"
    conf_level: float = 0.95
    #: the outcome's family: None takes it from the simulation spec (``OutcomeSpec.family``);
    #: "binomial" / "poisson" fit the design-aware growth GLMM (``fit_growth(family=)``) to the
    #: organisation panel: proportions with the respondent counts as trials, or total counts
    #: with ``offset(log(respondents))``; the coefficient is on the logit / log scale
    family: str | None = None

    @property
    def name(self) -> str:
        return "growth" if self.method == "mixed" else f"growth_{self.method}"

    def _fit_glmm(self, panel: Any, y: str, levels: tuple[str, ...], unit: str) -> Any:
        from coevidence.models.mixed.growth import fit_growth

        if self.method != "mixed":
            raise OptionError(f"method={self.method!r} needs a linear model; a "
                              f"{self.family} outcome is analysed with method='mixed'")
        n = panel[f"{y}_n"].to_numpy(float)
        if self.family == "binomial":
            return fit_growth(panel, y, levels=levels, conf_level=self.conf_level,
                              assigned_at=unit, family="binomial", weights=f"{y}_n")
        data = panel.assign(**{f"{y}_total": np.round(panel[y].to_numpy(float) * n),
                               f"{y}_log_n": np.log(np.where(n > 0, n, np.nan))})
        return fit_growth(data, f"{y}_total", levels=levels, conf_level=self.conf_level,
                          assigned_at=unit, family="poisson", offset=f"{y}_log_n")

    def __call__(self, study: Any) -> dict[str, float]:
        y = _study_outcome(study, self.outcome)
        panel = study.panel([y], unit="organization")
        unit = _cluster_column(study)
        if self.method == "two_stage":
            from coevidence.models.mixed.two_stage import fit_growth_two_stage

            res2 = fit_growth_two_stage(panel, y, cluster=unit, conf_level=self.conf_level)
            r = res2.tidy().iloc[-1]
            return {"estimate": float(r["estimate"]), "std_error": float(r["std_error"]),
                    "df": float(r["df"]), "p_value": float(r["p_value"]),
                    "conf_low": float(r["conf_low"]), "conf_high": float(r["conf_high"])}
        if self.method not in ("mixed", "cr2"):
            raise OptionError(
                f"method must be 'mixed', 'cr2' or 'two_stage', got {self.method!r}"
            )
        from coevidence.models.mixed.growth import fit_growth

        by_provider = unit == "provider_id"
        levels = ("provider_id", "org_id") if by_provider else ("org_id",)
        extra = {"cov_type": "cr2", "cluster": unit} if self.method == "cr2" else {}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if self.family not in (None, "gaussian"):
                res = self._fit_glmm(panel, y, levels, unit)
                return _growth_row(res, caught)
            key, design = _design_key(self, panel, y)
            hit = _REFITS.get(key)
            if hit is not None and hit[0].equals(design):
                from coevidence.models.mixed.refit import refit_growth

                template, refitter, plan = hit[1], hit[2], hit[3]
                _REFITS.move_to_end(key)
                yv = panel.loc[template._info.row_index, y].to_numpy(float)
                if plan is not None and np.all(np.isfinite(yv)):
                    lean = _lean_refit(plan, refitter, yv)
                    if lean is not None:
                        return lean
                res = refit_growth(template, yv, panel, refitter=refitter)
            else:
                res = fit_growth(panel, y, levels=levels, conf_level=self.conf_level,
                                 assigned_at=unit, **extra)
                _remember(key, design, res, self, panel)
        return _growth_row(res, caught)

    def truth(self, spec: Any) -> float:
        from coevidence.design.simulate import true_effects

        return float(true_effects(spec)[_outcome(spec, self.outcome)]["slope_difference"])


def _growth_row(res: Any, caught: list) -> dict[str, Any]:
    """The ``time x co_creation`` row of a growth fit, with the coevidence warnings raised."""
    tidy = res.tidy()
    row = tidy[tidy["term"].str.contains("time") & tidy["term"].str.contains("co_creation")]
    if len(row) != 1:
        raise RuntimeError(f"no unique time x co_creation term in {tidy['term'].tolist()}")
    r = row.iloc[0]
    notes = sorted({type(w.message).__name__ for w in caught
                    if "Warning" in type(w.message).__name__
                    and type(w.message).__module__.startswith("coevidence")})
    return {"estimate": float(r["estimate"]), "std_error": float(r["std_error"]),
            "df": float(r["df"]), "p_value": float(r["p_value"]),
            "conf_low": float(r["conf_low"]), "conf_high": float(r["conf_high"]),
            "warning": ";".join(notes)}


@dataclass(frozen=True)
class SteppedWedge:
    """Hussey & Hughes model for stepped-wedge and staggered designs.

    Fits ``y ~ C(period) + treated + (1 | cluster)`` with :func:`coevidence.fit_mixed` on the
    organisation panel (``treated``: the panel's phase is during or after TA; clusters: the
    organisations, plus a provider intercept when providers roll out together; REML,
    Satterthwaite df) and reports the ``treated`` coefficient: the immediate, constant
    treatment effect.

    Examples
    --------
    >>> SteppedWedge().name
    'stepped_wedge'
    """

    outcome: str | None = None
    conf_level: float = 0.95
    name: str = "stepped_wedge"

    def __call__(self, study: Any) -> dict[str, float]:
        from coevidence.models.mixed.api import fit_mixed

        y = _study_outcome(study, self.outcome)
        panel = study.panel([y], unit="organization")
        data = panel.assign(
            treated=panel["phase"].isin(["during", "after"]).astype(float),
            period=panel["time"].astype(int).astype(str))
        # providers roll out together when every provider's organisations share each period's
        # treatment status: then the provider is the cluster, with organisations nested
        by_provider = bool(data.groupby(["provider_id", "time"])["treated"].nunique().max() == 1)
        rand = "(1 | provider_id) + (1 | org_id)" if by_provider else "(1 | org_id)"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = fit_mixed(f"{y} ~ C(period) + treated + {rand}", data,
                            conf_level=self.conf_level)
        r = res.tidy().set_index("term").loc["treated"]
        notes = sorted({type(w.message).__name__ for w in caught
                        if type(w.message).__module__.startswith("coevidence")})
        return {"estimate": float(r["estimate"]), "std_error": float(r["std_error"]),
                "df": float(r["df"]), "p_value": float(r["p_value"]),
                "conf_low": float(r["conf_low"]), "conf_high": float(r["conf_high"]),
                "warning": ";".join(notes)}

    def truth(self, spec: Any) -> float:
        o = next((x for x in spec.outcomes if x.measure_id == self.outcome), spec.outcomes[0])
        if o.arm_slope != 0 or o.post_slope_change != 0:
            return float("nan")  # the immediate-effect estimand mixes exposure-time effects
        return float(o.arm_effect)


def resolve_analysis(analysis: Any, spec: Any) -> Any:
    """``None`` -> the default for the spec; a name -> the built-in; a callable is kept.

    A :class:`Growth` analysis without a ``family`` takes its outcome's family from the spec
    (a binary or count outcome is analysed with the growth GLMM).
    """
    out = _resolve(analysis, spec)
    if isinstance(out, Growth) and out.family is None:
        from dataclasses import replace

        outcome = _outcome(spec, out.outcome)
        fam = next((getattr(o, "family", "gaussian") for o in spec.outcomes
                    if o.measure_id == outcome), "gaussian")
        out = replace(out, family=fam)
    return out


def _resolve(analysis: Any, spec: Any) -> Any:
    if analysis is None:
        if spec.assignment in ("stepped_wedge", "staggered"):
            return SteppedWedge()
        return Growth() if spec.n_waves >= 3 else ClusterMeans()
    if isinstance(analysis, str):
        table: Mapping[str, Any] = {
            "growth": Growth(), "growth_mixed": Growth(),
            "growth_two_stage": Growth(method="two_stage"),
            "growth_cr2": Growth(method="cr2"),
            "cluster_means": ClusterMeans(),
            "stepped_wedge": SteppedWedge(),
        }
        if analysis not in table:
            raise OptionError(f"unknown analysis {analysis!r}; built-in: {', '.join(table)}")
        return table[analysis]
    if not callable(analysis):
        raise TypeError(f"analysis must be a callable, a built-in name or None, got {analysis!r}")
    return analysis
