"""coevidence.testing: check_measure passes good definitions and catches broken ones."""

from __future__ import annotations

import builtins
import importlib
import sys

import numpy as np
import pytest

from coevidence.exceptions import MissingExtraError
from coevidence.measures.registry import get_measure, list_measures
from coevidence.schemas.measure import MeasureDefinition
from coevidence.testing import check_measure


@pytest.mark.parametrize("mid", sorted(list_measures().query("source == 'builtin'")["id"]))
def test_every_builtin_passes(mid):
    table = check_measure(get_measure(mid))
    assert table["passed"].all(), table


def test_custom_scorer_that_ignores_the_range_fails():
    leaky = MeasureDefinition(id="leaky", response_min=1, response_max=5, items=("a", "b"),
                              scoring="custom", scorer=lambda v, items: np.nanmean(v, axis=1))
    assert check_measure(leaky)["passed"].all()  # a well-behaved custom scorer passes

    calls = {"n": 0}

    def stateful(values, items):
        calls["n"] += 1
        return np.nanmean(values, axis=1) + calls["n"]

    bad = MeasureDefinition(id="bad", response_min=1, response_max=5, items=("a", "b"),
                            scoring="custom", scorer=stateful)
    with pytest.raises(AssertionError, match="scoring_deterministic"):
        check_measure(bad)
    table = check_measure(bad, raise_on_failure=False)
    assert not table.set_index("check").loc["scoring_deterministic", "passed"]


def test_position_dependent_scorer_fails():
    def first_row_bias(values, items):
        out = np.nanmean(values, axis=1)
        out[0] += 100  # depends on position, not on the respondent
        return out

    m = MeasureDefinition(id="pos", response_min=1, response_max=5, items=("a", "b"),
                          scoring="custom", scorer=first_row_bias)
    table = check_measure(m, raise_on_failure=False).set_index("check")
    assert not table.loc["batch_independent", "passed"]


def test_rejects_non_definitions():
    with pytest.raises(TypeError):
        check_measure({"id": "x"})  # type: ignore[arg-type]


def test_strategies_need_the_testing_extra(monkeypatch):
    real_import = builtins.__import__

    def no_hypothesis(name, *args, **kwargs):
        if name == "hypothesis" or name.startswith("hypothesis."):
            raise ImportError("No module named 'hypothesis'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "coevidence.testing.strategies", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_hypothesis)
    with pytest.raises(MissingExtraError, match=r"coevidence\[testing\]"):
        importlib.import_module("coevidence.testing.strategies")


from coevidence.testing import CHECKS, parametrize_with_checks  # noqa: E402

_AIM = get_measure("aim")


@parametrize_with_checks([_AIM, get_measure("brownson_ebdm_gaps")])
def test_parametrized_checks(definition, check):
    """Each generated check passes on a conforming built-in (it raises AssertionError if not)."""
    assert callable(check)
    check()


def test_parametrize_covers_every_check():
    table = check_measure(_AIM)
    assert tuple(table["check"]) == CHECKS
