"""statsmodels ``MixedLM`` as a :class:`~coevidence.models.mixed._engine.MixedEngine`.

MixedLM has one grouping factor (``groups``) with an unstructured (or, through ``free``,
diagonal) covariance of its random effects, plus independent variance components (``exog_vc``)
for further factors nested in it. So it fits exactly: any terms on one top factor, and
single-column terms (random intercepts, or uncorrelated slopes) on factors nested in it. It
cannot fit a correlated intercept and slope at a nested lower level, nor crossed factors;
:meth:`StatsmodelsEngine.supports` says so and the API raises rather than fitting another model.

Every optimizer attempt is recorded; the attempt with the smallest (RE)ML deviance (evaluated by
coevidence's own likelihood code, lme4's criterion) among converged attempts is kept, which
guards against the known wrong optima of ``lbfgs`` alone.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from coevidence.exceptions import ConvergenceFailure
from coevidence.models.mixed._engine import EngineFit, MixedProblem, OptimizerAttempt
from coevidence.models.mixed._likelihood import LMMEvaluator, theta_from, varpar_from

__all__ = ["StatsmodelsEngine"]

#: (label, statsmodels ``method`` list, start-value scale for cov_re/vcomp or None for default)
LADDER: tuple[tuple[str, tuple[str, ...], float | None], ...] = (
    ("bfgs", ("bfgs",), None),
    ("powell+lbfgs", ("powell", "lbfgs"), None),
    ("nm+bfgs", ("nm", "bfgs"), None),
    ("lbfgs(start 0.1)", ("lbfgs",), 0.1),
    ("bfgs(start 5)", ("bfgs",), 5.0),
)
_AGREE = 1e-4  # deviance agreement (absolute) between two converged attempts that ends the ladder


@dataclass(frozen=True)
class _Plan:
    top: int  # index of the term whose factor is statsmodels' ``groups``
    re_terms: tuple[int, ...]
    vc_terms: tuple[int, ...]
    diagonal_blocks: bool


def _nested_in(inner: np.ndarray, outer: np.ndarray) -> bool:
    """Every group of ``inner`` lies inside one group of ``outer`` (integer codes, one per
    row). O(n): each inner group's first outer code must be the outer code of all its rows."""
    inner = np.asarray(inner)
    outer = np.asarray(outer)
    if inner.size == 0:
        return True
    if inner.dtype.kind in "iu" and inner.min() >= 0 and inner.max() < 4 * inner.size + 1024:
        parent = np.full(int(inner.max()) + 1, -1, dtype=np.int64)
        parent[inner[::-1]] = outer[::-1]  # the first row of each group wins
        return bool(np.array_equal(parent[inner], outer))
    pairs = np.unique(np.stack([inner, outer], axis=1), axis=0)
    return len(pairs) == len(np.unique(inner))


def plan(problem: MixedProblem) -> tuple[_Plan | None, str]:
    """How MixedLM represents ``problem`` exactly, or ``(None, reason)``."""
    terms = problem.terms
    multi = [i for i, t in enumerate(terms) if len(t.columns) > 1]
    multi_groups = {terms[i].group for i in multi}
    if len(multi_groups) > 1:
        return None, (
            "statsmodels MixedLM can give correlated random effects (several columns in one "
            f"term) to only one grouping factor; this model has them on {sorted(multi_groups)}"
        )
    groups = list(dict.fromkeys(t.group for t in terms))
    if multi_groups:
        candidates = [next(iter(multi_groups))]
    else:
        candidates = sorted(groups, key=lambda g: next(t.n_levels for t in terms if t.group == g))
    for top_group in candidates:
        top_codes = next(t.codes for t in terms if t.group == top_group)
        bad = [t.group for t in terms if t.group != top_group and not _nested_in(t.codes, top_codes)]
        if bad:
            if multi_groups:
                return None, (
                    f"statsmodels MixedLM cannot fit this model exactly: the correlated random "
                    f"effects are on {top_group!r}, but {sorted(set(bad))} is not nested in it "
                    "(a correlated random slope at a nested lower level, or crossed factors); "
                    "use engine='fast' or simplify the random part"
                )
            continue
        re_terms = tuple(i for i, t in enumerate(terms) if t.group == top_group)
        vc_terms = tuple(i for i, t in enumerate(terms) if t.group != top_group)
        return (
            _Plan(
                top=re_terms[0],
                re_terms=re_terms,
                vc_terms=vc_terms,
                diagonal_blocks=len(re_terms) > 1,
            ),
            "",
        )
    return None, (
        "statsmodels MixedLM needs one grouping factor that all other grouping factors are "
        f"nested in; the factors {groups} are crossed. Use engine='sparse' (or 'auto')"
    )


class StatsmodelsEngine:
    """Fit a :class:`MixedProblem` with statsmodels MixedLM and an optimizer ladder.

    Examples
    --------
    >>> import pandas as pd
    >>> from coevidence.models.mixed.formula import build_problem
    >>> df = pd.DataFrame({"y": [1.0, 2.0, 2.5, 4.0, 3.0, 5.0, 2.0, 2.2],
    ...                    "g": [1, 1, 2, 2, 3, 3, 4, 4]})
    >>> StatsmodelsEngine().supports(build_problem("y ~ 1 + (1 | g)", df)[0])
    (True, '')
    """

    name = "statsmodels"

    def __init__(self, ladder=LADDER, exhaustive: bool = False) -> None:
        self.ladder = tuple(ladder)
        self.exhaustive = exhaustive

    def supports(self, problem: MixedProblem) -> tuple[bool, str]:
        p, reason = plan(problem)
        return p is not None, reason

    # ------------------------------------------------------------------ model building
    def _model(self, problem: MixedProblem, p: _Plan):
        from statsmodels.regression.mixed_linear_model import MixedLM

        terms = problem.terms
        groups = terms[p.top].codes
        exog_re = np.column_stack([terms[i].Z for i in p.re_terms])
        exog_vc = None
        if p.vc_terms:
            order = np.argsort(groups, kind="stable")
            bounds = np.flatnonzero(np.diff(groups[order])) + 1
            split = np.split(order, bounds)
            exog_vc = {}
            for i in p.vc_terms:
                t = terms[i]
                name = f"vc{i:04d}|{t.group}|{t.columns[0]}"  # sorted like the terms
                per_group = {}
                for rows in split:
                    rows = np.sort(rows)
                    sub = t.codes[rows]
                    levels, inv = np.unique(sub, return_inverse=True)
                    mat = np.zeros((len(rows), len(levels)))
                    mat[np.arange(len(rows)), inv] = t.Z[rows, 0]
                    per_group[groups[rows[0]]] = mat
                exog_vc[name] = per_group
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = MixedLM(problem.y, problem.X, groups=groups, exog_re=exog_re, exog_vc=exog_vc)
        return model

    def _free(self, model, problem: MixedProblem, p: _Plan):
        from statsmodels.regression.mixed_linear_model import MixedLMParams

        sizes = [len(problem.terms[i].columns) for i in p.re_terms]
        mask = np.zeros((sum(sizes), sum(sizes)))
        pos = 0
        for i, k in zip(p.re_terms, sizes):
            mask[pos : pos + k, pos : pos + k] = 1.0 if problem.terms[i].correlated else np.eye(k)
            pos += k
        return MixedLMParams.from_components(
            fe_params=np.ones(problem.X.shape[1]), cov_re=mask, vcomp=np.ones(len(p.vc_terms))
        )

    def _start(self, model, problem: MixedProblem, p: _Plan, scale: float | None):
        if scale is None:
            return None
        from statsmodels.regression.mixed_linear_model import MixedLMParams

        k = model.k_re
        beta = np.linalg.lstsq(problem.X, problem.y, rcond=None)[0]
        return MixedLMParams.from_components(
            fe_params=beta, cov_re=scale * np.eye(k), vcomp=scale * np.ones(len(p.vc_terms))
        )

    def _covariances(self, res, problem: MixedProblem, p: _Plan) -> tuple[tuple, float]:
        covs: list[np.ndarray | None] = [None] * len(problem.terms)
        cov_re = np.asarray(res.cov_re)
        pos = 0
        for i in p.re_terms:
            k = len(problem.terms[i].columns)
            c = cov_re[pos : pos + k, pos : pos + k].copy()
            if not problem.terms[i].correlated:
                c = np.diag(np.diag(c))
            covs[i] = (c + c.T) / 2
            pos += k
        vcomp = np.atleast_1d(np.asarray(res.vcomp, dtype=float))
        for j, i in enumerate(p.vc_terms):
            covs[i] = np.array([[max(float(vcomp[j]), 0.0)]])
        return tuple(covs), float(res.scale)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ fitting
    def fit(self, problem: MixedProblem) -> EngineFit:
        """Run the optimizer ladder and return the best converged fit."""
        p, reason = plan(problem)
        if p is None:
            from coevidence.exceptions import ModelSpecificationError

            raise ModelSpecificationError(reason)
        ev = LMMEvaluator(problem)
        model = self._model(problem, p)
        free = self._free(model, problem, p) if p.diagonal_blocks else None
        attempts: list[OptimizerAttempt] = []
        found: list[tuple[float, np.ndarray]] = []
        for label, methods, scale in self.ladder:
            if free is not None and any(m not in ("bfgs", "lbfgs") for m in methods):
                continue  # only bfgs/lbfgs respect ``free`` (statsmodels docs)
            start = self._start(model, problem, p, scale)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    res = model.fit(
                        reml=problem.reml, method=list(methods), start_params=start, free=free
                    )
                    covs, s2 = self._covariances(res, problem, p)
                    vp = varpar_from(covs, s2)
                    obj = ev.objective(vp)
                    ok = bool(res.converged) and np.isfinite(obj)
                    msg = "; ".join(sorted({str(w.message).splitlines()[0] for w in caught}))
                    n_eval = -1  # statsmodels does not report evaluations (statsmodels#4508)
                except Exception as exc:  # noqa: BLE001 - statsmodels raises many types
                    vp, obj, ok, msg, n_eval = None, float("inf"), False, f"{type(exc).__name__}: {exc}", 0
            grad = relative_gradient(ev, vp)[0] if vp is not None and np.isfinite(obj) else float("nan")
            attempts.append(
                OptimizerAttempt(
                    optimizer=f"statsmodels:{label}",
                    start=tuple(np.atleast_1d(scale if scale is not None else np.nan)),
                    converged=ok,
                    objective=float(obj),
                    n_evaluations=n_eval,
                    gradient_norm=float(grad),
                    message=msg,
                )
            )
            if ok and vp is not None:
                found.append((obj, vp))
                objs = sorted(o for o, _ in found)
                if not self.exhaustive and len(objs) >= 2 and objs[1] - objs[0] < _AGREE:
                    break
        finite = [(a.objective, i) for i, a in enumerate(attempts) if np.isfinite(a.objective)]
        if not finite:
            raise ConvergenceFailure(
                "statsmodels MixedLM produced no usable fit in any optimizer attempt: "
                + " | ".join(f"{a.optimizer}: {a.message}" for a in attempts),
                attempts=tuple(attempts),
            )
        conv = [(o, i) for o, i in finite if attempts[i].converged]
        chosen = min(conv or finite)[1]
        # recover the chosen varpar: refit bookkeeping kept in ``found`` only for converged ones
        vp = _varpar_of(attempts, chosen, found)
        if vp is None:  # best attempt did not converge: evaluate its objective again
            raise ConvergenceFailure(
                "no optimizer attempt converged: "
                + " | ".join(f"{a.optimizer}: {a.message}" for a in attempts),
                attempts=tuple(attempts),
            )
        vp2, att = _polish(ev, vp)
        if att is not None:
            attempts.append(att)
            if att.converged and att.objective <= attempts[chosen].objective:
                vp, chosen = vp2, len(attempts) - 1
        return _engine_fit(ev, vp, tuple(attempts), chosen, self.name)


def _varpar_of(attempts, chosen, found):
    target = attempts[chosen].objective
    for obj, vp in found:
        if obj == target:
            return vp
    return None


def relative_gradient(ev: LMMEvaluator, vp: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """lme4's convergence measure: max |H^-1 g| in (theta, sigma), with g and H numerical."""
    from coevidence.models.mixed._inference import _richardson_hessian, theta_sigma_map
    from coevidence.models.mixed._likelihood import covariances_from_varpar

    covs, s2 = covariances_from_varpar(vp, ev.sizes)
    x = np.append(theta_from(covs, s2), np.sqrt(s2))
    to_vp = theta_sigma_map(ev.sizes)

    def f(z):
        return ev.objective(to_vp(z))

    h = np.where(np.abs(x) > 1e-3, 1e-5 * np.abs(x), 1e-6)
    g = np.array([(f(x + np.eye(len(x))[i] * h[i]) - f(x - np.eye(len(x))[i] * h[i])) / (2 * h[i])
                  for i in range(len(x))])
    H = _richardson_hessian(f, x)  # noqa: N806
    try:
        step = np.linalg.solve(H, g)
    except np.linalg.LinAlgError:
        step = np.full_like(g, np.inf)
    return float(np.max(np.abs(step))), x, step


def _polish(ev: LMMEvaluator, vp: np.ndarray, max_iter: int = 6):
    """Newton steps on coevidence's deviance from statsmodels' optimum (interior fits only).

    statsmodels stops at loose gradient tolerances; a few Newton steps on lme4's own criterion
    bring estimates to lme4's precision. Skipped at the boundary (a singular fit), where Newton
    does not apply; recorded as an extra optimizer attempt.
    """
    from coevidence.models.mixed._inference import theta_sigma_map

    to_vp = theta_sigma_map(ev.sizes)
    obj0 = ev.objective(vp)
    rel, x, step = relative_gradient(ev, vp)
    if not np.all(np.isfinite(step)) or _near_boundary(ev, x):
        return vp, None
    n_eval, cur, obj = 0, x, obj0
    for _ in range(max_iter):
        if rel < 1e-6:
            break
        t, improved = 1.0, False
        while t > 1e-3:
            cand = cur - t * step
            o = ev.objective(to_vp(cand))
            n_eval += 1
            if np.isfinite(o) and o <= obj + 1e-10:
                cur, obj, improved = cand, o, True
                break
            t /= 2
        if not improved:
            break
        rel, _, step = relative_gradient(ev, to_vp(cur))
        if not np.all(np.isfinite(step)):
            break
    conv = bool(np.isfinite(rel) and rel < 2e-3)
    att = OptimizerAttempt(
        optimizer="coevidence:newton-polish",
        start=tuple(float(v) for v in x),
        converged=conv,
        objective=float(obj),
        n_evaluations=n_eval,
        gradient_norm=float(rel),
        message="" if conv else "relative gradient above 2e-3 after polishing",
    )
    return to_vp(cur), att


def _near_boundary(ev: LMMEvaluator, x: np.ndarray) -> bool:
    pos = 0
    for k in ev.sizes:
        for j in range(k):
            if abs(x[pos]) < 1e-3:
                return True
            pos += k - j
    return False


def _engine_fit(ev: LMMEvaluator, vp: np.ndarray, attempts, chosen: int, name: str) -> EngineFit:
    from coevidence.models.mixed._likelihood import covariances_from_varpar

    covs, s2 = covariances_from_varpar(vp, ev.sizes)
    obj = ev.objective(vp)
    modes, condvar = ev.conditional_modes(vp)
    return EngineFit(
        beta=ev.beta(vp),
        vcov_beta=ev.vcov(vp),
        covariances=covs,
        sigma2=s2,
        theta=theta_from(covs, s2),
        loglik=-obj / 2,
        objective=obj,
        ranef=modes,
        ranef_condvar=condvar,
        varpar=vp,
        vcov_at=ev.vcov,
        objective_at=ev.objective,
        attempts=attempts,
        chosen=chosen,
        engine=name,
    )
