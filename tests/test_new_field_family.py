r"""A vector-field family defined in this file only goes through the whole oracle with no edit to ``refimpl/``:
registered in :data:`refimpl.ode.fields.FIELDS`, built into a case, saved (exported), reloaded, checked for consistency,
its references recomputed by :func:`refimpl.oracle.verify_case`, and a foreign gradient compared with it — through the
Python API and through ``python -m refimpl check``. Without the registration the saved case is refused, naming the
family.

The family: cubic damping, :math:`f_i(x,\theta) = \theta_i x_i - \theta_{d+i} x_i^3` (p = 2d), with hand Jacobians
:math:`\partial_x f = \mathrm{diag}(\theta_{:d} - 3\theta_{d:} x^2)`, :math:`\partial_\theta f = [\mathrm{diag}(x),
-\mathrm{diag}(x^3)]`.
"""
import numpy as np
import pytest

from refimpl import ad, cli
from refimpl.ad import ops
from refimpl.ode.fields import FIELDS, HandField, QuadraticLoss
from refimpl.ode.integrators import discrete_loss
from refimpl.oracle import CaseFormatError, compare, load_case, save_case, verify_case
from refimpl.oracle.ode_cases import OdeProblem, Sinusoid, build_case, problem_objects


class CubicDampingField(HandField):
    r""":math:`f_i(x, \theta) = \theta_i x_i - \theta_{d+i} x_i^3`, :math:`\theta \in \mathbb{R}^{2d}`."""

    family = "cubic_damping_test"
    formula = "f_i(x, theta) = theta_i x_i - theta_{d+i} x_i^3, theta = (a, c)"

    def __init__(self, dim):
        self.dim, self.n_params = dim, 2 * dim

    def f(self, x, theta):
        self._check_f_args(x, theta)
        d = self.dim
        return theta[:d] * x - theta[d:] * x ** 3

    def dfdx(self, x, theta):
        x, theta = self._checked(x, theta)
        d = self.dim
        return np.diag(theta[:d] - 3.0 * theta[d:] * x ** 2)

    def dfdtheta(self, x, theta):
        x, theta = self._checked(x, theta)
        return np.hstack([np.diag(x), -np.diag(x ** 3)])

    def vjp_x(self, x, theta, v):
        x, theta, v = self._checked(x, theta, v)
        d = self.dim
        return (theta[:d] - 3.0 * theta[d:] * x ** 2) * v

    def vjp_theta(self, x, theta, v):
        x, theta, v = self._checked(x, theta, v)
        return np.concatenate([x * v, -(x ** 3) * v])


@pytest.fixture(scope="module")
def registered():
    with FIELDS.registered(CubicDampingField):
        yield CubicDampingField


def _problem(field, method, starter=None):
    p = field.n_params
    return OdeProblem(f"cubic-{method}", field, method, (0.8, -0.5), (0.1, 0.2), 1.0, 12,
                      Sinusoid((0.4,) * (p // 2) + (0.3,) * (p // 2), (0.2,) * p, 2.0), "stage", starter)


@pytest.mark.parametrize("method, starter", [("rk4", None), ("leapfrog", "forward_euler")])
def test_a_new_field_family_is_exported_reloaded_and_checked(registered, tmp_path, method, starter):
    case = build_case(_problem(registered(2), method, starter))
    assert case.problem["field"]["family"] == "cubic_damping_test"
    directory = save_case(case, tmp_path / "case")
    back = load_case(directory)  # Case.check runs on load: schema, kind rules, field family known
    assert back.problem == case.problem
    objects = problem_objects(back)
    assert type(objects["field"]) is CubicDampingField

    # references recomputed from the inputs by refimpl: equal to the stored ones within the case tolerances
    assert verify_case(back).passed

    # a "foreign" gradient from an independent route: the tape through the generic integrator (not the hand
    # recursion that produced the reference); tape and hand adjoint are the same derivative computed in a different
    # order, so they agree to rounding, far inside the case's rtol 1e-10
    o = objects
    tape = ad.grad(lambda th: discrete_loss(o["field"], o["method"], o["x0"], th, o["T"], o["N"], o["loss"],
                                            layout=o["layout"], starter=o["starter"]))(o["theta"])
    ours = compare(back, {"discrete_gradient": tape}, quantities=["discrete_gradient"])
    assert ours.passed, ours.table()
    # and the comparison can fail: a gradient missing the factor of a wrong stage weight does not pass
    wrong = compare(back, {"discrete_gradient": 1.01 * tape}, quantities=["discrete_gradient"])
    assert not wrong.passed

    # the command line reads the same case (exit 0 pass, 1 mismatch)
    np.savez(tmp_path / "theirs.npz", discrete_gradient=tape)
    np.savez(tmp_path / "wrong.npz", discrete_gradient=1.01 * tape)
    assert cli.main(["check", str(directory), str(tmp_path / "theirs.npz")]) == 0
    assert cli.main(["check", str(directory), str(tmp_path / "wrong.npz")]) == 1


def test_the_hand_jacobians_of_the_test_family_are_right(registered):
    # the family's vjp methods feed the hand adjoint; check them against the tape of f (an independent route)
    field = registered(3)
    rng = np.random.default_rng(5)
    x, th, v = rng.standard_normal(3), rng.standard_normal(6), rng.standard_normal(3)
    gx = ad.grad(lambda z: ops.sum(field.f(z, th) * v))(x)
    gth = ad.grad(lambda t: ops.sum(field.f(x, t) * v))(th)
    np.testing.assert_allclose(field.vjp_x(x, th, v), gx, rtol=1e-14, atol=1e-15)  # same formula: rounding only
    np.testing.assert_allclose(field.vjp_theta(x, th, v), gth, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(field.dfdx(x, th).T @ v, gx, rtol=1e-14, atol=1e-15)


def test_an_unregistered_family_is_refused_naming_it(tmp_path):
    with FIELDS.registered(CubicDampingField):
        directory = save_case(build_case(_problem(CubicDampingField(2), "heun")), tmp_path / "case")
    assert "cubic_damping_test" not in FIELDS
    with pytest.raises(CaseFormatError, match="cubic_damping_test"):
        load_case(directory)
    with pytest.raises(ValueError, match="cubic_damping_test"):
        FIELDS.from_spec({"family": "cubic_damping_test", "dim": 2, "n_params": 4, "formula": ""})


def test_quadratic_loss_is_the_registered_loss():
    loss = QuadraticLoss(np.array([0.1, 0.2]))
    from refimpl.ode.fields import LOSSES

    again = LOSSES.from_spec(loss.to_spec(), key="kind")
    assert type(again) is QuadraticLoss and np.array_equal(again.y, loss.y)
