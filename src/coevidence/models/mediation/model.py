r"""Multilevel mediation: treatment at the cluster level, mediator and outcome repeated below.

In the 2-1-1 design (Krull & MacKinnon 2001; Zhang, Zyphur & Preacher 2009) the treatment
:math:`X_j` is assigned to clusters (organisations, providers), and the mediator
:math:`M_{ij}` and outcome :math:`Y_{ij}` are measured on the level-1 rows (respondents,
waves). The mediator is split into its cluster mean and the deviation from it,

.. math::

    M_{ij} = \bar M_j + (M_{ij} - \bar M_j),

and two random-intercept models are fitted with :func:`coevidence.fit_mixed`:

.. math::

    M_{ij} &= a_0 + a X_j + \gamma' w_{ij} + u_j + e_{ij} \\
    Y_{ij} &= c_0 + c' X_j + b_W (M_{ij} - \bar M_j) + b_B \bar M_j + \delta' w_{ij}
              + v_j + \varepsilon_{ij}

A cluster-level treatment can move only the cluster mean of the mediator, so the indirect
effect is :math:`a\,b_B`, carried by the *between* part of the b path; :math:`b_W` (how a
row's outcome moves with its own mediator, relative to its cluster) is not part of it. The
contextual effect :math:`b_B - b_W` is the difference between the two parts (Raudenbush &
Bryk 2002): a non-zero value means clusters differ in the outcome by more (or less) than
their members' mediator values explain. Conflating the two, as a single-level analysis or an
uncentred mediator does, gives a blend of :math:`b_W` and :math:`b_B` (Zhang et al. 2009;
Preacher, Zyphur & Zhang 2010).

In the 1-1-1 design the treatment (or exposure) varies within clusters; it is split the same
way and the model gives a within indirect effect :math:`a_W b_W` and a between indirect effect
:math:`a_B b_B`.

Intervals for the products are Monte Carlo (draws from the joint normal of the estimates;
MacKinnon, Lockwood & Williams 2004; Preacher & Selig 2012) or from a cluster bootstrap
(clusters resampled with replacement, both models refitted).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from coevidence.exceptions import ModelSpecificationError, OptionError, StudyValidationError
from coevidence.models._shared.data import check_columns, drop_missing
from coevidence.models._shared.options import (
    as_generator,
    check_choice,
    check_conf_level,
)
from coevidence.models.mediation.results import MediationResult

__all__ = ["fit_mediation"]

DESIGNS = ("2-1-1", "1-1-1")
CIS = ("monte_carlo", "bootstrap")


def _q(name: str) -> str:
    """A column name as a formula term (backquoted when it is not an identifier)."""
    return name if name.isidentifier() else f"`{name}`"


def _prepare(data, outcome, treatment, mediator, cluster, covariates, design):
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    for name, v in (("outcome", outcome), ("treatment", treatment), ("mediator", mediator),
                    ("cluster", cluster)):
        if not isinstance(v, str) or not v:
            raise OptionError(f"{name} must be a column name; got {v!r}")
    covs = [] if covariates is None else ([covariates] if isinstance(covariates, str)
                                          else list(covariates))
    roles = [outcome, treatment, mediator, cluster, *covs]
    if len(set(roles)) != len(roles):
        raise OptionError(f"outcome, treatment, mediator, cluster and covariates must be "
                          f"different columns; got {roles}")
    check_columns(data, roles, numeric=[outcome, treatment, mediator, *covs])
    mw, mb = f"{mediator}_within", f"{mediator}_between"
    xw, xb = f"{treatment}_within", f"{treatment}_between"
    new = [mw, mb] + ([xw, xb] if design == "1-1-1" else [])
    clash = [c for c in new if c in roles]
    if clash:
        raise OptionError(f"the centred columns {clash} would overwrite columns of the model")
    cols = list(dict.fromkeys(roles))
    work, n_dropped = drop_missing(data[cols], cols, "fit_mediation")
    work = work.copy()
    if cluster in work and work[cluster].isna().any():  # pragma: no cover - drop_missing did
        raise ModelSpecificationError("missing cluster ids")
    codes = work.groupby(cluster, sort=False, observed=True).ngroup().to_numpy()
    n_clusters = int(codes.max()) + 1 if len(codes) else 0
    if n_clusters < 3:
        raise ModelSpecificationError(f"fit_mediation needs at least 3 clusters; {cluster!r} "
                                      f"has {n_clusters}")
    m = work[mediator].to_numpy(dtype=float)
    size = np.bincount(codes)
    mbar = (np.bincount(codes, weights=m) / size)[codes]
    work[mw] = m - mbar
    work[mb] = mbar
    x = work[treatment].to_numpy(dtype=float)
    xbar = (np.bincount(codes, weights=x) / size)[codes]
    varies = np.abs(x - xbar) > 1e-12 * max(1.0, float(np.abs(x).max()))
    if design == "2-1-1" and varies.any():
        g = work[cluster].to_numpy()[np.flatnonzero(varies)[0]]
        failures = pd.DataFrame([{
            "table": "data", "row": None, "column": treatment, "value": g,
            "rule": f"design='2-1-1' needs the treatment constant within each {cluster!r}; "
                    f"it varies in {int(np.unique(codes[varies]).size)} clusters (first: {g!r}); "
                    "use design='1-1-1' for a level-1 treatment"}])
        raise StudyValidationError(failures, what="the input of fit_mediation")
    if design == "1-1-1":
        if not varies.any():
            raise ModelSpecificationError(
                f"design='1-1-1' needs a treatment that varies within clusters; {treatment!r} "
                f"is constant within every {cluster!r}: use design='2-1-1'")
        work[xw] = x - xbar
        work[xb] = xbar
    if float(np.var(work[mw])) == 0:
        raise ModelSpecificationError(f"the mediator {mediator!r} does not vary within clusters; "
                                      "b_within is not identified")
    return work, covs, n_dropped, n_clusters, size


class _Spec:
    """What the two component models are and which coefficients are the paths (pickles)."""

    def __init__(self, outcome, treatment, mediator, cluster, covs, design):
        self.outcome, self.treatment, self.mediator, self.cluster = (
            outcome, treatment, mediator, cluster)
        self.covs, self.design = list(covs), design
        self.mw, self.mb = f"{mediator}_within", f"{mediator}_between"
        self.xw, self.xb = f"{treatment}_within", f"{treatment}_between"
        cov = "".join(f" + {_q(c)}" for c in covs)
        re = f" + (1 | {_q(cluster)})"
        if design == "2-1-1":
            self.x_terms = [treatment]
        else:
            self.x_terms = [self.xw, self.xb]
        xs = " + ".join(_q(t) for t in self.x_terms)
        self.mediator_formula = f"{_q(mediator)} ~ {xs}{cov}{re}"
        self.outcome_formula = (f"{_q(outcome)} ~ {xs} + {_q(self.mw)} + {_q(self.mb)}"
                                f"{cov}{re}")

    # the row order of the result
    def terms(self) -> list[str]:
        if self.design == "2-1-1":
            return ["a", "b_within", "b_between", "contextual", "direct", "indirect", "total"]
        return ["a_within", "a_between", "b_within", "b_between", "contextual",
                "direct_within", "direct_between", "indirect_within", "indirect_between",
                "total_within", "total_between"]

    def paths(self, med_params: pd.Series, out_params: pd.Series) -> dict[str, float]:
        """Every effect from the two models' coefficients (works on arrays of draws too)."""
        bw, bb = out_params[self.mw], out_params[self.mb]
        out = {"b_within": bw, "b_between": bb, "contextual": bb - bw}
        if self.design == "2-1-1":
            a, c = med_params[self.treatment], out_params[self.treatment]
            out.update(a=a, direct=c, indirect=a * bb, total=c + a * bb)
        else:
            aw, ab = med_params[self.xw], med_params[self.xb]
            cw, cb = out_params[self.xw], out_params[self.xb]
            out.update(a_within=aw, a_between=ab, direct_within=cw, direct_between=cb,
                       indirect_within=aw * bw, indirect_between=ab * bb,
                       total_within=cw + aw * bw, total_between=cb + ab * bb)
        return out

    def products(self) -> tuple[str, ...]:
        return (("indirect", "total") if self.design == "2-1-1" else
                ("indirect_within", "indirect_between", "total_within", "total_between"))


def _fit_parts(spec: _Spec, work: pd.DataFrame, fit_kwargs: dict):
    from coevidence.models.mixed.api import fit_mixed

    med = fit_mixed(spec.mediator_formula, work, **fit_kwargs)
    out = fit_mixed(spec.outcome_formula, work, **fit_kwargs)
    return med, out


def _delta_se(spec: _Spec, med, out) -> dict[str, float]:
    """First-order delta-method (Sobel) SEs of the product terms (independent models)."""
    pm, po = med.params, out.params
    Vm, Vo = med.vcov, out.vcov
    res: dict[str, float] = {}

    def prod(aname, bname, cname=None):
        a, b = pm[aname], po[bname]
        g = {bname: a}
        if cname is not None:
            g[cname] = 1.0
        names = list(g)
        gv = np.array([g[n] for n in names])
        vo = float(gv @ Vo.loc[names, names].to_numpy() @ gv)
        return float(np.sqrt(b * b * Vm.loc[aname, aname] + vo))

    if spec.design == "2-1-1":
        res["indirect"] = prod(spec.treatment, spec.mb)
        res["total"] = prod(spec.treatment, spec.mb, spec.treatment)
    else:
        res["indirect_within"] = prod(spec.xw, spec.mw)
        res["indirect_between"] = prod(spec.xb, spec.mb)
        res["total_within"] = prod(spec.xw, spec.mw, spec.xw)
        res["total_between"] = prod(spec.xb, spec.mb, spec.xb)
    return res


def _monte_carlo(spec: _Spec, med, out, n_draws: int, rng: np.random.Generator) -> np.ndarray:
    """Draws of every effect: coefficients from the joint normal of both models' estimates
    (block diagonal: the models are fitted separately)."""
    pm, po = med.params, out.params
    dm = rng.multivariate_normal(pm.to_numpy(), med.vcov.to_numpy(), size=n_draws,
                                 method="cholesky" if _pd(med.vcov) else "eigh")
    do = rng.multivariate_normal(po.to_numpy(), out.vcov.to_numpy(), size=n_draws,
                                 method="cholesky" if _pd(out.vcov) else "eigh")
    eff = spec.paths(pd.DataFrame(dm, columns=pm.index), pd.DataFrame(do, columns=po.index))
    return np.column_stack([np.asarray(eff[t], dtype=float) for t in spec.terms()])


def _pd(V: pd.DataFrame) -> bool:
    try:
        np.linalg.cholesky(V.to_numpy())
    except np.linalg.LinAlgError:
        return False
    return True


def _bootstrap(spec: _Spec, work: pd.DataFrame, n_draws: int, rng: np.random.Generator,
               fit_kwargs: dict) -> tuple[np.ndarray, int]:
    """Cluster bootstrap: resample clusters with replacement, recentre, refit both models."""
    g = work[spec.cluster].to_numpy()
    codes, uniq = pd.factorize(g)
    rows_of = [np.flatnonzero(codes == k) for k in range(len(uniq))]
    G = len(uniq)
    out = np.full((n_draws, len(spec.terms())), np.nan)
    failed = 0
    base_cols = [c for c in work.columns]
    for r in range(n_draws):
        pick = rng.integers(0, G, size=G)
        idx = np.concatenate([rows_of[k] for k in pick])
        new_id = np.repeat(np.arange(G), [len(rows_of[k]) for k in pick])
        boot = work.iloc[idx][base_cols].reset_index(drop=True)
        boot[spec.cluster] = new_id  # a cluster drawn twice is two clusters
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                med, mod = _fit_parts(spec, boot, fit_kwargs)
            eff = spec.paths(med.params, mod.params)
            out[r] = [float(eff[t]) for t in spec.terms()]
        except Exception:  # noqa: BLE001 - counted and reported
            failed += 1
    return out, failed


def fit_mediation(
    data: pd.DataFrame,
    outcome: str,
    *,
    treatment: str,
    mediator: str,
    cluster: str,
    covariates: Sequence[str] | str | None = None,
    design: str = "2-1-1",
    ci: str = "monte_carlo",
    n_draws: int = 5000,
    seed: int | np.random.Generator | np.random.SeedSequence | None = None,
    conf_level: float = 0.95,
    reml: bool = True,
    df_method: str = "satterthwaite",
) -> MediationResult:
    """Multilevel mediation with the b path split into within- and between-cluster parts.

    Parameters
    ----------
    data : pandas.DataFrame
        Long data, one row per level-1 observation (respondent, or organisation x wave).
        Not modified; rows with a missing value in a used column are dropped with a
        :class:`~coevidence.exceptions.MissingDataWarning` giving the count.
    outcome : str
        The outcome column (level 1).
    treatment : str
        The treatment column (numeric, e.g. 0/1 for push / co-creation). ``design="2-1-1"``:
        constant within clusters (assigned at level 2, or at level 3 and hence constant in
        every level-2 cluster).
    mediator : str
        The mediator column (level 1); it is centred at its cluster means
        (``<mediator>_within`` and ``<mediator>_between`` in the component models).
    cluster : str
        The level-2 cluster column (each model has a random intercept for it).
    covariates : str or sequence of str, optional
        Numeric columns added to both models (centre them yourself if their scale matters).
    design : {"2-1-1", "1-1-1"}
        The levels of treatment, mediator and outcome. ``"1-1-1"`` splits the treatment at
        its cluster means too and reports within and between a paths, direct and indirect
        effects.
    ci : {"monte_carlo", "bootstrap"}
        Intervals of the product terms: Monte Carlo draws from the joint normal of the
        estimates (paths keep their model-based t intervals), or a cluster bootstrap
        (every row gets the percentile interval and the bootstrap SD as its SE).
    n_draws : int, default 5000
        Monte Carlo draws or bootstrap replications.
    seed : int, Generator, SeedSequence or None
    conf_level : float, default 0.95
    reml, df_method
        Passed to :func:`coevidence.fit_mixed` for both component models.

    Returns
    -------
    MediationResult
        ``tidy()`` rows (2-1-1): ``a``, ``b_within``, ``b_between``, ``contextual``
        (b_between - b_within), ``direct`` (c'), ``indirect`` (a * b_between) and ``total``
        (c' + a * b_between); the component fits are ``mediator_model`` and
        ``outcome_model``.

    Notes
    -----
    Paths, direct and contextual effects have the component model's SE and Satterthwaite df
    (the contextual effect is the contrast b_between - b_within of the outcome model). The
    product rows have the first-order delta-method (Sobel) SE and z statistic; their
    interval is the Monte Carlo (or bootstrap) percentile interval and their p-value the
    Monte Carlo two-sided tail share, which unlike the Sobel test does not assume the
    product is normal. The estimator uses observed cluster means (the manifest contextual
    model); latent-mean MSEM (lavaan, Mplus) corrects their sampling error, which matters
    for small clusters with a low mediator ICC (Lüdtke et al. 2008). See
    ``docs/models/mediation.md`` for the assumptions (sequential ignorability, no
    treatment-mediator interaction) and what the design identifies.

    Examples
    --------
    >>> import numpy as np, pandas as pd, coevidence as cv
    >>> rng = np.random.default_rng(1)
    >>> g = np.repeat(np.arange(40), 10); x = (np.arange(40) % 2)[g]
    >>> m = 0.5 * x + rng.normal(0, 0.5, 40)[g] + rng.normal(size=400)
    >>> d = pd.DataFrame({"org": g, "arm": x, "use": m})
    >>> mbar = d.groupby("org")["use"].transform("mean")
    >>> d["practice"] = (0.4 * (m - mbar) + 0.8 * mbar + rng.normal(0, 0.5, 40)[g]
    ...                  + rng.normal(size=400))
    >>> res = cv.fit_mediation(d, "practice", treatment="arm", mediator="use", cluster="org",
    ...                        n_draws=2000, seed=1)
    >>> res.tidy()["term"].tolist()
    ['a', 'b_within', 'b_between', 'contextual', 'direct', 'indirect', 'total']
    """
    check_choice("design", design, DESIGNS)
    check_choice("ci", ci, CIS)
    level = check_conf_level(conf_level)
    if isinstance(n_draws, bool) or not isinstance(n_draws, (int, np.integer)) or n_draws < 10:
        raise OptionError(f"n_draws must be an integer >= 10; got {n_draws!r}")
    n_draws = int(n_draws)
    rng = as_generator(seed)
    work, covs, n_dropped, n_clusters, sizes = _prepare(
        data, outcome, treatment, mediator, cluster, covariates, design)
    spec = _Spec(outcome, treatment, mediator, cluster, covs, design)
    fit_kwargs: dict[str, Any] = {"reml": reml, "df_method": df_method, "conf_level": level}
    med, out = _fit_parts(spec, work, fit_kwargs)
    est = spec.paths(med.params, out.params)
    estimates = np.array([float(est[t]) for t in spec.terms()])
    # model-based SE and df of the linear rows
    tm = med.tidy().set_index("term")
    to = out.tidy().set_index("term")
    se = {}
    df = {}
    for t, (frame, coef) in _linear_rows(spec).items():
        tab = tm if frame == "m" else to
        se[t] = float(tab.loc[coef, "std_error"])
        df[t] = float(tab.loc[coef, "df"])
    L = np.zeros(len(out.params))
    names = list(out.params.index)
    L[names.index(spec.mb)] = 1.0
    L[names.index(spec.mw)] = -1.0
    se["contextual"] = float(np.sqrt(L @ out.vcov.to_numpy() @ L))
    df["contextual"] = out.df_for(L)
    se.update(_delta_se(spec, med, out))
    failed = 0
    if ci == "monte_carlo":
        draws = _monte_carlo(spec, med, out, n_draws, rng)
    else:
        draws, failed = _bootstrap(spec, work, n_draws, rng, fit_kwargs)
        if failed:
            warnings.warn(f"fit_mediation: {failed} of {n_draws} bootstrap replications failed "
                          "and were left out", RuntimeWarning, stacklevel=2)
    icc_m = _icc(med)
    return MediationResult(
        spec=spec, terms=spec.terms(), estimate=estimates,
        std_error=np.array([se[t] for t in spec.terms()]),
        df=np.array([df.get(t, np.inf) for t in spec.terms()]),
        products=spec.products(), draws=draws, ci=ci, conf_level=level,
        mediator_model=med, outcome_model=out,
        info={"design": design, "ci": ci, "n_draws": n_draws, "n_failed": failed,
              "n_clusters": n_clusters, "nobs": len(work), "n_dropped": int(n_dropped),
              "cluster_size_mean": float(np.mean(sizes)), "icc_mediator": icc_m,
              "mediator_formula": spec.mediator_formula,
              "outcome_formula": spec.outcome_formula, "df_method": df_method},
    )


def _linear_rows(spec: _Spec) -> dict[str, tuple[str, str]]:
    rows = {"b_within": ("o", spec.mw), "b_between": ("o", spec.mb)}
    if spec.design == "2-1-1":
        rows.update(a=("m", spec.treatment), direct=("o", spec.treatment))
    else:
        rows.update(a_within=("m", spec.xw), a_between=("m", spec.xb),
                    direct_within=("o", spec.xw), direct_between=("o", spec.xb))
    return rows


def _icc(med) -> float:
    vc = med.variance_components()
    try:
        var = vc.loc[vc["term2"].isna(), "vcov"].to_numpy(dtype=float)
        return float(var[0] / var.sum())
    except Exception:  # noqa: BLE001 - a diagnostic only
        return float("nan")
