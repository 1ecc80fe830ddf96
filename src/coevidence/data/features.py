"""Engagement features from a study's logs, one row per organisation x wave (issue 11).

The features a study team tests as moderators or dose-response predictors: TA dose in a
trailing window and cumulatively, encounters by mode, whether diagnosis came first, the
components introduced and their order, FRAME adaptations, relationship quality and the
agreements in force. Every feature is computed *as of the wave's date* in the study design
(only log entries dated on or before it count), so it can enter a model of the outcome at that
wave without looking ahead. The keys are ``org_id`` and ``wave``, as in
``study.panel(unit="organization")``, so ``panel.merge(features, on=["org_id", "wave"])``
joins them. Every organisation of the study gets a row at every wave of the design, with or
without an engagement.

An organisation with several engagements has their logs pooled (dose, counts, ratings,
agreements); its components are ordered by engagement start date, then ``order``.

==========================  ===============================================================
column                      definition (``d`` = the wave's date in the design)
==========================  ===============================================================
org_id, wave                keys, as in the panel
feature_date                ``d``
has_engagement              the organisation has at least one engagement record
ta_started                  an engagement of the organisation starts on or before ``d``
dose_minutes_window         minutes of encounters dated in ``(d - window_months, d]``
                            (calendar months: start exclusive, end inclusive)
dose_minutes_cum            minutes of encounters dated on or before ``d``
encounters_cum              encounters dated on or before ``d``
encounters_<mode>           the same by mode: in_person, site_visit, video, phone, email, other
diagnosis_first             whether diagnosis came first, as of ``d``: when components have
                            been introduced by ``d``, the first of them (lowest ``order``;
                            earliest engagement first) is a diagnosis component (its id or
                            name contains "diagnos", case-insensitive, e.g.
                            ``joint_diagnosis``); otherwise, when encounters have been
                            logged by ``d``, an encounter on the first encounter day has
                            activity ``diagnosis``; otherwise missing (``<NA>``)
joint_diagnosis             the engagement header's declared flag (any engagement); missing
                            without an engagement
components_introduced       components with ``introduced_on`` on or before ``d``
component_sequence          their ids in order, joined by ``";"`` (``""`` if none)
adaptations_total           FRAME adaptations dated on or before ``d``
adaptations_<what>          the same by FRAME "what is modified": content, context,
                            training_evaluation, implementation
adaptations_planned,        ... planned (proactive) and unplanned (reactive)
adaptations_unplanned
adaptations_ta_strategy     ... of the TA strategy itself (FRAME-IS, ``target="ta_strategy"``)
relationship_mean           mean of the relationship ratings dated on or before ``d`` (every
                            rater and dimension), each rescaled to 0-1 on its own scale
                            (``(value - scale_min) / (scale_max - scale_min)``), reversed
                            (``1 - x``) for the adverse dimensions ``compliance`` and
                            ``negative_interactions`` so that higher is better; NaN if none
relationship_n              the number of those ratings
agreements_in_force         agreements in force at ``d``: from ``agreed_on`` (the
                            engagement's start when not given) until the engagement's end
                            (open-ended: no end), both inclusive
agreements_<kind>           the same by kind: publication, data_sharing, other
==========================  ===============================================================

Organisations without engagements (e.g. comparison units) and waves before TA get zero dose,
counts and agreements, an empty sequence, missing ``diagnosis_first`` and NaN
``relationship_mean``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from coevidence.exceptions import OptionError
from coevidence.schemas.enums import AgreementKind, EncounterMode, RelationshipConstruct

if TYPE_CHECKING:  # pragma: no cover
    from coevidence.data.study import Study

__all__ = ["ENGAGEMENT_FEATURE_COLUMNS", "engagement_features"]

_MODES = [m.value for m in EncounterMode]
_WHAT = ["content", "context", "training_evaluation", "implementation"]
_KINDS = [k.value for k in AgreementKind]
_ADVERSE = {RelationshipConstruct.compliance.value, RelationshipConstruct.negative_interactions.value}

#: The columns of :func:`engagement_features`, in order.
ENGAGEMENT_FEATURE_COLUMNS = (
    "org_id", "wave", "feature_date", "has_engagement", "ta_started",
    "dose_minutes_window", "dose_minutes_cum", "encounters_cum",
    *(f"encounters_{m}" for m in _MODES),
    "diagnosis_first", "joint_diagnosis", "components_introduced", "component_sequence",
    "adaptations_total", *(f"adaptations_{w}" for w in _WHAT),
    "adaptations_planned", "adaptations_unplanned", "adaptations_ta_strategy",
    "relationship_mean", "relationship_n",
    "agreements_in_force", *(f"agreements_{k}" for k in _KINDS),
)


def _ts(d) -> pd.Timestamp:
    return pd.Timestamp(d)


def _frame(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    out = pd.DataFrame(rows, columns=columns)
    for c in columns:
        if c.endswith("date") or c in ("start", "end", "effective"):
            out[c] = pd.to_datetime(out[c]).astype("datetime64[ns]")
    return out


def _as_of(grid: pd.DataFrame, log: pd.DataFrame, date_col: str = "date") -> pd.DataFrame:
    """Every (grid row, log entry) pair of the same organisation with the entry dated <= d."""
    if log.empty:
        return log.assign(_row=pd.Series(dtype="int64"), _d=pd.Series(dtype="datetime64[ns]"))
    pairs = grid[["_row", "org_id", "_d"]].merge(log, on="org_id", how="inner")
    return pairs[pairs[date_col] <= pairs["_d"]]


def _count(grid: pd.DataFrame, pairs: pd.DataFrame, mask=None) -> np.ndarray:
    sel = pairs if mask is None else pairs[mask]
    counts = sel.groupby("_row").size()
    return counts.reindex(grid["_row"], fill_value=0).to_numpy(dtype="int64")


def _sum(grid: pd.DataFrame, pairs: pd.DataFrame, col: str, mask=None) -> np.ndarray:
    sel = pairs if mask is None else pairs[mask]
    total = sel.groupby("_row")[col].sum()
    return total.reindex(grid["_row"], fill_value=0.0).to_numpy(dtype="float64")


def engagement_features(study: Study, *, window_months: int = 6) -> pd.DataFrame:
    """Engagement features per organisation x wave, computed from the study's logs.

    Parameters
    ----------
    study : Study
    window_months : int, default 6
        Length of the trailing dose window in calendar months, ending at (and including) each
        wave's date: ``dose_minutes_window`` sums the minutes of encounters dated in
        ``(date - window_months months, date]``.

    Returns
    -------
    pandas.DataFrame
        One row per organisation x wave of the design (every organisation, sorted by
        ``org_id`` and ``wave``), with the columns of ``ENGAGEMENT_FEATURE_COLUMNS``:

        - ``org_id``, ``wave``: the keys of ``study.panel(unit="organization")``;
          ``feature_date``: the wave's date in the design, as of which everything is counted
          (log entries dated on or before it).
        - ``has_engagement``, ``ta_started``: an engagement exists / has started by the date.
        - ``dose_minutes_window``: encounter minutes in the trailing window;
          ``dose_minutes_cum``, ``encounters_cum``: minutes and encounters up to the date;
          ``encounters_<mode>``: encounters up to the date by mode (in_person, site_visit,
          video, phone, email, other).
        - ``diagnosis_first`` (nullable boolean): when components have been introduced by
          the date, whether the first of them (lowest ``order``, earliest engagement first)
          is a diagnosis component (id or name containing "diagnos", e.g.
          ``joint_diagnosis``); otherwise, when encounters have been logged, whether an
          encounter on the first encounter day has activity ``diagnosis``; otherwise
          missing. ``joint_diagnosis``: the engagement's declared flag (missing without one).
        - ``components_introduced``, ``component_sequence``: components introduced by the
          date and their ids in order joined by ``";"``.
        - ``adaptations_total`` and by FRAME "what is modified" (``adaptations_content``,
          ``_context``, ``_training_evaluation``, ``_implementation``), ``_planned``,
          ``_unplanned``, ``_ta_strategy`` (FRAME-IS): adaptations dated up to the date.
        - ``relationship_mean``: the mean of the ratings dated up to the date, each rescaled
          to 0-1 on its own scale and reversed for the adverse dimensions (``compliance``,
          ``negative_interactions``), so higher is better (NaN if none);
          ``relationship_n``: how many.
        - ``agreements_in_force`` and by kind (``agreements_publication``,
          ``_data_sharing``, ``_other``): agreements in force on the date, from
          ``agreed_on`` (else the engagement's start) to the engagement's end, inclusive.

        Organisations without an engagement keep their rows, with zeros, an empty
        sequence, missing ``diagnosis_first`` and NaN ``relationship_mean``. An
        organisation's several engagements are pooled. The full definitions are in
        :mod:`coevidence.data.features` and the study-data documentation.

    Raises
    ------
    OptionError
        If ``window_months`` is not a positive integer.

    Examples
    --------
    >>> import coevidence as cv
    >>> study = cv.load_example_study()
    >>> feats = cv.engagement_features(study, window_months=6)
    >>> len(feats) == study.n_units("organization") * len(study.design.waves)
    True
    >>> panel = study.panel(unit="organization")
    >>> len(panel.merge(feats, on=["org_id", "wave"], how="left")) == len(panel)
    True
    >>> bool((feats["dose_minutes_window"] <= feats["dose_minutes_cum"] + 1e-9).all())
    True
    """
    if isinstance(window_months, bool) or not isinstance(window_months, int | np.integer) \
            or window_months < 1:
        raise OptionError(f"window_months must be a positive whole number of months, got "
                          f"{window_months!r}")
    window_months = int(window_months)
    design = study.design
    waves = sorted(design.waves, key=lambda w: w.index)
    org_ids = sorted(o.id for o in study.organizations)
    wave_frame = pd.DataFrame({
        "wave": np.array([w.index for w in waves], dtype="int64"),
        "_d": pd.to_datetime([w.date for w in waves]).astype("datetime64[ns]"),
    })
    wave_frame["_start"] = [d - pd.DateOffset(months=window_months) for d in wave_frame["_d"]]
    wave_frame["_start"] = wave_frame["_start"].astype("datetime64[ns]")
    grid = pd.DataFrame({"org_id": pd.Series(org_ids, dtype=object)}).merge(wave_frame,
                                                                          how="cross")
    grid = grid.sort_values(["org_id", "wave"], kind="stable").reset_index(drop=True)
    grid["_row"] = np.arange(len(grid))

    engagements = sorted(study.engagements, key=lambda e: (e.start_date, e.id))
    eng = _frame([{"org_id": e.org_id, "eid": e.id, "start": _ts(e.start_date),
                   "end": _ts(e.end_date) if e.end_date else pd.NaT,
                   "joint_diagnosis": e.joint_diagnosis, "rank": i}
                  for i, e in enumerate(engagements)],
                 ["org_id", "eid", "start", "end", "joint_diagnosis", "rank"])
    enc = _frame([{"org_id": e.org_id, "date": _ts(x.date), "minutes": float(x.minutes),
                   "mode": x.mode.value, "diag": x.activity.value == "diagnosis"}
                  for e in engagements for x in e.encounters],
                 ["org_id", "date", "minutes", "mode", "diag"])
    comp = _frame([{"org_id": e.org_id, "date": _ts(c.introduced_on), "rank": i,
                    "order": c.order, "id": c.id,
                    "diag": "diagnos" in f"{c.id} {c.name}".lower()}
                   for i, e in enumerate(engagements) for c in e.components],
                  ["org_id", "date", "rank", "order", "id", "diag"])
    adapt = _frame([{"org_id": e.org_id, "date": _ts(a.date), "what": a.what_modified,
                     "planned": a.planned, "ta": a.target == "ta_strategy"}
                    for e in engagements for a in e.adaptations],
                   ["org_id", "date", "what", "planned", "ta"])
    rating_rows = []
    for e in engagements:
        for r in e.relationship_ratings:
            x = (r.value - r.scale_min) / (r.scale_max - r.scale_min)
            if r.dimension.value in _ADVERSE:
                x = 1.0 - x
            rating_rows.append({"org_id": e.org_id, "date": _ts(r.date), "x": x})
    ratings = _frame(rating_rows, ["org_id", "date", "x"])
    agr = _frame([{"org_id": e.org_id, "effective": _ts(a.agreed_on or e.start_date),
                   "end": _ts(e.end_date) if e.end_date else pd.NaT, "kind": a.kind.value}
                  for e in engagements for a in e.agreements],
                 ["org_id", "effective", "end", "kind"])

    out = grid[["org_id", "wave"]].copy()
    out["feature_date"] = grid["_d"].to_numpy()
    has = set(eng["org_id"])
    out["has_engagement"] = grid["org_id"].isin(has).to_numpy()
    started = _as_of(grid, eng.rename(columns={"start": "date"}))
    out["ta_started"] = _count(grid, started) > 0

    # dose and encounters
    p = _as_of(grid, enc)
    in_window = None
    if not p.empty:
        p = p.assign(_start=grid["_start"].to_numpy()[p["_row"].to_numpy()])
        in_window = p["date"] > p["_start"]
    out["dose_minutes_window"] = _sum(grid, p, "minutes", in_window)
    out["dose_minutes_cum"] = _sum(grid, p, "minutes")
    out["encounters_cum"] = _count(grid, p)
    for m in _MODES:
        out[f"encounters_{m}"] = _count(grid, p, None if p.empty else p["mode"] == m)

    # diagnosis first: components introduced by d, else encounters by d
    diag = pd.array([pd.NA] * len(grid), dtype="boolean")
    pc = _as_of(grid, comp)
    if not p.empty:
        first_day = p.groupby("_row")["date"].transform("min")
        on_first = p[p["date"] == first_day].groupby("_row")["diag"].any()
        diag[on_first.index.to_numpy()] = on_first.to_numpy()
    seq = np.full(len(grid), "", dtype=object)
    if not pc.empty:
        pc = pc.sort_values(["_row", "rank", "order"], kind="stable")
        first = pc.groupby("_row")["diag"].first()
        diag[first.index.to_numpy()] = first.to_numpy()  # components take precedence
        joined = pc.groupby("_row")["id"].agg(";".join)
        seq[joined.index.to_numpy()] = joined.to_numpy()
    out["diagnosis_first"] = diag
    jd = eng.groupby("org_id")["joint_diagnosis"].any() if not eng.empty else pd.Series(
        dtype=bool)
    out["joint_diagnosis"] = pd.array(grid["org_id"].map(jd).to_numpy(), dtype="boolean")
    out["components_introduced"] = _count(grid, pc)
    out["component_sequence"] = seq

    # adaptations
    pa = _as_of(grid, adapt)
    out["adaptations_total"] = _count(grid, pa)
    for w in _WHAT:
        out[f"adaptations_{w}"] = _count(grid, pa, None if pa.empty else pa["what"] == w)
    out["adaptations_planned"] = _count(grid, pa, None if pa.empty else pa["planned"].astype(bool))
    out["adaptations_unplanned"] = _count(grid, pa,
                                          None if pa.empty else ~pa["planned"].astype(bool))
    out["adaptations_ta_strategy"] = _count(grid, pa, None if pa.empty else pa["ta"].astype(bool))

    # relationship quality
    pr = _as_of(grid, ratings)
    n_r = _count(grid, pr)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n_r > 0, _sum(grid, pr, "x") / np.maximum(n_r, 1), np.nan)
    out["relationship_mean"] = mean
    out["relationship_n"] = n_r

    # agreements in force: effective <= d <= engagement end (or open-ended)
    pg = _as_of(grid, agr, date_col="effective")
    in_force = None if pg.empty else (pg["end"].isna() | (pg["_d"] <= pg["end"]))
    out["agreements_in_force"] = _count(grid, pg, in_force)
    for k in _KINDS:
        out[f"agreements_{k}"] = _count(grid, pg, None if pg.empty else in_force
                                        & (pg["kind"] == k))
    out["feature_date"] = out["feature_date"].astype("datetime64[ns]")
    return out[list(ENGAGEMENT_FEATURE_COLUMNS)].reset_index(drop=True)
