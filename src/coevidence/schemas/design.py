"""The design of a TA study: arms, waves and the randomisation unit."""

from __future__ import annotations

import datetime as dt

from pydantic import Field, model_validator

from coevidence.schemas._base import Record
from coevidence.schemas.actors import Identifier
from coevidence.schemas.enums import RandomisationUnit, TAModel

__all__ = ["Arm", "StudyDesign", "Wave"]


class Arm(Record):
    """A study arm and the TA model it stands for.

    Parameters
    ----------
    id : str
        Arm identifier, referred to by ``Organization.arm``.
    ta_model : TAModel
        The TA model the arm receives (``none`` for a comparison arm).
    label : str
        Display label.

    Examples
    --------
    >>> Arm(id="cocreate", ta_model="co_creation").ta_model
    <TAModel.co_creation: 'co_creation'>
    """

    id: str = Identifier
    ta_model: TAModel
    label: str = ""


class Wave(Record):
    """A measurement wave.

    Parameters
    ----------
    index : int
        Wave number as used in observation tables (``wave`` column).
    date : datetime.date
        Planned (nominal) date of the wave, used when an observation has no date of its own.
    label : str
        Display label (e.g. ``"baseline"``).

    Examples
    --------
    >>> Wave(index=1, date="2024-01-15", label="baseline").index
    1
    """

    index: int = Field(ge=0)
    date: dt.date
    label: str = ""


class StudyDesign(Record):
    """Design of a study: arms, waves, randomisation unit and study window.

    Parameters
    ----------
    id : str
        Study identifier (``study_id`` in the panel).
    title : str
        Human-readable title.
    randomisation_unit : RandomisationUnit
        provider, organization, respondent or none (non-randomised / staggered).
    arms : tuple of Arm
        The arms; organisations refer to them by ``Organization.arm``.
    waves : tuple of Wave
        Measurement waves, in order (indices and dates strictly increasing).
    start_date, end_date : datetime.date
        The study window; every observation must fall inside it.
    synthetic : bool
        True for simulated data (the bundled example study).
    description : str
        Free text (for synthetic studies: the generating parameters).

    Examples
    --------
    >>> d = StudyDesign(id="demo", randomisation_unit="provider",
    ...     arms=[{"id": "push", "ta_model": "push"}, {"id": "cocreate", "ta_model": "co_creation"}],
    ...     waves=[{"index": 1, "date": "2024-01-15"}, {"index": 2, "date": "2024-07-15"}],
    ...     start_date="2024-01-01", end_date="2024-12-31")
    >>> [w.index for w in d.waves]
    [1, 2]
    """

    id: str = Identifier
    title: str = ""
    randomisation_unit: RandomisationUnit = RandomisationUnit.organization
    arms: tuple[Arm, ...] = Field(min_length=1)
    waves: tuple[Wave, ...] = Field(min_length=1)
    start_date: dt.date
    end_date: dt.date
    synthetic: bool = False
    description: str = ""

    @model_validator(mode="after")
    def _check(self) -> StudyDesign:
        if self.end_date < self.start_date:
            raise ValueError(f"end_date {self.end_date} is before start_date {self.start_date}")
        arm_ids = [a.id for a in self.arms]
        dup = sorted({a for a in arm_ids if arm_ids.count(a) > 1})
        if dup:
            raise ValueError(f"duplicate arm ids: {dup}")
        for prev, nxt in zip(self.waves, self.waves[1:], strict=False):
            if nxt.index <= prev.index:
                raise ValueError(f"wave indices must increase: {prev.index} then {nxt.index}")
            if nxt.date <= prev.date:
                raise ValueError(
                    f"wave dates must increase: wave {prev.index} {prev.date}, "
                    f"wave {nxt.index} {nxt.date}"
                )
        outside = [w.index for w in self.waves if not self.start_date <= w.date <= self.end_date]
        if outside:
            raise ValueError(f"waves {outside} are dated outside the study window")
        return self

    def arm(self, arm_id: str) -> Arm:
        """The arm with this id (``KeyError`` if unknown)."""
        for a in self.arms:
            if a.id == arm_id:
                return a
        raise KeyError(arm_id)

    @property
    def wave_indices(self) -> tuple[int, ...]:
        """The wave indices, in order."""
        return tuple(w.index for w in self.waves)
