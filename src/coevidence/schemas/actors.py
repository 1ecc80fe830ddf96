"""Who takes part: TA providers, practitioner organisations and their respondents."""

from __future__ import annotations

from pydantic import Field

from coevidence.schemas._base import Record
from coevidence.schemas.enums import OrgLevel, ProviderKind, RespondentRole, Sector

__all__ = ["Identifier", "Organization", "Provider", "Respondent"]

#: Identifiers: letters, digits, ``_ . -``; must start with a letter or digit.
Identifier = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", min_length=1, max_length=64)


class Provider(Record):
    """A TA provider (Proctor et al. 2013 "actor"; TIDieR "who provided").

    Parameters
    ----------
    id : str
        Unique provider identifier.
    kind : ProviderKind
        researcher, intermediary or practitioner_turned_ta.
    name : str
        Display name (optional; never needed for analysis).

    Examples
    --------
    >>> Provider(id="P01", kind="researcher").kind
    <ProviderKind.researcher: 'researcher'>
    """

    id: str = Identifier
    kind: ProviderKind
    name: str = ""


class Organization(Record):
    """A practitioner organisation receiving (or not receiving) TA.

    Parameters
    ----------
    id : str
        Unique organisation identifier.
    sector : Sector
        Policy or practice sector.
    level : OrgLevel
        agency, district, school, ...
    parent_id : str, optional
        Identifier of the containing organisation (a school's district), if any.
    provider_id : str, optional
        The TA provider the organisation is assigned to (the level-3 unit in a 3-level design).
    arm : str, optional
        Identifier of the design arm the organisation was assigned to.
    name : str
        Display name.

    Examples
    --------
    >>> Organization(id="O001", sector="education", level="district", arm="push").arm
    'push'
    """

    id: str = Identifier
    sector: Sector = Sector.other
    level: OrgLevel = OrgLevel.other
    parent_id: str | None = None
    provider_id: str | None = None
    arm: str | None = None
    name: str = ""


class Respondent(Record):
    """A person in an organisation who answers surveys.

    Parameters
    ----------
    id : str
        Unique respondent identifier.
    org_id : str
        Organisation the respondent belongs to.
    role : RespondentRole
        leader, manager, analyst, practitioner, staff, other.

    Examples
    --------
    >>> Respondent(id="R0001", org_id="O001", role="analyst").org_id
    'O001'
    """

    id: str = Identifier
    org_id: str = Identifier
    role: RespondentRole = RespondentRole.other
