"""refimpl.oracle.verify: a case re-derived from its own description agrees with its arrays; a case whose JSON was
edited (loss target, θ path, seed) or whose inputs were altered is caught."""
import json

import numpy as np
import pytest

from refimpl.oracle import CaseFormatError, load_case, save_case
from refimpl.oracle.case import integrity_of
from refimpl.oracle.battery import battery
from refimpl.oracle.safe_io import read_npz, write_npz
from refimpl.oracle.verify import recompute, verify_case
from refimpl.oracle.wasserstein_cases import wasserstein_battery


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    out = tmp_path_factory.mktemp("verify")
    cases = [c for c in battery(quick=True) if "__N16" in c.name][::3] + list(wasserstein_battery())[::2]
    for c in cases:
        save_case(c, out / c.name)
    return out, [c.name for c in cases]


def test_saved_cases_verify(saved):
    out, names = saved
    assert any(n.startswith("analytic-") for n in names) and any(n.startswith("w-") for n in names)
    for name in names:
        report = verify_case(out / name)
        assert report.passed and not report.not_provided, report


def _edit(src, dst, change_meta=None, change_arrays=None, reseal=True):
    """A copy of the case with its metadata and/or arrays changed. ``reseal``: recompute the integrity section, as an
    editor who knows the format would — the edit is then well formed and only recomputation can catch it (without
    resealing, loading refuses it: tests/test_oracle_integrity.py)."""
    import shutil
    shutil.copytree(src, dst)
    meta = json.loads((dst / "case.json").read_text())
    arrays = {k: np.array(v) for k, v in read_npz(dst / "arrays.npz", native=True).items()}
    if change_meta:
        change_meta(meta)
    if change_arrays:
        change_arrays(arrays)
        write_npz(dst / "arrays.npz", arrays)
    if reseal:
        meta["integrity"] = integrity_of(meta, arrays)
    (dst / "case.json").write_text(json.dumps(meta))
    return dst


def test_an_edited_loss_target_is_caught(saved, tmp_path):
    out, names = saved
    name = [n for n in names if n.startswith("tanh-d2__")][0]
    unsealed = _edit(out / name, tmp_path / "u", reseal=False,
                     change_meta=lambda m: m["problem"]["loss"]["y"].__setitem__(0, 0.25))
    with pytest.raises(CaseFormatError, match="integrity: the 'problem' section"):
        load_case(unsealed)
    d = _edit(out / name, tmp_path / "c", change_meta=lambda m: m["problem"]["loss"]["y"].__setitem__(0, 0.25))
    report = verify_case(d)  # the case still loads (it is well formed) but is not what refimpl computes
    assert not report.passed and not report["loss"].passed and not report["discrete_gradient"].passed


@pytest.mark.parametrize("what", ["theta", "sample_times", "omega"])
def test_inputs_that_disagree_with_the_problem_are_refused(saved, tmp_path, what):
    out, names = saved
    name = [n for n in names if n.startswith("tanh-d2__")][0]
    if what == "omega":
        d = _edit(out / name, tmp_path / "c", change_meta=lambda m: m["problem"]["theta_function"].update(omega=2.5))
    else:
        def bump(arrays):
            arrays[what].reshape(-1)[1] += 1e-9
        d = _edit(out / name, tmp_path / "c", change_arrays=bump)
    with pytest.raises(CaseFormatError, match="input"):
        recompute(d)


def test_wasserstein_seed_and_energy_edits_are_caught(saved, tmp_path):
    out, names = saved
    name = [n for n in names if n.startswith("w-particles-")][0]
    d = _edit(out / name, tmp_path / "seed", change_meta=lambda m: m["problem"]["initial"].update(seed=8))
    with pytest.raises(CaseFormatError, match="particles0"):
        recompute(d)
    name = [n for n in names if n.startswith("w-gaussian-")][0]

    def scale_first_matrix(m):
        term = m["problem"]["energy"]["terms"][0]
        key = "cov" if "cov" in term else "A"
        term[key] = [[2 * v for v in row] for row in term[key]]
    d = _edit(out / name, tmp_path / "energy", change_meta=scale_first_matrix)
    assert not verify_case(load_case(d)).passed
