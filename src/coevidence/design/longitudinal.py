"""Power for longitudinal designs: differences in means over repeated measures and in slopes.

Four designs are added to the table behind :func:`coevidence.mdes`, :func:`coevidence.power` and
:func:`coevidence.mrss`:

``diggle_slopes``
    Two groups, difference in linear slopes, exchangeable correlation ``rho`` between the
    repeated measures of a person (Diggle, Heagerty, Liang & Zeger 2002, *Analysis of
    Longitudinal Data*, 2nd ed., section 2.4)::

        Var(slope difference) = 2 sigma2 (1 - rho) / (n * sum((t - mean(t))**2))

    ``n`` is the number of persons **per group**; ``es`` the slope difference in outcome units
    per time unit. Normal quantiles (as in the book); ``mrss`` rounds up.
``diggle_means``
    Two groups, difference in the mean over ``waves`` repeated measures, ``es`` in SD units::

        Var = 2 {1 + (waves - 1) rho} / (waves * n)
``slopes_ira``
    Person-randomised trial, linear growth (Raudenbush & Liu 2001)::

        Var(gamma) = (tau_beta + sigma2 / SST) / (p (1 - p) n),   df = n - 2

    ``n`` persons in total, ``SST = sum((t - mean(t))**2)``, which for ``waves`` equally spaced
    occasions over ``duration`` equals ``M (M**2 - 1) / (12 f**2)`` with ``f = (M-1)/duration``.
    With ``tau_beta = 1`` the effect ``es`` is Raudenbush & Liu's standardized slope difference
    ``delta = gamma / sqrt(tau_beta)``.
``slopes_cra2``
    Cluster-randomised trial with repeated measures (clusters randomised, persons nested,
    cluster-level slope variance ``tau_pi``)::

        Var(gamma) = [tau_pi + (tau_beta + sigma2 / SST) / n] / (p (1 - p) J),   df = J - 2

The two Raudenbush & Liu designs use noncentral t power and an exact integer search for the
minimum sample size (the smallest size whose power reaches the target).

Examples
--------
>>> import coevidence as cv
>>> cv.mrss("diggle_slopes", es=0.5, times=(0, 2, 5), sigma2=100, rho=0.2,
...         two_tailed=False).value
313
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from coevidence.design._designs import COMMON, REQUIRED, Design, register_design
from coevidence.exceptions import OptionError

__all__ = ["resolve_times", "sum_squares_time"]


def resolve_times(params: Mapping[str, Any]) -> np.ndarray:
    """The occasions of a design: ``times``, or ``waves`` equally spaced over ``duration``."""
    times = params.get("times")
    if times is not None:
        arr = np.asarray(times, dtype=float).ravel()
        if arr.size < 2 or not np.all(np.isfinite(arr)) or np.ptp(arr) == 0:
            raise OptionError(f"times must hold at least two distinct finite values, got {times!r}")
        return arr
    waves, duration = params.get("waves"), params.get("duration")
    if waves is None or duration is None:
        raise TypeError("give the measurement occasions as times=(...) or as waves= and duration=")
    if int(waves) != waves or waves < 2:
        raise OptionError(f"waves must be an integer >= 2, got {waves!r}")
    if not duration > 0:
        raise OptionError(f"duration must be positive, got {duration!r}")
    return np.linspace(0.0, float(duration), int(waves))


def sum_squares_time(params: Mapping[str, Any]) -> float:
    """``SST = sum((t - mean(t))**2)`` of the design's occasions."""
    t = resolve_times(params)
    return float(np.sum((t - t.mean()) ** 2))


def _check_rho(p: Mapping[str, Any]) -> None:
    if not -1 < p["rho"] < 1:
        raise OptionError(f"rho must lie in (-1, 1), got {p['rho']!r}")


def _check_waves(p: Mapping[str, Any]) -> None:
    _check_rho(p)
    if int(p["waves"]) != p["waves"] or p["waves"] < 1:
        raise OptionError(f"waves must be a positive integer, got {p['waves']!r}")


_TIME = {"times": None, "waves": None, "duration": None}

register_design(Design(
    name="diggle_slopes", title="Two groups, difference in linear slopes (Diggle et al. 2002)",
    params={**COMMON, "n": REQUIRED, "rho": REQUIRED, "sigma2": 1.0, **_TIME},
    sse2=lambda q: 2 * q["sigma2"] * (1 - q["rho"]) / (q["n"] * sum_squares_time(q)),
    df=lambda q: float("inf"), df_text="normal (z)", solve_for="n", mrss_rule="normal_ceil",
    normal=True, check=_check_rho, integer_params=("n",),
    reference="Diggle, Heagerty, Liang & Zeger (2002), Analysis of Longitudinal Data, p. 29",
))

register_design(Design(
    name="diggle_means",
    title="Two groups, difference in means over repeated measures (Diggle et al. 2002)",
    params={**COMMON, "n": REQUIRED, "rho": REQUIRED, "waves": REQUIRED},
    sse2=lambda q: 2 * (1 + (q["waves"] - 1) * q["rho"]) / (q["waves"] * q["n"]),
    df=lambda q: float("inf"), df_text="normal (z)", solve_for="n", mrss_rule="normal_ceil",
    normal=True, check=_check_waves, integer_params=("n", "waves"),
    reference="Diggle, Heagerty, Liang & Zeger (2002), Analysis of Longitudinal Data, p. 30",
))

register_design(Design(
    name="slopes_ira",
    title="Person-randomised trial, difference in linear growth rates (Raudenbush & Liu 2001)",
    params={**COMMON, "n": REQUIRED, "sigma2": REQUIRED, "tau_beta": 1.0, "p": 0.5, **_TIME},
    sse2=lambda q: (q["tau_beta"] + q["sigma2"] / sum_squares_time(q)) / (
        q["p"] * (1 - q["p"]) * q["n"]),
    df=lambda q: q["n"] - 2, df_text="n - 2", solve_for="n", mrss_rule="search",
    min_size=lambda q: 3, integer_params=("n",),
    reference="Raudenbush & Liu (2001), Psychological Methods 6:387-401",
))

register_design(Design(
    name="slopes_cra2",
    title="Cluster-randomised trial with repeated measures, difference in growth rates",
    params={**COMMON, "n": REQUIRED, "J": REQUIRED, "sigma2": REQUIRED, "tau_pi": REQUIRED,
            "tau_beta": 1.0, "p": 0.5, **_TIME},
    sse2=lambda q: (q["tau_pi"] + (q["tau_beta"] + q["sigma2"] / sum_squares_time(q)) / q["n"])
    / (q["p"] * (1 - q["p"]) * q["J"]),
    df=lambda q: q["J"] - 2, df_text="J - 2", solve_for="J", mrss_rule="search",
    min_size=lambda q: 3, integer_params=("n", "J"),
    reference="Raudenbush & Liu (2001); Spybrook et al. (2011) Optimal Design, repeated measures",
))
