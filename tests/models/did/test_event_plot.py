"""plot_event_study returns Axes with one point per event time; pre-periods drawn separately."""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest

import coevidence as cv

sys.path.insert(0, str(Path(__file__).parent))
from _did_sim import simulate_staggered


@pytest.fixture(scope="module")
def fit():
    df, _ = simulate_staggered(n_units=150, seed=2, by_effect={"push": 0.1, "co_creation": 0.3})
    return cv.fit_event_study(df, "research_use", by="ta_model", bootstrap_reps=99, seed=1)


def test_plot_points_and_labels(fit):
    fig, ax = plt.subplots()
    out = cv.plot_event_study(fit, ax=ax, level="push")
    assert out is ax
    ev = fit.aggregate("event", level="push").frame()
    ev = ev[~ev["overall"]]
    xs = np.concatenate([np.asarray(c.lines[0].get_xdata()) for c in ax.containers])
    assert sorted(xs.tolist()) == sorted(ev["event_time"].tolist())
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("pre-treatment" in t for t in labels) and any("post-treatment" in t for t in labels)
    plt.close(fig)


def test_plot_levels_uniform_and_errors(fit):
    ax = cv.plot_event_study(fit, uniform=True)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("push:") for t in labels) and any(
        t.startswith("co_creation:") for t in labels
    )
    assert any("uniform band" in t for t in labels)
    plt.close("all")
    with pytest.raises(ValueError, match="event-time"):
        cv.plot_event_study(fit.aggregate("group"))
    nob = cv.fit_event_study(simulate_staggered(n_units=80, seed=3)[0], "research_use")
    with pytest.raises(ValueError, match="bootstrap"):
        cv.plot_event_study(nob, uniform=True)
    plt.close("all")
