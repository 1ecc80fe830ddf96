"""Two-stage growth analysis: one slope per assignment cluster, compared between arms.

Stage 1 fits an OLS line to each assignment cluster's mean trajectory (the mean of its units at
each wave); stage 2 compares the cluster slopes between arms with a two-sample t test (pooled
variance, df = clusters - arms) or Welch's test. It is the analysis behind the ``slopes_cra2``
power formula and the simplest analysis that is valid whatever the within-cluster structure,
because the cluster is the unit of analysis (Murray 1998, ch. 9; Hayes & Moulton 2017, ch. 9).

Examples
--------
>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(1)
>>> rows = [(f"P{p}", f"P{p}O{o}", t, "co_creation" if p % 2 else "push",
...          3 + 0.1 * t * (p % 2) + rng.normal(0, 0.3))
...         for p in range(8) for o in range(4) for t in range(4)]
>>> d = pd.DataFrame(rows, columns=["provider_id", "org_id", "time", "ta_model", "y"])
>>> res = fit_growth_two_stage(d, "y")
>>> res.tidy()["term"].tolist()
['slope: push', 'slope: co_creation', 'slope: co_creation - push']
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from coevidence.exceptions import ModelSpecificationError
from coevidence.results.base import ResultBase, _frame_html, glance_frame, tidy_frame

__all__ = ["TwoStageResult", "fit_growth_two_stage"]


class TwoStageResult(ResultBase):
    """Cluster slopes and their comparison between arms (from :func:`fit_growth_two_stage`).

    Attributes
    ----------
    cluster_slopes : DataFrame, one row per cluster: ``cluster``, ``arm``, ``slope``,
        ``n_waves``, ``n_units``.
    cluster : the cluster column; ``n_clusters``, ``n_obs``; ``conf_level``; ``welch``.

    Examples
    --------
    >>> res.glance()["n_clusters"].iloc[0]  # doctest: +SKIP
    8
    """

    def __init__(self, *, slopes, cluster, outcome, time, arm, reference, arms, welch,
                 conf_level, n_obs, dropped):
        self._slopes = slopes
        self.cluster: str = cluster
        self.outcome: str = outcome
        self.time: str = time
        self.arm: str = arm
        self.reference: str = reference
        self.arms: tuple[str, ...] = tuple(arms)
        self.welch: bool = bool(welch)
        self.conf_level: float = float(conf_level)
        self.n_obs: int = int(n_obs)
        self.n_clusters: int = len(slopes)
        self.dropped_clusters: tuple[str, ...] = tuple(dropped)
        self._freeze()

    @property
    def cluster_slopes(self) -> pd.DataFrame:
        """Stage 1: each cluster's OLS slope of its mean trajectory (a copy)."""
        return self._slopes.copy()

    def _rows(self):
        s = self._slopes
        names, est, se, df = [], [], [], []
        groups = {a: s.loc[s["arm"] == a, "slope"].to_numpy(float) for a in self.arms}
        k = len(self.arms)
        pooled_df = self.n_clusters - k
        pooled = sum((len(g) - 1) * g.var(ddof=1) for g in groups.values()) / pooled_df
        for a in self.arms:
            g = groups[a]
            names.append(f"slope: {a}")
            est.append(g.mean())
            if self.welch:
                se.append(np.sqrt(g.var(ddof=1) / len(g)))
                df.append(len(g) - 1.0)
            else:
                se.append(np.sqrt(pooled / len(g)))
                df.append(float(pooled_df))
        r = groups[self.reference]
        for a in self.arms:
            if a == self.reference:
                continue
            g = groups[a]
            names.append(f"slope: {a} - {self.reference}")
            est.append(g.mean() - r.mean())
            if self.welch:
                va, vr = g.var(ddof=1) / len(g), r.var(ddof=1) / len(r)
                se.append(np.sqrt(va + vr))
                df.append((va + vr) ** 2 / (va**2 / (len(g) - 1) + vr**2 / (len(r) - 1)))
            else:
                se.append(np.sqrt(pooled * (1 / len(g) + 1 / len(r))))
                df.append(float(pooled_df))
        return names, np.array(est), np.array(se), np.array(df)

    def tidy(self, conf_level: float | None = None) -> pd.DataFrame:
        """Slope per arm and the difference(s) from the reference arm, with t tests and CIs."""
        level = self._level(conf_level)
        names, est, se, df = self._rows()
        return tidy_frame(names, est, se, df, level)

    def glance(self) -> pd.DataFrame:
        """One row: the common keys (estimator ``"two_stage"``; ``cov_type``/``df_method``
        ``"pooled"``/``"residual"`` or ``"welch"``/``"welch"``), then clusters, test, level."""
        return glance_frame(
            estimator="two_stage", outcome=self.outcome, nobs=self.n_obs,
            cov_type="welch" if self.welch else "pooled",
            df_method="welch" if self.welch else "residual",
            **{f"n_groups_{self.cluster}": self.n_clusters,
            "n_obs": self.n_obs, "n_clusters": self.n_clusters, "cluster": self.cluster,
            "test": "welch" if self.welch else "pooled t", "conf_level": self.conf_level,
            "n_dropped_clusters": len(self.dropped_clusters)},
        )

    def summary(self) -> str:
        """Text: stage 1 counts, stage 2 tests."""
        lines = [
            f"Two-stage growth analysis of {self.outcome!r}: one slope of the mean trajectory "
            f"per {self.cluster!r} cluster ({self.n_clusters} clusters, {self.n_obs} rows), "
            f"compared between arms by a {'Welch' if self.welch else 'pooled'} t test.",
        ]
        if self.dropped_clusters:
            lines.append(f"Clusters without two distinct waves (no slope): "
                         f"{list(self.dropped_clusters)}")
        lines += ["", self.tidy().to_string(index=False, float_format=lambda v: f"{v:.5g}")]
        return "\n".join(lines)

    def _html(self) -> str:
        return ("<div class='coevidence-result'><strong>TwoStageResult</strong>"
                f"<p>{self.summary().splitlines()[0]}</p>{_frame_html(self.tidy())}</div>")


def fit_growth_two_stage(
    panel: pd.DataFrame,
    outcome: str,
    *,
    time: str = "time",
    arm: str = "ta_model",
    reference: str = "push",
    cluster: str = "provider_id",
    welch: bool = False,
    conf_level: float = 0.95,
) -> TwoStageResult:
    """Two-stage analysis of growth: cluster slopes of the mean trajectory, t test by arm.

    Parameters
    ----------
    panel : DataFrame
        One row per unit x wave (not modified); rows with a missing outcome or time are left
        out of the cluster means (their count is in ``n_obs``).
    outcome : str
    time : str, default "time"
    arm : str, default "ta_model"
        Must be constant within clusters.
    reference : str, default "push"
    cluster : str, default "provider_id"
        The assignment unit.
    welch : bool, default False
        Welch's unequal-variance test instead of the pooled t test (df = clusters - arms).
    conf_level : float, default 0.95

    Returns
    -------
    TwoStageResult

    Raises
    ------
    ModelSpecificationError
        Missing columns, an arm that varies within a cluster, fewer than two clusters with a
        slope in some arm.

    Examples
    --------
    >>> res = fit_growth_two_stage(d, "y", cluster="provider_id")  # doctest: +SKIP
    >>> res.tidy().iloc[-1]["term"]  # doctest: +SKIP
    'slope: co_creation - push'
    """
    from coevidence.models.mixed._design import constant_within

    if not isinstance(panel, pd.DataFrame):
        raise ModelSpecificationError(
            f"panel must be a pandas DataFrame, got {type(panel).__name__}"
        )
    if not 0 < conf_level < 1:
        raise ModelSpecificationError(f"conf_level must be in (0, 1), got {conf_level!r}")
    missing = [c for c in (outcome, time, arm, cluster) if c not in panel.columns]
    if missing:
        raise ModelSpecificationError(
            f"panel has no column(s) {missing}; it has {list(panel.columns)}"
        )
    roles = {"outcome": outcome, "time": time, "arm": arm, "cluster": cluster}
    if len(set(roles.values())) < 4:
        raise ModelSpecificationError(f"outcome, time, arm and cluster must be four different "
                                      f"columns, got {roles}")
    data = panel[[cluster, arm, time, outcome]].dropna()
    if not constant_within(data, arm, cluster):
        bad = data.groupby(cluster, observed=True)[arm].nunique()
        raise ModelSpecificationError(
            f"{arm!r} varies within cluster(s) {list(bad[bad > 1].index[:5])} of {cluster!r}; "
            f"the two-stage analysis needs the arm assigned at the cluster level"
        )
    data = data.assign(**{arm: data[arm].astype(str)})
    arms_present = sorted(data[arm].unique())
    if reference not in arms_present:
        raise ModelSpecificationError(
            f"reference arm {reference!r} has no rows; arms present: {arms_present}"
        )
    arms = (reference, *[a for a in arms_present if a != reference])
    means = data.groupby([cluster, arm, time], observed=True)[outcome].mean().reset_index()
    units = data.groupby(cluster, observed=True).size()
    rows, dropped = [], []
    for (c, a), g in means.groupby([cluster, arm], observed=True, sort=True):
        t = g[time].to_numpy(float)
        if len(np.unique(t)) < 2:
            dropped.append(str(c))
            continue
        slope = float(np.polyfit(t, g[outcome].to_numpy(float), 1)[0])
        rows.append({"cluster": c, "arm": a, "slope": slope, "n_waves": len(t),
                     "n_units": int(units.loc[c])})
    slopes = pd.DataFrame(rows, columns=["cluster", "arm", "slope", "n_waves", "n_units"])
    counts = slopes.groupby("arm").size().reindex(list(arms), fill_value=0)
    if (counts < 2).any():
        raise ModelSpecificationError(
            f"each arm needs at least two clusters with a slope; got {counts.to_dict()}"
        )
    return TwoStageResult(slopes=slopes, cluster=cluster, outcome=outcome, time=time, arm=arm,
                          reference=reference, arms=arms, welch=welch, conf_level=conf_level,
                          n_obs=len(data), dropped=dropped)
