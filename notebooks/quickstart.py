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
# # Quickstart: from a TA study to a tidy panel
#
# This notebook loads the bundled **synthetic** example study (12 TA providers, half giving
# *push* TA and half *co-creation* TA, about 15 organisations each, 6 waves), checks it,
# summarises it, builds the organisation × wave panel that every model in `coevidence`
# consumes, and plots the outcome means by arm and wave.

# %%
import matplotlib.pyplot as plt
import coevidence as cv

study = cv.load_example_study()
study

# %% [markdown]
# ## Validation
#
# A `Study` is validated when it is built: every record is checked field by field, and the
# cross-record rules (unknown ids, duplicate keys, dates out of order, an engagement whose TA
# model conflicts with its arm, observations outside the study window, encounters outside their
# engagement) run on the whole study. A study that exists is a valid study.
#
# To see what a problem looks like, break copies of two tables — an engagement with an
# organisation id that does not exist, and an encounter with a negative duration — and build
# the study again. Every problem is reported at once, with the table, row, column and value;
# the original study is untouched.

# %%
frames = study.to_frames()
engagements, encounters = frames["engagements"], frames["encounters"]
broken = {
    **frames,
    "engagements": engagements.assign(
        org_id=engagements["org_id"].mask(engagements.index == 0, "O9999")
    ),
    "encounters": encounters.assign(
        minutes=encounters["minutes"].mask(encounters.index == 3, -45.0)
    ),
}
try:
    cv.Study.from_frames(study.design, measures=study.measures.values(), **broken)
except cv.StudyValidationError as err:
    failures = err.failures
failures

# %%
assert {"engagements", "encounters"} <= set(failures["table"])
assert study == cv.Study.from_frames(study.design, measures=study.measures.values(), **frames)

# %% [markdown]
# ## Describe
#
# Units by arm and wave, attrition, and TA dose.

# %%
summary = study.describe()
for name, table in summary.items():
    print(f"--- {name}")
    print(table.head(12).to_string())

# %% [markdown]
# ## The tidy panel
#
# One row per organisation × wave, with the ids of every level, the TA model, calendar date,
# time since the start and end of TA, the phase (before / during / after TA), cumulative dose,
# and one column per outcome (organisation means of the respondents' scale scores; the `_n`
# columns count the respondents averaged).

# %%
panel = study.panel(unit="organization")
panel.head()

# %%
panel.dtypes

# %% [markdown]
# ## Outcome means by arm and wave

# %%
outcomes = [m for m in study.measures if m in panel.columns]
means = panel.groupby(["ta_model", "wave"], observed=True)[outcomes].mean().reset_index()
means

# %%
fig, axes = plt.subplots(1, len(outcomes), figsize=(5 * len(outcomes), 3.5), squeeze=False)
for ax, outcome in zip(axes[0], outcomes, strict=True):
    for model, rows in means.groupby("ta_model", observed=True):
        ax.plot(rows["wave"], rows[outcome], marker="o", label=str(model))
    ax.set_title(outcome.replace("_", " "))
    ax.set_xlabel("wave")
    ax.set_ylabel("mean score")
axes[0][0].legend(title="TA model")
fig.tight_layout()
fig

# %% [markdown]
# ## The report: the answer first
#
# `cv.report(study)` fits the design-aware growth model of each outcome and renders one page
# that opens with the answer: the primary estimand named (the arm × time slope difference),
# its estimate and interval, and one plain sentence with the test; then a forest plot of the
# contrasts, the units per level by arm, observed means with intervals clustered by provider,
# the model tables, and what could not be scored. In a notebook the page shows inline;
# `page.save("report.html")` (or `path=`) writes the self-contained file.

# %%
page = cv.report(study, outcomes=["research_use"])
assert "Primary estimand" in page
page
