"""Rubin's rules: pool the fits of one model on multiply imputed data sets.

:func:`pool` takes the results of the same model fitted to each of ``m`` completed data sets
(any coevidence result: mixed, panel, event study, contrasts, or any
:class:`~coevidence.results.base.ResultBase` with a ``tidy()``; also bare ``tidy()`` frames) and
returns a :class:`PooledResult`. The formulas are those of R ``mice::pool`` (rule
``"rubin1987"``) and ``mice::pool.scalar``:

- ``qbar`` = mean of the estimates, ``ubar`` = mean of the squared SEs (within variance),
  ``b`` = variance of the estimates over imputations (between variance, divisor ``m - 1``),
  ``t = ubar + (1 + 1/m) b`` (total variance; the pooled SE is ``sqrt(t)``);
- ``riv = (1 + 1/m) b / ubar`` (relative increase in variance), ``lambda = (1 + 1/m) b / t``
  (proportion of the variance due to the missing data), ``fmi = (riv + 2/(df + 3)) / (riv + 1)``;
- df: Barnard & Rubin (1999). With ``lambda`` floored at ``1e-4``, ``df_old = (m - 1) /
  lambda^2``, ``df_obs = (v + 1)/(v + 3) v (1 - lambda)`` with complete-data df ``v``;
  ``df = df_old df_obs / (df_old + df_obs)``, or ``df_old`` (Rubin's 1987 df) when ``v`` is
  infinite.

The complete-data df ``v`` of each term is, unless ``dfcom=`` is given, the df each result
reports for that term (residual, Satterthwaite, Bell-McCaffrey, ``G - 1``; averaged over the
imputations when they differ, as Satterthwaite df do), and infinite when the results use z
tests. ``mice`` uses the residual df of an ``lm`` fit, which is what a coevidence fit with
classical or residual-df inference reports, so the numbers agree exactly
(``tests/fixtures/missing/make_pooling.R``).

:meth:`PooledResult.wald` is the multivariate pooled Wald test ``D1`` (Li, Raghunathan & Rubin
1991) of several terms, with the denominator df of Reiter (2007) when the complete-data df are
finite and of Li et al. when they are infinite, as ``mitml::testModels(method = "D1")`` and
``mice::D1``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from coevidence.exceptions import CoevidenceWarning, OptionError
from coevidence.results.base import (
    ResultBase,
    freeze,
    glance_frame,
    read_only,
    tidy_frame,
)

__all__ = ["POOLING_COLUMNS", "PooledResult", "barnard_rubin", "pool", "pool_scalar"]

#: Columns ``PooledResult.tidy(pooling=True)`` adds after :data:`TIDY_COLUMNS`.
POOLING_COLUMNS = ("riv", "lambda", "fmi", "ubar", "b", "t", "m", "dfcom")


def barnard_rubin(m: int, b: Any, t: Any, dfcom: Any = np.inf) -> np.ndarray:
    """Barnard-Rubin (1999) degrees of freedom of a pooled estimate (as ``mice:::barnard.rubin``).

    Parameters
    ----------
    m : int
        Number of imputations.
    b, t : array_like
        Between-imputation and total variance.
    dfcom : array_like, default inf
        Complete-data degrees of freedom; infinite gives Rubin's (1987) ``(m - 1) / lambda^2``.

    Examples
    --------
    >>> round(float(barnard_rubin(5, 1.0, 3.0, dfcom=20)), 4)
    7.6179
    """
    b = np.asarray(b, dtype=float)
    t = np.asarray(t, dtype=float)
    dfcom = np.broadcast_to(np.asarray(dfcom, dtype=float), np.broadcast(b, t).shape)
    lam = np.maximum((1 + 1 / m) * b / t, 1e-4)
    dfold = (m - 1) / lam**2
    with np.errstate(invalid="ignore", over="ignore"):
        dfobs = (dfcom + 1) / (dfcom + 3) * dfcom * (1 - lam)
        out = np.where(np.isinf(dfcom), dfold, dfold * dfobs / (dfold + dfobs))
    return out


def pool_scalar(q: Sequence[float], u: Sequence[float], *, dfcom: float = np.inf) -> dict:
    """Rubin's rules for one scalar: estimates ``q`` and their variances ``u`` over imputations.

    As ``mice::pool.scalar(Q, U, n, k)`` with ``dfcom = n - k``.

    Returns
    -------
    dict
        ``m, qbar, ubar, b, t, std_error, df, riv, lambda, fmi``.

    Examples
    --------
    >>> r = pool_scalar([1.2, 0.9, 1.5], [0.1, 0.12, 0.09])
    >>> round(r["qbar"], 3), round(r["t"], 4)
    (1.2, 0.2233)
    """
    q = np.asarray(q, dtype=float)
    u = np.asarray(u, dtype=float)
    if q.ndim != 1 or q.shape != u.shape or len(q) < 2:
        raise OptionError(f"q and u must be two vectors of the same length >= 2, got {q.shape} "
                          f"and {u.shape}")
    m = len(q)
    qbar, ubar, b = float(q.mean()), float(u.mean()), float(q.var(ddof=1))
    t = ubar + (1 + 1 / m) * b
    df = float(barnard_rubin(m, b, t, dfcom))
    riv = (1 + 1 / m) * b / ubar
    return {"m": m, "qbar": qbar, "ubar": ubar, "b": b, "t": t, "std_error": math.sqrt(t),
            "df": df, "riv": riv, "lambda": (1 + 1 / m) * b / t,
            "fmi": (riv + 2 / (df + 3)) / (riv + 1)}


# ----------------------------------------------------------------------------- extraction
def _one(res: Any, i: int) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray,
                                    np.ndarray | None, dict]:
    """Terms, estimates, SEs, df, covariance (or None) and glance row of one result."""
    if isinstance(res, pd.DataFrame):
        tidy = res
        glance: dict = {}
    elif hasattr(res, "tidy"):
        tidy = res.tidy()
        try:
            glance = res.glance().iloc[0].to_dict()
        except Exception:  # noqa: BLE001 - glance is optional for pooling
            glance = {}
    else:
        raise OptionError(f"results[{i}] is a {type(res).__name__}: pool() needs fitted results "
                          "with a tidy() method (or tidy() frames)")
    missing = [c for c in ("term", "estimate", "std_error") if c not in tidy.columns]
    if missing:
        raise OptionError(f"results[{i}]: the tidy() frame has no column(s) {missing}")
    terms = [str(t) for t in tidy["term"]]
    if len(set(terms)) != len(terms):
        dup = sorted({t for t in terms if terms.count(t) > 1})
        raise OptionError(f"results[{i}]: duplicated term(s) {dup}; pool() matches terms by name")
    est = tidy["estimate"].to_numpy(dtype=float)
    se = tidy["std_error"].to_numpy(dtype=float)
    df = (tidy["df"].to_numpy(dtype=float) if "df" in tidy.columns
          else np.full(len(terms), np.inf))
    cov = None
    for name in ("vcov", "cov"):
        V = getattr(res, name, None) if not isinstance(res, pd.DataFrame) else None
        if isinstance(V, pd.DataFrame):
            idx = [str(c) for c in V.index]
            if set(terms) <= set(idx):
                V = V.copy()
                V.index, V.columns = idx, [str(c) for c in V.columns]
                cov = V.loc[terms, terms].to_numpy(dtype=float)
                break
    return terms, est, se, df, cov, glance


def pool(
    results: Sequence[Any],
    *,
    dfcom: float | Sequence[float] | None = None,
    conf_level: float | None = None,
) -> PooledResult:
    """Pool fits of one model on ``m`` imputed data sets with Rubin's rules (``mice::pool``).

    Parameters
    ----------
    results : sequence of results
        The same model fitted to each completed data set (``Imputations.fit`` returns such a
        list): any coevidence result with ``tidy()`` (mixed, panel, event study, contrasts,
        effect tables) or ``tidy()`` frames. Terms are matched by name and must be the same in
        every result. At least two.
    dfcom : float or sequence of float, optional
        Complete-data df (one value, or one per term). Default: each term's df in the results
        (their mean over imputations), infinite for z tests; ``numpy.inf`` gives Rubin's (1987)
        df. ``mice::pool`` takes the residual df of the model.
    conf_level : float, optional
        Confidence level of the pooled intervals (default: that of the first result).

    Returns
    -------
    PooledResult
        ``tidy()`` with Barnard-Rubin df; ``tidy(pooling=True)`` adds ``riv``, ``lambda``,
        ``fmi``, ``ubar``, ``b``, ``t``, ``m``, ``dfcom``; ``wald(terms)`` is the ``D1`` test.

    Examples
    --------
    >>> import pandas as pd
    >>> fits = [pd.DataFrame({"term": ["x"], "estimate": [e], "std_error": [0.3], "df": [30.0]})
    ...         for e in (1.0, 1.2, 0.9, 1.1, 1.3)]
    >>> p = pool(fits)
    >>> round(float(p.tidy()["estimate"].iloc[0]), 2), round(float(p.tidy()["df"].iloc[0]), 2)
    (1.1, 15.89)
    """
    results = list(results)
    if len(results) < 2:
        raise OptionError(f"pool() needs at least two results (one per imputation), "
                          f"got {len(results)}")
    parts = [_one(r, i) for i, r in enumerate(results)]
    terms = parts[0][0]
    for i, p in enumerate(parts[1:], start=1):
        if p[0] != terms:
            extra = sorted(set(p[0]) - set(terms))
            lost = sorted(set(terms) - set(p[0]))
            if extra or lost:
                raise OptionError(
                    f"results[{i}] has different terms from results[0]: extra {extra}, "
                    f"missing {lost}; pool fits of the same model")
    order = [[p[0].index(t) for t in terms] for p in parts]
    Q = np.array([p[1][o] for p, o in zip(parts, order, strict=True)])  # m x k
    SE = np.array([p[2][o] for p, o in zip(parts, order, strict=True)])
    DF = np.array([p[3][o] for p, o in zip(parts, order, strict=True)])
    covs = [p[4] for p in parts]
    U = None
    if all(c is not None for c in covs):
        U = np.array([c[np.ix_(o, o)] for c, o in zip(covs, order, strict=True)])
    if not np.isfinite(Q).all() or not np.isfinite(SE).all():
        bad = [terms[j] for j in range(len(terms))
               if not (np.isfinite(Q[:, j]).all() and np.isfinite(SE[:, j]).all())]
        warnings.warn(f"pool(): term(s) {bad} have a missing estimate or SE in some imputation; "
                      "their pooled values are NaN", CoevidenceWarning, stacklevel=2)
    if dfcom is None:
        with np.errstate(invalid="ignore"):
            v = np.where(np.isfinite(DF).all(axis=0), DF.mean(axis=0), np.inf)
        v = np.where(np.isnan(DF).any(axis=0), np.inf, v)
        source = "results" if np.isfinite(v).any() else "infinite (z tests)"
    else:
        v = np.broadcast_to(np.asarray(dfcom, dtype=float), (len(terms),)).copy()
        if (v <= 0).any() or np.isnan(v).any():
            raise OptionError(f"dfcom must be positive (or inf), got {dfcom!r}")
        source = "given"
    first = parts[0][5]
    level = conf_level
    if level is None:
        level = float(getattr(results[0], "conf_level", 0.95) or 0.95)
    return PooledResult(terms=terms, Q=Q, SE=SE, U=U, dfcom=v, dfcom_source=source,
                        glance=first, conf_level=float(level))


# ----------------------------------------------------------------------------- the result
class PooledResult(ResultBase):
    """Rubin's-rules pooling of ``m`` fits of one model (see :func:`pool`).

    Attributes
    ----------
    m : int
        Number of imputations.
    estimates, std_errors : numpy.ndarray
        The per-imputation estimates and SEs (``m`` x terms, read-only).

    Examples
    --------
    >>> import pandas as pd
    >>> fits = [pd.DataFrame({"term": ["x"], "estimate": [e], "std_error": [0.3]})
    ...         for e in (1.0, 1.2, 0.9)]
    >>> pool(fits).tidy(pooling=True)[["term", "riv", "fmi"]].round(3)
      term    riv    fmi
    0    x  0.346  0.302
    """

    def __init__(self, *, terms: list[str], Q: np.ndarray, SE: np.ndarray,
                 U: np.ndarray | None, dfcom: np.ndarray, dfcom_source: str,
                 glance: dict, conf_level: float) -> None:
        m = Q.shape[0]
        self.m = int(m)
        self._terms = tuple(terms)
        self.estimates = read_only(Q)
        self.std_errors = read_only(SE)
        self._U = None if U is None else read_only(U)
        qbar = Q.mean(axis=0)
        ubar = (SE**2).mean(axis=0)
        b = Q.var(axis=0, ddof=1)
        t = ubar + (1 + 1 / m) * b
        df = barnard_rubin(m, b, t, dfcom)
        with np.errstate(divide="ignore", invalid="ignore"):
            riv = (1 + 1 / m) * b / ubar
            lam = (1 + 1 / m) * b / t
            fmi = (riv + 2 / (df + 3)) / (riv + 1)
        self._cols = freeze({"qbar": qbar, "ubar": ubar, "b": b, "t": t, "df": df,
                             "riv": riv, "lambda": lam, "fmi": fmi, "dfcom": np.asarray(dfcom)})
        self.dfcom_source = dfcom_source
        self.info = freeze({k: v for k, v in glance.items()
                            if isinstance(v, (str, int, float, bool, type(None)))})
        self.conf_level = float(conf_level)
        self._freeze()

    @property
    def terms(self) -> list[str]:
        """Term labels (a new list on every access)."""
        return list(self._terms)

    @property
    def params(self) -> pd.Series:
        """Pooled estimates (a new Series on every access)."""
        return pd.Series(self._cols["qbar"], index=list(self._terms), name="estimate")

    @property
    def vcov(self) -> pd.DataFrame | None:
        """Pooled total covariance ``Ubar + (1 + 1/m) B`` (None without per-fit covariances)."""
        if self._U is None:
            return None
        Ubar, B = self._ubar_B()
        T = Ubar + (1 + 1 / self.m) * B
        return pd.DataFrame(T, index=list(self._terms), columns=list(self._terms))

    def _ubar_B(self) -> tuple[np.ndarray, np.ndarray]:
        assert self._U is not None
        return self._U.mean(axis=0), np.atleast_2d(np.cov(self.estimates, rowvar=False))

    def tidy(self, conf_level: float | None = None, *, pooling: bool = False) -> pd.DataFrame:
        """Pooled estimates, SE ``sqrt(t)``, Barnard-Rubin df, t tests and intervals.

        ``pooling=True`` adds :data:`POOLING_COLUMNS` (``riv``, ``lambda``, ``fmi``, ``ubar``,
        ``b``, ``t``, ``m``, ``dfcom``) after the standard columns.
        """
        c = self._cols
        out = tidy_frame(self._terms, c["qbar"], np.sqrt(c["t"]), c["df"],
                         self._level(conf_level))
        if pooling:
            for k in POOLING_COLUMNS:
                out[k] = self.m if k == "m" else np.asarray(c[k], dtype=float)
        return out

    def frame(self, conf_level: float | None = None) -> pd.DataFrame:
        """``tidy(pooling=True)``: the standard columns plus the pooling diagnostics."""
        return self.tidy(conf_level, pooling=True)

    def glance(self) -> pd.DataFrame:
        """One row: the common keys (estimator ``"rubin_<complete-data estimator>"``), m, ..."""
        i = self.info
        est = i.get("estimator")
        nobs = i.get("nobs")
        with np.errstate(invalid="ignore"):
            fmi = np.asarray(self._cols["fmi"], dtype=float)
        return glance_frame(
            estimator=f"rubin_{est}" if est else "rubin",
            outcome=i.get("outcome"),
            nobs=None if nobs is None or (isinstance(nobs, float) and math.isnan(nobs)) else nobs,
            cov_type=i.get("cov_type") or "pooled",
            df_method="barnard_rubin",
            m=self.m,
            complete_data_df_method=i.get("df_method"),
            dfcom_source=self.dfcom_source,
            max_fmi=float(np.nanmax(fmi)) if np.isfinite(fmi).any() else np.nan,
            conf_level=self.conf_level,
        )

    def summary(self) -> str:
        """The pooled table with the pooling diagnostics, and how the df were obtained."""
        i = self.info
        lines = [
            f"Multiple-imputation pooling (Rubin's rules), m = {self.m}",
            f"Complete-data estimator: {i.get('estimator', 'unknown')}; outcome: "
            f"{i.get('outcome', 'unknown')}",
            f"Covariance: {i.get('cov_type', 'as each fit')} per imputation, plus between-"
            "imputation variance (1 + 1/m) B",
            "Degrees of freedom: Barnard-Rubin (1999), complete-data df "
            + {"results": "from each fit's df", "given": "given (dfcom=)"}.get(
                self.dfcom_source, "infinite (Rubin 1987)"),
            "",
            self.tidy(pooling=True).to_string(index=False, float_format=lambda v: f"{v:.6g}"),
        ]
        return "\n".join(lines)

    def wald(self, terms: Sequence[str] | None = None, *, null: Any = 0.0,
             dfcom: float | None = None) -> pd.DataFrame:
        """Multivariate pooled Wald test ``D1`` that ``terms`` equal ``null`` jointly.

        ``D1 = (qbar - q0)' Ubar^-1 (qbar - q0) / (k (1 + r))`` with ``r = (1 + 1/m)
        tr(B Ubar^-1) / k``, referred to ``F(k, v)``: ``v`` from Reiter (2007) when the
        complete-data df are finite (default: the smallest of the terms' ``dfcom``), else from
        Li, Raghunathan & Rubin (1991), as ``mitml::testModels(method = "D1")``. Needs each
        fit's covariance matrix (``vcov``) unless a single term is tested.

        Returns
        -------
        pandas.DataFrame
            One row: ``terms``, ``statistic`` (F), ``df_num``, ``df_den``, ``p_value``, ``riv``,
            ``m``, ``method``.
        """
        names = list(self._terms) if terms is None else [str(t) for t in terms]
        unknown = [t for t in names if t not in self._terms]
        if unknown:
            raise OptionError(f"wald(): unknown term(s) {unknown}; terms are {list(self._terms)}")
        idx = [self._terms.index(t) for t in names]
        k = len(idx)
        if self._U is None:
            if k > 1:
                raise OptionError("wald() of several terms needs each fit's covariance matrix "
                                  "(the results have no vcov); test one term at a time")
            U = (self.std_errors[:, idx] ** 2)[:, :, None]
        else:
            U = self._U[:, idx][:, :, idx]
        m = self.m
        Q = self.estimates[:, idx] - np.broadcast_to(np.asarray(null, dtype=float), (k,))
        qbar = Q.mean(axis=0)
        Ubar = U.mean(axis=0)
        B = np.atleast_2d(np.cov(Q, rowvar=False))
        Ui = np.linalg.inv(Ubar)
        r = (1 + 1 / m) * float(np.trace(B @ Ui)) / k
        F = float(qbar @ Ui @ qbar) / (k * (1 + r))
        tt = k * (m - 1)
        if dfcom is None:
            dc = np.asarray(self._cols["dfcom"], dtype=float)[idx]
            dfcom = float(dc.min())
        if np.isfinite(dfcom):
            a = r * tt / (tt - 2)
            vstar = (dfcom + 1) / (dfcom + 3) * dfcom
            c0 = 1 / (tt - 4)
            c1 = vstar - 2 * (1 + a)
            c2 = vstar - 4 * (1 + a)
            z = (1 / c2 + c0 * (a**2 * c1 / ((1 + a) ** 2 * c2))
                 + c0 * (8 * a**2 * c1 / ((1 + a) * c2**2) + 4 * a**2 / ((1 + a) * c2))
                 + c0 * (4 * a**2 / (c2 * c1) + 16 * a**2 * c1 / c2**3)
                 + c0 * (8 * a**2 / c2**2))
            v = 4 + 1 / z
            method = "D1, Reiter (2007) df"
        elif tt > 4:
            v = 4 + (tt - 4) * (1 + (1 - 2 / tt) / r) ** 2
            method = "D1, Li-Raghunathan-Rubin (1991) df"
        else:
            v = tt * (1 + 1 / k) * (1 + 1 / r) ** 2 / 2
            method = "D1, Li-Raghunathan-Rubin (1991) df"
        return pd.DataFrame([{
            "terms": ", ".join(names), "statistic": F, "df_num": k, "df_den": float(v),
            "p_value": float(stats.f.sf(F, k, v)), "riv": r, "m": m, "method": method,
        }])

