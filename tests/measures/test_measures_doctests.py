"""The Examples sections of the measures modules run and give what they show."""

from __future__ import annotations

import doctest
import importlib
import warnings

import pytest

from coevidence.exceptions import CoevidenceWarning

MODULES = [
    "coevidence.schemas.measure",
    "coevidence.measures",
    "coevidence.measures._rules",
    "coevidence.measures.scoring",
    "coevidence.measures.reliability",
    "coevidence.measures.agreement",
    "coevidence.measures.registry",
    "coevidence.measures.loaders",
    "coevidence.testing",
    "coevidence.testing._check",
    "coevidence.testing.strategies",
]


@pytest.mark.parametrize("name", MODULES)
def test_examples(name):
    module = importlib.import_module(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CoevidenceWarning)
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
