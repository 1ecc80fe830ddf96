"""Scale scores from a validated units x items matrix: one vectorised function per rule."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from coevidence.exceptions import MeasureError
from coevidence.schemas.measure import MeasureDefinition, ScoringRule, Subscale

__all__ = ["REASONS", "ScaleScores", "reverse_key", "score_matrix"]

#: Why a score was not computed (codes stored per unit and scale; 0 = scored).
REASONS = ("", "no_items_answered", "too_few_items", "component_not_scored", "scorer_returned_nan")
_NONE, _NO_ITEMS, _TOO_FEW, _COMPONENT, _SCORER_NAN = range(5)


@dataclass(frozen=True)
class ScaleScores:
    """Scores of one scale: ``score`` (NaN when not scored), counts and reason codes."""

    score: np.ndarray
    n_answered: np.ndarray
    n_required: int
    n_total: int
    reason: np.ndarray  # int codes into REASONS
    prorated: np.ndarray  # bool: scored from a partial item set


def reverse_key(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Reflect responses within ``[lo, hi]``: ``lo + hi - x`` (NaN stays NaN).

    Examples
    --------
    >>> reverse_key(np.array([1.0, 5.0, np.nan]), 1, 5)
    array([ 5.,  1., nan])
    """
    return (lo + hi) - np.asarray(values, dtype=float)


def _reasons(n_answered: np.ndarray, required: int) -> np.ndarray:
    reason = np.zeros(len(n_answered), dtype=np.int8)
    reason[n_answered < required] = _TOO_FEW
    reason[n_answered == 0] = _NO_ITEMS
    return reason


def _item_scale(
    measure: MeasureDefinition, s: Subscale, x: np.ndarray, col: dict[str, int]
) -> ScaleScores:
    rule = measure.rule(s)
    miss = measure.missing_rule(s)
    if rule == ScoringRule.difference_sum:
        a = x[:, [col[p[0]] for p in s.pairs]]
        b = x[:, [col[p[1]] for p in s.pairs]]
        sub = a - b
    else:
        sub = x[:, [col[i] for i in s.items]]
    answered = ~np.isnan(sub)
    n_ans = answered.sum(axis=1)
    n = sub.shape[1]
    req = miss.required(n)
    reason = _reasons(n_ans, req)
    ok = reason == _NONE
    with np.errstate(invalid="ignore", divide="ignore"):
        if rule == ScoringRule.mean:
            total = np.where(answered, sub, 0.0).sum(axis=1)
            score = total / n_ans
        elif rule in (ScoringRule.sum, ScoringRule.difference_sum):
            score = np.where(answered, sub, 0.0).sum(axis=1)
            if miss.prorate:
                score = score * n / n_ans
        elif rule == ScoringRule.weighted:
            w = np.array([s.weights[i] for i in s.items], dtype=float)
            score = (np.where(answered, sub, 0.0) * w).sum(axis=1)
            if miss.prorate:
                w_ans = (answered * w).sum(axis=1)
                score = score * w.sum() / w_ans
        elif rule == ScoringRule.custom:
            fn = measure.resolve_scorer()
            assert fn is not None  # guaranteed by the definition's validator
            rows = np.flatnonzero(ok)  # the scorer only sees rows the missing rule accepts
            out = np.asarray(fn(sub[rows].copy(), tuple(s.items)), dtype=float).reshape(-1)
            if out.shape != (len(rows),):
                raise MeasureError(
                    _scorer_failure(measure, s, f"custom scorer returned shape {out.shape}, "
                                    f"expected ({len(rows)},)"),
                    what=f"measure {measure.id!r}",
                )
            score = np.full(sub.shape[0], np.nan)
            score[rows] = out
            reason[ok & np.isnan(score)] = _SCORER_NAN
            ok = reason == _NONE
        else:  # pragma: no cover - composites are handled by the caller
            raise AssertionError(rule)
    score = np.where(ok, score, np.nan)
    return ScaleScores(score, n_ans, req, n, reason, ok & (n_ans < n))


def _scorer_failure(measure: MeasureDefinition, s: Subscale, rule: str):  # noqa: ANN202
    import pandas as pd

    return pd.DataFrame(
        [{"table": "measure", "row": None, "column": f"{measure.id}.{s.id}", "value": None,
          "rule": rule}]
    )


def _composite(
    measure: MeasureDefinition, s: Subscale, done: dict[str, ScaleScores]
) -> ScaleScores:
    rule = measure.rule(s)
    miss = measure.missing_rule(s)
    cols = []
    for c in s.components:
        v = done[c].score
        if c in s.reverse_components:
            rng = measure.scale_range(c)
            if rng is None:
                raise MeasureError(
                    _scorer_failure(measure, s, f"cannot reverse component {c!r}: its range is "
                                    "unknown (custom scorer)"),
                    what=f"measure {measure.id!r}",
                )
            v = reverse_key(v, *rng)
        cols.append(v)
    sub = np.column_stack(cols)
    answered = ~np.isnan(sub)
    n_ans = answered.sum(axis=1)
    n = sub.shape[1]
    req = miss.required(n)
    reason = np.where(n_ans < req, _COMPONENT, _NONE).astype(np.int8)
    ok = reason == _NONE
    with np.errstate(invalid="ignore", divide="ignore"):
        total = np.where(answered, sub, 0.0).sum(axis=1)
        if rule == ScoringRule.composite:
            score = total / n_ans
        else:
            score = total * n / n_ans if miss.prorate else total
    score = np.where(ok, score, np.nan)
    return ScaleScores(score, n_ans, req, n, reason, ok & (n_ans < n))


def score_matrix(measure: MeasureDefinition, values: np.ndarray) -> dict[str, ScaleScores]:
    """Score every scale of ``measure`` from a units x ``measure.items`` matrix.

    Reverse-keyed items are reflected first; composites use the scores computed before them.

    Examples
    --------
    >>> from coevidence.schemas.measure import MeasureDefinition
    >>> m = MeasureDefinition(id="m", scoring="sum", response_min=1, response_max=5,
    ...     items=("a", "b"), reverse_items=("b",))
    >>> score_matrix(m, np.array([[5.0, 1.0]]))["total"].score
    array([10.])
    """
    x = np.asarray(values, dtype=float)
    col = {code: j for j, code in enumerate(measure.items)}
    if measure.reverse_items:
        x = x.copy()
        idx = [col[i] for i in measure.reverse_items]
        x[:, idx] = reverse_key(x[:, idx], measure.response_min, measure.response_max)
    done: dict[str, ScaleScores] = {}
    for s in measure.scales():
        if measure.rule(s) in (ScoringRule.composite, ScoringRule.composite_sum):
            done[s.id] = _composite(measure, s, done)
        else:
            done[s.id] = _item_scale(measure, s, x, col)
    return done
