"""Where the arm is assigned: detection, the between-cluster df bound and the df guard.

A term whose variables include one that is constant within the clusters of some level (the arm
of a study randomised by TA provider is constant within providers) is identified only by
comparisons *between* those clusters. Its test is valid only when the model lets that term's
effect vary at that level (a random intercept for the arm, a random slope for arm x time), and
its df cannot exceed the between-cluster df ``G - q`` (``G`` clusters, ``q`` cluster-level
fixed effects of the same kind), the "between-within" df of SAS and of Li & Redden (2015).

Examples
--------
>>> import pandas as pd
>>> d = pd.DataFrame({"p": list("aabbccdd"), "o": list("ABCDEFGH"), "arm": [0, 0, 1, 1] * 2})
>>> constant_within(d, "arm", "p"), constant_within(d, "arm", "o")
(True, True)
>>> coarsest_constant_level(d, "arm", ["p", "o"])
'p'
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from coevidence.exceptions import DesignDfWarning

__all__ = [
    "DESIGN_DF_FACTOR",
    "BetweenTerm",
    "between_terms",
    "coarsest_constant_level",
    "constant_within",
    "design_guard",
]

#: fit_mixed warns when a between-cluster term whose effect has no random component at its
#: assignment level is tested with df above this multiple of its between-cluster df bound
#: ``G - q`` (and above ``G``): with the slope variance missing at the assignment level the df
#: approach the number of repeated units (measured in benchmarks/bench_growth_calibration.py).
DESIGN_DF_FACTOR = 2.0
#: With the random component present, Satterthwaite df may exceed ``G - q`` when that variance
#: is small; they are flagged only beyond this multiple (and ``G - q + 20``), where the variance
#: is effectively at zero and the df have fallen back towards the number of repeated units.
DESIGN_DF_FACTOR_MODELLED = 4.0


class _Codes:
    """Integer codes of a frame's columns (``pd.factorize``, NaN a value), each computed once.

    The guard asks many constancy questions of the same few columns; with the codes cached each
    question is two vectorised passes over the rows (no sorting, no hashing).
    """

    def __init__(self, data: pd.DataFrame) -> None:
        self.data = data
        self._codes: dict = {}

    def get(self, col) -> tuple[np.ndarray, int, bool]:
        """``(codes, number of distinct values, whether NaN is one of them)``."""
        hit = self._codes.get(col)
        if hit is None:
            codes, uniques = pd.factorize(self.data[col], use_na_sentinel=False)
            has_na = bool(np.asarray(pd.isna(uniques)).any())
            hit = (np.asarray(codes, dtype=np.intp), len(uniques), has_na)
            self._codes[col] = hit
        return hit

    def group(self, keys: Sequence[str]) -> tuple[np.ndarray, int]:
        """Codes of the combinations of ``keys`` and their number."""
        if len(keys) == 1:
            c, k, _ = self.get(keys[0])
            return c, k
        hit = self._codes.get(tuple(keys))
        if hit is None:
            g = np.zeros(len(self.data), dtype=np.int64)
            for key in keys:
                c, k, _ = self.get(key)
                g = g * k + c
            codes, uniques = pd.factorize(g)
            hit = (np.asarray(codes, dtype=np.intp), len(uniques))
            self._codes[tuple(keys)] = hit
        return hit

    def nunique(self, col, dropna: bool = True) -> int:
        """As ``Series.nunique``."""
        _, k, has_na = self.get(col)
        return k - int(dropna and has_na)


def _first_of(v: np.ndarray, g: np.ndarray, n_groups: int) -> np.ndarray:
    """A value of ``v`` in every group (the last one written)."""
    first = np.empty(n_groups, dtype=v.dtype)
    first[g] = v
    return first


def _constant_codes(v: np.ndarray, g: np.ndarray, n_groups: int) -> bool:
    return bool(np.array_equal(_first_of(v, g, n_groups)[g], v))


def constant_within(data: pd.DataFrame, var: str, group: str | Sequence[str],
                    cache: _Codes | None = None) -> bool:
    """True when ``var`` takes one value within every level of ``group`` (NaN is a value).

    ``cache`` (the codes of ``data``'s columns) saves refactorising columns across calls.
    """
    keys = [group] if isinstance(group, str) else list(group)
    codes = cache if cache is not None and cache.data is data else _Codes(data)
    v = codes.get(var)[0]
    g, n_groups = codes.group(keys)
    return _constant_codes(v, g, n_groups)


def coarsest_constant_level(
    data: pd.DataFrame, var: str, levels: Sequence[str], cache: _Codes | None = None
) -> str | None:
    """The level with the fewest groups among ``levels`` within which ``var`` is constant.

    A level counts only when every value of ``var`` spans at least two of its groups (a
    relabelled copy of the arm is not a level the arm was assigned at).
    """
    codes = cache if cache is not None and cache.data is data else _Codes(data)
    v, n_values, _ = codes.get(var)
    cands = []
    for g in levels:
        if g == var:
            continue
        gc, n_groups, _ = codes.get(g)
        first = _first_of(v, gc, n_groups)
        if not np.array_equal(first[gc], v):
            continue
        # groups per value of var (every group has exactly one value of var here)
        per_value = np.bincount(first, minlength=n_values)
        if (per_value[per_value > 0] >= 2).all():
            cands.append(g)
    if not cands:
        return None
    return min(cands, key=lambda g: (codes.nunique(g, dropna=False), list(levels).index(g)))


@dataclass(frozen=True)
class BetweenTerm:
    """A fixed-effect column that varies only between the clusters of ``level``.

    Attributes
    ----------
    index : position of the column among the fixed effects.
    name : its lme4 name (``"time:ta_modelco_creation"``).
    variable : the variable of the term that is constant within clusters (``"ta_model"``).
    within : the term's other variables (``("time",)``): what must vary at ``level``.
    level : the grouping column (the coarsest one within which ``variable`` is constant).
    n_clusters : number of clusters ``G``.
    df_bound : ``G - q``, ``q`` the number of fixed columns with the same ``within`` part that
        are constant within clusters apart from ``within`` (the intercept or slope itself, the
        arm contrasts, cluster-level covariates).
    """

    index: int
    name: str
    variable: str
    within: tuple[str, ...]
    level: str
    n_clusters: int
    df_bound: float


def _term_columns(info) -> list[tuple[int, set[str]]]:
    """(column position, data variables of its term) for every fixed column."""
    spec = info.fixed_spec
    position = {c: i for i, c in enumerate(info.raw_fixed_names)}
    names = list(spec.column_names)
    out = []
    for term, sl in spec.term_slices.items():
        vars_ = {str(v) for v in spec.term_variables.get(term, set())} & set(info.data.columns)
        out += [(position[c], vars_) for c in names[sl] if c in position]
    return out


def between_terms(
    info, frame: pd.DataFrame, levels: Sequence[str], fixed_names: Sequence[str],
    cache: _Codes | None = None,
) -> list[BetweenTerm]:
    """Fixed columns whose term contains a variable constant within the clusters of a level.

    ``frame`` holds the model's rows with the model's columns and any candidate level columns;
    ``levels`` are the candidate assignment levels.
    """
    cols = _term_columns(info)
    n = len(frame)
    codes = cache if cache is not None and cache.data is frame else _Codes(frame)
    constant: dict[str, str | None] = {}
    for _, vars_ in cols:
        for v in vars_:
            if v not in constant:
                nun = codes.nunique(v, dropna=False)
                constant[v] = (
                    coarsest_constant_level(frame, v, levels, codes) if nun > 1 else None
                )
    varies: dict[tuple[str, str], bool] = {}

    def within_part(vars_: set[str], level: str) -> tuple[str, ...]:
        """The variables of a term that vary within the clusters of ``level``."""
        for u in vars_:
            if (u, level) not in varies:
                varies[u, level] = not constant_within(frame, u, level, codes)
        return tuple(sorted(u for u in vars_ if varies[u, level]))

    out: list[BetweenTerm] = []
    for j, vars_ in cols:
        hits = [(v, constant[v]) for v in sorted(vars_) if constant.get(v)]
        if not hits:
            continue
        v, level = min(hits, key=lambda h: codes.nunique(h[1]))
        G = codes.nunique(level)
        if G >= n:
            continue
        within = within_part(vars_ - {v}, level)
        # q: columns with the same within-part whose other variables are all cluster-level
        q = sum(within_part(other, level) == within for _, other in cols)
        out.append(BetweenTerm(index=j, name=fixed_names[j], variable=v, within=within,
                               level=level, n_clusters=G, df_bound=float(max(G - q, 1))))
    return out


def modelled_at(result, frame: pd.DataFrame, bt: BetweenTerm,
                cache: _Codes | None = None) -> bool:
    """Whether a random term at ``bt.level`` or coarser has the columns of ``bt.within`` (the
    intercept when ``within`` is empty): the term's effect then varies between clusters."""
    info = result._info
    for spec, term in zip(info.random, result._problem.terms):
        if not all(f in frame.columns and constant_within(frame, f, bt.level, cache)
                   for f in spec.factors):
            continue
        cols = set(term.columns)
        if bt.within:
            # a slope at the level: exact for the modelled variable, and taken to cover other
            # time codings of it (a categorical wave x arm term beside a random time slope)
            if cols - {"(Intercept)"}:
                return True
        elif "(Intercept)" in cols:
            return True
    return False


def candidate_levels(info, data: pd.DataFrame | None, extra: Sequence[str] = (),
                     cache: _Codes | None = None) -> list[str]:
    """Grouping columns of the model, ``extra`` ones, and columns of ``data`` above them.

    A column of ``data`` not in the model is a candidate when it is a label column (string,
    categorical, boolean-free integer ids) in which the model's coarsest grouping factor is
    nested: the level a study may have randomised at without modelling it. ``cache``: the
    codes of ``info.data``'s columns.
    """
    levels = list(dict.fromkeys([*info.group_columns, *[e for e in extra if e]]))
    if data is None or not len(info.group_columns):
        return levels
    codes = cache if cache is not None and cache.data is info.data else _Codes(info.data)
    base = min(info.group_columns, key=lambda g: codes.nunique(g))
    base_codes, n_base, _ = codes.get(base)
    n_base_unique = codes.nunique(base)
    n = len(info.row_index)
    for col in data.columns:
        if col in levels or col in info.data.columns and col not in info.group_columns:
            continue
        s = data[col]
        if not (
            isinstance(s.dtype, pd.CategoricalDtype)
            or pd.api.types.is_string_dtype(s)
            or pd.api.types.is_object_dtype(s)
            or (pd.api.types.is_integer_dtype(s) and not pd.api.types.is_bool_dtype(s))
        ):
            continue
        s = s.loc[info.row_index]
        col_codes, k, has_na = _Codes(pd.DataFrame({"col": s.to_numpy()})).get("col")
        if has_na:
            continue
        if not 2 <= k <= max(n // 4, 2) or k >= n_base_unique:
            continue
        if _constant_codes(col_codes, base_codes, n_base):  # the model's groups nest in col
            levels.append(col)
    return levels


#: A GLMM's z tests of a between-cluster term are flagged below this many between-cluster df
#: (t(50) and z quantiles differ by 2%; the type I error of a nominal 5% z test is ~5.5%).
GLMM_Z_CLUSTERS = 50


def design_guard(result, data: pd.DataFrame | None = None, extra: Sequence[str] = (),
                 stacklevel: int = 3) -> tuple[BetweenTerm, ...]:
    """Warn (:class:`DesignDfWarning`) for between-cluster terms tested with too many df.

    Returns the flagged terms (empty when none).
    """
    info = result._info
    model_codes = _Codes(info.data)
    levels = candidate_levels(info, data, extra, model_codes)
    if not levels:
        return ()
    extra_cols = [c for c in levels if c not in info.data.columns] if data is not None else []
    if extra_cols:
        frame = info.data.copy()
        for col in extra_cols:
            frame[col] = data.loc[info.row_index, col].to_numpy()
        codes = _Codes(frame)
        codes._codes.update(model_codes._codes)  # same rows, same columns: reuse their codes
    else:
        frame, codes = info.data, model_codes
    terms = between_terms(info, frame, levels, list(result.params.index), codes)
    if not terms:
        return ()
    dfs = result.tidy()["df"].to_numpy(float)
    flagged = []
    for bt in terms:
        df = dfs[bt.index]
        if not np.isfinite(bt.df_bound):
            continue
        if hasattr(result, "family") and not np.isfinite(df) and bt.df_bound >= GLMM_Z_CLUSTERS:
            continue  # a GLMM's z test: close enough to t with that many clusters
        modelled = modelled_at(result, frame, bt, codes)
        if result.cov_type == "cr2":
            bad = not df <= max(DESIGN_DF_FACTOR * bt.df_bound, bt.n_clusters)
        elif modelled:
            bad = not df <= max(DESIGN_DF_FACTOR_MODELLED * bt.df_bound, bt.df_bound + 20)
        else:
            bad = True  # the model-based SE ignores how the effect varies between clusters
        if bad:
            flagged.append((bt, df, modelled or result.cov_type == "cr2"))
    if flagged:
        lines = []
        for bt, df, modelled in flagged:
            slope = " + ".join(bt.within) if bt.within else ""
            re_ = f"(1 + {slope} | {bt.level})" if slope else f"(1 | {bt.level})"
            why = ("" if modelled else
                   f" and its SE ignores how {'its effect' if slope else 'the outcome'} varies "
                   f"between them (no {re_} term)")
            lines.append(
                f"{bt.name!r} varies only between the {bt.n_clusters} levels of "
                f"{bt.level!r} ({bt.variable!r} is constant within them) but is tested with "
                f"{df:.1f} df ({result.df_method}){why}; at most {bt.df_bound:g} df are "
                f"available between {bt.level!r} clusters. Let the effect vary at that level "
                f"({re_}), use fit_growth (design-aware random slopes), or "
                + (f"cov_type='cr2' with cluster={bt.level!r}" if not hasattr(result, "family")
                   else "fit_growth(..., family=) for t tests on the between-within df")
            )
        warnings.warn(
            "anti-conservative inference for between-cluster term(s): " + "; ".join(lines),
            DesignDfWarning,
            stacklevel=stacklevel,
        )
    return tuple(bt for bt, *_ in flagged)
