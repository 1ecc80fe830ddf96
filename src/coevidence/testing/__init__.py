"""Tools for measure authors' own test suites.

:func:`check_result` checks that a fitted result meets the result contract (see
:mod:`coevidence.results.base`). :func:`check_measure` is a conformance check for a :class:`~coevidence.schemas.measure.
MeasureDefinition` (built-in, plugin or your own). :mod:`coevidence.testing.strategies` has
hypothesis strategies for item responses and definitions; it needs the optional extra
``coevidence[testing]`` and is imported only when used.

Examples
--------
>>> from coevidence.testing import check_measure
>>> from coevidence.measures.registry import get_measure
>>> bool(check_measure(get_measure("aim"))["passed"].all())
True
"""

from __future__ import annotations

import importlib
from typing import Any

from coevidence.testing._check import CHECKS, check_measure, parametrize_with_checks
from coevidence.testing._results import RESULT_CHECKS, check_result

__all__ = ["CHECKS", "RESULT_CHECKS", "check_measure", "check_result", "parametrize_with_checks",
           "strategies"]


def __getattr__(name: str) -> Any:
    if name == "strategies":
        return importlib.import_module("coevidence.testing.strategies")
    raise AttributeError(f"module 'coevidence.testing' has no attribute {name!r}")
