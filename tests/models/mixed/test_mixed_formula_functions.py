"""Formula transformations (formulaic's ``center``, ``scale``, ``poly``, ``bs``, ``C``) in the
fixed and random parts of ``fit_mixed``, and R's ``factor()``, against lme4.

Reference fits: ``tests/fixtures/formula/make_formula_fixtures.R`` (lme4 + lmerTest on the
bundled sleepstudy, REML, Satterthwaite df). R's ``poly`` is orthogonal like formulaic's; its
columns may differ in sign, so ``poly`` terms are compared in absolute value, and every model
also by its fitted values, which do not depend on the basis.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from coevidence import fit_mixed
from coevidence.exceptions import ModelSpecificationError
from coevidence.models.mixed.datasets import load_dataset

FIXTURES = json.loads(
    (Path(__file__).resolve().parents[2] / "fixtures" / "formula" / "formula_lme4.json")
    .read_text(encoding="utf-8")
)
MODELS = sorted(k for k in FIXTURES if k != "versions")


@pytest.fixture(scope="module")
def sleep():
    return load_dataset("sleepstudy")


def assert_matches_lme4(res, ref, data):
    """Estimates, SEs, Satterthwaite df, sigma, theta, REML criterion and fitted values.

    Tolerances as in ``test_mixed_reference.py``: lme4's optimiser stops within ~1e-6 of the
    REML optimum, which moves SEs of random-slope models by ~1e-4 relative.
    """
    tidy = res.tidy()
    assert list(tidy["term"]) == ref["terms"]  # R's names: scale(days), poly(days, 2)1
    est, se = tidy["estimate"].to_numpy(), tidy["std_error"].to_numpy()
    is_poly = np.array(["poly(" in t for t in ref["terms"]])
    ref_est = np.asarray(ref["estimate"])
    np.testing.assert_allclose(np.where(is_poly, np.abs(est), est),
                               np.where(is_poly, np.abs(ref_est), ref_est), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(se, ref["std_error"], rtol=1e-3)
    np.testing.assert_allclose(tidy["df"].to_numpy(), ref["df"], rtol=2e-3)
    assert res.sigma == pytest.approx(ref["sigma"], rel=1e-4)
    np.testing.assert_allclose(res.theta, np.atleast_1d(ref["theta"]), rtol=2e-3, atol=1e-4)
    assert res.objective == pytest.approx(ref["reml_criterion"], rel=1e-7)
    assert res.objective <= ref["reml_criterion"] + 1e-6  # at least lme4's optimum
    fitted = data["reaction"].to_numpy() - res.residuals(level="conditional").to_numpy()
    np.testing.assert_allclose(fitted, ref["fitted"], rtol=1e-5)


@pytest.mark.parametrize("model", MODELS)
def test_transformations_match_lme4(sleep, model):
    """``scale``, ``center``, ``poly`` and ``factor`` fits equal lme4's, fixed and random."""
    ref = FIXTURES[model]
    res = fit_mixed(ref["formula"], sleep)
    assert_matches_lme4(res, ref, sleep)


def test_factor_is_formulaic_c(sleep):
    """R's ``factor(x)`` is fitted as formulaic's ``C(x)`` (same model, same numbers)."""
    a = fit_mixed("reaction ~ factor(days) + (1 | subject)", sleep)
    b = fit_mixed("reaction ~ C(days) + (1 | subject)", sleep)
    np.testing.assert_allclose(a.tidy()["estimate"], b.tidy()["estimate"], rtol=1e-10)
    assert a.objective == pytest.approx(b.objective, rel=1e-12)


def test_spline_and_stateful_transforms_predict(sleep):
    """``bs()`` fits, and ``predict(newdata)`` reuses the training data's basis and scaling."""
    res = fit_mixed("reaction ~ bs(days, df=4) + (1 | subject)", sleep)
    assert len(res.tidy()) == 5
    scaled = fit_mixed("reaction ~ scale(days) + (1 | subject)", sleep)
    plain = fit_mixed("reaction ~ days + (1 | subject)", sleep)
    new = sleep.iloc[[0, 9]]  # days 0 and 9 only: a re-scaled basis would differ
    for r in (res, scaled):
        assert np.isfinite(np.asarray(r.predict(new), dtype=float)).all()
    np.testing.assert_allclose(np.asarray(scaled.predict(new), dtype=float),
                               np.asarray(plain.predict(new), dtype=float), rtol=1e-6)


def test_unknown_function_is_refused_with_a_hint(sleep):
    """A function neither formulaic nor the data knows is a specification error naming it."""
    with pytest.raises(ModelSpecificationError, match="nosuchfn"):
        fit_mixed("reaction ~ nosuchfn(days) + (1 | subject)", sleep)
