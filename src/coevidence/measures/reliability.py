r"""Internal consistency: Cronbach's alpha with a Feldt interval, McDonald's omega, item stats.

.. math::

    \alpha = \frac{k}{k-1}\Bigl(1 - \frac{\sum_i s_i^2}{s_X^2}\Bigr), \qquad
    \omega = \frac{(\sum_i \lambda_i)^2}{(\sum_i \lambda_i)^2 + \sum_i (1 - \lambda_i^2)}

with :math:`s_i^2` the item variances, :math:`s_X^2` the variance of the total score, and
:math:`\lambda_i` the standardised loadings of a one-factor model fitted by minimum residual
(unweighted least squares, psych's ``fm="minres"``) to the item correlation matrix. The Feldt
(1965) interval is :math:`1 - (1-\hat\alpha) F_{q}(n-1, (n-1)(k-1))` at :math:`q = 1-\gamma/2`
(lower) and :math:`\gamma/2` (upper). Rows with any missing item are dropped listwise (counted
in ``n_dropped`` and warned about).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from functools import cached_property

import numpy as np
import pandas as pd
from scipy import optimize, stats

from coevidence.exceptions import MeasureError, MissingDataWarning, OptionError
from coevidence.results.base import TIDY_COLUMNS, ResultBase

__all__ = ["ReliabilityResult", "reliability", "reliability_by"]


def _alpha(x: np.ndarray) -> float:
    k = x.shape[1]
    item_var = x.var(axis=0, ddof=1).sum()
    total_var = x.sum(axis=1).var(ddof=1)
    if total_var <= 0:
        return float("nan")
    return float(k / (k - 1) * (1 - item_var / total_var))


def _minres_loadings(r: np.ndarray) -> tuple[np.ndarray, bool]:
    """One-factor loadings minimising the squared off-diagonal residuals of ``r``."""
    k = r.shape[0]
    iu = np.triu_indices(k, 1)
    target = r[iu]

    def resid(lam: np.ndarray) -> np.ndarray:
        return np.outer(lam, lam)[iu] - target

    def jac(lam: np.ndarray) -> np.ndarray:
        j = np.zeros((len(target), k))
        rows = np.arange(len(target))
        j[rows, iu[0]] = lam[iu[1]]
        j[rows, iu[1]] = lam[iu[0]]
        return j

    w, v = np.linalg.eigh(r)
    start = v[:, -1] * np.sqrt(max(w[-1], 1e-6))
    if start.sum() < 0:
        start = -start
    fit = optimize.least_squares(resid, start, jac=jac, method="lm", xtol=1e-12, ftol=1e-12)
    lam = fit.x if fit.x.sum() >= 0 else -fit.x
    return lam, bool(fit.success)


class ReliabilityResult(ResultBase):
    """Internal consistency of one set of items (immutable).

    Attributes
    ----------
    alpha : float
        Cronbach's alpha (raw, from covariances).
    alpha_ci : tuple of float
        Feldt interval at ``conf_level``.
    std_alpha : float
        Standardised alpha (from correlations).
    omega : float
        McDonald's omega total from a one-factor minres model on the correlations (NaN with
        two items: the model is not identified).
    loadings : pandas.Series
        Standardised one-factor loadings.
    item_stats : pandas.DataFrame
        Per item: ``mean``, ``sd``, ``r_drop`` (corrected item-total correlation) and
        ``alpha_if_deleted``.
    n_obs, n_items, n_dropped : int
        Rows used, items, rows dropped for missing items.
    reverse : tuple of str
        Items reflected before the analysis.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> f = rng.normal(size=200)
    >>> items = pd.DataFrame({f"i{j}": f + rng.normal(size=200) for j in range(4)})
    >>> r = reliability(items)
    >>> 0.7 < r.alpha < 0.9 and r.alpha_ci[0] < r.alpha < r.alpha_ci[1]
    True
    """

    def __init__(self, x: np.ndarray, items: Sequence[str], reverse: Sequence[str],
                 n_dropped: int, conf_level: float) -> None:
        n, k = x.shape
        self.n_obs = int(n)
        self.n_items = int(k)
        self.n_dropped = int(n_dropped)
        self.reverse = tuple(reverse)
        self.conf_level = float(conf_level)
        self.items = tuple(items)
        self.alpha = _alpha(x)
        g = 1 - conf_level
        d1, d2 = n - 1, (n - 1) * (k - 1)
        self.alpha_ci = (
            float(1 - (1 - self.alpha) * stats.f.ppf(1 - g / 2, d1, d2)),
            float(1 - (1 - self.alpha) * stats.f.ppf(g / 2, d1, d2)),
        )
        r = np.corrcoef(x, rowvar=False)
        rbar = (r.sum() - k) / (k * (k - 1))
        self.std_alpha = float(k * rbar / (1 + (k - 1) * rbar))
        if k >= 3:
            lam, ok = _minres_loadings(r)
            s = lam.sum()
            self.omega = float(s**2 / (s**2 + (1 - lam**2).sum()))
        else:  # a one-factor model is not identified with two items
            lam, ok = np.full(k, np.nan), False
            self.omega = float("nan")
        self.loadings = pd.Series(lam, index=list(items), name="loading")
        self.omega_converged = ok
        self.heywood = bool((np.abs(lam) >= 1).any())
        self._x = x
        self._freeze()

    @cached_property
    def item_stats(self) -> pd.DataFrame:
        x = self._x
        total = x.sum(axis=1)
        rows = []
        for j, code in enumerate(self.items):
            rest = total - x[:, j]
            r_drop = float(np.corrcoef(x[:, j], rest)[0, 1])
            keep = np.delete(x, j, axis=1)
            rows.append({
                "item": code,
                "mean": float(x[:, j].mean()),
                "sd": float(x[:, j].std(ddof=1)),
                "r_drop": r_drop,
                "alpha_if_deleted": _alpha(keep) if keep.shape[1] > 1 else np.nan,
                "reversed": code in self.reverse,
            })
        return pd.DataFrame(rows)

    def tidy(self, conf_level: float | None = None) -> pd.DataFrame:
        """``alpha`` (with its Feldt interval), ``std_alpha`` and ``omega``."""
        lo, hi = self.alpha_ci
        if conf_level is not None and conf_level != self.conf_level:
            g = 1 - conf_level
            d1, d2 = self.n_obs - 1, (self.n_obs - 1) * (self.n_items - 1)
            lo = float(1 - (1 - self.alpha) * stats.f.ppf(1 - g / 2, d1, d2))
            hi = float(1 - (1 - self.alpha) * stats.f.ppf(g / 2, d1, d2))
        nan = np.nan
        rows = [
            ("alpha", self.alpha, nan, nan, nan, nan, lo, hi),
            ("std_alpha", self.std_alpha, nan, nan, nan, nan, nan, nan),
            ("omega", self.omega, nan, nan, nan, nan, nan, nan),
        ]
        return pd.DataFrame(rows, columns=list(TIDY_COLUMNS))

    def glance(self) -> pd.DataFrame:
        return pd.DataFrame([{
            "n_obs": self.n_obs, "n_items": self.n_items, "n_dropped": self.n_dropped,
            "alpha": self.alpha, "alpha_ci_low": self.alpha_ci[0],
            "alpha_ci_high": self.alpha_ci[1], "std_alpha": self.std_alpha,
            "omega": self.omega, "omega_converged": self.omega_converged,
            "heywood": self.heywood,
        }])

    def summary(self) -> str:
        lines = [
            "Reliability (internal consistency)",
            "Estimator: Cronbach's alpha (covariances); omega total from a one-factor minres "
            "model on correlations",
            f"Covariance type: none; interval: Feldt F at {self.conf_level:.0%}",
            f"Df method: F({self.n_obs - 1}, {(self.n_obs - 1) * (self.n_items - 1)})",
            f"Observations: {self.n_obs} (dropped for missing items: {self.n_dropped}); "
            f"items: {self.n_items}; reversed: {list(self.reverse) or 'none'}",
            f"alpha = {self.alpha:.4f} [{self.alpha_ci[0]:.4f}, {self.alpha_ci[1]:.4f}]; "
            f"std alpha = {self.std_alpha:.4f}; omega = {self.omega:.4f}",
        ]
        if self.n_items < 3:
            lines.append("Note: omega needs at least 3 items (one-factor model not identified).")
        elif not self.omega_converged or self.heywood:
            lines.append("Warning: the one-factor model did not converge or has a loading >= 1 "
                         "(Heywood case); omega is not trustworthy.")
        lines += ["", self.item_stats.to_string(index=False, float_format=lambda v: f"{v:.4f}")]
        return "\n".join(lines)


def _prepare(items: pd.DataFrame | np.ndarray, reverse: Sequence[str],
             min_value: float | None, max_value: float | None,
             ) -> tuple[np.ndarray, list[str], int]:
    frame = items if isinstance(items, pd.DataFrame) else pd.DataFrame(np.asarray(items))
    cols = [str(c) for c in frame.columns]
    failures = []
    for c, orig in zip(cols, frame.columns, strict=True):
        if not pd.api.types.is_numeric_dtype(frame[orig].dtype) or pd.api.types.is_bool_dtype(
            frame[orig].dtype
        ):
            failures.append({"table": "items", "row": None, "column": c,
                             "value": str(frame[orig].dtype), "rule": "items must be numeric"})
    unknown = [c for c in reverse if str(c) not in cols]
    for c in unknown:
        failures.append({"table": "items", "row": None, "column": c, "value": None,
                         "rule": "reverse names an item that is not a column"})
    if reverse and (min_value is None or max_value is None):
        failures.append({"table": "items", "row": None, "column": None, "value": None,
                         "rule": "reverse keying needs min_value and max_value (the response "
                                 "range), not the observed range"})
    if len(cols) < 2:
        failures.append({"table": "items", "row": None, "column": None, "value": len(cols),
                         "rule": "reliability needs at least 2 items"})
    if failures:
        raise MeasureError(pd.DataFrame(failures), what="items")
    x = frame.to_numpy(dtype=float, na_value=np.nan)
    if min_value is not None or max_value is not None:
        lo = -np.inf if min_value is None else min_value
        hi = np.inf if max_value is None else max_value
        with np.errstate(invalid="ignore"):
            bad = np.argwhere((x < lo) | (x > hi))
        if len(bad):
            raise MeasureError(pd.DataFrame({
                "table": "items", "row": bad[:, 0], "column": [cols[j] for j in bad[:, 1]],
                "value": x[bad[:, 0], bad[:, 1]],
                "rule": f"outside the response range [{min_value}, {max_value}]"}), what="items")
    if reverse:
        idx = [cols.index(str(c)) for c in reverse]
        x = x.copy()
        x[:, idx] = (min_value + max_value) - x[:, idx]  # type: ignore[operator]
    complete = ~np.isnan(x).any(axis=1)
    n_dropped = int((~complete).sum())
    if n_dropped:
        warnings.warn(f"{n_dropped} of {len(x)} rows have a missing item and were dropped "
                      "(listwise) for the reliability analysis", MissingDataWarning, stacklevel=3)
    x = x[complete]
    if len(x) < 3:
        raise MeasureError(pd.DataFrame([{"table": "items", "row": None, "column": None,
                                          "value": len(x),
                                          "rule": "fewer than 3 complete rows"}]), what="items")
    return x, cols, n_dropped


def reliability(
    items: pd.DataFrame | np.ndarray,
    reverse: Sequence[str] = (),
    min_value: float | None = None,
    max_value: float | None = None,
    *,
    conf_level: float = 0.95,
) -> ReliabilityResult:
    """Cronbach's alpha (Feldt interval), McDonald's omega and item statistics.

    Parameters
    ----------
    items : pandas.DataFrame or array
        One row per respondent, one numeric column per item. Never modified.
    reverse : sequence of str
        Items to reflect (``min_value + max_value - x``) first.
    min_value, max_value : float, optional
        The response range; needed for ``reverse``; values outside it raise.
    conf_level : float, default 0.95
        Level of the Feldt interval.

    Returns
    -------
    ReliabilityResult

    Examples
    --------
    >>> import pandas as pd
    >>> items = pd.DataFrame({"a": [1, 2, 3, 4, 5, 3], "b": [2, 2, 3, 5, 4, 3],
    ...                       "c": [5, 4, 3, 2, 1, 3]})
    >>> r = reliability(items, reverse=["c"], min_value=1, max_value=5)
    >>> round(r.alpha, 3)
    0.962
    """
    if not 0 < conf_level < 1:
        raise OptionError(f"conf_level must lie in (0, 1); got {conf_level}")
    x, cols, n_dropped = _prepare(items, [str(c) for c in reverse], min_value, max_value)
    return ReliabilityResult(x, cols, [str(c) for c in reverse], n_dropped, conf_level)


def reliability_by(
    items: pd.DataFrame,
    by: str | Sequence[str],
    reverse: Sequence[str] = (),
    min_value: float | None = None,
    max_value: float | None = None,
    *,
    conf_level: float = 0.95,
) -> pd.DataFrame:
    """Reliability per group (e.g. by ``wave`` or ``arm``): one row per group.

    Parameters
    ----------
    items : pandas.DataFrame
        Item columns plus the grouping column(s) ``by``.
    by : str or sequence of str
        Grouping columns.
    reverse, min_value, max_value, conf_level
        As in :func:`reliability`.

    Returns
    -------
    pandas.DataFrame
        Group columns then ``n_obs``, ``n_dropped``, ``alpha``, ``alpha_ci_low``,
        ``alpha_ci_high``, ``std_alpha``, ``omega``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(1)
    >>> f = rng.normal(size=300)
    >>> d = pd.DataFrame({f"i{j}": f + rng.normal(size=300) for j in range(3)})
    >>> d["wave"] = np.repeat([0, 1, 2], 100)
    >>> reliability_by(d, "wave")["wave"].tolist()
    [0, 1, 2]
    """
    by_cols = [by] if isinstance(by, str) else list(by)
    item_cols = [c for c in items.columns if c not in by_cols]
    rows = []
    for key, grp in items.groupby(by_cols, sort=True, dropna=False):
        r = reliability(grp[item_cols], reverse, min_value, max_value, conf_level=conf_level)
        g = r.glance().iloc[0]
        rows.append({**dict(zip(by_cols, key, strict=True)), **{
            c: g[c] for c in ("n_obs", "n_dropped", "alpha", "alpha_ci_low", "alpha_ci_high",
                              "std_alpha", "omega")}})
    return pd.DataFrame(rows)
