"""Group weights for linear mixed models: what they mean, and their checks.

``fit_mixed(..., weights=)`` on a linear model takes *sampling or propensity weights of the
groups of the finest grouping factor* (in a TA growth model: one weight per organisation,
repeated on its waves), such as :func:`coevidence.propensity_weights` gives. A group with
weight ``w`` counts as ``w`` copies of itself in the (RE)ML criterion, inside the same groups
of the coarser factors: the pseudo-likelihood of Pfeffermann et al. (1998) and Rabe-Hesketh &
Skrondal (2006) with weights at that level (Stata's ``mixed ... || org:, pweight(w)``). With
integer weights the fit is exactly ``lmer`` on the data with each group repeated ``w`` times.

The weights are scaled to mean 1 over the groups (so the criterion counts as many groups as
there are), which makes every result invariant to their scale. Model-based standard errors
would treat the copies as real data; the fit's covariance is therefore the CR2 sandwich by
cluster with Bell-McCaffrey df (:class:`~coevidence.models.mixed._inference.CR2`), and
``cov_type="model"`` is refused.

These are not lme4's ``weights=`` (precision weights, residual variance ``sigma^2 / w`` per
row), which suit aggregated outcomes with known reliabilities, not non-randomised
comparisons; weights that vary within a group are refused with that explanation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from coevidence.exceptions import ModelSpecificationError, OptionError

__all__ = ["GroupWeights", "build_weighted_problem"]


@dataclass(frozen=True)
class GroupWeights:
    """What the weights of a fit were (kept on the result as ``result.weights_info``).

    Attributes
    ----------
    source : the column name, or ``"values"``.
    level : the grouping factor whose groups carry the weights.
    n_groups : number of weighted groups.
    scale : the factor the given weights were multiplied by (to mean 1 over the groups, or 1
        with ``weights_scale="none"``).
    scaled : whether they were scaled to mean 1.
    ess : Kish's effective number of groups, ``(sum w)^2 / sum w^2``.
    min, max : smallest and largest group weight as used.
    """

    source: str
    level: str
    n_groups: int
    scale: float
    scaled: bool
    ess: float
    min: float
    max: float

    def describe(self) -> str:
        """One line for summaries and notes.

        Examples
        --------
        >>> GroupWeights("w", "org_id", 40, 0.5, True, 31.2, 0.4, 2.9).describe()
        "weights 'w' on the 40 org_id groups (scaled to mean 1, range 0.4-2.9, effective n 31.2); CR2 standard errors"
        """
        src = f"'{self.source}'" if self.source != "values" else "(values)"
        how = "scaled to mean 1" if self.scaled else "as given"
        return (f"weights {src} on the {self.n_groups} {self.level} groups ({how}, "
                f"range {self.min:.3g}-{self.max:.3g}, effective n {self.ess:.1f}); CR2 standard "
                "errors")


def _values(data: pd.DataFrame, weights) -> tuple[np.ndarray, str]:
    if isinstance(weights, str):
        if weights not in data.columns:
            raise OptionError(f"weights={weights!r} is not a column of the data")
        col = data[weights]
        if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            raise ModelSpecificationError(
                f"weights column {weights!r} must be numeric; it has dtype {col.dtype}")
        return col.to_numpy(dtype=float, na_value=np.nan), weights
    if isinstance(weights, pd.Series):
        if not weights.index.equals(data.index):
            raise OptionError("weights given as a Series must have the data's index")
        values = weights.to_numpy(dtype=float, na_value=np.nan)
    else:
        values = np.asarray(weights, dtype=float)
    if values.shape != (len(data),):
        raise OptionError(f"weights has {values.size} values for the data's {len(data)} rows")
    return values, "values"


def build_weighted_problem(formula: str, data: pd.DataFrame, weights, reml: bool,
                           scale: str = "mean"):
    """``build_problem`` with group weights: ``(problem, info, GroupWeights)``.

    ``scale="mean"`` scales the group weights to mean 1; ``"none"`` keeps them as given
    (replication counts: integer weights then give exactly the replicated data's fit).

    The weights must be finite and positive on every row the model uses (rows dropped for
    missing model columns may have any weight) and constant within each group of the finest
    grouping factor; every violation is named (rows by their index labels, groups by id).
    """
    from coevidence.models.mixed.formula import build_problem

    values, source = _values(data, weights)
    by_pos = data.set_axis(pd.RangeIndex(len(data)))  # rows by position (no copy under CoW)
    problem, info = build_problem(formula, by_pos, reml=reml)
    pos = np.asarray(info.row_index, dtype=np.int64)
    info = replace(info, row_index=data.index[pos], data=info.data.set_axis(data.index[pos]))
    w = values[pos]
    bad = ~(np.isfinite(w) & (w > 0))
    if bad.any():
        labels = list(data.index[pos[bad]][:5])
        raise ModelSpecificationError(
            f"weights {source!r} must be finite and > 0 on every row the model uses; "
            f"{int(bad.sum())} of {len(w)} are not (first rows {labels}, values "
            f"{[float(v) for v in w[bad][:5]]})")
    if not problem.terms:
        raise ModelSpecificationError("weights need a random-effect term (a grouping factor)")
    fine = max(problem.terms, key=lambda t: t.n_levels)
    codes = np.asarray(fine.codes)
    G = fine.n_levels
    lo = np.full(G, np.inf)
    hi = np.full(G, -np.inf)
    np.minimum.at(lo, codes, w)
    np.maximum.at(hi, codes, w)
    used = np.isfinite(lo)
    varies = used & (hi - lo > 1e-9 * np.maximum(1.0, np.abs(hi)))
    if varies.any():
        g = int(np.flatnonzero(varies)[0])
        raise ModelSpecificationError(
            f"weights {source!r} vary within {int(varies.sum())} {fine.group} group(s) (first: "
            f"{fine.levels[g]!r}, from {lo[g]:g} to {hi[g]:g}); coevidence's mixed-model "
            f"weights are sampling or propensity weights of the {fine.group} groups (the "
            "finest grouping factor), one per group. lme4's precision weights (residual "
            "variance sigma^2 / w per row) are not supported")
    if scale not in ("mean", "none"):
        raise OptionError(f"weights_scale must be 'mean' or 'none', got {scale!r}")
    wg = lo[used]
    factor = len(wg) / float(wg.sum()) if scale == "mean" else 1.0
    w_rows = w * factor
    wg = wg * factor
    info_w = GroupWeights(
        source=source, level=fine.group, n_groups=len(wg), scale=float(factor),
        scaled=scale == "mean",
        ess=float(wg.sum() ** 2 / (wg**2).sum()), min=float(wg.min()), max=float(wg.max()))
    return replace(problem, weights=w_rows), info, info_w
