"""Aggregation of group-time effects, as R ``did::aggte``, with influence-function SEs.

Weights are cohort shares ``P(G = g)`` estimated from the sample, so their estimation error
enters the influence function (``did``'s ``wif``). Standard errors are ``sqrt(mean(IF^2) / n)``;
the multiplier bootstrap perturbs the influence functions with Mammen (did's default) or
Rademacher weights at the unit (or cluster) level. With few clusters the caller passes
influence functions with the CR2-type leverage adjustment of ``_did_small`` (summing raw
influence functions within a few clusters per cohort shrinks the variance by ``(m - 1) / m``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from coevidence.exceptions import OptionError
from coevidence.models.did._cs import Cells

__all__ = [
    "Aggregate",
    "aggregate",
    "cluster_sums",
    "cohort_shares",
    "multiplier_bootstrap",
    "pretrend_wald",
    "se_clustered",
    "wald",
]


@dataclass(frozen=True)
class Aggregate:
    """Aggregated effects: one row per label plus an overall summary (may be NaN)."""

    kind: str
    labels: np.ndarray  # event time, group or calendar period; "" for simple
    estimate: np.ndarray
    inf: np.ndarray  # n_units x n_labels
    overall: float
    overall_inf: np.ndarray | None
    weights: np.ndarray | None = None  # n_cells x n_labels: estimate = weights' @ cells.estimate
    overall_weights: np.ndarray | None = None  # n_cells


def cohort_shares(unit_group: np.ndarray, unit_level: np.ndarray, cells: Cells,
                  w: np.ndarray | None = None) -> np.ndarray:
    """``P(G = g, level = l)`` for each cell, over all units (treated and never treated).

    With unit weights ``w`` (mean 1) the weighted shares ``mean(w 1{G = g})``, as ``did``.
    """
    w = np.ones(len(unit_group)) if w is None else w
    return np.array(
        [
            np.mean(w * ((unit_group == g) & (unit_level == lev)))
            for g, lev in zip(cells.group, cells.level, strict=True)
        ]
    )


def _wif(
    keep: np.ndarray,
    pg: np.ndarray,
    cells: Cells,
    unit_group: np.ndarray,
    unit_level: np.ndarray,
    scale: np.ndarray | None = None,
    w: np.ndarray | None = None,
) -> np.ndarray:
    """Influence of estimating the weights ``pg[keep] / sum(pg[keep])`` (did's ``wif``).

    ``scale`` (per unit) is the small-sample factor applied to this part of the influence
    function (see ``_did_small.share_scale``).
    """
    ind = np.column_stack(
        [
            (1.0 if w is None else w)
            * ((unit_group == cells.group[k]) & (unit_level == cells.level[k])).astype(float)
            - pg[k]
            for k in keep
        ]
    )
    s = pg[keep].sum()
    if1 = ind / s
    if2 = ind.sum(axis=1, keepdims=True) * (pg[keep] / s**2)[None, :]
    out = if1 - if2
    return out if scale is None else out * scale[:, None]


def _combine(
    cells: Cells, keep: np.ndarray, w: np.ndarray, wif: np.ndarray | None
) -> tuple[float, np.ndarray, np.ndarray]:
    est = float(np.sum(cells.estimate[keep] * w))
    inf = cells.inf[:, keep] @ w
    if wif is not None:
        inf = inf + wif @ cells.estimate[keep]
    full = np.zeros(len(cells.estimate))
    full[keep] = w
    return est, inf, full


def aggregate(
    cells: Cells,
    kind: str,
    unit_group: np.ndarray,
    unit_level: np.ndarray,
    level: object,
    *,
    balance_e: int | None = None,
    min_e: float = -np.inf,
    max_e: float = np.inf,
    share_scale: np.ndarray | None = None,
    unit_weights: np.ndarray | None = None,
) -> Aggregate:
    """Aggregate the cells of one ``by`` level into simple / event / group / calendar effects.

    Every aggregate is linear in the cell estimates; its weights are returned with it (for the
    Bell-McCaffrey df). ``share_scale`` multiplies the cohort-share part of the influence
    functions (small-sample adjustment); None leaves it as did computes it.
    """
    sc, uw = share_scale, unit_weights
    pg = cohort_shares(unit_group, unit_level, cells, uw)
    on = (cells.level == level) & ~cells.reference
    e_all = cells.time - cells.group
    post = cells.post
    if kind == "simple":
        keep = np.flatnonzero(on & post & (e_all <= max_e))
        w = pg[keep] / pg[keep].sum()
        est, inf, wf = _combine(cells, keep, w,
                                _wif(keep, pg, cells, unit_group, unit_level, sc, uw))
        return Aggregate(
            "simple",
            np.array(["ATT"], dtype=object),
            np.array([est]),
            inf[:, None],
            est,
            inf,
            wf[:, None],
            wf,
        )
    if kind == "group":
        groups = np.unique(cells.group[on])
        ests, infs, gshare, wts = [], [], [], []
        for g in groups:
            keep = np.flatnonzero(on & (cells.group == g) & post & (e_all <= max_e))
            w = np.full(len(keep), 1.0 / len(keep))
            est, inf, wf = _combine(cells, keep, w, None)
            ests.append(est), infs.append(inf), wts.append(wf)
            gshare.append(np.mean((1.0 if uw is None else uw)
                                  * ((unit_group == g) & (unit_level == level))))
        ests_a, infs_a = np.array(ests), np.column_stack(infs)
        gs = np.array(gshare)
        w = gs / gs.sum()
        ind = np.column_stack(
            [
                (1.0 if uw is None else uw)
                * ((unit_group == g) & (unit_level == level)).astype(float) - s
                for g, s in zip(groups, gs, strict=True)
            ]
        )
        wif = ind / gs.sum() - ind.sum(axis=1, keepdims=True) * (gs / gs.sum() ** 2)[None, :]
        if sc is not None:
            wif = wif * sc[:, None]
        overall = float(ests_a @ w)
        overall_inf = infs_a @ w + wif @ ests_a
        W = np.column_stack(wts)
        return Aggregate("group", groups, ests_a, infs_a, overall, overall_inf, W, W @ w)
    if kind == "event":
        include = np.ones(len(cells.estimate), dtype=bool)
        eseq = np.unique(e_all[on])
        if balance_e is not None:
            tmax, tmin = cells.time.max(), cells.time.min()
            include = (tmax - cells.group) >= balance_e
            eseq = np.unique(e_all[on & include])
            eseq = eseq[(eseq <= balance_e) & (eseq >= balance_e - tmax + tmin)]
        eseq = eseq[(eseq >= min_e) & (eseq <= max_e)]
        ests, infs, wts = [], [], []
        for e in eseq:
            keep = np.flatnonzero(on & include & (e_all == e))
            w = pg[keep] / pg[keep].sum()
            est, inf, wf = _combine(
                cells, keep, w, _wif(keep, pg, cells, unit_group, unit_level, sc, uw)
            )
            ests.append(est), infs.append(inf), wts.append(wf)
        ests_a, infs_a = np.array(ests), np.column_stack(infs)
        W = np.column_stack(wts)
        pos = eseq >= 0
        overall = float(ests_a[pos].mean()) if pos.any() else float("nan")
        overall_inf = infs_a[:, pos].mean(axis=1) if pos.any() else None
        overall_w = W[:, pos].mean(axis=1) if pos.any() else None
        return Aggregate("event", eseq, ests_a, infs_a, overall, overall_inf, W, overall_w)
    if kind == "calendar":
        tlist = np.unique(cells.time[on & post])
        ests, infs, wts = [], [], []
        for t in tlist:
            keep = np.flatnonzero(on & post & (cells.time == t) & (e_all <= max_e))
            w = pg[keep] / pg[keep].sum()
            est, inf, wf = _combine(
                cells, keep, w, _wif(keep, pg, cells, unit_group, unit_level, sc, uw)
            )
            ests.append(est), infs.append(inf), wts.append(wf)
        ests_a, infs_a = np.array(ests), np.column_stack(infs)
        W = np.column_stack(wts)
        return Aggregate(
            "calendar",
            tlist,
            ests_a,
            infs_a,
            float(ests_a.mean()),
            infs_a.mean(axis=1),
            W,
            W.mean(axis=1),
        )
    raise OptionError(f"aggregation must be 'simple', 'event', 'group' or 'calendar', got {kind!r}")


def se_from_inf(inf: np.ndarray) -> np.ndarray:
    """``sqrt(mean(IF^2) / n)`` column-wise (NaN where a column is identically 0)."""
    inf = np.atleast_2d(inf.T).T if inf.ndim == 1 else inf
    n = inf.shape[0]
    se = np.sqrt(np.mean(inf**2, axis=0) / n)
    return np.where(se <= np.sqrt(np.finfo(float).eps) * 1e-3, np.nan, se)


def multiplier_bootstrap(
    inf: np.ndarray,
    reps: int,
    rng: np.random.Generator,
    weights: str = "mammen",
    cluster: np.ndarray | None = None,
    conf_level: float = 0.95,
) -> tuple[np.ndarray, float]:
    """Bootstrap SEs (IQR-based, as did) and the uniform (sup-t) critical value.

    ``inf`` is n_units x m; with ``cluster`` the influence functions are summed within clusters
    first (did's clustered bootstrap).
    """
    n = inf.shape[0]
    if cluster is not None:
        codes, _ = _codes(cluster)
        S = np.zeros((codes.max() + 1, inf.shape[1]))
        np.add.at(S, codes, inf)
        inf_c = S
    else:
        inf_c = inf
    m = inf_c.shape[0]
    if weights == "mammen":
        k = (np.sqrt(5) + 1) / 2
        v = np.where(rng.random((reps, m)) < k / np.sqrt(5), 1 - k, k)
    elif weights == "rademacher":
        v = rng.choice(np.array([-1.0, 1.0]), size=(reps, m))
    else:
        raise OptionError(f"bootstrap weights must be 'mammen' or 'rademacher', got {weights!r}")
    bres = np.sqrt(n) * (v @ inf_c) / n  # reps x m: sqrt(n) * mean(v * IF)
    q75, q25 = np.quantile(bres, [0.75, 0.25], axis=0)
    bsigma = (q75 - q25) / (stats.norm.ppf(0.75) - stats.norm.ppf(0.25))
    ok = bsigma > np.sqrt(np.finfo(float).eps) * 10
    bT = np.max(np.abs(bres[:, ok] / bsigma[ok]), axis=1) if ok.any() else np.array([np.nan])
    crit = float(np.quantile(bT, conf_level)) if ok.any() else float("nan")
    se = np.where(ok, bsigma / np.sqrt(n), np.nan)
    return se, crit


def _codes(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uniq, codes = np.unique(np.asarray(x, dtype=object).astype(str), return_inverse=True)
    return codes, uniq


def cluster_sums(inf: np.ndarray, codes: np.ndarray | None, n_clusters: int) -> np.ndarray:
    """Influence functions summed within clusters (``codes`` None: the units themselves)."""
    if codes is None:
        return inf
    S = np.zeros((n_clusters, inf.shape[1]))
    np.add.at(S, codes, inf)
    return S


def se_clustered(inf: np.ndarray, codes: np.ndarray, n_clusters: int) -> np.ndarray:
    """Cluster-robust SEs ``sqrt(sum_c S_c^2) / n`` from unit influence functions."""
    n = inf.shape[0]
    S = cluster_sums(inf, codes, n_clusters)
    se = np.sqrt(np.sum(S**2, axis=0)) / n
    return np.where(se <= np.sqrt(np.finfo(float).eps) * 1e-3, np.nan, se)


def wald(
    est: np.ndarray,
    inf: np.ndarray,
    codes: np.ndarray | None = None,
    n_clusters: int = 0,
    df2: float = np.inf,
) -> dict[str, float]:
    """Wald test that ``est`` is zero with the (cluster-summed) influence-function covariance.

    With a finite ``df2`` the statistic is referred to ``F(rank, df2)`` (``W / rank``; Stata's
    convention after clustering, df2 = G - 1) instead of chi-square.
    """
    if len(est) == 0:
        return {"statistic": float("nan"), "df": 0, "p_value": float("nan")}
    n = inf.shape[0]
    S = cluster_sums(inf, codes, n_clusters)
    V = S.T @ S / n
    keep = np.diag(V) > 0
    V, est = V[np.ix_(keep, keep)], est[keep]
    if len(est) == 0:
        return {"statistic": float("nan"), "df": 0, "p_value": float("nan")}
    W = float(n * est @ np.linalg.pinv(V) @ est)
    df = int(np.linalg.matrix_rank(V))
    if np.isfinite(df2):
        return {
            "statistic": W,
            "df": df,
            "p_value": float(stats.f.sf(W / df, df, df2)),
            "df_denominator": float(df2),
            "test": "F",
        }
    return {"statistic": W, "df": df, "p_value": float(stats.chi2.sf(W, df))}


def pretrend_wald(
    cells: Cells,
    level: object | None = None,
    codes: np.ndarray | None = None,
    n_clusters: int = 0,
    df2: float = np.inf,
) -> dict[str, float]:
    """Wald test that all pre-treatment group-time effects are zero (did's pre-test)."""
    sel = (cells.time < cells.group) & ~cells.reference
    if level is not None:
        sel &= cells.level == level
    idx = np.flatnonzero(sel)
    return wald(cells.estimate[idx], cells.inf[:, idx], codes, n_clusters, df2)
