"""randomization_test: exact enumeration against brute force, sampling, seeds, calibration under
the null, error messages, and use with the panel, event-study, stepped-wedge and growth fits."""

import doctest
import itertools
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import coevidence as cv
from coevidence.exceptions import FewClustersWarning, ModelSpecificationError
from coevidence.models.randomization import model as randomization
from coevidence.models.randomization.model import RandomizationResult, randomization_test
from coevidence.results.base import TIDY_COLUMNS


def cluster_data(G=8, per=4, n_treated=4, effect=0.0, seed=0, strata=None):
    rng = np.random.default_rng(seed)
    arm = np.zeros(G, dtype=int)
    arm[rng.choice(G, n_treated, replace=False)] = 1
    u = rng.normal(size=G)
    c = np.repeat(np.arange(G), per)
    d = pd.DataFrame({"provider": c, "arm": arm[c]})
    d["y"] = u[c] + effect * d["arm"] + rng.normal(0, 0.5, len(d))
    if strata is not None:
        d["block"] = np.asarray(strata)[c]
    return d


def diff_means(x):
    y, a = x["y"].to_numpy(), x["arm"].to_numpy()
    return y[a == 1].mean() - y[a == 0].mean()


def test_exact_enumeration_matches_brute_force():
    d = cluster_data(seed=3, effect=0.8)
    rt = randomization_test(d, diff_means, arm="arm", cluster="provider")
    assert rt.exact and rt.n_permutations == rt.n_assignments == math.comb(8, 4) == 70
    # brute force: every choice of 4 treated providers
    ybar = d.groupby("provider")["y"].mean().to_numpy()  # equal sizes: mean of cluster means
    obs = diff_means(d)
    stats_ = [
        ybar[list(s)].mean() - np.delete(ybar, list(s)).mean()
        for s in itertools.combinations(range(8), 4)
    ]
    p = np.mean(np.abs(stats_) >= abs(obs) - 1e-12)
    assert rt.p_value == pytest.approx(p, abs=1e-12)
    assert rt.estimate == pytest.approx(obs) and rt.observed == rt.estimate
    np.testing.assert_allclose(np.sort(rt.distribution), np.sort(stats_), atol=1e-12)
    assert rt.p_value >= 2 / 70  # observed and its mirror image
    one = randomization_test(d, diff_means, arm="arm", cluster="provider", alternative="greater")
    assert one.p_value == pytest.approx(np.mean(np.array(stats_) >= obs - 1e-12))


def test_counts_with_strata_and_three_arms():
    d = cluster_data(G=8, strata=[0, 0, 0, 0, 1, 1, 1, 1], seed=1)
    d["arm"] = np.repeat([0, 1, 0, 1, 1, 0, 1, 0], 4)
    rt = randomization_test(d, diff_means, arm="arm", cluster="provider", strata="block")
    assert rt.exact and rt.n_assignments == math.comb(4, 2) ** 2 == 36
    ybar = d.groupby("provider")["y"].mean().to_numpy()
    brute = []
    for s0, s1 in itertools.product(itertools.combinations(range(4), 2), repeat=2):
        treated = np.zeros(8, dtype=bool)
        treated[list(s0)] = True
        treated[[4 + i for i in s1]] = True  # 2 treated in each stratum
        brute.append(ybar[treated].mean() - ybar[~treated].mean())
    np.testing.assert_allclose(np.sort(rt.distribution), np.sort(brute), atol=1e-12)
    assert rt.p_value == pytest.approx(np.mean(np.abs(brute) >= abs(diff_means(d)) - 1e-12))
    three = cluster_data(G=8, seed=2)
    three["arm"] = np.repeat([0, 0, 0, 1, 1, 1, 2, 2], 4)
    rt3 = randomization_test(three, lambda x: float(x.loc[x.arm == 2, "y"].mean()), arm="arm",
                             cluster="provider")
    assert rt3.exact and rt3.n_assignments == math.factorial(8) // (6 * 6 * 2) == 560


def test_sampling_seed_determinism_and_p_formula():
    d = cluster_data(G=14, n_treated=7, seed=4, effect=0.5)  # C(14, 7) = 3432 assignments
    a = randomization_test(d, diff_means, arm="arm", cluster="provider", n_permutations=199,
                           seed=7)
    b = randomization_test(d, diff_means, arm="arm", cluster="provider", n_permutations=199,
                           seed=7)
    c = randomization_test(d, diff_means, arm="arm", cluster="provider", n_permutations=199,
                           seed=8)
    assert not a.exact and a.n_permutations == 199 and a.n_assignments == 3432 and a.seed == 7
    np.testing.assert_array_equal(a.distribution, b.distribution)
    assert a.p_value == b.p_value
    assert not np.array_equal(a.distribution, c.distribution)
    k = np.sum(np.abs(a.distribution) >= abs(a.observed) * (1 - 1e-10))
    assert a.p_value == pytest.approx((1 + k) / 200)
    assert 0 < a.mc_error < 0.05
    forced = randomization_test(cluster_data(seed=5), diff_means, arm="arm", cluster="provider",
                                exact=False, n_permutations=50, seed=1)
    assert not forced.exact and forced.n_permutations == 50
    with pytest.raises(ValueError):
        a.distribution[0] = 1.0  # read-only
    with pytest.raises(AttributeError):
        a.p_value = 0.0


@pytest.mark.slow
def test_p_values_uniform_under_the_null():
    # exact randomisation p values of a true null: P(p <= alpha) <= alpha, close to uniform
    reps = 120
    ps = np.array([
        randomization_test(cluster_data(G=8, per=2, seed=1000 + r), diff_means, arm="arm",
                           cluster="provider").p_value
        for r in range(reps)
    ])
    assert stats.kstest(ps, "uniform").pvalue > 0.001
    lo, hi = stats.binom.ppf([0.0005, 0.9995], reps, 0.1) / reps
    assert np.mean(ps <= 0.1) <= hi
    assert np.mean(ps <= 0.5) == pytest.approx(0.5, abs=0.15)


def test_studentized_statistic_and_result_interface():
    d = cluster_data(G=6, n_treated=3, effect=3.0, seed=9)

    def fit(x):
        return cv.fit_panel(x.assign(t=x.groupby("provider").cumcount()), "y",
                            regressors=["arm"], unit="provider", time="t", estimator="pooled",
                            cov_type="cr2", cluster="provider")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FewClustersWarning)
        rt = randomization_test(d, fit, arm="arm", cluster="provider", term="arm",
                                statistic="t")
        direct = fit(d).tidy().set_index("term").loc["arm"]
    assert rt.exact and rt.n_assignments == 20
    assert rt.observed == pytest.approx(direct["estimate"] / direct["std_error"])
    assert rt.std_error == pytest.approx(direct["std_error"])
    assert rt.p_value == pytest.approx(0.1)  # 2 / 20, the smallest possible
    assert tuple(rt.tidy().columns) == TIDY_COLUMNS and rt.tidy()["p_value"].iloc[0] == rt.p_value
    g = rt.glance().iloc[0]
    assert g["exact"] and g["n_permutations"] == 20 and g["cluster"] == "provider"
    s = rt.summary()
    assert "exact: all 20 assignments" in s and "'arm'" in s and "<table" in rt._repr_html_()
    assert isinstance(rt, RandomizationResult)


def test_inputs_are_not_modified():
    d = cluster_data(seed=2)
    before = d.copy()

    def rude(x):
        x["y"] = 0.0  # a fit that mutates its input must not reach the caller's frame
        return 1.0

    randomization_test(d, rude, arm="arm", cluster="provider")
    pd.testing.assert_frame_equal(d, before)
    randomization_test(d, diff_means, arm="arm", cluster="provider")
    pd.testing.assert_frame_equal(d, before)


def test_errors_are_clear():
    d = cluster_data(seed=1)
    bad = d.copy()
    bad.loc[bad.index[1], "arm"] = 1 - bad.loc[bad.index[1], "arm"]
    with pytest.raises(ModelSpecificationError, match=r"constant within the assignment cluster "
                       r"'provider'; it varies within 1 cluster\(s\): 0"):
        randomization_test(bad, diff_means, arm="arm", cluster="provider")
    with pytest.raises(ModelSpecificationError, match="columns not in data"):
        randomization_test(d, diff_means, arm="ta_model", cluster="provider")
    with pytest.raises(ModelSpecificationError, match="nothing to permute"):
        randomization_test(d.assign(arm=1), diff_means, arm="arm", cluster="provider")
    with pytest.raises(ModelSpecificationError, match="strata"):
        randomization_test(d.assign(block=np.arange(len(d)) % 2), diff_means, arm="arm",
                           cluster="provider", strata="block")
    with pytest.raises(ModelSpecificationError, match="missing values"):
        randomization_test(d.assign(provider=d["provider"].where(d.index > 0)), diff_means,
                           arm="arm", cluster="provider")
    with pytest.raises(ModelSpecificationError, match="statistic='t' needs"):
        randomization_test(d, diff_means, arm="arm", cluster="provider", statistic="t")
    for kw in ({"n_permutations": 0}, {"alternative": "both"}, {"statistic": "z"}):
        with pytest.raises(ModelSpecificationError):
            randomization_test(d, diff_means, arm="arm", cluster="provider", **kw)
    with pytest.raises(ModelSpecificationError, match="too many to enumerate"):
        randomization_test(cluster_data(G=40, per=1, n_treated=20), diff_means, arm="arm",
                           cluster="provider", exact=True)

    def two_terms(x):
        return cv.fit_panel(x.assign(t=x.groupby("provider").cumcount(), z=x["y"] ** 2), "y",
                            regressors=["arm", "z"], unit="provider", time="t", estimator="pooled")

    with pytest.raises(ModelSpecificationError, match="choose one with term="):
        randomization_test(d, two_terms, arm="arm", cluster="provider")
    with pytest.raises(ModelSpecificationError, match="term 'nope' is not"):
        randomization_test(d, two_terms, arm="arm", cluster="provider", term="nope")
    with pytest.raises(ModelSpecificationError, match="must return a number"):
        randomization_test(d, lambda x: "a", arm="arm", cluster="provider")
    calls = []

    def flaky(x):
        calls.append(1)
        if len(calls) > 3:
            raise np.linalg.LinAlgError("singular")
        return 1.0

    with pytest.raises(ModelSpecificationError, match="re-randomised assignment 3: LinAlgError"):
        randomization_test(d, flaky, arm="arm", cluster="provider")


def test_event_study_start_periods_permuted_with_never_treated():
    rng = np.random.default_rng(0)
    starts = np.array([3, 3, 4, 4, 5, 5, np.nan, np.nan])
    prov = np.repeat(np.arange(8), 4)
    rows = []
    for org, p in enumerate(prov):
        for t in range(1, 7):
            rows.append((org, p, t, starts[p], rng.normal() + 0.1 * t))
    d = pd.DataFrame(rows, columns=["org_id", "provider", "wave", "first_treated", "y"])

    def fit(x):
        return cv.fit_event_study(x, "y", cluster="provider").aggregate("simple")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FewClustersWarning)
        rt = randomization_test(d, fit, arm="first_treated", cluster="provider",
                                n_permutations=39, seed=2)
    # 8! / (2! 2! 2! 2!) = 2520 > 39: sampled; NaN (never treated) is permuted as a label
    assert not rt.exact and rt.n_assignments == 2520 and rt.n_permutations == 39
    assert rt.term == "ATT" and 1 / 40 <= rt.p_value <= 1
    assert rt.estimate == pytest.approx(fit(d).tidy()["estimate"].iloc[0])


def test_stepped_wedge_fit():
    rng = np.random.default_rng(2)
    rows = [(c, t, 1 + c % 4, rng.normal(0, 0.3) + 0.8 * (t >= 1 + c % 4))
            for c in range(8) for t in range(5)]
    sw = pd.DataFrame(rows, columns=["org_id", "wave", "start", "y"])
    rt = randomization_test(
        sw,
        lambda x: cv.fit_stepped_wedge(x, "y", first_treated="start", model="immediate"),
        arm="start", cluster="org_id", n_permutations=60, seed=3,
    )
    assert not rt.exact and rt.n_assignments == 2520 and rt.p_value < 0.1


@pytest.mark.slow
def test_growth_model_arm_by_time_coefficient():
    term = "time:ta_modelco_creation"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        panel = cv.load_example_study().panel(unit="organization")
        rg = randomization_test(panel, lambda x: cv.fit_growth(x, "research_use"),
                                arm="ta_model", cluster="provider_id", term=term,
                                n_permutations=9, seed=1)
        direct = cv.fit_growth(panel, "research_use").tidy().set_index("term")
    direct = direct.loc[term, "estimate"]
    assert rg.estimate == pytest.approx(direct) and rg.n_permutations == 9
    assert rg.p_value == pytest.approx((1 + np.sum(np.abs(rg.distribution) >= abs(rg.observed)
                                                   * (1 - 1e-10))) / 10)


def test_module_doctests():
    from coevidence.models.did import _small as _did_small
    from coevidence.models.did import event_study
    from coevidence.models.did import results as r_es
    from coevidence.models.stepped_wedge import model as stepped_wedge
    from coevidence.models.stepped_wedge import results as r_sw

    for mod in (randomization, event_study, stepped_wedge, r_es, r_sw, _did_small):
        res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        assert res.failed == 0, mod.__name__
