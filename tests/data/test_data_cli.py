"""The command line: validate, describe and the demo (the main job)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pandas as pd
import pytest

from coevidence.cli import main
from coevidence.datasets import example_study_path


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    """The example study with the four problems of the foundation issue's acceptance test."""
    folder = tmp_path / "broken"
    shutil.copytree(example_study_path(), folder)
    resp = pd.read_csv(folder / "respondents.csv", dtype=str)
    resp.loc[3, "org_id"] = "O9999"  # unknown organisation id
    resp.to_csv(folder / "respondents.csv", index=False)
    enc = pd.read_csv(folder / "encounters.csv", dtype=str)
    enc.loc[5, "minutes"] = "-30"  # negative encounter duration
    enc.to_csv(folder / "encounters.csv", index=False)
    eng = pd.read_csv(folder / "engagements.csv", dtype=str)
    eng.loc[7, "end_date"] = "2023-01-01"  # ends before it starts
    eng.to_csv(folder / "engagements.csv", index=False)
    obs = pd.read_csv(folder / "responses.csv.gz", dtype=str)
    obs = pd.concat([obs.iloc[:11], obs.iloc[[10]], obs.iloc[11:]], ignore_index=True)  # duplicate
    obs.to_csv(folder / "responses.csv.gz", index=False)
    return folder


def test_validate_ok(capsys) -> None:
    assert main(["validate", str(example_study_path())]) == 0
    assert capsys.readouterr().out.startswith("OK: <Study 'example'")


def test_validate_reports_all_four_problems_and_changes_nothing(broken: Path, capsys, tmp_path) -> None:
    before = _digest(broken)
    report = tmp_path / "problems.csv"
    assert main(["validate", str(broken), "--csv", str(report)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("INVALID: 4 problems")
    f = pd.read_csv(report, dtype=str)
    got = {tuple(r) for r in f[["table", "row", "column", "value"]].values.tolist()}
    assert got == {
        ("respondents", "3", "org_id", "O9999"),
        ("encounters", "5", "minutes", "-30"),
        ("engagements", "7", "end_date", "2023-01-01"),
        ("responses", "11", "respondent_id,measure_id,wave,item", "R00001|research_use|2|re5"),
    }
    for needle in ("unknown organisation id", "greater than or equal to 0",
                   "end_date is before start_date", "duplicate key"):
        assert needle in out
    assert _digest(broken) == before  # the input files are unchanged


def test_validate_missing_folder(tmp_path: Path, capsys) -> None:
    assert main(["validate", str(tmp_path / "nowhere")]) == 1
    assert "no datapackage.json" in capsys.readouterr().err


def test_describe(capsys) -> None:
    assert main(["describe", str(example_study_path())]) == 0
    out = capsys.readouterr().out
    for section in ("== units ==", "== responding ==", "== attrition ==", "== dose =="):
        assert section in out


def test_demo_writes_a_self_contained_report(tmp_path: Path) -> None:
    assert main(["demo", "--out", str(tmp_path / "out")]) == 0
    page = (tmp_path / "out" / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "synthetic" in page and "research_use" in page and "capacity" in page
    assert "data:image/png;base64," in page
    assert "src=\"http" not in page  # nothing external


def test_no_command_prints_help(capsys) -> None:
    assert main([]) == 2
    assert "validate" in capsys.readouterr().out
