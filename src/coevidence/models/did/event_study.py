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
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from coevidence.exceptions import FewClustersWarning, ModelSpecificationError, OptionError
from coevidence.models._shared.data import check_outcome_variation, drop_missing
from coevidence.models._shared.options import UNSET, keyword_only, renamed
from coevidence.models.did import _aggregate as agg
from coevidence.models.did import _small as small
from coevidence.models.did._cs import Cells, cs_cells
from coevidence.models.did._options import (  # noqa: F401 (constants re-exported)
    CONTROLS,
    DF_OPTIONS,
    ESTIMATORS,
    SMALL_SAMPLE,
    EventStudyOptions,
    InferencePlan,
    describe,
    resolve_inference,
    resolve_options,
)
from coevidence.models.did._prepare import (  # noqa: F401 (_unit_constant re-exported)
    Prepared,
    _unit_constant,
    check_panel,
    prepare,
)
from coevidence.models.did._regression import (
    LongPanel,
    sun_abraham_cells,
    twfe_fit,
    two_stage_cells,
)
from coevidence.models.did._weights import check_weight_options, unit_weights, with_weight_column
from coevidence.models.did.results import EffectTable, EventStudyDiagnostics, EventStudyResult

__all__ = ["fit_event_study"]

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


class _Engine:
    """Holds the cells / influence functions and computes tables on demand."""

    def __init__(
        self, *, cells, unit_group, unit_level, levels, info, boot, inference, twfe=None, by=None,
        unit_weights=None,
    ):
        self.cells: Cells | None = cells
        self.unit_weights = unit_weights  # fit_event_study(weights=): mean-1 unit weights
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
            unit_weights=self.unit_weights,
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
    weights: str | Sequence[float] | pd.Series | None = None,
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
    weights : str or array_like, optional
        One positive weight per unit (a column, or values on the rows), e.g. propensity
        weights: weighted group-time ATTs and cohort shares, as R ``did``'s ``weightsname``
        (the effects of the weighted population). Callaway & Sant'Anna with ``est_method="reg"``
        (or no covariates), without CR2; see ``coevidence.models.did._weights``.

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
    opts = resolve_options(
        estimator=estimator, control=control, anticipation=anticipation, covariates=covariates,
        est_method=est_method, base_period=base_period, by=by, bootstrap_reps=bootstrap_reps,
        bootstrap_weights=bootstrap_weights, cluster=cluster, seed=seed, conf_level=conf_level,
        small_sample=small_sample, df=df,
    )
    panel, wcol = with_weight_column(panel, weights)
    check_panel(panel, outcome, unit, time, first_treated, opts)
    data, n_missing = drop_missing(panel, [outcome, *opts.covariates, *([wcol] if wcol else [])],
                                   "fit_event_study")
    check_outcome_variation(data, outcome, "fit_event_study")
    prep = prepare(panel, data, unit=unit, time=time, first_treated=first_treated, opts=opts)
    plan = resolve_inference(opts, prep.clus_unit, len(prep.G_unit), unit)
    info = describe(opts, plan, outcome=outcome, unit=unit, time=time,
                    first_treated=first_treated)
    uw = None
    if wcol is not None:
        check_weight_options(opts, plan.small_sample)
        uw = unit_weights(prep.data, wcol, prep.ucode, len(prep.G_unit))
        info["weights"] = weights if isinstance(weights, str) else "given"
    cells, twfe, notes = _fit_cells(prep, outcome, opts, info, uw)
    cells, share = _cr2_adjust(cells, plan, opts.cluster, notes)
    return _build_result(prep, opts, plan, info, cells, twfe, share, n_missing, notes, uw)


def _fit_cells(
    prep: Prepared, outcome: str, opts: EventStudyOptions, info: dict[str, object],
    unit_w: np.ndarray | None = None,
) -> tuple[Cells | None, dict | None, list[str]]:
    """Dispatch to the estimator's cell builder: ``(cells, twfe, notes)``.

    ``cells`` are the group-time cells (None for TWFE, whose event-time fit is ``twfe``);
    ``notes`` are the preparation notes followed by the estimator's. Adds the Callaway &
    Sant'Anna entries to ``info``.
    """
    notes = list(prep.notes)
    covs = list(opts.covariates)
    data, ucode, tcode, periods = prep.data, prep.ucode, prep.tcode, prep.periods
    if opts.cs:
        est_method = opts.est_method if covs else "unconditional"
        info.update(base_period=opts.base_period, est_method=est_method)
        Y = np.full((len(prep.G_unit), len(periods)), np.nan)
        Y[ucode, tcode] = data[outcome].to_numpy(dtype=float)
        Xc = None
        if covs:
            Xc = np.ones((len(prep.G_unit), len(periods), len(covs) + 1))
            for j, c in enumerate(covs):
                Xc[ucode, tcode, j + 1] = data[c].to_numpy(dtype=float)
        cells = cs_cells(
            Y, prep.G_unit, periods, prep.lev_unit, Xc, control=opts.control,
            anticipation=opts.anticipation, base_period=opts.base_period, est_method=est_method,
            weights=unit_w,
        )
        return cells, None, notes
    lp = LongPanel(
        data[outcome].to_numpy(dtype=float), ucode, tcode, periods, prep.G_unit, prep.lev_unit,
        data[covs].to_numpy(dtype=float) if covs else None,
    )
    if opts.estimator in ("sun_abraham", "two_stage"):
        build = sun_abraham_cells if opts.estimator == "sun_abraham" else two_stage_cells
        cells, more = build(lp, opts.anticipation)
        return cells, None, notes + more
    if opts.by is not None:
        raise ModelSpecificationError("by= is not available for estimator='twfe'")
    twfe = twfe_fit(lp, opts.anticipation)
    if twfe["extra_ref"] is not None:
        refs = ", ".join(f"{e:g}" for e in twfe["extra_ref"])
        notes.append(
            f"dynamic TWFE not identified with one reference period: event times {refs} are "
            "additional (second reference) periods fixed at 0"
        )
    return None, twfe, notes


def _cr2_adjust(
    cells: Cells | None, plan: InferencePlan, cluster: str | None, notes: list[str]
) -> tuple[Cells | None, np.ndarray | None]:
    """CR2 leverage adjustment of the cells' influence values: ``(cells, share_scale)``.

    Warns (``stacklevel=3``: called by :func:`fit_event_study`) and adds a note when a cohort
    or comparison group is a single cluster.
    """
    if plan.small_sample != "cr2":
        return cells, None
    n_clusters = plan.n_clusters
    ucodes = plan.codes if plan.codes is not None else np.arange(n_clusters)
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
            stacklevel=3,
        )
        notes.append(
            f"single-cluster groups ({', '.join(groups)}): their between-cluster variance is "
            "not estimable and is not in the standard errors"
        )
    return cells, share


def _build_result(
    prep: Prepared, opts: EventStudyOptions, plan: InferencePlan, info: dict[str, object],
    cells: Cells | None, twfe: dict | None, share: np.ndarray | None, n_missing: int,
    notes: list[str], unit_w: np.ndarray | None = None,
) -> EventStudyResult:
    """The engine, the pre-trend test and the diagnostics, wrapped in the result."""
    n_clusters = plan.n_clusters
    inference = _Inference(
        codes=plan.codes,
        n_clusters=n_clusters,
        var_factor=n_clusters / (n_clusters - 1) if plan.small_sample == "cr1" else 1.0,
        share_scale=share,
        df_mode=plan.df_mode,
        df_fixed=float(opts.df) if plan.df_mode == "fixed" else np.inf,
        conf_level=opts.conf_level,
        f_pretest=opts.cluster is not None and plan.df_mode != "normal",
    )
    engine = _Engine(
        cells=cells,
        unit_group=prep.G_unit,
        unit_level=prep.lev_unit,
        levels=prep.levels,
        info=info,
        boot=opts.boot,
        inference=inference,
        twfe=twfe,
        by=opts.by,
        unit_weights=unit_w,
    )
    if cells is not None:
        pre_idx = np.flatnonzero((cells.time < cells.group) & ~cells.reference)
        pre = engine.wald(cells.estimate[pre_idx], cells.inf[:, pre_idx])
    else:
        es = twfe["event_times"]
        pre_idx = np.flatnonzero(es < -1 - opts.anticipation)
        pre = engine.wald(twfe["event"][pre_idx], twfe["event_inf"][:, pre_idx])
    sizes = pd.Series(prep.G_unit).value_counts().sort_index()
    diagnostics = EventStudyDiagnostics(
        n_units=len(prep.G_unit),
        n_obs=len(prep.data),
        n_rows_dropped_missing=n_missing,
        n_units_dropped_unbalanced=prep.n_unbal,
        n_units_always_treated=prep.n_always,
        cohort_sizes={float(k): int(v) for k, v in sizes.items()},
        pretrend=pre,
        notes=tuple(notes),
    )
    return EventStudyResult(engine=engine, info=info, diagnostics=diagnostics)
