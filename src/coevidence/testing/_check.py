"""``check_measure``: the conformance check a measure definition must pass."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from coevidence.exceptions import CoevidenceWarning, MeasureError
from coevidence.measures._rules import reverse_key
from coevidence.measures.scoring import score
from coevidence.schemas.measure import MeasureDefinition
from coevidence.testing._runner import run_checks

__all__ = ["CHECKS", "check_measure", "parametrize_with_checks", "random_responses"]


def random_responses(
    measure: MeasureDefinition, n: int = 40, *, missing: float = 0.0, seed: int = 0
) -> pd.DataFrame:
    """Wide random responses (``respondent_id`` + one column per item) within the range.

    Examples
    --------
    >>> from coevidence.measures.registry import get_measure
    >>> random_responses(get_measure("aim"), n=3).shape
    (3, 5)
    """
    rng = np.random.default_rng(seed)
    lo, hi = measure.response_min, measure.response_max
    k = len(measure.items)
    if measure.discrete:
        x = rng.integers(int(np.ceil(lo)), int(np.floor(hi)) + 1, size=(n, k)).astype(float)
    else:
        x = rng.uniform(lo, hi, size=(n, k))
    if missing:
        x[rng.random((n, k)) < missing] = np.nan
    frame = pd.DataFrame(x, columns=list(measure.items))
    frame.insert(0, "respondent_id", np.arange(n))
    return frame


def _quiet(fn: Callable[[], object]) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CoevidenceWarning)
        return fn()


def _checks(m: MeasureDefinition, n: int, seed: int) -> list[tuple[str, Callable[[], str]]]:
    full = random_responses(m, n, seed=seed)
    items = list(m.items)

    def json_round_trip() -> str:
        if m.scorer is not None and not isinstance(m.scorer, str):
            # a Python callable is not serialised; everything else must round-trip
            data = json.loads(m.model_dump_json())
            back = MeasureDefinition.model_validate({**data, "scorer": m.scorer})
            note = "ok (callable scorer excluded from JSON)"
        else:
            back = MeasureDefinition.model_validate_json(m.model_dump_json())
            note = "ok"
        assert back == m, "definition does not survive a JSON round trip"
        return note

    def full_responses_all_scored() -> str:
        res = _quiet(lambda: score(full, m))
        assert int(res.report["n_not_scored"].sum()) == 0, "complete responses left unscored"
        for s in m.scales():
            v = res.scores[s.id].to_numpy()
            assert np.isfinite(v).all(), f"scale {s.id!r} has non-finite scores"
            rng = m.scale_range(s.id)
            if rng is not None:
                tol = 1e-9 * max(1.0, abs(rng[0]), abs(rng[1]))
                assert (v >= rng[0] - tol).all() and (v <= rng[1] + tol).all(), (
                    f"scale {s.id!r} scores outside its range {rng}")
        return f"{len(full)} respondents, {len(m.scales())} scales"

    def row_order_invariant() -> str:
        a = _quiet(lambda: score(full, m)).scores
        shuffled = full.sample(frac=1.0, random_state=seed)
        b = _quiet(lambda: score(shuffled, m)).scores
        pd.testing.assert_frame_equal(a, b)
        return "ok"

    def long_equals_wide() -> str:
        long = full.melt(id_vars="respondent_id", var_name="item", value_name="value")
        a = _quiet(lambda: score(full, m)).scores
        b = _quiet(lambda: score(long, m)).scores
        pd.testing.assert_frame_equal(a, b, check_dtype=False)
        return "ok"

    def reverse_twice_identity() -> str:
        x = full[items].to_numpy()
        back = reverse_key(reverse_key(x, m.response_min, m.response_max),
                           m.response_min, m.response_max)
        np.testing.assert_allclose(back, x)
        return "ok"

    def missing_rule_monotone() -> str:
        some = random_responses(m, n, missing=0.3, seed=seed + 1)
        more = some.copy()
        rng = np.random.default_rng(seed + 2)
        hide = rng.random((n, len(items))) < 0.3
        more[items] = more[items].mask(hide)
        a = _quiet(lambda: score(some, m)).scores
        b = _quiet(lambda: score(more, m)).scores
        for s in m.scales():
            gained = a[s.id].isna() & b[s.id].notna()
            assert not gained.any(), f"scale {s.id!r}: removing answers made a score appear"
        return "ok"

    def out_of_range_rejected() -> str:
        bad = full.copy()
        bad.iloc[0, 1] = m.response_max + 1
        try:
            _quiet(lambda: score(bad, m))
        except MeasureError as exc:
            assert len(exc.failures) >= 1
            return "ok"
        raise AssertionError("an out-of-range response was accepted")

    def unknown_item_rejected() -> str:
        bad = full.assign(__not_an_item__=m.response_min)
        try:
            _quiet(lambda: score(bad, m))
        except MeasureError:
            return "ok"
        raise AssertionError("an unknown item code was accepted")

    def batch_independent() -> str:
        a = _quiet(lambda: score(full, m)).scores
        half = len(full) // 2
        parts = [_quiet(lambda p=p: score(p, m)).scores for p in (full.iloc[:half],
                                                                  full.iloc[half:])]
        b = pd.concat(parts, ignore_index=True)
        pd.testing.assert_frame_equal(a, b, check_dtype=False)
        return "a respondent's score does not depend on who else is scored"

    def scoring_deterministic() -> str:
        a = _quiet(lambda: score(full, m)).scores
        b = _quiet(lambda: score(full, m)).scores
        pd.testing.assert_frame_equal(a, b)
        return "ok"

    return [
        ("json_round_trip", json_round_trip),
        ("full_responses_all_scored", full_responses_all_scored),
        ("row_order_invariant", row_order_invariant),
        ("long_equals_wide", long_equals_wide),
        ("reverse_twice_identity", reverse_twice_identity),
        ("missing_rule_monotone", missing_rule_monotone),
        ("out_of_range_rejected", out_of_range_rejected),
        ("unknown_item_rejected", unknown_item_rejected),
        ("batch_independent", batch_independent),
        ("scoring_deterministic", scoring_deterministic),
    ]


#: Names of the conformance checks, in the order they run.
CHECKS = (
    "json_round_trip", "full_responses_all_scored", "row_order_invariant", "long_equals_wide",
    "reverse_twice_identity", "missing_rule_monotone", "out_of_range_rejected",
    "unknown_item_rejected", "batch_independent", "scoring_deterministic",
)


def parametrize_with_checks(definitions: Sequence[MeasureDefinition]):  # noqa: ANN201
    """A ``pytest.mark.parametrize`` decorator: one test per definition x check.

    The decorated test receives ``definition`` and ``check`` (a callable running that single
    check, raising ``AssertionError`` on failure), like scikit-learn's helper of the same name.

    Examples
    --------
    >>> from coevidence.measures.registry import get_measure
    >>> mark = parametrize_with_checks([get_measure("aim")])
    >>> # @mark
    >>> # def test_my_measure(definition, check):
    >>> #     check()
    """
    import pytest

    params, ids = [], []
    for d in definitions:
        for name in CHECKS:
            params.append((d, _single(d, name)))
            ids.append(f"{d.id}-{name}")
    return pytest.mark.parametrize(("definition", "check"), params, ids=ids)


def _single(definition: MeasureDefinition, name: str) -> Callable[[], None]:
    def run() -> None:
        fn = dict(_checks(definition, 40, 0))[name]
        fn()

    run.__name__ = name
    return run


def check_measure(
    definition: MeasureDefinition, *, n: int = 40, seed: int = 0, raise_on_failure: bool = True
) -> pd.DataFrame:
    """Run the conformance checks every measure definition must pass.

    Checks: JSON round trip; complete random responses are all scored, finite and within each
    scale's theoretical range; scores do not depend on row order, nor on which other
    respondents are scored in the same call (batch independence); long and wide input agree;
    reverse keying twice is the identity; the missing-item rule is monotone (hiding answers
    never makes a score appear); out-of-range responses and unknown item codes raise
    :class:`~coevidence.exceptions.MeasureError`; scoring is deterministic (custom scorers).

    Parameters
    ----------
    definition : MeasureDefinition
    n : int, default 40
        Random respondents per check.
    seed : int, default 0
    raise_on_failure : bool, default True
        Raise ``AssertionError`` listing every failed check; otherwise just return the table.

    Returns
    -------
    pandas.DataFrame
        One row per check: ``check``, ``passed``, ``detail``.

    Examples
    --------
    >>> m = MeasureDefinition(id="mine", scoring="sum", response_min=0, response_max=3,
    ...     items=("a", "b", "c"), reverse_items=("c",))
    >>> bool(check_measure(m)["passed"].all())
    True
    """
    if not isinstance(definition, MeasureDefinition):
        raise TypeError(f"expected a MeasureDefinition, got {type(definition).__name__}")
    return run_checks(_checks(definition, n, seed), f"measure {definition.id!r} (conformance)",
                      raise_on_failure=raise_on_failure)
