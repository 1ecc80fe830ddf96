"""Bundled data: the synthetic example study and small public datasets used in replications.

Examples
--------
>>> import coevidence as cv
>>> study = cv.load_example_study()
>>> study.design.synthetic
True
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from coevidence.data.study import Study

__all__ = ["example_study_path", "load_example_study"]


def example_study_path() -> Path:
    """Folder of the bundled example study (a Frictionless Data Package)."""
    return Path(str(resources.files("coevidence.datasets") / "example_study"))


@lru_cache(maxsize=1)
def _load() -> Study:
    from coevidence.data.datapackage import read_study

    return read_study(example_study_path())


def load_example_study() -> Study:
    """Load the bundled, **synthetic** example study.

    12 TA providers (6 push, 6 co-creation, randomised by provider), 15 organisations each,
    4 respondents per organisation, 6 waves six months apart, item-level responses to a
    research-use (6 items) and a capacity (7 items) measure on 1-5 scales, engagements of about
    22 months with encounter logs (so the last waves fall after TA ends), and about 8% attrition.
    Growth varies between providers (provider slope SD 0.04 points per wave for research use,
    0.03 for capacity) as well as between organisations, so the arm x time effect needs the
    provider-level random slope of :func:`coevidence.fit_growth`'s default. It was drawn by
    :func:`coevidence.simulate_study` with the parameters recorded in
    ``study.design.description`` (see ``coevidence/datasets/_make_example.py``); the numbers are
    not from any real study.

    Returns
    -------
    Study
        The same (immutable) object on every call.

    Examples
    --------
    >>> import coevidence as cv
    >>> cv.load_example_study().n_units("provider")
    12
    """
    return _load()
