"""CITATION.cff is valid Citation File Format 1.2.0 and agrees with the package metadata."""

from __future__ import annotations

import copy
import datetime as dt
import json
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml

import coevidence

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / "tests" / "fixtures" / "packaging" / "cff-1.2.0.schema.json"


def _load_cff(path: Path) -> dict:
    """Read a CFF file as cffconvert does: YAML dates become ISO strings before validation."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return _dates_to_str(data)


def _dates_to_str(value):
    if isinstance(value, dict):
        return {k: _dates_to_str(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_dates_to_str(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert schema["$id"].endswith("/1.2.0/schema.json")
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())


@pytest.fixture(scope="module")
def citation() -> dict:
    return _load_cff(ROOT / "CITATION.cff")


def test_citation_is_valid_cff_1_2_0(validator, citation):
    """Every field of CITATION.cff satisfies the CFF 1.2.0 schema."""
    errors = sorted(validator.iter_errors(citation), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


@pytest.mark.parametrize(
    ("mutate", "complaint"),
    [
        (lambda d: d.pop("title"), "'title' is a required property"),
        (lambda d: d.update({"cff-version": "1.1.0"}), "1.1.0"),
        (lambda d: d.update({"date-released": "26/11/2026"}), "26/11/2026"),
        (lambda d: d.update({"license": "BSD-3"}), "BSD-3"),
        (lambda d: d["authors"][0].update({"nickname": "x"}), "nickname"),
        (lambda d: d["references"][0].update({"type": "journal-paper"}), "journal-paper"),
    ],
    ids=["missing-title", "old-version", "bad-date", "bad-license", "unknown-key", "bad-ref-type"],
)
def test_validator_rejects_broken_citation(validator, citation, mutate, complaint):
    """The schema check can fail: each deliberate defect is reported."""
    broken = copy.deepcopy(citation)
    mutate(broken)
    messages = [e.message for e in validator.iter_errors(broken)]
    messages += [c.message for e in validator.iter_errors(broken) for c in e.context]
    assert messages, "a broken citation file passed validation"
    assert any(complaint in m for m in messages), messages


def test_citation_agrees_with_package(citation):
    """Version and licence in CITATION.cff match pyproject.toml and coevidence.__version__."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert citation["version"] == project["version"] == coevidence.__version__
    assert citation["license"] == project["license"]
    dt.date.fromisoformat(citation["date-released"])


def test_citation_references_methods_sources(citation):
    """The methods the library reimplements are cited with their DOIs."""
    dois = {ref.get("doi") for ref in citation["references"]}
    assert {
        "10.18637/jss.v067.i01",  # Bates et al. 2015, lme4
        "10.18637/jss.v082.i13",  # Kuznetsova et al. 2017, lmerTest
        "10.1016/j.jeconom.2020.12.001",  # Callaway & Sant'Anna 2021
        "10.1080/19345747.2012.673143",  # Dong & Maynard 2013, PowerUp!
    } <= dois
