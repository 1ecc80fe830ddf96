r"""Within-unit agreement and reliability of unit means: ICC(1), ICC(2) and r_wg(j).

The checks researchers report before aggregating person ratings to the organisation (Bliese
2000; as in R's ``multilevel`` package). From a one-way ANOVA of the scale score (the mean of
the items) on the unit, with mean squares :math:`MSB`, :math:`MSW` and mean unit size
:math:`\bar k = N/G`:

.. math::

    ICC(1) = \frac{MSB - MSW}{MSB + (\bar k - 1) MSW}, \qquad ICC(2) = \frac{MSB - MSW}{MSB}

and per unit, with :math:`\bar s^2` the mean of the :math:`J` item variances in the unit and
:math:`\sigma^2_{EU} = (A^2 - 1)/12` the variance of a uniform null over :math:`A` options,

.. math::

    r_{wg(j)} = \frac{J(1 - \bar s^2/\sigma^2_{EU})}{J(1 - \bar s^2/\sigma^2_{EU}) +
    \bar s^2/\sigma^2_{EU}}

where :math:`\bar s^2` is truncated at :math:`\sigma^2_{EU}` (so :math:`r_{wg(j)} \ge 0`), and
units with one respondent get NaN, as in ``multilevel::rwg.j``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from functools import cached_property

import numpy as np
import pandas as pd
from scipy import stats

from coevidence.exceptions import MeasureError, MissingDataWarning
from coevidence.results.base import TIDY_COLUMNS, ResultBase
from coevidence.schemas.measure import MeasureDefinition

__all__ = ["AgreementResult", "agreement"]


class AgreementResult(ResultBase):
    """ICC(1), ICC(2) and r_wg(j), per unit and overall (immutable).

    Attributes
    ----------
    per_unit : pandas.DataFrame
        One row per unit: ``unit`` column, ``n``, ``mean`` (the aggregate: mean of respondent
        scale scores), ``sd``, ``rwg_j``, ``agreement_supported`` (``rwg_j >= rwg_threshold``)
        and ``aggregate`` (``mean`` where ``n >= min_respondents``, else NaN).
    icc1, icc2 : float
    f_value, f_df1, f_df2, f_p_value : float
        The ANOVA F test of between-unit differences.
    criteria : pandas.DataFrame
        Each aggregation criterion, its value, threshold and whether it is met.
    aggregation_supported : bool
        True when every criterion is met.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> org = np.repeat(np.arange(30), 8)
    >>> base = rng.normal(0, 0.8, 30)[org]
    >>> d = pd.DataFrame({f"i{j}": np.clip(np.round(3 + base + rng.normal(0, .6, 240)), 1, 5)
    ...                   for j in range(4)})
    >>> d["org_id"] = org
    >>> a = agreement(d, unit="org_id", scale_range=(1, 5))
    >>> bool(a.icc1 > 0.2), a.aggregation_supported
    (True, True)
    """

    def __init__(self, **kw: object) -> None:
        for k, v in kw.items():
            object.__setattr__(self, k, v)
        self._freeze()

    unit: str
    items: tuple[str, ...]
    per_unit: pd.DataFrame
    icc1: float
    icc2: float
    f_value: float
    f_df1: float
    f_df2: float
    f_p_value: float
    null_variance: float
    rwg_threshold: float
    icc2_threshold: float
    f_alpha: float
    n_obs: int
    n_dropped: int

    @cached_property
    def criteria(self) -> pd.DataFrame:
        med = float(np.nanmedian(self.per_unit["rwg_j"])) if self.per_unit["rwg_j"].notna().any() \
            else np.nan
        rows = [
            ("icc1_positive", self.icc1, 0.0, bool(self.icc1 > 0)),
            ("f_test_p_value", self.f_p_value, self.f_alpha, bool(self.f_p_value < self.f_alpha)),
            ("icc2", self.icc2, self.icc2_threshold, bool(self.icc2 >= self.icc2_threshold)),
            ("median_rwg_j", med, self.rwg_threshold, bool(med >= self.rwg_threshold)),
        ]
        return pd.DataFrame(rows, columns=["criterion", "value", "threshold", "met"])

    @property
    def aggregation_supported(self) -> bool:
        return bool(self.criteria["met"].all())

    @property
    def rwg_j(self) -> pd.Series:
        """r_wg(j) per unit, indexed by unit."""
        return self.per_unit.set_index(self.unit)["rwg_j"]

    def tidy(self, conf_level: float = 0.95) -> pd.DataFrame:
        """ICC(1) (with the ANOVA F test), ICC(2) and the mean and median r_wg(j)."""
        nan = np.nan
        rwg = self.per_unit["rwg_j"]
        rows = [
            ("icc1", self.icc1, nan, self.f_value, self.f_df1, self.f_p_value, nan, nan),
            ("icc2", self.icc2, nan, nan, nan, nan, nan, nan),
            ("mean_rwg_j", float(rwg.mean()), nan, nan, nan, nan, nan, nan),
            ("median_rwg_j", float(rwg.median()), nan, nan, nan, nan, nan, nan),
        ]
        return pd.DataFrame(rows, columns=list(TIDY_COLUMNS))

    def glance(self) -> pd.DataFrame:
        return pd.DataFrame([{
            "n_obs": self.n_obs, "n_units": len(self.per_unit), "n_items": len(self.items),
            "n_dropped": self.n_dropped, "icc1": self.icc1, "icc2": self.icc2,
            "f_value": self.f_value, "f_df1": self.f_df1, "f_df2": self.f_df2,
            "f_p_value": self.f_p_value, "mean_rwg_j": float(self.per_unit["rwg_j"].mean()),
            "share_rwg_j_supported": float(self.per_unit["agreement_supported"].mean()),
            "aggregation_supported": self.aggregation_supported,
        }])

    def summary(self) -> str:
        lines = [
            f"Agreement within {self.unit!r} ({len(self.per_unit)} units, {self.n_obs} rows, "
            f"{len(self.items)} item(s); dropped for missing items: {self.n_dropped})",
            "Estimator: one-way ANOVA ICC(1)/ICC(2) on the item mean; r_wg(j) with a uniform "
            f"null (variance {self.null_variance:.4g})",
            "Covariance type: none",
            f"Df method: ANOVA F({self.f_df1:g}, {self.f_df2:g})",
            "",
            self.criteria.to_string(index=False, float_format=lambda v: f"{v:.4f}"),
            f"Aggregation supported: {self.aggregation_supported}",
        ]
        return "\n".join(lines)


def agreement(
    scores: pd.DataFrame,
    unit: str = "org_id",
    scale_range: tuple[float, float] | None = None,
    *,
    items: Sequence[str] | None = None,
    measure: MeasureDefinition | None = None,
    null_variance: float | None = None,
    rwg_threshold: float = 0.70,
    icc2_threshold: float = 0.70,
    f_alpha: float = 0.05,
    min_respondents: int = 1,
) -> AgreementResult:
    """ICC(1), ICC(2) and r_wg(j) of person ratings within units (e.g. organisations).

    Parameters
    ----------
    scores : pandas.DataFrame
        One row per respondent: the ``unit`` column and the item columns of one scale (J
        items gives r_wg(j); a single score column gives the single-item r_wg). Never modified.
    unit : str, default "org_id"
        The unit column.
    scale_range : (float, float), optional
        Lowest and highest response option; the uniform null variance is
        ``(A**2 - 1) / 12`` with ``A = max - min + 1`` options. Taken from ``measure`` if
        omitted.
    items : sequence of str, optional
        Item columns (default: every column except ``unit``).
    measure : MeasureDefinition, optional
        Supplies ``scale_range`` and ``min_respondents`` (from its aggregation rule).
    null_variance : float, optional
        Override the null variance (e.g. a skewed null).
    rwg_threshold, icc2_threshold, f_alpha : float
        Criteria for ``aggregation_supported`` (0.70, 0.70, 0.05 by convention).
    min_respondents : int, default 1
        Units with fewer respondents get no ``aggregate``.

    Returns
    -------
    AgreementResult

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"org_id": [1, 1, 1, 2, 2, 2], "a": [4, 4, 5, 2, 1, 2],
    ...                   "b": [4, 5, 5, 1, 2, 2]})
    >>> a = agreement(d, unit="org_id", scale_range=(1, 5))
    >>> a.per_unit["rwg_j"].round(3).tolist()
    [0.909, 0.909]
    """
    if unit not in scores.columns:
        raise MeasureError(pd.DataFrame([{"table": "scores", "row": None, "column": unit,
                                          "value": None, "rule": "unit column is missing"}]),
                           what="scores")
    cols = list(items) if items is not None else [c for c in scores.columns if c != unit]
    if measure is not None:
        if scale_range is None:
            scale_range = (measure.response_min, measure.response_max)
        min_respondents = max(min_respondents, measure.aggregation.min_respondents)
    failures = [{"table": "scores", "row": None, "column": c, "value": None,
                 "rule": "column is missing"} for c in cols if c not in scores.columns]
    failures += [{"table": "scores", "row": None, "column": c, "value": str(scores[c].dtype),
                  "rule": "must be numeric"} for c in cols if c in scores.columns
                 and (not pd.api.types.is_numeric_dtype(scores[c].dtype)
                      or pd.api.types.is_bool_dtype(scores[c].dtype))]
    if null_variance is None and scale_range is None:
        failures.append({"table": "scores", "row": None, "column": None, "value": None,
                         "rule": "give scale_range (or measure, or null_variance)"})
    if not cols:
        failures.append({"table": "scores", "row": None, "column": None, "value": None,
                         "rule": "no item columns"})
    if failures:
        raise MeasureError(pd.DataFrame(failures), what="scores")
    if null_variance is None:
        assert scale_range is not None
        a = scale_range[1] - scale_range[0] + 1
        null_variance = (a**2 - 1) / 12.0
    x = scores[cols].to_numpy(dtype=float, na_value=np.nan)
    g = scores[unit]
    ok = ~np.isnan(x).any(axis=1) & g.notna().to_numpy()
    n_dropped = int((~ok).sum())
    if n_dropped:
        warnings.warn(f"{n_dropped} of {len(x)} rows have a missing item or unit and were dropped "
                      "for the agreement analysis", MissingDataWarning, stacklevel=2)
    x = x[ok]
    codes, uniq = pd.factorize(g[ok], sort=True)
    n_g = len(uniq)
    if n_g < 2:
        raise MeasureError(pd.DataFrame([{"table": "scores", "row": None, "column": unit,
                                          "value": n_g, "rule": "need at least 2 units"}]),
                           what="scores")
    j = x.shape[1]
    n_k = np.bincount(codes, minlength=n_g).astype(float)
    # item variances within unit (ddof=1), averaged over items
    s1 = np.zeros((n_g, j))
    np.add.at(s1, codes, x)
    dev = x - (s1 / n_k[:, None])[codes]  # two-pass: no cancellation for large values
    s2 = np.zeros((n_g, j))
    np.add.at(s2, codes, dev**2)
    with np.errstate(invalid="ignore", divide="ignore"):
        item_var = s2 / (n_k[:, None] - 1)
        s_bar = np.minimum(item_var.mean(axis=1), null_variance)
        ratio = s_bar / null_variance
        rwg = (j * (1 - ratio)) / (j * (1 - ratio) + ratio)
    rwg[n_k < 2] = np.nan
    score = x.mean(axis=1)
    means = np.bincount(codes, weights=score, minlength=n_g) / n_k
    ss_w = float(((score - means[codes]) ** 2).sum())
    ss_b = float((n_k * (means - score.mean()) ** 2).sum())
    n = len(score)
    df1, df2 = n_g - 1, n - n_g
    msb, msw = ss_b / df1, ss_w / df2
    k_bar = n / n_g
    icc1 = (msb - msw) / (msb + (k_bar - 1) * msw)
    icc2 = (msb - msw) / msb
    f = msb / msw
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.sqrt(np.bincount(codes, weights=(score - means[codes]) ** 2, minlength=n_g)
                     / (n_k - 1))
    per = pd.DataFrame({
        unit: uniq, "n": n_k.astype(int), "mean": means, "sd": sd, "rwg_j": rwg,
        "agreement_supported": rwg >= rwg_threshold,
        "aggregate": np.where(n_k >= min_respondents, means, np.nan),
    })
    return AgreementResult(
        unit=unit, items=tuple(cols), per_unit=per, icc1=float(icc1), icc2=float(icc2),
        f_value=float(f), f_df1=float(df1), f_df2=float(df2),
        f_p_value=float(stats.f.sf(f, df1, df2)), null_variance=float(null_variance),
        rwg_threshold=rwg_threshold, icc2_threshold=icc2_threshold, f_alpha=f_alpha,
        n_obs=int(n), n_dropped=n_dropped,
    )
