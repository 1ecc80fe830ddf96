"""Analytic MDES / power / MRSS against PowerUpR 1.1.0 and Diggle et al. (published_refs.md §1).

"formula" values are the PowerUpR R expressions evaluated independently here (scipy), term by
term as printed in published_refs.md §1.1; "printed" values are the published 3-dp numbers.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import coevidence as cv
from coevidence.design.analytic import DesignResult, designs
from coevidence.design.longitudinal import sum_squares_time
from coevidence.design.stepped_wedge import hussey_hughes_variance, stepped_wedge_matrix


def _powerup_mdes(sse2: float, df: float, alpha=0.05, power=0.8, two_tailed=True):
    t1 = abs(stats.t.ppf(alpha / 2 if two_tailed else alpha, df))
    t2 = abs(stats.t.ppf(power, df))
    return (t1 + t2) * math.sqrt(sse2)


# (design, params, printed MDES, formula SSE^2, df)
MDES_CASES = [
    ("P1", "ira", dict(n=250), 0.356, 1 / (0.25 * 250), 248),
    ("P4a", "ira", dict(n=400, r21=0.5), 0.20, 0.5 / (0.25 * 400), 398),
    ("P4b", "ira", dict(n=400), 0.28, 1 / (0.25 * 400), 398),
    ("P5", "bira2c1", dict(n=15, J=20), 0.325, 1 / (0.25 * 300), 279),
    ("P6", "bira2f1", dict(n=15, J=20), 0.325, 1 / (0.25 * 300), 260),
    ("P7", "bira2", dict(rho2=0.17, omega2=0.5, n=15, J=20), 0.366,
     0.17 * 0.5 / 20 + 0.83 / (0.25 * 300), 19),
    ("P9", "cra2", dict(rho2=0.17, n=15, J=20), 0.629,
     0.17 / (0.25 * 20) + 0.83 / (0.25 * 300), 18),
    ("P10", "cra2", dict(rho2=0.15, r21=0.4, r22=0.53, g2=1, n=100, J=40), 0.250,
     0.15 * 0.47 / (0.25 * 40) + 0.85 * 0.6 / (0.25 * 4000), 37),
    ("P11", "cra3", dict(rho3=0.06, rho2=0.17, n=15, J=3, K=60), 0.269,
     0.06 / (0.25 * 60) + 0.17 / (0.25 * 180) + 0.77 / (0.25 * 2700), 58),
    ("P12", "cra3", dict(rho3=0.18, rho2=0.06, g3=1, r21=0.55, r22=0.5, r23=0.45, p=0.4, n=10,
                         J=2, K=83), 0.230,
     0.18 * 0.55 / (0.24 * 83) + 0.06 * 0.5 / (0.24 * 166) + 0.76 * 0.45 / (0.24 * 1660), 80),
    ("P14", "bira3", dict(rho3=0.2, rho2=0.15, omega3=0.1, omega2=0.1, n=69, J=10, K=100), 0.045,
     0.2 * 0.1 / 100 + 0.15 * 0.1 / 1000 + 0.65 / (0.25 * 69000), 99),
    ("P14b", "bira3", dict(rho3=0.2, rho2=0.15, omega3=0.1, omega2=0.1, n=80, J=10, K=100),
     0.045, 0.2 * 0.1 / 100 + 0.15 * 0.1 / 1000 + 0.65 / (0.25 * 80000), 99),
    ("P15", "bcra3r2", dict(rho3=0.13, rho2=0.10, omega3=0.4, n=10, J=6, K=24), 0.246,
     0.13 * 0.4 / 24 + 0.1 / (0.25 * 144) + 0.77 / (0.25 * 1440), 23),
    ("P17", "bcra3f2", dict(rho2=0.10, n=20, J=44, K=5), 0.145,
     0.1 / (0.25 * 220) + 0.9 / (0.25 * 4400), 210),
    ("P17b", "bcra3f2", dict(rho2=0.10, n=20, J=44, K=5, r21=0.5, r22=0.5, g2=1), 0.102,
     0.1 * 0.5 / (0.25 * 220) + 0.9 * 0.5 / (0.25 * 4400), 209),
]


@pytest.mark.parametrize("case,design,params,printed,sse2,df", MDES_CASES,
                         ids=[c[0] for c in MDES_CASES])
def test_mdes_matches_formula_and_printed(case, design, params, printed, sse2, df):
    res = cv.mdes(design, **params)
    assert isinstance(res, DesignResult)
    assert res.df == df
    assert res.value == pytest.approx(_powerup_mdes(sse2, df), abs=1e-6)
    assert res.sse == pytest.approx(math.sqrt(sse2), abs=1e-12)
    tol = 5e-4 if len(f"{printed}".split(".")[1]) == 3 else 5e-3
    assert abs(res.value - printed) <= tol


def test_mdes_ci_and_multiplier_p1_p9():
    r = cv.mdes("ira", n=250)
    assert r.ci == pytest.approx((0.106641, 0.604909), abs=1e-6)
    assert r.multiplier == pytest.approx(2.812649, abs=1e-6)
    r = cv.mdes("cra2", rho2=0.17, n=15, J=20)
    assert r.ci == pytest.approx((0.183004, 1.075009), abs=1e-6)
    assert r.multiplier == pytest.approx(2.962971, abs=1e-6)
    assert r.sse == pytest.approx(0.212289, abs=1e-6)
    r = cv.mdes("cra2", rho2=0.15, r21=0.4, r22=0.53, g2=1, n=100, J=40)
    assert [round(x, 3) for x in r.ci] == [0.074, 0.426]  # PowerUpR's printout


@pytest.mark.parametrize("design,es,params,printed", [
    ("ira", 0.356, dict(n=250), 0.8005),
    ("bira2c1", 0.325, dict(n=15, J=20), 0.8009),
    ("bira2", 0.366, dict(rho2=0.17, omega2=0.5, n=15, J=20), 0.801),
    ("cra2", 0.629, dict(rho2=0.17, n=15, J=20), 0.8001),
    ("cra3", 0.269, dict(rho3=0.06, rho2=0.17, n=15, J=3, K=60), 0.7998),
    ("cra3", 0.23, dict(rho3=0.18, rho2=0.06, g3=1, r21=0.55, r22=0.5, r23=0.45, p=0.4, n=10,
                        J=2, K=83), 0.7998),
    ("bcra3f2", 0.145, dict(rho2=0.10, n=20, J=44, K=5), 0.803),
])
def test_power_matches_published_cross_checks(design, es, params, printed):
    r = cv.power(design, es=es, **params)
    digits = len(str(printed).split(".")[1])
    assert abs(r.value - printed) <= 0.5 * 10 ** -digits + 1e-12


def test_power_is_noncentral_t_both_tails():
    r = cv.power("cra2", es=0.3, rho2=0.2, n=10, J=30)
    df, ncp = 28, 0.3 / r.sse
    crit = stats.t.isf(0.025, df)
    expected = 1 - stats.nct.cdf(crit, df, ncp) + stats.nct.cdf(-crit, df, ncp)
    assert r.value == pytest.approx(expected, abs=1e-12)
    one = cv.power("cra2", es=0.3, rho2=0.2, n=10, J=30, two_tailed=False)
    assert one.value == pytest.approx(1 - stats.nct.cdf(stats.t.isf(0.05, df), df, ncp), abs=1e-12)
    # power at the MDES is the target power (definition, both tails counted)
    m = cv.mdes("cra2", rho2=0.2, n=10, J=30)
    assert cv.power("cra2", es=m.value, rho2=0.2, n=10, J=30).value == pytest.approx(0.8, abs=2e-3)


@pytest.mark.parametrize("design,es,params,expected", [
    ("ira", 0.356, {}, 250),                       # P1
    ("ira", 0.25, {}, 504),                        # P2 (ceiling would give 505)
    ("ira", 0.20, {}, 787),                        # P3
    ("ira", 0.20, dict(r21=0.8, g1=1), 159),       # P3
    ("bira2", 0.366, dict(rho2=0.17, omega2=0.5, n=15), 20),   # P7
    ("cra2", 0.629, dict(rho2=0.17, n=15), 20),    # P9
    ("cra3", 0.269, dict(rho3=0.06, rho2=0.17, n=15, J=3), 60),  # P11
    ("bcra3f2", 0.145, dict(rho2=0.10, n=20, K=5), 44),          # P17
])
def test_mrss_exact(design, es, params, expected):
    r = cv.mrss(design, es=es, **params)
    assert r.value == expected
    assert isinstance(r.value, int)


def test_mrss_uses_round_not_ceiling():
    # P2: PowerUpR's x0 converges to 504.245 and round() reports 504
    r = cv.mrss("ira", es=0.25)
    assert r.value == 504 and r.achieved_power < 0.8  # rounding down leaves power just below
    assert cv.power("ira", es=0.25, n=505).value >= 0.8


@pytest.mark.parametrize("rho,row", [(0.2, (313, 625, 938)), (0.5, (196, 391, 586)),
                                     (0.8, (79, 157, 235))])
def test_diggle_slopes_table_l1(rho, row):
    got = tuple(cv.mrss("diggle_slopes", es=0.5, times=(0, 2, 5), sigma2=s, rho=rho,
                        two_tailed=False).value for s in (100, 200, 300))
    assert got == row


@pytest.mark.parametrize("d,row", [(0.2, (145, 207, 268)), (0.3, (65, 92, 120)),
                                   (0.4, (37, 52, 67)), (0.5, (24, 33, 43))])
def test_diggle_means_table_l2(d, row):
    got = tuple(cv.mrss("diggle_means", es=d, waves=3, rho=rho, two_tailed=False).value
                for rho in (0.2, 0.5, 0.8))
    assert got == row


def test_diggle_slopes_formula():
    z = stats.norm.ppf(0.95) + stats.norm.ppf(0.8)
    t = np.array([0, 2, 5.0])
    m = 2 * z**2 * 100 * 0.8 / (3 * np.var(t) * 0.25)
    r = cv.mdes("diggle_slopes", n=math.ceil(m), times=(0, 2, 5), sigma2=100, rho=0.2,
                two_tailed=False)
    assert r.value == pytest.approx(z * math.sqrt(2 * 100 * 0.8 / (math.ceil(m) * 3 * np.var(t))))


def test_raudenbush_liu_sst_identity_and_gls():
    # SST = M(M^2 - 1) / (12 f^2) for M equally spaced waves over duration D, f = (M-1)/D
    for M, D in [(3, 2.0), (5, 4.0), (7, 1.5)]:
        f = (M - 1) / D
        assert sum_squares_time({"waves": M, "duration": D}) == pytest.approx(
            M * (M**2 - 1) / (12 * f**2))
    # Var(gamma) of slopes_ira equals the GLS variance of the arm x time coefficient in the
    # random intercept-and-slope model (intercept variance irrelevant: balanced design)
    times = np.array([0, 1, 2, 4.0])
    tau_b, sigma2, tau_0, n = 0.3, 2.0, 1.5, 40
    Z = np.column_stack([np.ones_like(times), times])
    V = Z @ np.diag([tau_0, tau_b]) @ Z.T + sigma2 * np.eye(len(times))
    Vi = np.linalg.inv(V)
    info = np.zeros((4, 4))
    for arm in (0, 1):
        X = np.column_stack([np.ones_like(times), times, arm * np.ones_like(times), arm * times])
        info += (n // 2) * X.T @ Vi @ X
    var_gls = np.linalg.inv(info)[3, 3]
    r = cv.power("slopes_ira", es=0.2, n=n, times=tuple(times), sigma2=sigma2, tau_beta=tau_b)
    assert r.sse ** 2 == pytest.approx(var_gls, rel=1e-10)


def test_slopes_cra2_reduces_and_search_is_minimal():
    base = dict(times=(0, 1, 2, 3), sigma2=1.0, tau_pi=0.05, tau_beta=0.5, n=8)
    r = cv.mrss("slopes_cra2", es=0.25, **base)
    assert cv.power("slopes_cra2", es=0.25, J=r.value, **base).value >= 0.8
    assert cv.power("slopes_cra2", es=0.25, J=r.value - 1, **base).value < 0.8
    # tau_pi = 0 and n persons per cluster: same variance as a person-randomised trial of n*J
    a = cv.power("slopes_cra2", es=0.2, J=20, times=(0, 1, 2), sigma2=1, tau_pi=0, n=5)
    b = cv.power("slopes_ira", es=0.2, n=100, times=(0, 1, 2), sigma2=1)
    assert a.sse == pytest.approx(b.sse)


def _gls_sw_variance(X, s2, tau2):
    clusters, T = X.shape
    V = s2 * np.eye(T) + tau2 * np.ones((T, T))
    Vi = np.linalg.inv(V)
    info = np.zeros((T + 1, T + 1))
    for i in range(clusters):
        Z = np.column_stack([np.eye(T), X[i]])
        info += Z.T @ Vi @ Z
    return np.linalg.inv(info)[-1, -1]


@pytest.mark.parametrize("J,steps,base,s2,tau2", [(4, 2, 1, 0.05, 0.05), (12, 4, 1, 0.04, 0.02),
                                                  (10, 5, 2, 0.1, 0.3), (6, 3, 0, 0.2, 0.01)])
def test_hussey_hughes_equals_brute_force_gls(J, steps, base, s2, tau2):
    X = stepped_wedge_matrix(J, steps, base)
    assert hussey_hughes_variance(X, s2, tau2) == pytest.approx(_gls_sw_variance(X, s2, tau2),
                                                               rel=1e-10)


def test_stepped_wedge_power_and_mrss():
    r = cv.power("stepped_wedge", es=0.3, J=12, steps=4, n=20, rho2=0.05)
    X = stepped_wedge_matrix(12, 4)
    se = math.sqrt(hussey_hughes_variance(X, 0.95 / 20, 0.05))
    z = stats.norm.isf(0.025)
    assert r.value == pytest.approx(stats.norm.cdf(0.3 / se - z) + stats.norm.cdf(-0.3 / se - z))
    m = cv.mrss("stepped_wedge", es=0.3, steps=4, n=20, rho2=0.05)
    assert m.value % 4 == 0 and m.achieved_power >= 0.8
    assert cv.power("stepped_wedge", es=0.3, J=m.value - 4, steps=4, n=20, rho2=0.05).value < 0.8
    with pytest.raises(ValueError, match="multiple of steps"):
        cv.power("stepped_wedge", es=0.3, J=10, steps=4, n=20, rho2=0.05)


def test_unknown_and_missing_parameters_raise():
    with pytest.raises(TypeError, match="rho3.*does not take"):
        cv.mdes("cra2", rho2=0.1, rho3=0.1, n=10, J=20)
    with pytest.raises(TypeError, match="rhoo2"):
        cv.mdes("cra2", rhoo2=0.1, n=10, J=20)
    with pytest.raises(TypeError, match="missing required parameter.*rho2"):
        cv.mdes("cra2", n=10, J=20)
    with pytest.raises(TypeError, match="solves for 'J'"):
        cv.mrss("cra2", es=0.3, rho2=0.1, n=10, J=20)
    with pytest.raises(TypeError, match="es="):
        cv.power("cra2", power=0.8, rho2=0.1, n=10, J=20)
    with pytest.raises(ValueError, match="unknown design"):
        cv.mdes("cra9", n=10)


@pytest.mark.parametrize("kwargs,match", [
    (dict(rho2=1.2, n=10, J=20), "rho2"),
    (dict(rho2=0.1, n=10, J=20, p=1.0), "p must"),
    (dict(rho2=0.1, n=-1, J=20), "n must be positive"),
    (dict(rho2=0.1, n=10, J=2), "not feasible"),
    (dict(rho2=0.1, n=10, J=20, g2=1.5), "g2"),
    (dict(rho2=0.1, n=10, J=20, alpha=0), "alpha"),
])
def test_bad_values_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        cv.mdes("cra2", **kwargs)


def test_result_is_immutable_and_tidy():
    r = cv.mdes("cra3r3", rho3=0.06, rho2=0.17, n=15, J=3, K=60)  # PowerUpR alias
    assert r.design == "cra3"
    with pytest.raises(AttributeError):
        r.value = 1
    with pytest.raises(TypeError):
        r.inputs["n"] = 3  # read-only mapping
    t = r.tidy()
    assert list(t.columns) == ["term", "estimate", "std_error", "statistic", "df", "p_value",
                               "conf_low", "conf_high"]
    assert t.loc[0, "term"] == "mdes" and t.loc[0, "estimate"] == r.value
    assert r.glance().shape[0] == 1
    text = repr(r)
    assert "Estimator" in text and "df method: K - g3 - 2" in text and "Covariance type" in text
    assert r.inputs["p"] == 0.5 and r.inputs["two_tailed"] is True
    assert "cra3" in designs()["design"].tolist()


def test_mdes_below_half_power_uses_t1_minus_t2():
    r = cv.mdes("ira", n=100, power=0.3)
    t1, t2 = abs(stats.t.ppf(0.025, 98)), abs(stats.t.ppf(0.3, 98))
    assert r.value == pytest.approx((t1 - t2) * math.sqrt(1 / 25))
