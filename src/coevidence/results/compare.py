"""Side-by-side tables of several fitted models (text, HTML, Markdown and booktabs LaTeX).

Every term of every model gets a row (blank where a model lacks the term); standard errors
(or confidence intervals, p values, statistics) go in parentheses below the estimates; the
model rows below the terms give ``nobs``, the number of groups per grouping level
(``groups: <level>``), the covariance type and the df method of each model.

Examples
--------
>>> tab = compare({"A": res_a, "B": res_b}, stars=True)  # doctest: +SKIP
>>> print(tab.to_markdown())  # doctest: +SKIP
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["STARS", "ComparisonTable", "compare"]

#: Default significance stars: ``***`` p < 0.001, ``**`` p < 0.01, ``*`` p < 0.05.
STARS: tuple[tuple[float, str], ...] = ((0.001, "***"), (0.01, "**"), (0.05, "*"))

#: Model-level rows, in order (groups rows ``groups: <level>`` follow ``nobs``).
_MODEL_ROWS = ("nobs", "log_lik", "aic", "bic", "r_squared", "cov_type", "df_method")

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}

_STAT_NOTE = {"std_error": "standard errors", "p_value": "p values", "statistic": "t statistics",
              "conf_int": "confidence intervals"}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def _cell(v: object) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)


@dataclass(frozen=True)
class ComparisonTable:
    """Estimates of several models, one column per model, with SEs below and model rows.

    Attributes
    ----------
    table : DataFrame
        The compact table (``"estimate (SE)"`` in one cell; terms then model rows).
    notes : dict
        What the parentheses hold, the star thresholds, ...
    estimates, below, stats : DataFrame or None
        The pieces of the stacked layout: estimate strings (terms x models), the strings in
        parentheses below them, and the model rows.

    Examples
    --------
    >>> ComparisonTable(pd.DataFrame({"m": ["1.00 (0.10)"]}, index=["x"]), {}).to_frame().shape
    (1, 1)
    """

    table: pd.DataFrame
    notes: dict
    estimates: pd.DataFrame | None = None
    below: pd.DataFrame | None = None
    stats: pd.DataFrame | None = field(default=None)

    # ------------------------------------------------------------------ data
    def to_frame(self, layout: str = "compact") -> pd.DataFrame:
        """The table as a DataFrame (columns: models).

        ``layout="compact"``: one row per term (``"estimate (SE)"``) then the model rows;
        ``"stacked"``: two rows per term (index ``(term, "estimate")`` and ``(term, stat)``),
        then ``(row, "")`` for the model rows, as the text renderings show it.
        """
        if layout == "compact":
            return self.table.copy()
        if layout != "stacked":
            raise ValueError(f"layout must be 'compact' or 'stacked', got {layout!r}")
        return self._stacked()[0]

    def _stacked(self) -> tuple[pd.DataFrame, int]:
        """Stacked frame and the number of term rows (estimate and below rows)."""
        if self.estimates is None or self.below is None:
            return self.table.copy(), len(self.table)
        rows, index = [], []
        for term in self.estimates.index:
            rows.append(self.estimates.loc[term].map(_cell))
            index.append((str(term), "estimate"))
            rows.append(self.below.loc[term].map(_cell))
            index.append((str(term), "below"))
        n_terms = len(rows)
        stats = self.stats if self.stats is not None else pd.DataFrame(columns=self.table.columns)
        for name in stats.index:
            rows.append(stats.loc[name].map(_cell))
            index.append((str(name), ""))
        frame = pd.DataFrame(rows, columns=self.table.columns)
        frame.index = pd.MultiIndex.from_tuples(index, names=["row", "part"])
        return frame, n_terms

    def _lines(self) -> tuple[list[str], list[list[str]], int]:
        """Header, body rows (label + cells) for renderings, and the number of term rows."""
        frame, n_terms = self._stacked()
        header = ["", *map(str, self.table.columns)]
        body = []
        for i, (key, row) in enumerate(frame.iterrows()):
            label = key[0] if isinstance(key, tuple) else str(key)
            if isinstance(key, tuple) and key[1] == "below":
                label = ""
            body.append([label, *(_cell(v) for v in row)])
            del i
        return header, body, n_terms

    def _foot(self) -> str:
        return "; ".join(f"{k}: {v}" for k, v in self.notes.items())

    # ------------------------------------------------------------------ renderings
    def to_markdown(self) -> str:
        """A GitHub-flavoured Markdown table (SEs in the row below each estimate)."""
        header, body, _ = self._lines()
        header[0] = "term"
        lines = ["| " + " | ".join(header) + " |",
                 "|---|" + "---:|" * (len(header) - 1)]
        for cells in body:
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        foot = self._foot()
        return "\n".join(lines) + (f"\n\n{foot}\n" if foot else "\n")

    def to_latex(self, booktabs: bool = True) -> str:
        """A ``tabular`` with every cell LaTeX-escaped (``\\toprule``/``\\midrule``/
        ``\\bottomrule`` of the booktabs package, or ``\\hline`` with ``booktabs=False``)."""
        top, mid, bottom = ((r"\toprule", r"\midrule", r"\bottomrule") if booktabs
                            else (r"\hline", r"\hline", r"\hline"))
        header, body, n_terms = self._lines()
        ncol = len(header) - 1
        lines = [r"\begin{tabular}{l" + "c" * ncol + "}", top]
        lines.append(" & ".join(_latex_escape(c) for c in header) + r" \\")
        lines.append(mid)
        for i, cells in enumerate(body):
            if i == n_terms and n_terms < len(body):
                lines.append(mid)
            lines.append(" & ".join(_latex_escape(c) for c in cells) + r" \\")
        lines.append(bottom)
        lines.append(r"\end{tabular}")
        foot = self._foot()
        if foot:
            lines.append(r"% " + _latex_escape(foot))
        return "\n".join(lines) + "\n"

    def to_text(self) -> str:
        """Plain text with aligned columns (what ``str()`` and ``repr()`` show)."""
        header, body, n_terms = self._lines()
        rows = [header, *body]
        widths = [max(len(r[j]) for r in rows) for j in range(len(header))]

        def fmt(r: list[str]) -> str:
            return "  ".join(c.ljust(widths[0]) if j == 0 else c.rjust(widths[j])
                             for j, c in enumerate(r)).rstrip()

        rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
        out = [rule, fmt(header), rule]
        for i, r in enumerate(body):
            if i == n_terms and n_terms < len(body):
                out.append(rule)
            out.append(fmt(r))
        out.append(rule)
        foot = self._foot()
        return "\n".join(out) + (f"\n{foot}" if foot else "")

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        try:
            return self.to_text()
        except Exception as exc:  # noqa: BLE001 - a repr must not raise
            return f"<ComparisonTable: could not be rendered ({type(exc).__name__}: {exc})>"

    def _repr_html_(self) -> str:
        try:
            header, body, n_terms = self._lines()
            th = "".join(f"<th>{html.escape(c)}</th>" for c in header)
            trs = []
            for i, cells in enumerate(body):
                style = " style='border-top: 1px solid'" if i == n_terms and i else ""
                tds = "".join(
                    f"<td style='text-align:{'left' if j == 0 else 'center'}'>{html.escape(c)}</td>"
                    for j, c in enumerate(cells))
                trs.append(f"<tr{style}>{tds}</tr>")
            foot = self._foot()
            cap = f"<caption style='caption-side: bottom'>{html.escape(foot)}</caption>" if foot else ""
            return (f"<table class='coevidence-compare' border='0'>{cap}<thead><tr>{th}</tr></thead>"
                    f"<tbody>{''.join(trs)}</tbody></table>")
        except Exception as exc:  # noqa: BLE001 - a repr must not raise
            return f"<p>ComparisonTable could not be rendered ({html.escape(str(exc))})</p>"


# ----------------------------------------------------------------------------- building
def _decimals_for(tidy: pd.DataFrame, sig: int) -> int:
    """Decimals showing ``sig`` significant digits of the smallest non-zero |SE| (else
    |estimate|) of one model."""
    vals = np.abs(tidy["std_error"].to_numpy(dtype=float))
    vals = vals[np.isfinite(vals) & (vals > 0)]
    if not len(vals):
        vals = np.abs(tidy["estimate"].to_numpy(dtype=float))
        vals = vals[np.isfinite(vals) & (vals > 0)]
    if not len(vals):
        return max(sig - 1, 0)
    return int(min(max(sig - 1 - math.floor(math.log10(vals.min())), 0), 10))


def _star(p: float, stars: Sequence[tuple[float, str]] | None) -> str:
    if not stars or p is None or not np.isfinite(p):
        return ""
    for threshold, symbol in sorted(stars):
        if p < threshold:
            return symbol
    return ""


def _fmt(v: Any, d: int) -> str:
    if v is None:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            return "" if np.isnan(v) else str(v)
        return f"{float(v):.{d}f}"
    return str(v)


def compare(
    results: Mapping[str, object] | Sequence[object],
    stat: str = "std_error",
    digits: int | Mapping[str, int] = 3,
    *,
    sig_digits: int | None = None,
    stars: bool | Sequence[tuple[float, str]] = False,
    conf_level: float | None = None,
) -> ComparisonTable:
    """Compare fitted models: estimates with SEs below, per term and model, then model rows.

    Parameters
    ----------
    results : dict name -> result, or a list (named "(1)", "(2)", ...)
        Any coevidence results with ``tidy()`` and ``glance()``.
    stat : {"std_error", "conf_int", "p_value", "statistic"}
        What goes in parentheses below each estimate (``conf_int``: ``[low, high]`` at each
        model's stored level, or ``conf_level``).
    digits : int or dict model name -> int, default 3
        Decimals, for every model or per model (column).
    sig_digits : int, optional
        Instead of ``digits``: per column, as many decimals as show ``sig_digits``
        significant digits of that model's smallest standard error (models on different
        scales each get readable numbers).
    stars : bool or sequence of (threshold, symbol), default False
        Significance stars after the estimate: ``True`` uses :data:`STARS` (``***`` p <
        0.001, ``**`` p < 0.01, ``*`` p < 0.05, from each model's ``tidy()`` p value).
    conf_level : float, optional
        Level of the intervals with ``stat="conf_int"`` (default: each model's own).

    Returns
    -------
    ComparisonTable
        ``to_frame()``, ``to_markdown()``, ``to_latex()``, ``to_text()``, HTML in notebooks.
        No term is lost: the rows are the union of every model's terms (blank where a model
        lacks one); model rows are ``nobs``, ``groups: <level>`` per grouping level, fit
        statistics where models have them, ``cov_type`` and ``df_method`` (option codes).

    Examples
    --------
    >>> compare([res1, res2], stars=True).to_markdown()  # doctest: +SKIP
    """
    if not isinstance(results, Mapping):
        results = {f"({i + 1})": r for i, r in enumerate(results)}
    if not results:
        raise ValueError("compare() needs at least one result")
    if stat not in ("std_error", "conf_int", "p_value", "statistic"):
        raise ValueError(f"stat must be std_error, conf_int, p_value or statistic; got {stat!r}")
    star_rules: Sequence[tuple[float, str]] | None
    star_rules = STARS if stars is True else (tuple(stars) if stars else None)
    names = [str(n) for n in results]
    terms: list[str] = []
    est: dict[str, dict[str, str]] = {}
    below: dict[str, dict[str, str]] = {}
    compact: dict[str, dict[str, str]] = {}
    model: dict[str, dict[str, str]] = {}
    group_rows: list[str] = []
    for name, res in zip(names, results.values()):
        tidy = res.tidy(conf_level) if conf_level is not None else res.tidy()  # type: ignore[attr-defined]
        if sig_digits is not None:
            d = _decimals_for(tidy, sig_digits)
        elif isinstance(digits, Mapping):
            d = int(digits.get(name, 3))
        else:
            d = int(digits)
        e_col, b_col, c_col = {}, {}, {}
        for r in tidy.itertuples(index=False):
            term = str(r.term)
            if term not in terms:
                terms.append(term)
            e = f"{_fmt(float(r.estimate), d)}{_star(float(r.p_value), star_rules)}"
            if stat == "conf_int":
                extra = f"[{_fmt(float(r.conf_low), d)}, {_fmt(float(r.conf_high), d)}]"
            else:
                extra = f"({_fmt(float(getattr(r, stat)), d)})"
            e_col[term], b_col[term], c_col[term] = e, extra, f"{e} {extra}"
        g = res.glance().iloc[0]  # type: ignore[attr-defined]
        m_col = {}
        for key in g.index:
            if str(key).startswith("n_groups_"):
                label = f"groups: {str(key)[len('n_groups_'):]}"
                if label not in group_rows:
                    group_rows.append(label)
                m_col[label] = _fmt(g[key], d)
        for key in _MODEL_ROWS:
            if key in g.index:
                m_col[key] = _fmt(g[key], d)
        est[name], below[name], compact[name], model[name] = e_col, b_col, c_col, m_col
    stat_rows = ["nobs", *group_rows, *_MODEL_ROWS[1:]]
    stat_rows = [s for s in stat_rows if any(s in m for m in model.values())]
    estimates = pd.DataFrame(est, index=terms, columns=names)
    belows = pd.DataFrame(below, index=terms, columns=names)
    stats = pd.DataFrame(model, index=stat_rows, columns=names)
    table = pd.concat([pd.DataFrame(compact, index=terms, columns=names).fillna(""), stats])
    notes: dict[str, str] = {}
    if stat == "conf_int":
        notes["in brackets"] = _STAT_NOTE[stat]
    else:
        notes["in parentheses"] = _STAT_NOTE[stat]
    if star_rules:
        notes["stars"] = ", ".join(f"{s} p < {t:g}" for t, s in sorted(star_rules))
    return ComparisonTable(table=table, notes=notes, estimates=estimates, below=belows,
                           stats=stats)
