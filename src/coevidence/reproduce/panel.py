"""Published panel and staggered-adoption analyses reproduced with coevidence.

Numbers are those collected in the team's ``published_refs.md`` §2 (Callaway & Sant'Anna, R
``did``) and §3 (Grunfeld / plm, Wooldridge's job-training and wage-panel examples);
tolerances are half a unit in the last printed digit.

Examples
--------
>>> from coevidence.reproduce import _registry
>>> "grunfeld_plm" in _registry.registry()
True
"""

from __future__ import annotations

import warnings

from coevidence.reproduce._registry import Check, replication

__all__: list[str] = []


def _half(digits: int) -> float:
    return 0.5 * 10.0**-digits + 1e-12


def _coef_checks(name: str, res, vals: dict, source: str) -> list[Check]:  # noqa: ANN001
    """Estimate and SE checks for published ``{term: (estimate, se)}`` (half a last digit)."""
    out = []
    for term, (est, se) in vals.items():
        out.append(Check(f"{name} {term}", est, float(res.params[term]),
                         atol=_half(_dec(est)), source=source))
        out.append(Check(f"{name} SE {term}", se, float(res.std_errors[term]),
                         atol=_half(_dec(se)), source=source))
    return out


def _dec(x: float) -> int:
    """Decimals printed in a published number (as written in the source)."""
    text = repr(x)
    return len(text.split(".")[1]) if "." in text else 0


def _quiet(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kw)


@replication(
    "grunfeld_plm",
    "Grunfeld investment: inv ~ value + capital; pooling, within, two-ways, random (Swamy-Arora), Hausman",
    "R plm output (published_refs.md W7); Baltagi, Econometric Analysis of Panel Data, Table 2.1",
)
def grunfeld_plm() -> list[Check]:
    from coevidence.datasets.panel import load_grunfeld
    from coevidence.models.panel.model import fit_panel, hausman

    g = load_grunfeld()
    kw = {"unit": "firm", "time": "year", "regressors": ["value", "capital"]}
    src = "plm printed output (W7)"
    pool = fit_panel(g, "inv", estimator="pooled", **kw)
    fe = fit_panel(g, "inv", **kw)
    tw = fit_panel(g, "inv", effects="twoway", **kw)
    re_ = fit_panel(g, "inv", estimator="random", **kw)
    h = hausman(fe, re_)
    checks = []
    for name, res, vals in (
        (
            "pooling",
            pool,
            {
                "Intercept": (-42.714369, 9.511676),
                "value": (0.1155622, 0.0058357),
                "capital": (0.2306785, 0.0254758),
            },
        ),
        ("within", fe, {"value": (0.110124, 0.011857), "capital": (0.310065, 0.017355)}),
        ("twoways", tw, {"value": (0.117716, 0.013751), "capital": (0.357916, 0.022719)}),
        (
            "random",
            re_,
            {
                "Intercept": (-57.834415, 28.898935),
                "value": (0.109781, 0.010493),
                "capital": (0.308113, 0.017180),
            },
        ),
    ):
        checks += _coef_checks(name, res, vals, src)
    checks += [
        Check("pooling R-squared", 0.81241, pool.rsquared, atol=_half(5), source=src),
        Check("within R-squared", 0.76676, fe.rsquared, atol=_half(5), source=src),
        Check(
            "within F pooled (9, 188)",
            49.177,
            fe.diagnostics.tests["F_pooled"]["statistic"],
            atol=_half(3),
            source=src,
        ),
        Check(
            "random sigma2 idiosyncratic",
            2784.46,
            re_.diagnostics.variance_components["sigma2_idiosyncratic"],
            atol=_half(2),
            source=src,
        ),
        Check(
            "random sigma2 firm",
            7089.80,
            re_.diagnostics.variance_components["sigma2_unit"],
            atol=_half(2),
            source=src,
        ),
        Check(
            "random theta",
            0.8612,
            re_.diagnostics.variance_components["theta"],
            atol=_half(4),
            source=src,
        ),
        Check("Hausman chi2(2)", 2.3304, h.statistic, atol=_half(4), source=src),
    ]
    return checks


@replication(
    "wooldridge_jtrain",
    "Wooldridge Example 14.1: job-training grants and scrap rates, firm fixed effects",
    "Wooldridge, Introductory Econometrics, Ex. 14.1 (published_refs.md W4); data linearmodels.datasets.jobtraining",
)
def wooldridge_jtrain() -> list[Check]:
    from linearmodels.datasets import jobtraining

    from coevidence.models.panel.model import fit_panel

    jt = jobtraining.load()
    res = _quiet(
        fit_panel,
        jt,
        "lscrap",
        unit="fcode",
        time="year",
        regressors=["d88", "d89", "grant", "grant_1"],
    )
    src = "Wooldridge Ex. 14.1"
    pub = {
        "d88": (-0.080, 0.109),
        "d89": (-0.247, 0.133),
        "grant": (-0.252, 0.151),
        "grant_1": (-0.422, 0.210),
    }
    checks = [
        Check("n", 162, res.nobs, source=src),
        Check("R-squared (within)", 0.201, res.rsquared, atol=_half(3), source=src),
    ]
    for term, (est, se) in pub.items():
        checks.append(Check(term, est, float(res.params[term]), atol=_half(3), source=src))
        checks.append(
            Check(f"SE {term}", se, float(res.std_errors[term]), atol=_half(3), source=src)
        )
    return checks


@replication(
    "wage_panel_fe",
    "Vella & Verbeek wage panel: lwage on expersq, married, union with person fixed effects; Wooldridge Table 14.2",
    "linearmodels docs, panel/introduction.rst (W1); Wooldridge, Introductory Econometrics, Table 14.2 (W2)",
)
def wage_panel_fe() -> list[Check]:
    from linearmodels.datasets import wage_panel

    from coevidence.models.panel.model import fit_panel

    wp = wage_panel.load()
    kw = {"unit": "nr", "time": "year"}
    fe = fit_panel(wp, "lwage", regressors=["expersq", "married", "union"], **kw)
    src1 = "linearmodels introduction (W1)"
    checks = [
        Check("R-squared within", 0.1365, fe.rsquared_within, atol=_half(4), source=src1),
        Check(
            "F poolability (544, 3812)",
            9.3360,
            fe.diagnostics.tests["F_pooled"]["statistic"],
            atol=_half(4),
            source=src1,
        ),
    ]
    for term, (est, se) in {
        "expersq": (0.0037, 0.0002),
        "married": (0.1073, 0.0182),
        "union": (0.0828, 0.0198),
    }.items():
        checks.append(Check(term, est, float(fe.params[term]), atol=_half(4), source=src1))
        checks.append(
            Check(f"SE {term}", se, float(fe.std_errors[term]), atol=_half(4), source=src1)
        )
    src2 = "Wooldridge Table 14.2"
    rhs = "educ + black + hisp + exper + expersq + married + union + C(year)"
    pooled = fit_panel(wp, "lwage", formula=rhs, estimator="pooled", **kw)
    random = fit_panel(wp, "lwage", formula=rhs, estimator="random", **kw)
    within = fit_panel(wp, "lwage", formula="expersq + married + union + C(year)", **kw)
    table = {
        "pooled": (
            pooled,
            {
                "educ": (0.091, 0.005),
                "black": (-0.139, 0.024),
                "hisp": (0.016, 0.021),
                "exper": (0.067, 0.014),
                "expersq": (-0.0024, 0.0008),
                "married": (0.108, 0.016),
                "union": (0.182, 0.017),
            },
        ),
        "random": (
            random,
            {
                "educ": (0.092, 0.011),
                "black": (-0.139, 0.048),
                "hisp": (0.022, 0.043),
                "exper": (0.106, 0.015),
                "expersq": (-0.0047, 0.0007),
                "married": (0.064, 0.017),
                "union": (0.106, 0.018),
            },
        ),
        "within": (
            within,
            {"expersq": (-0.0052, 0.0007), "married": (0.047, 0.018), "union": (0.080, 0.019)},
        ),
    }
    for name, (res, vals) in table.items():
        checks += _coef_checks(name, res, vals, src2)
    checks.append(
        Check(
            "random theta",
            0.643,
            random.diagnostics.variance_components["theta"],
            atol=_half(3),
            source=src2,
        )
    )
    return checks


@replication(
    "mpdta_callaway_santanna",
    "Callaway & Sant'Anna (2021) minimum wage and teen employment (mpdta): group-time ATTs and aggregations",
    "R did: README, did-basics vignette, att_gt and aggte reference pages (published_refs.md section 2.2)",
)
def mpdta_callaway_santanna() -> list[Check]:
    from coevidence.datasets.panel import load_mpdta
    from coevidence.models.did.event_study import fit_event_study

    d = load_mpdta()
    kw = {"unit": "countyreal", "time": "year", "first_treated": "first.treat"}
    res = fit_event_study(d, "lemp", **kw)
    src = "did att_gt / aggte published output"
    pub = [
        -0.0105,
        -0.0704,
        -0.1373,
        -0.1008,
        0.0065,
        -0.0028,
        -0.0046,
        -0.0412,
        0.0305,
        -0.0027,
        -0.0311,
        -0.0261,
    ]
    gt = res.gt
    checks = [
        Check(f"ATT({g:g},{t:g})", p, float(e), atol=_half(4), source=src)
        for g, t, e, p in zip(gt["group"], gt["time"], gt["estimate"], pub, strict=True)
    ]
    checks.append(
        Check(
            "pre-test p-value", 0.16812, res.pretrend_test()["p_value"], atol=_half(5), source=src
        )
    )
    checks.append(
        Check(
            "simple ATT",
            -0.04,
            float(res.aggregate("simple").tidy()["estimate"].iloc[0]),
            atol=_half(2),
            source=src,
        )
    )
    for kind, labels, vals, overall in (
        (
            "event",
            [-3, -2, -1, 0, 1, 2, 3],
            [0.0305, -0.0006, -0.0245, -0.0199, -0.0510, -0.1373, -0.1008],
            -0.0772,
        ),
        ("group", [2004, 2006, 2007], [-0.0797, -0.0229, -0.0261], -0.031),
        ("calendar", [2004, 2005, 2006, 2007], [-0.0105, -0.0704, -0.0488, -0.0371], -0.0417),
    ):
        t = res.aggregate(kind).tidy()
        for lab, val, est in zip(labels, vals, t["estimate"].iloc[:-1], strict=True):
            checks.append(Check(f"{kind} {lab}", val, float(est), atol=_half(4), source=src))
        checks.append(
            Check(
                f"{kind} overall",
                overall,
                float(t["estimate"].iloc[-1]),
                atol=_half(_dec(overall)),
                source=src,
            )
        )
    cov = fit_event_study(d, "lemp", **kw, covariates=["lpop"])
    pub_cov = [
        -0.0145,
        -0.0764,
        -0.1404,
        -0.1069,
        -0.0005,
        -0.0062,
        0.0010,
        -0.0413,
        0.0267,
        -0.0046,
        -0.0284,
        -0.0288,
    ]
    src2 = "did att_gt reference page, xformla = ~lpop (doubly robust)"
    gtc = cov.gt
    checks += [
        Check(f"ATT({g:g},{t:g}) | lpop, dr", p, float(e), atol=_half(4), source=src2)
        for g, t, e, p in zip(gtc["group"], gtc["time"], gtc["estimate"], pub_cov, strict=True)
    ]
    checks.append(
        Check(
            "pre-test p-value | lpop",
            0.23267,
            cov.pretrend_test()["p_value"],
            atol=_half(5),
            source=src2,
        )
    )
    return checks
