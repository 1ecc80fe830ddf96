"""The five panel estimators: transform the data, fit (linearmodels), return a :class:`PanelFit`.

Each ``fit_<estimator>`` takes the prepared :class:`PanelData` (rows sorted by unit and time,
integer codes for unit, time and cluster) and returns the coefficients together with the
*transformed* regressors and outcome (demeaned, quasi-demeaned, differenced or averaged) on which
every covariance estimator in :mod:`coevidence.models.panel.covariance` works, and the unit, time
and cluster code of every transformed row.

The group algebra used by the family lives here once: :func:`demean` (one-way),
:func:`demean_twoway` (exact two-way within transformation, unbalanced panels included),
:func:`dummies`, :func:`orth`, :func:`nested` and the rank rules (:data:`RANK_TOL`,
:func:`check_design`, :func:`check_rank`).

Random effects
--------------
Swamy-Arora variance components. On an unbalanced panel the default
``re_variance="baltagi_chang"`` follows plm (``random.method="swar"``, whose ``ercomp`` uses the
quadratic-form formulas of Baltagi & Chang 1994 with ``dfcor = 3``): ``sigma2_e`` is the
within-regression SSR over ``N - n - k_w``; ``sigma2_u = (q_B - (n - K - 1) sigma2_e) /
(N - tr[(Z_B'Z_B)^{-1} Z_S'Z])`` where ``q_B = sum_i T_i (ybar_i - zbar_i' b_B)^2`` are the
residuals of the between regression weighted by ``T_i`` (plm's ``"Between"`` model),
``Z_B`` the unit means and ``Z_S`` the unit sums on the rows. ``re_variance="harmonic_mean"``
is linearmodels' default (``RandomEffects.fit(small_sample=False)``): the unweighted regression
of the unit means and ``sigma2_u = SSR_B/(n - K - 1) - sigma2_e / T_harmonic``. The two coincide
on a balanced panel. ``theta_i = 1 - sqrt(sigma2_e / (T_i sigma2_u + sigma2_e))``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from coevidence.exceptions import ModelSpecificationError

__all__ = [
    "ESTIMATE",
    "RANK_TOL",
    "RE_VARIANCE",
    "PanelData",
    "PanelFit",
    "breusch_pagan",
    "check_design",
    "check_rank",
    "demean",
    "demean_twoway",
    "dummies",
    "nested",
    "orth",
]

#: Relative tolerance of every rank decision in the family (singular values, pivots, norms).
RANK_TOL = 1e-10

#: Random-effects variance-component conventions (see the module docstring).
RE_VARIANCE = ("baltagi_chang", "harmonic_mean")

_EFFECT_WORDS = {"unit": "unit", "time": "time", "twoway": "unit and time"}


# -- group algebra ------------------------------------------------------------------------------
def demean(a: np.ndarray, codes: np.ndarray, n: int) -> np.ndarray:
    """``a`` (rows x columns) minus its group means; ``codes`` in ``0..n-1``."""
    sums = np.zeros((n, a.shape[1]))
    np.add.at(sums, codes, a)
    counts = np.bincount(codes, minlength=n).astype(float)
    return a - (sums / counts[:, None])[codes]


def group_means(a: np.ndarray, codes: np.ndarray, n: int) -> np.ndarray:
    """Group means of ``a`` on the rows (``a - demean(a)``)."""
    return a - demean(a, codes, n)


def dummies(codes: np.ndarray, n: int) -> np.ndarray:
    """Indicator matrix (rows x n) of integer codes."""
    D = np.zeros((len(codes), n))
    D[np.arange(len(codes)), codes] = 1.0
    return D


def orth(a: np.ndarray) -> np.ndarray:
    """Orthonormal basis of the column space of ``a`` (singular values above :data:`RANK_TOL`)."""
    if a.shape[1] == 0:
        return a
    u, s, _ = np.linalg.svd(a, full_matrices=False)
    return u[:, s > RANK_TOL * max(1.0, s.max(initial=0.0))]


def time_dummies_within_unit(ucodes: np.ndarray, tcodes: np.ndarray, G: int, T: int) -> np.ndarray:
    """Period dummies demeaned within unit: the time effects left after the unit effects."""
    return demean(dummies(tcodes, T), ucodes, G)


def demean_twoway(
    a: np.ndarray, ucodes: np.ndarray, tcodes: np.ndarray, G: int, T: int
) -> np.ndarray:
    """Exact two-way within transformation (residuals on unit and period dummies)."""
    Td = time_dummies_within_unit(ucodes, tcodes, G, T)
    au = demean(a, ucodes, G)
    return au - Td @ np.linalg.lstsq(Td, au, rcond=None)[0]


def nested(inner: np.ndarray, outer: np.ndarray) -> bool:
    """Every ``inner`` code maps to exactly one ``outer`` code."""
    pairs = pd.DataFrame({"i": inner, "o": outer}).drop_duplicates()
    return not pairs["i"].duplicated().any()


def check_design(X: pd.DataFrame) -> None:
    """Name constant-zero or collinear regressors before the engine sees them."""
    A = X.to_numpy(dtype=float)
    zero = [c for c, v in zip(X.columns, np.abs(A).max(axis=0, initial=0.0), strict=True) if v == 0]
    if zero:
        raise ModelSpecificationError(f"regressor(s) {zero} are zero in every row used")
    if np.linalg.matrix_rank(A) < A.shape[1]:
        from scipy.linalg import qr

        _, R, piv = qr(A, mode="economic", pivoting=True)
        d = np.abs(np.diag(R))
        bad = [X.columns[piv[j]] for j in range(len(d)) if d[j] <= RANK_TOL * d[0]]
        raise ModelSpecificationError(
            f"regressors are collinear: {bad} are linear combinations of the others"
        )


def check_rank(Xt: np.ndarray, names: list[str], estimator: str, effects: str | None) -> None:
    """Refuse a transformed design with a column that vanished or with collinear columns."""
    scale = np.sqrt((Xt**2).sum(axis=0))
    for j, nm in enumerate(names):
        if scale[j] <= RANK_TOL * max(1.0, np.abs(Xt).max(initial=0.0)):
            what = _EFFECT_WORDS.get(effects or "", "")
            raise ModelSpecificationError(
                f"regressor {nm!r} has no variation left after the {estimator} transformation"
                + (f" (it is absorbed by the {what} effects)" if estimator == "within" else "")
            )
    if np.linalg.matrix_rank(Xt) < Xt.shape[1]:
        raise ModelSpecificationError(
            f"regressors {names} are collinear after the {estimator} transformation"
        )


def breusch_pagan(y: np.ndarray, X: np.ndarray, ucodes: np.ndarray, G: int) -> dict[str, float]:
    """Breusch-Pagan LM test for unit effects from pooled OLS residuals (plm ``plmtest``).

    Unbalanced panels use the Baltagi-Li (1990) form ``n^2 / (2 (sum T_i^2 - n))``, as plm.
    """
    b = np.linalg.lstsq(X, y, rcond=None)[0]
    u = y - X @ b
    s = np.bincount(ucodes, weights=u, minlength=G)
    Ti = np.bincount(ucodes, minlength=G).astype(float)
    n = len(y)
    lm = n**2 / (2 * (np.sum(Ti**2) - n)) * (np.sum(s**2) / (u @ u) - 1) ** 2
    return {"statistic": float(lm), "df": 1, "p_value": float(stats.chi2.sf(lm, 1))}


# -- containers -----------------------------------------------------------------------------------
@dataclass
class PanelData:
    """Complete rows sorted by unit and time, with integer codes (built by ``fit_panel``)."""

    y: np.ndarray
    slopes: pd.DataFrame  # regressors without the intercept column
    want_const: bool
    ucodes: np.ndarray
    tcodes: np.ndarray
    ccodes: np.ndarray | None
    n_units: int
    n_periods: int
    unit: str
    time: str
    outcome: str
    w: np.ndarray | None = None  # fit_panel(weights=): one weight per row (see _weights.py)

    @property
    def index(self) -> pd.MultiIndex:
        return pd.MultiIndex.from_arrays([self.ucodes, self.tcodes], names=[self.unit, self.time])

    def with_const(self, frame: pd.DataFrame) -> pd.DataFrame:
        if not self.want_const:
            return frame
        return pd.concat([pd.DataFrame({"Intercept": 1.0}, index=frame.index), frame], axis=1)


@dataclass
class PanelFit:
    """Coefficients and the transformed data every covariance estimator uses."""

    estimator: str
    effects: str | None
    names: list[str]
    beta: np.ndarray
    Xt: np.ndarray
    yt: np.ndarray
    row_units: np.ndarray
    row_times: np.ndarray
    row_clusters: np.ndarray | None
    df_resid: int
    engine: object
    Xraw: np.ndarray | None = None  # original-scale design and outcome (random effects CR2)
    yraw: np.ndarray | None = None
    sigma2: tuple[float, float] | None = None  # (unit, idiosyncratic) for random effects
    rsquared: dict[str, float] = field(default_factory=dict)
    tests: dict[str, dict[str, float]] = field(default_factory=dict)
    variance_components: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    n_dropped_differencing: int = 0

    @property
    def resid(self) -> np.ndarray:
        return self.yt - self.Xt @ self.beta


def _engine_r2(res: object, *names: str) -> dict[str, float]:
    out = {}
    for name in names:
        val = getattr(res, name, np.nan)
        out[name] = float(val) if val is not None else float("nan")
    return out


def _finish(pdata: PanelData, estimator: str, effects: str | None, res: object, Xt, yt, **kw):
    names = list(res.params.index)  # type: ignore[attr-defined]
    check_rank(Xt, names, estimator, effects)
    kw.setdefault("rsquared", _engine_r2(res, "rsquared", "rsquared_within", "rsquared_between",
                                          "rsquared_overall"))
    kw.setdefault("row_units", pdata.ucodes)
    kw.setdefault("row_times", pdata.tcodes)
    kw.setdefault("row_clusters", pdata.ccodes)
    return PanelFit(
        estimator=estimator,
        effects=effects,
        names=names,
        beta=res.params.to_numpy(dtype=float),  # type: ignore[attr-defined]
        Xt=Xt,
        yt=yt,
        df_resid=int(res.df_resid),  # type: ignore[attr-defined]
        engine=res,
        **kw,
    )


# -- estimators -----------------------------------------------------------------------------------
def fit_within(pdata: PanelData, effects: str, **_: object) -> PanelFit:
    """Within (fixed effects) by unit, time or both; exact on unbalanced panels."""
    from linearmodels import PanelOLS
    from linearmodels.panel.utility import AbsorbingEffectError

    slopes = pdata.slopes
    if slopes.shape[1] == 0:
        raise ModelSpecificationError("estimator='within' needs at least one regressor")
    idx = pdata.index
    try:
        res = PanelOLS(
            pd.Series(pdata.y, index=idx, name=pdata.outcome),
            slopes.set_index(idx),
            entity_effects=effects in ("unit", "twoway"),
            time_effects=effects in ("time", "twoway"),
        ).fit()
    except AbsorbingEffectError as exc:
        absorbed = [c for c in slopes.columns
                    if c in str(exc).split("after effects are removed:")[-1]]
        raise ModelSpecificationError(
            f"regressor(s) {absorbed} have no variation left: absorbed by the "
            f"{_EFFECT_WORDS[effects]} effects"
        ) from exc
    X, y = slopes.to_numpy(dtype=float), pdata.y[:, None]
    G, T, u, t = pdata.n_units, pdata.n_periods, pdata.ucodes, pdata.tcodes
    if effects == "unit":
        Xt, yt = demean(X, u, G), demean(y, u, G)[:, 0]
    elif effects == "time":
        Xt, yt = demean(X, t, T), demean(y, t, T)[:, 0]
    else:
        Xt, yt = demean_twoway(X, u, t, G, T), demean_twoway(y, u, t, G, T)[:, 0]
    tests = {}
    if effects == "unit":
        fp = res.f_pooled
        tests["F_pooled"] = {"statistic": float(fp.stat), "df": (int(fp.df), int(fp.df_denom)),
                             "p_value": float(fp.pval)}
    return _finish(pdata, "within", effects, res, Xt, yt, tests=tests)


def fit_random(pdata: PanelData, effects: str, re_variance: str = "baltagi_chang",
               **_: object) -> PanelFit:
    """GLS on quasi-demeaned data with Swamy-Arora variance components (see module docstring)."""
    from linearmodels import RandomEffects

    idx = pdata.index
    Xl = pdata.with_const(pdata.slopes).set_index(idx)
    res = RandomEffects(pd.Series(pdata.y, index=idx, name=pdata.outcome), Xl).fit(
        small_sample=re_variance == "baltagi_chang"
    )
    G, u, y = pdata.n_units, pdata.ucodes, pdata.y
    Xraw = Xl.to_numpy(dtype=float)
    theta = res.theta.iloc[:, 0].reindex(np.arange(G)).to_numpy(dtype=float)
    th = theta[u]
    Xt = Xraw - th[:, None] * group_means(Xraw, u, G)
    yt = y - th * group_means(y[:, None], u, G)[:, 0]
    vd = res.variance_decomposition
    s2u, s2e = float(vd["Effects"]), float(vd["Residual"])
    vcomp = {"sigma2_unit": s2u, "sigma2_idiosyncratic": s2e,
             "rho": float(vd["Percent due to Effects"])}
    if np.ptp(theta) < 1e-12:
        vcomp["theta"] = float(theta[0])
    else:
        vcomp["theta_min"], vcomp["theta_max"] = float(theta.min()), float(theta.max())
    r2 = _engine_r2(res, "rsquared_within", "rsquared_between", "rsquared_overall")
    # plm's R^2 of a random-effects fit: squared correlation of the transformed outcome with its
    # fitted values (equal to 1 - SSR/TSS when theta is the same for every unit)
    fitted = Xt @ res.params.to_numpy(dtype=float)
    r2["rsquared"] = float(np.corrcoef(yt, fitted)[0, 1] ** 2)
    notes = [f"random-effects variance components: Swamy-Arora, re_variance={re_variance!r}"]
    return _finish(
        pdata, "random", effects, res, Xt, yt, Xraw=Xraw, yraw=y, sigma2=(s2u, s2e), rsquared=r2,
        variance_components=vcomp, notes=notes,
        tests={"breusch_pagan": breusch_pagan(y, Xraw, u, G)},
    )


def fit_first_difference(pdata: PanelData, effects: str, **_: object) -> PanelFit:
    """OLS on differences of consecutive periods within unit (with an intercept, as plm)."""
    from linearmodels import PooledOLS

    u, t, y = pdata.ucodes, pdata.tcodes, pdata.y
    Xs = pdata.slopes.to_numpy(dtype=float)
    prev, tprev = np.r_[-1, u[:-1]], np.r_[-1, t[:-1]]
    keep = (prev == u) & (tprev == t - 1)
    notes = []
    gaps = int(((prev == u) & (tprev != t - 1)).sum())
    if gaps:
        notes.append(f"{gaps} rows follow a gap in {pdata.time!r} and have no first difference")
    dy = (y - np.r_[np.nan, y[:-1]])[keep]
    dX = (Xs - np.vstack([np.full((1, Xs.shape[1]), np.nan), Xs[:-1]]))[keep]
    frame = pdata.with_const(pd.DataFrame(dX, columns=pdata.slopes.columns))
    fidx = pd.MultiIndex.from_arrays([u[keep], t[keep]], names=[pdata.unit, pdata.time])
    res = PooledOLS(pd.Series(dy, index=fidx), frame.set_index(fidx)).fit()
    cl = pdata.ccodes[keep] if pdata.ccodes is not None else None
    return _finish(
        pdata, "first_difference", effects, res, frame.to_numpy(), dy, row_units=u[keep],
        row_times=t[keep], row_clusters=cl, notes=notes,
        n_dropped_differencing=int((~keep).sum()),
        rsquared={"rsquared": float(res.rsquared), "rsquared_within": float("nan"),
                  "rsquared_between": float("nan"), "rsquared_overall": float("nan")},
    )


def fit_between(pdata: PanelData, effects: str, **_: object) -> PanelFit:
    """OLS on unit means (one row per unit)."""
    from linearmodels import BetweenOLS

    idx = pdata.index
    Xl = pdata.with_const(pdata.slopes).set_index(idx)
    res = BetweenOLS(pd.Series(pdata.y, index=idx, name=pdata.outcome), Xl).fit()
    G, u = pdata.n_units, pdata.ucodes
    counts = np.bincount(u, minlength=G).astype(float)
    Xt = np.zeros((G, Xl.shape[1]))
    np.add.at(Xt, u, Xl.to_numpy(dtype=float))
    Xt /= counts[:, None]
    yt = np.bincount(u, weights=pdata.y, minlength=G) / counts
    first = np.unique(u, return_index=True)[1]
    # one row per unit: its cluster is that of its rows when units are nested in clusters
    cl = None
    if pdata.ccodes is not None and nested(u, pdata.ccodes):
        cl = pdata.ccodes[first]
    return _finish(pdata, "between", effects, res, Xt, yt, row_units=np.arange(G),
                   row_times=np.full(G, -1), row_clusters=cl)


def fit_pooled(pdata: PanelData, effects: None, **_: object) -> PanelFit:
    """Pooled OLS."""
    from linearmodels import PooledOLS

    idx = pdata.index
    Xl = pdata.with_const(pdata.slopes).set_index(idx)
    res = PooledOLS(pd.Series(pdata.y, index=idx, name=pdata.outcome), Xl).fit()
    return _finish(pdata, "pooled", effects, res, Xl.to_numpy(dtype=float), pdata.y)


#: Estimator name -> fitting function (the dispatch table of :func:`coevidence.fit_panel`).
ESTIMATE: dict[str, Callable[..., PanelFit]] = {
    "within": fit_within,
    "random": fit_random,
    "first_difference": fit_first_difference,
    "between": fit_between,
    "pooled": fit_pooled,
}
