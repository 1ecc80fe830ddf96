"""Piecewise time for growth models (sustainment): the pieces before, during and after TA,
extra knots after its end, the level shift at the end, and which pieces the data can inform."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from coevidence.exceptions import EstimabilityWarning, ModelSpecificationError, OptionError

__all__ = ["PIECES", "add_pieces", "check_pieces"]

#: the default piecewise time columns added to a copy of the panel
PIECES = ("pre_years", "ta_years", "post_years")


def _knot_label(k: float) -> str:
    return f"{float(k):g}".replace(".", "_").replace("-", "m")


def add_pieces(data: pd.DataFrame, knots, post_shift: bool):
    """Add the piecewise time columns to ``data`` (a copy); returns (pieces, shifts)."""
    ks = [float(k) for k in knots]
    if any(not np.isfinite(k) or k <= 0 for k in ks) or ks != sorted(set(ks)):
        raise OptionError(f"knots must be increasing positive years after TA ends, got {knots!r}")
    ys, ye = data["years_since_start"].to_numpy(float), data["years_since_end"].to_numpy(float)
    data["pre_years"] = np.minimum(ys, 0.0)
    data["ta_years"] = np.maximum(ys, 0.0) - ye
    bounds = [0.0, *ks, np.inf]
    post = []
    for i in range(len(bounds) - 1):
        name = "post_years" if i == 0 else f"post_years_after_{_knot_label(bounds[i])}y"
        data[name] = np.clip(ye - bounds[i], 0.0, bounds[i + 1] - bounds[i])
        post.append(name)
    shifts: tuple[str, ...] = ()
    if post_shift:
        data["post_ta"] = np.where(np.isnan(ye), np.nan, (ye > 0).astype(float))
        shifts = ("post_ta",)
    return ("pre_years", "ta_years", *post), shifts


def check_pieces(obs: pd.DataFrame, pieces, shifts, min_years: float):
    """Drop pieces (and shifts) without variation, flag the ones too short to report."""
    keep, short, dropped = [], [], []
    for p in pieces:
        v = obs[p].to_numpy(float)
        n_distinct = len(np.unique(v[np.isfinite(v)]))
        span = float(np.nanmax(v) - np.nanmin(v)) if len(v) else 0.0
        if n_distinct < 2:
            dropped.append(p)
            continue
        keep.append(p)
        if span < min_years:
            short.append(p)
            warnings.warn(
                f"growth piece {p!r} spans {span:.2g} years with {n_distinct} distinct values in "
                f"the data: too short to estimate its slope reliably; it stays in the model but "
                "is left out of the default contrasts and slopes (ask for it by name)",
                EstimabilityWarning, stacklevel=4)
    kept_shifts = []
    for s_ in shifts:
        if obs[s_].nunique() < 2:
            dropped.append(s_)
        else:
            kept_shifts.append(s_)
    if dropped:
        warnings.warn(
            f"growth piece(s) {dropped} have no variation in the data (e.g. no observation "
            "before TA starts, or none after it ends): dropped from the model",
            EstimabilityWarning, stacklevel=4)
    if not keep:
        raise ModelSpecificationError("no growth piece varies in the data")
    return tuple(keep), tuple(kept_shifts), tuple(short)
