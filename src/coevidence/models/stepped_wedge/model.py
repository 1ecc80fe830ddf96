"""Stepped-wedge analyses: Hussey-Hughes immediate effect and exposure-time indicators.

Both models adjust for calendar time with period fixed effects (Hemming et al. 2017):

* ``model="immediate"`` (Hussey & Hughes 2007): one treatment indicator. When effects build up
  with exposure this is a weighted average of exposure-time effects with possibly negative
  weights (Kenny et al. 2022, Stat Med 41:4311) -- kept as the conventional benchmark.
* ``model="exposure_time"``: one indicator per exposure time ``s = 1..S`` (periods since the
  cluster crossed over, counting the crossover period as 1); reported estimands are the
  time-averaged treatment effect ``TATE = mean(delta_1..delta_S)`` and the long-term effect
  ``LTE = delta_S`` (Kenny et al. 2022).

Cluster effects: ``cluster_effects="fixed"`` (default) absorbs a fixed intercept per cluster and
uses cluster-robust inference (CR2 with Satterthwaite df by default), which keeps nominal coverage
with few clusters where mixed models with Wald tests do not (domain.md section 3c);
``"random"`` fits a random cluster intercept by REML with :func:`coevidence.fit_mixed` (the
lme4-matching engine) and tests with t statistics on Satterthwaite df (lmerTest-type; Wald z
tests over-reject with few clusters), for comparison with published mixed-model analyses. Rows
may be individuals within cluster-periods (cross-sectional designs) or one row per cluster-period.

Few clusters: fewer than 2 clusters, or fewer than 2 that cross over, raise
:class:`~coevidence.exceptions.ModelSpecificationError` (standard errors would be near 0), as do
2 clusters with fixed cluster effects (the cluster-robust variance is then identically 0) and
any treatment SE that is numerically 0; below 6 clusters a
:class:`~coevidence.exceptions.FewClustersWarning` points to
:func:`coevidence.models.randomization.model.randomization_test`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from coevidence.exceptions import (
    BoundaryFitWarning,
    FewClustersWarning,
    ModelSpecificationError,
    OptionError,
    StudyValidationError,
)
from coevidence.models._shared import covariance as pc
from coevidence.models._shared.data import (
    TABLE,
    check_columns,
    check_outcome_variation,
    drop_missing,
)
from coevidence.models._shared.options import (
    UNSET,
    check_choice,
    check_conf_level,
    keyword_only,
    refuse_ignored,
    renamed,
)
from coevidence.models.did._regression import _twoway_resid
from coevidence.models.panel._estimators import demean  # the panel family's unit demeaning
from coevidence.models.panel.model import FEW_CLUSTERS, _dummies, _orth
from coevidence.models.stepped_wedge.results import SteppedWedgeResult

__all__ = ["fit_stepped_wedge"]

#: below this many clusters fit_stepped_wedge issues a FewClustersWarning (any covariance)
FEW_SW_CLUSTERS = 6


def _check_clusters(
    expo: np.ndarray, ucode: np.ndarray, G: int, unit: str, cluster_effects: str, cov: str
) -> int:
    """Raise when the clusters cannot support inference; return how many cross over."""
    if G < 2:
        raise ModelSpecificationError(
            f"a stepped-wedge analysis needs at least 2 clusters; {unit!r} has {G}"
        )
    lo = np.full(G, np.inf)
    hi = np.full(G, -np.inf)
    np.minimum.at(lo, ucode, expo)
    np.maximum.at(hi, ucode, expo)
    n_cross = int(np.sum((lo == 0) & (hi > 0)))
    if n_cross < 2:
        raise ModelSpecificationError(
            f"only {n_cross} cluster(s) of {unit!r} cross over from control to intervention in "
            "the observed periods: the effect rests on one cluster's change, and neither "
            "cluster-robust nor mixed-model standard errors can be trusted (they can be near 0); "
            "at least 2 crossing clusters are needed"
        )
    if cluster_effects == "fixed" and cov != "unadjusted" and G < 3:
        raise ModelSpecificationError(
            f"with cluster fixed effects and only {G} clusters of {unit!r} the cluster-robust "
            "variance is degenerate (identically 0): use cluster_effects='random' (model-based, "
            "Satterthwaite df) or cov_type='unadjusted', and read the result with caution"
        )
    return n_cross


def _exposure(
    data: pd.DataFrame,
    unit: str,
    period: str,
    treated: str | None,
    first_treated: str | None,
    periods: np.ndarray,
) -> np.ndarray:
    """Exposure time per row (0 = control, 1 = first treated period, ...)."""
    pos = np.searchsorted(periods, data[period].to_numpy(dtype=float))
    if first_treated is not None:
        start = data[first_treated].astype(float).to_numpy()
        spos = np.where(
            np.isfinite(start), np.searchsorted(periods, np.nan_to_num(start, nan=np.inf)), np.inf
        )
        return np.where(pos >= spos, pos - spos + 1, 0).astype(float)
    d = data[treated].to_numpy()
    if not np.isin(d, [0, 1, True, False]).all():
        raise StudyValidationError(
            pd.DataFrame(
                [
                    {
                        "table": TABLE,
                        "row": None,
                        "column": treated,
                        "value": None,
                        "rule": "treatment indicator must be 0/1",
                    }
                ]
            ),
            what=treated,
        )
    d = d.astype(float)
    # start = first period with treatment in the cluster; check monotonicity
    frame = pd.DataFrame({"u": data[unit].to_numpy(), "pos": pos, "d": d})
    start = frame[frame["d"] == 1].groupby("u")["pos"].min()
    s = frame["u"].map(start).to_numpy(dtype=float)
    should = np.where(np.isnan(s), 0.0, (pos >= s).astype(float))
    bad = np.flatnonzero(should != d)
    if len(bad):
        fails = [
            {
                "table": TABLE,
                "row": int(r),
                "column": treated,
                "value": d[r],
                "rule": "stepped wedge: once a cluster is treated it stays treated",
            }
            for r in bad[:200]
        ]
        raise StudyValidationError(pd.DataFrame(fails), what=f"the {treated!r} column")
    return np.where(np.isnan(s), 0.0, np.where(pos >= s, pos - np.nan_to_num(s) + 1, 0.0))


@renamed(period="time", cov="cov_type")
@keyword_only(2, ("unit", "time"))
def fit_stepped_wedge(
    panel: pd.DataFrame,
    outcome: str,
    *,
    unit: str = "org_id",
    time: str = "wave",
    treated: str | None = None,
    first_treated: str | None = None,
    model: str = "exposure_time",
    cluster_effects: str = "fixed",
    cov_type: str = UNSET,
    covariates: Sequence[str] | None = None,
    max_exposure: int | None = None,
    conf_level: float = 0.95,
) -> SteppedWedgeResult:
    """Fit a stepped-wedge model with period fixed effects.

    Parameters
    ----------
    panel : pandas.DataFrame
        Rows per cluster-period (or individuals within cluster-periods). Never modified.
    outcome, unit, time : str
        Outcome, cluster id and (numeric) period columns (``period=`` is the deprecated
        spelling of ``time=``).
    treated : str, optional
        0/1 column: the cluster is in the intervention condition in that period.
    first_treated : str, optional
        Instead of ``treated``: period in which the cluster crosses over (NaN = never).
    model : {"exposure_time", "immediate"}
        Exposure-time indicators (TATE and LTE reported) or the Hussey-Hughes single indicator.
    cluster_effects : {"fixed", "random"}
        Fixed cluster intercepts with cluster-robust inference, or a random intercept (REML,
        :func:`coevidence.fit_mixed`) with t tests on Satterthwaite df.
    cov_type : {"cr2", "clustered", "unadjusted"}, default "cr2"
        For fixed cluster effects: CR2 with Satterthwaite df (default), CR1 with Stata's factor
        and t(G - 1), or classical. Random cluster effects always use the model-based
        covariance, so giving ``cov_type`` with ``cluster_effects="random"`` is an error
        (``cov=`` is the deprecated spelling).
    covariates : list of str, optional
        Numeric adjustment covariates.
    max_exposure : int, optional
        Pool exposure times above this value into the last indicator.
    conf_level : float, default 0.95
        Level of the confidence intervals (kept by the result).

    Returns
    -------
    SteppedWedgeResult

    Raises
    ------
    ModelSpecificationError
        Fewer than 2 clusters or fewer than 2 crossing over; 2 clusters with fixed cluster
        effects and a cluster-robust covariance; a numerically zero standard error.

    Warns
    -----
    FewClustersWarning
        Fewer than 6 clusters (any covariance), or CR1 (``cov_type="clustered"``) with fewer than 42.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> import coevidence as cv
    >>> rng = np.random.default_rng(1)
    >>> rows = [(c, t, 1 + c % 4, rng.normal()) for c in range(12) for t in range(5)]
    >>> df = pd.DataFrame(rows, columns=["org_id", "wave", "start", "e"])
    >>> df["y"] = 0.5 * np.clip(df.wave - df.start + 1, 0, None) + 0.02 * df.e
    >>> res = cv.fit_stepped_wedge(df, "y", first_treated="start")
    >>> round(res.lte, 1)
    2.0
    """
    period = time
    conf_level = check_conf_level(conf_level)
    check_choice("model", model, ("exposure_time", "immediate"))
    check_choice("cluster_effects", cluster_effects, ("fixed", "random"))
    if cluster_effects == "random":
        refuse_ignored("fit_stepped_wedge", {"cov_type": cov_type},
                       "random cluster effects always use the model-based covariance")
    cov = "cr2" if cov_type is UNSET else cov_type
    check_choice("cov_type", cov, ("cr2", "clustered", "unadjusted"))
    if (treated is None) == (first_treated is None):
        raise OptionError(
            "give exactly one of treated= (0/1 column) or first_treated= (crossover period)"
        )
    covs = list(covariates or [])
    check_columns(
        panel,
        [outcome, unit, period, treated, first_treated, *covs],
        numeric=[outcome, period, *covs, *([first_treated] if first_treated else [])],
    )
    ids_missing = panel[[unit, period]].isna().any(axis=1).to_numpy()
    if ids_missing.any():
        fails = [
            {
                "table": TABLE,
                "row": int(r),
                "column": f"{unit}/{period}",
                "value": None,
                "rule": "missing cluster or period identifier",
            }
            for r in np.flatnonzero(ids_missing)
        ]
        raise StudyValidationError(pd.DataFrame(fails), what="the panel's identifiers")
    data, n_missing = drop_missing(
        panel, [outcome, *covs, *([treated] if treated else [])], "fit_stepped_wedge"
    )
    check_outcome_variation(data, outcome, "fit_stepped_wedge")
    periods = np.sort(data[period].unique()).astype(float)
    expo = _exposure(data, unit, period, treated, first_treated, periods)
    S = int(expo.max())
    if S == 0:
        raise ModelSpecificationError("no cluster is ever treated")
    if (expo == 0).sum() == 0:
        raise ModelSpecificationError("no control cluster-periods: the effect is not identified")
    if max_exposure is not None:
        expo = np.minimum(expo, max_exposure)
        S = int(expo.max())
    if model == "immediate":
        X = (expo > 0).astype(float)[:, None]
        names = ["treatment"]
    else:
        X = np.column_stack([(expo == s).astype(float) for s in range(1, S + 1)])
        names = [f"exposure_{s}" for s in range(1, S + 1)]
    Xc = data[covs].to_numpy(dtype=float) if covs else np.zeros((len(data), 0))
    y = data[outcome].to_numpy(dtype=float)
    ucode, ulev = pd.factorize(data[unit], sort=True)
    tcode = np.searchsorted(periods, data[period].to_numpy(dtype=float))
    G, T = len(ulev), len(periods)
    n_cross = _check_clusters(expo, ucode, G, unit, cluster_effects, cov)
    # reparametrisation whose first coefficient is the TATE (exposure-time model)
    designs = [(X, names)]
    if model == "exposure_time" and S > 1 and cluster_effects == "fixed":
        B = np.vstack([np.full(S, 1.0 / S), np.eye(S)[1:]])  # gamma = B delta
        designs.append((X @ np.linalg.inv(B), ["TATE"] + [f"_r{s}" for s in range(2, S + 1)]))
    fits = []
    for Xd, nm in designs:
        Xall = np.column_stack([Xd, Xc])
        if cluster_effects == "fixed":
            fits.append(_fit_fixed(y, Xall, ucode, tcode, G, T, cov))
        else:
            fits.append(_fit_random(y, Xall, ucode, tcode, T))
    est, V, df, info = fits[0]
    k = X.shape[1]
    rows = {nm: (est[j], np.sqrt(V[j, j]), df[j]) for j, nm in enumerate(names)}
    if model == "exposure_time":
        if S > 1 and cluster_effects == "fixed":  # own Satterthwaite df via the reparametrised fit
            e2, V2, df2, _ = fits[1]
            rows["TATE"] = (e2[0], np.sqrt(V2[0, 0]), df2[0])
        elif S > 1:  # model-based covariance: a linear combination, its own Satterthwaite df
            w = np.full(S, 1.0 / S)
            wfull = np.r_[w, np.zeros(len(est) - S)]
            rows["TATE"] = (
                float(w @ est[:S]),
                float(np.sqrt(w @ V[:S, :S] @ w)),
                float(info["df_for"](wfull)),
            )
        else:
            rows["TATE"] = rows["exposure_1"]
        rows["LTE"] = rows[f"exposure_{S}"]
    for j, c in enumerate(covs):
        rows[c] = (est[k + j], np.sqrt(V[k + j, k + j]), df[k + j])
    scale = float(np.std(y)) or 1.0
    for term in names:
        se_t = rows[term][1]
        if not np.isfinite(se_t) or se_t <= 1e-8 * scale:
            raise ModelSpecificationError(
                f"the standard error of {term!r} is numerically zero ({se_t:.3g}) with {G} "
                f"clusters of {unit!r}: this design leaves no between-cluster variation to estimate it "
                "from; add clusters, or use randomization_test() for the arm effect"
            )
    if G < FEW_SW_CLUSTERS:
        dfs = [rows[t][2] for t in names]
        warnings.warn(
            f"fit_stepped_wedge: only {G} clusters of {unit!r} ({n_cross} crossing over); tests "
            f"are t tests with {info['df_method']} (smallest df {min(dfs):.3g}), but with so few "
            "clusters their validity rests on the model: consider randomization_test()",
            FewClustersWarning,
            stacklevel=2,
        )
    if (
        cluster_effects == "fixed"
        and cov != "unadjusted"
        and G < FEW_CLUSTERS
        and cov == "clustered"
    ):
        warnings.warn(
            f"only {G} clusters (< {FEW_CLUSTERS}); CR1 tests over-reject: prefer cov_type='cr2'",
            FewClustersWarning,
            stacklevel=2,
        )
    seq = pd.Series(expo > 0).groupby(ucode).sum()
    return SteppedWedgeResult(
        table=pd.DataFrame(
            [{"term": t, "estimate": v[0], "std_error": v[1], "df": v[2]} for t, v in rows.items()]
        ),
        info={
            "model": model,
            "cluster_effects": cluster_effects,
            "cov_type": info["cov_type"],
            "df_method": info["df_method"],
            "outcome": outcome,
            "unit": unit,
            "period": period,
            "n_obs": len(y),
            "n_clusters": G,
            "n_periods": T,
            "max_exposure": S,
            "n_sequences": int(seq.nunique()),
            "n_dropped_missing": n_missing,
            "conf_level": conf_level,
            **info.get("extra", {}),
        },
        notes=tuple(info.get("notes", ())),
    )


def _fit_fixed(y, X, u, t, G, T, cov):
    R = _twoway_resid(np.column_stack([X, y]), u, t, G, T)
    Xt, yt = R[:, :-1], R[:, -1]
    if np.linalg.matrix_rank(Xt) < Xt.shape[1]:
        raise ModelSpecificationError(
            "treatment indicators are collinear with the cluster and period effects "
            "(is every cluster-period of some exposure time in the same period?)"
        )
    M = np.linalg.inv(Xt.T @ Xt)
    beta = M @ Xt.T @ yt
    e = yt - Xt @ beta
    n, k = Xt.shape
    Tobs = len(np.unique(t))
    df_resid = n - G - Tobs + 1 - k
    if cov == "unadjusted":
        V = (e @ e / df_resid) * M
        return (
            beta,
            V,
            np.full(k, float(df_resid)),
            {"cov_type": "unadjusted (classical)", "df_method": f"t with residual df ({df_resid})"},
        )
    if cov == "clustered":
        K = k + 1 + (Tobs - 1)
        factor = G / (G - 1) * (n - 1) / (n - K)
        V = factor * M @ pc.cluster_meat(Xt, e, u, G) @ M
        return (
            beta,
            V,
            np.full(k, float(G - 1)),
            {
                "cov_type": f"cluster-robust CR1 (Stata factor), {G} clusters",
                "df_method": f"t with G - 1 = {G - 1} df",
            },
        )
    D = _dummies(u, G)
    Q = np.hstack([D / np.sqrt(D.sum(axis=0)), _orth(demean(_dummies(t, T), u, G)), _orth(Xt)])
    V, df = pc.cr2(Xt, e, u, G, Q)
    return (
        beta,
        V,
        df,
        {
            "cov_type": f"cluster-robust CR2 (Bell-McCaffrey), {G} clusters",
            "df_method": "Satterthwaite (Pustejovsky-Tipton) per estimate",
        },
    )


def _fit_random(y, X, u, t, T):
    """Random cluster intercept by REML with :func:`coevidence.fit_mixed`; Satterthwaite df."""
    from coevidence.exceptions import FitWarning
    from coevidence.models.mixed.api import fit_mixed

    k = X.shape[1]
    cols: dict[str, np.ndarray] = {"sw_y": y, "sw_cluster": np.char.add("c", u.astype(str))}
    pcols = [f"sw_p{j}" for j in range(1, T)]
    for j, name in enumerate(pcols, start=1):
        cols[name] = (t == j).astype(float)
    xcols = [f"sw_x{j}" for j in range(k)]
    for j, name in enumerate(xcols):
        cols[name] = X[:, j]
    frame = pd.DataFrame(cols)
    formula = "sw_y ~ " + " + ".join([*pcols, *xcols]) + " + (1 | sw_cluster)"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            res = fit_mixed(formula, frame, reml=True, df_method="satterthwaite")
        except ModelSpecificationError as exc:
            raise ModelSpecificationError(f"random cluster intercept model: {exc}") from exc
    notes = [f"mixed model: {w.message}" for w in caught if issubclass(w.category, FitWarning)]
    notes = [n.replace(repr(formula), "(random cluster intercept)") for n in notes]
    vc = res.variance_components()
    tau2 = float(vc.loc[vc["group"] == "sw_cluster", "vcov"].iloc[0])
    sigma2 = float(vc.loc[vc["group"] == "Residual", "vcov"].iloc[0])
    if tau2 <= 1e-6 * sigma2:
        warnings.warn(
            f"random cluster intercept variance is at the boundary ({tau2:.3g}); "
            "the fit equals pooled OLS with period effects",
            BoundaryFitWarning,
            stacklevel=3,
        )
        notes.append("cluster variance on the boundary (0)")
    elif not res.diagnostics.ok:
        warnings.warn(
            "random cluster intercept model: " + "; ".join(res.diagnostics.messages),
            FitWarning,
            stacklevel=3,
        )
    names = list(res.params.index)
    idx = [names.index(c) for c in xcols]
    beta = res.params.to_numpy()[idx]
    V = res.vcov.to_numpy()[np.ix_(idx, idx)]
    df = res.tidy()["df"].to_numpy()[idx]

    df_for = _SubsetDF(res, len(names), idx)

    return (
        beta,
        V,
        df,
        {
            "cov_type": "model-based (REML mixed model, random cluster intercept; GLS covariance)",
            "df_method": "Satterthwaite per estimate (lmerTest-type, coevidence.fit_mixed)",
            "notes": notes,
            "df_for": df_for,
            "extra": {
                "sigma2_cluster": tau2,
                "sigma2_residual": sigma2,
                "icc": tau2 / (tau2 + sigma2),
                "converged": bool(res.diagnostics.converged),
                "engine": res.engine,
            },
        },
    )


class _SubsetDF:
    """Satterthwaite df of a contrast ``w`` of the coefficients at ``idx`` of a mixed fit
    (a plain object, so results holding it pickle)."""

    def __init__(self, res, n_coef: int, idx: list[int]) -> None:
        self.res, self.n_coef, self.idx = res, n_coef, list(idx)

    def __call__(self, w: np.ndarray) -> float:
        L = np.zeros(self.n_coef)
        L[self.idx] = w
        return self.res.df_for(L)
