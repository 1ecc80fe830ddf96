"""Simulate TA studies with known truth.

:func:`simulate_study` draws a complete, valid :class:`~coevidence.Study` from a
:class:`SimulationSpec`: providers, organisations and respondents, their assignment to push or
co-creation TA, engagements with encounter logs, and item-level responses generated from a
multilevel growth model through a measurement model with a chosen reliability.

The growth model for the true score of respondent *i* in organisation *j* of provider *k* at
wave position *t* (0, 1, ...) is

.. math::

    \\eta_{tijk} = \\beta_0 + \\beta_1 t + \\beta_2 c_k + \\beta_3 c_k t
        + \\beta_4 c_k (t - t_{end})_+ + u_k + u_{0j} + u_{1j} t + r_i + e_{tijk}

where :math:`c_k` is 1 for co-creation and :math:`(t - t_{end})_+` the waves since TA ended.
Item responses are the true score plus item error sized so that the reliability of the item
mean equals ``reliability``, rounded to the response scale.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from coevidence.data.study import Study
from coevidence.schemas.measure import MeasureDefinition

__all__ = ["OutcomeSpec", "SimulationSpec", "simulate_study"]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OutcomeSpec(_Spec):
    """Generating model of one outcome measure (parameters on the response scale).

    Parameters
    ----------
    measure_id : str
        Id of the generated measure (and panel column).
    n_items : int
        Number of items.
    response_min, response_max : int
        Integer response scale of every item.
    reliability : float
        Reliability of the item mean (share of its variance that is true-score variance).
    intercept, slope : float
        Push-arm level at the first wave and change per wave.
    arm_effect : float
        Co-creation minus push at the first wave (0 under randomisation).
    arm_slope : float
        Co-creation minus push in change per wave (the TA-model x time effect).
    post_slope_change : float
        Co-creation change in slope per wave after TA ends (sustainment).
    sd_provider, sd_org_intercept, sd_org_slope, sd_respondent, sd_residual : float
        Standard deviations of the random effects and the occasion-level residual.
    """

    measure_id: str = "research_use"
    n_items: int = Field(6, ge=2)
    response_min: int = 1
    response_max: int = 5
    reliability: float = Field(0.85, gt=0, lt=1)
    intercept: float = 2.6
    slope: float = 0.05
    arm_effect: float = 0.0
    arm_slope: float = 0.08
    post_slope_change: float = -0.04
    sd_provider: float = Field(0.15, ge=0)
    sd_org_intercept: float = Field(0.30, ge=0)
    sd_org_slope: float = Field(0.04, ge=0)
    sd_respondent: float = Field(0.35, ge=0)
    sd_residual: float = Field(0.30, ge=0)


class SimulationSpec(_Spec):
    """A TA study to simulate.

    Parameters
    ----------
    study_id : str
        Id of the simulated study.
    n_providers : int
        TA providers (the randomisation unit when ``assignment="provider"``).
    orgs_per_provider, respondents_per_org : int
        Organisations per provider and respondents per organisation.
    n_waves : int
        Measurement waves, ``wave_months`` apart, the first at ``start_date``.
    assignment : {"provider", "organization"}
        Unit randomised to push or co-creation (half each).
    ta_months : int
        Length of every engagement in months (starting two weeks after the first wave).
    attrition : float
        Per-wave probability that a respondent drops out for good after the first wave (MCAR).
    outcomes : tuple of OutcomeSpec
        The outcome measures to generate.

    Examples
    --------
    >>> spec = SimulationSpec(n_providers=4, orgs_per_provider=3, respondents_per_org=2, n_waves=3)
    >>> study = simulate_study(spec, seed=1)
    >>> study.n_units("organization")
    12
    """

    study_id: str = "simulated"
    title: str = "Simulated co-creation vs push TA study"
    n_providers: int = Field(12, ge=2)
    orgs_per_provider: int = Field(15, ge=1)
    respondents_per_org: int = Field(4, ge=1)
    n_waves: int = Field(6, ge=2)
    wave_months: int = Field(6, ge=1)
    start_date: dt.date = dt.date(2024, 1, 15)
    assignment: Literal["provider", "organization"] = "provider"
    ta_months: int = Field(22, ge=1)
    attrition: float = Field(0.03, ge=0, lt=1)
    outcomes: tuple[OutcomeSpec, ...] = (
        OutcomeSpec(),
        OutcomeSpec(measure_id="capacity", n_items=7, reliability=0.88, intercept=3.0,
                    slope=0.04, arm_slope=0.06, post_slope_change=-0.02),
    )


def _add_months(d: dt.date, months: int) -> dt.date:
    y, m = divmod(d.month - 1 + months, 12)
    return dt.date(d.year + y, m + 1, min(d.day, 28))


def simulate_study(spec: SimulationSpec, seed: int | np.random.SeedSequence | None = None) -> Study:
    """Draw one study from ``spec`` (same seed, same study).

    Parameters
    ----------
    spec : SimulationSpec
    seed : int or numpy.random.SeedSequence
        Seed of the random generator.

    Returns
    -------
    Study
        A valid study; ``study.design.description`` holds the generating spec as JSON.

    Examples
    --------
    >>> spec = SimulationSpec(n_providers=2, orgs_per_provider=2, respondents_per_org=2, n_waves=2)
    >>> simulate_study(spec, seed=3) == simulate_study(spec, seed=3)
    True
    """
    rng = np.random.default_rng(seed)
    waves = [_add_months(spec.start_date, spec.wave_months * w) for w in range(spec.n_waves)]
    end = _add_months(waves[-1], 1)
    arms = [{"id": "push", "ta_model": "push", "label": "Push TA"},
            {"id": "co_creation", "ta_model": "co_creation", "label": "Co-creation TA"}]
    design = {
        "id": spec.study_id, "title": spec.title,
        "randomisation_unit": spec.assignment,
        "arms": arms,
        "waves": [{"index": i + 1, "date": d, "label": "baseline" if i == 0 else f"wave {i + 1}"}
                  for i, d in enumerate(waves)],
        "start_date": spec.start_date - dt.timedelta(days=14), "end_date": end,
        "synthetic": True,
        "description": "Simulated with coevidence.simulate_study; spec: " + spec.model_dump_json(),
    }
    n_prov, n_org_p, n_resp_o = spec.n_providers, spec.orgs_per_provider, spec.respondents_per_org
    prov_ids = [f"P{k + 1:02d}" for k in range(n_prov)]
    n_org = n_prov * n_org_p
    org_ids = [f"O{j + 1:04d}" for j in range(n_org)]
    org_prov = np.repeat(np.arange(n_prov), n_org_p)
    if spec.assignment == "provider":
        prov_cc = rng.permutation(np.arange(n_prov) % 2)
        org_cc = prov_cc[org_prov]
    else:
        org_cc = rng.permutation(np.arange(n_org) % 2)
    kinds = rng.choice(["researcher", "intermediary", "practitioner_turned_ta"], size=n_prov)
    providers = pd.DataFrame({"id": prov_ids, "kind": kinds})
    sectors = rng.choice(["child_welfare", "education", "public_health"], size=n_org)
    level_of = {"child_welfare": "agency", "education": "district", "public_health": "health_department"}
    organizations = pd.DataFrame({
        "id": org_ids, "sector": sectors, "level": [level_of[s] for s in sectors],
        "provider_id": [prov_ids[k] for k in org_prov],
        "arm": np.where(org_cc == 1, "co_creation", "push"),
    })
    n_resp = n_org * n_resp_o
    resp_org = np.repeat(np.arange(n_org), n_resp_o)
    respondents = pd.DataFrame({
        "id": [f"R{i + 1:05d}" for i in range(n_resp)],
        "org_id": [org_ids[j] for j in resp_org],
        "role": rng.choice(["leader", "manager", "analyst", "practitioner"], size=n_resp,
                           p=[0.15, 0.25, 0.25, 0.35]),
    })

    # engagements and their logs
    start = spec.start_date + dt.timedelta(days=14)
    ta_end = _add_months(start, spec.ta_months)
    eng_rows, enc_rows, comp_rows, agr_rows, rating_rows, phase_rows, adapt_rows = ([] for _ in range(7))
    for j, oid in enumerate(org_ids):
        cc = bool(org_cc[j])
        eid = f"E{j + 1:04d}"
        s = start + dt.timedelta(days=int(rng.integers(0, 10)))
        e = ta_end + dt.timedelta(days=int(rng.integers(-10, 10)))
        eng_rows.append({"id": eid, "org_id": oid, "provider_ids": prov_ids[org_prov[j]],
                         "ta_model": "co_creation" if cc else "push", "start_date": s, "end_date": e,
                         "joint_diagnosis": cc, "data_system_support": bool(rng.random() < (0.6 if cc else 0.3)),
                         "strategy": "co-design with local data review" if cc else "packaged programme"})
        phase_rows += [
            {"engagement_id": eid, "phase": "pre_implementation", "start_date": s,
             "end_date": s + dt.timedelta(days=60)},
            {"engagement_id": eid, "phase": "implementation", "start_date": s + dt.timedelta(days=61),
             "end_date": e},
        ]
        gap = 14 if cc else 30
        day = s
        while day <= e:
            first = day == s
            activity = ("diagnosis" if cc and first else
                        rng.choice(["co_design", "data_review", "consultation", "coordination"]) if cc
                        else rng.choice(["training", "resource_delivery", "monitoring", "coordination"]))
            enc_rows.append({"engagement_id": eid, "date": day,
                             "minutes": float(max(10, round(rng.normal(75 if cc else 50, 20)))),
                             "mode": rng.choice(["in_person", "video", "phone", "email"], p=[0.3, 0.4, 0.2, 0.1]),
                             "activity": activity, "delivery": rng.choice(["group", "individual"]),
                             "provider_id": prov_ids[org_prov[j]], "proactive": bool(rng.random() < 0.6)})
            day = day + dt.timedelta(days=int(rng.integers(gap - 5, gap + 6)))
        comps = (["joint_diagnosis", "co_designed_solution", "data_review_cycle"] if cc
                 else ["packaged_training", "implementation_toolkit"])
        for order, cid in enumerate(comps, start=1):
            comp_rows.append({"engagement_id": eid, "id": cid, "order": order,
                              "introduced_on": s + dt.timedelta(days=45 * (order - 1))})
        agr_rows += [
            {"engagement_id": eid, "kind": "publication", "terms": "joint authorship; agency review",
             "agreed_on": s},
            {"engagement_id": eid, "kind": "data_sharing", "terms": "de-identified extracts",
             "agreed_on": s},
        ]
        for w in waves[1:]:
            if s <= w <= e:
                rating_rows.append({"engagement_id": eid, "date": w, "rater": "organization",
                                    "dimension": "overall",
                                    "value": float(np.clip(round(rng.normal(4.1 if cc else 3.6, 0.5), 1), 1, 5))})
        if cc and rng.random() < 0.4:
            adapt_rows.append({"engagement_id": eid, "date": s + dt.timedelta(days=120),
                               "target": "practice", "phase": "implementation", "planned": bool(rng.random() < 0.5),
                               "decided_by": "joint team", "what_modified": "content",
                               "level": "organization", "modification_type": "tailoring",
                               "fidelity_consistent": True, "goal": "fit local data systems",
                               "reason": "workforce capacity"})

    # outcomes: growth model -> true scores -> items
    t = np.arange(spec.n_waves, dtype=float)
    end_pos = np.interp(pd.Timestamp(ta_end).value,
                        [pd.Timestamp(w).value for w in waves], t)
    post = np.clip(t - end_pos, 0, None)
    dropout = _dropout(rng, n_resp, spec.n_waves, spec.attrition)
    resp_rows = []
    measures = []
    resp_ids = respondents["id"].to_numpy()
    for o in spec.outcomes:
        measures.append(MeasureDefinition(
            id=o.measure_id, name=f"Simulated {o.measure_id.replace('_', ' ')} scale",
            construct="research_use" if "use" in o.measure_id else "capacity", level="person",
            response_min=o.response_min, response_max=o.response_max,
            items=tuple(f"{o.measure_id[:2]}{q + 1}" for q in range(o.n_items)),
            missing={"min_fraction": 0.8},
            citation="Synthetic measure generated by coevidence.simulate_study."))
        u_k = rng.normal(0, o.sd_provider, n_prov)
        u0 = rng.normal(0, o.sd_org_intercept, n_org)
        u1 = rng.normal(0, o.sd_org_slope, n_org)
        r_i = rng.normal(0, o.sd_respondent, n_resp)
        cc_i = org_cc[resp_org].astype(float)
        eta = (o.intercept + o.slope * t[None, :] + o.arm_effect * cc_i[:, None]
               + o.arm_slope * cc_i[:, None] * t[None, :] + o.post_slope_change * cc_i[:, None] * post[None, :]
               + u_k[org_prov[resp_org]][:, None] + u0[resp_org][:, None] + u1[resp_org][:, None] * t[None, :]
               + r_i[:, None] + rng.normal(0, o.sd_residual, (n_resp, spec.n_waves)))
        true_var = (o.sd_provider ** 2 + o.sd_org_intercept ** 2 + o.sd_respondent ** 2
                    + o.sd_residual ** 2)
        err_sd = np.sqrt(o.n_items * true_var * (1 - o.reliability) / o.reliability)
        items = eta[:, :, None] + rng.normal(0, err_sd, (n_resp, spec.n_waves, o.n_items))
        items = np.clip(np.rint(items), o.response_min, o.response_max)
        observed = ~dropout
        # item non-response: 1% of items skipped at random
        skipped = rng.random(items.shape) < 0.01
        ii, ww, qq = np.nonzero(observed[:, :, None] & np.ones_like(items, dtype=bool))
        vals = np.where(skipped[ii, ww, qq], np.nan, items[ii, ww, qq])
        day_offset = rng.integers(0, 21, size=(n_resp, spec.n_waves))
        dates = (pd.to_datetime(np.array(waves, dtype="datetime64[D]")[ww])
                 + pd.to_timedelta(day_offset[ii, ww], unit="D"))
        resp_rows.append(pd.DataFrame({
            "respondent_id": resp_ids[ii], "measure_id": o.measure_id, "wave": ww + 1,
            "item": np.array(measures[-1].items)[qq], "value": vals, "date": dates,
        }))
    responses = pd.concat(resp_rows, ignore_index=True)
    truth = {o.measure_id: o.model_dump() for o in spec.outcomes}
    design["description"] += " truth: " + json.dumps(truth)
    return Study.from_frames(
        design, measures=measures, providers=providers, organizations=organizations,
        respondents=respondents, engagements=pd.DataFrame(eng_rows),
        engagement_phases=pd.DataFrame(phase_rows), encounters=pd.DataFrame(enc_rows),
        components=pd.DataFrame(comp_rows), adaptations=pd.DataFrame(adapt_rows),
        agreements=pd.DataFrame(agr_rows), relationship_ratings=pd.DataFrame(rating_rows),
        responses=responses,
    )


def _dropout(rng: np.random.Generator, n: int, n_waves: int, hazard: float) -> np.ndarray:
    """Monotone MCAR dropout after the first wave: True where the observation is missing."""
    drop = rng.random((n, n_waves)) < hazard
    drop[:, 0] = False
    return np.cumsum(drop, axis=1) > 0
