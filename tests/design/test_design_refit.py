"""simulate_power refits replicates that share a design (issue 17): same numbers, any backend."""

from __future__ import annotations

import numpy as np
import pytest

from coevidence.design import _analyses
from coevidence.design._analyses import Growth
from coevidence.design.simulate import OutcomeSpec, SimulationSpec, simulate_study
from coevidence.design.simulation_power import _auto_chunk_size, simulate_power

pytestmark = pytest.mark.filterwarnings("ignore::coevidence.exceptions.CoevidenceWarning")


def _spec(**kw) -> SimulationSpec:
    o = OutcomeSpec(response_min=-20, response_max=30, intercept=5.0, slope=0.1, arm_slope=0.12,
                    post_slope_change=0.0, sd_provider=0.3, sd_provider_slope=0.05,
                    sd_org_intercept=0.4, sd_org_slope=0.08, sd_respondent=0.5, sd_residual=0.3,
                    round_items=False, n_items=4)
    base = dict(n_providers=4, orgs_per_provider=3, respondents_per_org=2, n_waves=4,
                assignment="provider", attrition=0.0, encounter_logs=False, ta_months=60,
                responses="scores", outcomes=[o])
    base.update(kw)
    return SimulationSpec(**base)


@pytest.mark.parametrize("method", ["mixed", "cr2"])
def test_refitted_replicates_equal_fresh_fits(method, monkeypatch):
    spec = _spec()
    seeds = np.random.SeedSequence(7).spawn(12)
    studies = [simulate_study(spec, seed=s) for s in seeds]
    an = Growth(method=method)
    monkeypatch.setattr(_analyses, "_REFITS", type(_analyses._REFITS)())
    cached = [an(s) for s in studies]
    hits = len(studies) - len(_analyses._REFITS)
    assert hits > 0  # 4 providers, 2 per arm: 6 randomisations for 12 replicates
    monkeypatch.setattr(_analyses, "_REFITS_SIZE", 0)
    fresh = [an(s) for s in studies]
    for a, b in zip(cached, fresh, strict=True):
        assert a == b  # bit for bit, warnings included


def test_backends_identical_with_automatic_chunks():
    spec = _spec()
    ser = simulate_power(spec, "growth", n_reps=8, seed=3)
    par = simulate_power(spec, "growth", n_reps=8, seed=3, backend="processes", n_workers=2)
    assert ser.replicates.sort_values("rep").reset_index(drop=True).equals(
        par.replicates.sort_values("rep").reset_index(drop=True))


def test_auto_chunk_size():
    assert _auto_chunk_size(400, "processes", 2, None) == 50
    assert _auto_chunk_size(40, "processes", 2, None) == 5
    assert _auto_chunk_size(3, "dask", 2, None) == 1
    assert _auto_chunk_size(400, "serial", 2, None) == 1


def test_lean_refits_equal_full_refits(monkeypatch):
    """The lean path (Refitter.estimates) gives the full refit_growth row bit for bit, and
    falls back to refit_growth for replicates with warnings or df above the design limits."""
    spec = _spec()
    seeds = np.random.SeedSequence(11).spawn(14)
    studies = [simulate_study(spec, seed=s) for s in seeds]
    an = Growth()
    calls = {"lean": 0}
    real = _analyses._lean_refit

    def counting(*a, **k):
        out = real(*a, **k)
        calls["lean"] += out is not None
        return out

    monkeypatch.setattr(_analyses, "_REFITS", type(_analyses._REFITS)())
    monkeypatch.setattr(_analyses, "_lean_refit", counting)
    lean = [an(s) for s in studies]
    assert calls["lean"] > 0
    monkeypatch.setattr(_analyses, "_REFITS", type(_analyses._REFITS)())
    monkeypatch.setattr(_analyses, "_lean_plan", lambda *a, **k: None)  # full refits only
    full = [an(s) for s in studies]
    for a, b in zip(lean, full, strict=True):
        assert a == b
