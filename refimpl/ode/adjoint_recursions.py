r"""Hand-derived discrete adjoints (discretise-then-optimise) of any explicit Runge–Kutta tableau and any explicit
linear multistep method with its starter: the exact gradient of :math:`L_h = \Phi(x_N)` with respect to every parameter
sample (every layout of :mod:`refimpl.ode.samples`: "stage", "step", "constant") and to :math:`x_0`.

Derivation (derived; it is reverse-mode differentiation of the discrete equations written out by hand, cf. Hager,
*Numer. Math.* 87 (2000) and Sandu, *LNCS* 3994 (2006) for the Runge–Kutta case). For every intermediate quantity
:math:`a` of the forward computation write :math:`\bar a = \partial L_h/\partial a` for the *total* derivative of
:math:`L_h` with respect to :math:`a` (all quantities computed from :math:`a` recomputed, everything else held fixed).
The chain rule gives :math:`\bar a = \sum_{u \text{ uses } a} (\partial u/\partial a)^{\mathsf T}\bar u`, summed over
the quantities :math:`u` computed directly from :math:`a`; evaluating these sums in reverse order of the forward
computation is the adjoint recursion. We call :math:`\lambda_n = \bar x_n`. Start: :math:`\lambda_N = \nabla\Phi(x_N)`.

**ERK step** :math:`x_n \to x_{n+1}` (stages :math:`X_i = x_n + h\sum_{j<i} a_{ij}k_j`, :math:`k_i = f(X_i,
\theta_{r(n,i)})`, :math:`x_{n+1} = x_n + h\sum_i b_i k_i`). Inside step :math:`n`, :math:`k_i` is used by
:math:`x_{n+1}` (coefficient :math:`h b_i`) and by the later stages :math:`X_l, l>i` (coefficient :math:`h a_{li}`);
:math:`X_i` only by :math:`k_i`; :math:`x_n` by :math:`x_{n+1}` and by every :math:`X_i` (coefficient :math:`I`),
and by nothing else (a one-step method). So, for :math:`i = s, s-1, \dots, 1`,

.. math::
    \bar k_i = h\Big(b_i\lambda_{n+1} + \sum_{l>i} a_{li}\bar X_l\Big),\qquad
    \bar X_i = \partial_x f(X_i,\theta_{r(n,i)})^{\mathsf T}\bar k_i,\qquad
    \bar\theta_{r(n,i)} \mathrel{+}= \partial_\theta f(X_i,\theta_{r(n,i)})^{\mathsf T}\bar k_i,

and :math:`\lambda_n = \lambda_{n+1} + \sum_i \bar X_i`. A sample shared by two steps (stage-time layout, a grid
time), by all stages of a step (step layout) or by every evaluation (constant layout) accumulates every contribution.
On a non-uniform grid (Runge–Kutta only) :math:`h` is :math:`h_n` in step n (docs/theory/discrete-adjoint.md §11).
:math:`\partial L_h/\partial x_0 = \lambda_0`. (The NumPy path recomputes the stage states from the stored
:math:`x_n` during the backward sweep; the Numba path keeps the forward sweep's stage slopes :math:`k_i` — and, for
an LMM whose field's VJP reads :math:`f(x, \theta)`, the values :math:`F_m` — and re-forms :math:`X_i` from them,
bounded by ``KEEP_STAGES_MAX_ENTRIES``; both give the same numbers, bit for bit.)

**Checkpointing** (``checkpoint=k``; docs/theory/discrete-adjoint.md §12): the step adjoint of ERK step n needs
:math:`x_n` only (LMM step n: :math:`x_{n+k}` for its :math:`F` term, the adjoints of a few neighbouring indices),
so the forward sweep may keep :math:`x_0, x_k, x_{2k}, \dots, x_N` (for an LMM the window of its k states at each
checkpoint) and the backward sweep recompute each segment's states from its checkpoint by the same step function —
the same floating-point operations on the same inputs, hence bit-identical gradients.

**LMM** (:math:`x_{n+k} = -\sum_{j<k}\alpha_jx_{n+j} + h\sum_{j<k}\beta_j F_{n+j}`, :math:`F_m = f(x_m,\theta_{g(m)})`,
:math:`n = 0..N-k`; :math:`x_1..x_{k-1}` from :math:`k-1` starter ERK steps). :math:`x_m` is used by the steps
:math:`n = m-j` (coefficient :math:`-\alpha_j`), by :math:`F_m`, and, for :math:`m \le k-2`, by starter step :math:`m`;
:math:`F_m` is used by the steps :math:`n = m-j` (coefficient :math:`h\beta_j`). Hence, with
:math:`\bar F \equiv 0` initially and :math:`\lambda_N = \nabla\Phi(x_N)`, for :math:`n = N-k, \dots, 0`
(at that point :math:`\lambda_{n+k}` has received everything except its :math:`F` term, since all its users come later):

.. math::
    \lambda_{n+k} \mathrel{+}= \partial_x f(x_{n+k},\theta_{g(n+k)})^{\mathsf T}\bar F_{n+k},\quad
    \bar\theta_{g(n+k)} \mathrel{+}= \partial_\theta f(\cdot)^{\mathsf T}\bar F_{n+k}\quad (\text{if } n+k \le N-1
    \text{ and } F_{n+k} \text{ is used}),

.. math::
    \lambda_{n+j} \mathrel{+}= -\alpha_j\lambda_{n+k},\qquad \bar F_{n+j} \mathrel{+}= h\beta_j\lambda_{n+k}
    \qquad (j = 0..k-1).

Then for :math:`m = k-1, \dots, 0`: add the :math:`F_m` term to :math:`\lambda_m` (as above) and, if :math:`m \ge 1`,
run the ERK step adjoint of starter step :math:`m-1` with incoming :math:`\lambda_m`, *adding* its result
:math:`\lambda_m + \sum_i\bar X_i` to :math:`\lambda_{m-1}` (which already holds its LMM contributions).

Leapfrog (:math:`\alpha = (-1,0,1)`, :math:`\beta = (0,2)`) gives :math:`\lambda_{N+1} := 0`,
:math:`\lambda_n = \lambda_{n+2} + 2h\,\partial_xf(x_n,\theta_n)^{\mathsf T}\lambda_{n+1}` and
:math:`\partial L_h/\partial\theta_n = 2h\,\partial_\theta f(x_n,\theta_n)^{\mathsf T}\lambda_{n+1}` for
:math:`1 \le n \le N-1` — the leapfrog recursion of docs/theory/discrete-adjoint.md — and, with the forward-Euler
starter, :math:`\lambda_0 = \lambda_2 + \lambda_1 + h\,\partial_xf(x_0,\theta_0)^{\mathsf T}\lambda_1`,
:math:`\partial L_h/\partial\theta_0 = h\,\partial_\theta f(x_0,\theta_0)^{\mathsf T}\lambda_1` (the starter terms).

Non-finite results: every backend checks the forward states, the loss :math:`\Phi(x_N)` and its gradient, the
adjoints :math:`\lambda_n` and the parameter gradient, and raises the same :class:`~refimpl.arguments.NonFiniteError`
at the same place (forward: "the solution became non-finite at step n, time t", as
:func:`refimpl.ode.integrators.integrate`; backward: "the adjoint became non-finite at step n ..."), never returning
NaN/inf.

Backends: ``"numpy"`` runs for any :class:`~refimpl.ode.fields.VectorField` through its ``vjp_x``/``vjp_theta`` (float64,
complex128, or exact on Fraction ``object`` arrays); ``"numba"`` runs the same recursion compiled
(:mod:`refimpl.ode._numba`) for the built-in :class:`~refimpl.ode.fields.TanhField` and
:class:`~refimpl.ode.fields.LinearField` in float64; ``"auto"`` picks numba when it applies.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from refimpl.ad import Variable, ops
from refimpl.arguments import NonFiniteError, first_nonfinite, nonfinite_state_error
from refimpl.backends import BACKENDS, check_backend, resolve_backend
from refimpl.ode.fields import TerminalLoss
from refimpl.ode.integrators import (Problem, checked_loss_value, erk_step, prepare_problem, run, solution_error,
                                    _erk_coefficients, _scaled)
from refimpl.ode.samples import ParameterSamples
from refimpl.ode.tableau import ButcherTableau

__all__ = ["DiscreteAdjoint", "discrete_adjoint", "BACKENDS"]


@dataclass(frozen=True, eq=False)
class DiscreteAdjoint:
    r"""The discrete adjoint of one problem.

    ``loss`` :math:`L_h`; ``grad_theta`` :math:`\partial L_h/\partial\theta_r`, shape ``(n_samples, p)``;
    ``grad_x0``; ``lambdas`` :math:`\lambda_n = \partial L_h/\partial x_n` and ``trajectory`` :math:`x_n` at the
    steps ``stored_steps``: every step :math:`n = 0..N` (shape ``(N+1, d)``) without checkpointing; with
    ``checkpoint = k`` only the checkpoints :math:`n = 0, k, 2k, \dots` and :math:`N` (the rest was recomputed and
    discarded: keeping it would undo the memory saving); ``samples`` (times, stage weights); ``h`` (on a non-uniform
    grid the steps :math:`h_n`); ``backend`` used; ``checkpoint`` (None or k).
    """

    loss: object
    grad_theta: np.ndarray
    grad_x0: np.ndarray
    lambdas: np.ndarray
    trajectory: np.ndarray
    samples: ParameterSamples
    h: object
    backend: str
    checkpoint: int | None = None

    @property
    def stored_steps(self) -> np.ndarray:
        """The step indices n of the rows of ``trajectory`` and ``lambdas``."""
        N = self.samples.N
        return np.arange(N + 1) if self.checkpoint is None else _checkpoint_steps(N, self.checkpoint)

    def normalised_gradient(self) -> np.ndarray:
        r""":math:`g_r = (\partial L_h/\partial\theta_r)/(h\,w_r)` (docs/theory/discrete-adjoint.md), NaN where the
        stage weight :math:`w_r = 0` (e.g. the stage-1 samples of the midpoint rule: they carry no information)."""
        w = self.samples.weights
        hw = float(self.h) * w if self.samples.grid is None else self.samples.step_weights
        out = np.full(self.grad_theta.shape, np.nan, dtype=np.result_type(self.grad_theta.dtype, np.float64)
                      if self.grad_theta.dtype != object else np.float64)
        nz = w != 0
        out[nz] = np.asarray(self.grad_theta[nz], dtype=out.dtype) / hw[nz, None]
        return out

    def __repr__(self) -> str:
        ck = "" if self.checkpoint is None else f", checkpoint={self.checkpoint}"
        return (f"DiscreteAdjoint({self.samples!r}, backend={self.backend!r}{ck}, loss={self.loss!r}, "
                f"|grad_theta|_max={np.max(np.abs(np.asarray(self.grad_theta, dtype=complex))):.6g})")


# ---------------------------------------------------------------------------------------------------------------------
# NumPy path (any field, any dtype)


def erk_step_adjoint(field, hA, hb, x, thetas, lam_next, on_nonfinite=None):
    r"""Adjoint of one ERK step (module docstring): returns :math:`\lambda_{n+1} + \sum_i\bar X_i` and the list of
    :math:`\partial_\theta f(X_i,\theta_i)^{\mathsf T}\bar k_i`, one per stage. ``on_nonfinite()`` (if given) is
    called, and must raise, when a stage cotangent :math:`\bar k_i` overflows."""
    _, X, _ = erk_step(field, hA, hb, x, thetas)
    s = len(hb)
    Xbar, gth = [None] * s, [None] * s
    for i in reversed(range(s)):
        kb = hb[i] * lam_next if hb[i] != 0 else lam_next * 0
        for l in range(i + 1, s):
            if hA[l][i] != 0:
                kb = kb + hA[l][i] * Xbar[l]
        if on_nonfinite is not None and first_nonfinite(kb) is not None:
            on_nonfinite()
        Xbar[i] = field.vjp_x(X[i], thetas[i], kb)
        gth[i] = field.vjp_theta(X[i], thetas[i], kb)
    lam = lam_next
    for i in range(s):
        lam = lam + Xbar[i]
    return lam, gth


def _numpy_erk(problem: Problem, xs, lam_N):
    field, smp, theta, h = problem.field, problem.samples, problem.theta, problem.h
    hA, hb = _erk_coefficients(problem.method, h, problem.exact) if problem.steps is None else (None, None)
    grad_theta = np.zeros(theta.shape, dtype=_accumulator_dtype(theta, lam_N))
    lambdas = [None] * (smp.N + 1)
    lambdas[smp.N] = lam_N
    for n in range(smp.N - 1, -1, -1):
        if problem.steps is not None:
            hA, hb = _erk_coefficients(problem.method, problem.steps[n], problem.exact)
        rows = [int(r) for r in smp.stage_index[n]]
        lambdas[n], gth = erk_step_adjoint(field, hA, hb, xs[n], [theta[r] for r in rows], lambdas[n + 1],
                                           lambda: _raise_adjoint_error(problem, n, lambdas[n + 1]))
        for r, g in zip(rows, gth):
            grad_theta[r] += g
        if first_nonfinite(lambdas[n]) is not None:
            _raise_adjoint_error(problem, n, lambdas[n + 1])
    return grad_theta, np.array(lambdas)


def _numpy_erk_checkpointed(problem: Problem, loss, every: int):
    """The NumPy ERK adjoint with checkpointing (module docstring): the forward sweep keeps x_n at n = 0, every,
    2·every, … and N; the backward sweep recomputes each segment's states from its checkpoint with the same step
    (the same numbers) and runs the same step adjoints, so every result is bit-identical to :func:`_numpy_erk`.
    Returns (x at the checkpoints, loss value, grad_theta, lambda at the checkpoints)."""
    field, smp, theta, N = problem.field, problem.samples, problem.theta, problem.samples.N

    def coefficients(n):
        return _erk_coefficients(problem.method, problem.step(n), problem.exact)

    def step(n, x):
        hA, hb = coefficients(n)
        return erk_step(field, hA, hb, x, [theta[int(r)] for r in smp.stage_index[n]])[0]

    marks = _checkpoint_steps(N, every)
    ck = {0: problem.x0}
    x = problem.x0
    with np.errstate(over="ignore", invalid="ignore"):
        for n in range(N):
            x_next = step(n, x)
            if not problem.exact and first_nonfinite(x_next) is not None:
                raise solution_error(problem, n + 1, x_next, x)
            x = x_next
            if (n + 1) % every == 0 or n + 1 == N:
                ck[n + 1] = x
    lam_N = _loss_grad(problem, loss, x)
    value = loss.value(x)
    grad_theta = np.zeros(theta.shape, dtype=_accumulator_dtype(theta, lam_N))
    lam_ck = {N: lam_N}
    lam = lam_N
    with np.errstate(over="ignore", invalid="ignore"):
        for c in marks[-2::-1]:
            c = int(c)
            e = min(c + every, N)
            seg = [ck[c]]
            for n in range(c, e - 1):
                seg.append(step(n, seg[-1]))
            for n in range(e - 1, c - 1, -1):
                hA, hb = coefficients(n)
                rows = [int(r) for r in smp.stage_index[n]]
                lam_next = lam
                lam, gth = erk_step_adjoint(field, hA, hb, seg[n - c], [theta[r] for r in rows], lam_next,
                                            lambda: _raise_adjoint_error(problem, n, lam_next))
                for r, g in zip(rows, gth):
                    grad_theta[r] += g
                if first_nonfinite(lam) is not None:
                    _raise_adjoint_error(problem, n, lam_next)
            lam_ck[c] = lam
    xs = np.array([ck[int(n)] for n in marks])
    return xs, value, grad_theta, np.array([lam_ck[int(n)] for n in marks])


def _numpy_lmm_checkpointed(problem: Problem, loss, every: int):
    r"""The NumPy LMM adjoint with checkpointing: the forward sweep keeps the window :math:`x_c..x_{c+k-1}` at every
    c = 0, every, 2·every, … ≤ N − k (and x_N); the backward sweep takes the multistep steps n in segments
    [c, c + every) from the last, recomputes :math:`x_c..x_{c+every+k-1}` from the window (the same operations as
    :func:`refimpl.ode.integrators.run`) and runs the recursion of :func:`_numpy_lmm` with the adjoints
    :math:`\lambda` and :math:`\bar F` kept for the k + 2 indices still in use only. Every quantity receives the same
    operations in the same order as in :func:`_numpy_lmm`: bit-identical results. Returns (x at the checkpoints, loss
    value, grad_theta, lambda at the checkpoints)."""
    field, method, smp, theta, h = problem.field, problem.method, problem.samples, problem.theta, problem.h
    exact, N, k = problem.exact, problem.samples.N, problem.method.steps
    hA, hb = _erk_coefficients(smp.starter, h, exact)
    fw_malpha = [-(Fraction(a) if exact else float(a)) for a in method.alpha[:k]]     # as integrators.run
    fw_hbeta = _scaled(method.beta, h, exact)
    marks = _checkpoint_steps(N, every)

    def lmm_states(window, c, e):
        """x_c..x_{e+k-1} from the window x_c..x_{c+k-1} by the multistep steps n = c..e-1 (integrators.run)."""
        xs = list(window)
        F = {}
        for n in range(c, e):
            x_new = None
            for j in range(k):
                if fw_malpha[j] != 0:
                    term = fw_malpha[j] * xs[n - c + j]
                    x_new = term if x_new is None else x_new + term
            for j in range(k):
                if fw_hbeta[j] != 0:
                    m = n + j
                    if m not in F:
                        F[m] = field.f(xs[m - c], theta[int(smp.grid_index[m])])
                    term = fw_hbeta[j] * F[m]
                    x_new = term if x_new is None else x_new + term
            xs.append(x_new)
        return xs

    # forward: the starter, then the multistep steps segment by segment (each segment from the previous window)
    x = [problem.x0]
    with np.errstate(over="ignore", invalid="ignore"):
        for n in range(k - 1):
            x.append(erk_step(field, hA, hb, x[-1], [theta[int(r)] for r in smp.stage_index[n]])[0])
            if not exact and first_nonfinite(x[-1]) is not None:
                raise solution_error(problem, n + 1, x[-1], x[-2])
        starts = list(range(0, N - k + 1, every))
        windows = {0: tuple(x)}
        stored = {}
        for c in starts:
            e = min(c + every, N - k + 1)
            seg = lmm_states(windows[c], c, e)
            if not exact:
                for i in range(k, len(seg)):
                    if first_nonfinite(seg[i]) is not None:
                        raise solution_error(problem, c + i, seg[i], seg[i - 1])
            if e <= N - k:
                windows[e] = tuple(seg[e - c:e - c + k])
            for m in marks:
                if c <= m < c + len(seg):
                    stored.setdefault(int(m), seg[int(m) - c])
    x_N = stored[N]
    lam_N = _loss_grad(problem, loss, x_N)
    value = loss.value(x_N)
    # backward: the recursion of _numpy_lmm on a sliding set of indices
    malpha = [-(a if exact else float(a)) for a in method.alpha[:k]]
    hbeta = _scaled(method.beta, h, exact)
    grad_theta = np.zeros(theta.shape, dtype=_accumulator_dtype(theta, lam_N))
    zero = problem.x0 * 0
    lam, Fbar = {N: lam_N}, {}
    lam_ck = {N: lam_N}

    def get(d, i):
        if i not in d:
            d[i] = zero
        return d[i]

    def add_F_term(m, x_m):
        r = int(smp.grid_index[m])
        if m <= N - 1 and r >= 0:
            if first_nonfinite(get(Fbar, m)) is not None:
                _raise_adjoint_error(problem, m, get(lam, m + 1))
            lam[m] = get(lam, m) + field.vjp_x(x_m, theta[r], Fbar[m])
            grad_theta[r] += field.vjp_theta(x_m, theta[r], Fbar[m])
        if m <= N - 1 and first_nonfinite(get(lam, m)) is not None:
            _raise_adjoint_error(problem, m, get(lam, m + 1))
        if m % every == 0:
            lam_ck[m] = get(lam, m)

    with np.errstate(over="ignore", invalid="ignore"):
        for c in reversed(starts):
            e = min(c + every, N - k + 1)
            seg = lmm_states(windows[c], c, e)
            for n in range(e - 1, c - 1, -1):
                m = n + k
                if m <= N - 1:
                    add_F_term(m, seg[m - c])
                for j in range(k):
                    if malpha[j] != 0:
                        lam[n + j] = get(lam, n + j) + malpha[j] * lam[m]
                    if hbeta[j] != 0:
                        Fbar[n + j] = get(Fbar, n + j) + hbeta[j] * lam[m]
                for i in [i for i in lam if i > m + 1 and i != N]:
                    del lam[i]
                for i in [i for i in Fbar if i > m]:
                    del Fbar[i]
        for m in range(k - 1, -1, -1):
            add_F_term(m, x[m])
            if m >= 1:
                rows = [int(r) for r in smp.stage_index[m - 1]]
                contrib, gth = erk_step_adjoint(field, hA, hb, x[m - 1], [theta[r] for r in rows], get(lam, m),
                                                lambda: _raise_adjoint_error(problem, m - 1, lam[m]))
                lam[m - 1] = get(lam, m - 1) + contrib
                for r, g in zip(rows, gth):
                    grad_theta[r] += g
    return (np.array([stored[int(m)] for m in marks]), value, grad_theta,
            np.array([lam_ck[int(m)] for m in marks]))


def _checkpoint_steps(N: int, every: int) -> np.ndarray:
    """0, every, 2·every, … (< N) and N: the steps a checkpointed sweep keeps."""
    return np.append(np.arange(0, N, every, dtype=np.int64), N)


def _numpy_lmm(problem: Problem, xs, lam_N):
    field, method, smp, theta, h = problem.field, problem.method, problem.samples, problem.theta, problem.h
    exact, N, k = problem.exact, problem.samples.N, problem.method.steps
    hA, hb = _erk_coefficients(smp.starter, h, exact)
    malpha = [-(a if exact else float(a)) for a in method.alpha[:k]]
    hbeta = _scaled(method.beta, h, exact)
    grad_theta = np.zeros(theta.shape, dtype=_accumulator_dtype(theta, lam_N))
    lam = [xs[0] * 0 for _ in range(N + 1)]
    Fbar = [xs[0] * 0 for _ in range(N)]
    lam[N] = lam_N

    def add_F_term(m):
        r = int(smp.grid_index[m])
        if m <= N - 1 and r >= 0:
            if first_nonfinite(Fbar[m]) is not None:
                _raise_adjoint_error(problem, m, lam[m + 1])
            lam[m] = lam[m] + field.vjp_x(xs[m], theta[r], Fbar[m])
            grad_theta[r] += field.vjp_theta(xs[m], theta[r], Fbar[m])
        if m <= N - 1 and first_nonfinite(lam[m]) is not None:  # lambda_m is final here
            _raise_adjoint_error(problem, m, lam[m + 1])

    for n in range(N - k, -1, -1):
        m = n + k
        if m <= N - 1:
            add_F_term(m)
        for j in range(k):
            if malpha[j] != 0:
                lam[n + j] = lam[n + j] + malpha[j] * lam[m]
            if hbeta[j] != 0:
                Fbar[n + j] = Fbar[n + j] + hbeta[j] * lam[m]
    for m in range(k - 1, -1, -1):
        add_F_term(m)
        if m >= 1:
            rows = [int(r) for r in smp.stage_index[m - 1]]
            contrib, gth = erk_step_adjoint(field, hA, hb, xs[m - 1], [theta[r] for r in rows], lam[m],
                                            lambda: _raise_adjoint_error(problem, m - 1, lam[m]))
            lam[m - 1] = lam[m - 1] + contrib
            for r, g in zip(rows, gth):
                grad_theta[r] += g
    return grad_theta, np.array(lam)


def _raise_adjoint_error(problem: Problem, n: int, lam_next):
    """The backward sweep overflowed inside step n (x_n → x_{n+1}); the forward states and the loss are finite."""
    size = f" (max |lambda_{n + 1}| = {np.max(np.abs(lam_next)):.3g})"
    raise NonFiniteError(f"the adjoint became non-finite at step {n}, time t = {problem.time(n):.6g}, of the "
                         f"backward sweep: lambda_{n} = dL/dx_{n} (or a stage cotangent of that step) overflows{size}; "
                         f"the trajectory and the loss are finite")


def _check_adjoint(problem: Problem, lambdas, grad_theta) -> None:
    """The hand adjoint's result, checked as the NumPy sweep checks it on the fly (the compiled sweeps run to the end
    and are checked here): the largest n with a non-finite lambda_n is where the backward sweep overflowed."""
    if problem.exact:
        return
    bad_rows = ~np.all(np.isfinite(lambdas), axis=1)
    if bad_rows.any():
        n = int(np.flatnonzero(bad_rows)[-1])
        _raise_adjoint_error(problem, n, lambdas[n + 1])
    where = first_nonfinite(grad_theta)
    if where is not None:
        t = float(problem.samples.times[where[0]])
        raise NonFiniteError(f"the parameter gradient became non-finite: dL/dtheta at sample {where[0]} (time t = "
                             f"{t:.6g}), entry {where[1]}, overflows although the trajectory, the loss and the "
                             f"adjoints are finite")


def _check_forward(problem: Problem, xs) -> None:
    """The compiled forward sweep's states, checked as :func:`refimpl.ode.integrators.run` checks them step by step."""
    bad_rows = ~np.all(np.isfinite(xs), axis=1)
    if bad_rows.any():
        n = int(np.argmax(bad_rows))
        raise solution_error(problem, n, xs[n], xs[n - 1])


def _accumulator_dtype(theta, lam):
    if theta.dtype == object or np.asarray(lam).dtype == object:
        return object
    return np.result_type(theta.dtype, np.asarray(lam).dtype)


# ---------------------------------------------------------------------------------------------------------------------
# Numba path (a field with a kernel descriptor, float64)


def _kernel_of(field):
    """The field's :class:`~refimpl.ode.fields.NumbaKernel` descriptor, or None."""
    return getattr(field, "kernel", None)


def _numba_applies(problem: Problem) -> bool:
    return (_kernel_of(problem.field) is not None and not problem.exact
            and problem.x0.dtype == np.float64 and problem.theta.dtype == np.float64)


#: the Numba path keeps the forward sweep's stage slopes for the backward sweep (instead of evaluating f again) when
#: they take at most this many float64 entries (N·s·d for an ERK, N·d for an LMM); the result is the same either way
KEEP_STAGES_MAX_ENTRIES = 1 << 23


def _numba(problem: Problem, loss, checkpoint=None):
    """The compiled adjoint: (xs, grad_theta, lambdas, grad_finite). ``grad_finite`` is True when the backward sweep
    found every value it wrote into the gradient finite (then the gradient is finite; refimpl.ode._numba
    ``_row_nonfinite``), False when it met an inf or NaN, None on the checkpointed path (which checks its results
    itself). Without checkpointing θ need not have been checked finite: the forward sweep counts θ's non-finite
    entries as it first reads each row (refimpl.ode._numba ``_rows_nonfinite``), and a nonzero count raises the
    argument error of :func:`~refimpl.ode.integrators.prepare_problem` (:func:`_theta_check_fused`)."""
    from refimpl.ode import _numba as kernels  # imports Numba: only when the compiled path runs

    nonfinite = np.zeros(1, dtype=np.int64)
    theta_check = np.zeros(2, dtype=np.int64)       # check every θ row in the forward sweep

    kernel = _kernel_of(problem.field)
    smp, h = problem.samples, problem.h
    d = problem.x0.shape[0]
    if isinstance(problem.method, ButcherTableau):
        if problem.steps is None:
            hA, hb = _float_erk(problem.method, h)
            steps = None
        else:                                  # A and b; step n scales them by h_n (as the NumPy path does)
            hA, hb = _float_erk(problem.method, 1.0)
            steps = np.array(problem.steps, dtype=np.float64)
        if checkpoint is not None:
            return _numba_erk_checkpointed(problem, loss, kernels, kernel, hA, hb, steps, checkpoint)
        keep = smp.N * len(hb) * d <= KEEP_STAGES_MAX_ENTRIES
        x0, theta, hs = _prepared_arrays(problem, kernels, kernel, steps)
        out, mapping = kernels.gradient_buffer(theta.shape)     # its pages mapped on a second thread, if large
        try:
            xs, stages = kernels._erk_forward_prepared(kernel, x0, theta, smp.stage_index, hA, hb, hs, keep,
                                                       theta_check)
        finally:
            if mapping is not None:
                mapping.join()
        if theta_check[1]:
            raise nonfinite_state_error(problem.theta, "theta")
        _check_forward_compiled(problem, kernels, xs)
        lam_N = _lam_N(problem, loss, kernels, xs[-1])
        grad_theta, lambdas = kernels._erk_backward_prepared(kernel, xs, theta, smp.stage_index, hA, hb, hs, lam_N,
                                                             stages, nonfinite, out=out)
    else:
        method, k = problem.method, problem.method.steps
        hA, hb = _float_erk(smp.starter, h)
        malpha = np.array([-float(a) for a in method.alpha[:k]])
        hbeta = np.array([h * float(b) for b in method.beta])
        if checkpoint is not None:
            args = (smp.stage_index, hA, hb, malpha, hbeta, smp.grid_index)
            windows, xck, bad = kernels.lmm_forward_checkpointed(kernel, problem.x0, problem.theta, *args, checkpoint)
            if bad >= 0:
                return _rerun_for_error(problem, loss, checkpoint)
            lam_N = _loss_grad(problem, loss, xck[-1])
            grad_theta, lam_ck, bad = kernels.lmm_backward_checkpointed(kernel, windows, problem.theta, *args, lam_N,
                                                                        checkpoint)
            if bad >= 0 or not np.all(np.isfinite(grad_theta)):
                return _rerun_for_error(problem, loss, checkpoint)
            return xck, grad_theta, lam_ck, None
        # the F_m are kept for the backward sweep only if its VJP reads them (else a ring of k rows suffices)
        keep = bool(kernel.vjp_reads_fx) and smp.N * d <= KEEP_STAGES_MAX_ENTRIES
        x0, theta, _ = _prepared_arrays(problem, kernels, kernel, None)
        args = (smp.stage_index, hA, hb, malpha, hbeta, smp.grid_index)
        out, mapping = kernels.gradient_buffer(theta.shape)     # its pages mapped on a second thread, if large
        try:
            xs, slopes = kernels._lmm_forward_prepared(kernel, x0, theta, *args, theta_check, keep_slopes=keep)
        finally:
            if mapping is not None:
                mapping.join()
        if theta_check[1]:
            raise nonfinite_state_error(problem.theta, "theta")
        if keep:
            F, have_F = slopes
        else:                                  # recomputed in the backward sweep if the VJP reads them
            F, have_F = np.zeros((0, d)), np.zeros(0, dtype=np.bool_)
        _check_forward_compiled(problem, kernels, xs)
        lam_N = _lam_N(problem, loss, kernels, xs[-1])
        grad_theta, lambdas = kernels._lmm_backward_prepared(kernel, xs, theta, *args, lam_N, F, have_F, nonfinite,
                                                             out=out)
    return xs, grad_theta, lambdas, bool(nonfinite[0] == 0)


def _prepared_arrays(problem: Problem, kernels, kernel, steps):
    r"""x0, θ and the steps h_n as the compiled sweeps take them, for :func:`_numba`. The public wrappers of
    :mod:`refimpl.ode._numba` check every argument, and on θ that is a full finiteness pass per sweep, O(N·p) with a
    boolean temporary of θ's size (≈ 0.3 s each at N = 10⁶, d = 16, step layout); here θ and x0 were checked by
    :func:`~refimpl.ode.integrators.prepare_problem` (float64 by :func:`_numba_applies`, shaped for the samples, and
    finite — x0 there, θ there or, by :func:`_theta_check_fused`, in the forward sweep), the index maps are built by
    :func:`~refimpl.ode.samples.parameter_samples` and the coefficients above, so only what those do not cover is
    checked: contiguity and the kernel descriptor's parameter count."""
    d = problem.x0.shape[0]
    p = kernel.n_params(d)
    if problem.theta.shape[1] != p:
        raise ValueError(f"theta must have n_params = {p} columns for d = {d}, got {problem.theta.shape[1]}")
    N = problem.samples.N
    return (np.ascontiguousarray(problem.x0), np.ascontiguousarray(problem.theta),
            kernels._steps(steps, N))


def _lam_N(problem: Problem, loss, kernels, xN):
    """∇Φ(x_N) (:func:`_loss_grad`) as the compiled backward sweep takes it: a float64 vector (the check of the
    public wrappers)."""
    return kernels._f64(_loss_grad(problem, loss, xN), "lam_N", 1)


def _check_forward_compiled(problem: Problem, kernels, xs) -> None:
    """:func:`_check_forward`, after one compiled pass that finds every state finite (the usual case)."""
    if not kernels.all_finite(xs):
        _check_forward(problem, xs)


def _check_adjoint_compiled(problem: Problem, kernels, lambdas, grad_theta, grad_finite=None) -> None:
    """:func:`_check_adjoint` for the compiled path: one compiled pass over each result without temporaries — none
    over the gradient when the backward sweep already found it finite (``grad_finite`` True, from :func:`_numba`) —
    and the located error (the same message as the NumPy path's) only when something is non-finite."""
    if not (kernels.all_finite(lambdas) and (grad_finite is True or kernels.all_finite(grad_theta))):
        _check_adjoint(problem, lambdas, grad_theta)


def _numba_erk_checkpointed(problem: Problem, loss, kernels, kernel, hA, hb, steps, every):
    """The compiled ERK adjoint with checkpointing (:func:`refimpl.ode._numba.erk_backward_checkpointed`; the
    segment's stage slopes are kept when they fit in ``KEEP_STAGES_MAX_ENTRIES``). A non-finite state or adjoint is
    located, for its message, by running the sweeps again without checkpointing (only on that error path: a
    non-finite state stays non-finite in every later state, and a non-finite adjoint in every earlier one, so the
    checkpoints detect it)."""
    smp, d = problem.samples, problem.x0.shape[0]
    xck = kernels.erk_forward_checkpointed(kernel, problem.x0, problem.theta, smp.stage_index, hA, hb, every,
                                           steps=steps)
    if not np.all(np.isfinite(xck[-1])):
        return _rerun_for_error(problem, loss, every)
    lam_N = _loss_grad(problem, loss, xck[-1])
    keep = min(every, smp.N) * len(hb) * d <= KEEP_STAGES_MAX_ENTRIES
    grad_theta, lam_ck = kernels.erk_backward_checkpointed(kernel, xck, problem.theta, smp.stage_index, hA, hb,
                                                           lam_N, every, steps=steps, keep_segment=keep)
    if not (np.all(np.isfinite(lam_ck)) and np.all(np.isfinite(grad_theta))):
        return _rerun_for_error(problem, loss, every)
    return xck, grad_theta, lam_ck, None


def _rerun_for_error(problem: Problem, loss, every: int):
    """A checkpointed compiled sweep met a non-finite state or adjoint: run again keeping everything, which raises the
    error at its step (the same message as without checkpointing); should it not raise, its rows at the checkpoints
    are the result."""
    xs, grad_theta, lambdas, _ = _numba(problem, loss)
    _check_adjoint(problem, lambdas, grad_theta)
    rows = _checkpoint_steps(problem.samples.N, every)
    return xs[rows], grad_theta, lambdas[rows], None


def _float_erk(tableau: ButcherTableau, h: float):
    A, b, _ = tableau.arrays()
    return np.ascontiguousarray(h * A), np.ascontiguousarray(h * b)


def _loss_grad(problem: Problem, loss, xN):
    """∇Φ(x_N), after Φ(x_N) itself is checked finite (the same order and errors on every backend)."""
    checked_loss_value(problem, loss, xN)
    with np.errstate(over="ignore", invalid="ignore"):
        g = np.asarray(loss.grad(xN))
    if g.shape != np.shape(xN):
        raise ValueError(f"loss.grad returned shape {g.shape}, expected {np.shape(xN)}")
    if not problem.exact and first_nonfinite(g) is not None:
        raise NonFiniteError(f"the loss gradient became non-finite: grad Phi(x_N) has a non-finite entry at index "
                             f"{first_nonfinite(g)[0]} although x_N and Phi(x_N) are finite")
    return g


def _theta_check_fused(field, x0, theta, backend: str, checkpoint) -> bool:
    r"""Whether :func:`discrete_adjoint` leaves θ's NaN/inf check to the forward sweep of :func:`_numba`: exactly when
    the call takes the compiled path without checkpointing (a field with a kernel descriptor, float64 ndarrays x0
    and θ, backend "auto" or "numba", ``checkpoint`` None). The sweep reads every row of θ anyway; counting its
    non-finite entries there, row by row from L1, replaces a separate NumPy pass over θ — at N = 10⁶ steps of the step
    layout (d = 16: θ is 2.2 GB) one more full read of θ and a 272 MB boolean temporary, ≈ 0.1–0.3 s per call. The
    error is the same ``ValueError`` (:func:`refimpl.arguments.nonfinite_state_error`, the first non-finite index),
    raised after the forward sweep instead of before it; only an argument error that
    :func:`~refimpl.ode.integrators.prepare_problem` raises after θ's check (a non-float grid) can now come first."""
    return (checkpoint is None and backend in ("auto", "numba") and _kernel_of(field) is not None
            and isinstance(x0, np.ndarray) and x0.dtype == np.float64
            and isinstance(theta, np.ndarray) and theta.dtype == np.float64)


# ---------------------------------------------------------------------------------------------------------------------


def discrete_adjoint(field, method, x0, theta, T, N, loss, *, layout: str = "stage", starter=None,
                     backend: str = "auto", grid=None, checkpoint=None) -> DiscreteAdjoint:
    r"""The discrete adjoint of :math:`L_h = \Phi(x_N)` by the hand-derived recursion (module docstring).

    Arguments as :func:`refimpl.ode.integrators.integrate` (plain ndarrays only: float64, complex128, or Fraction
    ``object`` arrays for exact mode; ``layout`` "stage", "step" or "constant"; ``grid`` a non-uniform grid for a
    Runge–Kutta method), plus the terminal ``loss`` (``value``/``grad``), the ``backend`` (``"auto"``, ``"numpy"``,
    ``"numba"``) and ``checkpoint``: None (keep every state) or an int k ≥ 1 — keep only :math:`x_0, x_k, x_{2k},
    \dots, x_N` in the forward sweep and recompute each segment's states from its checkpoint in the backward sweep
    (docs/theory/discrete-adjoint.md §12): state memory O((N/k + k)·d) instead of O(N·d), one more forward sweep of
    work, and gradients bit-identical to ``checkpoint=None`` (the recomputation repeats the same operations on the same
    inputs); for a multistep method the checkpoints are windows of its k states and the backward sweep keeps the
    adjoints of the k + 2 indices in use only. With a checkpoint the result keeps ``trajectory`` and ``lambdas`` at the
    checkpoints only (``stored_steps``). Returns a :class:`DiscreteAdjoint`.
    """
    if isinstance(x0, Variable) or isinstance(theta, Variable):
        raise TypeError("x0, theta: the hand adjoint takes plain arrays, not tape Variables (use refimpl.ad.grad "
                        "through refimpl.ode.integrators for the tape route)")
    if not isinstance(loss, TerminalLoss):
        raise TypeError(f"loss must implement value(x) and grad(x), got {type(loss).__name__}")
    check_backend(backend)
    fused = _theta_check_fused(field, x0, theta, backend, checkpoint)
    problem = prepare_problem(field, method, x0, theta, T, N, layout, starter, grid, theta_finite=not fused)
    if checkpoint is not None:
        if isinstance(checkpoint, (bool, np.bool_)) or not isinstance(checkpoint, (int, np.integer)):
            raise TypeError(f"checkpoint must be None or an integer >= 1, got {type(checkpoint).__name__}")
        if checkpoint < 1:
            raise ValueError(f"checkpoint must be >= 1 (keep every k-th state), got {checkpoint}")
        checkpoint = int(min(checkpoint, problem.samples.N))
    use_numba = resolve_backend(backend, kernel_applies=_numba_applies(problem),
                                why_not="it needs a field with a kernel descriptor (e.g. TanhField, LinearField) "
                                        "and float64 x0/theta") == "numba"
    if fused and not use_numba and not np.all(np.isfinite(problem.theta)):  # a guard: fused implies the compiled path
        raise nonfinite_state_error(problem.theta, "theta")
    if use_numba:
        from refimpl.ode import _numba as kernels

        xs, grad_theta, lambdas, grad_finite = _numba(problem, loss, checkpoint)
        value = loss.value(xs[-1])
        _check_adjoint_compiled(problem, kernels, lambdas, grad_theta, grad_finite)
    else:
        if checkpoint is not None:
            run_checkpointed = (_numpy_erk_checkpointed if isinstance(problem.method, ButcherTableau)
                                else _numpy_lmm_checkpointed)
            xs, value, grad_theta, lambdas = run_checkpointed(problem, loss, checkpoint)
        else:
            xs_list = run(problem)
            xs = np.asarray(ops.stack(xs_list))
            lam_N = _loss_grad(problem, loss, xs_list[-1])
            value = loss.value(xs_list[-1])
            with np.errstate(over="ignore", invalid="ignore"):
                if isinstance(problem.method, ButcherTableau):
                    grad_theta, lambdas = _numpy_erk(problem, xs_list, lam_N)
                else:
                    grad_theta, lambdas = _numpy_lmm(problem, xs_list, lam_N)
        _check_adjoint(problem, lambdas, grad_theta)
    return DiscreteAdjoint(value, grad_theta, lambdas[0], lambdas, xs, problem.samples, problem.h,
                           "numba" if use_numba else "numpy", checkpoint)
