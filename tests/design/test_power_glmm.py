"""simulate_power with binary and count research-use indicators (issue 10): the growth analysis
becomes the design-aware growth GLMM, and the truth is the simulator's link-scale slope
difference."""

from __future__ import annotations

import numpy as np
import pytest

from coevidence.design._analyses import Growth, resolve_analysis
from coevidence.design.simulate import OutcomeSpec, SimulationSpec, simulate_study, true_effects
from coevidence.design.simulation_power import simulate_power
from coevidence.exceptions import OptionError


def _spec(family: str, **kw) -> SimulationSpec:
    o = OutcomeSpec(measure_id="cites_research", family=family, intercept=-0.4, slope=0.05,
                    arm_slope=0.25, sd_provider=0.3, sd_org_intercept=0.4, sd_org_slope=0.05,
                    sd_residual=0.0, sd_respondent=0.0)
    base = dict(n_providers=8, orgs_per_provider=4, respondents_per_org=3, n_waves=4,
                encounter_logs=False, attrition=0.0, outcomes=[o])
    base.update(kw)
    return SimulationSpec(**base)


@pytest.mark.parametrize("family", ["binomial", "poisson"])
def test_growth_analysis_follows_the_outcome_family(family):
    spec = _spec(family)
    a = resolve_analysis("growth", spec)
    assert isinstance(a, Growth) and a.family == family
    assert resolve_analysis(Growth(family="gaussian"), spec).family == "gaussian"
    res = simulate_power(spec, "growth", n_reps=3, seed=2)
    assert res.n_failed == 0, res.replicates
    truth = float(true_effects(spec)["cites_research"]["slope_difference"])
    assert res.truth == pytest.approx(truth)
    reps = res.replicates
    # link-scale estimates near the truth; t tests on the between-provider df (8 - 2)
    assert abs(reps["estimate"].mean() - truth) < 3 * reps["std_error"].mean()
    assert np.allclose(reps["df"], 6.0)


def test_glmm_growth_refuses_cr2():
    study = simulate_study(_spec("binomial", n_providers=4, orgs_per_provider=3), seed=1)
    with pytest.raises(OptionError, match="linear model"):
        Growth(method="cr2", family="binomial")(study)
