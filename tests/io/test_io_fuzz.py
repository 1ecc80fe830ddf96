"""Hypothesis-driven fuzzing of every way in: ``Study.from_frames``, the record-based
``Study(...)``, ``read_study`` on a written package, ``coevidence validate`` and ``read_table``.

Each example is the small example study with one or two corruptions that make it invalid, or a
harmless change that keeps it valid, built by the generators of ``fuzz_ways.py`` with hypothesis
making every choice (so a failing example shrinks to a small one). Every example must give a
study with nothing dropped (harmless changes) or a ``StudyValidationError`` (another
``CoevidenceError`` for a file that is not a table at all) naming every corrupted table; no
other exception, and inputs are never changed.

``COEVIDENCE_FUZZ_N`` sets the total number of examples over the file (default 3200: about
340 s of CPU, three minutes with ``-n 2`` on two free cores); the ways share it by the weights
in :data:`SHARE`. ``benchmarks/fuzz_campaign.py`` runs the same generators, seeded, at scale.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))

import fuzz_ways as fw
import test_io_hardening_support as h

TOTAL = int(os.environ.get("COEVIDENCE_FUZZ_N", "3200"))
pytestmark = pytest.mark.filterwarnings("ignore::coevidence.exceptions.CoevidenceWarning")

#: (way, corruptions or None for a mix, number of test functions) -> share of TOTAL.
#: Several functions per way so that pytest-xdist spreads the work.
SHARE: dict[tuple[str, int | None], float] = {
    ("from_frames", 0): 0.06, ("from_frames", 1): 0.14, ("from_frames", 2): 0.20,
    ("records", 0): 0.04, ("records", 1): 0.08, ("records", 2): 0.10,
    ("read_study", None): 0.16, ("cli", None): 0.04, ("read_table", None): 0.18,
}
#: Each (way, corruptions) runs as several tests with their own seeds, of about this many
#: examples each, so that the two xdist workers finish together.
PER_TEST = 80


def _parts(key: tuple[str, int | None]) -> int:
    return max(1, round(TOTAL * SHARE[key] / PER_TEST))


def _examples(key: tuple[str, int | None]) -> int:
    return max(5, round(TOTAL * SHARE[key] / _parts(key)))


def _settings(key: tuple[str, int | None]) -> settings:
    return settings(max_examples=_examples(key), deadline=None, derandomize=True,
                    database=None, print_blob=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


@st.composite
def variants(draw: st.DrawFn, way: str, n_corruptions: int | None = None) -> fw.Variant:
    """A variant of ``way`` whose every choice hypothesis makes."""
    kwargs = {} if n_corruptions is None else {"n_corruptions": n_corruptions}
    return fw.MAKERS[way][0](h.DrawChoices(draw), **kwargs)


def hash_seed(*key: object) -> int:
    """A fixed seed per test (derandomized runs would otherwise repeat one stream)."""
    return int.from_bytes(hashlib.sha256(repr(key).encode()).digest()[:8], "big")


def assert_judged(way: str, variant: fw.Variant) -> None:
    findings = fw.run(variant, fw.MAKERS[way][1])
    assert not findings, json.dumps([f.__dict__ for f in findings], indent=1, default=str)[:3000]


def _fuzz_test(way: str, n_corruptions: int | None, part: int):
    key = (way, n_corruptions)

    @seed(hash_seed(way, n_corruptions, part))
    @_settings(key)
    @given(variant=variants(way, n_corruptions))
    def test(variant: fw.Variant) -> None:
        assert_judged(way, variant)

    test.__name__ = f"test_fuzz_{way}_{'mixed' if n_corruptions is None else n_corruptions}_{part}"
    return test


for _key in SHARE:
    for _part in range(_parts(_key)):
        _t = _fuzz_test(*_key, _part)
        globals()[_t.__name__] = _t
del _key, _part, _t


def test_the_suite_is_several_thousand_corruptions_by_default() -> None:
    if "COEVIDENCE_FUZZ_N" in os.environ:
        pytest.skip("scaled by COEVIDENCE_FUZZ_N")
    total = sum(_examples(k) * _parts(k) for k in SHARE)
    corrupted = sum(_examples(k) * _parts(k) for k in SHARE if k[1] != 0)
    assert total >= 3000 and corrupted >= 2500, (total, corrupted)
