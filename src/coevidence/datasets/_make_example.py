"""Regenerate the bundled example study: ``python -m coevidence.datasets._make_example``.

The example study is synthetic: drawn by :func:`coevidence.simulate_study` from the spec below
with a fixed seed, then written as a data package into ``coevidence/datasets/example_study``.
Re-running it reproduces the package byte for byte.

Provider slopes
---------------
The providers' slopes vary: ``sd_provider_slope`` is 0.04 points per wave for research use and
0.03 for capacity. For research use that equals the organisation slope SD (0.04), so half of
the between-organisation variance in growth lies between providers: TA providers differ in how
fast their organisations change about as much as organisations of one provider differ; for
both outcomes it is half of the true co-creation minus push slope difference (0.08 and 0.06
per wave while TA runs). A zero provider slope variance (as in earlier versions of this study)
is unrealistic for TA delivered by a dozen providers and hides that a growth model without a
provider slope is anti-conservative for the arm x time effect, which is assigned at the
provider level: the design-aware default of :func:`coevidence.fit_growth`,
``research_use ~ time * ta_model + (1 + time | org_id) + (1 + time | provider_id)``, tests it
against the provider slope variance with about 10 df.

With ``SEED`` the default growth fits of both outcomes converge and are not singular, and their
slope-difference CIs cover the truth (:func:`coevidence.true_effects`; 0.0719 for research use
and 0.0560 for capacity); ``tests/design/test_design_simulation.py`` and the notebooks check it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from coevidence.design.simulate import OutcomeSpec, SimulationSpec, simulate_study

SEED = 20240115

SPEC = SimulationSpec(
    study_id="example",
    title="Example study (synthetic): co-creation vs push TA in 180 organisations",
    n_providers=12,
    orgs_per_provider=15,
    respondents_per_org=4,
    n_waves=6,
    wave_months=6,
    assignment="provider",
    ta_months=22,
    attrition=0.036,
    outcomes=(
        OutcomeSpec(measure_id="research_use", sd_provider_slope=0.04),
        OutcomeSpec(measure_id="capacity", n_items=7, reliability=0.88, intercept=3.0,
                    slope=0.04, arm_slope=0.06, post_slope_change=-0.02,
                    sd_provider_slope=0.03),
    ),
)


def main(target: Path | None = None) -> Path:
    """Draw the example study and write it to ``target`` (the package folder by default)."""
    target = target or Path(__file__).with_name("example_study")
    if target.exists():
        shutil.rmtree(target)
    study = simulate_study(SPEC, seed=SEED)
    study.write(target, format="csv.gz")
    return target


if __name__ == "__main__":  # pragma: no cover
    print(main())
