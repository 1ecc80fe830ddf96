"""The :class:`Study`: validated metadata records plus observation tables.

Metadata (design, providers, organisations, respondents, engagements, measures) are pydantic
records; observations (item responses and scores) are DataFrames checked against declared column
specs. Every way in (:class:`Study`, :meth:`Study.from_frames`, :func:`read_study`) runs the same
rules and reports every problem at once in one :class:`~coevidence.exceptions.StudyValidationError`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ValidationError

from coevidence.data._crosscheck import crosscheck
from coevidence.data._rows import records_to_frame, validate_rows
from coevidence.data.frames import DATE_MAX, DATE_MIN, RANGE_RULE, TZ_RULE, failures_frame
from coevidence.data.tables import (
    ENGAGEMENT_PARTS,
    METADATA_TABLES,
    OBSERVATION_TABLES,
    EngagementRow,
)
from coevidence.exceptions import StudyValidationError
from coevidence.schemas.actors import Organization, Provider, Respondent
from coevidence.schemas.design import StudyDesign
from coevidence.schemas.engagement import Engagement
from coevidence.schemas.measure import MeasureDefinition

__all__ = ["Study"]

MeasureLike = MeasureDefinition | Mapping[str, Any] | str


def _record(table: str, model: type[BaseModel], data: Any, row: int | None,
            failures: list[pd.DataFrame], check_values: bool = False) -> Any:
    if isinstance(data, model):
        rec = data
    else:
        try:
            rec = model.model_validate(data)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                loc = err.get("loc") or ()
                col = ".".join(str(p) for p in loc) if loc else None
                failures.append(failures_frame(table, [row], col,
                                               [err.get("input") if loc else None],
                                               str(err["msg"])))
            return None
    if check_values:
        problems = list(_value_problems(rec.model_dump(), ()))
        if problems:
            for col, value, rule in problems:
                failures.append(failures_frame(table, [row], col, [value], rule))
            return None
    return rec


def _value_problems(data: Any, loc: tuple[Any, ...]) -> Iterable[tuple[str, Any, str]]:
    """What the records let through but a study cannot hold (the rules the tables' checks
    apply to cells): infinite numbers, dates with a time zone or out of the datetime range."""
    if isinstance(data, Mapping):
        for key, value in data.items():
            yield from _value_problems(value, (*loc, key))
    elif isinstance(data, (list, tuple)):
        for i, value in enumerate(data):
            yield from _value_problems(value, (*loc, i))
    elif isinstance(data, float) and np.isinf(data):
        yield ".".join(map(str, loc)), data, "not a finite number"
    elif isinstance(data, dt.date):
        if isinstance(data, dt.datetime) and data.tzinfo is not None:
            yield ".".join(map(str, loc)), str(data), TZ_RULE
        elif not DATE_MIN.date() <= (data.date() if isinstance(data, dt.datetime) else data) \
                <= DATE_MAX.date():
            yield ".".join(map(str, loc)), str(data), RANGE_RULE


def _resolve_measure(m: MeasureLike) -> MeasureDefinition:
    if isinstance(m, str):
        from coevidence.measures.registry import get_measure

        return get_measure(m)
    return m if isinstance(m, MeasureDefinition) else MeasureDefinition.model_validate(m)


def _resolve_measures(measures: Iterable[MeasureLike], failures: list[pd.DataFrame]) -> list[MeasureDefinition]:
    out: list[MeasureDefinition] = []
    for i, m in enumerate(measures):
        try:
            out.append(_resolve_measure(m))
        except (ValidationError, KeyError, ValueError) as exc:
            failures.append(failures_frame("measures", [i], None, [str(m)[:60]], str(exc)))
    return out


def _check_observations(responses: pd.DataFrame | None, scores: pd.DataFrame | None,
                        failures: list[pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Coerced copies of the observation tables (empty typed frames when absent)."""
    obs: dict[str, pd.DataFrame] = {}
    for name, frame in (("responses", responses), ("scores", scores)):
        spec = OBSERVATION_TABLES[name]
        if frame is None:
            obs[name] = spec.empty()
            continue
        obs[name], fails = spec.check(frame)
        failures.append(fails)
    return obs


class Study:
    """A validated TA study.

    Parameters
    ----------
    design : StudyDesign or dict
        Arms, waves, randomisation unit and study window.
    providers, organizations, respondents, engagements : sequences of records (or dicts)
        The metadata. Engagements carry their encounter logs, phases, components, adaptations,
        agreements and relationship ratings.
    measures : sequence of MeasureDefinition, dict or registered measure id
        The instruments observations refer to.
    responses : DataFrame, optional
        Item responses: ``respondent_id, measure_id, wave, item, value[, date]``.
    scores : DataFrame, optional
        Scores: ``unit_level, unit_id, measure_id, wave, value[, date]``.

    Raises
    ------
    StudyValidationError
        With every problem found (table, row, column, value, rule).

    Notes
    -----
    Inputs are never modified; the study keeps its own copies. Records are immutable.

    Examples
    --------
    >>> import coevidence as cv
    >>> study = cv.load_example_study()
    >>> study.n_units("organization") > 100
    True
    """

    def __init__(
        self,
        design: StudyDesign | Mapping[str, Any],
        *,
        providers: Iterable[Provider | Mapping[str, Any]] = (),
        organizations: Iterable[Organization | Mapping[str, Any]] = (),
        respondents: Iterable[Respondent | Mapping[str, Any]] = (),
        engagements: Iterable[Engagement | Mapping[str, Any]] = (),
        measures: Iterable[MeasureLike] = (),
        responses: pd.DataFrame | None = None,
        scores: pd.DataFrame | None = None,
        _checked: bool = False,
    ) -> None:
        failures: list[pd.DataFrame] = []
        design_rec = _record("design", StudyDesign, design, None, failures, check_values=True)
        recs: dict[str, list[Any]] = {}
        declared: dict[str, set[str]] = {}
        for table, model, items in (
            ("providers", Provider, providers),
            ("organizations", Organization, organizations),
            ("respondents", Respondent, respondents),
            ("engagements", Engagement, engagements),
        ):
            given = list(items)
            recs[table] = [_record(table, model, d, i, failures, check_values=not _checked)
                           for i, d in enumerate(given)]
            # ids of records that failed their own validation: their dependants are not
            # reported a second time as "unknown"
            declared[table] = {str(d["id"]) for d, r in zip(given, recs[table], strict=True)
                               if r is None and isinstance(d, Mapping)
                               and isinstance(d.get("id"), (str, int))}
        measure_recs = _resolve_measures(measures, failures)
        if _checked:  # from_frames already coerced and checked the observation tables
            obs = {"responses": responses, "scores": scores}
        else:
            obs = _check_observations(responses, scores, failures)
        ids = [m.id for m in measure_recs]
        for mid in sorted({i for i in ids if ids.count(i) > 1}):
            failures.append(failures_frame("measures", [None], "id", [mid], "duplicate measure id"))
        measures_by_id = {m.id: m for m in measure_recs}
        if not _checked:
            # the cross-record rules run on the valid records, whatever else failed (without
            # the design's rules if it failed), so that every problem is reported at once;
            # rows are the records' positions as given
            valid = {t: [(i, r) for i, r in enumerate(rs) if r is not None]
                     for t, rs in recs.items()}
            tables = _metadata_frames(*([r for _, r in valid[t]] for t in
                                        ("providers", "organizations", "respondents",
                                         "engagements")))
            for name, frame in tables.items():
                rows = ([i for i, _ in valid[name]] if name in valid else np.arange(len(frame)))
                tables[name] = frame.assign(_row=np.asarray(rows, dtype=int))
            failures.append(crosscheck(design_rec, tables, measures_by_id, obs["responses"],
                                       obs["scores"], declared))
        failures = [f for f in failures if not f.empty]
        if failures or design_rec is None or any(r is None for rs in recs.values() for r in rs):
            raise StudyValidationError(pd.concat(failures, ignore_index=True))
        self._design: StudyDesign = design_rec
        self._providers: tuple[Provider, ...] = tuple(recs["providers"])
        self._organizations: tuple[Organization, ...] = tuple(recs["organizations"])
        self._respondents: tuple[Respondent, ...] = tuple(recs["respondents"])
        self._engagements: tuple[Engagement, ...] = tuple(recs["engagements"])
        self._measures: dict[str, MeasureDefinition] = measures_by_id
        self._responses: pd.DataFrame = obs["responses"]  # type: ignore[assignment]
        self._scores: pd.DataFrame = obs["scores"]  # type: ignore[assignment]

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_frames(
        cls,
        design: StudyDesign | Mapping[str, Any],
        *,
        measures: Iterable[MeasureLike] = (),
        providers: pd.DataFrame | None = None,
        organizations: pd.DataFrame | None = None,
        respondents: pd.DataFrame | None = None,
        engagements: pd.DataFrame | None = None,
        engagement_phases: pd.DataFrame | None = None,
        encounters: pd.DataFrame | None = None,
        components: pd.DataFrame | None = None,
        adaptations: pd.DataFrame | None = None,
        agreements: pd.DataFrame | None = None,
        relationship_ratings: pd.DataFrame | None = None,
        responses: pd.DataFrame | None = None,
        scores: pd.DataFrame | None = None,
    ) -> Study:
        """Build a study from tables (one DataFrame per table; see :mod:`coevidence.data.tables`).

        Every row of every table is validated; failures name the table, the 0-based row in the
        frame you passed, the column and the value. Nothing is dropped: a study with any
        failure raises :class:`~coevidence.exceptions.StudyValidationError`.

        Examples
        --------
        >>> import coevidence as cv
        >>> study = cv.load_example_study()
        >>> again = cv.Study.from_frames(study.design, measures=study.measures.values(),
        ...                              **study.to_frames())
        >>> again == study
        True
        """
        given = {
            "providers": providers, "organizations": organizations, "respondents": respondents,
            "engagements": engagements, "engagement_phases": engagement_phases,
            "encounters": encounters, "components": components, "adaptations": adaptations,
            "agreements": agreements, "relationship_ratings": relationship_ratings,
        }
        failures: list[pd.DataFrame] = []
        design_rec = _record("design", StudyDesign, design, None, failures, check_values=True)
        records: dict[str, list[Any]] = {}
        valid_tables: dict[str, pd.DataFrame] = {}
        for name, model in METADATA_TABLES.items():
            frame = given[name]
            if frame is None:
                frame = pd.DataFrame(columns=list(model.model_fields))
            recs, fails = validate_rows(name, frame, model)
            failures.append(fails)
            ok = [(i, r) for i, r in enumerate(recs) if r is not None]
            records[name] = [r for _, r in ok]
            valid_tables[name] = records_to_frame([r for _, r in ok], model).assign(
                _row=np.array([i for i, _ in ok], dtype=int))
        measure_recs = _resolve_measures(measures, failures)
        obs = _check_observations(responses, scores, failures)
        declared = {name: set(_id_column(given[name]).dropna().astype(str))
                    for name in ("providers", "organizations", "respondents", "engagements")
                    if isinstance(given[name], pd.DataFrame) and "id" in given[name].columns}
        failures.append(crosscheck(design_rec, valid_tables, {m.id: m for m in measure_recs},
                                   obs["responses"], obs["scores"], declared))
        # the engagement-level rules run on every valid engagement, whatever else failed
        # (those already reported, on the engagement or one of its logs, are not repeated)
        engagements_full, nest_fails = _nest(
            records, valid_tables["engagements"]["_row"].tolist())
        if nest_fails:
            failures.extend(_not_reported(nest_fails, failures, given, records))
        failures = [f for f in failures if not f.empty]
        if failures:
            raise StudyValidationError(pd.concat(failures, ignore_index=True))
        return cls(
            design_rec, providers=records["providers"], organizations=records["organizations"],
            respondents=records["respondents"], engagements=engagements_full,
            measures=measure_recs, responses=obs["responses"], scores=obs["scores"], _checked=True,
        )

    def to_frames(self) -> dict[str, pd.DataFrame]:
        """Every table of the study (the inverse of :meth:`from_frames`).

        Returns
        -------
        dict of str to DataFrame
            Keys: providers, organizations, respondents, engagements, engagement_phases,
            encounters, components, adaptations, agreements, relationship_ratings, responses,
            scores.
        """
        out = _metadata_frames(self._providers, self._organizations, self._respondents,
                               self._engagements)
        out["responses"] = self.responses
        out["scores"] = self.scores
        return out

    # ------------------------------------------------------------------ access
    @property
    def design(self) -> StudyDesign:
        """The study design."""
        return self._design

    @property
    def providers(self) -> tuple[Provider, ...]:
        """TA providers."""
        return self._providers

    @property
    def organizations(self) -> tuple[Organization, ...]:
        """Practitioner organisations."""
        return self._organizations

    @property
    def respondents(self) -> tuple[Respondent, ...]:
        """Respondents."""
        return self._respondents

    @property
    def engagements(self) -> tuple[Engagement, ...]:
        """TA engagements with their logs."""
        return self._engagements

    @property
    def measures(self) -> dict[str, MeasureDefinition]:
        """Measure definitions by id (a copy of the mapping)."""
        return dict(self._measures)

    @property
    def responses(self) -> pd.DataFrame:
        """Item responses (a copy; changing it does not change the study)."""
        return self._responses.copy(deep=False)

    @property
    def scores(self) -> pd.DataFrame:
        """Scores (a copy; changing it does not change the study)."""
        return self._scores.copy(deep=False)

    def n_units(self, unit: Literal["provider", "organization", "respondent", "engagement"]) -> int:
        """Number of units of a kind."""
        return len({"provider": self._providers, "organization": self._organizations,
                    "respondent": self._respondents, "engagement": self._engagements}[unit])

    # ------------------------------------------------------------------ analysis views
    def panel(
        self,
        outcomes: Sequence[str] | None = None,
        unit: Literal["organization", "respondent"] = "organization",
        *,
        waves: Literal["all", "observed"] = "all",
        strict_agreement: bool = False,
    ) -> pd.DataFrame:
        """One tidy row per unit x wave, ready for the models.

        See :func:`coevidence.data.panel.build_panel` for the columns. Respondent scores of a
        measure whose aggregation rule sets ``check_agreement`` (e.g. ORIC) are checked before
        they are aggregated to organisations (:meth:`agreement_report`): a failed criterion
        warns with :class:`~coevidence.exceptions.AgreementWarning`, or raises
        :class:`~coevidence.exceptions.MeasureError` when ``strict_agreement=True``.

        Examples
        --------
        >>> import coevidence as cv
        >>> panel = cv.load_example_study().panel(unit="organization")
        >>> panel[["org_id", "wave", "ta_model", "phase"]].head(2).shape
        (2, 4)
        """
        from coevidence.data.panel import build_panel

        return build_panel(self, self._long_scores, outcomes=outcomes, unit=unit, waves=waves,
                           strict_agreement=strict_agreement)

    def engagement_features(self, *, window_months: int = 6) -> pd.DataFrame:
        """Engagement features per organisation x wave, from the logs (joins onto the panel).

        TA dose in a trailing window of ``window_months`` calendar months ending at each
        wave's date and cumulatively, encounters by mode, whether diagnosis came first,
        components introduced and their order, FRAME adaptations, mean relationship quality
        and agreements in force; see :func:`coevidence.data.features.engagement_features`
        for every column's definition.

        Examples
        --------
        >>> import coevidence as cv
        >>> study = cv.load_example_study()
        >>> feats = study.engagement_features(window_months=6)
        >>> feats[["org_id", "wave", "dose_minutes_window"]].shape[1]
        3
        """
        from coevidence.data.features import engagement_features

        return engagement_features(self, window_months=window_months)

    def agreement_report(self, outcomes: Sequence[str] | None = None) -> pd.DataFrame:
        """Within-organisation agreement of respondent scores, per outcome and wave.

        ICC(1) (with its ANOVA F test), ICC(2) and the median and mean r_wg(j) over
        organisations, checked against each measure's ``aggregation.agreement`` criteria; see
        :func:`coevidence.data.panel.agreement_report`. This is the check :meth:`panel` runs
        before aggregating a measure that requires it.

        Parameters
        ----------
        outcomes : sequence of str, optional
            Outcomes (measure ids or ``measure.subscale``) to check; by default those of every
            measure whose aggregation rule sets ``check_agreement``. Any outcome with
            respondent-level scores can be named.

        Returns
        -------
        pandas.DataFrame
            One row per outcome x wave: ``measure_id, wave, n_units, n_respondents, icc1,
            f_value, f_df1, f_df2, f_p_value, icc2, median_rwg_j, mean_rwg_j, n_units_rwg_j,
            supported, failed, note``.

        Examples
        --------
        >>> import coevidence as cv
        >>> rep = cv.load_example_study().agreement_report(["research_use"])
        >>> rep["measure_id"].unique().tolist(), rep["wave"].tolist()
        (['research_use'], [1, 2, 3, 4, 5, 6])
        >>> rep[["icc1", "icc2", "median_rwg_j"]].round(2).iloc[0].tolist()
        [0.33, 0.66, 0.94]
        """
        from coevidence.data.panel import agreement_report

        return agreement_report(self, outcomes, scores=self._long_scores,
                                responses=self._responses, cache=self._agreement_cache)

    def describe(self) -> dict[str, pd.DataFrame]:
        """Units by arm and wave, attrition, and dose summaries (see :mod:`coevidence.data.describe`)."""
        from coevidence.data.describe import describe_study

        return describe_study(self)

    def write(self, path: str | Path, *, format: Literal["csv", "parquet"] = "csv") -> Path:
        """Write the study as a Frictionless Data Package folder (see :func:`read_study`)."""
        from coevidence.data.datapackage import write_study

        return write_study(self, path, format=format)

    # ------------------------------------------------------------------ dunder
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Study):
            return NotImplemented
        if (self._design, self._providers, self._organizations, self._respondents,
                self._engagements, self._measures) != (
                other._design, other._providers, other._organizations, other._respondents,
                other._engagements, other._measures):
            return False
        return _frames_equal(self._responses, other._responses) and _frames_equal(
            self._scores, other._scores)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        arms = ", ".join(f"{a.id}={a.ta_model.value}" for a in self._design.arms)
        return (
            f"<Study {self._design.id!r}: {len(self._providers)} providers, "
            f"{len(self._organizations)} organizations, {len(self._respondents)} respondents, "
            f"{len(self._engagements)} engagements, {len(self._design.waves)} waves; arms {arms}; "
            f"{len(self._responses):,} item responses, {len(self._scores):,} scores>"
        )

    def _repr_html_(self) -> str:
        """Notebook view: design, arms with their units per level, and the measures."""
        from html import escape

        d = self._design
        org_arm = {o.id: o.arm for o in self._organizations}
        rows = []
        for a in d.arms:
            orgs = {o.id for o in self._organizations if o.arm == a.id}
            provs = {o.provider_id for o in self._organizations if o.arm == a.id}
            resp = sum(1 for r in self._respondents if org_arm.get(r.org_id) == a.id)
            rows.append(f"<tr><td>{escape(a.label or a.id)}</td><td>{escape(a.ta_model.value)}"
                        f"</td><td>{len(provs)}</td><td>{len(orgs)}</td><td>{resp}</td></tr>")
        measures = "".join(
            f"<li><code>{escape(m.id)}</code>: {escape(m.name or m.id)}"
            f"{f' ({len(m.items)} items)' if m.items else ''}</li>"
            for m in self._measures.values())
        waves = d.waves
        return (
            f"<div class='coevidence-study'><strong>Study: {escape(d.title or d.id)}</strong>"
            f"{' (synthetic)' if d.synthetic and 'synthetic' not in (d.title or '') else ''}"
            "<br>randomised by "
            f"{escape(d.randomisation_unit.value)}; {len(waves)} waves"
            + (f" from {waves[0].date} to {waves[-1].date}" if waves else "")
            + f"; {len(self._engagements)} engagements; {len(self._responses):,} item responses, "
            f"{len(self._scores):,} scores"
            "<table><thead><tr><th>arm</th><th>TA model</th><th>providers</th>"
            "<th>organisations</th><th>respondents</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>"
            + (f"measures:<ul>{measures}</ul>" if measures else "measures: none")
            + "</div>"
        )

    def scoring_report(self, *, detail: bool = False) -> pd.DataFrame:
        """How the item responses score, by measure: computed scores and those that were not.

        Item responses are scored with each measure's scoring and missing-item rules (see
        :func:`coevidence.measures.scoring.score_responses_table`); a score that cannot be
        computed stays missing in :meth:`panel` and is counted here, with the reason.

        Parameters
        ----------
        detail : bool
            Return one row per respondent x wave x scale instead of the summary.

        Returns
        -------
        pandas.DataFrame
            Summary: ``measure_id, n_scores, n_scored, n_not_scored, reasons``.

        Examples
        --------
        >>> import coevidence as cv
        >>> rep = cv.load_example_study().scoring_report()
        >>> rep.columns.tolist()
        ['measure_id', 'n_scores', 'n_scored', 'n_not_scored', 'reasons']
        """
        table = self._scored_responses
        if detail:
            return table.copy(deep=False)
        if table.empty:
            return pd.DataFrame(columns=["measure_id", "n_scores", "n_scored", "n_not_scored",
                                         "reasons"])
        rows = []
        for mid, part in table.groupby("measure_id", sort=True):
            missed = part[~part["scored"].astype(bool)]
            reasons = missed["reason"].value_counts()
            rows.append({"measure_id": mid, "n_scores": len(part), "n_scored": len(part) - len(missed),
                         "n_not_scored": len(missed),
                         "reasons": "; ".join(f"{k} ({v})" for k, v in reasons.items())})
        return pd.DataFrame(rows)

    @cached_property
    def _scored_responses(self) -> pd.DataFrame:
        import warnings

        from coevidence.exceptions import MissingDataWarning
        from coevidence.measures.scoring import score_responses_table

        responses = self._responses
        if responses.empty:
            return pd.DataFrame(columns=["respondent_id", "org_id", "wave", "measure_id", "scale",
                                         "score", "n_items_answered", "n_items", "scored", "reason"])
        resp_org = {r.id: r.org_id for r in self._respondents}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MissingDataWarning)  # re-issued below, once, in study terms
            table = score_responses_table(
                responses.assign(org_id=responses["respondent_id"].map(resp_org)), self._measures)
        missed = table[~table["scored"].astype(bool)]
        if len(missed):
            counts = ", ".join(f"{m}: {n}" for m, n in missed["measure_id"].value_counts().sort_index().items())
            warnings.warn(
                f"{len(missed)} of {len(table)} respondent-wave scale scores could not be computed "
                f"under their measure's missing-item rule ({counts}); they stay missing in the "
                "panel. See study.scoring_report().",
                MissingDataWarning, stacklevel=4)
        return table

    @cached_property
    def _agreement_cache(self) -> dict[str, pd.DataFrame]:
        """Agreement report rows by outcome, filled on demand (the study is immutable)."""
        return {}

    @cached_property
    def _long_scores(self) -> pd.DataFrame:
        """All scores, item responses scored once per study (the study is immutable)."""
        return _stack_scores(self)


def _metadata_frames(providers: Sequence[Provider], organizations: Sequence[Organization],
                     respondents: Sequence[Respondent],
                     engagements: Sequence[Engagement]) -> dict[str, pd.DataFrame]:
    """The metadata tables of these records (engagements with their logs flattened)."""
    out: dict[str, pd.DataFrame] = {
        "providers": records_to_frame(list(providers), Provider),
        "organizations": records_to_frame(list(organizations), Organization),
        "respondents": records_to_frame(list(respondents), Respondent),
        "engagements": records_to_frame(
            [EngagementRow.model_validate(e.model_dump(include=set(EngagementRow.model_fields)))
             for e in engagements], EngagementRow),
    }
    for name, (model, attr) in ENGAGEMENT_PARTS.items():
        rows = [model.model_validate({**part.model_dump(), "engagement_id": e.id})
                for e in engagements for part in getattr(e, attr)]
        out[name] = records_to_frame(rows, model)
    return out


def _frames_equal(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return False
    try:
        pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True),
                                      check_dtype=False)
    except AssertionError:
        return False
    return True


def _id_column(frame: pd.DataFrame) -> pd.Series:
    col = frame.loc[:, "id"]
    col = col.iloc[:, 0] if isinstance(col, pd.DataFrame) else col  # a duplicated column
    return col.map(lambda v: v if isinstance(v, (str, int, float)) else None)


def _not_reported(nest_fails: list[pd.DataFrame], failures: list[pd.DataFrame],
                  given: Mapping[str, pd.DataFrame | None],
                  records: Mapping[str, list[Any]]) -> list[pd.DataFrame]:
    """Engagement-level failures of engagements with no other failure on them or their logs."""
    found = [f for f in failures if not f.empty]
    if not found:
        return nest_fails
    seen = pd.concat(found, ignore_index=True)
    rows = set(seen.loc[seen["table"] == "engagements", "row"].dropna().tolist())
    ids: set[object] = set()
    for name in ENGAGEMENT_PARTS:
        frame = given.get(name)
        part = seen.loc[seen["table"] == name, "row"].dropna()
        if not isinstance(frame, pd.DataFrame) or part.empty or "engagement_id" not in frame.columns:
            continue
        col = frame.columns.get_loc("engagement_id")
        if not isinstance(col, int):
            continue
        ids.update(frame.iloc[[int(r) for r in part if 0 <= int(r) < len(frame)], col].tolist())
    keep = []
    for f in nest_fails:
        row, eid = f["row"].iloc[0], f["value"].iloc[0]
        if row not in rows and eid not in ids:
            keep.append(f)
    return keep


def _nest_engagements(records: Mapping[str, list[Any]]) -> list[Engagement]:
    out, failures = _nest(records, None)
    if failures:
        raise StudyValidationError(pd.concat(failures, ignore_index=True))
    return out


def _nest(records: Mapping[str, list[Any]],
          rows: list[int] | None) -> tuple[list[Engagement], list[pd.DataFrame]]:
    """Engagements with their logs; failures name the engagement's row in ``rows``."""
    parts: dict[str, dict[str, list[Any]]] = {}
    for name, (_, attr) in ENGAGEMENT_PARTS.items():
        for rec in records[name]:
            data = rec.model_dump(exclude={"engagement_id"})
            parts.setdefault(rec.engagement_id, {}).setdefault(attr, []).append(data)
    out, failures = [], []
    for pos, row in enumerate(records["engagements"]):
        try:
            out.append(Engagement.model_validate({**row.model_dump(), **parts.get(row.id, {})}))
        except ValidationError as exc:
            where = rows[pos] if rows is not None else pos
            for err in exc.errors(include_url=False):
                failures.append(failures_frame("engagements", [where], None, [row.id],
                                               str(err["msg"])))
    return out, failures


def _stack_scores(study: Study) -> pd.DataFrame:
    """Every score of the study in one long frame.

    Stacks the ``scores`` table with the scores computed from the item ``responses`` by each
    measure's scoring rule. Columns: unit_level, unit_id, measure_id, wave, date, value.
    """
    parts = []
    scores = study.scores
    if not scores.empty:
        if "date" not in scores.columns:
            scores = scores.assign(date=pd.NaT)
        parts.append(scores[["unit_level", "unit_id", "measure_id", "wave", "date", "value"]])
    responses = study.responses
    if not responses.empty:
        scored = study.scoring_report(detail=True)
        if "date" in responses.columns:
            when = (responses.dropna(subset=["date"])
                    .groupby(["respondent_id", "wave"])["date"].min().rename("date").reset_index())
            scored = scored.merge(when, on=["respondent_id", "wave"], how="left")
        else:
            scored = scored.assign(date=pd.NaT)
        parts.append(pd.DataFrame({
            "unit_level": "respondent",
            "unit_id": scored["respondent_id"],
            "measure_id": scored["measure_id"],
            "wave": scored["wave"],
            "date": scored["date"],
            "value": scored["score"],
        }))
    if not parts:
        return pd.DataFrame(columns=["unit_level", "unit_id", "measure_id", "wave", "date", "value"])
    out = pd.concat(parts, ignore_index=True)
    out["date"] = pd.to_datetime(out["date"]).astype("datetime64[ns]")
    return out
