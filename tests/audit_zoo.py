"""The bug zoo's solvers: gradient implementations written the way people write them — correct ones, and each with
one deliberate, realistic bug. Plain NumPy (the hand adjoints use the field's ``vjp_x``/``vjp_theta``) or a NumPy
forward pass for ``TapeAdapter``. Importable (tests/ is put on a worker's sys.path) so any executor can run them."""
from __future__ import annotations


import numpy as np

from refimpl.audit import SolverOutput
from refimpl.ode.schemes import RK4

A_RK4 = [[float(a) for a in row] for row in RK4.A]
B_RK4 = [float(v) for v in RK4.b]


def _loss(x, y):
    r = np.asarray(x, dtype=np.float64) - y
    return 0.5 * float(r @ r)


# ---------------------------------------------------------------------------------------------------------------------
# forward passes for TapeAdapter: (member, x0, theta) -> states, written with NumPy operators on tape Variables


def erk_forward(A, b, row=None, time_lookup=False):
    """An ERK forward pass with tableau (A, b); ``row(member, n, i)`` picks the parameter row of stage i of step n
    (default: refimpl's ``stage_index``); ``time_lookup``: the step layout's row found from an accumulated time
    ``t += h`` by ``int(t / h)`` (how a drifting clock picks it)."""
    s = len(b)

    def forward(member, x0, theta):
        idx = member.samples.stage_index
        h, x, xs, t = member.h, x0, [x0], 0.0
        for n in range(member.N):
            ks = []
            for i in range(s):
                xi = x
                for j in range(i):
                    if A[i][j] != 0.0:
                        xi = xi + (h * A[i][j]) * ks[j]
                if time_lookup:
                    r = min(int(t / h), member.N - 1)
                else:
                    r = int(idx[n, i]) if row is None else row(member, n, i)
                ks.append(member.field.f(xi, theta[r]))
            for i in range(s):
                if b[i] != 0.0:
                    x = x + (h * b[i]) * ks[i]
            xs.append(x)
            t = t + h
        return xs
    forward.__name__ = "erk_forward"
    return forward


def rk4_tape(member, x0, theta):
    """Classical RK4, differentiated by the tape (correct)."""
    return erk_forward(A_RK4, B_RK4)(member, x0, theta)


def rk38_tape(member, x0, theta):
    """Kutta's 3/8 rule — what torchdiffeq's fixed-grid 'rk4' is — differentiated by the tape (correct)."""
    from refimpl.ode.schemes import RK38
    return erk_forward([[float(a) for a in r] for r in RK38.A], [float(v) for v in RK38.b])(member, x0, theta)


def euler_plain_numpy(member, x0, theta):
    """Forward Euler of the tanh field written with plain NumPy calls (np.reshape, @, np.tanh), differentiated by
    refimpl's tape through its NumPy dispatch (correct)."""
    d = x0.shape[0]
    x, xs = x0, [x0]
    for n in range(member.N):
        th = theta[n]
        W, b = np.reshape(th[: d * d], (d, d)), th[d * d:]
        x = x + member.h * np.tanh(W @ x + b)
        xs.append(x)
    return xs


def off_by_one_stage_sample(member, x0, theta):
    """Bug: the midpoint stages (c = 1/2) read the next parameter sample (θ at t_{n+1} instead of t_{n+1/2})."""
    def row(m, n, i):
        r = int(m.samples.stage_index[n, i])
        return r + 1 if i in (1, 2) else r
    return erk_forward(A_RK4, B_RK4, row)(member, x0, theta)


def wrong_stage_weight(member, x0, theta):
    """Bug: the weights (1/6, 1/6, 1/2, 1/6) — still summing to 1 — instead of (1/6, 1/3, 1/3, 1/6)."""
    return erk_forward(A_RK4, [1 / 6, 1 / 6, 1 / 2, 1 / 6])(member, x0, theta)


def swapped_tableau_row(member, x0, theta):
    """Bug: rows 2 and 3 of RK4's A swapped (within the lower triangle): X2 = x_n, X3 = x_n + h/2 k1."""
    A = [[0, 0, 0, 0], [0.0, 0, 0, 0], [0.5, 0, 0, 0], [0, 0, 1.0, 0]]
    return erk_forward(A, B_RK4)(member, x0, theta)


def drifting_clock(member, x0, theta):
    """Bug: the step layout's parameter row found from a clock ``t += h`` as ``int(t / h)``: rounding makes t fall
    just short of n h at some steps, which then read row n − 1."""
    return erk_forward(A_RK4, B_RK4, time_lookup=True)(member, x0, theta)


def exact_clock(member, x0, theta):
    """The same solver with the row taken from the step counter (correct)."""
    return erk_forward(A_RK4, B_RK4)(member, x0, theta)


# ---------------------------------------------------------------------------------------------------------------------
# hand-written adjoints (CallableAdapter): member -> SolverOutput


def _erk_hand(member, A, b, *, flip_stage=None, float32_at=None):
    f, theta, idx, h, s = member.field, member.theta, member.samples.stage_index, member.h, len(b)
    x = np.array(member.x0, dtype=np.float64)
    xs, kept = [x], []
    for n in range(member.N):
        X, k = [], []
        for i in range(s):
            xi = x + h * sum((A[i][j] * k[j] for j in range(i)), np.zeros_like(x))
            X.append(xi)
            k.append(f.f(xi, theta[int(idx[n, i])]))
        x = x + h * sum(b[i] * k[i] for i in range(s))
        if float32_at is not None and n == float32_at(member.N):
            x = x.astype(np.float32).astype(np.float64)   # the bug: a float32 buffer in the middle of the solve
        xs.append(x)
        kept.append(X)
    lam = xs[-1] - member.y
    G = np.zeros_like(theta)
    for n in reversed(range(member.N)):
        X = kept[n]
        Xbar = [None] * s
        for i in reversed(range(s)):
            kbar = h * (b[i] * lam + sum((A[l][i] * Xbar[l] for l in range(i + 1, s)), np.zeros_like(lam)))
            r = int(idx[n, i])
            Xbar[i] = f.vjp_x(X[i], theta[r], kbar)
            gth = f.vjp_theta(X[i], theta[r], kbar)
            G[r] += -gth if flip_stage == i else gth
        lam = lam + sum(Xbar)
    return SolverOutput(np.stack(xs), _loss(xs[-1], member.y), G, lam)


def rk4_hand(member):
    """Hand discrete adjoint of RK4 (correct)."""
    return _erk_hand(member, A_RK4, B_RK4)


def sign_error_in_one_vjp(member):
    """Bug: the θ-VJP of stage 3 enters with the wrong sign."""
    return _erk_hand(member, A_RK4, B_RK4, flip_stage=2)


def float32_midway(member):
    """Bug: the state passes through a float32 buffer at the middle step."""
    return _erk_hand(member, A_RK4, B_RK4, float32_at=lambda N: N // 2)


def backsolve_on_forward_grid(member):
    """Bug (for someone who wanted the discrete gradient): the adjoint re-integrates (x, λ, ∫∂θfᵀλ) backward with RK4
    on the forward grid reversed — optimise-then-discretise, consistent but not the gradient of L_h."""
    f, theta, h = member.field, member.theta, member.h
    ok = _erk_hand(member, A_RK4, B_RK4)
    x, lam = ok.trajectory[-1].copy(), ok.trajectory[-1] - member.y
    d, G = x.size, np.zeros_like(theta)

    def rhs(z, th):
        xx, ll = z[:d], z[d:2 * d]
        return np.concatenate([f.f(xx, th), -f.vjp_x(xx, th, ll), -f.vjp_theta(xx, th, ll)])

    for n in reversed(range(member.N)):
        th = theta[n]
        z = np.concatenate([x, lam, np.zeros(theta.shape[1])])
        k1 = rhs(z, th)
        k2 = rhs(z - 0.5 * h * k1, th)
        k3 = rhs(z - 0.5 * h * k2, th)
        k4 = rhs(z - h * k3, th)
        z = z - h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        x, lam, G[n] = z[:d], z[d:2 * d], z[2 * d:]
    return SolverOutput(ok.trajectory, ok.loss, G, lam)


def _leapfrog_hand(member, *, starter_term=True):
    """Leapfrog x_{n+1} = x_{n-1} + 2h f(x_n, θ_n) with a forward-Euler first step, and its hand adjoint."""
    f, theta, h, N = member.field, member.theta, member.h, member.N
    rows = member.samples.grid_index
    x0 = np.array(member.x0, dtype=np.float64)
    xs = [x0, x0 + h * f.f(x0, theta[int(member.samples.stage_index[0, 0])])]
    for n in range(1, N):
        xs.append(xs[n - 1] + 2 * h * f.f(xs[n], theta[int(rows[n])]))
    lam = [np.zeros_like(x0) for _ in range(N + 2)]
    lam[N] = xs[N] - member.y
    G = np.zeros_like(theta)
    for n in range(N - 1, 0, -1):          # step n: x_{n+1} = x_{n-1} + 2h F_n
        th = theta[int(rows[n])]
        lam[n - 1] = lam[n - 1] + lam[n + 1]
        lam[n] = lam[n] + 2 * h * f.vjp_x(xs[n], th, lam[n + 1])
        G[int(rows[n])] += 2 * h * f.vjp_theta(xs[n], th, lam[n + 1])
    r0 = int(member.samples.stage_index[0, 0])
    lam[0] = lam[0] + lam[1]
    if starter_term:                        # the starter x_1 = x_0 + h f(x_0, θ_0)
        lam[0] = lam[0] + h * f.vjp_x(x0, theta[r0], lam[1])
        G[r0] += h * f.vjp_theta(x0, theta[r0], lam[1])
    return SolverOutput(np.stack(xs), _loss(xs[N], member.y), G, lam[0]), G


def leapfrog_hand(member):
    """Hand discrete adjoint of leapfrog with its forward-Euler starter (correct)."""
    return _leapfrog_hand(member)[0]


def leapfrog_missing_starter_term(member):
    """Bug: the adjoint of the starting step is dropped (λ_0 gets λ_1 but not h J_0ᵀλ_1; θ_0 gets nothing)."""
    return _leapfrog_hand(member, starter_term=False)[0]


def _pairs(member, G, scale):
    h, N, rows = member.h, member.N, member.samples.grid_index
    times, values = [], []
    for m in range(1, N - 1):               # samples used by leapfrog steps only: t_1 .. t_{N-1}
        times.append(0.5 * (member.sample_times[int(rows[m])] + member.sample_times[int(rows[m + 1])]))
        values.append((G[int(rows[m])] + G[int(rows[m + 1])]) / (scale * h))
    return np.array(times), np.array(values)


def leapfrog_pair_sum(member):
    """Leapfrog gradient and its correction (G_m + G_{m+1})/(2h) as the estimate of δL/δθ (correct)."""
    out, G = _leapfrog_hand(member)
    t, v = _pairs(member, G, 2.0)
    return SolverOutput(out.trajectory, out.loss, out.grad_theta, out.grad_x0, estimate_times=t, estimate=v)


def leapfrog_pair_average(member):
    """Bug: the correction as the pair *average* (G_m + G_{m+1})/(4h)."""
    out, G = _leapfrog_hand(member)
    t, v = _pairs(member, G, 4.0)
    return SolverOutput(out.trajectory, out.loss, out.grad_theta, out.grad_x0, estimate_times=t, estimate=v)


# ---------------------------------------------------------------------------------------------------------------------
# adaptive (Dormand–Prince with torchdiffeq's rules): which step sizes the gradient sees


def _dopri(member, detach):
    from refimpl.ode.conventions import convention
    g = convention(member.convention).full_discrete_gradient(member.field, member.x0, member.theta, member.T,
                                                             member.loss, rtol=member.rtol, atol=member.atol,
                                                             detach=detach)
    sol = g.solution
    return SolverOutput(np.asarray(sol.xs), g.loss, g.grad_theta, g.grad_x0, times=np.asarray(sol.grid))


def dopri_starting_step_attached(member):
    """torchdiffeq's autodiff: the controller's factors constant, the starting step on the graph (correct)."""
    return _dopri(member, ("h_next",))


def dopri_step_size_detached(member):
    """Bug: every step size detached (a frozen grid) where torchdiffeq differentiates its starting step."""
    return _dopri(member, ("h0", "h"))


