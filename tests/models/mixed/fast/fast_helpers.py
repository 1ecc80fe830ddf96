"""Shared helpers for the fast-engine tests: fixture loading and problem building."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "fast"

# factor codings used by R when the fixtures were made (first level = reference)
_CATEGORIES = {
    "sector": ["Public", "Catholic"],
    "trt": ["N", "Y"],
    "ta_model": ["push", "co_creation", "hybrid"],
}


def load_data(name: str) -> pd.DataFrame:
    """A fixture CSV with R's factor codings restored."""
    df = pd.read_csv(FIXTURES / name)
    for col, cats in _CATEGORIES.items():
        if col in df.columns:
            df[col] = pd.Categorical(df[col], categories=cats)
    return df


def data_for(model_id: str) -> pd.DataFrame:
    for prefix, file in (
        ("sleepstudy", "sleepstudy.csv"),
        ("hsb82", "hsb82.csv"),
        ("early", "early.csv"),
        ("ta3", "ta3_growth.csv"),
    ):
        if model_id.startswith(prefix):
            return load_data(file)
    raise KeyError(model_id)


def load_models(file: str) -> list[dict]:
    return json.loads((FIXTURES / file).read_text())["models"]


def build(formula: str, data: pd.DataFrame, reml: bool):
    """MixedProblem through the front end's formula builder."""
    from coevidence.models.mixed.formula import build_problem

    problem, _ = build_problem(" ".join(formula.split()), data, reml=reml)
    return problem


#: fits shared between tests (each reference model is fitted once per session)
FIT_CACHE: dict = {}


def fit_model(model: dict, cache: dict = FIT_CACHE):
    from coevidence.models.mixed._fast import FastEngine

    key = model["model_id"]
    if key not in cache:
        problem = build(model["formula"], data_for(key), bool(model["REML"]))
        cache[key] = (problem, FastEngine().fit(problem))
    return cache[key]


def rel_err(a, b, scale=None) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    s = np.abs(b) if scale is None else np.asarray(scale, float)
    return float(np.max(np.abs(a - b) / s))
