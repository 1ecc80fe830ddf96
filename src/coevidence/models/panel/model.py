"""Linear panel estimators by column name: :func:`fit_panel` and :func:`hausman`.

File roles (as in linearmodels): this module checks the options, prepares the data and
dispatches; :mod:`coevidence.models.panel._estimators` holds the five estimators (the data
transformations, point estimates from linearmodels ``PanelOLS``, ``RandomEffects``,
``BetweenOLS``, ``PooledOLS``) and the group algebra; :mod:`coevidence.models.panel.covariance`
holds the covariance estimators, rebuilt from the transformed data so that the small-sample
convention is explicit and selectable (Stata, plm ``sss``/``HC1``, fixest CRV1, or none), with
CR2 and the wild cluster bootstrap for few clusters and Driscoll-Kraay for cross-sectional
dependence; :mod:`coevidence.models.panel.results` the result classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from coevidence.exceptions import ModelSpecificationError, OptionError
from coevidence.models._shared import covariance as pc
from coevidence.models._shared.data import (
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
from coevidence.models.panel._estimators import (
    ESTIMATE,
    RE_VARIANCE,
    PanelData,
    PanelFit,
    check_design,
)
from coevidence.models.panel._estimators import dummies as _dummies  # noqa: F401 (re-export)
from coevidence.models.panel._estimators import orth as _orth  # noqa: F401 (re-export)
from coevidence.models.panel._weights import apply_weights, check_weights_options, weights_column
from coevidence.models.panel.covariance import (
    CLUSTERED,
    COV_TYPES,
    DK_SMALL_SAMPLE,
    FEW_CLUSTERS,
    CovEstimate,
    CovOptions,
    estimate_cov,
)
from coevidence.models.panel.results import PanelDiagnostics, PanelResult, TestResult

__all__ = ["FEW_CLUSTERS", "fit_panel", "hausman"]

ESTIMATORS = tuple(ESTIMATE)
EFFECTS = ("unit", "time", "twoway", None)
_DEFAULT_EFFECTS = {
    "within": "unit",
    "random": "unit",
    "first_difference": "unit",
    "between": "unit",
    "pooled": None,
}


class _SpecificationOptionError(OptionError, ModelSpecificationError):
    """An option combination the estimator cannot fit (both an option and a specification error)."""


def _resolve_options(
    estimator: str, effects: Any, cov_type: str, **opts: Any
) -> tuple[str | None, dict[str, Any]]:
    """Check every option, refuse those that would be ignored, fill in the defaults."""
    check_choice("estimator", estimator, ESTIMATORS)
    check_choice("cov_type", cov_type, COV_TYPES)
    if effects == "auto":
        effects = _DEFAULT_EFFECTS[estimator]
    check_choice("effects", effects, EFFECTS)
    if estimator != "within" and effects != _DEFAULT_EFFECTS[estimator]:
        raise _SpecificationOptionError(
            f"estimator={estimator!r} supports effects={_DEFAULT_EFFECTS[estimator]!r} only, got "
            f"{effects!r}; use estimator='within' for time or two-way fixed effects"
        )
    if estimator == "within" and effects is None:
        raise _SpecificationOptionError(
            "estimator='within' needs effects 'unit', 'time' or 'twoway' (use 'pooled' for none)"
        )
    o = dict(opts)
    if o["cluster"] is None:
        o["cluster"] = UNSET  # cluster=None is "no cluster column", i.e. the default
    if cov_type not in CLUSTERED:
        refuse_ignored("fit_panel", {"cluster": o["cluster"]},
                       f"cov_type={cov_type!r} does not cluster; use cov_type='clustered', 'cr2' "
                       "or 'wild_bootstrap'")
    if cov_type != "wild_bootstrap":
        refuse_ignored("fit_panel", {k: o[k] for k in ("bootstrap_reps", "bootstrap_weights",
                                                       "seed")},
                       "only for cov_type='wild_bootstrap'")
    if cov_type != "driscoll_kraay":
        refuse_ignored("fit_panel", {"maxlag": o["maxlag"]}, "only for cov_type='driscoll_kraay'")
    if cov_type in ("unadjusted", "cr2"):
        refuse_ignored("fit_panel", {"small_sample": o["small_sample"]},
                       f"cov_type={cov_type!r} has no small-sample factor")
    if o["weights"] is not None:
        check_weights_options(estimator, effects, cov_type)
    if estimator != "random":
        refuse_ignored("fit_panel", {"re_variance": o["re_variance"]},
                       "only for estimator='random'")
    ss_default = "none" if cov_type == "driscoll_kraay" else "stata"
    defaults = {"cluster": None, "small_sample": ss_default, "bootstrap_reps": 999,
                "bootstrap_weights": "rademacher", "seed": None, "maxlag": None,
                "re_variance": "baltagi_chang"}
    o = {k: (defaults[k] if v is UNSET else v) for k, v in o.items()}
    check_choice("small_sample", o["small_sample"],
                 DK_SMALL_SAMPLE if cov_type == "driscoll_kraay" else pc.SMALL_SAMPLE)
    check_choice("bootstrap_weights", o["bootstrap_weights"], pc.WILD_WEIGHTS)
    check_choice("re_variance", o["re_variance"], RE_VARIANCE)
    reps = o["bootstrap_reps"]
    if isinstance(reps, (bool, np.bool_)) or not isinstance(reps, (int, np.integer)) or reps < 1:
        raise OptionError(f"bootstrap_reps must be a positive integer; got {reps!r}")
    lag = o["maxlag"]
    if lag is not None and (isinstance(lag, (bool, np.bool_))
                            or not isinstance(lag, (int, np.integer)) or lag < 0):
        raise OptionError(f"maxlag must be a non-negative integer or None; got {lag!r}")
    if cov_type == "wild_bootstrap":
        as_generator(o["seed"])  # validates; the generator is made where it is used
    o["conf_level"] = check_conf_level(o["conf_level"])
    return effects, o


def _design(
    panel: pd.DataFrame, outcome: str | None, formula: str | None, regressors: Sequence[str] | None
) -> tuple[str, list[str], object]:
    """Return outcome name, the raw variables needed, and a builder for the regressor frame."""
    if (formula is None) == (regressors is None):
        raise OptionError(
            "give exactly one of formula= (e.g. 'value + capital') or regressors= (a list of columns)"
        )
    if regressors is not None:
        if isinstance(regressors, str):
            regressors = [regressors]
        regs = list(regressors)
        if outcome is None:
            raise OptionError("outcome= is required with regressors=")

        def build(frame: pd.DataFrame) -> pd.DataFrame:
            return frame[regs].astype(float)

        check_columns(panel, [outcome, *regs], numeric=[outcome, *regs])
        return outcome, regs, build
    from formulaic import model_matrix

    from coevidence.models._shared.formula import formula_variables

    lhs, sep, rhs = str(formula).rpartition("~")
    if not sep:
        rhs = str(formula)
    lhs = lhs.strip()
    if lhs:
        if outcome is not None and outcome != lhs:
            raise OptionError(f"formula outcome {lhs!r} differs from outcome={outcome!r}")
        outcome = lhs
    if outcome is None:
        raise OptionError("the outcome must be given as outcome= or on the left of the formula")
    # every column the formula uses, also inside transforms (scale(x), np.log(x)): formulaic's
    # required_variables misses those, so their missing rows were not dropped
    needed = sorted(formula_variables(rhs, panel))
    check_columns(panel, [outcome, *needed], numeric=[outcome])

    def build(frame: pd.DataFrame) -> pd.DataFrame:
        cats = [c for c in needed if isinstance(frame[c].dtype, pd.CategoricalDtype)]
        if cats:  # levels absent from the data would give all-zero dummy columns
            frame = frame.assign(**{c: frame[c].cat.remove_unused_categories() for c in cats})
        mm = model_matrix(rhs, frame, ensure_full_rank=True)
        return pd.DataFrame(
            np.asarray(mm, dtype=float), columns=list(mm.columns), index=frame.index
        )

    return outcome, needed, build


def _prepare(
    panel: pd.DataFrame,
    outcome: str | None,
    unit: str,
    time: str,
    formula: str | None,
    regressors: Sequence[str] | None,
    cluster: str | None,
    estimator: str,
    weights: Any = None,
) -> tuple[PanelData, int, int]:
    """Check the frame, drop incomplete rows (warning), sort by unit and time, code the ids.

    ``weights`` (a column or values) become ``PanelData.w``, see ``_weights.py``.

    Returns the prepared data, the number of input rows and the number dropped as missing.
    """
    check_columns(panel, [unit, time, cluster])
    panel, weights = weights_column(panel, weights)
    outcome, needed, build = _design(panel, outcome, formula, regressors)
    check_identifiers(panel, unit, time)
    data, n_missing = drop_missing(
        panel, [outcome, *needed, *([cluster] if cluster else []), *([weights] if weights else [])],
        "fit_panel",
    )
    if len(data) == 0:
        raise ModelSpecificationError("no complete rows left to fit")
    check_outcome_variation(data, outcome, "fit_panel")
    ucodes, ulevels = pd.factorize(data[unit], sort=True)
    tcodes, tlevels = pd.factorize(data[time], sort=True)
    order = np.lexsort((tcodes, ucodes))
    data = data.iloc[order]
    Xf = build(data)
    has_int = "Intercept" in Xf.columns
    slopes = Xf.drop(columns=["Intercept"]) if has_int else Xf
    pdata = PanelData(
        y=data[outcome].to_numpy(dtype=float),
        slopes=slopes.reset_index(drop=True),
        want_const=estimator != "within" and (has_int or regressors is not None),
        ucodes=ucodes[order],
        tcodes=tcodes[order],
        ccodes=pd.factorize(data[cluster])[0] if cluster else None,
        n_units=len(ulevels),
        n_periods=len(tlevels),
        unit=unit,
        time=time,
        outcome=outcome,
        w=data[weights].to_numpy(dtype=float) if weights else None,
    )
    check_design(pdata.with_const(pdata.slopes) if estimator != "within" else pdata.slopes)
    return pdata, len(panel), n_missing


def _result(
    pdata: PanelData, fit: PanelFit, cov: CovEstimate, opts: CovOptions, n_input: int,
    n_missing: int,
) -> PanelResult:
    names = fit.names
    diagnostics = PanelDiagnostics(
        n_rows_input=n_input,
        n_dropped_missing=n_missing,
        n_dropped_differencing=fit.n_dropped_differencing,
        n_clusters=cov.n_clusters,
        few_clusters=cov.few_clusters,
        balanced=len(pdata.y) == pdata.n_units * pdata.n_periods,
        tests=fit.tests,
        variance_components=fit.variance_components,
        notes=tuple(fit.notes + cov.notes),
    )
    e = fit.resid
    return PanelResult(
        params=pd.Series(fit.beta, index=names, name="estimate"),
        cov=pd.DataFrame(cov.V, index=names, columns=names),
        df=pd.Series(cov.df, index=names, name="df"),
        estimator=fit.estimator,
        effects=fit.effects,
        cov_type=opts.cov_type,
        small_sample=opts.small_sample,
        df_method=cov.df_method,
        outcome=pdata.outcome,
        unit=pdata.unit,
        time=pdata.time,
        cluster=opts.cluster,
        nobs=len(fit.yt),
        n_units=pdata.n_units,
        n_periods=pdata.n_periods,
        df_resid=fit.df_resid,
        ssr=float(e @ e),
        rsquared=fit.rsquared["rsquared"],
        rsquared_within=fit.rsquared["rsquared_within"],
        rsquared_between=fit.rsquared["rsquared_between"],
        rsquared_overall=fit.rsquared["rsquared_overall"],
        diagnostics=diagnostics,
        engine_result=fit.engine,
        bootstrap=cov.bootstrap,
        conf_level=opts.conf_level,
    )


@renamed(cov="cov_type")
@keyword_only(2, ("unit", "time"))
def fit_panel(
    panel: pd.DataFrame,
    outcome: str | None = None,
    *,
    unit: str = "org_id",
    time: str = "wave",
    formula: str | None = None,
    regressors: Sequence[str] | None = None,
    effects: str | None = "auto",
    estimator: str = "within",
    cov_type: str = "unadjusted",
    cluster: str | None = UNSET,
    small_sample: str = UNSET,
    conf_level: float = 0.95,
    bootstrap_reps: int = UNSET,
    bootstrap_weights: str = UNSET,
    seed: int | np.random.Generator | np.random.SeedSequence | None = UNSET,
    maxlag: int | None = UNSET,
    re_variance: str = UNSET,
    weights: str | Sequence[float] | pd.Series | None = None,
) -> PanelResult:
    """Fit a linear panel model from a long frame, given column names.

    Parameters
    ----------
    panel : pandas.DataFrame
        One row per unit x time (the ``study.panel()`` layout). Never modified.
    outcome : str
        Outcome column (or give it on the left of ``formula``).
    unit, time : str, keyword-only
        Identifier columns (defaults ``"org_id"``, ``"wave"``; by position: ``FutureWarning``).
    formula : str, optional
        Right-hand side in formulaic syntax (``"value + capital"``, ``"C(ta_model) * post"``),
        optionally with the outcome: ``"inv ~ value + capital"``. The intercept is handled by the
        estimator (none for ``within``); write ``"0 + ..."`` to drop first-difference's trend.
    regressors : list of str, optional
        Numeric regressor columns (instead of ``formula``).
    effects : {"auto", "unit", "time", "twoway", None}
        Absorbed effects for ``within`` (default ``"unit"``); the others take only their own.
    estimator : {"within", "random", "first_difference", "between", "pooled"}
        ``random``: GLS with Swamy-Arora components (see ``re_variance``); ``first_difference``
        differences consecutive periods within unit and keeps an intercept (a trend), as plm.
    cov_type : {"unadjusted", "robust", "clustered", "cr2", "wild_bootstrap", "driscoll_kraay"}
        Classical; White on the transformed data; CR1 with ``small_sample``; CR2 with
        Satterthwaite df; CR1 SEs with wild cluster bootstrap p-values and intervals; or
        Driscoll-Kraay (plm ``vcovSCC``: correlation across units and over ``maxlag`` periods).
        ``cov=`` is the old name (``FutureWarning``).
    cluster : str, optional
        Cluster column for ``clustered``, ``cr2`` and ``wild_bootstrap`` (default ``unit``).
    small_sample : {"stata", "plm_sss", "fixest_crv1", "plm_hc1", "none"}
        CR1 factor (default ``"stata"``: ``G/(G-1) (N-1)/(N-K)``, K counting the constant and
        effects not nested in clusters, t(G-1) tests; ``fixest_crv1`` the same; ``plm_sss``
        ``G/(G-1) (N-1)/(N-k)``; ``plm_hc1`` ``N_resid/(N-k)``; ``none`` HC0; t(residual df)).
        ``robust``: ``"none"`` HC0, else HC1. ``driscoll_kraay``: ``"none"`` (default, plm's
        HC0), ``"plm_hc1"`` or ``"plm_sss"``. Refused for ``unadjusted`` and ``cr2``.
    conf_level : float
        Confidence level for the bootstrap intervals (``tidy`` takes its own level otherwise).
    bootstrap_reps, bootstrap_weights, seed
        Wild bootstrap draws (default 999), weights (``"rademacher"``, default, or ``"webb"``),
        seed (default None). Only with ``cov_type="wild_bootstrap"``.
    maxlag : int, optional
        Driscoll-Kraay lag truncation; default ``floor(max_i T_i^(1/4))`` as plm's ``vcovSCC``
        (``T_i`` the rows of unit ``i``). Only with ``cov_type="driscoll_kraay"``.
    re_variance : {"baltagi_chang", "harmonic_mean"}
        Random effects on unbalanced panels: plm's Baltagi-Chang Swamy-Arora formulas (default)
        or linearmodels' default (``sigma2_u = SSR_B/(n-K) - sigma2_e/T_harmonic`` from the
        unweighted regression of unit means). Identical on balanced panels.
    weights : str or array_like, optional
        A column or a positive weight per row: WLS, as ``lm(weights=)`` (docs: Weighting).

    Returns
    -------
    PanelResult

    Raises
    ------
    OptionError
        An option outside its choices or one that would be ignored (e.g. ``seed`` without the
        bootstrap); an unavailable estimator/effects pair (also a ``ModelSpecificationError``).
    StudyValidationError
        Missing identifiers, duplicated unit x time rows, ``inf`` values (rows named).
    ModelSpecificationError
        A column missing in every row, a constant outcome, a regressor zero everywhere or
        absorbed by the effects, a rank-deficient design.

    Warns
    -----
    MissingDataWarning
        Rows with missing values were dropped (count and columns given).
    FewClustersWarning
        ``cov_type="clustered"`` with fewer than :data:`FEW_CLUSTERS` clusters.

    Examples
    --------
    >>> import coevidence as cv
    >>> from coevidence.datasets.panel import load_grunfeld
    >>> g = load_grunfeld()
    >>> fe = cv.fit_panel(g, "inv", unit="firm", time="year", regressors=["value", "capital"],
    ...                   cov_type="clustered", small_sample="plm_sss")
    >>> round(float(fe.std_errors["value"]), 6)
    0.015156
    >>> dk = cv.fit_panel(g, "inv", unit="firm", time="year", regressors=["value", "capital"],
    ...                   cov_type="driscoll_kraay")          # plm vcovSCC, maxlag 2
    >>> dk.diagnostics.notes[-1].startswith("Driscoll-Kraay: maxlag=2")
    True
    """
    effects, o = _resolve_options(estimator, effects, cov_type, cluster=cluster, seed=seed,
        small_sample=small_sample, bootstrap_reps=bootstrap_reps, maxlag=maxlag, weights=weights,
        bootstrap_weights=bootstrap_weights, re_variance=re_variance, conf_level=conf_level)
    cluster = unit if cov_type in CLUSTERED and o["cluster"] is None else o["cluster"]
    pdata, n_input, n_missing = _prepare(panel, outcome, unit, time, formula, regressors,
                                         cluster, estimator, weights)
    fit = apply_weights(ESTIMATE[estimator](pdata, effects, re_variance=o["re_variance"]), pdata)
    opts = CovOptions(
        cov_type=cov_type, small_sample=o["small_sample"], cluster=cluster, unit=unit,
        conf_level=o["conf_level"], bootstrap_reps=int(o["bootstrap_reps"]),
        bootstrap_weights=o["bootstrap_weights"], seed=o["seed"], maxlag=o["maxlag"],
        n_rows=len(pdata.y), max_Ti=int(np.bincount(pdata.ucodes).max()),
    )
    return _result(pdata, fit, estimate_cov(fit, opts), opts, n_input, n_missing)


def hausman(fe: PanelResult, re: PanelResult) -> TestResult:
    """Hausman test of fixed (within) against random effects, as plm's ``phtest``.

    Uses the classical covariances of both fits (refit with ``cov_type="unadjusted"`` otherwise the
    statistic is not Hausman's) on the coefficients the two share.

    Examples
    --------
    >>> import coevidence as cv
    >>> from coevidence.datasets.panel import load_grunfeld
    >>> g = load_grunfeld()
    >>> kw = dict(unit="firm", time="year", regressors=["value", "capital"])
    >>> h = cv.hausman(cv.fit_panel(g, "inv", **kw), cv.fit_panel(g, "inv", estimator="random", **kw))
    >>> round(h.statistic, 4)
    2.3304
    """
    if fe.estimator != "within" or re.estimator != "random":
        raise ModelSpecificationError(
            "hausman(fe, re) needs a 'within' fit and a 'random' fit, in that order"
        )
    if fe.cov_type != "unadjusted" or re.cov_type != "unadjusted":
        raise ModelSpecificationError(
            "the Hausman test uses classical covariances: fit both with cov_type='unadjusted'"
        )
    common = [t for t in fe.params.index if t in re.params.index]
    if not common:
        raise ModelSpecificationError("the two fits share no coefficients")
    d = fe.params[common].to_numpy() - re.params[common].to_numpy()
    Vd = fe.cov.loc[common, common].to_numpy() - re.cov.loc[common, common].to_numpy()
    stat = float(d @ np.linalg.solve(Vd, d))
    method = ("classical covariances; H0: random effects consistent (unit effects uncorrelated "
              "with regressors)")
    if stat < 0:  # V_fe - V_re not positive definite (possible in finite samples)
        stat = abs(stat)
        method += ("; the covariance difference is not positive definite: |statistic| reported, "
                   "as plm's phtest")
    dfree = len(common)
    terms = pd.DataFrame(
        {
            "term": common,
            "estimate": d,
            "std_error": np.sqrt(np.where(np.diag(Vd) > 0, np.diag(Vd), np.nan)),
        }
    )
    return TestResult(
        name="Hausman test (within vs random effects)",
        statistic=stat,
        df=dfree,
        p_value=float(stats.chi2.sf(stat, dfree)),
        distribution="chi-squared",
        terms=terms,
        method=method,
    )
