"""Cross-record rules of a study, checked on its tables (vectorised).

Every rule returns failures with the table, the row (0-based position in that table as given),
the column and the offending value. Rules:

- duplicate keys (ids of providers, organisations, respondents, engagements)
- unknown ids (parent organisation, provider, arm, respondent's organisation, engagement's
  organisation and providers, nested logs' engagement, observation units, measures, waves)
- dates out of order (phases overlapping or out of order; engagement windows)
- engagement TA model conflicting with the assigned arm's TA model
- encounters, phases and components dated outside their engagement
- observations dated outside the study window, of unknown units, items or out of range
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from coevidence.data.frames import empty_failures, failures_frame
from coevidence.schemas.design import StudyDesign
from coevidence.schemas.measure import MeasureDefinition

__all__ = ["crosscheck"]

def _unknown(table: str, frame: pd.DataFrame, column: str, known: set[str], what: str) -> pd.DataFrame:
    if frame.empty or column not in frame.columns:
        return empty_failures()
    vals = frame[column]
    bad = vals.notna().to_numpy() & ~vals.isin(list(known)).to_numpy()
    if not bad.any():
        return empty_failures()
    return failures_frame(table, frame["_row"].to_numpy()[bad], column, vals.to_numpy()[bad],
                          f"unknown {what}")


def _duplicates(table: str, frame: pd.DataFrame, column: str = "id") -> pd.DataFrame:
    if frame.empty:
        return empty_failures()
    dup = frame[column].duplicated(keep="first").to_numpy()
    if not dup.any():
        return empty_failures()
    return failures_frame(table, frame["_row"].to_numpy()[dup], column,
                          frame[column].to_numpy()[dup], f"duplicate {column}")


def _outside(table: str, frame: pd.DataFrame, column: str, start: pd.Series, end: pd.Series,
             what: str) -> pd.DataFrame:
    d = frame[column]
    before = (d < start).fillna(False).to_numpy(dtype=bool)
    after = (end.notna() & (d > end)).fillna(False).to_numpy(dtype=bool)
    bad = before | after
    if not bad.any():
        return empty_failures()
    vals = d.dt.strftime("%Y-%m-%d").to_numpy()[bad]
    return failures_frame(table, frame["_row"].to_numpy()[bad], column, vals, f"dated outside {what}")


def crosscheck(
    design: StudyDesign | None,
    tables: Mapping[str, pd.DataFrame],
    measures: Mapping[str, MeasureDefinition],
    responses: pd.DataFrame | None,
    scores: pd.DataFrame | None,
    declared_ids: Mapping[str, set[str]] | None = None,
) -> pd.DataFrame:
    """Run every cross-record rule; returns the failures frame (empty when all pass).

    ``design`` None (it failed its own validation): the rules that need it (arms, waves, the
    study window) are skipped, every other rule still runs.

    ``declared_ids`` (table -> ids) adds the ids of rows that failed their own validation, so
    that their dependants are not reported a second time as "unknown".
    """
    out: list[pd.DataFrame] = []
    prov, orgs, resp, eng = (tables[k] for k in ("providers", "organizations", "respondents", "engagements"))
    for name, frame in (("providers", prov), ("organizations", orgs), ("respondents", resp),
                        ("engagements", eng)):
        out.append(_duplicates(name, frame))
    declared = declared_ids or {}
    prov_ids, org_ids, resp_ids, eng_ids = (
        set(f["id"].dropna()) | set(declared.get(name, ()))
        for name, f in (("providers", prov), ("organizations", orgs), ("respondents", resp),
                        ("engagements", eng)))
    arms = {a.id: a.ta_model.value for a in design.arms} if design is not None else None

    out.append(_unknown("organizations", orgs, "parent_id", org_ids, "parent organisation id"))
    out.append(_unknown("organizations", orgs, "provider_id", prov_ids, "provider id"))
    if arms is not None:
        out.append(_unknown("organizations", orgs, "arm", set(arms), "arm id (not in the design)"))
    out.append(_unknown("respondents", resp, "org_id", org_ids, "organisation id"))
    out.append(_unknown("engagements", eng, "org_id", org_ids, "organisation id"))
    if not eng.empty:
        exploded = eng[["_row", "provider_ids"]].assign(
            provider_id=eng["provider_ids"].str.split(";")).explode("provider_id")
        out.append(_unknown("engagements", exploded, "provider_id", prov_ids, "provider id")
                   .assign(column="provider_ids"))
    if not eng.empty and arms is not None:
        # TA model must match the organisation's assigned arm
        org_arm = orgs.drop_duplicates("id").set_index("id")["arm"]
        assigned = eng["org_id"].map(org_arm).map(arms)
        conflict = (assigned.notna() & (assigned != eng["ta_model"])).to_numpy(dtype=bool)
        if conflict.any():
            rows = eng.loc[conflict]
            out.append(pd.concat([
                failures_frame("engagements", [r], "ta_model", [m],
                               f"conflicts with the organisation's arm ({a!r})")
                for r, m, a in zip(rows["_row"], rows["ta_model"], assigned[conflict], strict=True)
            ], ignore_index=True))

    # engagement windows in order; nested logs dated inside a (valid) window
    reversed_ = (eng["end_date"].notna() & (eng["end_date"] < eng["start_date"])).to_numpy(dtype=bool)
    if reversed_.any():
        out.append(failures_frame(
            "engagements", eng["_row"].to_numpy()[reversed_], "end_date",
            eng["end_date"].dt.strftime("%Y-%m-%d").to_numpy()[reversed_],
            "end_date is before start_date"))
    windows = eng.loc[~reversed_].drop_duplicates("id").set_index("id")[["start_date", "end_date"]]
    for name, date_col in (("encounters", "date"), ("engagement_phases", "start_date"),
                           ("components", "introduced_on")):
        frame = tables.get(name)
        if frame is None or frame.empty:
            continue
        out.append(_unknown(name, frame, "engagement_id", eng_ids, "engagement id"))
        known = frame[frame["engagement_id"].isin(list(windows.index))]
        if known.empty:
            continue
        start = known["engagement_id"].map(windows["start_date"])
        end = known["engagement_id"].map(windows["end_date"])
        out.append(_outside(name, known, date_col, start, end, "its engagement"))
        if name == "encounters" and "provider_id" in known.columns:
            provs = known["engagement_id"].map(eng.drop_duplicates("id").set_index("id")["provider_ids"])
            bad = known["provider_id"].notna().to_numpy() & np.array([
                p not in str(ps).split(";") for p, ps in zip(known["provider_id"], provs, strict=True)
            ], dtype=bool)
            if bad.any():
                out.append(failures_frame(name, known["_row"].to_numpy()[bad], "provider_id",
                                          known["provider_id"].to_numpy()[bad],
                                          "provider is not one of the engagement's providers"))
    for name in ("adaptations", "agreements", "relationship_ratings"):
        frame = tables.get(name)
        if frame is not None and not frame.empty:
            out.append(_unknown(name, frame, "engagement_id", eng_ids, "engagement id"))
    phases = tables.get("engagement_phases")
    if phases is not None and not phases.empty:
        ph = phases.sort_values(["engagement_id", "start_date", "_row"], kind="stable")
        prev_end = ph.groupby("engagement_id")["end_date"].shift()
        overlap = (prev_end.notna() & (ph["start_date"] <= prev_end)).to_numpy(dtype=bool)
        if overlap.any():
            out.append(failures_frame("engagement_phases", ph["_row"].to_numpy()[overlap], "start_date",
                                      ph["start_date"].dt.strftime("%Y-%m-%d").to_numpy()[overlap],
                                      "phase starts before the previous phase ends"))

    start, end = ((pd.Timestamp(design.start_date), pd.Timestamp(design.end_date))
                  if design is not None else (None, None))
    waves = set(design.wave_indices) if design is not None else None
    if responses is not None and not responses.empty:
        r = responses.assign(_row=np.arange(len(responses)))
        out.append(_unknown("responses", r, "respondent_id", resp_ids, "respondent id"))
        out.append(_unknown("responses", r, "measure_id", set(measures), "measure id"))
        if waves is not None:
            out.append(_unknown_wave("responses", r, waves))
        if "date" in r.columns and start is not None:
            out.append(_outside("responses", r, "date", pd.Series(start, index=r.index),
                                pd.Series(end, index=r.index), "the study window"))
        out.append(_items("responses", r, measures))
    if scores is not None and not scores.empty:
        s = scores.assign(_row=np.arange(len(scores)))
        for level, known_ids in (("respondent", resp_ids), ("organization", org_ids)):
            part = s[s["unit_level"] == level]
            out.append(_unknown("scores", part, "unit_id", known_ids, f"{level} id"))
        if measures:
            base = s["measure_id"].str.split(".", n=1).str[0]
            out.append(_unknown("scores", s.assign(measure_id=base), "measure_id", set(measures),
                                "measure id"))
        if waves is not None:
            out.append(_unknown_wave("scores", s, waves))
        out.append(_score_ranges(s, measures))
        if "date" in s.columns and start is not None:
            out.append(_outside("scores", s, "date", pd.Series(start, index=s.index),
                                pd.Series(end, index=s.index), "the study window"))
    out = [f for f in out if not f.empty]
    return pd.concat(out, ignore_index=True) if out else empty_failures()


def _unknown_wave(table: str, frame: pd.DataFrame, waves: set[int]) -> pd.DataFrame:
    w = frame["wave"]
    bad = w.notna().to_numpy() & ~w.isin(list(waves)).to_numpy()
    if not bad.any():
        return empty_failures()
    return failures_frame(table, frame["_row"].to_numpy()[bad], "wave", w.to_numpy()[bad],
                          "unknown wave (not in the design)")


def _items(table: str, frame: pd.DataFrame, measures: Mapping[str, MeasureDefinition]) -> pd.DataFrame:
    out = []
    for mid, part in frame.groupby("measure_id", sort=False):
        m = measures.get(str(mid))
        if m is None:
            continue
        bad_item = ~part["item"].isin(list(m.items)).to_numpy()
        if bad_item.any():
            out.append(failures_frame(table, part["_row"].to_numpy()[bad_item], "item",
                                      part["item"].to_numpy()[bad_item], f"unknown item of {mid}"))
        v = part["value"].to_numpy(dtype=float, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            bad = (v < m.response_min) | (v > m.response_max)
        if bad.any():
            out.append(failures_frame(table, part["_row"].to_numpy()[bad], "value", v[bad],
                                      f"outside the response range [{m.response_min:g}, "
                                      f"{m.response_max:g}] of {mid}"))
        if m.discrete:
            with np.errstate(invalid="ignore"):
                frac = ~np.isnan(v) & ~bad & (v != np.round(v))
            if frac.any():
                out.append(failures_frame(table, part["_row"].to_numpy()[frac], "value", v[frac],
                                          f"not a whole number (the scale of {mid} is discrete)"))
    return pd.concat(out, ignore_index=True) if out else empty_failures()


def _score_ranges(frame: pd.DataFrame, measures: Mapping[str, MeasureDefinition]) -> pd.DataFrame:
    """Scores outside the theoretical range of their measure's scale."""
    out = []
    for mid, part in frame.groupby("measure_id", sort=False):
        base, _, sub = str(mid).partition(".")
        m = measures.get(base)
        if m is None:
            continue
        try:
            scales = m.scales()
            scale = sub or m.primary or (scales[0].id if len(scales) == 1 else "total")
            rng = m.scale_range(scale)
        except Exception:  # noqa: BLE001 - an unknown subscale or a custom scorer: no range
            rng = None
        if rng is None:
            continue
        lo, hi = rng
        v = part["value"].to_numpy(dtype=float, na_value=np.nan)
        tol = 1e-9 * max(1.0, abs(lo), abs(hi))
        with np.errstate(invalid="ignore"):
            bad = (v < lo - tol) | (v > hi + tol)
        if bad.any():
            out.append(failures_frame("scores", part["_row"].to_numpy()[bad], "value", v[bad],
                                      f"outside the score range [{lo:g}, {hi:g}] of {mid}"))
    return pd.concat(out, ignore_index=True) if out else empty_failures()
