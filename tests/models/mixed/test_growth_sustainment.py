"""Sustainment models (issue 11): piecewise growth with a level shift at each organisation's own
end of TA, extra knots after it, and pieces the data cannot inform flagged, not reported."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import coevidence as cv
from coevidence.exceptions import EstimabilityWarning, OptionError

TRUTH = {"ta_years": 0.10, "post_years": -0.02, "post_years_after_1y": -0.10, "post_ta": 0.15,
         "ta_years:ta_modelco_creation": 0.12, "post_ta:ta_modelco_creation": -0.20}


def sustainment_panel(seed=0, n_prov=16, n_org=10, n_waves=10) -> pd.DataFrame:
    """Waves every 6 months; TA starts at a provider-specific wave (0-2) and lasts 2 years, so
    every organisation has pre-TA, TA and post-TA waves (up to 3 years after the end)."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_prov):
        arm = "co_creation" if p % 2 else "push"
        start = p % 3 * 0.5
        vp = rng.normal(0, 0.15)
        for o in range(n_org):
            vo = rng.normal(0, 0.25)
            for w in range(n_waves):
                t = 0.5 * w
                ys, ye = t - start, max(t - start - 2.0, 0.0)
                ta = min(max(ys, 0.0), 2.0)
                post1, post2 = min(ye, 1.0), max(ye - 1.0, 0.0)
                shift = float(ye > 0)
                cc = float(arm == "co_creation")
                y = (3.0 + 0.0 * min(ys, 0) + TRUTH["ta_years"] * ta + TRUTH["post_years"] * post1
                     + TRUTH["post_years_after_1y"] * post2 + TRUTH["post_ta"] * shift
                     + cc * (TRUTH["ta_years:ta_modelco_creation"] * ta
                             + TRUTH["post_ta:ta_modelco_creation"] * shift)
                     + vp + vo + rng.normal(0, 0.2))
                rows.append((f"P{p}", f"P{p}O{o}", arm, w, ys, ye, y))
    return pd.DataFrame(rows, columns=["provider_id", "org_id", "ta_model", "time",
                                       "years_since_start", "years_since_end", "research_use"])


def _fit(panel, **kw):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        res = cv.fit_growth(panel, "research_use", time_coding="piecewise", **kw)
    return res, [x for x in w if issubclass(x.category, EstimabilityWarning)]


def test_shift_and_knot_recover_known_effects():
    res, warned = _fit(sustainment_panel(), post_shift=True, knots=(1.0,))
    assert not warned
    assert res.growth.pieces == ("pre_years", "ta_years", "post_years", "post_years_after_1y")
    assert res.growth.shifts == ("post_ta",)
    t = res.tidy().set_index("term")
    for term, truth in TRUTH.items():
        est, se = t.loc[term, "estimate"], t.loc[term, "std_error"]
        assert abs(est - truth) < 4 * se and se < 0.1, (term, est, truth, se)
    # the arm difference in the shift is a between-provider term: df bounded by G - q
    assert t.loc["post_ta:ta_modelco_creation", "df"] <= 16 - 2
    pieces = cv.slopes(res)["piece"].unique().tolist()
    assert pieces == ["pre_years", "ta_years", "post_years", "post_years_after_1y"]


def test_example_study_pre_ta_piece_is_flagged_and_not_reported():
    panel = cv.load_example_study().panel(unit="organization")
    res, warned = _fit(panel)
    assert any("'pre_years'" in str(w.message) and "too short" in str(w.message) for w in warned)
    assert res.growth.short_pieces == ("pre_years",)
    assert "pre_years" in res.formula  # kept in the model ...
    assert "pre_years" not in set(cv.slopes(res)["piece"])  # ... but not in the default tables
    assert not cv.contrast(res)["contrast"].str.contains("pre_years").any()
    asked = cv.slopes(res, pieces=["pre_years"])
    assert set(asked["piece"]) == {"pre_years"}


def test_piece_without_variation_is_dropped():
    panel = sustainment_panel(n_waves=6).assign(
        years_since_start=lambda d: d.years_since_start.clip(lower=0.0))
    res, warned = _fit(panel)
    assert any("no variation" in str(w.message) and "pre_years" in str(w.message)
               for w in warned)
    assert "pre_years" not in res.formula and "pre_years" not in res.growth.pieces


def test_piece_options_checked():
    panel = sustainment_panel(n_prov=4, n_org=3)
    with pytest.raises(OptionError, match="piecewise"):
        cv.fit_growth(panel, "research_use", knots=(1.0,))
    with pytest.raises(OptionError, match="increasing positive"):
        cv.fit_growth(panel, "research_use", time_coding="piecewise", knots=(1.0, 0.5))
    with pytest.raises(OptionError, match="increasing positive"):
        cv.fit_growth(panel, "research_use", time_coding="piecewise", knots=(-1.0,))
