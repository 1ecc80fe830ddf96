"""Generalised linear mixed models (lme4's ``glmer``): binomial and Poisson outcomes.

Reached through :func:`coevidence.fit_mixed` with ``family=``; the formula is lme4's, with
``cbind(successes, failures)`` on the left for binomial counts and ``offset(expr)`` terms on the
right. The numerical work is in :mod:`._glmm.engine` (penalised IRLS on the fast engine's
nested blocked Cholesky; Laplace or adaptive Gauss-Hermite quadrature).

Examples
--------
>>> import coevidence as cv
>>> from coevidence.models.mixed.datasets import load_dataset
>>> cbpp = load_dataset("cbpp")
>>> res = cv.fit_mixed("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
...                    family="binomial")
>>> res.tidy()[["term", "estimate"]].round(3).values.tolist()[:2]
[['(Intercept)', -1.399], ['period2', -0.992]]
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd

from coevidence.exceptions import (
    BoundaryFitWarning,
    FitWarning,
    MissingDataWarning,
    ModelSpecificationError,
    OptionError,
)
from coevidence.models._shared.options import check_conf_level
from coevidence.models.mixed._glmm import _kernels as K
from coevidence.models.mixed.formula import _split_top, build_problem

__all__ = ["FAMILY_LINKS", "fit_glmm", "parse_family"]

#: family -> (default link, allowed links)
FAMILY_LINKS = {
    "binomial": ("logit", ("logit", "probit", "cloglog")),
    "poisson": ("log", ("log",)),
}
_FAM_CODE = {"binomial": 0, "poisson": 1}
_LINK_CODE = {v: k for k, v in K.LINKS.items()}
_RESPONSE = "_cv_response"
SINGULAR_TOL = 1e-4


def parse_family(family, link: str | None = None) -> tuple[str, str]:
    """``(family, link)`` from ``"binomial"``, ``"poisson"``, ``("binomial", "probit")`` or
    R-style ``"binomial(link = 'probit')"``; unsupported values raise :class:`OptionError`.

    Examples
    --------
    >>> parse_family("binomial(link = 'probit')")
    ('binomial', 'probit')
    >>> parse_family("poisson")
    ('poisson', 'log')
    """
    fam = family
    if isinstance(family, (tuple, list)) and len(family) == 2:
        fam, link2 = family
        link = link or link2
    if not isinstance(fam, str):
        raise OptionError(f"family must be a string such as 'binomial' or 'poisson', got "
                          f"{family!r}")
    text = fam.strip().lower().replace('"', "'")
    m = re.fullmatch(r"(\w+)\s*(?:\(\s*(?:link\s*=\s*)?'?(\w*)'?\s*\))?", text)
    if not m:
        raise OptionError(f"cannot read family={family!r}")
    name, inner = m.group(1), m.group(2) or None
    if name == "gaussian":
        raise OptionError("family='gaussian' is a linear mixed model: call fit_mixed without "
                          "family (REML or ML, with Satterthwaite df)")
    if name not in FAMILY_LINKS:
        raise OptionError(f"family must be one of {sorted(FAMILY_LINKS)}, got {name!r} "
                          "(negative binomial and Gamma GLMMs are not implemented)")
    if link and inner and link != inner:
        raise OptionError(f"link given twice: {inner!r} in family and link={link!r}")
    link = link or inner or FAMILY_LINKS[name][0]
    if link not in FAMILY_LINKS[name][1]:
        raise OptionError(f"link {link!r} is not available for family {name!r}; choose one of "
                          f"{FAMILY_LINKS[name][1]}")
    return name, link


def _eval(expr: str, data: pd.DataFrame, what: str) -> np.ndarray:
    try:
        out = data.eval(expr, engine="python")
    except Exception as exc:  # noqa: BLE001 - any evaluation error is a specification error
        raise ModelSpecificationError(f"cannot evaluate {what} {expr!r}: {exc}") from exc
    arr = np.asarray(out, dtype=float)
    if arr.ndim == 0:
        arr = np.full(len(data), float(arr))
    return arr


def _split_formula(formula: str):
    """``(lhs, rhs_without_offsets, [offset expressions])``."""
    if "~" not in formula:
        raise ModelSpecificationError(f"formula {formula!r} has no '~'")
    lhs, rhs = formula.split("~", 1)
    keep, offsets = [], []
    for term in _split_top(rhs, "+"):
        t = term.strip()
        m = re.fullmatch(r"offset\s*\((.*)\)", t, flags=re.S)
        if m:
            offsets.append(m.group(1).strip())
        elif t:
            keep.append(t)
    if not keep:
        keep = ["1"]
    return lhs.strip(), " + ".join(keep), offsets


def _response(lhs: str, data: pd.DataFrame, fam: str, weights: np.ndarray | None):
    """``(y, m, label)``: response (proportion for binomial), prior weights and the label."""
    m = re.fullmatch(r"cbind\s*\((.*)\)", lhs, flags=re.S)
    prior = np.ones(len(data)) if weights is None else weights
    if m:
        if fam != "binomial":
            raise ModelSpecificationError("cbind(successes, failures) is for family='binomial'")
        parts = _split_top(m.group(1), ",")
        if len(parts) != 2:
            raise ModelSpecificationError(
                f"cbind() on the left needs two columns (successes, failures), got {lhs!r}")
        s = _eval(parts[0], data, "successes")
        f = _eval(parts[1], data, "failures")
        with np.errstate(invalid="ignore"):
            bad = np.isfinite(s) & np.isfinite(f) & ((s < 0) | (f < 0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ModelSpecificationError(
                f"cbind({parts[0]}, {parts[1]}): negative counts in {int(bad.sum())} rows "
                f"(first row {data.index[i]!r}: {s[i]:g}, {f[i]:g})")
        n = s + f
        with np.errstate(invalid="ignore", divide="ignore"):
            y = np.where(n > 0, s / np.where(n > 0, n, 1.0), 0.0)
        y = np.where(np.isfinite(n), y, np.nan)
        return y, prior * n, lhs
    if lhs not in data.columns:
        raise ModelSpecificationError(f"outcome {lhs!r} is not a column of the data (write "
                                      "cbind(successes, failures) for binomial counts)")
    col = data[lhs]
    if pd.api.types.is_bool_dtype(col):
        y = col.astype(float).to_numpy()
    elif not pd.api.types.is_numeric_dtype(col):
        levels = sorted(pd.unique(col.dropna()))
        if fam != "binomial" or len(levels) != 2:
            raise ModelSpecificationError(
                f"outcome {lhs!r} is not numeric (values {levels[:5]}); a binomial outcome may "
                "be 0/1, True/False or a two-level factor (the second level is the success)")
        y = np.where(col.isna(), np.nan, (col == levels[1]).astype(float))
    else:
        y = col.to_numpy(dtype=float)
    return y, prior, lhs


def _check_response(y, m, fam: str, label: str, index) -> None:
    ok = np.isfinite(y) & np.isfinite(m)
    if fam == "binomial":
        bad = ok & ((y < 0) | (y > 1))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ModelSpecificationError(
                f"binomial outcome {label!r} must be in [0, 1] (a proportion with weights= the "
                f"trials, 0/1, or cbind(successes, failures)); row {index[i]!r} has {y[i]:g}")
        k = m * y
        if np.any(ok & (np.abs(k - np.round(k)) > 1e-7)):
            warnings.warn(f"non-integer number of successes in the binomial outcome {label!r}",
                          FitWarning, stacklevel=4)
    else:
        bad = ok & (y < 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ModelSpecificationError(
                f"Poisson outcome {label!r} must be non-negative; row {index[i]!r} has {y[i]:g}")
        if np.any(ok & (np.abs(y - np.round(y)) > 1e-7)):
            warnings.warn(f"non-integer counts in the Poisson outcome {label!r}", FitWarning,
                          stacklevel=4)
    if np.any(ok & (m < 0)):
        raise ModelSpecificationError("prior weights (or trials) must be non-negative")


def _vector(arg, data: pd.DataFrame, what: str) -> np.ndarray | None:
    if arg is None:
        return None
    if isinstance(arg, str):
        if arg not in data.columns:
            raise ModelSpecificationError(f"{what}={arg!r} is not a column of the data")
        return data[arg].to_numpy(dtype=float)
    arr = np.asarray(arg, dtype=float)
    if arr.shape != (len(data),):
        raise ModelSpecificationError(f"{what} must be a column name or have one value per row "
                                      f"of the data ({len(data)}), got shape {arr.shape}")
    return arr


def fit_glmm(
    formula: str,
    data: pd.DataFrame,
    *,
    family="binomial",
    link: str | None = None,
    nagq: int = 1,
    weights=None,
    offset=None,
    conf_level: float = 0.95,
    start: dict | None = None,
):
    """Fit a GLMM (lme4's ``glmer``); called by :func:`coevidence.fit_mixed` with ``family=``.

    Parameters
    ----------
    formula : str
        lme4 syntax; ``cbind(successes, failures) ~ ...`` for binomial counts, ``offset(expr)``
        terms (e.g. ``offset(log(months))``) on the right.
    data : pandas.DataFrame
        Not modified. Rows with a missing value in any used column are dropped with a
        :class:`~coevidence.exceptions.MissingDataWarning` giving the count.
    family : {"binomial", "poisson"} or R-style ``"binomial(link = 'probit')"``
    link : {"logit", "probit", "cloglog"} (binomial) or "log" (Poisson), optional
    nagq : int, default 1
        1: Laplace approximation; 0: lme4's ``nAGQ = 0`` (beta estimated inside PIRLS, faster
        and slightly less accurate); > 1: adaptive Gauss-Hermite quadrature with that many
        nodes (only for one scalar random effect, as in lme4).
    weights : str or array, optional
        Prior weights; for a binomial proportion outcome, the number of trials.
    offset : str or array, optional
        Added to the linear predictor (with any ``offset()`` terms of the formula).
    conf_level : float, default 0.95
    start : dict, optional
        ``{"theta": ..., "beta": ...}`` starting values (lme4's order).

    Returns
    -------
    GlmmResult

    Examples
    --------
    >>> from coevidence.models.mixed.datasets import load_dataset
    >>> ticks = load_dataset("grouseticks")
    >>> res = fit_glmm("ticks ~ year + height_z + (1 | location/brood)", ticks,
    ...                family="poisson")
    >>> res.tidy(exponentiate=True)["estimate"].round(2).tolist()
    [1.59, 3.21, 0.38, 0.43]
    """
    from coevidence.models.mixed._fast._structure import analyse
    from coevidence.models.mixed._glmm.engine import GlmmData, PirlsFailure, fit_glmm_engine
    from coevidence.models.mixed.glmm_results import GlmmDiagnostics, GlmmResult

    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    fam, link = parse_family(family, link)
    if isinstance(nagq, bool) or not isinstance(nagq, (int, np.integer)) or not 0 <= nagq <= 100:
        raise OptionError(f"nagq must be an integer from 0 to 100, got {nagq!r}")
    nagq = int(nagq)
    check_conf_level(conf_level)
    work = data.reset_index(drop=True)
    lhs, rhs, offset_terms = _split_formula(formula)
    w_arg = _vector(weights, work, "weights")
    off = np.zeros(len(work))
    for expr in offset_terms:
        off = off + _eval(expr, work, "offset")
    off_arg = _vector(offset, work, "offset")
    if off_arg is not None:
        off = off + off_arg
    if "/" in lhs and not lhs.startswith("cbind") and lhs not in work.columns:
        y = _eval(lhs, work, "outcome")
        m = np.ones(len(work)) if w_arg is None else w_arg
        label = lhs
    else:
        y, m, label = _response(lhs, work, fam, w_arg)
    extra_na = ~(np.isfinite(m) & np.isfinite(off))
    _check_response(y, m, fam, label, data.index)
    n_extra = int(extra_na.sum())
    if n_extra:
        warnings.warn(f"{n_extra} of {len(work)} rows dropped for missing or non-finite "
                      "weights/trials or offset", MissingDataWarning, stacklevel=3)
        keep = ~extra_na
        work, y, m, off = work[keep].reset_index(drop=True), y[keep], m[keep], off[keep]
    work = work.assign(**{_RESPONSE: y})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            problem, info = build_problem(f"{_RESPONSE} ~ {rhs}", work, reml=False)
        except ModelSpecificationError as exc:
            raise ModelSpecificationError(str(exc).replace(_RESPONSE, label)) from exc
    for w in caught:  # re-issue with the outcome's own name
        if "has no variation" not in str(w.message):
            warnings.warn(str(w.message).replace(_RESPONSE, label), w.category, stacklevel=3)
    rows = np.asarray(info.row_index, dtype=np.int64)
    if not problem.terms:
        raise ModelSpecificationError(f"formula {formula!r} has no random-effect terms; "
                                      "use statsmodels' GLM for a model without them")
    struct, reason = analyse(problem)
    if struct is None:
        raise ModelSpecificationError(
            f"GLMMs need nested (or single) grouping factors for now: {reason}")
    if nagq > 1 and not (len(struct.levels) == 1 and struct.levels[0].q == 1):
        raise ModelSpecificationError(
            "nagq > 1 (adaptive Gauss-Hermite quadrature) needs a single scalar random effect, "
            "as in lme4; use nagq=1 (Laplace)")
    gd = GlmmData(y=np.asarray(problem.y, float), m=np.ascontiguousarray(m[rows]),
                  offset=np.ascontiguousarray(off[rows]), X=problem.X, fam=_FAM_CODE[fam],
                  link=_LINK_CODE[link], struct=struct).build(problem)
    theta0 = beta0 = None
    if start is not None:
        theta0 = None if start.get("theta") is None else np.asarray(start["theta"], float)
        beta0 = None if start.get("beta") is None else np.asarray(start["beta"], float)
    from coevidence.models.mixed._fast.engine import _one_blas_thread

    try:
        with _one_blas_thread():  # thin BLAS calls: extra threads only spin-wait each other
            fit = fit_glmm_engine(gd, nagq=nagq, theta_start=theta0, beta_start=beta0)
    except PirlsFailure as exc:
        from coevidence.exceptions import ConvergenceFailure

        raise ConvergenceFailure(f"the GLMM could not be fitted: {exc}") from exc
    report_theta = struct.report_theta(fit.theta)
    singular = bool(np.any(report_theta[struct.report_lower() == 0] < SINGULAR_TOL))
    grad_ok = _gradient_ok(fit)
    messages: list[str] = []
    if not fit.converged or not grad_ok:
        messages.append(f"the optimiser did not converge ({fit.message}); max |gradient| "
                        f"{np.max(np.abs(fit.gradient)):.2g}")
    if singular:
        messages.append("boundary (singular) fit: a variance is (near) zero or a correlation "
                        "is +-1")
    if fit.vcov_source != "hessian" and nagq > 0:
        messages.append("the Hessian over (theta, beta) is not positive definite: the "
                        "fixed-effect covariance is the RX-based approximation")
    for msg in messages:
        warnings.warn(msg, BoundaryFitWarning if msg.startswith("boundary") else FitWarning,
                      stacklevel=3)
    diag = GlmmDiagnostics(converged=bool(fit.converged and grad_ok), singular=singular,
                           messages=tuple(messages), n_evaluations=fit.n_eval,
                           gradient=tuple(float(g) for g in fit.gradient),
                           vcov_source=fit.vcov_source, optimizer=fit.message,
                           boundary=_boundary(problem, struct, fit))
    return GlmmResult(fit=fit, problem=problem, info=info, data=gd, family=fam, link=link,
                      outcome=label, formula=formula, diagnostics=diag,
                      conf_level=float(conf_level), n_dropped=int(info.n_dropped) + n_extra)


def _boundary(problem, struct, fit) -> pd.DataFrame:
    """One row per variance and correlation of the random effects (latent scale), flagged at
    the boundary as lme4 judges singularity (SD below 1e-4, |correlation| above 1 - 1e-6)."""
    rows = []
    for t_i, term in enumerate(problem.terms):
        li, sl = struct.term_level[t_i]
        lam = fit.lams[li][sl, sl]
        C = lam @ lam.T
        sd = np.sqrt(np.clip(np.diag(C), 0, None))
        for i, col in enumerate(term.columns):
            rows.append((term.group, col, "variance", float(C[i, i]), float(C[i, i]),
                         bool(sd[i] < SINGULAR_TOL)))
        for i in range(len(term.columns)):
            for j in range(i + 1, len(term.columns)):
                r = C[i, j] / (sd[i] * sd[j]) if sd[i] * sd[j] > 0 else np.nan
                rows.append((term.group, f"{term.columns[i]}:{term.columns[j]}", "correlation",
                             float(r), float(r), bool(np.isfinite(r) and abs(r) > 1 - 1e-6)))
    return pd.DataFrame(rows, columns=["group", "parameter", "kind", "value", "relative",
                                       "at_boundary"])


def _gradient_ok(fit) -> bool:
    """lme4's convergence check: scaled gradient ``max |H^-1 g| < 2e-3`` (relative)."""
    g = np.asarray(fit.gradient, float)
    try:
        step = np.linalg.solve(fit.hessian, g)
    except np.linalg.LinAlgError:
        return bool(np.max(np.abs(g)) < 1e-3)
    return bool(np.max(np.abs(step), initial=0.0) < 2e-3)

