"""Power curves: analytic power against the number of clusters (or any size) or the effect size."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from coevidence.exceptions import OptionError

__all__ = ["plot_power_curve", "power_curve"]


def power_curve(design: str, *, vary: str = "J", values: Sequence[float] | None = None,
                es: float = 0.25, by: tuple[str, Sequence[Any]] | None = None,
                **params: Any) -> pd.DataFrame:
    """The data behind :func:`plot_power_curve`: one row per point.

    Columns: ``x`` (the varied quantity), ``power``, ``curve`` (the ``by`` value, or ``""``).

    Examples
    --------
    >>> d = power_curve("cra2", vary="J", values=[10, 20], es=0.4, rho2=0.1, n=10)
    >>> d["power"].round(3).tolist()
    [0.249, 0.493]
    """
    from coevidence.design.analytic import power

    if values is None:
        raise TypeError("give the values of the varied quantity as values=[...]")
    xs = [float(v) if vary == "es" else int(v) if float(v).is_integer() else float(v)
          for v in values]
    groups = [("", {})] if by is None else [(v, {by[0]: v}) for v in by[1]]
    rows = []
    for label, extra in groups:
        for x in xs:
            kw = {**params, **extra}
            if vary == "es":
                pw = power(design, es=x, **kw).value
            else:
                pw = power(design, es=es, **{**kw, vary: x}).value
            rows.append({"x": x, "power": pw, "curve": label})
    return pd.DataFrame(rows)


def plot_power_curve(
    design: str,
    *,
    vary: str = "J",
    values: Sequence[float] | None = None,
    es: float = 0.25,
    by: tuple[str, Sequence[Any]] | None = None,
    target: float | None = 0.8,
    simulated: pd.DataFrame | None = None,
    ax: Any = None,
    **params: Any,
) -> Any:
    """Plot analytic power against a sample size (``vary="J"``, ``"K"``, ``"n"``) or ``"es"``.

    Parameters
    ----------
    design : str
        A design of :func:`coevidence.power` (``"cra2"``, ``"cra3"``, ``"slopes_cra2"``, ...).
    vary : str
        The parameter on the x axis: a sample size of the design or ``"es"``.
    values : sequence of numbers
        Its values.
    es : float
        Effect size (when ``vary`` is a sample size).
    by : (str, sequence), optional
        One curve per value of another parameter, e.g. ``("rho2", [0.05, 0.1, 0.2])``.
    target : float, optional
        Draw a horizontal reference line at this power (None: no line).
    simulated : DataFrame, optional
        Simulation results to overlay as points with 95% Monte Carlo error bars: columns ``x``,
        ``power`` and ``mc_se`` (e.g. from :func:`coevidence.simulate_power` runs).
    ax : matplotlib Axes, optional
    **params
        The design's other parameters (PowerUpR names).

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import coevidence as cv
    >>> ax = cv.plot_power_curve("cra2", vary="J", values=range(10, 61, 10), es=0.3,
    ...                          by=("rho2", [0.05, 0.15]), n=10)
    >>> len(ax.lines) >= 2
    True
    """
    import matplotlib.pyplot as plt

    data = power_curve(design, vary=vary, values=values, es=es, by=by, **params)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    for label, g in data.groupby("curve", sort=False):
        name = f"{by[0]} = {label}" if by is not None else design
        ax.plot(g["x"], g["power"], marker="o", ms=3, label=name)
    if simulated is not None:
        missing = {"x", "power", "mc_se"} - set(simulated.columns)
        if missing:
            raise OptionError(f"simulated needs columns x, power, mc_se; missing {sorted(missing)}")
        ax.errorbar(simulated["x"], simulated["power"], yerr=1.96 * simulated["mc_se"],
                    fmt="s", color="black", capsize=3, label="simulated (95% MC error)")
    if target is not None:
        ax.axhline(target, color="grey", lw=0.8, ls="--")
    xlabel = {"es": "effect size", "J": "clusters (J)", "K": "top-level units (K)",
              "n": "units per cluster (n)"}.get(vary, vary)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("power")
    ax.set_ylim(0, 1.02)
    fixed = ", ".join(f"{k}={v}" for k, v in params.items())
    ax.set_title(f"{design}: " + (f"es={es}, " if vary != "es" else "") + fixed, fontsize=9)
    if by is not None or simulated is not None:
        ax.legend(fontsize=8)
    return ax
