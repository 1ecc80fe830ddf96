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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from coevidence.exceptions import CoevidenceError

if TYPE_CHECKING:  # pragma: no cover
    from coevidence.data.study import Study

__all__ = ["PANEL_COLUMNS", "build_panel", "long_scores"]

PANEL_COLUMNS = (
    "study_id", "provider_id", "org_id", "respondent_id", "engagement_id", "arm", "ta_model",
    "wave", "time", "date", "years_since_start", "years_since_end", "phase", "cum_minutes",
    "cum_encounters",
)
TA_MODELS = ["push", "co_creation", "hybrid", "none"]
PHASES = ["before", "during", "after", "none"]
_YEAR = 365.25


def long_scores(study: Study) -> pd.DataFrame:
    """Every score of the study in one long frame.

    Stacks the ``scores`` table with the scores computed from the item ``responses`` by each
    measure's scoring rule. Columns: unit_level, unit_id, measure_id, wave, date, value.
    """
    parts = []
    scores = study.scores
    if not scores.empty:
        if "date" not in scores.columns:
            scores = scores.assign(date=pd.NaT)
        parts.append(scores[["unit_level", "unit_id", "measure_id", "wave", "date", "value"]])
    responses = study.responses
    if not responses.empty:
        scored = study.scoring_report(detail=True)
        if "date" in responses.columns:
            when = (responses.dropna(subset=["date"])
                    .groupby(["respondent_id", "wave"])["date"].min().rename("date").reset_index())
            scored = scored.merge(when, on=["respondent_id", "wave"], how="left")
        else:
            scored = scored.assign(date=pd.NaT)
        parts.append(pd.DataFrame({
            "unit_level": "respondent",
            "unit_id": scored["respondent_id"],
            "measure_id": scored["measure_id"],
            "wave": scored["wave"],
            "date": scored["date"],
            "value": scored["score"],
        }))
    if not parts:
        return pd.DataFrame(columns=["unit_level", "unit_id", "measure_id", "wave", "date", "value"])
    out = pd.concat(parts, ignore_index=True)
    out["date"] = pd.to_datetime(out["date"]).astype("datetime64[ns]")
    return out


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
    outcomes: Sequence[str] | None = None,
    unit: Literal["organization", "respondent"] = "organization",
    waves: Literal["all", "observed"] = "all",
) -> pd.DataFrame:
    """Build the tidy panel of a study (see the module docstring for the columns).

    Parameters
    ----------
    study : Study
    outcomes : sequence of str, optional
        Measure ids (or ``measure.subscale``) to include; all available when omitted.
    unit : {"organization", "respondent"}
        The row unit. Respondent-level scores are averaged to organisations (with a count
        column ``<outcome>_n``) for ``unit="organization"``.
    waves : {"all", "observed"}
        ``"all"`` keeps every unit x wave of the design (missing outcomes stay missing, so
        attrition is visible); ``"observed"`` keeps rows with at least one outcome.

    Examples
    --------
    >>> import coevidence as cv
    >>> p = cv.load_example_study().panel(["research_use"], unit="respondent")
    >>> {"respondent_id", "research_use"} <= set(p.columns)
    True
    """
    if unit not in ("organization", "respondent"):
        raise ValueError(f"unit must be 'organization' or 'respondent', got {unit!r}")
    if waves not in ("all", "observed"):
        raise ValueError(f"waves must be 'all' or 'observed', got {waves!r}")
    key = "org_id" if unit == "organization" else "respondent_id"
    units = _units(study, unit)
    design = study.design
    wave_frame = pd.DataFrame({
        "wave": [w.index for w in design.waves],
        "time": np.arange(len(design.waves), dtype=float),
        "_wave_date": pd.to_datetime([w.date for w in design.waves]).astype("datetime64[ns]"),
    })
    grid = units.merge(wave_frame, how="cross")

    scores = study._long_scores
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
