"""Wasserstein oracle cases (refimpl.oracle.wasserstein_cases) against routes written here from the case data alone:
the quadratic energies and their gradient in plain NumPy, the explicit Gaussian forward-Euler recursion for KL to a
Gaussian (docs/theory/forward-euler-breakdown.md), the Ornstein–Uhlenbeck solution by scipy.linalg.expm, the JKO mean in closed form, and Richardson finite
differences of the particle energy for the blob entropy."""
import json

import numpy as np
import pytest
from scipy.linalg import expm

from refimpl import cli
from refimpl.ad.checks import fd_gradient
from refimpl.oracle import CaseFormatError, compare, load_case, save_case
from refimpl.oracle.wasserstein_cases import (WassersteinProblem, build_wasserstein_case, energy_from_spec,
                                              wasserstein_battery)


@pytest.fixture(scope="module")
def cases():
    return {c.name: c for c in wasserstein_battery()}


def test_the_battery_cases_pass_against_their_own_arrays_and_round_trip(cases, tmp_path):
    for name, case in cases.items():
        assert compare(case, {k: case.arrays[k] for k in case.references}).passed
        save_case(case, tmp_path / name)
        again = load_case(tmp_path / name)
        assert again.metadata == case.metadata
        assert all(np.array_equal(again.arrays[k], v) for k, v in case.arrays.items())


def test_quadratic_particle_case_from_the_json_alone(cases):
    case = cases["w-particles-quadpot-quadint__forward_euler"]
    t = {term["kind"]: term for term in case.problem["energy"]["terms"]}
    A, b = np.array(t["quadratic_potential"]["A"]), np.array(t["quadratic_potential"]["b"])
    B = np.array(t["quadratic_interaction"]["B"])
    X = np.array(case.arrays["particles0"])
    n, h = X.shape[0], case.problem["h"]

    def energy(X):  # (1/n) sum V(x_k) + (1/2n^2) sum_kj W(x_k - x_j), V = 1/2 (x-b)'A(x-b), W = 1/2 z'Bz
        D = X - b
        Z = X[:, None, :] - X[None, :, :]
        return 0.5 * np.einsum("ki,ij,kj->", D, A, D) / n + 0.25 * np.einsum("kli,ij,klj->", Z, B, Z) / n ** 2

    def grad(X):  # A(x - b) + (1/n) sum_j B(x - x_j)
        return (X - b) @ A + (X - X.mean(axis=0)) @ B
    traj = [X]
    for _ in range(case.problem["n_steps"]):
        traj.append(traj[-1] - h * grad(traj[-1]))
    report = compare(case, {"energy": energy(X), "wasserstein_gradient": grad(X),
                            "particle_trajectory": np.stack(traj)})
    assert report.passed, report


def test_quadratic_particle_rwcd_from_the_json_and_the_inputs_alone(cases):
    """[B]'s RWCD step x_ki <- x_ki - eta_i d_i(deltaF/deltarho)(x_k), with the stored coordinates and step sizes."""
    case = cases["w-particles-quadpot-quadint__rwcd"]
    t = {term["kind"]: term for term in case.problem["energy"]["terms"]}
    A, b = np.array(t["quadratic_potential"]["A"]), np.array(t["quadratic_potential"]["b"])
    B = np.array(t["quadratic_interaction"]["B"])
    # L_i = A_ii + B_ii (sup of the second coordinate derivative of V and W), eta_i = 1/L_i
    assert np.allclose(case.arrays["step_sizes"], 1.0 / (np.diag(A) + np.diag(B)), rtol=1e-15)
    X = np.array(case.arrays["particles0"])
    traj = [X]
    for i in case.arrays["coordinates"]:
        Y = traj[-1].copy()
        Y[:, i] -= case.arrays["step_sizes"][i] * ((Y - b) @ A[i] + (Y - Y.mean(axis=0)) @ B[i])
        traj.append(Y)
    assert compare(case, {"particle_trajectory": np.stack(traj)}).passed
    # moving only coordinate i leaves the other column untouched at every step
    tr = case.arrays["particle_trajectory"]
    for k, i in enumerate(case.arrays["coordinates"]):
        assert np.array_equal(tr[k + 1][:, 1 - i], tr[k][:, 1 - i])


def test_gaussian_rwcd_is_the_coordinate_affine_push_forward(cases):
    """Gaussian RWCD with quadratic energies (derived): m_i <- m_i - eta_i (A(m - b))_i, S <- P S P', P = I - eta_i
    e_i (A + B)_i — written here from the JSON."""
    case = cases["w-gaussian-quadpot-quadint__rwcd"]
    t = {term["kind"]: term for term in case.problem["energy"]["terms"]}
    A, b = np.array(t["quadratic_potential"]["A"]), np.array(t["quadratic_potential"]["b"])
    M = A + np.array(t["quadratic_interaction"]["B"])
    m, S = np.array(case.arrays["mean0"]), np.array(case.arrays["cov0"])
    ms, Ss = [m], [S]
    for i in case.arrays["coordinates"]:
        eta = case.arrays["step_sizes"][i]
        P = np.eye(2)
        P[i] -= eta * M[i]
        m = m.copy()
        m[i] -= eta * (A @ (m - b))[i]
        S = P @ S @ P.T
        ms.append(m)
        Ss.append(S)
    assert compare(case, {"mean_trajectory": np.stack(ms), "cov_trajectory": np.stack(Ss)}).passed


def test_blob_entropy_gradient_is_n_times_the_particle_derivative(cases):
    case = cases["w-particles-kl-blob__forward_euler"]
    energy = energy_from_spec(case.problem["energy"]["terms"])
    X = np.array(case.arrays["particles0"])
    fd = X.shape[0] * fd_gradient(lambda Y: energy.value(Y), X)
    ref = case.arrays["wasserstein_gradient"]
    # Richardson FD: truncation O(eps^4) + rounding ~eps_mach/eps, ~1e-9 relative here; far below any modelling error
    assert np.max(np.abs(fd - ref)) <= 1e-7 * np.max(np.abs(ref))


def _kl_target(case):
    t = case.problem["energy"]["terms"][0]
    return np.array(t["mean"]), np.array(t["cov"])


def test_gaussian_kl_forward_euler_is_the_explicit_gaussian_recursion(cases):
    case = cases["w-gaussian-kl__forward_euler"]
    mu, S_pi = _kl_target(case)
    P, h, I = np.linalg.inv(S_pi), case.problem["h"], np.eye(2)
    m, S = np.array(case.arrays["mean0"]), np.array(case.arrays["cov0"])
    ms, Ss = [m], [S]
    for _ in range(case.problem["n_steps"]):  # docs/theory/forward-euler-breakdown.md:
        # S+ = (I + h(S^-1 - P)) S (I + h(S^-1 - P))
        T = I + h * (np.linalg.inv(S) - P)
        m, S = m - h * P @ (m - mu), T @ S @ T
        ms.append(m)
        Ss.append(S)
    assert compare(case, {"mean_trajectory": np.stack(ms), "cov_trajectory": np.stack(Ss)}).passed


def test_gaussian_kl_exact_flow_is_the_OU_solution_by_expm(cases):
    case = cases["w-gaussian-kl__jko"]
    mu, S_pi = _kl_target(case)
    P, h = np.linalg.inv(S_pi), case.problem["h"]
    m0, S0 = np.array(case.arrays["mean0"]), np.array(case.arrays["cov0"])
    E = [expm(-k * h * P) for k in range(case.problem["n_steps"] + 1)]
    means = np.stack([mu + e @ (m0 - mu) for e in E])
    covs = np.stack([S_pi + e @ (S0 - S_pi) @ e.T for e in E])
    assert compare(case, {"exact_mean": means, "exact_cov": covs}).passed
    # JKO mean (derived: the potential part of the prox is linear): (I + hP) m+ = m + hP mu
    m, jko = m0, [m0]
    for _ in range(case.problem["n_steps"]):
        m = np.linalg.solve(np.eye(2) + h * P, m + h * P @ mu)
        jko.append(m)
    assert compare(case, {"mean_trajectory": np.stack(jko)}).passed
    # both schemes are first order: at h = 0.1 they are O(h) away from the exact flow (and not equal to it)
    fe = cases["w-gaussian-kl__forward_euler"]
    e_fe = fe.arrays["cov_trajectory"][-1] - case.arrays["exact_cov"][-1]
    e_jko = case.arrays["cov_trajectory"][-1] - case.arrays["exact_cov"][-1]
    assert 1e-4 < np.max(np.abs(e_fe)) < 0.1 and 1e-4 < np.max(np.abs(e_jko)) < 0.1


def test_check_names_the_worst_particle(cases, tmp_path, capsys):
    case = cases["w-particles-gaussint-confined__forward_euler"]
    save_case(case, tmp_path / "c")
    traj = np.array(case.arrays["particle_trajectory"])
    traj[3, 17, 1] += 1e-6
    np.savez(tmp_path / "t.npz", particle_trajectory=traj)
    assert cli.main(["check", str(tmp_path / "c"), str(tmp_path / "t.npz"), "--json"]) == 1
    q = json.loads(capsys.readouterr().out)["quantities"][0]
    assert q["worst_index"] == [3, 17, 1] and q["n_failing"] == 1


@pytest.mark.parametrize("mutate, match", [
    (lambda m: m["problem"]["energy"]["terms"][0].pop("bandwidth"), "bandwidth"),
    (lambda m: m["problem"]["energy"]["terms"][0].pop("mean"), "misses"),
    (lambda m: m["problem"].update(n_steps=3), "shape"),
    (lambda m: m["problem"].update(representation="gaussian"), "does not belong"),
    (lambda m: m.update(kind="ode"), "does not describe"),
])
def test_inconsistent_wasserstein_metadata_is_refused(cases, tmp_path, capsys, mutate, match):
    case = cases["w-particles-kl-blob__forward_euler"]
    save_case(case, tmp_path / "c")
    meta = json.loads((tmp_path / "c" / "case.json").read_text())
    mutate(meta)
    (tmp_path / "c" / "case.json").write_text(json.dumps(meta))
    with pytest.raises(CaseFormatError, match=match):
        load_case(tmp_path / "c")
    np.savez(tmp_path / "t.npz", energy=case.arrays["energy"])
    assert cli.main(["check", str(tmp_path / "c"), str(tmp_path / "t.npz")]) == 2


def test_bad_problems_are_refused():
    base = dict(name="w", terms=({"kind": "entropy", "bandwidth": None},), representation="gaussian",
                step="forward_euler", h=0.1, n_steps=2, mean0=(0.0, 0.0), cov0=((1.0, 0.0), (0.0, 1.0)))
    assert build_wasserstein_case(WassersteinProblem(**base)).name == "w"
    with pytest.raises(ValueError, match="step"):
        build_wasserstein_case(WassersteinProblem(**{**base, "step": "rk4"}))
    with pytest.raises(ValueError, match="representation"):
        build_wasserstein_case(WassersteinProblem(**{**base, "representation": "grid"}))
    with pytest.raises(ValueError, match="unknown kind"):
        energy_from_spec([{"kind": "magic"}])
    with pytest.raises(ValueError, match="missing key"):
        energy_from_spec([{"kind": "quadratic_potential"}])
    with pytest.raises(TypeError, match="problem"):
        build_wasserstein_case({"name": "w"})
