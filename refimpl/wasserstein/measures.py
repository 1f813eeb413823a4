"""The Gaussian representation of a measure: N(m, Σ) with Σ symmetric positive definite."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from refimpl.arguments import as_symmetric_matrix, as_vector


def check_sample_request(n, seed) -> None:
    """The arguments of a deterministic sampler: ``n`` a positive integer (``ValueError`` otherwise), ``seed`` an
    integer (``TypeError`` otherwise); bools are refused."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer, got {type(seed).__name__}")


def freeze_mean_cov(obj, **cov_check) -> None:
    """Validate ``obj.mean`` (a vector) and ``obj.cov`` (a symmetric d × d matrix; ``cov_check`` e.g.
    ``positive_definite=True``) and store read-only float64 copies on the frozen dataclass ``obj``."""
    mean = as_vector(obj.mean, None, "mean").copy()
    cov = as_symmetric_matrix(obj.cov, mean.shape[0], "cov", **cov_check).copy()
    mean.setflags(write=False)
    cov.setflags(write=False)
    object.__setattr__(obj, "mean", mean)
    object.__setattr__(obj, "cov", cov)


@dataclass(frozen=True, eq=False)
class GaussianMeasure:
    """The Gaussian measure N(mean, cov) on ℝᵈ; ``cov`` must be symmetric positive definite.

    Construction validates and stores float64 copies (``cov`` exactly symmetrised); the arrays are made read-only so a
    measure cannot change after it was checked.
    """

    mean: np.ndarray
    cov: np.ndarray

    def __post_init__(self):
        freeze_mean_cov(self, positive_definite=True)

    @property
    def dim(self) -> int:
        """The dimension d."""
        return int(self.mean.shape[0])

    def sample(self, n: int, seed: int) -> np.ndarray:
        """``n`` i.i.d. samples as an (n, d) array, from ``numpy.random.default_rng(seed)`` (deterministic).

        x = m + L z with L the Cholesky factor of Σ and z standard normal.
        """
        check_sample_request(n, seed)
        rng = np.random.default_rng(int(seed))
        z = rng.standard_normal((int(n), self.dim))
        return self.mean + z @ np.linalg.cholesky(self.cov).T

    def __repr__(self):
        return f"GaussianMeasure(mean={self.mean.tolist()}, cov={self.cov.tolist()})"


def as_gaussian_measure(g, name: str = "g") -> GaussianMeasure:
    """Check that ``g`` is a :class:`GaussianMeasure` (it validated itself on construction); ``TypeError`` naming
    ``name`` otherwise."""
    if not isinstance(g, GaussianMeasure):
        raise TypeError(f"{name} must be a GaussianMeasure, got {type(g).__name__}")
    return g
