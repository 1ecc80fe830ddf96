"""Simulated staggered rollout with effects that grow with exposure (shared by the panel tests)."""

import numpy as np
import pandas as pd


def simulate_staggered(
    n_units=400,
    periods=8,
    cohorts=(3, 5, 7),
    never_share=0.15,
    slope=0.3,
    noise=0.2,
    seed=0,
    by_effect=None,
):
    """Long panel: y = unit + period + slope * (t - g + 1) * 1{t >= g} + noise.

    ``by_effect`` = {"push": s1, "co_creation": s2} gives each treated unit a TA model with its own
    slope (never-treated units get "none"). Returns the frame and the true simple ATT (did's
    weights: cohort size per post-treatment cell).
    """
    rng = np.random.default_rng(seed)
    n_never = round(n_units * never_share)
    G = np.r_[np.full(n_never, np.inf), rng.choice(cohorts, size=n_units - n_never)]
    models = np.full(n_units, "none", dtype=object)
    slopes = np.full(n_units, slope)
    if by_effect:
        names = list(by_effect)
        treated = np.isfinite(G)
        models[treated] = rng.choice(names, size=treated.sum())
        slopes = np.array([by_effect.get(m, 0.0) for m in models])
    t = np.arange(1, periods + 1)
    unit_fe = rng.normal(0, 1, n_units) + 0.3 * np.where(
        np.isfinite(G), G, periods + 2
    )  # selection on timing
    time_fe = 0.2 * t + rng.normal(0, 0.2, periods)
    uu, tt = np.meshgrid(np.arange(n_units), t, indexing="ij")
    uu, tt = uu.ravel(), tt.ravel()
    g = G[uu]
    exposure = np.where(np.isfinite(g), tt - np.where(np.isfinite(g), g, 0) + 1, 0.0)
    tau = np.where(tt >= g, slopes[uu] * exposure, 0.0)
    y = unit_fe[uu] + time_fe[tt - 1] + tau + rng.normal(0, noise, len(uu))
    df = pd.DataFrame(
        {
            "org_id": uu,
            "wave": tt,
            "first_treated": np.where(np.isfinite(g), g, np.nan),
            "ta_model": models[uu],
            "research_use": y,
            "tau": tau,
        }
    )
    post = df[df["wave"] >= df["first_treated"]]
    true_simple = post["tau"].mean()  # cohort-size weighted over post cells = mean over treated obs
    return df, true_simple
