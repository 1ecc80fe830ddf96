"""Published multilevel / growth-model analyses reproduced with :func:`coevidence.fit_mixed`.

Numbers are those collected in the team's ``published_refs.md`` §4 (M1, M5, M6); tolerances are
half a unit in the last printed digit unless noted.

Examples
--------
>>> from coevidence.reproduce import _registry
>>> "sleepstudy" in _registry.registry()
True
"""

from __future__ import annotations

import warnings

import numpy as np

from coevidence.reproduce._registry import Check, replication

__all__: list[str] = []

_HALF2 = 0.005  # half a unit in the 2nd decimal
_HALF3 = 0.0005


def _fit(formula, data, **kw):
    from coevidence.models.mixed.api import fit_mixed

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # singular fits are part of some published analyses
        return fit_mixed(formula, data, **kw)


def _vc(res, group, term1, term2=None):
    vc = res.variance_components()
    sel = (vc["group"] == group) & (vc["term1"] == term1)
    sel &= vc["term2"].isna() if term2 is None else (vc["term2"] == term2)
    return vc.loc[sel].iloc[0]


@replication(
    "sleepstudy",
    "lme4 sleepstudy: Reaction ~ Days + (Days | Subject), REML",
    "Bates, Maechler, Bolker & Walker (2015), JSS 67(1); lme4 reference page lmer.html",
)
def sleepstudy() -> list[Check]:
    from coevidence.models.mixed.datasets import load_dataset

    res = _fit("reaction ~ days + (days | subject)", load_dataset("sleepstudy"))
    est = res.params
    se = np.sqrt(np.diag(res.vcov.to_numpy()))
    src = "lme4 lmer.html example output"
    return [
        Check("REML criterion", 1743.628, res.objective, atol=_HALF3, source=src),
        Check("fixed (Intercept)", 251.41, float(est["(Intercept)"]), atol=_HALF2, source=src),
        Check("fixed Days", 10.47, float(est["days"]), atol=_HALF2, source=src),
        Check("SE (Intercept)", 6.825, float(se[0]), atol=_HALF3, source="Bates et al. 2015"),
        Check("SE Days", 1.546, float(se[1]), atol=_HALF3, source="Bates et al. 2015"),
        Check("SD (Intercept)", 24.741, float(_vc(res, "subject", "(Intercept)")["sdcor"]),
              atol=_HALF3, rtol=1e-5, source=src + " (lme4 24.74066 sits on the rounding edge;"
              " 1e-5 relative allows for optimizer tolerance)"),
        Check("SD Days", 5.922, float(_vc(res, "subject", "days")["sdcor"]), atol=_HALF3,
              source=src),
        Check("Corr", 0.07, float(_vc(res, "subject", "(Intercept)", "days")["sdcor"]),
              atol=_HALF2, source=src),
        Check("residual SD", 25.592, res.sigma, atol=_HALF3, source=src),
    ]


def _hsb():
    from coevidence.models.mixed.datasets import load_dataset

    df = load_dataset("hsb82")
    # R&B use the school file's MEANSES (published_refs.md §5, pitfall 4)
    df["meanses_rb"] = df["meanses_school"]
    df["cses_rb"] = df["ses"] - df["meanses_rb"]
    return df


@replication(
    "hsb_ch4",
    "High School & Beyond: Raudenbush & Bryk ch. 4 models (a)-(d), REML",
    "Raudenbush & Bryk (2002), Hierarchical Linear Models, 2nd ed., Tables 4.2-4.5",
)
def hsb_ch4() -> list[Check]:
    df = _hsb()
    src = "Raudenbush & Bryk (2002) ch. 4"
    out: list[Check] = []
    a = _fit("m_ach ~ 1 + (1 | school)", df)
    out += [
        Check("(a) gamma00", 12.64, float(a.params.iloc[0]), atol=_HALF2, source=src),
        Check("(a) SE gamma00", 0.24, float(np.sqrt(a.vcov.iloc[0, 0])), atol=_HALF2, source=src),
        Check("(a) tau00", 8.61, float(_vc(a, "school", "(Intercept)")["vcov"]), atol=_HALF2,
              source=src),
        Check("(a) sigma2", 39.15, a.sigma**2, atol=_HALF2, source=src),
        Check("(a) ICC", 0.18, float(a.icc()["icc"].iloc[0]), atol=_HALF2, source=src),
    ]
    b = _fit("m_ach ~ meanses_rb + (1 | school)", df)
    out += [
        Check("(b) gamma00", 12.65, float(b.params.iloc[0]), atol=_HALF2, source=src),
        Check("(b) MEANSES", 5.86, float(b.params.iloc[1]), atol=_HALF2, source=src),
        Check("(b) SE MEANSES", 0.36, float(np.sqrt(b.vcov.iloc[1, 1])), atol=_HALF2, source=src),
        Check("(b) tau00", 2.64, float(_vc(b, "school", "(Intercept)")["vcov"]), atol=_HALF2,
              source=src),
        Check("(b) sigma2", 39.16, b.sigma**2, atol=_HALF2, source=src),
    ]
    c = _fit("m_ach ~ cses_rb + (cses_rb | school)", df)
    out += [
        Check("(c) gamma00", 12.65, float(c.params.iloc[0]), atol=_HALF2, source=src),
        Check("(c) cses", 2.19, float(c.params.iloc[1]), atol=_HALF2, source=src),
        Check("(c) SE cses", 0.13, float(np.sqrt(c.vcov.iloc[1, 1])), atol=_HALF2, source=src),
        Check("(c) tau00", 8.68, float(_vc(c, "school", "(Intercept)")["vcov"]), atol=_HALF2,
              source=src),
        Check("(c) tau11", 0.69, float(_vc(c, "school", "cses_rb")["vcov"]), atol=_HALF2,
              source=src),
        Check("(c) tau01", 0.05, float(_vc(c, "school", "(Intercept)", "cses_rb")["vcov"]),
              atol=_HALF2, source=src),
        Check("(c) sigma2", 36.70, c.sigma**2, atol=_HALF2, source=src),
    ]
    d = _fit("m_ach ~ meanses_rb * cses_rb + sector * cses_rb + (cses_rb | school)", df)
    p = d.params
    out += [
        Check("(d) gamma00", 12.11, float(p["(Intercept)"]), atol=_HALF2, source=src),
        Check("(d) MEANSES", 5.34, float(p["meanses_rb"]), atol=_HALF2, source=src),
        Check("(d) SECTOR", 1.22, float(p["sectorCatholic"]), atol=_HALF2, source=src),
        Check("(d) cses", 2.94, float(p["cses_rb"]), atol=_HALF2, source=src),
        Check("(d) MEANSES x cses", 1.04, float(p["meanses_rb:cses_rb"]), atol=_HALF2, source=src),
        Check("(d) SECTOR x cses", -1.64, float(p["cses_rb:sectorCatholic"]), atol=_HALF2,
              source=src),
        Check("(d) tau00", 2.38, float(_vc(d, "school", "(Intercept)")["vcov"]), atol=_HALF2,
              source=src),
        Check("(d) tau11", 0.10, float(_vc(d, "school", "cses_rb")["vcov"]), atol=_HALF2,
              source=src),
        Check("(d) tau01", 0.19, float(_vc(d, "school", "(Intercept)", "cses_rb")["vcov"]),
              atol=_HALF2, source=src),
        Check("(d) sigma2", 36.70, d.sigma**2, atol=0.025, source=src + " (R&B's HLM "
              "prints 36.70; lme4 gives 36.72, published_refs.md M5)"),
    ]
    return out


@replication(
    "early_intervention",
    "Singer & Willett early intervention: cog ~ time * program + (time | id), ML",
    "Singer & Willett (2003), Applied Longitudinal Data Analysis, Table 3.3 (fixed effects)",
)
def early_intervention() -> list[Check]:
    from coevidence.models.mixed.datasets import load_dataset

    res = _fit("cog ~ age_c * trt + (age_c | id)", load_dataset("early"), reml=False)
    p = res.params
    src = "Singer & Willett (2003) Table 3.3"
    return [
        Check("gamma00", 107.84, float(p["(Intercept)"]), atol=_HALF2, source=src),
        Check("program", 6.85, float(p["trtY"]), atol=_HALF2 + 1e-3, source=src
              + " (lme4: 6.8550; the book rounds down)"),
        Check("time", -21.13, float(p["age_c"]), atol=_HALF2, source=src),
        Check("time x program", 5.27, float(p["age_c:trtY"]), atol=_HALF2, source=src),
    ]
