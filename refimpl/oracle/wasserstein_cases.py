r"""The Wasserstein case kind: an energy given as data, a representation (particles or Gaussians), a step (forward
Euler, the closed-form Gaussian JKO step, or random-coordinate descent) and the reference outputs. The format is
defined in ``docs/case-format.md``; the energies, their first variations and Wasserstein gradients in
``docs/theory/wasserstein-gradients.md``; RWCD in ``docs/theory/coordinate-descent.md``.

This module owns everything about Wasserstein cases: the array names (:data:`WASSERSTEIN_INPUTS`,
:data:`WASSERSTEIN_REFERENCES`), the consistency rules (:class:`WassersteinCaseKind`, registered in
:data:`refimpl.oracle.case.CASE_KINDS` as ``"wasserstein"``), the builder (:class:`WassersteinProblem` →
:func:`build_wasserstein_case`), the Wasserstein part of the battery and the recomputation used by
:func:`refimpl.oracle.verify.verify_case`. The energy terms are stored as data through their registry
(``refimpl.wasserstein.energies.ENERGIES``: each term class's ``to_spec()``, ``from_spec()`` and ``spec_keys``), so no
code here knows the term kinds. The Wasserstein stack (Numba) is imported on first
use, so loading and checking a case stays light.

The energy is a sum of terms, each a JSON object (``problem.energy.terms``):

=========================  ====================================  =============================
``kind``                   keys                                  refimpl object
=========================  ====================================  =============================
``quadratic_potential``    ``A`` (d×d, symmetric), ``b`` (d,)     ``QuadraticPotential(A, b)``
``quadratic_interaction``  ``B`` (d×d, symmetric)                ``QuadraticInteraction(B)``
``gaussian_interaction``   ``amplitude``, ``width``              ``GaussianInteraction(a, s)``
``entropy``                ``bandwidth`` (particles: blob ε)     ``Entropy(bandwidth)``
``kl_to_gaussian``         ``mean``, ``cov``, ``bandwidth``      ``kl_to_gaussian(mean, cov)``
=========================  ====================================  =============================

(the classes of :mod:`refimpl.wasserstein.energies`; [B] is arXiv 2604.01606).

References and how they are computed (also in each case's ``provenance.how``):

* particles (initial cloud: ``n`` samples of N(mean, cov) from ``numpy.random.default_rng(seed)``, stored as the
  input ``particles0``): ``energy`` F(ρ_X) (``Energy.value``), ``wasserstein_gradient`` ∇δF/δρ at the particles
  (closed form; *second route* at build time: N·∂F(ρ_X)/∂x_k by the tape, which the energies module derives to be
  equal), ``particle_trajectory`` the forward-Euler iterates X_{k+1} = X_k − h∇δF/δρ[ρ_{X_k}](X_k)
  (:func:`refimpl.wasserstein.particle_steps.forward_euler`);
* RWCD ([B]; ``step = "rwcd"``): the inputs ``coordinates`` (the coordinate moved at each step, drawn uniformly
  with ``coordinate_seed``) and ``step_sizes`` (ηᵢ = ``step_scale``/Lᵢ, Lᵢ the coordinate-wise smoothness
  constants) fix the run, so
  a foreign implementation needs no RNG; references: the iterates of
  :func:`refimpl.wasserstein.rwcd_particles.rwcd_step` (second route: the i-th column of the full Wasserstein
  gradient) or :func:`refimpl.wasserstein.rwcd_gaussian.gaussian_rwcd_step` (second route: the affine push-forward
  by the energy's Bures–Wasserstein gradient field, derived in the code);
* Gaussians: ``energy`` F(N(m₀, Σ₀)) in closed form, ``mean_trajectory``/``cov_trajectory`` the forward-Euler or JKO
  iterates (:mod:`refimpl.wasserstein.gaussian_flows`), and for quadratic energies ``exact_mean``/``exact_cov``, the
  exact flow at t_k = kh (closed form; for a KL-to-Gaussian energy cross-checked at build time against the
  Ornstein–Uhlenbeck formula :func:`~refimpl.wasserstein.gaussian_flows.ou_flow`).

Tolerances: ``rtol = 1e-10``, ``atol = 1e-12·max(1, max|ref|)`` for every quantity — all are finite sums and closed
forms evaluated in float64, so another implementation differs by rounding only (pairwise sums: ~n·ε per entry, n ≤ 64
here), while a modelling error (a missing factor ½ in the interaction, the 1/N normalisation, the blob correction of
the entropy) is O(1).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import refimpl
from refimpl.oracle.case import CASE_KINDS, Case, CaseKind
from refimpl.oracle.comparison import normwise_disagreement, same_input
from refimpl.oracle.safe_io import CaseFormatError

__all__ = ["WassersteinCaseKind", "WassersteinProblem", "energy_from_spec", "build_wasserstein_case",
           "wasserstein_battery", "WASSERSTEIN_INPUTS", "WASSERSTEIN_REFERENCES"]

ROUTE_AGREEMENT = 1e-12
RTOL, ATOL = 1e-10, 1e-12

#: input arrays of a Wasserstein case
WASSERSTEIN_INPUTS = {
    "particles0": "initial particles x_k (rows), the empirical measure (1/n) sum_k delta_{x_k}, shape (n, d)",
    "mean0": "initial Gaussian mean, shape (d,)",
    "cov0": "initial Gaussian covariance, shape (d, d)",
    "coordinates": "RWCD: the coordinate i_k moved at step k (0-based), shape (K,)",
    "step_sizes": "RWCD: the step size eta_i of each coordinate, shape (d,)",
}
#: reference quantities of a Wasserstein case
WASSERSTEIN_REFERENCES = {
    "energy": "F(rho_0), shape ()",
    "wasserstein_gradient": "grad_x deltaF/deltarho[rho_0] at each initial particle, shape (n, d)",
    "particle_trajectory": "the particles after 0..K steps, shape (K+1, n, d)",
    "mean_trajectory": "the Gaussian mean after 0..K steps, shape (K+1, d)",
    "cov_trajectory": "the Gaussian covariance after 0..K steps, shape (K+1, d, d)",
    "exact_mean": "mean of the exact gradient flow at t_k = k h, shape (K+1, d)",
    "exact_cov": "covariance of the exact gradient flow at t_k = k h, shape (K+1, d, d)",
}
def _term_class(kind):
    """The registered energy-term class of ``kind`` (refimpl.wasserstein.energies.ENERGIES), or None."""
    from refimpl.wasserstein.energies import ENERGIES

    return ENERGIES.get(kind) if kind in ENERGIES else None


def energy_from_spec(terms):
    """The refimpl :class:`~refimpl.wasserstein.Energy` for a list of term objects: each term rebuilt by its registered
    class (``ENERGIES``, keyed by the term's ``kind``), summed left to right; the pair kernels with the oracle's
    pinned exp (:data:`refimpl.oracle.arithmetic.PAIR_KERNEL_EXP`)."""
    from refimpl.oracle.arithmetic import PAIR_KERNEL_EXP
    from refimpl.wasserstein.energies import energy_from_terms

    return energy_from_terms(terms, exp=PAIR_KERNEL_EXP)


@dataclass(frozen=True, eq=False)
class WassersteinProblem:
    """A Wasserstein case to build: ``terms`` (energy term objects), ``representation`` ("particles"/"gaussian"),
    ``step`` ("forward_euler", "rwcd", or "jko" for Gaussians), step size ``h`` (RWCD: unused, ηᵢ = 1/Lᵢ),
    ``n_steps``, the initial Gaussian (``mean0``, ``cov0``) — sampled with ``n`` particles and ``seed`` for the
    particle representation; RWCD coordinates are drawn uniformly with ``coordinate_seed``, step sizes
    ηᵢ = ``step_scale``/Lᵢ."""

    name: str
    terms: tuple
    representation: str
    step: str
    h: float
    n_steps: int
    mean0: tuple
    cov0: tuple
    n: int | None = None
    seed: int = 0
    coordinate_seed: int = 0
    step_scale: float = 1.0


def _tolerance(ref) -> dict:
    scale = float(np.max(np.abs(ref))) if np.size(ref) else 0.0
    return {"rtol": RTOL, "atol": ATOL * max(1.0, scale),
            "why": "finite sums and closed forms in float64: rounding only (refimpl.oracle.wasserstein_cases)"}


def build_wasserstein_case(problem: WassersteinProblem, description: str = "") -> Case:
    """Compute the references of ``problem`` (module docstring) and return the validated :class:`Case`."""
    import scipy

    from refimpl import ad
    from refimpl.wasserstein.coordinate_descent import coordinate_probabilities, coordinate_sequence
    from refimpl.wasserstein.gaussian_flows import (gaussian_exact_flow, gaussian_forward_euler, gaussian_jko,
                                                    ou_flow, quadratic_structure)
    from refimpl.wasserstein.measures import GaussianMeasure
    from refimpl.wasserstein.particle_steps import forward_euler
    from refimpl.wasserstein.rwcd_gaussian import GaussianMoments, gaussian_rwcd_step
    from refimpl.wasserstein.rwcd_particles import rwcd_step

    if not isinstance(problem, WassersteinProblem):
        raise TypeError(f"problem must be a WassersteinProblem, got {type(problem).__name__}")
    terms = [dict(t) for t in problem.terms]
    energy = energy_from_spec(terms)
    g0 = GaussianMeasure(np.array(problem.mean0, dtype=np.float64), np.array(problem.cov0, dtype=np.float64))
    d, h, K = g0.dim, float(problem.h), int(problem.n_steps)
    initial = {"kind": "gaussian", "mean": g0.mean.tolist(), "cov": g0.cov.tolist()}
    checks, how, extra = {}, {}, {}
    if problem.step == "rwcd":
        L = energy.coordinate_smoothness(d)
        if L is None:
            raise ValueError("terms: RWCD needs finite coordinate-wise smoothness constants (no entropy term)")
        eta = float(problem.step_scale) / np.asarray(L, dtype=np.float64)
        coords = coordinate_sequence(coordinate_probabilities(L, "uniform"), K, int(problem.coordinate_seed))
        extra = {"coordinate_rule": "i_k drawn uniformly from {0..d-1} by refimpl.wasserstein.coordinate_descent."
                                    "coordinate_sequence(seed = coordinate_seed); eta_i = step_scale/L_i with "
                                    "L_i = energy.coordinate_smoothness (both stored as inputs: 'coordinates', "
                                    "'step_sizes')", "coordinate_seed": int(problem.coordinate_seed),
                 "step_scale": float(problem.step_scale)}
    if problem.representation == "particles":
        if problem.step not in ("forward_euler", "rwcd"):
            raise ValueError(f"step: particle cases use 'forward_euler' or 'rwcd', got {problem.step!r}")
        X0 = g0.sample(int(problem.n), int(problem.seed))
        initial.update(kind="gaussian_sample", n=int(problem.n), seed=int(problem.seed))
        grad = energy.wasserstein_gradient(X0)
        tape = X0.shape[0] * np.asarray(ad.grad(energy.value)(X0))
        checks["wasserstein_gradient"] = normwise_disagreement(tape, grad)
        arrays = {"particles0": X0, "energy": np.asarray(float(energy.value(X0))), "wasserstein_gradient": grad}
        how = {"energy": "Energy.value on the empirical measure", "wasserstein_gradient":
               "Energy.wasserstein_gradient (closed form); cross-checked against N * dF(rho_X)/dx_k by the tape"}
        if problem.step == "forward_euler":
            arrays["particle_trajectory"] = np.stack(forward_euler(energy, X0, h, K))
            how["particle_trajectory"] = "refimpl.wasserstein.particle_steps.forward_euler"
        else:
            traj, second = [X0], [X0]
            for i in coords:
                traj.append(rwcd_step(energy, traj[-1], int(i), eta[i]))
                Y = second[-1].copy()  # second route: the i-th column of the full Wasserstein gradient
                Y[:, i] -= eta[i] * energy.wasserstein_gradient(second[-1])[:, i]
                second.append(Y)
            arrays["particle_trajectory"] = np.stack(traj)
            checks["particle_trajectory"] = normwise_disagreement(np.stack(second), arrays["particle_trajectory"])
            how["particle_trajectory"] = ("refimpl.wasserstein.rwcd_particles.rwcd_step along coordinates[k] with "
                                          "step_sizes; cross-checked against the full Wasserstein gradient's column")
    elif problem.representation == "gaussian":
        steps = {"forward_euler": gaussian_forward_euler, "jko": gaussian_jko, "rwcd": None}
        if problem.step not in steps:
            raise ValueError(f"step must be one of {sorted(steps)}, got {problem.step!r}")
        if problem.step == "rwcd":
            iterates, second = [GaussianMoments(g0.mean, g0.cov)], [g0]
            for i in coords:
                iterates.append(gaussian_rwcd_step(energy, iterates[-1], int(i), eta[i]))
                # second route (derived): the affine push x -> x - eta e_i (b_i + M_i (x - m)), (b, M) the
                # Bures-Wasserstein gradient field of the energy: m+ = m - eta b_i e_i, S+ = P S P',
                # P = I - eta e_i M_i
                b, M = energy.gaussian_velocity(second[-1])
                P = np.eye(d)
                P[i] -= eta[i] * M[i]
                m = second[-1].mean.copy()
                m[i] -= eta[i] * b[i]
                C = P @ second[-1].cov @ P.T
                second.append(GaussianMeasure(m, 0.5 * (C + C.T)))
            checks["mean_trajectory"] = normwise_disagreement(np.stack([g.mean for g in second]),
                                                  np.stack([g.mean for g in iterates]))
            checks["cov_trajectory"] = normwise_disagreement(np.stack([g.cov for g in second]),
                                                 np.stack([g.cov for g in iterates]))
        else:
            iterates = steps[problem.step](energy, g0, h, K)
        arrays = {"mean0": np.array(g0.mean), "cov0": np.array(g0.cov),
                  "energy": np.asarray(energy.gaussian_value(g0)),
                  "mean_trajectory": np.stack([g.mean for g in iterates]),
                  "cov_trajectory": np.stack([g.cov for g in iterates])}
        src = ("refimpl.wasserstein.rwcd_gaussian.gaussian_rwcd_step along coordinates[k] with step_sizes; "
               "cross-checked against the affine push-forward by the energy's Bures-Wasserstein gradient field"
               if problem.step == "rwcd" else f"refimpl.wasserstein.gaussian_flows.gaussian_{problem.step}")
        how = {"energy": "Energy.gaussian_value (closed form)", "mean_trajectory": src, "cov_trajectory": src}
        try:
            with_exact = problem.step != "rwcd" and quadratic_structure(energy, d) is not None
        except NotImplementedError:
            with_exact = False  # e.g. a Gaussian interaction: its exact flow leaves the Gaussians
        if with_exact:  # (RWCD is not a time discretisation of the flow: no exact-flow reference)
            exact = [gaussian_exact_flow(energy, g0, k * h) for k in range(K + 1)]
            arrays["exact_mean"] = np.stack([g.mean for g in exact])
            arrays["exact_cov"] = np.stack([g.cov for g in exact])
            how["exact_mean"] = how["exact_cov"] = "refimpl.wasserstein.gaussian_flows.gaussian_exact_flow"
            if len(terms) == 1 and terms[0]["kind"] == "kl_to_gaussian":
                target = GaussianMeasure(np.array(terms[0]["mean"]), np.array(terms[0]["cov"]))
                ou = [ou_flow(g0, target, k * h) for k in range(K + 1)]
                checks["exact_mean"] = normwise_disagreement(np.stack([g.mean for g in ou]), arrays["exact_mean"])
                checks["exact_cov"] = normwise_disagreement(np.stack([g.cov for g in ou]), arrays["exact_cov"])
                how["exact_mean"] += "; cross-checked against the Ornstein-Uhlenbeck formula (ou_flow)"
                how["exact_cov"] = how["exact_mean"]
    else:
        raise ValueError(f"representation must be 'particles' or 'gaussian', got {problem.representation!r}")
    worst = max(checks.values(), default=0.0)
    if worst > ROUTE_AGREEMENT:
        raise RuntimeError(f"case {problem.name!r}: two routes disagree by {worst:.3g} ({checks}); refusing to export")
    if problem.step == "rwcd":
        arrays["coordinates"], arrays["step_sizes"] = coords, eta
    declared = WassersteinCaseKind.declare(arrays)
    metadata = {
        "format": "refimpl-case", "format_version": 1, "name": problem.name, "kind": "wasserstein",
        "description": description or f"{getattr(energy, 'name', 'energy')}; {problem.representation}, "
                                      f"{problem.step}, h = {h:g}, {K} steps",
        "problem": {"energy": {"terms": terms, "formula": "F = sum of the terms (refimpl.oracle.wasserstein_cases)"},
                    "representation": problem.representation, "dim": d, "step": problem.step, "h": h,
                    "n_steps": K, "initial": initial, **extra},
        "arrays": declared,
        "tolerances": {name: _tolerance(a) for name, a in arrays.items() if declared[name]["role"] == "reference"},
        "provenance": {"refimpl_version": refimpl.__version__, "numpy_version": np.__version__,
                       "scipy_version": scipy.__version__,
                       "created_by": "refimpl.oracle.wasserstein_cases.build_wasserstein_case", "how": how,
                       "route_checks": checks, "notes": []},
    }
    return Case(metadata, arrays, source=problem.name)


def wasserstein_battery():
    """The Wasserstein cases of the battery (d = 2): particles (n = 32) under quadratic potential + interaction, a
    Gaussian interaction with confinement, and KL to a Gaussian with the blob entropy (forward Euler, h = 0.05, 5
    steps); Gaussians under KL to a Gaussian and under potential + interaction + entropy (forward Euler and JKO, h =
    0.1, 10 steps, with the exact flow), and a Gaussian interaction (forward Euler, no exact flow); RWCD (12 uniform
    coordinate steps, ηᵢ = 1/Lᵢ) on particles (quadratic; Gaussian interaction) and on a Gaussian (quadratic,
    ηᵢ = 1/(2Lᵢ): see the comment in the code)."""
    A = ((2.0, 0.5), (0.5, 1.0))
    B = ((0.5, 0.1), (0.1, 0.3))
    mean0, cov0 = (1.0, -0.5), ((1.0, 0.3), (0.3, 0.5))
    quad = ({"kind": "quadratic_potential", "A": [list(r) for r in A], "b": [0.2, -0.1]},
            {"kind": "quadratic_interaction", "B": [list(r) for r in B]})
    gint = ({"kind": "gaussian_interaction", "amplitude": 1.0, "width": 0.8},
            {"kind": "quadratic_potential", "A": [[1.0, 0.0], [0.0, 1.0]], "b": [0.0, 0.0]})

    def kl(bandwidth):
        return ({"kind": "kl_to_gaussian", "mean": [0.0, 0.0], "cov": [[1.0, 0.2], [0.2, 0.7]],
                 "bandwidth": bandwidth},)
    particles = {"quadpot-quadint": quad, "gaussint-confined": gint, "kl-blob": kl(0.4)}
    for label, terms in particles.items():
        yield build_wasserstein_case(WassersteinProblem(f"w-particles-{label}__forward_euler", terms, "particles",
                                                        "forward_euler", 0.05, 5, mean0, cov0, n=32, seed=7))
    gaussians = {"kl": kl(None), "quad-entropy": quad + ({"kind": "entropy", "bandwidth": None},)}
    for label, terms in gaussians.items():
        for step in ("forward_euler", "jko"):
            yield build_wasserstein_case(WassersteinProblem(f"w-gaussian-{label}__{step}", terms, "gaussian", step,
                                                            0.1, 10, mean0, cov0))
    yield build_wasserstein_case(WassersteinProblem("w-gaussian-gaussint-confined__forward_euler", gint, "gaussian",
                                                    "forward_euler", 0.1, 10, mean0, cov0))
    # RWCD ([B]): the coordinate sequence and the step sizes 1/L_i are inputs, so no RNG has to be reproduced
    for label, terms in (("quadpot-quadint", quad), ("gaussint-confined", gint)):
        yield build_wasserstein_case(WassersteinProblem(f"w-particles-{label}__rwcd", terms, "particles", "rwcd",
                                                        1.0, 12, mean0, cov0, n=32, seed=7, coordinate_seed=11))
    # On a Gaussian, eta_i = 1/L_i collapses the moved coordinate's conditional variance (quadratic energies: the
    # push-forward is x -> (I - eta e_i M_i) x + c with M = A + B, det = 1 - eta M_ii = 0): half steps keep the
    # covariance positive definite.
    yield build_wasserstein_case(WassersteinProblem("w-gaussian-quadpot-quadint__rwcd", quad, "gaussian", "rwcd",
                                                    1.0, 12, mean0, cov0, coordinate_seed=11, step_scale=0.5))


# ---------------------------------------------------------------------------------------------------------------------
# the case kind


def json_shape(value):
    """The shape of a JSON vector (list of numbers) or matrix (list of equal-length lists); None if ragged."""
    if value and isinstance(value[0], list):
        widths = {len(row) if isinstance(row, list) else -1 for row in value}
        return (len(value), widths.pop()) if len(widths) == 1 and -1 not in widths else None
    return (len(value),) if not any(isinstance(v, list) for v in value) else None


@CASE_KINDS.register
class WassersteinCaseKind(CaseKind):
    """``kind = "wasserstein"``: the arrays, the consistency rules, the recomputation and the battery of Wasserstein
    cases."""

    family = "wasserstein"
    problem_schema = {"$ref": "#/$defs/wasserstein_problem"}
    inputs = WASSERSTEIN_INPUTS
    references = WASSERSTEIN_REFERENCES
    required = ("energy",)

    @classmethod
    def summary(cls, case: Case) -> str:
        p = case.problem
        return f"{p['representation']} d={p['dim']}, {p['step']}, h={p['h']:g}, {p['n_steps']} steps"

    @classmethod
    def check_problem(cls, case: Case, where: str) -> None:
        p, a = case.problem, case.arrays
        d, K = p["dim"], p["n_steps"]
        for i, term in enumerate(p["energy"]["terms"]):
            term_class = _term_class(term["kind"])
            if term_class is None:
                from refimpl.wasserstein.energies import ENERGIES

                raise CaseFormatError(f"{where}: problem.energy.terms[{i}]: {term['kind']!r} is not a known energy term "
                                      f"(known: {ENERGIES.names()})")
            missing = [k for k in term_class.spec_keys if k not in term]
            if missing:
                raise CaseFormatError(f"{where}: problem.energy.terms[{i}] ({term['kind']}) misses {missing}")
            for key, shape in (("A", (d, d)), ("B", (d, d)), ("cov", (d, d)), ("b", (d,)), ("mean", (d,))):
                if key in term and json_shape(term[key]) != shape:
                    raise CaseFormatError(f"{where}: problem.energy.terms[{i}].{key} must have shape {shape}")
            absent = [k for k in term_class.particle_spec_keys if term.get(k) is None]
            if p["representation"] == "particles" and absent:
                raise CaseFormatError(f"{where}: problem.energy.terms[{i}] ({term['kind']}): on particles it needs "
                                      f"{absent} (e.g. the particle entropy's bandwidth)")
        init = p["initial"]
        if json_shape(init["mean"]) != (d,) or json_shape(init["cov"]) != (d, d):
            raise CaseFormatError(f"{where}: problem.initial.mean/cov must have shapes ({d},) and ({d}, {d})")
        if p["representation"] == "particles":
            n = init.get("n", -1)
            expected = {"particles0": (n, d), "wasserstein_gradient": (n, d), "particle_trajectory": (K + 1, n, d),
                        "energy": ()}
        else:
            expected = {"mean0": (d,), "cov0": (d, d), "mean_trajectory": (K + 1, d), "cov_trajectory": (K + 1, d, d),
                        "exact_mean": (K + 1, d), "exact_cov": (K + 1, d, d), "energy": ()}
        if p["step"] == "rwcd":
            expected.update(coordinates=(K,), step_sizes=(d,))
        for name, arr in a.items():
            if name not in expected:
                raise CaseFormatError(f"{where}: array {name!r} does not belong to a {p['representation']} case")
            if arr.shape != expected[name]:
                raise CaseFormatError(f"{where}: array {name!r} must have shape {expected[name]} (d = {d}, "
                                      f"K = {K}), got {arr.shape}")
        needed = ("particles0",) if p["representation"] == "particles" else ("mean0", "cov0")
        needed += ("coordinates", "step_sizes") if p["step"] == "rwcd" else ()
        for name in needed:
            if name not in a:
                raise CaseFormatError(f"{where}: a {p['representation']} {p['step']} case needs the input array "
                                      f"{name!r}")
        if p["step"] == "rwcd":
            c = a["coordinates"]
            if c.dtype != np.int64 or (c.size and (c.min() < 0 or c.max() >= d)):
                raise CaseFormatError(f"{where}: 'coordinates' must be int64 indices in [0, {d})")
            if np.any(a["step_sizes"] <= 0):
                raise CaseFormatError(f"{where}: 'step_sizes' must be > 0")

    @classmethod
    def recompute(cls, case: Case) -> dict:
        p = case.problem
        init = p["initial"]
        problem = WassersteinProblem(case.name, tuple(p["energy"]["terms"]), p["representation"], p["step"], p["h"],
                                     p["n_steps"], tuple(init["mean"]), tuple(tuple(r) for r in init["cov"]),
                                     init.get("n"), init.get("seed", 0), p.get("coordinate_seed", 0),
                                     p.get("step_scale", 1.0))
        fresh = build_wasserstein_case(problem)
        where = case.source or case.name
        for name in ("particles0", "mean0", "cov0", "coordinates", "step_sizes"):
            if name in case.arrays:
                same_input(name, case.arrays[name], fresh.arrays[name], where)
        return {k: fresh.arrays[k] for k in fresh.references if k in case.arrays}

    @classmethod
    def battery(cls, *, quick: bool = False):
        return iter(()) if quick else wasserstein_battery()

    @classmethod
    def rounding_depth(cls, case: Case) -> int:
        """max(1, K) steps × the length of each step's sums (n particles, or d for a Gaussian)
        (refimpl.oracle.precision)."""
        p = case.problem
        width = case.arrays["particles0"].shape[0] if "particles0" in case.arrays else p["dim"]
        return max(1, int(p["n_steps"])) * max(1, int(width))
