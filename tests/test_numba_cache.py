"""A read-only install with a read-only $HOME (NUMBA_CACHE_DIR unset): refimpl imports, compiles its kernels in memory
with exactly one NumbaCacheWarning (refimpl.numba_cache), and computes the same numbers as the cached build.

The subprocess runs a copy of the package in which neither of Numba's cache locations can be written: each package
folder of the copy holds a *file* named ``__pycache__`` (so ``os.makedirs`` fails even for root, whom permission bits
do not stop) and is made read-only, and HOME is a read-only folder whose ``.cache`` is a file.
"""
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import warnings, sys
import numpy as np
warnings.simplefilter("always")
full = sys.argv[1] == "full"
with warnings.catch_warnings(record=True) as caught:
    import refimpl.wasserstein                       # decorated at import: failed here before
    from refimpl import numba_cache
    from refimpl.wasserstein import _numba as wk
    from refimpl.ode._numba import sweeps
    from refimpl.ode.fields import QuadraticLoss, TanhField
    sweeps(TanhField(2).kernel)                      # the ODE sweeps decorated (compiled lazily, on first call)
    X = np.array([[0.0, 0.5], [1.0, -0.25], [0.3, 0.2]])
    out = [wk.gaussian_interaction_gradient(X, 0.7, 1.3).ravel().tolist()]
    if full:                                         # the ~20 s compile of the ODE sweeps, in memory
        from refimpl.ode.adjoint_recursions import discrete_adjoint
        from refimpl.ode.schemes import FORWARD_EULER
        theta = np.linspace(-0.5, 0.5, 16 * 6).reshape(16, 6)
        da = discrete_adjoint(TanhField(2), FORWARD_EULER, np.array([0.3, -0.2]), theta, 1.0, 16,
                              QuadraticLoss(np.zeros(2)), layout="stage", backend="numba")
        out.append(np.asarray(da.grad_theta).ravel()[:5].tolist())
mine = [w for w in caught if issubclass(w.category, numba_cache.NumbaCacheWarning)]
print(len(mine), numba_cache.caching_enabled(), repr(out))
print(refimpl.wasserstein.__file__)
"""


def _blocked_copy(root: Path) -> Path:
    dst = root / "site" / "refimpl"
    shutil.copytree(REPO / "refimpl", dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), symlinks=True)
    for folder in [dst, *[p for p in dst.rglob("*") if p.is_dir()]]:
        (folder / "__pycache__").write_text("not a directory: Numba's in-tree cache cannot go here")
    return dst.parent


def _make_read_only(path: Path) -> None:
    for p in sorted(path.rglob("*"), reverse=True) + [path]:
        if p.is_symlink():
            continue
        mode = p.stat().st_mode
        p.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _run(site: Path, home: Path, mode: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site), "HOME": str(home), "PYTHONDONTWRITEBYTECODE": "1",
           "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, env=env, timeout=600,
                          cwd=str(home))


def _expected(full: bool) -> str:
    """What this process (with its own cache, or not) computes: the kernels are the same code either way."""
    import numpy as np
    from refimpl.wasserstein import _numba as wk
    X = np.array([[0.0, 0.5], [1.0, -0.25], [0.3, 0.2]])
    out = [wk.gaussian_interaction_gradient(X, 0.7, 1.3).ravel().tolist()]
    if full:
        from refimpl.ode.adjoint_recursions import discrete_adjoint
        from refimpl.ode.fields import QuadraticLoss, TanhField
        from refimpl.ode.schemes import FORWARD_EULER
        theta = np.linspace(-0.5, 0.5, 16 * 6).reshape(16, 6)
        da = discrete_adjoint(TanhField(2), FORWARD_EULER, np.array([0.3, -0.2]), theta, 1.0, 16,
                              QuadraticLoss(np.zeros(2)), layout="stage", backend="numba")
        out.append(np.asarray(da.grad_theta).ravel()[:5].tolist())
    return repr(out)


def _read_only_run(mode: str):
    root = Path(tempfile.mkdtemp(prefix="refimpl-ro-"))
    try:
        site = _blocked_copy(root)
        home = root / "home"
        home.mkdir()
        (home / ".cache").write_text("not a directory: Numba's user-wide cache cannot go here")
        _make_read_only(site)
        _make_read_only(home)
        run = _run(site, home, mode)
        assert run.returncode == 0, run.stderr
        assert "Traceback" not in run.stderr
        first, where = run.stdout.strip().splitlines()
        assert where.startswith(str(site))  # the read-only copy was the one imported
        n_warnings, enabled, numbers = first.split(" ", 2)
        assert (n_warnings, enabled) == ("1", "False"), run.stdout + run.stderr  # exactly one warning
        assert run.stderr.count("NumbaCacheWarning") == 0  # recorded by the script, not printed twice
        return numbers
    finally:
        for p in [root, *root.rglob("*")]:
            if not p.is_symlink():
                p.chmod(p.stat().st_mode | stat.S_IWUSR)
        shutil.rmtree(root, ignore_errors=True)


def test_no_writable_cache_directory_compiles_in_memory_with_one_warning():
    assert _read_only_run("light") == _expected(full=False)


@pytest.mark.slow
def test_the_ode_sweeps_compiled_in_memory_give_the_cached_numbers():
    assert _read_only_run("full") == _expected(full=True)


def test_njit_cached_refuses_a_cache_argument():
    from refimpl.numba_cache import njit_cached
    with pytest.raises(TypeError, match="cache"):
        njit_cached(cache=False)


FRESHNESS_SCRIPT = r"""
import numpy as np
from refimpl.wasserstein import _numba as wk
X = np.linspace(-1.0, 1.0, 40).reshape(20, 2)
print(wk.gaussian_interaction_gradient(X, 1.0, 0.8, "polynomial").tobytes().hex())
"""


@pytest.mark.slow  # three fresh processes, two of them compiling the pair kernels (≈ 1 min)
def test_a_change_to_an_inlined_module_recompiles_the_cached_kernels(tmp_path):
    """The pair kernels of refimpl/wasserstein/_numba.py inline the exp of refimpl/numerics/polynomial_exp.py. On a
    copy of the package: run once (kernels cached), change only the exp's module (the exp becomes e^{x/2}), run again:
    the result must be the new arithmetic — the same bits as a run from an empty cache — not the cached old one."""
    copy = tmp_path / "refimpl"
    shutil.copytree(REPO / "refimpl", copy, ignore=shutil.ignore_patterns("__pycache__"))

    def run():
        out = subprocess.run([sys.executable, "-c", FRESHNESS_SCRIPT], cwd=tmp_path, capture_output=True, text=True,
                             env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(tmp_path)},
                             timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout.strip()

    before = run()
    assert list((copy / "wasserstein" / "__pycache__").glob("_numba.*.nbi")), "the first run cached no kernel"
    source = copy / "numerics" / "polynomial_exp.py"
    text = source.read_text(encoding="utf-8")
    start = text.index("def polynomial_exp(x):")  # the compiled exp (its pure-Python twin has the same line)
    anchor = "    x = _X_LOW if x < _X_LOW else x\n"
    body = text[start:].replace(anchor, "    x = 0.5 * x\n" + anchor, 1)
    assert body != text[start:]
    source.write_text(text[:start] + body, encoding="utf-8")
    after = run()
    for folder in copy.rglob("__pycache__"):
        shutil.rmtree(folder)
    fresh = run()
    assert after == fresh != before
