"""Staggered-adoption comparisons: :func:`fit_event_study`.

Estimators: Callaway & Sant'Anna (``"callaway_santanna"``, hand-written on numpy following R
``did``; reproduces the package's published mpdta results), Sun & Abraham (``"sun_abraham"``),
Gardner's two-stage DiD (``"two_stage"``) and the conventional two-way fixed effects
(``"twfe"``, a benchmark that is biased when effects vary over time and cohorts).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from coevidence.exceptions import MissingDataWarning, ModelSpecificationError, StudyValidationError
from coevidence.models import _did_aggregate as agg
from coevidence.models._did_cs import Cells, cs_cells
from coevidence.models._did_regression import (
    LongPanel,
    sun_abraham_cells,
    twfe_fit,
    two_stage_cells,
)
from coevidence.models._panel_data import TABLE, check_columns, check_identifiers, drop_missing
from coevidence.results.event_study import EffectTable, EventStudyDiagnostics, EventStudyResult

__all__ = ["fit_event_study"]

ESTIMATORS = ("callaway_santanna", "sun_abraham", "two_stage", "twfe")
CONTROLS = ("never_treated", "not_yet_treated")


def _unit_constant(panel: pd.DataFrame, unit: str, col: str) -> None:
    """Raise if ``col`` varies within a unit (it must be a unit-level attribute)."""
    nun = panel.groupby(unit, sort=False, dropna=False)[col].nunique(dropna=False)
    bad = nun.index[nun > 1]
    if len(bad):
        pos = np.flatnonzero(panel[unit].isin(bad).to_numpy())
        fails = [
            {
                "table": TABLE,
                "row": int(r),
                "column": col,
                "value": panel[col].iloc[r],
                "rule": f"{col!r} must be constant within {unit!r} (unit {panel[unit].iloc[r]!r} has several values)",
            }
            for r in pos
        ]
        raise StudyValidationError(pd.DataFrame(fails), what=f"the panel's {col!r} column")


class _Engine:
    """Holds the cells / influence functions and computes tables on demand."""

    def __init__(self, *, cells, unit_group, unit_level, levels, info, boot, twfe=None, by=None):
        self.cells: Cells | None = cells
        self.unit_group = unit_group
        self.unit_level = unit_level
        self.levels = levels
        self.info = info
        self.boot = boot  # None or dict(reps, weights, seed, cluster)
        self.twfe = twfe
        self.by = by

    # -- standard errors -----------------------------------------------------------------------
    def se(self, inf: np.ndarray) -> tuple[np.ndarray, float | None]:
        inf = inf if inf.ndim == 2 else inf[:, None]
        if self.boot is None:
            return agg.se_from_inf(inf), None
        rng = np.random.default_rng(self.boot["seed"])
        return agg.multiplier_bootstrap(
            inf,
            self.boot["reps"],
            rng,
            self.boot["weights"],
            self.boot["cluster"],
            self.boot["conf_level"],
        )

    def _prefix(self, level: object) -> str:
        return f"{level}: " if self.by is not None else ""

    # -- group-time ----------------------------------------------------------------------------
    def gt_frame(self) -> pd.DataFrame:
        if self.cells is None:
            raise ModelSpecificationError(
                "estimator='twfe' has no group-time effects; see tidy() for event times"
            )
        c = self.cells
        se, _ = self.se(c.inf)
        se = np.where(c.reference, np.nan, se)
        return pd.DataFrame(
            {
                "level": c.level if self.by is not None else None,
                "group": c.group,
                "time": c.time,
                "event_time": c.time - c.group,
                "estimate": c.estimate,
                "std_error": se,
                "reference": c.reference,
                "n_treated": c.n_treated,
                "n_control": c.n_control,
            }
        )

    def gt_table(self) -> EffectTable:
        if self.cells is None:
            t = self.twfe
            se, crit = self.se(t["event_inf"])
            return EffectTable(
                title="Dynamic TWFE event-time coefficients",
                terms=[f"e={e:g}" for e in t["event_times"]],
                estimate=t["event"],
                std_error=se,
                info=self.info,
                extra=pd.DataFrame({"event_time": t["event_times"]}),
                crit_uniform=crit,
            )
        c = self.cells
        keep = ~c.reference
        se, crit = self.se(c.inf[:, keep])
        terms = [
            f"{self._prefix(lv)}ATT(g={g:g}, t={t:g})"
            for lv, g, t in zip(c.level[keep], c.group[keep], c.time[keep], strict=True)
        ]
        extra = pd.DataFrame(
            {
                "level": c.level[keep],
                "group": c.group[keep],
                "time": c.time[keep],
                "event_time": (c.time - c.group)[keep],
            }
        )
        return EffectTable(
            title="Group-time average treatment effects",
            terms=terms,
            estimate=c.estimate[keep],
            std_error=se,
            info=self.info,
            extra=extra,
            crit_uniform=crit,
        )

    # -- aggregation ---------------------------------------------------------------------------
    def _agg_one(self, kind, level, **kw) -> agg.Aggregate:
        if self.cells is None:
            t = self.twfe
            if kind == "simple":
                return agg.Aggregate(
                    "simple",
                    np.array(["ATT"], dtype=object),
                    np.array([t["static"]]),
                    t["static_inf"][:, None],
                    t["static"],
                    t["static_inf"],
                )
            if kind == "event":
                es = t["event_times"]
                pos = es >= 0
                return agg.Aggregate(
                    "event",
                    es,
                    t["event"],
                    t["event_inf"],
                    float(t["event"][pos].mean()),
                    t["event_inf"][:, pos].mean(axis=1),
                )
            raise ModelSpecificationError(
                f"estimator='twfe' supports aggregate('simple') and ('event'), not {kind!r}"
            )
        return agg.aggregate(self.cells, kind, self.unit_group, self.unit_level, level, **kw)

    def aggregate(
        self, kind, *, level=None, balance_e=None, min_e=-np.inf, max_e=np.inf
    ) -> EffectTable:
        if kind not in ("simple", "event", "group", "calendar"):
            raise ValueError(
                f"aggregation must be 'simple', 'event', 'group' or 'calendar', got {kind!r}"
            )
        levels = self.levels if level is None else [level]
        for lv in levels:
            if lv not in self.levels:
                raise ValueError(f"level {lv!r} is not a level of by={self.by!r}: {self.levels}")
        terms, ests, infs, extra = [], [], [], []
        for lv in levels:
            a = self._agg_one(kind, lv, balance_e=balance_e, min_e=min_e, max_e=max_e)
            pre = self._prefix(lv)
            fmt = {"simple": "{}", "event": "e={:g}", "group": "g={:g}", "calendar": "t={:g}"}[kind]
            for lab, est, j in zip(a.labels, a.estimate, range(len(a.estimate)), strict=True):
                terms.append(pre + (fmt.format(lab) if kind != "simple" else "ATT"))
                ests.append(est)
                infs.append(a.inf[:, j])
                extra.append(
                    {
                        "level": lv,
                        "label": lab if kind != "simple" else np.nan,
                        "overall": kind == "simple",
                    }
                )
            if kind != "simple" and a.overall_inf is not None:
                terms.append(pre + "overall")
                ests.append(a.overall)
                infs.append(a.overall_inf)
                extra.append({"level": lv, "label": np.nan, "overall": True})
        se, crit = self.se(np.column_stack(infs))
        ex = pd.DataFrame(extra)
        if self.by is None:
            ex = ex.drop(columns="level")
        ex = ex.rename(
            columns={
                "label": {
                    "event": "event_time",
                    "group": "group",
                    "calendar": "time",
                    "simple": "label",
                }[kind]
            }
        )
        return EffectTable(
            title=f"Aggregated effects ({kind})",
            terms=terms,
            estimate=np.array(ests),
            std_error=se,
            info={**self.info, "aggregation": kind},
            extra=ex,
            crit_uniform=crit,
        )

    def compare(self, a, b, kind) -> EffectTable:
        if self.by is None:
            raise ModelSpecificationError("compare() needs a fit with by=<unit-level column>")
        ra = self._agg_one(kind, a)
        rb = self._agg_one(kind, b)
        if ra.overall_inf is None or rb.overall_inf is None:
            raise ModelSpecificationError(f"no overall {kind} effect for one of the levels")
        inf = np.column_stack([ra.overall_inf, rb.overall_inf, ra.overall_inf - rb.overall_inf])
        se, _ = self.se(inf)
        return EffectTable(
            title=f"Comparison of overall {kind} effects: {a} - {b}",
            terms=[f"{a}", f"{b}", f"{a} - {b}"],
            estimate=np.array([ra.overall, rb.overall, ra.overall - rb.overall]),
            std_error=se,
            info={**self.info, "aggregation": kind},
        )


def fit_event_study(
    panel: pd.DataFrame,
    outcome: str,
    unit: str = "org_id",
    time: str = "wave",
    first_treated: str = "first_treated",
    *,
    estimator: str = "callaway_santanna",
    control: str = "never_treated",
    anticipation: int = 0,
    covariates: Sequence[str] | None = None,
    est_method: str = "dr",
    base_period: str = "varying",
    by: str | None = None,
    bootstrap: int | None = None,
    bootstrap_weights: str = "mammen",
    cluster: str | None = None,
    seed: int | None = None,
    conf_level: float = 0.95,
) -> EventStudyResult:
    """Estimate effects of a staggered rollout (organisations starting TA at different times).

    Parameters
    ----------
    panel : pandas.DataFrame
        Long panel, one row per unit x period; never modified.
    outcome, unit, time : str
        Outcome, unit id and (numeric) period columns. Event time is ``time - first_treated``.
    first_treated : str
        Period of first treatment per unit (constant within unit); NaN or inf for never-treated
        units (0 too, as in R ``did``, when 0 is before the first period).
    estimator : {"callaway_santanna", "sun_abraham", "two_stage", "twfe"}
    control : {"never_treated", "not_yet_treated"}
        Comparison units for Callaway & Sant'Anna (the other estimators use every untreated
        observation, or never-treated units for Sun & Abraham).
    anticipation : int
        Periods before ``first_treated`` in which units may already react.
    covariates : list of str, optional
        Callaway & Sant'Anna: covariates taken at the base period of every comparison (as
        ``did``), used by ``est_method``; other estimators: linear controls.
    est_method : {"dr", "reg"}
        Callaway & Sant'Anna cell estimator: doubly robust (did's default) or outcome regression;
        identical without covariates.
    base_period : {"varying", "universal"}
        Callaway & Sant'Anna pre-period comparisons (did's ``base_period``).
    by : str, optional
        A unit-level column (e.g. ``"ta_model"``): effects are estimated separately for each
        level of treated units (sharing comparison units) so that ``result.compare("co_creation",
        "push")`` gives the difference with a standard error.
    bootstrap : int, optional
        Multiplier-bootstrap draws; when given, every standard error is the bootstrap one and
        ``EffectTable.frame()`` adds uniform (sup-t) bands. Default: analytic influence-function SEs.
    bootstrap_weights : {"mammen", "rademacher"}
    cluster : str, optional
        Cluster column (constant within unit) for the bootstrap; default: units.
    seed : int, optional
        Seed for the bootstrap (results are reproducible given the seed).
    conf_level : float
        Level of the uniform bands.

    Returns
    -------
    EventStudyResult

    Examples
    --------
    >>> import coevidence as cv
    >>> from coevidence.datasets.panel import load_mpdta
    >>> es = cv.fit_event_study(load_mpdta(), "lemp", unit="countyreal", time="year",
    ...                         first_treated="first.treat")
    >>> round(float(es.tidy()["estimate"].iloc[0]), 4)
    -0.0105
    """
    for name, val, allowed in (
        ("estimator", estimator, ESTIMATORS),
        ("control", control, CONTROLS),
        ("est_method", est_method, ("dr", "reg")),
        ("base_period", base_period, ("varying", "universal")),
        ("bootstrap_weights", bootstrap_weights, ("mammen", "rademacher")),
    ):
        if val not in allowed:
            raise ValueError(f"{name} must be one of {list(allowed)}, got {val!r}")
    if not isinstance(anticipation, (int, np.integer)) or anticipation < 0:
        raise ValueError(f"anticipation must be a non-negative integer, got {anticipation!r}")
    if bootstrap is not None and (not isinstance(bootstrap, (int, np.integer)) or bootstrap < 50):
        raise ValueError(f"bootstrap must be None or a number of draws >= 50, got {bootstrap!r}")
    if cluster is not None and bootstrap is None:
        raise ValueError("cluster= applies to the multiplier bootstrap; give bootstrap=<draws> too")
    covs = list(covariates or [])
    check_columns(
        panel,
        [outcome, unit, time, first_treated, by, cluster, *covs],
        numeric=[outcome, time, first_treated, *covs],
    )
    check_identifiers(panel, unit, time)
    for col in (first_treated, by, cluster):
        if col is not None:
            _unit_constant(panel, unit, col)
    data, n_missing = drop_missing(panel, [outcome, *covs], "fit_event_study")
    notes: list[str] = []

    periods = np.sort(data[time].unique()).astype(float)
    ft = data[first_treated].astype(float).to_numpy()
    zero_never = periods.min() > 0
    if not zero_never and np.any(ft == 0):
        raise StudyValidationError(
            pd.DataFrame(
                [
                    {
                        "table": TABLE,
                        "row": int(np.flatnonzero(panel[first_treated].to_numpy() == 0)[0]),
                        "column": first_treated,
                        "value": 0,
                        "rule": "0 is a period of the panel, so it cannot mean 'never treated': use NaN",
                    }
                ]
            ),
            what=f"the panel's {first_treated!r} column",
        )
    ft = np.where(np.isnan(ft) | (ft == 0), np.inf, ft)
    data = data.assign(_G=ft)
    always = data["_G"].to_numpy() <= periods.min()
    n_always = int(data.loc[always, unit].nunique())
    if n_always:
        warnings.warn(
            f"fit_event_study: dropped {n_always} units treated in the first period (no pre-period)",
            MissingDataWarning,
            stacklevel=2,
        )
        data = data.loc[~always]
    if not np.isfinite(data["_G"]).all() or estimator in ("sun_abraham", "twfe"):
        pass  # never-treated units exist (SA and TWFE handle their absence themselves)
    elif estimator == "callaway_santanna" and control == "never_treated":
        raise ModelSpecificationError(
            "no never-treated units: use control='not_yet_treated' (the last cohort then serves as comparison)"
        )
    else:
        # as R did: without never-treated units, periods from the last cohort's start on are
        # dropped and the last cohort serves as the (not yet treated) comparison group
        last = float(data["_G"].max())
        n_rows = int((data[time] >= last - anticipation).sum())
        data = data.loc[data[time] < last - anticipation]
        if estimator == "callaway_santanna":
            data = data.assign(_G=np.where(data["_G"] == last, np.inf, data["_G"]))
        periods = periods[periods < last - anticipation]
        notes.append(
            f"no never-treated units: {n_rows} rows from period {last - anticipation:g} on were dropped "
            f"and the last cohort ({last:g}) is the comparison group"
        )
    n_unbal = 0
    if estimator == "callaway_santanna":
        counts = data.groupby(unit)[time].transform("size").to_numpy()
        unbal = counts < len(periods)
        n_unbal = int(data.loc[unbal, unit].nunique())
        if n_unbal:
            warnings.warn(
                f"fit_event_study: dropped {n_unbal} units not observed in every period "
                "(Callaway & Sant'Anna panel estimator needs a balanced panel, as R did)",
                MissingDataWarning,
                stacklevel=2,
            )
            data = data.loc[~unbal]
    if data.empty:
        raise ModelSpecificationError("no units left to analyse")
    data = data.sort_values([unit, time])
    ucode, _ulevels = pd.factorize(data[unit], sort=True)
    tcode = np.searchsorted(periods, data[time].to_numpy(dtype=float))
    first_row = np.r_[True, ucode[1:] != ucode[:-1]]
    G_unit = data["_G"].to_numpy()[first_row]
    lev_unit = (
        data[by].to_numpy()[first_row] if by is not None else np.full(len(G_unit), "", dtype=object)
    ).astype(object)
    if by is not None:
        never = ~np.isfinite(G_unit)
        lev_unit = np.where(never, "<never treated>", lev_unit).astype(object)
    levels = list(dict.fromkeys(lev_unit[np.isfinite(G_unit)].tolist())) if by is not None else [""]
    if not np.isfinite(G_unit).any():
        raise ModelSpecificationError(
            f"no treated units: {first_treated!r} is never-treated for everyone"
        )
    clus_unit = data[cluster].to_numpy()[first_row] if cluster is not None else None
    boot = (
        None
        if bootstrap is None
        else {
            "reps": int(bootstrap),
            "weights": bootstrap_weights,
            "seed": seed,
            "cluster": clus_unit,
            "conf_level": conf_level,
        }
    )
    se_type = (
        "analytic (influence function), clustered by unit"
        if boot is None
        else f"multiplier bootstrap ({bootstrap} draws, {bootstrap_weights} weights, seed {seed}), "
        f"clustered by {cluster or unit}"
    )
    info = {
        "estimator": estimator,
        "outcome": outcome,
        "unit": unit,
        "time": time,
        "first_treated": first_treated,
        "control": control
        if estimator == "callaway_santanna"
        else {
            "sun_abraham": "never_treated",
            "two_stage": "untreated observations",
            "twfe": "untreated observations",
        }[estimator],
        "anticipation": anticipation,
        "se_type": se_type,
        "df_method": "normal (z); pointwise intervals"
        + ("; uniform sup-t bands in frame()" if boot else ""),
        "by": by,
    }
    if estimator == "callaway_santanna":
        info.update(base_period=base_period, est_method=est_method if covs else "unconditional")
        Y = np.full((len(G_unit), len(periods)), np.nan)
        Y[ucode, tcode] = data[outcome].to_numpy(dtype=float)
        Xc = None
        if covs:
            Xc = np.ones((len(G_unit), len(periods), len(covs) + 1))
            for j, c in enumerate(covs):
                Xc[ucode, tcode, j + 1] = data[c].to_numpy(dtype=float)
        cells = cs_cells(
            Y,
            G_unit,
            periods,
            lev_unit,
            Xc,
            control=control,
            anticipation=anticipation,
            base_period=base_period,
            est_method=est_method if covs else "unconditional",
        )
        twfe = None
    else:
        if control != "never_treated":
            notes.append(f"control={control!r} applies to Callaway & Sant'Anna only; ignored")
        lp = LongPanel(
            data[outcome].to_numpy(dtype=float),
            ucode,
            tcode,
            periods,
            G_unit,
            lev_unit,
            data[covs].to_numpy(dtype=float) if covs else None,
        )
        twfe = None
        cells = None
        if estimator == "sun_abraham":
            cells, more = sun_abraham_cells(lp, anticipation)
            notes += more
        elif estimator == "two_stage":
            cells, more = two_stage_cells(lp, anticipation)
            notes += more
        else:
            if by is not None:
                raise ModelSpecificationError("by= is not available for estimator='twfe'")
            twfe = twfe_fit(lp, anticipation)
            if twfe["extra_ref"] is not None:
                refs = ", ".join(f"{e:g}" for e in twfe["extra_ref"])
                notes.append(
                    f"dynamic TWFE not identified with one reference period: event times {refs} are "
                    "additional (second reference) periods fixed at 0"
                )
    engine = _Engine(
        cells=cells,
        unit_group=G_unit,
        unit_level=lev_unit,
        levels=levels,
        info=info,
        boot=boot,
        twfe=twfe,
        by=by,
    )
    if cells is not None:
        pre = agg.pretrend_wald(cells)
    else:
        es = twfe["event_times"]
        pre_idx = np.flatnonzero(es < -1 - anticipation)
        pre = _wald(twfe["event"][pre_idx], twfe["event_inf"][:, pre_idx])
    sizes = pd.Series(G_unit).value_counts().sort_index()
    diagnostics = EventStudyDiagnostics(
        n_units=len(G_unit),
        n_obs=len(data),
        n_rows_dropped_missing=n_missing,
        n_units_dropped_unbalanced=n_unbal,
        n_units_always_treated=n_always,
        cohort_sizes={float(k): int(v) for k, v in sizes.items()},
        pretrend=pre,
        notes=tuple(notes),
    )
    return EventStudyResult(engine=engine, info=info, diagnostics=diagnostics)


def _wald(est: np.ndarray, inf: np.ndarray) -> dict[str, float]:
    if len(est) == 0:
        return {"statistic": float("nan"), "df": 0, "p_value": float("nan")}
    n = inf.shape[0]
    V = inf.T @ inf / n
    W = float(n * est @ np.linalg.pinv(V) @ est)
    df = int(np.linalg.matrix_rank(V))
    return {"statistic": W, "df": df, "p_value": float(stats.chi2.sf(W, df))}
