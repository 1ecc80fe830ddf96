"""Model comparison for linear mixed models, as lme4 and lmerTest do it.

* :func:`anova` with two or more models: likelihood-ratio tests of nested models (lme4's
  ``anova.merMod``): REML fits are refitted by ML first (``refit=True``, lme4's default), the
  models are sorted by their number of parameters and each is tested against the one before.
* :func:`anova` with one model: type III F tests of every fixed-effect term (lmerTest's
  ``anova(m, type = 3, ddf = "Satterthwaite" | "Kenward-Roger")``), with lmerTest's type III
  hypotheses (SAS containment, computed in treatment coding and mapped to the coding used) and
  its multi-df Satterthwaite denominator df (``contestMD``).
* :func:`ranova`: lmerTest's likelihood-ratio tests of each random-effect term reduced
  (intercept-only terms removed, other terms with one slope dropped at a time).

Examples
--------
>>> import warnings, coevidence as cv
>>> from coevidence.models.mixed.datasets import load_dataset
>>> ss = load_dataset("sleepstudy")
>>> m0 = cv.fit_mixed("reaction ~ days + (1 | subject)", ss)
>>> m1 = cv.fit_mixed("reaction ~ days + (days | subject)", ss)
>>> tab = cv.anova(m0, m1)
>>> tab["npar"].tolist()
[4, 6]
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from coevidence.exceptions import ModelSpecificationError, OptionError

__all__ = ["anova", "ranova", "type3_contrasts"]

_DDF = {"satterthwaite": "satterthwaite", "Satterthwaite": "satterthwaite",
        "kenward_roger": "kenward_roger", "Kenward-Roger": "kenward_roger"}


def _check_mixed(m: Any, what: str) -> None:
    from coevidence.models.mixed.results import MixedResult

    if not isinstance(m, MixedResult):
        raise TypeError(f"{what} must be a MixedResult (from fit_mixed / fit_growth), "
                        f"got {type(m).__name__}")


def _refit(m, *, formula: str | None = None, reml: bool | None = None):
    """``m`` refitted (same rows) with another formula and/or criterion, without the
    design-df guard (the tests here do not use the fixed-effect df)."""
    from coevidence.models.mixed.api import _fit_mixed

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _fit_mixed(formula or m._info.formula, m._info.data,
                          reml=m.reml if reml is None else reml, df_method="residual")


# ------------------------------------------------------------------------- LRT anova
def anova(*models, refit: bool = True, ddf: str | None = None, type: int | str = 3,
          names: list[str] | None = None) -> pd.DataFrame:
    """Likelihood-ratio tests of nested mixed models, or type III F tests of one model.

    Parameters
    ----------
    *models : MixedResult
        One model: type III F tests of its fixed-effect terms (lmerTest's
        ``anova(m, type = 3)``). Two or more: likelihood-ratio tests (lme4's ``anova``).
    refit : bool, default True
        Refit REML fits by maximum likelihood before comparing (lme4's default; compare REML
        criteria only with models that have the same fixed effects).
    ddf : {"satterthwaite", "kenward_roger"}, optional
        Denominator df of the F tests (one model only); lmerTest's spellings
        ``"Satterthwaite"`` and ``"Kenward-Roger"`` are accepted. Default: the model's
        ``df_method`` when it is one of these, else Satterthwaite.
    type : {3, "III"}
        Only type III tests are provided.
    names : list of str, optional
        Row labels of the comparison table (default ``model_1``, ``model_2``, ... in the order
        given).

    Returns
    -------
    DataFrame
        Comparison: one row per model sorted by ``npar`` with ``model``, ``npar``, ``aic``,
        ``bic``, ``log_lik``, ``deviance``, ``chisq``, ``df``, ``p_value`` (lme4's columns).
        Type III: one row per term with ``term``, ``sum_sq``, ``mean_sq``, ``num_df``,
        ``den_df``, ``f_value``, ``p_value`` (lmerTest's columns).

    Notes
    -----
    For a design-aware growth model (``fit_growth``) whose between-cluster df are bounded
    (see its ``growth.design``), the same bound caps the F tests' denominator df, as it caps
    the df of ``tidy()``.

    The models must be fitted to the same rows (checked: number, row labels and outcome
    values); a model whose fixed-effect columns or random-effect terms are not contained in
    the next larger one is reported with a warning (the test then compares non-nested models).

    Examples
    --------
    >>> import coevidence as cv
    >>> from coevidence.models.mixed.datasets import load_dataset
    >>> ss = load_dataset("sleepstudy")
    >>> m1 = cv.fit_mixed("reaction ~ days + (days | subject)", ss)
    >>> round(float(cv.anova(m1)["f_value"].iloc[0]), 2)
    45.85
    """
    if not models:
        raise OptionError("anova needs at least one model")
    for i, m in enumerate(models):
        _check_mixed(m, f"model {i + 1}")
        m._refuse_weighted("anova")
    if len(models) == 1:
        if names is not None:
            raise OptionError("names= is used only when comparing two or more models")
        return type3_anova(models[0], ddf=ddf, type=type)
    if ddf is not None:
        raise OptionError("ddf= is used only with a single model (type III F tests)")
    return _lrt_table(models, refit=refit, names=names)


def _same_rows(models) -> None:
    first = models[0]
    for i, m in enumerate(models[1:], start=2):
        same = (m.nobs == first.nobs and m._info.row_index.equals(first._info.row_index)
                and np.array_equal(m._problem.y, first._problem.y))
        if not same:
            raise ModelSpecificationError(
                f"models 1 and {i} are not fitted to the same rows "
                f"({first.nobs} vs {m.nobs} observations, or other rows/outcome values); "
                "fit every model to the same complete-case data")


def _random_set(m) -> set[tuple[str, str]]:
    return {(t.group, c) for t in m._problem.terms for c in t.columns}


def _lrt_table(models, *, refit: bool, names) -> pd.DataFrame:
    _same_rows(models)
    if names is None:
        names = [f"model_{i + 1}" for i in range(len(models))]
    if len(names) != len(models):
        raise OptionError(f"names= has {len(names)} labels for {len(models)} models")
    fits = list(models)
    if refit and any(m.reml for m in models):
        fits = [_refit(m, reml=False) if m.reml else m for m in models]
    elif not refit and len({m.reml for m in models}) > 1:
        raise ModelSpecificationError("refit=False needs all models fitted by the same "
                                      "criterion (all REML or all ML)")
    npar = np.array([m.n_params for m in fits])
    order = np.argsort(npar, kind="stable")
    fits = [fits[i] for i in order]
    labels = [names[i] for i in order]
    for a, b, la, lb in zip(fits[:-1], fits[1:], labels[:-1], labels[1:]):
        fixed_ok = set(a._problem.fixed_names) <= set(b._problem.fixed_names)
        rand_ok = _random_set(a) <= _random_set(b)
        if not (fixed_ok and rand_ok):
            warnings.warn(f"{la!r} does not look nested in {lb!r} (its "
                          f"{'fixed effects' if not fixed_ok else 'random effects'} are not "
                          "a subset); the likelihood-ratio test assumes nested models",
                          UserWarning, stacklevel=3)
    ll = np.array([m.log_lik for m in fits])
    k = np.array([m.n_params for m in fits], dtype=float)
    n = fits[0].nobs
    dev = -2 * ll
    chisq = np.r_[np.nan, dev[:-1] - dev[1:]]
    dfs = np.r_[np.nan, np.diff(k)]
    with np.errstate(invalid="ignore"):
        p = np.where(dfs > 0, stats.chi2.sf(chisq, np.where(dfs > 0, dfs, 1)), np.nan)
    p[0] = np.nan
    return pd.DataFrame({
        "model": labels, "npar": k.astype(int), "aic": dev + 2 * k, "bic": dev + np.log(n) * k,
        "log_lik": ll, "deviance": dev, "chisq": chisq, "df": dfs, "p_value": p,
    })


# ------------------------------------------------------------------------- type III
def _zapsmall(x: np.ndarray, digits: int = 7) -> np.ndarray:
    """R's ``zapsmall``."""
    mx = np.nanmax(np.abs(x)) if x.size else 0.0
    if mx > 0:
        return np.round(x, max(0, digits - int(np.ceil(np.log10(mx)))))
    return np.round(x, digits)


class _TermInfo:
    def __init__(self, name, factors, numeric, kinds):
        self.name = name
        self.factors = factors  # list of (expr, levels, values) for categorical factors
        self.numeric = numeric  # product of the numeric parts (n,)
        self.kinds = kinds  # variable names: (categorical set, numeric set)


def _term_structure(m):
    """Per fixed term: its categorical factors (levels and values) and numeric part."""
    info = m._info
    spec = info.fixed_spec
    data = info.data
    n = len(data)
    levels_of = {str(k): list(v.levels) for k, v in spec.factor_contrasts.items()}
    out = []
    for term in spec.term_indices:
        name = str(term)
        if name == "1":
            continue
        cats, numeric, cvars, nvars = [], np.ones(n), set(), set()
        for factor in term.factors:
            expr = str(factor.expr)
            col = expr
            mc = re.fullmatch(r"C\(\s*([A-Za-z_.][A-Za-z0-9_.]*)\s*(,.*)?\)", expr)
            if mc:
                col = mc.group(1)
            if str(factor) in levels_of or expr in levels_of:
                lv = levels_of.get(str(factor), levels_of.get(expr))
                if col not in data.columns:
                    raise ModelSpecificationError(
                        f"type III tests: cannot read the categorical factor {expr!r}")
                cats.append((expr, lv, data[col].astype(object).to_numpy()))
                cvars.add(col)
            elif col in data.columns:
                numeric = numeric * data[col].to_numpy(dtype=float)
                nvars.add(col)
            else:  # a numeric transform: evaluate it with formulaic
                from formulaic import model_matrix

                mm = model_matrix(f"0 + {expr}", data)
                if mm.shape[1] != 1:
                    raise ModelSpecificationError(
                        f"type III tests: cannot read the term {name!r} (factor {expr!r})")
                numeric = numeric * np.asarray(mm, dtype=float)[:, 0]
                nvars.add(expr)
        out.append(_TermInfo(name, cats, numeric, (cvars, nvars)))
    return out


def _full_columns(t: _TermInfo, reduced: list[bool]):
    """Dummy columns of a term: all level combinations; with ``reduced[i]`` the first level of
    factor i is left out (treatment contrasts). Returns (matrix, level tuples)."""
    import itertools

    lvls = [lv[1:] if red else lv for (_, lv, _), red in zip(t.factors, reduced)]
    cols, keys = [], []
    # R's column order: the first factor varies fastest
    for combo in itertools.product(*reversed(lvls)):
        combo = tuple(reversed(combo))
        v = t.numeric.copy()
        for (_, _, values), level in zip(t.factors, combo):
            v = v * (values == level)
        cols.append(v)
        keys.append(combo)
    if not cols:
        return np.empty((len(t.numeric), 0)), []
    return np.column_stack(cols), keys


def type3_contrasts(m) -> dict[str, np.ndarray]:
    """lmerTest's type III hypothesis matrices, one per fixed-effect term (rows: hypotheses,
    columns: the model's fixed effects, in the model's own coding).

    Examples
    --------
    >>> import coevidence as cv
    >>> from coevidence.models.mixed.datasets import load_dataset
    >>> m = cv.fit_mixed("reaction ~ days + (1 | subject)", load_dataset("sleepstudy"))
    >>> type3_contrasts(m)["days"].tolist()
    [[0.0, 1.0]]
    """
    _check_mixed(m, "model")
    terms = _term_structure(m)
    Xorig = np.asarray(m._problem.X, dtype=float)  # noqa: N806
    has_int = "1" in {str(t) for t in m._info.fixed_spec.term_indices}
    n = Xorig.shape[0]
    present = {frozenset(t.kinds[0] | t.kinds[1]) for t in terms}
    # treatment-coded X (R's rule: a factor is contrast-coded when the term without it is in
    # the model, the intercept counting for the empty term) and the rank-deficient rdX
    xt_cols, xt_term, rd_cols = [], [], []
    if has_int:
        xt_cols.append(np.ones(n))
        xt_term.append(None)
        rd_cols.append(np.ones(n))
    for j, t in enumerate(terms):
        allv = t.kinds[0] | t.kinds[1]
        reduced = []
        for expr, _, _ in t.factors:
            col = re.sub(r"^C\(\s*([A-Za-z_.][A-Za-z0-9_.]*).*\)$", r"\1", expr)
            rest = frozenset(allv - {col})
            reduced.append((len(rest) == 0 and has_int) or (len(rest) > 0 and rest in present))
        Xj, _ = _full_columns(t, reduced)  # noqa: N806
        for c in Xj.T:
            xt_cols.append(c)
            xt_term.append(j)
        Rj, _ = _full_columns(t, [False] * len(t.factors))  # noqa: N806
        rd_cols += list(Rj.T)
    Xt = np.column_stack(xt_cols)  # noqa: N806
    rdX = np.column_stack(rd_cols)  # noqa: N806
    # keep a full-rank Xt (columns of all-zero cells dropped, as ensure_full_rank)
    keep = _independent_columns(Xt)
    Xt = Xt[:, keep]  # noqa: N806
    xt_term = [xt_term[i] for i in keep]
    L = _zapsmall((np.linalg.pinv(Xt) @ rdX).T)  # rdX columns x Xt columns
    cols_of = {j: [i for i, tj in enumerate(xt_term) if tj == j] for j in range(len(terms))}

    def contains(j1, j2):  # term j1 contained in term j2 (SAS containment)
        c1, n1 = terms[j1].kinds
        c2, n2 = terms[j2].kinds
        v1, v2 = c1 | n1, c2 | n2
        return v1 <= v2 and len(v2 - v1) > 0 and n1 == n2

    order = sorted(range(len(terms)), key=lambda j: -len(terms[j].kinds[0] | terms[j].kinds[1]))
    for j in order:
        cont = [k for k in range(len(terms)) if contains(j, k)]
        if cont and cols_of[j]:
            A = L[:, [c for k in cont for c in cols_of[k]]]  # noqa: N806
            B = L[:, cols_of[j]]  # noqa: N806
            coef, *_ = np.linalg.lstsq(A, B, rcond=None)
            L[:, cols_of[j]] = _zapsmall(B - A @ coef)
    # rows of L for the model's coefficients: the rdX columns equal to the Xt columns
    rows = []
    for c in Xt.T:
        hit = np.flatnonzero(np.all(np.isclose(rdX, c[:, None], rtol=0, atol=1e-12), axis=0))
        rows.append(int(hit[0]))
    L = L[rows, :]  # Xt coefficients x Xt coefficients
    mapping = _zapsmall(np.linalg.pinv(Xt) @ Xorig)  # Xt coefficients -> model coefficients
    out = {}
    for j, t in enumerate(terms):
        Lj = L[:, cols_of[j]].T @ mapping  # noqa: N806
        Lj = Lj[np.sum(np.abs(Lj), axis=1) > 1e-8]  # noqa: N806
        out[t.name] = Lj
    return out


def _independent_columns(X: np.ndarray, tol: float = 1e-7) -> list[int]:  # noqa: N803
    keep: list[int] = []
    for i in range(X.shape[1]):
        trial = X[:, keep + [i]]
        if np.linalg.matrix_rank(trial, tol=tol * max(1.0, np.abs(trial).max())) == len(keep) + 1:
            keep.append(i)
    return keep


def _satterthwaite_pieces(m):
    from coevidence.models.mixed._inference import SatterthwaiteDF
    from coevidence.models.mixed.api import _scaled_satterthwaite

    fn = m._inf.df_fn
    fn = getattr(fn, "base", fn)  # the base rule of a df bound
    owner = getattr(fn, "__self__", None)
    if isinstance(owner, SatterthwaiteDF):
        return owner
    sizes = tuple(len(t.columns) for t in m._problem.terms)
    sat, _ = _scaled_satterthwaite(m._fit, m._problem, sizes)
    return sat


def _fstat_ddf(nu: np.ndarray, tol: float = 1e-8) -> float:
    """lmerTest's ``get_Fstat_ddf``."""
    if len(nu) == 1:
        return float(nu[0])
    if np.all(np.abs(np.diff(nu)) < tol):
        return float(np.mean(nu))
    if np.any(nu <= 2):
        return 2.0
    E = np.sum(nu / (nu - 2))  # noqa: N806
    return float(2 * E / (E - len(nu)))


def _contest_sat(beta, sat, sigma, L) -> tuple[float, float, float, float]:
    """lmerTest's ``contestMD`` (Satterthwaite): (unscaled F, NumDF, DenDF, F)."""
    V = np.asarray(sat.vcov_beta)  # noqa: N806
    VL = L @ V @ L.T  # noqa: N806
    d, P = np.linalg.eigh((VL + VL.T) / 2)  # noqa: N806
    d, P = d[::-1], P[:, ::-1]  # noqa: N806
    tol = max(np.sqrt(np.finfo(float).eps) * d[0], 0)
    q = int(np.sum(d > tol))
    PtL = (P.T @ L)[:q]  # noqa: N806
    t2 = (PtL @ beta) ** 2 / d[:q]
    F = float(np.sum(t2) / q)  # noqa: N806
    nu = np.asarray(sat.df(PtL), dtype=float)
    return F, float(q), _fstat_ddf(nu), F


def type3_anova(m, *, ddf: str | None = None, type: int | str = 3) -> pd.DataFrame:
    """Type III F tests of one model; see :func:`anova`."""
    if str(type) not in ("3", "III"):
        raise OptionError(f"type must be 3 (type III tests), got {type!r}")
    if ddf is None:
        ddf = m.df_method if m.df_method in ("satterthwaite", "kenward_roger") else \
            "satterthwaite"
    if ddf not in _DDF:
        raise OptionError(f"ddf must be 'satterthwaite' or 'kenward_roger', got {ddf!r}")
    ddf = _DDF[ddf]
    Ls = type3_contrasts(m)
    beta = np.asarray(m._fit.beta, dtype=float)
    sigma = m.sigma
    rows = []
    if ddf == "kenward_roger":
        if not m.reml:
            raise ModelSpecificationError("Kenward-Roger df are defined for REML fits")
        from coevidence.models.mixed._inference import kenward_roger
        from coevidence.models.mixed._likelihood import LMMEvaluator

        vadj, kr = kenward_roger(LMMEvaluator(m._problem), m._fit.varpar)
        for name, L in Ls.items():
            q = float(np.linalg.matrix_rank(L))
            Lb = L @ beta  # noqa: N806
            Fu = float(Lb @ np.linalg.solve(L @ vadj @ L.T, Lb) / q)  # noqa: N806
            den, scale = kr(L)
            rows.append((name, Fu, q, den, Fu * scale))
    else:
        sat = _satterthwaite_pieces(m)
        for name, L in Ls.items():
            rows.append((name, *_contest_sat(beta, sat, sigma, L)))
    bound = m._inf.df_fn
    if hasattr(bound, "caps") and hasattr(bound, "idx"):  # a design-aware growth model's
        # between-cluster df bound (the rule tidy() applies) caps the F tests' df as well
        capped = []
        for (name, fu, q, den, f), L in zip(rows, Ls.values()):
            hit = np.any(np.abs(L[:, bound.idx]) > 0, axis=0)
            if hit.any():
                den = min(den, float(bound.caps[hit].min()))
            capped.append((name, fu, q, den, f))
        rows = capped
    out = pd.DataFrame(rows, columns=["term", "_f", "num_df", "den_df", "f_value"])
    ms = out["_f"] * sigma**2
    res = pd.DataFrame({"term": out["term"], "sum_sq": ms * out["num_df"], "mean_sq": ms,
                        "num_df": out["num_df"], "den_df": out["den_df"],
                        "f_value": out["f_value"]})
    res["p_value"] = stats.f.sf(res["f_value"], res["num_df"], res["den_df"])
    return res


# ------------------------------------------------------------------------- ranova
def _lhs_terms(expr: str) -> tuple[bool, list[str]]:
    from coevidence.models.mixed.formula import _split_top

    parts = [p.strip() for p in _split_top(expr, "+") if p.strip()]
    intercept = not any(p in ("0", "-1") for p in parts)
    terms = [p for p in parts if p not in ("0", "1", "-1")]
    return intercept, terms


def _drop_scope(terms: list[str]) -> list[str]:
    sets = [frozenset(t.replace(" ", "").split(":")) for t in terms]
    return [t for t, s in zip(terms, sets) if not any(s < o for o in sets)]


def _lm_loglik(y: np.ndarray, X: np.ndarray, reml: bool) -> tuple[float, int]:
    """R's ``logLik.lm`` (``REML=`` as given) and its df (rank + 1)."""
    q, r = np.linalg.qr(X)
    p = np.linalg.matrix_rank(X)
    res = y - q @ (q.T @ y)
    n = len(y) - (p if reml else 0)
    val = 0.5 * (-n * (np.log(2 * np.pi) + 1 - np.log(n) + np.log(np.sum(res**2))))
    if reml:
        val -= np.sum(np.log(np.abs(np.diag(r)[:p])))
    return float(val), p + 1


def _findbars_order(specs) -> list:
    """Random terms in lme4's ``findbars`` order: a ``/`` expansion innermost first."""
    specs = list(specs)
    out, i = [], 0
    while i < len(specs):
        j = i + 1
        while (j < len(specs) and specs[j].expr == specs[i].expr
               and len(specs[j].factors) == len(specs[j - 1].factors) + 1
               and specs[j].factors[1:] == specs[j - 1].factors):
            j += 1
        out += specs[i:j][::-1]
        i = j
    return out


def ranova(m, *, reduce_terms: bool = True) -> pd.DataFrame:
    """lmerTest's ``ranova``: likelihood-ratio tests of each random-effect term reduced.

    Each random term ``(expr | g)`` is reduced in turn, the others kept: a term with only an
    intercept is removed; otherwise each slope that can be dropped (not part of an
    interaction in the term) is dropped, a term left with one slope becoming ``(1 | g)``
    (lmerTest reduces ``(0 + x | g)`` to ``(1 | g)`` too). With ``reduce_terms=False`` whole
    terms are removed. Models keep the criterion of the fit (REML fits are compared by their
    REML log-likelihood, as lmerTest does); a model left without random effects is an
    ordinary regression (R's ``logLik.lm`` with the same ``REML``).

    Parameters
    ----------
    m : MixedResult
    reduce_terms : bool, default True

    Returns
    -------
    DataFrame with ``term`` (``"<none>"`` for the model itself, then lmerTest's labels such
    as ``"days in (days | subject)"``), ``npar``, ``log_lik``, ``aic``, ``lrt``, ``df``,
    ``p_value``.

    Examples
    --------
    >>> import coevidence as cv
    >>> from coevidence.models.mixed.datasets import load_dataset
    >>> m = cv.fit_mixed("reaction ~ days + (days | subject)", load_dataset("sleepstudy"))
    >>> cv.ranova(m)["term"].tolist()
    ['<none>', 'days in (days | subject)']
    """
    from coevidence.models.mixed.formula import parse_formula

    _check_mixed(m, "model")
    m._refuse_weighted("ranova")
    parsed = parse_formula(m._info.formula)
    rand = [(s.expr, s.group) for s in _findbars_order(parsed.random)]
    texts = [f"({e} | {g})" for e, g in rand]
    reduced: list[tuple[str, list[str]]] = []
    for i, (expr, g) in enumerate(rand):
        others = texts[:i] + texts[i + 1:]
        intercept, lhs = _lhs_terms(expr)
        scope = _drop_scope(lhs)
        if not reduce_terms or not lhs or not scope:
            reduced.append((f"({expr} | {g})", others))
            continue
        for scp in scope:
            rest = [t for t in lhs if t != scp]
            if not rest:
                new = "1"
            else:
                new = " + ".join(rest) if intercept else "0 + " + " + ".join(rest)
            # R's update() keeps one copy of a term that is already in the formula
            reduced.append((f"{scp} in ({expr} | {g})", list(dict.fromkeys(
                texts[:i] + [f"({new} | {g})"] + texts[i + 1:]))))
    rows = [("<none>", m.log_lik, m.n_params)]
    for label, rterms in reduced:
        if rterms:
            formula = f"{parsed.outcome} ~ {parsed.fixed} + " + " + ".join(rterms)
            r = _refit(m, formula=formula)
            if r.nobs != m.nobs:
                raise ModelSpecificationError("number of rows in use has changed")
            rows.append((label, r.log_lik, r.n_params))
        else:
            ll, k = _lm_loglik(np.asarray(m._problem.y, float), np.asarray(m._problem.X, float),
                               m.reml)
            rows.append((label, ll, k))
    tab = pd.DataFrame(rows, columns=["term", "log_lik", "npar"])
    tab["aic"] = -2 * tab["log_lik"] + 2 * tab["npar"]
    lrt = 2 * (tab["log_lik"].iloc[0] - tab["log_lik"])
    dfs = (tab["npar"].iloc[0] - tab["npar"]).astype(float)
    lrt.iloc[0] = np.nan
    dfs.iloc[0] = np.nan
    tab["lrt"] = lrt
    tab["df"] = dfs
    with np.errstate(invalid="ignore"):
        tab["p_value"] = np.where(dfs > 0, stats.chi2.sf(lrt, dfs.where(dfs > 0, 1)), np.nan)
    return tab[["term", "npar", "log_lik", "aic", "lrt", "df", "p_value"]]
