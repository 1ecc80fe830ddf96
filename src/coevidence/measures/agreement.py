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
units with one respondent get NaN, as in ``multilevel::rwg.j``. ICC(1) and ICC(2) need no
response scale; r_wg(j) does (its null distribution is over the response options), so without
one it is NaN and the result's ``note`` says what to give.
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
from coevidence.schemas.measure import AgreementCriteria, MeasureDefinition

__all__ = ["AgreementResult", "agreement"]

#: The note of a result (and a criterion) when r_wg(j) could not be computed for want of a range.
RWG_NEEDS_RANGE = ("r_wg(j) needs the response scale range: give scale_range=(min, max), "
                   "measure= or null_variance= (ICC(1) and ICC(2) need none)")

_CRITERIA_COLUMNS = ["criterion", "value", "threshold", "met", "note"]


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
    null_variance : float
        Variance of the r_wg(j) null distribution; NaN when no scale range was given (then
        every ``rwg_j`` is NaN and ``note`` says so).
    note : str
        Empty, or what could not be computed and why.
    criteria : pandas.DataFrame
        Each aggregation criterion in force: ``criterion`` (``icc1``, ``f_test_p_value``,
        ``icc2``, ``median_rwg_j``), ``value``, ``threshold``, ``met`` (nullable boolean: <NA>
        when the value could not be computed) and ``note``.
    aggregation_supported : bool
        True when every criterion is met (False when one fails or could not be assessed).

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
    rwg_threshold: float | None
    icc2_threshold: float | None
    icc1_threshold: float | None
    f_alpha: float | None
    n_obs: int
    n_dropped: int
    note: str

    @cached_property
    def criteria(self) -> pd.DataFrame:
        spec = AgreementCriteria.model_construct(
            icc1_min=self.icc1_threshold, f_alpha=self.f_alpha, icc2_min=self.icc2_threshold,
            rwg_min=self.rwg_threshold)
        return criteria_frame(self.icc1, self.f_p_value, self.icc2,
                              _median(self.per_unit["rwg_j"]), spec, rwg_note=self.note,
                              icc_note="the scores do not vary (no between- or within-unit "
                                       "variance)")

    @property
    def aggregation_supported(self) -> bool:
        met = self.criteria["met"]
        return bool(met.notna().all() and met.fillna(False).all())

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
        null = (f"r_wg(j) with a uniform null (variance {self.null_variance:.4g})"
                if np.isfinite(self.null_variance) else "r_wg(j) not computed (no scale range)")
        lines = [
            f"Agreement within {self.unit!r} ({len(self.per_unit)} units, {self.n_obs} rows, "
            f"{len(self.items)} item(s); dropped for missing items: {self.n_dropped})",
            f"Estimator: one-way ANOVA ICC(1)/ICC(2) on the item mean; {null}",
            "Covariance type: none",
            f"Df method: ANOVA F({self.f_df1:g}, {self.f_df2:g})",
            "",
            self.criteria.drop(columns="note").to_string(
                index=False, float_format=lambda v: f"{v:.4f}"),
            f"Aggregation supported: {self.aggregation_supported}",
        ]
        if self.note:
            lines.append(f"Note: {self.note}")
        return "\n".join(lines)


def _median(values: pd.Series | np.ndarray) -> float:
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    return float(np.median(v)) if v.size else float("nan")


def criteria_frame(icc1: float, f_p_value: float, icc2: float, median_rwg: float,
                   spec: AgreementCriteria, *, rwg_note: str = "",
                   icc_note: str = "") -> pd.DataFrame:
    """The criteria in force under ``spec`` (a ``None`` criterion is left out) and whether each
    is met (<NA> when its value is NaN, with the reason in ``note``)."""
    rows = []

    def add(name: str, value: float, threshold: float | None, met: bool, note: str) -> None:
        if threshold is None:
            return
        ok = pd.NA if np.isnan(value) else bool(met)
        rows.append((name, float(value), float(threshold), ok,
                     note if np.isnan(value) else ""))

    add("icc1", icc1, spec.icc1_min, spec.icc1_min is not None and icc1 > spec.icc1_min,
        icc_note)
    add("f_test_p_value", f_p_value, spec.f_alpha,
        spec.f_alpha is not None and f_p_value < spec.f_alpha, icc_note)
    add("icc2", icc2, spec.icc2_min, spec.icc2_min is not None and icc2 >= spec.icc2_min,
        icc_note)
    add("median_rwg_j", median_rwg, spec.rwg_min,
        spec.rwg_min is not None and median_rwg >= spec.rwg_min,
        rwg_note or "no unit with two or more respondents")
    out = pd.DataFrame(rows, columns=_CRITERIA_COLUMNS)
    out["met"] = out["met"].astype("boolean")
    return out


def one_way_anova(score: np.ndarray, codes: np.ndarray, n_units: int) -> dict[str, float]:
    """ICC(1), ICC(2) and the F test of a one-way ANOVA of ``score`` on unit ``codes``.

    NaN everywhere when there are fewer than 2 units or no unit with 2 observations.
    """
    n = len(score)
    nan = float("nan")
    n_k = np.bincount(codes, minlength=n_units).astype(float)
    df1, df2 = n_units - 1, n - n_units
    if df1 < 1 or df2 < 1:
        return {"icc1": nan, "icc2": nan, "f_value": nan, "f_df1": float(df1),
                "f_df2": float(df2), "f_p_value": nan}
    means = np.bincount(codes, weights=score, minlength=n_units) / n_k
    ss_w = float(((score - means[codes]) ** 2).sum())
    ss_b = float((n_k * (means - score.mean()) ** 2).sum())
    msb, msw = np.float64(ss_b / df1), np.float64(ss_w / df2)  # numpy: x / 0 gives inf/NaN
    k_bar = n / n_units
    with np.errstate(invalid="ignore", divide="ignore"):
        icc1 = (msb - msw) / (msb + (k_bar - 1) * msw)
        icc2 = (msb - msw) / msb
        f = msb / msw
    p = nan if np.isnan(f) else float(stats.f.sf(f, df1, df2))  # F = inf (no within variance): 0
    return {"icc1": float(icc1), "icc2": float(icc2), "f_value": float(f), "f_df1": float(df1),
            "f_df2": float(df2), "f_p_value": p}


def rwg_j(x: np.ndarray, codes: np.ndarray, n_units: int, null_variance: float) -> np.ndarray:
    """r_wg(j) per unit of the complete item matrix ``x`` (rows: respondents, columns: items).

    NaN for units with one respondent and everywhere when ``null_variance`` is NaN.
    """
    j = x.shape[1]
    n_k = np.bincount(codes, minlength=n_units).astype(float)
    s1 = np.zeros((n_units, j))
    np.add.at(s1, codes, x)
    with np.errstate(invalid="ignore", divide="ignore"):
        dev = x - (s1 / n_k[:, None])[codes]  # two-pass: no cancellation for large values
        s2 = np.zeros((n_units, j))
        np.add.at(s2, codes, dev**2)
        item_var = s2 / (n_k[:, None] - 1)
        s_bar = np.minimum(item_var.mean(axis=1), null_variance)
        ratio = s_bar / null_variance
        out = (j * (1 - ratio)) / (j * (1 - ratio) + ratio)
    out[n_k < 2] = np.nan
    if np.isnan(null_variance):
        out[:] = np.nan
    return out


def agreement(
    scores: pd.DataFrame,
    unit: str = "org_id",
    scale_range: tuple[float, float] | None = None,
    *,
    items: Sequence[str] | None = None,
    measure: MeasureDefinition | None = None,
    null_variance: float | None = None,
    rwg_threshold: float | None = None,
    icc2_threshold: float | None = None,
    icc1_threshold: float | None = None,
    f_alpha: float | None = None,
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
        omitted. Only r_wg(j) needs it: without a range (nor ``measure`` nor
        ``null_variance``) ICC(1) and ICC(2) are computed, ``rwg_j`` is NaN and ``note`` says
        so.
    items : sequence of str, optional
        Item columns (default: every column except ``unit``).
    measure : MeasureDefinition, optional
        Supplies ``scale_range``, ``min_respondents`` and the default thresholds (its
        ``aggregation.agreement`` criteria; a criterion it sets to ``None`` is left out).
    null_variance : float, optional
        Override the null variance (e.g. a skewed null).
    rwg_threshold, icc2_threshold, icc1_threshold, f_alpha : float, optional
        Criteria for ``aggregation_supported``: median r_wg(j) >= ``rwg_threshold``, ICC(2) >=
        ``icc2_threshold``, ICC(1) > ``icc1_threshold`` and F test p < ``f_alpha``. Defaults:
        the measure's criteria, else 0.70, 0.70, 0 and 0.05 (see
        :class:`~coevidence.schemas.measure.AgreementCriteria` for the sources).
    min_respondents : int, default 1
        Units with fewer respondents get no ``aggregate``.

    Returns
    -------
    AgreementResult

    Raises
    ------
    MeasureError
        Naming the table, column and value: a missing unit or item column, a non-numeric
        item, fewer than 2 units, or no unit with 2 respondents.

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"org_id": [1, 1, 1, 2, 2, 2], "a": [4, 4, 5, 2, 1, 2],
    ...                   "b": [4, 5, 5, 1, 2, 2]})
    >>> a = agreement(d, unit="org_id", scale_range=(1, 5))
    >>> a.per_unit["rwg_j"].round(3).tolist()
    [0.909, 0.909]

    Without a scale range ICC(1) and ICC(2) are still computed:

    >>> b = agreement(d[["org_id", "a"]], unit="org_id")
    >>> round(b.icc1, 3), bool(b.per_unit["rwg_j"].isna().all())
    (0.912, True)
    >>> b.note[:40]
    'r_wg(j) needs the response scale range: '
    """
    if not isinstance(scores, pd.DataFrame):
        raise MeasureError(pd.DataFrame([{"table": "scores", "row": None, "column": None,
                                          "value": type(scores).__name__,
                                          "rule": "must be a pandas DataFrame"}]), what="scores")
    if unit not in scores.columns:
        raise MeasureError(pd.DataFrame([{"table": "scores", "row": None, "column": unit,
                                          "value": None, "rule": "unit column is missing"}]),
                           what="scores")
    cols = list(items) if items is not None else [c for c in scores.columns if c != unit]
    spec = AgreementCriteria()
    if measure is not None:
        if scale_range is None:
            scale_range = (measure.response_min, measure.response_max)
        min_respondents = max(min_respondents, measure.aggregation.min_respondents)
        spec = measure.aggregation.agreement
    spec = AgreementCriteria.model_construct(
        icc1_min=spec.icc1_min if icc1_threshold is None else icc1_threshold,
        f_alpha=spec.f_alpha if f_alpha is None else f_alpha,
        icc2_min=spec.icc2_min if icc2_threshold is None else icc2_threshold,
        rwg_min=spec.rwg_min if rwg_threshold is None else rwg_threshold,
    )
    failures = [{"table": "scores", "row": None, "column": c, "value": None,
                 "rule": "column is missing"} for c in cols if c not in scores.columns]
    failures += [{"table": "scores", "row": None, "column": c, "value": str(scores[c].dtype),
                  "rule": "must be numeric"} for c in cols if c in scores.columns
                 and (not pd.api.types.is_numeric_dtype(scores[c].dtype)
                      or pd.api.types.is_bool_dtype(scores[c].dtype))]
    if not cols:
        failures.append({"table": "scores", "row": None, "column": None, "value": None,
                         "rule": "no item columns"})
    if scale_range is not None and not scale_range[1] > scale_range[0]:
        failures.append({"table": "scores", "row": None, "column": None,
                         "value": str(tuple(scale_range)),
                         "rule": "scale_range must be (min, max) with max > min"})
    if failures:
        raise MeasureError(pd.DataFrame(failures), what="scores")
    note = ""
    if null_variance is None:
        if scale_range is None:
            null_variance = float("nan")
            note = RWG_NEEDS_RANGE
        else:
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
    n_k = np.bincount(codes, minlength=n_g).astype(float)
    if len(x) <= n_g:
        raise MeasureError(pd.DataFrame([{"table": "scores", "row": None, "column": unit,
                                          "value": int(n_k.max()),
                                          "rule": "need a unit with at least 2 respondents"}]),
                           what="scores")
    rwg = rwg_j(x, codes, n_g, float(null_variance))
    score = x.mean(axis=1)
    aov = one_way_anova(score, codes, n_g)
    means = np.bincount(codes, weights=score, minlength=n_g) / n_k
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.sqrt(np.bincount(codes, weights=(score - means[codes]) ** 2, minlength=n_g)
                     / (n_k - 1))
    flag_at = spec.rwg_min if spec.rwg_min is not None else AgreementCriteria().rwg_min
    per = pd.DataFrame({
        unit: uniq, "n": n_k.astype(int), "mean": means, "sd": sd, "rwg_j": rwg,
        "agreement_supported": rwg >= flag_at,
        "aggregate": np.where(n_k >= min_respondents, means, np.nan),
    })
    return AgreementResult(
        unit=unit, items=tuple(cols), per_unit=per, null_variance=float(null_variance),
        rwg_threshold=spec.rwg_min, icc2_threshold=spec.icc2_min, icc1_threshold=spec.icc1_min,
        f_alpha=spec.f_alpha, n_obs=int(len(score)), n_dropped=n_dropped, note=note, **aov,
    )
