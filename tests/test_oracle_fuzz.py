"""Fuzzing the case loaders and ``python -m refimpl check``: malformed JSON, mutated metadata, wrong shapes and dtypes,
NaN, huge declared sizes, corrupted archives, path tricks. The contract: ``cli.main`` *returns* 0/1/2 — bad input is
exit code 2 with one ``error: ...`` line on stderr — and never raises (no traceback, no crash).

For the foreign ``.npz`` fuzz the expected exit code is computed independently in the test from the rules of
:func:`refimpl.oracle.compare` (name, dtype, shape → 2; otherwise numpy.isclose with the case tolerance → 0 or 1).
"""
import copy
import io
import json
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refimpl import cli
from refimpl.ode.fields import TanhField
from refimpl.oracle import CaseFormatError, load_case, save_case
from refimpl.oracle.safe_io import ARRAY_NAME, read_json, read_npz
from refimpl.oracle.ode_cases import OdeProblem, Sinusoid, build_case

FUZZ = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory):
    case = build_case(OdeProblem("fuzz-tanh-heun", TanhField(2), "heun", (0.6, -0.4), (0.2, 0.5), 1.0, 4,
                                 Sinusoid((0.5, -0.8, 0.9, 0.3, 0.1, -0.2), (0.3, 0.2, -0.4, 0.5, 0.2, 0.1), 2.0)))
    out = tmp_path_factory.mktemp("fuzzcase") / "case"
    save_case(case, out)
    return out


@pytest.fixture(scope="module")
def case(case_dir):
    return load_case(case_dir)


def _write_members(path: Path, members: dict) -> Path:
    """A zip archive with exactly these member names and bytes (np.savez cannot write arbitrary names)."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, allow_pickle=True)
    return buf.getvalue()


def _check(capsys, *argv) -> int:
    rc = cli.main(["check", *[str(a) for a in argv]])
    captured = capsys.readouterr()
    assert rc in (0, 1, 2)
    assert "Traceback" not in captured.err
    if rc == 2:
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    return rc


def _copy_case(case_dir: Path, tmp: str) -> Path:
    dst = Path(tmp) / "case"
    shutil.copytree(case_dir, dst)
    return dst


def _own(case, path: Path) -> Path:
    np.savez(path, **{k: case.arrays[k] for k in case.references})
    return path


# ---------------------------------------------------------------------------------------------------------------------
# case.json


@FUZZ
@given(raw=st.one_of(st.binary(max_size=600), st.text(max_size=600).map(str.encode)))
def test_random_bytes_as_case_json_exit_2(case_dir, case, capsys, raw):
    with tempfile.TemporaryDirectory() as tmp:
        d = _copy_case(case_dir, tmp)
        (d / "case.json").write_bytes(raw)
        assert _check(capsys, d, _own(case, Path(tmp) / "own.npz")) == 2


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-10 ** 30, 10 ** 30)
                           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                        max_size=4),
                           max_leaves=10)


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, prefix + (i,))


@FUZZ
@given(data=st.data())
def test_mutated_metadata_loads_cleanly_or_exits_2(case_dir, case, capsys, data):
    meta = copy.deepcopy(case.metadata)
    paths = [p for p in _paths(meta) if p]
    path = data.draw(st.sampled_from(paths), label="path")
    action = data.draw(st.sampled_from(["replace", "delete", "add"]), label="action")
    parent = meta
    for k in path[:-1]:
        parent = parent[k]
    if action == "replace":
        parent[path[-1]] = data.draw(JSON_VALUES, label="value")
    elif action == "delete":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[data.draw(st.text(max_size=10), label="key")] = data.draw(JSON_VALUES, label="value")
    else:
        parent.append(data.draw(JSON_VALUES, label="value"))
    with tempfile.TemporaryDirectory() as tmp:
        d = _copy_case(case_dir, tmp)
        (d / "case.json").write_text(json.dumps(meta))
        rc = _check(capsys, d, _own(case, Path(tmp) / "own.npz"))
        if rc != 2:  # the mutation was harmless (a description, a y value ...): the case is still well formed
            assert rc == 0
            load_case(d)
        else:
            with pytest.raises(CaseFormatError):
                load_case(d)


@pytest.mark.parametrize("text", [
    '{"format": NaN}', '{"a": Infinity}', '{"a": -Infinity}', '{"a": 1e999}', "[" * 100000 + "]" * 100000,
    '{"a": ' + "9" * 5000 + "}", '{"a": "\\ud800"}', "\ufeff{}", "",
])
def test_hostile_json_text_is_a_clean_error(tmp_path, text):
    p = tmp_path / "case.json"
    p.write_text(text, encoding="utf-8", errors="surrogatepass")
    with pytest.raises(CaseFormatError):
        meta = read_json(p)
        load_case_from(meta)


def load_case_from(meta):
    from refimpl.oracle import Case
    return Case(meta, {})


def test_huge_json_is_refused_before_parsing(tmp_path):
    p = tmp_path / "case.json"
    p.write_bytes(b" " * (5 * 2 ** 20) + b"{}")
    with pytest.raises(CaseFormatError, match="larger than"):
        read_json(p)


# ---------------------------------------------------------------------------------------------------------------------
# the foreign .npz


def _expected_code(case, arrays: dict) -> int:
    """The exit code by the rules in compare's docstring, computed here independently."""
    refs = case.references
    for name, a in arrays.items():
        if not ARRAY_NAME.fullmatch(name) or name not in refs:
            return 2
        if a.dtype.kind not in "fiu" or a.dtype.itemsize > 8 or a.shape != case.arrays[name].shape:
            return 2
    if not arrays:
        return 2
    for name, a in arrays.items():
        tol = case.tolerances[name]
        if not np.all(np.isclose(a.astype(np.float64), case.arrays[name], rtol=tol["rtol"], atol=tol["atol"])):
            return 1
    return 0


@st.composite
def foreign_arrays(draw, case):
    names = draw(st.lists(st.sampled_from(case.references) | st.sampled_from(["", "../x", "a/b", "Theta", "x" * 70,
                                                                              "gradient"]),
                          min_size=1, max_size=4, unique=True))
    out = {}
    for name in names:
        ref = case.arrays.get(name)
        kind = draw(st.sampled_from(["exact", "perturbed", "nan", "shape", "dtype"]))
        if ref is None or kind == "shape":
            shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5))
            out[name] = draw(hnp.arrays(np.float64, shape, elements=st.floats(-1e3, 1e3)))
        elif kind == "dtype":
            dt = draw(st.sampled_from([np.complex128, np.bool_, np.float32, np.int64, np.float16, np.uint8]))
            out[name] = np.asarray(ref).astype(dt)
        else:
            a = np.array(ref)
            if a.size and kind != "exact":
                i = draw(st.integers(0, a.size - 1))
                a.reshape(-1)[i] = np.nan if kind == "nan" else a.reshape(-1)[i] * (1 + draw(st.floats(1e-12, 1e-3)))
            out[name] = a
    return out


@FUZZ
@given(data=st.data())
def test_foreign_npz_exit_code_follows_the_rules(case_dir, case, capsys, data):
    arrays = data.draw(foreign_arrays(case))
    with tempfile.TemporaryDirectory() as tmp:
        theirs = _write_members(Path(tmp) / "t.npz", {f"{k}.npy": _npy_bytes(v) for k, v in arrays.items()})
        assert _check(capsys, case_dir, theirs) == _expected_code(case, arrays)


@FUZZ
@given(data=st.data())
def test_corrupted_archives_never_crash(case_dir, case, capsys, data):
    with tempfile.TemporaryDirectory() as tmp:
        good = _own(case, Path(tmp) / "own.npz").read_bytes()
        raw = bytearray(good)
        how = data.draw(st.sampled_from(["truncate", "flip", "splice"]))
        if how == "truncate":
            raw = raw[:data.draw(st.integers(0, len(raw) - 1))]
        elif how == "flip":
            for _ in range(data.draw(st.integers(1, 8))):
                i = data.draw(st.integers(0, len(raw) - 1))
                raw[i] = data.draw(st.integers(0, 255))
        else:
            i = data.draw(st.integers(0, len(raw)))
            raw[i:i] = data.draw(st.binary(min_size=1, max_size=64))
        theirs = Path(tmp) / "t.npz"
        theirs.write_bytes(bytes(raw))
        _check(capsys, case_dir, theirs)
        # the same corruption in the case's own arrays.npz
        d = _copy_case(case_dir, tmp)
        (d / "arrays.npz").write_bytes(bytes(raw))
        rc = _check(capsys, d, _own(case, Path(tmp) / "own2.npz"))
        assert rc in (0, 2)  # own arrays either load intact (0) or the case is refused (2)


def _raw_npy(header: dict, data: bytes) -> bytes:
    """A version-1.0 .npy member with an arbitrary header (np.save would refuse to write a lying header)."""
    text = repr(header).encode("latin1")
    pad = 64 - (10 + len(text) + 1) % 64
    text = text + b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + data


@pytest.mark.parametrize("shape", [(10 ** 15,), (2 ** 62, 2 ** 62), (10 ** 6, 10 ** 6, 10 ** 6), (3, 2)])
def test_huge_declared_shapes_are_refused_without_allocating(tmp_path, case_dir, capsys, shape):
    theirs = _write_members(tmp_path / "h.npz", {"trajectory.npy": _raw_npy(
        {"descr": "<f8", "fortran_order": False, "shape": shape}, b"\0" * 16)})
    with pytest.raises(CaseFormatError, match="declares|bytes of array data"):
        read_npz(theirs)
    assert _check(capsys, case_dir, theirs) == 2


def test_size_limit_counts_uncompressed_bytes(tmp_path):
    path = tmp_path / "z.npz"
    np.savez_compressed(path, trajectory=np.zeros(100_000))  # 800 kB of zeros deflate to ~1 kB
    assert path.stat().st_size < 10_000
    with pytest.raises(CaseFormatError, match="bytes of array data"):
        read_npz(path, max_bytes=100_000)
    assert read_npz(path)["trajectory"].shape == (100_000,)


@pytest.mark.parametrize("member", ["../evil.npy", "/abs.npy", "a/../b.npy", "sub/x.npy", "x.npy/", "x.txt", "X.npy",
                                    "trajectory.npy\\..", "trajectory"])
def test_member_path_tricks_are_refused_and_nothing_is_extracted(tmp_path, case_dir, capsys, member):
    work = tmp_path / "work"
    work.mkdir()
    theirs = _write_members(work / "t.npz", {member: _npy_bytes(np.zeros(3))})
    before = sorted(p for p in tmp_path.rglob("*"))
    assert _check(capsys, case_dir, theirs) == 2
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_object_and_structured_dtypes_are_refused(tmp_path, case_dir, capsys):
    for i, a in enumerate([np.array([None, 1], dtype=object), np.zeros(2, dtype=[("a", "<f8"), ("b", "<i4")]),
                           np.array(["ab", "cd"]), np.zeros(2, dtype="<f16") if hasattr(np, "float128") else
                           np.zeros(2, dtype="<c8")]):
        theirs = _write_members(tmp_path / f"o{i}.npz", {"trajectory.npy": _npy_bytes(a)})
        assert _check(capsys, case_dir, theirs) == 2


def test_path_tricks_on_the_command_line(tmp_path, case_dir, case, capsys):
    own = _own(case, tmp_path / "own.npz")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    weird = tmp_path / "weird"
    weird.mkdir()
    (weird / "case.json").mkdir()  # a directory where the file should be
    for bad_case in (tmp_path / "missing", own, loop, weird, Path(""), "a\x00b", case_dir / ".." / "nothing"):
        assert _check(capsys, bad_case, own) == 2
    for bad_theirs in (tmp_path, loop, "a\x00b", tmp_path / "missing.npz", case_dir / "case.json"):
        assert _check(capsys, case_dir, bad_theirs) == 2
    # a symlinked case directory is an ordinary way to point at a case: it works
    link = tmp_path / "link"
    link.symlink_to(case_dir, target_is_directory=True)
    assert _check(capsys, link, own) == 0


@FUZZ
@given(argv=st.lists(st.text(max_size=12), max_size=4))
def test_random_check_arguments_exit_2(capsys, argv):
    argv = [a for a in argv if not a.startswith("-") or a in ("--json", "--help", "-h")]
    rc = cli.main(["check", *argv])
    out = capsys.readouterr()
    assert rc == 2 or (rc == 0 and ("--help" in argv or "-h" in argv)), (argv, out)
    assert "Traceback" not in out.err


@pytest.fixture(scope="module")
def wasserstein_case_dir(tmp_path_factory):
    from refimpl.oracle.wasserstein_cases import WassersteinProblem, build_wasserstein_case
    terms = ({"kind": "kl_to_gaussian", "mean": [0.0, 0.0], "cov": [[1.0, 0.2], [0.2, 0.7]], "bandwidth": 0.4},
             {"kind": "quadratic_interaction", "B": [[0.5, 0.1], [0.1, 0.3]]})
    case = build_wasserstein_case(WassersteinProblem("fuzz-w", terms, "particles", "forward_euler", 0.05, 2,
                                                     (1.0, -0.5), ((1.0, 0.3), (0.3, 0.5)), n=8, seed=1))
    out = tmp_path_factory.mktemp("fuzzw") / "case"
    save_case(case, out)
    return out


@FUZZ
@given(data=st.data())
def test_mutated_wasserstein_metadata_loads_cleanly_or_exits_2(wasserstein_case_dir, capsys, data):
    test_mutated_metadata_loads_cleanly_or_exits_2.hypothesis.inner_test(
        wasserstein_case_dir, load_case(wasserstein_case_dir), capsys, data)
