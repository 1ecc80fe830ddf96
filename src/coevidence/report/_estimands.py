"""The primary estimand of a fitted result, stated in words (the report's headline).

* growth models (:class:`~coevidence.models.mixed.results.MixedResult` from
  :func:`coevidence.fit_growth`, and :class:`~coevidence.models.mixed.glmm_results.GlmmResult`
  from ``fit_growth(..., family=...)``): the arm x time slope difference, i.e. how much faster
  the outcome changed per wave in the arm than in the reference arm; the difference at the last
  wave is given as the secondary contrast (it is the baseline difference plus the slope
  difference accumulated over the waves, which is why the two can look different);
* event studies (:class:`~coevidence.models.did.results.EventStudyResult`): the overall average
  effect on the treated (``aggregate("simple")``), or with ``by=`` the difference of the first
  two levels' overall effects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from coevidence.report._format import Labels, decimals_for, fmt_df, fmt_num, fmt_p

__all__ = ["Estimate", "Headline", "headline"]


@dataclass(frozen=True)
class Estimate:
    """One contrast row: label, estimate, SE, statistic, df, p, CI."""

    label: str
    estimate: float
    std_error: float
    statistic: float
    df: float
    p_value: float
    conf_low: float
    conf_high: float
    scale: str = ""  # e.g. "points per wave"

    @classmethod
    def from_row(cls, label: str, row: pd.Series, scale: str = "") -> Estimate:
        def get(k: str) -> float:
            return float(row[k]) if k in row and pd.notna(row[k]) else math.nan

        return cls(label, get("estimate"), get("std_error"), get("statistic"),
                   get("df"), get("p_value"), get("conf_low"), get("conf_high"), scale)

    @property
    def decimals(self) -> int:
        return decimals_for(self.std_error)

    def ci_text(self, level: float) -> str:
        d = self.decimals
        return (f"{round(level * 100):g}% CI {fmt_num(self.conf_low, d)} to "
                f"{fmt_num(self.conf_high, d)}")

    def test_text(self) -> str:
        stat = "t" if np.isfinite(self.df) else "z"
        parts = [f"{stat} = {fmt_num(self.statistic, 2)}"]
        if np.isfinite(self.df):
            parts.append(f"df = {fmt_df(self.df)}")
        parts.append(f"p {fmt_p(self.p_value)}" if self.p_value < 0.001
                     else f"p = {fmt_p(self.p_value)}")
        return ", ".join(parts)

    @property
    def excludes_zero(self) -> bool:
        return bool(self.conf_low > 0 or self.conf_high < 0)


@dataclass(frozen=True)
class Headline:
    """What the report says first about one outcome."""

    outcome: str
    kind: str  # "growth", "glmm", "event_study"
    estimand: str  # the primary estimand, named in words
    primary: Estimate
    sentence: str
    conf_level: float
    secondary: tuple[Estimate, ...] = ()
    notes: tuple[str, ...] = ()
    groups: dict[str, int] = field(default_factory=dict)
    nobs: int | None = None


def _groups(result: Any) -> tuple[dict[str, int], int | None]:
    try:
        g = result.glance().iloc[0]
    except Exception:  # noqa: BLE001 - glance never raises by contract; be safe anyway
        return {}, None
    groups = {k.removeprefix("n_groups_"): int(v) for k, v in g.items()
              if str(k).startswith("n_groups_") and pd.notna(v)}
    nobs = int(g["nobs"]) if "nobs" in g and pd.notna(g["nobs"]) else None
    return groups, nobs


def _wave_of_time(data: Any, time: str) -> dict[float, str]:
    """Time value -> wave label, when ``data`` hold both columns one-to-one."""
    if not isinstance(data, pd.DataFrame) or not {time, "wave"} <= set(data.columns):
        return {}
    pairs = data[[time, "wave"]].drop_duplicates()
    if pairs[time].duplicated().any():
        return {}
    return {float(t): f"{w:g}" if isinstance(w, (int, float)) else str(w)
            for t, w in zip(pairs[time], pairs["wave"], strict=True)}


def _growth_headline(result: Any, outcome: str, labels: Labels,
                     panel: pd.DataFrame | None = None) -> Headline:
    from coevidence.models.mixed.contrasts import contrast

    spec = result.growth
    times = sorted(pd.unique(spec.frame[spec.time])) if hasattr(spec, "frame") else None
    if times is None:
        times = sorted(pd.unique(result.data[spec.time]))
    first, last = float(times[0]), float(times[-1])
    tab = contrast(result, at=[first, last])
    slope_rows = tab[tab["contrast"].astype(str).str.startswith("slope(")]
    level_rows = tab[~tab.index.isin(slope_rows.index)]
    arms = list(spec.arms)
    ref = spec.reference
    other = next((a for a in arms if a != ref), arms[-1])
    arm_s, ref_s = labels.arm(other), labels.arm_in_sentence(ref)
    out_s = labels.outcome_in_sentence(outcome)
    glmm = hasattr(result, "family")
    family = getattr(result, "family", "gaussian")
    if glmm:
        scale_name = {"binomial": "log-odds", "poisson": "log rate"}.get(family, "link scale")
        unit = f"on the {scale_name} scale per wave"
    else:
        unit = f"{labels.unit(outcome)} per wave"
    primary = Estimate.from_row(f"Slope difference per wave ({labels.arm(other)} − "
                                f"{labels.arm(ref)})", slope_rows.iloc[0], unit)
    lvl = result.conf_level
    d = primary.decimals
    mag = fmt_num(abs(primary.estimate), d)
    more = "more" if primary.estimate >= 0 else "less"
    verb = "raised" if primary.estimate >= 0 else "changed"
    if glmm:
        odds = "odds" if family == "binomial" else "rate"
        ratio = math.exp(primary.estimate)
        sentence = (
            f"{arm_s} {verb} the {scale_name} of {out_s} by {mag} per wave {more} than "
            f"{ref_s} ({primary.ci_text(lvl)}; {primary.test_text()}); that is, the {odds} "
            f"ratio between the arms grew by a factor of {ratio:.2f} per wave "
            f"({math.exp(primary.conf_low):.2f} to {math.exp(primary.conf_high):.2f}).")
    else:
        sentence = (
            f"{arm_s} {verb} {out_s} by {mag} {'points' if labels.unit(outcome) != 'units' else 'units'} "
            f"per wave {more} than {ref_s} ({primary.ci_text(lvl)}; {primary.test_text()}).")
    sentence += (" The interval excludes zero." if primary.excludes_zero
                 else " The interval includes zero: the data are consistent with no difference.")
    secondary = []
    waves = _wave_of_time(panel if panel is not None else getattr(result, "data", None), spec.time)
    for _, row in level_rows.iterrows():
        t = float(row["time"])
        which = "baseline" if t == first else "the last wave"
        when = f"wave {waves[t]}" if t in waves else f"{spec.time} = {t:g}"
        secondary.append(Estimate.from_row(
            f"Difference at {which} ({when})", row,
            "log-odds" if glmm and family == "binomial" else
            ("link scale" if glmm else labels.unit(outcome))))
    notes = []
    if len(secondary) == 2:
        notes.append(
            f"The difference at the last wave ({fmt_num(secondary[1].estimate, d)}) is the "
            f"baseline difference ({fmt_num(secondary[0].estimate, d)}) plus the slope "
            f"difference times {last - first:g} waves; it is a secondary contrast, with its own "
            f"(wider) interval.")
    design = getattr(spec, "design", None)
    if design is not None:
        notes.append(design.describe())
    groups, nobs = _groups(result)
    estimand = (f"the arm × time slope difference: how much faster {out_s} changed per wave "
                f"under {labels.arm_in_sentence(other)} than under {ref_s}"
                + (f" ({scale_name} scale)" if glmm else ""))
    return Headline(outcome, "glmm" if glmm else "growth", estimand, primary, sentence, lvl,
                    tuple(secondary), tuple(notes), groups, nobs)


def _event_headline(result: Any, outcome: str, labels: Labels) -> Headline:
    info = result.info
    by = info.get("by")
    out_s = labels.outcome_in_sentence(outcome)
    lvl = result.conf_level
    unit = labels.unit(outcome)
    if by:
        levels = list(dict.fromkeys(result.gt["level"].astype(str)))
        a, b = (levels + levels)[:2]
        if "co_creation" in levels and "push" in levels:
            a, b = "co_creation", "push"
        tab = result.compare(a, b).tidy()
        primary = Estimate.from_row(f"Overall effect difference ({labels.arm(a)} − "
                                    f"{labels.arm(b)})", tab.iloc[-1], unit)
        estimand = (f"the difference in the overall average effect on the treated between "
                    f"{labels.arm_in_sentence(a)} and {labels.arm_in_sentence(b)} organisations")
        d = primary.decimals
        sentence = (f"Starting {labels.arm_in_sentence(a)} changed {out_s} by "
                    f"{fmt_num(primary.estimate, d)} more than starting "
                    f"{labels.arm_in_sentence(b)} ({primary.ci_text(lvl)}; {primary.test_text()}).")
    else:
        tab = result.aggregate("simple").tidy()
        primary = Estimate.from_row("Overall average effect on the treated", tab.iloc[-1], unit)
        estimand = f"the overall average effect of starting TA on {out_s} among treated units"
        d = primary.decimals
        sentence = (f"Starting TA changed {out_s} by {fmt_num(primary.estimate, d)} on average "
                    f"among treated units ({primary.ci_text(lvl)}; {primary.test_text()}).")
    sentence += (" The interval excludes zero." if primary.excludes_zero
                 else " The interval includes zero: the data are consistent with no effect.")
    notes = []
    pre = result.pretrend_test()
    if pre and pre.get("p_value") is not None and np.isfinite(pre.get("p_value", np.nan)):
        notes.append(f"Pre-trend test of parallel trends: p {fmt_p(pre['p_value'])}"
                     if pre["p_value"] < 0.001 else
                     f"Pre-trend test of parallel trends: p = {fmt_p(pre['p_value'])}.")
    groups, nobs = _groups(result)
    return Headline(outcome, "event_study", estimand, primary, sentence, lvl, (), tuple(notes),
                    groups, nobs)


def result_outcome(result: Any) -> str | None:
    """The outcome column a result was fitted to."""
    spec = getattr(result, "growth", None)
    if spec is not None and getattr(spec, "outcome", None):
        return str(spec.outcome)
    for attr in ("outcome",):
        v = getattr(result, attr, None)
        if isinstance(v, str):
            return v
    info = getattr(result, "info", None)
    if info is not None and info.get("outcome"):
        return str(info["outcome"])
    try:
        v = result.glance()["outcome"].iloc[0]
        return None if pd.isna(v) else str(v)
    except Exception:  # noqa: BLE001
        return None


def headline(result: Any, outcome: str, labels: Labels,
             panel: pd.DataFrame | None = None) -> Headline:
    """The headline of one fitted result; ``TypeError`` for a result the report cannot state."""
    from coevidence.models.did.results import EventStudyResult

    if isinstance(result, EventStudyResult):
        return _event_headline(result, outcome, labels)
    if getattr(result, "growth", None) is not None:
        return _growth_headline(result, outcome, labels, panel)
    raise TypeError(
        f"the report states the primary estimand of growth models (fit_growth, also with "
        f"family=) and event studies (fit_event_study); got {type(result).__name__}"
        + (" without a growth specification (fit it with fit_growth, or call "
           "result.with_growth(...))" if hasattr(result, "with_growth") else ""))
