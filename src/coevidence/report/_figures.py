"""Report figures (matplotlib ``Figure`` objects, never pyplot) and clustered observed means."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from coevidence.report._estimands import Headline
    from coevidence.report._format import Labels

__all__ = ["clustered_means", "forest_figure", "means_figure"]


def clustered_means(panel: pd.DataFrame, outcome: str, *, arm: str = "ta_model",
                    wave: str = "wave", cluster: str = "provider_id",
                    conf_level: float = 0.95) -> pd.DataFrame:
    """Observed arm x wave means with confidence intervals that respect the clustering.

    The mean is the plain mean of the observed unit values; its standard error is the
    cluster-robust (CR1) one, ``sqrt(G / (G - 1) * sum_g (sum_{i in g} (y_i - ybar))^2) / n``
    over the ``G`` clusters of the cell (the units of assignment, e.g. providers), and the
    interval uses t with ``G - 1`` df: with 6 providers per arm the interval is as wide as six
    independent pieces of information allow, not as narrow as 90 organisations would suggest.

    Returns
    -------
    DataFrame with ``arm, wave, mean, std_error, df, conf_low, conf_high, n, n_clusters``.
    """
    from scipy import stats

    rows = []
    data = panel[[arm, wave, cluster, outcome]].dropna(subset=[outcome])
    for (a, w), part in data.groupby([arm, wave], observed=True, sort=True):
        y = part[outcome].to_numpy(float)
        n = len(y)
        m = float(y.mean())
        sums = pd.Series(y - m).groupby(part[cluster].to_numpy()).sum().to_numpy()
        g = len(sums)
        if g > 1:
            se = float(np.sqrt(g / (g - 1) * np.sum(sums**2)) / n)
            q = stats.t.ppf(0.5 + conf_level / 2, g - 1)
            lo, hi = m - q * se, m + q * se
        else:
            se = lo = hi = np.nan
        rows.append({"arm": a, "wave": w, "mean": m, "std_error": se, "df": float(g - 1),
                     "conf_low": lo, "conf_high": hi, "n": n, "n_clusters": g})
    return pd.DataFrame(rows)


def means_figure(means: pd.DataFrame, outcome: str, labels: Labels, *, cluster_label: str,
                 conf_level: float = 0.95) -> Figure:
    """Observed means by arm and wave with clustered CIs."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.4))
    ax = fig.subplots()
    arms = list(dict.fromkeys(means["arm"].astype(str)))
    offsets = np.linspace(-0.06, 0.06, len(arms)) if len(arms) > 1 else [0.0]
    for off, a in zip(offsets, arms, strict=True):
        part = means[means["arm"].astype(str) == a]
        x = part["wave"].to_numpy(float) + off
        y = part["mean"].to_numpy(float)
        err = np.vstack([y - part["conf_low"].to_numpy(float), part["conf_high"].to_numpy(float) - y])
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=labels.arm(a))
    ax.set_xlabel("Wave")
    ax.set_ylabel(labels.outcome(outcome))
    ax.legend(title="Arm", frameon=False)
    ax.set_title(f"Observed means ({round(conf_level * 100):g}% CI clustered by {cluster_label})",
                 fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def forest_figure(headlines: Sequence[Headline], labels: Labels) -> Figure:
    """Primary (filled) and secondary (open) contrasts of every outcome on one axis."""
    from matplotlib.figure import Figure

    rows = []
    for h in headlines:
        rows.append((f"{labels.outcome(h.outcome)}\n{h.primary.label}", h.primary, True))
        for s in h.secondary[1:]:  # the last-wave difference (baseline is not an effect)
            rows.append((f"{labels.outcome(h.outcome)}\n{s.label}", s, False))
    height = 0.9 + 0.62 * len(rows)
    fig = Figure(figsize=(7.2, height))
    ax = fig.subplots()
    ys = np.arange(len(rows))[::-1]
    for y, (_, est, primary) in zip(ys, rows, strict=True):
        color = "#1f5fa8" if primary else "#6b7280"
        ax.plot([est.conf_low, est.conf_high], [y, y], color=color, lw=2.2 if primary else 1.4)
        ax.plot(est.estimate, y, "o", color=color, ms=8 if primary else 6,
                mfc=color if primary else "white")
    ax.axvline(0, color="#b42318", lw=1, ls="--")
    ax.set_yticks(ys, [r[0] for r in rows], fontsize=8)
    level = round(headlines[0].conf_level * 100) if headlines else 95
    ax.set_xlabel(f"Estimate ({level:g}% CI); filled: primary estimand", fontsize=9)
    ax.set_title("Contrasts across outcomes", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    fig.tight_layout()
    return fig
