"""The power replications registered in coevidence.reproduce.power all pass."""

import pytest

from coevidence.reproduce import registry, run

NAMES = ["powerup_ira", "powerup_bira2", "powerup_cra2", "powerup_three_level",
         "diggle_slopes", "diggle_means"]


@pytest.mark.parametrize("name", NAMES)
def test_power_replication_passes(name):
    assert name in registry()
    frame = run(name)
    assert len(frame) >= 6
    failed = frame.loc[~frame["passed"], ["quantity", "published", "reproduced"]]
    assert failed.empty, failed.to_string()
    sizes = frame[frame["quantity"].str.contains("mrss|n per group")]
    assert (sizes["difference"] == 0).all()  # sample sizes exactly
