"""The study report: ``coevidence.report(study, models=None, *, path=None, ...)``.

``coevidence.report`` is this package, and the package is callable: ``cv.report(study)`` runs
:func:`coevidence.report.api.report`, which documents the arguments (the name stays the same
object however it was reached, since importing a submodule such as ``coevidence.report.html``
binds the package to it).

The page opens with one headline block per outcome: the primary estimand named (for a growth
model, the arm x time slope difference, i.e. how much faster the outcome changed per wave under
co-creation than under push), its estimate and interval, and one plain sentence with the test.
A forest plot of the contrasts across outcomes, the units per level by arm, the observed means
with intervals clustered at the unit of assignment, each model's tables and trajectories, and
what could not be scored follow. Figures are embedded PNGs: the page is one file. For example
``cv.report(cv.load_example_study(), path="report.html")`` fits the default growth model of
every outcome and writes the page.
"""

from __future__ import annotations

import sys
import types
from typing import Any

__all__ = ["ReportPage", "report"]


def __getattr__(name: str) -> Any:
    if name == "ReportPage":
        from coevidence.report.api import ReportPage

        return ReportPage
    if name == "__signature__":  # inspect.signature(cv.report) shows the report's arguments
        import inspect

        from coevidence.report.api import report as _report

        return inspect.signature(_report)
    raise AttributeError(f"module 'coevidence.report' has no attribute {name!r}")


class _CallableModule(types.ModuleType):
    """The package, callable as :func:`coevidence.report.api.report`."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from coevidence.report.api import report as _report

        return _report(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
report = sys.modules[__name__]  # coevidence.report.report is the package: one object
