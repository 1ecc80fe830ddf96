"""The base class of every coevidence record: strict, immutable, JSON round-trippable."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Record"]


class Record(BaseModel):
    """A validated, immutable metadata record.

    Unknown fields are rejected (``extra="forbid"``) so a typo never silently drops a value;
    records are frozen so a validated study cannot drift; ``model_dump_json`` /
    ``model_validate_json`` round-trip exactly.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        str_strip_whitespace=True,
        validate_default=True,
        use_enum_values=False,
        ser_json_inf_nan="constants",
    )
