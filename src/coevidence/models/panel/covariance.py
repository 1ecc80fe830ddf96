"""Covariance estimators of the panel family, on the transformed data of a :class:`PanelFit`.

=====================  ===========================================================================
``"unadjusted"``       classical: ``s^2 (X'X)^{-1}`` with ``s^2 = SSR / residual df``
``"robust"``           White HC0/HC1 on the transformed data
``"clustered"``        CR1 by a cluster column with a named small-sample factor
``"cr2"``              Bell-McCaffrey CR2 with Satterthwaite df (:mod:`coevidence.models._shared`)
``"wild_bootstrap"``   CR1 SEs; restricted wild cluster bootstrap p-values, bootstrap-t intervals
``"driscoll_kraay"``   Driscoll-Kraay (1998): periods as clusters plus Bartlett-weighted
                       cross-period covariances up to ``maxlag`` (plm ``vcovSCC``)
=====================  ===========================================================================

The shared sandwich algebra (cluster meat, CR2, wild bootstrap) lives in
:mod:`coevidence.models._shared.covariance`; this module decides which pieces a panel fit uses,
the small-sample factor and the reference distribution, and adds Driscoll-Kraay.

Driscoll-Kraay
--------------
With ``h_t = sum_i x~_it e~_it`` (the score of period ``t``, summed over the units observed then)
the meat is ``S = sum_t h_t h_t' + sum_{j=1}^{L} w_j sum_t (h_t h_{t-j}' + h_{t-j} h_t')`` with
``w_j = 1 - j/(L+1)``, and ``V = c (X~'X~)^{-1} S (X~'X~)^{-1}``. Lags count positions in the
sorted periods present in the data used, as plm does (a period nobody is observed in is skipped).
``L = maxlag`` defaults to ``floor(max_i T_i^(1/4))`` (plm ``maxlag = NULL``; ``T_i`` rows of unit
``i``). The factor ``c`` is 1 by default (plm ``type="HC0"``, its default); ``small_sample=
"plm_hc1"`` gives ``N/(N-k)`` and ``"plm_sss"`` ``T/(T-1) (N-1)/(N-k)`` (plm ``type="HC1"`` and
``"sss"``, T the number of periods). Tests use t(residual df) (normal for random effects), as
``lmtest::coeftest`` on a plm fit.
"""

from __future__ import annotations

import inspect
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from coevidence.exceptions import FewClustersWarning, ModelSpecificationError, OptionError
from coevidence.models._shared import covariance as pc
from coevidence.models.panel._estimators import (
    PanelFit,
    dummies,
    nested,
    orth,
    time_dummies_within_unit,
)

__all__ = [
    "COV_TYPES",
    "DK_SMALL_SAMPLE",
    "FEW_CLUSTERS",
    "CovEstimate",
    "default_maxlag",
    "driscoll_kraay_meat",
    "estimate_cov",
]

#: Below this many clusters a FewClustersWarning is issued for cov_type="clustered" (Angrist &
#: Pischke's rule of thumb of ~42; CR1 t-tests over-reject badly with fewer).
FEW_CLUSTERS = 42

COV_TYPES = ("unadjusted", "robust", "clustered", "cr2", "wild_bootstrap", "driscoll_kraay")

#: Covariance types that cluster (take ``cluster=``).
CLUSTERED = ("clustered", "cr2", "wild_bootstrap")

#: small_sample conventions Driscoll-Kraay accepts (plm vcovSCC types HC0, HC1, sss).
DK_SMALL_SAMPLE = ("none", "plm_hc1", "plm_sss")

_SATTERTHWAITE = "Satterthwaite (Bell-McCaffrey / Pustejovsky-Tipton) per coefficient"


@dataclass
class CovEstimate:
    """A covariance matrix, its per-coefficient df and how both were obtained."""

    V: np.ndarray
    df: np.ndarray
    df_method: str
    n_clusters: int | None = None
    few_clusters: bool = False
    bootstrap: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class CovOptions:
    """Resolved covariance options (built by ``fit_panel``)."""

    cov_type: str
    small_sample: str
    cluster: str | None
    unit: str
    conf_level: float
    bootstrap_reps: int = 999
    bootstrap_weights: str = "rademacher"
    seed: Any = None
    maxlag: int | None = None
    n_rows: int = 0  # N: complete rows before any transformation
    max_Ti: int = 1


def _caller_level() -> int:
    """``stacklevel`` of the first frame outside coevidence (the user's call of fit_panel)."""
    frame, level = inspect.currentframe(), 0
    while frame is not None and frame.f_globals.get("__name__", "").startswith("coevidence"):
        frame, level = frame.f_back, level + 1
    return max(level, 1)


def _base_df(fit: PanelFit) -> tuple[np.ndarray, str]:
    """plm: t(residual df), except random effects, which are tested against the normal."""
    k = len(fit.beta)
    if fit.estimator == "random":
        return np.full(k, np.inf), "normal (z)"
    return np.full(k, float(fit.df_resid)), f"t with residual df ({fit.df_resid})"


def unadjusted(fit: PanelFit, opts: CovOptions) -> CovEstimate:
    """Classical covariance (the engine's, ``s^2 (X~'X~)^{-1}``)."""
    df, how = _base_df(fit)
    return CovEstimate(fit.engine.cov.to_numpy(), df, how)  # type: ignore[attr-defined]


def robust(fit: PanelFit, opts: CovOptions) -> CovEstimate:
    """White HC0 (``small_sample="none"``) or HC1 (n / residual df) on the transformed data."""
    X, e = fit.Xt, fit.resid
    M = np.linalg.pinv(X.T @ X)
    meat = (X * e[:, None]).T @ (X * e[:, None])
    factor = 1.0 if opts.small_sample == "none" else len(e) / fit.df_resid
    df, how = _base_df(fit)
    return CovEstimate(factor * M @ meat @ M, df, how)


def _cluster_codes(fit: PanelFit, opts: CovOptions) -> tuple[np.ndarray, int]:
    if fit.row_clusters is None:  # between: units not nested in clusters
        raise ModelSpecificationError(
            f"between estimator: each {opts.unit} must belong to one {opts.cluster}"
        )
    G = int(fit.row_clusters.max()) + 1
    if G < 2:
        raise ModelSpecificationError(
            f"cluster-robust covariance needs at least 2 clusters; {opts.cluster!r} has {G}"
        )
    return fit.row_clusters, G


def cluster_factor(fit: PanelFit, opts: CovOptions, G: int, unit_nested: bool) -> float:
    """The small-sample factor of a CR1 covariance (see :data:`~coevidence.models._shared.
    covariance.SMALL_SAMPLE`); K counts the constant and fixed effects not nested in clusters."""
    n_t, k = fit.Xt.shape
    unit_fe = fit.estimator == "within" and fit.effects in ("unit", "twoway")
    time_fe = fit.estimator == "within" and fit.effects in ("time", "twoway")
    K = k + (1 if unit_fe or time_fe else 0)
    if unit_fe and not unit_nested:
        K += int(fit.row_units.max()) + 1 - 1
    if time_fe:
        K += int(fit.row_times.max()) + 1 - 1
    return {
        "none": 1.0,
        "plm_hc1": n_t / (opts.n_rows - k),
        "plm_sss": G / (G - 1) * (n_t - 1) / (n_t - k),
        "stata": G / (G - 1) * (n_t - 1) / (n_t - K),
        "fixest_crv1": G / (G - 1) * (n_t - 1) / (n_t - K),
    }[opts.small_sample]


def clustered(fit: PanelFit, opts: CovOptions) -> CovEstimate:
    """CR1 (and the wild cluster bootstrap, which reports CR1 standard errors)."""
    codes, G = _cluster_codes(fit, opts)
    few = G < FEW_CLUSTERS
    if few and opts.cov_type == "clustered":
        warnings.warn(
            f"only {G} clusters in {opts.cluster!r} (< {FEW_CLUSTERS}); CR1 cluster-robust tests "
            "over-reject with few clusters: consider cov_type='cr2' or cov_type='wild_bootstrap'",
            FewClustersWarning,
            stacklevel=_caller_level(),
        )
    unit_nested = nested(fit.row_units, codes)
    factor = cluster_factor(fit, opts, G, unit_nested)
    X, e = fit.Xt, fit.resid
    M = np.linalg.pinv(X.T @ X)
    V = factor * M @ pc.cluster_meat(X, e, codes, G) @ M
    if opts.small_sample in ("stata", "fixest_crv1"):
        df, how = np.full(len(fit.beta), G - 1, dtype=float), f"t with G - 1 = {G - 1} df"
    else:
        df, how = _base_df(fit)
    out = CovEstimate(V, df, how, n_clusters=G, few_clusters=few)
    if opts.cov_type == "wild_bootstrap":
        boot = pc.wild_cluster_bootstrap(
            X, fit.yt, codes, G, reps=opts.bootstrap_reps, weights=opts.bootstrap_weights,
            seed=opts.seed, factor=factor, conf_level=opts.conf_level,
        )
        boot["conf_level"] = opts.conf_level
        out.bootstrap = boot
        out.df_method = (
            f"restricted wild cluster bootstrap ({opts.bootstrap_reps} draws, "
            f"{opts.bootstrap_weights} weights) p-values; unrestricted bootstrap-t intervals"
        )
        out.notes.append(f"wild bootstrap seed: {opts.seed!r}")
    return out


def _absorbed_basis(fit: PanelFit) -> np.ndarray:
    """Orthonormal basis of the full design (absorbed effects included): CR2's ``H = Q Q'``."""
    u, t = fit.row_units, fit.row_times
    blocks = []
    if fit.estimator == "within" and fit.effects in ("unit", "twoway"):
        G = int(u.max()) + 1
        D = dummies(u, G)
        blocks.append(D / np.sqrt(D.sum(axis=0)))
        if fit.effects == "twoway":
            blocks.append(orth(time_dummies_within_unit(u, t, G, int(t.max()) + 1)))
    elif fit.estimator == "within":
        D = dummies(t, int(t.max()) + 1)
        blocks.append(D / np.sqrt(D.sum(axis=0)))
    blocks.append(orth(fit.Xt))
    return np.hstack(blocks)


def cr2(fit: PanelFit, opts: CovOptions) -> CovEstimate:
    """CR2 with Satterthwaite df; random effects use the fitted components as working model."""
    codes, G = _cluster_codes(fit, opts)
    if fit.estimator == "random":
        if not nested(fit.row_units, codes):
            raise ModelSpecificationError(
                f"cov_type='cr2' with random effects needs each {opts.unit} inside one "
                f"{opts.cluster}"
            )
        assert fit.sigma2 is not None and fit.Xraw is not None
        s2u, s2e = fit.sigma2
        phis = []
        for g in range(G):
            same = fit.row_units[codes == g]
            phis.append(s2e * np.eye(len(same)) + s2u * (same[:, None] == same[None, :]))
        assert fit.yraw is not None
        V, df = pc.cr2_gls(fit.Xraw, fit.yraw - fit.Xraw @ fit.beta, codes, G, phis)
    else:
        V, df = pc.cr2(fit.Xt, fit.resid, codes, G, _absorbed_basis(fit))
    return CovEstimate(V, df, _SATTERTHWAITE, n_clusters=G, few_clusters=G < FEW_CLUSTERS)


def default_maxlag(max_Ti: int) -> int:
    """plm ``vcovSCC``'s default lag: ``floor(max_i T_i^(1/4))``.

    Examples
    --------
    >>> default_maxlag(20), default_maxlag(9), default_maxlag(16)
    (2, 1, 2)
    """
    # integer arithmetic guards against 16 ** 0.25 = 1.9999...
    lag = math.floor(max_Ti**0.25)
    while (lag + 1) ** 4 <= max_Ti:
        lag += 1
    while lag > 0 and lag**4 > max_Ti:
        lag -= 1
    return lag


def driscoll_kraay_meat(
    X: np.ndarray, e: np.ndarray, tcodes: np.ndarray, n_periods: int, maxlag: int
) -> np.ndarray:
    """Driscoll-Kraay meat: period score sums with Bartlett-weighted cross-period terms.

    ``tcodes`` are 0-based positions of each row's period among the ``n_periods`` periods.

    Examples
    --------
    >>> X = np.ones((4, 1)); e = np.array([1.0, -1.0, 2.0, 0.0])
    >>> driscoll_kraay_meat(X, e, np.array([0, 1, 2, 3]), 4, 0)   # lag 0: sum of h_t^2
    array([[6.]])
    """
    H = np.zeros((n_periods, X.shape[1]))
    np.add.at(H, tcodes, X * e[:, None])
    S = H.T @ H
    for j in range(1, maxlag + 1):
        Gj = H[j:].T @ H[:-j]
        S += (1.0 - j / (maxlag + 1.0)) * (Gj + Gj.T)
    return S


def driscoll_kraay(fit: PanelFit, opts: CovOptions) -> CovEstimate:
    """Driscoll-Kraay standard errors (plm ``vcovSCC``); see the module docstring."""
    if fit.estimator == "between":
        raise OptionError(
            "cov_type='driscoll_kraay' needs rows over time; the between estimator has one row "
            "per unit (plm's vcovSCC refuses it as well)"
        )
    times = np.unique(fit.row_times)
    tpos = np.searchsorted(times, fit.row_times)
    T = len(times)
    lag = default_maxlag(opts.max_Ti) if opts.maxlag is None else opts.maxlag
    if lag >= T:
        raise OptionError(f"maxlag must be below the number of periods ({T}); got {lag}")
    X, e = fit.Xt, fit.resid
    n_t, k = X.shape
    factor = {
        "none": 1.0,
        "plm_hc1": n_t / (opts.n_rows - k),
        "plm_sss": T / (T - 1) * (n_t - 1) / (n_t - k) if T > 1 else float("nan"),
    }[opts.small_sample]
    M = np.linalg.pinv(X.T @ X)
    V = factor * M @ driscoll_kraay_meat(X, e, tpos, T, lag) @ M
    df, how = _base_df(fit)
    note = (f"Driscoll-Kraay: maxlag={lag}"
            + (" (default floor(max T_i^(1/4)))" if opts.maxlag is None else "")
            + f", Bartlett weights, {T} periods, small_sample={opts.small_sample!r}")
    return CovEstimate(V, df, how, notes=[note])


_COVARIANCE = {
    "unadjusted": unadjusted,
    "robust": robust,
    "clustered": clustered,
    "wild_bootstrap": clustered,
    "cr2": cr2,
    "driscoll_kraay": driscoll_kraay,
}


def estimate_cov(fit: PanelFit, opts: CovOptions) -> CovEstimate:
    """The covariance ``opts.cov_type`` of a panel fit (the dispatch of :func:`fit_panel`)."""
    return _COVARIANCE[opts.cov_type](fit, opts)
