"""Random-effects structure for the fast engine: levels, nesting and the theta layout.

A *level* is one grouping factor with every random-effect term on it (``(1 | g) + (0 + x | g)``
gives one level with two columns and a block-diagonal relative factor). The fast engine needs
the levels to form a nesting chain: sorted by number of groups (finest first), every group of a
level lies inside exactly one group of each coarser level. Crossed factors are not supported.

Internally the groups of every level are renumbered so that, for each coarser level, the
ancestor codes of a finer level are non-decreasing. Sums over the children of each ancestor
are then ``np.add.reduceat`` calls over contiguous runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._engine import MixedProblem

__all__ = ["Level", "Structure", "analyse", "lme4_term_order"]


@dataclass
class Level:
    """One grouping factor (all the terms on it), with groups in internal (sorted) order."""

    key: str
    term_idx: list[int]  # indices into problem.terms (problem order)
    col_slices: list[slice]  # columns of each term inside the level's q columns
    codes: np.ndarray  # per row: internal group code 0..G-1 (int32 for int32 problem codes)
    used: np.ndarray  # internal code -> index into the term's original levels
    G: int
    q: int


@dataclass
class Structure:
    """The nesting chain and the mapping between theta and the per-level factors Lambda."""

    levels: list[Level]  # finest first
    anc: dict[tuple[int, int], np.ndarray]  # (i, j), j > i: ancestor code at j of groups at i
    starts: dict[tuple[int, int], np.ndarray]  # reduceat start indices for anc[(i, j)]
    theta_level: np.ndarray  # theta element -> level index
    theta_row: np.ndarray  # theta element -> row in that level's Lambda
    theta_col: np.ndarray  # theta element -> column in that level's Lambda
    lower: np.ndarray  # lme4 lower bounds (0 on diagonals, -inf elsewhere)
    theta_term: np.ndarray  # theta element -> problem term index
    term_order: list[int]  # problem term indices in lme4's order
    term_level: dict[int, tuple[int, slice]]  # problem term -> (level, columns in the level)

    def report_theta(self, theta: np.ndarray) -> np.ndarray:
        """theta as reported: per term (lme4 order) the full lower triangle, column-major.

        Equal to the optimisation vector except for a multi-column *uncorrelated* term (not
        an lme4 structure), whose structurally zero off-diagonal elements are included so that
        every term contributes k (k + 1) / 2 elements.
        """
        lams = self.lambdas(theta)
        out: list[float] = []
        for t_i in self.term_order:
            li, sl = self.term_level[t_i]
            lam = lams[li][sl, sl]
            k = lam.shape[0]
            out.extend(lam[r, c] for c in range(k) for r in range(c, k))
        return np.asarray(out, float)

    def report_lower(self) -> np.ndarray:
        """lme4's bounds in the layout of :meth:`report_theta`."""
        out: list[float] = []
        for t_i in self.term_order:
            k = self.term_level[t_i][1].stop - self.term_level[t_i][1].start
            out.extend(0.0 if r == c else -np.inf for c in range(k) for r in range(c, k))
        return np.asarray(out)

    def lambdas(self, theta: np.ndarray) -> list[np.ndarray]:
        """Per-level relative covariance factors Lambda_i (q_i x q_i) from theta."""
        lams = [np.zeros((lv.q, lv.q)) for lv in self.levels]
        for k in range(len(theta)):
            lams[self.theta_level[k]][self.theta_row[k], self.theta_col[k]] = theta[k]
        return lams

    def canonical(self, theta: np.ndarray) -> np.ndarray:
        """The same model with every diagonal element of Lambda >= 0 (lme4's bounded form).

        Lambda Lambda' is unchanged when a column of Lambda changes sign, so the deviance is
        too: flip every column whose diagonal element is negative.
        """
        lams = self.lambdas(theta)
        for lam in lams:
            neg = np.diag(lam) < 0
            lam[:, neg] *= -1.0
        return np.array(
            [
                lams[lv][r, c]
                for lv, r, c in zip(self.theta_level, self.theta_row, self.theta_col, strict=True)
            ]
        )

    def start(self) -> np.ndarray:
        """lme4's default start: 1 on the diagonal elements, 0 elsewhere."""
        return np.where(self.theta_row == self.theta_col, 1.0, 0.0)


def lme4_term_order(n_levels: list[int]) -> list[int]:
    """The order in which lme4 (``mkReTrms``) stores terms: by number of levels, decreasing.

    lme4 reorders only if some later term has more levels than an earlier one, and then uses
    ``rev(order(nl))`` (so ties come out in reverse order); reproduced exactly here.
    """
    nl = np.asarray(n_levels)
    if len(nl) > 1 and np.any(np.diff(nl) > 0):
        return [int(i) for i in np.argsort(nl, kind="stable")[::-1]]
    return list(range(len(nl)))


def _code_dtype(codes: np.ndarray) -> type:
    """The dtype of the internal per-row codes: int32 when the problem's codes are (at most)
    32-bit integers (``build_problem`` gives int32: half the memory of int64 for every
    per-row code array), int64 otherwise."""
    small = codes.dtype.kind in "iu" and codes.dtype.itemsize <= 4
    return np.int32 if small and len(codes) < np.iinfo(np.int32).max else np.int64


def _used_codes(codes, dtype=np.int64) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(codes, return_inverse=True)``, by counting when the codes are small
    non-negative integers (the usual case: category codes), which needs no sort.

    The inverse (per row) has ``dtype`` (:func:`analyse` asks for :func:`_code_dtype`) and is
    ``codes`` itself (no copy) when every code is in use and ``codes`` already has it."""
    codes = np.asarray(codes)
    n = len(codes)
    if n and codes.dtype.kind in "iu":
        lo, hi = int(codes.min()), int(codes.max())
        if lo >= 0 and hi < 4 * n + 1024:
            present = np.bincount(codes, minlength=hi + 1) > 0
            used = np.flatnonzero(present)
            if len(used) == hi + 1:  # every code in use: the codes are their own ranks
                return used, codes.astype(dtype, copy=False)
            rank = (np.cumsum(present) - 1).astype(dtype)
            return used, rank[codes]
    used, inv = np.unique(np.asarray(codes, dtype=np.int64), return_inverse=True)
    return used, inv.astype(dtype)


def analyse(problem: MixedProblem) -> tuple[Structure | None, str]:
    """Check the terms form a nesting chain and build the :class:`Structure`.

    Returns ``(None, reason)`` if the fast engine cannot fit the model exactly.
    """
    terms = problem.terms
    n = len(problem.y)
    if not terms:
        return None, "the model has no random-effect terms"
    # group terms into factors by grouping-factor name; identical codes required
    keys: list[str] = []
    members: dict[str, list[int]] = {}
    for t_i, t in enumerate(terms):
        codes = np.asarray(t.codes)
        if codes.shape != (n,) or np.asarray(t.Z).shape != (n, len(t.columns)):
            return None, f"term ({' + '.join(t.columns)} | {t.group}) has arrays of the wrong shape"
        if t.group in members:
            if not np.array_equal(codes, np.asarray(terms[members[t.group][0]].codes)):
                return None, f"two terms on factor {t.group!r} carry different group codes"
            members[t.group].append(t_i)
        else:
            keys.append(t.group)
            members[t.group] = [t_i]
    # per factor: used groups only (lme4 drops unused levels)
    raw: list[tuple[str, np.ndarray, np.ndarray]] = []
    for key in keys:
        codes = np.asarray(terms[members[key][0]].codes)
        raw.append((key, *_used_codes(codes, _code_dtype(codes))))
    order = sorted(range(len(raw)), key=lambda i: -len(raw[i][1]))  # finest first (stable)
    raw = [raw[i] for i in order]
    keys = [keys[i] for i in order]
    # nesting chain check, consecutive pairs
    up: list[np.ndarray] = []  # up[i]: group at level i -> group at level i+1 (raw codes)
    for i in range(len(raw) - 1):
        fine, coarse = raw[i][2], raw[i + 1][2]
        parent = np.full(len(raw[i][1]), -1, dtype=np.int64)
        parent[fine] = coarse
        if not np.array_equal(parent[fine], coarse):
            return None, (
                f"grouping factors {raw[i][0]!r} and {raw[i + 1][0]!r} are crossed, not nested "
                "(the fast engine handles nested or single grouping factors only)"
            )
        up.append(parent)
    # internal renumbering, coarsest first: sort groups by (ancestor chain, own code)
    n_lev = len(raw)
    new_of_raw: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * n_lev
    raw_of_new: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * n_lev
    G_top = len(raw[-1][1])
    new_of_raw[-1] = np.arange(G_top)
    raw_of_new[-1] = np.arange(G_top)
    for i in range(n_lev - 2, -1, -1):
        parent_new = new_of_raw[i + 1][up[i]]
        perm = np.lexsort((np.arange(len(parent_new)), parent_new))
        raw_of_new[i] = perm
        inv = np.empty_like(perm)
        inv[perm] = np.arange(len(perm))
        new_of_raw[i] = inv
    levels: list[Level] = []
    for i, (key, used, inv) in enumerate(raw):
        cols: list[slice] = []
        q = 0
        for t_i in members[key]:
            k = len(terms[t_i].columns)
            cols.append(slice(q, q + k))
            q += k
        levels.append(
            Level(
                key=key,
                term_idx=list(members[key]),
                col_slices=cols,
                # per row, in the dtype of the problem's codes (int32: 4 MB at 1M rows); the
                # top level's map is the identity, so its codes are the problem's (no copy)
                codes=inv if i == n_lev - 1 else new_of_raw[i].astype(inv.dtype)[inv],
                used=used[raw_of_new[i]],
                G=len(used),
                q=q,
            )
        )
    anc: dict[tuple[int, int], np.ndarray] = {}
    for i in range(n_lev - 1):
        anc[(i, i + 1)] = new_of_raw[i + 1][up[i][raw_of_new[i]]]
    for i in range(n_lev - 3, -1, -1):  # compose through the next level up
        for j in range(i + 2, n_lev):
            anc[(i, j)] = anc[(i + 1, j)][anc[(i, i + 1)]]
    starts = {ij: np.flatnonzero(np.r_[True, a[1:] != a[:-1]]) for ij, a in anc.items()}
    # theta layout in lme4's order
    level_of_term = {}
    slice_of_term = {}
    for li, lv in enumerate(levels):
        for t_i, sl in zip(lv.term_idx, lv.col_slices, strict=True):
            level_of_term[t_i] = li
            slice_of_term[t_i] = sl
    n_used = [levels[level_of_term[t_i]].G for t_i in range(len(terms))]
    t_level, t_row, t_col, t_term = [], [], [], []
    order = lme4_term_order(n_used)
    for t_i in order:
        t = terms[t_i]
        k = len(t.columns)
        off = slice_of_term[t_i].start
        if t.correlated and k > 1:
            pairs = [(r, c) for c in range(k) for r in range(c, k)]  # column-major lower tri
        else:
            pairs = [(r, r) for r in range(k)]
        for r, c in pairs:
            t_level.append(level_of_term[t_i])
            t_row.append(off + r)
            t_col.append(off + c)
            t_term.append(t_i)
    t_row_a, t_col_a = np.array(t_row), np.array(t_col)
    lower = np.where(t_row_a == t_col_a, 0.0, -np.inf)
    return (
        Structure(
            levels=levels,
            anc=anc,
            starts=starts,
            theta_level=np.array(t_level),
            theta_row=t_row_a,
            theta_col=t_col_a,
            lower=lower,
            theta_term=np.array(t_term),
            term_order=order,
            term_level={t: (level_of_term[t], slice_of_term[t]) for t in range(len(terms))},
        ),
        "",
    )
