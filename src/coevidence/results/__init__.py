"""Fitted-result classes: one immutable interface (tidy, glance, summary) for every estimator."""

from coevidence.results.base import TIDY_COLUMNS, ResultBase

__all__ = ["ResultBase", "TIDY_COLUMNS"]
