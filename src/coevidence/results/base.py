"""The interface every fitted result in coevidence shares.

A result is immutable and silent: fitting returns it, nothing is printed. Data come out as
pandas objects with stable snake_case names (``tidy()``, ``glance()``); text and HTML are
renderings of those data (``summary()``, ``repr``, ``_repr_html_``).
"""

from __future__ import annotations

import html
from abc import ABC, abstractmethod
from typing import Any

import pandas as pd

__all__ = ["ResultBase", "TIDY_COLUMNS"]

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
