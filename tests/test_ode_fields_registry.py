"""The ODE registries: vector fields (FIELDS), terminal losses (LOSSES), schemes (SCHEMES, SCHEME_FAMILIES).

* every built-in field family's ``to_spec()`` is exactly what a case file stores (same keys, key order and values) —
  checked against the oracle's own ``field_spec`` while it exists, and against literal dicts;
* ``from_spec`` inverts it (through the class and through the registry) and refuses a spec whose dim/n_params do not
  match what it builds;
* the same for the quadratic loss and for every named scheme;
* a new field family defined here (not in refimpl) registers itself, round-trips through its spec, and — through its
  own NumbaKernel descriptor — runs on the compiled discrete-adjoint path and agrees with the NumPy path.
"""
from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest
from numba.extending import register_jitable

from refimpl.ad import ops
from refimpl.ode import _numba
from refimpl.ode.adjoint_recursions import discrete_adjoint
from refimpl.ode.fields import (FIELDS, LOSSES, HandField, LinearField, LinearForcingField, LogisticField,
                                NumbaKernel, PolynomialField, QuadraticLoss, ScaledLinearField, TanhField,
                                TwoLayerTanhField, UserField)
from refimpl.ode.fields.linear import affine_n_params
from refimpl.ode.multistep import LinearMultistep
from refimpl.ode.samples import parameter_samples
from refimpl.ode.schemes import LEAPFROG, RK4, SCHEME_FAMILIES, SCHEMES, TABLEAUX, MULTISTEP_METHODS
from refimpl.ode.tableau import ButcherTableau, two_stage

# the oracle stores fields and schemes through these registries (refimpl.oracle.ode_cases.field_spec/scheme_spec);
# checking the oracle's functions too guards against it growing its own description again
from refimpl.oracle.ode_cases import field_spec as oracle_field_spec, scheme_spec as oracle_scheme_spec


def one_of_each_field():
    return [TanhField(3), LinearField(2), TwoLayerTanhField(2, 3), TwoLayerTanhField(2, 3, np.arange(6.0).reshape(2,
    3)),
            PolynomialField(2), LinearForcingField(np.array([[0.0, 1.0], [-1.0, 0.5]])),
            ScaledLinearField(np.array([[2.0]])), LogisticField()]


#: what a case file stores for each family today (literal: the format must not drift)
EXPECTED_FIELD_DESCRIPTIONS = {
    "tanh": {"family": "tanh", "dim": 3, "n_params": 12,
             "formula": "f(x, theta) = tanh(W x + b), theta = (W row-major, b)"},
    "linear": {"family": "linear", "dim": 2, "n_params": 6,
               "formula": "f(x, theta) = A x + b, theta = (A row-major, b)"},
    "two_layer_tanh": {"family": "two_layer_tanh", "dim": 2, "n_params": 15,
                       "formula": "f(x, theta) = W2 tanh(W1 x + b), theta = (W1 row-major (hidden x d), b, W2 "
                                  "row-major (d x hidden)) or (W1, b) when W2 is fixed", "hidden": 3},
    "two_layer_tanh/fixed": {"family": "two_layer_tanh", "dim": 2, "n_params": 9,
                             "formula": "f(x, theta) = W2 tanh(W1 x + b), theta = (W1 row-major (hidden x d), b, W2 "
                                        "row-major (d x hidden)) or (W1, b) when W2 is fixed", "hidden": 3,
                             "fixed": {"W2": [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]}},
    "polynomial": {"family": "polynomial", "dim": 2, "n_params": 8,
                   "formula": "f_i(x, theta) = c_i + sum_j B_ij x_j + q_i x_i^2, theta = (c, B row-major, q)"},
    "linear_forcing": {"family": "linear_forcing", "dim": 2, "n_params": 2,
                       "formula": "f(x, theta) = A x + theta, A fixed", "fixed": {"A": [[0.0, 1.0], [-1.0, 0.5]]}},
    "scaled_linear": {"family": "scaled_linear", "dim": 1, "n_params": 1,
                      "formula": "f(x, theta) = theta_0 A x, A fixed", "fixed": {"A": [[2.0]]}},
    "logistic": {"family": "logistic", "dim": 1, "n_params": 2,
                 "formula": "f(x, theta) = r x (1 - x/K), theta = (r, K), d = 1"},
}


def _same(a: dict, b: dict) -> bool:
    """Equal *and* written identically (key order included), as json.dumps would write them into case.json."""
    return a == b and json.dumps(a) == json.dumps(b)


def test_every_builtin_family_is_registered():
    assert FIELDS.names() == sorted(["tanh", "linear", "two_layer_tanh", "polynomial", "linear_forcing",
                                     "scaled_linear", "logistic"])
    for name, cls in FIELDS.items():
        assert cls.family == name and isinstance(cls.formula, str) and cls.formula
    assert LOSSES.names() == ["quadratic"] and LOSSES.get("quadratic") is QuadraticLoss


@pytest.mark.parametrize("field", one_of_each_field(), ids=repr)
def test_field_to_spec_is_the_case_format(field):
    spec = field.to_spec()
    key = field.family + ("/fixed" if getattr(field, "W2", None) is not None else "")
    assert _same(spec, EXPECTED_FIELD_DESCRIPTIONS[key])
    assert _same(spec, oracle_field_spec(field))


@pytest.mark.parametrize("field", one_of_each_field(), ids=repr)
def test_field_from_spec_inverts_to_spec(field):
    spec = field.to_spec()
    for rebuilt in (type(field).from_spec(spec), FIELDS.from_spec(spec),
                    FIELDS.from_spec(json.loads(json.dumps(spec)))):
        assert type(rebuilt) is type(field) and _same(rebuilt.to_spec(), spec)
    x = np.linspace(0.2, 0.7, field.dim)
    theta = np.linspace(0.3, 1.1, field.n_params)
    assert np.array_equal(FIELDS.from_spec(spec).f(x, theta), field.f(x, theta))


def test_field_from_spec_checks_the_description():
    spec = TanhField(2).to_spec()
    with pytest.raises(ValueError, match="n_params = 7"):
        TanhField.from_spec(dict(spec, n_params=7))
    with pytest.raises(ValueError, match="field.family"):
        LinearField.from_spec(spec)
    with pytest.raises(ValueError, match="unknown vector field 'spline'"):
        FIELDS.from_spec(dict(spec, family="spline"))
    with pytest.raises(ValueError, match="cannot be stored"):
        UserField(lambda x, th: x, 2, 1).to_spec()


def test_quadratic_loss_spec():
    loss = QuadraticLoss(np.array([0.25, -1.0]))
    spec = loss.to_spec()
    assert _same(spec, {"kind": "quadratic", "y": [0.25, -1.0], "formula": "L = Phi(x_N) = 1/2 |x_N - y|^2"})
    for rebuilt in (QuadraticLoss.from_spec(spec), LOSSES.from_spec(spec, key="kind")):
        assert isinstance(rebuilt, QuadraticLoss) and np.array_equal(rebuilt.y, loss.y)
    with pytest.raises(ValueError, match="loss.kind"):
        QuadraticLoss.from_spec(dict(spec, kind="huber"))


def all_schemes():
    return [SCHEMES.get(name) for name in SCHEMES.names()] + [two_stage(0.3, name="float_two_stage"),
                                                               two_stage(Fraction(3, 4))]


def test_scheme_registries():
    assert SCHEMES.names() == sorted([*TABLEAUX, *MULTISTEP_METHODS])
    assert all(SCHEMES.get(name).name == name for name in SCHEMES.names())
    assert SCHEME_FAMILIES.get("runge_kutta") is ButcherTableau
    assert SCHEME_FAMILIES.get("multistep") is LinearMultistep


@pytest.mark.parametrize("method", all_schemes(), ids=lambda m: m.name)
def test_scheme_spec_round_trip(method):
    spec = method.to_spec()
    assert _same(spec, oracle_scheme_spec(method))
    for rebuilt in (type(method).from_spec(spec), SCHEME_FAMILIES.from_spec(spec),
                    SCHEME_FAMILIES.from_spec(json.loads(json.dumps(spec)))):
        assert rebuilt == method and rebuilt.exact == method.exact and _same(rebuilt.to_spec(), spec)


def test_scheme_spec_literals():
    assert _same(RK4.to_spec(), {"family": "runge_kutta", "name": "rk4", "order": 4,
                                 "A": [["0", "0", "0", "0"], ["1/2", "0", "0", "0"], ["0", "1/2", "0", "0"],
                                       ["0", "0", "1", "0"]],
                                 "b": ["1/6", "1/3", "1/3", "1/6"], "c": ["0", "1/2", "1/2", "1"]})
    assert _same(LEAPFROG.to_spec(), {"family": "multistep", "name": "leapfrog", "order": 2,
                                      "alpha": ["-1", "0", "1"], "beta": ["0", "2"]})
    assert _same(two_stage(0.25, name="q").to_spec(), {"family": "runge_kutta", "name": "q", "order": 2,
                                                       "A": [[0.0, 0.0], [0.25, 0.0]], "b": [-1.0, 2.0],
                                                       "c": [0.0, 0.25]})
    with pytest.raises(ValueError, match="scheme.family"):
        ButcherTableau.from_spec(LEAPFROG.to_spec())


# ---------------------------------------------------------------------------------------------------------------------
# a new field family, defined here only: f(x, theta) = sin(W x + b), with its own compiled point functions


@register_jitable
def sine_f(x, th, out):
    _numba.linear_f(x, th, out)
    for i in range(x.shape[0]):
        out[i] = np.sin(out[i])


@register_jitable
def sine_vjp(x, fx, th, v, out_x, g_th):
    d = x.shape[0]
    z = np.empty(d)
    _numba.linear_f(x, th, z)
    for j in range(d):
        out_x[j] = 0.0
    for i in range(d):
        u = np.cos(z[i]) * v[i]
        g_th[d * d + i] += u
        for j in range(d):
            g_th[i * d + j] += u * x[j]
            out_x[j] += th[i * d + j] * u


class SineField(HandField):
    r""":math:`f(x,\theta) = \sin(Wx + b)`: :math:`\partial_xf^{\mathsf T}v = W^{\mathsf T}u`,
    :math:`\partial_\theta f^{\mathsf T}v = (\mathrm{vec}(u x^{\mathsf T}), u)`, :math:`u = \cos(Wx + b)\circ v`."""

    family = "sine_test"
    formula = "f(x, theta) = sin(W x + b), theta = (W row-major, b)"
    kernel = NumbaKernel(__name__, "sine_f", "sine_vjp", affine_n_params, vjp_reads_fx=False)

    def __init__(self, dim):
        self.dim, self.n_params = dim, dim * dim + dim

    def f(self, x, theta):
        self._check_f_args(x, theta)
        d = self.dim
        return ops.sin(ops.matmul(ops.reshape(theta[:d * d], (d, d)), x) + theta[d * d:])

    def _wu(self, x, theta, v):
        d = self.dim
        W = theta[:d * d].reshape(d, d)
        return W, np.cos(W @ x + theta[d * d:]) * v

    def dfdx(self, x, theta):
        x, theta = self._checked(x, theta)
        return np.array([self.vjp_x(x, theta, e) for e in np.eye(self.dim)])

    def dfdtheta(self, x, theta):
        x, theta = self._checked(x, theta)
        return np.array([self.vjp_theta(x, theta, e) for e in np.eye(self.dim)])

    def vjp_x(self, x, theta, v):
        x, theta, v = self._checked(x, theta, v)
        W, u = self._wu(x, theta, v)
        return W.T @ u

    def vjp_theta(self, x, theta, v):
        x, theta, v = self._checked(x, theta, v)
        _, u = self._wu(x, theta, v)
        return np.concatenate([np.outer(u, x).ravel(), u])


@pytest.mark.parametrize("method, starter", [(RK4, None), (LEAPFROG, "forward_euler")], ids=["rk4", "leapfrog"])
def test_a_new_family_registers_round_trips_and_gets_the_compiled_path(method, starter):
    with FIELDS.registered(SineField):
        field = FIELDS.from_spec(SineField(3).to_spec())
        assert type(field) is SineField and "sine_test" in FIELDS
    assert "sine_test" not in FIELDS
    rng = np.random.default_rng(11)
    N = 12
    smp = parameter_samples(method, 1.0, N, "stage", starter)
    theta = 0.5 * rng.standard_normal((smp.n_samples, field.n_params))
    x0, loss = rng.standard_normal(3), QuadraticLoss(rng.standard_normal(3))
    fast = discrete_adjoint(field, method, x0, theta, 1.0, N, loss, starter=starter)
    ref = discrete_adjoint(field, method, x0, theta, 1.0, N, loss, starter=starter, backend="numpy")
    assert fast.backend == "numba" and ref.backend == "numpy"
    scale = np.max(np.abs(ref.grad_theta))
    assert np.max(np.abs(fast.grad_theta - ref.grad_theta)) <= 1e-13 * scale
    assert np.max(np.abs(fast.lambdas - ref.lambdas)) <= 1e-13 * np.max(np.abs(ref.lambdas))
    assert np.max(np.abs(fast.trajectory - ref.trajectory)) <= 1e-13 * np.max(np.abs(ref.trajectory))


def test_kernel_descriptors_of_the_builtin_fields():
    assert TanhField.kernel.functions() == (_numba.tanh_f, _numba.tanh_vjp)
    assert LinearField.kernel.functions() == (_numba.linear_f, _numba.linear_vjp)
    # neither built-in VJP reads f(x, θ): tanh forms z again for a cancellation-free sech² z
    assert not TanhField.kernel.vjp_reads_fx and not LinearField.kernel.vjp_reads_fx
    for cls in (TwoLayerTanhField, PolynomialField, LinearForcingField, ScaledLinearField, LogisticField, UserField):
        assert cls.kernel is None
    assert _numba.sweeps(TanhField.kernel) is _numba.sweeps(TanhField.kernel)
    with pytest.raises(TypeError, match="NumbaKernel"):
        _numba.erk_forward("tanh", np.zeros(2), np.zeros((1, 6)), np.zeros((1, 1), dtype=np.int64),
                           np.zeros((1, 1)), np.ones(1))


def test_compiled_paths_of_different_fields_do_not_mix():
    """The sweeps are built per descriptor from the same closure code; each field must get its own point functions
    (a shared compilation cache keyed on the closure's name would hand the second field the first one's f)."""
    rng = np.random.default_rng(5)
    x0, loss = rng.standard_normal(3), QuadraticLoss(rng.standard_normal(3))
    for field in (TanhField(3), LinearField(3), SineField(3), TanhField(3)):
        for method, starter in ((RK4, None), (LEAPFROG, "forward_euler")):
            smp = parameter_samples(method, 1.0, 6, "step", starter)
            theta = 0.4 * rng.standard_normal((smp.n_samples, field.n_params))
            fast = discrete_adjoint(field, method, x0, theta, 1.0, 6, loss, layout="step", starter=starter)
            ref = discrete_adjoint(field, method, x0, theta, 1.0, 6, loss, layout="step", starter=starter,
                                   backend="numpy")
            assert fast.backend == "numba"
            assert np.max(np.abs(fast.grad_theta - ref.grad_theta)) <= 1e-13 * np.max(np.abs(ref.grad_theta))
            assert np.max(np.abs(fast.trajectory - ref.trajectory)) <= 1e-13 * np.max(np.abs(ref.trajectory))


def test_each_descriptor_compiles_under_its_own_name():
    """Numba names compiled symbols and cache files after the function's qualified name; two closures of `sweeps`
    with one name, compiled in different processes, clash when both are loaded from the on-disk cache."""
    names = {k: {n: getattr(_numba.sweeps(k), n).py_func.__qualname__
                 for n in ("erk_forward", "erk_backward", "lmm_forward", "lmm_backward")}
             for k in (TanhField.kernel, LinearField.kernel, SineField.kernel)}
    flat = [q for per in names.values() for q in per.values()]
    assert len(set(flat)) == len(flat)


_CROSS_PROCESS = """
import sys, numpy as np
from refimpl.ode.adjoint_recursions import discrete_adjoint
from refimpl.ode.fields import LinearField, QuadraticLoss, TanhField
from refimpl.ode.schemes import LEAPFROG, RK4
for name in sys.argv[1:]:
    field = {"tanh": TanhField, "linear": LinearField}[name](2)
    for method, starter in ((RK4, None), (LEAPFROG, "forward_euler")):
        theta = 0.3 * np.random.default_rng(0).standard_normal((3, field.n_params))
        args = (field, method, np.ones(2), theta, 1.0, 3, QuadraticLoss(np.zeros(2)))
        a = discrete_adjoint(*args, layout="step", starter=starter, backend="numba").grad_theta
        b = discrete_adjoint(*args, layout="step", starter=starter, backend="numpy").grad_theta
        assert np.max(np.abs(a - b)) <= 1e-13 * np.max(np.abs(b)), (name, method.name)
"""


@pytest.mark.slow
def test_fields_compiled_in_different_processes_load_correctly_from_the_cache(tmp_path):
    import os
    import subprocess
    import sys

    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    for fields in (["tanh"], ["linear"], ["tanh", "linear"], ["linear", "tanh"]):
        subprocess.run([sys.executable, "-c", _CROSS_PROCESS, *fields], env=env, check=True)
