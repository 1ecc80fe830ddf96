"""One calling convention: every public fitter's signature uses the shared names, old spellings
warn and give the same numbers, options that would be ignored are refused, and every option of
a fitter changes its output."""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import coevidence as cv
from coevidence.exceptions import CoevidenceError, OptionError
from coevidence.models._shared.options import RETIRED_NAMES, as_generator, check_conf_level

FIX = Path(__file__).parents[1] / "fixtures" / "panel"

#: every public fitter, with the names of its leading (data) arguments
FITTERS = {
    "fit_mixed": ("formula", "data"),
    "fit_growth": ("panel", "outcome"),
    "fit_growth_two_stage": ("panel", "outcome"),
    "fit_mediation": ("data", "outcome"),
    "fit_panel": ("panel", "outcome"),
    "fit_event_study": ("panel", "outcome"),
    "fit_stepped_wedge": ("panel", "outcome"),
    "randomization_test": ("data", "fit"),
    "simulate_power": ("spec", "analysis"),
}

#: role -> the one name every fitter uses for it (synonyms are in RETIRED_NAMES)
ROLES = {"cov_type", "conf_level", "seed", "cluster", "unit", "time"}


def test_every_public_fitter_is_listed():
    fitters = {n for n in cv.__all__ if n.startswith("fit_")}
    assert fitters <= set(FITTERS), fitters - set(FITTERS)


@pytest.mark.parametrize("name", sorted(FITTERS))
def test_signature_uses_shared_names(name):
    sig = inspect.signature(getattr(cv, name))
    params = list(sig.parameters.values())
    positional = [p.name for p in params
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    assert tuple(positional) == FITTERS[name], (name, positional)
    names = {p.name for p in params}
    assert not names & set(RETIRED_NAMES), (name, names & set(RETIRED_NAMES))
    # the result of every estimating fitter keeps its confidence level: the fitter takes it
    if name not in ("simulate_power", "randomization_test"):  # p-values only, no intervals
        assert "conf_level" in names, name


def _fp(res) -> str:
    """A fingerprint of everything a result reports."""
    parts = [res.tidy().to_csv(float_format="%.10g"), res.glance().to_csv(float_format="%.10g")]
    parts.append(res.summary())
    return "\n".join(parts)


@pytest.fixture(scope="module")
def sw():
    return pd.read_csv(FIX / "sw_sim.csv")


@pytest.fixture(scope="module")
def mpdta():
    return cv.load_mpdta()


@pytest.fixture(scope="module")
def sleep():
    from coevidence.models.mixed.datasets import load_dataset

    return load_dataset("sleepstudy")


SW = {"unit": "cluster", "time": "period", "first_treated": "start"}
ES = {"unit": "countyreal", "time": "year", "first_treated": "first.treat"}
SLEEP = "reaction ~ days + (days | subject)"


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cv.CoevidenceWarning)
        return fn(*args, **kwargs)


# ---------------------------------------------------------------- old spellings keep working
def test_stepped_wedge_old_spellings_warn_and_agree(sw):
    new = _quiet(cv.fit_stepped_wedge, sw, "y", **SW, cov_type="clustered")
    with pytest.warns(FutureWarning, match="period= is deprecated"), \
            pytest.warns(FutureWarning, match="cov= is deprecated"):
        old = _quiet(cv.fit_stepped_wedge, sw, "y", unit="cluster", period="period",
                     first_treated="start", cov="clustered")
    pd.testing.assert_frame_equal(new.tidy(), old.tidy())
    with pytest.warns(FutureWarning, match="by position"):
        pos = _quiet(cv.fit_stepped_wedge, sw, "y", "cluster", "period", first_treated="start",
                     cov_type="clustered")
    pd.testing.assert_frame_equal(new.tidy(), pos.tidy())
    with pytest.raises(OptionError, match="give cov_type= only"):
        cv.fit_stepped_wedge(sw, "y", **SW, cov="cr2", cov_type="cr2")


def test_event_study_bootstrap_old_spelling(mpdta):
    new = _quiet(cv.fit_event_study, mpdta, "lemp", **ES, bootstrap_reps=99, seed=1)
    with pytest.warns(FutureWarning, match="bootstrap= is deprecated"):
        old = _quiet(cv.fit_event_study, mpdta, "lemp", **ES, bootstrap=99, seed=1)
    pd.testing.assert_frame_equal(new.tidy(), old.tidy())


def test_mixed_positional_options_warn(sleep):
    new = cv.fit_mixed(SLEEP, sleep, reml=False)
    with pytest.warns(FutureWarning, match="passing reml by position"):
        old = cv.fit_mixed(SLEEP, sleep, False)
    pd.testing.assert_frame_equal(new.tidy(), old.tidy())
    with pytest.raises(OptionError, match="by position and by name"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            cv.fit_mixed(SLEEP, sleep, False, reml=True)


def test_growth_and_power_positional_options_warn():
    study = cv.load_example_study()
    panel = _quiet(study.panel, "research_use")
    with pytest.warns(FutureWarning, match="passing time by position"):
        old = _quiet(cv.fit_growth, panel, "research_use", "time")
    new = _quiet(cv.fit_growth, panel, "research_use", time="time")
    pd.testing.assert_frame_equal(new.tidy(), old.tidy())
    with pytest.raises(OptionError, match="positional"):
        cv.simulate_power(None, None, 1, 2, "serial", None, None, None, None, "extra")


# ---------------------------------------------------------------- ignored options are refused
def test_ignored_options_are_refused(sw, mpdta):
    with pytest.raises(OptionError, match="cov_type='clustered' would be ignored"):
        cv.fit_stepped_wedge(sw, "y", **SW, cluster_effects="random", cov_type="clustered")
    for opt in ({"control": "not_yet_treated"}, {"est_method": "reg"},
                {"base_period": "universal"}):
        with pytest.raises(OptionError, match="would be ignored"):
            cv.fit_event_study(mpdta, "lemp", **ES, estimator="sun_abraham", **opt)
    for opt in ({"bootstrap_weights": "rademacher"}, {"seed": 3}):
        with pytest.raises(OptionError, match="no bootstrap was asked for"):
            cv.fit_event_study(mpdta, "lemp", **ES, **opt)


def test_option_errors_are_typed_and_builtin(sw, mpdta, sleep):
    bad = [
        lambda: cv.fit_stepped_wedge(sw, "y", **SW, model="linear"),
        lambda: cv.fit_stepped_wedge(sw, "y", **SW, cov_type="hc9"),
        lambda: cv.fit_event_study(mpdta, "lemp", **ES, estimator="synthetic"),
        lambda: cv.fit_event_study(mpdta, "lemp", **ES, conf_level=1.5),
        lambda: cv.fit_event_study(mpdta, "lemp", **ES, bootstrap_reps=99, seed="abc"),
        lambda: cv.fit_mixed(SLEEP, sleep, df_method="exact"),
        lambda: cv.fit_mixed(SLEEP, sleep, cov_type="hc3"),
        lambda: cv.mdes("cra9"),
    ]
    for fn in bad:
        with pytest.raises(OptionError) as exc:
            fn()
        assert isinstance(exc.value, CoevidenceError) and isinstance(exc.value, ValueError)


def test_seed_and_conf_level_conventions():
    g = np.random.default_rng(3)
    assert as_generator(g) is g
    assert as_generator(np.random.SeedSequence(5)).random() == as_generator(
        np.random.SeedSequence(5)).random()
    for bad in (True, -1, 1.5, "7"):
        with pytest.raises(OptionError):
            as_generator(bad)
    for bad in (0, 1, "x", None):
        with pytest.raises(OptionError):
            check_conf_level(bad)


# ---------------------------------------------------------------- every option changes output
def _sw_variants(sw):
    d = sw.assign(on=(sw["period"] >= sw["start"]).astype(int),
                  x=np.random.default_rng(0).normal(size=len(sw)))
    base = {"unit": "cluster", "time": "period", "first_treated": "start"}
    return d, base, [
        {"model": "immediate"},
        {"cluster_effects": "random"},
        {"cov_type": "clustered"},
        {"cov_type": "unadjusted"},
        {"covariates": ["x"]},
        {"max_exposure": 2},
        {"first_treated": None, "treated": "on", "max_exposure": 10**6, "_same": True},
    ]


def test_stepped_wedge_every_option_changes_output(sw):
    d, base, variants = _sw_variants(sw)
    ref = _fp(_quiet(cv.fit_stepped_wedge, d, "y", **base))
    for v in variants:
        v = dict(v)
        same = v.pop("_same", False)
        out = _fp(_quiet(cv.fit_stepped_wedge, d, "y", **{**base, **v}))
        # treated= is the same information as first_treated= (same numbers), the rest differ
        if same:
            assert out.split("\n")[0] == ref.split("\n")[0]
        else:
            assert out != ref, v


def test_event_study_every_option_changes_output(mpdta):
    d = mpdta.assign(region=mpdta["countyreal"] % 12,
                     arm=np.where(mpdta["countyreal"] % 2 == 0, "a", "b"))
    ref = _fp(_quiet(cv.fit_event_study, d, "lemp", **ES))
    boot = {"bootstrap_reps": 99, "seed": 1}
    variants = [
        {"estimator": "sun_abraham"}, {"estimator": "two_stage"}, {"estimator": "twfe"},
        {"control": "not_yet_treated"}, {"anticipation": 1}, {"covariates": ["lpop"]},
        {"covariates": ["lpop"], "est_method": "reg"}, {"base_period": "universal"},
        {"by": "arm"}, boot, {**boot, "bootstrap_weights": "rademacher"},
        {**boot, "seed": 2}, {"cluster": "region"}, {"conf_level": 0.9},
        {"cluster": "region", "small_sample": "cr1"}, {"cluster": "region", "df": "normal"},
        {"cluster": "region", "df": 5.0},
    ]
    seen = {}
    for v in variants:
        out = _fp(_quiet(cv.fit_event_study, d, "lemp", **ES, **v))
        assert out != ref, v
        seen[repr(v)] = out
    # est_method changes the covariate-adjusted fit
    assert seen[repr({"covariates": ["lpop"]})] != seen[
        repr({"covariates": ["lpop"], "est_method": "reg"})]


def test_mixed_every_option_changes_output(sleep):
    ref = _fp(_quiet(cv.fit_mixed, SLEEP, sleep))
    for v in ({"reml": False}, {"engine": "statsmodels"}, {"df_method": "kenward_roger"},
              {"df_method": "residual"}, {"cov_type": "cr2", "cluster": "subject"},
              {"conf_level": 0.9}):
        assert _fp(_quiet(cv.fit_mixed, SLEEP, sleep, **v)) != ref, v


def test_growth_every_option_changes_output():
    """Every fit_growth option changes what the result reports (a small simulated study)."""
    from models.mixed.growth_sim import provider_randomised_panel

    panel = provider_randomised_panel(np.random.default_rng(3), n_prov=8, n_org=4, n_waves=4)
    panel = panel.assign(cov1=panel["time"] ** 2 % 3)
    org_w = {o: 1.0 + (i % 3) for i, o in enumerate(pd.unique(panel["org_id"]))}
    panel = panel.assign(w=panel["org_id"].map(org_w))
    base = {"time": "time", "arm": "ta_model", "reference": "push"}
    ref = _fp(_quiet(cv.fit_growth, panel, "research_use", **base))
    variants = [
        {"reference": "co_creation"},
        {"levels": ("org_id",)},
        {"random_slope": "uncorrelated"},
        {"random_slope": False},
        {"time_coding": "categorical"},
        {"covariates": "cov1"},
        {"assigned_at": "org_id"},
        {"random_slopes": {"provider_id": False}},
        {"random_effects": "(1 + time | org_id)"},
        {"between_df": "bound"},
        {"conf_level": 0.9},
        {"df_method": "kenward_roger"},
        {"cov_type": "cr2"},
        {"reml": False},
        {"weights": "w"},
        {"weights": "w", "weights_scale": "none"},
    ]
    for v in variants:
        out = _fp(_quiet(cv.fit_growth, panel, "research_use", **{**base, **v}))
        assert out != ref, v
    # "auto" equals "model" when no bound is needed (as here); "model" never bounds
    bound = _fp(_quiet(cv.fit_growth, panel, "research_use", **base, between_df="bound"))
    model = _fp(_quiet(cv.fit_growth, panel, "research_use", **base, between_df="model"))
    assert bound != model
    with pytest.raises(OptionError, match="unexpected option"):
        cv.fit_growth(panel, "research_use", **base, bogus="w")
    with pytest.raises(OptionError, match="only apply with family"):
        cv.fit_growth(panel, "research_use", **base, offset="w")
