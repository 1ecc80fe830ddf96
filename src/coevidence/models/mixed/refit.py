"""Refit a fitted mixed model to new outcome vectors on the same design (issue 17).

:func:`refit_mixed` (also ``MixedResult.refit``) refits the model of a fitted result to a new
outcome -- same rows, same fixed- and random-effects model matrices -- reusing everything that
depends only on X and Z (the engine's structure analysis and the ``Z'Z``, ``Z'X``, ``X'X``
cross-products); only ``Z'y``, ``X'y`` and ``y'y`` are recomputed. Inference is the same as a
fresh :func:`~coevidence.fit_mixed` (same df method, covariance type, confidence level). With
``warm_start=False`` (default) the optimizer starts where a fresh fit starts, so the numbers are
exactly those of ``fit_mixed`` on the new data; ``warm_start=True`` starts at the result's
theta (fewer deviance evaluations; the same optimum to the optimizer's tolerance).

An outcome with missing values changes the rows and so X and Z: the model is then fitted afresh
on the result's data with the new outcome (rows with a missing outcome dropped), as
``fit_mixed`` would. Models fitted by the statsmodels engine are always refitted afresh.

Examples
--------
>>> import numpy as np, coevidence as cv
>>> from coevidence.models.mixed.datasets import load_dataset
>>> data = load_dataset("sleepstudy")
>>> res = cv.fit_mixed("reaction ~ days + (days | subject)", data)
>>> y = data["reaction"].to_numpy() + np.random.default_rng(1).normal(0, 10, len(data))
>>> new = res.refit(y)
>>> fresh = cv.fit_mixed("reaction ~ days + (days | subject)", data.assign(reaction=y))
>>> bool(np.allclose(new.params, fresh.params, rtol=1e-10, atol=0))
True
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from coevidence.exceptions import ModelSpecificationError

__all__ = ["refit_growth", "refit_mixed"]


def _options(result) -> dict[str, Any]:
    cov_type = "cr2" if result.cov_type == "cr2" else "model"
    df_method = result.df_method if result.df_method != "bell_mccaffrey" else "satterthwaite"
    return {"reml": bool(result.reml), "df_method": df_method, "cov_type": cov_type,
            "conf_level": float(result.conf_level)}


def _default_cluster(result, cluster):
    if cluster is not None or result.cov_type != "cr2":
        return cluster
    growth = getattr(result, "growth", None)
    design = getattr(growth, "design", None)
    return getattr(design, "assignment_level", None)


def _outcome_vector(result, y) -> np.ndarray:
    """``y`` as a float vector aligned with the rows of the fit (a Series by its index)."""
    info = result._info
    if isinstance(y, pd.Series) and not y.index.equals(pd.RangeIndex(len(y))) and (
            len(y) != len(info.row_index) or not y.index.equals(info.row_index)):
        y = y.reindex(info.row_index)
    y = np.asarray(y, dtype=float)
    if y.shape != (len(info.row_index),):
        raise ModelSpecificationError(
            f"refit: the outcome must have one value per row of the fit ({len(info.row_index)}), "
            f"got shape {y.shape}")
    return y


def _refitter(result):
    """A :class:`~._fast._refit.Refitter` for a fast-engine result (None for other engines)."""
    from coevidence.models.mixed._fast._refit import Refitter

    fit = result._fit
    if fit.engine != "fast":
        return None
    at = fit.vcov_at
    struct = blocks = None
    if hasattr(at, "_pieces"):
        struct, blocks = at._pieces()
    return Refitter(result._problem, struct, blocks)


def refit_mixed(result, y, *, warm_start: bool = False, cluster: str | None = None,
                refitter=None, stacklevel: int = 2):
    """Refit ``result``'s model to the outcome ``y`` (one value per row of the fit).

    Parameters
    ----------
    result : MixedResult
        From :func:`~coevidence.fit_mixed` (or :func:`~coevidence.fit_growth`, whose design
        adjustments are not re-applied here: see :func:`refit_growth`).
    y : array-like or pandas.Series
        New outcome, one value per row used by the fit (a Series is aligned on the fit's row
        labels). Missing values change the rows: the model is then fitted afresh.
    warm_start : bool, default False
        Start the optimizer at ``result``'s theta instead of the engine's usual start.
    cluster : str, optional
        CR2 cluster column (``cov_type="cr2"`` results); default the growth model's assignment
        level, else the coarsest grouping factor (as ``fit_mixed``).
    refitter : optional
        A cached ``Refitter`` of this design (internal; built from ``result`` when omitted).

    Returns
    -------
    MixedResult
    """
    from coevidence.models.mixed.api import _assemble, _fit_mixed

    info = result._info
    yv = _outcome_vector(result, y)
    opts = _options(result)
    cluster = _default_cluster(result, cluster)
    data = info.data.copy()
    data[info.outcome] = yv
    if refitter is None and np.all(np.isfinite(yv)):
        refitter = _refitter(result)
    if refitter is None or not np.all(np.isfinite(yv)):
        engine = "fast" if result.engine == "fast" else "auto"
        return _fit_mixed(info.formula, data, engine=engine, cluster=cluster,
                          stacklevel=stacklevel + 2, **opts)
    start = refitter.internal_theta(result._fit) if warm_start else None
    fit = refitter.fit(yv, start=start)
    problem = replace(refitter.problem, y=yv)
    new_info = replace(info, data=data)
    return _assemble(fit, problem, new_info, opts["df_method"], opts["cov_type"], cluster,
                     opts["conf_level"], "", stacklevel + 1)


def refit_growth(result, y, data: pd.DataFrame | None = None, *, between_df: str = "auto",
                 warm_start: bool = False, refitter=None, stacklevel: int = 2):
    """Refit a :func:`~coevidence.fit_growth` result to outcome ``y``, design-aware as
    ``fit_growth`` (df bounds of between-cluster terms, design-df warnings).

    ``data``: the panel the result was fitted on (for the design checks on label columns; the
    result's own data when omitted). ``between_df`` as in ``fit_growth`` (not kept on the
    result). Equal to ``fit_growth`` on the panel with the new outcome.
    """
    from coevidence.models.mixed._design import design_guard
    from coevidence.models.mixed.growth import _design_inference

    growth = result.growth
    if growth is None or growth.design is None:
        raise ModelSpecificationError("refit_growth needs a result of fit_growth")
    yv = _outcome_vector(result, y)
    if not np.all(np.isfinite(yv)):
        raise ModelSpecificationError(
            "refit_growth: the outcome has missing values, which change the design; use "
            "fit_growth on the new panel")
    d = growth.design
    res = refit_mixed(result, yv, warm_start=warm_start, refitter=refitter,
                      stacklevel=stacklevel + 1)
    frame = data if data is not None else res._info.data
    res, design_info = _design_inference(res, frame, d.assignment_level, d.source, d.reason,
                                         d.random_slopes, growth.time_coding, between_df,
                                         growth.time)
    level = d.assignment_level
    design_guard(res, data, extra=[level] if level else (), stacklevel=stacklevel + 1)
    gframe = growth.frame.copy()
    if growth.outcome in gframe.columns:
        gframe[growth.outcome] = yv
    return res.with_growth(replace(growth, frame=gframe, design=design_info))

