"""Simulate TA studies with known truth.

:func:`simulate_study` draws a complete, valid :class:`~coevidence.Study` from a
:class:`SimulationSpec`: providers, organisations and respondents, their assignment to push or
co-creation TA, engagements with encounter logs, and item-level responses generated from a
multilevel growth model through a measurement model with a chosen reliability.

The growth model for the true score of respondent *i* in organisation *j* of provider *k* at
wave position *t* (0, 1, ...) is

.. math::

    \\eta_{tijk} = \\beta_0 + \\beta_1 t + \\beta_2 c_k + \\beta_3 c_k t
        + \\beta_4 c_k (t - t_{end})_+ + u_k + v_k t + u_{0j} + u_{1j} t + r_i
        + \\lambda z_j + e_{tijk}

where :math:`c_k` is 1 for co-creation, :math:`(t - t_{end})_+` the waves since TA ended,
:math:`v_k` a provider slope (``sd_provider_slope``) and :math:`z_j` the organisation's
readiness (``readiness_effect``; drawn when used).
Item responses are the true score plus item error sized so that the reliability of the item
mean equals ``reliability``, rounded to the response scale.

In stepped-wedge (``assignment="stepped_wedge"``, random order of starts) and staggered
(``assignment="staggered"``, non-random starts: units with higher readiness start earlier)
designs every unit receives co-creation TA from its start on and none before; the TA terms then
use exposure time: ``arm_effect`` is the level change at the start, ``arm_slope`` the change
in slope per wave since the start and ``post_slope_change`` the change after TA ends.
:func:`true_effects` gives the true arm differences a spec implies.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from coevidence.data.study import Study
from coevidence.exceptions import OptionError
from coevidence.schemas.measure import MeasureDefinition

__all__ = ["FeatureSpec", "OutcomeSpec", "SimulationSpec", "simulate_study", "true_effects"]


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
    sd_provider_slope : float
        Standard deviation of provider-level slopes (the level-3 slope variance).
    readiness_effect : float
        Outcome level per SD of an organisation's readiness (drives start order in staggered
        designs; 0 = readiness unrelated to the outcome).
    round_items : bool
        Round item responses to the integer response scale (False keeps the continuous
        values, clipped to the scale; useful for checking normal-theory power formulas).
    dose_effect : float
        Outcome change per hour of cumulative TA logged up to the wave date (the
        organisation's encounter minutes / 60; needs ``encounter_logs``). Dose varies within
        arm through :attr:`FeatureSpec.dose_sd`.
    relationship_effect : float
        Outcome change per point of the organisation's true relationship quality (its
        deviation from the arm mean, :attr:`FeatureSpec.relationship_sd`), from the first
        wave after TA starts.
    diagnosis_first_effect : float
        Level shift, from the first wave after TA starts, of co-creation organisations whose
        engagement began with joint diagnosis (:attr:`FeatureSpec.p_diagnosis_first`).
    mediator : str, optional
        Id of an earlier outcome whose true score (linear predictor, respondent x wave)
        enters this outcome: ``eta += mediator_effect * eta_mediator``. The arm terms of this
        spec are then the direct effect (c').
    mediator_effect : float
        The b path (per unit of the mediator's true score).
    family : {"gaussian", "binomial", "poisson"}
        ``gaussian``: items from the true score through the measurement model (as before).
        ``binomial`` / ``poisson``: the growth model (same random effects, with
        ``sd_residual`` an occasion-level normal term) is the linear predictor on the logit /
        log scale and each respondent x wave records one 0/1 or count (a one-item measure;
        ``n_items``, ``reliability``, ``response_min``/``response_max`` and
        ``round_items`` do not apply and are refused if given).
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
    sd_provider_slope: float = Field(0.0, ge=0)
    readiness_effect: float = 0.0
    round_items: bool = True
    dose_effect: float = 0.0
    relationship_effect: float = 0.0
    diagnosis_first_effect: float = 0.0
    mediator: str | None = None
    mediator_effect: float = 0.0
    family: Literal["gaussian", "binomial", "poisson"] = "gaussian"

    @model_validator(mode="after")
    def _check_family(self) -> OutcomeSpec:
        if self.family != "gaussian":
            given = sorted(self.model_fields_set & {"n_items", "reliability", "response_min",
                                                    "response_max", "round_items"})
            if given:
                raise ValueError(f"{', '.join(given)} do(es) not apply to family="
                                 f"{self.family!r} (one 0/1 or count per respondent x wave)")
        if self.mediator is None and self.mediator_effect != 0:
            raise ValueError("mediator_effect needs mediator= (the id of an earlier outcome)")
        if self.mediator == self.measure_id:
            raise ValueError(f"outcome {self.measure_id!r} cannot mediate itself")
        return self

    @property
    def uses_features(self) -> bool:
        """Whether an engagement feature (dose, relationship, diagnosis-first) acts on it."""
        return bool(self.dose_effect or self.relationship_effect or self.diagnosis_first_effect)

    def total_variance(self) -> float:
        """Variance of a respondent's true score at the first wave (intercepts + residual)."""
        return (self.sd_provider ** 2 + self.sd_org_intercept ** 2 + self.sd_respondent ** 2
                + self.sd_residual ** 2)

    def error_variance(self) -> float:
        """Variance of the item-mean measurement error implied by ``reliability``."""
        return self.total_variance() * (1 - self.reliability) / self.reliability


class FeatureSpec(_Spec):
    """How engagement features vary within arm (the defaults reproduce the fixed features).

    Parameters
    ----------
    p_diagnosis_first : float, optional
        Co-creation engagements: probability that joint diagnosis is the first component and
        the first encounter (otherwise it comes second or third, with its diagnosis encounter
        at the component's introduction). ``None``: always first (the arm decides it).
    random_sequence : bool
        Co-creation engagements: the components after the first come in random order.
    p_agreement : float, optional
        Each agreement (publication, data sharing) is made with this probability, on a day
        drawn in the first ``agreement_window_days`` of the engagement. ``None``: both are
        made at the start (as before).
    agreement_window_days : int
    dose_sd : float
        SD of the log of an organisation's TA intensity (a multiplier, mean 1, of the minutes
        of each encounter): dose varies within arm.
    relationship_sd : float
        SD of an organisation's true relationship quality around its arm mean (ratings are
        that quality plus rating noise of SD 0.5).
    """

    p_diagnosis_first: float | None = Field(None, ge=0, le=1)
    random_sequence: bool = False
    p_agreement: float | None = Field(None, ge=0, le=1)
    agreement_window_days: int = Field(180, ge=0)
    dose_sd: float = Field(0.0, ge=0)
    relationship_sd: float = Field(0.0, ge=0)


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
    assignment : {"provider", "organization", "stepped_wedge", "staggered"}
        ``provider``/``organization``: that unit is randomised to push or co-creation (half
        each). ``stepped_wedge``: the ``rollout_unit`` units start co-creation TA in ``n_steps``
        equal groups in random order, one group before each of waves 2, 3, ...
        ``staggered``: the same steps but non-random: more ready units start earlier
        (``selection`` sets how strongly).
    rollout_unit : {"provider", "organization"}
        Unit whose start is staggered in stepped-wedge and staggered designs.
    n_steps : int, optional
        Number of steps (default ``n_waves - 1``).
    selection : float
        Staggered designs: weight of readiness (SD units) against unit-level noise (SD 1) in
        the start order; 0 = starts unrelated to readiness.
    ta_months : int
        Length of every engagement in months (starting two weeks after the first wave; in
        stepped-wedge and staggered designs three weeks after the unit's last wave before
        its step, i.e. after that wave's observations).
    attrition : float
        Per-wave probability that a respondent drops out for good after the first wave.
    attrition_mechanism : {"mcar", "mar"}
        ``mcar``: dropout unrelated to anything. ``mar``: the per-wave hazard depends on the
        respondent's observed score (first outcome) at the previous wave,
        ``logit(h) = logit(attrition) - mar_strength * z`` (low scorers drop out more).
    mar_strength : float
        Strength of the MAR dependence (log-odds per SD of the previous score).
    encounter_logs : bool
        Generate engagement encounter logs, phases, components, agreements and ratings
        (False: engagements only, for fast simulation-based power).
    responses : {"items", "scores"}
        Store item responses (scored by the measure definition) or only the respondents'
        item-mean scores (same measurement model, far fewer rows).
    outcomes : tuple of OutcomeSpec
        The outcome measures to generate.
    features : FeatureSpec
        Within-arm variation of engagement features (dose, relationship quality, diagnosis
        first, component order, agreements), recorded in the logs.

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
    assignment: Literal["provider", "organization", "stepped_wedge", "staggered"] = "provider"
    rollout_unit: Literal["provider", "organization"] = "organization"
    n_steps: int | None = Field(None, ge=1)
    selection: float = 1.0
    ta_months: int = Field(22, ge=1)
    attrition: float = Field(0.03, ge=0, lt=1)
    attrition_mechanism: Literal["mcar", "mar"] = "mcar"
    mar_strength: float = 1.0
    encounter_logs: bool = True
    responses: Literal["items", "scores"] = "items"

    outcomes: tuple[OutcomeSpec, ...] = (
        OutcomeSpec(),
        OutcomeSpec(measure_id="capacity", n_items=7, reliability=0.88, intercept=3.0,
                    slope=0.04, arm_slope=0.06, post_slope_change=-0.02),
    )

    features: FeatureSpec = FeatureSpec()

    @model_validator(mode="after")
    def _check_outcomes(self) -> SimulationSpec:
        seen: list[str] = []
        for o in self.outcomes:
            if o.measure_id in seen:
                raise ValueError(f"outcome {o.measure_id!r} is given twice")
            if o.mediator is not None and o.mediator not in seen:
                raise ValueError(f"outcome {o.measure_id!r}: mediator {o.mediator!r} must be "
                                 f"an earlier outcome (earlier ones: {seen})")
            if o.uses_features and not self.encounter_logs:
                raise ValueError(f"outcome {o.measure_id!r} has feature effects, which are "
                                 "recorded in the engagement logs: set encounter_logs=True")
            seen.append(o.measure_id)
        return self

    @model_validator(mode="after")
    def _check_steps(self) -> SimulationSpec:
        if self.assignment not in ("stepped_wedge", "staggered"):
            return self
        steps = self.n_steps or self.n_waves - 1
        if steps > self.n_waves - 1:
            raise ValueError(f"n_steps ({steps}) must be at most n_waves - 1 "
                             f"({self.n_waves - 1}): every step starts after a wave")
        units = (self.n_providers if self.rollout_unit == "provider"
                 else self.n_providers * self.orgs_per_provider)
        if units < steps:
            raise ValueError(f"{units} {self.rollout_unit} units cannot fill {steps} steps")
        return self


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
    # engagement features draw from their own stream, so the main stream (and every study
    # simulated from a spec without feature variation) is unchanged
    ss = rng.bit_generator.seed_seq
    frng = np.random.default_rng(np.random.SeedSequence(
        ss.entropy, spawn_key=(*tuple(getattr(ss, "spawn_key", ())), 0xFEA7)))
    waves = [_add_months(spec.start_date, spec.wave_months * w) for w in range(spec.n_waves)]
    end = _add_months(waves[-1], 1)
    parallel = spec.assignment in ("provider", "organization")
    if parallel:
        arms = [{"id": "push", "ta_model": "push", "label": "Push TA"},
                {"id": "co_creation", "ta_model": "co_creation", "label": "Co-creation TA"}]
        unit_of_design = spec.assignment
    else:
        arms = [{"id": "co_creation", "ta_model": "co_creation",
                 "label": "Co-creation TA (staggered start)"}]
        unit_of_design = spec.rollout_unit if spec.assignment == "stepped_wedge" else "none"
    design = {
        "id": spec.study_id, "title": spec.title,
        "randomisation_unit": unit_of_design,
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
    readiness = None
    if spec.assignment == "provider":
        prov_cc = rng.permutation(np.arange(n_prov) % 2)
        org_cc = prov_cc[org_prov]
        org_step = np.ones(n_org, dtype=int)
    elif spec.assignment == "organization":
        org_cc = rng.permutation(np.arange(n_org) % 2)
        org_step = np.ones(n_org, dtype=int)
    else:
        org_cc = np.ones(n_org, dtype=int)
        org_step, readiness = _rollout(rng, spec, org_prov, n_org)
    if readiness is None and any(o.readiness_effect != 0 for o in spec.outcomes):
        readiness = rng.normal(0, 1, n_org)
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
    eng_rows, enc_rows, comp_rows, agr_rows, rating_rows, phase_rows, adapt_rows = ([] for _ in range(7))
    feat = _draw_features(frng, spec.features, org_cc)
    feat_q = np.array([f["quality"] for f in feat])
    feat_d = np.array([float(f["diagnosis_first"]) for f in feat])
    hours = np.zeros((n_org, spec.n_waves))  # cumulative TA hours at each wave date
    end_pos = np.zeros(n_org)
    wave_ns = [pd.Timestamp(w).value for w in waves]
    t = np.arange(spec.n_waves, dtype=float)
    for j, oid in enumerate(org_ids):
        cc = bool(org_cc[j])
        eid = f"E{j + 1:04d}"
        # parallel designs: as v1 (TA starts 14 days after baseline); staggered starts come
        # 21 days after the wave, after every observation of that wave (0-20 days late)
        start = waves[org_step[j] - 1] + dt.timedelta(days=14 if parallel else 21)
        ta_end = _add_months(start, spec.ta_months)
        end_pos[j] = np.interp(pd.Timestamp(ta_end).value, wave_ns, t, right=np.inf)
        s = start + dt.timedelta(days=int(rng.integers(0, 10)))
        e = ta_end + dt.timedelta(days=int(rng.integers(-10, 10)))
        eng_rows.append({"id": eid, "org_id": oid, "provider_ids": prov_ids[org_prov[j]],
                         "ta_model": "co_creation" if cc else "push", "start_date": s, "end_date": e,
                         "joint_diagnosis": cc, "data_system_support": bool(rng.random() < (0.6 if cc else 0.3)),
                         "strategy": "co-design with local data review" if cc else "packaged programme"})
        if not spec.encounter_logs:
            continue
        n_enc = len(enc_rows)
        _logs(rng, eid, cc, s, e, prov_ids[org_prov[j]], waves, phase_rows, enc_rows, comp_rows,
              agr_rows, rating_rows, adapt_rows, feat=feat[j], frng=frng)
        if any(o.dose_effect for o in spec.outcomes):
            days = np.array([r["date"] for r in enc_rows[n_enc:]], dtype="datetime64[D]")
            mins = np.array([r["minutes"] for r in enc_rows[n_enc:]], dtype=float)
            wd = np.array(waves, dtype="datetime64[D]")
            hours[j] = (mins[None, :] * (days[None, :] <= wd[:, None])).sum(axis=1) / 60

    # outcomes: growth model -> true scores -> items
    if parallel:
        # as in v1: the TA end is the nominal end of every engagement
        ta_end0 = _add_months(spec.start_date + dt.timedelta(days=14), spec.ta_months)
        end_pos0 = np.interp(pd.Timestamp(ta_end0).value, wave_ns, t)
        post = np.clip(t - end_pos0, 0, None)
    else:
        start_pos = (org_step - 1)[resp_org].astype(float)
        exposure = np.clip(t[None, :] - start_pos[:, None], 0, None)
        started = (t[None, :] >= (start_pos + 1)[:, None]).astype(float)
        post_i = np.clip(t[None, :] - end_pos[resp_org][:, None], 0, None)
    if parallel:  # TA starts two weeks after the first wave
        started_i = np.broadcast_to((t >= 1).astype(float)[None, :], (n_resp, spec.n_waves))
    else:
        started_i = started
    true_scores: dict[str, np.ndarray] = {}
    dropout = (_dropout(rng, n_resp, spec.n_waves, spec.attrition)
               if spec.attrition_mechanism == "mcar" else None)
    resp_rows, score_rows = [], []
    measures = []
    resp_ids = respondents["id"].to_numpy()
    wave_days = np.array(waves, dtype="datetime64[D]")
    for o in spec.outcomes:
        if o.family == "gaussian":
            measures.append(_measure(o))
        u_k = rng.normal(0, o.sd_provider, n_prov)
        u0 = rng.normal(0, o.sd_org_intercept, n_org)
        u1 = rng.normal(0, o.sd_org_slope, n_org)
        r_i = rng.normal(0, o.sd_respondent, n_resp)
        cc_i = org_cc[resp_org].astype(float)
        if parallel:
            ta = (o.arm_effect * cc_i[:, None] + o.arm_slope * cc_i[:, None] * t[None, :]
                  + o.post_slope_change * cc_i[:, None] * post[None, :])
        else:
            ta = o.arm_effect * started + o.arm_slope * exposure + o.post_slope_change * post_i
        eta = (o.intercept + o.slope * t[None, :] + ta
               + u_k[org_prov[resp_org]][:, None] + u0[resp_org][:, None] + u1[resp_org][:, None] * t[None, :]
               + r_i[:, None] + rng.normal(0, o.sd_residual, (n_resp, spec.n_waves)))
        if o.sd_provider_slope > 0:
            v_k = rng.normal(0, o.sd_provider_slope, n_prov)
            eta = eta + v_k[org_prov[resp_org]][:, None] * t[None, :]
        if o.readiness_effect != 0 and readiness is not None:
            eta = eta + o.readiness_effect * readiness[resp_org][:, None]
        if o.dose_effect:
            eta = eta + o.dose_effect * hours[resp_org]
        if o.relationship_effect:
            eta = eta + o.relationship_effect * feat_q[resp_org][:, None] * started_i
        if o.diagnosis_first_effect:
            eta = eta + o.diagnosis_first_effect * feat_d[resp_org][:, None] * started_i
        if o.mediator is not None:
            eta = eta + o.mediator_effect * true_scores[o.mediator]
        true_scores[o.measure_id] = eta
        if o.family == "gaussian":
            err_sd = np.sqrt(o.n_items * o.error_variance())
            items = eta[:, :, None] + rng.normal(0, err_sd, (n_resp, spec.n_waves, o.n_items))
            if o.round_items:
                items = np.rint(items)
            items = np.clip(items, o.response_min, o.response_max)
        else:
            if o.family == "binomial":
                y = rng.binomial(1, 1 / (1 + np.exp(-eta))).astype(float)
            else:
                y = rng.poisson(np.exp(np.clip(eta, None, 20))).astype(float)
            items = y[:, :, None]
            measures.append(_measure(o, count_max=float(max(1.0, y.max()))))
        if dropout is None:  # MAR: hazard from the previous wave's observed score
            dropout = _dropout_mar(rng, items.mean(axis=2), spec.attrition, spec.mar_strength)
        observed = ~dropout
        # item non-response: 1% of items skipped at random
        skipped = rng.random(items.shape) < 0.01
        day_offset = rng.integers(0, 21, size=(n_resp, spec.n_waves))
        if spec.responses == "scores":
            vals3 = np.where(skipped, np.nan, items)
            answered = np.sum(~skipped, axis=2)
            score = np.where(answered >= np.ceil(0.8 * items.shape[2]), _nanmean(vals3), np.nan)
            ii, ww = np.nonzero(observed)
            score_rows.append(pd.DataFrame({
                "unit_level": "respondent", "unit_id": resp_ids[ii], "measure_id": o.measure_id,
                "wave": ww + 1, "value": score[ii, ww],
                "date": (pd.to_datetime(wave_days[ww])
                         + pd.to_timedelta(day_offset[ii, ww], unit="D")),
            }))
            continue
        ii, ww, qq = np.nonzero(observed[:, :, None] & np.ones_like(items, dtype=bool))
        vals = np.where(skipped[ii, ww, qq], np.nan, items[ii, ww, qq])
        dates = (pd.to_datetime(wave_days[ww])
                 + pd.to_timedelta(day_offset[ii, ww], unit="D"))
        resp_rows.append(pd.DataFrame({
            "respondent_id": resp_ids[ii], "measure_id": o.measure_id, "wave": ww + 1,
            "item": np.array(measures[-1].items)[qq], "value": vals, "date": dates,
        }))
    truth = {o.measure_id: o.model_dump() for o in spec.outcomes}
    if spec.features != FeatureSpec():
        truth["features"] = spec.features.model_dump()
    design["description"] += " truth: " + json.dumps(truth)
    responses = pd.concat(resp_rows, ignore_index=True) if resp_rows else None
    scores = pd.concat(score_rows, ignore_index=True) if score_rows else None
    return Study.from_frames(
        design, measures=measures, providers=providers, organizations=organizations,
        respondents=respondents, engagements=pd.DataFrame(eng_rows),
        engagement_phases=_frame(phase_rows), encounters=_frame(enc_rows),
        components=_frame(comp_rows), adaptations=_frame(adapt_rows),
        agreements=_frame(agr_rows), relationship_ratings=_frame(rating_rows),
        responses=responses, scores=scores,
    )


def _measure(o: OutcomeSpec, count_max: float = 1.0) -> MeasureDefinition:
    """The measure definition of a simulated outcome (one item for binomial / poisson)."""
    mid = o.measure_id
    construct = ("research_use" if "use" in mid else
                 "implementation_outcome" if "practice" in mid else "capacity")
    common = {"id": mid, "construct": construct, "level": "person",
              "citation": "Synthetic measure generated by coevidence.simulate_study."}
    if o.family == "gaussian":
        return MeasureDefinition(
            name=f"Simulated {mid.replace('_', ' ')} scale",
            response_min=o.response_min, response_max=o.response_max,
            items=tuple(f"{mid[:2]}{q + 1}" for q in range(o.n_items)),
            missing={"min_fraction": 0.8}, **common)
    kind = "indicator (0/1)" if o.family == "binomial" else "count"
    return MeasureDefinition(
        name=f"Simulated {mid.replace('_', ' ')} {kind}", response_min=0.0,
        response_max=1.0 if o.family == "binomial" else count_max, discrete=True,
        items=(f"{mid[:2]}1",), scoring="sum", missing={"min_answered": 1}, **common)


def _draw_features(frng: np.random.Generator, f: FeatureSpec, org_cc: np.ndarray) -> list[dict]:
    """Per-organisation engagement features (from the feature stream only)."""
    n = len(org_cc)
    sd = f.dose_sd
    intensity = np.exp(frng.normal(-sd * sd / 2, sd, n)) if sd > 0 else np.ones(n)
    quality = frng.normal(0, f.relationship_sd, n) if f.relationship_sd > 0 else np.zeros(n)
    cc = org_cc.astype(bool)
    if f.p_diagnosis_first is None:
        diag = cc.copy()
    else:
        diag = cc & (frng.random(n) < f.p_diagnosis_first)
    out = []
    for j in range(n):
        rest = ["co_designed_solution", "data_review_cycle"]
        if f.random_sequence and cc[j]:
            rest = list(frng.permutation(rest))
        if not cc[j] or diag[j]:
            order = ["joint_diagnosis", *rest]
        else:  # diagnosis second or third
            pos = int(frng.integers(1, 3))
            order = rest[:pos] + ["joint_diagnosis"] + rest[pos:]
        agreements = {}
        for kind in ("publication", "data_sharing"):
            if f.p_agreement is None:
                agreements[kind] = 0
            elif frng.random() < f.p_agreement:
                agreements[kind] = int(frng.integers(0, f.agreement_window_days + 1))
        out.append({"intensity": float(intensity[j]), "quality": float(quality[j]),
                    "diagnosis_first": bool(diag[j]), "order": order,
                    "agreements": agreements})
    return out


def _frame(rows: list[dict]) -> pd.DataFrame | None:
    return pd.DataFrame(rows) if rows else None


def _nanmean(values: np.ndarray) -> np.ndarray:
    n = np.sum(~np.isnan(values), axis=2)
    total = np.nansum(values, axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def _rollout(rng: np.random.Generator, spec: SimulationSpec, org_prov: np.ndarray,
             n_org: int) -> tuple[np.ndarray, np.ndarray]:
    """Step of every organisation (1-based: TA starts after wave ``step``) and readiness."""
    n_steps = spec.n_steps or spec.n_waves - 1
    by_provider = spec.rollout_unit == "provider"
    n_units = spec.n_providers if by_provider else n_org
    if n_units < n_steps:
        raise OptionError(f"{n_units} {spec.rollout_unit} units cannot fill {n_steps} steps")
    groups = np.concatenate([np.full(len(c), g + 1) for g, c in
                             enumerate(np.array_split(np.arange(n_units), n_steps))])
    z = rng.normal(0, 1, n_org)  # organisation readiness
    if spec.assignment == "stepped_wedge":
        order = rng.permutation(n_units)
    else:
        unit_z = (pd.Series(z).groupby(org_prov).mean().to_numpy() if by_provider else z)
        order = np.argsort(-(spec.selection * unit_z + rng.normal(0, 1, n_units)), kind="stable")
    step_of_unit = np.empty(n_units, dtype=int)
    step_of_unit[order] = groups
    return (step_of_unit[org_prov] if by_provider else step_of_unit), z


def _logs(rng, eid, cc, s, e, provider, waves, phase_rows, enc_rows, comp_rows, agr_rows,
          rating_rows, adapt_rows, *, feat=None, frng=None) -> None:
    feat = feat or {"intensity": 1.0, "quality": 0.0, "diagnosis_first": cc,
                    "order": ["joint_diagnosis", "co_designed_solution", "data_review_cycle"],
                    "agreements": {"publication": 0, "data_sharing": 0}}
    phase_rows += [
        {"engagement_id": eid, "phase": "pre_implementation", "start_date": s,
         "end_date": s + dt.timedelta(days=60)},
        {"engagement_id": eid, "phase": "implementation", "start_date": s + dt.timedelta(days=61),
         "end_date": e},
    ]
    comps = (list(feat["order"]) if cc
             else ["packaged_training", "implementation_toolkit"])
    introduced = {cid: s + dt.timedelta(days=45 * k) for k, cid in enumerate(comps)}
    # co-creation: the diagnosis encounter is the first one on or after joint diagnosis starts
    diag_day = introduced.get("joint_diagnosis", s) if cc else None
    diag_done = False
    gap = 14 if cc else 30
    intensity = feat["intensity"]
    day = s
    while day <= e:
        if cc and not diag_done and day >= diag_day:
            activity = "diagnosis"
            diag_done = True
        else:
            activity = (rng.choice(["co_design", "data_review", "consultation", "coordination"])
                        if cc else
                        rng.choice(["training", "resource_delivery", "monitoring", "coordination"]))
        minutes = rng.normal(75 if cc else 50, 20)
        if intensity != 1.0:
            minutes = minutes * intensity
        enc_rows.append({"engagement_id": eid, "date": day,
                         "minutes": float(max(10, round(minutes))),
                         "mode": rng.choice(["in_person", "video", "phone", "email"], p=[0.3, 0.4, 0.2, 0.1]),
                         "activity": activity, "delivery": rng.choice(["group", "individual"]),
                         "provider_id": provider, "proactive": bool(rng.random() < 0.6)})
        day = day + dt.timedelta(days=int(rng.integers(gap - 5, gap + 6)))
    for order, cid in enumerate(comps, start=1):
        comp_rows.append({"engagement_id": eid, "id": cid, "order": order,
                          "introduced_on": introduced[cid]})
    terms = {"publication": "joint authorship; agency review",
             "data_sharing": "de-identified extracts"}
    for kind, offset in feat["agreements"].items():
        agr_rows.append({"engagement_id": eid, "kind": kind, "terms": terms[kind],
                         "agreed_on": min(s + dt.timedelta(days=int(offset)), e)})
    quality = feat["quality"]
    for w in waves[1:]:
        if s <= w <= e:
            rating_rows.append({"engagement_id": eid, "date": w, "rater": "organization",
                                "dimension": "overall",
                                "value": float(np.clip(round(rng.normal((4.1 if cc else 3.6) + quality, 0.5), 1), 1, 5))})
    if cc and rng.random() < 0.4:
        adapt_rows.append({"engagement_id": eid, "date": s + dt.timedelta(days=120),
                           "target": "practice", "phase": "implementation", "planned": bool(rng.random() < 0.5),
                           "decided_by": "joint team", "what_modified": "content",
                           "level": "organization", "modification_type": "tailoring",
                           "fidelity_consistent": True, "goal": "fit local data systems",
                           "reason": "workforce capacity"})


def true_effects(spec: SimulationSpec) -> dict[str, dict[str, object]]:
    """True co-creation minus push differences implied by a parallel-arm spec, per outcome.

    Returns, for each outcome, ``difference_by_wave`` (the true mean difference at each wave
    position, an array) and ``slope_difference`` (the least-squares slope of that difference
    over the wave positions: what a linear growth model estimates; equals ``arm_slope`` when
    ``post_slope_change`` does not act within the observed waves). Differences are on the
    link scale of the outcome's ``family`` (``link``: identity, logit or log; conditional on
    the random effects, as a GLMM estimates them). ``features`` gives the feature effects; a
    diagnosis-first effect adds ``diagnosis_first_effect * p_diagnosis_first`` to the arm
    difference after TA starts, a dose effect adds the arms' difference in realised hours
    (not included; see ``note``). An outcome with a ``mediator`` also has ``mediation``:
    ``a_by_wave`` (the mediator's arm difference), ``b`` (= ``b_within`` = ``b_between``:
    the outcome depends on each respondent's own true mediator score, so there is no
    contextual effect), ``direct_by_wave`` (c'), ``indirect_by_wave`` (a * b),
    ``total_by_wave`` and their slopes over waves.

    Examples
    --------
    >>> spec = SimulationSpec(n_waves=4, outcomes=(OutcomeSpec(arm_slope=0.1,
    ...                       post_slope_change=0.0),))
    >>> round(true_effects(spec)["research_use"]["slope_difference"], 6)
    0.1
    """
    if spec.assignment not in ("provider", "organization"):
        raise OptionError("true_effects covers parallel-arm designs (provider or organization "
                         f"assignment); got assignment={spec.assignment!r}")
    waves = [_add_months(spec.start_date, spec.wave_months * w) for w in range(spec.n_waves)]
    t = np.arange(spec.n_waves, dtype=float)
    ta_end = _add_months(spec.start_date + dt.timedelta(days=14), spec.ta_months)
    end_pos = np.interp(pd.Timestamp(ta_end).value, [pd.Timestamp(w).value for w in waves], t)
    post = np.clip(t - end_pos, 0, None)
    out: dict[str, dict[str, object]] = {}
    started = (t >= 1).astype(float)
    p_diag = 1.0 if spec.features.p_diagnosis_first is None else spec.features.p_diagnosis_first
    total: dict[str, np.ndarray] = {}
    for o in spec.outcomes:
        direct = o.arm_effect + o.arm_slope * t + o.post_slope_change * post
        # diagnosis-first organisations are all in co-creation: their mean shift is part of
        # the arm difference; relationship quality is centred within arm (adds nothing)
        direct = direct + o.diagnosis_first_effect * p_diag * started
        diff = direct.copy()
        entry: dict[str, object] = {"family": o.family, "link": _LINKS[o.family]}
        if o.mediator is not None:
            a = total[o.mediator]
            indirect = o.mediator_effect * a
            diff = direct + indirect
            entry["mediation"] = {
                "mediator": o.mediator, "a_by_wave": a, "b": o.mediator_effect,
                "direct_by_wave": direct, "indirect_by_wave": indirect,
                "total_by_wave": diff, "b_within": o.mediator_effect,
                "b_between": o.mediator_effect, "contextual": 0.0,
                "a_slope": float(np.polyfit(t, a, 1)[0]),
                "direct_slope": float(np.polyfit(t, direct, 1)[0]),
                "indirect_slope": float(np.polyfit(t, indirect, 1)[0]),
            }
        total[o.measure_id] = diff
        slope = float(np.polyfit(t, diff, 1)[0])
        entry["features"] = {"dose_effect_per_hour": o.dose_effect,
                             "relationship_effect_per_point": o.relationship_effect,
                             "diagnosis_first_effect": o.diagnosis_first_effect,
                             "p_diagnosis_first": p_diag}
        if o.dose_effect:
            entry["note"] = ("difference_by_wave leaves out the dose effect: dose_effect times "
                             "the arms' difference in realised cumulative hours")
        out[o.measure_id] = {"difference_by_wave": diff, "slope_difference": slope, **entry}
    return out


_LINKS = {"gaussian": "identity", "binomial": "logit", "poisson": "log"}


def _dropout(rng: np.random.Generator, n: int, n_waves: int, hazard: float) -> np.ndarray:
    """Monotone MCAR dropout after the first wave: True where the observation is missing."""
    drop = rng.random((n, n_waves)) < hazard
    drop[:, 0] = False
    return np.cumsum(drop, axis=1) > 0


def _dropout_mar(rng: np.random.Generator, score: np.ndarray, hazard: float,
                 strength: float) -> np.ndarray:
    """Monotone MAR dropout: the hazard at wave w depends on the observed score at wave w - 1."""
    n, n_waves = score.shape
    z = (score - score.mean()) / (score.std() or 1.0)
    base = np.log(hazard / (1 - hazard)) if hazard > 0 else -np.inf
    drop = np.zeros((n, n_waves), dtype=bool)
    u = rng.random((n, n_waves))
    for w in range(1, n_waves):
        h = 1 / (1 + np.exp(-(base - strength * z[:, w - 1])))
        drop[:, w] = drop[:, w - 1] | (u[:, w] < h)
    return drop
