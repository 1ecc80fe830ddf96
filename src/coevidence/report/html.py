"""HTML building blocks of the reports: tables, embedded figures, a descriptive study page.

Sections are functions returning HTML fragments; figures are embedded as base64 PNG so a
report is one file with no external assets. The ``coevidence demo`` page is
:func:`coevidence.report` (``coevidence/report/api.py``).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from coevidence.data.study import Study

__all__ = ["figure_html", "frame_html", "study_report"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2rem auto;
color:#222;line-height:1.45;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.25rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
th,td{border:1px solid #ddd;padding:.2rem .5rem;text-align:right}th{background:#f5f5f5}
.note{color:#555;font-size:.9rem}.ok{color:#1a7f37}.bad{color:#b42318}
img{max-width:100%}
"""


def frame_html(frame: pd.DataFrame, *, index: bool = True, digits: int = 3) -> str:
    """A DataFrame as an HTML table: p values as ``< 0.001``, whole df without decimals,
    other numbers rounded to ``digits``, readable column headers."""
    from coevidence.report._format import table_html

    return table_html(frame, index=index, decimals=digits)


def figure_html(fig: Figure, alt: str) -> str:
    """A matplotlib figure as an embedded PNG ``<img>``.

    Report figures are built as :class:`matplotlib.figure.Figure` objects, never through
    pyplot, so writing a report neither switches the backend nor opens windows (inline plots
    in the user's notebook keep working).
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"/>'


def _means_plot(panel: pd.DataFrame, outcome: str) -> str:
    """Observed means by arm and wave; intervals clustered by provider when there are providers."""
    from coevidence.report._figures import clustered_means, means_figure
    from coevidence.report._format import Labels

    cluster = next((c for c in ("provider_id", "org_id") if c in panel.columns), None)
    data = panel if cluster else panel.assign(_row=range(len(panel)))
    means = clustered_means(data, outcome, cluster=cluster or "_row")
    label = {"provider_id": "providers", "org_id": "organisations"}.get(cluster, "rows")
    fig = means_figure(means, outcome, Labels(), cluster_label=label)
    return figure_html(fig, f"observed {outcome} by TA model and wave")


def _overview(study: Study) -> str:
    d = study.design
    desc = study.describe()
    parts = [f"<h2>Study</h2><p><strong>{html.escape(d.title or d.id)}</strong> — "
             f"{len(d.waves)} waves from {d.waves[0].date} to {d.waves[-1].date}; randomised by "
             f"{d.randomisation_unit.value}; arms: "
             + ", ".join(f"{html.escape(a.id)} ({a.ta_model.value})" for a in d.arms) + ".</p>"]
    if d.synthetic:
        parts.append("<p class='note'>This study is <strong>synthetic</strong> (simulated with "
                     "known parameters); its numbers describe no real organisation.</p>")
    parts.append("<p class='ok'>Validation: every table and cross-record rule passed.</p>")
    parts.append("<h3>Units by arm</h3>" + frame_html(desc["units"]))
    parts.append("<h3>Respondents responding, by arm and wave</h3>" + frame_html(desc["responding"]))
    parts.append("<h3>Retention (share of baseline respondents), by arm and wave</h3>"
                 + frame_html(desc["attrition"]))
    parts.append("<h3>TA dose per engagement, by TA model</h3>" + frame_html(desc["dose"], digits=1))
    return "\n".join(parts)


def _outcomes(study: Study, panel: pd.DataFrame, outcomes: Sequence[str]) -> str:
    parts = ["<h2>Outcomes by TA model and wave</h2>"]
    for o in outcomes:
        tab = panel.pivot_table(index="ta_model", columns="wave", values=o, aggfunc="mean",
                                observed=True)
        parts.append(f"<h3>{html.escape(o)}</h3>" + frame_html(tab) + _means_plot(panel, o))
    return "\n".join(parts)


def study_report(
    study: Study,
    *,
    outcomes: Sequence[str] | None = None,
    sections: Sequence[Callable[[Study, pd.DataFrame, str], str]] = (),
) -> str:
    """Render a descriptive HTML page of a study (observed data only, optional extra sections).

    :func:`coevidence.report` is the report that states the answer (headline per outcome,
    forest plot, fitted models); this page is its descriptive predecessor, kept for custom
    section pipelines.

    Parameters
    ----------
    study : Study
    outcomes : sequence of str, optional
        Outcomes to summarise (all by default).
    sections : sequence of callables
        Extra sections ``f(study, panel, outcome) -> html`` rendered for each outcome (e.g.
        ``coevidence.report._growth_section.growth_section``).

    Returns
    -------
    str
        A complete HTML document.

    Examples
    --------
    >>> import coevidence as cv
    >>> page = study_report(cv.load_example_study(), outcomes=["research_use"])
    >>> page.startswith("<!DOCTYPE html>")
    True
    """
    from coevidence import __version__

    panel = study.panel(outcomes=outcomes, unit="organization")
    if outcomes is None:
        outcomes = [c for c in panel.columns if c in study.measures or "." in c]
    body = [_overview(study), _outcomes(study, panel, outcomes)]
    for section in sections:
        for o in outcomes:
            body.append(section(study, panel, o))
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>coevidence report: {html.escape(study.design.id)}</title>"
        f"<style>{_CSS}</style></head><body>"
        f"<h1>coevidence report — {html.escape(study.design.title or study.design.id)}</h1>"
        f"<p class='note'>Generated by coevidence {__version__} on {stamp}.</p>"
        + "\n".join(body) + "</body></html>\n"
    )
