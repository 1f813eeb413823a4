"""The continuous gradient of a per-step-constant parameter table (refimpl.ode.piecewise_adjoint,
docs/theory/continuous-adjoint.md §8) against

* an independent route: the tape (refimpl.ad.grad) through a fine fixed-step RK4 of the same piecewise problem
  (refimpl.ode.integrators, layout "step", θ_n on every substep of piece n), Richardson-extrapolated — on a fixed tanh
  problem (uniform and non-uniform grid) and on drawn problems (property test: tanh, two-layer tanh, affine and
  polynomial fields);
* closed forms of three linear fields, written with matrix exponentials (Van Loan's block exponential for the
  integrals over a piece);
* the continuous adjoint of the constant-θ problem (one piece: the same computation; N equal rows: the same sum);
* the continuous functional gradient δL/δθ(t) of a smooth θ(t) (rows sampled from it, grid refined);

and its error estimate against the true error, its repr, and its input validation.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.linalg import expm

from refimpl.ad import grad, ops
from refimpl.arguments import NonFiniteError
from refimpl.ode import piecewise_constant_continuous_gradient as exported
from refimpl.ode.adjoint_ode import continuous_adjoint
from refimpl.ode.fields import (LinearField, LinearForcingField, QuadraticLoss, ScaledLinearField, TanhField,
                                UserLoss)
from refimpl.ode.integrators import discrete_loss, integrate
from refimpl.ode.piecewise_adjoint import (PiecewiseAdjointErrorEstimate, PiecewiseConstantAdjointResult,
                                           piecewise_constant_continuous_gradient)
from refimpl.ode.schemes import RK4
from refimpl.problems.analytic_ode import ScalarLinearCase
from refimpl.testing.strategies_ode import ode_problems

QUANTITIES = ("loss", "x_final", "grad_x0", "grad_theta")


# ----------------------------------------------------------------------------------------------------------------------
# (a) the tape through a fine RK4 of the same piecewise problem, with Richardson extrapolation


def _tanh_problem(seed=12, d=3, N=6, T=1.5):
    rng = np.random.default_rng(seed)
    field = TanhField(d)
    table = rng.normal(scale=0.8, size=(N, field.n_params))
    return field, table, rng.normal(size=d), T, QuadraticLoss(rng.normal(size=d)), rng


def _tape_rk4_uniform(field, table, x0, T, loss, M):
    """(∂L/∂x₀, ∂L/∂θ_n) of RK4 with M substeps per piece on the uniform grid: layout "step" on the refined grid of
    N·M steps, row n repeated M times, the gradient rows of each original step summed."""
    N, p = table.shape
    rep = np.repeat(table, M, axis=0)

    def L(x, th):
        return discrete_loss(field, RK4, x, th, T, N * M, loss, layout="step")

    return grad(L, 0)(x0, rep), grad(L, 1)(x0, rep).reshape(N, M, p).sum(axis=1)


def _tape_rk4_on_grid(field, table, x0, loss, grid, M):
    """The same on a non-uniform grid: piece n is integrated by its own M RK4 steps of size h_n/M (layout "step", row
    n stacked M times on the tape), the pieces chained on the tape, so ∂L/∂θ_n sums over the substeps by itself."""
    N = table.shape[0]

    def L(x, tab):
        for n in range(N):
            x = integrate(field, RK4, x, ops.stack([tab[n]] * M), float(grid[n + 1] - grid[n]), M,
                          layout="step").final
        return loss.value(x)

    return grad(L, 0)(x0, table), grad(L, 1)(x0, table)


def _richardson_check(ref, routes):
    """Compare ``ref`` with RK4-on-the-tape gradients at M, 2M, 4M substeps (``routes``: list of (gx, gθ)).

    RK4 keeps order 4 on each piece (no step crosses a breakpoint, the field is smooth within a piece), so the error of
    G_M expands as C₄h⁴ + C₅h⁵ + … and the successive differences fall 16× per doubling (asserted: the regime is
    asymptotic). R_M = (16 G_{2M} − G_M)/15 removes the h⁴ term; its error is O(h⁵), so R_{2M} is ≈ 32× more accurate
    than R_M and |R_M − R_{2M}| ≥ (31/32)·err(R_M) ≈ 31·err(R_{2M}): a tolerance of |R_M − R_{2M}| (+ the DOP853
    route's own reported bound) on |ref − R_{2M}| leaves a factor ≈ 31 of margin over the estimated error of R_{2M}
    and is still ≈ 10⁻¹⁰ relative to the gradients, far below the raw RK4 error."""
    out = {}
    for k, (name, bound) in enumerate((("grad_x0", ref.error.grad_x0), ("grad_theta", ref.error.grad_theta))):
        G = [r[k] for r in routes]
        d1, d2 = np.max(np.abs(G[1] - G[0])), np.max(np.abs(G[2] - G[1]))
        assert 12.0 < d1 / d2 < 20.0, (name, d1 / d2)  # fourth order: 2⁴ = 16
        R1, R2 = (16 * G[1] - G[0]) / 15, (16 * G[2] - G[1]) / 15
        tol = np.max(np.abs(R1 - R2)) + bound
        err = np.max(np.abs(getattr(ref, name) - R2))
        assert err <= tol, (name, err, tol)
        out[name] = (err, tol, np.max(np.abs(G[2] - getattr(ref, name))))
    return out


def test_against_tape_through_fine_rk4_uniform_grid():
    # measured: |ref − R_32| = 1.6e-12 (grad_theta), 1.5e-12 (grad_x0); tolerance |R_16 − R_32| ≈ 5e-11; raw RK4
    # error at M = 32 ≈ 1.4e-10; difference ratios 15.7
    field, table, x0, T, loss, _ = _tanh_problem()
    ref = piecewise_constant_continuous_gradient(field, table, x0, T, loss)
    routes = [_tape_rk4_uniform(field, table, x0, T, loss, M) for M in (8, 16, 32)]
    _richardson_check(ref, routes)
    assert ref.grad_theta.shape == table.shape


def test_against_tape_through_fine_rk4_nonuniform_grid():
    # measured: |ref − R_32| = 1.5e-13 (grad_theta), 1.8e-13 (grad_x0); tolerance |R_16 − R_32| ≈ 6e-12 (grad_theta),
    # 1.1e-11 (grad_x0); raw RK4 error at M = 32 ≈ 3.7e-11; difference ratios 15.9, 16.1
    field, table, x0, T, loss, rng = _tanh_problem()
    grid = np.concatenate([[0.0], np.sort(rng.uniform(0.0, T, table.shape[0] - 1)), [T]])
    ref = piecewise_constant_continuous_gradient(field, table, x0, T, loss, grid=grid)
    routes = [_tape_rk4_on_grid(field, table, x0, loss, grid, M) for M in (8, 16, 32)]
    _richardson_check(ref, routes)
    assert np.array_equal(ref.grid, grid)


# ----------------------------------------------------------------------------------------------------------------------
# (b) closed forms with matrix exponentials


def _van_loan(F, G, H, h):
    """∫₀ʰ e^{F(h−s)} G e^{Hs} ds = the upper-right block of expm([[F, G], [0, H]]·h) (Van Loan 1978, Thm 1)."""
    n = F.shape[0]
    C = np.block([[F, G], [np.zeros((H.shape[0], n)), H]])
    return expm(C * h)[:n, n:]


def _closed_form_linear(A_rows, b_rows, x0, y, grid):
    r"""ẋ = A_n x + b_n on [t_n, t_{n+1}) (LinearField, θ_n = (vec A_n, b_n)), Φ = ½|x − y|².

    Augment z = (x, 1): ż = M_n z, M_n = [[A_n, b_n], [0, 0]], so z_{n+1} = e^{M_n h_n} z_n. λ′ = −A_nᵀλ,
    λ(T) = x(T) − y: λ_n = e^{A_nᵀh_n}λ_{n+1}. The augmented adjoint μ = (λ, ·) solves μ′ = −M_nᵀμ (Mᵀ is block
    lower triangular, so its top block is λ whatever the last entry; take 0), and ∂_θfᵀλ = (vec(λxᵀ), λ) = the first
    d rows of μ zᵀ, whose integral over the piece is ∫₀ʰ e^{M_nᵀ(h−s)} μ_{n+1} z_nᵀ e^{M_nᵀs} ds — Van Loan with
    F = H = M_nᵀ."""
    d, N = x0.size, len(grid) - 1
    Ms = [np.block([[A, b[:, None]], [np.zeros((1, d + 1))]]) for A, b in zip(A_rows, b_rows)]
    hs = np.diff(grid)
    z = [np.append(x0, 1.0)]
    for n in range(N):
        z.append(expm(Ms[n] * hs[n]) @ z[n])
    xT = z[N][:d]
    lam = xT - y
    grads = np.empty((N, d * d + d))
    for n in range(N - 1, -1, -1):
        G = _van_loan(Ms[n].T, np.outer(np.append(lam, 0.0), z[n]), Ms[n].T, hs[n])
        grads[n] = np.concatenate([G[:d, :d].ravel(), G[:d, d]])
        lam = expm(A_rows[n].T * hs[n]) @ lam
    return {"loss": 0.5 * np.sum((xT - y) ** 2), "x_final": xT, "grad_x0": lam, "grad_theta": grads}


def _closed_form_forcing(A, table, x0, y, grid):
    r"""ẋ = A x + θ_n (LinearForcingField), Φ = ½|x − y|². Variation of constants on a piece:
    x_{n+1} = e^{Ah}x_n + (∫₀ʰ e^{A(h−s)} ds) θ_n; λ(t_n + s) = e^{Aᵀ(h−s)}λ_{n+1}; ∂_θf = I, so
    ∂L/∂θ_n = ∫₀ʰ e^{Aᵀ(h−s)} ds λ_{n+1}. Both integrals are Van Loan blocks with G = I, H = 0."""
    d, N = x0.size, len(grid) - 1
    hs = np.diff(grid)
    xs = [x0]
    for n in range(N):
        xs.append(expm(A * hs[n]) @ xs[n] + _van_loan(A, np.eye(d), np.zeros((d, d)), hs[n]) @ table[n])
    lam = xs[N] - y
    grads = np.empty((N, d))
    for n in range(N - 1, -1, -1):
        grads[n] = _van_loan(A.T, np.eye(d), np.zeros((d, d)), hs[n]) @ lam
        lam = expm(A.T * hs[n]) @ lam
    return {"loss": 0.5 * np.sum((xs[N] - y) ** 2), "x_final": xs[N], "grad_x0": lam, "grad_theta": grads}


def _closed_form_scaled(A, table, x0, y, grid):
    r"""ẋ = s_n A x (ScaledLinearField, θ_n = s_n), Φ = ½|x − y|². x_{n+1} = e^{s_n h A}x_n, λ(t_n + τ) =
    e^{s_n(h−τ)Aᵀ}λ_{n+1}, and ∂L/∂s_n = ∫₀ʰ λᵀ A x dτ = ∫₀ʰ λ_{n+1}ᵀ e^{s_n(h−τ)A} A e^{s_nτA} x_n dτ
    = h λ_{n+1}ᵀ A x_{n+1} (A commutes with its exponential, so the integrand is constant)."""
    N = len(grid) - 1
    hs = np.diff(grid)
    xs = [x0]
    for n in range(N):
        xs.append(expm(table[n, 0] * hs[n] * A) @ xs[n])
    lam = xs[N] - y
    grads = np.empty((N, 1))
    for n in range(N - 1, -1, -1):
        grads[n, 0] = hs[n] * lam @ A @ xs[n + 1]
        lam = expm(table[n, 0] * hs[n] * A.T) @ lam
    return {"loss": 0.5 * np.sum((xs[N] - y) ** 2), "x_final": xs[N], "grad_x0": lam, "grad_theta": grads}


def _closed_form_cases():
    """(name, field, table, x0, T, loss, grid, exact) for the three linear fields on a non-uniform grid of 5 short
    pieces, and an oscillatory affine field (eigenvalues ≈ −0.15 ± 3i) on 3 long pieces, the one on which a loose
    tolerance really is inaccurate (on short smooth pieces DOP853 is at rounding level even at rtol 10⁻²)."""
    rng = np.random.default_rng(7)
    T = 1.2
    grid = np.concatenate([[0.0], np.sort(rng.uniform(0.0, T, 4)), [T]])  # N = 5, uneven pieces
    N = len(grid) - 1
    cases = []
    d = 2
    field = LinearField(d)
    A_rows = [rng.normal(scale=0.9, size=(d, d)) for _ in range(N)]
    b_rows = [rng.normal(size=d) for _ in range(N)]
    table = np.array([field.pack(A, b) for A, b in zip(A_rows, b_rows)])
    x0, y = rng.normal(size=d), rng.normal(size=d)
    cases.append(("linear", field, table, x0, T, QuadraticLoss(y), grid,
                  _closed_form_linear(A_rows, b_rows, x0, y, grid)))
    d = 3
    A = rng.normal(scale=0.8, size=(d, d))
    table = rng.normal(size=(N, d))
    x0, y = rng.normal(size=d), rng.normal(size=d)
    cases.append(("linear_forcing", LinearForcingField(A), table, x0, T, QuadraticLoss(y), grid,
                  _closed_form_forcing(A, table, x0, y, grid)))
    A = np.array([[-0.4, 1.0], [-1.0, -0.3]])
    table = rng.uniform(-1.5, 1.5, size=(N, 1))
    x0, y = rng.normal(size=2), rng.normal(size=2)
    cases.append(("scaled_linear", ScaledLinearField(A), table, x0, T, QuadraticLoss(y), grid,
                  _closed_form_scaled(A, table, x0, y, grid)))
    T, grid, N, d = 6.0, np.array([0.0, 1.7, 3.1, 6.0]), 3, 2
    field = LinearField(d)
    A_rows = [np.array([[-0.1, 3.0], [-3.0, -0.2]]) + rng.normal(scale=0.3, size=(d, d)) for _ in range(N)]
    b_rows = [rng.normal(size=d) for _ in range(N)]
    table = np.array([field.pack(A, b) for A, b in zip(A_rows, b_rows)])
    x0, y = rng.normal(size=d), rng.normal(size=d)
    cases.append(("linear_rotation", field, table, x0, T, QuadraticLoss(y), grid,
                  _closed_form_linear(A_rows, b_rows, x0, y, grid)))
    return cases


CLOSED = _closed_form_cases()
CLOSED_IDS = [c[0] for c in CLOSED]


def _errors(res, exact):
    return {q: float(np.max(np.abs(np.asarray(getattr(res, q)) - exact[q]))) for q in QUANTITIES}


@pytest.fixture(scope="module")
def closed_results():
    return {c[0]: piecewise_constant_continuous_gradient(c[1], c[2], c[3], c[4], c[5], grid=c[6]) for c in CLOSED}


@pytest.mark.parametrize("case", CLOSED, ids=CLOSED_IDS)
def test_matches_closed_form(case, closed_results):
    # 1e-10 relative to max(1, |exact|) at rtol = atol = 1e-12: DOP853's global error is ≈ κ·rtol, κ the error
    # amplification over [0, T] (the flows here are rotations or mild growth, κ ≲ e²), plus the dense-output error of
    # x(t) fed into the backward solve, summed over the pieces; 100·rtol covers that. The closed forms are expm-accurate
    # (~1e-15). Measured worst: 2.3e-13 (linear), 1.5e-13 (linear_forcing), 7.5e-14 (scaled_linear), 2.9e-12
    # (linear_rotation).
    name, *_, exact = case
    res = closed_results[name]
    errors = _errors(res, exact)
    for q in QUANTITIES:
        scale = max(1.0, float(np.max(np.abs(exact[q]))))
        assert errors[q] <= 1e-10 * scale, (q, errors[q])


# ----------------------------------------------------------------------------------------------------------------------
# (c) the error estimate bounds the true error


@pytest.mark.parametrize("rtol", [1e-12, 1e-8, 1e-5])
@pytest.mark.parametrize("case", CLOSED, ids=CLOSED_IDS)
def test_error_estimate_bounds_true_error(case, rtol, closed_results):
    # measured on linear_rotation (grad_theta): true/bound = 2.9e-12/5.9e-12, 2.6e-8/5.1e-8, 1.6e-5/3.2e-5 at rtol
    # 1e-12, 1e-8, 1e-5: the bound is ≈ 2× the true error, as the factor-2 argument gives when the tighter run is far
    # more accurate
    name, field, table, x0, T, loss, grid, exact = case
    res = closed_results[name] if rtol == 1e-12 else piecewise_constant_continuous_gradient(
        field, table, x0, T, loss, grid=grid, rtol=rtol, atol=rtol)
    assert isinstance(res.error, PiecewiseAdjointErrorEstimate)
    errors = _errors(res, exact)
    for q in QUANTITIES:
        assert errors[q] <= getattr(res.error, q), (q, errors[q], getattr(res.error, q))
    if name == "linear_rotation" and rtol == 1e-5:
        # the loose solve really is inaccurate, so the bound is tested and not the rounding floor
        assert errors["grad_theta"] > 1e-7
    # and it is informative: within 1e4 of the true error, or at the rounding floor
    assert res.error.grad_theta <= max(1e4 * errors["grad_theta"], 1e-12)


# ----------------------------------------------------------------------------------------------------------------------
# constant θ: the continuous adjoint of the constant-θ problem


def test_one_row_is_the_continuous_adjoint_with_constant_theta():
    # one piece runs the same DOP853 calls as continuous_adjoint with the constant θ, so at the same tolerances the
    # numbers are the same, bit for bit, error estimates included
    field, table, x0, T, loss, _ = _tanh_problem(N=1)
    for rtol, atol in ((1e-12, 1e-12), (1e-8, 1e-10)):
        res = piecewise_constant_continuous_gradient(field, table, x0, T, loss, rtol=rtol, atol=atol)
        ref = continuous_adjoint(field, table[0], x0, T, loss, times=[0.0, T], rtol=rtol, atol=atol)
        assert res.grad_theta.shape == (1, field.n_params)
        assert np.array_equal(res.grad_theta[0], ref.integrated_gradient)
        assert np.array_equal(res.grad_x0, ref.p[0])
        assert np.array_equal(res.x_final, ref.x_final) and res.loss == ref.loss
        assert res.error.grad_theta == ref.error.integrated_gradient
        assert res.error.x_final == ref.error.x_final


def test_equal_rows_sum_to_the_constant_theta_gradient():
    # Σ_n ∫_{t_n}^{t_{n+1}} ∂_θfᵀλ dt = ∫₀ᵀ ∂_θfᵀλ dt = dL/dθ of the constant problem (§8); the two computations differ
    # (8 pieces vs 1), so they agree within the sum of their reported bounds, the per-row bound counted once per row
    # (measured: 2.8e-12 vs bound 3.5e-11)
    field, table, x0, T, loss, rng = _tanh_problem(N=1)
    N = 8
    equal = np.repeat(table, N, axis=0)
    res = piecewise_constant_continuous_gradient(field, equal, x0, T, loss)
    ref = continuous_adjoint(field, table[0], x0, T, loss, times=[0.0, T], atol=1e-12)
    diff = np.max(np.abs(res.grad_theta.sum(axis=0) - ref.integrated_gradient))
    assert diff <= N * res.error.grad_theta + ref.error.integrated_gradient, diff
    assert np.max(np.abs(res.grad_x0 - ref.p[0])) <= res.error.grad_x0 + ref.error.p
    # a (1, p) table on the same grid runs the same pieces and returns their sum as its one row
    grid = np.linspace(0.0, T, N + 1)
    one = piecewise_constant_continuous_gradient(field, table, x0, T, loss, grid=grid)
    assert one.grad_theta.shape == (1, field.n_params)
    assert np.array_equal(one.grad_theta[0], res.grad_theta.sum(axis=0))
    assert np.array_equal(one.grad_x0, res.grad_x0)
    # non-uniform grid: the breakpoints do not change the constant-θ gradient either
    uneven = np.concatenate([[0.0], np.sort(rng.uniform(0.0, T, 5)), [T]])
    other = piecewise_constant_continuous_gradient(field, table, x0, T, loss, grid=uneven)
    assert np.max(np.abs(other.grad_theta[0] - ref.integrated_gradient)) <= (
        6 * other.error.grad_theta + ref.error.integrated_gradient)


def test_per_step_gradient_density_converges_to_the_functional_gradient():
    # rows sampled at the midpoints from a smooth θ(t) = c₀ + c₁cos ωt (scalar linear forcing, δL/δθ(t) in closed form
    # in refimpl.problems.analytic_ode): ∂L/∂θ_n / h → δL/δθ(t_{n+½}). Second order: the midpoint sampling changes x(T)
    # by O(h²) (midpoint rule for ∫e^{a(T−s)}θ(s)ds) and the mean of δL/δθ over a piece differs from its midpoint value
    # by O(h²); so the error falls ≈ 4× per doubling of N. Measured errors 4.5e-3, 1.2e-3, 2.9e-4 (ratios 3.89, 3.94).
    case = ScalarLinearCase()
    errors = []
    for N in (8, 16, 32):
        h = case.T / N
        mid = (np.arange(N) + 0.5) * h
        table = np.array([case.theta(t) for t in mid])
        res = piecewise_constant_continuous_gradient(case.field, table, case.x0, case.T, case.loss)
        errors.append(np.max(np.abs(res.grad_theta / h - case.functional_gradient_exact(mid))))
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    assert np.all((3.5 < ratios) & (ratios < 4.5)), (errors, ratios)


# ----------------------------------------------------------------------------------------------------------------------
# result object, export, non-finite solutions


def test_result_object_and_repr():
    name, field, table, x0, T, loss, grid, exact = CLOSED[0]
    res = piecewise_constant_continuous_gradient(field, table, x0, T, loss, grid=grid)
    assert isinstance(res, PiecewiseConstantAdjointResult)
    assert exported is piecewise_constant_continuous_gradient
    text = repr(res)
    for word in ("loss", "grad_x0", "grad_theta", "error", "tighter", "rtol", "atol", "nfev", "5 pieces"):
        assert word in text, word
    assert res.nfev == res.stats["forward_nfev"] + res.stats["backward_nfev"] + res.stats["estimate_nfev"] > 0
    assert res.rtol == 1e-12 and res.atol == 1e-12
    # the end points: λ(T) = ∇Φ(x(T)) exactly, x(0) = x0 exactly, λ(0) is grad_x0
    assert np.array_equal(res.p[-1], loss.grad(res.x_final))
    assert np.array_equal(res.x[0], x0) and np.array_equal(res.p[0], res.grad_x0)
    assert res.x.shape == res.p.shape == (len(grid), field.dim)
    # the result holds private, read-only copies of the table and the grid
    assert not res.theta_table.flags.writeable and not res.grid.flags.writeable
    assert not np.shares_memory(res.theta_table, table)
    # deterministic, and the estimate can be switched off
    again = piecewise_constant_continuous_gradient(field, table, x0, T, loss, grid=grid)
    assert np.array_equal(again.grad_theta, res.grad_theta)
    quick = piecewise_constant_continuous_gradient(field, table, x0, T, loss, grid=grid, error_estimate=None)
    assert quick.error is None and "estimate_nfev" not in quick.stats
    assert np.array_equal(quick.grad_theta, res.grad_theta)
    assert "error: None" in repr(quick)


def test_user_loss_is_accepted():
    name, field, table, x0, T, loss, grid, exact = CLOSED[1]
    y = loss.y
    user = UserLoss(lambda x: 0.5 * float(np.sum((x - y) ** 2)), lambda x: x - y)
    res = piecewise_constant_continuous_gradient(field, table, x0, T, user, grid=grid, error_estimate=None)
    assert np.max(np.abs(res.grad_theta - exact["grad_theta"])) <= 1e-10


def test_solver_failure_names_the_piece():
    # ẋ = s x with s = 1e300 on the second piece [0.5, 1]: every stage overflows, DOP853 shrinks its step to nothing
    # and gives up (a growth that merely overflows, s = 4000, ends the same way after ~3 s of ever smaller steps); the
    # error names the piece, the time reached and |x| there
    field = ScaledLinearField(np.eye(1))
    table = np.array([[1.0], [1e300]])
    with pytest.raises((NonFiniteError, RuntimeError), match=r"step 1 \[t_1, t_2\] = \[0.5, 1.0\] at t = 0.5"):
        piecewise_constant_continuous_gradient(field, table, np.ones(1), 1.0, QuadraticLoss(np.zeros(1)))


# ----------------------------------------------------------------------------------------------------------------------
# (d) bad input: every argument is checked and named


class TestValidation:
    name, field, table, x0, T, loss, grid, exact = CLOSED[1]

    def call(self, **kw):
        args = dict(field=self.field, theta_table=self.table, x0=self.x0, T=self.T, loss=self.loss, grid=self.grid,
                    error_estimate=None)
        args.update(kw)
        return piecewise_constant_continuous_gradient(args.pop("field"), args.pop("theta_table"), args.pop("x0"),
                                                      args.pop("T"), args.pop("loss"), **args)

    def test_theta_table(self):
        p = self.field.n_params
        with pytest.raises(ValueError, match=r"theta_table.*reshape\(1, -1\)"):
            self.call(theta_table=self.table[0])
        with pytest.raises(ValueError, match="theta_table"):
            self.call(theta_table=np.zeros((5, p + 1)))
        with pytest.raises(ValueError, match="theta_table"):
            self.call(theta_table=np.zeros((0, p)))
        with pytest.raises(ValueError, match="theta_table"):
            self.call(theta_table=np.zeros((5, p, 1)))
        bad = self.table.copy()
        bad[2, 1] = np.nan
        with pytest.raises(ValueError, match=r"theta_table.*\(2, 1\)"):
            self.call(theta_table=bad)
        with pytest.raises(TypeError, match="theta_table"):
            self.call(theta_table=self.table.astype(np.float32))
        with pytest.raises(TypeError, match="theta_table"):
            self.call(theta_table="table")
        with pytest.raises(TypeError, match="theta_table"):
            self.call(theta_table=self.table.astype(complex))

    def test_grid(self):
        g = self.grid
        with pytest.raises(ValueError, match=r"grid.*N \+ 1 = 6"):
            self.call(grid=g[:-1])
        with pytest.raises(ValueError, match="grid must start at 0"):
            self.call(grid=g + 0.01)
        with pytest.raises(ValueError, match="grid must end at T"):
            self.call(grid=np.append(g[:-1], self.T * (1 + 1e-15) + 1e-12))
        swapped = g.copy()
        swapped[[1, 2]] = swapped[[2, 1]]
        with pytest.raises(ValueError, match="grid must be strictly increasing"):
            self.call(grid=swapped)
        repeated = g.copy()
        repeated[2] = repeated[1]
        with pytest.raises(ValueError, match="grid must be strictly increasing"):
            self.call(grid=repeated)
        with pytest.raises(ValueError, match="grid"):
            self.call(grid=np.where(np.arange(g.size) == 3, np.nan, g))
        with pytest.raises(ValueError, match="grid"):
            self.call(grid=g[None, :])
        with pytest.raises(ValueError, match="grid"):
            self.call(theta_table=self.table[:1], grid=[0.0])
        with pytest.raises(TypeError, match="grid"):
            self.call(grid="0 1")

    def test_x0_T_field_loss(self):
        with pytest.raises(ValueError, match="x0"):
            self.call(x0=np.zeros(2))
        with pytest.raises(ValueError, match="x0"):
            self.call(x0=np.array([0.0, np.inf, 0.0]))
        with pytest.raises(ValueError, match="T"):
            self.call(T=-1.0, grid=None)
        with pytest.raises(TypeError, match="T"):
            self.call(T="1.2")
        with pytest.raises(TypeError, match="field"):
            self.call(field=object())
        with pytest.raises(ValueError, match="field.f"):
            class BadField:
                dim, n_params = 3, 3

                def f(self, x, th):
                    return np.zeros(2)

                dfdx = dfdtheta = vjp_x = vjp_theta = f

            self.call(field=BadField())
        with pytest.raises(TypeError, match="loss"):
            self.call(loss=lambda x: x)

    def test_tolerances_and_estimate(self):
        with pytest.raises(ValueError, match="rtol"):
            self.call(rtol=1e-17)
        with pytest.raises(ValueError, match="rtol"):
            self.call(rtol=-1e-8)
        with pytest.raises(ValueError, match="atol"):
            self.call(atol=0.0)
        with pytest.raises(TypeError, match="atol"):
            self.call(atol=None)
        with pytest.raises(ValueError, match="error_estimate"):
            self.call(error_estimate="bogus")
        with pytest.raises(ValueError, match="rtol"):
            self.call(rtol=1e-13, error_estimate="tighter")


# ----------------------------------------------------------------------------------------------------------------------
# property: drawn problems (the field families of refimpl.testing.strategies_ode), tape + RK4 + Richardson


@settings(max_examples=10, deadline=None)
@given(ode_problems(methods=st.just(RK4), layouts=("step",), N=(1, 4)))
def test_property_matches_tape_through_fine_rk4(problem):
    # the drawn "step"-layout table is the piecewise-constant table of the uniform grid (one row per step). Tolerance as
    # in _richardson_check, |R_16 − R_32| + the route's bound, plus the rounding of the tape route (≤ 4·N·M = 512 RK4
    # stages, each a few ulps of the largest gradient entry: 1e-13·scale); the fourth-order ratio is not asserted
    # here, as a drawn gradient entry may already be at rounding level at M = 16. Measured over 150 drawn problems:
    # worst error/tolerance 0.18.
    f, table, x0, T, loss = problem.field, problem.theta, problem.x0, problem.T, problem.loss
    ref = piecewise_constant_continuous_gradient(f, table, x0, T, loss)
    routes = [_tape_rk4_uniform(f, table, x0, T, loss, M) for M in (8, 16, 32)]
    for k, name in enumerate(("grad_x0", "grad_theta")):
        G = [r[k] for r in routes]
        R1, R2 = (16 * G[1] - G[0]) / 15, (16 * G[2] - G[1]) / 15
        scale = max(1.0, float(np.max(np.abs(R2))))
        tol = np.max(np.abs(R1 - R2)) + getattr(ref.error, name) + 1e-13 * scale
        assert np.max(np.abs(getattr(ref, name) - R2)) <= tol, name


# ----------------------------------------------------------------------------------------------------------------------
# what a backsolve adjoint returns: torchdiffeq's odeint_adjoint on the same per-step table


def test_torchdiffeq_odeint_adjoint_converges_to_it():
    # torchdiffeq's odeint_adjoint (adaptive dopri5, rtol = atol = 1e-12), told the breakpoints as jump times and T as
    # a step time (so neither x(T) nor λ at the breakpoints comes from its interpolant), re-integrates x backward
    # jointly with λ: a different route to the same ∂L/∂θ_n. Both are error-controlled at 1e-12 on a flow with
    # amplification ≲ e³, so each is ≈ 1e-11 from the truth; 1e-10 leaves a factor ≈ 10 (measured: 7.7e-13 on
    # grad_theta, 2.1e-13 on grad_x0, 4.8e-13 on the loss). Without step_t = [T] torchdiffeq's dopri8 reads x(T) off its
    # fourth-order interpolant and is 3e-9 away: that is its error, not this reference's.
    torch = pytest.importorskip("torch")
    odeint_adjoint = pytest.importorskip("torchdiffeq").odeint_adjoint
    field, table, x0, T, loss, rng = _tanh_problem()
    grid = np.concatenate([[0.0], np.sort(rng.uniform(0.0, T, table.shape[0] - 1)), [T]])
    ref = piecewise_constant_continuous_gradient(field, table, x0, T, loss, grid=grid)
    d = field.dim

    class PiecewiseTanh(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.table = torch.nn.Parameter(torch.tensor(table, dtype=torch.float64))
            self.grid = torch.tensor(grid, dtype=torch.float64)

        def forward(self, t, x):
            # the row of the piece [t_n, t_{n+1}) holding t (jump_t makes the solver evaluate just inside a piece)
            n = int(torch.searchsorted(self.grid, t.detach().reshape(1), right=True)[0]) - 1
            th = self.table[min(max(n, 0), len(grid) - 2)]
            return torch.tanh(th[:d * d].reshape(d, d) @ x + th[d * d:])

    torch.set_num_threads(1)
    func = PiecewiseTanh()
    x0_t = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    xs = odeint_adjoint(func, x0_t, torch.tensor([0.0, T], dtype=torch.float64), rtol=1e-12, atol=1e-12,
                        method="dopri5", options=dict(jump_t=torch.tensor(grid[1:-1]), step_t=torch.tensor([T])))
    L = 0.5 * torch.sum((xs[-1] - torch.tensor(loss.y)) ** 2)
    L.backward()
    assert abs(L.item() - ref.loss) <= 1e-10 * max(1.0, abs(ref.loss))
    assert np.max(np.abs(func.table.grad.numpy() - ref.grad_theta)) <= 1e-10 * max(1.0, np.max(np.abs(ref.grad_theta)))
    assert np.max(np.abs(x0_t.grad.numpy() - ref.grad_x0)) <= 1e-10 * max(1.0, np.max(np.abs(ref.grad_x0)))
