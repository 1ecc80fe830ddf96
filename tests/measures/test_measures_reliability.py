"""reliability(): alpha, Feldt CI, omega and item stats against R's psych (4 datasets)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from coevidence.exceptions import MeasureError, MissingDataWarning
from coevidence.measures.reliability import ReliabilityResult, reliability, reliability_by
from coevidence.results.base import TIDY_COLUMNS

from _measures_helpers import as_list, load_reference, read_data

REF = load_reference("reliability_reference.json")
FILES = {"bfi_agree": "bfi_agree.csv", "bfi_consc": "bfi_consc.csv",
         "bhr2000_6": "bhr2000.csv", "sim_org": "sim_org.csv"}


def fit(entry):
    data = read_data(FILES[entry["dataset"]])[entry["items"]]
    return reliability(data, as_list(entry["reverse"]), entry["min_value"], entry["max_value"])


@pytest.mark.parametrize("entry", REF, ids=[e["dataset"] for e in REF])
def test_matches_psych(entry):
    r = fit(entry)
    assert r.n_obs == entry["n_obs"]
    assert r.alpha == pytest.approx(entry["alpha"], abs=1e-10)
    assert r.std_alpha == pytest.approx(entry["std_alpha"], abs=1e-10)
    assert r.alpha_ci == pytest.approx((entry["alpha_ci_lower"], entry["alpha_ci_upper"]),
                                       abs=1e-10)
    # psych's minres stops at its own tolerance; loadings agree to 1e-5
    np.testing.assert_allclose(r.loadings.to_numpy(), entry["loadings_minres"], atol=1e-5)
    assert r.omega == pytest.approx(entry["omega_mcdonald"], abs=1e-6)
    # psych::omega(nfactors=1)'s omega.tot divides by the observed total variance instead of
    # the model-implied one; it differs from McDonald's model-based omega by < 3e-4 here
    assert r.omega == pytest.approx(entry["omega_tot_psych"], abs=3e-4)
    st = r.item_stats
    np.testing.assert_allclose(st["r_drop"], entry["r_drop"], atol=1e-10)
    np.testing.assert_allclose(st["alpha_if_deleted"], entry["alpha_if_deleted"], atol=1e-10)
    np.testing.assert_allclose(st["mean"], entry["item_mean"], atol=1e-10)
    np.testing.assert_allclose(st["sd"], entry["item_sd"], atol=1e-10)
    assert st["reversed"].sum() == len(as_list(entry["reverse"]))


def test_reverse_changes_alpha_and_needs_range():
    entry = REF[0]
    data = read_data(FILES[entry["dataset"]])[entry["items"]]
    assert reliability(data).alpha < fit(entry).alpha
    with pytest.raises(MeasureError, match="min_value and max_value"):
        reliability(data, reverse=["A1"])
    with pytest.raises(MeasureError, match="not a column"):
        reliability(data, reverse=["Z9"], min_value=1, max_value=6)
    with pytest.raises(MeasureError, match="outside the response range"):
        reliability(data, min_value=1, max_value=5)


def test_listwise_deletion_is_counted_and_warned():
    data = read_data("sim_org.csv").drop(columns="org_id").astype(float)
    data.iloc[[0, 5], 1] = np.nan
    before = data.copy()
    with pytest.warns(MissingDataWarning, match="2 of"):
        r = reliability(data)
    assert r.n_dropped == 2 and r.n_obs == len(data) - 2
    pd.testing.assert_frame_equal(data, before)


def test_conf_level_and_interface():
    entry = REF[1]
    r = fit(entry)
    assert isinstance(r, ReliabilityResult)
    wide = reliability(read_data(FILES[entry["dataset"]])[entry["items"]],
                       as_list(entry["reverse"]), 1, 6, conf_level=0.99)
    assert wide.alpha_ci[0] < r.alpha_ci[0] and wide.alpha_ci[1] > r.alpha_ci[1]
    t = r.tidy()
    assert list(t.columns) == list(TIDY_COLUMNS)
    assert t.set_index("term").loc["alpha", "conf_low"] == pytest.approx(r.alpha_ci[0])
    assert r.tidy(conf_level=0.99).set_index("term").loc["alpha", "conf_low"] == pytest.approx(
        wide.alpha_ci[0])
    assert len(r.glance()) == 1
    for word in ("Estimator", "Covariance type", "Df method"):
        assert word in r.summary()
    with pytest.raises(AttributeError):
        r.alpha = 0.0
    with pytest.raises(ValueError, match="conf_level"):
        reliability(read_data("sim_org.csv"), conf_level=1.5)


def test_bad_inputs():
    with pytest.raises(MeasureError, match="at least 2 items"):
        reliability(pd.DataFrame({"a": [1.0, 2.0, 3.0]}))
    with pytest.raises(MeasureError, match="numeric"):
        reliability(pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]}))
    with pytest.raises(MeasureError, match="fewer than 3"):
        reliability(pd.DataFrame({"a": [1.0, 2.0], "b": [2.0, 1.0]}))


def test_by_group_equals_subsets():
    data = read_data("sim_org.csv")
    data = data.assign(arm=np.where(data["org_id"] % 2 == 0, "push", "co_creation"))
    items = [f"i{j}" for j in range(1, 7)]
    out = reliability_by(data[[*items, "arm"]], "arm")
    assert out["arm"].tolist() == ["co_creation", "push"]
    for row in out.itertuples():
        sub = reliability(data.loc[data["arm"] == row.arm, items])
        assert row.alpha == pytest.approx(sub.alpha)
        assert row.omega == pytest.approx(sub.omega)
        assert row.n_obs == sub.n_obs


def test_two_items_alpha_but_no_omega():
    d = pd.DataFrame({"a": [1, 2, 3, 4, 5, 2], "b": [2, 2, 3, 5, 4, 1]})
    r = reliability(d)
    c = np.cov(d.to_numpy(), rowvar=False)
    assert r.alpha == pytest.approx(2 * (1 - np.trace(c) / c.sum()))
    assert np.isnan(r.omega) and not r.omega_converged
    assert "at least 3 items" in r.summary()
