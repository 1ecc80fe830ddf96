"""The simulated TA growth design used by bench_mixed.py (importable, no side effects).

Waves (0..4) in organisations in 12 TA providers; each provider runs one TA model (push,
co_creation, hybrid: 4 providers each); about 10% of org-waves missing at random; correlated
org-level intercept and slope, a provider intercept.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

N_PROVIDERS = 12
WAVES = 5
MODELS = ("push", "co_creation", "hybrid")


def simulate(n_rows: int, seed: int = 2026) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_org = int(np.ceil(n_rows / (WAVES * 0.9))) + 1
    prov_of_org = rng.integers(0, N_PROVIDERS, n_org)
    model_of_prov = np.array([MODELS[p % 3] for p in range(N_PROVIDERS)])
    org = np.repeat(np.arange(n_org), WAVES)
    time = np.tile(np.arange(WAVES, dtype=float), n_org)
    keep = rng.random(len(org)) > 0.1
    org, time = org[keep][:n_rows], time[keep][:n_rows]
    prov = prov_of_org[org]
    model = model_of_prov[prov]
    b = rng.multivariate_normal([0.0, 0.0], [[1.0, -0.12], [-0.12, 0.09]], n_org)
    a = rng.normal(0.0, 0.5, N_PROVIDERS)
    slope = 0.3 + np.where(model == "co_creation", 0.15, np.where(model == "hybrid", 0.05, 0.0))
    y = 3.0 + a[prov] + b[org, 0] + (slope + b[org, 1]) * time + rng.normal(0.0, 0.6, len(org))
    return pd.DataFrame(
        {
            "y": y,
            "time": time,
            "ta_model": pd.Categorical(model, categories=list(MODELS)),
            "org_id": org,
            "provider_id": prov,
        }
    )


FORMULAS = {
    2: "y ~ time * ta_model + (time | org_id)",
    3: "y ~ time * ta_model + (time | org_id) + (1 | provider_id)",
}
