"""Score item responses into scale scores, per respondent (or document) and wave.

:func:`score` takes item responses in long form (one row per unit x wave x item) or wide form
(one row per unit x wave, one column per item code), validates every cell, applies reverse
keying, the scoring rule of every subscale and the missing-item rule, and returns a
:class:`ScoreResult` whose ``report`` says how many scores were not computed and why.
:func:`score_responses_table` does the same for the study's long item-response table holding
several measures at once (used by ``Study.panel``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from functools import cached_property

import numpy as np
import pandas as pd
from scipy import stats

from coevidence.exceptions import (
    MeasureError,
    MissingDataWarning,
    OptionError,
    UnverifiedMeasureWarning,
)
from coevidence.measures._matrix import ResponseMatrix, build_long, build_wide
from coevidence.measures._rules import REASONS, ScaleScores, score_matrix
from coevidence.results.base import TIDY_COLUMNS, ResultBase
from coevidence.schemas.measure import MeasureDefinition

__all__ = ["ScoreResult", "score", "score_responses_table"]


def _resolve(measure: MeasureDefinition | str) -> MeasureDefinition:
    if isinstance(measure, MeasureDefinition):
        return measure
    from coevidence.measures.registry import get_measure

    return get_measure(str(measure))


def _warn_unverified(measure: MeasureDefinition) -> None:
    if measure.verified is False:
        warnings.warn(
            f"measure {measure.id!r} ({measure.instrument or measure.name}) is not verified "
            f"against its source paper: {measure.verification_note or 'see its documentation'}",
            UnverifiedMeasureWarning,
            stacklevel=3,
        )


class ScoreResult(ResultBase):
    """Scale scores with a report of every score not computed.

    Attributes
    ----------
    measure : MeasureDefinition
        The definition used.
    scores : pandas.DataFrame
        One row per unit (x wave), sorted by the key columns; the keys then one float column per
        scale (NaN where not scored).
    report : pandas.DataFrame
        One row per scale: ``n_units``, ``n_scored``, ``n_not_scored`` and the count for each
        reason (``no_items_answered``, ``too_few_items``, ``component_not_scored``,
        ``scorer_returned_nan``), and ``n_prorated`` (scored from a partial item set).
    notes : tuple of str
        Other facts a reader must know (items nobody answered, an unverified definition).
    keys : tuple of str
        The identifier columns.

    Examples
    --------
    >>> import pandas as pd
    >>> from coevidence.schemas.measure import MeasureDefinition
    >>> m = MeasureDefinition(id="m", response_min=1, response_max=5, items=("a", "b"),
    ...     missing={"min_answered": 1})
    >>> r = score(pd.DataFrame({"respondent_id": [1, 1, 2], "item": ["a", "b", "a"],
    ...     "value": [4, 2, 5]}), m)
    >>> r.scores["total"].tolist()
    [3.0, 5.0]
    >>> int(r.report.loc[0, "n_prorated"])
    1
    """

    def __init__(
        self,
        measure: MeasureDefinition,
        keys: Sequence[str],
        key_frame: pd.DataFrame,
        scales: Mapping[str, ScaleScores],
        notes: Sequence[str],
        wave: str | None = None,
    ) -> None:
        self.measure = measure
        self.keys = tuple(keys)
        self.wave = wave
        self._key_frame = key_frame
        self._scales = dict(scales)
        self.notes = tuple(notes)
        self._freeze()

    @cached_property
    def scores(self) -> pd.DataFrame:
        out = self._key_frame.copy()
        for sid, sc in self._scales.items():
            out[sid] = sc.score
        return out

    @cached_property
    def report(self) -> pd.DataFrame:
        rows = []
        for sid, sc in self._scales.items():
            counts = np.bincount(sc.reason, minlength=len(REASONS))
            row = {
                "scale": sid,
                "n_items": sc.n_total,
                "min_answered": sc.n_required,
                "n_units": len(sc.score),
                "n_scored": int(counts[0]),
                "n_not_scored": int(counts[1:].sum()),
            }
            row.update({f"n_{REASONS[i]}": int(counts[i]) for i in range(1, len(REASONS))})
            row["n_prorated"] = int(sc.prorated.sum())
            rows.append(row)
        return pd.DataFrame(rows)

    def long(self) -> pd.DataFrame:
        """One row per unit x scale: keys, ``scale``, ``score``, ``n_items_answered``,
        ``n_items``, ``scored`` and ``reason`` (empty when scored).

        Examples
        --------
        >>> import pandas as pd
        >>> from coevidence.schemas.measure import MeasureDefinition
        >>> m = MeasureDefinition(id="m", response_min=1, response_max=5, items=("a",))
        >>> score(pd.DataFrame({"respondent_id": [1], "item": ["a"], "value": [4]}), m
        ...       ).long()["score"].tolist()
        [4.0]
        """
        parts = []
        reasons = np.array(REASONS, dtype=object)
        for sid, sc in self._scales.items():
            part = self._key_frame.copy()
            part["scale"] = sid
            part["score"] = sc.score
            part["n_items_answered"] = sc.n_answered.astype(np.int64)
            part["n_items"] = sc.n_total
            part["scored"] = sc.reason == 0
            part["reason"] = reasons[sc.reason]
            parts.append(part)
        return pd.concat(parts, ignore_index=True)

    def aggregate(self, unit: str = "org_id") -> pd.DataFrame:
        """Aggregate scored units to ``unit`` (e.g. the organisation) by the measure's rule.

        Parameters
        ----------
        unit : str, default "org_id"
            A key column of the scores (pass it to :func:`score` with ``keep=``).

        Returns
        -------
        pandas.DataFrame
            One row per unit (x wave) x scale: ``unit``, [``wave``], ``scale``,
            ``n_respondents`` (scored), ``n_not_scored``, ``score`` (the measure's
            ``aggregation.method`` of the scored respondents; NaN below
            ``aggregation.min_respondents``) and ``aggregated`` (bool). Check agreement with
            :func:`~coevidence.measures.agreement.agreement` before interpreting the means.

        Examples
        --------
        >>> import pandas as pd
        >>> from coevidence.schemas.measure import MeasureDefinition
        >>> m = MeasureDefinition(id="m", response_min=1, response_max=5, items=("a",),
        ...     aggregation={"min_respondents": 2})
        >>> d = pd.DataFrame({"respondent_id": [1, 2, 3], "org_id": ["o", "o", "p"],
        ...     "a": [2, 4, 5]})
        >>> score(d, m, keep=["org_id"]).aggregate("org_id")["score"].tolist()
        [3.0, nan]
        """
        rule = self.measure.aggregation
        if rule.method == "none":
            raise MeasureError(
                pd.DataFrame([{"table": "scores", "row": None, "column": None, "value": None,
                               "rule": f"measure {self.measure.id!r} must not be aggregated "
                                       "(aggregation.method='none')"}]),
                what=f"measure {self.measure.id!r}",
            )
        if unit not in self.keys:
            raise MeasureError(
                pd.DataFrame([{"table": "scores", "row": None, "column": unit, "value": None,
                               "rule": "not a key of the scores; pass it to score(keep=[...])"}]),
                what="scores",
            )
        by = [unit] + ([self.wave] if self.wave is not None and self.wave != unit else [])
        long = self.long()
        grouped = long.groupby([*by, "scale"], sort=True, observed=True, dropna=False)
        out = grouped.agg(
            n_respondents=("scored", "sum"),
            n_not_scored=("scored", lambda v: int((~v).sum())),
            score=("score", rule.method),
        ).reset_index()
        out["n_respondents"] = out["n_respondents"].astype(int)
        out["aggregated"] = out["n_respondents"] >= rule.min_respondents
        out["score"] = out["score"].where(out["aggregated"])
        return out

    # ---- ResultBase ----------------------------------------------------------------------
    def tidy(self, conf_level: float = 0.95) -> pd.DataFrame:
        """Mean score per scale (term) over scored units, t-based interval; df = n - 1."""
        rows = []
        for sid, sc in self._scales.items():
            v = sc.score[~np.isnan(sc.score)]
            n = len(v)
            est = float(v.mean()) if n else np.nan
            se = float(v.std(ddof=1) / np.sqrt(n)) if n > 1 else np.nan
            df = n - 1 if n > 1 else np.nan
            q = stats.t.ppf(0.5 + conf_level / 2, df) if n > 1 else np.nan
            rows.append(
                {"term": sid, "estimate": est, "std_error": se, "statistic": np.nan, "df": df,
                 "p_value": np.nan, "conf_low": est - q * se, "conf_high": est + q * se}
            )
        return pd.DataFrame(rows, columns=list(TIDY_COLUMNS))

    def glance(self) -> pd.DataFrame:
        rep = self.report
        return pd.DataFrame(
            [{
                "measure_id": self.measure.id,
                "n_units": len(self._key_frame),
                "n_scales": len(self._scales),
                "n_scores": int(rep["n_units"].sum()),
                "n_not_scored": int(rep["n_not_scored"].sum()),
                "n_prorated": int(rep["n_prorated"].sum()),
                "verified": self.measure.verified,
            }]
        )

    def summary(self) -> str:
        m = self.measure
        rules = ", ".join(f"{s.id}={m.rule(s).value}" for s in m.scales())
        lines = [
            f"Scores of {m.id!r} ({m.instrument or m.name or 'custom measure'})",
            f"Estimator: item scoring ({rules}); reverse keyed: {list(m.reverse_items) or 'none'}",
            "Covariance type: none (descriptive means of scored units)",
            "Df method: n - 1 per scale",
            f"Units: {len(self._key_frame)} (keys: {', '.join(self.keys)})",
            "",
            self.report.to_string(index=False),
            "",
            self.tidy().to_string(index=False, float_format=lambda v: f"{v:.4g}"),
        ]
        lines += [f"Note: {n}" for n in self.notes]
        return "\n".join(lines)


def _notes(measure: MeasureDefinition, mat: ResponseMatrix) -> list[str]:
    notes = []
    if mat.items_absent:
        verb = "administered" if measure.full_item_set_administered else "expected"
        notes.append(
            f"{len(mat.items_absent)} item(s) of {measure.id!r} have no response in the data "
            f"({', '.join(mat.items_absent)}) although the full item set is {verb}"
        )
    if not measure.full_item_set_administered:
        notes.append(f"{measure.id!r}: the full item set was not administered")
    if measure.verified is False:
        notes.append(f"{measure.id!r} is not verified against its source paper")
    return notes


def _warn_missing(measure: MeasureDefinition, scales: Mapping[str, ScaleScores]) -> None:
    n_bad = sum(int((sc.reason != 0).sum()) for sc in scales.values())
    if n_bad:
        total = sum(len(sc.reason) for sc in scales.values())
        warnings.warn(
            f"{n_bad} of {total} scale scores of {measure.id!r} were not computed "
            "(missing-item rule); see result.report",
            MissingDataWarning,
            stacklevel=3,
        )


def score(
    responses: pd.DataFrame,
    measure: MeasureDefinition | str,
    *,
    unit: str = "respondent_id",
    wave: str | None = "wave",
    item: str = "item",
    value: str = "value",
    keep: Sequence[str] = (),
    layout: str = "auto",
) -> ScoreResult:
    """Score item responses into scale scores per unit and wave.

    Parameters
    ----------
    responses : pandas.DataFrame
        Long (columns ``unit``, [``wave``], ``item``, ``value``) or wide (``unit``,
        [``wave``], one column per item code). Never modified. In a long table other columns
        (e.g. ``date``) are ignored, except ``measure_id``, which must equal the measure's
        id; in a wide table every other column must be an item code or listed in ``keep``.
    measure : MeasureDefinition or str
        The definition, or the id of a registered one.
    unit : str, default "respondent_id"
        Column identifying the responding unit (person, document, organisation).
    wave : str or None, default "wave"
        Column identifying the wave; ignored when absent from ``responses``, None for no wave.
    item, value : str
        Item-code and response columns of a long table.
    keep : sequence of str
        Further identifier columns carried into the scores (e.g. ``org_id``, ``arm``); they
        are part of the key, so they must be constant within a unit and wave.
    layout : {"auto", "long", "wide"}
        ``auto`` = long when ``item`` and ``value`` columns exist.

    Returns
    -------
    ScoreResult
        ``.scores`` (one row per unit x wave), ``.long()``, ``.report`` (scores not
        computed and why), ``.notes``.

    Raises
    ------
    MeasureError
        Listing every bad cell: unknown item code, wrong type, out of range, non-whole value on a
        discrete scale, missing identifier, duplicated cell.

    Warns
    -----
    UnverifiedMeasureWarning
        The definition is flagged ``verified=False``.
    MissingDataWarning
        Some scores were not computed (counts in the message and in ``report``).

    Examples
    --------
    >>> import pandas as pd
    >>> from coevidence.schemas.measure import MeasureDefinition
    >>> m = MeasureDefinition(id="m", scoring="sum", response_min=1, response_max=5,
    ...     items=("a", "b"), reverse_items=("b",))
    >>> wide = pd.DataFrame({"respondent_id": [1, 2], "a": [5, 3], "b": [1, 3]})
    >>> score(wide, m).scores["total"].tolist()
    [10.0, 6.0]
    """
    if not isinstance(responses, pd.DataFrame):
        raise TypeError(f"responses must be a pandas DataFrame, got {type(responses).__name__}")
    m = _resolve(measure)
    if layout not in ("auto", "long", "wide"):
        raise OptionError(f"layout must be one of 'auto', 'long', 'wide'; got {layout!r}")
    use_wave = wave is not None and wave in responses.columns
    keys = [unit] + ([wave] if use_wave else []) + list(keep)
    missing_cols = [k for k in keys if k not in responses.columns]
    is_long = layout == "long" or (
        layout == "auto" and item in responses.columns and value in responses.columns
    )
    if is_long:
        missing_cols += [c for c in (item, value) if c not in responses.columns]
    if missing_cols:
        raise MeasureError(
            pd.DataFrame([{"table": "responses", "row": None, "column": c, "value": None,
                           "rule": "required column is missing"} for c in missing_cols])
        )
    _warn_unverified(m)
    if is_long:
        extra = [c for c in responses.columns if c not in (*keys, item, value)]
        if "measure_id" in extra:
            other = responses["measure_id"].ne(m.id).to_numpy()
            if other.any():
                rows = np.flatnonzero(other)
                raise MeasureError(
                    pd.DataFrame({"table": "responses", "row": rows, "column": "measure_id",
                                  "value": responses["measure_id"].to_numpy()[rows],
                                  "rule": f"row of another measure than {m.id!r} "
                                          "(use score_responses_table for several)"})
                )
        mat = build_long(responses, m, keys, item, value)
    else:
        mat = build_wide(responses, m, keys)
    if len(mat.failures):
        raise MeasureError(mat.failures, what=f"item responses for measure {m.id!r}")
    scales = score_matrix(m, mat.values)
    _warn_missing(m, scales)
    return ScoreResult(m, keys, mat.keys, scales, _notes(m, mat), wave if use_wave else None)


_TABLE_KEYS = ("respondent_id", "org_id", "wave")
_OUT_COLUMNS = (
    "respondent_id", "org_id", "wave", "measure_id", "scale", "score",
    "n_items_answered", "n_items", "scored", "reason",
)


def score_responses_table(
    responses: pd.DataFrame, measures: Mapping[str, MeasureDefinition]
) -> pd.DataFrame:
    """Score the study's long item-response table, all measures at once.

    Parameters
    ----------
    responses : pandas.DataFrame
        Columns ``respondent_id``, ``org_id``, ``measure_id``, ``wave``, ``item``, ``value``
        (other columns such as ``date`` are ignored). Never modified.
    measures : mapping of str to MeasureDefinition
        Definition of every ``measure_id`` in the table.

    Returns
    -------
    pandas.DataFrame
        One row per respondent x wave x scale: ``respondent_id``, ``org_id``, ``wave``,
        ``measure_id``, ``scale``, ``score``, ``n_items_answered``, ``n_items``, ``scored``,
        ``reason``. ``measure_id`` is the measure's id for its primary scale and
        ``"<measure id>.<scale id>"`` for the other scales, so a panel can ask for either.

    Raises
    ------
    MeasureError
        One error listing every bad cell across all measures (row = position in
        ``responses``), including measure ids without a definition.

    Examples
    --------
    >>> import pandas as pd
    >>> from coevidence.schemas.measure import MeasureDefinition
    >>> m = MeasureDefinition(id="m", response_min=1, response_max=5, items=("a", "b"))
    >>> t = pd.DataFrame({"respondent_id": [1, 1], "org_id": [9, 9], "measure_id": "m",
    ...     "wave": 0, "item": ["a", "b"], "value": [2, 4]})
    >>> score_responses_table(t, {"m": m})[["measure_id", "score"]].to_dict("records")
    [{'measure_id': 'm', 'score': 3.0}]
    """
    required = [*_TABLE_KEYS, "measure_id", "item", "value"]
    missing_cols = [c for c in required if c not in responses.columns]
    if missing_cols:
        raise MeasureError(
            pd.DataFrame([{"table": "responses", "row": None, "column": c, "value": None,
                           "rule": "required column is missing"} for c in missing_cols])
        )
    codes, ids = pd.factorize(responses["measure_id"])
    failures: list[pd.DataFrame] = []
    pieces: list[pd.DataFrame] = []
    if (codes < 0).any():
        rows = np.flatnonzero(codes < 0)
        failures.append(pd.DataFrame({"table": "responses", "row": rows, "column": "measure_id",
                                      "value": None, "rule": "missing measure id"}))
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(ids) + 1))
    for j, mid in enumerate(ids):
        rows = order[bounds[j]:bounds[j + 1]]
        if mid not in measures:
            failures.append(pd.DataFrame({"table": "responses", "row": rows, "column": "measure_id",
                                          "value": mid, "rule": "no definition for this measure"}))
            continue
        m = measures[mid]
        _warn_unverified(m)
        sub = responses.iloc[rows]
        mat = build_long(sub, m, list(_TABLE_KEYS), "item", "value", rows=rows)
        if len(mat.failures):
            failures.append(mat.failures)
            continue
        scales = score_matrix(m, mat.values)
        _warn_missing(m, scales)
        res = ScoreResult(m, _TABLE_KEYS, mat.keys, scales, _notes(m, mat), "wave").long()
        primary = m.primary_scale()
        res["measure_id"] = np.where(res["scale"].eq(primary), m.id, m.id + "." + res["scale"])
        pieces.append(res)
    if failures:
        fail = pd.concat(failures, ignore_index=True)
        raise MeasureError(fail.sort_values("row", kind="stable"), what="the item-response table")
    if not pieces:
        return pd.DataFrame(columns=list(_OUT_COLUMNS))
    return pd.concat(pieces, ignore_index=True)[list(_OUT_COLUMNS)]
