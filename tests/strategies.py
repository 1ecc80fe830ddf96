"""The suite's one module of hypothesis strategies.

Records of the foundation (providers ... engagements, designs: ``RECORD_STRATEGIES``), panels of
a time-varying predictor with nested units (``panels``), item matrices with a common factor
(``item_matrices``), design parameters (``iccs``, ``r2s``). Measure definitions and responses
come from the public :mod:`coevidence.testing.strategies` (re-exported here), so measure
authors and this suite draw from the same generators.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from hypothesis import strategies as st

from coevidence.schemas import enums
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

ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,12}", fullmatch=True)
text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=20).map(str.strip)
dates = st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2090, 12, 31))
finite = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)
maybe = st.none() | st.booleans()

providers = st.builds(Provider, id=ids, kind=st.sampled_from(enums.ProviderKind), name=text)
organizations = st.builds(
    Organization, id=ids, sector=st.sampled_from(enums.Sector), level=st.sampled_from(enums.OrgLevel),
    parent_id=st.none() | ids, provider_id=st.none() | ids, arm=st.none() | ids, name=text)
respondents = st.builds(Respondent, id=ids, org_id=ids, role=st.sampled_from(enums.RespondentRole))
encounters = st.builds(
    Encounter, date=dates, minutes=finite, mode=st.sampled_from(enums.EncounterMode),
    activity=st.sampled_from(enums.ActivityType), delivery=st.sampled_from(enums.Delivery),
    provider_id=st.none() | ids, proactive=maybe)


@st.composite
def phases(draw: st.DrawFn) -> EngagementPhase:
    start = draw(dates)
    end = draw(st.none() | st.dates(min_value=start, max_value=dt.date(2095, 1, 1)))
    return EngagementPhase(phase=draw(st.sampled_from(enums.ImplementationPhase)), start_date=start,
                           end_date=end)


adaptations = st.builds(
    Adaptation, date=dates, target=st.sampled_from(["practice", "ta_strategy"]),
    phase=st.sampled_from(enums.ImplementationPhase), planned=st.booleans(), decided_by=text,
    what_modified=st.sampled_from(["content", "context", "training_evaluation", "implementation"]),
    level=text, modification_type=text, fidelity_consistent=maybe, goal=text, reason=text)
agreements = st.builds(Agreement, kind=st.sampled_from(enums.AgreementKind), terms=text,
                       agreed_on=st.none() | dates)


@st.composite
def ratings(draw: st.DrawFn) -> RelationshipRating:
    lo = draw(st.integers(0, 3))
    hi = lo + draw(st.integers(1, 10))
    value = draw(st.floats(min_value=lo, max_value=hi, allow_nan=False))
    return RelationshipRating(date=draw(dates), rater=draw(st.sampled_from(["provider", "organization"])),
                              dimension=draw(st.sampled_from(enums.RelationshipConstruct)),
                              value=value, scale_min=lo, scale_max=hi)


@st.composite
def components(draw: st.DrawFn) -> tuple[Component, ...]:
    cids = draw(st.lists(ids, max_size=4, unique=True))
    return tuple(Component(id=c, order=i + 1, introduced_on=draw(dates), name=draw(text))
                 for i, c in enumerate(cids))


@st.composite
def engagements(draw: st.DrawFn) -> Engagement:
    start = draw(dates)
    end = draw(st.none() | st.dates(min_value=start, max_value=dt.date(2095, 1, 1)))
    return Engagement(
        id=draw(ids), org_id=draw(ids), provider_ids=tuple(draw(st.lists(ids, min_size=1, max_size=3, unique=True))),
        ta_model=draw(st.sampled_from([m for m in enums.TAModel if m is not enums.TAModel.none])),
        start_date=start, end_date=end, joint_diagnosis=draw(st.booleans()),
        data_system_support=draw(st.booleans()), strategy=draw(text),
        phases=tuple(draw(st.lists(phases(), max_size=2))),
        encounters=tuple(draw(st.lists(encounters, max_size=3))),
        components=draw(components()), adaptations=tuple(draw(st.lists(adaptations, max_size=2))),
        agreements=tuple(draw(st.lists(agreements, max_size=2))),
        relationship_ratings=tuple(draw(st.lists(ratings(), max_size=2))))


@st.composite
def designs(draw: st.DrawFn) -> StudyDesign:
    start = draw(st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2050, 1, 1)))
    n = draw(st.integers(1, 6))
    gaps = draw(st.lists(st.integers(1, 400), min_size=n, max_size=n))
    wave_dates, day = [], start
    for g in gaps:
        day = day + dt.timedelta(days=g)
        wave_dates.append(day)
    arm_ids = draw(st.lists(ids, min_size=1, max_size=3, unique=True))
    return StudyDesign(
        id=draw(ids), title=draw(text),
        randomisation_unit=draw(st.sampled_from(enums.RandomisationUnit)),
        arms=tuple(Arm(id=a, ta_model=draw(st.sampled_from(enums.TAModel)), label=draw(text)) for a in arm_ids),
        waves=tuple(Wave(index=i + 1, date=d, label=draw(text)) for i, d in enumerate(wave_dates)),
        start_date=start, end_date=day + dt.timedelta(days=draw(st.integers(0, 100))),
        synthetic=draw(st.booleans()), description=draw(text))


RECORD_STRATEGIES = {
    "Provider": providers, "Organization": organizations, "Respondent": respondents,
    "Encounter": encounters, "EngagementPhase": phases(), "Adaptation": adaptations,
    "Agreement": agreements, "RelationshipRating": ratings(), "Engagement": engagements(),
    "StudyDesign": designs(),
}


# ------------------------------------------------------------------ measures (public strategies)
from coevidence.testing.strategies import measure_definitions, wide_responses  # noqa: E402

# ------------------------------------------------------------------ panels and item matrices
values = st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False))


@st.composite
def panels(draw: st.DrawFn) -> pd.DataFrame:
    """Organisations nested in providers with a time-varying ``x`` (some missing)."""
    n = draw(st.integers(1, 40))
    n_prov = draw(st.integers(1, 3))
    orgs = draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))
    x = draw(st.lists(values, min_size=n, max_size=n))
    return pd.DataFrame({
        "provider_id": [f"p{o % n_prov}" for o in orgs],  # orgs nested in providers
        "org_id": [f"o{o}" for o in orgs],
        "x": np.array([np.nan if v is None else v for v in x], dtype=float),
    })


@st.composite
def item_matrices(draw: st.DrawFn) -> pd.DataFrame:
    """Likert items (1-5) driven by one common factor, 4-25 respondents x 2-6 items."""
    n = draw(st.integers(4, 25))
    k = draw(st.integers(2, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    f = rng.normal(size=(n, 1))
    x = np.clip(np.round(3 + f + rng.normal(size=(n, k))), 1, 5)
    return pd.DataFrame(x, columns=[f"i{j}" for j in range(k)])


# ------------------------------------------------------------------ design parameters
iccs = st.floats(0.0, 0.45)
r2s = st.floats(0.0, 0.9)

__all__ = ["RECORD_STRATEGIES", "item_matrices", "iccs", "measure_definitions", "panels",
           "r2s", "values", "wide_responses"]
