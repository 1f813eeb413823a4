"""The case-kind registry drives the oracle: a kind defined only in this file, registered with
``CASE_KINDS.registered``, round-trips through save/load/check, is compared and verified, and is refused once it is
unregistered; the built-in kinds keep refusing what the schema used to refuse (unknown kind, unknown field family)."""
import copy
import json

import numpy as np
import pytest

from refimpl import cli
from refimpl.oracle import CASE_KINDS, Case, CaseFormatError, CaseKind, compare, load_case, save_case, verify_case
from refimpl.oracle.comparison import normwise_disagreement
from refimpl.oracle.ode_cases import OdeCaseKind, OdeProblem, Sinusoid, build_case
from refimpl.oracle.wasserstein_cases import WassersteinCaseKind


class ToyKind(CaseKind):
    """v = 2 u, u of length n (problem section: {"n": n})."""

    family = "toy_doubling"
    problem_schema = {"type": "object", "required": ["n"], "additionalProperties": False,
                      "properties": {"n": {"type": "integer", "minimum": 1}}}
    inputs = {"u": "the input vector, shape (n,)"}
    references = {"v": "2 u, shape (n,)"}
    required = ("u", "v")

    @classmethod
    def check_problem(cls, case, where):
        n = case.problem["n"]
        for name, a in case.arrays.items():
            if a.shape != (n,):
                raise CaseFormatError(f"{where}: array {name!r} must have shape ({n},), got {a.shape}")

    @classmethod
    def summary(cls, case):
        return f"doubling, n={case.problem['n']}"

    @classmethod
    def recompute(cls, case):
        return {"v": 2.0 * case.arrays["u"]}


def _toy_case(u, v=None, n=None):
    u = np.asarray(u, dtype=np.float64)
    arrays = {"u": u, "v": 2.0 * u if v is None else np.asarray(v, dtype=np.float64)}
    meta = {"format": "refimpl-case", "format_version": 1, "name": "toy-1", "kind": "toy_doubling",
            "description": "a case kind defined in the test only", "problem": {"n": len(u) if n is None else n},
            "arrays": ToyKind.declare(arrays),
            "tolerances": {"v": {"rtol": 1e-12, "atol": 1e-15, "why": "exact"}},
            "provenance": {"refimpl_version": "test", "numpy_version": np.__version__, "created_by": "this test",
                           "how": {"v": "2 u"}}}
    return meta, arrays


def test_a_registered_toy_kind_round_trips_through_save_load_check_compare_and_verify(tmp_path, capsys):
    assert "toy_doubling" not in CASE_KINDS
    meta, arrays = _toy_case([1.0, -2.0, 0.5])
    with CASE_KINDS.registered(ToyKind):
        case = Case(meta, arrays)
        assert case.kind is ToyKind and case.references == ["v"]
        assert "doubling, n=3" in repr(case)
        save_case(case, tmp_path / "toy")
        again = load_case(tmp_path / "toy")
        assert again.metadata == case.metadata
        assert np.array_equal(again.arrays["u"], arrays["u"]) and np.array_equal(again.arrays["v"], arrays["v"])
        assert compare(again, {"v": [2.0, -4.0, 1.0]}).passed
        assert not compare(again, {"v": [2.0, -4.0, 1.1]}).passed
        assert verify_case(again).passed
        np.savez(tmp_path / "theirs.npz", v=np.array([2.0, -4.0, 1.0]))
        assert cli.main(["check", str(tmp_path / "toy"), str(tmp_path / "theirs.npz")]) == 0
        # the kind's own rules are what Case.check applies
        with pytest.raises(CaseFormatError, match=r"must have shape \(4,\)"):
            Case(*_toy_case([1.0, 2.0, 3.0], n=4))
        with pytest.raises(CaseFormatError, match="does not describe a 'toy_doubling' case"):
            Case({**meta, "problem": {"n": 3, "extra": 1}}, arrays)
        bad = copy.deepcopy(meta)
        bad["arrays"]["v"]["role"] = "input"
        with pytest.raises(CaseFormatError, match="'v' is not a known input"):
            Case(bad, arrays)
        no_u = copy.deepcopy(meta)
        del no_u["arrays"]["u"]
        with pytest.raises(CaseFormatError, match="required array 'u'"):
            Case(no_u, {"v": arrays["v"]})
    assert "toy_doubling" not in CASE_KINDS
    with pytest.raises(CaseFormatError, match="unknown case kind 'toy_doubling'"):
        load_case(tmp_path / "toy")
    capsys.readouterr()
    assert cli.main(["check", str(tmp_path / "toy"), str(tmp_path / "theirs.npz")]) == 2
    assert "unknown case kind" in capsys.readouterr().err


def test_the_built_in_kinds_are_registered_classes():
    assert CASE_KINDS.get("ode") is OdeCaseKind and CASE_KINDS.get("wasserstein") is WassersteinCaseKind
    for kind in (OdeCaseKind, WassersteinCaseKind):
        assert set(kind.required) <= set(kind.inputs) | set(kind.references)
        assert not set(kind.inputs) & set(kind.references)


@pytest.fixture(scope="module")
def ode_case():
    from refimpl.ode.fields import TanhField

    field = TanhField(2)
    return build_case(OdeProblem("kinds-ode", field, "heun", (0.3, -0.2), (0.1, 0.0), 1.0, 4,
                                 Sinusoid((0.1,) * field.n_params, (0.2,) * field.n_params, 2.0)))


def test_unknown_kinds_and_field_families_are_still_refused(ode_case, tmp_path):
    meta = json.loads(json.dumps(ode_case.metadata))
    with pytest.raises(CaseFormatError, match="unknown case kind 'nonesuch'"):
        Case({**meta, "kind": "nonesuch"}, ode_case.arrays)
    meta["problem"]["field"]["family"] = "nonesuch"
    with pytest.raises(CaseFormatError, match="'nonesuch' is not a known vector field"):
        Case(meta, ode_case.arrays)


def test_unknown_energy_terms_are_still_refused():
    from refimpl.oracle.wasserstein_cases import WassersteinProblem, build_wasserstein_case

    case = build_wasserstein_case(WassersteinProblem(
        "kinds-w", ({"kind": "quadratic_interaction", "B": [[0.5, 0.1], [0.1, 0.3]]},), "gaussian", "forward_euler",
        0.1, 2, (1.0, -0.5), ((1.0, 0.3), (0.3, 0.5))))
    meta = json.loads(json.dumps(case.metadata))
    meta["problem"]["energy"]["terms"][0]["kind"] = "nonesuch"
    with pytest.raises(CaseFormatError, match="'nonesuch' is not a known energy term"):
        Case(meta, case.arrays)


def test_one_normwise_disagreement_guards_empty_arrays():
    assert normwise_disagreement(np.zeros(0), np.zeros(0)) == 0.0
    assert normwise_disagreement([1.0, 2.0], [1.0, 4.0]) == 0.5
    assert normwise_disagreement([1e-300], [0.0]) > 0
