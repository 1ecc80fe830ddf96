"""Fixtures for the measures tests."""

from __future__ import annotations

import warnings

import pytest


@pytest.fixture
def quiet():
    """Silence coevidence's own warnings where a test does not look at them."""
    from coevidence.exceptions import CoevidenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CoevidenceWarning)
        yield
