"""fit_panel's calling convention: renamed and positional arguments, refused ignored options,
OptionError for every option check, and the size of the family's functions."""

import ast
import inspect
import warnings
from pathlib import Path

import numpy as np
import pytest

import coevidence as cv
from coevidence.datasets.panel import load_grunfeld
from coevidence.exceptions import ModelSpecificationError, OptionError

KW = {"unit": "firm", "time": "year", "regressors": ["value", "capital"]}


@pytest.fixture(scope="module")
def g():
    return load_grunfeld()


def test_signature_is_the_shared_convention():
    sig = inspect.signature(cv.fit_panel)
    params = sig.parameters
    assert list(params)[:2] == ["panel", "outcome"]
    kw_only = [n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    for name in ("unit", "time", "formula", "regressors", "effects", "estimator", "cov_type",
                 "cluster", "small_sample", "conf_level", "bootstrap_reps",
                 "bootstrap_weights", "seed", "maxlag", "re_variance"):
        assert name in kw_only, name
    assert "cov" not in params
    assert params["unit"].default == "org_id" and params["time"].default == "wave"
    assert params["cov_type"].default == "unadjusted"


def test_old_cov_name_warns_and_gives_the_same_fit(g):
    new = cv.fit_panel(g, "inv", **KW, cov_type="robust")
    with pytest.warns(FutureWarning, match="cov= is deprecated"):
        old = cv.fit_panel(g, "inv", **KW, cov="robust")
    np.testing.assert_array_equal(new.std_errors, old.std_errors)
    with pytest.raises(OptionError, match="give cov_type= only"):
        cv.fit_panel(g, "inv", **KW, cov="robust", cov_type="robust")


def test_positional_unit_and_time_warn(g):
    kw = {"regressors": ["value", "capital"]}
    with pytest.warns(FutureWarning, match="passing unit, time by position"):
        old = cv.fit_panel(g, "inv", "firm", "year", **kw)
    new = cv.fit_panel(g, "inv", unit="firm", time="year", **kw)
    np.testing.assert_array_equal(old.params, new.params)
    with pytest.raises(OptionError, match="pass the options by name"):
        cv.fit_panel(g, "inv", "firm", "year", "within", **kw)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"bootstrap_reps": 99}, "bootstrap_reps=99 would be ignored"),
        ({"seed": 1, "cov_type": "clustered"}, "seed=1 would be ignored"),
        ({"seed": None}, "seed=None would be ignored"),
        ({"bootstrap_weights": "webb", "cov_type": "cr2"}, "bootstrap_weights='webb'"),
        ({"cluster": "firm"}, "cluster='firm' would be ignored"),
        ({"cluster": "firm", "cov_type": "driscoll_kraay"}, "does not cluster"),
        ({"maxlag": 2, "cov_type": "clustered"}, "only for cov_type='driscoll_kraay'"),
        ({"small_sample": "stata"}, "no small-sample factor"),
        ({"small_sample": "none", "cov_type": "cr2"}, "no small-sample factor"),
        ({"re_variance": "harmonic_mean"}, "only for estimator='random'"),
    ],
)
def test_ignored_options_are_refused(g, options, match):
    with pytest.raises(OptionError, match=match):
        cv.fit_panel(g, "inv", **KW, **options)


def test_cluster_none_is_the_default(g):
    a = cv.fit_panel(g, "inv", **KW, cluster=None)
    assert a.cluster is None


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"cov_type": "HC3"}, "cov_type must be one of"),
        ({"estimator": "gmm"}, "estimator must be one of"),
        ({"effects": "both"}, "effects must be one of"),
        ({"cov_type": "clustered", "small_sample": "stata13"}, "small_sample must be one of"),
        ({"cov_type": "wild_bootstrap", "bootstrap_weights": "mammen"}, "bootstrap_weights"),
        ({"cov_type": "wild_bootstrap", "bootstrap_reps": 0}, "bootstrap_reps must be"),
        ({"cov_type": "wild_bootstrap", "bootstrap_reps": 9.5}, "bootstrap_reps must be"),
        ({"cov_type": "wild_bootstrap", "seed": -3}, "seed must be non-negative"),
        ({"cov_type": "wild_bootstrap", "seed": "x"}, "seed must be an int"),
        ({"estimator": "random", "re_variance": "amemiya"}, "re_variance must be one of"),
        ({"conf_level": 95}, "conf_level must be in"),
        ({"cov_type": "driscoll_kraay", "maxlag": 1.5}, "maxlag must be a non-negative"),
    ],
)
def test_every_option_check_raises_option_error(g, options, match):
    with pytest.raises(OptionError, match=match) as err:
        cv.fit_panel(g, "inv", **KW, **options)
    assert isinstance(err.value, ValueError)


def test_effects_combinations_are_option_and_specification_errors(g):
    for options in ({"estimator": "random", "effects": "twoway"},
                    {"estimator": "within", "effects": None},
                    {"estimator": "pooled", "effects": "unit"}):
        with pytest.raises(OptionError) as err:
            cv.fit_panel(g, "inv", **KW, **options)
        assert isinstance(err.value, ModelSpecificationError)


def test_explicit_defaults_for_used_options_are_accepted(g):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cv.exceptions.FewClustersWarning)
        a = cv.fit_panel(g, "inv", **KW, cov_type="wild_bootstrap", bootstrap_reps=199,
                         bootstrap_weights="rademacher", seed=np.random.default_rng(5),
                         cluster="firm", small_sample="stata")
    assert a.glance()["n_clusters"].iloc[0] == 10
    b = cv.fit_panel(g, "inv", **KW, estimator="random", re_variance="baltagi_chang")
    assert b.estimator == "random"
    c = cv.fit_panel(g, "inv", **KW, cov_type="driscoll_kraay", maxlag=None)
    d = cv.fit_panel(g, "inv", **KW, cov_type="driscoll_kraay", maxlag=2)
    np.testing.assert_array_equal(c.std_errors, d.std_errors)


def test_no_function_in_the_panel_family_is_over_120_lines():
    root = Path(cv.__file__).parent / "models" / "panel"
    long = []
    for path in root.glob("*.py"):
        if path.name == "results.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > 120:
                    long.append((path.name, node.name, n))
    assert not long
