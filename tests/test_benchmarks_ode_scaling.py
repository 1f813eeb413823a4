"""benchmarks/ode_scaling.py: its sample counts and memory model agree with the library, and one tiny row runs end to
end in a child process (the measurement code itself, at a size that takes about a second)."""
from __future__ import annotations

import pytest

from benchmarks import ode_scaling
from refimpl.ode.samples import parameter_samples
from refimpl.ode.schemes import LEAPFROG, RK4

METHODS = {"leapfrog": (LEAPFROG, "forward_euler"), "rk4": (RK4, None)}


@pytest.mark.parametrize("scheme", ode_scaling.SCHEMES)
@pytest.mark.parametrize("layout", ode_scaling.LAYOUTS)
def test_sample_counts_and_stage_index_size_are_the_library_s(scheme, layout):
    method, starter = METHODS[scheme]
    for N in (2, 7, 100):
        smp = parameter_samples(method, 1.0, N, layout, starter)
        assert ode_scaling.n_samples(scheme, layout, N) == smp.n_samples
        model = ode_scaling.model_bytes(scheme, layout, N, 3)
        assert model["stage index"] == smp.stage_index.nbytes              # the 8·N·s term (starter only: leapfrog)
        assert model["theta and gradient"] == 2 * 8 * smp.n_samples * 12     # p = d² + d = 12
        assert model["total"] == sum(v for k, v in model.items() if k != "total")


def test_slopes_term_follows_the_keep_bound():
    from refimpl.ode.adjoint_recursions import KEEP_STAGES_MAX_ENTRIES

    assert ode_scaling.KEEP == KEEP_STAGES_MAX_ENTRIES
    d = 16
    below = KEEP_STAGES_MAX_ENTRIES // (4 * d)
    assert ode_scaling.model_bytes("rk4", "constant", below, d)["stage slopes"] == 8 * below * 4 * d
    assert ode_scaling.model_bytes("rk4", "constant", below + 1, d)["stage slopes"] == 0
    assert ode_scaling.model_bytes("leapfrog", "step", 10**6, d)["F values"] == 8 * 2 * d   # the ring, at any N


def test_one_row_runs_in_a_child_process():
    row = ode_scaling.measure("leapfrog", "constant", 50, d=2, min_total_s=0.0)
    assert "skipped" not in row, row.get("skipped")
    assert row["first_s"] > 0 and row["steady_s"] > 0 and row["repeats"] >= 2
    assert row["per_step_us"] == pytest.approx(1e6 * row["steady_s"] / 50)
    assert row["traced_bytes"] >= row["theta_bytes"] > 0


def test_prefault_row_runs_a_second_child_and_reports_its_first_call():
    row = ode_scaling.measure("leapfrog", "step", 50, d=2, min_total_s=0.0, prefault=True)
    assert "skipped" not in row, row.get("skipped")
    assert row["first_host_backed_s"] > 0 and row["steady_host_backed_s"] > 0 and row["prefault_s"] > 0
    table = ode_scaling._table([row])
    assert "host-backed" in table.splitlines()[0]
    assert len(table.splitlines()[2].split("|")) == len(table.splitlines()[0].split("|"))
