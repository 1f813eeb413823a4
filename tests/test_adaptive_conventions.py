"""The named library conventions (refimpl/ode/conventions.py) as data: registry round trip, argument checks, the
libraries' tableaux as valid embedded pairs, the controller rules they encode, and torchdiffeq's interpolant.
No peer library needed (the cross-checks are tests/test_adaptive_torchdiffeq.py and tests/test_adaptive_diffrax.py)."""
import numpy as np
import pytest

from refimpl.ode.conventions import (CONVENTIONS, DIFFRAX_PAIRS, TORCHDIFFEQ_PAIRS, DiffraxConvention,
                                     QuarticInterpolant, TorchdiffeqConvention, convention)
from refimpl.ode.embedded import EMBEDDED_PAIRS


ALL = ([TorchdiffeqConvention(m) for m in TorchdiffeqConvention.METHODS]
       + [DiffraxConvention(s) for s in DiffraxConvention.SOLVERS]
       + [TorchdiffeqConvention("bosh3", safety=0.8, ifactor=5.0, dfactor=0.1),
          DiffraxConvention("Tsit5", pcoeff=0.4, icoeff=0.3, dt0=0.05)])


@pytest.mark.parametrize("conv", ALL, ids=repr)
def test_round_trip_by_name(conv):
    spec = conv.to_spec()
    assert CONVENTIONS.from_spec(spec) == conv
    assert convention(spec) == conv
    assert CONVENTIONS.name_of(conv) == conv.family


def test_names_resolve():
    assert convention("torchdiffeq") == TorchdiffeqConvention("dopri5")
    assert convention("diffrax") == DiffraxConvention("Dopri5")
    assert convention("torchdiffeq:adaptive_heun").pair.name == "torchdiffeq.adaptive_heun"
    assert convention("diffrax:Tsit5", icoeff=0.5).controller.beta == (0.5, 0.0, 0.0)
    assert sorted(CONVENTIONS.names()) == ["diffrax", "torchdiffeq"]


@pytest.mark.parametrize("bad,match", [
    (lambda: TorchdiffeqConvention("rk4"), "method"),
    (lambda: TorchdiffeqConvention(5), "method"),
    (lambda: TorchdiffeqConvention(safety=-1), "safety"),
    (lambda: TorchdiffeqConvention(ifactor=float("nan")), "ifactor"),
    (lambda: DiffraxConvention("Euler"), "solver"),
    (lambda: DiffraxConvention(factormax=0), "factormax"),
    (lambda: DiffraxConvention(dt0=0.0), "dt0"),
    (lambda: convention("scipy"), "scipy"),
    (lambda: CONVENTIONS.from_spec({"family": "torchdiffeq", "version": "0.2.4"}), "version"),
    (lambda: TorchdiffeqConvention.from_spec({"family": "diffrax"}), "family"),
])
def test_bad_input_names_the_argument(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        bad()


def test_library_pairs_are_the_named_pairs_to_rounding():
    """The libraries' float tableaux are refimpl's exact pairs rounded (same orders, FSAL where the data says so,
    coefficients within a few ulps) — the sources were copied, not re-derived."""
    same = {"torchdiffeq.dopri5": "dormand_prince_54", "torchdiffeq.bosh3": "bogacki_shampine_32",
            "torchdiffeq.fehlberg2": "fehlberg_21", "torchdiffeq.adaptive_heun": "heun_euler_21",
            "diffrax.Dopri5": "dormand_prince_54", "diffrax.Tsit5": "tsitouras_54",
            "diffrax.Bosh3": "bogacki_shampine_32", "diffrax.Heun": "heun_euler_21"}
    pairs = [p for p, _ in TORCHDIFFEQ_PAIRS.values()] + list(DIFFRAX_PAIRS.values())
    for pair in pairs:
        named = EMBEDDED_PAIRS.get(same[pair.name])
        assert (pair.order, pair.embedded_order, pair.fsal) == (named.order, named.embedded_order, named.fsal)
        A, b, b_err, _ = pair.arrays()
        A2, b2, b_err2, _ = named.arrays()
        assert np.allclose(A, A2, rtol=0, atol=1e-15) and np.allclose(b, b2, rtol=0, atol=1e-15)
        # error weights: up to the sign convention (torchdiffeq/diffrax Heun: b_hat = (0, 1), e = -(Euler's)); the
        # Dormand-Prince estimate of both libraries is Shampine's (1986): b_hat = b/3 + 2 b_hat_DP/3, i.e. exactly
        # 2/3 of the original DP error weights
        scale = 2 / 3 if "opri5" in pair.name else 1.0
        assert np.allclose(np.abs(b_err), scale * np.abs(b_err2), rtol=0, atol=1e-15), pair.name


def test_controller_rules():
    """torchdiffeq (misc.py:_optimal_step_size): accept r <= 1, accepted factor in [1, 10], rejected in [0.2, 1),
    exponent 1/p. diffrax (pid.py:adapt_step_size): accept r < 1, defaults = the I controller, exponent 1/p."""
    td = TorchdiffeqConvention("dopri5").controller
    assert td.accepts(1.0) and not td.accepts(1.0 + 1e-15)
    k = td.exponent_order(TorchdiffeqConvention("dopri5").pair)
    assert k == 5
    assert td.factor(1e-12, (1.0, 1.0), k, True) == 10.0          # growth capped at ifactor
    assert td.factor(0.9, (1.0, 1.0), k, True) == 1.0             # an accepted step never shrinks
    assert td.factor(1e6, (1.0, 1.0), k, False) == 0.2            # dfactor on rejection
    r = 3.0
    assert td.factor(r, (1.0, 1.0), k, False) == pytest.approx(0.9 * r ** (-1 / 5), rel=1e-15)
    dx = DiffraxConvention("Bosh3").controller
    assert not dx.accepts(1.0) and dx.accepts(1.0 - 1e-15)
    assert dx.exponent_order(DiffraxConvention("Bosh3").pair) == 3
    assert dx.factor(0.5, (1.0, 1.0), 3, True) == pytest.approx(0.9 * 0.5 ** (-1 / 3), rel=1e-15)
    # starting steps: both libraries raise to 1/p (InitialStep's exponent is 1/(order + 1))
    assert TorchdiffeqConvention("bosh3").initial_step.order == 2
    assert DiffraxConvention().h0 == 0.01 and DiffraxConvention(dt0=0.3).h0 == 0.3


def test_detachments_and_output_rules():
    td, dx = TorchdiffeqConvention(), DiffraxConvention()
    assert td.detach == {"h_next"} and dx.detach == {"h0", "h"}
    assert (td.end, td.reuse_last_stage, dx.end, dx.reuse_last_stage) == ("overshoot", "always", "clip", "fsal")
    assert td.gradient_kind == "full_discrete" and dx.gradient_kind == "frozen_grid"


@pytest.mark.parametrize("method", TorchdiffeqConvention.METHODS)
def test_interpolant_hits_both_ends(method):
    """p(0) = y0 and p(1) = y1 (the coefficients of y0, y1, y_mid at x = 1 sum to 0, 1, 0; of h f0, h f1 to 0)."""
    rng = np.random.default_rng(3)
    conv = TorchdiffeqConvention(method)
    s = conv.pair.stages
    y0, y1 = rng.standard_normal(3), rng.standard_normal(3)
    ks = [rng.standard_normal(3) for _ in range(s)]
    assert np.array_equal(conv.output(y0, y1, ks, 0.3, 0.0), y0)
    assert np.allclose(conv.output(y0, y1, ks, 0.3, 1.0), y1, rtol=0, atol=64 * np.finfo(float).eps)


def test_dopri5_interpolant_is_fourth_order():
    r"""For y' = λy one Dormand–Prince step with the dense output at x = 1/2 approximates e^{λh/2}: error O(h⁵), so
    halving h divides it by ~32 (measured order within 4.6..5.4 over h = 0.4 .. 0.05)."""
    conv = TorchdiffeqConvention("dopri5")
    A, b, _, _ = conv.pair.arrays()
    lam = -1.3
    errs = []
    hs = [0.4, 0.2, 0.1, 0.05]
    for h in hs:
        y0 = np.array([1.0])
        ks = []
        for i in range(conv.pair.stages):
            yi = y0 + h * sum(A[i][j] * ks[j] for j in range(i)) if i else y0
            ks.append(lam * yi)
        y1 = y0 + h * sum(bi * k for bi, k in zip(b, ks))
        errs.append(abs(conv.output(y0, y1, ks, h, 0.5)[0] - np.exp(lam * h / 2)))
    rates = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all((rates > 4.6) & (rates < 5.4)), rates


def test_interpolant_checks_its_input():
    with pytest.raises(ValueError, match="mid"):
        QuarticInterpolant(())
    with pytest.raises(ValueError, match="ks"):
        QuarticInterpolant((0.5, 0.0))(np.zeros(1), np.zeros(1), [np.zeros(1)], 0.1, 0.5)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(pcoeff=st.floats(0.0, 0.7), icoeff=st.floats(0.05, 1.0), dcoeff=st.floats(0.0, 0.3),
       safety=st.floats(0.5, 1.0), factormin=st.floats(0.05, 0.9), factormax=st.floats(1.5, 20.0),
       r=st.floats(1e-6, 1e3), r1=st.floats(1e-3, 10.0), r2=st.floats(1e-3, 10.0), solver=st.sampled_from(
           DiffraxConvention.SOLVERS))
def test_diffrax_pid_factor_is_the_sources_formula(pcoeff, icoeff, dcoeff, safety, factormin, factormax, r, r1, r2,
                                                  solver):
    """pid.py:PIDController.adapt_step_size: coeff1 = (i + p + d)/k, coeff2 = -(p + 2d)/k, coeff3 = d/k on the
    inverse scaled errors, factor clipped to [1, factormax] when kept and [factormin, safety] when rejected — here with
    refimpl's Controller (rejected: capped at 1 instead of safety, the one documented difference, so compared only
    where the clipped formula is below safety). Round trip of the spec as well."""
    conv = DiffraxConvention(solver, pcoeff=pcoeff, icoeff=icoeff, dcoeff=dcoeff, safety=safety,
                             factormin=factormin, factormax=factormax)
    assert CONVENTIONS.from_spec(conv.to_spec()) == conv
    k = conv.pair.order
    c1, c2, c3 = (icoeff + pcoeff + dcoeff) / k, -(pcoeff + 2 * dcoeff) / k, dcoeff / k
    raw = safety * (1 / r) ** c1 * (1 / r1) ** c2 * (1 / r2) ** c3
    kept = r < 1
    lo, hi = (1.0, factormax) if kept else (factormin, safety)
    want = min(max(raw, lo), hi)
    got = conv.controller.factor(r, (r1, r2), float(k), kept)
    if kept or max(raw, factormin) <= safety:  # where diffrax's cap at safety (vs refimpl's 1) does not bind
        assert got == pytest.approx(want, rel=1e-12)
    assert conv.controller.accepts(r) == kept
