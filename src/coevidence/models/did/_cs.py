"""Callaway & Sant'Anna (2021) group-time average treatment effects, written on numpy.

Follows R ``did`` 2.1 (``att_gt``) for balanced panels: for every treated cohort ``g`` and period
``t`` a two-period comparison against never-treated or not-yet-treated units, with base period
``"varying"`` (the previous period before treatment, ``g - 1 - anticipation`` after) or
``"universal"``. Estimators per cell: unconditional / outcome regression (``"reg"``, Heckman,
Ichimura & Todd 1997; DRDID ``reg_did_panel``) and doubly robust (``"dr"``, Sant'Anna & Zhao 2020;
DRDID ``drdid_panel``). Each cell returns its influence function on the full unit sample so
aggregations and their standard errors follow (``_did_aggregate``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from coevidence.exceptions import ModelSpecificationError, OptionError
from coevidence.models.did._weights import weighted_reg_cell

__all__ = ["Cells", "cs_cells"]


@dataclass(frozen=True)
class Cells:
    """Group-time estimates with influence functions (n_units x n_cells, scaled as in ``did``:
    ``V = IF' IF / n**2``).

    ``level`` is the ``by=`` level of each cell ("" without ``by``); ``group``/``time`` are period
    labels; ``post`` marks ``time >= group`` (treatment started). Callaway & Sant'Anna cells also
    carry ``members`` (n_units x n_cells: +1 treated, -1 comparison unit, 0 not used) and ``base``
    (the base period of each comparison), which the small-sample (CR2-type) adjustment and the
    Bell-McCaffrey degrees of freedom need (:mod:`coevidence.models.did._small`).
    """

    level: np.ndarray
    group: np.ndarray
    time: np.ndarray
    estimate: np.ndarray
    inf: np.ndarray
    n_treated: np.ndarray
    n_control: np.ndarray
    reference: np.ndarray  # True for a normalised reference cell (estimate fixed at 0)
    members: np.ndarray | None = None  # n_units x n_cells int8: +1 treated, -1 control, 0 out
    base: np.ndarray | None = None  # base period label of each cell (NaN for reference cells)

    @property
    def post(self) -> np.ndarray:
        return self.time >= self.group


def _ols(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.linalg.lstsq(X, y, rcond=None)[0]


def _logit(X: np.ndarray, d: np.ndarray, iters: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Logistic regression by Newton-Raphson; returns fitted probabilities and (X'WX/n)^-1."""
    beta = np.zeros(X.shape[1])
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(X @ beta)))
        W = p * (1 - p)
        H = (X * W[:, None]).T @ X
        step = np.linalg.solve(H, X.T @ (d - p))
        beta = beta + step
        if np.max(np.abs(step)) < 1e-12:
            break
    else:  # pragma: no cover - separation is reported below
        raise ModelSpecificationError(
            "propensity-score logit did not converge (perfect prediction?)"
        )
    p = 1 / (1 + np.exp(-(X @ beta)))
    H = (X * (p * (1 - p))[:, None]).T @ X
    return p, np.linalg.inv(H / len(d))


def _cell_if(
    dy: np.ndarray, D: np.ndarray, X: np.ndarray | None, method: str
) -> tuple[float, np.ndarray]:
    """ATT and its influence function (length n_sub) for one 2x2 comparison."""
    n = len(dy)
    if X is None or method == "unconditional":
        p1, p0 = D.mean(), 1 - D.mean()
        mu1 = dy[D == 1].mean()
        mu0 = dy[D == 0].mean()
        inf = D * (dy - mu1) / p1 - (1 - D) * (dy - mu0) / p0
        return mu1 - mu0, inf
    ctrl = D == 0
    beta = _ols(X[ctrl], dy[ctrl])
    out = X @ beta
    w_ols = 1 - D
    XpX_inv = np.linalg.inv((X * w_ols[:, None]).T @ X / n)
    lin_ols = (w_ols * (dy - out))[:, None] * X @ XpX_inv
    if method == "reg":
        w_t = D
        eta_t = np.mean(w_t * dy) / w_t.mean()
        eta_c = np.mean(w_t * out) / w_t.mean()
        inf_t = (w_t * dy - w_t * eta_t) / w_t.mean()
        inf_c1 = w_t * out - w_t * eta_c
        inf_c2 = lin_ols @ np.mean(w_t[:, None] * X, axis=0)
        inf = inf_t - (inf_c1 + inf_c2) / w_t.mean()
        return eta_t - eta_c, inf
    if method == "dr":
        ps, hess = _logit(X, D)
        ps = np.minimum(ps, 1 - 1e-6)
        w_t = D
        w_c = ps * (1 - D) / (1 - ps)
        resid = dy - out
        eta_t = np.mean(w_t * resid) / w_t.mean()
        eta_c = np.mean(w_c * resid) / w_c.mean()
        lin_ps = ((D - ps)[:, None] * X) @ hess
        inf_t = (
            w_t * resid - w_t * eta_t - lin_ols @ np.mean(w_t[:, None] * X, axis=0)
        ) / w_t.mean()
        m2 = np.mean((w_c * (resid - eta_c))[:, None] * X, axis=0)
        m3 = np.mean(w_c[:, None] * X, axis=0)
        inf_c = (w_c * resid - w_c * eta_c + lin_ps @ m2 - lin_ols @ m3) / w_c.mean()
        return eta_t - eta_c, inf_t - inf_c
    raise OptionError(f"est_method must be 'dr', 'reg' or 'unconditional', got {method!r}")


def cs_cells(
    Y: np.ndarray,
    G: np.ndarray,
    periods: np.ndarray,
    levels: np.ndarray,
    Xcov: np.ndarray | None,
    *,
    control: str,
    anticipation: int,
    base_period: str,
    est_method: str,
    weights: np.ndarray | None = None,
) -> Cells:
    """Group-time ATTs for a balanced panel.

    Parameters
    ----------
    Y : (n_units, T) outcomes; columns ordered as ``periods``.
    G : (n_units,) first treated period, ``np.inf`` for never treated.
    periods : (T,) sorted period labels (numeric).
    levels : (n_units,) ``by`` level of each unit ("" without ``by``).
    Xcov : (n_units, T, p) covariates (with an intercept column) or None.
    weights : (n_units,) unit weights or None (see :mod:`coevidence.models.did._weights`).
    """
    n, T = Y.shape
    cohorts = np.unique(G[np.isfinite(G)])
    cohorts = cohorts[
        cohorts > periods[0] + anticipation
    ]  # treated in the first period: dropped by caller
    out: dict[str, list] = {
        k: [] for k in ("level", "group", "time", "est", "inf", "n1", "n0", "ref", "mem", "base")
    }
    ulevels = list(dict.fromkeys(levels.tolist()))
    for lev in ulevels:
        for g in cohorts:
            treated = (G == g) & (levels == lev)
            if not treated.any():
                continue
            tindex = range(T) if base_period == "universal" else range(1, T)
            base_post = np.flatnonzero(periods + anticipation < g)
            if len(base_post) == 0:
                continue
            base_post = base_post[-1]
            for ti in tindex:
                t = periods[ti]
                post = g <= t
                b = base_post if (post or base_period == "universal") else ti - 1
                if base_period == "universal" and ti == b:
                    out["level"].append(lev), out["group"].append(g), out["time"].append(t)
                    out["est"].append(0.0), out["inf"].append(np.zeros(n))
                    (
                        out["n1"].append(int(treated.sum())),
                        out["n0"].append(0),
                        out["ref"].append(True),
                    )
                    out["mem"].append(np.zeros(n, dtype=np.int8)), out["base"].append(np.nan)
                    continue
                if control == "never_treated":
                    ctrl = ~np.isfinite(G)
                else:
                    later = periods[max(ti, b)] + anticipation
                    ctrl = (~np.isfinite(G) | (G > later)) & (G != g)
                if not ctrl.any():
                    raise ModelSpecificationError(
                        f"no {control.replace('_', '-')} comparison units for cohort {g:g} in period {t:g}"
                    )
                sub = treated | ctrl
                D = treated[sub].astype(float)
                dy = Y[sub, ti] - Y[sub, b]
                X = Xcov[sub, b, :] if Xcov is not None else None
                if weights is None:
                    att, inf_sub = _cell_if(dy, D, X, est_method)
                else:
                    att, inf_sub = weighted_reg_cell(dy, D, X, weights[sub])
                inf = np.zeros(n)
                inf[sub] = inf_sub * (n / sub.sum())
                out["level"].append(lev), out["group"].append(g), out["time"].append(t)
                out["est"].append(att), out["inf"].append(inf)
                (
                    out["n1"].append(int(treated.sum())),
                    out["n0"].append(int(ctrl.sum())),
                    out["ref"].append(False),
                )
                mem = np.zeros(n, dtype=np.int8)
                mem[treated] = 1
                mem[ctrl] = -1
                out["mem"].append(mem), out["base"].append(float(periods[b]))
    if not out["est"]:
        raise ModelSpecificationError(
            "no treated cohort has a pre-treatment period to compare against"
        )
    return Cells(
        level=np.array(out["level"], dtype=object),
        group=np.array(out["group"], dtype=float),
        time=np.array(out["time"], dtype=float),
        estimate=np.array(out["est"]),
        inf=np.column_stack(out["inf"]),
        n_treated=np.array(out["n1"]),
        n_control=np.array(out["n0"]),
        reference=np.array(out["ref"]),
        members=np.column_stack(out["mem"]),
        base=np.array(out["base"], dtype=float),
    )
