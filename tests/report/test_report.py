"""coevidence.report: the headline answers the question, numbers read like a paper, labels are
human, observed-mean intervals respect the clustering, and the demo fails cleanly on bad data."""

from __future__ import annotations

import html
import re
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

import coevidence as cv
from coevidence.report._estimands import headline
from coevidence.report._figures import clustered_means
from coevidence.report._format import Labels, decimals_for, fmt_df, fmt_num, fmt_p


def page_text(page: str) -> str:
    """Visible text of a page (tags and embedded images dropped)."""
    page = re.sub(r'src="data:[^"]+"', "", page)
    page = re.sub(r"<style>.*?</style>", " ", page, flags=re.DOTALL)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


@pytest.fixture(scope="module")
def study():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cv.load_example_study()


@pytest.fixture(scope="module")
def panel(study):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = study.panel(unit="organization")
    return p.assign(high_use=(p["research_use"] > 3).astype(float).where(p["research_use"].notna()))


@pytest.fixture(scope="module")
def fits(panel):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "research_use": cv.fit_growth(panel, "research_use"),
            "high_use": cv.fit_growth(panel, "high_use", family="binomial"),
        }


def test_numbers_read_like_a_paper():
    assert fmt_p(0.0001) == "< 0.001"
    assert fmt_p(0.0042) == "0.004"
    assert fmt_p(0.35) == "0.35"
    assert fmt_df(9.9999991) == "10"
    assert fmt_df(178.0) == "178"
    assert fmt_df(12.34) == "12.3"
    assert fmt_df(float("inf")) == "∞"
    assert fmt_num(-0.0001, 2) == "0.00"  # no "-0.00"
    assert fmt_num(-0.25, 2) == "−0.25"
    assert decimals_for(0.027) == 2 and decimals_for(0.0027) == 3 and decimals_for(5.0) == 2


def test_labels_come_from_the_study(study):
    labels = Labels.from_study(study)
    assert labels.outcome("research_use") == study.measures["research_use"].name
    assert labels.arm("co_creation") == "Co-creation TA"
    assert labels.arm_in_sentence("push") == "push TA"
    assert labels.term("time:ta_modelco_creation") == "Time (waves) × Co-creation TA"
    assert labels.term("(Intercept)") == "Intercept"
    assert labels.unit("research_use") == "points (on its 1–5 scale)"


def test_clustered_means_use_the_cluster_robust_standard_error():
    import statsmodels.api as sm

    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(6), 15)
    y = rng.normal(size=6)[g] + rng.normal(scale=0.3, size=g.size)
    data = pd.DataFrame({"ta_model": "push", "wave": 1, "provider_id": g, "y": y})
    out = clustered_means(data, "y").iloc[0]
    ols = sm.OLS(y, np.ones_like(y)).fit(cov_type="cluster",
                                         cov_kwds={"groups": g, "use_correction": False})
    assert out["mean"] == pytest.approx(y.mean())
    assert out["std_error"] == pytest.approx(float(ols.bse[0]) * np.sqrt(6 / 5))
    assert out["df"] == 5 and out["n_clusters"] == 6 and out["n"] == 90
    naive = y.std(ddof=1) / np.sqrt(y.size)
    assert out["std_error"] > 2 * naive  # strong clustering: far wider than the naive SE


def test_growth_headline_states_the_slope_difference(study, panel, fits):
    h = headline(fits["research_use"], "research_use", Labels.from_study(study), panel)
    row = cv.contrast(fits["research_use"]).iloc[-1]
    assert h.primary.estimate == pytest.approx(row["estimate"])
    assert "slope difference" in h.estimand and "per wave" in h.estimand
    assert h.sentence.startswith("Co-creation TA raised simulated research use scale by 0.11 "
                                 "points per wave more than push TA (95% CI 0.05 to 0.17; ")
    assert "df = 10, p = 0.002" in h.sentence
    assert [s.label for s in h.secondary] == ["Difference at baseline (wave 1)",
                                              "Difference at the last wave (wave 6)"]
    assert h.groups == {"org_id": 180, "provider_id": 12} and h.nobs == 1080


def test_glmm_headline_is_on_the_log_odds_scale(study, panel, fits):
    h = headline(fits["high_use"], "high_use", Labels.from_study(study), panel)
    assert h.kind == "glmm"
    assert "log-odds" in h.sentence and "odds ratio" in h.sentence
    assert h.primary.estimate == pytest.approx(fits["high_use"].tidy()["estimate"].iloc[-1])


def test_event_study_headline_is_the_overall_att():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        es = cv.fit_event_study(cv.load_mpdta(), "lemp", unit="countyreal", time="year",
                                first_treated="first.treat")
    h = headline(es, "lemp", Labels())
    overall = es.aggregate("simple").tidy().iloc[-1]
    assert h.primary.estimate == pytest.approx(overall["estimate"])
    assert h.sentence.startswith("Starting TA changed lemp by −0.04 on average")
    assert "p < 0.001" in h.sentence


def test_report_with_fitted_models(study, fits, tmp_path):
    page = cv.report(study, models=fits, path=tmp_path)
    assert (tmp_path / "report.html").read_text(encoding="utf-8") == page
    text = page_text(page)
    assert text.count("Primary estimand:") == 2
    assert "Co-creation TA raised simulated research use scale by 0.11 points per wave" in text
    # human labels, paper numbers
    for raw in ("ta_modelco_creation", "std_error", "p_value", "0.000 ", "10.000", "178.000"):
        assert raw not in text, raw
    assert "< 0.001" in text
    assert "Time (waves) × Co-creation TA" in text
    # counts per level and arm, clustered observed means, the forest plot, unscored scores
    assert re.search(r"Co-creation TA 6 90 360 90 Push TA 6 90 360 90 Total 12 180 720 180", text)
    assert "95% CI clustered by providers" in text
    assert 'alt="Forest plot of the contrasts across outcomes"' in page
    assert "16 of 7,954 respondent-wave scale scores could not be computed" in text
    assert page.count("data:image/png;base64,") == 5  # forest + 2 x (observed, trajectories)


def test_report_accepts_a_sequence_and_refuses_what_it_cannot_state(study, fits, panel):
    page = cv.report(study, models=[fits["research_use"]])
    assert page_text(page).count("Primary estimand:") == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pooled = cv.fit_panel(panel, "research_use", regressors=["cum_minutes"], unit="org_id",
                              time="wave")
    with pytest.raises(TypeError, match="growth models"):
        cv.report(study, models={"research_use": pooled})
    with pytest.raises(TypeError, match="default fits only"):
        cv.report(study, models=fits, engine="statsmodels")


def test_report_fits_the_default_growth_model(study, tmp_path):
    page = cv.report(study, outcomes=["capacity"])
    text = page_text(page)
    assert text.count("Primary estimand:") == 1
    assert "(1 + time | provider_id)" in text  # design-aware: slope random at the provider level
    assert page._repr_html_().startswith("<iframe srcdoc=")


def test_report_is_callable_whichever_object_the_name_is_bound_to():
    code = ("import coevidence.report.html, coevidence as cv; "
            "print(callable(cv.report), cv.report is cv.report.report, "
            "list(__import__('inspect').signature(cv.report).parameters)[:3] == "
            "['study', 'models', 'path'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True", "True"]


def test_demo_on_bad_data_fails_cleanly(study, tmp_path, capsys):
    from coevidence.cli import main

    folder = tmp_path / "bad"
    study.write(folder)
    orgs = folder / "organizations.csv"
    lines = orgs.read_text().splitlines()
    lines[1] = "," + lines[1].split(",", 1)[1]  # first organisation without an id
    orgs.write_text("\n".join(lines) + "\n")
    assert main(["demo", "--study", str(folder), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("INVALID:") and "Traceback" not in err
    assert not (tmp_path / "out" / "report.html").exists()
    (folder / "datapackage.json").write_text('{"broken')
    assert main(["demo", "--study", str(folder), "--out", str(tmp_path / "out")]) == 1
    assert "not valid JSON" in capsys.readouterr().err
    assert main(["demo", "--study", str(tmp_path / "nowhere")]) == 2
    assert "no study at" in capsys.readouterr().err
