"""Calibration of the headline analysis: the arm x time test of fit_growth's default model keeps
its type I error and CI coverage in studies randomised by provider with provider slope variance.

Studies are simulated with numpy alone (tests/models/mixed/growth_sim.py), 12 providers randomised 6/6,
8 organisations each, 6 waves, provider slope SD 0.05, organisation slope SD 0.06. Before the
design-aware default (slope random at the organisation only) the rejection rate was 0.20 and
coverage 0.83 on this design; benchmarks/bench_growth_calibration.py prints the full table.
"""

import warnings

import numpy as np
import pytest
from scipy import stats

import coevidence as cv
from coevidence.exceptions import DesignDfWarning

from growth_sim import provider_randomised_panel  # noqa: E402

TERM = "time:ta_modelco_creation"


def _run(n, seed, **fit):
    rng = np.random.default_rng(seed)
    rej, cover, dfs, flagged = [], [], [], 0
    for _ in range(n):
        panel = provider_randomised_panel(rng, attrition=0.05)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = cv.fit_growth(panel, "research_use", **fit)
        flagged += any(issubclass(w.category, DesignDfWarning) for w in caught)
        row = res.tidy().set_index("term").loc[TERM]
        rej.append(row["p_value"] < 0.05)
        cover.append(row["conf_low"] <= 0.0 <= row["conf_high"])
        dfs.append(row["df"])
    return np.mean(rej), np.mean(cover), np.median(dfs), flagged


@pytest.mark.slow
def test_default_growth_keeps_type_one_error_and_coverage():
    n = 200
    rate, coverage, df, flagged = _run(n, seed=20261201)
    k = round(rate * n)
    # two-sided binomial test of the rejection count against 0.05 at the 1% level
    assert stats.binomtest(k, n, 0.05).pvalue > 0.01, rate
    assert coverage >= 0.93, coverage
    assert df <= 10 + 1e-9  # between-provider df: 12 providers - 2 arm-level effects
    assert flagged == 0


@pytest.mark.slow
def test_organisation_only_slope_is_anti_conservative_and_flagged():
    """The pre-fix default, reached through the per-level override: rejection far above 0.05,
    and every fit says so with a DesignDfWarning."""
    n = 60
    rate, coverage, df, flagged = _run(n, seed=7, random_slopes={"provider_id": False},
                                       between_df="model")
    assert rate > 0.1 and coverage < 0.9, (rate, coverage)
    assert df > 50
    assert flagged == n
