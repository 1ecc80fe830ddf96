"""The examples in the foundation's docstrings run and print what they say."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "coevidence",
    "coevidence.exceptions",
    "coevidence.schemas.actors",
    "coevidence.schemas.design",
    "coevidence.schemas.engagement",
    "coevidence.data.frames",
    "coevidence.data.study",
    "coevidence.data.panel",
    "coevidence.data.datapackage",
    "coevidence.data.describe",
    "coevidence.data.features",
    "coevidence.datasets",
    "coevidence.report.html",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no docstring examples"
    assert result.failed == 0
