"""Property test of the whole oracle pipeline on random problems (refimpl.testing.strategies_ode: built-in fields,
named schemes, random float tableaux and multistep methods, both layouts): build → save → load is exact, the case
passes against its own arrays, and re-deriving it from its JSON description (float coefficients included) reproduces
every reference within the case tolerance."""
import json
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import example, given, settings

from refimpl.oracle import compare, load_case, save_case
from refimpl.oracle.ode_cases import OdeProblem, build_case
from refimpl.oracle.verify import verify_case
from refimpl.ode.fields import QuadraticLoss, TwoLayerTanhField
from refimpl.ode.schemes import FORWARD_EULER
from refimpl.testing.strategies_ode import ODEProblem, ode_problems

#: the parameter layouts an ODE case can hold (the case schema's list; the strategies may draw more)
CASE_LAYOUTS = tuple(json.loads((Path(__file__).resolve().parents[1] / "refimpl" / "oracle" / "case_schema.json")
                                .read_text())["$defs"]["ode_problem"]["properties"]["layout"]["enum"])


@settings(max_examples=25, deadline=None)
@given(p=ode_problems(N=(1, 6), layouts=CASE_LAYOUTS))
# found by hypothesis: a state of 1e-155 made the squares in SciPy's DOP853 error norm underflow to 0/0 in the
# piecewise-constant reference (refimpl.ode.dop853)
@example(p=ODEProblem(TwoLayerTanhField(1, 1), FORWARD_EULER, None, "step", np.array([1.12756083e-155]),
                      np.array([[1e-5, 0.0, 1e-5]]), 1.0, 1, QuadraticLoss(np.zeros(1))))
@example(p=ODEProblem(TwoLayerTanhField(2, 1), FORWARD_EULER, None, "step", np.array([1.12756083e-155, 0.0]),
                      np.array([[0.00195312, 0.00195312, 0.0, 0.00195312, 0.00195312]]), 1.0, 1,
                      QuadraticLoss(np.zeros(2))))
def test_random_problems_round_trip_and_verify(p):
    case = build_case(OdeProblem("prop", p.field, p.method, p.x0, p.loss.y, p.T, p.N, p.theta, p.layout, p.starter))
    with tempfile.TemporaryDirectory() as tmp:
        save_case(case, Path(tmp) / "c")
        again = load_case(Path(tmp) / "c")
    assert again.metadata == case.metadata
    assert all(np.array_equal(again.arrays[k], v) for k, v in case.arrays.items())
    assert compare(again, {k: again.arrays[k] for k in again.references}).passed
    report = verify_case(again)
    assert report.passed and not report.not_provided, report
