"""plot_power_curve draws analytic power curves."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import coevidence as cv  # noqa: E402
from coevidence.plotting.power import power_curve  # noqa: E402


def test_power_curve_values_match_power():
    d = power_curve("cra3", vary="K", values=[20, 40], es=0.3, rho3=0.05, rho2=0.1, n=10, J=3)
    expected = [cv.power("cra3", es=0.3, rho3=0.05, rho2=0.1, n=10, J=3, K=k).value
                for k in (20, 40)]
    assert d["power"].tolist() == pytest.approx(expected)


def test_plot_power_curve_by_and_simulated():
    sim = pd.DataFrame({"x": [20, 40], "power": [0.5, 0.8], "mc_se": [0.03, 0.02]})
    ax = cv.plot_power_curve("cra2", vary="J", values=range(10, 61, 10), es=0.3,
                             by=("rho2", [0.05, 0.15]), simulated=sim, n=10)
    assert len(ax.lines) >= 3  # two curves + target line (+ error bar lines)
    y = ax.lines[0].get_ydata()
    assert np.all(np.diff(y) > 0)  # power rises with clusters
    assert ax.get_xlabel() == "clusters (J)"


def test_plot_power_curve_against_es():
    ax = cv.plot_power_curve("ira", vary="es", values=np.linspace(0.05, 0.5, 10), n=200)
    assert ax.get_xlabel() == "effect size"
    with pytest.raises(ValueError, match="mc_se"):
        cv.plot_power_curve("ira", vary="es", values=[0.1, 0.2], n=200,
                            simulated=pd.DataFrame({"x": [0.1], "power": [0.2]}))
