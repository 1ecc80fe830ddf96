"""Trajectory plot and the demo report's growth section."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import coevidence as cv  # noqa: E402
from coevidence.plotting.trajectories import trajectory_frame  # noqa: E402
from coevidence.report._growth_section import growth_section  # noqa: E402

from mixed_helpers import simulate_panel  # noqa: E402


@pytest.fixture(scope="module")
def res():
    return cv.fit_growth(simulate_panel(seed=5), "research_use", random_slope="uncorrelated",
                         engine="statsmodels")


def test_trajectory_frame_is_the_fixed_part_with_cis(res):
    fr = trajectory_frame(res)
    b = res.params
    push = fr[fr["arm"] == "push"].set_index("time")["estimate"]
    np.testing.assert_allclose(push, b["(Intercept)"] + b["time"] * push.index.to_numpy())
    co = fr[fr["arm"] == "co_creation"].set_index("time")
    np.testing.assert_allclose(
        co["estimate"], b["(Intercept)"] + b["ta_modelco_creation"]
        + (b["time"] + b["time:ta_modelco_creation"]) * co.index.to_numpy())
    assert (fr["conf_low"] < fr["estimate"]).all() and (fr["estimate"] < fr["conf_high"]).all()
    wide = trajectory_frame(res, conf_level=0.99)
    assert ((wide["conf_high"] - wide["conf_low"]) > (fr["conf_high"] - fr["conf_low"])).all()


def test_plot_trajectories_returns_axes_with_bands(res):
    ax = cv.plot_trajectories(res)
    assert isinstance(ax, matplotlib.axes.Axes)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["push", "co_creation"]
    assert len(ax.collections) == 2  # one CI band per arm
    assert ax.get_ylabel() == "research_use"
    plt.close("all")
    fig, ax2 = plt.subplots()
    out = cv.plot_trajectories(res, ax=ax2, observed=False)
    assert out is ax2 and len(ax2.lines) == 2
    plt.close("all")


def test_growth_section_html():
    panel = simulate_panel(seed=6)
    frag = growth_section(panel, "research_use", engine="statsmodels")
    assert frag.startswith("<h2>Growth model: research_use")
    assert "data:image/png;base64," in frag
    assert "co_creation - push" in frag and "df method satterthwaite" in frag
    # statsmodels cannot fit the correlated org slope under providers: the section says so
    assert "uncorrelated slope used" in frag
    # the answer comes first, with the design it rests on
    assert "Primary estimand:" in frag and "co-creation minus push" in frag
    assert "Arm assigned at &#x27;provider_id&#x27;" in frag
    assert "p = 0.000" not in frag


def test_report_leaves_the_backend_and_pyplot_alone():
    """Writing a report must not switch the user's backend (inline plots in a notebook) nor
    leave figures open in pyplot."""
    import subprocess
    import sys

    code = (
        "import matplotlib\n"
        "matplotlib.use('svg')\n"
        "import matplotlib.pyplot as plt\n"
        "import sys; sys.path.insert(0, %r)\n"
        "from mixed_helpers import simulate_panel\n"
        "from coevidence.report._growth_section import growth_section\n"
        "from coevidence.report.html import _means_plot\n"
        "p = simulate_panel(seed=6)\n"
        "growth_section(p, 'research_use', engine='statsmodels')\n"
        "_means_plot(p.assign(wave=p['time']), 'research_use')\n"
        "print(matplotlib.get_backend(), len(plt.get_fignums()))\n"
    ) % str(__import__("pathlib").Path(__file__).parent)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["svg", "0"], out.stdout + out.stderr
