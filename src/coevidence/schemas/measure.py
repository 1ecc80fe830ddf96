"""Measure definitions: the structure of an instrument (never its item wording).

Minimal version from the foundation; the measures layer extends it (scoring rules, reverse keys,
missing-item rules, aggregation, citation).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, model_validator

from coevidence.schemas._base import Record

__all__ = ["Construct", "MeasureDefinition", "MeasureLevel", "Subscale"]

Identifier = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.\-]*$", min_length=1, max_length=64)


class Construct(StrEnum):
    """What a measure is about."""

    research_use = "research_use"
    capacity = "capacity"
    readiness = "readiness"
    attitude = "attitude"
    implementation_outcome = "implementation_outcome"
    relationship = "relationship"
    other = "other"


class MeasureLevel(StrEnum):
    """The unit a response describes."""

    person = "person"
    organization = "organization"
    document = "document"


class Subscale(Record):
    """A named set of items scored together."""

    id: str = Identifier
    items: tuple[str, ...] = Field(min_length=1, description="Stable item codes in this subscale.")


class MeasureDefinition(Record):
    """The structure of one instrument.

    Parameters
    ----------
    id : str
        Stable identifier used in observation tables (``measure_id``) and panel columns.
    construct : Construct
        What the measure is about.
    level : MeasureLevel
        The unit a response describes.
    response_min, response_max : float
        The response range of every item.
    items : tuple of str
        Every item code.
    subscales : tuple of Subscale
        Subscales; their items must be among ``items``.

    Examples
    --------
    >>> m = MeasureDefinition(id="aim", construct="implementation_outcome", level="person",
    ...     response_min=1, response_max=5, items=("a1", "a2", "a3", "a4"))
    >>> m.items
    ('a1', 'a2', 'a3', 'a4')
    """

    id: str = Identifier
    name: str = ""
    construct: Construct = Construct.other
    level: MeasureLevel = MeasureLevel.person
    response_min: float
    response_max: float
    items: tuple[str, ...] = Field(min_length=1)
    subscales: tuple[Subscale, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> MeasureDefinition:
        if self.response_max <= self.response_min:
            raise ValueError(
                f"response_max ({self.response_max}) must exceed response_min ({self.response_min})"
            )
        if len(set(self.items)) != len(self.items):
            raise ValueError("item codes must be unique")
        known = set(self.items)
        for s in self.subscales:
            unknown = [i for i in s.items if i not in known]
            if unknown:
                raise ValueError(f"subscale {s.id!r} lists unknown items {unknown}")
        return self
