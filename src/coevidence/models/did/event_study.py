"""Staggered-adoption comparisons: :func:`fit_event_study`.

Estimators: Callaway & Sant'Anna (``"callaway_santanna"``, hand-written on numpy following R
``did``; reproduces the package's published mpdta results), Sun & Abraham (``"sun_abraham"``),
Gardner's two-stage DiD (``"two_stage"``) and the conventional two-way fixed effects
(``"twfe"``, a benchmark that is biased when effects vary over time and cohorts).

Inference with few clusters (``docs/models/few_clusters.md``): with ``cluster=`` (e.g. the TA
provider, the unit of assignment) standard errors are cluster-robust with a CR2-type leverage
adjustment (Callaway & Sant'Anna; CR1's ``G / (G - 1)`` for the other estimators) and tests are t
tests with Bell-McCaffrey df (CS) or ``G - 1`` df; ``df="normal"`` gives R ``did``'s z tests.
"""

from __future__ import annotations

import dataclasses
import numbers
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from coevidence.exceptions import (
    FewClustersWarning,
    MissingDataWarning,
    ModelSpecificationError,
    OptionError,
    StudyValidationError,
)
from coevidence.models._shared.data import (
    TABLE,
    check_columns,
    check_identifiers,
    check_outcome_variation,
    drop_missing,
)
from coevidence.models._shared.options import (
    UNSET,
    as_generator,
    check_choice,
    check_conf_level,
    keyword_only,
    refuse_ignored,
    renamed,
)
from coevidence.models.did import _aggregate as agg
from coevidence.models.did import _small as small
from coevidence.models.did._cs import Cells, cs_cells
from coevidence.models.did._regression import (
    LongPanel,
    sun_abraham_cells,
    twfe_fit,
    two_stage_cells,
)
from coevidence.models.did.results import EffectTable, EventStudyDiagnostics, EventStudyResult
from coevidence.models.panel.model import FEW_CLUSTERS  # z tests with fewer clusters warn

__all__ = ["fit_event_study"]

ESTIMATORS = ("callaway_santanna", "sun_abraham", "two_stage", "twfe")
CONTROLS = ("never_treated", "not_yet_treated")
SMALL_SAMPLE = ("auto", "cr2", "cr1", "none")
DF_OPTIONS = ("auto", "bm", "cluster", "normal")


@dataclasses.dataclass(frozen=True)
class _Inference:
    """How standard errors and reference distributions are computed for one fit."""

    codes: np.ndarray | None  # cluster code per unit; None = the units themselves
    n_clusters: int
    var_factor: float = 1.0  # CR1 factor G / (G - 1) (estimators without the CR2 adjustment)
    share_scale: np.ndarray | None = None  # CR2 factor of the cohort-share influence
    df_mode: str = "cluster"  # "bm", "cluster" (G - 1), "normal" (z) or "fixed"
    df_fixed: float = np.inf
    conf_level: float = 0.95
    f_pretest: bool = False  # pre-trend test as F(q, G - 1) instead of chi2(q)


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

    def __init__(
        self, *, cells, unit_group, unit_level, levels, info, boot, inference, twfe=None, by=None
    ):
        self.cells: Cells | None = cells
        self.unit_group = unit_group
        self.unit_level = unit_level
        self.levels = levels
        self.info = info
        self.boot = boot  # None or dict(reps, weights, seed, conf_level)
        self.inference: _Inference = inference
        self.twfe = twfe
        self.by = by
        self._bm_cache: dict = {}  # design-only matrices of the Bell-McCaffrey df

    # -- standard errors -----------------------------------------------------------------------
    def se(self, inf: np.ndarray) -> tuple[np.ndarray, float | None]:
        inf = inf if inf.ndim == 2 else inf[:, None]
        inference = self.inference
        if inference.var_factor != 1.0:
            inf = inf * np.sqrt(inference.var_factor)
        if self.boot is None:
            if inference.codes is None:
                return agg.se_from_inf(inf), None
            return agg.se_clustered(inf, inference.codes, inference.n_clusters), None
        rng = np.random.default_rng(self.boot["seed"])
        return agg.multiplier_bootstrap(
            inf,
            self.boot["reps"],
            rng,
            self.boot["weights"],
            inference.codes,
            self.boot["conf_level"],
        )

    def df(self, W: np.ndarray | None, m: int) -> np.ndarray:
        """Reference df for ``m`` estimates with cell weights ``W`` (n_cells x m, or None)."""
        inference = self.inference
        G = inference.n_clusters
        if inference.df_mode == "normal":
            return np.full(m, np.inf)
        if inference.df_mode == "fixed":
            return np.full(m, float(inference.df_fixed))
        if inference.df_mode == "bm" and W is not None and self.cells is not None:
            codes = inference.codes if inference.codes is not None else np.arange(G)
            df = small.bm_df(self.cells, W, codes, G, self._bm_cache)
            return np.where(np.isfinite(df), np.maximum(df, 1.0), float(G - 1))
        return np.full(m, float(G - 1))

    def crit(self, crit: float | None, df: np.ndarray) -> np.ndarray | float | None:
        """Uniform-band critical values, widened by ``t_df / z`` at the fit's level for t tests."""
        if crit is None or not np.isfinite(crit) or not np.isfinite(df).any():
            return crit
        q = 0.5 + self.inference.conf_level / 2
        ratio = np.where(
            np.isfinite(df), stats.t.ppf(q, np.where(np.isfinite(df), df, 1.0)), stats.norm.ppf(q)
        ) / stats.norm.ppf(q)
        return crit * ratio

    def wald(self, est: np.ndarray, inf: np.ndarray) -> dict[str, float]:
        """Joint Wald (or F) test that ``est`` is zero, with this fit's clustering."""
        inference = self.inference
        if inference.var_factor != 1.0:
            inf = inf * np.sqrt(inference.var_factor)
        df2 = float(inference.n_clusters - 1) if inference.f_pretest else np.inf
        return agg.wald(est, inf, inference.codes, inference.n_clusters, df2)

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
        df = np.where(c.reference, np.nan, self.df(np.eye(len(c.estimate)), len(c.estimate)))
        return pd.DataFrame(
            {
                "level": c.level if self.by is not None else None,
                "group": c.group,
                "time": c.time,
                "event_time": c.time - c.group,
                "estimate": c.estimate,
                "std_error": se,
                "df": df,
                "reference": c.reference,
                "n_treated": c.n_treated,
                "n_control": c.n_control,
            }
        )

    def gt_table(self) -> EffectTable:
        if self.cells is None:
            t = self.twfe
            se, crit = self.se(t["event_inf"])
            df = self.df(None, len(se))
            return EffectTable(
                title="Dynamic TWFE event-time coefficients",
                terms=[f"e={e:g}" for e in t["event_times"]],
                estimate=t["event"],
                std_error=se,
                df=df,
                info=self.info,
                extra=pd.DataFrame({"event_time": t["event_times"]}),
                crit_uniform=self.crit(crit, df),
            )
        c = self.cells
        keep = ~c.reference
        se, crit = self.se(c.inf[:, keep])
        df = self.df(np.eye(len(c.estimate))[:, keep], int(keep.sum()))
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
            df=df,
            info=self.info,
            extra=extra,
            crit_uniform=self.crit(crit, df),
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
        return agg.aggregate(
            self.cells,
            kind,
            self.unit_group,
            self.unit_level,
            level,
            share_scale=self.inference.share_scale,
            **kw,
        )

    def aggregate(
        self, kind, *, level=None, balance_e=None, min_e=-np.inf, max_e=np.inf
    ) -> EffectTable:
        if kind not in ("simple", "event", "group", "calendar"):
            raise OptionError(
                f"aggregation must be 'simple', 'event', 'group' or 'calendar', got {kind!r}"
            )
        levels = self.levels if level is None else [level]
        for lv in levels:
            if lv not in self.levels:
                raise OptionError(f"level {lv!r} is not a level of by={self.by!r}: {self.levels}")
        terms, ests, infs, extra, wts = [], [], [], [], []
        for lv in levels:
            a = self._agg_one(kind, lv, balance_e=balance_e, min_e=min_e, max_e=max_e)
            pre = self._prefix(lv)
            fmt = {"simple": "{}", "event": "e={:g}", "group": "g={:g}", "calendar": "t={:g}"}[kind]
            for lab, est, j in zip(a.labels, a.estimate, range(len(a.estimate)), strict=True):
                terms.append(pre + (fmt.format(lab) if kind != "simple" else "ATT"))
                ests.append(est)
                infs.append(a.inf[:, j])
                wts.append(None if a.weights is None else a.weights[:, j])
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
                wts.append(a.overall_weights)
                extra.append({"level": lv, "label": np.nan, "overall": True})
        se, crit = self.se(np.column_stack(infs))
        W = None if any(w is None for w in wts) else np.column_stack(wts)
        df = self.df(W, len(se))
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
            df=df,
            info={**self.info, "aggregation": kind},
            extra=ex,
            crit_uniform=self.crit(crit, df),
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
        wa, wb = ra.overall_weights, rb.overall_weights
        W = None if wa is None or wb is None else np.column_stack([wa, wb, wa - wb])
        return EffectTable(
            title=f"Comparison of overall {kind} effects: {a} - {b}",
            terms=[f"{a}", f"{b}", f"{a} - {b}"],
            estimate=np.array([ra.overall, rb.overall, ra.overall - rb.overall]),
            std_error=se,
            df=self.df(W, 3),
            info={**self.info, "aggregation": kind},
        )


@renamed(bootstrap="bootstrap_reps")
@keyword_only(2, ("unit", "time", "first_treated"))
def fit_event_study(
    panel: pd.DataFrame,
    outcome: str,
    *,
    unit: str = "org_id",
    time: str = "wave",
    first_treated: str = "first_treated",
    estimator: str = "callaway_santanna",
    control: str = UNSET,
    anticipation: int = 0,
    covariates: Sequence[str] | None = None,
    est_method: str = UNSET,
    base_period: str = UNSET,
    by: str | None = None,
    bootstrap_reps: int | None = None,
    bootstrap_weights: str = UNSET,
    cluster: str | None = None,
    seed: int | np.random.Generator | np.random.SeedSequence | None = UNSET,
    conf_level: float = 0.95,
    small_sample: str = "auto",
    df: str | float = "auto",
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
    control : {"never_treated", "not_yet_treated"}, default "never_treated"
        Comparison units for Callaway & Sant'Anna (the other estimators use every untreated
        observation, or never-treated units for Sun & Abraham, so ``control``, ``est_method``
        and ``base_period`` given with another estimator are an error).
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
    bootstrap_reps : int, optional
        Multiplier-bootstrap draws; when given, every standard error is the bootstrap one and
        ``EffectTable.frame()`` adds uniform (sup-t) bands. Default: analytic influence-function
        SEs. (``bootstrap=`` is the deprecated spelling.)
    bootstrap_weights : {"mammen", "rademacher"}, default "mammen"
        Multiplier weights (Mammen's two-point weights, as R ``did``). Only with
        ``bootstrap_reps``; giving it (or ``seed``) without a bootstrap is an error.
    cluster : str, optional
        Cluster column (constant within unit), e.g. the TA provider that was randomised: analytic
        and bootstrap standard errors are then clustered on it (influence functions summed within
        clusters). Default: units.
    seed : int, numpy.random.Generator or SeedSequence, optional
        Seed for the bootstrap (results are reproducible given the seed).
    conf_level : float
        Level of the uniform bands.
    small_sample : {"auto", "cr2", "cr1", "none"}
        Small-sample adjustment of the clustered variance. ``"cr2"``: Bell-McCaffrey-type
        leverage adjustment of every unit's influence value, ``(1 - m_cg / n_g)^{-1/2}`` for a
        cluster with ``m_cg`` of the ``n_g`` units of its comparison group (Callaway & Sant'Anna
        only; exact CR2 without covariates). Without it, cluster-summed variances shrink by
        ``(m - 1) / m`` when a cohort is made of ``m`` clusters. ``"cr1"``: the factor
        ``G / (G - 1)``. ``"none"``: as R ``did``. ``"auto"``: ``"cr2"`` (Callaway & Sant'Anna) or
        ``"cr1"`` (other estimators) with ``cluster=``, ``"none"`` when clustering by unit.
    df : {"auto", "bm", "cluster", "normal"} or float
        Reference distribution of tests and pointwise intervals. ``"bm"``: t with Bell-McCaffrey
        (Satterthwaite) df per estimate, capped at ``G - 1`` (needs ``small_sample="cr2"``);
        ``"cluster"``: t with ``G - 1`` df, G the number of clusters (units without ``cluster=``);
        ``"normal"``: z tests, as R ``did``; a number: t with that many df. ``"auto"``: ``"bm"``
        when the CR2 adjustment is used (and G <= 200), else ``"cluster"``. ``result.info``
        records the choice (``df_method``) and the cluster count (``n_clusters``).

    Returns
    -------
    EventStudyResult

    Raises
    ------
    ModelSpecificationError
        Unknown ``small_sample`` / ``df`` option, ``small_sample="cr2"`` or ``df="bm"`` for an
        estimator other than Callaway & Sant'Anna, or fewer than 2 clusters; an outcome or
        covariate missing in every row; a constant (zero-variance) outcome.
    StudyValidationError
        ``inf``/``-inf`` in the outcome or a covariate (naming the column, the count and the
        first rows), or bad identifiers.

    Warns
    -----
    FewClustersWarning
        A treated cohort or comparison group consists of a single cluster (its between-cluster
        variance cannot be estimated), or z tests were requested with few clusters.

    Examples
    --------
    >>> import coevidence as cv
    >>> from coevidence.datasets.panel import load_mpdta
    >>> es = cv.fit_event_study(load_mpdta(), "lemp", unit="countyreal", time="year",
    ...                         first_treated="first.treat")
    >>> round(float(es.tidy()["estimate"].iloc[0]), 4)
    -0.0105

    Clustered by state-like groups of counties (here 10 artificial clusters): CR2-adjusted SEs
    and t tests with Bell-McCaffrey df.

    >>> d = load_mpdta()
    >>> d["region"] = d["countyreal"].rank(method="dense").astype(int) % 10
    >>> es = cv.fit_event_study(d, "lemp", unit="countyreal", time="year",
    ...                         first_treated="first.treat", cluster="region")
    >>> es.info["n_clusters"], bool(es.aggregate("simple").tidy()["df"].iloc[0] <= 9)
    (10, True)
    """
    check_choice("estimator", estimator, ESTIMATORS)
    if estimator != "callaway_santanna":
        refuse_ignored(
            "fit_event_study",
            {"control": control, "est_method": est_method, "base_period": base_period},
            f"they apply to estimator='callaway_santanna' only, not {estimator!r}",
        )
    if bootstrap_reps is None:
        refuse_ignored("fit_event_study", {"bootstrap_weights": bootstrap_weights, "seed": seed},
                       "no bootstrap was asked for (give bootstrap_reps=...)")
    control = "never_treated" if control is UNSET else control
    est_method = "dr" if est_method is UNSET else est_method
    base_period = "varying" if base_period is UNSET else base_period
    bootstrap_weights = "mammen" if bootstrap_weights is UNSET else bootstrap_weights
    seed = None if seed is UNSET else seed
    as_generator(seed)  # the one seed convention: refuse anything else now
    conf_level = check_conf_level(conf_level)
    bootstrap = bootstrap_reps
    for name, val, allowed in (
        ("control", control, CONTROLS),
        ("est_method", est_method, ("dr", "reg")),
        ("base_period", base_period, ("varying", "universal")),
        ("bootstrap_weights", bootstrap_weights, ("mammen", "rademacher")),
    ):
        check_choice(name, val, allowed)
    if (not isinstance(anticipation, (int, np.integer)) or isinstance(anticipation, bool)
            or anticipation < 0):
        raise OptionError(f"anticipation must be a non-negative integer, got {anticipation!r}")
    if bootstrap is not None and (not isinstance(bootstrap, (int, np.integer)) or bootstrap < 50):
        raise OptionError(
            f"bootstrap_reps must be None or a number of draws >= 50, got {bootstrap!r}")
    check_choice("small_sample", small_sample, SMALL_SAMPLE)
    if isinstance(df, str):
        check_choice("df", df, DF_OPTIONS)
    elif not isinstance(df, numbers.Real) or isinstance(df, bool) or not df > 0:
        raise OptionError(
            f"df must be one of {list(DF_OPTIONS)} or a positive number, got {df!r}"
        )
    if estimator != "callaway_santanna" and (small_sample == "cr2" or df == "bm"):
        raise ModelSpecificationError(
            "the CR2 leverage adjustment and Bell-McCaffrey df are implemented for "
            f"estimator='callaway_santanna' only; use small_sample='cr1' and df='cluster' with "
            f"estimator={estimator!r}"
        )
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
    check_outcome_variation(data, outcome, "fit_event_study")
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
            "conf_level": conf_level,
        }
    )
    if clus_unit is not None:
        codes, n_clusters = small.cluster_codes(clus_unit)
    else:
        codes, n_clusters = None, len(G_unit)
    if n_clusters < 2:
        raise ModelSpecificationError(
            f"cluster-robust inference needs at least 2 clusters; {cluster or unit!r} has "
            f"{n_clusters}"
        )
    what = f"{n_clusters} clusters of {cluster!r}" if cluster is not None else f"{n_clusters} units"
    if small_sample == "auto":
        ss = "none" if cluster is None else ("cr2" if estimator == "callaway_santanna" else "cr1")
    else:
        ss = small_sample
    if df == "auto":
        df_mode = "bm" if ss == "cr2" and n_clusters <= small.BM_MAX_CLUSTERS else "cluster"
    elif df == "bm":
        if ss != "cr2":
            raise ModelSpecificationError(
                "df='bm' (Bell-McCaffrey) goes with the CR2 adjustment: use small_sample='cr2'"
            )
        if n_clusters > small.BM_MAX_CLUSTERS:
            raise ModelSpecificationError(
                f"df='bm' is computed for at most {small.BM_MAX_CLUSTERS} clusters ({what}); "
                "with this many clusters use df='cluster' (G - 1), which is then equivalent"
            )
        df_mode = "bm"
    elif isinstance(df, str):
        df_mode = df
    else:
        df_mode = "fixed"
    if df_mode == "normal" and cluster is not None and n_clusters < FEW_CLUSTERS:
        warnings.warn(
            f"fit_event_study: z tests with only {n_clusters} clusters (< {FEW_CLUSTERS}) "
            "over-reject; the default df='auto' uses t tests with df from the cluster count",
            FewClustersWarning,
            stacklevel=2,
        )
    df_text = {
        "bm": f"t with Bell-McCaffrey (Satterthwaite) df per estimate, at most G - 1 = "
        f"{n_clusters - 1} ({what}; few-cluster small-sample correction)",
        "cluster": f"t with G - 1 = {n_clusters - 1} df ({what})",
        "normal": "normal (z), as R did",
        "fixed": f"t with {df} df (given)",
    }[df_mode]
    ss_text = {
        "cr2": "CR2-type leverage adjustment (Bell-McCaffrey)",
        "cr1": f"CR1 factor G/(G - 1) = {n_clusters}/{n_clusters - 1}",
        "none": "no small-sample adjustment (as did)",
    }[ss]
    clus_text = (
        f"clustered by {cluster} ({n_clusters} clusters)" if cluster else "clustered by unit"
    )
    se_type = (
        f"analytic (influence function), {clus_text}"
        if boot is None
        else f"multiplier bootstrap ({bootstrap} draws, {bootstrap_weights} weights, seed {seed}), "
        f"{clus_text}"
    )
    if ss != "none":
        se_type += f", {ss_text}"
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
        "df_method": df_text
        + "; pointwise intervals"
        + ("; uniform sup-t bands in frame()" if boot else ""),
        "cluster": cluster or unit,
        "n_clusters": n_clusters,
        "small_sample": ss,
        "df_choice": df_mode,
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
    share = None
    if ss == "cr2":
        ucodes = codes if codes is not None else np.arange(n_clusters)
        F, single = small.cs_leverage(cells, ucodes, n_clusters)
        cells = dataclasses.replace(cells, inf=cells.inf * F)
        share = small.share_scale(ucodes, n_clusters)
        if single and cluster is not None:
            groups = sorted(
                {
                    f"cohort {cells.group[k]:g}" if side == 1 else "the comparison units"
                    for k, side in single
                }
            )
            warnings.warn(
                f"fit_event_study: {', '.join(groups)} consist(s) of a single {cluster!r} cluster "
                f"in {len(single)} group-time comparisons: the between-cluster variation of such a "
                "group cannot be estimated and is left out of the standard errors (CR2); "
                "consider randomization_test() for the arm effect",
                FewClustersWarning,
                stacklevel=2,
            )
            notes.append(
                f"single-cluster groups ({', '.join(groups)}): their between-cluster variance is "
                "not estimable and is not in the standard errors"
            )
    inference = _Inference(
        codes=codes,
        n_clusters=n_clusters,
        var_factor=n_clusters / (n_clusters - 1) if ss == "cr1" else 1.0,
        share_scale=share,
        df_mode=df_mode,
        df_fixed=float(df) if df_mode == "fixed" else np.inf,
        conf_level=conf_level,
        f_pretest=cluster is not None and df_mode != "normal",
    )
    engine = _Engine(
        cells=cells,
        unit_group=G_unit,
        unit_level=lev_unit,
        levels=levels,
        info=info,
        boot=boot,
        inference=inference,
        twfe=twfe,
        by=by,
    )
    if cells is not None:
        pre_idx = np.flatnonzero((cells.time < cells.group) & ~cells.reference)
        pre = engine.wald(cells.estimate[pre_idx], cells.inf[:, pre_idx])
    else:
        es = twfe["event_times"]
        pre_idx = np.flatnonzero(es < -1 - anticipation)
        pre = engine.wald(twfe["event"][pre_idx], twfe["event_inf"][:, pre_idx])
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

