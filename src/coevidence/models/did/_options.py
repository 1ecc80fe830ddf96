"""Option resolution for :func:`~coevidence.models.did.event_study.fit_event_study`.

Two steps, both pure checks on the arguments (the data are not looked at before
:func:`resolve_options` has passed):

* :func:`resolve_options` validates every option and fills the defaults of the ``UNSET`` ones;
* :func:`resolve_inference` turns ``small_sample`` / ``df`` into the adjustment and reference
  distribution used once the number of clusters is known, and :func:`describe` writes the
  ``result.info`` record of those choices.
"""

from __future__ import annotations

import dataclasses
import numbers
import warnings
from collections.abc import Sequence

import numpy as np

from coevidence.exceptions import FewClustersWarning, ModelSpecificationError, OptionError
from coevidence.models._shared.options import (
    UNSET,
    as_generator,
    check_choice,
    check_conf_level,
    refuse_ignored,
)
from coevidence.models.did import _small as small
from coevidence.models.panel.model import FEW_CLUSTERS  # z tests with fewer clusters warn

ESTIMATORS = ("callaway_santanna", "sun_abraham", "two_stage", "twfe")
CONTROLS = ("never_treated", "not_yet_treated")
SMALL_SAMPLE = ("auto", "cr2", "cr1", "none")
DF_OPTIONS = ("auto", "bm", "cluster", "normal")

_CONTROL_OF = {
    "sun_abraham": "never_treated",
    "two_stage": "untreated observations",
    "twfe": "untreated observations",
}


@dataclasses.dataclass(frozen=True)
class EventStudyOptions:
    """The validated options of one fit (defaults filled in)."""

    estimator: str
    control: str
    anticipation: int
    covariates: tuple[str, ...]
    est_method: str
    base_period: str
    by: str | None
    bootstrap_reps: int | None
    bootstrap_weights: str
    cluster: str | None
    seed: object
    conf_level: float
    small_sample: str
    df: str | float

    @property
    def cs(self) -> bool:
        """Callaway & Sant'Anna (the estimator with the CR2 / Bell-McCaffrey machinery)."""
        return self.estimator == "callaway_santanna"

    @property
    def boot(self) -> dict | None:
        """Bootstrap settings as the engine takes them (None without a bootstrap)."""
        if self.bootstrap_reps is None:
            return None
        return {
            "reps": int(self.bootstrap_reps),
            "weights": self.bootstrap_weights,
            "seed": self.seed,
            "conf_level": self.conf_level,
        }


@dataclasses.dataclass(frozen=True)
class InferencePlan:
    """Clusters, small-sample adjustment and df method, resolved once G is known."""

    codes: np.ndarray | None  # cluster code per unit; None = the units themselves
    n_clusters: int
    small_sample: str  # "cr2", "cr1" or "none"
    df_mode: str  # "bm", "cluster", "normal" or "fixed"
    what: str  # "10 clusters of 'region'" / "500 units"


def _check_choices(estimator, control, est_method, base_period, bootstrap_reps,
                   bootstrap_weights, seed) -> None:
    """The choice options given with an estimator or without a bootstrap that ignores them."""
    check_choice("estimator", estimator, ESTIMATORS)
    if estimator != "callaway_santanna":
        refuse_ignored(
            "fit_event_study",
            {"control": control, "est_method": est_method, "base_period": base_period},
            f"they apply to estimator='callaway_santanna' only, not {estimator!r}",
        )
    if bootstrap_reps is None:
        refuse_ignored("fit_event_study", {"bootstrap_weights": bootstrap_weights, "seed": seed},
                       "no bootstrap was asked for (give bootstrap_reps=...)")


def _check_numbers(estimator, anticipation, bootstrap, small_sample, df) -> None:
    """``anticipation``, ``bootstrap_reps``, ``small_sample`` and ``df``."""
    if (not isinstance(anticipation, (int, np.integer)) or isinstance(anticipation, bool)
            or anticipation < 0):
        raise OptionError(f"anticipation must be a non-negative integer, got {anticipation!r}")
    if bootstrap is not None and (not isinstance(bootstrap, (int, np.integer)) or bootstrap < 50):
        raise OptionError(
            f"bootstrap_reps must be None or a number of draws >= 50, got {bootstrap!r}")
    check_choice("small_sample", small_sample, SMALL_SAMPLE)
    if isinstance(df, str):
        check_choice("df", df, DF_OPTIONS)
    elif not isinstance(df, numbers.Real) or isinstance(df, bool) or not df > 0:
        raise OptionError(
            f"df must be one of {list(DF_OPTIONS)} or a positive number, got {df!r}"
        )
    if estimator != "callaway_santanna" and (small_sample == "cr2" or df == "bm"):
        raise ModelSpecificationError(
            "the CR2 leverage adjustment and Bell-McCaffrey df are implemented for "
            f"estimator='callaway_santanna' only; use small_sample='cr1' and df='cluster' with "
            f"estimator={estimator!r}"
        )


def resolve_options(
    *,
    estimator: str,
    control: str,
    anticipation: int,
    covariates: Sequence[str] | None,
    est_method: str,
    base_period: str,
    by: str | None,
    bootstrap_reps: int | None,
    bootstrap_weights: str,
    cluster: str | None,
    seed: object,
    conf_level: float,
    small_sample: str,
    df: str | float,
) -> EventStudyOptions:
    """Validate the options of :func:`fit_event_study` (in its documented order of checks)."""
    _check_choices(estimator, control, est_method, base_period, bootstrap_reps,
                   bootstrap_weights, seed)
    control = "never_treated" if control is UNSET else control
    est_method = "dr" if est_method is UNSET else est_method
    base_period = "varying" if base_period is UNSET else base_period
    bootstrap_weights = "mammen" if bootstrap_weights is UNSET else bootstrap_weights
    seed = None if seed is UNSET else seed
    as_generator(seed)  # the one seed convention: refuse anything else now
    conf_level = check_conf_level(conf_level)
    for name, val, allowed in (
        ("control", control, CONTROLS),
        ("est_method", est_method, ("dr", "reg")),
        ("base_period", base_period, ("varying", "universal")),
        ("bootstrap_weights", bootstrap_weights, ("mammen", "rademacher")),
    ):
        check_choice(name, val, allowed)
    _check_numbers(estimator, anticipation, bootstrap_reps, small_sample, df)
    return EventStudyOptions(
        estimator=estimator, control=control, anticipation=anticipation,
        covariates=tuple(covariates or []), est_method=est_method, base_period=base_period,
        by=by, bootstrap_reps=bootstrap_reps, bootstrap_weights=bootstrap_weights,
        cluster=cluster, seed=seed, conf_level=conf_level, small_sample=small_sample, df=df,
    )


def _df_mode(opts: EventStudyOptions, ss: str, n_clusters: int, what: str) -> str:
    """The reference distribution: ``"bm"``, ``"cluster"``, ``"normal"`` or ``"fixed"``."""
    df = opts.df
    if df == "auto":
        return "bm" if ss == "cr2" and n_clusters <= small.BM_MAX_CLUSTERS else "cluster"
    if df == "bm":
        if ss != "cr2":
            raise ModelSpecificationError(
                "df='bm' (Bell-McCaffrey) goes with the CR2 adjustment: use small_sample='cr2'"
            )
        if n_clusters > small.BM_MAX_CLUSTERS:
            raise ModelSpecificationError(
                f"df='bm' is computed for at most {small.BM_MAX_CLUSTERS} clusters ({what}); "
                "with this many clusters use df='cluster' (G - 1), which is then equivalent"
            )
        return "bm"
    return df if isinstance(df, str) else "fixed"


def resolve_inference(
    opts: EventStudyOptions, clus_unit: np.ndarray | None, n_units: int, unit: str
) -> InferencePlan:
    """Count the clusters and settle ``small_sample`` / ``df`` (warns, ``stacklevel=3``).

    Called by :func:`fit_event_study` itself, so that its warning points where the original
    one-function implementation's did.
    """
    cluster = opts.cluster
    if clus_unit is not None:
        codes, n_clusters = small.cluster_codes(clus_unit)
    else:
        codes, n_clusters = None, n_units
    if n_clusters < 2:
        raise ModelSpecificationError(
            f"cluster-robust inference needs at least 2 clusters; {cluster or unit!r} has "
            f"{n_clusters}"
        )
    what = f"{n_clusters} clusters of {cluster!r}" if cluster is not None else f"{n_clusters} units"
    if opts.small_sample == "auto":
        ss = "none" if cluster is None else ("cr2" if opts.cs else "cr1")
    else:
        ss = opts.small_sample
    df_mode = _df_mode(opts, ss, n_clusters, what)
    if df_mode == "normal" and cluster is not None and n_clusters < FEW_CLUSTERS:
        warnings.warn(
            f"fit_event_study: z tests with only {n_clusters} clusters (< {FEW_CLUSTERS}) "
            "over-reject; the default df='auto' uses t tests with df from the cluster count",
            FewClustersWarning,
            stacklevel=3,
        )
    return InferencePlan(codes=codes, n_clusters=n_clusters, small_sample=ss, df_mode=df_mode,
                         what=what)


def _se_type(opts: EventStudyOptions, plan: InferencePlan) -> str:
    """``info["se_type"]``: analytic or bootstrap, the clustering and the adjustment."""
    n_clusters, cluster = plan.n_clusters, opts.cluster
    ss_text = {
        "cr2": "CR2-type leverage adjustment (Bell-McCaffrey)",
        "cr1": f"CR1 factor G/(G - 1) = {n_clusters}/{n_clusters - 1}",
        "none": "no small-sample adjustment (as did)",
    }[plan.small_sample]
    clus_text = (
        f"clustered by {cluster} ({n_clusters} clusters)" if cluster else "clustered by unit"
    )
    se_type = (
        f"analytic (influence function), {clus_text}"
        if opts.boot is None
        else f"multiplier bootstrap ({opts.bootstrap_reps} draws, {opts.bootstrap_weights} "
        f"weights, seed {opts.seed}), {clus_text}"
    )
    if plan.small_sample != "none":
        se_type += f", {ss_text}"
    return se_type


def describe(
    opts: EventStudyOptions, plan: InferencePlan, *, outcome: str, unit: str, time: str,
    first_treated: str,
) -> dict[str, object]:
    """The ``result.info`` record of a fit (before estimator-specific entries)."""
    n_clusters = plan.n_clusters
    df_text = {
        "bm": f"t with Bell-McCaffrey (Satterthwaite) df per estimate, at most G - 1 = "
        f"{n_clusters - 1} ({plan.what}; few-cluster small-sample correction)",
        "cluster": f"t with G - 1 = {n_clusters - 1} df ({plan.what})",
        "normal": "normal (z), as R did",
        "fixed": f"t with {opts.df} df (given)",
    }[plan.df_mode]
    return {
        "estimator": opts.estimator,
        "outcome": outcome,
        "unit": unit,
        "time": time,
        "first_treated": first_treated,
        "control": opts.control if opts.cs else _CONTROL_OF[opts.estimator],
        "anticipation": opts.anticipation,
        "se_type": _se_type(opts, plan),
        "df_method": df_text
        + "; pointwise intervals"
        + ("; uniform sup-t bands in frame()" if opts.boot else ""),
        "cluster": opts.cluster or unit,
        "n_clusters": n_clusters,
        "small_sample": plan.small_sample,
        "df_choice": plan.df_mode,
        "by": opts.by,
    }
