"""Numba's on-disk cache under concurrent first compiles (refimpl/sweep/numba_cache.py): several processes started at
the same moment with a fresh NUMBA_CACHE_DIR compile under the cache lock one after the other, every one gets correct
results, and a later process loads every signature from the cache without compiling or writing anything."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

KERNEL = '''
from numba import njit


@njit(cache=True)
def affine(x):
    return 2 * x + 1
'''

# Each child waits for a common start time, then compiles three signatures of `affine` (rotated, so different
# processes want different signatures first: the case where an unlocked cache can mix up data files) inside the lock,
# and prints the lock's enter/exit times and its results.
CHILD = '''
import sys, time
sys.path[:0] = [{folder!r}, {repo!r}]
from refimpl.sweep.numba_cache import cache_lock
start, k = float(sys.argv[1]), int(sys.argv[2])
args = [3, 2.5, 1 + 2j]
args = args[k % 3:] + args[:k % 3]
while time.time() < start:
    time.sleep(0.005)
with cache_lock():
    t_in = time.time()
    import kern
    out = {{repr(a): kern.affine(a) for a in args}}
    t_out = time.time()
print(repr((t_in, t_out, out)))
'''

CHECK = '''
import sys
sys.path[:0] = [{folder!r}]
import kern
out = {{repr(a): kern.affine(a) for a in (3, 2.5, 1 + 2j)}}
stats = kern.affine.stats
print(repr((out, sum(stats.cache_hits.values()), sum(stats.cache_misses.values()))))
'''


def cache_files(folder: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".lock")}


def test_concurrent_first_compiles_take_turns_and_fill_the_cache_once(tmp_path):
    (tmp_path / "kern.py").write_text(KERNEL)
    cache = tmp_path / "numba-cache"
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    start = time.time() + 3.0  # after every child has imported numba
    children = [subprocess.Popen([sys.executable, "-c", CHILD.format(folder=str(tmp_path), repo=str(REPO)),
                                  repr(start), str(k)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True) for k in range(3)]
    runs = []
    for child in children:
        out, err = child.communicate(timeout=300)
        assert child.returncode == 0, err
        runs.append(eval(out.strip()))
    expected = {"3": 7, "2.5": 6.0, "(1+2j)": (3 + 4j)}  # 2x + 1 by hand
    assert all(out == expected for _, _, out in runs)
    spans = sorted((t_in, t_out) for t_in, t_out, _ in runs)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), spans  # the lock held: no two compiles overlapped
    assert (cache / "refimpl-numba.lock").exists()
    before = cache_files(cache)
    assert before  # the index and the data files were written
    check = subprocess.run([sys.executable, "-c", CHECK.format(folder=str(tmp_path))], env=env, capture_output=True,
                           text=True, timeout=300)
    assert check.returncode == 0, check.stderr
    out, hits, misses = eval(check.stdout.strip())
    assert out == expected and (hits, misses) == (3, 0)  # every signature loaded from the cache
    assert cache_files(cache) == before  # and nothing rewritten


@pytest.mark.slow
def test_workers_warm_refimpl_kernels_concurrently_in_a_fresh_cache(tmp_path):
    """The real warm-up: three processes at once, fresh cache; then a fourth loads everything and writes nothing."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(REPO))
    code = "from refimpl.sweep.numba_cache import warm_kernels; warm_kernels()"
    children = [subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True)
                for _ in range(3)]
    for child in children:
        _, err = child.communicate(timeout=1200)
        assert child.returncode == 0, err
    before = cache_files(tmp_path / "cache")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=600)
    assert cache_files(tmp_path / "cache") == before
    print(f"warm from cache: {time.perf_counter() - t0:.1f} s")
