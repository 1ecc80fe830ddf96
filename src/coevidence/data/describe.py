"""Descriptive summaries of a study: units by arm and wave, attrition, TA dose."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from coevidence.data.study import Study

__all__ = ["describe_study"]


def describe_study(study: Study) -> dict[str, pd.DataFrame]:
    """Summaries of a study, as frames.

    Returns
    -------
    dict of str to DataFrame
        ``units``: providers, organisations, respondents and engagements by arm;
        ``responding``: respondents with any response, by arm and wave;
        ``attrition``: share of baseline respondents still responding, by arm and wave;
        ``dose``: TA minutes and encounters per engagement, by TA model (mean, sd, min, max).

    Examples
    --------
    >>> import coevidence as cv
    >>> d = cv.load_example_study().describe()
    >>> sorted(d)
    ['attrition', 'dose', 'responding', 'units']
    """
    orgs = pd.DataFrame([o.model_dump(mode="json") for o in study.organizations])
    if orgs.empty:
        orgs = pd.DataFrame(columns=["id", "arm", "provider_id"])
    orgs["arm"] = orgs["arm"].fillna("(none)")
    resp = pd.DataFrame({"respondent_id": [r.id for r in study.respondents],
                         "org_id": [r.org_id for r in study.respondents]})
    resp = resp.merge(orgs[["id", "arm"]].rename(columns={"id": "org_id"}), on="org_id", how="left")
    eng_org = {e.id: e.org_id for e in study.engagements}
    units = pd.DataFrame({
        "providers": orgs.dropna(subset=["provider_id"]).groupby("arm")["provider_id"].nunique(),
        "organizations": orgs.groupby("arm")["id"].nunique(),
        "respondents": resp.groupby("arm")["respondent_id"].nunique(),
        "engagements": pd.Series(list(eng_org.values()), dtype=object).map(
            orgs.set_index("id")["arm"]).value_counts(),
    }).fillna(0).astype(int)
    units.index.name = "arm"

    r = study.responses
    waves = list(study.design.wave_indices)
    if r.empty:
        responding = pd.DataFrame(0, index=units.index, columns=waves)
    else:
        seen = r[["respondent_id", "wave"]].drop_duplicates().merge(resp, on="respondent_id", how="left")
        responding = (seen.groupby(["arm", "wave"]).size().unstack("wave")
                      .reindex(columns=waves).fillna(0).astype(int))
    responding.columns.name = "wave"
    base = responding.iloc[:, 0].replace(0, pd.NA) if responding.shape[1] else None
    attrition = (responding.div(base, axis=0).astype(float).round(4) if base is not None
                 else responding.astype(float))

    dose_rows = [{"engagement_id": e.id, "ta_model": e.ta_model.value,
                  "minutes": e.total_minutes, "encounters": len(e.encounters),
                  "months": (e.duration_years or float("nan")) * 12}
                 for e in study.engagements]
    dose = pd.DataFrame(dose_rows, columns=["engagement_id", "ta_model", "minutes", "encounters", "months"])
    dose = dose.groupby("ta_model")[["minutes", "encounters", "months"]].agg(["mean", "std", "min", "max"])
    return {"units": units, "responding": responding, "attrition": attrition, "dose": dose}
