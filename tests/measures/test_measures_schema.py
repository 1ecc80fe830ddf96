"""MeasureDefinition: validation rules, derived structure, JSON round trip, no import warning."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from coevidence.schemas.measure import (
    MeasureDefinition,
    MissingRule,
    ScoringRule,
    Subscale,
)

BASE = {"id": "m", "response_min": 1, "response_max": 5, "items": ("a", "b", "c", "d")}


def make(**kw):
    return MeasureDefinition(**{**BASE, **kw})


def test_import_emits_no_warning():
    code = "import warnings; warnings.simplefilter('error'); import coevidence.schemas.measure"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_construct_field_is_the_value():
    m = make(construct="capacity")
    assert m.construct == "capacity"
    assert m.model_dump()["construct"] == "capacity"


def test_foundation_fields_still_work():
    m = make(level="organization", construct="readiness", name="x")
    assert (m.id, m.items, m.response_min, m.response_max, m.level) == (
        "m", ("a", "b", "c", "d"), 1, 5, "organization")
    assert m.subscales == ()


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"response_min": 5, "response_max": 5}, "must exceed"),
        ({"items": ("a", "a")}, "unique"),
        ({"items": ()}, "at least 1"),
        ({"reverse_items": ("zz",)}, "reverse_items"),
        ({"subscales": [{"id": "s", "items": ["zz"]}]}, "unknown items"),
        ({"subscales": [{"id": "s", "items": ["a"]}, {"id": "s", "items": ["b"]}]}, "unique"),
        ({"subscales": [{"id": "s", "items": ["a", "a"]}]}, "repeats"),
        ({"subscales": [{"id": "s", "items": ["a"], "scoring": "weighted"}]}, "no weight"),
        ({"subscales": [{"id": "s", "items": ["a"], "scoring": "difference_sum"}]}, "pairs"),
        ({"subscales": [{"id": "s", "items": ["a"], "scoring": "custom"}]}, "scorer"),
        ({"subscales": [{"id": "t", "scoring": "composite", "components": ["s"]},
                        {"id": "s", "items": ["a"]}]}, "defined before"),
        ({"subscales": [{"id": "s", "items": ["a"], "weights": {"b": 1.0}}]}, "weights for items"),
        ({"primary": "nope"}, "primary"),
        ({"scorer": "no_colon"}, "module:function"),
        ({"scorer": 3}, "callable"),
        ({"unknown_field": 1}, "Extra inputs"),
        ({"scoring": "median"}, "scoring"),
        ({"missing": {"min_answered": 0}}, "greater than or equal"),
        ({"missing": {"min_fraction": 1.5}}, "less than or equal"),
        ({"aggregation": {"method": "max"}}, "pattern"),
        ({"id": "1bad"}, "pattern"),
    ],
)
def test_invalid_definitions_raise(kw, message):
    with pytest.raises(ValidationError, match=message):
        make(**kw)


def test_subscale_needs_items_or_components():
    with pytest.raises(ValidationError, match="needs items"):
        Subscale(id="s")
    with pytest.raises(ValidationError, match="both"):
        Subscale(id="s", items=("a",), components=("x",))
    with pytest.raises(ValidationError, match="reverse_components"):
        Subscale(id="s", components=("x",), reverse_components=("y",))


def test_pairs_fill_items():
    s = Subscale(id="gap", pairs=[("a", "b"), ("c", "d")])
    assert s.items == ("a", "b", "c", "d")


def test_missing_rule_required():
    assert MissingRule().required(5) == 5
    assert MissingRule(min_answered=3).required(5) == 3
    assert MissingRule(min_answered=9).required(5) == 5
    assert MissingRule(min_fraction=0.8).required(5) == 4
    assert MissingRule(min_fraction=0.8).required(7) == 6
    assert MissingRule(min_answered=2, min_fraction=0.8).required(5) == 4


def test_scales_primary_and_ranges():
    m = make(scoring="sum")
    assert [s.id for s in m.scales()] == ["total"]
    assert m.primary_scale() == "total"
    assert m.scale_range("total") == (4.0, 20.0)
    two = make(subscales=[{"id": "x", "items": ["a", "b"]}, {"id": "y", "items": ["c", "d"]}])
    assert two.primary_scale() is None
    assert make(subscales=[{"id": "x", "items": ["a", "b"]}], primary="x").primary_scale() == "x"
    gap = make(response_min=0, response_max=10, scoring="difference_sum",
               subscales=[{"id": "g", "pairs": [["a", "b"], ["c", "d"]]}])
    assert gap.scale_range("g") == (-20.0, 20.0)
    w = make(subscales=[{"id": "w", "items": ["a", "b"], "scoring": "weighted",
                         "weights": {"a": 2.0, "b": -1.0}}])
    assert w.scale_range("w") == (2 * 1 - 5, 2 * 5 - 1)
    comp = make(subscales=[{"id": "x", "items": ["a", "b"], "scoring": "sum"},
                           {"id": "y", "items": ["c", "d"]},
                           {"id": "t", "scoring": "composite_sum", "components": ["x", "y"]}])
    assert comp.scale_range("t") == (2 + 1, 10 + 5)
    custom = make(scoring="custom", scorer=lambda v, items: v[:, 0])
    assert custom.scale_range("total") is None
    assert custom.rule(custom.scales()[0]) is ScoringRule.custom


def test_json_round_trip_and_scorer_excluded():
    m = make(reverse_items=("b",), subscales=[{"id": "x", "items": ["a", "b"]}],
             missing={"min_answered": 1}, verified=False, citation="c")
    assert MeasureDefinition.model_validate_json(m.model_dump_json()) == m
    c = make(scoring="custom", scorer=lambda v, items: v[:, 0])
    assert "scorer" not in c.model_dump()


def test_scorer_by_import_path():
    m = make(scoring="custom", scorer="numpy:nanmax")
    import numpy as np

    assert m.resolve_scorer() is np.nanmax
    bad = make(scoring="custom", scorer="numpy:pi")
    with pytest.raises(TypeError, match="not callable"):
        bad.resolve_scorer()


def test_frozen():
    m = make()
    with pytest.raises(ValidationError):
        m.id = "other"  # type: ignore[misc]


def test_composite_cannot_reverse_a_custom_component():
    with pytest.raises(ValidationError, match="cannot reverse"):
        make(scoring="mean", scorer=lambda v, i: v[:, 0],
             subscales=[{"id": "c", "items": ["a"], "scoring": "custom"},
                        {"id": "m", "items": ["b"]},
                        {"id": "t", "scoring": "composite", "components": ["c", "m"],
                         "reverse_components": ["c"]}])
