"""The tables a study is made of, as stored on disk and passed to :meth:`Study.from_frames`.

Metadata tables (one row per provider, organisation, respondent, engagement, encounter, ...) are
validated row by row with the pydantic records in :mod:`coevidence.schemas`; observation tables
(item responses and scores, up to millions of rows) with the vectorised :class:`FrameSpec`\\ s
below. Every table has a stable snake_case name and column set.
"""

from __future__ import annotations

from coevidence.data.frames import Column, FrameSpec
from coevidence.schemas._base import Record
from coevidence.schemas.actors import Identifier, Organization, Provider, Respondent
from coevidence.schemas.engagement import (
    Adaptation,
    Agreement,
    Component,
    Encounter,
    EngagementHeader,
    EngagementPhase,
    RelationshipRating,
)

__all__ = [
    "ENGAGEMENT_PARTS",
    "METADATA_TABLES",
    "OBSERVATION_TABLES",
    "RESPONSES",
    "SCORES",
    "EngagementRow",
]


#: One row of the ``engagements`` table: an engagement without its nested logs.
EngagementRow = EngagementHeader


def _with_engagement_id(model: type[Record]) -> type[Record]:
    """A row model: ``model``'s fields plus the ``engagement_id`` they belong to."""
    name = f"{model.__name__}Row"
    row = type(
        name,
        (model,),
        {
            "__annotations__": {"engagement_id": str},
            "engagement_id": Identifier,
            "__doc__": f"One row of a {model.__name__} log, with the engagement it belongs to.",
            "__module__": __name__,
        },
    )
    return row


#: table name -> (row model, engagement field it nests into)
ENGAGEMENT_PARTS: dict[str, tuple[type[Record], str]] = {
    "engagement_phases": (_with_engagement_id(EngagementPhase), "phases"),
    "encounters": (_with_engagement_id(Encounter), "encounters"),
    "components": (_with_engagement_id(Component), "components"),
    "adaptations": (_with_engagement_id(Adaptation), "adaptations"),
    "agreements": (_with_engagement_id(Agreement), "agreements"),
    "relationship_ratings": (_with_engagement_id(RelationshipRating), "relationship_ratings"),
}

#: metadata table name -> row model, in load order
METADATA_TABLES: dict[str, type[Record]] = {
    "providers": Provider,
    "organizations": Organization,
    "respondents": Respondent,
    "engagements": EngagementRow,
    **{name: model for name, (model, _) in ENGAGEMENT_PARTS.items()},
}

RESPONSES = FrameSpec(
    "responses",
    (
        Column("respondent_id", "string", description="Who answered (Respondent.id)."),
        Column("measure_id", "string", description="Which instrument (MeasureDefinition.id)."),
        Column("wave", "integer", minimum=0, description="Wave index (Wave.index)."),
        Column("item", "string", description="Item code within the measure."),
        Column("value", "number", nullable=True, description="The response; missing if skipped."),
        Column("date", "date", required=False, nullable=True,
               description="Date answered; the wave's date when absent."),
    ),
    key=("respondent_id", "measure_id", "wave", "item"),
)

SCORES = FrameSpec(
    "scores",
    (
        Column("unit_level", "string", choices=("respondent", "organization"),
               description="Level of the scored unit."),
        Column("unit_id", "string", description="Respondent.id or Organization.id."),
        Column("measure_id", "string", description="Which measure (or measure.subscale)."),
        Column("wave", "integer", minimum=0, description="Wave index (Wave.index)."),
        Column("value", "number", nullable=True, description="The score; missing if not obtained."),
        Column("date", "date", required=False, nullable=True,
               description="Date measured; the wave's date when absent."),
    ),
    key=("unit_level", "unit_id", "measure_id", "wave"),
)

#: observation table name -> its spec
OBSERVATION_TABLES: dict[str, FrameSpec] = {"responses": RESPONSES, "scores": SCORES}
