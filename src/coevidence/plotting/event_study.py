"""Event-study plot: effects and confidence intervals by event time, pre-periods marked."""

from __future__ import annotations

from typing import Any

import numpy as np

from coevidence.exceptions import OptionError

__all__ = ["plot_event_study"]


def plot_event_study(
    result: Any,
    ax: Any = None,
    *,
    level: object | None = None,
    conf_level: float = 0.95,
    uniform: bool = False,
    reference_line: bool = True,
    title: str | None = None,
) -> Any:
    """Plot event-time effects with confidence intervals; pre-treatment periods are marked.

    Parameters
    ----------
    result : EventStudyResult or EffectTable
        A fit from :func:`coevidence.fit_event_study` (its ``aggregate("event")`` is plotted) or
        an event aggregation already computed (e.g. ``res.aggregate("event", balance_e=2)``).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on (a new figure is made otherwise).
    level : optional
        One ``by`` level; default: every level, side by side.
    conf_level : float
        Pointwise interval level.
    uniform : bool
        Draw the uniform (sup-t) bands instead (needs a fit with ``bootstrap_reps=``).
    reference_line : bool
        Dashed vertical line between the last pre-period and treatment start, and a zero line.
    title : str, optional

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import coevidence as cv
    >>> from coevidence.datasets.panel import load_mpdta
    >>> es = cv.fit_event_study(load_mpdta(), "lemp", unit="countyreal", time="year",
    ...                         first_treated="first.treat")
    >>> ax = cv.plot_event_study(es)
    >>> ax.get_xlabel()
    'Periods since treatment start (event time)'
    """
    import matplotlib.pyplot as plt

    table = result.aggregate("event", level=level) if hasattr(result, "aggregate") else result
    fr = table.frame(conf_level)
    if "event_time" not in fr:
        raise OptionError("plot_event_study needs an event-time aggregation (aggregate('event'))")
    fr = fr[~fr["overall"]] if "overall" in fr else fr
    if uniform:
        if "uniform_low" not in fr:
            raise OptionError("uniform bands need a fit with bootstrap_reps=<draws>")
        lo_col, hi_col, what = "uniform_low", "uniform_high", "uniform band"
    else:
        lo_col, hi_col, what = "conf_low", "conf_high", f"{conf_level:.0%} CI"
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    levels = list(dict.fromkeys(fr["level"])) if "level" in fr else [None]
    width = 0.15 if len(levels) > 1 else 0.0
    offsets = (np.arange(len(levels)) - (len(levels) - 1) / 2) * width
    for off, lev in zip(offsets, levels, strict=True):
        sub = fr if lev is None else fr[fr["level"] == lev]
        e = sub["event_time"].to_numpy(float)
        est = sub["estimate"].to_numpy(float)
        lo, hi = sub[lo_col].to_numpy(float), sub[hi_col].to_numpy(float)
        pre = e < 0
        name = "" if lev is None else f"{lev}: "
        for mask, color, marker, lab in (
            (pre, "tab:gray", "o", "pre-treatment"),
            (~pre, "tab:blue", "s", "post-treatment"),
        ):
            if not mask.any():
                continue
            if lev is not None:
                color = None
            ax.errorbar(
                e[mask] + off,
                est[mask],
                yerr=[est[mask] - lo[mask], hi[mask] - est[mask]],
                fmt=marker,
                color=color,
                capsize=3,
                label=f"{name}{lab} ({what})",
                mfc="white" if lab == "pre-treatment" else None,
            )
    if reference_line:
        ax.axhline(0, color="black", lw=0.8)
        ax.axvline(-0.5, color="gray", ls="--", lw=0.8)
    ax.set_xlabel("Periods since treatment start (event time)")
    ax.set_ylabel("Effect estimate")
    est_label = table.info.get("estimator", "") if hasattr(table, "info") else ""
    ax.set_title(title if title is not None else f"Event study ({est_label})".replace(" ()", ""))
    ax.legend(fontsize="small")
    return ax
