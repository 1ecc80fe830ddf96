"""The replication registry entries and the ``coevidence reproduce`` command."""

import pytest

from coevidence.cli import main
from coevidence.reproduce import _registry
from coevidence.reproduce._registry import Check, Replication


def test_mixed_replications_are_registered():
    reps = _registry.registry()
    assert {"sleepstudy", "hsb_ch4", "early_intervention"} <= set(reps)


@pytest.mark.parametrize("name", ["sleepstudy", "hsb_ch4", "early_intervention"])
def test_published_numbers_are_reproduced(name):
    frame = _registry.run(name)
    assert len(frame) >= 4
    failed = frame.loc[~frame["passed"], ["quantity", "published", "reproduced"]]
    assert failed.empty, failed.to_string()


def test_cli_list_and_run(capsys):
    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    assert "sleepstudy" in out and "Raudenbush" in out
    assert main(["reproduce", "sleepstudy"]) == 0
    out = capsys.readouterr().out
    assert "published" in out and "reproduced" in out and "9/9 reproduced" in out


def test_cli_exits_1_on_a_failed_check(monkeypatch, capsys):
    fake = Replication("fake_fail", "a deliberately wrong number", "test",
                       run=lambda: [Check("x", 1.0, 2.0, atol=0.1)])
    monkeypatch.setitem(_registry._REGISTRY, "fake_fail", fake)
    assert main(["reproduce", "fake_fail"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_cli_unknown_name(capsys):
    assert main(["reproduce", "nope"]) == 2
    assert "unknown replication" in capsys.readouterr().err
