"""Data package I/O: exact round trips, validation on read, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import tiny_tables
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coevidence import Study, StudyValidationError, read_study
from coevidence.datasets import example_study_path, load_example_study
from coevidence.design.simulate import SimulationSpec, simulate_study
from coevidence.exceptions import CoevidenceError, MissingExtraError

FORMATS = ["csv", "csv.gz", "parquet"]


def tiny(**changes) -> Study:
    t = {**tiny_tables(), **changes}
    return Study.from_frames(t.pop("design"), measures=t.pop("measures"), **t)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 2**32 - 1),
    n_providers=st.integers(2, 4),
    orgs=st.integers(1, 3),
    resp=st.integers(1, 3),
    waves=st.integers(2, 4),
    fmt=st.sampled_from(FORMATS),
)
def test_round_trip_is_exact(tmp_path_factory, seed, n_providers, orgs, resp, waves, fmt) -> None:
    """write -> read gives an equal study, for any simulated study and any format."""
    spec = SimulationSpec(n_providers=n_providers, orgs_per_provider=orgs, respondents_per_org=resp,
                          n_waves=waves, attrition=0.2)
    study = simulate_study(spec, seed=seed)
    folder = tmp_path_factory.mktemp("pkg")
    study.write(folder, format=fmt)
    assert read_study(folder) == study


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_keeps_awkward_values(tmp_path: Path, fmt: str) -> None:
    """Leading zeros, unicode, open-ended engagements and full float precision survive."""
    t = tiny_tables()
    t["providers"] = t["providers"].assign(name=["Zoë Ånström, PhD", 'A "quoted", name'])
    t["organizations"] = t["organizations"].assign(id=["007", "O2", "O3", "O4"])
    t["respondents"] = t["respondents"].assign(org_id=["007", "007", "O2", "O2", "O3", "O3", "O4", "O4"])
    t["engagements"] = t["engagements"].assign(org_id=["007", "O2", "O3", "O4"])
    t["scores"] = t["scores"].assign(unit_id=["007", "O2", "O3", "O4"], value=[0.1 + 0.2, 1 / 3, 2.0, None])
    study = Study.from_frames(t.pop("design"), measures=t.pop("measures"), **t)
    study.write(tmp_path, format=fmt)
    again = read_study(tmp_path / "datapackage.json")
    assert again == study
    assert again.scores["value"].iloc[0] == 0.1 + 0.2
    assert again.organizations[0].id == "007"
    assert again.engagements[3].end_date is None


def test_descriptor_is_a_frictionless_tabular_package(tmp_path: Path) -> None:
    tiny().write(tmp_path)
    desc = json.loads((tmp_path / "datapackage.json").read_text())
    assert desc["profile"] == "tabular-data-package"
    names = [r["name"] for r in desc["resources"]]
    assert names[:4] == ["providers", "organizations", "respondents", "engagements"]
    for res in desc["resources"]:
        assert (tmp_path / res["path"]).exists()
        assert res["profile"] == "tabular-data-resource"
        assert all({"name", "type"} <= set(f) for f in res["schema"]["fields"])
    assert desc["coevidence"]["design"]["id"] == "tiny"
    assert [m["id"] for m in desc["coevidence"]["measures"]] == ["ru", "oracle"]


def test_reading_invalid_package_reports_every_problem(tmp_path: Path) -> None:
    tiny().write(tmp_path)
    enc = pd.read_csv(tmp_path / "encounters.csv")
    enc.loc[1, "minutes"] = -5
    enc.to_csv(tmp_path / "encounters.csv", index=False)
    resp = pd.read_csv(tmp_path / "respondents.csv")
    resp.loc[0, "org_id"] = "nope"
    resp.to_csv(tmp_path / "respondents.csv", index=False)
    with pytest.raises(StudyValidationError) as info:
        read_study(tmp_path)
    f = info.value.failures
    assert sorted(map(tuple, f[["table", "row", "column"]].values.tolist())) == [
        ("encounters", 1, "minutes"), ("respondents", 0, "org_id")]


def test_not_a_package(tmp_path: Path) -> None:
    with pytest.raises(CoevidenceError, match="no datapackage.json"):
        read_study(tmp_path)
    (tmp_path / "datapackage.json").write_text('{"resources": []}')
    with pytest.raises(CoevidenceError, match="no 'coevidence' property"):
        read_study(tmp_path)


def test_parquet_without_pyarrow_names_the_extra(tmp_path: Path, monkeypatch) -> None:
    from coevidence.data import datapackage

    monkeypatch.setattr(datapackage, "_has_pyarrow", lambda: False)
    with pytest.raises(MissingExtraError, match=r"pip install 'coevidence\[io\]'"):
        tiny().write(tmp_path, format="parquet")


def test_example_study_is_bundled_and_valid() -> None:
    study = load_example_study()
    assert study is load_example_study()  # cached, immutable
    assert study.design.synthetic and "truth" in study.design.description
    assert study.n_units("provider") == 12 and study.n_units("organization") == 180
    arms = [o.arm for o in study.organizations]
    assert arms.count("push") == arms.count("co_creation") == 90
    assert len(study.design.waves) == 6
    # engagements end before the last waves: sustainment is observable
    last = study.design.waves[-1].date
    assert all(e.end_date is not None and e.end_date < last for e in study.engagements)
    # about 8% of respondent-waves missing
    seen = study.responses[["respondent_id", "wave"]].drop_duplicates()
    missing = 1 - len(seen) / (720 * 6)
    assert 0.05 < missing < 0.11
    size = sum(p.stat().st_size for p in example_study_path().iterdir())
    assert size < 2 * 1024 * 1024


@pytest.mark.parametrize("suffix", [".xlsx", ".dta", ".sav"])
def test_resources_in_other_formats_are_read(tmp_path: Path, suffix: str) -> None:
    """A package whose organisations table is Excel/Stata/SPSS reads to the same study."""
    study = tiny()
    study.write(tmp_path)
    orgs = pd.read_csv(tmp_path / "organizations.csv", dtype=str).fillna("")
    target = tmp_path / f"organizations{suffix}"
    if suffix == ".xlsx":
        orgs.to_excel(target, index=False)
    elif suffix == ".dta":
        orgs.to_stata(target, write_index=False, version=118)
    else:
        import pyreadstat

        coded = orgs.assign(arm=orgs["arm"].map({"push": 1.0, "cc": 2.0}))
        pyreadstat.write_sav(coded, target, variable_value_labels={"arm": {1.0: "push", 2.0: "cc"}})
    desc = json.loads((tmp_path / "datapackage.json").read_text())
    for res in desc["resources"]:
        if res["name"] == "organizations":
            res["path"] = target.name
            res["format"] = suffix[1:]
    (tmp_path / "datapackage.json").write_text(json.dumps(desc))
    (tmp_path / "organizations.csv").unlink()
    assert read_study(tmp_path) == study
