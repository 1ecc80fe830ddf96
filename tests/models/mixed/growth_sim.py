"""Null and alternative growth studies randomised by TA provider, simulated with numpy alone
(independently of coevidence's own simulator), for the calibration tests and benchmark."""

import numpy as np
import pandas as pd


def provider_randomised_panel(rng, n_prov=12, n_org=8, n_waves=6, slope_diff=0.0,
                              sd_prov=0.2, sd_prov_slope=0.05, sd_org=0.3, sd_org_slope=0.06,
                              sd_e=0.25, attrition=0.0):
    """``y = 3 + 0.05 t + slope_diff * cc * t + v0_p + v1_p t + u0_o + u1_o t + e``; half the
    providers (at random) are co-creation; ``attrition``: share of rows missing at random."""
    arm = rng.permutation(np.r_[np.zeros(n_prov // 2), np.ones(n_prov - n_prov // 2)])
    t = np.arange(n_waves, dtype=float)
    v0, v1 = rng.normal(0, sd_prov, n_prov), rng.normal(0, sd_prov_slope, n_prov)
    u0 = rng.normal(0, sd_org, (n_prov, n_org))
    u1 = rng.normal(0, sd_org_slope, (n_prov, n_org))
    y = (3 + (0.05 + slope_diff * arm[:, None, None] + v1[:, None, None] + u1[:, :, None]) * t
         + v0[:, None, None] + u0[:, :, None] + rng.normal(0, sd_e, (n_prov, n_org, n_waves)))
    p, o, w = (a.ravel() for a in np.meshgrid(np.arange(n_prov), np.arange(n_org), t,
                                              indexing="ij"))
    frame = pd.DataFrame({
        "provider_id": [f"P{i:02d}" for i in p],
        "org_id": [f"P{i:02d}-O{j}" for i, j in zip(p, o)],
        "time": w,
        "ta_model": np.where(arm[p] == 1, "co_creation", "push"),
        "research_use": y.ravel(),
    })
    if attrition:
        frame = frame[rng.random(len(frame)) >= attrition].reset_index(drop=True)
    return frame
