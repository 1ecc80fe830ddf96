"""Pydantic records describing a TA study (metadata; observation tables are DataFrames)."""

from coevidence.schemas.actors import Organization, Provider, Respondent
from coevidence.schemas.design import Arm, StudyDesign, Wave
from coevidence.schemas.engagement import (
    Adaptation,
    Agreement,
    Component,
    Encounter,
    Engagement,
    EngagementPhase,
    RelationshipRating,
)
from coevidence.schemas.enums import TAModel
from coevidence.schemas.measure import MeasureDefinition

__all__ = [
    "Adaptation",
    "Agreement",
    "Arm",
    "Component",
    "Encounter",
    "Engagement",
    "EngagementPhase",
    "MeasureDefinition",
    "Organization",
    "Provider",
    "RelationshipRating",
    "Respondent",
    "StudyDesign",
    "TAModel",
    "Wave",
]
