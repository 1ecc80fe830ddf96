"""Model-implied trajectories by TA model, with confidence bands.

Examples
--------
>>> import matplotlib
>>> matplotlib.use("Agg")
>>> ax = plot_trajectories(res)  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["plot_trajectories", "trajectory_frame"]


def trajectory_frame(result, times=None, conf_level: float | None = None, *,
                     arm: str | None = None, time: str | None = None) -> pd.DataFrame:
    """Population-level predicted outcome per arm and time with pointwise CIs.

    The marginal means of :func:`coevidence.marginal_means` (time-varying covariates at each
    wave's own values), with the result's covariance and df method.

    Parameters
    ----------
    result : MixedResult (from :func:`coevidence.fit_growth` or :func:`coevidence.fit_mixed`)
    times : sequence of float, optional
        Default: the observed time values.
    conf_level : float, optional
    arm, time : str, optional
        As in :func:`coevidence.contrast`.

    Returns
    -------
    DataFrame with ``arm, time, estimate, std_error, df, conf_low, conf_high``.

    Examples
    --------
    >>> trajectory_frame(res).columns.tolist()  # doctest: +SKIP
    ['arm', 'time', 'estimate', 'std_error', 'df', 'conf_low', 'conf_high']
    """
    from coevidence.models.mixed.contrasts import marginal_means

    mm = marginal_means(result, at=times, conf_level=conf_level, arm=arm, time=time)
    out = mm[["arm", "time", "estimate", "std_error", "df", "conf_low", "conf_high"]].astype(
        {"time": float})
    # marginal_means lists arms within waves; a trajectory is waves within arms
    arms = pd.Categorical(out["arm"], categories=list(dict.fromkeys(out["arm"])))
    return out.iloc[np.lexsort((out["time"].to_numpy(), arms.codes))].reset_index(drop=True)


def plot_trajectories(
    result,
    ax=None,
    times=None,
    conf_level: float | None = None,
    observed: bool = True,
    colors: dict | None = None,
    title: str | None = None,
    *,
    arm: str | None = None,
    time: str | None = None,
):
    """Plot model-implied mean trajectories by TA model with confidence bands.

    Parameters
    ----------
    result : MixedResult from :func:`coevidence.fit_growth`
    ax : matplotlib Axes, optional
        Drawn on a new figure if not given.
    times : sequence of float, optional
    conf_level : float, optional
        Band level; default the result's.
    observed : bool, default True
        Add the observed arm means at each wave as points.
    colors : dict arm -> colour, optional
    title : str, optional

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> ax = plot_trajectories(res, observed=False)  # doctest: +SKIP
    """
    import matplotlib.pyplot as plt

    from coevidence.models.mixed.contrasts import _view

    view = _view(result, arm, time)
    frame = trajectory_frame(result, times=times, conf_level=conf_level, arm=view.arm,
                             time=view.time)
    outcome = result._info.outcome
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    palette = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0", "C1", "C2", "C3"])
    level = result.conf_level if conf_level is None else conf_level
    for i, (a, g) in enumerate(frame.groupby("arm", sort=False)):
        color = (colors or {}).get(a, palette[i % len(palette)])
        ax.plot(g["time"], g["estimate"], color=color, label=str(a), lw=2)
        ax.fill_between(g["time"], g["conf_low"], g["conf_high"], color=color, alpha=0.2,
                        lw=0)
        if observed:
            obs = view.frame[view.frame[view.arm].astype(str) == str(a)]
            means = obs.groupby(view.time, observed=True)[outcome].mean()
            ax.plot(means.index, means.to_numpy(), "o", color=color, ms=4, alpha=0.8)
    ax.set_xlabel(view.time)
    ax.set_ylabel(outcome)
    ax.set_title(title or f"{outcome}: model-implied trajectories ({level:.0%} CI)")
    ax.legend(title=view.arm, frameon=False)
    return ax
