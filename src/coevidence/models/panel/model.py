"""Linear panel estimators by column name: :func:`fit_panel` and :func:`hausman`.

Point estimates come from linearmodels (``PanelOLS``, ``RandomEffects``, ``BetweenOLS``,
``PooledOLS``); the covariance matrix is rebuilt from the transformed data so that the
small-sample convention is explicit and selectable (Stata, plm ``sss``/``HC1``, fixest CRV1, or
none), and so CR2 and the wild cluster bootstrap are available for few clusters.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from coevidence.exceptions import FewClustersWarning, ModelSpecificationError
from coevidence.models._shared import covariance as pc
from coevidence.models._shared.data import (
    check_columns,
    check_identifiers,
    check_outcome_variation,
    drop_missing,
)
from coevidence.models.panel.results import PanelDiagnostics, PanelResult, TestResult

__all__ = ["FEW_CLUSTERS", "fit_panel", "hausman"]

#: Below this many clusters a FewClustersWarning is issued for cov="clustered" (Angrist &
#: Pischke's rule of thumb of ~42; CR1 t-tests over-reject badly with fewer).
FEW_CLUSTERS = 42

ESTIMATORS = ("within", "random", "first_difference", "between", "pooled")
EFFECTS = ("unit", "time", "twoway", None)
COV_TYPES = ("unadjusted", "robust", "clustered", "cr2", "wild_bootstrap")
_DEFAULT_EFFECTS = {
    "within": "unit",
    "random": "unit",
    "first_difference": "unit",
    "between": "unit",
    "pooled": None,
}


def _choice(name: str, value: object, allowed: Sequence[object]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")


def _design(
    panel: pd.DataFrame, outcome: str | None, formula: str | None, regressors: Sequence[str] | None
) -> tuple[str, list[str], object]:
    """Return outcome name, the raw variables needed, and a builder for the regressor frame."""
    if (formula is None) == (regressors is None):
        raise ValueError(
            "give exactly one of formula= (e.g. 'value + capital') or regressors= (a list of columns)"
        )
    if regressors is not None:
        if isinstance(regressors, str):
            regressors = [regressors]
        regs = list(regressors)
        if outcome is None:
            raise ValueError("outcome= is required with regressors=")

        def build(frame: pd.DataFrame) -> pd.DataFrame:
            return frame[regs].astype(float)

        check_columns(panel, [outcome, *regs], numeric=[outcome, *regs])
        return outcome, regs, build
    from formulaic import Formula, model_matrix

    lhs, sep, rhs = str(formula).rpartition("~")
    if not sep:
        rhs = str(formula)
    lhs = lhs.strip()
    if lhs:
        if outcome is not None and outcome != lhs:
            raise ValueError(f"formula outcome {lhs!r} differs from outcome={outcome!r}")
        outcome = lhs
    if outcome is None:
        raise ValueError("the outcome must be given as outcome= or on the left of the formula")
    needed = sorted(Formula(rhs).required_variables)
    needed = [v for v in needed if v in panel.columns or not hasattr(np, v)]
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


def _demean(a: np.ndarray, codes: np.ndarray, n: int) -> np.ndarray:
    sums = np.zeros((n, a.shape[1]))
    np.add.at(sums, codes, a)
    counts = np.bincount(codes, minlength=n).astype(float)
    return a - (sums / counts[:, None])[codes]


def _dummies(codes: np.ndarray, n: int) -> np.ndarray:
    D = np.zeros((len(codes), n))
    D[np.arange(len(codes)), codes] = 1.0
    return D


def _orth(a: np.ndarray) -> np.ndarray:
    if a.shape[1] == 0:
        return a
    u, s, _ = np.linalg.svd(a, full_matrices=False)
    return u[:, s > 1e-10 * max(1.0, s.max(initial=0.0))]


def fit_panel(
    panel: pd.DataFrame,
    outcome: str | None = None,
    unit: str = "org_id",
    time: str = "wave",
    *,
    formula: str | None = None,
    regressors: Sequence[str] | None = None,
    effects: str | None = "auto",
    estimator: str = "within",
    cov: str = "unadjusted",
    cluster: str | None = None,
    small_sample: str = "stata",
    conf_level: float = 0.95,
    bootstrap_reps: int = 999,
    bootstrap_weights: str = "rademacher",
    seed: int | np.random.Generator | None = None,
) -> PanelResult:
    """Fit a linear panel model from a long frame, given column names.

    Parameters
    ----------
    panel : pandas.DataFrame
        One row per unit x time (the ``study.panel()`` layout). Never modified.
    outcome : str
        Outcome column (or give it on the left of ``formula``).
    unit, time : str
        Identifier columns. Missing identifiers or duplicated unit x time rows raise
        :class:`~coevidence.exceptions.StudyValidationError` naming the rows.
    formula : str, optional
        Right-hand side in formulaic syntax (``"value + capital"``, ``"C(ta_model) * post"``),
        optionally with the outcome: ``"inv ~ value + capital"``. The intercept is handled by the
        estimator (none for ``within``); write ``"0 + ..."`` to drop first-difference's trend.
    regressors : list of str, optional
        Numeric regressor columns (instead of ``formula``).
    effects : {"auto", "unit", "time", "twoway", None}
        Absorbed effects for ``within`` (default ``"unit"``); the other estimators only accept
        their own (``"unit"`` for random/first_difference/between, ``None`` for pooled).
    estimator : {"within", "random", "first_difference", "between", "pooled"}
        ``random`` is GLS with Swamy-Arora variance components (plm ``random.method="swar"``);
        ``first_difference`` differences consecutive periods within unit and keeps an intercept
        (a linear trend), as plm does.
    cov : {"unadjusted", "robust", "clustered", "cr2", "wild_bootstrap"}
        Covariance: classical; White heteroskedasticity-robust on the transformed data;
        cluster-robust (CR1 with ``small_sample``); CR2 with Bell-McCaffrey (Satterthwaite) df;
        or CR1 standard errors with restricted wild cluster bootstrap p-values and bootstrap-t
        intervals.
    cluster : str, optional
        Cluster column for the cluster-robust types; defaults to ``unit``.
    small_sample : {"stata", "plm_sss", "fixest_crv1", "plm_hc1", "none"}
        Factor for ``clustered`` (and HC1 vs HC0 for ``robust``): Stata and fixest CRV1 use
        ``G/(G-1) (N-1)/(N-K)`` with K counting the constant and fixed effects not nested in the
        clusters (they coincide for the models here) and t(G-1) tests; plm ``sss`` uses
        ``G/(G-1) (N-1)/(N-k)`` and plm ``HC1`` ``N_resid/(N-k)`` (k = transformed columns), both
        with t(residual df) tests; ``none`` is the plain HC0 sandwich.
    conf_level : float
        Confidence level for the bootstrap intervals (``tidy`` takes its own level otherwise).
    bootstrap_reps, bootstrap_weights, seed
        Wild cluster bootstrap draws, weights (``"rademacher"`` or ``"webb"``) and random seed.

    Returns
    -------
    PanelResult

    Raises
    ------
    StudyValidationError
        Missing identifiers, duplicated unit x time rows, or ``inf``/``-inf`` in the outcome or
        a regressor (the error names the column, the count and the first rows).
    ModelSpecificationError
        An outcome or regressor missing in every row, a constant (zero-variance) outcome, a
        regressor that is zero everywhere or absorbed by the effects, or a rank-deficient design.

    Warns
    -----
    MissingDataWarning
        Rows with missing values were dropped (count and columns given).

    Examples
    --------
    >>> import coevidence as cv
    >>> from coevidence.datasets.panel import load_grunfeld
    >>> g = load_grunfeld()
    >>> fe = cv.fit_panel(g, "inv", unit="firm", time="year", regressors=["value", "capital"],
    ...                   cov="clustered", small_sample="plm_sss")
    >>> round(float(fe.std_errors["value"]), 6)
    0.015156
    """
    _choice("estimator", estimator, ESTIMATORS)
    _choice("cov", cov, COV_TYPES)
    _choice("small_sample", small_sample, pc.SMALL_SAMPLE)
    _choice("bootstrap_weights", bootstrap_weights, pc.WILD_WEIGHTS)
    if effects == "auto":
        effects = _DEFAULT_EFFECTS[estimator]
    _choice("effects", effects, EFFECTS)
    if estimator != "within" and effects != _DEFAULT_EFFECTS[estimator]:
        raise ModelSpecificationError(
            f"estimator={estimator!r} supports effects={_DEFAULT_EFFECTS[estimator]!r} only, got {effects!r}; "
            "use estimator='within' for time or two-way fixed effects"
        )
    if estimator == "within" and effects is None:
        raise ModelSpecificationError(
            "estimator='within' needs effects 'unit', 'time' or 'twoway' (use 'pooled' for none)"
        )
    clustered = cov in ("clustered", "cr2", "wild_bootstrap")
    if cluster is not None and not clustered:
        raise ValueError(
            f"cluster={cluster!r} given but cov={cov!r}; use cov='clustered', 'cr2' or 'wild_bootstrap'"
        )
    if clustered and cluster is None:
        cluster = unit

    check_columns(panel, [unit, time, cluster])
    outcome, needed, build = _design(panel, outcome, formula, regressors)
    check_identifiers(panel, unit, time)
    n_input = len(panel)
    data, n_missing = drop_missing(
        panel, [outcome, *needed, *([cluster] if cluster else [])], "fit_panel"
    )
    if len(data) == 0:
        raise ModelSpecificationError("no complete rows left to fit")
    check_outcome_variation(data, outcome, "fit_panel")

    # codes and sorting (the frame given is never modified)
    ucodes, ulevels = pd.factorize(data[unit], sort=True)
    tcodes, tlevels = pd.factorize(data[time], sort=True)
    order = np.lexsort((tcodes, ucodes))
    data = data.iloc[order]
    ucodes, tcodes = ucodes[order], tcodes[order]
    G_u, T = len(ulevels), len(tlevels)
    balanced = len(data) == G_u * T
    Xf = build(data)
    has_int = "Intercept" in Xf.columns
    slopes = Xf.drop(columns=["Intercept"]) if has_int else Xf
    want_const = estimator != "within" and (has_int or regressors is not None)
    y = data[outcome].to_numpy(dtype=float)
    ccodes = pd.factorize(data[cluster])[0] if cluster else None

    notes: list[str] = []
    n_fd_lost = 0
    idx = pd.MultiIndex.from_arrays([ucodes, tcodes], names=[unit, time])
    from linearmodels import BetweenOLS, PanelOLS, PooledOLS, RandomEffects

    def with_const(frame: pd.DataFrame) -> pd.DataFrame:
        if not want_const:
            return frame
        return pd.concat([pd.DataFrame({"Intercept": 1.0}, index=frame.index), frame], axis=1)

    Xs = slopes.to_numpy()
    _check_design(with_const(slopes) if estimator != "within" else slopes)
    if estimator == "first_difference":
        prev = np.r_[-1, ucodes[:-1]]
        tprev = np.r_[-1, tcodes[:-1]]
        keep = (prev == ucodes) & (tprev == tcodes - 1)
        n_fd_lost = int((~keep).sum())
        gaps = int(((prev == ucodes) & (tprev != tcodes - 1)).sum())
        if gaps:
            notes.append(f"{gaps} rows follow a gap in {time!r} and have no first difference")
        dy = (y - np.r_[np.nan, y[:-1]])[keep]
        dX = (Xs - np.vstack([np.full((1, Xs.shape[1]), np.nan), Xs[:-1]]))[keep]
        Xt_frame = with_const(pd.DataFrame(dX, columns=slopes.columns))
        Xt, yt = Xt_frame.to_numpy(), dy
        fidx = pd.MultiIndex.from_arrays([ucodes[keep], tcodes[keep]], names=[unit, time])
        res = PooledOLS(pd.Series(dy, index=fidx), Xt_frame.set_index(fidx)).fit()
        row_clusters = ccodes[keep] if ccodes is not None else None
        row_units = ucodes[keep]
    else:
        Xl = with_const(slopes).set_index(idx)
        yl = pd.Series(y, index=idx, name=outcome)
        if estimator == "within":
            if Xs.shape[1] == 0:
                raise ModelSpecificationError("estimator='within' needs at least one regressor")
            from linearmodels.panel.utility import AbsorbingEffectError

            try:
                res = PanelOLS(
                    yl,
                    Xl,
                    entity_effects=effects in ("unit", "twoway"),
                    time_effects=effects in ("time", "twoway"),
                ).fit()
            except AbsorbingEffectError as exc:
                absorbed = [
                    c
                    for c in slopes.columns
                    if c in str(exc).split("after effects are removed:")[-1]
                ]
                what = {"unit": "unit", "time": "time", "twoway": "unit and time"}[effects]
                raise ModelSpecificationError(
                    f"regressor(s) {absorbed} have no variation left: absorbed by the {what} effects"
                ) from exc
        elif estimator == "random":
            res = RandomEffects(yl, Xl).fit()
        elif estimator == "between":
            res = BetweenOLS(yl, Xl).fit()
        else:
            res = PooledOLS(yl, Xl).fit()
        Xraw = Xl.to_numpy()
        row_clusters, row_units = ccodes, ucodes
        if estimator == "within":
            if effects == "unit":
                Xt, yt = _demean(Xraw, ucodes, G_u), _demean(y[:, None], ucodes, G_u)[:, 0]
            elif effects == "time":
                Xt, yt = _demean(Xraw, tcodes, T), _demean(y[:, None], tcodes, T)[:, 0]
            else:
                Td = _demean(_dummies(tcodes, T), ucodes, G_u)
                Xu, yu = _demean(Xraw, ucodes, G_u), _demean(y[:, None], ucodes, G_u)[:, 0]
                Xt = Xu - Td @ np.linalg.lstsq(Td, Xu, rcond=None)[0]
                yt = yu - Td @ np.linalg.lstsq(Td, yu, rcond=None)[0]
        elif estimator == "random":
            theta = res.theta.iloc[:, 0].reindex(np.arange(G_u)).to_numpy(dtype=float)[ucodes]
            Xbar = _demean(Xraw, ucodes, G_u)
            Xt = Xraw - theta[:, None] * (Xraw - Xbar)
            ybar = y - _demean(y[:, None], ucodes, G_u)[:, 0]
            yt = y - theta * ybar
        elif estimator == "between":
            counts = np.bincount(ucodes, minlength=G_u).astype(float)
            Xt = np.zeros((G_u, Xraw.shape[1]))
            np.add.at(Xt, ucodes, Xraw)
            Xt /= counts[:, None]
            yt = np.bincount(ucodes, weights=y, minlength=G_u) / counts
            # one row per unit: a unit's cluster is that of its rows (checked below)
            row_units = np.arange(G_u)
            if ccodes is not None:
                first = np.unique(ucodes, return_index=True)[1]
                row_clusters = ccodes[first]
        else:
            Xt, yt = Xraw, y

    names = list(res.params.index)
    beta = res.params.to_numpy(dtype=float)
    _check_rank(Xt, names, estimator, effects)
    e = yt - Xt @ beta
    n_t, k = Xt.shape
    N = len(data)
    df_resid = int(res.df_resid)

    # nesting of absorbed unit effects in clusters
    unit_fe = estimator == "within" and effects in ("unit", "twoway")
    time_fe = estimator == "within" and effects in ("time", "twoway")
    n_clusters = None
    few = False
    boot = None
    # plm: t(residual df) except for random effects, which are tested against the normal
    base_df = np.inf if estimator == "random" else float(df_resid)
    base_method = "normal (z)" if estimator == "random" else f"t with residual df ({df_resid})"
    if cov == "unadjusted":
        V = res.cov.to_numpy()
        df = np.full(k, base_df, dtype=float)
        df_method = base_method
    elif cov == "robust":
        M = np.linalg.pinv(Xt.T @ Xt)
        meat = (Xt * e[:, None]).T @ (Xt * e[:, None])
        factor = 1.0 if small_sample == "none" else n_t / df_resid
        V = factor * M @ meat @ M
        df = np.full(k, base_df, dtype=float)
        df_method = base_method
    else:
        if estimator == "between":
            nested = _nested(row_units, row_clusters)
            if not nested:
                raise ModelSpecificationError(
                    f"between estimator: each {unit} must belong to one {cluster}"
                )
        G = int(row_clusters.max()) + 1
        n_clusters = G
        few = G < FEW_CLUSTERS
        if G < 2:
            raise ModelSpecificationError(
                f"cluster-robust covariance needs at least 2 clusters; {cluster!r} has {G}"
            )
        if few and cov == "clustered":
            warnings.warn(
                f"only {G} clusters in {cluster!r} (< {FEW_CLUSTERS}); CR1 cluster-robust tests "
                "over-reject with few clusters: consider cov='cr2' or cov='wild_bootstrap'",
                FewClustersWarning,
                stacklevel=2,
            )
        unit_nested = _nested(ucodes, ccodes) if unit_fe else True
        K = k + (1 if unit_fe or time_fe else 0)
        if unit_fe and not unit_nested:
            K += G_u - 1
        if time_fe:
            K += T - 1
        factor = {
            "none": 1.0,
            "plm_hc1": n_t / (N - k),
            "plm_sss": G / (G - 1) * (n_t - 1) / (n_t - k),
            "stata": G / (G - 1) * (n_t - 1) / (n_t - K),
            "fixest_crv1": G / (G - 1) * (n_t - 1) / (n_t - K),
        }[small_sample]
        if cov == "cr2" and estimator == "random":
            if not _nested(ucodes, ccodes):
                raise ModelSpecificationError(
                    f"cov='cr2' with random effects needs each {unit} inside one {cluster}"
                )
            vd = res.variance_decomposition
            s2u, s2e = float(vd["Effects"]), float(vd["Residual"])
            phis = []
            for g in range(G):
                rows = np.flatnonzero(ccodes == g)
                same = ucodes[rows][:, None] == ucodes[rows][None, :]
                phis.append(s2e * np.eye(len(rows)) + s2u * same)
            V, df = pc.cr2_gls(Xraw, y - Xraw @ beta, ccodes, G, phis)
            df_method = "Satterthwaite (Bell-McCaffrey / Pustejovsky-Tipton) per coefficient"
        elif cov == "cr2":
            blocks = []
            if unit_fe:
                D = _dummies(ucodes, G_u)
                blocks.append(D / np.sqrt(D.sum(axis=0)))
                if time_fe:
                    blocks.append(_orth(_demean(_dummies(tcodes, T), ucodes, G_u)))
            elif time_fe:
                D = _dummies(tcodes, T)
                blocks.append(D / np.sqrt(D.sum(axis=0)))
            blocks.append(_orth(Xt))
            Q = np.hstack(blocks)
            V, df = pc.cr2(Xt, e, row_clusters, G, Q)
            df_method = "Satterthwaite (Bell-McCaffrey / Pustejovsky-Tipton) per coefficient"
        else:
            M = np.linalg.pinv(Xt.T @ Xt)
            V = factor * M @ pc.cluster_meat(Xt, e, row_clusters, G) @ M
            if small_sample in ("stata", "fixest_crv1"):
                df = np.full(k, G - 1, dtype=float)
                df_method = f"t with G - 1 = {G - 1} df"
            else:
                df = np.full(k, base_df, dtype=float)
                df_method = base_method
            if cov == "wild_bootstrap":
                boot = pc.wild_cluster_bootstrap(
                    Xt,
                    yt,
                    row_clusters,
                    G,
                    reps=bootstrap_reps,
                    weights=bootstrap_weights,
                    seed=seed,
                    factor=factor,
                    conf_level=conf_level,
                )
                boot["conf_level"] = conf_level
                df_method = (
                    f"restricted wild cluster bootstrap ({bootstrap_reps} draws, {bootstrap_weights} "
                    "weights) p-values; unrestricted bootstrap-t intervals"
                )
                notes.append(f"wild bootstrap seed: {seed!r}")

    tests: dict[str, dict[str, float]] = {}
    vcomp: dict[str, float] = {}
    if estimator == "within" and effects == "unit":
        fp = res.f_pooled
        tests["F_pooled"] = {
            "statistic": float(fp.stat),
            "df": (int(fp.df), int(fp.df_denom)),
            "p_value": float(fp.pval),
        }
    if estimator == "random":
        vd = res.variance_decomposition
        vcomp = {
            "sigma2_unit": float(vd["Effects"]),
            "sigma2_idiosyncratic": float(vd["Residual"]),
            "rho": float(vd["Percent due to Effects"]),
        }
        th = res.theta.to_numpy(dtype=float).ravel()
        if np.ptp(th) < 1e-12:
            vcomp["theta"] = float(th[0])
        else:
            vcomp["theta_min"], vcomp["theta_max"] = float(th.min()), float(th.max())
        tests["breusch_pagan"] = _breusch_pagan(y, Xl.to_numpy(), ucodes, G_u)

    def _r2(name: str) -> float:
        val = getattr(res, name, np.nan)
        return float(val) if val is not None else float("nan")

    diagnostics = PanelDiagnostics(
        n_rows_input=n_input,
        n_dropped_missing=n_missing,
        n_dropped_differencing=n_fd_lost,
        n_clusters=n_clusters,
        few_clusters=few,
        balanced=balanced,
        tests=tests,
        variance_components=vcomp,
        notes=tuple(notes),
    )
    ssr = float(e @ e)
    return PanelResult(
        params=pd.Series(beta, index=names, name="estimate"),
        cov=pd.DataFrame(V, index=names, columns=names),
        df=pd.Series(df, index=names, name="df"),
        estimator=estimator,
        effects=effects,
        cov_type=cov,
        small_sample=small_sample,
        df_method=df_method,
        outcome=outcome,
        unit=unit,
        time=time,
        cluster=cluster,
        nobs=int(n_t),
        n_units=G_u,
        n_periods=T,
        df_resid=df_resid,
        ssr=ssr,
        rsquared=_r2("rsquared"),
        rsquared_within=_r2("rsquared_within") if estimator != "first_difference" else float("nan"),
        rsquared_between=_r2("rsquared_between")
        if estimator != "first_difference"
        else float("nan"),
        rsquared_overall=_r2("rsquared_overall")
        if estimator != "first_difference"
        else float("nan"),
        diagnostics=diagnostics,
        engine_result=res,
        bootstrap=boot,
    )


def _check_design(X: pd.DataFrame) -> None:
    """Name constant-zero or collinear regressors before the engine sees them."""
    A = X.to_numpy(dtype=float)
    zero = [c for c, v in zip(X.columns, np.abs(A).max(axis=0, initial=0.0), strict=True) if v == 0]
    if zero:
        raise ModelSpecificationError(f"regressor(s) {zero} are zero in every row used")
    if np.linalg.matrix_rank(A) < A.shape[1]:
        from scipy.linalg import qr

        _, R, piv = qr(A, mode="economic", pivoting=True)
        d = np.abs(np.diag(R))
        bad = [X.columns[piv[j]] for j in range(len(d)) if d[j] <= 1e-10 * d[0]]
        raise ModelSpecificationError(
            f"regressors are collinear: {bad} are linear combinations of the others"
        )


def _nested(inner: np.ndarray, outer: np.ndarray) -> bool:
    """Every ``inner`` code maps to exactly one ``outer`` code."""
    pairs = pd.DataFrame({"i": inner, "o": outer}).drop_duplicates()
    return not pairs["i"].duplicated().any()


def _check_rank(Xt: np.ndarray, names: list[str], estimator: str, effects: str | None) -> None:
    scale = np.sqrt((Xt**2).sum(axis=0))
    for j, nm in enumerate(names):
        if scale[j] <= 1e-10 * max(1.0, np.abs(Xt).max(initial=0.0)):
            what = {"unit": "unit", "time": "time", "twoway": "unit and time"}.get(
                effects or "", ""
            )
            raise ModelSpecificationError(
                f"regressor {nm!r} has no variation left after the {estimator} transformation"
                + (f" (it is absorbed by the {what} effects)" if estimator == "within" else "")
            )
    if np.linalg.matrix_rank(Xt) < Xt.shape[1]:
        raise ModelSpecificationError(
            f"regressors {names} are collinear after the {estimator} transformation"
        )


def _breusch_pagan(y: np.ndarray, X: np.ndarray, ucodes: np.ndarray, G: int) -> dict[str, float]:
    """Breusch-Pagan LM test for unit effects from pooled OLS residuals (plm ``plmtest``)."""
    b = np.linalg.lstsq(X, y, rcond=None)[0]
    u = y - X @ b
    s = np.bincount(ucodes, weights=u, minlength=G)
    Ti = np.bincount(ucodes, minlength=G).astype(float)
    n = len(y)
    lm = n**2 / (2 * (np.sum(Ti**2) - n)) * (np.sum(s**2) / (u @ u) - 1) ** 2
    return {"statistic": float(lm), "df": 1, "p_value": float(stats.chi2.sf(lm, 1))}


def hausman(fe: PanelResult, re: PanelResult) -> TestResult:
    """Hausman test of fixed (within) against random effects, as plm's ``phtest``.

    Uses the classical covariances of both fits (refit with ``cov="unadjusted"`` otherwise the
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
            "the Hausman test uses classical covariances: fit both with cov='unadjusted'"
        )
    common = [t for t in fe.params.index if t in re.params.index]
    if not common:
        raise ModelSpecificationError("the two fits share no coefficients")
    d = fe.params[common].to_numpy() - re.params[common].to_numpy()
    Vd = fe.cov.loc[common, common].to_numpy() - re.cov.loc[common, common].to_numpy()
    stat = float(d @ np.linalg.solve(Vd, d))
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
        method="classical covariances; H0: random effects consistent (unit effects uncorrelated with regressors)",
    )
