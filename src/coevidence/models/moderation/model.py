r"""Simple slopes and Johnson-Neyman regions of significance for an interaction.

For a fitted model with fixed effects :math:`\beta` and covariance :math:`V`, the slope of a
focal variable :math:`x` at a value :math:`m` of a moderator is a linear contrast

.. math::

    \theta(m) = (L_0 + m L_1)\beta, \qquad
    \operatorname{Var}\hat\theta(m) = L_0 V L_0' + 2m L_0 V L_1' + m^2 L_1 V L_1'

where :math:`L_0` picks the focal main effect (and its interactions with other variables held
at the values of ``condition``, 0 by default) and :math:`L_1` the focal x moderator
interaction terms. With a t critical value :math:`q` that does not depend on :math:`m` the
Johnson-Neyman bounds solve :math:`\hat\theta(m)^2 = q^2 \operatorname{Var}\hat\theta(m)`, a
quadratic in :math:`m` (Johnson & Neyman 1936; Bauer & Curran 2005). Mixed-model results give
each contrast its own Satterthwaite (or Kenward-Roger) df (``result.df_for(L)``), so the
critical value moves with :math:`m`; the bounds are then the roots of
:math:`|\hat\theta(m)|/\mathrm{se}(m) - q_{df(m)}`, found by iterating the quadratic with the
df at the current bound and polishing with Brent's method.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from coevidence.exceptions import ModelSpecificationError, OptionError
from coevidence.models._shared.options import check_conf_level
from coevidence.models.moderation.results import JohnsonNeymanResult, SimpleSlopesResult

__all__ = ["johnson_neyman", "simple_slopes"]


class _Contrasts:
    """The focal slope as ``(L0 + m L1) @ beta`` for one fitted result (module level: pickles)."""

    def __init__(self, result: Any, focal: str, moderator: str,
                 condition: Mapping[str, float] | None) -> None:
        for name, value in (("focal", focal), ("moderator", moderator)):
            if not isinstance(value, str) or not value:
                raise OptionError(f"{name} must be a coefficient-name component (a string); "
                                  f"got {value!r}")
        focal_parts = focal.split(":")
        if moderator in focal_parts:
            raise OptionError(f"focal and moderator are the same ({focal!r})")
        try:
            params = result.params
            vcov = result.vcov
        except AttributeError:
            raise OptionError("result must be a fitted mixed or panel result with params and "
                              f"vcov; got {type(result).__name__}") from None
        names = [str(n) for n in params.index]
        self.names = names
        self.beta = params.to_numpy(dtype=float)
        self.V = vcov.loc[params.index, params.index].to_numpy(dtype=float)
        parts = [n.split(":") for n in names]
        components = sorted({p for ps in parts for p in ps})
        for name, value in [*(("focal", f) for f in focal_parts), ("moderator", moderator)]:
            if value not in components:
                raise OptionError(f"{name}={value!r} is not a term of the model; its "
                                  f"coefficients are {names}")
        condition = dict(condition or {})
        for k, v in condition.items():
            if k not in components:
                raise OptionError(f"condition names {k!r}, which is not a term of the model "
                                  f"(components: {components})")
            if k in (*focal_parts, moderator):
                raise OptionError(f"condition cannot fix the focal or moderator ({k!r})")
            try:
                condition[k] = float(v)
            except (TypeError, ValueError):
                raise OptionError(f"condition[{k!r}] must be a number; got {v!r}") from None
        L0 = np.zeros(len(names))
        L1 = np.zeros(len(names))
        held: set[str] = set()
        for i, ps in enumerate(parts):
            if any(ps.count(f) != 1 for f in focal_parts):
                continue
            others = [p for p in ps if p not in focal_parts]
            if others.count(moderator) > 1:
                raise ModelSpecificationError(
                    f"term {names[i]!r} is not linear in the moderator {moderator!r}")
            w = 1.0
            for p in others:
                if p == moderator:
                    continue
                if p not in condition:
                    held.add(p)
                w *= condition.get(p, 0.0)
            (L1 if moderator in others else L0)[i] = w
        if not np.any(L1 != 0) and not any(
                moderator in ps and all(f in ps for f in focal_parts) for ps in parts):
            raise ModelSpecificationError(
                f"the model has no {focal!r} x {moderator!r} interaction (coefficients: "
                f"{names}); the slope of {focal!r} does not depend on {moderator!r}")
        self.L0, self.L1 = L0, L1
        self.focal, self.moderator = focal, moderator
        self.condition = condition
        self.held_at_zero = tuple(sorted(held))
        g = result.glance().iloc[0]
        self.meta = {"outcome": g.get("outcome"), "nobs": g.get("nobs"),
                     "cov_type": str(g.get("cov_type")), "df_method": str(g.get("df_method"))}
        self._df_for = getattr(result, "df_for", None)
        self._df_note = "df_for(L) of the result (per contrast)"
        self._df_const = None
        if self._df_for is None:
            tidy = result.tidy()
            df = pd.Series(tidy["df"].to_numpy(float), index=tidy["term"].astype(str))
            used = [n for n, a, b in zip(names, L0, L1) if a != 0 or b != 0]
            vals = df.reindex(used).to_numpy(float)
            self._df_const = float(np.min(vals)) if len(vals) else np.inf
            self._df_note = ("the result's df" if np.unique(vals).size <= 1 else
                             "the smallest df of the coefficients involved "
                             f"({', '.join(used)})")
        self.varying_df = self._df_for is not None and self.meta["df_method"] in (
            "satterthwaite", "kenward_roger", "bell_mccaffrey")
        self.data = getattr(result, "data", None) if hasattr(type(result), "data") else None

    # ------------------------------------------------------------------ contrasts
    def L(self, m: float) -> np.ndarray:
        return self.L0 + float(m) * self.L1

    def estimate(self, m: np.ndarray) -> np.ndarray:
        m = np.asarray(m, dtype=float)
        return self.L0 @ self.beta + m * (self.L1 @ self.beta)

    def se(self, m: np.ndarray) -> np.ndarray:
        m = np.asarray(m, dtype=float)
        V = self.V
        v = self.L0 @ V @ self.L0 + 2 * m * (self.L0 @ V @ self.L1) + m ** 2 * (self.L1 @ V @ self.L1)
        return np.sqrt(np.clip(v, 0, None))

    def df(self, m: np.ndarray) -> np.ndarray:
        m = np.atleast_1d(np.asarray(m, dtype=float))
        if self._df_for is None:
            return np.full(m.shape, self._df_const)
        return np.array([self._df_for(self.L(x)) for x in m], dtype=float)

    def moderator_values(self) -> np.ndarray | None:
        d = self.data
        if d is None:
            return None
        if self.moderator not in d.columns:
            # a factor's dummy (lme4 names it <column><level>): 0 and 1
            if any(self.moderator.startswith(str(c)) and self.moderator != str(c)
                   and not pd.api.types.is_numeric_dtype(d[c]) for c in d.columns):
                return np.array([0.0, 1.0])
            return None
        x = pd.to_numeric(d[self.moderator], errors="coerce").to_numpy(dtype=float)
        x = x[np.isfinite(x)]
        return x if x.size else None


def _crit(df: np.ndarray | float, level: float) -> np.ndarray:
    df = np.asarray(df, dtype=float)
    q = 0.5 + level / 2
    return np.where(np.isfinite(df), stats.t.ppf(q, np.where(np.isfinite(df), df, 1.0)),
                    stats.norm.ppf(q))


def _quadratic_roots(c: _Contrasts, q: float) -> np.ndarray:
    """Real roots of (a + b m)^2 = q^2 (v00 + 2 m v01 + m^2 v11)."""
    a, b = c.L0 @ c.beta, c.L1 @ c.beta
    V = c.V
    v00, v01, v11 = c.L0 @ V @ c.L0, c.L0 @ V @ c.L1, c.L1 @ V @ c.L1
    A = b * b - q * q * v11
    B = 2 * (a * b - q * q * v01)
    C = a * a - q * q * v00
    if abs(A) < 1e-14 * max(b * b, q * q * v11, 1e-300):
        return np.array([-C / B]) if B != 0 else np.array([])
    disc = B * B - 4 * A * C
    if disc < 0:
        return np.array([])
    r = np.sqrt(disc)
    # numerically stable form
    s = -0.5 * (B + np.copysign(r, B))
    roots = [s / A] + ([C / s] if s != 0 else [])
    return np.unique(np.array(roots, dtype=float))


def _jn_bounds(c: _Contrasts, level: float) -> np.ndarray:
    """Johnson-Neyman bounds: exact quadratic roots (constant df) or root finding (df(m))."""
    if not c.varying_df:
        q = float(_crit(c.df(0.0)[0], level))
        return _quadratic_roots(c, q)

    def f(m: float) -> float:
        return float(np.abs(c.estimate(m)) / c.se(m) - _crit(c.df(m)[0], level))

    # candidates: quadratic roots with the df of the contrast at the current candidate
    q0 = float(_crit(c.df(0.0)[0], level))
    found: list[float] = []
    for k, r0 in enumerate(_quadratic_roots(c, q0)):
        r = float(r0)
        for _ in range(50):
            roots = _quadratic_roots(c, float(_crit(c.df(r)[0], level)))
            if roots.size == 0:
                break
            new = float(roots[np.argmin(np.abs(roots - r))])
            if abs(new - r) <= 1e-12 * max(1.0, abs(r)):
                r = new
                break
            r = new
        # polish with Brent's method on a bracket around the candidate
        step = 1e-3 * max(1.0, abs(r))
        for _ in range(60):
            lo, hi = r - step, r + step
            flo, fhi = f(lo), f(hi)
            if np.sign(flo) != np.sign(fhi):
                r = optimize.brentq(f, lo, hi, xtol=1e-13, rtol=1e-14)
                found.append(float(r))
                break
            step *= 2
    if not found:
        return np.array([])
    out = np.unique(np.round(np.array(found), 12))
    return out


def _regions(c: _Contrasts, bounds: np.ndarray, level: float) -> tuple[tuple[float, float], ...]:
    """The intervals of the moderator where the slope differs from zero at ``level``."""
    edges = np.concatenate([[-np.inf], np.sort(bounds), [np.inf]])
    span = max(1.0, float(np.ptp(bounds)) if bounds.size > 1 else abs(float(bounds[0]))
               if bounds.size else 1.0)
    out: list[tuple[float, float]] = []
    for lo, hi in itertools.pairwise(edges):
        if np.isinf(lo) and np.isinf(hi):
            mid = 0.0
        elif np.isinf(lo):
            mid = hi - span
        elif np.isinf(hi):
            mid = lo + span
        else:
            mid = 0.5 * (lo + hi)
        sig = abs(float(c.estimate(mid))) / float(c.se(mid)) > float(_crit(c.df(mid)[0], level))
        if sig:
            if out and out[-1][1] == lo:
                out[-1] = (out[-1][0], float(hi))
            else:
                out.append((float(lo), float(hi)))
    return tuple(out)


def _default_at(c: _Contrasts, at: Sequence[float] | float | None) -> np.ndarray:
    if at is not None:
        vals = np.atleast_1d(np.asarray(at, dtype=float))
        if vals.size == 0 or not np.isfinite(vals).all():
            raise OptionError(f"at must be finite moderator values; got {at!r}")
        if np.unique(vals).size != vals.size:
            raise OptionError(f"at has repeated values: {list(vals)}")
        return vals
    x = c.moderator_values()
    if x is None:
        raise OptionError(f"give at= (the moderator {c.moderator!r} is not a column of the "
                          "result's data)")
    u = np.unique(x)
    if u.size <= 2:
        return u.astype(float)
    m, s = float(x.mean()), float(x.std(ddof=1))
    return np.array([m - s, m, m + s])


def simple_slopes(
    result: Any,
    *,
    focal: str,
    moderator: str,
    at: Sequence[float] | float | None = None,
    condition: Mapping[str, float] | None = None,
    conf_level: float | None = None,
) -> SimpleSlopesResult:
    """Slopes of ``focal`` at chosen values of ``moderator`` (simple slopes of an interaction).

    Parameters
    ----------
    result : MixedResult or PanelResult
        A fit with a ``focal`` x ``moderator`` interaction (``fit_mixed``, ``fit_growth``,
        ``fit_panel``).
    focal, moderator : str
        Components of the coefficient names (``"time"``, ``"ta_modelco_creation"``, ``"m"``):
        the variable whose slope is wanted and the variable it depends on. ``focal`` may be
        an interaction (``"time:arm_cc"``: the arm difference in time slopes, i.e. the
        coefficient of that term plus its interactions with the moderator).
    at : float or sequence of float, optional
        Moderator values. Default: the mean and mean +/- 1 SD of the moderator in the
        result's data (its two values if it has at most two).
    condition : mapping, optional
        Values of the other variables that interact with ``focal`` (e.g.
        ``{"ta_modelco_creation": 1}`` for the time slope in the co-creation arm of an
        arm x time x moderator model). Variables not given are held at 0 (the reference level
        of a factor); ``info["held_at_zero"]`` lists them.
    conf_level : float, optional
        Default: the result's ``conf_level``.

    Returns
    -------
    SimpleSlopesResult
        One row per moderator value. SEs from the coefficient covariance of the fit; t tests
        with ``result.df_for(L)`` per slope for mixed results (Satterthwaite or
        Kenward-Roger, as fitted) and the panel result's df otherwise.

    Examples
    --------
    >>> import numpy as np, pandas as pd, coevidence as cv
    >>> rng = np.random.default_rng(0)
    >>> d = pd.DataFrame({"g": np.repeat(np.arange(30), 8), "x": rng.normal(size=240),
    ...                   "m": rng.normal(size=240)})
    >>> d["y"] = (0.5 + 0.4 * d.m) * d.x + rng.normal(size=30)[d.g] + rng.normal(size=240)
    >>> fit = cv.fit_mixed("y ~ x * m + (1 | g)", d)
    >>> ss = cv.simple_slopes(fit, focal="x", moderator="m", at=[-1, 0, 1])
    >>> ss.tidy()["term"].tolist()
    ['x | m=-1', 'x | m=0', 'x | m=1']
    """
    level = result.conf_level if conf_level is None else check_conf_level(conf_level)
    c = _Contrasts(result, focal, moderator, condition)
    vals = _default_at(c, at)
    return SimpleSlopesResult(
        focal=focal, moderator=moderator, at=vals, estimate=c.estimate(vals),
        std_error=c.se(vals), df=c.df(vals), conf_level=float(level), meta=c.meta,
        info={"condition": dict(c.condition), "held_at_zero": tuple(c.held_at_zero),
              "df_source": c._df_note},
    )


def johnson_neyman(
    result: Any,
    *,
    focal: str,
    moderator: str,
    conf_level: float | None = None,
    condition: Mapping[str, float] | None = None,
    range: tuple[float, float] | None = None,
    n_grid: int = 101,
) -> JohnsonNeymanResult:
    """Johnson-Neyman bounds and regions of significance of the slope of ``focal``.

    Parameters
    ----------
    result : MixedResult or PanelResult
        A fit with a ``focal`` x ``moderator`` interaction.
    focal, moderator : str
        Coefficient-name components, as in :func:`simple_slopes`.
    conf_level : float, optional
        The slope is significant at ``1 - conf_level`` (two-sided) where its
        ``conf_level`` interval excludes 0. Default: the result's.
    condition : mapping, optional
        Values of other variables interacting with ``focal`` (see :func:`simple_slopes`).
    range : (float, float), optional
        Moderator range of interest (plot and ``tidy()`` end points; bounds outside it are
        flagged by ``bounds_in_range``). Default: the observed range in the result's data,
        required for results that do not keep their data (panel results).
    n_grid : int, default 101
        Points of the slope curve kept for :meth:`JohnsonNeymanResult.plot`.

    Returns
    -------
    JohnsonNeymanResult
        ``bounds`` (the moderator values where the interval touches 0, sorted; 0, 1 or 2
        of them), ``regions`` (the intervals of significance, with +/- inf ends), ``tidy()``
        (the slope at the range ends and at each bound) and ``plot()``.

    Notes
    -----
    With a constant critical value (panel results, ``df_method`` residual or z) the bounds
    are the exact roots of a quadratic. With a df per contrast (Satterthwaite, Kenward-Roger)
    they are the roots of ``|t(m)| - q(df(m))``: the quadratic is re-solved with the df at
    the current bound until it is stable, then polished by Brent's method.

    Examples
    --------
    >>> import numpy as np, pandas as pd, coevidence as cv
    >>> rng = np.random.default_rng(0)
    >>> d = pd.DataFrame({"g": np.repeat(np.arange(30), 8), "x": rng.normal(size=240),
    ...                   "m": rng.normal(size=240)})
    >>> d["y"] = (0.5 + 0.4 * d.m) * d.x + rng.normal(size=30)[d.g] + rng.normal(size=240)
    >>> jn = cv.johnson_neyman(cv.fit_mixed("y ~ x * m + (1 | g)", d), focal="x", moderator="m")
    >>> len(jn.bounds), jn.regions[0][0] == -np.inf
    (2, True)
    """
    level = result.conf_level if conf_level is None else check_conf_level(conf_level)
    if not isinstance(n_grid, int) or n_grid < 2:
        raise OptionError(f"n_grid must be an integer >= 2; got {n_grid!r}")
    c = _Contrasts(result, focal, moderator, condition)
    if range is None:
        x = c.moderator_values()
        if x is None:
            raise OptionError(f"give range= (the moderator {moderator!r} is not a column of "
                              "the result's data)")
        lo, hi = float(x.min()), float(x.max())
    else:
        try:
            lo, hi = (float(v) for v in range)
        except (TypeError, ValueError):
            raise OptionError(f"range must be two numbers; got {range!r}") from None
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            raise OptionError(f"range must be two finite numbers, low < high; got {range!r}")
    bounds = _jn_bounds(c, float(level))
    regions = _regions(c, bounds, float(level))
    grid = np.linspace(lo, hi, n_grid)
    points = np.unique(np.concatenate([[lo, hi], bounds]))
    return JohnsonNeymanResult(
        focal=focal, moderator=moderator, bounds=bounds, regions=regions, range=(lo, hi),
        points=points, estimate=c.estimate(points), std_error=c.se(points), df=c.df(points),
        grid=grid, grid_estimate=c.estimate(grid), grid_se=c.se(grid), grid_df=c.df(grid),
        conf_level=float(level), meta=c.meta,
        info={"condition": dict(c.condition), "held_at_zero": tuple(c.held_at_zero),
              "df_source": c._df_note,
              "method": "root finding on |t(m)| - q(df(m))" if c.varying_df
              else "exact quadratic roots"},
    )
