"""Study._repr_html_: the notebook view shows the design, the arms with units per level, and
the measures (kept here with the report's other HTML; it tests coevidence.data.study)."""

from __future__ import annotations

import html
import re
import warnings

import coevidence as cv


def test_study_html_repr_shows_design_arms_counts_and_measures():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = cv.load_example_study()
    page = study._repr_html_()
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())
    assert text.startswith(f"Study: {study.design.title}")
    assert "randomised by provider; 6 waves from 2024-01-15 to 2026-07-15" in text
    # one row per arm: label, TA model, providers, organisations, respondents
    assert "Push TA push 6 90 360" in text
    assert "Co-creation TA co_creation 6 90 360" in text
    for mid, m in study.measures.items():
        assert f"{mid} : {m.name} ({len(m.items)} items)" in text
    assert page.count("<tr>") == 1 + len(study.design.arms)
