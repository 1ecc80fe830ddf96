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
# # Research question 3: which features of co-creation shape its effects?
#
# Co-creation is not one thing: engagements differ in **dose** (hours of TA), in whether the
# problem was **diagnosed first**, in **relationship quality**, in the order of their
# components and in the agreements made. Within the co-creation arm these features are not
# randomised, so their associations with research use are observational; a simulation with
# known feature effects shows what the analysis recovers and where it is biased.
#
# This notebook
#
# 1. simulates a study in which the features vary within the co-creation arm, with chosen
#    effects on research use (`FeatureSpec`, `OutcomeSpec(dose_effect=, ...)`);
# 2. extracts the features from the engagement logs with `study.engagement_features()`
#    (definitions in the study-data guide) and joins them to the panel;
# 3. estimates the dose-response (within-organisation change in cumulative hours, split from
#    the between-organisation part with `within_between`), the diagnosis-first contrast and the
#    relationship-quality slope, and compares them with the truth;
# 4. shows a moderation view (Johnson-Neyman region of the dose slope over relationship quality).

# %%
import warnings

import numpy as np

import coevidence as cv
from coevidence.design.simulate import FeatureSpec, OutcomeSpec, SimulationSpec, true_effects

warnings.simplefilter("ignore", cv.CoevidenceWarning)

spec = SimulationSpec(
    n_providers=10, orgs_per_provider=12, respondents_per_org=4, n_waves=4,
    assignment="organization", responses="scores",
    features=FeatureSpec(p_diagnosis_first=0.5, random_sequence=True, p_agreement=0.6,
                         dose_sd=0.5, relationship_sd=0.4),
    outcomes=(OutcomeSpec(measure_id="research_use", intercept=2.0, arm_slope=0.05,
                          post_slope_change=0.0, dose_effect=0.02, relationship_effect=0.4,
                          diagnosis_first_effect=0.25, sd_provider=0.1, sd_org_intercept=0.2,
                          sd_org_slope=0.02, sd_respondent=0.25, sd_residual=0.25,
                          reliability=0.98, round_items=False),),
)
study = cv.simulate_study(spec, seed=11)
truth = true_effects(spec)["research_use"]["features"]
truth

# %% [markdown]
# ## Features from the logs
#
# One row per organisation × wave, keyed like the panel, so a plain merge joins them.

# %%
features = study.engagement_features(window_months=6)
panel = study.panel(unit="organization").merge(features, on=["org_id", "wave"], how="left")
cc = panel[panel["ta_model"] == "co_creation"].dropna(subset=["research_use"]).copy()
cc[["org_id", "wave", "dose_minutes_cum", "diagnosis_first", "relationship_mean",
    "components_introduced", "agreements_in_force"]].head()

# %% [markdown]
# ## Dose-response, diagnosis first and relationship quality
#
# Cumulative dose changes within an organisation over waves; its within-organisation part
# (`hours_within`) is protected from stable differences between organisations that both
# receive more TA and use more research. Diagnosis first and relationship quality are
# organisation-level features, compared between co-creation organisations after TA starts.

# %%
# organisation-level features: as recorded by the last wave (diagnosis first is missing
# before TA starts); relationship quality back on the rating scale's points
# (`relationship_mean` is rescaled to 0-1; the simulator rates on 1-5)
cc["hours"] = cc["dose_minutes_cum"] / 60
cc["diag_first"] = cc.groupby("org_id")["diagnosis_first"].transform("last").astype(float)
cc["rating"] = 1 + 4 * cc.groupby("org_id")["relationship_mean"].transform("last")
cc["rating_c"] = cc["rating"] - cc["rating"].mean()
cc["post"] = (cc["time"] >= 1).astype(float)
d = cv.within_between(cc, "hours", unit="org_id")
fit = cv.fit_mixed("research_use ~ C(wave) + hours_within + hours_between"
                   " + diag_first:post + rating_c:post + (1 | provider_id) + (1 | org_id)", d)
tab = fit.tidy().set_index("term")
rows = {"hours_within": "dose_effect_per_hour", "diag_first:post": "diagnosis_first_effect",
        "post:rating_c": "relationship_effect_per_point"}
tab.loc[list(rows), ["estimate", "std_error", "conf_low", "conf_high"]].assign(
    truth=[truth[v] for v in rows.values()]).round(3)

# %% [markdown]
# The dose and diagnosis-first effects are recovered (their intervals cover the truth). The
# relationship slope is **attenuated**: the mean of a few noisy ratings measures quality with
# reliability below 1, so its coefficient is shrunk towards 0 -- a measurement problem no
# regression fixes, and a reason to report the rating's reliability with the estimate.

# %% [markdown]
# ## Does the dose effect depend on relationship quality?
#
# A moderation view: the dose slope at each level of relationship quality, with the
# Johnson-Neyman region where it is significant (there is no true interaction here, so the
# slope should be flat in the rating).

# %%
mod = cv.fit_mixed("research_use ~ C(wave) + hours_within * rating_c + hours_between"
                   " + diag_first:post + (1 | provider_id) + (1 | org_id)", d)
jn = cv.johnson_neyman(mod, focal="hours_within", moderator="rating_c")
print(jn.describe())
ax = jn.plot()
ax.set_xlabel("relationship quality (centred)")
ax.set_ylabel("research use per hour of TA")

# %%
np.round(cv.simple_slopes(mod, focal="hours_within", moderator="rating_c",
                          at=[-0.5, 0.0, 0.5]).tidy()[["term", "estimate", "std_error",
                                                       "p_value"]], 4)
