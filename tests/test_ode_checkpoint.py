"""Checkpointing of the hand discrete adjoint (``checkpoint=k``): the gradients are bit-identical to keeping every
state (the backward sweep recomputes each segment from its checkpoint with the same operations on the same inputs),
on both backends, for k = 1, k = N, k > N, k dividing N and k not dividing N, every layout, uniform and non-uniform
grids, exact mode; the result keeps the checkpoint rows only; errors name ``checkpoint``; non-finite results are
reported at the same step with the same message."""
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refimpl.arguments import NonFiniteError
from refimpl.ode import _numba as kernels
from refimpl.ode import adjoint_recursions
from refimpl.ode.adjoint_recursions import discrete_adjoint
from refimpl.ode.fields import LinearField, QuadraticLoss, TanhField
from refimpl.ode.samples import parameter_samples
from refimpl.ode.schemes import AB2, FORWARD_EULER, HEUN, LEAPFROG, MIDPOINT, RK4, TABLEAUX
from refimpl.testing.strategies_ode import explicit_tableaux, ode_problems


def assert_same(a, b):
    """b (checkpointed) equals a (every state kept) bit for bit, on the rows b keeps."""
    assert b.loss == a.loss
    assert np.array_equal(a.grad_theta, b.grad_theta)
    assert np.array_equal(a.grad_x0, b.grad_x0)
    rows = b.stored_steps
    assert rows[0] == 0 and rows[-1] == a.samples.N
    assert np.array_equal(a.trajectory[rows], b.trajectory)
    assert np.array_equal(a.lambdas[rows], b.lambdas)


@pytest.mark.parametrize("method", [FORWARD_EULER, MIDPOINT, HEUN, RK4], ids=lambda m: m.name)
@pytest.mark.parametrize("layout", ["stage", "step", "constant"])
@pytest.mark.parametrize("nonuniform", [False, True], ids=["uniform", "grid"])
def test_checkpointed_gradients_are_bit_identical(method, layout, nonuniform):
    field = TanhField(3)
    rng = np.random.default_rng(11)
    N, T = 12, 1.4
    grid = None
    if nonuniform:
        w = rng.uniform(1, 3, N)
        grid = np.concatenate([[0.0], np.cumsum(w) / w.sum() * T])
        grid[-1] = T
    smp = parameter_samples(method, T, N, layout, grid=grid)
    theta = 0.6 * rng.standard_normal((smp.n_samples, field.n_params))
    x0, loss = rng.standard_normal(3), QuadraticLoss(rng.standard_normal(3))
    for backend in ("numpy", "numba"):
        full = discrete_adjoint(field, method, x0, theta, T, N, loss, layout=layout, backend=backend, grid=grid)
        assert full.checkpoint is None and np.array_equal(full.stored_steps, np.arange(N + 1))
        for k in (1, 2, 3, 4, 5, 7, 11, N, N + 5):          # dividing N (1, 2, 3, 4), not (5, 7, 11), N, beyond N
            ck = discrete_adjoint(field, method, x0, theta, T, N, loss, layout=layout, backend=backend, grid=grid,
                                  checkpoint=k)
            assert ck.checkpoint == min(k, N)
            assert ck.stored_steps.tolist() == list(range(0, N, min(k, N))) + [N]
            assert_same(full, ck)


def test_numba_recomputed_and_kept_stage_slopes_agree_bit_for_bit(monkeypatch):
    """The compiled sweeps keep stage slopes when they fit (the whole run, or a checkpoint segment) and recompute them
    otherwise; forcing recomputation everywhere (KEEP_STAGES_MAX_ENTRIES = 0) changes nothing."""
    field = TanhField(4)
    rng = np.random.default_rng(12)
    N = 10
    smp = parameter_samples(RK4, 1.0, N, "stage")
    theta = 0.5 * rng.standard_normal((smp.n_samples, field.n_params))
    x0, loss = rng.standard_normal(4), QuadraticLoss(rng.standard_normal(4))
    kept = discrete_adjoint(field, RK4, x0, theta, 1.0, N, loss, backend="numba")
    kept_ck = discrete_adjoint(field, RK4, x0, theta, 1.0, N, loss, backend="numba", checkpoint=3)
    monkeypatch.setattr(adjoint_recursions, "KEEP_STAGES_MAX_ENTRIES", 0)
    recomputed = discrete_adjoint(field, RK4, x0, theta, 1.0, N, loss, backend="numba")
    recomputed_ck = discrete_adjoint(field, RK4, x0, theta, 1.0, N, loss, backend="numba", checkpoint=3)
    for res in (recomputed, kept_ck, recomputed_ck):
        assert_same(kept, res)
    # the kernel-level flag as well
    hA, hb = adjoint_recursions._float_erk(RK4, 0.1)
    xck = kernels.erk_forward_checkpointed(field.kernel, x0, theta, smp.stage_index, hA, hb, 4)
    a = kernels.erk_backward_checkpointed(field.kernel, xck, theta, smp.stage_index, hA, hb, x0, 4, keep_segment=True)
    b = kernels.erk_backward_checkpointed(field.kernel, xck, theta, smp.stage_index, hA, hb, x0, 4,
                                          keep_segment=False)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))


def test_checkpointed_exact_mode_is_equal():
    field = LinearField(2)
    rng = np.random.default_rng(13)
    N = 5
    smp = parameter_samples(RK4, 1, N, "stage")
    th = np.array([[Fraction(int(v), 8) for v in row] for row in rng.integers(-3, 4, (smp.n_samples, field.n_params))],
                  dtype=object)
    x0 = np.array([Fraction(1, 2), Fraction(-1, 3)], dtype=object)
    loss = QuadraticLoss(np.array([Fraction(1, 4), Fraction(1, 5)], dtype=object))
    full = discrete_adjoint(field, RK4, x0, th, 1, N, loss)
    for k in (1, 2, 5):
        ck = discrete_adjoint(field, RK4, x0, th, 1, N, loss, checkpoint=k)
        assert ck.loss == full.loss
        assert list(ck.grad_theta.ravel()) == list(full.grad_theta.ravel())
        assert list(ck.grad_x0) == list(full.grad_x0)


@settings(max_examples=40, deadline=None)
@given(ode_problems(methods=st.one_of(st.sampled_from(list(TABLEAUX.values())), explicit_tableaux()), N=(1, 10),
                    nonuniform=True),
       st.integers(1, 12))
def test_checkpointed_equals_full_property(p, k):
    for backend in ("numpy", "numba") if p.field.kernel is not None else ("numpy",):
        full = discrete_adjoint(p.field, p.method, p.x0, p.theta, p.T, p.N, p.loss, backend=backend, **p.kwargs())
        ck = discrete_adjoint(p.field, p.method, p.x0, p.theta, p.T, p.N, p.loss, backend=backend, checkpoint=k,
                              **p.kwargs())
        assert_same(full, ck)


@pytest.mark.parametrize("bad, exc, match", [
    (0, ValueError, r"checkpoint must be >= 1"), (-3, ValueError, r"checkpoint must be >= 1"),
    (1.5, TypeError, r"checkpoint must be None or an integer"), (True, TypeError, r"checkpoint must be None or an "),
    ("2", TypeError, r"checkpoint must be None or an integer"),
])
def test_bad_checkpoint_values(bad, exc, match):
    field = TanhField(2)
    theta = np.zeros((parameter_samples(RK4, 1.0, 3).n_samples, field.n_params))
    with pytest.raises(exc, match=match):
        discrete_adjoint(field, RK4, np.zeros(2), theta, 1.0, 3, QuadraticLoss(np.zeros(2)), checkpoint=bad)


@pytest.mark.parametrize("method", [LEAPFROG, AB2])
def test_checkpoint_with_a_multistep_method_is_refused(method):
    field = TanhField(2)
    theta = np.zeros((parameter_samples(method, 1.0, 4, starter="forward_euler").n_samples, field.n_params))
    with pytest.raises(ValueError, match="^checkpoint: checkpointing is implemented for Runge-Kutta methods"):
        discrete_adjoint(field, method, np.zeros(2), theta, 1.0, 4, QuadraticLoss(np.zeros(2)),
                         starter="forward_euler", checkpoint=2)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_non_finite_errors_are_the_same_with_checkpointing(backend):
    """Forward overflow (ẋ = −1000x, h = 0.25) and backward overflow (λ grows ≈ 1e25 per step): the same message as
    without checkpointing (tests/test_nonfinite_results.py builds the same problems)."""
    field = LinearField(1)
    N, T = 400, 100.0
    theta = np.tile([-1000.0, 0.0], (parameter_samples(RK4, T, N).n_samples, 1))
    msgs = []
    for ck in (None, 7):
        with pytest.raises(NonFiniteError) as e:
            discrete_adjoint(field, RK4, np.ones(1), theta, T, N, QuadraticLoss(np.zeros(1)), backend=backend,
                             checkpoint=ck)
        msgs.append(str(e.value))
    assert msgs[0] == msgs[1] and msgs[0].startswith("the solution became non-finite at step ")
    N = 10
    theta = np.tile([2.2e7, 0.0], (parameter_samples(RK4, 1.0, N).n_samples, 1))
    msgs = []
    for ck in (None, 3):
        with pytest.raises(NonFiniteError) as e:
            discrete_adjoint(field, RK4, np.array([1e-100]), theta, 1.0, N, QuadraticLoss(np.zeros(1)),
                             backend=backend, checkpoint=ck)
        msgs.append(str(e.value))
    assert msgs[0] == msgs[1] and msgs[0].startswith("the adjoint became non-finite at step ")


def test_memory_script_measures_a_small_case():
    """benchmarks/memory_adjoint.py end to end at a small size (one child process): the model terms add up, the
    child reports a peak at least its baseline and keeps only the checkpoint rows."""
    from benchmarks.memory_adjoint import measure, model_bytes

    m = model_bytes("rk4", "constant", 1000, 4, 10)
    assert m["theta and gradient"] == 2 * 8 * 1 * 20 and m["stage index"] == 8 * 1000 * 4
    assert m["states and adjoints"] == 2 * 8 * 101 * 4 + 8 * 10 * 4 and m["stage slopes"] == 8 * 10 * 4 * 4
    assert m["total"] == sum(v for k, v in m.items() if k != "total")
    row = measure("rk4", "constant", 1000, 4, 10)
    assert "skipped" not in row, row
    assert row["peak"] >= row["baseline"] > 0 and row["rows_kept"] == 101
