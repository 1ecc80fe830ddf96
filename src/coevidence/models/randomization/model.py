"""Randomisation (re-randomisation, permutation) inference for the arm effect of any design.

When the arm -- or the start period of a rollout -- was assigned at random to a few clusters (TA
providers), the assignment mechanism itself gives an exact test of the sharp null of no effect
for any unit (Fisher 1935; Young 2019, QJE 134:557): re-assign the arm labels across clusters as
the design could have, refit, and locate the observed statistic in the distribution of
re-randomised statistics. No asymptotics in the number of clusters are involved, so it is the
reference when there are 8-12 clusters. See ``docs/models/few_clusters.md``.

Examples
--------
>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> d = pd.DataFrame({"provider": np.repeat(np.arange(8), 5), "arm": np.repeat([0, 1] * 4, 5)})
>>> d["y"] = 0.2 * d["arm"] + rng.normal(size=40)
>>> rt = randomization_test(d, lambda x: x.y[x.arm == 1].mean() - x.y[x.arm == 0].mean(),
...                         arm="arm", cluster="provider")
>>> rt.exact, rt.n_permutations
(True, 70)
"""

from __future__ import annotations

import itertools
import math
import numbers
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from coevidence.exceptions import ModelSpecificationError
from coevidence.results.base import TIDY_COLUMNS, ResultBase, glance_frame

__all__ = ["RandomizationResult", "randomization_test"]

STATISTICS = ("estimate", "t")
ALTERNATIVES = ("two-sided", "greater", "less")
#: exact enumeration is refused above this many distinct assignments (use sampling)
MAX_EXACT = 200_000
#: relative tolerance for "at least as extreme" (guards against rounding in equal statistics)
TIE_RTOL = 1e-10


class RandomizationResult(ResultBase):
    """A randomisation test of the arm effect.

    Attributes
    ----------
    estimate : float
        Observed estimate (of ``term``; the number ``fit`` returned).
    std_error : float
        Observed model-based standard error when ``fit`` returned a result (else NaN).
    observed : float
        Observed test statistic (``estimate`` or ``estimate / std_error``).
    p_value : float
        Randomisation p value (see :func:`randomization_test`).
    distribution : numpy.ndarray
        Statistics of the re-randomised assignments (read-only). Exact enumeration: every
        distinct assignment, the observed one included; sampling: the ``n_permutations`` draws.
    n_permutations : int
        Assignments evaluated (all of them when ``exact``).
    n_assignments : int
        Distinct assignments the design allows (arm labels re-assigned across clusters, within
        strata, keeping the number of clusters per arm).
    exact : bool
        True when every assignment was enumerated.
    seed : int or None
        Seed of the sampled permutations (None for exact enumeration unless given).
    statistic, alternative, term : str
    arm : tuple of str
    cluster : str
    strata : str or None
    n_clusters : int
    n_warnings : int
        Warnings raised by ``fit`` on re-randomised data (suppressed; the distinct messages are
        in ``notes``).
    notes : tuple of str

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> d = pd.DataFrame({"c": np.repeat(np.arange(6), 2), "a": np.repeat([0, 1, 0, 1, 0, 1], 2),
    ...                   "y": np.arange(12.0)})
    >>> rt = randomization_test(d, lambda x: x.y[x.a == 1].mean() - x.y[x.a == 0].mean(),
    ...                         arm="a", cluster="c")
    >>> rt.n_assignments, float(rt.tidy()["p_value"].iloc[0])
    (20, 0.7)
    """

    def __init__(
        self,
        *,
        estimate: float,
        std_error: float,
        observed: float,
        p_value: float,
        distribution: np.ndarray,
        n_assignments: int,
        exact: bool,
        seed: int | None,
        statistic: str,
        alternative: str,
        term: str,
        arm: tuple[str, ...],
        cluster: str,
        strata: str | None,
        n_clusters: int,
        n_warnings: int = 0,
        notes: tuple[str, ...] = (),
    ) -> None:
        dist = np.array(distribution, dtype=float)
        dist.setflags(write=False)
        self.estimate = float(estimate)
        self.std_error = float(std_error)
        self.observed = float(observed)
        self.p_value = float(p_value)
        self.distribution = dist
        self.n_permutations = len(dist)
        self.n_assignments = int(n_assignments)
        self.exact = bool(exact)
        self.seed = seed
        self.statistic = statistic
        self.alternative = alternative
        self.term = term
        self.arm = tuple(arm)
        self.cluster = cluster
        self.strata = strata
        self.n_clusters = int(n_clusters)
        self.n_warnings = int(n_warnings)
        self.notes = tuple(notes)
        self._freeze()

    @property
    def mc_error(self) -> float:
        """Monte Carlo standard error of the p value (0 for exact enumeration)."""
        if self.exact:
            return 0.0
        p = self.p_value
        return float(np.sqrt(p * (1 - p) / self.n_permutations))

    def tidy(self, conf_level: float | None = None) -> pd.DataFrame:
        """One row with :data:`~coevidence.results.base.TIDY_COLUMNS`: the observed estimate, its
        model SE (if any), the observed statistic and the randomisation p value (no df or CI,
        whatever ``conf_level``)."""
        self._level(conf_level)
        return pd.DataFrame(
            [
                {
                    "term": self.term,
                    "estimate": self.estimate,
                    "std_error": self.std_error,
                    "statistic": self.observed,
                    "df": np.nan,
                    "p_value": self.p_value,
                    "conf_low": np.nan,
                    "conf_high": np.nan,
                }
            ]
        )[list(TIDY_COLUMNS)]

    def glance(self) -> pd.DataFrame:
        """One row: the common keys (estimator and ``cov_type``/``df_method``
        ``"randomization"``; ``nobs`` unknown (None); clusters permuted as ``n_groups_<cluster>``),
        then method, statistic, alternative, exactness, counts, seed, MC error."""
        return glance_frame(
            estimator="randomization",
            outcome=None,
            nobs=None,
            cov_type="randomization",
            df_method="randomization",
            **{f"n_groups_{self.cluster}": self.n_clusters},
            method="randomization test (cluster re-randomisation)", term=self.term, statistic_type=self.statistic, alternative=self.alternative, p_value=self.p_value, exact=self.exact, n_permutations=self.n_permutations, n_assignments=self.n_assignments, seed=self.seed, mc_error=self.mc_error, arm=", ".join(self.arm), cluster=self.cluster, strata=self.strata, n_clusters=self.n_clusters, n_warnings=self.n_warnings,
        )

    def summary(self) -> str:
        """The test in words: what was permuted, how, the observed statistic and the p value."""
        how = (
            f"exact: all {self.n_assignments} assignments enumerated"
            if self.exact
            else f"{self.n_permutations} random re-assignments (seed {self.seed}) of "
            f"{self.n_assignments:,} possible; Monte Carlo SE of p {self.mc_error:.3g}"
        )
        within = f" within strata of {self.strata!r}" if self.strata else ""
        lines = [
            "Randomization test of the arm effect",
            f"Permuted: {', '.join(map(repr, self.arm))} across {self.n_clusters} clusters of "
            f"{self.cluster!r}{within}, cluster counts per arm kept",
            f"Reference distribution: {how}",
            f"Statistic: {self.statistic} of {self.term!r}; alternative: {self.alternative}",
            f"Observed: estimate {self.estimate:.6g}, statistic {self.observed:.6g}",
            f"p value: {self.p_value:.4g}",
        ]
        lines += [f"Note: {n}" for n in self.notes]
        return "\n".join(lines)


def _as_list(arm: str | Sequence[str]) -> list[str]:
    return [arm] if isinstance(arm, str) else list(arm)


def _check_inputs(data, arms, cluster, strata) -> None:
    if not isinstance(data, pd.DataFrame):
        raise ModelSpecificationError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    missing = [c for c in [*arms, cluster, strata] if c is not None and c not in data.columns]
    if missing:
        raise ModelSpecificationError(f"columns not in data: {missing}")
    if not arms:
        raise ModelSpecificationError("give the arm column(s) to permute: arm='ta_model'")
    if data[cluster].isna().any():
        raise ModelSpecificationError(
            f"cluster column {cluster!r} has {int(data[cluster].isna().sum())} missing values"
        )
    for col in [*arms, *([strata] if strata else [])]:
        codes = pd.factorize(data[col], use_na_sentinel=False)[0]
        nun = pd.Series(codes).groupby(data[cluster].to_numpy()).nunique()
        bad = nun.index[nun.to_numpy() > 1]
        if len(bad):
            shown = ", ".join(repr(b) for b in bad[:5]) + (" ..." if len(bad) > 5 else "")
            what = "the arm" if col in arms else "the strata"
            raise ModelSpecificationError(
                f"{what} column {col!r} must be constant within the assignment cluster "
                f"{cluster!r}; it varies within {len(bad)} cluster(s): {shown}. Permute at the "
                "level at which the arm was assigned"
            )


def _multiset_arrangements(labels: np.ndarray) -> Iterator[np.ndarray]:
    """Every distinct arrangement of a multiset of integer labels (lexicographic by label)."""
    values, counts = np.unique(labels, return_counts=True)
    m = len(labels)

    def rec(free: tuple[int, ...], j: int, out: np.ndarray) -> Iterator[np.ndarray]:
        if j == len(values) - 1:
            res = out.copy()
            res[list(free)] = values[j]
            yield res
            return
        for chosen in itertools.combinations(free, int(counts[j])):
            out[list(chosen)] = values[j]
            rest = tuple(i for i in free if i not in set(chosen))
            yield from rec(rest, j + 1, out)

    yield from rec(tuple(range(m)), 0, np.empty(m, dtype=np.int64))


def _n_arrangements(labels: np.ndarray) -> int:
    _, counts = np.unique(labels, return_counts=True)
    total = math.factorial(len(labels))
    for c in counts:
        total //= math.factorial(int(c))
    return total


def _extract(out: Any, term: str | None, statistic: str) -> tuple[float, float, str]:
    """(estimate, std_error, term label) from what ``fit`` returned."""
    if isinstance(out, (numbers.Real, np.floating, np.integer)) and not isinstance(out, bool):
        if statistic == "t":
            raise ModelSpecificationError(
                "statistic='t' needs fit to return a result with tidy() (estimate and std_error)"
            )
        return float(out), float("nan"), term or "statistic"
    if not hasattr(out, "tidy"):
        raise ModelSpecificationError(
            "fit must return a number or a result with tidy() (e.g. a fit_growth / "
            f"fit_panel result or res.aggregate('simple')); got {type(out).__name__}"
        )
    tab = out.tidy()
    if term is None:
        if len(tab) != 1:
            raise ModelSpecificationError(
                f"fit returned {len(tab)} terms; choose one with term= (one of "
                f"{tab['term'].tolist()[:12]})"
            )
        row = tab.iloc[0]
    else:
        hit = tab[tab["term"] == term]
        if hit.empty:
            raise ModelSpecificationError(
                f"term {term!r} is not in the fitted result; terms: {tab['term'].tolist()[:12]}"
            )
        row = hit.iloc[0]
    return float(row["estimate"]), float(row.get("std_error", np.nan)), str(row["term"])


def randomization_test(
    data: pd.DataFrame,
    fit: Callable[[pd.DataFrame], Any],
    *,
    arm: str | Sequence[str],
    cluster: str,
    term: str | None = None,
    statistic: str = "estimate",
    strata: str | None = None,
    n_permutations: int = 999,
    seed: int | None = None,
    alternative: str = "two-sided",
    exact: bool | None = None,
) -> RandomizationResult:
    """Randomisation (permutation) test of the arm effect, re-assigning the arm across clusters.

    The arm labels (several columns are permuted jointly, e.g. ``["ta_model",
    "first_treated"]``) are re-assigned across the clusters that were randomised -- within
    strata when given, keeping the number of clusters per arm -- the analysis ``fit`` is rerun on
    every re-randomised copy of ``data``, and the observed statistic is compared with the
    distribution of re-randomised statistics. Under the sharp null of no effect on any unit this
    test is exact for any number of clusters (Young 2019).

    Parameters
    ----------
    data : pandas.DataFrame
        The analysis data (any design: a study panel, an event-study or stepped-wedge panel).
        Never modified; ``fit`` gets a fresh copy every time.
    fit : callable
        ``fit(data)`` returns the estimate (a number) or a result with ``tidy()`` (e.g.
        ``lambda d: cv.fit_growth(d, "research_use")``, ``lambda d: cv.fit_event_study(d, "y",
        cluster="provider_id").aggregate("simple")``, ``lambda d: cv.fit_stepped_wedge(d, "y",
        first_treated="start", model="immediate")``, a :func:`coevidence.fit_panel` fit).
        Derive every arm-dependent column (treatment indicators, interactions) inside ``fit``
        from the permuted ``arm`` columns.
    arm : str or list of str
        Column(s) holding the assigned arm (or start period; NaN is a label); constant within
        each cluster.
    cluster : str
        The assignment unit (e.g. ``"provider_id"``).
    term : str, optional
        The term of the fitted result to test (e.g. ``"time:ta_modelco_creation"``); needed when
        the result has more than one row.
    statistic : {"estimate", "t"}
        Permute the estimate itself, or its studentised version ``estimate / std_error`` (more
        robust when the sharp null fails but the average effect is zero; Young 2019, Wu & Ding
        2021).
    strata : str, optional
        Cluster-level column within which the arm was randomised (permutations stay within).
    n_permutations : int, default 999
        Random re-assignments to draw; when the design has at most this many distinct
        assignments, all are enumerated instead (exact test; e.g. C(8, 4) = 70).
    seed : int, optional
        Seed of the random re-assignments (results are reproducible given it).
    alternative : {"two-sided", "greater", "less"}
        Two-sided compares ``|T*| >= |T|``.
    exact : bool, optional
        Force enumeration (True; refused above 200,000 assignments) or sampling (False).
        Default: enumerate when the number of assignments is at most ``n_permutations``.

    Returns
    -------
    RandomizationResult
        Observed estimate and statistic, the p value, the distribution, counts and the seed.
        For sampled permutations ``p = (1 + #{T* as extreme as T}) / (1 + n_permutations)``;
        for enumeration ``p = #{assignments as extreme as observed} / n_assignments`` (the
        observed assignment is one of them).

    Raises
    ------
    ModelSpecificationError
        The arm (or strata) varies within a cluster (the message names the clusters), a column
        is missing, a single arm label, a statistic that cannot be extracted or is not finite, or
        ``fit`` failing on a re-randomised assignment.

    Notes
    -----
    The test is exact for the sharp null whatever the number of clusters, provided the
    permutation scheme is the design's randomisation (complete randomisation of clusters, within
    strata). Rollouts whose start periods were randomised are tested by permuting the start
    column; a design in which the start was chosen is not randomised and the test then rests on
    exchangeability. Ties are counted as extreme (relative tolerance 1e-10).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> d = pd.DataFrame({"provider": np.repeat(np.arange(8), 6),
    ...                   "ta_model": np.repeat(["push", "co_creation"] * 4, 6)})
    >>> d["y"] = 1.5 * (d["ta_model"] == "co_creation") + np.repeat(rng.normal(size=8), 6)
    >>> def effect(x):
    ...     m = x.groupby("ta_model")["y"].mean()
    ...     return m["co_creation"] - m["push"]
    >>> rt = randomization_test(d, effect, arm="ta_model", cluster="provider")
    >>> rt.exact, rt.n_permutations, round(rt.p_value, 3)  # 2 / 70: the smallest possible
    (True, 70, 0.029)
    """
    arms = _as_list(arm)
    if statistic not in STATISTICS:
        raise ModelSpecificationError(
            f"statistic must be one of {list(STATISTICS)}, got {statistic!r}"
        )
    if alternative not in ALTERNATIVES:
        raise ModelSpecificationError(
            f"alternative must be one of {list(ALTERNATIVES)}, got {alternative!r}"
        )
    if (
        not isinstance(n_permutations, (int, np.integer))
        or isinstance(n_permutations, bool)
        or n_permutations < 1
    ):
        raise ModelSpecificationError(
            f"n_permutations must be a positive integer, got {n_permutations!r}"
        )
    if not callable(fit):
        raise ModelSpecificationError("fit must be a callable taking the data")
    _check_inputs(data, arms, cluster, strata)
    source = data.copy()
    first = source.drop_duplicates(subset=[cluster])
    n_clusters = len(first)
    first_pos = np.flatnonzero(~source.duplicated(subset=[cluster]).to_numpy())
    row_cluster = pd.Index(first[cluster]).get_indexer(source[cluster])
    labels = first.groupby(arms, sort=True, dropna=False).ngroup().to_numpy()
    if len(np.unique(labels)) < 2:
        raise ModelSpecificationError(
            f"every cluster of {cluster!r} has the same arm ({', '.join(arms)}): nothing to permute"
        )
    rep_cluster = {int(lab): int(np.flatnonzero(labels == lab)[0]) for lab in np.unique(labels)}
    if strata is not None:
        skey = pd.factorize(first[strata], use_na_sentinel=False)[0]
    else:
        skey = np.zeros(n_clusters, dtype=np.int64)
    blocks = [np.flatnonzero(skey == s) for s in np.unique(skey)]
    n_assign = math.prod(_n_arrangements(labels[b]) for b in blocks)
    if exact is None:
        do_exact = n_assign <= n_permutations
    else:
        do_exact = bool(exact)
    if do_exact and n_assign > MAX_EXACT:
        raise ModelSpecificationError(
            f"{n_assign:,} distinct assignments is too many to enumerate (> {MAX_EXACT:,}); "
            "use exact=False with n_permutations"
        )

    def permuted(assign: np.ndarray) -> pd.DataFrame:
        src_cluster = np.array([rep_cluster[int(a)] for a in assign])
        rows = first_pos[src_cluster[row_cluster]]
        out = source.copy()
        for col in arms:
            out[col] = pd.Series(source[col].array.take(rows), index=source.index)
        return out

    def evaluate(frame: pd.DataFrame) -> tuple[float, float, str]:
        est, se, lab = _extract(fit(frame), term, statistic)
        return est, se, lab

    est_obs, se_obs, label = evaluate(source.copy())
    obs = est_obs if statistic == "estimate" else est_obs / se_obs
    if not np.isfinite(obs):
        raise ModelSpecificationError(f"the observed statistic is not finite ({obs})")

    if do_exact:
        per_block = [list(_multiset_arrangements(labels[b])) for b in blocks]

        def assignments() -> Iterator[np.ndarray]:
            for combo in itertools.product(*per_block):
                a = np.empty(n_clusters, dtype=np.int64)
                for b, vals in zip(blocks, combo, strict=True):
                    a[b] = vals
                yield a

        draws: Iterator[np.ndarray] = assignments()
    else:
        rng = np.random.default_rng(seed)

        def sampled() -> Iterator[np.ndarray]:
            for _ in range(int(n_permutations)):
                a = labels.copy()
                for b in blocks:
                    a[b] = labels[b][rng.permutation(len(b))]
                yield a

        draws = sampled()

    dist = []
    caught_all: list[str] = []
    for i, a in enumerate(draws):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                est, se, _ = evaluate(permuted(a))
            except ModelSpecificationError:
                raise
            except Exception as exc:
                raise ModelSpecificationError(
                    f"fit failed on re-randomised assignment {i + 1}: {type(exc).__name__}: {exc}"
                ) from exc
        caught_all += [f"{w.category.__name__}: {w.message}" for w in caught]
        val = est if statistic == "estimate" else est / se
        if not np.isfinite(val):
            raise ModelSpecificationError(
                f"the statistic is not finite ({val}) on re-randomised assignment {i + 1}"
            )
        dist.append(val)
    dist_a = np.asarray(dist, dtype=float)
    tol = TIE_RTOL * max(abs(obs), np.finfo(float).tiny)
    if alternative == "two-sided":
        extreme = np.abs(dist_a) >= abs(obs) - tol
    elif alternative == "greater":
        extreme = dist_a >= obs - tol
    else:
        extreme = dist_a <= obs + tol
    if do_exact:
        p = float(extreme.mean())
    else:
        p = float((1 + extreme.sum()) / (1 + len(dist_a)))
    distinct = list(dict.fromkeys(caught_all))
    notes = tuple(distinct[:5]) + (
        (f"... and {len(distinct) - 5} more distinct warnings",) if len(distinct) > 5 else ()
    )
    return RandomizationResult(
        estimate=est_obs,
        std_error=se_obs,
        observed=obs,
        p_value=p,
        distribution=dist_a,
        n_assignments=n_assign,
        exact=do_exact,
        seed=seed,
        statistic=statistic,
        alternative=alternative,
        term=label,
        arm=tuple(arms),
        cluster=cluster,
        strata=strata,
        n_clusters=n_clusters,
        n_warnings=len(caught_all),
        notes=notes,
    )
