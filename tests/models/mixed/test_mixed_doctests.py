"""The docstring examples of the design-aware growth modules run and print what they say."""

import doctest
import importlib

import pytest

MODULES = [
    "coevidence.models.mixed.growth",
    "coevidence.models.mixed.contrasts",
    "coevidence.models.mixed._design",
    "coevidence.models.mixed.two_stage",
    "coevidence.models.mixed.glmm",
    "coevidence.models.mixed.glmm_results",
    "coevidence.models.mixed.glmm_contrasts",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
