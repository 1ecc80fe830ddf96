"""Results of :func:`simple_slopes` and :func:`johnson_neyman` (the shared result contract)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from coevidence.results.base import ResultBase, freeze, glance_frame, read_only, tidy_frame

__all__ = ["JohnsonNeymanResult", "SimpleSlopesResult"]


def _label(focal: str, moderator: str, value: float) -> str:
    return f"{focal} | {moderator}={float(value):.6g}"


def _labels(focal: str, moderator: str, values: np.ndarray) -> list[str]:
    out = [_label(focal, moderator, v) for v in values]
    if len(set(out)) != len(out):  # values closer than 6 significant digits
        out = [f"{focal} | {moderator}={float(v)!r}" for v in values]
    return out


class _SlopeResult(ResultBase):
    """Shared parts: slopes at moderator values with SE and df."""

    _estimator = "slopes"

    def _init_slopes(self, *, focal, moderator, values, estimate, std_error, df, conf_level,
                     meta, info) -> None:
        self.focal: str = focal
        self.moderator: str = moderator
        self._values = read_only(np.asarray(values, dtype=float))
        self._est = read_only(np.asarray(estimate, dtype=float))
        self._se = read_only(np.asarray(std_error, dtype=float))
        self._df = read_only(np.asarray(df, dtype=float))
        self.conf_level: float = float(conf_level)
        self.outcome = meta.get("outcome")
        self.nobs = meta.get("nobs")
        self.cov_type: str = meta.get("cov_type") or "model"
        self.df_method: str = meta.get("df_method") or "none"
        self.info = freeze(dict(info))

    @property
    def estimate(self) -> np.ndarray:
        """Slopes (read-only array, one per moderator value)."""
        return self._est

    @property
    def std_error(self) -> np.ndarray:
        """Standard errors of the slopes (read-only)."""
        return self._se

    @property
    def df(self) -> np.ndarray:
        """Degrees of freedom of each slope's t test (read-only)."""
        return self._df

    def tidy(self, conf_level: float | None = None) -> pd.DataFrame:
        """One row per moderator value: ``"<focal> | <moderator>=<value>"``."""
        level = self._level(conf_level)
        return tidy_frame(_labels(self.focal, self.moderator, self._values), self._est,
                          self._se, self._df, level)

    def frame(self, conf_level: float | None = None) -> pd.DataFrame:
        """:meth:`tidy` with the moderator value as a numeric column (for plotting/joining)."""
        t = self.tidy(conf_level)
        t.insert(1, self.moderator, np.asarray(self._values))
        return t

    def _glance_extra(self) -> dict[str, Any]:
        return {}

    def glance(self) -> pd.DataFrame:
        """One row: estimator, outcome, nobs, cov_type, df_method, focal, moderator, ..."""
        return glance_frame(estimator=self._estimator, outcome=self.outcome, nobs=self.nobs,
                            cov_type=self.cov_type, df_method=self.df_method,
                            focal=self.focal, moderator=self.moderator,
                            **self._glance_extra(), conf_level=self.conf_level)

    def _summary_head(self) -> list[str]:
        held = self.info.get("held_at_zero") or []
        cond = self.info.get("condition") or {}
        lines = [f"Outcome: {self.outcome}    observations: {self.nobs}",
                 (f"Slope of {self.focal!r} by {self.moderator!r}; SEs from the fit's "
                 f"{self.cov_type} covariance; t tests with {self.info.get('df_source')} "
                 f"({self.df_method})")]
        if cond:
            lines.append("Other interacting variables at: "
                         + ", ".join(f"{k}={v:g}" for k, v in cond.items()))
        if held:
            lines.append("Held at 0 (reference): " + ", ".join(held))
        return lines

    def summary(self) -> str:
        t = self.tidy()
        body = t.to_string(index=False, float_format=lambda v: f"{v:.4g}")
        return "\n".join([self._title, *self._summary_head(), "", body])


class SimpleSlopesResult(_SlopeResult):
    """Slopes of a focal variable at chosen moderator values (from :func:`simple_slopes`).

    Attributes
    ----------
    focal, moderator : str
    at : numpy.ndarray
        The moderator values (read-only).
    estimate, std_error, df : numpy.ndarray
    conf_level : float
    info : FrozenDict
        ``condition``, ``held_at_zero``, ``df_source``.
    """

    _estimator = "simple_slopes"
    _title = "Simple slopes"

    def __init__(self, *, focal, moderator, at, estimate, std_error, df, conf_level, meta,
                 info) -> None:
        self._init_slopes(focal=focal, moderator=moderator, values=at, estimate=estimate,
                          std_error=std_error, df=df, conf_level=conf_level, meta=meta,
                          info=info)
        self._freeze()

    @property
    def at(self) -> np.ndarray:
        """The moderator values (read-only)."""
        return self._values


class JohnsonNeymanResult(_SlopeResult):
    """Johnson-Neyman bounds and regions of significance (from :func:`johnson_neyman`).

    Attributes
    ----------
    bounds : tuple of float
        Moderator values where the ``conf_level`` interval of the slope touches 0 (sorted).
    regions : tuple of (float, float)
        Intervals of the moderator where the slope is significant (ends may be +/- inf).
    range : (float, float)
        Moderator range of interest (observed range by default).
    bounds_in_range : tuple of bool
    conf_level : float
        The level the bounds were solved at; ``tidy(conf_level=...)`` changes the intervals
        at the same moderator values, not the bounds.
    """

    _estimator = "johnson_neyman"
    _title = "Johnson-Neyman regions of significance"

    def __init__(self, *, focal, moderator, bounds, regions, range, points, estimate,
                 std_error, df, grid, grid_estimate, grid_se, grid_df, conf_level, meta,
                 info) -> None:
        self._init_slopes(focal=focal, moderator=moderator, values=points, estimate=estimate,
                          std_error=std_error, df=df, conf_level=conf_level, meta=meta,
                          info=info)
        self.bounds: tuple[float, ...] = tuple(float(b) for b in bounds)
        self.regions: tuple[tuple[float, float], ...] = tuple(
            (float(a), float(b)) for a, b in regions)
        self.range: tuple[float, float] = (float(range[0]), float(range[1]))
        self.bounds_in_range: tuple[bool, ...] = tuple(
            bool(self.range[0] <= b <= self.range[1]) for b in self.bounds)
        self._grid = read_only(grid)
        self._grid_est = read_only(grid_estimate)
        self._grid_se = read_only(grid_se)
        self._grid_df = read_only(grid_df)
        self._freeze()

    def _glance_extra(self) -> dict[str, Any]:
        b = list(self.bounds) + [np.nan, np.nan]
        return {"n_bounds": len(self.bounds), "bound_1": b[0], "bound_2": b[1],
                "range_low": self.range[0], "range_high": self.range[1]}

    def describe(self) -> str:
        """The regions of significance in words."""
        lvl = f"{1 - self.conf_level:.3g}"
        if not self.regions:
            return (f"The slope of {self.focal!r} is not significant (alpha {lvl}) at any value "
                    f"of {self.moderator!r}.")
        parts = []
        for lo, hi in self.regions:
            if np.isinf(lo) and np.isinf(hi):
                parts.append("every value")
            elif np.isinf(lo):
                parts.append(f"{self.moderator} < {hi:.4g}")
            elif np.isinf(hi):
                parts.append(f"{self.moderator} > {lo:.4g}")
            else:
                parts.append(f"{lo:.4g} < {self.moderator} < {hi:.4g}")
        obs = f"observed range {self.range[0]:.4g} to {self.range[1]:.4g}"
        return (f"The slope of {self.focal!r} differs from 0 (alpha {lvl}) for "
                + " or ".join(parts) + f" ({obs}).")

    def summary(self) -> str:
        return "\n".join([super().summary(), "", self.describe(),
                          (f"Bounds: {', '.join(f'{b:.6g}' for b in self.bounds) or 'none'}"
                          f" ({self.info.get('method')})")])

    def plot(self, ax: Any = None, *, conf_level: float | None = None, shade: bool = True) -> Any:
        """Slope of ``focal`` with its confidence band against the moderator, regions shaded.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Draw here (default: a new figure, not pyplot).
        conf_level : float, optional
            Level of the band (default: the level of the bounds).
        shade : bool, default True
            Shade the regions of significance (within the plotted range).

        Returns
        -------
        matplotlib.axes.Axes
        """
        from matplotlib.figure import Figure
        from scipy import stats

        level = self._level(conf_level)
        if ax is None:
            ax = Figure(figsize=(6, 4)).subplots()
        x, est, se, df = self._grid, self._grid_est, self._grid_se, self._grid_df
        q = np.where(np.isfinite(df), stats.t.ppf(0.5 + level / 2, np.where(np.isfinite(df), df, 1)),
                     stats.norm.ppf(0.5 + level / 2))
        ax.plot(x, est, color="C0", lw=1.8, label=f"slope of {self.focal}")
        ax.fill_between(x, est - q * se, est + q * se, color="C0", alpha=0.2,
                        label=f"{level:.0%} CI")
        ax.axhline(0, color="black", lw=0.8)
        lo, hi = self.range
        if shade:
            for k, (a, b) in enumerate(self.regions):
                a, b = max(a, lo), min(b, hi)
                if a < b:
                    ax.axvspan(a, b, color="C2", alpha=0.12,
                               label="region of significance" if k == 0 else None)
        for b in self.bounds:
            if lo <= b <= hi:
                ax.axvline(b, color="C3", ls="--", lw=0.9)
        ax.set_xlim(lo, hi)
        ax.set_xlabel(self.moderator)
        ax.set_ylabel(f"slope of {self.focal}")
        ax.set_title("Johnson-Neyman plot")
        ax.legend(loc="best", fontsize="small")
        return ax
