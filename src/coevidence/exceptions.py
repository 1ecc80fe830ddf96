"""Typed exceptions and warnings raised by coevidence.

Every error a user can trigger subclasses :class:`CoevidenceError` *and* the builtin a caller
would already catch, so ``except ValueError`` keeps working. Warnings subclass
:class:`CoevidenceWarning`, so they can be filtered precisely::

    CoevidenceError
    ├── StudyValidationError(ValueError)      bad study data; carries ``failures``
    ├── MeasureError(ValueError)              bad measure definition or responses; ``failures``
    ├── ModelSpecificationError(ValueError)   a model the chosen engine cannot fit exactly
    ├── OptionError(ValueError)               an argument value a function does not accept
    │                                         (names the argument, the value, the choices)
    ├── TableReadError(ValueError)            a table file that cannot be read (names the file)
    ├── ConvergenceFailure(RuntimeError)      no optimizer attempt produced a usable fit
    └── MissingExtraError(ImportError)        an optional extra is needed (names the extra)

    CoevidenceWarning(UserWarning)
    ├── FitWarning                            non-convergence, singular fit, Hessian problems
    │   └── BoundaryFitWarning                a variance at 0 or a correlation at ±1
    ├── FewClustersWarning                    cluster-robust inference with few clusters
    ├── DesignDfWarning                       a between-cluster term tested with df far above
    │                                         the number of clusters it is assigned to
    ├── AgreementWarning                      respondent scores fail the agreement check
    │                                         their measure needs before aggregation
    ├── ReplicateStoreWarning                 a simulate_power part was corrupt or foreign
    │                                         (quarantined and re-run)
    ├── MissingDataWarning                    rows dropped (the count is in the message)
    ├── PluginLoadWarning                     a measure plugin failed to load
    └── UnverifiedMeasureWarning              a built-in definition not yet checked against its paper

Examples
--------
>>> from coevidence.exceptions import StudyValidationError
>>> issubclass(StudyValidationError, ValueError)
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "BoundaryFitWarning",
    "CoevidenceError",
    "CoevidenceWarning",
    "AgreementWarning",
    "ConvergenceFailure",
    "DesignDfWarning",
    "FAILURE_COLUMNS",
    "FewClustersWarning",
    "FitWarning",
    "MeasureError",
    "MissingDataWarning",
    "MissingExtraError",
    "ModelSpecificationError",
    "OptionError",
    "PluginLoadWarning",
    "ReplicateStoreWarning",
    "StudyValidationError",
    "TableReadError",
    "UnverifiedMeasureWarning",
]

#: Columns of every ``failures`` frame: where the problem is and which rule it broke.
FAILURE_COLUMNS = ("table", "row", "column", "value", "rule")

#: How many failures an error message lists before summarising the rest as a count.
MESSAGE_CAP = 20


class CoevidenceError(Exception):
    """Base class of every error raised by coevidence."""


class _FailuresError(CoevidenceError, ValueError):
    """An error that carries every problem found, as a frame with :data:`FAILURE_COLUMNS`."""

    def __init__(self, failures: pd.DataFrame, what: str = "data") -> None:
        import pandas as pd

        failures = pd.DataFrame(failures).reindex(columns=list(FAILURE_COLUMNS))
        self.failures: pd.DataFrame = failures.reset_index(drop=True)
        n = len(self.failures)
        lines = [f"{n} problem{'s' if n != 1 else ''} found in {what}:"]
        for rec in self.failures.head(MESSAGE_CAP).itertuples(index=False):
            row = "" if _isna(rec.row) else f" row {rec.row}"
            col = "" if _isna(rec.column) else f", column {rec.column!r}"
            val = "" if _isna(rec.value) else f", value {rec.value!r}"
            lines.append(f"  - table {rec.table!r}{row}{col}{val}: {rec.rule}")
        if n > MESSAGE_CAP:
            lines.append(f"  ... and {n - MESSAGE_CAP} more (see the `failures` attribute)")
        super().__init__("\n".join(lines))


def _isna(value: object) -> bool:
    try:
        return value is None or bool(value != value)  # NaN is the only value unequal to itself
    except (TypeError, ValueError):
        return False


class StudyValidationError(_FailuresError):
    """Study data broke one or more rules.

    Attributes
    ----------
    failures : pandas.DataFrame
        One row per problem with columns ``table``, ``row``, ``column``, ``value`` and ``rule``.
        ``row`` is the 0-based position in the input table (or the record's position in a list).
    """

    def __init__(self, failures: pd.DataFrame, what: str = "study data") -> None:
        super().__init__(failures, what)


class MeasureError(_FailuresError):
    """A measure definition or a table of item responses broke one or more rules."""

    def __init__(self, failures: pd.DataFrame, what: str = "item responses") -> None:
        super().__init__(failures, what)


class ModelSpecificationError(CoevidenceError, ValueError):
    """The requested model cannot be fitted exactly as specified (by this engine)."""


class OptionError(CoevidenceError, ValueError):
    """An argument value the function does not accept, or an argument that would be ignored.

    The message names the argument, the value given and what is accepted.
    """


class TableReadError(CoevidenceError, ValueError):
    """A table file cannot be read: not a regular file, too large, or not parseable as its
    format (bad encoding, malformed rows, empty, corrupt). The message names the file and the
    problem, never more of the file's contents than a short snippet.

    Attributes
    ----------
    path : str
        The file.
    """

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        super().__init__(f"Cannot read {self.path!r}: {problem}")


class ConvergenceFailure(CoevidenceError, RuntimeError):
    """No optimizer attempt produced a usable fit; ``attempts`` lists what was tried."""

    def __init__(self, message: str, attempts: object = None) -> None:
        super().__init__(message)
        self.attempts = attempts


class MissingExtraError(CoevidenceError, ImportError):
    """An optional dependency is missing; the message names the extra that installs it."""

    def __init__(self, package: str, extra: str, purpose: str = "") -> None:
        what = f" to {purpose}" if purpose else ""
        super().__init__(
            f"The optional package {package!r} is needed{what}. "
            f"Install it with: pip install 'coevidence[{extra}]'"
        )
        self.package = package
        self.extra = extra


class CoevidenceWarning(UserWarning):
    """Base class of every warning issued by coevidence."""


class FitWarning(CoevidenceWarning):
    """A fit finished but is not trustworthy as is; details are in ``result.diagnostics``."""


class BoundaryFitWarning(FitWarning):
    """A variance component is at zero or a correlation at ±1 (a singular fit)."""


class FewClustersWarning(CoevidenceWarning):
    """Cluster-robust inference with few clusters; consider CR2 or a wild bootstrap."""


class DesignDfWarning(CoevidenceWarning):
    """A term that varies only between assignment clusters is tested with too many df.

    Raised when, for example, the arm x time interaction of a study randomised by provider is
    tested with df near the number of organisations: the p value and CI are then
    anti-conservative. The message names the level, the cluster count, the df used and the fix.
    """


class EstimabilityWarning(CoevidenceWarning):
    """A model term the data can barely (or not) inform, e.g. a pre-TA growth piece when every
    organisation starts TA at its first wave: it is dropped or kept out of the default
    contrasts, and the message says which and why."""


class AgreementWarning(CoevidenceWarning):
    """Respondent scores fail the within-unit agreement criteria (ICC(1), ICC(2), r_wg(j)) their
    measure requires before they are aggregated to the unit."""


class ReplicateStoreWarning(CoevidenceWarning):
    """A stored ``simulate_power`` part or manifest could not be trusted (corrupt, truncated or
    from another run); it was moved to ``quarantine/`` and its replicates are run again."""


class MissingDataWarning(CoevidenceWarning):
    """Rows were dropped because of missing values; the message gives the count."""


class PluginLoadWarning(CoevidenceWarning):
    """A measure plugin registered through an entry point failed to load."""


class UnverifiedMeasureWarning(CoevidenceWarning):
    """A built-in measure definition has not been verified against its source paper."""
