"""A TA engagement: who gave TA to which organisation, under which model, when, how much.

Grounded in Proctor, Powell & McMillen (2013) for specifying implementation strategies
(actor, action, target, temporality, dose), TIDieR (Hoffmann et al. 2014: how, where, when and
how much, tailoring, modifications) and FRAME / FRAME-IS (Wiltsey Stirman et al. 2019; Miller et
al. 2021) for adaptations.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field, model_validator

from coevidence.schemas._base import Record
from coevidence.schemas.actors import Identifier
from coevidence.schemas.enums import (
    ActivityType,
    AgreementKind,
    Delivery,
    EncounterMode,
    ImplementationPhase,
    RelationshipConstruct,
    TAModel,
)

__all__ = [
    "Adaptation",
    "EngagementHeader",
    "Agreement",
    "Component",
    "Encounter",
    "Engagement",
    "EngagementPhase",
    "RelationshipRating",
]


class Encounter(Record):
    """One logged TA contact (dose: Proctor "dose"; TIDieR "how" and "how much").

    Parameters
    ----------
    date : datetime.date
        Day of the contact.
    minutes : float
        Duration in minutes (>= 0).
    mode : EncounterMode
        in_person, site_visit, video, phone, email, other.
    activity : ActivityType
        consultation, coordination, monitoring, resource_delivery, training, diagnosis,
        co_design, data_review, other.
    delivery : Delivery
        group or individual.
    provider_id : str, optional
        Which provider delivered it, when the engagement has several.
    proactive : bool, optional
        Initiated by the provider (True) or requested by the organisation (False).

    Examples
    --------
    >>> Encounter(date="2024-02-01", minutes=60, mode="video", activity="diagnosis",
    ...           delivery="group").minutes
    60.0
    """

    date: dt.date
    minutes: float = Field(ge=0)
    mode: EncounterMode = EncounterMode.other
    activity: ActivityType = ActivityType.other
    delivery: Delivery = Delivery.group
    provider_id: str | None = None
    proactive: bool | None = None


class EngagementPhase(Record):
    """A dated phase of an engagement (FRAME phases).

    Parameters
    ----------
    phase : ImplementationPhase
        pre_implementation, implementation, scale_up or sustainment.
    start_date : datetime.date
        First day of the phase.
    end_date : datetime.date, optional
        Last day of the phase; ``None`` while it continues.

    Examples
    --------
    >>> EngagementPhase(phase="implementation", start_date="2024-01-01", end_date="2024-06-30").phase
    <ImplementationPhase.implementation: 'implementation'>
    """

    phase: ImplementationPhase
    start_date: dt.date
    end_date: dt.date | None = None

    @model_validator(mode="after")
    def _order(self) -> EngagementPhase:
        if self.end_date is not None and self.end_date < self.start_date:
            raise ValueError(
                f"end_date {self.end_date} is before start_date {self.start_date}"
            )
        return self


class Component(Record):
    """An intervention component and when (and in which order) it was introduced.

    Parameters
    ----------
    id : str
        Component identifier (e.g. ``"audit_feedback"``).
    order : int
        Position in the sequence of components (1 = first).
    introduced_on : datetime.date
        Date the component was introduced.
    name : str
        Display name.

    Examples
    --------
    >>> Component(id="diagnosis", order=1, introduced_on="2024-01-15").order
    1
    """

    id: str = Identifier
    order: int = Field(ge=1)
    introduced_on: dt.date
    name: str = ""


class Adaptation(Record):
    """A modification recorded with the FRAME fields (FRAME-IS when ``target="ta_strategy"``).

    Parameters
    ----------
    date : datetime.date
        When it was made.
    target : {"practice", "ta_strategy"}
        What was adapted: the evidence-based practice (FRAME) or the TA itself (FRAME-IS).
    phase : ImplementationPhase
        FRAME (1) when in the process.
    planned : bool
        FRAME (2) planned/proactive (True) or unplanned/reactive (False).
    decided_by : str
        FRAME (3) who participated in the decision (free text or a role).
    what_modified : {"content", "context", "training_evaluation", "implementation"}
        FRAME (4) what was modified.
    level : str
        FRAME (5) level of delivery (individual, group, organisation, ...).
    modification_type : str
        FRAME (6) type of content or context modification (tailoring, adding, removing, ...).
    fidelity_consistent : bool, optional
        FRAME (7) whether core elements were preserved.
    goal, reason : str
        FRAME (8) goal and contextual reason.

    Examples
    --------
    >>> Adaptation(date="2024-03-01", phase="implementation", planned=False,
    ...            what_modified="content", fidelity_consistent=True).planned
    False
    """

    date: dt.date
    target: Literal["practice", "ta_strategy"] = "practice"
    phase: ImplementationPhase = ImplementationPhase.implementation
    planned: bool
    decided_by: str = ""
    what_modified: Literal["content", "context", "training_evaluation", "implementation"]
    level: str = ""
    modification_type: str = ""
    fidelity_consistent: bool | None = None
    goal: str = ""
    reason: str = ""


class Agreement(Record):
    """Terms set at the outset of an engagement (publication, data sharing).

    Parameters
    ----------
    kind : AgreementKind
        publication, data_sharing or other.
    terms : str
        The terms, in words (e.g. who may publish what, what data are shared and how).
    agreed_on : datetime.date, optional
        When they were agreed.

    Examples
    --------
    >>> Agreement(kind="data_sharing", terms="de-identified extracts quarterly",
    ...           agreed_on="2024-01-05").kind
    <AgreementKind.data_sharing: 'data_sharing'>
    """

    kind: AgreementKind
    terms: str = ""
    agreed_on: dt.date | None = None


class RelationshipRating(Record):
    """A rating of the TA relationship at one time (Chilenski et al. constructs).

    Parameters
    ----------
    date : datetime.date
        When it was rated.
    rater : {"provider", "organization"}
        Who rated the relationship.
    dimension : RelationshipConstruct
        Which dimension; ``overall`` for a single global rating.
    value : float
        The rating, within ``[scale_min, scale_max]``.
    scale_min, scale_max : float
        The rating scale (default 1-5).

    Examples
    --------
    >>> RelationshipRating(date="2024-06-01", rater="organization", dimension="trust_rapport",
    ...                    value=4).value
    4.0
    """

    date: dt.date
    rater: Literal["provider", "organization"]
    dimension: RelationshipConstruct = RelationshipConstruct.overall
    value: float
    scale_min: float = 1.0
    scale_max: float = 5.0

    @model_validator(mode="after")
    def _range(self) -> RelationshipRating:
        if self.scale_max <= self.scale_min:
            raise ValueError("scale_max must exceed scale_min")
        if not self.scale_min <= self.value <= self.scale_max:
            raise ValueError(
                f"value {self.value} is outside the rating scale [{self.scale_min}, {self.scale_max}]"
            )
        return self


class EngagementHeader(Record):
    """An engagement's own fields, without its nested logs (one row of the ``engagements`` table).

    ``provider_ids`` is written as ``;``-separated ids in CSV files.

    Parameters
    ----------
    id : str
        Unique engagement identifier.
    org_id : str
        The organisation receiving TA.
    provider_ids : tuple of str
        The provider(s) giving TA (at least one; the first is the lead).
    ta_model : TAModel
        push, co_creation, hybrid (``none`` is not allowed for an engagement).
    start_date : datetime.date
        First day of TA.
    end_date : datetime.date, optional
        Last day of TA; drives sustainment analyses (``years_since_end`` in the panel).
        ``None`` for open-ended engagements.
    joint_diagnosis : bool
        Whether researchers and practitioners diagnosed the problem together first.
    data_system_support : bool
        Whether support for data systems was given.
    strategy : str
        Named strategy and ERIC code(s), free text.

    Examples
    --------
    >>> EngagementHeader(id="E1", org_id="O1", provider_ids=("P1",), ta_model="push",
    ...                  start_date="2024-01-01").end_date is None
    True
    """

    id: str = Identifier
    org_id: str = Identifier
    provider_ids: tuple[str, ...] = Field(min_length=1)
    ta_model: TAModel
    start_date: dt.date
    end_date: dt.date | None = None
    joint_diagnosis: bool = False
    data_system_support: bool = False
    strategy: str = ""


class Engagement(EngagementHeader):
    """A TA engagement between provider(s) and one organisation, with its logs.

    Has every field of :class:`EngagementHeader` (id, org_id, provider_ids, ta_model,
    start_date, end_date, joint_diagnosis, data_system_support, strategy) plus the logs below.

    Parameters
    ----------
    phases, encounters, components, adaptations, agreements, relationship_ratings
        The engagement's dated phases, encounter log, components (with order and date
        introduced), FRAME adaptations, agreements set at the outset and relationship ratings.

    Examples
    --------
    >>> e = Engagement(id="E001", org_id="O001", provider_ids=("P01",), ta_model="co_creation",
    ...                start_date="2024-01-01", end_date="2025-06-30", joint_diagnosis=True)
    >>> e.duration_years
    1.4948665297741273
    """

    phases: tuple[EngagementPhase, ...] = ()
    encounters: tuple[Encounter, ...] = ()
    components: tuple[Component, ...] = ()
    adaptations: tuple[Adaptation, ...] = ()
    agreements: tuple[Agreement, ...] = ()
    relationship_ratings: tuple[RelationshipRating, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> Engagement:
        if self.ta_model is TAModel.none:
            raise ValueError("an engagement's ta_model cannot be 'none' (no TA means no engagement)")
        if self.end_date is not None and self.end_date < self.start_date:
            raise ValueError(f"end_date {self.end_date} is before start_date {self.start_date}")
        if len(set(self.provider_ids)) != len(self.provider_ids):
            raise ValueError("provider_ids must not repeat")
        orders = [c.order for c in self.components]
        if len(set(orders)) != len(orders):
            raise ValueError("component orders must be unique within an engagement")
        ids = [c.id for c in self.components]
        if len(set(ids)) != len(ids):
            raise ValueError("component ids must be unique within an engagement")
        return self

    @property
    def duration_years(self) -> float | None:
        """Length of the engagement in years (365.25 days), ``None`` if open-ended."""
        if self.end_date is None:
            return None
        return (self.end_date - self.start_date).days / 365.25

    @property
    def total_minutes(self) -> float:
        """Total logged TA minutes."""
        return float(sum(e.minutes for e in self.encounters))
