"""The growth-model section of the ``coevidence demo`` report (RQ1: co-creation vs push).

Examples
--------
>>> html_fragment = growth_section(panel, "research_use")  # doctest: +SKIP
"""

from __future__ import annotations

import html
import warnings

import pandas as pd

__all__ = ["growth_section"]


def _p(p: float) -> str:
    """A p value as journals print it: never 0.000."""
    from coevidence.report._format import fmt_p

    return fmt_p(p)


def growth_section(panel: pd.DataFrame, outcome: str, **fit_kwargs) -> str:
    """An HTML fragment: growth model table, co-creation vs push contrasts, trajectory plot.

    Fits :func:`coevidence.fit_growth`'s design-aware default (for a study randomised by
    provider: ``outcome ~ time * ta_model + (1 + time | org_id) + (1 + time | provider_id)``,
    REML, Satterthwaite df) and states the assignment level it found and why. The primary
    estimand is the difference in slopes (co-creation minus push); it is stated first, with its
    CI. If no installed engine fits the correlated slopes exactly, it fits uncorrelated ones and
    says so. Warnings raised by the fit are listed in the fragment.

    Parameters
    ----------
    panel : DataFrame from ``study.panel(...)``
    outcome : str
    **fit_kwargs : passed to :func:`coevidence.fit_growth`

    Returns
    -------
    str
        HTML (an ``<h2>`` section with tables and an embedded PNG).

    Examples
    --------
    >>> growth_section(panel, "capacity")[:4]  # doctest: +SKIP
    '<h2>'
    """
    from matplotlib.figure import Figure

    from coevidence.exceptions import ModelSpecificationError
    from coevidence.models.mixed.contrasts import contrast, effect_size
    from coevidence.models.mixed.growth import fit_growth
    from coevidence.plotting.trajectories import plot_trajectories
    from coevidence.report._format import fmt_df
    from coevidence.report.html import figure_html, frame_html

    notes: list[str] = []
    levels = [c for c in ("provider_id", "org_id", "respondent_id") if c in panel.columns]
    design = fit_kwargs.pop("design", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            res = fit_growth(panel, outcome, levels=levels, design=design, **fit_kwargs)
        except ModelSpecificationError as exc:
            notes.append(f"Correlated random slope of the repeated unit not fitted ({exc}); "
                         f"uncorrelated slope used.")
            res = fit_growth(panel, outcome, levels=levels, design=design,
                             random_slope="uncorrelated", **fit_kwargs)
        tab = contrast(res, at=[min(res.growth.frame["time"]), max(res.growth.frame["time"])])
        es = effect_size(res)
    notes += [f"{w.category.__name__}: {w.message}" for w in caught]
    g = res.glance().iloc[0]
    fig = Figure(figsize=(6, 3.6))
    ax = fig.subplots()
    plot_trajectories(res, ax=ax)
    primary = tab[tab["contrast"].str.startswith("slope(")]
    answer = ""
    if len(primary):
        r = primary.iloc[0]
        lvl = int(round(res.conf_level * 100))
        verdict = ("faster" if r["estimate"] > 0 else "slower")
        sig = ("the interval excludes zero" if r["conf_low"] > 0 or r["conf_high"] < 0
               else "the interval includes zero")
        answer = (
            f"<p><strong>Primary estimand:</strong> the difference in the rate of change of "
            f"{html.escape(outcome)} per wave, co-creation minus push: "
            f"<strong>{r['estimate']:.3f}</strong> ({lvl}% CI {r['conf_low']:.3f} to "
            f"{r['conf_high']:.3f}; t = {r['statistic']:.2f} on {fmt_df(r['df'])} df, "
            f"p = {_p(r['p_value'])}). Co-creation organisations changed {verdict} than push "
            f"organisations; {sig}.</p>"
        )
    design_note = ""
    if res.growth is not None and res.growth.design is not None:
        design_note = f"<p class='note'>{html.escape(res.growth.design.describe())}</p>"
    parts = [
        f"<h2>Growth model: {html.escape(outcome)} (co-creation vs push)</h2>",
        answer,
        design_note,
        f"<p class='note'><code>{html.escape(res.formula)}</code><br>"
        f"{'REML' if res.reml else 'ML'}; engine {html.escape(res.engine)}; covariance type "
        f"{html.escape(res.cov_type)}; df method {html.escape(res.df_method)}; "
        f"{int(g['nobs'])} observations; converged: {bool(g['converged'])}; "
        f"singular: {bool(g['singular'])}.</p>",
        "<h3>Fixed effects</h3>",
        frame_html(res.tidy(), index=False),
        "<h3>Variance components</h3>",
        frame_html(res.variance_components(), index=False),
        "<h3>Contrasts (co-creation minus push)</h3>",
        frame_html(tab, index=False),
        "<h3>Standardised effect size (Feingold 2009)</h3>",
        frame_html(es, index=False),
        figure_html(fig, f"Model-implied trajectories of {outcome} by TA model"),
    ]
    if notes:
        items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
        parts.append(f"<p class='note'>Notes:</p><ul class='note'>{items}</ul>")
    return "\n".join(parts)
