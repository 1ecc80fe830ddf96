"""Laplace and adaptive Gauss-Hermite fits of nested GLMMs on the fast engine's blocked Cholesky.

The model (Bates et al. 2015, section 5; lme4's ``glmer``): ``eta = offset + X beta + Z Lambda u``,
``u ~ N(0, I)``, ``y | u`` from a binomial or Poisson family. For given ``theta`` (the relative
covariance factors) and ``beta``, penalised IRLS (PIRLS) finds the conditional mode ``u_hat`` of
``u``; the Laplace approximation to the deviance (-2 log-likelihood) is::

    d(theta, beta) = -2 sum_i log p(y_i | u_hat) + |u_hat|^2 + log|L|^2,
    L L' = Lambda' Z' W Z Lambda + I          (W: IRLS working weights at u_hat)

Each PIRLS iteration is one pass over the rows (:mod:`._kernels`: mean, weights, working
response and the weighted cross-product blocks, per group) followed by the fast engine's nested
blocked Cholesky (:func:`..._fast._deviance.factorize`); no Python loop over groups or rows.

As lme4 does, the fit has two stages: (1) ``nAGQ = 0``: minimise over theta with beta found in
PIRLS together with u; (2) minimise ``d(theta, beta)`` over both (u alone in PIRLS), from the
stage-1 answer. With one scalar random effect, ``nagq > 1`` replaces the Laplace term by
adaptive Gauss-Hermite quadrature around the modes (lme4's ``glmerAGQ``, same formula).
The covariance of beta is lme4's default: ``2 H^-1`` restricted to beta, with ``H`` the Hessian
of ``d`` over (theta, beta) (central differences; falls back to the RX-based covariance, with
a warning, if ``H`` is not positive definite).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import optimize
from scipy.special import gammaln

from .._fast._deviance import (
    Blocks,
    conditional_u,
    factorize,
    selected_inverse,
    selected_inverse_full,
)
from .._fast._linalg import blsolve, bltmul, bltsolve, bmm, gsum
from .._fast._structure import Structure
from . import _kernels as K

__all__ = ["GlmmData", "GlmmFit", "fit_glmm_engine", "gh_rule"]

LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)


def gh_rule(n: int) -> np.ndarray:
    """lme4's ``GHrule(n)``: nodes z, weights w (for the standard normal) and log dnorm(z)."""
    x, w = np.polynomial.hermite.hermgauss(n)
    z = x * np.sqrt(2.0)
    w = w / w.sum()
    z = (z - z[::-1]) / 2.0
    w = (w + w[::-1]) / 2.0
    return np.column_stack([z, w, -0.5 * z * z - LOG_SQRT_2PI])


@dataclass
class GlmmData:
    """Everything the engine needs, as contiguous arrays."""

    y: np.ndarray  # response (proportions for binomial)
    m: np.ndarray  # prior weights (trials x weights for binomial)
    offset: np.ndarray
    X: np.ndarray
    fam: int
    link: int
    struct: Structure
    Z: np.ndarray = field(init=False)  # (n, Q) all levels' columns, finest level first
    codes: np.ndarray = field(init=False)  # (n, L) internal group codes
    qs: np.ndarray = field(init=False)
    cs: np.ndarray = field(init=False)
    Gs: np.ndarray = field(init=False)
    boff: np.ndarray = field(init=False)
    aic_const: float = field(init=False)
    dev_const: np.ndarray = field(init=False)
    intercepts_only: bool = field(init=False)

    def build(self, problem) -> GlmmData:
        levels = self.struct.levels
        Zs = []
        for lv in levels:
            Zs.append(np.column_stack([np.asarray(problem.terms[t].Z, dtype=float)
                                       for t in lv.term_idx]))
        self.Z = np.ascontiguousarray(np.column_stack(Zs))
        self.codes = np.ascontiguousarray(np.column_stack([lv.codes for lv in levels])
                                          .astype(np.int64))
        self.qs = np.array([lv.q for lv in levels], dtype=np.int64)
        self.cs = np.concatenate([[0], np.cumsum(self.qs)[:-1]]).astype(np.int64)
        self.Gs = np.array([lv.G for lv in levels], dtype=np.int64)
        self.boff = np.concatenate([[0], np.cumsum(self.Gs * self.qs)[:-1]]).astype(np.int64)
        self.X = np.ascontiguousarray(self.X, dtype=float)
        self.aic_const = _aic_constant(self.fam, self.y, self.m)
        self.dev_const = K._xlogx_const(self.fam, self.y)
        self.intercepts_only = bool(np.all(self.qs == 1) and np.all(self.Z == 1.0))
        return self

    @property
    def n(self) -> int:
        return len(self.y)

    @property
    def p(self) -> int:
        return self.X.shape[1]


def _aic_constant(fam: int, y: np.ndarray, m: np.ndarray) -> float:
    """``family$aic(...) - sum(dev.resids)``: the saturated model's -2 log-likelihood.

    binomial: ``-2 sum log dbinom(k, n, k/n)``; Poisson: ``-2 sum wt log dpois(y, y)``.
    """
    if fam == 0:
        n = np.round(m)
        k = np.round(m * y)
        with np.errstate(divide="ignore", invalid="ignore"):
            ll = (gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)
                  + np.where(k > 0, k * np.log(np.where(k > 0, k, 1) / np.where(n > 0, n, 1)), 0.0)
                  + np.where(n - k > 0, (n - k) * np.log(np.where(n - k > 0, n - k, 1)
                                                         / np.where(n > 0, n, 1)), 0.0))
        return float(-2.0 * np.sum(np.where(n > 0, ll, 0.0)))
    with np.errstate(divide="ignore", invalid="ignore"):
        ll = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0)), 0.0) - y - gammaln(y + 1)
    return float(-2.0 * np.sum(m * ll))


class _Pass:
    """Buffers for the row pass and the Blocks views into them (u-only or joint system)."""

    def __init__(self, d: GlmmData, joint: bool):
        self.d = d
        self.p = d.p if joint else 0
        Q = int(d.qs.sum())
        self.widths = np.array([Q - int(c) + self.p + 1 for c in d.cs], dtype=np.int64)
        sizes = d.Gs * d.qs * self.widths
        self.goff = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self.acc = np.zeros(int(sizes.sum()))
        self.glob = np.zeros((self.p + 1, self.p + 1))
        self.Xp = d.X if joint else np.zeros((d.n, 0))
        self.Q = Q

    def run(self, eta_fix: np.ndarray, base: np.ndarray, b_all: np.ndarray) -> float:
        """One pass at ``eta = eta_fix + Z b``; keeps the row terms; returns sum(dev)."""
        d = self.d
        eta = K.linear_predictor(eta_fix, d.Z, d.codes, d.qs, d.cs, b_all, d.boff)
        # far from the optimum (a trial step) exp may overflow: the deviance is then not
        # finite and PIRLS halves the step, so the floating-point warnings are not news
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            w, r, dev = K.family_terms(d.fam, d.link, d.y, d.m, eta, d.dev_const)
        self.eta, self.w, self.dev = eta, w, dev
        K.accumulate(w, (eta - base) + r, self.Xp, d.Z, d.codes, d.qs, d.cs, self.goff,
                     self.widths, self.acc, self.glob, d.intercepts_only)
        return float(dev.sum())

    def blocks(self) -> Blocks:
        d, st = self.d, self.d.struct
        ZtZ, ZtXy, ZtZa = [], [], {}
        for i in range(len(st.levels)):
            G, q, R = int(d.Gs[i]), int(d.qs[i]), int(self.widths[i])
            A = self.acc[self.goff[i]: self.goff[i] + G * q * R].reshape(G, q, R)
            ZtZ.append(A[:, :, :q])
            ZtXy.append(A[:, :, R - self.p - 1:])
            for j in range(i + 1, len(st.levels)):
                c = int(d.cs[j] - d.cs[i])
                ZtZa[(i, j)] = A[:, :, c: c + int(d.qs[j])]
        return Blocks(ZtZ=ZtZ, ZtZa=ZtZa, ZtXy=ZtXy, XytXy=self.glob.copy(), n=d.n, p=self.p,
                      beta_ols=np.zeros(self.p))


class PirlsFailure(RuntimeError):
    """PIRLS could not reduce the penalised deviance (or produced NaN)."""


@dataclass
class _State:
    u: list  # per level (G_i, q_i)
    beta: np.ndarray
    dev: float  # sum of deviance residuals at the state
    usq: float
    ldL2: float = np.nan
    fac: object = None
    iters: int = 0


class Laplace:
    """The Laplace / AGQ deviance of one GLMM, with warm-started PIRLS."""

    def __init__(self, d: GlmmData, tol: float = 1e-10, maxit: int = 60):
        self.d = d
        self.tol, self.maxit = tol, maxit
        self.joint = _Pass(d, joint=True)
        self.uonly = _Pass(d, joint=False)
        self.u0 = [np.zeros((int(G), int(q))) for G, q in zip(d.Gs, d.qs, strict=True)]
        self.n_eval = 0
        self.n_pass = 0
        self._beta_start: np.ndarray | None = None  # warm start of the joint (nAGQ = 0) PIRLS
        self._obs: _Pass | None = None  # observed-information buffers (non-canonical links)

    # ------------------------------------------------------------------ helpers
    def _b_all(self, lams, u) -> np.ndarray:
        return np.concatenate([(ui @ lam.T).ravel() for ui, lam in zip(u, lams, strict=True)])

    def pirls(self, theta: np.ndarray, beta: np.ndarray | None, u0=None) -> _State:
        """Conditional modes (and beta, when ``beta`` is None: the joint nAGQ = 0 PIRLS)."""
        d = self.d
        lams = d.struct.lambdas(np.asarray(theta, float))
        joint = beta is None
        ps = self.joint if joint else self.uonly
        u = [a.copy() for a in (self.u0 if u0 is None else u0)]
        b = np.zeros(d.p) if joint else np.asarray(beta, float)
        if joint:
            b = self._beta_start if self._beta_start is not None else b

        def run(u, b):
            eta_fix = d.offset + d.X @ b
            self.n_pass += 1
            return ps.run(eta_fix, d.offset if joint else eta_fix, self._b_all(lams, u))

        dev = run(u, b)
        pdev = dev + sum(float((x * x).sum()) for x in u)
        if not np.isfinite(pdev):
            raise PirlsFailure("non-finite deviance at the starting values")
        it = 0
        for it in range(1, self.maxit + 1):  # noqa: B007
            fac = factorize(ps.blocks(), d.struct, lams, keep=True)
            if not fac.ok:
                raise PirlsFailure("the penalised system is not positive definite")
            b_new = fac.beta() if joint else b
            u_new = conditional_u(fac, d.struct, b_new if joint else np.zeros(0))
            du = [un - uo for un, uo in zip(u_new, u, strict=True)]
            db = b_new - b
            step = 1.0
            for _ in range(25):
                uc = [uo + step * x for uo, x in zip(u, du, strict=True)]
                bc = b + step * db
                dev_c = run(uc, bc)
                pdev_c = dev_c + sum(float((x * x).sum()) for x in uc)
                if np.isfinite(pdev_c) and pdev_c <= pdev + 1e-10 * abs(pdev):
                    break
                step /= 2.0
            else:
                raise PirlsFailure("step-halving failed to reduce the penalised deviance")
            change = max([float(np.max(np.abs(x), initial=0.0)) for x in du]
                         + [float(np.max(np.abs(db), initial=0.0))]) * step
            u, b, dev, pdev_old, pdev = uc, bc, dev_c, pdev, pdev_c
            if change < self.tol or (pdev_old - pdev < 1e-15 * abs(pdev) and change < 1e3 * self.tol):
                break
        fac = factorize(ps.blocks(), d.struct, lams, keep=True)  # weights at the final state
        if not fac.ok:
            raise PirlsFailure("the penalised system is not positive definite")
        usq = sum(float((x * x).sum()) for x in u)
        return _State(u=u, beta=b, dev=dev, usq=usq, ldL2=fac.ldL2, fac=fac, iters=it)

    # ------------------------------------------------------------------ objectives
    def laplace(self, st: _State) -> float:
        return st.dev + self.d.aic_const + st.usq + st.ldL2

    def agq(self, st: _State, theta: np.ndarray, beta: np.ndarray, rule: np.ndarray) -> float:
        """lme4's ``glmerAGQ`` value (on the deviance-residual scale, as lme4 reports it)."""
        d = self.d
        lam = float(theta[0])
        G = int(d.Gs[0])
        codes = d.codes[:, 0]
        u0 = st.u[0][:, 0]
        devc0 = u0 * u0 + np.bincount(codes, weights=self.uonly.dev, minlength=G)
        sd = 1.0 / st.fac.Ls[0][:, 0, 0]
        eta_fix = d.offset + d.X @ beta
        mult = np.zeros(G)
        for z, w, ldn in rule:
            if z == 0.0:
                mult += w
                continue
            uk = u0 + z * sd
            eta = K.linear_predictor(eta_fix, d.Z, d.codes, d.qs, d.cs, lam * uk, d.boff)
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                mu, _ = K.link_inverse(d.link, eta)
                dev = K.deviance_residuals(d.fam, d.y, d.m, mu, d.dev_const)
            devc = uk * uk + np.bincount(codes, weights=dev, minlength=G)
            mult += np.exp(-0.5 * (devc - devc0) - ldn) * w / np.sqrt(2.0 * np.pi)
        return float(devc0.sum() + st.ldL2 - 2.0 * np.log(mult).sum())

    def stage1(self, theta: np.ndarray) -> float:
        """nAGQ = 0 objective at theta (beta from PIRLS)."""
        self.n_eval += 1
        try:
            st = self.pirls(theta, None)
        except PirlsFailure:
            return np.inf
        self.u0 = st.u
        self._beta_start = st.beta
        return self.laplace(st)

    def stage2(self, theta: np.ndarray, beta: np.ndarray, rule: np.ndarray | None) -> float:
        self.n_eval += 1
        try:
            st = self.pirls(theta, beta)
        except PirlsFailure:
            return np.inf
        self.u0 = st.u
        if rule is None or len(rule) <= 1:
            return self.laplace(st)
        return self.agq(st, theta, beta, rule)

    # ------------------------------------------------------------------ analytic gradient
    def value_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """Laplace deviance and its exact gradient over (theta, beta) (u-only PIRLS)."""
        d = self.d
        struct = d.struct
        k = len(struct.theta_row)
        theta, beta = x[:k], x[k:]
        self.n_eval += 1
        try:
            st = self.pirls(theta, beta)
        except PirlsFailure:
            return np.inf, np.zeros_like(x)
        self.u0 = st.u
        return self.laplace(st), self._gradient(st, theta)

    def _observed(self) -> _Pass:
        if self._obs is None:
            self._obs = _Pass(self.d, joint=False)
        return self._obs

    def _gradient(self, st: _State, theta: np.ndarray) -> np.ndarray:
        d = self.d
        struct = d.struct
        nl = len(struct.levels)
        lams = struct.lambdas(theta)
        ps = self.uonly  # holds the rows and blocks of the final PIRLS state
        fac = st.fac
        blocks = ps.blocks()
        Zd, Zo = selected_inverse_full(fac, struct)
        # leverages h_i = z_i' Lambda M^{-1} Lambda' z_i
        h = np.zeros(d.n)
        for j in range(nl):
            qj, cj = int(d.qs[j]), int(d.cs[j])
            Zj = d.Z[:, cj: cj + qj]
            Cjj = np.einsum("ab,gbc,dc->gad", lams[j], Zd[j], lams[j], optimize=False)
            h += np.einsum("na,nab,nb->n", Zj, Cjj[d.codes[:, j]], Zj, optimize=False)
            for kk in range(j + 1, nl):
                qk, ck = int(d.qs[kk]), int(d.cs[kk])
                Zk = d.Z[:, ck: ck + qk]
                Cjk = np.einsum("ab,gbc,dc->gad", lams[j], Zo[(j, kk)], lams[kk], optimize=False)
                h += 2.0 * np.einsum("na,nab,nb->n", Zj, Cjk[d.codes[:, j]], Zk, optimize=False)
        eta = ps.eta
        mu, dm = K.link_inverse(d.link, eta)
        var = K.variance(d.fam, mu)
        d2 = K.link_d2(d.link, eta, mu, dm)
        vprime = (1.0 - 2.0 * mu) if d.fam == 0 else np.ones_like(mu)
        w = ps.w
        dw = d.m * (2.0 * dm * d2 / var - dm ** 3 * vprime / var ** 2)
        a1 = -2.0 * d.m * (d.y - mu) * dm / var
        canonical = (d.fam, d.link) in ((0, 0), (1, 3))
        if canonical:
            wo, fac_o = w, fac
        else:
            wo = w - d.m * (d.y - mu) * (d2 / var - dm * dm * vprime / var ** 2)
            ob = self._observed()
            K.accumulate(wo, np.zeros(d.n), ob.Xp, d.Z, d.codes, d.qs, d.cs, ob.goff,
                         ob.widths, ob.acc, ob.glob)
            ob.glob[:] = 1.0  # the working-response column is a dummy here (zeros)
            fac_o = factorize(ob.blocks(), struct, lams, keep=True)
            if not fac_o.ok:
                raise PirlsFailure("the observed-information system is not positive definite")
        s = h * dw
        rhs = [(_group_sums(d, j, s)) @ lams[j] for j in range(nl)]  # Lambda' Z's per group
        v = _solve_nested(fac_o, struct, rhs)
        Zlv = K.linear_predictor(np.zeros(d.n), d.Z, d.codes, d.qs, d.cs,
                                 np.concatenate([(vi @ lam.T).ravel()
                                                 for vi, lam in zip(v, lams, strict=True)]),
                                 d.boff)
        t = a1 + s - wo * Zlv
        g_beta = d.X.T @ t
        # d log|L|^2 at fixed W: 2 sum_g [M^{-1} Lambda' B]_gg[c, r] (B = Z'WZ blocks)
        S1 = []
        for li in range(nl):
            P = gsum(bmm(Zd[li], lams[li].T), blocks.ZtZ[li])
            for j in range(li + 1, nl):
                P += gsum(bmm(Zo[(li, j)], lams[j].T), blocks.ZtZa[(li, j)].transpose(0, 2, 1))
            for i in range(li):
                P += gsum(bltmul(lams[i].T, Zo[(i, li)]).transpose(0, 2, 1), blocks.ZtZa[(i, li)])
            S1.append(P)
        Zt_t = [_group_sums(d, j, t) for j in range(nl)]
        Zt_a = [_group_sums(d, j, a1) for j in range(nl)]
        g_theta = np.empty(len(struct.theta_row))
        for kk in range(len(g_theta)):
            li, r, c = struct.theta_level[kk], struct.theta_row[kk], struct.theta_col[kk]
            g_theta[kk] = (float(Zt_t[li][:, r] @ st.u[li][:, c])
                           - 0.5 * float(Zt_a[li][:, r] @ v[li][:, c]) + 2.0 * S1[li][c, r])
        return np.r_[g_theta, g_beta]


def _group_sums(d: GlmmData, j: int, vals: np.ndarray) -> np.ndarray:
    """``Z_j' vals`` per group of level j: (G_j, q_j)."""
    qj, cj, G = int(d.qs[j]), int(d.cs[j]), int(d.Gs[j])
    out = np.empty((G, qj))
    for a in range(qj):
        out[:, a] = np.bincount(d.codes[:, j], weights=vals * d.Z[:, cj + a], minlength=G)
    return out


def _solve_nested(fac, struct: Structure, rhs: list[np.ndarray]) -> list[np.ndarray]:
    """``(L L')^{-1} rhs`` for the nested blocked factor (rhs: per level (G_i, q_i))."""
    nl = len(struct.levels)
    r = [x.copy() for x in rhs]
    c: list[np.ndarray] = [np.empty(0)] * nl
    for i in range(nl):
        c[i] = blsolve(fac.Ls[i], r[i][:, :, None])
        for j in range(i + 1, nl):
            contrib = np.einsum("gab,ga->gb", fac.Ws[(i, j)], c[i][:, :, 0], optimize=False)
            np.subtract.at(r[j], struct.anc[(i, j)], contrib)
    x: list[np.ndarray] = [np.empty(0)] * nl
    for i in range(nl - 1, -1, -1):
        rr = c[i][:, :, 0].copy()
        for j in range(i + 1, nl):
            rr -= np.einsum("gab,gb->ga", fac.Ws[(i, j)], x[j][struct.anc[(i, j)]],
                            optimize=False)
        x[i] = bltsolve(fac.Ls[i], rr)
    return x


@dataclass
class GlmmFit:
    """What the GLMM engine returns (link-scale quantities; see the module docstring)."""

    theta: np.ndarray
    beta: np.ndarray
    vcov: np.ndarray
    vcov_rx: np.ndarray
    vcov_source: str
    objective: float  # lme4's criterion: -2 logLik as lme4 reports it
    u: list
    lams: list
    condvar: list  # per level (G_i, q_i, q_i): conditional covariance of b
    eta: np.ndarray
    hessian: np.ndarray
    gradient: np.ndarray
    converged: bool
    message: str
    n_eval: int
    stage1_theta: np.ndarray
    nagq: int
    dev_resid_sum: float
    pearson_chi2: float
    pirls_iterations: int = 0


def _fd_hessian(f, x, h, f0):
    """Central-difference Hessian of a scalar function (2d + 2d(d-1) evaluations)."""
    dd = len(x)
    H = np.empty((dd, dd))
    fp, fm = np.empty(dd), np.empty(dd)
    for i in range(dd):
        e = np.zeros(dd)
        e[i] = h[i]
        fp[i], fm[i] = f(x + e), f(x - e)
        H[i, i] = (fp[i] - 2 * f0 + fm[i]) / (h[i] ** 2)
    for i in range(dd):
        for j in range(i):
            ei = np.zeros(dd)
            ej = np.zeros(dd)
            ei[i], ej[j] = h[i], h[j]
            fpp, fmm = f(x + ei + ej), f(x - ei - ej)
            H[i, j] = H[j, i] = (fpp - fp[i] - fp[j] + 2 * f0 - fm[i] - fm[j] + fmm) / (
                2 * h[i] * h[j])
    return H, (fp - fm) / (2 * h)


def _grad_hessian(fg, x, h):
    """Hessian from central differences of an analytic gradient, symmetrised."""
    dd = len(x)
    H = np.empty((dd, dd))
    for i in range(dd):
        e = np.zeros(dd)
        e[i] = h[i]
        H[:, i] = (fg(x + e)[1] - fg(x - e)[1]) / (2 * h[i])
    return (H + H.T) / 2.0


def fit_glmm_engine(d: GlmmData, nagq: int = 1, theta_start: np.ndarray | None = None,
                    beta_start: np.ndarray | None = None) -> GlmmFit:
    """Two-stage Laplace (or AGQ) fit; see the module docstring."""
    struct = d.struct
    lap = Laplace(d)
    k = len(struct.theta_row)
    lower_t = struct.lower
    lo_t = np.where(np.isfinite(lower_t), lower_t, -np.inf)
    th0 = struct.start() if theta_start is None else np.asarray(theta_start, float)
    if beta_start is not None:
        lap._beta_start = np.asarray(beta_start, float)
    bounds1 = [(lo if np.isfinite(lo) else None, None) for lo in lower_t]
    # ---- stage 1 (nAGQ = 0): theta only, beta in PIRLS. Only needed as the answer for
    # nagq = 0 (and for AGQ, whose stage 2 has no analytic gradient): the Laplace stage
    # starts from beta estimated by PIRLS at the starting theta.
    if theta_start is None and (nagq == 0 or nagq > 1):
        tight = nagq == 0
        r1 = optimize.minimize(
            lap.stage1, th0, method="Nelder-Mead" if k > 1 else "Powell", bounds=bounds1,
            options=({"xatol": 1e-8 if tight else 1e-3, "fatol": 1e-10 if tight else 1e-4,
                      "maxfev": 5000} if k > 1 else
                     {"xtol": 1e-8 if tight else 1e-3, "ftol": 1e-12 if tight else 1e-6}))
        th1 = np.maximum(np.atleast_1d(r1.x), lo_t)
        msg1 = str(r1.message)
        ok1 = bool(r1.success)
    else:
        th1, msg1, ok1 = th0, "started from the given values", True
    st1 = lap.pirls(th1, None)
    lap.u0 = st1.u
    beta1 = st1.beta if beta_start is None or theta_start is None else lap._beta_start
    rule = gh_rule(nagq) if nagq > 1 else None
    lo_x = np.r_[lo_t, np.full(d.p, -np.inf)]
    if nagq == 0:
        x_opt = np.r_[th1, beta1]
        obj = lap.laplace(st1)
        converged, conv_msg = ok1, f"nAGQ = 0 (stage 1 only): {msg1}"
    else:
        x0 = np.r_[th1, beta1]
        bounds2 = bounds1 + [(None, None)] * d.p
        if rule is None:
            fg = lap.value_grad
        else:
            h_g = 1e-6 * np.maximum(1.0, np.abs(x0))

            def f2(x):
                return lap.stage2(x[:k], x[k:], rule)

            def fg(x):
                v = f2(x)
                g = np.empty_like(x)
                for i in range(len(x)):
                    e = np.zeros_like(x)
                    e[i] = h_g[i]
                    g[i] = (f2(x + e) - f2(x - e)) / (2 * h_g[i])
                return v, g

        # unbounded: the deviance depends on Lambda only through Lambda Lambda' (a column may
        # flip sign), and a gradient method stalls on the bound (the gradient of a diagonal
        # element vanishes at 0 by symmetry); mapped back to lme4's bounded form below
        lap.tol = 1e-8  # PIRLS to 1e-8 while searching; 1e-10 at the answer and its Hessian
        r2 = optimize.minimize(fg, x0, jac=True, method="L-BFGS-B",
                               bounds=None if rule is None else bounds2,
                               options={"ftol": 1e-15, "gtol": 1e-9, "maxiter": 1000})
        lap.tol = 1e-10
        x_opt = np.r_[struct.canonical(r2.x[:k]), r2.x[k:]]
        x_opt = np.maximum(x_opt, lo_x)
        conv_msg = str(r2.message)
        converged = bool(r2.success)
    theta, beta = x_opt[:k], x_opt[k:]
    # ---- Hessian over (theta, beta) at the answer (lme4's default covariance of beta)
    hstep = 1e-4 * np.maximum(1.0, np.abs(x_opt))
    if nagq == 0:  # as lme4: beta is not a parameter of the optimisation, covariance from RX
        H, grad = np.full((len(x_opt), len(x_opt)), np.nan), np.zeros(len(x_opt))
    elif rule is None:
        H = _grad_hessian(lap.value_grad, x_opt, hstep)
    else:
        def f_h(x):
            return lap.stage2(x[:k], x[k:], rule)
        obj = f_h(x_opt)
        H, grad = _fd_hessian(f_h, x_opt, hstep, obj)
    # the final state (the Hessian moved the modes around); its u-only pass buffers stay
    # untouched below (the RX pass uses the joint buffers)
    st = lap.pirls(theta, beta)
    if rule is None:
        obj = lap.laplace(st)
        if nagq > 0:
            grad = lap._gradient(st, theta)
    lams = struct.lambdas(theta)
    # RX-based covariance from the joint system at the final state
    eta_fix = d.offset + d.X @ beta
    lap.joint.run(eta_fix, d.offset, lap._b_all(lams, st.u))
    fj = factorize(lap.joint.blocks(), struct, lams, keep=False)
    p = d.p
    vcov_rx = (np.linalg.inv(fj.Lm[:p, :p] @ fj.Lm[:p, :p].T) if fj.ok
               else np.full((p, p), np.nan))
    vcov, source = vcov_rx, "rx"
    try:
        if nagq == 0:
            raise np.linalg.LinAlgError("nAGQ = 0: RX-based covariance")
        Hi = np.linalg.inv(H)
        V = Hi[k:, k:]
        V = V + V.T
        if np.all(np.isfinite(V)) and np.linalg.eigvalsh(V).min() > 0:
            vcov, source = V, "hessian"
    except np.linalg.LinAlgError:
        pass
    Zd = selected_inverse(st.fac, struct)
    condvar = [np.einsum("ij,gjk,lk->gil", lam, Zi, lam, optimize=False)
               for lam, Zi in zip(lams, Zd, strict=True)]
    eta = lap.uonly.eta.copy()
    mu, _ = K.link_inverse(d.link, eta)
    pearson = float(np.sum(d.m * (d.y - mu) ** 2 / K.variance(d.fam, mu)))
    at_bound = np.r_[theta <= lower_t + 1e-10, np.zeros(p, bool)]
    g_eff = np.where(at_bound & (grad > 0), 0.0, grad)
    return GlmmFit(theta=theta, beta=beta, vcov=vcov, vcov_rx=vcov_rx, vcov_source=source,
                   objective=float(obj), u=st.u, lams=lams, condvar=condvar, eta=eta,
                   hessian=H, gradient=g_eff, converged=converged, message=conv_msg,
                   n_eval=lap.n_eval, stage1_theta=th1, nagq=nagq, dev_resid_sum=st.dev,
                   pearson_chi2=pearson, pirls_iterations=lap.n_pass)
