"""Result of :func:`coevidence.fit_stepped_wedge`."""

from __future__ import annotations

from typing import Any

import pandas as pd

from coevidence.results.base import (
    ResultBase,
    cov_type_code,
    df_method_code,
    freeze,
    glance_frame,
    tidy_frame,
)

__all__ = ["SteppedWedgeResult"]


class SteppedWedgeResult(ResultBase):
    """Stepped-wedge estimates: the treatment or exposure-time effects, TATE and LTE.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> import coevidence as cv
    >>> rng = np.random.default_rng(0)
    >>> rows = [(c, t, 1 + c % 4, rng.normal()) for c in range(12) for t in range(5)]
    >>> df = pd.DataFrame(rows, columns=["org_id", "wave", "start", "e"])
    >>> df["y"] = 1.0 * (df.wave >= df.start) + 0.3 * df.e
    >>> res = cv.fit_stepped_wedge(df, "y", first_treated="start", model="immediate")
    >>> res.tidy()["term"].tolist()
    ['treatment']
    """

    def __init__(
        self, *, table: pd.DataFrame, info: dict[str, Any], notes: tuple[str, ...] = ()
    ) -> None:
        self._table = table.reset_index(drop=True)
        self.info = freeze(dict(info))
        self.model = info["model"]
        self.notes = tuple(notes)
        self.conf_level = float(info.get("conf_level", 0.95))
        self.diagnostics = freeze({
            "notes": self.notes,
            **{k: v for k, v in info.items() if k.startswith(("sigma2", "icc", "converged", "n_"))},
        })
        self._freeze()

    @property
    def tate(self) -> float:
        """Time-averaged treatment effect (exposure-time model)."""
        return float(self._table.set_index("term").loc["TATE", "estimate"])

    @property
    def lte(self) -> float:
        """Long-term effect: the effect at the longest exposure time (exposure-time model)."""
        return float(self._table.set_index("term").loc["LTE", "estimate"])

    def tidy(self, conf_level: float | None = None) -> pd.DataFrame:
        """One row per effect (exposure times, TATE, LTE or the single treatment effect)."""
        t = self._table
        return tidy_frame(t["term"], t["estimate"], t["std_error"], t["df"].to_numpy(float),
                          self._level(conf_level))

    def glance(self) -> pd.DataFrame:
        """One row: the common keys (estimator ``"fixed_effects"`` or ``"reml"``, option codes),
        clusters as ``n_groups_<unit>``, then model, cluster effects, sizes and the
        covariance and df in words (``cov_type_description``, ``df_method_description``)."""
        i = self.info
        rest = {k: v for k, v in i.items()
                if not callable(v) and not isinstance(v, (list, dict, tuple))
                and k not in ("outcome", "cov_type", "df_method", "conf_level")}
        unit = i.get("unit", "cluster")
        return glance_frame(
            estimator="reml" if i.get("cluster_effects") == "random" else "fixed_effects",
            outcome=i.get("outcome"),
            nobs=i.get("n_obs"),
            cov_type=cov_type_code(i.get("cov_type")),
            df_method=df_method_code(i.get("df_method")),
            **{f"n_groups_{unit}": i.get("n_clusters")},
            **rest,
            cov_type_description=i.get("cov_type"),
            df_method_description=i.get("df_method"),
            conf_level=self.conf_level,
        )

    def summary(self) -> str:
        """Model, estimands, covariance and df method, and the table of effects."""
        i = self.info
        label = {
            "immediate": "Hussey-Hughes immediate treatment effect",
            "exposure_time": "exposure-time indicators (TATE = mean effect over exposure times, LTE = last)",
        }
        lines = [
            f"Stepped-wedge model: {label[self.model]}",
            f"Calendar time: period fixed effects    Cluster effects: {i['cluster_effects']}",
            f"Covariance: {i['cov_type']}",
            f"Degrees of freedom for tests: {i['df_method']}",
            (
                f"Observations: {i['n_obs']}    Clusters: {i['n_clusters']}    Periods: {i['n_periods']}    "
                f"Sequences: {i['n_sequences']}    Max exposure: {i['max_exposure']}"
            ),
        ]
        if "icc" in i:
            lines.append(
                f"Variance components: cluster {i['sigma2_cluster']:.4g}, residual {i['sigma2_residual']:.4g}, ICC {i['icc']:.3f}"
            )
        lines += ["", self.tidy().to_string(index=False, float_format=lambda v: f"{v:.6g}")]
        lines += [f"Note: {n}" for n in self.notes]
        return "\n".join(lines)
