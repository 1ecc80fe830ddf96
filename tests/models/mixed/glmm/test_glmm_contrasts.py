"""Response-scale contrasts of GLMMs against a delta-method computation in R (the fixture's
``contrasts``, cross-checked there with emmeans): predicted probability / rate per arm at
wave 5 with random effects at 0, their difference and ratio, with SEs."""

from __future__ import annotations

import numpy as np
import pytest
from test_glmm_reference import FITS, fit

import coevidence as cv


@pytest.mark.parametrize("name", ["ta_bernoulli_nested_laplace", "ta_bernoulli_slope_laplace",
                                  "ta_poisson_offset_laplace", "ta_poisson_offset_agq7"])
def test_conditional_contrasts_match_r(name):
    ref = FITS[name]["contrasts"]
    tab = cv.response_contrast(fit(name), arm="arm", time="wave", times=[ref["wave"]])
    level = tab[tab["measure"].isin(["probability", "rate"])].set_index("contrast")
    for arm in ("0", "1"):
        assert level.loc[arm, "estimate"] == pytest.approx(ref[f"pred_arm{arm}"], rel=1e-4)
        assert level.loc[arm, "std_error"] == pytest.approx(ref[f"se_arm{arm}"], rel=1e-3)
    diff = tab[tab["measure"] == "difference"].iloc[0]
    assert diff["contrast"] == "1 - 0" and diff["averaging"] == "conditional"
    assert diff["estimate"] == pytest.approx(ref["difference"], rel=1e-4)
    assert diff["std_error"] == pytest.approx(ref["se_difference"], rel=1e-3)
    ratio = tab[tab["measure"] == "ratio"].iloc[0]
    assert ratio["estimate"] == pytest.approx(ref["ratio"], rel=1e-4)
    assert ratio["std_error"] == pytest.approx(ref["se_ratio"], rel=1e-3)
    # the ratio's test and interval are on the log scale
    assert ratio["statistic"] == pytest.approx(ref["log_ratio"] / ref["se_log_ratio"], rel=1e-3)
    assert np.log(ratio["conf_high"]) - np.log(ratio["estimate"]) == pytest.approx(
        1.959964 * ref["se_log_ratio"], rel=1e-3)


def test_marginal_probabilities_are_pulled_towards_one_half():
    """Averaging a logistic curve over a random intercept flattens it: marginal probabilities
    lie between 0.5 and the conditional ones, and the marginal difference is smaller."""
    res = fit("ta_bernoulli_nested_laplace")
    cond = cv.response_contrast(res, arm="arm", time="wave", times=[0, 5])
    marg = cv.response_contrast(res, arm="arm", time="wave", times=[0, 5], averaging="marginal")
    lv = cond["measure"] == "probability"
    c, m = cond.loc[lv, "estimate"].to_numpy(), marg.loc[lv, "estimate"].to_numpy()
    assert np.all(np.abs(m - 0.5) < np.abs(c - 0.5))
    d = cond["measure"] == "difference"
    assert np.all(np.abs(marg.loc[d, "estimate"].to_numpy())
                  < np.abs(cond.loc[d, "estimate"].to_numpy()))


def test_response_contrast_refuses_linear_models():
    from coevidence.exceptions import ModelSpecificationError
    from coevidence.models.mixed.datasets import load_dataset

    res = cv.fit_mixed("reaction ~ days + (days | subject)", load_dataset("sleepstudy"))
    with pytest.raises(ModelSpecificationError, match="GLMM"):
        cv.response_contrast(res)
