"""Measure definitions: the structure of an instrument (never its item wording).

A :class:`MeasureDefinition` records everything needed to turn item responses into scale
scores and to judge them: the item codes, the response range, which items are reverse keyed,
the scoring rule of every subscale (sum, mean, difference-then-sum, weighted, a custom
callable, or a composite of other subscales), the missing-item rule, the level of measurement,
how scores aggregate to the organisation, whether the full item set was administered, the
citation, and whether the structure was verified against the source paper.

Notes
-----
The field ``construct`` shadows the deprecated ``BaseModel.construct`` classmethod (pydantic
warns about that at class creation). The class is built with that single, named warning
silenced on purpose: ``definition.construct`` is the measured construct; use
``MeasureDefinition.model_construct`` for pydantic's unvalidated constructor.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from pydantic import Field, field_validator, model_validator

from coevidence.schemas._base import Record

__all__ = [
    "AggregationRule",
    "AgreementCriteria",
    "Construct",
    "Direction",
    "MeasureDefinition",
    "MeasureLevel",
    "MissingRule",
    "ResearchUseType",
    "ScoringRule",
    "Subscale",
]

Identifier = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.\-]*$", min_length=1, max_length=64)

#: Signature of a custom scorer: ``scorer(values, items) -> scores``; ``values`` is a float
#: array (respondents x items, NaN = unanswered, reverse keying already applied) holding only
#: the rows that meet the missing-item rule, ``items`` the item codes of the columns; it returns
#: one float per row (NaN = not scored, reported as ``scorer_returned_nan``). A score must
#: depend on the respondent's own row only (``check_measure`` tests this).
Scorer = Callable[..., Any]


class Construct(StrEnum):
    """What a measure is about.

    Examples
    --------
    >>> Construct("research_use") is Construct.research_use
    True
    """

    research_use = "research_use"
    capacity = "capacity"
    readiness = "readiness"
    attitude = "attitude"
    implementation_outcome = "implementation_outcome"
    relationship = "relationship"
    other = "other"


class MeasureLevel(StrEnum):
    """The unit a response describes.

    Examples
    --------
    >>> MeasureLevel.document.value
    'document'
    """

    person = "person"
    organization = "organization"
    document = "document"


class Direction(StrEnum):
    """Whether a higher subscale score is the desirable (``positive``) or adverse direction.

    Stored per subscale and never applied silently: reverse a subscale only where the authors
    say so (``reverse_items``, or ``reverse_components`` of a composite).

    Examples
    --------
    >>> Direction("adverse")
    <Direction.adverse: 'adverse'>
    """

    positive = "positive"
    adverse = "adverse"


class ScoringRule(StrEnum):
    """How item values combine into a scale score.

    ``sum``: sum of items; ``mean``: mean of answered items; ``difference_sum``: sum over
    ``pairs`` of (first - second) (e.g. importance minus availability); ``weighted``: sum of
    ``weight * value``; ``custom``: a user callable; ``composite``: ``mean`` of other subscale
    scores (``components``), reversing ``reverse_components``; ``composite_sum``: their sum.

    Examples
    --------
    >>> ScoringRule("difference_sum") == "difference_sum"
    True
    """

    sum = "sum"
    mean = "mean"
    difference_sum = "difference_sum"
    weighted = "weighted"
    custom = "custom"
    composite = "composite"
    composite_sum = "composite_sum"


class ResearchUseType(StrEnum):
    """Types of research use (Weiss 1979; Weiss, Murphy-Graham & Birkeland 2005).

    ``process`` (use arising from taking part in producing research) comes from the evaluation
    use literature and is not verified against a source in this project.

    Examples
    --------
    >>> [t.value for t in ResearchUseType][:2]
    ['instrumental', 'conceptual']
    """

    instrumental = "instrumental"
    conceptual = "conceptual"
    symbolic = "symbolic"
    imposed = "imposed"
    process = "process"


class MissingRule(Record):
    """When a scale score is computed despite unanswered items.

    Parameters
    ----------
    min_answered : int, optional
        Score only if at least this many items (pairs for ``difference_sum``, components for a
        composite) are answered, capped at the scale's count; ``None`` means all of them.
    min_fraction : float, optional
        Alternatively, the minimum answered fraction (0-1]; the stricter of the two applies.
    prorate : bool, default True
        For ``sum``, ``difference_sum`` and ``weighted`` rules, scale the partial score up to the
        full item set (``score * n / answered``, or by weight share). ``mean`` is unaffected.

    Examples
    --------
    >>> MissingRule(min_answered=3).min_answered
    3
    """

    min_answered: int | None = Field(default=None, ge=1)
    min_fraction: float | None = Field(default=None, gt=0, le=1)
    prorate: bool = True

    def required(self, n: int) -> int:
        """Minimum number answered out of ``n`` under this rule.

        Examples
        --------
        >>> MissingRule(min_fraction=0.8).required(7)
        6
        """
        import math

        req = n if self.min_answered is None and self.min_fraction is None else 1
        if self.min_answered is not None:
            req = max(req, min(self.min_answered, n))
        if self.min_fraction is not None:
            req = max(req, math.ceil(self.min_fraction * n - 1e-9))
        return req


class AgreementCriteria(Record):
    """The within-unit agreement a measure's respondent scores need before they are aggregated.

    Checked per wave (the organisations observed at that wave) when ``check_agreement`` is set
    on the :class:`AggregationRule` and ``Study.panel(unit="organization")`` aggregates the
    scores (see ``Study.agreement_report``). A criterion set to ``None`` is not checked. The
    defaults are the conventions of the multilevel literature:

    * ICC(1) above 0 with a significant ANOVA F test: the units differ (Bliese 2000);
    * ICC(2) of at least .70: the unit means are reliable (Bliese 2000; LeBreton & Senter
      2008). ICC(2) grows with the number of respondents per unit (Spearman-Brown), so with a
      handful of respondents it is often lower even when ICC(1) is sizeable;
    * median r_wg(j) of at least .70 over the units, with a uniform null over the response
      options: members agree (James, Demaree & Wolf 1984; LeBreton & Senter 2008).

    Parameters
    ----------
    icc1_min : float or None, default 0.0
        ICC(1) must exceed this value.
    f_alpha : float or None, default 0.05
        The one-way ANOVA F test of between-unit differences must have ``p < f_alpha``.
    icc2_min : float or None, default 0.70
        ICC(2) must be at least this value.
    rwg_min : float or None, default 0.70
        The median r_wg(j) over the units must be at least this value (needs item responses).

    Examples
    --------
    >>> AgreementCriteria().rwg_min
    0.7
    >>> AgreementCriteria(icc2_min=None).icc2_min is None
    True
    """

    icc1_min: float | None = Field(default=0.0, ge=-1, lt=1)
    f_alpha: float | None = Field(default=0.05, gt=0, lt=1)
    icc2_min: float | None = Field(default=0.70, ge=-1, le=1)
    rwg_min: float | None = Field(default=0.70, ge=0, le=1)


class AggregationRule(Record):
    """How person-level scores aggregate to the organisation.

    Parameters
    ----------
    method : {"mean", "median", "none"}
        ``none`` means the measure must not be aggregated (e.g. a document-level measure).
    min_respondents : int, default 1
        Organisations with fewer scored respondents get no aggregate.
    check_agreement : bool, default False
        Whether ICC(1), ICC(2) and r_wg(j) must support aggregation (e.g. ORIC): checked
        against ``agreement`` whenever a study panel aggregates the scores to organisations
        (an :class:`~coevidence.exceptions.AgreementWarning` when a criterion fails).
    agreement : AgreementCriteria
        The criteria of that check (defaults: ICC(1) > 0 with F test p < .05, ICC(2) >= .70,
        median r_wg(j) >= .70); also the default thresholds of ``coevidence.agreement`` when it
        is given the measure.

    Examples
    --------
    >>> AggregationRule(method="mean", min_respondents=3).min_respondents
    3
    >>> AggregationRule(check_agreement=True, agreement={"icc2_min": 0.5}).agreement.icc2_min
    0.5
    """

    method: str = Field(default="mean", pattern=r"^(mean|median|none)$")
    min_respondents: int = Field(default=1, ge=1)
    check_agreement: bool = False
    agreement: AgreementCriteria = Field(default_factory=AgreementCriteria)

    @model_validator(mode="after")
    def _check(self) -> AggregationRule:
        if self.check_agreement and self.method == "none":
            raise ValueError("check_agreement needs an aggregation method (mean or median), "
                             "not 'none'")
        return self


class Subscale(Record):
    """A named set of items scored together (or a composite of other subscales).

    Parameters
    ----------
    id : str
        Stable identifier of the subscale.
    items : tuple of str
        Item codes (empty for a composite).
    name : str
        Display name.
    direction : Direction
        Whether higher scores are desirable; stored, never applied silently.
    scoring : ScoringRule, optional
        Overrides the measure's rule for this subscale.
    pairs : tuple of (str, str)
        For ``difference_sum``: (minuend, subtrahend) item codes.
    weights : dict of str to float
        For ``weighted``: the weight of each item.
    components : tuple of str
        For composites: the subscale ids combined.
    reverse_components : tuple of str
        Components reflected within their score range before combining (e.g. EBPAS Divergence).
    missing : MissingRule, optional
        Overrides the measure's missing-item rule.

    Examples
    --------
    >>> Subscale(id="commitment", items=("c1", "c2", "c3")).items
    ('c1', 'c2', 'c3')
    """

    id: str = Identifier
    items: tuple[str, ...] = Field(default=(), description="Stable item codes in this subscale.")
    name: str = ""
    direction: Direction = Direction.positive
    scoring: ScoringRule | None = None
    pairs: tuple[tuple[str, str], ...] = ()
    weights: dict[str, float] = Field(default_factory=dict)
    components: tuple[str, ...] = ()
    reverse_components: tuple[str, ...] = ()
    missing: MissingRule | None = None

    @model_validator(mode="before")
    @classmethod
    def _items_from_pairs(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("pairs") and not data.get("items"):
            data = {**data, "items": tuple(c for p in data["pairs"] for c in p)}
        return data

    @model_validator(mode="after")
    def _check(self) -> Subscale:
        if not self.items and not self.components:
            raise ValueError(f"subscale {self.id!r} needs items (or components for a composite)")
        if self.items and self.components:
            raise ValueError(f"subscale {self.id!r} has both items and components")
        bad = [c for c in self.reverse_components if c not in self.components]
        if bad:
            raise ValueError(f"subscale {self.id!r}: reverse_components {bad} not in components")
        return self


_COMPOSITES = (ScoringRule.composite, ScoringRule.composite_sum)

with warnings.catch_warnings():
    # Deliberate: the field `construct` shadows the deprecated BaseModel.construct (see module
    # docstring). Only that exact warning is silenced.
    warnings.filterwarnings(
        "ignore",
        message=r'Field name "construct" in "MeasureDefinition" shadows',
        category=UserWarning,
    )

    class MeasureDefinition(Record):
        """The structure of one instrument (item codes, ranges, rules; never item wording).

        Parameters
        ----------
        id : str
            Stable identifier used in observation tables (``measure_id``) and panel columns.
        instrument, version, name : str
            Instrument family (e.g. ``"EBPAS"``), version label and display name.
        construct : Construct
            What the measure is about.
        level : MeasureLevel
            The unit a response describes.
        response_min, response_max : float
            The response range of every item.
        discrete : bool, default True
            Responses must be whole numbers (Likert-type items).
        items : tuple of str
            Every item code.
        reverse_items : tuple of str
            Items reflected (``min + max - x``) before scoring.
        scoring : ScoringRule, default "mean"
            Default rule of every subscale.
        scorer : callable or "module:function", optional
            The function for ``custom`` scoring (excluded from JSON).
        subscales : tuple of Subscale
            Subscales; when empty, one scale named ``total`` over all items is scored.
        primary : str, optional
            The subscale reported as the measure's score (``measure_id`` in panels); defaults to
            the only scale, or a subscale named ``total``.
        missing : MissingRule
            Default missing-item rule (default: every item must be answered).
        aggregation : AggregationRule
            How person scores aggregate to the organisation.
        full_item_set_administered : bool, default True
            False when only part of the items were administered (some instruments forbid it).
        citation, doi : str
            Source of the structure.
        verified : bool or None
            True: checked against the source paper; False: not yet (a built-in so flagged
            issues :class:`~coevidence.exceptions.UnverifiedMeasureWarning` when scored);
            None: not claimed either way (user-defined).
        verification_note : str
            What was or was not verified.

        Examples
        --------
        >>> m = MeasureDefinition(id="aim", construct="implementation_outcome", level="person",
        ...     response_min=1, response_max=5, items=("a1", "a2", "a3", "a4"))
        >>> m.items
        ('a1', 'a2', 'a3', 'a4')
        >>> [s.id for s in m.scales()]
        ['total']
        """

        id: str = Identifier
        name: str = ""
        instrument: str = ""
        version: str = ""
        construct: Construct = Construct.other
        level: MeasureLevel = MeasureLevel.person
        response_min: float
        response_max: float
        discrete: bool = True
        items: tuple[str, ...] = Field(min_length=1)
        reverse_items: tuple[str, ...] = ()
        scoring: ScoringRule = ScoringRule.mean
        scorer: Scorer | str | None = Field(default=None, exclude=True)
        subscales: tuple[Subscale, ...] = ()
        primary: str | None = None
        missing: MissingRule = Field(default_factory=MissingRule)
        aggregation: AggregationRule = Field(default_factory=AggregationRule)
        full_item_set_administered: bool = True
        citation: str = ""
        doi: str = ""
        verified: bool | None = None
        verification_note: str = ""

        @field_validator("scorer")
        @classmethod
        def _scorer_ok(cls, v: Any) -> Any:
            if isinstance(v, str) and ":" not in v:
                raise ValueError("a scorer given as text must be 'module:function'")
            if v is not None and not isinstance(v, str) and not callable(v):
                raise ValueError("scorer must be callable or 'module:function'")
            return v

        @model_validator(mode="after")
        def _check(self) -> MeasureDefinition:
            if self.response_max <= self.response_min:
                raise ValueError(
                    f"response_max ({self.response_max}) must exceed "
                    f"response_min ({self.response_min})"
                )
            if len(set(self.items)) != len(self.items):
                raise ValueError("item codes must be unique")
            known = set(self.items)
            bad_rev = [i for i in self.reverse_items if i not in known]
            if bad_rev:
                raise ValueError(f"reverse_items lists unknown items {bad_rev}")
            ids = [s.id for s in self.subscales]
            if len(set(ids)) != len(ids):
                raise ValueError("subscale ids must be unique")
            defined: set[str] = set()
            for s in self.subscales:
                self._check_subscale(s, known, defined)
                defined.add(s.id)
            scale_ids = {s.id for s in self.scales()}
            if self.primary is not None and self.primary not in scale_ids:
                raise ValueError(f"primary {self.primary!r} is not a subscale id")
            return self

        def _check_subscale(self, s: Subscale, known: set[str], defined: set[str]) -> None:
            rule = self.rule(s)
            unknown = [i for i in s.items if i not in known]
            if unknown:
                raise ValueError(f"subscale {s.id!r} lists unknown items {unknown}")
            if len(set(s.items)) != len(s.items):
                raise ValueError(f"subscale {s.id!r} repeats an item")
            if rule in _COMPOSITES:
                if not s.components:
                    raise ValueError(f"composite subscale {s.id!r} needs components")
                later = [c for c in s.components if c not in defined]
                if later:
                    raise ValueError(
                        f"composite {s.id!r}: components {later} must be defined before it"
                    )
                no_range = [c for c in s.reverse_components if self._range_of(c) is None]
                if no_range:
                    raise ValueError(
                        f"composite {s.id!r}: cannot reverse {no_range} (custom scores have no "
                        "known range)"
                    )
            elif s.components:
                raise ValueError(f"subscale {s.id!r} has components but rule {rule.value!r}")
            if rule == ScoringRule.difference_sum and not s.pairs:
                raise ValueError(f"difference_sum subscale {s.id!r} needs pairs")
            if rule == ScoringRule.weighted:
                missing_w = [i for i in s.items if i not in s.weights]
                if missing_w:
                    raise ValueError(f"weighted subscale {s.id!r}: no weight for {missing_w}")
            if s.weights and set(s.weights) - set(s.items):
                raise ValueError(f"subscale {s.id!r}: weights for items not in the subscale")
            if rule == ScoringRule.custom and self.scorer is None:
                raise ValueError(f"subscale {s.id!r} uses custom scoring but no scorer is set")

        def _range_of(self, scale_id: str) -> tuple[float, float] | None:
            # during validation: only the subscales defined so far exist
            try:
                return self.scale_range(scale_id)
            except KeyError:
                return None

        # ---- derived structure -------------------------------------------------------------
        def scales(self) -> tuple[Subscale, ...]:
            """The scales that are scored: the subscales, or one ``total`` over all items.

            Examples
            --------
            >>> m = MeasureDefinition(id="x", response_min=0, response_max=4, items=("a", "b"))
            >>> m.scales()[0].items
            ('a', 'b')
            """
            if self.subscales:
                return self.subscales
            return (Subscale(id="total", items=self.items),)

        def rule(self, subscale: Subscale) -> ScoringRule:
            """The scoring rule that applies to ``subscale``.

            Examples
            --------
            >>> m = MeasureDefinition(id="x", scoring="sum", response_min=0, response_max=4,
            ...     items=("a",))
            >>> m.rule(m.scales()[0]).value
            'sum'
            """
            return subscale.scoring if subscale.scoring is not None else self.scoring

        def missing_rule(self, subscale: Subscale) -> MissingRule:
            """The missing-item rule that applies to ``subscale``.

            Examples
            --------
            >>> m = MeasureDefinition(id="x", response_min=0, response_max=4, items=("a", "b"),
            ...     missing={"min_answered": 1})
            >>> m.missing_rule(m.scales()[0]).required(2)
            1
            """
            return subscale.missing if subscale.missing is not None else self.missing

        def primary_scale(self) -> str | None:
            """Id of the scale reported as the measure's score, or None if not defined.

            Examples
            --------
            >>> MeasureDefinition(id="x", response_min=0, response_max=4, items=("a",)
            ...     ).primary_scale()
            'total'
            """
            if self.primary is not None:
                return self.primary
            scales = self.scales()
            if len(scales) == 1:
                return scales[0].id
            ids = [s.id for s in scales]
            return "total" if "total" in ids else None

        def resolve_scorer(self) -> Scorer | None:
            """The custom scorer as a callable (importing ``"module:function"`` if needed).

            Examples
            --------
            >>> m = MeasureDefinition(id="x", scoring="custom", scorer="numpy:nanmax",
            ...     response_min=0, response_max=4, items=("a",))
            >>> m.resolve_scorer().__name__
            'nanmax'
            """
            if self.scorer is None or callable(self.scorer):
                return self.scorer
            mod, _, attr = str(self.scorer).partition(":")
            obj: Any = importlib.import_module(mod)
            for part in attr.split("."):
                obj = getattr(obj, part)
            if not callable(obj):
                raise TypeError(f"scorer {self.scorer!r} is not callable")
            return obj

        def scale_range(self, scale_id: str) -> tuple[float, float] | None:
            """Theoretical (min, max) of a scale score; None for custom scorers.

            Examples
            --------
            >>> m = MeasureDefinition(id="x", scoring="sum", response_min=1, response_max=5,
            ...     items=("a", "b"))
            >>> m.scale_range("total")
            (2.0, 10.0)
            """
            by_id = {s.id: s for s in self.scales()}
            s = by_id[scale_id]
            lo, hi = float(self.response_min), float(self.response_max)
            rule = self.rule(s)
            if rule == ScoringRule.mean:
                return (lo, hi)
            if rule == ScoringRule.sum:
                return (len(s.items) * lo, len(s.items) * hi)
            if rule == ScoringRule.difference_sum:
                n = len(s.pairs)
                return (n * (lo - hi), n * (hi - lo))
            if rule == ScoringRule.weighted:
                w = [s.weights[i] for i in s.items]
                return (
                    sum(min(x * lo, x * hi) for x in w),
                    sum(max(x * lo, x * hi) for x in w),
                )
            if rule in _COMPOSITES:
                rngs = [self.scale_range(c) for c in s.components]
                if any(r is None for r in rngs):
                    return None
                los = [r[0] for r in rngs if r is not None]
                his = [r[1] for r in rngs if r is not None]
                if rule == ScoringRule.composite:
                    return (sum(los) / len(los), sum(his) / len(his))
                return (sum(los), sum(his))
            return None
