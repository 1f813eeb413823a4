"""The exported cases do not move when the compiled kernels change: every case rebuilt here has the digest recorded
from an export (tests/data/oracle_digests.json, written by tests/data/record_oracle_digests.py from
``python -m refimpl cases export`` (full and ``--quick``) before the vectorised-exp pair kernels existed; the cases' arithmetic is pinned in
refimpl.oracle.arithmetic)."""
import json
from pathlib import Path

import numpy as np
import pytest

from refimpl.oracle.arithmetic import PAIR_KERNEL_EXP
from refimpl.oracle.battery import battery
from refimpl.oracle.case import json_sha256
from refimpl.oracle.wasserstein_cases import energy_from_spec, wasserstein_battery

RECORDED = json.loads(Path(__file__).with_name("data").joinpath("oracle_digests.json").read_text(encoding="utf-8"))


def _digest(case) -> str:
    return json_sha256(case.metadata["integrity"])


@pytest.mark.parametrize("source", ["quick battery (every kind)", "particle and Gaussian cases"])
def test_rebuilt_cases_have_the_recorded_digests(source):
    cases = list(battery(quick=True)) if source.startswith("quick") else list(wasserstein_battery())
    assert cases
    moved = [c.name for c in cases if RECORDED.get(c.name) != _digest(c)]
    unknown = [c.name for c in cases if c.name not in RECORDED]
    assert not unknown, f"cases with no recorded digest (new cases: re-record, see tests/data): {unknown}"
    assert not moved, f"stored references moved (a kernel changed the pinned arithmetic?): {moved}"


def test_the_oracle_builds_pair_kernel_energies_with_the_pinned_exp():
    terms = [{"kind": "gaussian_interaction", "amplitude": 0.5, "width": 0.7},
             {"kind": "kl_to_gaussian", "mean": [0.0, 0.0], "cov": [[1.0, 0.0], [0.0, 1.0]], "bandwidth": 0.3}]
    energy = energy_from_spec(terms)
    kernel_terms = [t for t in energy.terms if t.kernel_options]  # the interaction and the KL's entropy
    assert [type(t).__name__ for t in kernel_terms] == ["GaussianInteraction", "Entropy"]
    assert [t.exp for t in kernel_terms] == [PAIR_KERNEL_EXP, PAIR_KERNEL_EXP]
    X = np.random.default_rng(3).normal(size=(40, 2))
    # the pinned route is the pinned exp's kernel: the same bits as asking the kernel for it directly
    from refimpl.wasserstein import pairwise_sums
    direct = pairwise_sums.gaussian_interaction_gradient(X, 0.5, 0.7, "auto", PAIR_KERNEL_EXP)
    assert energy.terms[0].wasserstein_gradient(X).tobytes() == direct.tobytes()


def test_pinned_field_swaps_only_the_kernel_of_built_in_fields():
    from refimpl.ode._numba_pinned import PINNED_KERNELS
    from refimpl.ode.fields import LinearField, TanhField
    from refimpl.oracle.arithmetic import pinned_field

    for field, family in ((TanhField(3), "tanh"), (LinearField(2), "linear")):
        pinned = pinned_field(field)
        assert pinned is not field and pinned.kernel == PINNED_KERNELS[family]
        assert field.kernel == type(field).kernel != PINNED_KERNELS[family]   # the caller's field is untouched
        assert (pinned.dim, pinned.n_params, pinned.to_spec()) == (field.dim, field.n_params, field.to_spec())

    class MyTanh(TanhField):  # a user's subclass keeps whatever kernel it declares
        family = None

    mine = MyTanh(2)
    assert pinned_field(mine) is mine
