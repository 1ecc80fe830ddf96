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


def growth_section(panel: pd.DataFrame, outcome: str, **fit_kwargs) -> str:
    """An HTML fragment: growth model table, co-creation vs push contrasts, trajectory plot.

    Fits ``outcome ~ time * ta_model + (1 + time | org_id) + (1 | provider_id)`` (REML,
    Satterthwaite df). If no installed engine fits the correlated org slope exactly, it fits the
    uncorrelated version and says so. Warnings raised by the fit are listed in the fragment.

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
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from coevidence.exceptions import ModelSpecificationError
    from coevidence.models.mixed.contrasts import contrast, effect_size
    from coevidence.models.mixed.growth import fit_growth
    from coevidence.plotting.trajectories import plot_trajectories
    from coevidence.report.html import figure_html, frame_html

    notes: list[str] = []
    levels = [c for c in ("provider_id", "org_id", "respondent_id") if c in panel.columns]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            res = fit_growth(panel, outcome, levels=levels, **fit_kwargs)
        except ModelSpecificationError as exc:
            notes.append(f"Correlated random slope not fitted ({exc}); uncorrelated slope used.")
            res = fit_growth(panel, outcome, levels=levels, random_slope="uncorrelated",
                             **fit_kwargs)
        tab = contrast(res, at=[min(res.growth.frame["time"]), max(res.growth.frame["time"])])
        es = effect_size(res)
    notes += [f"{w.category.__name__}: {w.message}" for w in caught]
    g = res.glance().iloc[0]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    plot_trajectories(res, ax=ax)
    parts = [
        f"<h2>Growth model: {html.escape(outcome)} (co-creation vs push)</h2>",
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
