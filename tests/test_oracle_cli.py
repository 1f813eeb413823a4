"""The command line's messages and exit codes (docs/case-format.md § Exit codes): what a user who mistypes gets told,
--verify, exit 3 for a crash of refimpl (never 1), the one-line Numba announcement, and the help text."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from refimpl import cli
from refimpl.ode.fields import TanhField
from refimpl.oracle import load_case, save_case
from refimpl.oracle.case import integrity_of
from refimpl.oracle.ode_cases import OdeProblem, Sinusoid, build_case
from refimpl.oracle.safe_io import read_npz

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """A small export root: two cases and an index.json, as `cases export` writes it."""
    root = tmp_path_factory.mktemp("export")
    names = []
    for method in ("heun", "rk4"):
        case = build_case(OdeProblem(f"cli-tanh-{method}", TanhField(2), method, (0.6, -0.4), (0.2, 0.5), 1.0, 4,
                                     Sinusoid((0.5, -0.8, 0.9, 0.3, 0.1, -0.2), (0.3, 0.2, -0.4, 0.5, 0.2, 0.1), 2.0)))
        save_case(case, root / case.name)
        names.append(case.name)
    (root / "index.json").write_text(json.dumps({"format": "refimpl-case-index", "cases": names}))
    return root, names


@pytest.fixture(scope="module")
def own(export, tmp_path_factory):
    root, names = export
    case = load_case(root / names[0])
    path = tmp_path_factory.mktemp("own") / "own.npz"
    np.savez(path, **{k: case.arrays[k] for k in case.references})
    return path


def _err(capsys, *argv, code=2):
    rc = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    assert rc == code, (rc, out.err)
    if code == 2:
        assert out.err.startswith("error: ") and len(out.err.strip().splitlines()) == 1 and "Traceback" not in out.err
    return out.err


def test_the_export_root_is_recognised_and_the_message_says_what_to_type(export, own, capsys):
    root, names = export
    err = _err(capsys, "check", root, own)
    assert "export root" in err and f"{root / names[0]}" in err and "index.json" in err
    err = _err(capsys, "check", root / "cli-tanh-rk5", own)  # a typo: the close names are offered
    assert "no such case" in err and "cli-tanh-rk4" in err


def test_directories_fifos_and_devices_as_theirs_are_named_as_such(export, tmp_path, capsys):
    case_dir = export[0] / export[1][0]
    assert "is a directory" in _err(capsys, "check", case_dir, tmp_path)
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    assert "is a FIFO" in _err(capsys, "check", case_dir, fifo)  # and does not block reading it
    assert "is a character device" in _err(capsys, "check", case_dir, "/dev/null")
    assert "no such file" in _err(capsys, "check", case_dir, tmp_path / "missing.npz")


def test_capitalised_or_unknown_names_get_the_valid_names(export, tmp_path, capsys):
    case_dir = export[0] / export[1][0]
    case = load_case(case_dir)
    caps = tmp_path / "caps.npz"
    np.savez(caps, Discrete_Gradient=case.arrays["discrete_gradient"])
    err = _err(capsys, "check", case_dir, caps)
    assert "'discrete_gradient'?" in err and all(n in err for n in case.references)
    typo = tmp_path / "typo.npz"
    np.savez(typo, discrete_grad=case.arrays["discrete_gradient"])
    err = _err(capsys, "check", case_dir, typo)
    assert "discrete_grad" in err and all(n in err for n in case.references)


def test_verify_recomputes_the_references_before_judging(export, own, tmp_path, capsys):
    root, names = export
    assert cli.main(["check", str(root / names[0]), str(own), "--verify"]) == 0
    assert capsys.readouterr().out.startswith("verified: ")
    # an edit that keeps the case well formed and re-hashed (integrity cannot see it): only recomputation can
    bad = tmp_path / "bad"
    import shutil
    shutil.copytree(root / names[0], bad)
    meta = json.loads((bad / "case.json").read_text())
    meta["problem"]["loss"]["y"][0] = 0.25
    meta["integrity"] = integrity_of(meta, read_npz(bad / "arrays.npz", native=True))
    (bad / "case.json").write_text(json.dumps(meta))
    assert cli.main(["check", str(bad), str(own)]) in (0, 1)  # judged against the edited references: no error
    capsys.readouterr()
    err = _err(capsys, "check", bad, own, "--verify")
    assert "--verify" in err and "'trajectory'" not in err and "is not what refimpl computes" in err
    assert cli.main(["check", str(bad), str(own), "--verify", "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["status"] == "bad input"


def test_an_internal_error_exits_3_with_the_traceback_in_a_named_file(export, own, capsys, monkeypatch, tmp_path):
    import refimpl.oracle.comparison as comparison

    def broken(*args, **kwargs):
        raise RuntimeError("a bug inside refimpl")
    monkeypatch.setattr(comparison, "compare", broken)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    rc = cli.main(["check", str(export[0] / export[1][0]), str(own), "--json"])
    out = capsys.readouterr()
    assert rc == 3
    assert "internal error in refimpl" in out.err and "not a verdict on your implementation" in out.err
    report = json.loads(out.out)
    path = Path(report["traceback_file"])
    assert report["status"] == "internal error" and path.parent == tmp_path and str(path) in out.err
    text = path.read_text()
    assert "Traceback" in text and "RuntimeError: a bug inside refimpl" in text and "command: python -m refimpl" in text


def test_python_m_refimpl_exit_3_in_a_subprocess(export, own, tmp_path):
    """A crash in a real process (the comparison module replaced by one that raises): exit 3, not 1, no traceback on
    stderr, the file named."""
    fake = tmp_path / "fake"
    (fake / "sitecustomize_dir").mkdir(parents=True)
    (fake / "sitecustomize_dir" / "sitecustomize.py").write_text(
        "import refimpl.oracle.comparison as c\n"
        "def compare(*a, **k):\n    raise KeyError('boom')\n"
        "c.compare = compare\n")
    env = {"PYTHONPATH": f"{fake / 'sitecustomize_dir'}:{REPO}", "PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path)}
    run = subprocess.run([sys.executable, "-m", "refimpl", "check", str(export[0] / export[1][0]), str(own)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 3, run.stderr
    assert "Traceback" not in run.stderr and "KeyError" in run.stderr
    files = list(tmp_path.glob("refimpl-crash-*.txt"))
    assert len(files) == 1 and str(files[0]) in run.stderr


def test_verify_announces_the_numba_compile_once_on_stderr(export, own, capsys, monkeypatch):
    from refimpl.oracle import commands
    monkeypatch.setattr(commands, "_ANNOUNCED", False)
    root, names = export
    for name in names:
        assert cli.main(["check", str(root / name), str(own if name == names[0] else own), "--verify"]) in (0, 2)
    err = capsys.readouterr().err
    assert err.count("loading Numba kernels (compiled on first use") == 1


def test_check_help_explains_both_arguments_tolerances_and_exit_codes(capsys):
    assert cli.main(["check", "--help"]) == 0
    text = capsys.readouterr().out
    for needle in ("CASE_DIR", "THEIRS.npz", "export root", "index.json", "numpy.savez", "discrete_gradient",
                   "lower case", "float32", "--rtol", "--atol", "--precision", "--verify", "atol + rtol*|ref|",
                   "exit codes:", "130"):
        assert needle in text, needle
    for code in ("0", "1", "2", "3"):
        assert f"\n  {code}    " in text
