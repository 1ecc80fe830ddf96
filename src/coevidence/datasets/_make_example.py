"""Regenerate the bundled example study: ``python -m coevidence.datasets._make_example``.

The example study is synthetic: drawn by :func:`coevidence.simulate_study` from the spec below
with a fixed seed, then written as a data package into ``coevidence/datasets/example_study``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from coevidence.design.simulate import SimulationSpec, simulate_study

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
