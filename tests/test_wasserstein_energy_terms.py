"""The registry of storable energy terms: family names, spec keys, and the to_spec/from_spec round trip against the
term objects the oracle's Wasserstein cases store (docs/case-format.md)."""
import json

import numpy as np
import pytest

from refimpl.wasserstein.energies import (ENERGIES, Energy, Entropy, GaussianInteraction, KLToGaussian, Potential,
                                          QuadraticInteraction, QuadraticPotential, energy_from_terms,
                                          energy_to_terms, kl_to_gaussian)

# The ``problem.energy.terms`` lists of the exported Wasserstein battery (copied verbatim from its case.json files:
# w-particles-quadpot-quadint__*, w-gaussian-quad-entropy__*, w-*-gaussint-confined__*, w-particles-kl-blob__*,
# w-gaussian-kl__*), with their key order.
STORED_TERM_LISTS = [
    [{"kind": "quadratic_potential", "A": [[2.0, 0.5], [0.5, 1.0]], "b": [0.2, -0.1]},
     {"kind": "quadratic_interaction", "B": [[0.5, 0.1], [0.1, 0.3]]}],
    [{"kind": "quadratic_potential", "A": [[2.0, 0.5], [0.5, 1.0]], "b": [0.2, -0.1]},
     {"kind": "quadratic_interaction", "B": [[0.5, 0.1], [0.1, 0.3]]}, {"kind": "entropy", "bandwidth": None}],
    [{"kind": "gaussian_interaction", "amplitude": 1.0, "width": 0.8},
     {"kind": "quadratic_potential", "A": [[1.0, 0.0], [0.0, 1.0]], "b": [0.0, 0.0]}],
    [{"kind": "kl_to_gaussian", "mean": [0.0, 0.0], "cov": [[1.0, 0.2], [0.2, 0.7]], "bandwidth": 0.4}],
    [{"kind": "kl_to_gaussian", "mean": [0.0, 0.0], "cov": [[1.0, 0.2], [0.2, 0.7]], "bandwidth": None}],
]

# the required keys per kind (the case format's rule; the oracle's loader checks the same)
REQUIRED_KEYS = {"quadratic_potential": ("A",), "quadratic_interaction": ("B",),
                 "gaussian_interaction": ("amplitude", "width"), "entropy": (), "kl_to_gaussian": ("mean", "cov")}


def test_registry_holds_the_five_case_format_kinds():
    assert ENERGIES.names() == sorted(REQUIRED_KEYS)
    classes = {"quadratic_potential": QuadraticPotential, "quadratic_interaction": QuadraticInteraction,
               "gaussian_interaction": GaussianInteraction, "entropy": Entropy, "kl_to_gaussian": KLToGaussian}
    for kind, cls in classes.items():
        assert ENERGIES.get(kind) is cls and cls.family == kind
        assert cls.spec_keys == REQUIRED_KEYS[kind]
        assert isinstance(cls.formula, str) and cls.formula


@pytest.mark.parametrize("terms", STORED_TERM_LISTS, ids=lambda t: "+".join(x["kind"] for x in t))
def test_to_spec_reproduces_the_stored_term_objects(terms):
    """from_spec then to_spec gives back each stored term object exactly (keys, key order, values), term by term and
    for the sum (energy_from_terms / energy_to_terms)."""
    for t in terms:
        obj = ENERGIES.from_spec(t, key="kind")
        assert json.dumps(obj.to_spec()) == json.dumps(t)
    energy = energy_from_terms(terms)
    assert json.dumps(energy_to_terms(energy)) == json.dumps(terms)


@pytest.mark.parametrize("terms", STORED_TERM_LISTS, ids=lambda t: "+".join(x["kind"] for x in t))
def test_energy_from_terms_builds_what_the_oracle_builds(terms):
    """Same energy, same numbers (bit for bit) as the oracle's per-term rules, on particles and on a Gaussian."""
    wc = pytest.importorskip("refimpl.oracle.wasserstein_cases")
    if not hasattr(wc, "energy_from_spec"):
        pytest.skip("the oracle reads the registry itself")
    from refimpl.oracle.arithmetic import PAIR_KERNEL_EXP  # the oracle pins the pair kernels' exp
    ours, theirs = energy_from_terms(terms, exp=PAIR_KERNEL_EXP), wc.energy_from_spec(terms)
    assert ours.name == theirs.name
    X = np.random.default_rng(3).standard_normal((17, 2))
    from refimpl.wasserstein.measures import GaussianMeasure
    g = GaussianMeasure([0.3, -0.2], [[1.0, 0.1], [0.1, 0.6]])
    assert ours.gaussian_value(g) == theirs.gaussian_value(g)
    for a, b in zip(ours.bures_wasserstein_gradient(g), theirs.bures_wasserstein_gradient(g)):
        assert np.array_equal(a, b)
    if all(t.get("bandwidth", 1.0) is not None for t in terms):
        assert ours.value(X) == theirs.value(X)
        assert np.array_equal(ours.wasserstein_gradient(X), theirs.wasserstein_gradient(X))


def test_bad_term_objects_raise_clear_errors():
    with pytest.raises(ValueError, match="non-empty list"):
        energy_from_terms([])
    with pytest.raises(ValueError, match=r"terms\[0\]: unknown kind 'cubic'"):
        energy_from_terms([{"kind": "cubic"}])
    with pytest.raises(ValueError, match=r"terms\[1\] \(gaussian_interaction\): missing key 'width'"):
        energy_from_terms([{"kind": "entropy", "bandwidth": None}, {"kind": "gaussian_interaction", "amplitude": 1.0}])
    with pytest.raises(ValueError, match="misses the keys"):
        QuadraticPotential.from_spec({"kind": "quadratic_potential"})
    with pytest.raises(ValueError, match="expected kind"):
        Entropy.from_spec({"kind": "quadratic_potential", "A": [[1.0]]})
    with pytest.raises(ValueError, match="not a storable"):
        energy_to_terms(2.0 * QuadraticPotential(np.eye(2)))
    with pytest.raises(ValueError, match="not a storable"):
        energy_to_terms(Potential(lambda X: X[:, 0], lambda X: np.ones_like(X)))
    with pytest.raises(TypeError, match="energy must be an Energy"):
        energy_to_terms("entropy")


def test_kl_to_gaussian_is_the_registered_term():
    kl = kl_to_gaussian(np.zeros(2), np.eye(2), bandwidth=0.5)
    assert isinstance(kl, KLToGaussian) and isinstance(kl, Energy)
    assert kl.to_spec() == {"kind": "kl_to_gaussian", "mean": [0.0, 0.0], "cov": [[1.0, 0.0], [0.0, 1.0]],
                            "bandwidth": 0.5}
    assert kl.name == "KL(. || N(mu, Sigma), d=2)"
