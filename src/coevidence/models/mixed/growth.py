"""``fit_growth``: the domain front door for multilevel growth models of a study panel.

Builds the lme4 formula from the panel contract (one row per unit x wave: ``time``,
``ta_model``, ids, ``years_since_start``/``years_since_end``) and fits it with
:func:`~coevidence.models.mixed.api.fit_mixed`.

Examples
--------
>>> import coevidence as cv
>>> from coevidence.models.mixed.growth import growth_formula
>>> growth_formula("research_use", levels=["provider_id", "org_id"], assigned_at="provider_id")
'research_use ~ time * ta_model + (1 + time | org_id) + (1 + time | provider_id)'

The random structure follows the design: the slope varies at every level from the repeated unit
(the last of ``levels``) up to the level at which the arm is assigned, so the arm x time
contrast is tested against the between-cluster slope variance with df near the number of
assignment clusters (see ``docs/models/design_aware.md``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from coevidence.exceptions import ModelSpecificationError, OptionError
from coevidence.models._shared.options import keyword_only
from coevidence.models.mixed._pieces import PIECES, add_pieces, check_pieces
from coevidence.models.mixed.results import MixedResult

__all__ = ["DesignInfo", "GrowthSpec", "assignment_level", "fit_growth", "growth_formula"]

TIME_CODINGS = ("linear", "categorical", "piecewise")


SLOPE_OPTIONS = (True, False, "correlated", "uncorrelated")
#: random-slope form at levels above the repeated unit, up to the assignment level
UPPER_SLOPE_DEFAULT = "correlated"
#: panel columns for a Study design's randomisation unit
_UNIT_COLUMNS = {"provider": "provider_id", "organization": "org_id", "respondent": "respondent_id"}


@dataclass(frozen=True)
class DesignInfo:
    """Where the arm is assigned and the random structure and df that follow from it.

    Attributes
    ----------
    assignment_level : str or None
        The grouping column at which the arm is assigned (``"provider_id"``); ``None`` when the
        arm varies within the repeated unit.
    n_clusters : int
        Number of assignment clusters (0 when ``assignment_level`` is None).
    source : {"argument", "study design", "data"}
        Where the level came from.
    reason : str
        Why this level, in words.
    random_slopes : tuple of (level, form)
        The slope's random component per level (``True``/``"correlated"``, ``"uncorrelated"``,
        ``False``), from the repeated unit up.
    random_effects : str
        The random part of the fitted formula.
    df_bound : float or None
        Between-cluster df ``G - q`` for the terms assigned at ``assignment_level``.
    df_bounded : bool
        True when those terms' df were bounded by ``df_bound`` (see ``between_df``).
    slope_at_boundary : bool
        The slope variance at the assignment level was estimated at zero.
    notes : tuple of str

    Examples
    --------
    >>> DesignInfo("provider_id", 12, "data", "arm constant within provider_id",
    ...            (("org_id", True), ("provider_id", True)), "(1 + time | org_id)").n_clusters
    12
    """

    assignment_level: str | None
    n_clusters: int
    source: str
    reason: str
    random_slopes: tuple[tuple[str, bool | str], ...]
    random_effects: str
    df_bound: float | None = None
    df_bounded: bool = False
    slope_at_boundary: bool = False
    notes: tuple[str, ...] = ()

    def describe(self) -> str:
        """One paragraph for summaries and reports."""
        if self.assignment_level is None:
            out = f"Arm assignment: within the repeated unit ({self.reason})."
        else:
            out = (f"Arm assigned at {self.assignment_level!r} ({self.n_clusters} clusters; "
                   f"{self.source}: {self.reason}).")
        out += f" Random effects: {self.random_effects}."
        if self.df_bounded:
            out += (f" df of between-cluster terms bounded by {self.df_bound:g} "
                    f"(clusters minus cluster-level fixed effects).")
        if self.slope_at_boundary:
            out += " The slope variance at the assignment level is estimated at zero"
            out += ("; the between-cluster df bound is kept." if self.df_bounded else
                    "; the df are the df method's own (not bounded).")
        out += "".join(f" Note: {n}." for n in self.notes)
        return out


@dataclass(frozen=True)
class GrowthSpec:
    """How a growth model was specified (kept on the result as ``result.growth``).

    Examples
    --------
    >>> spec = GrowthSpec("y", "time", "ta_model", "push", ("org_id",), True, "piecewise", (),
    ...                   ("push", "co_creation"))
    >>> spec.slope_terms
    ('pre_years', 'ta_years', 'post_years')
    """

    outcome: str
    time: str
    arm: str
    reference: str
    levels: tuple[str, ...]
    random_slope: bool | str
    time_coding: str
    covariates: tuple[str, ...]
    arms: tuple[str, ...]
    frame: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    design: DesignInfo | None = None
    pieces: tuple[str, ...] = PIECES  # piecewise: the slope pieces in the model
    shifts: tuple[str, ...] = ()  # piecewise: level-shift indicators (``post_ta``)
    short_pieces: tuple[str, ...] = ()  # in the model, too short to report by default

    @property
    def slope_terms(self) -> tuple[str, ...]:
        """The time variable(s) whose slope differs by arm (reported by default)."""
        if self.time_coding == "piecewise":
            return tuple(p for p in self.pieces if p not in self.short_pieces)
        return (self.time,)

    @property
    def time_columns(self) -> tuple[str, ...]:
        """Every column that carries time in the model (pieces and shifts, or the time)."""
        if self.time_coding == "piecewise":
            return (*self.pieces, *self.shifts)
        return (self.time,)


def _slope_term(slope: str, level: str, form: bool | str) -> list[str]:
    if form is True or form == "correlated":
        return [f"(1 + {slope} | {level})"]
    if form == "uncorrelated":
        return [f"(1 | {level})", f"(0 + {slope} | {level})"]
    if form is False:
        return [f"(1 | {level})"]
    raise ModelSpecificationError(
        f"random slope form for {level!r} must be True, False, 'correlated' or "
        f"'uncorrelated', got {form!r}"
    )


def _slope_plan(
    levels: list[str],
    assigned_at: str | None,
    random_slope: bool | str,
    random_slopes: Mapping[str, bool | str] | None,
) -> list[tuple[str, bool | str]]:
    """Slope form per level, repeated unit first: the unit's ``random_slope``, then every level
    up to ``assigned_at`` (UPPER_SLOPE_DEFAULT), none above it; ``random_slopes`` overrides."""
    unit = levels[-1]
    top = len(levels) - 1 if assigned_at is None else levels.index(assigned_at)
    plan: dict[str, bool | str] = {}
    for i in range(len(levels) - 1, -1, -1):
        g = levels[i]
        if g == unit:
            plan[g] = random_slope
        else:
            plan[g] = UPPER_SLOPE_DEFAULT if i >= top else False
    for g, form in (random_slopes or {}).items():
        if g not in plan:
            raise ModelSpecificationError(
                f"random_slopes names {g!r}, which is not one of levels {levels}"
            )
        if form not in SLOPE_OPTIONS:
            raise ModelSpecificationError(
                f"random_slopes[{g!r}] must be True, False, 'correlated' or 'uncorrelated', "
                f"got {form!r}"
            )
        plan[g] = form
    return list(plan.items())


def growth_formula(
    outcome: str,
    time: str = "time",
    arm: str = "ta_model",
    levels: Sequence[str] = ("provider_id", "org_id"),
    random_slope: bool | str = True,
    time_coding: str = "linear",
    covariates: Sequence[str] | str | None = None,
    *,
    assigned_at: str | None = None,
    random_slopes: Mapping[str, bool | str] | None = None,
    random_effects: str | None = None,
    pieces: Sequence[str] = PIECES,
    shifts: Sequence[str] = (),
) -> str:
    """The lme4 formula :func:`fit_growth` fits.

    ``levels`` go from the top (e.g. TA provider) to the unit measured repeatedly (e.g.
    organisation). The slope is random at the unit (``random_slope``) and at every level above
    it up to ``assigned_at`` (the level at which the arm is assigned); levels above that get a
    random intercept. ``random_slopes={"provider_id": "uncorrelated"}`` sets the form per level
    (``True``/``"correlated"``: ``(1 + time | g)``; ``"uncorrelated"``: ``(1 | g) + (0 + time |
    g)``; ``False``: ``(1 | g)``) and ``random_effects`` replaces the whole random part.

    Examples
    --------
    >>> growth_formula("y", levels=["org_id"], time_coding="categorical", random_slope=False)
    'y ~ time_f * ta_model + (1 | org_id)'
    >>> growth_formula("y", levels=["provider_id", "org_id"], assigned_at="provider_id",
    ...                random_slopes={"provider_id": "uncorrelated"})
    'y ~ time * ta_model + (1 + time | org_id) + (1 | provider_id) + (0 + time | provider_id)'
    """
    if time_coding not in TIME_CODINGS:
        raise ModelSpecificationError(
            f"time_coding must be one of {TIME_CODINGS}, got {time_coding!r}"
        )
    levels = list(levels)
    if not levels:
        raise ModelSpecificationError("levels must name at least one grouping column")
    if len(set(levels)) != len(levels):
        raise ModelSpecificationError(f"levels must be distinct columns, got {levels}")
    if assigned_at is not None and assigned_at not in levels:
        raise ModelSpecificationError(
            f"assigned_at={assigned_at!r} is not one of levels {levels}"
        )
    if random_slope not in SLOPE_OPTIONS:
        raise ModelSpecificationError(
            f"random_slope must be True, False or 'uncorrelated', got {random_slope!r}"
        )
    if time_coding == "linear":
        fixed, slope = f"{time} * {arm}", time
    elif time_coding == "categorical":
        fixed, slope = f"{time}_f * {arm}", time
    else:
        cols = [*pieces, *shifts]
        fixed = f"({' + '.join(cols)}) * {arm}" if len(cols) > 1 else f"{cols[0]} * {arm}"
        slope = "ta_years" if "ta_years" in pieces else pieces[0]
    if isinstance(covariates, str):
        fixed += f" + {covariates}"
    elif covariates:
        fixed += "".join(f" + {c}" for c in covariates)
    if random_effects is not None:
        if not isinstance(random_effects, str) or "|" not in random_effects:
            raise ModelSpecificationError(
                f"random_effects must be lme4 random terms such as '(1 + time | org_id)', got "
                f"{random_effects!r}"
            )
        return f"{outcome} ~ {fixed} + {random_effects.strip()}"
    rand: list[str] = []
    for g, form in _slope_plan(levels, assigned_at, random_slope, random_slopes):
        rand += _slope_term(slope, g, form)
    return f"{outcome} ~ {fixed} + " + " + ".join(rand)


def assignment_level(
    panel: pd.DataFrame,
    arm: str = "ta_model",
    levels: Sequence[str] = ("provider_id", "org_id"),
    design=None,
) -> tuple[str | None, str, str]:
    """The level at which ``arm`` is assigned: ``(column or None, source, reason)``.

    From the study design when one is given (its ``randomisation_unit``), else from the data:
    the coarsest of ``levels`` within which the arm is constant (with at least two clusters per
    arm). ``None`` when the arm varies within the repeated unit.

    Parameters
    ----------
    panel : DataFrame
    arm : str
    levels : sequence of str
        Grouping columns from the top down.
    design : Study or StudyDesign, optional

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"provider_id": list("aabbccdd"), "org_id": list("ABCDEFGH"),
    ...                   "ta_model": ["push"] * 4 + ["co_creation"] * 4})
    >>> assignment_level(d)[0]
    'provider_id'
    """
    from coevidence.models.mixed._design import coarsest_constant_level, constant_within

    levels = list(levels)
    if design is not None:
        design = getattr(design, "design", design)
        unit = getattr(design, "randomisation_unit", None)
        unit = getattr(unit, "value", unit)
        col = _UNIT_COLUMNS.get(str(unit)) if unit is not None else None
        if col is None or col not in levels:
            raise ModelSpecificationError(
                f"the study design randomises by {unit!r}, whose column {col!r} is not one of "
                f"levels {levels}; add it to levels or give assigned_at="
            )
        if not constant_within(panel, arm, col):
            raise ModelSpecificationError(
                f"the study design randomises by {unit!r} but {arm!r} varies within "
                f"{col!r} in the panel"
            )
        return col, "study design", f"randomisation_unit={unit!r}"
    found = coarsest_constant_level(panel, arm, levels)
    if found is None:
        return None, "data", f"{arm!r} varies within every level of {levels}"
    k = int(panel[found].nunique())
    return found, "data", (
        f"{arm!r} is constant within each of the {k} {found!r} clusters, the coarsest such "
        f"level among {levels}"
    )


@keyword_only(2, ("time", "arm", "reference", "levels", "random_slope", "time_coding",
                  "covariates"))
def fit_growth(
    panel: pd.DataFrame,
    outcome: str,
    *,
    time: str = "time",
    arm: str = "ta_model",
    reference: str = "push",
    levels: Sequence[str] = ("provider_id", "org_id"),
    random_slope: bool | str = True,
    time_coding: str = "linear",
    covariates: Sequence[str] | str | None = None,
    assigned_at: str | None = None,
    design=None,
    random_slopes: Mapping[str, bool | str] | None = None,
    random_effects: str | None = None,
    between_df: str = "auto",
    conf_level: float = 0.95,
    knots: Sequence[float] = (),
    post_shift: bool = False,
    min_piece_years: float = 0.5,
    **fit_kwargs,
) -> MixedResult:
    """Fit a multilevel growth model comparing TA models over time, design-aware.

    The random structure follows the design: the arm's assignment level is taken from
    ``assigned_at``, the study ``design`` or the data (the coarsest level within which the arm
    is constant), and the slope gets a random component at every level from the repeated unit
    up to it. For a study randomised by provider the default model is ``y ~ time * ta_model +
    (1 + time | org_id) + (1 + time | provider_id)``: the arm x time contrast is tested against
    the provider-level slope variance with df near the number of providers. What was found and
    why is in ``result.growth.design``.

    Parameters
    ----------
    panel : DataFrame
        ``study.panel(...)``: one row per unit x wave (not modified).
    outcome : str
        Outcome column (a measure id such as ``"research_use"``).
    time : str, default "time"
        Wave position (0, 1, 2, ...); used linearly or as a factor (``time_coding``).
    arm : str, default "ta_model"
        Treatment column; arms with no rows are dropped from its levels.
    reference : str, default "push"
        Reference arm (the contrasts are other arms minus this one).
    levels : sequence of str
        Grouping columns from the top down, e.g. ``["provider_id", "org_id"]``.
    random_slope : bool or "uncorrelated", default True
        Random slope of time for the repeated unit (the last level), correlated with its
        intercept.
    time_coding : {"linear", "categorical", "piecewise"}
        ``piecewise`` has separate slopes before TA (``pre_years``: years_since_start when
        negative), during TA (``ta_years``) and after it (``post_years`` = years_since_end).
    covariates : list of str or a formula fragment, optional
    assigned_at : str, optional
        The level (one of ``levels``) at which the arm is assigned; default detected.
    design : Study or StudyDesign, optional
        Take the assignment level from its ``randomisation_unit``.
    random_slopes : dict, optional
        Slope form per level, e.g. ``{"provider_id": "uncorrelated", "org_id": True}``.
    random_effects : str, optional
        Expert override: the whole random part, e.g. ``"(1 + time | provider_id/org_id)"``.
    between_df : {"auto", "bound", "model"}, default "auto"
        ``"bound"``: the df of terms that vary only between assignment clusters (the arm, arm x
        time, the intercept and the time trend) are at most ``G - q`` (clusters minus cluster-
        level fixed effects, the between-within df); ``"auto"``: bounded only when the slope
        variance at the assignment level is estimated at zero or the df of a between-cluster
        term exceed ``max(4 (G - q), G - q + 20)`` -- where Satterthwaite and Kenward-Roger df
        have fallen back towards the number of repeated units; otherwise the ``df_method``'s
        df, as lmerTest reports them;
        ``"model"``: the ``df_method``'s df unchanged.
    conf_level : float, default 0.95
        Level of the confidence intervals (kept by the result).
    knots : sequence of float, optional
        Piecewise models (sustainment): extra knots in years after each organisation's own end
        of TA, e.g. ``(1.0,)`` lets the post-TA slope change 12 months after TA ends (pieces
        ``post_years`` up to the knot, ``post_years_after_1y`` beyond it).
    post_shift : bool, default False
        Piecewise models: add a level shift at each organisation's end of TA (``post_ta``, 1
        after the end; its arm interaction is the difference in the shift).
    min_piece_years : float, default 0.5
        A piece whose observed range (in years) is shorter is kept in the model but left out
        of the default contrasts and slopes, with an
        :class:`~coevidence.exceptions.EstimabilityWarning`; a piece (or shift) with no
        variation at all is dropped from the model, with the same warning.
    **fit_kwargs
        Passed to :func:`~coevidence.models.mixed.api.fit_mixed` (``reml``, ``engine``,
        ``df_method``, ``cov_type``, ``cluster``; ``weights`` and ``weights_scale`` for group
        weights such as organisation propensity weights, then CR2 by default); anything else
        is refused. With ``cov_type="cr2"`` the default cluster is the assignment level (with
        weights: the coarsest grouping factor, in which every other is nested).

    Returns
    -------
    MixedResult
        With ``result.growth`` describing the specification (``.design``: the assignment
        level, the random structure and the df rule).

    Warns
    -----
    DesignDfWarning
        A between-cluster term is tested with df far above the number of clusters (only
        possible with ``random_slopes``/``random_effects`` overrides or ``between_df="model"``).

    Notes
    -----
    Alternatives with the same target: ``cov_type="cr2"`` (CR2 by assignment cluster with
    Bell-McCaffrey df) and :func:`fit_growth_two_stage` (cluster slopes compared by a t test).

    Examples
    --------
    >>> import coevidence as cv
    >>> panel = cv.load_example_study().panel(unit="organization")  # doctest: +SKIP
    >>> res = cv.fit_growth(panel, "research_use")  # doctest: +SKIP
    >>> res.growth.design.assignment_level  # doctest: +SKIP
    'provider_id'
    """
    from coevidence.models.mixed._design import design_guard
    from coevidence.models.mixed.api import _fit_mixed

    if not isinstance(panel, pd.DataFrame):
        raise ModelSpecificationError(
            f"panel must be a pandas DataFrame, got {type(panel).__name__}"
        )
    if between_df not in ("auto", "bound", "model"):
        raise ModelSpecificationError(
            f"between_df must be 'auto', 'bound' or 'model', got {between_df!r}"
        )
    levels = list(levels)
    needed = [outcome, time, arm, *levels]
    if time_coding == "piecewise":
        needed += ["years_since_start", "years_since_end"]
    missing = [c for c in needed if c not in panel.columns]
    if missing:
        raise ModelSpecificationError(
            f"panel has no column(s) {missing}; it has {list(panel.columns)}"
        )
    data = panel.copy()
    present = pd.unique(data[arm].dropna().astype(str))
    if reference not in present:
        raise ModelSpecificationError(
            f"reference arm {reference!r} has no rows in column {arm!r}; arms present: "
            f"{sorted(present)}"
        )
    others = sorted(a for a in present if a != reference)
    if isinstance(data[arm].dtype, pd.CategoricalDtype):
        order = [str(c) for c in data[arm].cat.categories if str(c) in present]
        others = [a for a in order if a != reference]
    if not others:
        raise ModelSpecificationError(f"column {arm!r} has only the reference arm {reference!r}")
    arms = (reference, *others)
    data[arm] = pd.Categorical(data[arm].astype("string").astype(object), categories=list(arms))
    if time_coding == "categorical":
        values = sorted(data[time].dropna().unique())
        labels = [time_label(v) for v in values]
        data[f"{time}_f"] = pd.Categorical(data[time].map(time_label), categories=labels)
    pieces, shifts, short = PIECES, (), ()
    if time_coding != "piecewise" and (tuple(knots) or post_shift):
        raise OptionError("knots and post_shift apply to time_coding='piecewise'")
    if time_coding == "piecewise":
        pieces, shifts = add_pieces(data, knots, post_shift)
    obs = data.dropna(subset=[c for c in needed if c in data.columns])
    if time_coding == "piecewise":
        pieces, shifts, short = check_pieces(obs, pieces, shifts, min_piece_years)
    if assigned_at is not None:
        from coevidence.models.mixed._design import constant_within

        if assigned_at not in levels:
            raise ModelSpecificationError(
                f"assigned_at={assigned_at!r} is not one of levels {levels}"
            )
        if not constant_within(obs, arm, assigned_at):
            raise ModelSpecificationError(
                f"{arm!r} varies within {assigned_at!r}, so it cannot be assigned there"
            )
        level, source, reason = assigned_at, "argument", f"assigned_at={assigned_at!r}"
    else:
        level, source, reason = assignment_level(obs, arm, levels, design)
    formula = growth_formula(
        outcome, time, arm, levels, random_slope, time_coding, covariates,
        assigned_at=level, random_slopes=random_slopes, random_effects=random_effects,
        pieces=pieces, shifts=shifts,
    )
    glmm_keys = {"family", "link", "nagq", "weights", "offset"}
    unknown = sorted(set(fit_kwargs) - {"reml", "engine", "df_method", "cov_type", "cluster",
                                        "weights_scale"} - glmm_keys)
    if unknown:
        raise OptionError(
            f"fit_growth got unexpected option(s) {unknown}; it passes reml, engine, df_method, "
            "cov_type and cluster on to fit_mixed (family, link, nagq, weights and offset for "
            "a binary or count outcome)"
        )
    if fit_kwargs.get("family") is not None:
        from coevidence.models.mixed.api import _fit_glmm_from_mixed

        lmm = {k: fit_kwargs.get(k, d) for k, d in (
            ("reml", True), ("engine", "auto"), ("df_method", "satterthwaite"),
            ("cov_type", "model"), ("cluster", None))}
        res = _fit_glmm_from_mixed(formula, data, conf_level=conf_level, **lmm,
                                   **{k: v for k, v in fit_kwargs.items() if k in glmm_keys})
    else:
        stray = sorted(k for k in glmm_keys - {"weights"} if fit_kwargs.get(k) is not None)
        if stray:
            raise OptionError(f"fit_growth: {stray} only apply with family= (a GLMM)")
        weights = fit_kwargs.get("weights")
        fit_kwargs = {k: v for k, v in fit_kwargs.items() if k not in glmm_keys}
        if weights is not None:  # group weights: CR2 by the assignment level by default
            fit_kwargs = {**fit_kwargs, "cov_type": fit_kwargs.get("cov_type") or "cr2",
                          "weights": weights}
        if (fit_kwargs.get("cov_type") == "cr2" and fit_kwargs.get("cluster") is None and level
                and weights is None):  # weighted: the coarsest factor (contains every other)
            fit_kwargs = {**fit_kwargs, "cluster": level}
        res = _fit_mixed(formula, data, stacklevel=4, conf_level=conf_level, **fit_kwargs)
    plan = tuple(_slope_plan(levels, level, random_slope, random_slopes)) if (
        random_effects is None) else ()
    res, design_info = _design_inference(res, data, level, source, reason, plan, time_coding,
                                         between_df, time, pieces)
    design_guard(res, data, extra=[level] if level else (), stacklevel=3)
    covs = (covariates,) if isinstance(covariates, str) else tuple(covariates or ())
    spec = GrowthSpec(
        outcome=outcome, time=time, arm=arm, reference=reference, levels=tuple(levels),
        random_slope=random_slope, time_coding=time_coding, covariates=covs, arms=arms,
        frame=_growth_frame(data, res, outcome, time, arm, time_coding, (*pieces, *shifts)),
        design=design_info, pieces=tuple(pieces), shifts=tuple(shifts), short_pieces=short,
    )
    return res.with_growth(spec)


def between_df_bounds(res, data, level: str, slope_vars):
    """The between-cluster terms at ``level`` and their ``G - q`` df bounds.

    Returns ``(terms, G, bounds, bound)``: the :class:`~._design.BetweenTerm` s at ``level``,
    the number of clusters, the bound per coefficient index (the intercept and the time trend
    ``slope_vars`` are between-cluster quantities too) and the smallest bound.
    """
    from coevidence.models.mixed._design import between_terms

    info = res._info
    frame = info.data.copy()
    if level not in frame.columns:
        frame[level] = data.loc[info.row_index, level].to_numpy()
    names = list(res.params.index)
    terms = [bt for bt in between_terms(info, frame, [level], names) if bt.level == level]
    G = int(frame[level].nunique())  # noqa: N806
    bounds = {bt.index: bt.df_bound for bt in terms}
    by_within = {bt.within: bt.df_bound for bt in terms}
    fallback = min(bounds.values(), default=float(max(G - 1, 1)))
    for j, n in enumerate(names):
        if n == "(Intercept)":
            bounds[j] = by_within.get((), fallback)
        elif n in slope_vars:
            bounds[j] = by_within.get((n,), fallback)
    return terms, G, bounds, min(bounds.values(), default=fallback)


def _design_inference(res, data, level, source, reason, plan, time_coding, between_df, time,
                      pieces=PIECES):
    """Bound the df of the between-cluster terms by ``G - q`` (see ``between_df``)."""

    random_part = res.formula.split("~", 1)[1]
    random_part = " + ".join(p.strip() for p in _random_parts(random_part))
    if level is None:
        return res, DesignInfo(None, 0, source, reason, plan, random_part)
    slope_vars = set(pieces) if time_coding == "piecewise" else {time}
    terms, G, bounds, bound = between_df_bounds(res, data, level, slope_vars)  # noqa: N806
    vc = res.diagnostics.boundary
    here = vc[vc["group"] == level]
    at_zero = bool(here[(here["kind"] == "variance")
                        & (here["parameter"] != "(Intercept)")]["at_boundary"].any())
    on_boundary = bool(here["at_boundary"].any())
    notes = []
    if on_boundary:
        where = ", ".join(here.loc[here["at_boundary"], "parameter"])
        notes.append(f"random effects at {level!r} on the boundary ({where})")
    from coevidence.models.mixed._design import DESIGN_DF_FACTOR_MODELLED

    dfs = res.tidy()["df"].to_numpy(float)
    limit = max(DESIGN_DF_FACTOR_MODELLED * bound, bound + 20)
    fallen = bool(terms) and bool(np.any(~(dfs[[bt.index for bt in terms]] <= limit)))
    if fallen and not at_zero:
        notes.append(f"the {res.df_method} df of a between-cluster term exceed {limit:g}, "
                     f"far above the {G} {level!r} clusters")
    bounded = False
    # CR2 (Bell-McCaffrey df) is design-based already; df_method="z" asked for normal tests
    # (a GLMM's z tests are glmer's default, not a request: its between-cluster terms get the
    # between-within df like a linear model's)
    free = res.cov_type == "cr2" or (res.df_method == "z" and not hasattr(res, "family"))
    if terms and not free and (
            between_df == "bound" or (between_df == "auto" and (at_zero or fallen))):
        res, bounded = res._with_df_bounds(bounds)
    return res, DesignInfo(
        level, G, source, reason, plan, random_part, df_bound=float(bound), df_bounded=bounded,
        slope_at_boundary=at_zero, notes=tuple(notes),
    )


def _random_parts(rhs: str) -> list[str]:
    from coevidence.models.mixed.formula import _split_top

    return [p for p in _split_top(rhs, "+") if "|" in p]


def time_label(value) -> str:
    """Level label of a wave in categorical time coding, as R prints ``factor(time)``.

    Examples
    --------
    >>> time_label(4.0), time_label(0.5)
    ('4', '0.5')
    """
    if pd.isna(value):
        return value
    v = float(value)
    return str(int(v)) if v.is_integer() else repr(v)


def _growth_frame(data, res, outcome, time, arm, time_coding, time_cols=PIECES) -> pd.DataFrame:
    """Outcome, arm, time (and pieces) of the rows used in the fit."""
    cols = [outcome, arm, time] + (list(time_cols) if time_coding == "piecewise" else [])
    rows = res.data.index
    return data.loc[rows, list(dict.fromkeys(cols))].copy()
