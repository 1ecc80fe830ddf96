"""Rubin's-rules pooling against R mice 3.15 / mitml (tests/fixtures/missing/make_pooling.R).

The completed data sets are mice's own (``complete(imp, "long")``), so the per-imputation fits
are the same data in both languages; the complete-data model is fitted with ``fit_panel``
(pooled OLS, classical covariance, residual df) and, independently, statsmodels OLS wrapped in
a minimal result.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import coevidence as cv
from coevidence.exceptions import OptionError
from coevidence.results.base import ResultBase, glance_frame, tidy_frame
from coevidence.results.pooling import POOLING_COLUMNS, barnard_rubin, pool, pool_scalar

FIX = Path(__file__).parents[1] / "fixtures" / "missing"
TOL = 1e-6


class _OLS(ResultBase):
    """statsmodels OLS as a minimal result (tidy with residual df, vcov)."""

    def __init__(self, frame: pd.DataFrame, y: str, xs: list[str]) -> None:
        import statsmodels.api as sm

        X = sm.add_constant(frame[xs].astype(float)).rename(columns={"const": "(Intercept)"})
        fit = sm.OLS(frame[y].astype(float), X).fit()
        self._params = fit.params.to_numpy()
        self._cov = fit.cov_params()
        self._names = list(X.columns)
        self._df = float(fit.df_resid)
        self._n = int(fit.nobs)
        self._freeze()

    @property
    def vcov(self) -> pd.DataFrame:
        return self._cov.copy()

    def tidy(self, conf_level=None):
        return tidy_frame(self._names, self._params, np.sqrt(np.diag(self._cov)), self._df,
                          self._level(conf_level))

    def glance(self):
        return glance_frame(estimator="ols", outcome="chl", nobs=self._n,
                            cov_type="unadjusted", df_method="residual")

    def summary(self):
        return "OLS"


def _fits(name: str, xs: list[str], kind: str = "panel") -> list:
    data = pd.read_csv(FIX / f"{name}.csv")
    out = []
    for _, g in data.groupby(".imp"):
        g = g.reset_index(drop=True).assign(unit=lambda d: np.arange(len(d)), one=1)
        if kind == "panel":
            out.append(cv.fit_panel(g, "chl", unit="unit", time="one", regressors=xs,
                                    estimator="pooled"))
        else:
            out.append(_OLS(g, "chl", xs))
    return out


def assert_matches_mice(pooled, want: pd.DataFrame) -> None:
    got = pooled.tidy(pooling=True)
    assert len(got) == len(want)
    for col in ("estimate", "std_error", "df", "riv", "lambda", "fmi", "ubar", "b", "t",
                "p_value", "dfcom"):
        np.testing.assert_allclose(got[col].to_numpy(float), want[col].to_numpy(float),
                                   rtol=TOL, atol=1e-12, err_msg=col)
    assert (got["m"] == want["m"]).all()


@pytest.mark.parametrize("kind", ["panel", "ols"])
def test_pool_matches_mice_nhanes_m5(kind):
    pooled = pool(_fits("nhanes_m5", ["age", "bmi"], kind))
    assert_matches_mice(pooled, pd.read_csv(FIX / "pool_nhanes_m5.csv"))
    assert pooled.glance()["df_method"].iloc[0] == "barnard_rubin"


def test_pool_dfcom_inf_is_rubin_1987():
    pooled = pool(_fits("nhanes_m5", ["age", "bmi"], "ols"), dfcom=np.inf)
    assert_matches_mice(pooled, pd.read_csv(FIX / "pool_nhanes_m5_dfinf.csv").assign(
        dfcom=np.inf))


def test_pool_matches_mice_m20_and_d1_matches_mitml():
    fits = _fits("nhanes_m20", ["age", "bmi", "hyp"], "ols")
    pooled = pool(fits)
    assert_matches_mice(pooled, pd.read_csv(FIX / "pool_nhanes_m20.csv"))
    d1 = pd.read_csv(FIX / "d1_nhanes_m20.csv").set_index("case")
    for case, dfcom in (("dfcom21", None), ("dfinf", np.inf)):
        w = pooled.wald(["bmi", "hyp"], dfcom=dfcom).iloc[0]
        ref = d1.loc[case]
        np.testing.assert_allclose(
            [w["statistic"], w["df_num"], w["df_den"], w["p_value"], w["riv"]],
            ref[["F", "df1", "df2", "p", "riv"]].to_numpy(float), rtol=TOL)
    # mice::D1 takes the residual df of the larger model (21), as the default here does
    np.testing.assert_allclose(pooled.wald(["bmi", "hyp"])["df_den"].iloc[0],
                               d1.loc["mice_D1", "df2"], rtol=TOL)


def test_pool_scalar_matches_mice():
    q = [1.2, 0.9, 1.5, 1.1, 1.35, 0.8]
    u = [0.10, 0.12, 0.09, 0.11, 0.10, 0.13]
    ref = pd.read_csv(FIX / "pool_scalar.csv").set_index("case")
    for case, dfcom in (("n40k3", 37.0), ("inf", np.inf)):
        r = pool_scalar(q, u, dfcom=dfcom)
        np.testing.assert_allclose(
            [r["qbar"], r["ubar"], r["b"], r["t"], r["df"], r["riv"], r["fmi"]],
            ref.loc[case, ["qbar", "ubar", "b", "t", "df", "r", "fmi"]].to_numpy(float),
            rtol=TOL)


def test_pooled_result_contract_and_columns():
    pooled = pool(_fits("nhanes_m5", ["age", "bmi"], "panel"))
    cv.check_result(pooled)
    cols = pooled.tidy(pooling=True).columns.tolist()
    assert cols[8:] == list(POOLING_COLUMNS)
    assert pooled.frame().equals(pooled.tidy(pooling=True))
    V = pooled.vcov
    np.testing.assert_allclose(np.sqrt(np.diag(V)), pooled.tidy()["std_error"], rtol=1e-12)


def test_pool_effect_tables_and_frames():
    """Results without a covariance (effect tables, tidy() frames): per-term pooling; z df."""
    from coevidence.models.did.results import EffectTable

    tabs = [EffectTable(title="ATT", terms=["overall"], estimate=np.array([e]),
                        std_error=np.array([0.2]), info={"estimator": "cs"}, df=np.inf)
            for e in (0.3, 0.5, 0.4)]
    p = pool(tabs)
    r = pool_scalar([0.3, 0.5, 0.4], [0.04] * 3)
    np.testing.assert_allclose(p.tidy()["df"].iloc[0], r["df"])
    np.testing.assert_allclose(p.tidy()["std_error"].iloc[0], r["std_error"])
    assert p.vcov is None
    assert p.wald(["overall"])["df_num"].iloc[0] == 1
    with pytest.raises(OptionError, match="covariance"):
        pool([t.tidy().assign(term=["a"]).pipe(lambda d: pd.concat([d, d.assign(term="b")]))
              for t in tabs]).wald()


def test_pool_refuses_bad_input():
    f = pd.DataFrame({"term": ["x", "z"], "estimate": [1.0, 2.0], "std_error": [0.1, 0.2]})
    with pytest.raises(OptionError, match="at least two"):
        pool([f])
    with pytest.raises(OptionError, match="different terms"):
        pool([f, f.assign(term=["x", "w"])])
    with pytest.raises(OptionError, match="tidy"):
        pool([f, object()])
    with pytest.raises(OptionError, match="dfcom"):
        pool([f, f], dfcom=-1)
    # terms in another order are matched by name
    p = pool([f, f.iloc[::-1]])
    assert p.tidy()["estimate"].tolist() == [1.0, 2.0]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-5, 5), min_size=2, max_size=8),
       st.floats(0.05, 2.0), st.floats(3, 500))
def test_pool_properties(est, se, dfc):
    m = len(est)
    frames = [pd.DataFrame({"term": ["x"], "estimate": [e], "std_error": [se], "df": [dfc]})
              for e in est]
    row = pool(frames).tidy(pooling=True).iloc[0]
    assert row["estimate"] == pytest.approx(np.mean(est))
    assert row["std_error"] >= se * (1 - 1e-12)  # the between variance never reduces the SE
    assert 0 <= row["lambda"] <= 1
    # Barnard-Rubin df never exceed the complete-data df nor Rubin's (1987) df
    old = float(barnard_rubin(m, row["b"], row["t"]))
    assert row["df"] <= min(dfc, old) * (1 + 1e-9)


def test_pool_mixed_results_uses_their_satterthwaite_df():
    rng = np.random.default_rng(11)
    G, n = 12, 6
    g = np.repeat(np.arange(G), n)
    x = rng.normal(size=G * n)
    base = pd.DataFrame({"g": g, "x": x, "z": np.repeat(rng.normal(size=G), n)})
    fits = []
    for _ in range(3):  # three "completed" data sets differing in the outcome noise
        d = base.assign(y=1 + 0.5 * base.x + 0.3 * base.z + rng.normal(0, 0.6, G)[g]
                        + rng.normal(size=G * n))
        fits.append(cv.fit_mixed("y ~ x + z + (1 | g)", d))
    p = pool(fits)
    cv.check_result(p)
    t = p.tidy(pooling=True).set_index("term")
    want = np.mean([f.tidy().set_index("term").loc["z", "df"] for f in fits])
    assert t.loc["z", "dfcom"] == pytest.approx(want)
    assert t.loc["z", "df"] <= want
    assert p.glance()["estimator"].iloc[0].startswith("rubin_")
