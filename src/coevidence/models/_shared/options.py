"""One calling convention for every fitter: option checks, renamed and positional arguments.

Every public fitter is ``fit_x(data, outcome, *, ...)`` (``fit_mixed(formula, data, *, ...)``
for the formula interface) and uses the same names for the same things:

========================  ==================================================================
``unit``                  the panel unit (organisation) column
``time``                  the time/period/wave column
``cluster``               the column standard errors are clustered on
``cov_type``              the covariance estimator, an option code (``"cr2"``, ``"model"``, ...)
``conf_level``            confidence level of intervals (stored in the result)
``seed``                  ``int``, :class:`numpy.random.Generator`, ``SeedSequence`` or None
``bootstrap_reps``        number of bootstrap replications (``None``/0: no bootstrap)
``bootstrap_weights``     the bootstrap weight distribution
========================  ==================================================================

Old spellings (``cov=``, ``period=``, ``bootstrap=``) and positional use of keyword options keep
working for one release with a :class:`FutureWarning` (:func:`renamed`, :func:`keyword_only`).
An option that would be ignored is refused (:func:`refuse_ignored`), an option value outside
its choices raises :class:`~coevidence.exceptions.OptionError` (:func:`check_choice`).
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar

import numpy as np

from coevidence.exceptions import OptionError

__all__ = [
    "SHARED_NAMES",
    "UNSET",
    "as_generator",
    "check_choice",
    "check_conf_level",
    "keyword_only",
    "refuse_ignored",
    "renamed",
]

F = TypeVar("F", bound=Callable[..., Any])

#: The shared argument names (a test checks every public fitter uses these and no synonyms).
SHARED_NAMES = ("unit", "time", "cluster", "cov_type", "conf_level", "seed", "weights",
                "bootstrap_reps", "bootstrap_weights")

#: Synonyms the shared names replace; none of them may appear in a public fitter's signature.
RETIRED_NAMES = ("cov", "period", "bootstrap", "n_boot", "cl", "level", "alpha_level",
                 "random_state", "rng", "vcov")


class _Unset:
    """Sentinel default: "not given" (lets a fitter tell an explicit value from the default)."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<default>"

    def __reduce__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


def check_choice(name: str, value: object, choices: Collection[object]) -> None:
    """Raise :class:`OptionError` unless ``value`` is one of ``choices``.

    Examples
    --------
    >>> check_choice("cov_type", "cr2", ("cr2", "model"))
    >>> check_choice("cov_type", "hc9", ("cr2", "model"))
    Traceback (most recent call last):
    ...
    coevidence.exceptions.OptionError: cov_type must be one of 'cr2', 'model'; got 'hc9'
    """
    try:
        ok = value in choices
    except TypeError:  # unhashable value against a set
        ok = False
    if not ok:
        shown = ", ".join(repr(c) for c in choices)
        raise OptionError(f"{name} must be one of {shown}; got {value!r}")


def check_conf_level(conf_level: object) -> float:
    """``conf_level`` as a float in (0, 1), or :class:`OptionError`.

    Examples
    --------
    >>> check_conf_level(0.9)
    0.9
    """
    try:
        level = float(conf_level)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise OptionError(f"conf_level must be a number in (0, 1); got {conf_level!r}") from None
    if not 0 < level < 1:
        raise OptionError(f"conf_level must be in (0, 1); got {conf_level!r}")
    return level


def as_generator(seed: object) -> np.random.Generator:
    """The one seed convention: int, Generator, SeedSequence or None -> Generator.

    Examples
    --------
    >>> float(as_generator(1).random()) == float(as_generator(1).random())
    True
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, np.random.SeedSequence):
        return np.random.default_rng(seed)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise OptionError(
            f"seed must be an int, numpy.random.Generator, numpy.random.SeedSequence or None; "
            f"got {seed!r}"
        )
    if seed < 0:
        raise OptionError(f"seed must be non-negative; got {seed}")
    return np.random.default_rng(int(seed))


def refuse_ignored(func: str, given: Mapping[str, object], reason: str) -> None:
    """Raise :class:`OptionError` for options that were given but would have no effect.

    ``given`` maps option names to their values; entries equal to :data:`UNSET` were not given.

    Examples
    --------
    >>> refuse_ignored("fit_x", {"control": UNSET}, "only for estimator='cs'")
    >>> refuse_ignored("fit_x", {"control": "not_yet_treated"}, "only for estimator='cs'")
    Traceback (most recent call last):
    ...
    coevidence.exceptions.OptionError: fit_x: control='not_yet_treated' would be ignored: only for estimator='cs'
    """
    bad = {k: v for k, v in given.items() if v is not UNSET}
    if bad:
        shown = ", ".join(f"{k}={v!r}" for k, v in bad.items())
        raise OptionError(f"{func}: {shown} would be ignored: {reason}")


def _deprecated(message: str) -> None:
    """A FutureWarning attributed to the first caller outside coevidence (as pandas does)."""
    frame = inspect.currentframe()
    level = 1
    while frame is not None and frame.f_globals.get("__name__", "").startswith("coevidence"):
        frame = frame.f_back
        level += 1
    warnings.warn(message, FutureWarning, stacklevel=level)


def renamed(**old_to_new: str) -> Callable[[F], F]:
    """Accept old keyword spellings for one release (FutureWarning), then pass the new name.

    Examples
    --------
    >>> @renamed(cov="cov_type")
    ... def f(*, cov_type="model"):
    ...     return cov_type
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     f(cov="cr2"), w[0].category.__name__
    ('cr2', 'FutureWarning')
    """

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for old, new in old_to_new.items():
                if old in kwargs:
                    if new in kwargs:
                        raise OptionError(
                            f"{fn.__name__}: give {new}= only ({old}= is its old name)"
                        )
                    _deprecated(f"{fn.__name__}: {old}= is deprecated and will be removed in the "
                                f"next release; use {new}=")
                    kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        wrapper.__coevidence_renamed__ = dict(old_to_new)  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def keyword_only(n_positional: int, old_order: tuple[str, ...]) -> Callable[[F], F]:
    """Make options keyword-only; positional use in the old order warns (FutureWarning).

    ``old_order`` is the order the options had when they could be passed by position, starting
    after the first ``n_positional`` arguments.

    Examples
    --------
    >>> @keyword_only(1, ("reml",))
    ... def g(formula, *, reml=True):
    ...     return reml
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     g("y ~ 1", False)
    False
    """

    def decorate(fn: F) -> F:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if len(args) > n_positional:
                extra = args[n_positional:]
                if len(extra) > len(old_order):
                    raise OptionError(
                        f"{fn.__name__} takes {n_positional} positional argument(s) "
                        f"({len(args)} given); pass the options by name"
                    )
                names = old_order[: len(extra)]
                _deprecated(
                    f"{fn.__name__}: passing {', '.join(names)} by position is deprecated and "
                    "will be removed in the next release; pass them by name "
                    f"({', '.join(f'{n}=...' for n in names)})"
                )
                for name, value in zip(names, extra):
                    if name in kwargs:
                        raise OptionError(f"{fn.__name__}: {name} given by position and by name")
                    kwargs[name] = value
                args = args[:n_positional]
            return fn(*args, **kwargs)

        wrapper.__signature__ = sig  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
