"""Helpers for tests/models/mixed (a uniquely named module, not a conftest, to avoid clashes)."""


def simulate_panel(seed=0, n_prov=8, orgs=6, waves=5, slope_diff=0.15, sd_slope=0.1,
                   sd_prov=0.3, sd_org=0.6, sd_e=0.5, sd_prov_slope=0.0):
    """A small TA growth panel in the panel contract (providers randomised to push/co-creation)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_prov):
        arm = "co_creation" if p % 2 else "push"
        a_p = rng.normal(0, sd_prov)
        c_p = rng.normal(0, sd_prov_slope) if sd_prov_slope else 0.0
        for o in range(orgs):
            b0, b1 = rng.normal(0, sd_org), rng.normal(0, sd_slope)
            for w in range(waves):
                ys = w * 0.5 - 0.5  # engagement starts at wave 1
                ye = max(w * 0.5 - 1.5, 0.0)  # and ends at wave 3
                slope = 0.2 + (slope_diff if arm == "co_creation" else 0.0)
                y = 3 + a_p + b0 + (slope + b1 + c_p) * w + rng.normal(0, sd_e)
                rows.append({
                    "study_id": "sim", "provider_id": f"P{p:02d}", "org_id": f"P{p:02d}O{o}",
                    "engagement_id": f"E{p}{o}", "arm": arm, "ta_model": arm, "wave": w,
                    "time": float(w), "years_since_start": ys, "years_since_end": ye,
                    "phase": "before" if ys < 0 else ("after" if ye > 0 else "during"),
                    "research_use": y,
                })
    df = pd.DataFrame(rows)
    df["ta_model"] = pd.Categorical(df["ta_model"], ["push", "co_creation", "hybrid", "none"])
    return df
