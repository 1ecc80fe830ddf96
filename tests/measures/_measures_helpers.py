"""Helpers shared by the measures tests (reference fixtures written by make_fixtures.R)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "measures"


def load_reference(name: str) -> list[dict]:
    """Entries of a JSON reference file written by make_fixtures.R."""
    with open(FIXTURES / name, encoding="utf-8") as fh:
        return json.load(fh)["results"]


def read_data(name: str) -> pd.DataFrame:
    return pd.read_csv(FIXTURES / name)


def as_list(value: object) -> list:
    """jsonlite unboxes length-1 vectors; undo that."""
    if value is None:
        return []
    return [value] if isinstance(value, str | int | float) else list(value)
