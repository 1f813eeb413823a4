"""Integrity of a case (docs/case-format.md § Integrity): a changed array, problem section or tolerance, a stored dtype
that is not the declared one, or an out-of-bound tolerance is refused by ``check`` with exit code 2 and a message that
names what was changed — never judged (the tampering of the issue used to PASS: a doubled ``discrete_gradient``, θ
shifted by +1, an inconsistent tableau, ``atol`` 1e300).

The expected SHA-256 values are recomputed here from the definition in the docs (hashlib on the documented bytes), not
by calling the code under test.
"""
import hashlib
import json
import shutil

import numpy as np
import pytest

from refimpl import cli
from refimpl.ode.fields import TanhField
from refimpl.oracle import CaseFormatError, load_case, save_case
from refimpl.oracle.case import integrity_of
from refimpl.oracle.ode_cases import OdeProblem, Sinusoid, build_case
from refimpl.oracle.safe_io import read_npz, write_npz


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory):
    case = build_case(OdeProblem("integrity-tanh-heun", TanhField(2), "heun", (0.6, -0.4), (0.2, 0.5), 1.0, 4,
                                 Sinusoid((0.5, -0.8, 0.9, 0.3, 0.1, -0.2), (0.3, 0.2, -0.4, 0.5, 0.2, 0.1), 2.0)))
    out = tmp_path_factory.mktemp("integrity") / "case"
    save_case(case, out)
    return out


def _copy(case_dir, tmp_path):
    dst = tmp_path / "case"
    shutil.copytree(case_dir, dst)
    return dst


def _own(case_dir, path):
    case = load_case(case_dir)
    np.savez(path, **{k: case.arrays[k] for k in case.references})
    return path


def _check_exit_2(capsys, case_dir, theirs, *must_contain):
    rc = cli.main(["check", str(case_dir), str(theirs)])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    for text in must_contain:
        assert text in err, err
    return err


def test_the_recorded_hashes_follow_the_documented_definition(case_dir):
    meta = json.loads((case_dir / "case.json").read_text())
    arrays = read_npz(case_dir / "arrays.npz", native=True)
    for name, a in arrays.items():
        header = f"{a.dtype.name}{tuple(a.shape)}\n".encode()
        assert meta["integrity"]["arrays"][name] == hashlib.sha256(header + a.astype(a.dtype.newbyteorder("<"))
                                                                   .tobytes()).hexdigest()
    for section in ("problem", "tolerances"):
        text = json.dumps(meta[section], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert meta["integrity"][section] == hashlib.sha256(text.encode()).hexdigest()


def test_every_array_changed_in_place_exits_2_naming_it(case_dir, tmp_path, capsys):
    theirs = _own(case_dir, tmp_path / "own.npz")
    names = sorted(read_npz(case_dir / "arrays.npz"))
    assert {"theta", "discrete_gradient", "x0", "stage_index"} <= set(names)
    for name in names:
        d = tmp_path / name
        shutil.copytree(case_dir, d)
        arrays = {k: np.array(v) for k, v in read_npz(d / "arrays.npz", native=True).items()}
        if arrays[name].dtype.kind == "f":  # the tampering of the issue: double a reference, shift an input by +1
            arrays[name] = 2 * arrays[name] + (1.0 if not np.any(arrays[name]) else 0.0)
            if name == "theta":
                arrays[name] = arrays[name] / 2 + 1.0
        else:
            arrays[name] = arrays[name][::-1].copy()  # index maps: same values, other order
        write_npz(d / "arrays.npz", arrays)
        _check_exit_2(capsys, d, theirs, f"array {name!r}", "integrity")


def test_problem_and_tolerance_edits_exit_2_naming_the_section(case_dir, tmp_path, capsys):
    theirs = _own(case_dir, tmp_path / "own.npz")
    edits = {
        "problem": lambda m: m["problem"]["loss"]["y"].__setitem__(0, 0.25),  # consistent, so only integrity sees it
        "tolerances": lambda m: m["tolerances"]["discrete_gradient"].update(rtol=1e-3),  # within the bounds
    }
    for section, edit in edits.items():
        d = tmp_path / section
        shutil.copytree(case_dir, d)
        meta = json.loads((d / "case.json").read_text())
        edit(meta)
        (d / "case.json").write_text(json.dumps(meta))
        _check_exit_2(capsys, d, theirs, f"the {section!r} section", "integrity")
    # an inconsistent tableau is refused by the kind's rules before integrity is looked at
    d = tmp_path / "tableau"
    shutil.copytree(case_dir, d)
    meta = json.loads((d / "case.json").read_text())
    meta["problem"]["scheme"]["c"].append("1")
    (d / "case.json").write_text(json.dumps(meta))
    _check_exit_2(capsys, d, theirs, "tableau")
    # no integrity section at all
    d = tmp_path / "none"
    shutil.copytree(case_dir, d)
    meta = json.loads((d / "case.json").read_text())
    del meta["integrity"]
    (d / "case.json").write_text(json.dumps(meta))
    _check_exit_2(capsys, d, theirs, "no integrity section")


@pytest.mark.parametrize("key, value, message", [
    ("atol", 1e300, "tolerances.discrete_gradient.atol"),  # passed a zero gradient before
    ("atol", 1.0, "tolerances.discrete_gradient.atol"),   # 1e-2·max|G| + 1e-6 < 1 for this case
    ("rtol", 0.5, "$.tolerances.discrete_gradient.rtol"),
])
def test_tolerances_beyond_the_bounds_are_refused_even_when_resealed(case_dir, tmp_path, capsys, key, value,
                                                                     message):
    d = _copy(case_dir, tmp_path)
    meta = json.loads((d / "case.json").read_text())
    arrays = read_npz(d / "arrays.npz", native=True)
    assert 1e-2 * np.max(np.abs(arrays["discrete_gradient"])) + 1e-6 < 1.0
    meta["tolerances"]["discrete_gradient"][key] = value
    meta["integrity"] = integrity_of(meta, arrays)  # an editor who re-hashes does not get past the bounds
    (d / "case.json").write_text(json.dumps(meta))
    zero = tmp_path / "zero.npz"
    np.savez(zero, discrete_gradient=np.zeros_like(arrays["discrete_gradient"]))
    _check_exit_2(capsys, d, zero, message)


def test_a_float32_reference_where_float64_is_declared_is_refused_before_any_cast(case_dir, tmp_path, capsys):
    d = _copy(case_dir, tmp_path)
    meta = json.loads((d / "case.json").read_text())
    arrays = {k: np.array(v) for k, v in read_npz(d / "arrays.npz", native=True).items()}
    arrays["discrete_gradient"] = arrays["discrete_gradient"].astype(np.float32)
    write_npz(d / "arrays.npz", arrays)
    meta["integrity"] = integrity_of(meta, arrays)  # even re-hashed, the declared dtype decides
    (d / "case.json").write_text(json.dumps(meta))
    with pytest.raises(CaseFormatError, match="'discrete_gradient' has dtype float32, declared float64"):
        load_case(d)
    _check_exit_2(capsys, d, _own(case_dir, tmp_path / "own.npz"), "float32")


def test_save_case_writes_no_temporary_files_and_round_trips(case_dir, tmp_path):
    case = load_case(case_dir)
    save_case(case, tmp_path / "again")
    assert sorted(p.name for p in (tmp_path / "again").iterdir()) == ["arrays.npz", "case.json"]
    assert load_case(tmp_path / "again").metadata == case.metadata
