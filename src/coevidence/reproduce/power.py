"""Replications of published power, MDES and sample-size examples (published_refs.md §1).

PowerUpR 1.1.0 help-page cross-checks (``man/*.Rd``: an MDES followed by ``power.*`` and
``mrss.*`` at that MDES), the pypowerup test values, and Diggle, Heagerty, Liang & Zeger (2002)
pp. 29-30 sample-size tables (as reproduced in the longpower test suite).
Printed 3-dp values are checked to 5e-4, 2-dp values to half a unit in the last digit, sample
sizes exactly.
"""

from __future__ import annotations

from coevidence.design.analytic import mdes, mrss, power
from coevidence.reproduce._registry import Check, replication

__all__: list[str] = []

_RD = "PowerUpR 1.1.0 man/{}.Rd (Dong & Maynard 2013)"
_PYPU = "github sophiamyang/pypowerup tests/test_pypowerup.py"


def _tol(printed: float) -> float:
    digits = len(repr(printed).split(".")[1]) if "." in repr(printed) else 0
    return 5e-4 if digits >= 3 else 0.5 * 10 ** -digits


def _mdes(label: str, design: str, printed: float, source: str, **p) -> Check:
    return Check(f"{label}: MDES {design}", printed, mdes(design, **p).value,
                 atol=_tol(printed), source=source)


def _power(label: str, design: str, es: float, printed: float, source: str, **p) -> Check:
    return Check(f"{label}: power {design} at es={es}", printed, power(design, es=es, **p).value,
                 atol=_tol(printed), source=source)


def _mrss(label: str, design: str, es: float, printed: int, source: str, **p) -> Check:
    return Check(f"{label}: mrss {design} at es={es}", printed, mrss(design, es=es, **p).value,
                 source=source)


@replication("powerup_ira", "PowerUpR individual random assignment (IRA) examples",
             _RD.format("ira"))
def _ira() -> list[Check]:
    src = _RD.format("ira")
    return [
        _mdes("P1", "ira", 0.356, src, n=250),
        _power("P1", "ira", 0.356, 0.80, src, n=250),
        _mrss("P1", "ira", 0.356, 250, src),
        _mrss("P2", "ira", 0.25, 504, "PowerUpR R/ira.R mrss.ira1r1() example"),
        _mrss("P3", "ira", 0.20, 787, _PYPU),
        _mrss("P3", "ira", 0.20, 159, _PYPU, r21=0.8, g1=1),
        _mdes("P4", "ira", 0.20, _PYPU, n=400, r21=0.5),
        _mdes("P4", "ira", 0.28, _PYPU, n=400),
    ]


@replication("powerup_bira2", "PowerUpR blocked individual random assignment (BIRA2) examples",
             _RD.format("ira") + "; " + _RD.format("bira2"))
def _bira2() -> list[Check]:
    return [
        _mdes("P5", "bira2c1", 0.325, _RD.format("ira"), n=15, J=20),
        _power("P5", "bira2c1", 0.325, 0.80, _RD.format("ira"), n=15, J=20),
        _mdes("P6", "bira2f1", 0.325, _RD.format("ira"), n=15, J=20),
        _mdes("P7", "bira2", 0.366, _RD.format("bira2"), rho2=0.17, omega2=0.5, n=15, J=20),
        _power("P7", "bira2", 0.366, 0.80, _RD.format("bira2"), rho2=0.17, omega2=0.5, n=15, J=20),
        _mrss("P7", "bira2", 0.366, 20, _RD.format("bira2"), rho2=0.17, omega2=0.5, n=15),
    ]


@replication("powerup_cra2", "PowerUpR two-level cluster random assignment (CRA2) examples",
             _RD.format("cra2"))
def _cra2() -> list[Check]:
    src = _RD.format("cra2")
    r = mdes("cra2", rho2=0.15, r21=0.4, r22=0.53, g2=1, n=100, J=40)
    return [
        _mdes("P9", "cra2", 0.629, src, rho2=0.17, n=15, J=20),
        _power("P9", "cra2", 0.629, 0.80, src, rho2=0.17, n=15, J=20),
        _mrss("P9", "cra2", 0.629, 20, src, rho2=0.17, n=15),
        Check("P10: MDES cra2 with covariates", 0.250, r.value, atol=5e-4, source=_PYPU),
        Check("P10: lower CI bound", 0.074, r.ci[0], atol=5e-4, source="PowerUpR printout"),
        Check("P10: upper CI bound", 0.426, r.ci[1], atol=5e-4, source="PowerUpR printout"),
    ]


@replication("powerup_three_level", "PowerUpR three-level designs (BIRA3, CRA3, BCRA3R2, BCRA3F2)",
             "PowerUpR 1.1.0 man/cra3.Rd, bira3.Rd, bcra3r2.Rd, cra2.Rd; three-level vignette")
def _three() -> list[Check]:
    cra3 = dict(rho3=0.06, rho2=0.17, n=15, J=3)
    vign = dict(rho3=0.18, rho2=0.06, g3=1, r21=0.55, r22=0.5, r23=0.45, p=0.4, n=10, J=2, K=83)
    return [
        _mdes("P11", "cra3", 0.269, _RD.format("cra3"), K=60, **cra3),
        _power("P11", "cra3", 0.269, 0.80, _RD.format("cra3"), K=60, **cra3),
        _mrss("P11", "cra3", 0.269, 60, _RD.format("cra3"), **cra3),
        _mdes("P12", "cra3", 0.23, "PowerUpR vignettes/three_level_cluster_randomized_trial.Rmd",
              **vign),
        _mdes("P14", "bira3", 0.045, _RD.format("bira3"), rho3=0.2, rho2=0.15, omega3=0.1,
              omega2=0.1, n=69, J=10, K=100),
        _mdes("P14", "bira3", 0.045, _PYPU, rho3=0.2, rho2=0.15, omega3=0.1, omega2=0.1, n=80,
              J=10, K=100),
        _mdes("P15", "bcra3r2", 0.246, _RD.format("bcra3r2"), rho3=0.13, rho2=0.10, omega3=0.4,
              n=10, J=6, K=24),
        _mdes("P17", "bcra3f2", 0.145, _RD.format("cra2"), rho2=0.10, n=20, J=44, K=5),
        _power("P17", "bcra3f2", 0.145, 0.803, _RD.format("cra2"), rho2=0.10, n=20, J=44, K=5),
        _mrss("P17", "bcra3f2", 0.145, 44, _RD.format("cra2"), rho2=0.10, n=20, K=5),
        _mdes("P17", "bcra3f2", 0.102, _PYPU, rho2=0.10, n=20, J=44, K=5, r21=0.5, r22=0.5, g2=1),
    ]


_DIGGLE = "Diggle, Heagerty, Liang & Zeger (2002) p. {}; longpower tests/testthat/tests.R"


@replication("diggle_slopes", "Diggle et al. sample sizes for a difference in slopes (L1)",
             _DIGGLE.format(29))
def _diggle_slopes() -> list[Check]:
    table = {0.2: (313, 625, 938), 0.5: (196, 391, 586), 0.8: (79, 157, 235)}
    out = []
    for rho, row in table.items():
        for sigma2, n in zip((100, 200, 300), row, strict=True):
            got = mrss("diggle_slopes", es=0.5, times=(0, 2, 5), sigma2=sigma2, rho=rho,
                       two_tailed=False).value
            out.append(Check(f"L1: n per group, rho={rho}, sigma2={sigma2}", n, got,
                             source=_DIGGLE.format(29)))
    return out


@replication("diggle_means", "Diggle et al. sample sizes for a difference in means (L2)",
             _DIGGLE.format(30))
def _diggle_means() -> list[Check]:
    table = {0.2: (145, 207, 268), 0.3: (65, 92, 120), 0.4: (37, 52, 67), 0.5: (24, 33, 43)}
    out = []
    for d, row in table.items():
        for rho, n in zip((0.2, 0.5, 0.8), row, strict=True):
            got = mrss("diggle_means", es=d, waves=3, rho=rho, two_tailed=False).value
            out.append(Check(f"L2: n per group, d={d}, rho={rho}", n, got,
                             source=_DIGGLE.format(30)))
    return out
