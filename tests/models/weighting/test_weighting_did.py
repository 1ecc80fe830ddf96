"""fit_event_study(weights=): weighted Callaway & Sant'Anna cells against survey::svyglm on
the same 2x2 comparisons (tests/fixtures/missing/make_weighting_did.R), aggregations against
the unweighted estimator on replicated units, refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import coevidence as cv
from coevidence.datasets.panel import load_mpdta
from coevidence.exceptions import ModelSpecificationError, OptionError

FIX = Path(__file__).parents[2] / "fixtures" / "missing"
KW = dict(unit="countyreal", time="year", first_treated="first.treat")


@pytest.fixture(scope="module")
def mpdta() -> pd.DataFrame:
    w = pd.read_csv(FIX / "weighting_did_weights.csv").set_index("countyreal")["w"]
    d = load_mpdta()
    return d.assign(w=d["countyreal"].map(w))


def test_weighted_cells_match_svyglm(mpdta):
    ref = pd.read_csv(FIX / "weighting_did_cells.csv")
    gt = cv.fit_event_study(mpdta, "lemp", **KW, weights="w").gt.set_index(["group", "time"])
    got = gt.loc[list(zip(ref.group.astype(float), ref.time.astype(float), strict=True))]
    np.testing.assert_allclose(got["estimate"], ref["att"], rtol=1e-8, atol=1e-12)
    # influence-function SE (did's) = HC0 of the weighted 2x2 regression; svyglm adds n/(n-1)
    n = ref["n_sub"].to_numpy(float)
    np.testing.assert_allclose(got["std_error"].to_numpy() * np.sqrt(n / (n - 1)),
                               ref["se_svyglm"], rtol=1e-6)


def test_integer_weights_equal_replicated_units(mpdta):
    rng = np.random.default_rng(1)
    units = mpdta["countyreal"].unique()
    k = dict(zip(units, rng.integers(1, 4, len(units)), strict=True))
    reps = mpdta["countyreal"].map(k)
    weighted = cv.fit_event_study(mpdta, "lemp", **KW, est_method="reg",
                                  weights=reps.astype(float).to_numpy())
    dup = pd.concat([mpdta[reps >= j].assign(countyreal=lambda x, j=j: x.countyreal * 10 + j)
                     for j in (1, 2, 3)])
    plain = cv.fit_event_study(dup, "lemp", **KW, est_method="reg")
    for kind in ("simple", "event", "group", "calendar"):
        np.testing.assert_allclose(weighted.aggregate(kind).tidy()["estimate"],
                                   plain.aggregate(kind).tidy()["estimate"], atol=1e-12)
    # constant weights change nothing
    one = cv.fit_event_study(mpdta, "lemp", **KW, weights=np.full(len(mpdta), 2.0))
    base = cv.fit_event_study(mpdta, "lemp", **KW)
    pd.testing.assert_frame_equal(one.aggregate("event").tidy(), base.aggregate("event").tidy())
    assert weighted.info["weights"] == "given"


def test_event_study_weights_refusals(mpdta):
    with pytest.raises(OptionError, match="callaway_santanna"):
        cv.fit_event_study(mpdta, "lemp", **KW, estimator="sun_abraham", weights="w")
    with pytest.raises(OptionError, match="est_method='reg'"):
        cv.fit_event_study(mpdta, "lemp", **KW, covariates=["lpop"], weights="w")
    region = mpdta.assign(region=mpdta["countyreal"] % 12)
    with pytest.raises(OptionError, match="CR2"):
        cv.fit_event_study(region, "lemp", **KW, cluster="region", weights="w")
    ok = cv.fit_event_study(region, "lemp", **KW, cluster="region", small_sample="cr1",
                            weights="w")
    assert np.isfinite(ok.aggregate("simple").tidy()["std_error"]).all()
    with pytest.raises(ModelSpecificationError, match="vary within unit"):
        cv.fit_event_study(mpdta, "lemp", **KW, weights=np.arange(len(mpdta)) + 1.0)
    with pytest.raises(OptionError, match="rows"):
        cv.fit_event_study(mpdta, "lemp", **KW, weights=[1.0, 2.0])
