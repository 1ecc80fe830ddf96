"""Side-by-side tables of several fitted models (Markdown and escaped LaTeX export).

Examples
--------
>>> tab = compare({"A": res_a, "B": res_b})  # doctest: +SKIP
>>> print(tab.to_markdown())  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

__all__ = ["ComparisonTable", "compare"]

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


@dataclass(frozen=True)
class ComparisonTable:
    """Estimates (SE) of several models, one column per model, plus fit statistics.

    Examples
    --------
    >>> ComparisonTable(pd.DataFrame({"m": ["1.00 (0.10)"]}, index=["x"]), {}).to_frame().shape
    (1, 1)
    """

    table: pd.DataFrame
    notes: dict

    def to_frame(self) -> pd.DataFrame:
        """The table as a DataFrame (rows: terms then statistics; columns: models)."""
        return self.table.copy()

    def to_markdown(self) -> str:
        """A GitHub-flavoured Markdown table."""
        cols = ["term", *map(str, self.table.columns)]
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for idx, row in self.table.iterrows():
            cells = [str(idx), *("" if pd.isna(v) else str(v) for v in row)]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        foot = "; ".join(f"{k}: {v}" for k, v in self.notes.items())
        return "\n".join(lines) + (f"\n\n{foot}\n" if foot else "\n")

    def to_latex(self) -> str:
        """A ``tabular`` with every cell LaTeX-escaped (underscores, ampersands, ...)."""
        ncol = len(self.table.columns)
        lines = [r"\begin{tabular}{l" + "r" * ncol + "}", r"\hline"]
        lines.append(" & ".join(["", *(_latex_escape(c) for c in self.table.columns)]) + r" \\")
        lines.append(r"\hline")
        for idx, row in self.table.iterrows():
            cells = [_latex_escape(idx), *("" if pd.isna(v) else _latex_escape(v) for v in row)]
            lines.append(" & ".join(cells) + r" \\")
        lines += [r"\hline", r"\end{tabular}"]
        return "\n".join(lines) + "\n"

    def __repr__(self) -> str:
        return self.to_markdown()

    def _repr_html_(self) -> str:
        return self.table.to_html(border=0)


def compare(
    results: Mapping[str, object] | Sequence[object],
    stat: str = "std_error",
    digits: int = 3,
) -> ComparisonTable:
    """Compare fitted models: ``estimate (SE)`` per term and model, then fit statistics.

    Parameters
    ----------
    results : dict name -> result, or a list (named "(1)", "(2)", ...)
        Any coevidence results with ``tidy()`` and ``glance()``.
    stat : {"std_error", "conf_int", "p_value", "statistic"}
        What goes in parentheses.
    digits : int

    Returns
    -------
    ComparisonTable
        ``to_frame()``, ``to_markdown()``, ``to_latex()``.

    Examples
    --------
    >>> compare([res1, res2]).to_markdown()  # doctest: +SKIP
    """
    if not isinstance(results, Mapping):
        results = {f"({i + 1})": r for i, r in enumerate(results)}
    if not results:
        raise ValueError("compare() needs at least one result")
    if stat not in ("std_error", "conf_int", "p_value", "statistic"):
        raise ValueError(f"stat must be std_error, conf_int, p_value or statistic; got {stat!r}")
    f = f"{{:.{digits}f}}"
    cols, terms = {}, []
    stats_rows = ["nobs", "log_lik", "aic", "bic", "df_method", "cov_type"]
    notes = {}
    for name, res in results.items():
        tidy = res.tidy()
        cell = {}
        for r in tidy.itertuples(index=False):
            if stat == "conf_int":
                extra = f"[{f.format(r.conf_low)}, {f.format(r.conf_high)}]"
            else:
                extra = f"({f.format(getattr(r, stat))})"
            cell[r.term] = f"{f.format(r.estimate)} {extra}"
            if r.term not in terms:
                terms.append(r.term)
        g = res.glance().iloc[0]
        for s in stats_rows:
            if s in g.index:
                v = g[s]
                cell[s] = f.format(v) if isinstance(v, float) else str(v)
        cols[str(name)] = cell
    index = terms + [s for s in stats_rows if any(s in c for c in cols.values())]
    table = pd.DataFrame(cols, index=index)
    if stat == "conf_int":
        notes["in brackets"] = "confidence intervals"
    else:
        notes["in parentheses"] = {"std_error": "standard errors", "p_value": "p values",
                                   "statistic": "t statistics"}[stat]
    return ComparisonTable(table=table, notes=notes)
