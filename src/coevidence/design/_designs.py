"""Designs behind :func:`coevidence.mdes`, :func:`coevidence.power` and :func:`coevidence.mrss`.

A :class:`Design` holds what differs between designs: the parameters it accepts (with their
defaults; ``REQUIRED`` when there is none), the squared standardized standard error of the
treatment-effect estimate (``sse2``), the degrees of freedom (``df``; ``inf`` for normal-based
designs), which sample size a minimum-required-sample-size search solves for, and how that search
works (PowerUpR's iteration, a normal-theory closed form rounded up, or an exact integer search).

The PowerUpR designs follow PowerUpR 1.1.0 (Dong & Maynard 2013) term by term, including which
number of covariates enters the degrees of freedom and whether the sample-size iteration stops at
the tolerance (IRA, BIRA2*, CRA2) or always runs its 101 steps (BIRA3, CRA3, BCRA3R2, BCRA3F2).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from coevidence.exceptions import OptionError

__all__ = ["REQUIRED", "Design", "DESIGNS", "register_design", "get_design"]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: Marks a parameter without a default.
REQUIRED: Any = _Required()

Params = Mapping[str, Any]

#: Defaults every design shares (test settings).
COMMON = {"alpha": 0.05, "power": 0.80, "two_tailed": True}

#: One-line meaning of each parameter, for error messages, docs and the CLI help.
PARAM_HELP: dict[str, str] = {
    "n": "level-1 units per level-2 unit (IRA: total sample size)",
    "J": "level-2 units (per level-3 unit in three-level designs)",
    "K": "level-3 units",
    "p": "proportion of units assigned to treatment",
    "rho2": "intraclass correlation at level 2 (proportion of variance)",
    "rho3": "intraclass correlation at level 3",
    "omega2": "treatment-effect heterogeneity across level-2 blocks / level-2 variance",
    "omega3": "treatment-effect heterogeneity across level-3 blocks / level-3 variance",
    "r21": "variance explained by covariates at level 1 (R-squared)",
    "r22": "variance explained by covariates at level 2",
    "r23": "variance explained by covariates at level 3",
    "r2t2": "treatment-effect variance explained by level-2 covariates",
    "r2t3": "treatment-effect variance explained by level-3 covariates",
    "g1": "number of level-1 covariates",
    "g2": "number of level-2 covariates",
    "g3": "number of level-3 covariates",
    "rel1": "reliability of the level-1 outcome (divides the level-1 variance term)",
    "alpha": "type I error rate",
    "power": "target power",
    "two_tailed": "two-tailed test (False: one-tailed)",
    "times": "measurement occasions (in the time unit of the slope)",
    "waves": "number of equally spaced waves (with duration) or of repeated measures",
    "duration": "study duration from first to last wave (with waves)",
    "sigma2": "within-person (occasion-level) residual variance",
    "rho": "correlation between repeated measures (exchangeable)",
    "tau_beta": "variance of person-level slopes",
    "tau_pi": "variance of cluster-level slopes",
    "steps": "number of steps in a stepped-wedge design (clusters cross over in equal groups)",
    "baseline_periods": "periods before the first step",
}


@dataclass(frozen=True)
class Design:
    """One design: its parameters, standard error, degrees of freedom and sample-size search."""

    name: str
    title: str
    params: Mapping[str, Any]
    sse2: Callable[[Params], float]
    df: Callable[[Params], float]
    df_text: str
    solve_for: str
    mrss_rule: Literal["powerup", "powerup_fixed", "normal_ceil", "search"] = "powerup"
    reference: str = "Dong & Maynard (2013); PowerUpR 1.1.0"
    aliases: tuple[str, ...] = ()
    #: Integer step of the solved-for size in an exact search (stepped wedge: multiples of steps).
    step: Callable[[Params], int] = field(default=lambda p: 1)
    #: Smallest value of the solved-for size that gives positive degrees of freedom.
    min_size: Callable[[Params], int] = field(default=lambda p: 1)
    check: Callable[[Params], None] = field(default=lambda p: None)
    integer_params: tuple[str, ...] = ("n", "J", "K", "g1", "g2", "g3")
    #: True when the statistic is referred to the normal distribution (``df`` is ``inf``).
    normal: bool = False



DESIGNS: dict[str, Design] = {}
_ALIASES: dict[str, str] = {}


def register_design(design: Design) -> Design:
    """Add a design to the table used by ``mdes``/``power``/``mrss`` (returns it)."""
    DESIGNS[design.name] = design
    for a in (design.name, *design.aliases):
        _ALIASES[a.lower()] = design.name
    return design


def get_design(name: str) -> Design:
    """The design called ``name`` (case-insensitive; PowerUpR aliases such as ``cra3r3`` work)."""
    if not isinstance(name, str):
        raise TypeError(f"design must be a string such as 'cra2', got {type(name).__name__}")
    key = _ALIASES.get(name.lower().replace("-", "_"))
    if key is None:
        raise OptionError(f"unknown design {name!r}; available: {', '.join(sorted(DESIGNS))}")
    return DESIGNS[key]


# --------------------------------------------------------------------------- PowerUpR designs
def _pq(p: Params) -> float:
    return p["p"] * (1.0 - p["p"])


def _check_icc(p: Params) -> None:
    total = p.get("rho2", 0.0) + p.get("rho3", 0.0)
    if total >= 1:
        raise OptionError(f"rho2 + rho3 must be below 1, got {total:g}")


_BASE = dict(COMMON)

register_design(Design(
    name="ira", title="Individual random assignment (IRA1_1r)",
    params={**_BASE, "n": REQUIRED, "p": 0.5, "r21": 0.0, "g1": 0},
    sse2=lambda q: (1 - q["r21"]) / (_pq(q) * q["n"]),
    df=lambda q: q["n"] - q["g1"] - 2, df_text="n - g1 - 2", solve_for="n",
    aliases=("ira1r1",),
))

register_design(Design(
    name="bira2c1", title="Blocked IRA, two levels, constant effects (BIRA2_1c)",
    params={**_BASE, "n": REQUIRED, "J": REQUIRED, "p": 0.5, "r21": 0.0, "g1": 0},
    sse2=lambda q: (1 - q["r21"]) / (_pq(q) * q["J"] * q["n"]),
    df=lambda q: q["J"] * (q["n"] - 1) - q["g1"] - 1, df_text="J(n - 1) - g1 - 1", solve_for="n",
))

register_design(Design(
    name="bira2f1", title="Blocked IRA, two levels, fixed block effects (BIRA2_1f)",
    params={**_BASE, "n": REQUIRED, "J": REQUIRED, "p": 0.5, "r21": 0.0, "g1": 0},
    sse2=lambda q: (1 - q["r21"]) / (_pq(q) * q["J"] * q["n"]),
    df=lambda q: q["J"] * (q["n"] - 2) - q["g1"], df_text="J(n - 2) - g1", solve_for="n",
))

register_design(Design(
    name="bira2", title="Blocked IRA, two levels, random block effects (BIRA2_1r)",
    params={**_BASE, "n": REQUIRED, "J": REQUIRED, "rho2": REQUIRED, "omega2": REQUIRED,
            "p": 0.5, "r21": 0.0, "r2t2": 0.0, "g2": 0, "rel1": 1.0},
    sse2=lambda q: (q["rho2"] * q["omega2"] * (1 - q["r2t2"]) / q["J"]
                    + (1 - q["rho2"]) * (1 - q["r21"]) / (_pq(q) * q["J"] * q["n"] * q["rel1"])),
    df=lambda q: q["J"] - q["g2"] - 1, df_text="J - g2 - 1", solve_for="J",
    aliases=("bira2r1",), check=_check_icc,
))

register_design(Design(
    name="cra2", title="Two-level cluster random assignment (CRA2_2r)",
    params={**_BASE, "n": REQUIRED, "J": REQUIRED, "rho2": REQUIRED,
            "p": 0.5, "r21": 0.0, "r22": 0.0, "g2": 0, "rel1": 1.0},
    sse2=lambda q: (q["rho2"] * (1 - q["r22"]) / (_pq(q) * q["J"])
                    + (1 - q["rho2"]) * (1 - q["r21"]) / (_pq(q) * q["J"] * q["n"] * q["rel1"])),
    df=lambda q: q["J"] - q["g2"] - 2, df_text="J - g2 - 2", solve_for="J",
    aliases=("cra2r2",), check=_check_icc,
))

register_design(Design(
    name="bira3", title="Blocked IRA, three levels, random block effects (BIRA3_1r)",
    params={**_BASE, "n": REQUIRED, "J": REQUIRED, "K": REQUIRED, "rho2": REQUIRED,
            "rho3": REQUIRED, "omega2": REQUIRED, "omega3": REQUIRED,
            "p": 0.5, "r21": 0.0, "r2t2": 0.0, "r2t3": 0.0, "g3": 0},
    sse2=lambda q: (q["rho3"] * q["omega3"] * (1 - q["r2t3"]) / q["K"]
                    + q["rho2"] * q["omega2"] * (1 - q["r2t2"]) / (q["J"] * q["K"])
                    + (1 - q["rho3"] - q["rho2"]) * (1 - q["r21"])
                    / (_pq(q) * q["J"] * q["K"] * q["n"])),
    df=lambda q: q["K"] - q["g3"] - 1, df_text="K - g3 - 1", solve_for="K",
    mrss_rule="powerup_fixed", aliases=("bira3r1",), check=_check_icc,
))

register_design(Design(
    name="cra3", title="Three-level cluster random assignment (CRA3_3r)",
    params={**_BASE, "n": REQUIRED, "J": REQUIRED, "K": REQUIRED, "rho2": REQUIRED,
            "rho3": REQUIRED, "p": 0.5, "r21": 0.0, "r22": 0.0, "r23": 0.0, "g3": 0},
    sse2=lambda q: (q["rho3"] * (1 - q["r23"]) / (_pq(q) * q["K"])
                    + q["rho2"] * (1 - q["r22"]) / (_pq(q) * q["J"] * q["K"])
                    + (1 - q["rho3"] - q["rho2"]) * (1 - q["r21"])
                    / (_pq(q) * q["J"] * q["K"] * q["n"])),
    df=lambda q: q["K"] - q["g3"] - 2, df_text="K - g3 - 2", solve_for="K",
    mrss_rule="powerup_fixed", aliases=("cra3r3",), check=_check_icc,
))

register_design(Design(
    name="bcra3r2",
    title="Blocked cluster random assignment, random level-3 blocks, treatment at level 2",
    params={**_BASE, "n": REQUIRED, "J": REQUIRED, "K": REQUIRED, "rho2": REQUIRED,
            "rho3": REQUIRED, "omega3": REQUIRED,
            "p": 0.5, "r21": 0.0, "r22": 0.0, "r2t3": 0.0, "g3": 0},
    sse2=lambda q: (q["rho3"] * q["omega3"] * (1 - q["r2t3"]) / q["K"]
                    + q["rho2"] * (1 - q["r22"]) / (_pq(q) * q["J"] * q["K"])
                    + (1 - q["rho3"] - q["rho2"]) * (1 - q["r21"])
                    / (_pq(q) * q["J"] * q["K"] * q["n"])),
    df=lambda q: q["K"] - q["g3"] - 1, df_text="K - g3 - 1", solve_for="K",
    mrss_rule="powerup_fixed", check=_check_icc,
))

register_design(Design(
    name="bcra3f2",
    title="Blocked cluster random assignment, fixed level-3 blocks, treatment at level 2",
    params={**_BASE, "n": REQUIRED, "J": REQUIRED, "K": REQUIRED, "rho2": REQUIRED,
            "p": 0.5, "r21": 0.0, "r22": 0.0, "g2": 0},
    sse2=lambda q: (q["rho2"] * (1 - q["r22"]) / (_pq(q) * q["J"] * q["K"])
                    + (1 - q["rho2"]) * (1 - q["r21"]) / (_pq(q) * q["J"] * q["K"] * q["n"])),
    df=lambda q: q["K"] * (q["J"] - 2) - q["g2"], df_text="K(J - 2) - g2", solve_for="J",
    mrss_rule="powerup_fixed", check=_check_icc,
))
