"""``coevidence.report``: the study report that answers the question, as one HTML page.

The page opens with one headline block per outcome (the primary estimand named, its estimate,
interval and one plain sentence), then a forest plot of the contrasts across outcomes, the
study's units per level and arm, each outcome's observed means with clustered intervals and the
model behind the headline, and what could not be scored. Figures are embedded PNGs: the page is
one self-contained file.
"""

from __future__ import annotations

import datetime as dt
import html
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from coevidence.report._format import Labels, fmt_int, fmt_num, table_html

if TYPE_CHECKING:  # pragma: no cover
    from coevidence.data.study import Study
    from coevidence.report._estimands import Headline

__all__ = ["ReportPage", "report"]

_LEVEL_COLUMNS = {"provider": "provider_id", "organization": "org_id", "respondent": "respondent_id"}
_LEVEL_NAMES = {"provider_id": "providers", "org_id": "organisations",
                "respondent_id": "respondents", "engagement_id": "engagements"}

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1100px;
margin:2rem auto;color:#1f2328;line-height:1.5;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.25rem;border-bottom:1px solid #d0d7de;
padding-bottom:.2rem;margin-top:2.2rem}h3{font-size:1.05rem;margin-bottom:.3rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
th,td{border:1px solid #d0d7de;padding:.2rem .55rem}th{background:#f6f8fa;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}td.txt{text-align:left}
caption{caption-side:top;text-align:left;font-weight:600;padding:.2rem 0}
.note{color:#57606a;font-size:.9rem}.ok{color:#1a7f37}.bad{color:#b42318}
img{max-width:100%;height:auto}
.headline{border:1px solid #d0d7de;border-left:6px solid #1f5fa8;border-radius:6px;
padding:.8rem 1.1rem;margin:1rem 0;background:#f8fbff}
.headline h3{margin-top:0}.estimand{color:#57606a;font-size:.92rem;margin:.1rem 0 .4rem}
.big{font-size:1.7rem;font-weight:700;color:#1f5fa8;margin-right:.6rem}
.ci{font-size:1.05rem}.answer{font-size:1.05rem;margin:.5rem 0}
.groups{font-size:.88rem;color:#57606a}
"""


class ReportPage(str):
    """The report's HTML document (a ``str``), shown in an ``<iframe>`` in notebooks."""

    __slots__ = ()

    def _repr_html_(self) -> str:
        return (f'<iframe srcdoc="{html.escape(str(self), quote=True)}" '
                'style="width:100%;height:720px;border:1px solid #d0d7de"></iframe>')

    def save(self, path: str | Path) -> Path:
        """Write the page (a folder gets ``report.html``); returns the file written."""
        target = Path(path)
        if target.is_dir():
            target = target / "report.html"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(str(self), encoding="utf-8")
        return target


# ----------------------------------------------------------------------------- models


def _normalise_models(models: Any) -> dict[str, Any]:
    from coevidence.report._estimands import result_outcome

    if models is None:
        return {}
    if isinstance(models, Mapping):
        return {str(k): v for k, v in models.items()}
    items = [models] if not isinstance(models, Sequence) or isinstance(models, str) else models
    out: dict[str, Any] = {}
    for m in items:
        name = result_outcome(m)
        if name is None:
            raise TypeError(f"cannot tell which outcome a {type(m).__name__} was fitted to; "
                            "pass models as a mapping {outcome: result}")
        if name in out:
            raise ValueError(f"two models for outcome {name!r}; pass a mapping to name them")
        out[name] = m
    return out


def _fit_default(study: Study, panel: pd.DataFrame, outcome: str, fit_kwargs: Mapping) -> Any:
    """The design-aware growth model, with uncorrelated slopes if correlated ones cannot fit."""
    from coevidence.exceptions import ModelSpecificationError
    from coevidence.models.mixed.growth import fit_growth

    levels = [c for c in ("provider_id", "org_id") if c in panel.columns]
    kwargs = {"levels": levels, "design": study.design, **fit_kwargs}
    try:
        return fit_growth(panel, outcome, **kwargs)
    except ModelSpecificationError as exc:
        warnings.warn(f"correlated random slopes not fitted ({exc}); uncorrelated slopes used",
                      UserWarning, stacklevel=2)
        return fit_growth(panel, outcome, **{**kwargs, "random_slope": "uncorrelated"})


# ----------------------------------------------------------------------------- sections


def _figure(fig: Any, alt: str) -> str:
    from coevidence.report.html import figure_html

    return figure_html(fig, alt)


def _headline_block(h: Headline, labels: Labels) -> str:
    d = h.primary.decimals
    groups = ", ".join(f"{fmt_int(n)} {_LEVEL_NAMES.get(k, k)}" for k, n in h.groups.items())
    if h.nobs is not None:
        groups += (", " if groups else "") + f"{fmt_int(h.nobs)} observations"
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in h.notes)
    return (
        f"<div class='headline' data-outcome='{html.escape(h.outcome)}'>"
        f"<h3>{html.escape(labels.outcome(h.outcome))}</h3>"
        f"<p class='estimand'><strong>Primary estimand:</strong> {html.escape(h.estimand)}.</p>"
        f"<p><span class='big'>{html.escape(fmt_num(h.primary.estimate, d))}</span>"
        f"<span class='ci'>{html.escape(h.primary.ci_text(h.conf_level))}</span> "
        f"<span class='note'>{html.escape(h.primary.scale)}</span></p>"
        f"<p class='answer'>{html.escape(h.sentence)}</p>"
        + (f"<p class='groups'>Model fitted to {html.escape(groups)}.</p>" if groups else "")
        + (f"<ul class='note'>{notes}</ul>" if notes else "")
        + "</div>"
    )


def _contrast_table(h: Headline) -> pd.DataFrame:
    rows = [h.primary, *h.secondary]
    return pd.DataFrame({
        "contrast": [r.label for r in rows],
        "estimate": [r.estimate for r in rows],
        "std_error": [r.std_error for r in rows],
        "statistic": [r.statistic for r in rows],
        "df": [r.df for r in rows],
        "p_value": [r.p_value for r in rows],
        "conf_low": [r.conf_low for r in rows],
        "conf_high": [r.conf_high for r in rows],
    })


def _study_section(study: Study, labels: Labels) -> str:
    d = study.design
    desc = study.describe()
    arms = ", ".join(html.escape(labels.arm(a.id)) for a in d.arms)
    parts = [
        "<h2>Study</h2>",
        f"<p><strong>{html.escape(d.title or d.id)}</strong>: {len(d.waves)} waves from "
        f"{d.waves[0].date} to {d.waves[-1].date}; randomised by "
        f"{html.escape(d.randomisation_unit.value)}; arms: {arms}.</p>",
    ]
    if d.synthetic:
        parts.append("<p class='note'>This study is <strong>synthetic</strong> (simulated with "
                     "known parameters); its numbers describe no real organisation.</p>")
    parts.append("<p class='ok'>Validation: every table and cross-record rule passed.</p>")
    units = desc["units"].copy()
    units.index = [labels.arm(i) for i in units.index]
    units.index.name = "arm"
    units.columns = [str(c).replace("organizations", "organisations").capitalize()
                     for c in units.columns]
    total = units.sum(numeric_only=True).to_frame().T
    total.index = ["Total"]
    parts.append(table_html(pd.concat([units, total]).rename_axis("Arm"), index=True,
                            caption="Units per level, by arm"))
    resp = desc["responding"].copy()
    resp.index = [labels.arm(i) for i in resp.index]
    resp.columns = [f"Wave {c}" for c in resp.columns]
    parts.append(table_html(resp.rename_axis("Arm"), index=True,
                            caption="Respondents responding, by arm and wave"))
    att = desc["attrition"].copy() * 100
    att.index = [labels.arm(i) for i in att.index]
    att.columns = [f"Wave {c}" for c in att.columns]
    parts.append(table_html(att.rename_axis("Arm"), index=True, decimals=0,
                            caption="Retention (% of baseline respondents), by arm and wave"))
    return "\n".join(parts)


def _observed_section(data: pd.DataFrame, outcome: str, labels: Labels, cluster: str,
                      conf_level: float) -> str:
    from coevidence.report._figures import clustered_means, means_figure

    if not {"ta_model", "wave", cluster, outcome} <= set(data.columns):
        return ""
    means = clustered_means(data, outcome, cluster=cluster, conf_level=conf_level)
    if means.empty:
        return ""
    cl = _LEVEL_NAMES.get(cluster, cluster)
    tab = means.assign(arm=[labels.arm(a) for a in means["arm"]],
                       ci=[f"{fmt_num(lo, 2)} to {fmt_num(hi, 2)}"
                           for lo, hi in zip(means["conf_low"], means["conf_high"], strict=True)])
    tab = tab[["arm", "wave", "mean", "ci", "n", "n_clusters"]]
    level = f"{round(conf_level * 100):g}%"
    table = table_html(tab, headers={"arm": "Arm", "wave": "Wave", "mean": "Mean",
                                     "ci": f"{level} CI", "n": "Units",
                                     "n_clusters": cl.capitalize()},
                       caption=f"Observed means by arm and wave ({level} CI clustered by {cl})")
    fig = means_figure(means, outcome, labels, cluster_label=cl, conf_level=conf_level)
    return (table + f"<p class='note'>Intervals use the cluster-robust standard error of the "
            f"mean over the {html.escape(cl)} in each cell, with t on (clusters − 1) df.</p>"
            + _figure(fig, f"Observed {labels.outcome(outcome)} by arm and wave"))


def _model_data(result: Any, outcome: str, panel: pd.DataFrame) -> pd.DataFrame:
    """The rows a model was fitted to, with the outcome and wave columns the means need."""
    data = getattr(result, "data", None)
    if not isinstance(data, pd.DataFrame):
        return pd.DataFrame()
    if outcome not in data.columns and "_cv_response" in data.columns:
        data = data.rename(columns={"_cv_response": outcome})
    if "wave" not in data.columns and "time" in data.columns and {"time", "wave"} <= set(panel):
        waves = panel[["time", "wave"]].drop_duplicates()
        if not waves["time"].duplicated().any():
            data = data.assign(wave=data["time"].map(dict(zip(waves["time"], waves["wave"],
                                                               strict=True))))
    return data


def _model_section(result: Any, h: Headline, labels: Labels) -> str:
    parts = []
    spec = getattr(result, "growth", None)
    formula = getattr(result, "formula", None)
    if formula:
        parts.append(f"<p class='note'>Model: <code>{html.escape(str(formula))}</code></p>")
    parts.append(table_html(_contrast_table(h), decimals=h.primary.decimals + 1,
                            headers={"statistic": "t" if pd.notna(h.primary.df) else "z"},
                            caption="Contrasts"))
    try:
        tidy = result.tidy()
    except Exception:  # noqa: BLE001 - tidy never raises by contract
        tidy = None
    if tidy is not None and "term" in tidy and spec is not None:
        tidy = tidy.assign(term=[labels.term(t, arm=spec.arm, time=spec.time)
                                 for t in tidy["term"]])
    if tidy is not None and len(tidy) <= 40:
        stat = "t" if "df" in tidy and tidy["df"].notna().any() else "z"
        parts.append(table_html(tidy, decimals=h.primary.decimals + 1, headers={"statistic": stat},
                                caption="Fixed effects" if spec is not None else "Estimates"))
    vc = getattr(result, "variance_components", None)
    if callable(vc):
        try:
            comp = vc()
            if "group" in comp:
                comp = comp.assign(group=[_LEVEL_NAMES.get(g, g).capitalize() for g in comp["group"]])
            for col in ("term1", "term2"):
                if col in comp and spec is not None:
                    comp[col] = [t if not isinstance(t, str) else
                                 labels.term(t, arm=spec.arm, time=spec.time) for t in comp[col]]
            parts.append(table_html(comp, decimals=4, caption="Variance components", headers={
                "group": "Level", "term1": "Term", "term2": "With", "vcov": "Variance (covariance)",
                "sdcor": "SD (correlation)"}))
        except Exception:  # noqa: BLE001 - optional detail
            pass
    if spec is not None:
        try:
            from matplotlib.figure import Figure

            from coevidence.plotting.trajectories import plot_trajectories

            fig = Figure(figsize=(6.4, 3.6))
            ax = fig.subplots()
            plot_trajectories(result, ax=ax)
            ax.set_ylabel(labels.outcome(h.outcome))
            ax.set_xlabel("Time (waves since baseline)")
            ax.set_title(f"{labels.outcome(h.outcome)}: model-implied trajectories "
                         f"({round(result.conf_level * 100):g}% CI)", fontsize=10)
            handles, names = ax.get_legend_handles_labels()
            if names:
                ax.legend(handles, [labels.arm(n) for n in names], title="Arm", frameon=False)
            fig.tight_layout()
            parts.append(_figure(fig, f"Model-implied trajectories of {labels.outcome(h.outcome)}"))
        except Exception as exc:  # noqa: BLE001 - a plot must not sink the report
            parts.append(f"<p class='note'>Trajectory plot not drawn: {html.escape(str(exc))}</p>")
    return "\n".join(parts)


def _scoring_section(study: Study, labels: Labels) -> str:
    rep = study.scoring_report()
    parts = ["<h2>What could not be scored</h2>"]
    if rep.empty:
        return parts[0] + "<p class='note'>No item responses to score (scores were given).</p>"
    lost = int(rep["n_not_scored"].sum())
    total = int(rep["n_scores"].sum())
    if lost:
        parts.append(
            f"<p>{fmt_int(lost)} of {fmt_int(total)} respondent-wave scale scores could not be "
            "computed under their measure's missing-item rule; they are missing in the panel "
            "(not imputed), so the organisation means rest on the respondents who could be "
            "scored.</p>")
    else:
        parts.append(f"<p class='ok'>All {fmt_int(total)} respondent-wave scores were computed.</p>")
    tab = rep.assign(measure_id=[labels.outcome(m) for m in rep["measure_id"]],
                     reasons=[str(r).replace("_", " ") for r in rep["reasons"]])
    parts.append(table_html(tab, headers={"measure_id": "Measure", "n_scores": "Scores due",
                                          "n_scored": "Scored", "n_not_scored": "Not scored",
                                          "reasons": "Reasons"}))
    return "\n".join(parts)


# ----------------------------------------------------------------------------- public


def report(
    study: Study,
    models: Mapping[str, Any] | Sequence[Any] | Any | None = None,
    *,
    path: str | Path | None = None,
    outcomes: Sequence[str] | None = None,
    conf_level: float = 0.95,
    **fit_kwargs: Any,
) -> ReportPage:
    """Render the study report: the answer per outcome first, then the evidence behind it.

    For every outcome the page opens with a headline block that names the primary estimand
    (for a growth model, the arm x time slope difference: how much faster the outcome changed
    per wave under co-creation than under push), its estimate and interval, and one plain
    sentence with the test ("Co-creation TA raised research use by 0.11 points per wave more
    than push TA (95% CI 0.05 to 0.17; t = 4.07, df = 10, p = 0.002)"). Then: a forest plot of
    the contrasts across outcomes; the units per level (providers, organisations, respondents)
    by arm; each outcome's observed arm x wave means with intervals clustered at the unit of
    assignment, and the model's tables and trajectories; and what could not be scored
    (:meth:`Study.scoring_report`). Labels come from the measure definitions and arm labels.

    Parameters
    ----------
    study : Study
    models : mapping of outcome -> result, sequence of results, or one result, optional
        Fitted results to report: :class:`~coevidence.models.mixed.results.MixedResult` from
        :func:`coevidence.fit_growth`, :class:`~coevidence.models.mixed.glmm_results.GlmmResult`
        from ``fit_growth(..., family="binomial")``, or
        :class:`~coevidence.models.did.results.EventStudyResult` from
        :func:`coevidence.fit_event_study`. A sequence is keyed by each result's outcome.
        Default: the design-aware growth model of every outcome (``outcomes``).
    path : str or Path, optional
        Also write the page there (a folder gets ``report.html``).
    outcomes : sequence of str, optional
        Outcomes to fit when ``models`` is None (default: every measure in the panel).
    conf_level : float, default 0.95
        Level of the intervals of the observed means (and of the default fits).
    **fit_kwargs
        Passed to :func:`coevidence.fit_growth` for the default fits.

    Returns
    -------
    ReportPage
        The HTML document (a ``str``; shown as a page in notebooks, ``.save(path)`` writes it).

    Examples
    --------
    >>> import coevidence as cv
    >>> study = cv.load_example_study()
    >>> page = cv.report(study, outcomes=["research_use"])  # doctest: +SKIP
    >>> "Primary estimand" in page  # doctest: +SKIP
    True
    """
    from coevidence import __version__
    from coevidence.report._estimands import headline
    from coevidence.report._figures import forest_figure

    labels = Labels.from_study(study)
    given = _normalise_models(models)
    if given and fit_kwargs:
        raise TypeError("fit options (" + ", ".join(sorted(fit_kwargs)) + ") apply to the "
                        "default fits only; they cannot be used with models=")
    caught_all: dict[str, list[str]] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        panel_outcomes = list(outcomes) if outcomes is not None and not given else None
        panel = study.panel(outcomes=panel_outcomes, unit="organization")
    # unscored responses have their own section; other panel warnings are listed at the end
    panel_notes = list(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught
                                     if w.category.__name__ != "MissingDataWarning"))
    if given:
        names = list(given)
    elif outcomes is not None:
        names = list(outcomes)
    else:
        cols = [c for c in panel.columns if c in study.measures or
                ("." in c and c.split(".")[0] in study.measures)]
        order = list(study.measures)
        names = sorted(cols, key=lambda c: (order.index(c.split(".")[0]), c))
    cluster = _LEVEL_COLUMNS.get(study.design.randomisation_unit.value, "provider_id")
    if cluster not in panel.columns:
        cluster = "org_id"

    results: dict[str, Any] = {}
    heads: dict[str, Headline] = {}
    for name in names:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if name in given:
                res = given[name]
            else:
                res = _fit_default(study, panel, name, {"conf_level": conf_level, **fit_kwargs})
            heads[name] = headline(res, name, labels, panel)
        results[name] = res
        caught_all[name] = list(dict.fromkeys(f"{w.category.__name__}: {w.message}"
                                              for w in caught))

    body = ["<h2>Answers</h2>",
            "<p class='note'>One block per outcome: the primary estimand, its estimate and "
            "interval, and what it means. Details for each outcome follow below.</p>"]
    body += [_headline_block(heads[n], labels) for n in names]
    if heads:
        body.append("<h2>Contrasts across outcomes</h2>")
        body.append(_figure(forest_figure(list(heads.values()), labels),
                            "Forest plot of the contrasts across outcomes"))
    body.append(_study_section(study, labels))
    for name in names:
        res, h = results[name], heads[name]
        data = panel if name in panel.columns else _model_data(res, name, panel)
        body.append(f"<h2>{html.escape(labels.outcome(name))}</h2>")
        body.append("<h3>Observed means</h3>")
        body.append(_observed_section(data, name, labels, cluster, conf_level)
                    or "<p class='note'>No observed means: the outcome is not in the panel.</p>")
        body.append("<h3>Model</h3>")
        body.append(_model_section(res, h, labels))
        if caught_all[name]:
            items = "".join(f"<li>{html.escape(n)}</li>" for n in caught_all[name])
            body.append(f"<p class='note'>Warnings while fitting:</p><ul class='note'>{items}</ul>")
    body.append(_scoring_section(study, labels))
    if panel_notes:
        items = "".join(f"<li>{html.escape(n)}</li>" for n in panel_notes)
        body.append(f"<p class='note'>Warnings while building the panel:</p>"
                    f"<ul class='note'>{items}</ul>")
    d = study.design
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = ReportPage(
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>coevidence report: {html.escape(d.title or d.id)}</title>"
        f"<style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(d.title or d.id)}</h1>"
        f"<p class='note'>coevidence report · generated by coevidence {__version__} on {stamp}"
        + (" · <strong>synthetic data</strong>" if d.synthetic else "") + "</p>"
        + "\n".join(body) + "</body></html>\n"
    )
    if path is not None:
        page.save(path)
    return page
