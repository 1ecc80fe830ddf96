"""The interface every fitted result in coevidence shares.

A result is immutable and silent: fitting returns it, nothing is printed. Data come out as
pandas objects with stable snake_case names (``tidy()``, ``glance()``); text and HTML are
renderings of those data (``summary()``, ``repr``, ``_repr_html_``).
"""

from __future__ import annotations

import html
from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["ResultBase", "TIDY_COLUMNS", "tidy_frame", "wald_tests"]

#: Columns of every ``tidy()`` frame, in order (broom's vocabulary in snake_case).
TIDY_COLUMNS = (
    "term",
    "estimate",
    "std_error",
    "statistic",
    "df",
    "p_value",
    "conf_low",
    "conf_high",
)


def wald_tests(
    estimate: np.ndarray | float,
    std_error: np.ndarray | float,
    df: np.ndarray | float = np.inf,
    conf_level: float = 0.95,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Statistic, two-sided p-value and confidence limits of ``estimate / std_error``.

    A t reference distribution where ``df`` is finite, the standard normal where it is
    infinite or missing (z tests), element by element.

    Returns
    -------
    statistic, p_value, conf_low, conf_high : numpy.ndarray

    Examples
    --------
    >>> stat, p, lo, hi = wald_tests(2.0, 1.0, df=10)
    >>> round(float(p), 4), round(float(lo), 3)
    (0.0734, -0.228)
    """
    if not 0 < conf_level < 1:
        raise ValueError(f"conf_level must be in (0, 1), got {conf_level}")
    est = np.asarray(estimate, dtype=float)
    se = np.asarray(std_error, dtype=float)
    df = np.broadcast_to(np.asarray(df, dtype=float), np.broadcast(est, se).shape)
    stat = est / se
    finite = np.isfinite(df)
    dfx = np.where(finite, df, 1.0)
    p = np.where(finite, 2 * stats.t.sf(np.abs(stat), dfx), 2 * stats.norm.sf(np.abs(stat)))
    q = np.where(finite, stats.t.ppf(0.5 + conf_level / 2, dfx), stats.norm.ppf(0.5 + conf_level / 2))
    return stat, p, est - q * se, est + q * se


def tidy_frame(
    term: object,
    estimate: np.ndarray,
    std_error: np.ndarray,
    df: np.ndarray | float = np.inf,
    conf_level: float = 0.95,
) -> pd.DataFrame:
    """A ``tidy()`` frame with :data:`TIDY_COLUMNS` from estimates, SEs and df.

    Tests and intervals come from :func:`wald_tests` (t with finite df, z otherwise).

    Examples
    --------
    >>> tidy_frame(["a"], [1.0], [0.5]).columns.tolist() == list(TIDY_COLUMNS)
    True
    """
    est = np.asarray(estimate, dtype=float)
    se = np.asarray(std_error, dtype=float)
    stat, p, lo, hi = wald_tests(est, se, df, conf_level)
    return pd.DataFrame({
        "term": list(term),  # type: ignore[call-overload]
        "estimate": est,
        "std_error": se,
        "statistic": stat,
        "df": np.broadcast_to(np.asarray(df, dtype=float), est.shape),
        "p_value": p,
        "conf_low": lo,
        "conf_high": hi,
    })[list(TIDY_COLUMNS)]


class ResultBase(ABC):
    """Mixin giving every result ``repr``/``_repr_html_`` from ``summary``/``tidy``/``glance``.

    Subclasses implement :meth:`tidy`, :meth:`glance` and :meth:`summary`; they must not be
    mutated after construction (set attributes in ``__init__`` only; use
    ``functools.cached_property`` for expensive derived pieces).
    """

    @abstractmethod
    def tidy(self, conf_level: float = 0.95) -> pd.DataFrame:
        """One row per estimated term with :data:`TIDY_COLUMNS`."""

    @abstractmethod
    def glance(self) -> pd.DataFrame:
        """Exactly one row of model-level statistics."""

    @abstractmethod
    def summary(self) -> str:
        """A plain-text report (estimator, covariance type and df method always printed)."""

    def __repr__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        title = html.escape(type(self).__name__)
        parts = [f"<div class='coevidence-result'><strong>{title}</strong>"]
        parts.append(_frame_html(self.glance()))
        parts.append(_frame_html(self.tidy()))
        parts.append("</div>")
        return "".join(parts)

    def __setattr__(self, name: str, value: Any) -> None:
        if getattr(self, "_frozen", False):
            raise AttributeError(f"{type(self).__name__} is immutable; cannot set {name!r}")
        object.__setattr__(self, name, value)

    def _freeze(self) -> None:
        """Call at the end of ``__init__``: later attribute assignment raises."""
        object.__setattr__(self, "_frozen", True)


def _frame_html(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0)
