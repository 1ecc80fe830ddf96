"""Every user-triggerable problem is a StudyValidationError with table, row, column and value;
data packages are confined and checked; data never makes code run; the CLI exit codes; atomic
writes."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import test_io_hardening_support as h  # noqa: E402

import coevidence as cv  # noqa: E402
from coevidence.cli import main  # noqa: E402
from coevidence.data import datapackage  # noqa: E402
from coevidence.exceptions import (  # noqa: E402
    MeasureError,
    StudyValidationError,
    TableReadError,
)

pytestmark = pytest.mark.filterwarnings("ignore::coevidence.exceptions.CoevidenceWarning")


def rules_of(frames: dict[str, object]) -> pd.DataFrame:
    with pytest.raises(StudyValidationError) as info:
        h.build(frames)  # type: ignore[arg-type]
    return info.value.failures


def one_cell(table: str, col: str, value: object, row: int = 0) -> dict[str, pd.DataFrame]:
    frames = h.tables()
    frames[table] = h._set(frames[table], row, col, value)
    return frames


# ---------------------------------------------------------------- (1) crash classes
@pytest.mark.parametrize(("table", "col"), [("responses", "wave"), ("responses", "value"),
                                            ("scores", "unit_level"), ("engagements", "id"),
                                            ("encounters", "minutes")])
def test_missing_required_column(table: str, col: str) -> None:
    frames = h.tables()
    frames[table] = frames[table].drop(columns=col)
    f = rules_of(frames)
    hit = f[(f["table"] == table) & (f["column"] == col)]
    assert "required column is missing" in set(hit["rule"])


@pytest.mark.parametrize("table", ["responses", "organizations", "encounters"])
def test_duplicated_column(table: str) -> None:
    frames = h.tables()
    col = frames[table].columns[1]
    frames[table] = pd.concat([frames[table], frames[table][[col]]], axis=1)
    f = rules_of(frames)
    assert ((f["table"] == table) & (f["rule"] == "duplicated column") & (f["column"] == col)).any()


@pytest.mark.parametrize(("table", "col"), [("encounters", "date"), ("engagements", "start_date"),
                                            ("responses", "date")])
@pytest.mark.parametrize("value", ["1600-01-01", dt.date(2300, 1, 1), "9999-12-31"])
def test_dates_out_of_range(table: str, col: str, value: object) -> None:
    f = rules_of(one_cell(table, col, value))
    hit = f[(f["table"] == table) & (f["column"] == col) & (f["row"] == 0)]
    assert hit["rule"].str.contains("date out of range").any(), f


@pytest.mark.parametrize(("table", "col"), [("encounters", "date"), ("engagements", "start_date"),
                                            ("responses", "date")])
def test_timezone_aware_dates(table: str, col: str) -> None:
    frames = h.tables()
    frames[table] = frames[table].assign(
        **{col: pd.to_datetime(frames[table][col]).dt.tz_localize("UTC")})
    f = rules_of(frames)
    assert f[(f["table"] == table) & (f["column"] == col)]["rule"].str.contains("time zone").all()
    f = rules_of(one_cell(table, col, "2024-03-01T00:00:00+05:00"))
    assert f[(f["table"] == table) & (f["row"] == 0)]["rule"].str.contains("time zone").any()


@pytest.mark.parametrize(("table", "col", "value"), [
    ("encounters", "minutes", np.inf), ("responses", "value", np.inf),
    ("responses", "wave", -np.inf), ("scores", "value", np.inf),
    ("relationship_ratings", "value", np.inf), ("encounters", "minutes", True),
])
def test_non_finite_numbers(table: str, col: str, value: object) -> None:
    f = rules_of(one_cell(table, col, value))
    hit = f[(f["table"] == table) & (f["column"] == col) & (f["row"] == 0)]
    assert len(hit) >= 1, f


def test_fractional_value_on_a_discrete_scale() -> None:
    f = rules_of(one_cell("responses", "value", 2.5))
    assert f["rule"].str.contains("not a whole number").any()


def test_scores_are_checked_against_their_measure() -> None:
    f = rules_of(one_cell("scores", "value", 99.0))
    assert f.loc[0, "rule"].startswith("outside the score range [1, 5]")
    h.build(one_cell("scores", "value", 4.5))  # inside: fine


def test_not_a_dataframe_and_odd_column_names() -> None:
    frames = h.tables()
    frames["responses"] = frames["responses"]["value"]  # type: ignore[assignment]
    frames["providers"] = frames["providers"].rename(columns={"name": 5})
    f = rules_of(frames)
    assert "the table must be a pandas DataFrame" in set(f["rule"])
    assert "column name is not text" in set(f["rule"])


def test_two_independent_problems_are_reported_together() -> None:
    frames = one_cell("encounters", "minutes", np.inf)
    frames["responses"] = h._set(frames["responses"], 3, "value", 99.0)
    frames["engagements"] = h._set(frames["engagements"], 0, "start_date", "1600-01-01")
    assert {"encounters", "responses", "engagements"} <= set(rules_of(frames)["table"])


def test_long_values_are_cut_short() -> None:
    f = rules_of(one_cell("respondents", "org_id", "x" * 10_000))
    assert all(len(str(v)) <= 60 for v in f["value"])


# ---------------------------------------------------------------- (2) data package rules
@pytest.fixture
def package(tmp_path: Path) -> Path:
    folder = tmp_path / "study"
    h.small_study().write(folder)
    return folder


def edit(folder: Path, fn) -> None:  # noqa: ANN001
    p = folder / "datapackage.json"
    desc = json.loads(p.read_text())
    fn(desc)
    p.write_text(json.dumps(desc))


def package_rules(folder: Path, **kwargs) -> pd.DataFrame:
    with pytest.raises(StudyValidationError) as info:
        cv.read_study(folder, **kwargs)
    return info.value.failures


def test_round_trip_records_rows_and_hashes(package: Path) -> None:
    desc = json.loads((package / "datapackage.json").read_text())
    for res in desc["resources"]:
        assert res["hash"].startswith("sha256:") and isinstance(res["coevidence"]["rows"], int)
    assert cv.read_study(package, verify_hashes=True) == h.small_study()


def test_duplicate_resource(package: Path) -> None:
    edit(package, lambda d: d["resources"].append(dict(d["resources"][0])))
    assert package_rules(package)["rule"].str.startswith("duplicate resource").any()


def test_unnamed_unknown_and_missing_resources(package: Path) -> None:
    def change(d):  # noqa: ANN001, ANN202
        del d["resources"][0]["name"]  # providers: unnamed, so also missing
        d["resources"][-1]["name"] = "responses_old"  # renamed: unknown
    edit(package, change)
    rules = set(package_rules(package)["rule"])
    assert "resource has no name" in rules and "required resource is missing" in rules
    assert any(r.startswith("unknown resource") for r in rules)


def test_descriptor_without_resources(package: Path) -> None:
    edit(package, lambda d: d.pop("resources"))
    assert package_rules(package)["rule"].str.contains("has no resources").any()


def test_malformed_descriptor_names_it(package: Path) -> None:
    (package / "datapackage.json").write_text('{"resources": [')
    f = package_rules(package)
    assert f.loc[0, "table"] == "datapackage.json" and "not valid JSON" in f.loc[0, "rule"]
    (package / "datapackage.json").write_text("[" * 100_000 + "]" * 100_000)
    assert "nested too deeply" in package_rules(package).loc[0, "rule"]


@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlink", "fifo", "devzero"])
def test_resource_paths_are_confined(package: Path, tmp_path: Path, how: str) -> None:
    outside = tmp_path / "secret.csv"
    outside.write_text("id,kind\nTOP-SECRET-CONTENT,researcher\n")
    if how == "absolute":
        path = str(outside)
    elif how == "dotdot":
        path = "../secret.csv"
    elif how == "symlink":
        (package / "link.csv").symlink_to(outside)
        path = "link.csv"
    elif how == "fifo":
        os.mkfifo(package / "pipe.csv")
        path = "pipe.csv"
    else:
        (package / "zero.csv").symlink_to("/dev/zero")
        path = "zero.csv"
    edit(package, lambda d: d["resources"][0].update(path=path))
    start = time.monotonic()
    with pytest.raises(StudyValidationError) as info:
        cv.read_study(package)
    assert time.monotonic() - start < 30
    f = info.value.failures
    assert ((f["table"] == "providers") & (f["column"] == "path")).any()
    assert "TOP-SECRET" not in str(info.value)


def test_size_limit(package: Path) -> None:
    f = package_rules(package, max_resource_bytes=100)
    assert f["rule"].str.contains("over the limit").any()


def test_row_counts_and_hashes_are_verified(package: Path) -> None:
    enc = package / "encounters.csv"
    lines = enc.read_text().splitlines(keepends=True)
    enc.write_text("".join(lines[:-3]))  # a truncated table
    assert package_rules(package)["rule"].str.contains("rows but the descriptor records").any()
    enc.write_text("".join(lines).replace(",60,", ",61,", 1))  # edited by hand, same rows
    cv.read_study(package)
    assert package_rules(package, verify_hashes=True)["rule"].str.contains("sha256").any()


def test_wrong_delimiter(package: Path) -> None:
    p = package / "providers.csv"
    p.write_text(p.read_text().replace(",", ";"))
    assert package_rules(package)["rule"].str.contains("delimited by ';'").any()


def test_unreadable_file(package: Path) -> None:
    (package / "scores.csv").write_bytes(b"\xff\xfe\x00garbage\x00" * 50)
    f = package_rules(package)
    assert (f["table"] == "scores").any()


# ---------------------------------------------------------------- (3) no code from data
def test_scorer_in_a_package_is_not_imported(package: Path, monkeypatch) -> None:
    (package / "evil_scorer.py").write_text(
        "import pathlib\npathlib.Path(__file__).with_name('RAN').write_text('x')\n"
        "def score(x):\n    return x\n")
    monkeypatch.chdir(package)
    monkeypatch.syspath_prepend(str(package))
    edit(package, lambda d: d["coevidence"]["measures"][0].update(scorer="evil_scorer:score"))
    f = package_rules(package)
    assert f["rule"].str.contains("trust_scorers=True").any()
    assert "evil_scorer" not in sys.modules and not (package / "RAN").exists()
    study = cv.read_study(package, trust_scorers=True)  # the caller's explicit choice
    assert next(iter(study.measures.values())).scorer == "evil_scorer:score"


def test_scorer_in_a_measure_file_needs_trust(tmp_path: Path) -> None:
    p = tmp_path / "m.yaml"
    p.write_text("id: mine\nresponse_min: 0\nresponse_max: 4\nitems: [a, b]\n"
                 "scoring: custom\nscorer: os:getcwd\n")
    with pytest.raises(MeasureError, match="trust_scorers=True"):
        _load(p)
    assert _load(p, trust_scorers=True)[0].scorer == "os:getcwd"


def _load(p: Path, **kw):  # noqa: ANN202, ANN003
    from coevidence.measures.loaders import load_measures

    return load_measures(p, **kw)


def test_yaml_alias_bomb_and_deep_nesting_are_refused_quickly(tmp_path: Path) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(8):
        prev, cur = chr(97 + i), chr(98 + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    assert bomb.stat().st_size < 500
    start = time.monotonic()
    with pytest.raises(MeasureError, match="alias"):
        _load(bomb)
    assert time.monotonic() - start < 10
    deep = tmp_path / "deep.yaml"
    deep.write_text("[" * 10_000 + "]" * 10_000)
    with pytest.raises(MeasureError, match="nested"):
        _load(deep)


# ---------------------------------------------------------------- (4) CLI exit codes
def test_cli_exit_codes(package: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    assert main(["validate", str(package)]) == 0
    enc = package / "encounters.csv"
    enc.write_text(enc.read_text().replace(",60,", ",-60,", 1))
    assert main(["validate", str(package)]) == 1
    assert main(["describe", str(package)]) == 1
    edit(package, lambda d: d["resources"][0].update(path="/etc/passwd"))
    assert main(["validate", str(package)]) == 1
    (package / "datapackage.json").write_text("{nope")
    assert main(["validate", str(package)]) == 1
    assert main(["demo", "--study", str(package), "--out", str(tmp_path / "out")]) == 1
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    with pytest.raises(SystemExit) as info:
        main(["validate"])
    assert info.value.code == 2
    capsys.readouterr()

    def boom(path):  # noqa: ANN001, ANN202
        raise RuntimeError("a bug\nsecond line")

    monkeypatch.setattr(datapackage, "read_study", boom)
    assert main(["validate", str(package)]) == 3
    err = capsys.readouterr().err
    assert "internal error" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------- (5) atomic writes
def _other_study() -> cv.Study:
    s = h.small_study()
    f = s.to_frames()
    f["responses"] = f["responses"].iloc[:-40]
    return cv.Study.from_frames(s.design, measures=s.measures.values(), **f)


def test_failed_write_keeps_the_old_package(package: Path, monkeypatch) -> None:
    (package / "notes.txt").write_text("mine")
    calls = {"n": 0}
    real = datapackage._write_csv

    def full_disk(frame, path):  # noqa: ANN001, ANN202
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError(28, "No space left on device")
        real(frame, path)

    monkeypatch.setattr(datapackage, "_write_csv", full_disk)
    with pytest.raises(OSError, match="No space"):
        _other_study().write(package)
    assert cv.read_study(package, verify_hashes=True) == h.small_study()
    assert [p.name for p in package.parent.iterdir() if p.name.startswith(".")] == []
    monkeypatch.setattr(datapackage, "_write_csv", real)
    _other_study().write(package)
    assert cv.read_study(package) == _other_study()
    assert (package / "notes.txt").read_text() == "mine"  # other files are kept


def test_killed_writes_leave_old_or_new(package: Path) -> None:
    old, new = h.small_study(), _other_study()
    script = textwrap.dedent(f"""
        import sys, warnings
        warnings.simplefilter("ignore")
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import test_io_hardening_support as h, coevidence as cv
        s = h.small_study()
        f = s.to_frames(); f["responses"] = f["responses"].iloc[:-40]
        new = cv.Study.from_frames(s.design, measures=s.measures.values(), **f)
        print("ready", flush=True)
        while True:
            new.write(sys.argv[1])
    """)
    rng = np.random.default_rng(3)
    seen = set()
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", script, str(package)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(float(rng.uniform(0.0, 0.6)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        got = cv.read_study(package, verify_hashes=True)
        assert got == old or got == new
        seen.add("new" if got == new else "old")
        old.write(package)  # back to the old package for the next kill
    assert seen  # at least one outcome checked


# ---------------------------------------------------------------- (3) every problem at once
def _records(study: cv.Study) -> dict[str, object]:
    return {"design": study.design.model_dump(),
            "providers": [r.model_dump() for r in study.providers],
            "organizations": [r.model_dump() for r in study.organizations],
            "respondents": [r.model_dump() for r in study.respondents],
            "engagements": [r.model_dump() for r in study.engagements],
            "measures": list(study.measures.values()), "responses": study.responses,
            "scores": study.scores}


def record_rules(recs: dict[str, object]) -> pd.DataFrame:
    design = recs.pop("design")
    with pytest.raises(StudyValidationError) as info:
        cv.Study(design, **recs)  # type: ignore[arg-type]
    return info.value.failures


def test_records_invalid_record_and_cross_table_problem_reported_together() -> None:
    recs = _records(h.small_study())
    recs["providers"][0]["kind"] = "nope"  # type: ignore[index]
    recs["organizations"][1]["provider_id"] = "ghost"  # type: ignore[index]
    f = record_rules(recs)
    assert {"providers", "organizations"} <= set(f["table"])
    hit = f[f["table"] == "organizations"]
    assert hit["rule"].str.contains("unknown provider id").any() and (hit["row"] == 1).any()


def test_records_of_an_invalid_record_are_not_reported_again() -> None:
    recs = _records(h.small_study())
    recs["providers"][0]["kind"] = "nope"  # type: ignore[index]
    f = record_rules(recs)  # organisations of provider 0 still know it
    assert set(f["table"]) == {"providers"}, f


def test_records_broken_design_does_not_hide_other_tables() -> None:
    recs = _records(h.small_study())
    recs["design"]["arms"] = "nope"  # type: ignore[index]
    recs["responses"] = h._set(recs["responses"], 3, "value", 1.5)  # type: ignore[arg-type]
    recs["respondents"][0]["org_id"] = "ghost"  # type: ignore[index]
    assert {"design", "responses", "respondents"} <= set(record_rules(recs)["table"])


def test_from_frames_broken_design_does_not_hide_other_tables() -> None:
    s = h.small_study()
    frames = one_cell("responses", "value", 1.5)
    frames["respondents"] = h._set(frames["respondents"], 0, "org_id", "ghost")
    with pytest.raises(StudyValidationError) as info:
        cv.Study.from_frames({**s.design.model_dump(), "arms": "nope"},
                             measures=s.measures.values(), **frames)
    assert {"design", "responses", "respondents"} <= set(info.value.failures["table"])


@pytest.mark.parametrize(("part", "field", "value"), [
    ("encounters", "minutes", np.inf), ("relationship_ratings", "value", -np.inf),
    ("encounters", "date", dt.date(1600, 1, 1)), ("encounters", "date", dt.date(2300, 1, 1)),
])
def test_records_values_a_study_cannot_hold(part: str, field: str, value: object) -> None:
    recs = _records(h.small_study())
    eng = recs["engagements"][0]  # type: ignore[index]
    eng[part] = [{**eng[part][0], field: value}, *eng[part][1:]]
    f = record_rules(recs)
    hit = f[(f["table"] == "engagements") & (f["row"] == 0)]
    assert hit["column"].astype(str).str.startswith(f"{part}.0").any(), f


@pytest.mark.parametrize(("field", "value"), [("start_date", dt.date(1600, 1, 1)),
                                            ("end_date", dt.date(2300, 1, 1))])
def test_records_engagement_dates_out_of_range(field: str, value: dt.date) -> None:
    recs = _records(h.small_study())
    recs["engagements"][1][field] = value  # type: ignore[index]
    f = record_rules(recs)  # was an OutOfBoundsDatetime
    assert f[(f["table"] == "engagements") & (f["row"] == 1)]["rule"].str.contains(
        "date out of range").any()


def test_records_as_objects_tuples_and_generators_still_work() -> None:
    s = h.small_study()
    again = cv.Study(s.design, providers=(p for p in s.providers),
                     organizations=tuple(s.organizations), respondents=list(s.respondents),
                     engagements=s.engagements, measures=s.measures.values(),
                     responses=s.responses, scores=s.scores)
    assert again == s


# ---------------------------------------------------------------- (4) read_table
def _fail_after(seconds: int) -> None:  # a guard against a read that blocks
    def boom(*_: object) -> None:
        raise TimeoutError("read_table blocked")
    signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)


@pytest.mark.parametrize("how", ["fifo", "devzero", "directory"])
def test_read_table_refuses_what_is_not_a_regular_file(tmp_path: Path, how: str) -> None:
    path = tmp_path / "t.csv"
    if how == "fifo":
        os.mkfifo(path)
    elif how == "devzero":
        path.symlink_to("/dev/zero")
    else:
        path.mkdir()
    _fail_after(10)
    try:
        with pytest.raises(TableReadError) as info:
            cv.read_table(path)
    finally:
        signal.alarm(0)
    assert str(path) in str(info.value) and isinstance(info.value, ValueError)


SECRET = "TOP-SECRET-" * 40


@pytest.mark.parametrize(("name", "data", "says"), [
    ("empty.csv", b"", "empty"),
    ("latin.csv", f"id,kind\n{SECRET},caf\xe9\n".encode("latin-1"), "encoding"),
    ("quote.csv", f'id,kind\n"{SECRET},x\n'.encode(), "ParserError"),
    ("wider.csv", f"id,kind\n{SECRET},x,extra\n".encode(), "more fields than the header"),
    ("trunc.csv.gz", b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"garbage", "csv"),
    ("junk.parquet", b"PAR1" + SECRET.encode(), "parquet"),
    ("junk.xlsx", b"PK\x03\x04" + SECRET.encode(), "excel"),
    ("junk.dta", SECRET.encode(), "stata"),
    ("junk.sav", b"$FL2" + SECRET.encode(), "spss"),
])
def test_read_table_unparseable_files(tmp_path: Path, name: str, data: bytes, says: str) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(TableReadError) as info:
        cv.read_table(path)
    msg = str(info.value)
    assert str(path) in msg and says in msg and info.value.path == str(path)
    assert "TOP-SECRET-TOP-SECRET" not in msg and len(msg) < 400 + len(str(path))
    assert path.read_bytes() == data  # never changed


def test_read_table_size_limit_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_text("id,kind\n" + "p,researcher\n" * 100)
    with pytest.raises(TableReadError, match="over the limit of 100"):
        cv.read_table(path, max_bytes=100)
    assert len(cv.read_table(path, max_bytes=None)) == 100
    with pytest.raises(FileNotFoundError):
        cv.read_table(tmp_path / "nope.csv")


def test_read_table_wrong_option_is_not_a_file_problem(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("id,kind\np,researcher\n")
    with pytest.raises(TypeError, match="keyword argument"):
        cv.read_table(path, no_such_option=1)


def test_package_row_wider_than_its_header(package: Path) -> None:
    file = package / "providers.csv"
    lines = file.read_text().splitlines(keepends=True)
    lines[1] = lines[1].rstrip("\n") + ",extra\n"
    file.write_text("".join(lines))
    f = package_rules(package)
    assert ((f["table"] == "providers") & f["rule"].str.contains("more fields")).any()
