"""simulate_study extensions and simulate_power (serial, processes, Dask; Parquet resume)."""

from __future__ import annotations

import sys
import threading
import time
import warnings

import numpy as np
import pandas as pd
import pytest

import coevidence as cv
from coevidence.design.simulate import OutcomeSpec, SimulationSpec, simulate_study, true_effects
from coevidence.design.simulation_power import (
    REPLICATE_COLUMNS,
    SimulationPowerResult,
    analytic_power,
    simulate_power,
)
from coevidence.exceptions import MissingExtraError

pytestmark = pytest.mark.filterwarnings("ignore::coevidence.exceptions.CoevidenceWarning")


def _small(**kw) -> SimulationSpec:
    base = dict(n_providers=2, orgs_per_provider=6, respondents_per_org=3, n_waves=2,
                assignment="organization", encounter_logs=False, responses="scores",
                attrition=0.0,
                outcomes=[OutcomeSpec(arm_effect=0.4, arm_slope=0.0, round_items=False)])
    base.update(kw)
    return SimulationSpec(**base)


def _growth_spec(**kw) -> SimulationSpec:
    o = OutcomeSpec(response_min=-20, response_max=30, intercept=5.0, slope=0.1, arm_slope=0.12,
                    post_slope_change=0.0, sd_provider=0.3, sd_provider_slope=0.05,
                    sd_org_intercept=0.4, sd_org_slope=0.08, sd_respondent=0.5, sd_residual=0.3,
                    round_items=False, n_items=4)
    base = dict(n_providers=6, orgs_per_provider=3, respondents_per_org=2, n_waves=4,
                assignment="provider", attrition=0.0, encounter_logs=False, ta_months=60,
                responses="scores", outcomes=[o])
    base.update(kw)
    return SimulationSpec(**base)


# ------------------------------------------------------------------ simulate_study
def test_spec_forbids_unknown_fields():
    with pytest.raises(ValueError, match="extra"):
        SimulationSpec(n_provider=3)


def test_same_seed_same_study_and_scores_output():
    spec = _small()
    a, b = simulate_study(spec, seed=4), simulate_study(spec, seed=4)
    assert a == b
    assert a.responses.empty and len(a.scores) == 2 * 12 * 3
    assert simulate_study(spec, seed=5) != a


def test_stepped_wedge_starts_in_equal_random_groups():
    spec = SimulationSpec(n_providers=3, orgs_per_provider=4, respondents_per_org=1, n_waves=4,
                          assignment="stepped_wedge", n_steps=3, encounter_logs=False,
                          responses="scores", outcomes=[OutcomeSpec()])
    study = simulate_study(spec, seed=1)
    assert study.design.randomisation_unit.value == "organization"
    starts = pd.Series([e.start_date for e in study.engagements])
    waves = [w.date for w in study.design.waves]
    step = starts.map(lambda d: sum(w < d for w in waves))
    assert sorted(step.value_counts().tolist()) == [4, 4, 4]
    assert set(step) == {1, 2, 3}


def test_staggered_selection_makes_ready_units_start_earlier():
    spec = SimulationSpec(n_providers=10, orgs_per_provider=10, respondents_per_org=1,
                          n_waves=3, assignment="staggered", selection=5.0,
                          encounter_logs=False, responses="scores",
                          outcomes=[OutcomeSpec(readiness_effect=1.0, sd_org_intercept=0.05,
                                                sd_provider=0.0, slope=0.0, arm_slope=0.0,
                                                round_items=False, response_min=-10,
                                                response_max=10)])
    study = simulate_study(spec, seed=2)
    assert study.design.randomisation_unit.value == "none"
    panel = study.panel(unit="organization")
    base = panel[panel["time"] == 0].set_index("org_id")["research_use"]
    waves = [w.date for w in study.design.waves]
    step = pd.Series({e.org_id: sum(w < e.start_date for w in waves) for e in study.engagements})
    early = step == 1
    assert early.sum() == 50
    # readiness raises the outcome and drives early starts: early starters score higher
    assert base[early[early].index].mean() > base[early[~early].index].mean() + 0.8


def test_mar_attrition_depends_on_previous_score():
    kw = dict(n_providers=4, orgs_per_provider=25, respondents_per_org=4, n_waves=3,
              attrition=0.3, encounter_logs=False, responses="scores",
              outcomes=[OutcomeSpec(round_items=False)])
    mar = simulate_study(SimulationSpec(attrition_mechanism="mar", mar_strength=2.0, **kw), 3)
    p = mar.panel(unit="respondent")
    w0 = p[p["time"] == 0].set_index("respondent_id")["research_use"]
    gone = p[(p["time"] == 1)].set_index("respondent_id")["research_use"].isna()
    assert 0.1 < gone.mean() < 0.6
    assert w0[gone].mean() < w0[~gone].mean() - 0.2  # low scorers drop out (MAR)
    mcar = simulate_study(SimulationSpec(attrition_mechanism="mcar", **kw), 3)
    q = mcar.panel(unit="respondent")
    v0 = q[q["time"] == 0].set_index("respondent_id")["research_use"]
    g = q[q["time"] == 1].set_index("respondent_id")["research_use"].isna()
    assert abs(v0[g].mean() - v0[~g].mean()) < 0.15


def test_true_effects_slope_projection():
    spec = SimulationSpec(n_waves=5, wave_months=6, ta_months=12,
                          outcomes=[OutcomeSpec(arm_effect=0.0, arm_slope=0.1,
                                                post_slope_change=-0.1)])
    te = true_effects(spec)["research_use"]
    t = np.arange(5.0)
    assert te["difference_by_wave"][0] == 0
    assert te["slope_difference"] == pytest.approx(np.polyfit(t, te["difference_by_wave"], 1)[0])
    assert te["slope_difference"] < 0.1


def test_example_study_generator_still_matches_bundled_data():
    from coevidence.datasets._make_example import SEED, SPEC

    fresh = simulate_study(SPEC, seed=SEED).to_frames()
    bundled = cv.load_example_study().to_frames()
    for name in ("organizations", "engagements", "encounters", "responses"):
        a, b = fresh[name].reset_index(drop=True), bundled[name].reset_index(drop=True)
        assert a.astype(str).equals(b.astype(str)), name


@pytest.mark.slow
def test_example_study_default_growth_fit_recovers_the_truth():
    """Providers' slopes vary in the example; the design-aware default fits it and covers truth."""
    from coevidence.datasets._make_example import SPEC

    assert [o.sd_provider_slope for o in SPEC.outcomes] == [0.04, 0.03]
    truth = true_effects(SPEC)
    panel = cv.load_example_study().panel(unit="organization")
    for y, est, se in (("research_use", 0.1098, 0.0270), ("capacity", 0.0525, 0.0174)):
        with warnings.catch_warnings():
            warnings.simplefilter("error", cv.CoevidenceWarning)  # no fit or design warning
            res = cv.fit_growth(panel, y)
        assert res.formula == (f"{y} ~ time * ta_model + (1 + time | org_id)"
                               " + (1 + time | provider_id)")
        assert res.diagnostics.converged and not res.diagnostics.singular
        assert res.growth.design.assignment_level == "provider_id"
        assert not res.growth.design.slope_at_boundary
        r = res.tidy().set_index("term").loc["time:ta_modelco_creation"]
        assert (r["estimate"], r["std_error"]) == pytest.approx((est, se), abs=5e-5)
        assert r["df"] == pytest.approx(10.0, abs=0.05)  # 12 providers - 2
        assert r["conf_low"] < truth[y]["slope_difference"] < r["conf_high"]


# ------------------------------------------------------------------ simulate_power
def test_simulate_power_summary_counts_and_truth():
    res = simulate_power(_small(), "cluster_means", n_reps=8, seed=1)
    assert isinstance(res, SimulationPowerResult)
    assert res.n_reps == 8 and res.n_failed == 0 and res.n_ok == 8
    assert res.truth == pytest.approx(0.4)
    reps = res.replicates
    assert list(reps.columns) == list(REPLICATE_COLUMNS)
    assert reps["rep"].tolist() == list(range(8))
    assert res.power == pytest.approx((reps["p_value"] < 0.05).mean())
    assert res.mc_se == pytest.approx(np.sqrt(res.power * (1 - res.power) / 8))
    assert res.bias == pytest.approx((reps["estimate"] - 0.4).mean())
    t = res.tidy()
    assert t["term"].tolist() == ["power", "bias", "rmse", "coverage"]
    assert "Monte Carlo SE" in res.summary() and "Estimator" in res.summary()
    with pytest.raises(AttributeError):
        res.power = 1.0


def _flaky(study):
    """Fails on studies whose first organisation is in the push arm (about half)."""
    if study.organizations[0].arm == "push":
        raise RuntimeError("simulated convergence failure")
    from coevidence.design._analyses import ClusterMeans

    return ClusterMeans()(study)


def test_failed_fits_are_counted_not_dropped():
    res = simulate_power(_small(), _flaky, n_reps=10, seed=2, truth=0.4)
    assert res.n_reps == 10 and 0 < res.n_failed < 10
    reps = res.replicates
    assert reps["failed"].sum() == res.n_failed
    assert reps.loc[reps["failed"], "error"].str.contains("convergence failure").all()
    assert res.power_all <= res.power
    assert f"{res.n_failed} failed fits" in res.summary()


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_reps"):
        simulate_power(_small(), n_reps=0)
    with pytest.raises(ValueError, match="backend"):
        simulate_power(_small(), n_reps=2, backend="threads")
    with pytest.raises(ValueError, match="unknown analysis"):
        simulate_power(_small(), "anova", n_reps=2)


class _Interrupting:
    """Cluster-mean analysis that raises KeyboardInterrupt at its ``stop``-th call."""

    calls = 0
    stop = 10**9

    def __call__(self, study):
        type(self).calls += 1
        if type(self).calls == type(self).stop:
            raise KeyboardInterrupt
        from coevidence.design._analyses import ClusterMeans

        return ClusterMeans()(study)


def test_parquet_resume_after_interruption(tmp_path):
    spec = _small()
    full = simulate_power(spec, _Interrupting(), n_reps=8, seed=9, truth=0.4)
    _Interrupting.calls, _Interrupting.stop = 0, 5
    with pytest.raises(KeyboardInterrupt):
        simulate_power(spec, _Interrupting(), n_reps=8, seed=9, truth=0.4, out=tmp_path)
    saved = pd.read_parquet(tmp_path / "replicates")
    assert sorted(saved["rep"]) == [0, 1, 2, 3]  # finished replicates were written
    _Interrupting.calls, _Interrupting.stop = 0, 10**9
    resumed = simulate_power(spec, _Interrupting(), n_reps=8, seed=9, truth=0.4, out=tmp_path)
    assert _Interrupting.calls == 4  # only the missing replicates ran
    pd.testing.assert_frame_equal(resumed.replicates, full.replicates)
    with pytest.raises(ValueError, match="different run"):
        simulate_power(spec, _Interrupting(), n_reps=8, seed=10, out=tmp_path)


def test_out_without_pyarrow_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(MissingExtraError, match=r"coevidence\[io\]"):
        simulate_power(_small(), "cluster_means", n_reps=2, out=tmp_path)


def test_analytic_twin_of_a_spec():
    spec = _small(n_providers=2, orgs_per_provider=10, respondents_per_org=5)
    a = analytic_power(spec, "cluster_means")
    o = spec.outcomes[0]
    slope_var = o.sd_org_slope**2  # at the last wave, t = 1
    total = o.total_variance() + o.error_variance() + slope_var
    assert a.design == "cra2" and a.inputs["J"] == 20 and a.inputs["n"] == 5
    assert a.inputs["rho2"] == pytest.approx(
        (o.sd_org_intercept**2 + o.sd_provider**2 + slope_var) / total)
    assert a.es == pytest.approx(0.4 / np.sqrt(total))
    g = analytic_power(_growth_spec(), "growth")
    assert g.design == "slopes_cra2" and g.inputs["J"] == 6 and g.es == pytest.approx(0.12)


@pytest.mark.slow
def test_serial_and_processes_identical():
    spec = _growth_spec()
    a = simulate_power(spec, "growth_two_stage", n_reps=4, seed=3)
    b = simulate_power(spec, "growth_two_stage", n_reps=4, seed=3, backend="processes",
                       n_workers=2, chunk_size=2)
    pd.testing.assert_frame_equal(a.replicates, b.replicates)


@pytest.mark.slow
def test_cra2_simulated_power_agrees_with_analytic_within_mc_error():
    o = OutcomeSpec(response_min=0, response_max=10, intercept=5.0, slope=0.0, arm_effect=0.45,
                    arm_slope=0.0, post_slope_change=0.0, sd_provider=0.0, sd_org_intercept=0.4,
                    sd_org_slope=0.0, sd_respondent=0.5, sd_residual=0.3, round_items=False,
                    n_items=4)
    spec = SimulationSpec(n_providers=2, orgs_per_provider=10, respondents_per_org=5,
                          n_waves=2, assignment="organization", attrition=0.0,
                          encounter_logs=False, responses="scores", outcomes=[o])
    analytic = analytic_power(spec, "cluster_means")
    res = simulate_power(spec, "cluster_means", n_reps=200, seed=11, analytic=analytic)
    assert res.n_failed == 0
    assert abs(res.power - analytic.value) < 3 * res.mc_se
    assert abs(res.bias) < 3 * res.sd_estimate / np.sqrt(res.n_ok)
    assert res.glance()["analytic_power"][0] == pytest.approx(analytic.value)


@pytest.mark.slow
def test_growth_mixed_reported_next_to_analytic():
    spec = _growth_spec()
    analytic = analytic_power(spec, "growth")
    res = simulate_power(spec, "growth", n_reps=6, seed=1, analytic=analytic)
    assert res.n_reps == 6
    assert "Analytic approximation (slopes_cra2)" in res.summary()
    assert res.n_ok + res.n_failed == 6


# ------------------------------------------------------------------ Dask
@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("distributed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           host="127.0.0.1", dashboard_address=None)
        client = distributed.Client(cluster)
    yield cluster, client
    client.close()
    cluster.close()


@pytest.mark.slow
def test_dask_client_and_address_identical_to_serial(dask_cluster):
    cluster, client = dask_cluster
    spec = _growth_spec()
    serial = simulate_power(spec, "growth_two_stage", n_reps=6, seed=7)
    viaclient = simulate_power(spec, "growth_two_stage", n_reps=6, seed=7, backend="dask",
                               client=client)
    viaaddr = simulate_power(spec, "growth_two_stage", n_reps=6, seed=7, backend="dask",
                             scheduler=cluster.scheduler_address, chunk_size=3)
    pd.testing.assert_frame_equal(serial.replicates, viaclient.replicates)
    pd.testing.assert_frame_equal(serial.replicates, viaaddr.replicates)


class _Slow:
    """Two-stage growth analysis that takes a little longer (so a worker can be killed)."""

    def __call__(self, study):
        time.sleep(0.1)
        from coevidence.design._analyses import Growth

        return Growth(method="two_stage")(study)


@pytest.mark.slow
def test_dask_run_survives_a_killed_worker(dask_cluster, tmp_path):
    import os
    import signal

    cluster, client = dask_cluster
    spec = _growth_spec()
    expected = simulate_power(spec, _Slow(), n_reps=12, seed=5, truth=0.12)
    pids = client.run(os.getpid)  # worker address -> process id
    victim = sorted(pids.values())[0]
    state = {}

    def kill():
        # wait until the first replicate has been written, so the run is under way
        deadline = time.monotonic() + 60
        while not list((tmp_path / "replicates").glob("part-*.parquet")):
            if time.monotonic() > deadline:
                return
            time.sleep(0.02)
        state["done_before_kill"] = len(list((tmp_path / "replicates").glob("part-*.parquet")))
        os.kill(victim, signal.SIGKILL)
        state["killed_at"] = time.monotonic()

    killer = threading.Thread(target=kill)
    killer.start()
    got = simulate_power(spec, _Slow(), n_reps=12, seed=5, truth=0.12, backend="dask",
                         client=client, out=tmp_path)
    finished_at = time.monotonic()
    killer.join()
    assert "killed_at" in state and state["killed_at"] < finished_at
    assert state["done_before_kill"] < 12  # killed mid-run
    assert victim not in client.run(os.getpid).values()  # the worker really died
    pd.testing.assert_frame_equal(got.replicates, expected.replicates)


# ------------------------------------------------------------------ stepped wedge
def _sw_spec(**kw) -> SimulationSpec:
    o = OutcomeSpec(response_min=-10, response_max=20, arm_effect=0.25, arm_slope=0.0,
                    slope=0.05, post_slope_change=0.0, sd_provider=0.0, sd_org_slope=0.0,
                    round_items=False)
    base = dict(n_providers=4, orgs_per_provider=3, respondents_per_org=4, n_waves=5,
                n_steps=4, assignment="stepped_wedge", attrition=0.0, ta_months=60,
                encounter_logs=False, responses="scores", outcomes=[o])
    base.update(kw)
    return SimulationSpec(**base)


def test_stepped_wedge_spec_checks_and_default_analysis():
    with pytest.raises(ValueError, match="n_steps"):
        _sw_spec(n_steps=5)
    from coevidence.design._analyses import SteppedWedge, resolve_analysis

    assert isinstance(resolve_analysis(None, _sw_spec()), SteppedWedge)
    study = simulate_study(_sw_spec(), seed=1)
    panel = study.panel(unit="organization")
    treated = panel["phase"].isin(["during", "after"])
    # exposure in the panel matches the generating steps: nobody treated at baseline, all at the end
    assert not treated[panel["time"] == 0].any() and treated[panel["time"] == 4].all()
    twin = analytic_power(_sw_spec(), "stepped_wedge")
    assert twin.design == "stepped_wedge" and twin.inputs["J"] == 12
    assert twin.inputs["baseline_periods"] == 1


@pytest.mark.slow
def test_stepped_wedge_simulated_power_agrees_with_hussey_hughes():
    spec = _sw_spec()
    analytic = analytic_power(spec, "stepped_wedge")
    res = simulate_power(spec, n_reps=80, seed=3, analytic=analytic)
    assert res.analysis == "stepped_wedge" and res.n_failed == 0
    assert abs(res.power - analytic.value) < 3 * res.mc_se
    assert abs(res.bias) < 3 * res.sd_estimate / np.sqrt(res.n_ok)


def test_progress_bar_on_request(capsys):
    simulate_power(_small(), "cluster_means", n_reps=2, seed=1, progress=True)
    err = capsys.readouterr().err
    assert "simulate_power[cluster_means]" in err and "2/2" in err
    simulate_power(_small(), "cluster_means", n_reps=2, seed=1)  # not a terminal: silent
    assert capsys.readouterr().err == ""


def test_processes_backend_refuses_interactive_analysis(monkeypatch):
    import __main__

    def analysis(study):  # pretend it was typed in a notebook
        return {}

    analysis.__module__ = "__main__"
    monkeypatch.delattr(__main__, "__file__", raising=False)
    with pytest.raises(ValueError, match="backend='dask'"):
        simulate_power(_small(), analysis, n_reps=2, backend="processes")
