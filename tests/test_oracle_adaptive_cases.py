"""The ode_adaptive case kind: build, save/load, self-check, recomputation, and the grid-first check."""
import json

import numpy as np
import pytest

from refimpl.oracle import CASE_KINDS, CaseFormatError, load_case, save_case, verify_case
from refimpl.oracle.adaptive_cases import (AdaptiveCaseKind, AdaptiveCaseProblem, GridMismatch, adaptive_battery,
                                           build_adaptive_case, check_adaptive)
from refimpl.ode.fields import TanhField


@pytest.fixture(scope="module")
def cases():
    return list(adaptive_battery(quick=True))


def test_kind_is_registered_and_cases_round_trip(cases, tmp_path):
    assert CASE_KINDS.get("ode_adaptive") is AdaptiveCaseKind
    for case in cases:
        back = load_case(save_case(case, tmp_path / case.name))
        assert back.metadata == json.loads(json.dumps(case.metadata))
        for k in case.arrays:
            assert np.array_equal(back.arrays[k], case.arrays[k]) and back.arrays[k].dtype == case.arrays[k].dtype
        # the conventions are named in the case
        assert back.problem["gradients"]["full_discrete_detach"] == []
        assert back.metadata["provenance"]["route_checks"]["frozen_grid_gradient"] <= 1e-13


def test_references_recompute_from_the_case_description(cases):
    for case in cases:
        report = verify_case(case)
        assert report.passed, report


def test_own_arrays_pass_and_a_moved_grid_point_is_named(cases):
    case = cases[0]
    theirs = {k: np.array(case.arrays[k]) for k in case.references}
    assert check_adaptive(case, theirs).passed
    grid = theirs["accepted_grid"].copy()
    grid[2] += 1e-6
    r = check_adaptive(case, {**theirs, "accepted_grid": grid})
    assert isinstance(r, GridMismatch) and r.step == 2 and r.difference == pytest.approx(1e-6, rel=1e-6)
    assert "at step 2" in r.table() and not r.passed and r.exit_code == 1
    # a shorter grid (one step fewer): the first step past their end is named
    short = np.concatenate([theirs["accepted_grid"][:-2], [case.problem["T"]]])
    r = check_adaptive(case, {**theirs, "accepted_grid": short})
    assert isinstance(r, GridMismatch) and r.step == len(short) - 1


def test_gradients_are_compared_after_the_grid(cases):
    case = cases[0]
    theirs = {k: np.array(case.arrays[k]) for k in case.references}
    # someone reporting the frozen-grid gradient as the full one fails on full_discrete_gradient only
    theirs["full_discrete_gradient"] = theirs["frozen_grid_gradient"]
    r = check_adaptive(case, theirs)
    assert not r.passed and not r["full_discrete_gradient"].passed and r["frozen_grid_gradient"].passed


def test_the_two_gradients_differ_in_every_case(cases):
    for case in cases:
        a, b = case.arrays["frozen_grid_gradient"], case.arrays["full_discrete_gradient"]
        assert np.max(np.abs(a - b)) > 1e3 * case.tolerances["full_discrete_gradient"]["atol"]


def test_tampered_cases_are_refused(cases):
    case = cases[0]
    meta = json.loads(json.dumps(case.metadata))
    meta["problem"]["pair"]["order"] = 4
    with pytest.raises(CaseFormatError, match="does not rebuild"):
        type(case)(meta, case.arrays)
    arrays = dict(case.arrays)
    arrays["accepted_grid"] = arrays["accepted_grid"][::-1].copy()
    with pytest.raises(CaseFormatError, match="accepted_grid"):
        type(case)(case.metadata, arrays)


def test_build_refuses_bad_problems():
    field = TanhField(2)
    with pytest.raises(ValueError, match="name"):
        build_adaptive_case(AdaptiveCaseProblem("bad name", field, "dormand_prince_54", np.zeros(2), np.zeros(6), 1.0,
                                                np.zeros(2), 1e-3, 1e-3))
    with pytest.raises(ValueError, match="rtol"):
        build_adaptive_case(AdaptiveCaseProblem("ok", field, "dormand_prince_54", np.zeros(2), np.ones(6), 1.0,
                                                np.zeros(2), -1e-3, 1e-3))


def test_reuse_last_stage_is_part_of_the_problem():
    field = TanhField(2)
    theta = field.pack(np.array([[-0.6, -2.0], [2.0, -0.6]]), np.array([0.3, -0.2]))
    kw = dict(field=field, pair="heun_euler_21", x0=np.array([1.0, 0.5]), theta=theta, T=1.0, y=np.zeros(2),
              rtol=1e-3, atol=1e-3)
    a = build_adaptive_case(AdaptiveCaseProblem("a", **kw))
    b = build_adaptive_case(AdaptiveCaseProblem("b", reuse_last_stage="always", **kw))
    assert a.problem["reuse_last_stage"] == "fsal" and b.problem["reuse_last_stage"] == "always"
    assert not np.array_equal(a.arrays["trajectory"], b.arrays["trajectory"]) or a.arrays["loss"] != b.arrays["loss"]
    assert verify_case(b).passed


def test_library_convention_cases_name_their_convention(cases):
    """The quick battery carries diffrax-convention cases; the convention is stored in the problem section and every
    rule it implies is the problem's own (pair, controller, norm, first step, end, stage reuse)."""
    from refimpl.ode.conventions import CONVENTIONS

    lib = [c for c in cases if c.problem["convention"] is not None]
    assert len(lib) == 2 and all("diffrax" in c.metadata["description"] for c in lib)
    for case in lib:
        conv = CONVENTIONS.from_spec(case.problem["convention"])
        assert case.problem["h0"] == conv.h0 == conv.dt0  # dt0 given: the user passes it
        assert case.problem["pair"] == json.loads(json.dumps(conv.pair.to_spec()))
        assert case.problem["controller"]["accept"] == "lt" and case.problem["initial_step"] is None
        assert verify_case(case).passed
    assert all(c.problem["convention"] is None for c in cases if c not in lib)


def test_a_convention_that_disagrees_with_the_problem_is_refused(cases):
    case = next(c for c in cases if c.problem["convention"] is not None)
    for key, value in (("h0", 0.25), ("reuse_last_stage", "always")):
        meta = json.loads(json.dumps(case.metadata))
        meta["problem"][key] = value
        with pytest.raises(CaseFormatError, match=f"disagrees with problem.{key}"):
            type(case)(meta, case.arrays)
    meta = json.loads(json.dumps(case.metadata))
    meta["problem"]["controller"]["accept"] = "le"  # refimpl's acceptance r <= 1, not diffrax's r < 1
    with pytest.raises(CaseFormatError, match="disagrees with problem.controller"):
        type(case)(meta, case.arrays)
    meta = json.loads(json.dumps(case.metadata))
    meta["problem"]["convention"]["solver"] = "Tsit5"  # another tableau than the stored pair
    with pytest.raises(CaseFormatError, match="problem.pair"):
        type(case)(meta, case.arrays)


def test_conventions_the_format_cannot_store_are_refused():
    from refimpl.ode.conventions import convention

    field = TanhField(2)
    args = ("t", field, np.ones(2), np.ones(6), 1.0, np.zeros(2), 1e-3, 1e-3)
    with pytest.raises(ValueError, match="overshoot"):
        AdaptiveCaseProblem.from_convention(args[0], "torchdiffeq", *args[1:])
    # dt0=None: diffrax's own first step 0.01, a constant, is storable
    p = AdaptiveCaseProblem.from_convention(args[0], convention("diffrax"), *args[1:])
    assert p.h0 == 0.01 and p.convention.dt0 is None
