"""engine="auto"/"fast" through the same front end: lme4 agreement and engine cross-check.

The fast engine (issue 7) lives in coevidence.models.mixed._fast; these tests check that the
front end (result class, Satterthwaite inference, diagnostics) works with it, and that it and
statsmodels agree where both fit the model exactly.
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from coevidence.exceptions import DesignDfWarning

from coevidence import fit_mixed
from coevidence.models.mixed.datasets import load_dataset

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "mixed"
pytest.importorskip("coevidence.models.mixed._fast", reason="fast engine not installed")


def test_fast_engine_through_fit_mixed_matches_lmertest():
    m = json.loads((FIX / "sleepstudy.json").read_text())["models"][0]
    res = fit_mixed(m["formula"], load_dataset("sleepstudy"), engine="fast")
    assert res.engine == "fast"
    ref = pd.DataFrame(m["fixed_effects"])
    t = res.tidy()
    np.testing.assert_allclose(t["estimate"], ref["estimate"], rtol=1e-4)
    np.testing.assert_allclose(t["std_error"], ref["std_error"], rtol=1e-3)
    np.testing.assert_allclose(t["df"], ref["df_satterthwaite"], rtol=1e-2)
    assert abs(res.log_lik - m["logLik"]) < 1e-4


def test_auto_engine_and_statsmodels_agree_on_a_three_level_design():
    data = pd.read_csv(FIX / "ta3_mixed.csv").dropna(subset=["y"])
    data["ta_model"] = pd.Categorical(data["ta_model"], ["push", "co_creation"])
    f = "y ~ time * ta_model + (1 | provider_id) + (1 | org_id) + (0 + time | org_id)"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # no provider slope although the arm is assigned by provider: the guard says so
        warnings.filterwarnings("ignore", category=DesignDfWarning)
        auto = fit_mixed(f, data)
        sm = fit_mixed(f, data, engine="statsmodels")
    with pytest.warns(DesignDfWarning, match="time:ta_modelco_creation.*provider_id"):
        fit_mixed(f, data)
    np.testing.assert_allclose(auto.params, sm.params, rtol=1e-5)
    np.testing.assert_allclose(auto.tidy()["df"], sm.tidy()["df"], rtol=1e-3)
    np.testing.assert_allclose(auto.variance_components()["vcov"],
                               sm.variance_components()["vcov"], rtol=1e-3, atol=1e-6)
    assert auto.log_lik == pytest.approx(sm.log_lik, abs=1e-5)
