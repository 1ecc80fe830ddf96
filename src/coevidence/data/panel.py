"""The tidy analysis panel: one row per unit x wave.

Columns (stable, snake_case):

===================  =========================================================================
study_id             the design's id
provider_id          the TA provider the organisation is assigned to (or its engagement's lead)
org_id               organisation id
respondent_id        respondent id (``unit="respondent"`` only)
engagement_id        the organisation's engagement (its first, by start date); missing if none
arm                  assigned arm id
ta_model             categorical: push, co_creation, hybrid, none
wave                 wave index as in the design
time                 wave position: 0, 1, 2, ...
date                 observation date (median of the unit's observation dates at that wave,
                     else the wave's planned date)
years_since_start    (date - engagement start) / 365.25; negative before TA; missing if no TA
years_since_end      (date - engagement end) / 365.25 when positive, else 0; missing if no TA
phase                categorical: before, during, after (TA), none (no engagement)
cum_minutes          TA minutes logged up to and including ``date``
cum_encounters       TA encounters logged up to and including ``date``
<outcome>            one column per outcome (measure id, or ``measure.subscale``)
<outcome>_n          respondents aggregated into an organisation-level outcome (``unit="organization"``),
                     by the measure's aggregation rule (mean or median; none if fewer than
                     ``min_respondents``; measures with ``method="none"`` are left out)
===================  =========================================================================

Measures whose aggregation rule sets ``check_agreement`` (ORIC does) are checked before their
respondent scores are aggregated to organisations: ICC(1), ICC(2) and r_wg(j) per wave against
the measure's :class:`~coevidence.schemas.measure.AgreementCriteria`
(:func:`agreement_report`). A failed criterion raises
:class:`~coevidence.exceptions.AgreementWarning` (the scores are still aggregated), or
:class:`~coevidence.exceptions.MeasureError` with ``strict_agreement=True``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from coevidence.exceptions import (
    AgreementWarning,
    CoevidenceError,
    MeasureError,
    OptionError,
    StudyValidationError,
)

if TYPE_CHECKING:  # pragma: no cover
    from coevidence.data.study import Study
    from coevidence.schemas.measure import AgreementCriteria

__all__ = ["AGREEMENT_REPORT_COLUMNS", "PANEL_COLUMNS", "agreement_report", "build_panel"]

PANEL_COLUMNS = (
    "study_id", "provider_id", "org_id", "respondent_id", "engagement_id", "arm", "ta_model",
    "wave", "time", "date", "years_since_start", "years_since_end", "phase", "cum_minutes",
    "cum_encounters",
)
#: Columns of :func:`agreement_report` (``Study.agreement_report``), one row per outcome x wave.
AGREEMENT_REPORT_COLUMNS = (
    "measure_id", "wave", "n_units", "n_respondents", "icc1", "f_value", "f_df1", "f_df2",
    "f_p_value", "icc2", "median_rwg_j", "mean_rwg_j", "n_units_rwg_j", "supported", "failed",
    "note",
)
TA_MODELS = ["push", "co_creation", "hybrid", "none"]
PHASES = ["before", "during", "after", "none"]
_YEAR = 365.25


def _units(study: Study, unit: str) -> pd.DataFrame:
    design = study.design
    arm_model = {a.id: a.ta_model.value for a in design.arms}
    first_eng: dict[str, object] = {}
    for e in sorted(study.engagements, key=lambda e: e.start_date):
        first_eng.setdefault(e.org_id, e)
    rows = []
    for o in study.organizations:
        e = first_eng.get(o.id)
        model = arm_model.get(o.arm) if o.arm else (e.ta_model.value if e is not None else "none")
        rows.append({
            "org_id": o.id,
            "provider_id": o.provider_id or (e.provider_ids[0] if e is not None else None),
            "engagement_id": e.id if e is not None else None,
            "arm": o.arm,
            "ta_model": model,
            "_start": pd.Timestamp(e.start_date) if e is not None else pd.NaT,
            "_end": pd.Timestamp(e.end_date) if e is not None and e.end_date else pd.NaT,
        })
    orgs = pd.DataFrame(rows, columns=["org_id", "provider_id", "engagement_id", "arm", "ta_model",
                                       "_start", "_end"])
    if unit == "organization":
        return orgs
    resp = pd.DataFrame({"respondent_id": [r.id for r in study.respondents],
                         "org_id": [r.org_id for r in study.respondents]})
    return resp.merge(orgs, on="org_id", how="left", validate="many_to_one")


def build_panel(
    study: Study,
    scores: pd.DataFrame,
    outcomes: Sequence[str] | None = None,
    unit: Literal["organization", "respondent"] = "organization",
    waves: Literal["all", "observed"] = "all",
    strict_agreement: bool = False,
) -> pd.DataFrame:
    """Build the tidy panel of a study (see the module docstring for the columns).

    Parameters
    ----------
    study : Study
    scores : pandas.DataFrame
        Every score of the study in long form (``unit_level, unit_id, measure_id, wave, date,
        value``), handed over by :meth:`Study.panel`, which computes it once.
    outcomes : str or sequence of str, optional
        Measure ids (or ``measure.subscale``) to include; all available when omitted.
    unit : {"organization", "respondent"}
        The row unit. Respondent-level scores are averaged to organisations (with a count
        column ``<outcome>_n``) for ``unit="organization"``.
    waves : {"all", "observed"}
        ``"all"`` keeps every unit x wave of the design (missing outcomes stay missing, so
        attrition is visible); ``"observed"`` keeps rows with at least one outcome.
    strict_agreement : bool, default False
        For ``unit="organization"``: raise :class:`~coevidence.exceptions.MeasureError`
        instead of warning when a measure that requires an agreement check before aggregation
        fails one of its criteria (see :func:`agreement_report`).

    Warns
    -----
    AgreementWarning
        One per outcome whose respondent scores fail their measure's agreement criteria at
        some wave, naming the measure, wave, statistic, value and criterion.

    Examples
    --------
    >>> import coevidence as cv
    >>> p = cv.load_example_study().panel(["research_use"], unit="respondent")
    >>> {"respondent_id", "research_use"} <= set(p.columns)
    True
    """
    if unit not in ("organization", "respondent"):
        raise OptionError(f"unit must be 'organization' or 'respondent', got {unit!r}")
    if waves not in ("all", "observed"):
        raise OptionError(f"waves must be 'all' or 'observed', got {waves!r}")
    if isinstance(outcomes, str):  # one measure id, not its characters
        outcomes = [outcomes]
    if not isinstance(strict_agreement, bool | np.bool_):
        raise StudyValidationError(pd.DataFrame([{
            "table": "panel arguments", "row": None, "column": "strict_agreement",
            "value": repr(strict_agreement), "rule": "must be True or False"}]),
            what="the arguments of panel()")
    key = "org_id" if unit == "organization" else "respondent_id"
    units = _units(study, unit)
    design = study.design
    wave_frame = pd.DataFrame({
        "wave": [w.index for w in design.waves],
        "time": np.arange(len(design.waves), dtype=float),
        "_wave_date": pd.to_datetime([w.date for w in design.waves]).astype("datetime64[ns]"),
    })
    grid = units.merge(wave_frame, how="cross")

    available = sorted(scores["measure_id"].unique().tolist())
    if outcomes is None:
        outcomes = available
    else:
        outcomes = list(outcomes)
        unknown = [o for o in outcomes if o not in available]
        if unknown:
            raise CoevidenceError(
                f"outcomes {unknown} have no scores in this study; available: {available}")
    scores = scores[scores["measure_id"].isin(outcomes)]
    resp_org = {r.id: r.org_id for r in study.respondents}
    level_scores = []
    obs_dates = []
    if unit == "organization":
        org_level = scores[scores["unit_level"] == "organization"].rename(columns={"unit_id": "org_id"})
        person = scores[scores["unit_level"] == "respondent"]
        person = person.assign(org_id=person["unit_id"].map(resp_org))
        _agreement_gate(study, person["measure_id"].unique().tolist(), strict_agreement)
        agg = _aggregate(person, study.measures)
        org_only = org_level.assign(n=org_level["value"].notna().astype(int))
        # organisation-level scores win over aggregated respondent scores of the same measure
        merged = pd.concat([org_only[["org_id", "wave", "measure_id", "value", "n"]], agg],
                           ignore_index=True).drop_duplicates(["org_id", "wave", "measure_id"])
        level_scores.append(merged)
        obs_dates.append(pd.concat([org_level[["org_id", "wave", "date"]],
                                    person[["org_id", "wave", "date"]]]))
    else:
        person = scores[scores["unit_level"] == "respondent"].rename(columns={"unit_id": "respondent_id"})
        level_scores.append(person[["respondent_id", "wave", "measure_id", "value"]])
        obs_dates.append(person[["respondent_id", "wave", "date"]])
    long = pd.concat(level_scores, ignore_index=True)
    if not long.empty:
        wide = long.pivot_table(index=[key, "wave"], columns="measure_id", values="value",
                                aggfunc="first", dropna=False)
        wide.columns = [str(c) for c in wide.columns]
        if unit == "organization":
            n_wide = long.pivot_table(index=[key, "wave"], columns="measure_id", values="n",
                                      aggfunc="first")
            n_wide.columns = [f"{c}_n" for c in n_wide.columns]
            wide = wide.join(n_wide)
        grid = grid.merge(wide.reset_index(), on=[key, "wave"], how="left")
    dates = pd.concat(obs_dates, ignore_index=True).dropna(subset=["date"])
    if not dates.empty:
        med = dates.groupby([key, "wave"])["date"].median().rename("_obs_date").reset_index()
        grid = grid.merge(med, on=[key, "wave"], how="left")
        date = grid["_obs_date"].fillna(grid["_wave_date"])
    else:
        date = grid["_wave_date"]
    grid["date"] = date.astype("datetime64[ns]").dt.floor("D")

    has_ta = grid["_start"].notna()
    since_start = (grid["date"] - grid["_start"]).dt.days / _YEAR
    since_end = ((grid["date"] - grid["_end"]).dt.days / _YEAR).clip(lower=0).fillna(0.0)
    grid["years_since_start"] = since_start.where(has_ta)
    grid["years_since_end"] = since_end.where(has_ta)
    phase = np.where(~has_ta, "none",
                     np.where(grid["date"] < grid["_start"], "before",
                              np.where(grid["_end"].notna() & (grid["date"] > grid["_end"]),
                                       "after", "during")))
    grid["phase"] = pd.Categorical(phase, categories=PHASES)
    grid["ta_model"] = pd.Categorical(grid["ta_model"], categories=TA_MODELS)
    grid = _add_dose(study, grid)
    grid["study_id"] = design.id
    present = [o for o in outcomes if o in grid.columns]
    if waves == "observed" and present:
        grid = grid[grid[present].notna().any(axis=1)]
    base = [c for c in PANEL_COLUMNS if c in grid.columns and (c != "respondent_id" or unit == "respondent")]
    extra = []
    for o in outcomes:
        if o in grid.columns:
            extra.append(o)
        if f"{o}_n" in grid.columns:
            extra.append(f"{o}_n")
    for col in extra:
        if col.endswith("_n") and col[:-2] in outcomes:
            grid[col] = grid[col].fillna(0).astype("int64")
    out = grid[base + extra].sort_values([key, "wave"], kind="stable").reset_index(drop=True)
    out["wave"] = out["wave"].astype("int64")
    return out


def _aggregate(person: pd.DataFrame, measures: dict) -> pd.DataFrame:
    """Respondent scores -> organisation scores by each measure's aggregation rule.

    ``method`` mean or median; ``none`` leaves the measure out of the organisation panel;
    organisations with fewer than ``min_respondents`` scored respondents get a missing value
    (their count is still reported).
    """
    parts = []
    for mid, part in person.groupby("measure_id", sort=False):
        base = measures.get(str(mid).split(".", 1)[0])
        rule = getattr(base, "aggregation", None)
        method = getattr(rule, "method", "mean")
        if method == "none":
            continue
        grouped = part.groupby(["org_id", "wave"], observed=True)["value"]
        out = grouped.agg([method, "count"]).rename(columns={method: "value", "count": "n"})
        out.loc[out["n"] < getattr(rule, "min_respondents", 1), "value"] = np.nan
        parts.append(out.reset_index().assign(measure_id=mid))
    cols = ["org_id", "wave", "measure_id", "value", "n"]
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


def _add_dose(study: Study, grid: pd.DataFrame) -> pd.DataFrame:
    enc = [(e.id, pd.Timestamp(x.date), x.minutes) for e in study.engagements for x in e.encounters]
    if not enc:
        return grid.assign(cum_minutes=0.0, cum_encounters=0)
    log = pd.DataFrame(enc, columns=["engagement_id", "date", "minutes"])
    log["date"] = log["date"].astype("datetime64[ns]")
    log = log.sort_values(["date"], kind="stable")
    log["cum_minutes"] = log.groupby("engagement_id")["minutes"].cumsum()
    log["cum_encounters"] = log.groupby("engagement_id").cumcount() + 1
    # same-day encounters: keep the last cumulative value of the day
    log = log.drop_duplicates(["engagement_id", "date"], keep="last")
    left = grid.assign(_pos=np.arange(len(grid))).sort_values("date", kind="stable")
    left["date"] = left["date"].astype("datetime64[ns]")
    merged = pd.merge_asof(left, log[["engagement_id", "date", "cum_minutes", "cum_encounters"]],
                           on="date", by="engagement_id", direction="backward")
    merged = merged.sort_values("_pos").drop(columns="_pos").reset_index(drop=True)
    merged["cum_minutes"] = merged["cum_minutes"].fillna(0.0)
    merged["cum_encounters"] = merged["cum_encounters"].fillna(0).astype("int64")
    return merged


# ---------------------------------------------------------------------- the agreement gate
def _requires_check(measure: object) -> bool:
    rule = getattr(measure, "aggregation", None)
    return bool(getattr(rule, "check_agreement", False)) and getattr(rule, "method", "") != "none"


def _gate_outcomes(study: Study, outcomes: Sequence[str]) -> list[str]:
    measures = study.measures
    return [o for o in outcomes if _requires_check(measures.get(str(o).split(".", 1)[0]))]


def _agreement_gate(study: Study, outcomes: Sequence[str], strict: bool) -> None:
    """Warn (or raise, ``strict``) for each aggregated outcome failing its agreement criteria."""
    checked = _gate_outcomes(study, outcomes)
    if not checked:
        return
    report = study.agreement_report(checked)
    failed = report[report["failed"] != ""]
    if failed.empty:
        return
    if strict:
        rows = []
        for rec in failed.itertuples(index=False):
            spec = _criteria_of(study, rec.measure_id)
            for fail, value in _failures(rec.icc1, rec.f_p_value, rec.icc2, rec.median_rwg_j,
                                         spec):
                rows.append({"table": "responses", "row": None, "column": rec.measure_id,
                             "value": value, "rule": f"wave {rec.wave}: {fail}"})
        raise MeasureError(pd.DataFrame(rows), what="the agreement check before aggregating "
                           "respondent scores to organisations (strict_agreement=True)")
    for mid, part in failed.groupby("measure_id", sort=True):
        base = str(mid).split(".", 1)[0]
        detail = "; ".join(f"wave {rec.wave}: {rec.failed}" for rec in part.itertuples())
        warnings.warn(
            f"{mid}: respondent scores of measure {base!r} fail the agreement check their "
            f"definition requires before aggregation to organisations ({detail}). They were "
            "aggregated anyway; see study.agreement_report(), or pass strict_agreement=True "
            "to make this an error.",
            AgreementWarning, stacklevel=4)


_LABELS = {
    "icc1": ("ICC(1)", ">", "icc1_min", "icc1"),
    "f_test_p_value": ("F test p", "<", "f_alpha", "f_p_value"),
    "icc2": ("ICC(2)", ">=", "icc2_min", "icc2"),
    "median_rwg_j": ("median r_wg(j)", ">=", "rwg_min", "median_rwg_j"),
}


def _criteria_of(study: Study, outcome: str) -> AgreementCriteria:
    from coevidence.schemas.measure import AgreementCriteria

    measure = study.measures.get(str(outcome).split(".", 1)[0])
    spec = getattr(getattr(measure, "aggregation", None), "agreement", None)
    return spec if spec is not None else AgreementCriteria()


def _failures(icc1: float, f_p_value: float, icc2: float, median_rwg: float,
              spec: AgreementCriteria, **notes: str) -> list[tuple[str, float]]:
    """Each failed criterion as (``"ICC(2) = 0.412, needs >= 0.7 (icc2_min)"``, value)."""
    from coevidence.measures.agreement import criteria_frame

    crit = criteria_frame(icc1, f_p_value, icc2, median_rwg, spec, **notes)
    out = []
    for c in crit.itertuples(index=False):
        if c.met is not pd.NA and not bool(c.met):
            label, op, name, _ = _LABELS[c.criterion]
            out.append((f"{label} = {_fmt(c.value)}, needs {op} {c.threshold:g} ({name})",
                        float(c.value)))
    return out


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1e-3 and value != 0 else f"{value:.3f}"


def agreement_report(
    study: Study,
    outcomes: Sequence[str] | None = None,
    *,
    scores: pd.DataFrame,
    responses: pd.DataFrame,
    cache: dict[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """ICC(1), ICC(2) and r_wg(j) per wave of respondent scores before they are aggregated.

    For each outcome (a measure id, or ``measure.subscale``) and wave: the organisations with
    at least ``min_respondents`` scored respondents at that wave, the one-way ANOVA ICC(1) and
    ICC(2) of the respondents' scale scores (the values that are aggregated) with the F test,
    and r_wg(j) of each organisation's item responses (respondents who answered every item of
    the scale; uniform null over the measure's response options), summarised by the median
    and mean over organisations. The criteria are the measure's
    ``aggregation.agreement`` (:class:`~coevidence.schemas.measure.AgreementCriteria`).

    Parameters
    ----------
    study : Study
    outcomes : str or sequence of str, optional
        Outcomes to check; by default every outcome whose measure sets ``check_agreement``.
    scores, responses : pandas.DataFrame
        Every score of the study in long form and its item responses (handed over by
        :meth:`Study.agreement_report`, which owns them; this module reads no private state).
    cache : dict, optional
        Report rows by outcome, reused between calls on the same (immutable) study.

    Returns
    -------
    pandas.DataFrame
        :data:`AGREEMENT_REPORT_COLUMNS`. ``supported`` is True when every criterion is met,
        False when one fails (listed in ``failed`` with its value and threshold) and <NA> when
        none fails but one could not be computed (``note`` says why: e.g. fewer than 2
        organisations, or scores without item responses, which leave r_wg(j) NaN).

    Raises
    ------
    MeasureError
        An outcome without respondent-level scores (naming it).
    """
    long = scores
    person = long[long["unit_level"] == "respondent"]
    available = sorted(person["measure_id"].unique().tolist())
    if outcomes is None:
        outcomes = _gate_outcomes(study, available)
    else:
        outcomes = [outcomes] if isinstance(outcomes, str) else list(outcomes)
        bad = [o for o in outcomes if o not in available]
        if bad:
            raise MeasureError(pd.DataFrame([{
                "table": "scores", "row": None, "column": "measure_id", "value": o,
                "rule": f"no respondent-level scores to check (available: {available})"}
                for o in bad]), what="the outcomes of agreement_report()")
    cache = {} if cache is None else cache
    parts = []
    for o in outcomes:
        if o not in cache:
            cache[o] = _outcome_agreement(study, o, person[person["measure_id"] == o], responses)
        parts.append(cache[o])
    if not parts:
        return _empty_report()
    out = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].copy()
    out["supported"] = out["supported"].astype("boolean")
    return out.reset_index(drop=True)


def _empty_report() -> pd.DataFrame:
    out = pd.DataFrame({c: pd.Series(dtype=object) for c in AGREEMENT_REPORT_COLUMNS})
    out["supported"] = out["supported"].astype("boolean")
    return out


def _outcome_agreement(study: Study, outcome: str, person: pd.DataFrame,
                       responses: pd.DataFrame) -> pd.DataFrame:
    from coevidence.measures.agreement import criteria_frame, one_way_anova, rwg_j

    base, _, sub = str(outcome).partition(".")
    measure = study.measures.get(base)
    rule = getattr(measure, "aggregation", None)
    spec = _criteria_of(study, outcome)
    min_resp = int(getattr(rule, "min_respondents", 1))
    resp_org = {r.id: r.org_id for r in study.respondents}
    person = person.dropna(subset=["value"])
    person = person.assign(org_id=person["unit_id"].map(resp_org)).dropna(subset=["org_id"])
    # item responses of the scale (for r_wg(j)); none for scores given as scores
    items: tuple[str, ...] = ()
    rwg_note = ""
    null_variance = float("nan")
    if measure is not None:
        scale_id = sub or measure.primary_scale()
        scale = {s.id: s for s in measure.scales()}.get(scale_id or "")
        if scale is not None and scale.items:
            items = tuple(scale.items)
            a = float(measure.response_max) - float(measure.response_min) + 1
            null_variance = (a**2 - 1) / 12.0
        elif scale is not None:
            rwg_note = (f"{outcome} is a composite of subscales: r_wg(j) is checked on its "
                        "component subscales")
    else:
        rwg_note = f"no definition of measure {base!r}: r_wg(j) needs its items and range"
    wide = None
    if items:
        resp = responses
        resp = resp[(resp["measure_id"] == base) & resp["item"].isin(items)]
        if not resp.empty:
            wide = resp.pivot_table(index=["respondent_id", "wave"], columns="item",
                                    values="value", aggfunc="first")
            wide = wide.reindex(columns=list(items))
    rows = []
    for wave, part in person.groupby("wave", sort=True):
        counts = part.groupby("org_id")["value"].transform("size")
        part = part[counts >= min_resp]
        codes, orgs = pd.factorize(part["org_id"], sort=True)
        notes = []
        aov = one_way_anova(part["value"].to_numpy(dtype=float), codes, len(orgs))
        if len(orgs) < 2:
            notes.append(f"fewer than 2 organisations with at least {min_resp} scored "
                         "respondent(s)")
        elif aov["f_df2"] < 1:
            notes.append("no organisation has 2 or more scored respondents")
        elif np.isnan(aov["icc1"]):
            notes.append("the scores do not vary at this wave")
        icc_note = "; ".join(notes)
        med = mean = np.nan
        n_rwg = 0
        w_note = rwg_note
        if wide is not None and len(orgs):
            key = pd.MultiIndex.from_arrays([part["unit_id"], np.repeat(wave, len(part))])
            x = wide.reindex(key).to_numpy(dtype=float)
            ok = ~np.isnan(x).any(axis=1)
            r = rwg_j(x[ok], codes[ok], len(orgs), null_variance)
            n_rwg = int(np.isfinite(r).sum())
            if n_rwg:
                med, mean = float(np.nanmedian(r)), float(np.nanmean(r))
            else:
                w_note = "no organisation has 2 or more respondents with every item answered"
        elif items and not w_note:
            w_note = "r_wg(j) needs item responses (these scores were given as scores)"
        crit = criteria_frame(aov["icc1"], aov["f_p_value"], aov["icc2"], med, spec,
                              rwg_note=w_note, icc_note=icc_note)
        failed = [text for text, _ in _failures(aov["icc1"], aov["f_p_value"], aov["icc2"], med,
                                                spec)]
        met = crit["met"]
        supported = (False if failed else (True if met.notna().all() else pd.NA))
        all_notes = [n for n in dict.fromkeys([*notes, *crit.loc[met.isna(), "note"]]) if n]
        rows.append({
            "measure_id": outcome, "wave": int(wave), "n_units": int(len(orgs)),
            "n_respondents": int(len(part)), **{k: aov[k] for k in (
                "icc1", "f_value", "f_df1", "f_df2", "f_p_value", "icc2")},
            "median_rwg_j": med, "mean_rwg_j": mean, "n_units_rwg_j": n_rwg,
            "supported": supported, "failed": "; ".join(failed), "note": "; ".join(all_notes),
        })
    if not rows:
        return _empty_report()
    out = pd.DataFrame(rows, columns=list(AGREEMENT_REPORT_COLUMNS))
    out["supported"] = out["supported"].astype("boolean")
    return out
