"""benchmarks/exp_roof.py and benchmarks/particle_roofs.py: the roof formula against a hand evaluation, the flop
counts' argument checks, the measured rates' shape, and the report rendering a (tiny) run."""
import pytest

from benchmarks import exp_roof, particle_roofs


def test_roof_formula():
    """t_roof = N²(n_exp/R_exp + k/R_fma): interaction at N = 100, d = 2, R_exp = 1e8, R_fma = 1e10 by hand:
    1e4·(1/1e8 + 12/1e10) = 1e-4 + 1.2e-5 (k = 5d + 2); KDE score at d = 10: k = 8d + 6 = 86."""
    assert exp_roof.roof_seconds("interaction", 100, 2, 1e8, 1e10) == pytest.approx(1.12e-4, rel=1e-14)
    assert exp_roof.roof_seconds("kde_score", 100, 10, 1e8, 1e10) == pytest.approx(1e4 * (2e-8 + 86e-10), rel=1e-14)
    assert exp_roof.fraction_of_roof(2.24e-4, "interaction", 100, 2, 1e8, 1e10) == pytest.approx(0.5, rel=1e-12)


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="kernel"):
        exp_roof.other_flops_per_pair("gemm", 2)
    with pytest.raises(ValueError, match="d"):
        exp_roof.other_flops_per_pair("interaction", 0)
    with pytest.raises(ValueError, match="rates"):
        exp_roof.roof_seconds("interaction", 10, 2, 0.0, 1e9)
    with pytest.raises(ValueError, match="seconds"):
        exp_roof.fraction_of_roof(0.0, "interaction", 10, 2, 1e8, 1e9)
    with pytest.raises(ValueError, match="profile"):
        particle_roofs.collect("huge")


def test_rates_and_report(monkeypatch):
    """A run at N = 64 renders; every route present agrees with numba; fractions are positive."""
    monkeypatch.setitem(particle_roofs.PROFILES, "tiny", {"N": (64,), "d": (2,), "torch_up_to_N": 64,
                                                         "libm_up_to_N": 64, "roof_n": 64, "min_total_s": 0.0,
                                                         "min_repeats": 1})
    monkeypatch.setattr(particle_roofs, "ROUTES", ("numba", "numba libm exp"))
    monkeypatch.setattr(exp_roof, "ARRAY_LENGTH", 256)
    res = particle_roofs.collect("tiny", log=lambda msg: None)
    rates = res["exp_rates"]
    assert rates["scalar"] > 0 and rates["vector"] >= rates["own"] > 0
    for case in res["cases"]:
        for route in case["routes"].values():
            assert route["agrees"]
            assert route["fraction_vector_roof"] > 0
    md = particle_roofs.render(res)
    assert "% vec roof" in md and "| interaction | 64 | 2 |" in md
