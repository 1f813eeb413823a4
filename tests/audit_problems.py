"""The problems the library audits (tests/test_audit_torchdiffeq.py, tests/test_audit_diffrax.py) share: the first
oracle base problem on a refinement family for fixed steps, a tanh field with constant θ for adaptive steps."""
from refimpl.audit import AdaptiveProblem, FixedStepProblem
from refimpl.ode.fields import TanhField
from refimpl.problems.sinusoid_ode import oracle_base_problems

_, FIELD, X0, Y, PATH = oracle_base_problems()[0]
FAMILY = (4, 8, 16, 32)
_TANH = TanhField(2)
THETA = _TANH.pack([[0.5, -1.0], [1.2, 0.3]], [0.1, -0.2])
RTOLS = (1e-3, 1e-4, 1e-5)


def fixed(layout, scheme):
    return FixedStepProblem(FIELD, X0, Y, PATH, 1.0, layout, scheme)


def adaptive(convention):
    return AdaptiveProblem(_TANH, [1.0, -0.5], [0.3, -0.1], THETA, 2.0, convention)
