"""The interface every fitted result in coevidence shares.

A result is immutable and silent: fitting returns it, nothing is printed. Data come out as
pandas objects with stable snake_case names (``tidy()``, ``glance()``); text and HTML are
renderings of those data (``summary()``, ``repr``, ``_repr_html_``).
"""

from __future__ import annotations

import html
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "GLANCE_KEYS",
    "TIDY_COLUMNS",
    "FrozenDict",
    "ResultBase",
    "cov_type_code",
    "df_method_code",
    "freeze",
    "glance_frame",
    "read_only",
    "tidy_frame",
    "wald_tests",
]

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

#: The first columns of every ``glance()`` frame, in order. ``cov_type`` and ``df_method`` are
#: option codes (``"model"``, ``"cr2"``, ``"clustered"``, ``"satterthwaite"``,
#: ``"kenward_roger"``, ...); ``summary()`` spells them out in words.
GLANCE_KEYS = ("estimator", "outcome", "nobs", "cov_type", "df_method")


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


# ----------------------------------------------------------------------------- immutability
class FrozenDict(dict):
    """A read-only ``dict`` (mutation raises ``TypeError``) that still pickles and JSON-encodes.

    Results hand out their ``info`` and diagnostics mappings as ``FrozenDict`` so that the
    result cannot be changed through them (``types.MappingProxyType`` does not pickle).

    Examples
    --------
    >>> d = FrozenDict({"a": 1})
    >>> d["a"], isinstance(d, dict)
    (1, True)
    >>> d["a"] = 2
    Traceback (most recent call last):
    ...
    TypeError: FrozenDict is read-only; cannot change key 'a'
    """

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        key = f"; cannot change key {args[0]!r}" if args and not isinstance(args[0], Mapping) else ""
        raise TypeError(f"FrozenDict is read-only{key}")

    __setitem__ = __delitem__ = _refuse
    update = pop = popitem = clear = setdefault = _refuse  # type: ignore[assignment]

    def __ior__(self, other: Any) -> FrozenDict:  # type: ignore[override,misc]
        self._refuse()
        return self  # pragma: no cover

    def __reduce__(self) -> tuple[Any, tuple[dict]]:
        return (FrozenDict, (dict(self),))

    def __copy__(self) -> FrozenDict:
        return self

    def __deepcopy__(self, memo: dict) -> FrozenDict:
        import copy

        return FrozenDict({k: copy.deepcopy(v, memo) for k, v in self.items()})

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(map(repr, self.items()))))


def read_only(array: Any) -> np.ndarray:
    """A read-only copy of ``array`` (numpy arrays cannot then be changed in place)."""
    out = np.array(array, copy=True)
    out.setflags(write=False)
    return out


def freeze(value: Any) -> Any:
    """Deeply read-only version of a dict/list/array structure (dicts -> :class:`FrozenDict`,
    numpy arrays -> read-only copies, DataFrames/Series -> copies); other values unchanged."""
    if isinstance(value, FrozenDict):
        return value
    if isinstance(value, dict):
        return FrozenDict({k: freeze(v) for k, v in value.items()})
    if isinstance(value, np.ndarray):
        return read_only(value)
    if isinstance(value, (pd.DataFrame, pd.Series)):
        return value.copy()
    return value


# ----------------------------------------------------------------------------- glance codes
def df_method_code(text: object) -> str:
    """The option code of a degrees-of-freedom description (``"satterthwaite"``, ``"z"``, ...).

    Results store prose such as ``"t with G - 1 = 9 df"`` for ``summary()``; ``glance()``
    reports the code (here ``"g_minus_1"``).

    Examples
    --------
    >>> df_method_code("Satterthwaite (Bell-McCaffrey / Pustejovsky-Tipton) per coefficient")
    'bell_mccaffrey'
    >>> df_method_code("normal (z), as R did"), df_method_code("t with residual df (40)")
    ('z', 'residual')
    """
    if text is None:
        return "none"
    t = str(text).strip()
    low = t.lower()
    codes = ("satterthwaite", "kenward_roger", "bell_mccaffrey", "residual", "z", "g_minus_1",
             "wild_bootstrap", "randomization", "welch", "pooled", "fixed", "none")
    if low in codes:
        return low
    rules = (
        ("wild", "wild_bootstrap"),
        ("bootstrap", "wild_bootstrap"),
        ("bell-mccaffrey", "bell_mccaffrey"),
        ("pustejovsky", "bell_mccaffrey"),
        ("kenward", "kenward_roger"),
        ("satterthwaite", "satterthwaite"),
        ("g - 1", "g_minus_1"),
        ("residual", "residual"),
        ("normal", "z"),
        ("(z)", "z"),
        ("given", "fixed"),
    )
    for needle, code in rules:
        if needle in low:
            return code
    return low.replace(" ", "_")


def cov_type_code(text: object) -> str:
    """The option code of a covariance description (``"cr2"``, ``"clustered"``, ``"model"``...).

    Examples
    --------
    >>> cov_type_code("cluster-robust CR2 (Bell-McCaffrey), 12 clusters")
    'cr2'
    >>> cov_type_code("model-based (REML mixed model, random cluster intercept; GLS covariance)")
    'model'
    """
    if text is None:
        return "none"
    low = str(text).strip().lower()
    codes = ("model", "cr2", "clustered", "robust", "unadjusted", "wild_bootstrap",
             "kenward_roger", "multiplier_bootstrap", "influence_function", "randomization",
             "pooled", "welch")
    if low in codes:
        return low
    rules = (
        ("kenward", "kenward_roger"),
        ("model-based", "model"),
        ("wild", "wild_bootstrap"),
        ("multiplier bootstrap", "multiplier_bootstrap"),
        ("cr2", "cr2"),
        ("cr1", "clustered"),
        ("cluster", "clustered"),
        ("unadjusted", "unadjusted"),
        ("classical", "unadjusted"),
        ("model", "model"),
        ("influence function", "influence_function"),
        ("robust", "robust"),
    )
    for needle, code in rules:
        if needle in low:
            return code
    return low.replace(" ", "_")


def glance_frame(
    *, estimator: object, outcome: object, nobs: object, cov_type: object, df_method: object,
    **extra: Any,
) -> pd.DataFrame:
    """A one-row ``glance()`` frame starting with :data:`GLANCE_KEYS`, then ``extra`` in order.

    Examples
    --------
    >>> g = glance_frame(estimator="within", outcome="y", nobs=10, cov_type="cr2",
    ...                  df_method="bell_mccaffrey", n_units=5)
    >>> g.columns.tolist()[:5] == list(GLANCE_KEYS), g.shape
    (True, (1, 6))
    """
    row: dict[str, Any] = {
        "estimator": estimator,
        "outcome": outcome,
        "nobs": None if nobs is None else int(nobs),  # type: ignore[call-overload]
        "cov_type": cov_type,
        "df_method": df_method,
    }
    for k, v in extra.items():
        if k not in row and not callable(v):
            row[k] = v
    return pd.DataFrame([row])


# ----------------------------------------------------------------------------- the base
class ResultBase(ABC):
    """The contract every fitted result meets (checked by :func:`coevidence.testing.check_result`).

    - ``conf_level``: the confidence level of the fit; ``tidy(conf_level=None)`` uses it.
    - ``tidy()``: one row per term with :data:`TIDY_COLUMNS`.
    - ``glance()``: exactly one row starting with :data:`GLANCE_KEYS` (estimator, outcome,
      nobs, cov_type, df_method as option codes); groups per level as ``n_groups_<level>``.
    - ``summary()``: plain text with the estimator, covariance type and df method in words.
    - immutable: attributes cannot be set; ``params``/``vcov``-like accessors return copies
      (or read-only arrays); ``info``/diagnostics mappings are read-only.
    - picklable; ``repr`` and ``_repr_html_`` never raise.

    Subclasses implement :meth:`tidy`, :meth:`glance` and :meth:`summary`, set attributes in
    ``__init__`` only and call :meth:`_freeze` at its end.
    """

    #: Confidence level used by ``tidy()`` when none is given (subclasses store the fit's).
    conf_level: float = 0.95

    @abstractmethod
    def tidy(self, conf_level: float | None = None) -> pd.DataFrame:
        """One row per estimated term with :data:`TIDY_COLUMNS`."""

    @abstractmethod
    def glance(self) -> pd.DataFrame:
        """Exactly one row of model-level statistics, starting with :data:`GLANCE_KEYS`."""

    @abstractmethod
    def summary(self) -> str:
        """A plain-text report (estimator, covariance type and df method always printed)."""

    def _level(self, conf_level: float | None) -> float:
        """The level to use: ``conf_level`` if given (checked), else the stored one."""
        level = self.conf_level if conf_level is None else float(conf_level)
        if not 0 < level < 1 or math.isnan(level):
            raise ValueError(f"conf_level must be in (0, 1), got {conf_level}")
        return level

    def __repr__(self) -> str:
        try:
            return self.summary()
        except Exception as exc:  # noqa: BLE001 - a repr must not raise
            return (f"<{type(self).__name__}: summary() could not be rendered "
                    f"({type(exc).__name__}: {exc})>")

    def _repr_html_(self) -> str:
        try:
            return self._html()
        except Exception as exc:  # noqa: BLE001 - a repr must not raise
            return (f"<div class='coevidence-result'><strong>{html.escape(type(self).__name__)}"
                    f"</strong><p>HTML could not be rendered ({html.escape(type(exc).__name__)}: "
                    f"{html.escape(str(exc))})</p></div>")

    def _html(self) -> str:
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

    def __delattr__(self, name: str) -> None:
        if getattr(self, "_frozen", False):
            raise AttributeError(f"{type(self).__name__} is immutable; cannot delete {name!r}")
        object.__delattr__(self, name)

    def _freeze(self) -> None:
        """Call at the end of ``__init__``: later attribute assignment raises."""
        object.__setattr__(self, "_frozen", True)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


def _frame_html(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0)
