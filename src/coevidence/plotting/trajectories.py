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
from scipy import stats

__all__ = ["plot_trajectories", "trajectory_frame"]


def trajectory_frame(result, times=None, conf_level: float | None = None) -> pd.DataFrame:
    """Population-level predicted outcome per arm and time with pointwise CIs.

    Uses the result's covariance and df method (the df of each point's contrast).

    Parameters
    ----------
    result : MixedResult from :func:`coevidence.fit_growth`
    times : sequence of float, optional
        Default: the observed time values.
    conf_level : float, optional

    Returns
    -------
    DataFrame with ``arm, time, estimate, std_error, df, conf_low, conf_high``.

    Examples
    --------
    >>> trajectory_frame(res).columns.tolist()  # doctest: +SKIP
    ['arm', 'time', 'estimate', 'std_error', 'df', 'conf_low', 'conf_high']
    """
    from coevidence.models.mixed.contrasts import _grid, _spec

    spec = _spec(result)
    level = result.conf_level if conf_level is None else float(conf_level)
    if times is None:
        times = sorted(spec.frame[spec.time].unique())
    b, V = result.params.to_numpy(), result.vcov.to_numpy()  # noqa: N806
    rows = []
    for arm in spec.arms:
        for t in times:
            x = result.fixed_matrix(_grid(result, arm, t))[0]
            est, se = float(x @ b), float(np.sqrt(x @ V @ x))
            df = result.df_for(x)
            q = stats.t.ppf(0.5 + level / 2, df) if np.isfinite(df) else stats.norm.ppf(0.5 + level / 2)
            rows.append({"arm": arm, "time": float(t), "estimate": est, "std_error": se,
                         "df": df, "conf_low": est - q * se, "conf_high": est + q * se})
    return pd.DataFrame(rows)


def plot_trajectories(
    result,
    ax=None,
    times=None,
    conf_level: float | None = None,
    observed: bool = True,
    colors: dict | None = None,
    title: str | None = None,
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

    from coevidence.models.mixed.contrasts import _spec

    spec = _spec(result)
    frame = trajectory_frame(result, times=times, conf_level=conf_level)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    palette = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0", "C1", "C2", "C3"])
    level = result.conf_level if conf_level is None else conf_level
    for i, (arm, g) in enumerate(frame.groupby("arm", sort=False)):
        color = (colors or {}).get(arm, palette[i % len(palette)])
        ax.plot(g["time"], g["estimate"], color=color, label=str(arm), lw=2)
        ax.fill_between(g["time"], g["conf_low"], g["conf_high"], color=color, alpha=0.2,
                        lw=0)
        if observed:
            obs = spec.frame[spec.frame[spec.arm].astype(str) == str(arm)]
            means = obs.groupby(spec.time)[spec.outcome].mean()
            ax.plot(means.index, means.to_numpy(), "o", color=color, ms=4, alpha=0.8)
    ax.set_xlabel(spec.time)
    ax.set_ylabel(spec.outcome)
    ax.set_title(title or f"{spec.outcome}: model-implied trajectories ({level:.0%} CI)")
    ax.legend(title=spec.arm, frameon=False)
    return ax
