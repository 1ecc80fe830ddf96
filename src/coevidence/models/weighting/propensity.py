"""Propensity scores and weights for non-randomised comparisons of organisations.

:func:`propensity_weights` fits a logistic propensity model (statsmodels GLM, binomial family,
logit link: the same fit as R ``glm(treat ~ ..., family = binomial)``) with one row per unit
(organisation) and turns the scores ``e`` into weights for the chosen estimand:

=============  ===============================  =============================================
estimand       treated units                    comparison units
=============  ===============================  =============================================
``"ate"``      ``1 / e``                        ``1 / (1 - e)``
``"att"``      ``1``                            ``e / (1 - e)``
``"overlap"``  ``1 - e``                        ``e``
=============  ===============================  =============================================

``stabilize=True`` (ATE only) multiplies by the marginal share of the unit's group, so the
weights sum to about the number of units (as WeightIt's ``stabilize = TRUE``). ``trim=q``
truncates weights above the ``q`` quantile of the weighted group's weights (all units for ATE
and overlap, comparison units for ATT) at that quantile; no unit is dropped.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from coevidence.exceptions import (
    CoevidenceWarning,
    FitWarning,
    ModelSpecificationError,
    OptionError,
)
from coevidence.models._shared.data import check_columns
from coevidence.models._shared.options import check_choice
from coevidence.results.base import ResultBase, freeze, glance_frame, tidy_frame

__all__ = ["ESTIMANDS", "PropensityWeights", "WeightWarning", "propensity_weights"]

ESTIMANDS = ("ate", "att", "overlap")

#: Warn when a unit's weight exceeds this multiple of its group's mean weight.
EXTREME_WEIGHT = 10.0
#: Warn when a group's effective sample size falls below this share of its size.
LOW_ESS = 0.3


class WeightWarning(CoevidenceWarning):
    """Extreme weights or a small effective sample size: estimates rest on few units."""


def _units(data: pd.DataFrame, unit: str | None, cols: list[str]) -> pd.DataFrame:
    """One row per unit with ``cols``; refuse values that vary within a unit."""
    if unit is None:
        return data[cols].reset_index(drop=True).assign(_row=np.arange(len(data)))
    check_columns(data, [unit])
    if data[unit].isna().any():
        rows = np.flatnonzero(data[unit].isna().to_numpy())[:10].tolist()
        raise ModelSpecificationError(f"missing unit identifier {unit!r} in rows {rows}")
    g = data.groupby(unit, sort=True, observed=True)
    varying = [c for c in cols if (g[c].nunique(dropna=False) > 1).any()]
    if varying:
        c = varying[0]
        bad = g[c].nunique(dropna=False)
        u = bad[bad > 1].index[0]
        vals = data.loc[data[unit] == u, c].drop_duplicates().tolist()[:5]
        raise ModelSpecificationError(
            f"column(s) {varying} vary within {unit!r} (e.g. {unit}={u!r}, {c} takes {vals}); "
            "propensity scores are fitted per unit: use baseline (time-constant) covariates, "
            "e.g. the first wave's values")
    return g[cols].first().reset_index()


def _design(frame: pd.DataFrame, covariates: list[str]) -> pd.DataFrame:
    """Intercept, numeric covariates and treatment-coded dummies (R's default contrasts)."""
    parts = [pd.DataFrame({"(Intercept)": 1.0}, index=frame.index)]
    for c in covariates:
        s = frame[c]
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            parts.append(s.astype(float).rename(c).to_frame())
        else:
            levels = (list(s.cat.categories) if isinstance(s.dtype, pd.CategoricalDtype)
                      else sorted(s.dropna().unique().tolist()))
            for lev in levels[1:]:
                parts.append(pd.DataFrame({f"{c}{lev}": (s == lev).astype(float)},
                                          index=frame.index))
    return pd.concat(parts, axis=1)


def _treat01(s: pd.Series, treated: Any, treatment: str) -> tuple[np.ndarray, Any]:
    values = s.dropna().unique().tolist()
    if len(values) != 2:
        raise ModelSpecificationError(
            f"treatment {treatment!r} must take exactly two values, got {sorted(map(str, values))}")
    if treated is None:
        if set(values) <= {0, 1, True, False}:
            treated = 1
        else:
            raise OptionError(
                f"treatment {treatment!r} takes values {sorted(map(str, values))}: say which is "
                "the treated group with treated=")
    if treated not in values:
        raise OptionError(f"treated={treated!r} is not a value of {treatment!r} ({values})")
    return (s == treated).to_numpy(dtype=float), treated


def ess(w: np.ndarray) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2``."""
    w = np.asarray(w, dtype=float)
    return float(w.sum() ** 2 / (w**2).sum()) if len(w) else float("nan")


def _weights(t: np.ndarray, e: np.ndarray, estimand: str, stabilize: bool) -> np.ndarray:
    if estimand == "ate":
        w = t / e + (1 - t) / (1 - e)
        if stabilize:
            p = t.mean()
            w = w * np.where(t == 1, p, 1 - p)
    elif estimand == "att":
        w = t + (1 - t) * e / (1 - e)
    else:
        w = t * (1 - e) + (1 - t) * e
    return w


def propensity_weights(
    data: pd.DataFrame,
    *,
    treatment: str,
    covariates: Sequence[str],
    estimand: str = "ate",
    unit: str | None = None,
    treated: Any = None,
    stabilize: bool = False,
    trim: float | None = None,
    conf_level: float = 0.95,
) -> PropensityWeights:
    """Logistic propensity scores and IPW/overlap weights, one per unit.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per unit, or a panel (several rows per ``unit``: treatment and covariates must
        then be constant within unit, as baseline characteristics are). Never modified.
    treatment : str
        Column with two values (0/1, boolean, or two labels with ``treated=``).
    covariates : list of str
        Baseline covariates of the propensity model (numeric, boolean, or categorical: coded
        with treatment contrasts against the first level, as R).
    estimand : {"ate", "att", "overlap"}
        Average effect over all units, over the treated units, or over the overlap population
        (weights ``1 - e`` / ``e``: bounded, exact mean balance of the covariates in the model).
    unit : str, optional
        Unit column when ``data`` has several rows per unit; the weights are fitted per unit and
        :attr:`PropensityWeights.weights` repeats them on every row of the unit.
    treated : optional
        The value of ``treatment`` that marks the treated group (default 1/True).
    stabilize : bool, default False
        ATE only: multiply by the marginal group share (weights then average about 1).
    trim : float, optional
        Quantile in (0.5, 1): weights above it (in the weighted group) are set to it.
    conf_level : float
        Level of the propensity model's coefficient intervals.

    Returns
    -------
    PropensityWeights
        ``weights`` (a Series on the rows of ``data``), ``units`` (unit, treated, score,
        weight), ``ess``, the propensity model in ``tidy()`` and ``balance()``.

    Warns
    -----
    WeightWarning
        A weight above :data:`EXTREME_WEIGHT` times its group's mean, or a group's effective
        sample size below :data:`LOW_ESS` of its size.
    FitWarning
        Scores within 1e-6 of 0 or 1 (near separation).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(1)
    >>> x = rng.normal(size=200)
    >>> d = pd.DataFrame({"x": x, "t": (rng.random(200) < 1 / (1 + np.exp(-x))).astype(int)})
    >>> pw = propensity_weights(d, treatment="t", covariates=["x"], estimand="overlap")
    >>> bool(abs(pw.balance()["smd_weighted"].iloc[0]) < 1e-8)
    True
    """
    check_choice("estimand", estimand, ESTIMANDS)
    if isinstance(covariates, str):
        covariates = [covariates]
    covariates = list(covariates)
    if not covariates:
        raise OptionError("covariates= must name at least one column")
    if stabilize and estimand != "ate":
        raise OptionError(f"stabilize=True applies to estimand='ate' only, not {estimand!r}")
    if trim is not None and not (0.5 < float(trim) < 1):
        raise OptionError(f"trim must be a quantile in (0.5, 1), got {trim!r}")
    check_columns(data, [treatment, *covariates, unit])
    cols = [treatment, *covariates]
    units = _units(data, unit, cols)
    miss = units[cols].isna()
    if miss.any().any():
        per = {c: int(n) for c, n in miss.sum().items() if n}
        idname = unit or "row"
        ids = (units.loc[miss.any(axis=1), unit] if unit else
               units.loc[miss.any(axis=1), "_row"]).tolist()[:10]
        raise ModelSpecificationError(
            f"propensity_weights: {int(miss.any(axis=1).sum())} units have missing treatment or "
            f"covariates (per column: {per}; {idname}s {ids}); impute them first "
            "(coevidence.impute) and compute weights per completed data set")
    t, treated = _treat01(units[treatment], treated, treatment)
    X = _design(units, covariates)
    import statsmodels.api as sm

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        glm = sm.GLM(t, X, family=sm.families.Binomial()).fit()
    e = np.asarray(glm.fittedvalues, dtype=float)
    if any("separation" in str(w.message).lower() for w in caught) or \
            (np.minimum(e, 1 - e) < 1e-6).any():
        warnings.warn("propensity_weights: scores within 1e-6 of 0 or 1 (near separation); the "
                      "groups barely overlap on the covariates and the weights are unstable",
                      FitWarning, stacklevel=2)
    w = _weights(t, e, estimand, stabilize)
    n_trimmed = 0
    if trim is not None:
        pick = (t == 0) if estimand == "att" else np.ones(len(t), bool)
        cap = float(np.quantile(w[pick], float(trim)))
        over = pick & (w > cap)
        n_trimmed = int(over.sum())
        w = np.where(over, cap, w)
    key = unit if unit is not None else "_row"
    frame = pd.DataFrame({key: units[key].to_numpy(), "treated": t.astype(int),
                          "propensity": e, "weight": w})
    ess_t, ess_c = ess(w[t == 1]), ess(w[t == 0])
    n_t, n_c = int(t.sum()), int((1 - t).sum())
    for name, grp, ne, ee in (("treated", t == 1, n_t, ess_t), ("comparison", t == 0, n_c, ess_c)):
        if not grp.any():
            continue
        rel = w[grp] / w[grp].mean()
        if rel.max() > EXTREME_WEIGHT or ee < LOW_ESS * ne:
            warnings.warn(
                f"propensity_weights: {name} units' largest weight is {rel.max():.1f} times "
                f"their mean and their effective sample size is {ee:.1f} of {ne}; estimates "
                "rest on few units (consider estimand='overlap' or trim=)",
                WeightWarning, stacklevel=2)
    if unit is not None:
        row_w = data[unit].map(pd.Series(w, index=units[unit].to_numpy()))
    else:
        row_w = pd.Series(w, index=data.index)
    row_w = pd.Series(row_w.to_numpy(dtype=float), index=data.index, name="weight")
    return PropensityWeights(
        data=data, frame=frame, row_weights=row_w, glm=glm, names=list(X.columns),
        info={"treatment": treatment, "treated": treated, "covariates": tuple(covariates),
              "estimand": estimand, "unit": unit, "stabilize": bool(stabilize),
              "trim": trim, "n_trimmed": n_trimmed, "n_treated": n_t, "n_comparison": n_c,
              "ess_treated": ess_t, "ess_comparison": ess_c},
        conf_level=conf_level,
    )


class PropensityWeights(ResultBase):
    """Propensity scores and weights from :func:`propensity_weights`.

    ``tidy()`` / ``glance()`` / ``summary()`` describe the logistic propensity model;
    :attr:`weights` are the weights on the rows of the data given; :attr:`units` one row per
    unit (id, ``treated`` 0/1, ``propensity``, ``weight``); :attr:`ess` the effective sample
    sizes; :meth:`balance` the balance table before and after weighting.
    """

    def __init__(self, *, data: pd.DataFrame, frame: pd.DataFrame, row_weights: pd.Series,
                 glm: Any, names: list[str], info: dict, conf_level: float) -> None:
        self._data = data.copy()
        self._frame = frame
        self._row_weights = row_weights
        self._params = np.asarray(glm.params, dtype=float)
        self._bse = np.asarray(glm.bse, dtype=float)
        self._cov = np.asarray(glm.cov_params(), dtype=float)
        self._names = tuple(names)
        self._llf = float(glm.llf)
        self._converged = bool(getattr(glm, "converged", True))
        self.info = freeze(dict(info))
        self.estimand = info["estimand"]
        self.conf_level = float(conf_level)
        self._freeze()

    @property
    def weights(self) -> pd.Series:
        """Weights on the rows of the data given (a copy; same index)."""
        return self._row_weights.copy()

    @property
    def units(self) -> pd.DataFrame:
        """One row per unit: id, ``treated`` (0/1), ``propensity``, ``weight`` (a copy)."""
        return self._frame.copy()

    @property
    def ess(self) -> dict[str, float]:
        """Effective sample size ``(sum w)^2 / sum w^2`` of the treated and comparison units."""
        return {"treated": self.info["ess_treated"], "comparison": self.info["ess_comparison"]}

    @property
    def vcov(self) -> pd.DataFrame:
        """Covariance of the propensity model's coefficients."""
        return pd.DataFrame(self._cov, index=list(self._names), columns=list(self._names))

    def for_data(self, other: pd.DataFrame) -> pd.Series:
        """The unit weights on the rows of another frame with the same ``unit`` column."""
        unit = self.info["unit"]
        if unit is None:
            raise OptionError("for_data() needs weights fitted with unit=")
        check_columns(other, [unit])
        w = other[unit].map(self._frame.set_index(unit)["weight"])
        if w.isna().any():
            ids = other.loc[w.isna(), unit].drop_duplicates().tolist()[:10]
            raise ModelSpecificationError(f"for_data(): {unit} values {ids} have no weight")
        return pd.Series(w.to_numpy(dtype=float), index=other.index, name="weight")

    def balance(self, covariates: Sequence[str] | None = None, **kwargs: Any) -> pd.DataFrame:
        """:func:`~coevidence.models.weighting.balance.balance` before and after these weights."""
        from coevidence.models.weighting.balance import balance

        i = self.info
        units = self._frame
        key = i["unit"] if i["unit"] is not None else "_row"
        data = (self._data.groupby(i["unit"], sort=True, observed=True).first().reset_index()
                if i["unit"] is not None else self._data.reset_index(drop=True))
        if i["unit"] is None:
            data = data.assign(_row=np.arange(len(data)))
        data = data.merge(units[[key, "weight"]].rename(columns={"weight": "_w"}), on=key)
        return balance(data, treatment=i["treatment"], treated=i["treated"],
                       covariates=list(covariates or i["covariates"]), weights="_w",
                       estimand=i["estimand"], **kwargs)

    def tidy(self, conf_level: float | None = None) -> pd.DataFrame:
        """The propensity model's coefficients (log-odds, Wald z tests)."""
        return tidy_frame(self._names, self._params, self._bse, np.inf, self._level(conf_level))

    def glance(self) -> pd.DataFrame:
        """One row: the common keys, estimand, unit counts, ESS, weight range, trimming."""
        i = self.info
        w = self._frame["weight"].to_numpy()
        return glance_frame(
            estimator="logit_propensity", outcome=i["treatment"], nobs=len(self._frame),
            cov_type="model", df_method="z", estimand=i["estimand"],
            n_treated=i["n_treated"], n_comparison=i["n_comparison"],
            ess_treated=i["ess_treated"], ess_comparison=i["ess_comparison"],
            min_weight=float(w.min()), max_weight=float(w.max()),
            stabilize=i["stabilize"], n_trimmed=i["n_trimmed"], loglik=self._llf,
            converged=self._converged,
        )

    def summary(self) -> str:
        """The propensity model, weight distribution and effective sample sizes."""
        i = self.info
        f = self._frame
        lines = [
            f"Propensity weights ({i['estimand'].upper()}), logistic model of "
            f"{i['treatment']!r} (treated = {i['treated']!r})",
            "Estimator: maximum likelihood logit (statsmodels GLM, binomial); covariance: "
            "model-based; tests: Wald z",
            f"Units: {i['n_treated']} treated, {i['n_comparison']} comparison"
            + (f" (one row per {i['unit']!r})" if i["unit"] else ""),
            f"Effective sample size: treated {i['ess_treated']:.1f}, comparison "
            f"{i['ess_comparison']:.1f}",
            "Weights: " + ", ".join(
                f"{g} {f.loc[f.treated == k, 'weight'].min():.3g}-"
                f"{f.loc[f.treated == k, 'weight'].max():.3g}"
                for g, k in (("treated", 1), ("comparison", 0)) if (f.treated == k).any())
            + (f"; {i['n_trimmed']} trimmed at the {i['trim']} quantile" if i["trim"] else "")
            + ("; stabilized" if i["stabilize"] else ""),
            "",
            self.tidy().to_string(index=False, float_format=lambda v: f"{v:.6g}"),
        ]
        return "\n".join(lines)
