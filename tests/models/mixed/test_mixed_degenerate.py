"""fit_mixed: degenerate outcomes raise typed errors; results do not depend on outcome units."""

import warnings

import numpy as np
import pytest

import coevidence as cv
from coevidence.exceptions import ModelSpecificationError
from coevidence.models.mixed.datasets import load_dataset

F = "reaction ~ days + (days | subject)"


@pytest.fixture(scope="module")
def sleep():
    return load_dataset("sleepstudy")


@pytest.fixture(scope="module")
def base(sleep):
    return cv.fit_mixed(F, sleep)


def test_constant_outcome(sleep):
    d = sleep.copy()
    d["reaction"] = 250.0
    with pytest.raises(ModelSpecificationError, match="'reaction' has no variation"):
        cv.fit_mixed(F, d)


def test_infinite_outcome_and_covariate(sleep):
    d = sleep.copy()
    d["reaction"] = d["reaction"].astype(float)
    d.loc[d.index[[3, 8]], "reaction"] = [np.inf, -np.inf]
    msg = r"'reaction' has 2 infinite .* rows \[3, 8\]"
    with pytest.raises(ModelSpecificationError, match=msg):
        cv.fit_mixed(F, d)
    d = sleep.copy()
    d["days"] = d["days"].astype(float)
    d.loc[d.index[5], "days"] = np.inf
    with pytest.raises(ModelSpecificationError, match=r"'days' has 1 infinite"):
        cv.fit_mixed(F, d)


def test_all_missing_outcome(sleep):
    d = sleep.copy()
    d["reaction"] = np.nan
    with pytest.raises(ModelSpecificationError, match="missing \\(NaN\\) in every one of the 180"):
        cv.fit_mixed(F, d)


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("c", [1e-8, 1e8])
def test_outcome_scale_invariance(sleep, c, reml):
    b = cv.fit_mixed(F, sleep, reml=reml)
    d = sleep.copy()
    d["reaction"] = d["reaction"] * c
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no spurious Hessian / convergence warning
        r = cv.fit_mixed(F, d, reml=reml)
    tb, tr = b.tidy(), r.tidy()
    np.testing.assert_allclose(tr["estimate"] / c, tb["estimate"], rtol=1e-6)
    np.testing.assert_allclose(tr["std_error"] / c, tb["std_error"], rtol=1e-6)
    # Satterthwaite df: the catastrophic break (df off by ~100%) is gone; what remains is
    # finite-difference roundoff of the deviance, a few 1e-6 relative at most
    np.testing.assert_allclose(tr["df"], tb["df"], rtol=1e-5)
    np.testing.assert_allclose(tr["p_value"], tb["p_value"], rtol=1e-4)
    vb, vr = b.variance_components(), r.variance_components()
    var_rows = vb["term2"].isna().to_numpy()
    np.testing.assert_allclose(vr["vcov"] / c**2, vb["vcov"], rtol=1e-6)
    np.testing.assert_allclose(vr.loc[var_rows, "sdcor"] / c, vb.loc[var_rows, "sdcor"], rtol=1e-6)
    np.testing.assert_allclose(vr.loc[~var_rows, "sdcor"], vb.loc[~var_rows, "sdcor"], rtol=1e-6)
    assert r.sigma / c == pytest.approx(b.sigma, rel=1e-6)
    np.testing.assert_allclose(r.theta, b.theta, rtol=1e-6)
    # log-likelihood shifts by -n log c (ML) or -(n - p) log c (REML: n - p error contrasts)
    n, p = 180, 2
    shift = -(n - p if reml else n) * np.log(c)
    assert r.log_lik - b.log_lik == pytest.approx(shift, rel=1e-9, abs=1e-6)
    assert r.diagnostics.hessian_ok and b.diagnostics.hessian_ok
    assert not r.diagnostics.messages


def test_ranef_scale(sleep, base):
    d = sleep.copy()
    d["reaction"] = d["reaction"] * 1e-8
    rr = cv.fit_mixed(F, d).ranef()["subject"].to_numpy(float)
    rb = base.ranef()["subject"].to_numpy(float)
    np.testing.assert_allclose(rr / 1e-8, rb, rtol=1e-6, atol=1e-6 * np.abs(rb).max())
