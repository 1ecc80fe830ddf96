"""Number formatting and human labels for the report.

p values as journals print them (``"< 0.001"``, never ``"0.000"``), degrees of freedom without
spurious decimals (``"10"``, not ``"10.000"``), estimates with as many decimals as their
standard error supports, and readable names for outcomes, arms and model terms (taken from the
study's measure definitions and arm labels instead of column names).
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from coevidence.data.study import Study

__all__ = ["Labels", "decimals_for", "fmt_df", "fmt_int", "fmt_num", "fmt_p", "table_html"]


def fmt_p(p: float) -> str:
    """A p value: ``"< 0.001"`` below 0.001, else three decimals (two from 0.1 up)."""
    if p is None or not np.isfinite(p):
        return "–"
    if p < 0.001:
        return "< 0.001"
    return f"{p:.3f}" if p < 0.1 else f"{p:.2f}"


def fmt_df(df: float) -> str:
    """Degrees of freedom: whole numbers without decimals, others with one; ``inf`` as ∞."""
    if df is None or (isinstance(df, float) and math.isnan(df)):
        return "–"
    if not np.isfinite(df):
        return "∞"
    if abs(df - round(df)) < 0.05 or df >= 100:
        return f"{round(df):,}"
    return f"{df:.1f}"


def fmt_int(n: float) -> str:
    """A count with thousands separators."""
    return "–" if n is None or not np.isfinite(n) else f"{int(round(n)):,}"


def decimals_for(se: float, *, lo: int = 2, hi: int = 4) -> int:
    """Decimals that show a standard error to about one significant figure (``lo``..``hi``)."""
    if se is None or not np.isfinite(se) or se <= 0:
        return lo
    return int(min(hi, max(lo, -math.floor(math.log10(se)))))


def fmt_num(x: float, decimals: int = 2) -> str:
    """A number with ``decimals`` decimals and a true minus sign; NaN as an en dash."""
    if x is None or not np.isfinite(x):
        return "–"
    text = f"{x:.{decimals}f}"
    if float(text) == 0:
        text = text.lstrip("-")
    return text.replace("-", "−")


def _mid_sentence(label: str) -> str:
    """``"Push TA"`` -> ``"push TA"``; acronyms (``"ORIC"``) are left alone."""
    if len(label) > 1 and label[0].isupper() and label[1].islower():
        return label[0].lower() + label[1:]
    return label


def _humanise(name: str) -> str:
    """``"research_use"`` -> ``"Research use"``."""
    text = str(name).replace("_", " ").replace(".", ": ").strip()
    return text[:1].upper() + text[1:] if text else text


@dataclass(frozen=True)
class Labels:
    """Readable names for a study's outcomes, arms, levels and model terms."""

    outcomes: Mapping[str, str] = field(default_factory=dict)
    arms: Mapping[str, str] = field(default_factory=dict)
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    @classmethod
    def from_study(cls, study: Study) -> Labels:
        outcomes: dict[str, str] = {}
        ranges: dict[str, tuple[float, float]] = {}
        for mid, m in study.measures.items():
            outcomes[mid] = m.name or _humanise(mid)
            if m.response_min is not None and m.response_max is not None:
                ranges[mid] = (float(m.response_min), float(m.response_max))
            for sub in getattr(m, "subscales", ()) or ():
                sid = getattr(sub, "id", None)
                if sid:
                    outcomes[f"{mid}.{sid}"] = f"{outcomes[mid]}: {getattr(sub, 'name', None) or _humanise(sid)}"
        arms: dict[str, str] = {}
        for a in study.design.arms:
            label = a.label or _humanise(a.id)
            arms[a.id] = label
            arms.setdefault(a.ta_model.value, label)
        return cls(outcomes=outcomes, arms=arms, ranges=ranges)

    def outcome(self, name: str) -> str:
        return self.outcomes.get(name) or _humanise(name)

    def outcome_in_sentence(self, name: str) -> str:
        return _mid_sentence(self.outcome(name))

    def arm(self, value: object) -> str:
        return self.arms.get(str(value)) or _humanise(str(value))

    def arm_in_sentence(self, value: object) -> str:
        return _mid_sentence(self.arm(value))

    def unit(self, outcome: str) -> str:
        """``"points (1–5 scale)"`` for a measure with a response range, else ``"units"``."""
        rng = self.ranges.get(outcome.split(".")[0])
        if rng is None:
            return "units"
        return f"points (on its {rng[0]:g}–{rng[1]:g} scale)"

    def term(self, term: str, *, arm: str = "ta_model", time: str = "time") -> str:
        """``"time:ta_modelco_creation"`` -> ``"Time (waves) × Co-creation TA"``."""
        if term == "(Intercept)":
            return "Intercept"
        parts = []
        for piece in term.split(":"):
            if piece.startswith(arm) and piece != arm:
                parts.append(self.arm(piece[len(arm):].strip("[]T.")))
            elif piece == time:
                parts.append("Time (waves)")
            else:
                parts.append(_humanise(piece))
        return " × ".join(parts)

    def contrast(self, text: str) -> str:
        """``"slope(time): co_creation - push"`` -> ``"Slope: Co-creation TA − Push TA"``."""
        head, _, body = str(text).rpartition(": ")
        pieces = [self.arm(p.strip()) for p in body.split(" - ")]
        label = " − ".join(pieces)
        if head.startswith("slope("):
            return f"Slope per wave: {label}"
        return label


#: column -> header of formatted tables
_HEADERS = {
    "term": "Term", "contrast": "Contrast", "estimate": "Estimate", "std_error": "Std. error",
    "statistic": "Statistic", "df": "df", "p_value": "p", "conf_low": "CI low",
    "conf_high": "CI high", "time": "Wave", "group": "Level", "variance": "Variance",
    "sd": "SD", "n": "n",
}


def table_html(frame: pd.DataFrame, *, headers: Mapping[str, str] | None = None,
               decimals: int | Mapping[str, int] = 2, index: bool = False,
               caption: str | None = None) -> str:
    """A DataFrame as an HTML table with report formatting.

    ``p_value`` columns as :func:`fmt_p`, ``df`` as :func:`fmt_df`, integer columns with
    thousands separators, other numbers with ``decimals`` (one value, or per column).
    """
    heads = {**_HEADERS, **(headers or {})}
    frame = frame.reset_index() if index else frame
    cols = list(frame.columns)
    out = []
    if caption:
        out.append(f"<caption>{html.escape(caption)}</caption>")
    out.append("<thead><tr>" + "".join(
        f"<th>{html.escape(heads.get(str(c), _humanise(c) if re.fullmatch(r'[a-z_]+', str(c)) else str(c)))}</th>"
        for c in cols) + "</tr></thead><tbody>")
    for _, row in frame.iterrows():
        cells = []
        for c in cols:
            v = row[c]
            if isinstance(v, str) or v is None or not isinstance(v, (int, float, np.number)):
                text, cls = ("–" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)), "txt"
            elif str(c) in ("p_value", "p") or str(c).endswith("p_value"):
                text, cls = fmt_p(float(v)), "num"
            elif str(c) == "df" or str(c).endswith("_df"):
                text, cls = fmt_df(float(v)), "num"
            elif isinstance(v, (bool, np.bool_)):
                text, cls = ("yes" if v else "no"), "txt"
            elif isinstance(v, (int, np.integer)):
                text, cls = fmt_int(float(v)), "num"
            else:
                d = decimals.get(str(c), 2) if isinstance(decimals, Mapping) else decimals
                text, cls = fmt_num(float(v), d), "num"
            cells.append(f"<td class='{cls}'>{html.escape(text)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody>")
    return "<table>" + "".join(out) + "</table>"
