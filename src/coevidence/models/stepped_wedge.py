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
``"random"`` fits a random cluster intercept by REML with statsmodels ``MixedLM`` (Wald z tests,
as in Hussey & Hughes), for comparison with published mixed-model analyses. Rows may be
individuals within cluster-periods (cross-sectional designs) or one row per cluster-period.
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
    StudyValidationError,
)
from coevidence.models import _panel_cov as pc
from coevidence.models._did_regression import _twoway_resid
from coevidence.models._panel_data import TABLE, check_columns, drop_missing
from coevidence.models.panel import FEW_CLUSTERS, _dummies, _orth
from coevidence.results.stepped_wedge import SteppedWedgeResult

__all__ = ["fit_stepped_wedge"]


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


def fit_stepped_wedge(
    panel: pd.DataFrame,
    outcome: str,
    unit: str = "org_id",
    period: str = "wave",
    *,
    treated: str | None = None,
    first_treated: str | None = None,
    model: str = "exposure_time",
    cluster_effects: str = "fixed",
    cov: str = "cr2",
    covariates: Sequence[str] | None = None,
    max_exposure: int | None = None,
) -> SteppedWedgeResult:
    """Fit a stepped-wedge model with period fixed effects.

    Parameters
    ----------
    panel : pandas.DataFrame
        Rows per cluster-period (or individuals within cluster-periods). Never modified.
    outcome, unit, period : str
        Outcome, cluster id and (numeric) period columns.
    treated : str, optional
        0/1 column: the cluster is in the intervention condition in that period.
    first_treated : str, optional
        Instead of ``treated``: period in which the cluster crosses over (NaN = never).
    model : {"exposure_time", "immediate"}
        Exposure-time indicators (TATE and LTE reported) or the Hussey-Hughes single indicator.
    cluster_effects : {"fixed", "random"}
        Fixed cluster intercepts with cluster-robust inference, or a random intercept (REML).
    cov : {"cr2", "clustered", "unadjusted"}
        For fixed cluster effects: CR2 with Satterthwaite df (default), CR1 with Stata's factor
        and t(G - 1), or classical. Random cluster effects always use the model-based covariance.
    covariates : list of str, optional
        Numeric adjustment covariates.
    max_exposure : int, optional
        Pool exposure times above this value into the last indicator.

    Returns
    -------
    SteppedWedgeResult

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
    if model not in ("exposure_time", "immediate"):
        raise ValueError(f"model must be 'exposure_time' or 'immediate', got {model!r}")
    if cluster_effects not in ("fixed", "random"):
        raise ValueError(f"cluster_effects must be 'fixed' or 'random', got {cluster_effects!r}")
    if cov not in ("cr2", "clustered", "unadjusted"):
        raise ValueError(f"cov must be 'cr2', 'clustered' or 'unadjusted', got {cov!r}")
    if (treated is None) == (first_treated is None):
        raise ValueError(
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
        elif S > 1:  # model-based covariance: a linear combination
            w = np.full(S, 1.0 / S)
            rows["TATE"] = (float(w @ est[:S]), float(np.sqrt(w @ V[:S, :S] @ w)), np.inf)
        else:
            rows["TATE"] = rows["exposure_1"]
        rows["LTE"] = rows[f"exposure_{S}"]
    for j, c in enumerate(covs):
        rows[c] = (est[k + j], np.sqrt(V[k + j, k + j]), df[k + j])
    if (
        cluster_effects == "fixed"
        and cov != "unadjusted"
        and G < FEW_CLUSTERS
        and cov == "clustered"
    ):
        warnings.warn(
            f"only {G} clusters (< {FEW_CLUSTERS}); CR1 tests over-reject: prefer cov='cr2'",
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
    Q = np.hstack([D / np.sqrt(D.sum(axis=0)), _orth(_demean_u(_dummies(t, T), u, G)), _orth(Xt)])
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


def _demean_u(a, u, G):
    s = np.zeros((G, a.shape[1]))
    np.add.at(s, u, a)
    c = np.bincount(u, minlength=G).astype(float)
    return a - (s / c[:, None])[u]


def _fit_random(y, X, u, t, T):
    import statsmodels.api as sm

    P = np.zeros((len(y), T - 1))
    rows = np.flatnonzero(t > 0)
    P[rows, t[rows] - 1] = 1.0
    exog = np.column_stack([np.ones(len(y)), P, X])
    k = X.shape[1]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        md = sm.MixedLM(y, exog, groups=u)
        res = None
        tried = []
        for method in (["lbfgs"], ["bfgs"], ["nm", "bfgs"], ["powell", "lbfgs"]):
            try:
                r = md.fit(reml=True, method=method)
            except (np.linalg.LinAlgError, ValueError):
                continue
            tried.append(r)
        # statsmodels' lbfgs can report converged=True with llf=+inf and a zero variance
        # (statsmodels#10239): only finite optima count
        good = [r for r in tried if r.converged and np.isfinite(r.llf)] or [
            r for r in tried if np.isfinite(r.llf)
        ]
        if good:
            res = max(good, key=lambda r: r.llf)  # best REML optimum among the optimizers tried
    if res is None:
        raise ModelSpecificationError("MixedLM failed with every optimizer tried")
    notes = [
        f"MixedLM optimizer warning: {w.message}"
        for w in caught
        if "converge" in str(w.message).lower()
    ]
    tau2 = (
        float(res.cov_re.iloc[0, 0])
        if hasattr(res.cov_re, "iloc")
        else float(np.asarray(res.cov_re)[0, 0])
    )
    sigma2 = float(res.scale)
    if tau2 <= 1e-6 * sigma2:
        warnings.warn(
            f"random cluster intercept variance is at the boundary ({tau2:.3g}); "
            "the fit equals pooled OLS with period effects",
            BoundaryFitWarning,
            stacklevel=3,
        )
        notes.append("cluster variance on the boundary (0)")
    fe = np.asarray(res.fe_params)
    # GLS covariance of the fixed effects at the REML variance components, (X' V^-1 X)^-1, as
    # lme4's vcov (statsmodels' cov_params inverts the joint Hessian instead)
    info = np.zeros((exog.shape[1], exog.shape[1]))
    for g in np.unique(u):
        Xg = exog[u == g]
        m = len(Xg)
        Vinv = (np.eye(m) - tau2 / (sigma2 + m * tau2) * np.ones((m, m))) / sigma2
        info += Xg.T @ Vinv @ Xg
    cv = np.linalg.inv(info)
    sl = slice(T, T + k)
    return (
        fe[sl],
        cv[sl, sl],
        np.full(k, np.inf),
        {
            "cov_type": "model-based (REML mixed model, random cluster intercept)",
            "df_method": "normal (z)",
            "notes": notes,
            "extra": {
                "sigma2_cluster": tau2,
                "sigma2_residual": sigma2,
                "icc": tau2 / (tau2 + sigma2),
                "converged": bool(res.converged),
            },
        },
    )
