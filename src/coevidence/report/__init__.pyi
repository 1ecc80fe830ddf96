# Type checkers see the report function: at run time ``coevidence.report`` is this package,
# made callable (see __init__.py), so ``cv.report(study, ...)`` has the function's signature.
from coevidence.report.api import ReportPage as ReportPage
from coevidence.report.api import report as report

__all__ = ["ReportPage", "report"]
