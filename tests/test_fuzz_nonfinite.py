"""Fuzz campaign: random fields, schemes and problems in extreme regimes (T from 1e-12 to 1e12, so tiny and huge h;
|θ| up to 1e6; |x0| up to 1e3). Every route either returns finite numbers or raises a clear error — zero silent
non-finite results — and the routes agree: the NumPy and Numba hand adjoints to 1e-12 (norm-wise, as in
tests/test_ode_discrete_adjoint.py) with the same error message when they fail, the tape on the smaller problems.

Agreement is judged against the problem's own conditioning. The backends sum z = Wx + b in different orders (BLAS vs a
fixed loop) and NumPy's and Numba's tanh differ by an ulp, so on an ill-conditioned problem (an unstable step, a unit
whose z = b + Wx cancels to ~0 from |b| = 100) they differ by what the problem does to rounding-level changes of its
inputs and intermediate values. That is measured: when two routes differ by more than 1e-12, the NumPy adjoint is
recomputed twice with x0 and θ perturbed by one ulp and every f and VJP evaluation jittered by one ulp (stochastic
rounding, :class:`_Jittered`), and the routes must agree to 10× that spread. Such problems are
counted as hypothesis events ("ill-conditioned", see ``--hypothesis-show-statistics``).

A clear error is a ``ValueError`` (``NonFiniteError`` for an overflow, naming what became non-finite and where); a bare
``OverflowError``/``ZeroDivisionError``/``FloatingPointError``, a ``LinAlgError`` or a NumPy ``RuntimeWarning`` (turned
into an error here) fails the test. The full campaign is ``slow`` (``-m slow``, ~1–2 min); a few examples run by
default.
"""
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refimpl.ad import grad
from refimpl.arguments import NonFiniteError
from refimpl.ode.adjoint_recursions import discrete_adjoint
from refimpl.ode.fields import LinearField, PolynomialField, QuadraticLoss, TanhField, TwoLayerTanhField
from refimpl.ode.integrators import discrete_loss, integrate
from refimpl.ode.multistep import LinearMultistep
from refimpl.ode.samples import parameter_samples
from refimpl.ode.schemes import MULTISTEP_METHODS, TABLEAUX, starter as resolve_starter

AGREE = 1e-12
TAPE_MAX_EVALUATIONS = 80   # the tape runs when N·s is at most this (it is ~100x slower than the hand adjoint)


def _log_uniform(lo, hi):
    return st.floats(np.log10(lo), np.log10(hi)).map(lambda e: float(10.0 ** e))


@st.composite
def extreme_problems(draw):
    d = draw(st.integers(1, 4))
    kind = draw(st.sampled_from(["tanh", "tanh", "linear", "linear", "two_layer", "polynomial"]))
    field = {"tanh": lambda: TanhField(d), "linear": lambda: LinearField(d), "polynomial": lambda: PolynomialField(d),
             "two_layer": lambda: TwoLayerTanhField(d, draw(st.integers(1, 3)))}[kind]()
    method = draw(st.sampled_from(list(TABLEAUX.values()) + list(MULTISTEP_METHODS.values())))
    starter = None
    if isinstance(method, LinearMultistep):
        starter = resolve_starter(method, draw(st.sampled_from(["forward_euler", "matched"])))
    N = max(draw(st.integers(1, 60)), getattr(method, "steps", 1))
    T = draw(_log_uniform(1e-12, 1e12))
    layout = draw(st.sampled_from(["stage", "step"]))
    smp = parameter_samples(method, T, N, layout, starter)
    unit = st.floats(-1.0, 1.0)
    theta_scale = draw(_log_uniform(1e-3, 1e6))
    theta = theta_scale * draw(hnp.arrays(np.float64, (smp.n_samples, field.n_params), elements=unit))
    x0 = draw(_log_uniform(1e-3, 1e3)) * draw(hnp.arrays(np.float64, (d,), elements=unit))
    y = draw(hnp.arrays(np.float64, (d,), elements=unit))
    return dict(field=field, method=method, starter=starter, layout=layout, T=T, N=N, x0=x0, theta=theta,
                loss=QuadraticLoss(y))


def _outcome(fn):
    """("ok", result) or ("error", message); anything but a ValueError (or a warning) propagates and fails."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            return "ok", fn()
        except ValueError as e:
            return "error", f"{type(e).__name__}: {e}"


def _finite(*arrays):
    return all(np.all(np.isfinite(np.asarray(a))) for a in arrays)


def _rel(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    scale = np.max(np.abs(b)) if b.size else 0.0
    return float(np.max(np.abs(a - b)) / scale) if scale > 0 else float(np.max(np.abs(a - b), initial=0.0))


class _Jittered:
    """``field`` with every evaluation of f and of its VJPs multiplied by (1 ± 2⁻⁵²), random signs: the rounding
    differences another backend makes (another summation order, another libm's tanh), injected on purpose — the
    stochastic-rounding estimate of a computation's rounding sensitivity (Vignes' CESTAC method, as in CADNA)."""

    kernel = None

    def __init__(self, field, seed):
        self.field, self.dim, self.n_params = field, field.dim, field.n_params
        self.rng = np.random.default_rng(seed)

    def _jitter(self, a):
        return a * (1 + 2.0 ** -52 * self.rng.choice([-1.0, 1.0], np.shape(a)))

    def f(self, x, theta):
        return self._jitter(self.field.f(x, theta))

    def dfdx(self, x, theta):
        return self.field.dfdx(x, theta)

    def dfdtheta(self, x, theta):
        return self.field.dfdtheta(x, theta)

    def vjp_x(self, x, theta, v):
        return self._jitter(self.field.vjp_x(x, theta, v))

    def vjp_theta(self, x, theta, v):
        return self._jitter(self.field.vjp_theta(x, theta, v))


def _rounding_spread(p, ref):
    """The largest relative change of the NumPy adjoint's gradients over two runs with (x0, θ) perturbed by one ulp and
    every f / VJP evaluation jittered by one ulp (:class:`_Jittered`): what the problem itself does to rounding-level
    differences (0 if a perturbed run fails: then no tolerance is granted)."""
    rng = np.random.default_rng(0)
    spread = 0.0
    for seed in range(2):
        x0 = p["x0"] * (1 + 2.0 ** -52 * rng.choice([-1.0, 1.0], p["x0"].shape))
        theta = p["theta"] * (1 + 2.0 ** -52 * rng.choice([-1.0, 1.0], p["theta"].shape))
        status, res = _outcome(lambda: discrete_adjoint(_Jittered(p["field"], seed), p["method"], x0, theta, p["T"],
                                                        p["N"], p["loss"], layout=p["layout"], starter=p["starter"],
                                                        backend="numpy"))
        if status != "ok":
            return 0.0
        spread = max(spread, _rel(res.grad_theta, ref.grad_theta), _rel(res.grad_x0, ref.grad_x0))
    return spread


def _agree(p, ref, diffs, what):
    """Every relative difference in ``diffs`` is ≤ 1e-12, or ≤ 10× the problem's rounding spread."""
    worst = max(diffs)
    if worst <= AGREE:
        return
    spread = _rounding_spread(p, ref)
    event("ill-conditioned (routes differ by > 1e-12, within 10x the rounding spread)")
    assert worst <= 10 * spread, (what, worst, spread)


def check_problem(p, tape: bool):
    args = (p["field"], p["method"], p["x0"], p["theta"], p["T"], p["N"], p["loss"])
    kw = dict(layout=p["layout"], starter=p["starter"])
    outcomes = {"numpy": _outcome(lambda: discrete_adjoint(*args, backend="numpy", **kw))}
    if p["field"].kernel is not None:
        outcomes["numba"] = _outcome(lambda: discrete_adjoint(*args, backend="numba", **kw))
    for backend, (status, res) in outcomes.items():
        if status == "ok":  # zero silent non-finite results
            assert _finite(res.loss, res.grad_theta, res.grad_x0, res.lambdas, res.trajectory), backend
        else:
            assert res.startswith("NonFiniteError: the "), (backend, res)
    if "numba" in outcomes:
        (s1, r1), (s2, r2) = outcomes["numpy"], outcomes["numba"]
        assert s1 == s2, (outcomes["numpy"], outcomes["numba"])
        if s1 == "error":
            assert r1 == r2
        else:
            diffs = [_rel(getattr(r2, name), getattr(r1, name)) for name in ("grad_theta", "grad_x0")]
            _agree(p, r1, diffs, "numba vs numpy")
    status, res = outcomes["numpy"]
    # integrate: the same forward verdict
    fwd = _outcome(lambda: integrate(*args[:6], **kw).x)
    if fwd[0] == "ok":
        assert _finite(fwd[1])
        assert status == "ok" or "the solution became non-finite" not in res
    else:
        assert status == "error" and res == fwd[1]
    if tape:
        t_status, t_res = _outcome(lambda: grad(lambda th: discrete_loss(*args[:3], th, *args[4:], **kw))(p["theta"]))
        if t_status == "ok":
            assert _finite(t_res)
            if status == "ok":
                _agree(p, res, [_rel(res.grad_theta, t_res)], "numpy vs tape")
        else:
            assert t_res.startswith(("NonFiniteError: the ", "ValueError: the gradient became non-finite")), t_res
    return status


def _small(p):
    s = p["method"].stages if hasattr(p["method"], "stages") else 1
    return p["N"] * s <= TAPE_MAX_EVALUATIONS


FUZZ_SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.slow
@settings(max_examples=2500, **FUZZ_SETTINGS)
@given(extreme_problems())
def test_fuzz_no_silent_nonfinite_and_backends_agree(p):
    check_problem(p, tape=_small(p))


@settings(max_examples=25, **FUZZ_SETTINGS)
@given(extreme_problems())
def test_fuzz_no_silent_nonfinite_quick(p):
    check_problem(p, tape=_small(p) and p["N"] <= 20)


# ------------------------------------------------------------------------------------------------ Wasserstein
@st.composite
def extreme_flows(draw):
    from refimpl.wasserstein.energies import KLToGaussian, QuadraticInteraction, QuadraticPotential
    d = draw(st.integers(1, 3))
    scale = draw(_log_uniform(1e-3, 1e6))
    M = draw(hnp.arrays(np.float64, (d, d), elements=st.floats(-1.0, 1.0)))
    A = scale * (M @ M.T + 0.1 * np.eye(d))
    energy = draw(st.sampled_from([
        lambda: QuadraticPotential(A), lambda: KLToGaussian(np.zeros(d), np.linalg.inv(A) if scale < 1e3 else np.eye(d), bandwidth=0.5),
        lambda: QuadraticPotential(A) + QuadraticInteraction(0.5 * A)]))()
    X = draw(_log_uniform(1e-3, 1e3)) * draw(hnp.arrays(np.float64, (draw(st.integers(2, 6)), d),
                                                         elements=st.floats(-1.0, 1.0)))
    return energy, X, draw(_log_uniform(1e-12, 1e300)), draw(st.integers(1, 40))


def check_flow(energy, X, h, n):
    from refimpl.wasserstein.coordinate_descent import StepSizeWarning
    from refimpl.wasserstein.gaussian_flows import gaussian_forward_euler, gaussian_jko
    from refimpl.wasserstein.measures import GaussianMeasure
    from refimpl.wasserstein.particle_steps import forward_euler
    g = GaussianMeasure(np.mean(X, axis=0), np.cov(X.T).reshape(X.shape[1], X.shape[1]) + np.eye(X.shape[1]))
    runs = [lambda: forward_euler(energy, X, h, n), lambda: [m.cov for m in gaussian_forward_euler(energy, g, h, n)],
            lambda: [m.cov for m in gaussian_jko(energy, g, h, min(n, 5))]]
    for run in runs:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            warnings.simplefilter("ignore", StepSizeWarning)  # above the stability bound: warned, by design
            try:
                assert _finite(*run())
            except ValueError as e:  # a clear error: an overflow says where, anything else names its argument
                assert str(e).startswith(("the solution became non-finite", "the solution left the Gaussians", "h = ",
                                               "forward Euler map")), str(e)


@pytest.mark.slow
@settings(max_examples=300, **FUZZ_SETTINGS)
@given(extreme_flows())
def test_fuzz_wasserstein_flows_no_silent_nonfinite(case):
    check_flow(*case)


@settings(max_examples=10, **FUZZ_SETTINGS)
@given(extreme_flows())
def test_fuzz_wasserstein_flows_quick(case):
    check_flow(*case)
