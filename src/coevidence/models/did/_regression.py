"""Regression-based staggered-adoption estimators: Sun & Abraham, Gardner's two-stage, and TWFE.

All three work on a long (possibly unbalanced) panel given as integer codes. Each returns its
estimates with per-unit influence functions scaled like ``did``'s (``V = IF' IF / n**2``, i.e.
the unit-clustered CR0 sandwich), so the same aggregation and bootstrap code applies.

* Sun & Abraham (2021) interaction-weighted estimator: two-way FE regression with cohort x
  relative-period indicators (reference period ``-1 - anticipation``), never-treated units (or,
  if there are none, the last-treated cohort) as controls; cohort-specific effects are the
  group-time cells, aggregated with cohort-share weights.
* Gardner (2021) two-stage DiD (did2s): unit and period effects (and covariates) estimated on
  untreated observations only, removed from every outcome, then cell means of the residualised
  outcome for treated cohorts; the GMM influence function accounts for the first stage.
* TWFE: the conventional single-dummy two-way FE coefficient and the dynamic (event-time
  dummies) TWFE specification, kept as the biased benchmark.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lu_factor, lu_solve

from coevidence.exceptions import ModelSpecificationError
from coevidence.models.did._cs import Cells

__all__ = ["LongPanel", "sun_abraham_cells", "twfe_fit", "two_stage_cells"]


class LongPanel:
    """Codes and arrays of a long panel (rows sorted by unit, period)."""

    def __init__(self, y, ucode, tcode, periods, G_unit, level_unit, Xcov=None):
        self.y = y
        self.u = ucode
        self.t = tcode
        self.periods = periods
        self.G_unit = G_unit  # first-treated period label per unit (inf = never)
        self.level_unit = level_unit
        self.X = Xcov  # n_rows x p (no intercept) or None
        self.n_units = len(G_unit)
        self.T = len(periods)
        self.G = G_unit[ucode]
        self.time = periods[tcode]


def _twoway_resid(A: np.ndarray, u: np.ndarray, t: np.ndarray, nu: int, T: int) -> np.ndarray:
    """Residualise columns of A on unit and period dummies (exact, unbalanced allowed)."""

    def demean(a, codes, n):
        s = np.zeros((n, a.shape[1]))
        np.add.at(s, codes, a)
        c = np.bincount(codes, minlength=n).astype(float)
        return a - (s / c[:, None])[codes]

    Td = np.zeros((len(u), T))
    Td[np.arange(len(u)), t] = 1.0
    Td = demean(Td, u, nu)
    Au = demean(A, u, nu)
    return Au - Td @ np.linalg.lstsq(Td, Au, rcond=None)[0]


def _ols_if(
    Xr: np.ndarray, yr: np.ndarray, u: np.ndarray, nu: int
) -> tuple[np.ndarray, np.ndarray]:
    """OLS on residualised data; per-unit influence functions (n_units x k) for CR0 by unit."""
    XtX_inv = np.linalg.pinv(Xr.T @ Xr)
    beta = XtX_inv @ Xr.T @ yr
    e = yr - Xr @ beta
    S = np.zeros((nu, Xr.shape[1]))
    np.add.at(S, u, Xr * e[:, None])
    return beta, nu * S @ XtX_inv


def sun_abraham_cells(p: LongPanel, anticipation: int) -> tuple[Cells, list[str]]:
    notes = []
    G = p.G
    cohorts = np.unique(p.G_unit[np.isfinite(p.G_unit)])
    keep = np.ones(len(p.y), dtype=bool)
    treated_cohorts = cohorts
    if np.isfinite(p.G_unit).all():
        last = cohorts.max()
        treated_cohorts = cohorts[cohorts < last]
        keep = p.time < last - anticipation
        notes.append(
            f"no never-treated units: the last-treated cohort ({last:g}) is the control group, "
            f"and periods from {last - anticipation:g} on are dropped"
        )
        if len(treated_cohorts) == 0:
            raise ModelSpecificationError(
                "Sun-Abraham needs never-treated units or at least two cohorts"
            )
    ref_e = -1 - anticipation
    rel = p.time - G
    L = p.level_unit[p.u]
    cols, labels = [], []
    for g in treated_cohorts:
        for lev in dict.fromkeys(p.level_unit[p.G_unit == g].tolist()):
            for e in np.unique(rel[keep & (G == g) & (L == lev)]):
                if e == ref_e:
                    continue
                cols.append(((G == g) & (L == lev) & (rel == e) & keep).astype(float))
                labels.append((lev, g, g + e))
    if not cols:
        raise ModelSpecificationError("no cohort x period cells to estimate")
    D = np.column_stack(cols)[keep]
    Xextra = p.X[keep] if p.X is not None else np.zeros((keep.sum(), 0))
    u, t = p.u[keep], p.t[keep]
    R = _twoway_resid(np.column_stack([D, Xextra, p.y[keep]]), u, t, p.n_units, p.T)
    beta, inf = _ols_if(R[:, :-1], R[:, -1], u, p.n_units)
    k = len(labels)
    grp = np.array([g for _, g, _ in labels])
    levs = np.array([lv for lv, _, _ in labels], dtype=object)
    cells = Cells(
        level=levs,
        group=grp,
        time=np.array([t_ for _, _, t_ in labels]),
        estimate=beta[:k],
        inf=inf[:, :k],
        n_treated=np.array(
            [
                int(np.sum((p.G_unit == g) & (p.level_unit == lv)))
                for lv, g in zip(levs, grp, strict=True)
            ]
        ),
        n_control=np.full(k, int(np.sum(~np.isfinite(p.G_unit)))),
        reference=np.zeros(k, dtype=bool),
    )
    return _add_reference(cells, treated_cohorts, ref_e, p), notes


def _add_reference(cells: Cells, cohorts: np.ndarray, ref_e: float, p: LongPanel) -> Cells:
    n = p.n_units
    L = p.level_unit[p.u]
    pairs = [
        (lv, g)
        for g in cohorts
        for lv in dict.fromkeys(p.level_unit[p.G_unit == g].tolist())
        if np.any((p.G == g) & (L == lv) & (p.time == g + ref_e))
    ]
    if not pairs:
        return cells
    m = len(pairs)
    ref_g = np.array([g for _, g in pairs])
    return Cells(
        level=np.concatenate([cells.level, np.array([lv for lv, _ in pairs], dtype=object)]),
        group=np.concatenate([cells.group, ref_g]),
        time=np.concatenate([cells.time, ref_g + ref_e]),
        estimate=np.concatenate([cells.estimate, np.zeros(m)]),
        inf=np.hstack([cells.inf, np.zeros((n, m))]),
        n_treated=np.concatenate(
            [
                cells.n_treated,
                [int(np.sum((p.G_unit == g) & (p.level_unit == lv))) for lv, g in pairs],
            ]
        ),
        n_control=np.concatenate([cells.n_control, np.zeros(m, dtype=int)]),
        reference=np.concatenate([cells.reference, np.ones(m, dtype=bool)]),
    )


def _unit_map(u: np.ndarray, nu: int) -> sp.csr_matrix:
    """The sparse nu x n map summing rows by unit."""
    n = len(u)
    return sp.csr_matrix((np.ones(n), (u, np.arange(n))), shape=(nu, n))


def _unit_sums(a: np.ndarray | sp.spmatrix, u: np.ndarray, nu: int) -> np.ndarray:
    """Per-unit column sums of the rows of ``a`` (n x m, dense or sparse): nu x m dense."""
    out = _unit_map(u, nu) @ a
    return out.toarray() if sp.issparse(out) else np.asarray(out)


class _FirstStage:
    """Unit effects + ``Z`` (period dummies, covariates) fitted on the rows with weight 1.

    The normal equations ``A = [[D, C], [C', E]]`` (``D`` the diagonal of untreated row counts
    per unit, ``C = U0' Z0``, ``E = Z0' Z0``) are solved by eliminating the unit block
    exactly: the Schur complement ``S = E - C' D^-1 C`` is only ``q x q`` (q = periods - 1 +
    covariates), so time and memory are linear in rows and no n_units x n_units or
    n_units x p1 dense matrix is formed.
    """

    def __init__(self, Z: sp.csr_matrix, u: np.ndarray, nu: int, w0: np.ndarray):
        Z0 = sp.diags(w0) @ Z
        self.D = np.bincount(u, weights=w0, minlength=nu)
        self.C = (_unit_map(u, nu) @ Z0).tocsr()  # nu x q, sparse
        self.Ct_Dinv = (self.C.T @ sp.diags(1.0 / self.D)).tocsr()  # q x nu
        S = (Z0.T @ Z0).toarray() - (self.Ct_Dinv @ self.C).toarray()
        self.q = S.shape[0]
        if self.q:
            self.S_lu = lu_factor(S, check_finite=False)
            if not np.all(np.isfinite(self.S_lu[0])) or np.any(np.diag(self.S_lu[0]) == 0):
                raise RuntimeError("Factor is exactly singular")

    def solve(self, Mu: np.ndarray, Mz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``A^-1 [Mu; Mz]`` as (unit block nu x k, Z block q x k)."""
        if self.q:
            Bz = lu_solve(self.S_lu, Mz - self.Ct_Dinv @ Mu, check_finite=False)
            Bu = (Mu - self.C @ Bz) / self.D[:, None]
        else:
            Bz = np.zeros((0, Mu.shape[1]))
            Bu = Mu / self.D[:, None]
        return Bu, Bz


def two_stage_cells(p: LongPanel, anticipation: int) -> tuple[Cells, list[str]]:
    notes: list[str] = []
    n = len(p.y)
    nu = p.n_units
    untreated = p.time < p.G - anticipation  # never treated: G = inf
    if not untreated.any():
        raise ModelSpecificationError("two-stage DiD needs untreated observations")
    seen = np.zeros(nu, dtype=bool)
    seen[p.u[untreated]] = True
    treated_units = np.isfinite(p.G_unit)
    if (treated_units & ~seen).any():
        raise ModelSpecificationError(
            f"{int((treated_units & ~seen).sum())} treated units have no untreated period; their unit "
            "effects cannot be estimated (drop them or use another estimator)"
        )
    tseen = np.zeros(p.T, dtype=bool)
    tseen[p.t[untreated]] = True
    # first-stage design: unit dummies, period dummies (first dropped), covariates; the unit
    # block is never formed (group-wise elimination in _FirstStage)
    rows = np.arange(n)
    tcols = np.flatnonzero(tseen)[1:]
    tmap = -np.ones(p.T, dtype=int)
    tmap[tcols] = np.arange(len(tcols))
    has_t = tmap[p.t] >= 0
    Tm = sp.csr_matrix(
        (np.ones(has_t.sum()), (rows[has_t], tmap[p.t][has_t])), shape=(n, len(tcols))
    )
    blocks = [Tm]
    if p.X is not None:
        blocks.append(sp.csr_matrix(p.X))
    Z = sp.hstack(blocks).tocsr()
    w0 = untreated.astype(float)
    fs = _FirstStage(Z, p.u, nu, w0)
    y0 = w0 * p.y
    gu, gz = fs.solve(
        np.bincount(p.u, weights=y0, minlength=nu)[:, None], np.asarray(Z.T @ y0).reshape(-1, 1)
    )
    ytil = p.y - gu[p.u, 0] - Z @ gz[:, 0]
    e1 = w0 * ytil
    # unobserved periods among untreated rows cannot be predicted
    if (~tseen[p.t] & ~untreated).any():
        raise ModelSpecificationError(
            "a period has no untreated observations; its effect is not identified"
        )
    # second stage: cells (g, t) for treated units at every period (leads and lags)
    G, time = p.G, p.time
    L = p.level_unit[p.u]
    trows = np.isfinite(G)
    keys = list(
        dict.fromkeys(zip(L[trows].tolist(), G[trows].tolist(), time[trows].tolist(), strict=True))
    )
    keys.sort(key=lambda x: (str(x[0]), x[1], x[2]))
    k = len(keys)
    index = {key: j for j, key in enumerate(keys)}
    col = np.array(
        [
            index[key]
            for key in zip(L[trows].tolist(), G[trows].tolist(), time[trows].tolist(), strict=True)
        ],
        dtype=np.int64,
    )
    X2 = sp.csr_matrix((np.ones(trows.sum()), (rows[trows], col)), shape=(n, k))
    counts = np.asarray(X2.sum(axis=0)).ravel()
    beta = np.asarray(X2.T @ ytil).ravel() / counts
    e2 = ytil - X2 @ beta
    e2[~trows] = 0.0
    # GMM influence (Gardner 2021): psi_i = (X2'X2)^-1 [X2_i' e2_i - X2'X1 (X10'X10)^-1 X10_i' e1_i]
    # with B = (X10'X10)^-1 X1'X2 (p1 x k) solved block-wise, and X10_i' e1_i B summed per unit
    # as sum_r e1_r (X1_r B): everything is n x k or n_units x k
    Bu, Bz = fs.solve(_unit_sums(X2, p.u, nu), np.asarray((Z.T @ X2).todense()))
    X1B = Bu[p.u] + np.asarray(Z @ Bz)  # n x k
    S1B = _unit_sums(e1[:, None] * X1B, p.u, nu)  # n_units x k
    S2 = _unit_sums(sp.diags(e2) @ X2, p.u, nu)  # n_units x k
    psi = (S2 - S1B) / counts[None, :]
    inf = nu * psi
    grp = np.array([g for _, g, _ in keys])
    levs = np.array([lv for lv, _, _ in keys], dtype=object)
    cells = Cells(
        level=levs,
        group=grp,
        time=np.array([t for _, _, t in keys]),
        estimate=beta,
        inf=inf,
        n_treated=np.array(
            [
                int(np.sum((p.G_unit == g) & (p.level_unit == lv)))
                for lv, g in zip(levs, grp, strict=True)
            ]
        ),
        n_control=np.full(k, int(np.sum(~np.isfinite(p.G_unit)))),
        reference=np.zeros(k, dtype=bool),
    )
    notes.append(f"first stage fitted on {int(untreated.sum())} untreated observations")
    return cells, notes


def twfe_fit(p: LongPanel, anticipation: int) -> dict[str, np.ndarray | float]:
    """Static single-dummy TWFE coefficient and the dynamic TWFE event-study coefficients."""
    G, time = p.G, p.time
    Xextra = p.X if p.X is not None else np.zeros((len(p.y), 0))
    Dst = (time >= G - anticipation).astype(float)
    R = _twoway_resid(np.column_stack([Dst, Xextra, p.y]), p.u, p.t, p.n_units, p.T)
    b, inf = _ols_if(R[:, :-1], R[:, -1], p.u, p.n_units)
    rel = time - G
    es = np.unique(rel[np.isfinite(rel)])
    ref_e = -1 - anticipation
    es = es[es != ref_e]
    extra_ref: list[float] = []

    def design(es_):
        D = np.column_stack([(rel == e).astype(float) for e in es_])
        return _twoway_resid(np.column_stack([D, Xextra, p.y]), p.u, p.t, p.n_units, p.T)

    R2 = design(es)
    # without never-treated units, unit, period and relative-period effects are collinear (a
    # linear trend in event time, and any pattern shared by all cohorts' timing): drop extra
    # reference periods from the ends of the event window until the design has full rank
    order = [e for pair in zip(es, es[::-1], strict=False) for e in pair]
    while np.linalg.matrix_rank(R2[:, :-1]) < R2.shape[1] - 1 and len(es) > 1:
        nxt = next(e for e in order if e in es and e not in extra_ref)
        extra_ref.append(float(nxt))
        es = es[es != nxt]
        R2 = design(es)
    if np.linalg.matrix_rank(R2[:, :-1]) < R2.shape[1] - 1:
        raise ModelSpecificationError("dynamic TWFE is not identified")
    b2, inf2 = _ols_if(R2[:, :-1], R2[:, -1], p.u, p.n_units)
    return {
        "static": float(b[0]),
        "static_inf": inf[:, 0],
        "event_times": es,
        "event": b2[: len(es)],
        "event_inf": inf2[:, : len(es)],
        "ref_e": ref_e,
        "extra_ref": extra_ref or None,
    }
