# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A custom measure: define, register, score, check, analyse
#
# Your study administered an instrument that coevidence does not ship. This notebook
#
# 1. defines it as a `MeasureDefinition` (structure only: item codes, range, reverse keys,
#    subscales, scoring and missing-item rules) — including a subscale with a **custom scoring
#    function** — and registers it for the session;
# 2. runs the conformance check measure authors run in their own tests;
# 3. scores item responses (here simulated for the respondents of the bundled **synthetic**
#    example study), with every score that could not be computed reported;
# 4. checks reliability (alpha, omega, by wave and by arm) and whether the ratings may be
#    aggregated to the organisation (ICC(1), ICC(2), r_wg(j));
# 5. adds the responses to the study and asks `study.panel()` for the new outcome by id, then
#    fits a growth model comparing co-creation with push TA.

# %%
import numpy as np
import pandas as pd

import coevidence as cv
from coevidence.measures.reliability import reliability_by
from coevidence.schemas.measure import MeasureDefinition
from coevidence.testing import check_measure

# %% [markdown]
# ## 1. Define and register the measure
#
# A hypothetical "organisational evidence culture" scale: six items on a 1–5 agreement scale,
# two subscales (leadership, routines), item `rt3` worded negatively (reverse keyed), scores
# are item means, and a subscale is scored only when at least two of its three items are
# answered. A third scale, `top_box`, uses a custom function: the share of all six items rated
# 4 or 5 (a common way to report agreement).


# %%
def top_box_share(values: np.ndarray, items: tuple[str, ...]) -> np.ndarray:
    """Share of answered items rated 4 or 5 (values are already reverse keyed)."""
    answered = ~np.isnan(values)
    return (np.where(answered, values, 0) >= 4).sum(axis=1) / answered.sum(axis=1)


culture = MeasureDefinition(
    id="evidence_culture",
    name="Organisational evidence culture (example)",
    instrument="coevidence example",
    version="1",
    construct="capacity",
    level="person",
    response_min=1,
    response_max=5,
    items=("ld1", "ld2", "ld3", "rt1", "rt2", "rt3"),
    reverse_items=("rt3",),
    scoring="mean",
    scorer=top_box_share,
    subscales=[
        {"id": "leadership", "items": ["ld1", "ld2", "ld3"]},
        {"id": "routines", "items": ["rt1", "rt2", "rt3"]},
        {"id": "total", "scoring": "composite", "components": ["leadership", "routines"]},
        {"id": "top_box", "items": ["ld1", "ld2", "ld3", "rt1", "rt2", "rt3"],
         "scoring": "custom", "missing": {"min_answered": 4}},
    ],
    primary="total",
    missing={"min_answered": 2},
    aggregation={"method": "mean", "min_respondents": 2, "check_agreement": True},
    citation="Example measure for the coevidence documentation.",
    verified=None,  # user-defined: no claim either way
)
cv.register_measure(culture, replace=True)
cv.list_measures().tail(4)

# %% [markdown]
# The same definition can live in a YAML file (loaded with `yaml.safe_load`); a custom scorer
# is then named as `"module:function"` and imported only when scores are computed. Without the
# callable, the JSON form round-trips exactly:

# %%
print(culture.model_dump_json(indent=1, exclude={"scorer"})[:400], "...")

# %% [markdown]
# ## 2. Conformance check
#
# `check_measure` is what a measure author (or a plugin package) runs in its test-suite: JSON
# round trip, complete responses scored within each scale's theoretical range, invariance to
# row order and to which other respondents are scored in the same call, long = wide input,
# reverse keying twice = identity, a monotone missing-item rule, and bad responses rejected.

# %%
checks = check_measure(culture)
assert checks["passed"].all()
checks

# %% [markdown]
# ## 3. Item responses and scores
#
# We simulate responses for the respondents of the example study (4 per organisation, 6
# waves): an organisation effect, a respondent effect, and a culture that grows faster under
# co-creation TA than under push TA. The item `rt3` is negatively worded, so its raw answers run
# the other way; about 4% of answers are missing.

# %%
study = cv.load_example_study()
units = study.panel(unit="respondent")[["respondent_id", "org_id", "ta_model", "wave", "time"]]
rng = np.random.default_rng(2026)
org_effect = pd.Series(rng.normal(0, 0.45, units["org_id"].nunique()),
                       index=units["org_id"].unique())
person_effect = pd.Series(rng.normal(0, 0.35, units["respondent_id"].nunique()),
                          index=units["respondent_id"].unique())
slope = np.where(units["ta_model"].astype(str) == "co_creation", 0.12, 0.05)
latent = (2.9 + units["org_id"].map(org_effect).to_numpy()
          + units["respondent_id"].map(person_effect).to_numpy() + slope * units["time"])

rows = []
for code in culture.items:
    raw = latent + rng.normal(0, 0.6, len(units))
    if code in culture.reverse_items:
        raw = 6 - raw  # negatively worded item
    value = np.clip(np.round(raw), 1, 5)
    value[rng.random(len(units)) < 0.04] = np.nan
    rows.append(units[["respondent_id", "org_id", "wave"]].assign(item=code, value=value))
responses = pd.concat(rows, ignore_index=True).dropna(subset=["value"])
responses.head()

# %% [markdown]
# Scoring validates every cell first (an out-of-range value, an unknown item code or a string
# would be listed in one `MeasureError`), then applies reverse keys, the scoring rules and the
# missing-item rule. Scores that cannot be computed stay as NaN with a reason, are counted in
# `result.report`, and a `MissingDataWarning` gives the count.

# %%
result = cv.score(responses, "evidence_culture", keep=["org_id"])
result.report

# %%
result.scores.head()

# %%
result.long().query("not scored").head()

# %% [markdown]
# A bad cell is reported, never silently dropped:

# %%
bad = responses.head(20).copy()
bad.loc[bad.index[0], "value"] = 7
bad.loc[bad.index[1], "item"] = "ld9"
try:
    cv.score(bad, culture, keep=["org_id"])
except cv.CoevidenceError as err:
    print(err)

# %% [markdown]
# ## 4. Reliability and aggregation
#
# Cronbach's alpha with its Feldt interval, McDonald's omega and item statistics for the six
# items (wide, `rt3` reverse keyed through the response range) at the first wave; then alpha
# by wave and by arm.

# %%
wide = (responses.pivot_table(index=["respondent_id", "org_id", "wave"], columns="item",
                              values="value")
        .reset_index()
        .merge(units[["respondent_id", "wave", "ta_model"]], on=["respondent_id", "wave"]))
items = list(culture.items)
first = wide[wide["wave"] == 1]
rel = cv.reliability(first[items].dropna(), reverse=["rt3"], min_value=1, max_value=5)
print(rel.summary())

# %%
by_wave = reliability_by(wide[[*items, "wave"]].dropna(), "wave", reverse=["rt3"],
                         min_value=1, max_value=5)
by_arm = reliability_by(wide[[*items, "ta_model"]].dropna().astype({"ta_model": str}),
                        "ta_model", reverse=["rt3"], min_value=1, max_value=5)
by_wave.round(3), by_arm.round(3)

# %% [markdown]
# Before reporting organisation means, check that members agree (r_wg(j) on the leadership
# items) and that organisations differ reliably (ICC(1), ICC(2) of the scale score):

# %%
agr = cv.agreement(first[["org_id", "ld1", "ld2", "ld3"]].dropna(), unit="org_id",
                   measure=culture)
print(agr.summary())
agr.per_unit.head()

# %% [markdown]
# ## 5. The new outcome in the study panel, and a growth model
#
# Add the responses to the study's item-response table and declare the measure; the panel can
# then ask for `"evidence_culture"` (the primary scale) or `"evidence_culture.leadership"` by
# id, exactly like the built-in outcomes.

# %%
frames = study.to_frames()
frames["responses"] = pd.concat(
    [frames["responses"],
     responses.drop(columns="org_id").assign(measure_id="evidence_culture")],
    ignore_index=True,
)
study2 = cv.Study.from_frames(study.design, measures=[*study.measures.values(), culture],
                              **frames)
panel = study2.panel(unit="respondent",
                     outcomes=["evidence_culture", "evidence_culture.leadership"])
panel[["respondent_id", "org_id", "ta_model", "wave", "time", "evidence_culture"]].head()

# %% [markdown]
# Growth model: repeated measures within respondents within organisations (random intercepts),
# a common slope per arm, and push TA as the reference arm, so `time:ta_model[co_creation]` is
# the difference in per-wave growth between co-creation and push (simulated: 0.07 per
# wave).

# %%
data = panel.dropna(subset=["evidence_culture"]).assign(
    ta_model=lambda d: pd.Categorical(d["ta_model"].astype(str),
                                      categories=["push", "co_creation"])
)
fit = cv.fit_mixed(
    "evidence_culture ~ time * ta_model + (1 | org_id) + (1 | respondent_id)", data
)
print(fit.summary())

# %%
slope_diff = fit.tidy().set_index("term").filter(like="time:", axis=0)
assert slope_diff["conf_low"].iloc[0] < 0.07 < slope_diff["conf_high"].iloc[0]  # simulated value
slope_diff
