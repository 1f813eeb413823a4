"""Step control as data: the norm and controller formulas against direct NumPy evaluations, the HNW initial step
against SciPy's independent implementation, spec round trips and the validation errors."""
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from scipy.integrate._ivp.common import norm as scipy_norm, select_initial_step

from refimpl.ad import grad, ops
from refimpl.ode.embedded import BOGACKI_SHAMPINE_32, DORMAND_PRINCE_54
from refimpl.ode.step_control import (CONTROLLERS, I_CONTROLLER, PI_HNW, STEP_CONTROL_FAMILIES, Controller,
                                      ErrorNorm, InitialStep, Tolerances, re_abs, re_max)
from refimpl.testing.strategies_adaptive import controllers, error_norms


def test_error_ratio_matches_direct_formulas():
    rng = np.random.default_rng(3)
    e, y0, y1 = rng.normal(size=(3, 5))
    atol, rtol = 1e-6, 1e-3
    for scale, m in (("max", np.maximum(np.abs(y0), np.abs(y1))), ("start", np.abs(y0)), ("end", np.abs(y1))):
        v = e / (atol + rtol * m)
        # rms: sqrt(mean(v^2)) written differently from the implementation (norm / sqrt(d)); 1 ulp apart at most
        assert ErrorNorm("rms", scale).ratio(e, y0, y1, atol, rtol) == pytest.approx(np.linalg.norm(v) / math.sqrt(5),
                                                                                     rel=4e-16)
        assert ErrorNorm("max", scale).ratio(e, y0, y1, atol, rtol) == np.max(np.abs(v))


def test_holomorphic_abs_and_max_give_the_real_derivative_by_complex_step():
    # d|x|/dx = sign(x), d max(x, y)/dx = [x > y]: the complex step of the continuations sees them exactly
    x = np.array([-1.5, 0.7])
    eps = 1e-30
    assert np.array_equal(np.imag(re_abs(x + 1j * eps)) / eps, np.sign(x))
    y = np.array([0.0, 1.0])
    assert np.array_equal(np.imag(re_max(x + 1j * eps, y)) / eps, (x > y).astype(float))
    # and on the tape
    assert np.array_equal(grad(lambda z: ops.sum(re_abs(z)))(x), np.sign(x))


def test_i_controller_factor_and_clipping():
    k = 5.0
    r = 0.3
    assert I_CONTROLLER.factor(r, (1.0, 1.0), k, True) == pytest.approx(0.9 * r ** (-1 / k), rel=1e-16)
    assert I_CONTROLLER.factor(1e-30, (1.0, 1.0), k, True) == 10.0       # clipped to factor_max
    assert I_CONTROLLER.factor(0.0, (1.0, 1.0), k, True) == 10.0         # r = 0: factor_max
    assert I_CONTROLLER.factor(1e30, (1.0, 1.0), k, False) == 0.2        # clipped to factor_min
    # a rejected step never grows (grow_on_reject=False) even with a safety that would let it
    c = Controller("c", (1.0, 0.0, 0.0), safety=1.0)
    assert c.factor(1.0 + 1e-12, (1.0, 1.0), k, False) <= 1.0
    assert Controller("g", (1.0,), safety=1.0, grow_on_reject=True).factor(0.5, (1, 1), k, False) > 1.0
    # an accepted step never shrinks with shrink_on_accept=False, never grows after a rejection with hold_after_reject
    assert Controller("s", shrink_on_accept=False).factor(0.99, (1, 1), k, True) == 1.0
    assert Controller("h", hold_after_reject=True).factor(1e-3, (1, 1), k, True, after_reject=True) == 1.0


def test_pi_and_pid_factor_formula():
    k, r, r1, r2 = 4.0, 0.5, 0.8, 0.3
    c = Controller("pid", (0.4, -0.2, 0.1), safety=0.8, factor_min=0.01, factor_max=100)
    assert c.factor(r, (r1, r2), k, True) == pytest.approx(0.8 * r ** (-0.4 / k) * r1 ** (0.2 / k) * r2 ** (-0.1 / k),
                                                           rel=4e-16)
    # PI of HNW: fac = err_n^(-0.7/k) err_{n-1}^(0.4/k) (times safety)
    assert PI_HNW.factor(r, (r1, 1.0), k, True) == pytest.approx(0.9 * r ** (-0.7 / k) * r1 ** (0.4 / k), rel=4e-16)
    # on_reject="integral" uses the I formula on a rejected step
    ci = Controller("pi", (0.7, -0.4, 0.0), on_reject="integral")
    assert ci.factor(2.0, (0.5, 1.0), k, False) == pytest.approx(0.9 * 2.0 ** (-1 / k), rel=4e-16)


def test_from_pid_maps_to_beta():
    c = Controller.from_pid(0.2, 0.3, 0.1)
    assert c.beta == pytest.approx((0.6, -0.4, 0.1), abs=1e-16)
    # history: only accepted (or, if asked, rejected) ratios enter
    assert c.next_history(0.5, (0.7, 0.9), True) == (0.5, 0.7)
    assert c.next_history(2.0, (0.7, 0.9), False) == (0.7, 0.9)


@pytest.mark.parametrize("pair, order", [(DORMAND_PRINCE_54, 4), (BOGACKI_SHAMPINE_32, 2), (DORMAND_PRINCE_54, None)])
def test_initial_step_matches_scipy(pair, order):
    # SciPy's select_initial_step is an independent implementation of HNW II.4 (RMS norm, interval clip)
    rng = np.random.default_rng(7)
    W = rng.normal(size=(3, 3))
    y0 = rng.normal(size=3)
    fun = lambda t, y: np.tanh(W @ y)
    for rtol, atol in ((1e-3, 1e-6), (1e-8, 1e-10), (1e-4, 1.0)):
        init = InitialStep(order=order, clip_to_interval=True)
        ours = init.select(lambda y: fun(0, y), y0, fun(0, y0), atol, rtol, ErrorNorm("rms"), pair, T=2.0)
        p = pair.order if order is None else order
        ref = select_initial_step(fun, 0.0, y0, 2.0, np.inf, fun(0, y0), 1, p, rtol, atol)
        # same formula; the norms are evaluated differently (sqrt(sum/d) vs norm/sqrt(d)), a few ulps apart
        assert ours == pytest.approx(ref, rel=1e-14)


def test_initial_step_fallbacks():
    # f(y0) = 0: d1 < 1e-5 -> h0 = 1e-6; d1 = d2 = 0 -> h1 = max(1e-6, 1e-3 h0) -> min(100 h0, h1) = 1e-6
    h = InitialStep().select(lambda y: 0.0 * y, np.ones(2), np.zeros(2), 1e-6, 1e-3, ErrorNorm(), DORMAND_PRINCE_54)
    assert h == 1e-6
    assert scipy_norm(np.ones(4)) == 1.0  # (the SciPy norm used above is the RMS norm)


def test_specs_round_trip():
    for obj in (ErrorNorm("max", "end"), Controller.from_pid(0.1, 0.3, 0.05, factor_max=5.0, accept="lt"),
                InitialStep(order=4, clip_to_interval=True), *[CONTROLLERS.get(n) for n in CONTROLLERS.names()]):
        assert STEP_CONTROL_FAMILIES.from_spec(json.loads(json.dumps(obj.to_spec()))) == obj


@pytest.mark.parametrize("kwargs, match", [
    (dict(beta=(0.0, 0.5, 0.0)), "beta"), (dict(beta=(0.5, -0.6, 0.0)), "beta"), (dict(beta=(float("nan"),)), "beta"),
    (dict(beta=()), "beta"), (dict(safety=1.5), "safety"), (dict(safety=0.0), "safety"),
    (dict(factor_min=1.5), "factor_min"), (dict(factor_max=0.5), "factor_max"),
    (dict(factor_min=1.0, factor_max=1.0), "factor_min"), (dict(error_order=0), "error_order"),
    (dict(accept="maybe"), "accept"), (dict(on_reject="x"), "on_reject"),
])
def test_inconsistent_controllers_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Controller("bad", **kwargs)


@pytest.mark.parametrize("rtol, atol, name", [(0.0, 1e-6, "rtol"), (-1e-3, 1e-6, "rtol"), (float("nan"), 1e-6, "rtol"),
                                              (1e-3, 0.0, "atol"), (1e-3, float("nan"), "atol"),
                                              (1e-3, float("inf"), "atol")])
def test_bad_tolerances_name_the_argument(rtol, atol, name):
    with pytest.raises(ValueError, match=name):
        Tolerances(rtol, atol)


def test_bad_norm_and_initial_step():
    with pytest.raises(ValueError, match="kind"):
        ErrorNorm("l1")
    with pytest.raises(ValueError, match="scale"):
        ErrorNorm("rms", "mean")
    with pytest.raises(ValueError, match="factor"):
        InitialStep(factor=-1.0)
    with pytest.raises(ValueError, match="order"):
        InitialStep(order=-2)


def test_starting_step_derivative_on_the_tape_equals_complex_step():
    # h0(x0, theta) of HNW II.4 is differentiable inside a branch; the tape and the complex step agree
    from refimpl.ad import value_and_grad
    from refimpl.ode.fields import TanhField
    field = TanhField(2)
    rng = np.random.default_rng(4)
    theta = rng.normal(size=6)
    x0 = rng.normal(size=2)
    init = InitialStep()

    def h0(th):
        f = lambda y: field.f(y, th)
        return init.select(f, x0, f(x0), 1e-6, 1e-4, ErrorNorm("rms"), DORMAND_PRINCE_54)

    _, g = value_and_grad(h0)(theta)
    v = rng.normal(size=6)
    eps = 1e-30
    cs = np.imag(h0(theta + 1j * eps * v)) / eps
    assert abs(cs - g @ v) <= 1e-13 * (np.abs(g) @ np.abs(v))


@settings(max_examples=30, deadline=None)
@given(controllers(), error_norms())
def test_drawn_controllers_and_norms_round_trip(controller, norm):
    for obj in (controller, norm):
        assert STEP_CONTROL_FAMILIES.from_spec(json.loads(json.dumps(obj.to_spec()))) == obj


def test_a_zero_ratio_in_the_history_counts_as_one():
    # hypothesis found x0 = 0 with f(0) = 0 on the first step: r = 0 exactly, and a PI controller then raised 0 to
    # the power -beta2/k (ZeroDivisionError for beta2 > 0, factor 0 -> factor_min for beta2 < 0)
    from refimpl.ode.step_control import Controller

    for beta in ((1.0, 0.5, 0.0), (0.7, -0.4, 0.0), (1 / 18, 1 / 9, 1 / 18)):
        c = Controller("pi", beta, safety=0.9, factor_min=0.2, factor_max=10.0)
        for history in ((0.0, 1.0), (1.0, 0.0), (0.0, 0.0)):
            assert c.factor(0.5, history, 3.0, True) == c.factor(0.5, (1.0, 1.0), 3.0, True)
        # a nonzero history still enters: the rule is for exact zeros only
        if beta[1] != 0.0:
            assert c.factor(0.5, (0.25, 1.0), 3.0, True) != c.factor(0.5, (1.0, 1.0), 3.0, True)

