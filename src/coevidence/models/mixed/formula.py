"""lme4-style formulas -> :class:`~coevidence.models.mixed._engine.MixedProblem`.

Supported syntax (as in lme4)::

    y ~ fixed + (1 + time | g)          correlated intercept and slope per g
    y ~ fixed + (time | g)              the same (the intercept is implicit)
    y ~ fixed + (0 + time | g)          slope only
    y ~ fixed + (1 | a/b)               nested: (1 | a) + (1 | b:a), inner ids made unique
    y ~ fixed + (1 | a:b)               one factor for each observed a x b combination
    y ~ fixed + (1 | g) + (0 + time | g)   uncorrelated intercept and slope
    y ~ fixed + (1 + time || g)         the same, written with ||

The fixed part is expanded by :mod:`formulaic` with treatment contrasts; column names are
rewritten the way R prints them (``(Intercept)``, ``sectorCatholic``, ``age_c:trtY``).
Both parts may use formulaic's transforms: ``center(x)``, ``scale(x)``, ``poly(x, 2)``
(orthogonal, as R's), ``bs(x, df=4)``, ``C(g)``, ``I(x**2)``, ``np.log(x)``; stateful ones
(``scale``, ``poly``, ``bs``) keep the training data's centre, scale and basis in
``predict(newdata)``. R's ``factor(x)`` is fitted as ``C(x)`` with R's column names.

Examples
--------
>>> import pandas as pd
>>> df = pd.DataFrame({"y": [1.0, 2.0, 3.0, 4.0, 5.0, 7.0], "t": [0, 1, 0, 1, 0, 1],
...                    "g": ["a", "a", "b", "b", "c", "c"]})
>>> problem, info = build_problem("y ~ t + (1 | g)", df)
>>> problem.fixed_names
('(Intercept)', 't')
>>> problem.terms[0].group, problem.terms[0].n_levels
('g', 3)
"""

from __future__ import annotations

import ast
import builtins
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from coevidence.exceptions import MissingDataWarning, ModelSpecificationError
from coevidence.models.mixed._engine import MixedProblem, RandomTerm

__all__ = ["FormulaInfo", "RandomSpec", "build_problem", "parse_formula"]

_WORD = re.compile(r"[A-Za-z_.][A-Za-z0-9_.]*")


@dataclass(frozen=True)
class RandomSpec:
    """One parsed random term before data are attached: ``(expr | factors)``.

    Examples
    --------
    >>> RandomSpec("1", ("b", "a")).group
    'b:a'
    """

    expr: str
    factors: tuple[str, ...]  # one factor or an interaction a:b (inner first, as lme4 labels)
    correlated: bool = True

    @property
    def group(self) -> str:
        return ":".join(self.factors)


@dataclass(frozen=True)
class ParsedFormula:
    """The pieces of an lme4 formula.

    Examples
    --------
    >>> parse_formula("y ~ x + (1 | g)").outcome
    'y'
    """

    outcome: str
    fixed: str
    random: tuple[RandomSpec, ...]


@dataclass(frozen=True)
class FormulaInfo:
    """What :func:`build_problem` learned while building the problem (kept on the result).

    Attributes
    ----------
    formula : the formula as given.
    outcome : name of the outcome column.
    fixed : the fixed-effects part (right-hand side without random terms).
    random : parsed random terms (after ``/`` and ``||`` expansion, in problem order).
    data : the rows actually used (a copy; categorical columns as coded for the fit).
    n_input, n_dropped : rows given and rows dropped for missing values.
    dropped_by_column : missing-value count per column among the used columns.
    row_index : index labels (of the input) of the rows used.
    fixed_spec : formulaic ``ModelSpec`` of the fixed part (for ``predict(newdata)``).
    raw_fixed_names : formulaic column names, aligned with ``MixedProblem.fixed_names``.
    group_columns : the input columns used as grouping factors.
    weights : what the group weights of a weighted fit were (``_weights.GroupWeights``).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"y": [1.0, None, 3.0, 4.0], "g": [1, 1, 2, 2]})
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     _, info = build_problem("y ~ 1 + (1 | g)", df)
    >>> info.n_dropped, info.outcome
    (1, 'y')
    """

    formula: str
    outcome: str
    fixed: str
    random: tuple[RandomSpec, ...]
    data: pd.DataFrame = field(repr=False)
    n_input: int = 0
    n_dropped: int = 0
    dropped_by_column: dict[str, int] = field(default_factory=dict)
    row_index: pd.Index = field(default_factory=lambda: pd.RangeIndex(0), repr=False)
    fixed_spec: Any = field(default=None, repr=False)
    raw_fixed_names: tuple[str, ...] = ()
    group_columns: tuple[str, ...] = ()
    weights: Any = None  # GroupWeights of a weighted fit (``_weights.py``)


# --------------------------------------------------------------------------------------
# parsing
# --------------------------------------------------------------------------------------


def _split_top(text: str, sep: str) -> list[str]:
    """Split ``text`` on ``sep`` outside parentheses."""
    parts, depth, cur, i = [], 0, [], 0
    while i < len(text):
        ch = text[i]
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if depth == 0 and text.startswith(sep, i):
            parts.append("".join(cur))
            cur = []
            i += len(sep)
            continue
        cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def _strip_parens(text: str) -> str:
    text = text.strip()
    while text.startswith("(") and text.endswith(")"):
        depth = 0
        for i, ch in enumerate(text):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0 and i < len(text) - 1:
                return text
        text = text[1:-1].strip()
    return text


def parse_formula(formula: str) -> ParsedFormula:
    """Split an lme4 formula into outcome, fixed part and expanded random terms.

    Parameters
    ----------
    formula : str
        For example ``"y ~ time * ta_model + (1 + time | org_id) + (1 | provider_id)"``.

    Returns
    -------
    ParsedFormula

    Examples
    --------
    >>> p = parse_formula("y ~ x + (1 | a/b)")
    >>> p.fixed, [t.group for t in p.random]
    ('x', ['a', 'b:a'])
    """
    if not isinstance(formula, str) or formula.count("~") != 1:
        raise ModelSpecificationError(
            f"formula must be a string 'outcome ~ terms' with exactly one '~'; got {formula!r}"
        )
    lhs, rhs = (s.strip() for s in formula.split("~"))
    if not _WORD.fullmatch(lhs):
        raise ModelSpecificationError(
            f"the outcome (left of '~') must be a column name; got {lhs!r} in {formula!r}"
        )
    fixed_parts: list[str] = []
    random: list[RandomSpec] = []
    for raw in _split_top(rhs, "+"):
        part = raw.strip()
        if not part:
            raise ModelSpecificationError(f"empty term in formula {formula!r}")
        inner = _strip_parens(part) if part.startswith("(") else None
        if inner is not None and "|" in inner and len(_split_top(inner, "|")) > 1:
            random.extend(_parse_random(inner, formula))
        else:
            fixed_parts.append(part)
    fixed = " + ".join(fixed_parts) if fixed_parts else "1"
    if not random:
        raise ModelSpecificationError(
            f"formula {formula!r} has no random-effects term such as (1 | group); "
            "use an ordinary regression for a model without random effects"
        )
    return ParsedFormula(outcome=lhs, fixed=fixed, random=tuple(random))


def _parse_random(inner: str, formula: str) -> list[RandomSpec]:
    double = "||" in inner
    pieces = _split_top(inner, "||" if double else "|")
    if len(pieces) != 2:
        raise ModelSpecificationError(f"cannot read random term ({inner}) in {formula!r}")
    expr, grp = pieces[0].strip(), pieces[1].strip()
    if not expr:
        raise ModelSpecificationError(f"random term ({inner}) has nothing left of '|'")
    grp = grp.replace(" ", "")
    if not re.fullmatch(r"[A-Za-z_.][A-Za-z0-9_.]*([/:][A-Za-z_.][A-Za-z0-9_.]*)*", grp):
        raise ModelSpecificationError(
            f"grouping factor {grp!r} in ({inner}) must be column names joined by '/' or ':'"
        )
    groups: list[tuple[str, ...]] = []
    if "/" in grp:
        if ":" in grp:
            raise ModelSpecificationError(f"cannot mix '/' and ':' in grouping factor {grp!r}")
        names = grp.split("/")
        for k in range(1, len(names) + 1):
            groups.append(tuple(reversed(names[:k])))  # lme4 labels the inner level b:a
    else:
        groups.append(tuple(grp.split(":")))
    exprs = [expr]
    if double:
        exprs = _split_uncorrelated(expr)
    return [
        RandomSpec(expr=e, factors=g, correlated=not double) for g in groups for e in exprs
    ]


def _split_uncorrelated(expr: str) -> list[str]:
    """``1 + a + b`` -> ``["1", "0 + a", "0 + b"]`` (lme4's ``||`` expansion)."""
    terms = [t.strip() for t in _split_top(expr, "+") if t.strip()]
    has_int = True
    out: list[str] = []
    for t in terms:
        if t in ("0", "-1"):
            has_int = False
        elif t == "1":
            continue
        else:
            out.append(f"0 + {t}")
    return (["1"] if has_int else []) + out


# --------------------------------------------------------------------------------------
# building the problem
# --------------------------------------------------------------------------------------


def _variables(expr: str, data: pd.DataFrame) -> list[str]:
    """Data columns a formula part uses, also inside function calls (``scale(days)``).

    formulaic's ``required_variables`` leaves out the arguments of transforms, so the names are
    read from each factor: a plain lookup is a column; a Python factor (``poly(x, 2)``,
    ``np.log(x)``, ``C(g, contr.treatment)``) is parsed and its bare names are taken, except
    those called as functions. A called function that neither formulaic nor Python knows is
    refused here, naming it (R's ``factor()`` was rewritten to ``C()`` before).
    """
    from formulaic import Formula

    try:
        terms = list(Formula(expr))
    except Exception as exc:  # noqa: BLE001 - formulaic raises many types
        raise ModelSpecificationError(f"cannot parse formula part {expr!r}: {exc}") from exc
    names: list[str] = []
    for term in terms:
        for factor in term.factors:
            method = getattr(factor.eval_method, "value", factor.eval_method)
            if method == "lookup":
                names.append(str(factor.expr))
            elif method == "python":
                names += _python_names(str(factor.expr), expr)
    names = list(dict.fromkeys(names))
    return [n for n in names if n in data.columns or not _is_builtin(n)]


def _python_names(code: str, part: str) -> list[str]:
    """Bare names of a Python factor expression, minus functions (which must be known)."""
    try:
        tree = ast.parse(code, mode="eval")
    except SyntaxError as exc:
        raise ModelSpecificationError(f"cannot parse {code!r} in {part!r}: {exc}") from exc
    called: set[int] = set()
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            while isinstance(func, ast.Attribute):  # np.log -> np
                func = func.value
            if isinstance(func, ast.Name):
                called.add(id(func))
                if not _is_builtin(func.id) and not hasattr(builtins, func.id):
                    raise ModelSpecificationError(
                        f"unknown function {func.id!r} in {code!r} ({part!r}): formulaic "
                        "knows center(), scale(), poly(), bs(), C(), I(), np.*, log(), exp() "
                        "(R's factor(x) is accepted and fitted as C(x))"
                    )
            if isinstance(node.func, ast.Name) and node.func.id == "Q":  # Q("odd name")
                out += [a.value for a in node.args
                        if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        elif isinstance(node, ast.Attribute):
            base = node.value
            if isinstance(base, ast.Name):
                called.add(id(base))  # contr.treatment, np.pi: not columns
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and id(node) not in called:
            out.append(node.id)
    return out


def _is_builtin(name: str) -> bool:
    from formulaic.transforms import TRANSFORMS

    return name in TRANSFORMS or name in {
        "C", "I", "Q", "np", "log", "exp", "sqrt", "center", "scale", "poly", "bs",
        "Treatment", "Sum", "contr", "lag", "abs", "True", "False", "None"}


#: R's factor(x) -> formulaic's C(x): the same treatment contrasts on the levels of x
_R_FACTOR = re.compile(r"(?<![A-Za-z0-9_.])factor\s*\(")


def _r_factor_names(formula: str) -> dict[str, str]:
    """``{"C(days)": "factor(days)"}`` for each ``factor(...)`` of an R formula."""
    return {f"C({m.strip()})": f"factor({m.strip()})"
            for m in re.findall(r"(?<![A-Za-z0-9_.])factor\s*\(([^()]*)\)", formula)}


def _r_name(raw: str, order: dict[str, int]) -> str:
    if raw == "Intercept":
        return "(Intercept)"
    parts = raw.split(":")
    keyed = []
    for i, p in enumerate(parts):
        m = re.fullmatch(r"(.*)\[T\.(.*)\]", p)
        var = m.group(1) if m else p
        name = f"{m.group(1)}{m.group(2)}" if m else p
        basis = re.fullmatch(r"(.*\))\[(\d+)\]", p)  # poly(x, 2)[1] -> R's poly(x, 2)1
        if basis and not m:
            var, name = basis.group(1), f"{basis.group(1)}{basis.group(2)}"
        keyed.append((order.get(var, 10_000 + i), i, name))
    return ":".join(n for *_, n in sorted(keyed))


def _first_positions(rhs: str, names: list[str]) -> dict[str, int]:
    pos = {}
    for n in names:
        m = re.search(rf"(?<![A-Za-z0-9_.]){re.escape(n)}(?![A-Za-z0-9_.])", rhs)
        pos[n] = m.start() if m else 10_000
    return pos


def _prepare(data: pd.DataFrame) -> pd.DataFrame:
    """Strings/booleans/objects become categoricals (R's alphabetical levels) in a copy."""
    out = data.copy(deep=False)  # copy-on-write: replaced columns never touch ``data``
    for col in out.columns:
        s = out[col]
        if isinstance(s.dtype, pd.CategoricalDtype):
            out[col] = s.cat.remove_unused_categories()
        elif s.dtype == object or pd.api.types.is_string_dtype(s) or pd.api.types.is_bool_dtype(s):
            out[col] = pd.Categorical(s)
    return out


def _code_dtype(n_levels: int) -> type:
    """int32 group codes (half the memory of int64: 4 MB a term at 1M rows) unless there are
    too many levels for them."""
    return np.int32 if n_levels < np.iinfo(np.int32).max else np.int64


def _group_codes(data: pd.DataFrame, factors: tuple[str, ...]) -> tuple[np.ndarray, pd.Index]:
    if len(factors) == 1:
        cat = pd.Categorical(data[factors[0]])
        cat = cat.remove_unused_categories()
        codes = np.asarray(cat.codes, dtype=_code_dtype(len(cat.categories)))
        return codes, pd.Index(cat.categories, name=factors[0])
    # vectorised (a per-row string join took ~20 s at 100k rows): the distinct combinations
    # in lme4's order (sorted by the outer factors first, then the inner), then each row's
    # position among them
    sub = data[list(factors)]
    uniq = sub.drop_duplicates().sort_values(list(reversed(factors)), kind="stable")
    label = uniq[factors[0]].astype(str)
    for f in factors[1:]:
        label = label + ":" + uniq[f].astype(str)
    ordered = pd.Index(label.to_numpy(), name=":".join(factors))
    codes = pd.MultiIndex.from_frame(uniq).get_indexer(pd.MultiIndex.from_frame(sub))
    return np.asarray(codes, dtype=_code_dtype(len(ordered))), ordered


def _check_values(data: pd.DataFrame, used: list[str], outcome: str) -> None:
    """Raise ModelSpecificationError for inf in a used numeric column or an all-NaN outcome."""
    msgs = []
    for col in used:
        ser = data[col]
        if not pd.api.types.is_numeric_dtype(ser) or pd.api.types.is_bool_dtype(ser):
            continue
        vals = ser.to_numpy(dtype=float, na_value=np.nan)
        bad = np.flatnonzero(np.isinf(vals))
        if len(bad):
            msgs.append(
                f"column {col!r} has {len(bad)} infinite value(s) (inf/-inf) at 0-based rows "
                f"{[int(b) for b in bad[:5]]}{' ...' if len(bad) > 5 else ''}"
            )
    if msgs:
        raise ModelSpecificationError("; ".join(msgs) + "; replace or drop them before fitting")
    if len(data) and bool(data[outcome].isna().all()):
        raise ModelSpecificationError(
            f"outcome {outcome!r} is missing (NaN) in every one of the {len(data)} rows"
        )


def build_problem(
    formula: str, data: pd.DataFrame, reml: bool = True
) -> tuple[MixedProblem, FormulaInfo]:
    """Build the :class:`MixedProblem` for an lme4-style ``formula`` on ``data``.

    Rows with a missing outcome, covariate or grouping id are dropped; the count is given in a
    :class:`~coevidence.exceptions.MissingDataWarning` and in ``info.n_dropped``. ``data`` is
    never modified.

    Parameters
    ----------
    formula : str
        lme4 syntax, see the module docstring.
    data : pandas.DataFrame
        One row per observation. Character and boolean columns are treated as factors with
        alphabetically ordered levels (as R does); pass a pandas ``Categorical`` to choose the
        reference level (its first category).
    reml : bool, default True
        Stored on the problem: REML (True) or maximum likelihood.

    Returns
    -------
    problem : MixedProblem
        Random terms in lme4's order (``mkReTrms``: by decreasing number of levels when the
        formula's order is not already so; ties then in reverse formula order).
    info : FormulaInfo

    Raises
    ------
    ModelSpecificationError
        Unreadable formula, unknown columns, a rank-deficient fixed-effects matrix, no rows, an
        outcome missing in every row, or ``inf``/``-inf`` in the outcome or a numeric covariate
        (naming the column, the count and the first rows).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"y": [1.0, 2.0, 2.5, 4.0], "g": [1, 1, 2, 2], "x": [0, 1, 0, 1]})
    >>> problem, info = build_problem("y ~ x + (1 | g)", df)
    >>> problem.X.shape, info.n_dropped
    ((4, 2), 0)
    """
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    # R's factor(x) is formulaic's C(x); its columns keep R's names (factor(x)2)
    r_factor = _r_factor_names(formula)
    parsed = parse_formula(_R_FACTOR.sub("C(", formula))
    fixed_vars = _variables(parsed.fixed, data)
    rand_vars: list[str] = []
    group_cols: list[str] = []
    for spec in parsed.random:
        rand_vars += _variables(spec.expr, data)
        group_cols += [f for f in spec.factors if f not in group_cols]
    used = list(dict.fromkeys([parsed.outcome, *fixed_vars, *rand_vars, *group_cols]))
    missing_cols = [c for c in used if c not in data.columns]
    if missing_cols:
        raise ModelSpecificationError(
            f"formula {formula!r} uses column(s) {missing_cols} not in the data; "
            f"available: {list(data.columns)}"
        )
    y_raw = data[parsed.outcome]
    if not pd.api.types.is_numeric_dtype(y_raw) or pd.api.types.is_bool_dtype(y_raw):
        raise ModelSpecificationError(
            f"outcome column {parsed.outcome!r} must be numeric; it has dtype {y_raw.dtype}"
        )
    _check_values(data, used, parsed.outcome)
    na = data[used].isna()
    dropped_by_column = {c: int(v) for c, v in na.sum().items() if v}
    keep = ~na.any(axis=1).to_numpy()
    del na  # (n, columns) booleans: not kept while the matrices are built
    n_dropped = int((~keep).sum())
    if n_dropped:
        detail = ", ".join(f"{c}: {n}" for c, n in dropped_by_column.items())
        warnings.warn(
            f"{n_dropped} of {len(data)} rows dropped for missing values ({detail}); "
            f"{int(keep.sum())} rows used",
            MissingDataWarning,
            stacklevel=2,
        )
    if keep.sum() == 0:
        raise ModelSpecificationError("no complete rows left after dropping missing values")
    # all rows kept: a column selection (no copy under copy-on-write) instead of .loc
    sub = _prepare(data[used] if n_dropped == 0 else data.loc[keep, used])
    y = sub[parsed.outcome].to_numpy(dtype=float)
    if np.ptp(y) == 0:
        raise ModelSpecificationError(
            f"outcome {parsed.outcome!r} has no variation (it is {y[0]:g} in all {len(y)} rows "
            "used): there is nothing for a mixed model to estimate"
        )
    X, raw_names, spec = _fixed_matrix(parsed.fixed, sub, formula)
    rhs = formula.split("~", 1)[1]
    order = _first_positions(rhs, list(data.columns))
    fixed_names = tuple(_r_name(n, order) for n in raw_names)
    for c_name, r_name in r_factor.items():
        fixed_names = tuple(n.replace(c_name, r_name) for n in fixed_names)
    X.flags.writeable = False  # random-effect Z may be views of its columns
    terms = [_random_term(s, sub, formula, X) for s in parsed.random]
    idx = _lme4_term_order([t.n_levels for t in terms])
    terms = [terms[i] for i in idx]
    random = tuple(parsed.random[i] for i in idx)
    problem = MixedProblem(y=y, X=X, fixed_names=fixed_names, terms=tuple(terms), reml=bool(reml))
    info = FormulaInfo(
        formula=formula,
        outcome=parsed.outcome,
        fixed=parsed.fixed,
        random=random,
        data=sub,
        n_input=len(data),
        n_dropped=n_dropped,
        dropped_by_column=dropped_by_column,
        row_index=data.index if n_dropped == 0 else data.index[keep],
        fixed_spec=spec,
        raw_fixed_names=tuple(raw_names),
        group_columns=tuple(group_cols),
    )
    return problem, info


def _lme4_term_order(nl: list[int]) -> list[int]:
    """lme4's ``mkReTrms`` order: if any term has more levels than the one before it,
    ``rev(order(nl))`` (so ties end up in reverse formula order); otherwise as written."""
    if any(b > a for a, b in zip(nl, nl[1:])):
        return list(reversed(sorted(range(len(nl)), key=lambda i: nl[i])))
    return list(range(len(nl)))


def _fixed_matrix(fixed: str, sub: pd.DataFrame, formula: str):
    from formulaic import model_matrix

    try:
        mm = model_matrix(fixed, sub, na_action="raise")
    except Exception as exc:  # noqa: BLE001
        raise ModelSpecificationError(
            f"cannot build the fixed-effects matrix for {fixed!r} in {formula!r}: {exc}"
        ) from exc
    X = np.asarray(mm, dtype=float)
    names = list(mm.columns)
    if X.shape[1] == 0:
        raise ModelSpecificationError(f"no fixed effects in {formula!r}; use at least '~ 1'")
    rank = _rank(X)
    if rank < X.shape[1]:
        raise ModelSpecificationError(
            f"the fixed-effects matrix of {formula!r} is rank deficient (rank {rank} for "
            f"{X.shape[1]} columns: {names}); remove collinear or empty terms"
        )
    return X, names, mm.model_spec


def _rank(X: np.ndarray) -> int:
    """``np.linalg.matrix_rank(X)``, skipping the SVD when ``X'X`` is clearly non-singular.

    When the eigenvalues of ``X'X`` give ``s_min / s_max > 1e-4``, every singular value of ``X``
    is far above ``matrix_rank``'s tolerance (``s_max max(n, p) eps``): the rank is ``p``.
    """
    p = X.shape[1]
    if p and np.all(np.isfinite(X[:1])):
        w = np.linalg.eigvalsh(X.T @ X)
        if np.isfinite(w).all() and w[-1] > 0 and w[0] > 1e-8 * w[-1]:
            return p
    return int(np.linalg.matrix_rank(X))


def random_matrix(expr: str, data: pd.DataFrame) -> tuple[np.ndarray, tuple[str, ...]]:
    """Model matrix of a random-term expression (``"1 + time"``) with lme4 column names.

    Examples
    --------
    >>> import pandas as pd
    >>> Z, cols = random_matrix("1 + t", pd.DataFrame({"t": [0.0, 1.0]}))
    >>> cols
    ('(Intercept)', 't')
    """
    from formulaic import model_matrix

    mm = model_matrix(expr, data, na_action="raise")
    order = {c: i for i, c in enumerate(data.columns)}
    names = tuple(_r_name(n, order) for n in mm.columns)
    return np.asarray(mm, dtype=float), names


def _shared_columns(Z: np.ndarray, X: np.ndarray) -> np.ndarray:
    """``Z``'s values without a second copy where possible (memory: at 1M rows a ``(time | g)``
    term's Z is 16 MB, a ``(1 | g)`` term's 8 MB).

    When every column of ``Z`` is a column of ``X`` (``(time | g)`` with ``time`` and an
    intercept among the fixed effects: the usual case) at evenly spaced positions, a read-only
    view of those columns of ``X``; otherwise, for an all-ones ``Z`` (a random intercept), a
    read-only broadcast of 1.0 (no memory at all); otherwise ``Z`` itself.
    """
    n, k = Z.shape
    pos: list[int] = []
    for c in range(k):
        z = Z[:, c]
        j = next((j for j in range(X.shape[1]) if j not in pos  # the first rows, then all
                  and np.array_equal(X[:64, j], z[:64]) and np.array_equal(X[:, j], z)), None)
        if j is None:
            break
        pos.append(j)
    view = None
    if len(pos) == k and (k == 1 or (pos[1] > pos[0] and np.all(np.diff(pos) == pos[1] - pos[0]))):
        step = 1 if k == 1 else pos[1] - pos[0]
        view = X[:, pos[0]: pos[-1] + 1: step]
    elif k == 1 and bool(np.all(Z == 1.0)):
        view = np.broadcast_to(np.float64(1.0), (n, 1))
    if view is None:
        return Z
    view = view.view()
    view.flags.writeable = False
    return view


def _random_term(
    spec: RandomSpec, sub: pd.DataFrame, formula: str, X: np.ndarray | None = None
) -> RandomTerm:
    try:
        Z, cols = random_matrix(spec.expr, sub)
    except Exception as exc:  # noqa: BLE001
        raise ModelSpecificationError(
            f"cannot build random term ({spec.expr} | {spec.group}) in {formula!r}: {exc}"
        ) from exc
    if Z.shape[1] == 0:
        raise ModelSpecificationError(f"random term ({spec.expr} | {spec.group}) is empty")
    if X is not None and len(Z):
        Z = _shared_columns(Z, X)
    codes, levels = _group_codes(sub, spec.factors)
    correlated = spec.correlated and Z.shape[1] > 1
    return RandomTerm(
        group=spec.group, codes=codes, levels=levels, columns=cols, Z=Z, correlated=correlated
    )
