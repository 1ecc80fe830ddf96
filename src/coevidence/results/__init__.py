"""Fitted-result classes: one immutable interface (tidy, glance, summary) for every estimator."""

from coevidence.results.base import GLANCE_KEYS, TIDY_COLUMNS, FrozenDict, ResultBase
from coevidence.results.compare import STARS, ComparisonTable, compare

__all__ = ["GLANCE_KEYS", "STARS", "TIDY_COLUMNS", "ComparisonTable", "FrozenDict", "ResultBase",
           "compare"]
