"""The oracle face (docs/case-format.md): the battery of cases, their numbers against independent routes, ``compare``
and the CLI.

Independent routes used here (none of them is the code that produced the case):
* the discrete gradient against the complex-step gradient of the discrete loss (exact to rounding: no subtraction);
* the trajectory and loss against a from-scratch NumPy integrator in this file that reads *only* case.json and the
  input arrays (what a foreign implementation has);
* analytic cases: the closed-form continuous gradient against SciPy DOP853 through ``continuous_adjoint``;
* the phenomenon of [A]: the leapfrog normalised gradient is O(1) away from the continuous gradient, forward Euler's
  O(h) (docs/theory/oscillations-and-corrections.md).
"""
import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from refimpl import cli
from refimpl.ad.checks import complex_step_gradient
from refimpl.problems import analytic_ode as analytic
from refimpl.ode.adjoint_ode import continuous_adjoint
from refimpl.ode.integrators import discrete_loss
from refimpl.oracle import Case, CaseFormatError, compare, load_case, save_case
from refimpl.oracle.battery import battery, export_battery
from refimpl.oracle.ode_cases import (OdeProblem, Sinusoid, build_case, field_from_spec, field_spec,
                                      problem_objects)
from refimpl.oracle.safe_io import read_npz, write_npz

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def battery_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("battery")
    names = export_battery(out)
    return out, names


def _own_npz(case: Case, path: Path, **changes) -> Path:
    arrays = {k: np.array(case.arrays[k]) for k in case.references}
    arrays.update(changes)
    np.savez(path, **arrays)
    return path


# ---------------------------------------------------------------------------------------------------------------------
# the battery


def test_battery_covers_every_named_scheme_layout_field_and_analytic_case(battery_dir):
    out, names = battery_dir
    from refimpl.ode import schemes
    index = json.loads((out / "index.json").read_text())
    assert index["cases"] == names and len(set(names)) == len(names)
    # the README is docs/case-format.md, byte for byte (test_exported_readme_is_the_case_format_doc)
    assert (out / "README.md").read_bytes() == (REPO / "docs" / "case-format.md").read_bytes()
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(names)
    for field in ("tanh-d2", "linear-d2", "twolayer-d2h3", "poly-d2"):
        for scheme in schemes.TABLEAUX:
            for layout in ("stage", "step"):
                assert f"{field}__{scheme}__{layout}__N16" in names
        for scheme in schemes.MULTISTEP_METHODS:
            for starter in ("fe", "matched"):
                for layout in ("stage", "step"):
                    assert f"{field}__{scheme}-{starter}__{layout}__N16" in names
    for case in analytic.analytic_cases():
        assert any(n.startswith(f"analytic-{case.name}__") for n in names)
    assert sum(n.startswith("w-particles-") for n in names) >= 3 and sum(n.endswith("__rwcd") for n in names) >= 3
    assert sum(n.startswith("w-gaussian-") for n in names) >= 5
    # small: "a few MB" (the whole battery, metadata included)
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert total < 6 * 2 ** 20, total


def test_every_case_loads_and_passes_against_its_own_arrays(battery_dir):
    out, names = battery_dir
    for name in names:
        case = load_case(out / name)
        report = compare(case, {k: case.arrays[k] for k in case.references})
        assert report.passed and report.exit_code == 0
        assert all(q.max_abs_error == 0 for q in report.quantities)
        # the two routes agreed when the case was built (tape vs hand recursion ≤ 1e-13 relative;
        # docs/theory/discrete-adjoint.md)
        checks = case.metadata["provenance"]["route_checks"]
        if case.metadata["kind"] == "ode":
            assert max(checks[k] for k in ("discrete_gradient", "grad_x0", "trajectory")) <= 1e-13, (name, checks)
        else:
            assert all(v <= 1e-13 for v in checks.values()), (name, checks)


def test_export_is_deterministic(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    export_battery(a, quick=True)
    export_battery(b, quick=True)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files and files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f


def test_exported_readme_is_the_case_format_doc(tmp_path):
    """The exported README.md is docs/case-format.md byte for byte (shipped as refimpl/oracle/case-format.md), and
    the doc defines every array name of every built-in case kind."""
    from refimpl.oracle import CASE_KINDS
    from refimpl.oracle.battery import case_format_text

    doc = (REPO / "docs" / "case-format.md").read_bytes()
    assert case_format_text() == doc
    shipped = REPO / "refimpl" / "oracle" / "case-format.md"
    assert shipped.is_symlink() and shipped.resolve() == (REPO / "docs" / "case-format.md").resolve()
    export_battery(tmp_path / "x", quick=True)
    assert (tmp_path / "x" / "README.md").read_bytes() == doc
    text = doc.decode("utf-8")
    assert "SPEC" not in text
    for kind in ("ode", "wasserstein"):
        assert f'"kind": "{kind}"' in text
        for name in (*CASE_KINDS.get(kind).inputs, *CASE_KINDS.get(kind).references):
            assert f"`{name}`" in text, (kind, name)


def test_save_load_round_trip_is_exact(tmp_path):
    case = next(iter(battery(quick=True)))
    save_case(case, tmp_path / "c")
    again = load_case(tmp_path / "c")
    assert again.metadata == case.metadata
    assert set(again.arrays) == set(case.arrays)
    for k, v in case.arrays.items():
        assert again.arrays[k].dtype == v.dtype and again.arrays[k].shape == v.shape
        assert np.array_equal(again.arrays[k], v)


# ---------------------------------------------------------------------------------------------------------------------
# the reference numbers against independent routes


@pytest.mark.parametrize("name", ["tanh-d2__leapfrog-fe__stage__N16", "tanh-d2__ralston__stage__N16",
                                  "poly-d2__ab3-matched__step__N16", "twolayer-d2h3__rk4__stage__N16"])
def test_discrete_gradient_matches_complex_step_of_the_discrete_loss(battery_dir, name):
    case = load_case(battery_dir[0] / name)
    o = problem_objects(case)

    def loss(theta):
        return discrete_loss(o["field"], o["method"], o["x0"], theta, o["T"], o["N"], o["loss"], layout=o["layout"],
                             starter=o["starter"])
    cs = complex_step_gradient(loss, o["theta"])
    ref = case.arrays["discrete_gradient"]
    # complex step with eps = 1e-30 has no subtraction: exact to a few ulps of the (O(1)) entries
    assert np.max(np.abs(cs - ref)) <= 1e-13 * max(1.0, np.max(np.abs(ref)))
    assert compare(case, {"discrete_gradient": cs}).passed


def _rational(v):
    return Fraction(v) if isinstance(v, str) else Fraction(float(v))


def _foreign_integrator(meta: dict, x0: np.ndarray, theta: np.ndarray, stage_index, grid_index):
    """A from-scratch explicit integrator reading only case.json and the inputs, for the tanh field (what another
    implementation would write): ERK stages from the tableau, LMM with its starter."""
    p = meta["problem"]
    d, h, N = p["field"]["dim"], p["h"], p["N"]
    assert p["field"]["family"] == "tanh"

    def f(x, th):
        return np.tanh(th[:d * d].reshape(d, d) @ x + th[d * d:])

    def erk(tab, x, rows):
        A = [[float(_rational(v)) for v in r] for r in tab["A"]]
        b = [float(_rational(v)) for v in tab["b"]]
        k = []
        for i in range(len(b)):
            k.append(f(x + h * sum((A[i][j] * k[j] for j in range(i)), np.zeros(d)), theta[rows[i]]))
        return x + h * sum(bi * ki for bi, ki in zip(b, k))
    xs = [x0]
    sch = p["scheme"]
    if sch["family"] == "runge_kutta":
        for n in range(N):
            xs.append(erk(sch, xs[-1], stage_index[n]))
        return np.array(xs)
    alpha = [float(_rational(v)) for v in sch["alpha"]]
    beta = [float(_rational(v)) for v in sch["beta"]]
    k = len(alpha) - 1
    for n in range(k - 1):
        xs.append(erk(p["starter"], xs[-1], stage_index[n]))
    for n in range(N - k + 1):
        xs.append(-sum(alpha[j] * xs[n + j] for j in range(k))
                  + h * sum(beta[j] * f(xs[n + j], theta[grid_index[n + j]]) for j in range(k) if beta[j] != 0))
    return np.array(xs)


@pytest.mark.parametrize("name", ["tanh-d2__rk4__stage__N16", "tanh-d2__midpoint__step__N16",
                                  "tanh-d2__leapfrog-fe__stage__N16", "tanh-d2__ab4-matched__stage__N16"])
def test_a_foreign_integrator_reading_only_the_case_data_passes_check(battery_dir, name, tmp_path):
    case_dir = battery_dir[0] / name
    meta = json.loads((case_dir / "case.json").read_text())
    arrays = dict(np.load(case_dir / "arrays.npz", allow_pickle=False))
    xs = _foreign_integrator(meta, arrays["x0"], arrays["theta"], arrays["stage_index"], arrays.get("grid_index"))
    y = np.array(meta["problem"]["loss"]["y"])
    np.savez(tmp_path / "theirs.npz", trajectory=xs, loss=0.5 * np.sum((xs[-1] - y) ** 2))
    assert cli.main(["check", str(case_dir), str(tmp_path / "theirs.npz")]) == 0


@pytest.mark.parametrize("case", analytic.analytic_cases()[:4], ids=lambda c: c.name)
def test_analytic_closed_form_continuous_gradient_agrees_with_dop853(battery_dir, case):
    loaded = load_case(battery_dir[0] / f"analytic-{case.name}__rk4__stage__N16")
    times = loaded.sample_times
    res = continuous_adjoint(case.field, case.theta, case.x0, case.T, case.loss, times=times, rtol=1e-12)
    ref = loaded.arrays["continuous_gradient"]
    # DOP853 at rtol 1e-12 with its own error bound (typically ~1e-12): far inside the case tolerance 1e-7
    assert np.max(np.abs(res.functional_gradient - ref)) <= 10 * res.error.functional_gradient + 1e-12
    assert compare(loaded, {"continuous_gradient": res.functional_gradient}).passed


def test_the_phenomenon_of_A_shows_in_the_cases(battery_dir):
    out = battery_dir[0]
    leap = load_case(out / "phenomenon-tanh-d2__leapfrog-fe__stage__N64")
    fe = load_case(out / "phenomenon-tanh-d2__forward_euler__stage__N64")
    # leapfrog: the normalised AD gradient oscillates around half of deltaL/deltatheta: O(1) error at every N
    r_leap = compare(leap, {"continuous_gradient": leap.arrays["normalised_gradient"]})
    assert not r_leap.passed and r_leap["continuous_gradient"].max_abs_error > 0.3
    # forward Euler (control): first order, error O(h) = O(1/64)
    r_fe = compare(fe, {"continuous_gradient": fe.arrays["normalised_gradient"]})
    assert r_fe["continuous_gradient"].max_abs_error < 0.02
    # the leapfrog correction (pair sum at midpoints) is O(h) too (its error is recorded in the provenance)
    note = [n for n in leap.metadata["provenance"]["notes"] if n.startswith("corrected_gradient")][0]
    assert float(note.split("= ")[1].split(" ")[0]) < 0.05


def test_field_and_scheme_specs_round_trip():
    for case in list(battery(quick=True))[:3]:
        o = problem_objects(case)
        assert field_spec(field_from_spec(case.problem["field"])) == case.problem["field"]
        assert o["method"].name == case.problem["scheme"]["name"]


def test_build_case_refuses_bad_problems():
    from refimpl.ode.fields import TanhField, UserField
    th = Sinusoid((0.1,) * 6, (0.2,) * 6, 1.0)
    good = dict(name="x", field=TanhField(2), method="rk4", x0=(0.1, 0.2), y=(0.0, 0.0), T=1.0, N=4, theta=th)
    with pytest.raises(TypeError, match="problem"):
        build_case("not a problem")
    with pytest.raises(ValueError, match="name"):
        build_case(OdeProblem(**{**good, "name": "../evil"}))
    with pytest.raises(ValueError, match="field"):
        build_case(OdeProblem(**{**good, "field": UserField(lambda x, t: x, 2, 6)}))
    with pytest.raises(ValueError, match="N"):
        build_case(OdeProblem(**{**good, "N": 0}))
    # the starter is part of the problem (docs/theory/explicit-schemes.md)
    with pytest.raises(ValueError, match="starter"):
        build_case(OdeProblem(**{**good, "method": "leapfrog"}))
    with pytest.raises(ValueError, match="starter"):
        build_case(OdeProblem(**{**good, "starter": "forward_euler"}))
    assert build_case(OdeProblem(**good)).N == 4


# ---------------------------------------------------------------------------------------------------------------------
# compare and the CLI


def test_check_passes_on_own_arrays_and_fails_naming_the_worst_index(battery_dir, tmp_path, capsys):
    case_dir = battery_dir[0] / "tanh-d2__leapfrog-fe__stage__N16"
    case = load_case(case_dir)
    assert cli.main(["check", str(case_dir), str(_own_npz(case, tmp_path / "own.npz"))]) == 0
    assert "PASS" in capsys.readouterr().out
    g = np.array(case.arrays["discrete_gradient"])
    g[5, 3] *= 1 + 1e-6  # a relative error far above rtol 1e-10
    bad = _own_npz(case, tmp_path / "bad.npz", discrete_gradient=g)
    assert cli.main(["check", str(case_dir), str(bad)]) == 1
    text = capsys.readouterr().out
    row = [line for line in text.splitlines() if "discrete_gradient" in line][0]
    assert row.startswith("FAIL") and "(5, 3)" in row
    assert cli.main(["check", str(case_dir), str(bad), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    q = {r["name"]: r for r in report["quantities"]}
    assert report["status"] == "mismatch" and q["discrete_gradient"]["worst_index"] == [5, 3]
    assert q["discrete_gradient"]["n_failing"] == 1 and q["trajectory"]["passed"]


def test_nan_in_their_array_is_a_mismatch_at_its_index(battery_dir):
    case = load_case(battery_dir[0] / "tanh-d2__rk4__stage__N16")
    traj = np.array(case.arrays["trajectory"])
    traj[7, 1] = np.nan
    r = compare(case, {"trajectory": traj})
    assert not r.passed and r["trajectory"].worst_index == (7, 1) and r["trajectory"].max_abs_error == np.inf
    json.loads(r.to_json())  # still valid JSON (non-finite numbers as strings)


def test_tolerance_overrides_for_float32_implementations(battery_dir):
    case = load_case(battery_dir[0] / "tanh-d2__rk4__stage__N16")
    g32 = case.arrays["discrete_gradient"].astype(np.float32)
    assert not compare(case, {"discrete_gradient": g32}).passed
    # float32 rounding of O(1) numbers: relative 6e-8 per entry
    loose = {"discrete_gradient": {"rtol": 1e-6, "atol": 1e-7}}
    assert compare(case, {"discrete_gradient": g32}, tolerances=loose).passed
    with pytest.raises(ValueError, match="tolerances"):
        compare(case, {"discrete_gradient": g32}, tolerances={"discrete_gradient": {"rtol": -1}})


def test_bad_input_exits_2_with_one_clean_line(battery_dir, tmp_path, capsys):
    case_dir = battery_dir[0] / "tanh-d2__rk4__stage__N16"
    case = load_case(case_dir)
    wrong_shape = _own_npz(case, tmp_path / "w.npz", discrete_gradient=np.zeros((3, 3)))
    unknown = tmp_path / "u.npz"
    np.savez(unknown, discrete_grad=case.arrays["discrete_gradient"])
    pickled = tmp_path / "p.npz"
    np.savez(pickled, discrete_gradient=np.array([{"a": 1}] * 3, dtype=object))
    not_zip = tmp_path / "n.npz"
    not_zip.write_text("hello")
    for theirs in (wrong_shape, unknown, pickled, not_zip, tmp_path / "missing.npz", tmp_path):
        assert cli.main(["check", str(case_dir), str(theirs)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert cli.main(["check", str(tmp_path / "nope"), str(wrong_shape), "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["status"] == "bad input"
    assert cli.main(["check"]) == 2  # usage error
    capsys.readouterr()
    (tmp_path / "file").write_text("x")
    assert cli.main(["cases", "export", str(tmp_path / "file")]) == 2


def test_object_arrays_are_refused_without_unpickling(tmp_path, monkeypatch):
    import pickle
    path = tmp_path / "p.npz"
    np.savez(path, theta=np.array([1, "x"], dtype=object))
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("unpickled"))
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("unpickled"))
    with pytest.raises(CaseFormatError, match="object arrays"):
        read_npz(path)


def test_python_m_refimpl_check_exit_codes(battery_dir, tmp_path):
    """The real command line, once per exit code (a subprocess: argparse, __main__ and sys.exit included)."""
    case_dir = battery_dir[0] / "tanh-d2__heun__step__N16"
    case = load_case(case_dir)
    own = _own_npz(case, tmp_path / "own.npz")
    bad = _own_npz(case, tmp_path / "bad.npz", loss=np.array(case.arrays["loss"] + 1e-3))
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"PK\x03\x04 garbage")

    def run(*args):
        return subprocess.run([sys.executable, "-m", "refimpl", *args], cwd=tmp_path, capture_output=True, text=True,
                              env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=120)
    ok, mismatch, broken = run("check", str(case_dir), str(own)), run("check", str(case_dir), str(bad)), \
        run("check", str(case_dir), str(junk))
    assert (ok.returncode, mismatch.returncode, broken.returncode) == (0, 1, 2), (ok.stderr, mismatch.stderr,
                                                                                  broken.stderr)
    assert "Traceback" not in broken.stderr and broken.stderr.startswith("error:")


def test_write_npz_output_is_a_standard_npz(tmp_path):
    arrays = {"a": np.arange(6.0).reshape(2, 3), "b": np.asarray(2.5), "c": np.arange(3, dtype=np.int64)}
    write_npz(tmp_path / "x.npz", arrays)
    with np.load(tmp_path / "x.npz", allow_pickle=False) as z:
        for k, v in arrays.items():
            assert z[k].shape == v.shape and np.array_equal(z[k], v)
    got = read_npz(tmp_path / "x.npz")
    assert got["b"].shape == () and got["c"].dtype == np.int64
