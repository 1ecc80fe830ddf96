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
# # Volunteer sites and dropout: weights, imputation and a tipping point
#
# Many TA studies cannot randomise: organisations *choose* co-creation, and those that choose
# it differ at baseline. Here the organisations with more baseline capacity are both more
# likely to choose co-creation and on a steeper research-use trajectory, so the plain growth
# model credits co-creation with growth it did not cause. Organisations also drop out, more
# often when their last score was low (missing at random given what was observed).
#
# With known truth (the co-creation slope difference is 0.15 points per wave) this notebook
#
# 1. fits the naive growth model;
# 2. builds organisation propensity weights from baseline capacity, checks their balance, and
#    fits the weighted growth model (pseudo-likelihood, CR2 by provider);
# 3. imputes the dropouts with a multilevel chained-equations model, pools the weighted fits
#    with Rubin's rules;
# 4. asks how far from missing-at-random the dropouts would have to be to change the answer.

# %%
import warnings

import numpy as np
import pandas as pd

import coevidence as cv

warnings.simplefilter("ignore", cv.CoevidenceWarning)
TAU = 0.15

rng = np.random.default_rng(2026)
G, P, W = 240, 12, 5  # organisations, providers, waves
capacity = rng.normal(size=G)
arm = np.where(rng.random(G) < 1 / (1 + np.exp(-1.2 * capacity)), "co_creation", "push")
org, wave = np.repeat(np.arange(G), W), np.tile(np.arange(W), G)
prov = (np.arange(G) % P)[org]
slope = 0.1 + 0.15 * capacity + TAU * (arm == "co_creation")
y = (rng.normal(0, 0.3, P)[prov] + 2.5 + 0.4 * capacity[org] + rng.normal(0, 0.6, G)[org]
     + slope[org] * wave + rng.normal(0, 0.5, G * W))
panel = pd.DataFrame({"provider_id": prov, "org_id": org, "wave": wave, "arm": arm[org],
                      "capacity_w0": capacity[org], "research_use": y})
panel["arm"] = pd.Categorical(panel["arm"], categories=["push", "co_creation"])
# dropout after wave 1: more likely after a low score (MAR)
Y = y.reshape(G, W)
gone = np.zeros(G, bool)
observed = np.ones((G, W), bool)
for t in range(2, W):
    gone |= rng.random(G) < 0.25 / (1 + np.exp(2.0 * (Y[:, t - 1] - 2.5)))
    observed[:, t] = ~gone
panel.loc[~observed.ravel(), "research_use"] = np.nan
print(f"{(~observed[:, -1]).mean():.0%} of organisations gone by the last wave")

# %% [markdown]
# ## 1. The naive growth model

# %%
naive = cv.fit_growth(panel, "research_use", time="wave", arm="arm",
                      levels=["org_id", "provider_id"])
naive.tidy().set_index("term").loc[["wave:armco_creation"]]

# %% [markdown]
# ## 2. Propensity weights and balance
#
# Baseline capacity is constant within an organisation, so the propensity model has one row
# per organisation (`unit="org_id"`). Overlap weights are bounded and balance the mean of every
# covariate in the model exactly.

# %%
pw = cv.propensity_weights(panel, treatment="arm", treated="co_creation", unit="org_id",
                           covariates=["capacity_w0"], estimand="overlap")
tab = pw.balance()
tab

# %%
cv.love_plot(tab);

# %% [markdown]
# The weights are organisation weights (one per organisation, on each of its waves): in the
# growth model each organisation counts as `w` copies of itself, and the fixed effects describe
# the weighted (overlap) population. Inference is CR2 by provider with Bell-McCaffrey df.

# %%
weighted = cv.fit_growth(panel, "research_use", time="wave", arm="arm",
                         levels=["org_id", "provider_id"], weights=pw.weights)
print(weighted.weights_info.describe())
weighted.tidy().set_index("term").loc[["wave:armco_creation"]]

# %% [markdown]
# ## 3. Imputation of the dropouts, then the weighted model in each completed data set
#
# Dropout here is missing at random given the earlier scores, and the growth model fitted by
# REML already uses every observed wave, so it is valid without imputation; imputation is what
# rescues the analysis when dropout depends on variables outside the analysis model, and it is
# shown here as the workflow and a check. The imputation model must be at least as rich as the
# analysis model: imputing the long panel with a random organisation intercept only would
# flatten the dropouts' trajectories. Imputing the *wide* table (one row per organisation, one
# column per wave, each wave predicted from all the others, by arm) keeps every
# organisation's trajectory.

# %%
ids = ["org_id", "provider_id", "arm", "capacity_w0"]
wide = panel.pivot(index=ids, columns="wave", values="research_use")
wide.columns = [f"y{t}" for t in wide.columns]
wide = wide.reset_index()
imp = cv.impute(wide, m=5, seed=1, by="arm", variables=[f"y{t}" for t in range(W)],
                predictors=["capacity_w0"])


def weighted_growth(completed):
    long = completed.melt(id_vars=ids, var_name="wave", value_name="research_use")
    long["wave"] = long["wave"].str[1:].astype(int)
    return cv.fit_growth(long, "research_use", time="wave", arm="arm",
                         levels=["org_id", "provider_id"], weights=pw.for_data(long))


pooled = imp.fit(weighted_growth).pool()
pooled.tidy(pooling=True).set_index("term").loc[["wave:armco_creation"]]

# %% [markdown]
# ## 4. Tipping point: dropouts doing worse than MAR predicts
#
# Shift the imputed last-wave scores of the co-creation organisations down by `delta` and
# refit: how much worse than predicted would the dropouts have to be for the slope difference
# to lose significance?

# %%
tp = cv.tipping_point(imp, delta=[0, -1.0, -2.0, -3.0], variable=f"y{W - 1}",
                      fit=weighted_growth, term="wave:armco_creation",
                      where=(wide["arm"] == "co_creation").to_numpy())
print("tipping point:", tp.attrs["tipping_point"])
tp[["delta", "estimate", "conf_low", "conf_high", "p_value"]]

# %%
compare = pd.DataFrame({
    "analysis": ["naive", "overlap weights", "weights + imputation"],
    "estimate": [r.tidy().set_index("term").loc["wave:armco_creation", "estimate"]
                 for r in (naive, weighted, pooled)],
})
compare["truth"] = TAU
compare.round(3)
