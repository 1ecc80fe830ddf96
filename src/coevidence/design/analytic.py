"""Analytic power: minimum detectable effect size, power and minimum required sample size.

``mdes(design, **params)``, ``power(design, es, **params)`` and ``mrss(design, es, **params)``
reproduce PowerUpR 1.1.0 (Dong & Maynard 2013) for the designs IRA, BIRA2C1, BIRA2F1, BIRA2
(random blocks), CRA2, BIRA3, CRA3, BCRA3R2 and BCRA3F2, with PowerUpR's parameter names
(``rho2, rho3, omega2, omega3, r21, r22, r23, r2t2, r2t3, g1, g2, g3, n, J, K, p, alpha,
power, two_tailed``). Longitudinal designs (``diggle_slopes``, ``diggle_means``,
``slopes_ira``, ``slopes_cra2``; see :mod:`coevidence.design.longitudinal`) and stepped-wedge
power (``stepped_wedge``; :mod:`coevidence.design.stepped_wedge`) use the same three functions.

Formulas (PowerUpR ``utils.R``): ``T1 = |qt(alpha/2, df)|`` (two-tailed) or ``|qt(alpha, df)|``,
``T2 = |qt(power, df)|``, ``M = T1 + T2`` (``T1 - T2`` when power < .5), ``MDES = M * SSE`` with
confidence interval ``MDES -/+ T1 * SSE``; power counts both tails of the noncentral t with
``ncp = es / SSE``; the minimum required sample size iterates ``x1 = (M/es)^2 * SSE^2(x=1)`` from
10 with ``x0 <- (x0 + x1)/2`` and reports ``round(x0)`` (not the ceiling).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

# the longitudinal and stepped-wedge modules register their designs on import
from coevidence.design import longitudinal as _longitudinal  # noqa: F401
from coevidence.design import stepped_wedge as _stepped_wedge  # noqa: F401
from coevidence.design._designs import DESIGNS, PARAM_HELP, REQUIRED, Design, get_design
from coevidence.exceptions import OptionError
from coevidence.results.base import TIDY_COLUMNS, ResultBase

__all__ = ["DesignResult", "designs", "mdes", "mrss", "power"]

_BOUNDED01 = ("rho2", "rho3", "r21", "r22", "r23", "r2t2", "r2t3")


def designs() -> pd.DataFrame:
    """The available designs, their parameters (required first) and what ``mrss`` solves for.

    Examples
    --------
    >>> import coevidence.design.analytic as a
    >>> "cra3" in a.designs()["design"].tolist()
    True
    """
    rows = []
    for d in DESIGNS.values():
        req = [k for k, v in d.params.items() if v is REQUIRED]
        opt = [f"{k}={v!r}" for k, v in d.params.items() if v is not REQUIRED]
        rows.append({"design": d.name, "title": d.title, "required": ", ".join(req),
                     "optional": ", ".join(opt), "mrss_solves": d.solve_for, "df": d.df_text,
                     "reference": d.reference})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- parameters
def _resolve(design: Design, given: Mapping[str, Any], *, drop: str | None = None,
             func: str = "mdes") -> dict[str, Any]:
    """All parameters of ``design``: ``given`` over the defaults, checked."""
    unknown = [k for k in given if k not in design.params]
    if unknown:
        hint = []
        for k in unknown:
            owners = [d.name for d in DESIGNS.values() if k in d.params]
            if owners:
                hint.append(f"{k!r} belongs to {', '.join(owners)}")
        raise TypeError(
            f"{func}() got parameter(s) {', '.join(map(repr, unknown))} that design "
            f"{design.name!r} does not take"
            + (f" ({'; '.join(hint)})" if hint else "")
            + f"; its parameters are: {', '.join(design.params)}")
    params = {k: given.get(k, v) for k, v in design.params.items()}
    if drop is not None:
        params.pop(drop, None)
    missing = [k for k, v in params.items() if v is REQUIRED]
    if missing:
        raise TypeError(
            f"{func}() for design {design.name!r} is missing required parameter(s) "
            + ", ".join(f"{k} ({PARAM_HELP.get(k, '')})" for k in missing))
    for k, v in params.items():
        if k == "two_tailed":
            if not isinstance(v, bool | np.bool_):
                raise TypeError(f"two_tailed must be True or False, got {v!r}")
            params[k] = bool(v)
            continue
        if k == "times":
            continue
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
            raise TypeError(f"parameter {k} must be a number, got {v!r}")
        v = float(v) if isinstance(v, float | np.floating) else int(v)
        if not math.isfinite(v):
            raise OptionError(f"parameter {k} must be finite, got {v!r}")
        if k in ("alpha", "power", "p") and not 0 < v < 1:
            raise OptionError(f"parameter {k} must lie strictly between 0 and 1, got {v!r}")
        if k in _BOUNDED01 and not 0 <= v < 1:
            raise OptionError(f"parameter {k} must lie in [0, 1), got {v!r}")
        if k in ("omega2", "omega3", "sigma2", "tau_beta", "tau_pi") and v < 0:
            raise OptionError(f"parameter {k} must be non-negative, got {v!r}")
        if k in ("n", "J", "K", "rel1", "steps", "duration") and not v > 0:
            raise OptionError(f"parameter {k} must be positive, got {v!r}")
        if k in ("g1", "g2", "g3") and (v < 0 or int(v) != v):
            raise OptionError(f"parameter {k} must be a non-negative integer, got {v!r}")
        if k == "rel1" and v > 1:
            raise OptionError(f"parameter rel1 (a reliability) must be at most 1, got {v!r}")
        params[k] = v
    if params.get("times") is not None:
        params["times"] = tuple(float(t) for t in np.asarray(params["times"], float).ravel())
    if drop is None:
        design.check(params)
    return params


def _check_es(es: Any, *, positive: bool) -> float:
    if isinstance(es, bool) or not isinstance(es, int | float | np.integer | np.floating):
        raise TypeError(f"es must be a number, got {es!r}")
    es = float(es)
    if not math.isfinite(es) or (positive and es <= 0):
        raise OptionError(f"es must be a {'positive ' if positive else ''}finite number, got {es!r}")
    return es


# --------------------------------------------------------------------------- core formulas
def _quantiles(df: float, alpha: float, power_: float, two_tailed: bool) -> tuple[float, float]:
    dist = stats.norm if math.isinf(df) else stats.t(df)
    t1 = abs(dist.ppf(alpha / 2 if two_tailed else alpha))
    t2 = abs(dist.ppf(power_))
    return float(t1), float(t2)


def _multiplier(df: float, alpha: float, power_: float, two_tailed: bool) -> tuple[float, float]:
    t1, t2 = _quantiles(df, alpha, power_, two_tailed)
    return (t1 + t2 if power_ >= 0.5 else t1 - t2), t1


def _power_at(es: float, sse: float, df: float, alpha: float, two_tailed: bool) -> float:
    ncp = es / sse
    if math.isinf(df):
        if two_tailed:
            crit = stats.norm.isf(alpha / 2)
            return float(stats.norm.sf(crit - ncp) + stats.norm.cdf(-crit - ncp))
        return float(stats.norm.sf(stats.norm.isf(alpha) - ncp))
    if two_tailed:
        crit = stats.t.isf(alpha / 2, df)
        return float(_nct_sf(crit, df, ncp) + _nct_sf(crit, df, -ncp))
    return float(_nct_sf(stats.t.isf(alpha, df), df, ncp))


def _nct_sf(x: float, df: float, ncp: float) -> float:
    """``P(T > x)`` for a noncentral t; ``P(T < -x | ncp) = _nct_sf(x, df, -ncp)``.

    scipy's ``nct.cdf`` returns NaN deep in a tail (e.g. ``cdf(-2, 52, 8.8)``); ``sf`` and the
    complement are tried in turn, and a tail more than 12 units of ``ncp`` away whose every
    evaluation fails is 0 (or 1).
    """
    for value in (stats.nct.sf(x, df, ncp), 1.0 - stats.nct.cdf(x, df, ncp)):
        if math.isfinite(value):
            return min(max(float(value), 0.0), 1.0)
    if abs(ncp - x) > 12:
        return 1.0 if ncp > x else 0.0
    raise FloatingPointError(f"noncentral t tail not computable (x={x}, df={df}, ncp={ncp})")


def _df_sse(design: Design, params: Mapping[str, Any]) -> tuple[float, float]:
    df = float(design.df(params))
    if not df >= 1:
        raise OptionError(
            f"design {design.name!r} is not feasible: degrees of freedom {design.df_text} = "
            f"{df:g} (must be at least 1)")
    sse2 = float(design.sse2(params))
    if not (math.isfinite(sse2) and sse2 > 0):
        raise OptionError(f"design {design.name!r} gives a non-positive standard error ({sse2!r})")
    return df, math.sqrt(sse2)


# --------------------------------------------------------------------------- result
class DesignResult(ResultBase):
    """An analytic MDES, power or minimum required sample size (immutable).

    Attributes
    ----------
    quantity : {"mdes", "power", "mrss"}
    design : str
        Design name (``"cra3"``, ...).
    value : float or int
        The MDES (SD units), the power, or the sample size solved for.
    solve_for : str
        The sample size ``mrss`` solved for (``"n"``, ``"J"`` or ``"K"``); for the others, the
        design's.
    df : float
        Degrees of freedom of the test (``inf`` for normal-based designs).
    ci : tuple of float or None
        ``(lower, upper)``: the MDES confidence interval ``MDES -/+ T1 * SSE`` (``mdes``); None
        otherwise.
    sse : float
        Standardized standard error of the effect estimate.
    multiplier : float
        ``M = T1 + T2`` (``mdes`` and ``mrss``) at the reported df.
    ncp : float
        Noncentrality ``es / SSE`` (``power`` and ``mrss``: at the reported size).
    achieved_power : float
        Power at the reported size (``mrss``; the rounding of PowerUpR's search can leave it a
        little below the target); for ``power`` equal to ``value``.
    es : float or None
        The effect size used (``power``, ``mrss``).
    inputs : mapping
        Every parameter used, defaults included (read-only).

    Examples
    --------
    >>> import coevidence as cv
    >>> r = cv.mdes("cra2", rho2=0.17, n=15, J=20)
    >>> round(r.value, 6), r.df
    (0.629006, 18.0)
    """

    def __init__(self, *, quantity: str, design: Design, value: float, df: float,
                 sse: float, multiplier: float, ncp: float, ci: tuple[float, float] | None,
                 es: float | None, achieved_power: float, inputs: Mapping[str, Any],
                 iterations: int | None = None) -> None:
        self.quantity = quantity
        self.design = design.name
        self.title = design.title
        self.reference = design.reference
        self.df_text = design.df_text
        self.solve_for = design.solve_for
        self.value = value
        self.df = df
        self.sse = sse
        self.multiplier = multiplier
        self.ncp = ncp
        self.ci = ci
        self.es = es
        self.achieved_power = achieved_power
        self.inputs = MappingProxyType(dict(inputs))
        self.iterations = iterations
        self._freeze()

    def __float__(self) -> float:
        return float(self.value)

    def tidy(self, conf_level: float = 0.95) -> pd.DataFrame:
        """One row: ``term`` is ``mdes``, ``power`` or the solved-for size (``n``, ``J``, ``K``).

        ``std_error`` is the standardized standard error, ``statistic`` the multiplier (MDES) or
        the noncentrality (power, MRSS). ``conf_low``/``conf_high`` hold the MDES interval at
        ``1 - alpha`` (PowerUpR's; ``conf_level`` is not used).
        """
        term = self.solve_for if self.quantity == "mrss" else self.quantity
        stat = self.multiplier if self.quantity == "mdes" else self.ncp
        lo, hi = self.ci if self.ci is not None else (np.nan, np.nan)
        return pd.DataFrame([[term, float(self.value), self.sse, stat, self.df, np.nan, lo, hi]],
                            columns=list(TIDY_COLUMNS))

    def glance(self) -> pd.DataFrame:
        """One row: design, quantity, value, df, sse, alpha, power, two_tailed, es."""
        return pd.DataFrame([{
            "design": self.design, "quantity": self.quantity, "value": float(self.value),
            "df": self.df, "sse": self.sse, "alpha": self.inputs.get("alpha"),
            "power": self.achieved_power if self.quantity != "mdes" else self.inputs.get("power"),
            "two_tailed": self.inputs.get("two_tailed"),
            "es": np.nan if self.es is None else self.es,
        }])

    def summary(self) -> str:
        """Plain text in the spirit of PowerUpR's printout."""
        a = self.inputs
        tails = "two-tailed" if a.get("two_tailed", True) else "one-tailed"
        dist = "normal" if math.isinf(self.df) else "t"
        lines = [f"{self.title} [{self.design}]"]
        if self.quantity == "mdes":
            lo, hi = self.ci  # type: ignore[misc]
            lines.append(f"Minimum detectable effect size: {self.value:.3f} "
                         f"{100 * (1 - a['alpha']):g}% CI [{lo:.3f}, {hi:.3f}]")
        elif self.quantity == "power":
            lines.append(f"Statistical power: {self.value:.3f} (es = {self.es:g})")
        else:
            lines.append(f"Minimum required sample size: {self.solve_for} = {self.value} "
                         f"(es = {self.es:g}, target power {a['power']:g}, "
                         f"achieved {self.achieved_power:.3f})")
        inputs = ", ".join(f"{k}={v!r}" for k, v in a.items()
                           if k not in ("alpha", "power", "two_tailed") and v is not None)
        lines += [
            f"Estimator: closed-form design formula ({self.reference})",
            "Covariance type: model-based (design variance components)",
            f"df method: {self.df_text} = {self.df:g} ({dist} reference distribution)",
            f"Standardized standard error: {self.sse:.4f}",
            f"Type I error rate: {a['alpha']:g} ({tails})",
            f"Inputs: {inputs}",
        ]
        return "\n".join(lines)


# --------------------------------------------------------------------------- public API
def mdes(design: str, **params: Any) -> DesignResult:
    """Minimum detectable effect size of a design.

    Parameters
    ----------
    design : str
        ``"ira"``, ``"bira2c1"``, ``"bira2f1"``, ``"bira2"``, ``"cra2"``, ``"bira3"``,
        ``"cra3"``, ``"bcra3r2"``, ``"bcra3f2"``, ``"diggle_slopes"``, ``"diggle_means"``,
        ``"slopes_ira"``, ``"slopes_cra2"`` or ``"stepped_wedge"`` (PowerUpR aliases such as
        ``"cra3r3"`` work too). See :func:`designs`.
    **params
        The design's parameters by their PowerUpR names (``n, J, K, p, rho2, rho3, omega2,
        omega3, r21, r22, r23, r2t2, r2t3, g1, g2, g3, rel1, alpha, power, two_tailed``; the
        longitudinal designs add ``times, waves, duration, sigma2, rho, tau_beta, tau_pi``).
        A name the design does not take raises ``TypeError``.

    Returns
    -------
    DesignResult
        ``.value`` the MDES (for ``diggle_slopes`` in outcome units per time unit), ``.ci``,
        ``.df``, ``.sse``, ``.multiplier``, ``.inputs``.

    Examples
    --------
    >>> import coevidence as cv
    >>> r = cv.mdes("cra3", rho3=0.06, rho2=0.17, n=15, J=3, K=60)
    >>> round(r.value, 3), [round(x, 3) for x in r.ci]
    (0.269, [0.08, 0.458])
    """
    d = get_design(design)
    p = _resolve(d, params, func="mdes")
    df, sse = _df_sse(d, p)
    m, t1 = _multiplier(df, p["alpha"], p["power"], p["two_tailed"])
    value = m * sse
    return DesignResult(quantity="mdes", design=d, value=value, df=df, sse=sse, multiplier=m,
                        ncp=m, ci=(value - t1 * sse, value + t1 * sse), es=None,
                        achieved_power=p["power"], inputs=p)


def power(design: str, es: float = 0.25, **params: Any) -> DesignResult:
    """Power to detect an effect of size ``es`` (PowerUpR: noncentral t, both tails).

    Parameters
    ----------
    design : str
        See :func:`mdes`.
    es : float, default 0.25
        Effect size (standardized, except ``diggle_slopes``/``slopes_*`` where it is the slope
        difference in outcome units per time unit).
    **params
        As for :func:`mdes`; ``power`` is not taken.

    Examples
    --------
    >>> import coevidence as cv
    >>> round(cv.power("cra2", es=0.629, rho2=0.17, n=15, J=20).value, 3)
    0.8
    """
    d = get_design(design)
    if "power" in params:
        raise TypeError("power() takes the effect size es=; the target 'power' belongs to "
                        "mdes()/mrss()")
    es = _check_es(es, positive=False)
    p = _resolve(d, params, func="power")
    df, sse = _df_sse(d, p)
    pw = _power_at(es, sse, df, p["alpha"], p["two_tailed"])
    p.pop("power", None)
    m, _ = _multiplier(df, p["alpha"], 0.8, p["two_tailed"])
    return DesignResult(quantity="power", design=d, value=pw, df=df, sse=sse, multiplier=m,
                        ncp=es / sse, ci=None, es=es, achieved_power=pw, inputs=p)


def mrss(design: str, es: float = 0.25, **params: Any) -> DesignResult:
    """Minimum required sample size (the size ``design`` solves for: n, J or K).

    PowerUpR designs use PowerUpR's iteration (start 10, tolerance .10, at most 101 steps,
    averaging old and new values) and report ``round(x0)``; ``diggle_*`` designs round the
    normal-theory size up; ``slopes_*`` and ``stepped_wedge`` return the smallest size whose
    power reaches the target.

    Parameters
    ----------
    design : str
        See :func:`mdes`.
    es : float, default 0.25
        Effect size to detect (positive).
    **params
        As for :func:`mdes`, without the size solved for (``n`` for IRA, BIRA2C1/F1 and the
        Diggle and person-randomised growth designs; ``J`` for BIRA2, CRA2, BCRA3F2 and the
        cluster growth and stepped-wedge designs; ``K`` for the other three-level designs).

    Examples
    --------
    >>> import coevidence as cv
    >>> cv.mrss("ira", es=0.25).value
    504
    >>> cv.mrss("cra2", es=0.629, rho2=0.17, n=15).value
    20
    """
    d = get_design(design)
    es = _check_es(es, positive=True)
    if d.solve_for in params:
        raise TypeError(f"mrss() for design {d.name!r} solves for {d.solve_for!r}; do not pass it")
    p = _resolve(d, params, drop=d.solve_for, func="mrss")
    iterations = None
    if d.mrss_rule in ("powerup", "powerup_fixed"):
        x, iterations = _powerup_search(d, p, es)
    elif d.mrss_rule == "normal_ceil":
        m, _ = _multiplier(math.inf, p["alpha"], p["power"], p["two_tailed"])
        x = int(math.ceil((m / es) ** 2 * d.sse2({**p, d.solve_for: 1}) - 1e-9))
    else:
        x = _exact_search(d, p, es)
    full = {**p, d.solve_for: x}
    d.check(full)
    df, sse = _df_sse(d, full)
    m, _ = _multiplier(df, p["alpha"], p["power"], p["two_tailed"])
    achieved = _power_at(es, sse, df, p["alpha"], p["two_tailed"])
    inputs = {k: full[k] for k in d.params if k in full}
    return DesignResult(quantity="mrss", design=d, value=x, df=df, sse=sse, multiplier=m,
                        ncp=es / sse, ci=None, es=es, achieved_power=achieved, inputs=inputs,
                        iterations=iterations)


def _powerup_search(d: Design, p: dict[str, Any], es: float) -> tuple[int, int]:
    """PowerUpR's ``mrss.*`` loop (``x0 = 10``, ``tol = .10``, ``i <= 100``), then ``round``."""
    x0, tol, i, conv = 10.0, 0.10, 0, False
    df = float("nan")
    while i <= 100 and not conv:
        df = float(d.df({**p, d.solve_for: x0}))
        if df <= 0 or math.isinf(df):
            break
        m, _ = _multiplier(df, p["alpha"], p["power"], p["two_tailed"])
        x1 = (m / es) ** 2 * d.sse2({**p, d.solve_for: 1.0})
        if d.mrss_rule == "powerup" and abs(x1 - x0) < tol:
            conv = True
        x0 = (x1 + x0) / 2
        i += 1
    if not df > 0:
        raise OptionError(
            f"mrss for design {d.name!r} is not feasible: degrees of freedom {d.df_text} are not "
            f"positive at {d.solve_for} = {x0:g} (PowerUpR returns NA here)")
    return int(np.round(x0)), i  # R's round(): half to even, as numpy's


def _exact_search(d: Design, p: dict[str, Any], es: float) -> int:
    step = max(1, int(d.step(p)))
    lo = max(int(d.min_size(p)), step)
    lo = int(math.ceil(lo / step) * step)

    def pw(x: int) -> float:
        q = {**p, d.solve_for: x}
        df, sse = _df_sse(d, q)
        return _power_at(es, sse, df, p["alpha"], p["two_tailed"])

    if pw(lo) >= p["power"]:
        return lo
    hi = lo
    while pw(hi) < p["power"]:
        hi *= 2
        if hi > 10**9:
            raise OptionError(f"no {d.solve_for} up to 1e9 reaches power {p['power']:g} "
                             f"for design {d.name!r} (is the asymptotic power below target?)")
    lo_k, hi_k = lo // step, hi // step
    while hi_k - lo_k > 1:
        mid = (lo_k + hi_k) // 2
        if pw(mid * step) >= p["power"]:
            hi_k = mid
        else:
            lo_k = mid
    return hi_k * step
