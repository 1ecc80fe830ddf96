"""YAML/JSON measure files (safe loading, every error listed) and the measures CLI."""

from __future__ import annotations

import json

import pytest

from coevidence.cli import main
from coevidence.exceptions import MeasureError
from coevidence.measures.loaders import load_measures, measures_from_data
from coevidence.measures.registry import get_measure

YAML = """
measures:
  - id: my_scale
    name: My scale
    construct: capacity
    response_min: 1
    response_max: 7
    items: [q1, q2, q3]
    reverse_items: [q3]
    scoring: sum
    missing: {min_answered: 2}
  - id: my_other
    response_min: 0
    response_max: 1
    items: [x, y]
"""


def test_yaml_and_json_files(tmp_path):
    p = tmp_path / "m.yaml"
    p.write_text(YAML)
    ms = load_measures(p)
    assert [m.id for m in ms] == ["my_scale", "my_other"]
    assert ms[0].reverse_items == ("q3",) and ms[0].missing.min_answered == 2
    j = tmp_path / "m.json"
    j.write_text(json.dumps(ms[0].model_dump(mode="json")))
    assert load_measures(j) == [ms[0]]


def test_unsafe_yaml_is_not_executed(tmp_path):
    p = tmp_path / "evil.yaml"
    p.write_text("id: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(MeasureError, match="cannot parse"):
        load_measures(p)


def test_every_invalid_field_listed(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("- {id: a, response_min: 1, response_max: 5, items: [x], scoring: median}\n"
                 "- {id: b, response_min: 1, items: [x]}\n")
    with pytest.raises(MeasureError) as info:
        load_measures(p)
    f = info.value.failures
    assert set(zip(f["row"], f["column"], strict=True)) == {(0, "scoring"), (1, "response_max")}
    with pytest.raises(MeasureError, match=r"\.yaml, \.yml or \.json"):
        (tmp_path / "m.txt").write_text("x")
        load_measures(tmp_path / "m.txt")
    with pytest.raises(MeasureError, match="expected a mapping"):
        measures_from_data("just text")


def test_cli_list(capsys):
    assert main(["measures", "list"]) == 0
    out = capsys.readouterr().out
    for mid in ("ebpas15", "oric", "aim", "sieu", "brownson_ebdm_gaps", "seer_confidence"):
        assert mid in out
    assert main(["measures", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["id"] for r in rows} >= {"ebpas15", "research_use_types"}


def test_cli_show(capsys):
    assert main(["measures", "show", "ebpas15"]) == 0
    out = capsys.readouterr().out
    assert "divergence [mean, adverse" in out and "verified: NO" in out
    assert "reversed components: divergence" in out
    assert main(["measures", "show", "oric", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == get_measure("oric").model_dump(mode="json")
    assert main(["measures", "show", "nope"]) == 1
    assert "available" in capsys.readouterr().err
    assert main(["measures"]) == 2


def test_cli_check(tmp_path, capsys):
    assert main(["measures", "check", "oric"]) == 0
    assert "oric: OK" in capsys.readouterr().out
    p = tmp_path / "m.yaml"
    p.write_text(YAML)
    assert main(["measures", "check", str(p)]) == 0
    out = capsys.readouterr().out
    assert "my_scale: OK" in out and "my_other: OK" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: b\nresponse_min: 1\nitems: [x]\n")
    assert main(["measures", "check", str(bad)]) == 1
    assert "response_max" in capsys.readouterr().err
    assert main(["measures", "check", "nope"]) == 1
    broken = tmp_path / "broken.yaml"
    broken.write_text("id: c\nresponse_min: 0\nresponse_max: 4\nitems: [x, y]\n"
                      "scoring: custom\nscorer: 'numpy:cumsum'\n")
    assert main(["measures", "check", str(broken)]) == 1  # scorer not trusted: refused
    assert "trust" in capsys.readouterr().err.lower()
    assert main(["measures", "check", str(broken), "--trust-scorers"]) == 1  # a matrix, not
    assert "c: FAILED" in capsys.readouterr().out                            # one score
