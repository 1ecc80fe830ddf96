"""Controlled vocabularies used across the schemas (string enums, JSON-friendly)."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ActivityType",
    "AgreementKind",
    "Delivery",
    "EncounterMode",
    "ImplementationPhase",
    "OrgLevel",
    "ProviderKind",
    "RandomisationUnit",
    "RelationshipConstruct",
    "RespondentRole",
    "Sector",
    "TAModel",
]


class TAModel(StrEnum):
    """How technical assistance is given (W.T. Grant Foundation definitions).

    ``push``: a packaged, tested solution developed elsewhere is handed over.
    ``co_creation``: researchers and practitioners diagnose the problem together and tailor the
    solution. ``hybrid``: elements of both. ``none``: comparison / business as usual.
    """

    push = "push"
    co_creation = "co_creation"
    hybrid = "hybrid"
    none = "none"


class ProviderKind(StrEnum):
    """Who gives the TA (Proctor et al. 2013 "actor")."""

    researcher = "researcher"
    intermediary = "intermediary"
    practitioner_turned_ta = "practitioner_turned_ta"


class Sector(StrEnum):
    """Policy or practice sector of an organisation."""

    child_welfare = "child_welfare"
    education = "education"
    public_health = "public_health"
    mental_health = "mental_health"
    juvenile_justice = "juvenile_justice"
    health_policy = "health_policy"
    social_services = "social_services"
    other = "other"


class OrgLevel(StrEnum):
    """Organisational level (an agency contains departments; a district contains schools)."""

    state_agency = "state_agency"
    agency = "agency"
    department = "department"
    district = "district"
    school = "school"
    health_department = "health_department"
    program = "program"
    coalition = "coalition"
    other = "other"


class RespondentRole(StrEnum):
    """Role of a respondent in their organisation."""

    leader = "leader"
    manager = "manager"
    analyst = "analyst"
    practitioner = "practitioner"
    staff = "staff"
    other = "other"


class EncounterMode(StrEnum):
    """How a TA encounter was delivered (Scott et al. 2022 delivery dimensions)."""

    in_person = "in_person"
    site_visit = "site_visit"
    video = "video"
    phone = "phone"
    email = "email"
    other = "other"


class ActivityType(StrEnum):
    """What a TA encounter did (encounter coding typology, Eval Health Prof 2024; co-creation)."""

    consultation = "consultation"
    coordination = "coordination"
    monitoring = "monitoring"
    resource_delivery = "resource_delivery"
    training = "training"
    diagnosis = "diagnosis"
    co_design = "co_design"
    data_review = "data_review"
    other = "other"


class Delivery(StrEnum):
    """Whether an encounter served a group or one person."""

    group = "group"
    individual = "individual"


class ImplementationPhase(StrEnum):
    """Phase of an engagement (FRAME / Proctor temporality)."""

    pre_implementation = "pre_implementation"
    implementation = "implementation"
    scale_up = "scale_up"
    sustainment = "sustainment"


class AgreementKind(StrEnum):
    """Terms agreed at the outset of an engagement."""

    publication = "publication"
    data_sharing = "data_sharing"
    other = "other"


class RelationshipConstruct(StrEnum):
    """Dimensions of the TA relationship (Chilenski et al. 2025), plus ``overall``.

    ``compliance`` and ``negative_interactions`` run in the adverse direction.
    """

    competence_autonomy_support = "competence_autonomy_support"
    responsiveness = "responsiveness"
    participation = "participation"
    co_creation = "co_creation"
    trust_rapport = "trust_rapport"
    compliance = "compliance"
    negative_interactions = "negative_interactions"
    overall = "overall"


class RandomisationUnit(StrEnum):
    """The unit assigned to arms; ``none`` for non-randomised (e.g. staggered) studies."""

    provider = "provider"
    organization = "organization"
    respondent = "respondent"
    none = "none"
