r"""The algebra of energies on P₂(ℝᵈ): the :class:`Energy` base, sums and real factors, the term registry.

Energies, their first variations and Wasserstein gradients: docs/theory/wasserstein-gradients.md.

An :class:`Energy` F is evaluated on two representations of a measure ρ:

**Particles** — an (N, d) array X, the empirical measure ρ_X = (1/N) Σ_k δ_{x_k}:

* ``value(X)`` = F(ρ_X), written with :mod:`refimpl.ad.ops`, so on a tape :class:`~refimpl.ad.Variable` it records
  and ``refimpl.ad.grad(F.value)(X)`` works;
* ``first_variation(X, Y)`` = (δF/δρ)[ρ_X] evaluated at the points Y (M, d) → (M,); written with ops in Y (X is a
  constant ndarray), so ``refimpl.ad.grad(lambda Y: ops.sum(F.first_variation(X, Y)))(X)`` is the tape route to
  the Wasserstein gradient;
* ``wasserstein_gradient(X)`` = ∇ₓ(δF/δρ)[ρ_X](x_k) for every particle → (N, d), closed form (NumPy/Numba);
* ``coordinate_gradient(X, i)`` = ``wasserstein_gradient(X)[:, i]`` → (N,), at the cost of one coordinate where the
  energy allows it (O(Nd) for quadratic potentials and quadratic interaction; the pairwise energies need full
  distances and cost O(N²d) either way);
* ``coordinate_smoothness(d)`` → (d,) constants Lᵢ, ``smoothness(d)`` → L, or ``None`` where unknown/infinite.

Three routes therefore agree (derived; the tests check all three): for every energy below F(ρ_X) is a smooth function
of X and the particle gradient satisfies  N ∂F(ρ_X)/∂x_k = ∇ₓ(δF/δρ)[ρ_X](x_k), which is the tape gradient of the
first variation at the particles, which is ``wasserstein_gradient``. (For the potential and interaction energies this
is the chain rule; for the entropy it holds because the particle entropy is the *blob* entropy, see :class:`Entropy`.)

Coordinate-wise smoothness (docs/theory/coordinate-descent.md, condition (C)): F is Lᵢ-smooth along eᵢ if
F((Id + eᵢφ)#ρ) ≤ F(ρ) + ∫ ∂ᵢ(δF/δρ) φ dρ + (Lᵢ/2) ∫ φ² dρ for all ρ, φ; sufficient constants are
Lᵢ = sup ∂ᵢᵢV for a potential and Lᵢ = sup ∂ᵢᵢW for an interaction (derived there), L = sup λ_max(∇²V) resp.
sup λ_max(∇²W) for the full-gradient analogue. Sums add their constants (an upper bound for L).

**Gaussians** — a :class:`~refimpl.wasserstein.measures.GaussianMeasure` N(m, Σ):

* ``gaussian_value(g)`` = F(N(m, Σ)) in closed form;
* ``gaussian_value_at(mean, cov)`` = the same closed form with the moments given as arrays or tape
  :class:`~refimpl.ad.Variable` s (written with :mod:`refimpl.ad.ops` and :mod:`refimpl.ad.linalg`, so
  ``refimpl.ad.grad`` differentiates it in (m, Σ); on arrays it returns exactly ``gaussian_value``'s number);
* ``bures_wasserstein_gradient(g)`` → (∇_m F, ∇_Σ F) (∇_Σ symmetric), the Euclidean gradients of
  (m, Σ) ↦ F(N(m, Σ));
* ``gaussian_velocity(g)`` → (b, M): the Bures–Wasserstein gradient as an affine vector field
  v(x) = b + M(x − m) with b = ∇_m F, M = 2∇_Σ F. Derived: along the affine displacement x ↦ x + t(c + S(x − m))
  (S symmetric), m ↦ m + tc and Σ ↦ (I + tS)Σ(I + tS), so dF/dt = ⟨∇_m F, c⟩ + 2 tr(∇_Σ F SΣ) = ∫ v·(c + S(x−m)) dρ
  exactly when v = ∇_m F + 2∇_Σ F (x − m). For potentials, quadratic interaction and entropy on a Gaussian this *is*
  the Wasserstein gradient ∇δF/δρ; for the Gaussian interaction it is its L²(ρ) projection on affine fields.

Energies compose by sum (``F + G``, ``sum([...])``) and by a real factor (``c * F``).

**Storable terms.** The term classes that an oracle case can hold (``problem.energy.terms``, docs/case-format.md)
carry ``family`` (the case-format ``kind``), ``formula`` (text), ``spec_keys`` (the required keys of their term
object), ``to_spec()`` (the term object) and ``from_spec(spec)`` (its inverse), and are registered in
:data:`ENERGIES`; :func:`energy_to_terms` / :func:`energy_from_terms` map a sum of such terms to and from the list of
term objects. Adding a storable term is one class in one module of this package plus ``@ENERGIES.register``.

**Term descriptors.** A term with a structure that the RWCD/RWCP sweep kernels or the closed-form Gaussian steps
exploit (quadratic, Gaussian interaction, weighted L1, entropy) describes itself as data through
``descriptor(factor)`` (:mod:`refimpl.wasserstein.term_descriptors`); the default is ``None`` (no known structure).
The kernel dispatch and the Gaussian closed forms read only these descriptors.
"""
from __future__ import annotations

import numpy as np

from refimpl.ad import Variable, getvalue
from refimpl.arguments import as_coordinate, as_particles, as_real_scalar, underlying_array
from refimpl.registry import Registry
from refimpl.wasserstein.measures import GaussianMeasure, as_gaussian_measure

__all__ = ["ENERGIES", "Energy", "SumEnergy", "ScaledEnergy", "weighted_terms", "energy_to_terms",
           "energy_from_terms"]

#: the storable energy terms, by case-format ``kind`` (filled by the term modules of this package)
ENERGIES = Registry("energy term")


def _as_float_if_array(v):
    """A float for a plain NumPy result, the Variable itself on a tape."""
    return v if isinstance(v, Variable) else float(v)


class Energy:
    """An energy F: P₂(ℝᵈ) → ℝ. Subclasses implement the underscore methods; the public ones validate first.

    ``dim`` is the dimension the energy is tied to (e.g. the size of A in a quadratic potential), or ``None`` if it
    applies in every dimension.
    """

    dim: int | None = None
    name: str = "energy"

    #: storable terms (registered in :data:`ENERGIES`): the case-format ``kind``, the formula text and the required
    #: keys of the term object; ``None`` / empty for energies that have no term object
    family: str | None = None
    formula: str = ""
    spec_keys: tuple = ()
    #: keys a term needs (not null) when the measure is a particle cloud (e.g. the entropy's KDE bandwidth)
    particle_spec_keys: tuple = ()
    #: the keyword options of ``from_spec`` that choose how a pair kernel computes (``backend``, ``exp``: see
    #: :mod:`refimpl.wasserstein.pairwise_sums`); empty for terms computed without one
    kernel_options: tuple = ()

    # -- storage and kernels ---------------------------------------------------------------------------------------
    def to_spec(self) -> dict:
        """The JSON term object of a storable term (``{"kind": family, ...}``); ``ValueError`` for other energies."""
        raise ValueError(f"{self.name} is not a storable energy term (storable: {ENERGIES.names()})")

    @classmethod
    def _check_spec(cls, spec) -> dict:
        """``spec`` as a dict of kind ``cls.family`` holding ``cls.spec_keys``; ``ValueError`` naming what is wrong."""
        if not isinstance(spec, dict):
            raise TypeError(f"spec: a {cls.family} term must be a JSON object, got {type(spec).__name__}")
        if spec.get("kind") != cls.family:
            raise ValueError(f"spec: expected kind {cls.family!r}, got {spec.get('kind')!r}")
        missing = [k for k in cls.spec_keys if k not in spec]
        if missing:
            raise ValueError(f"spec: a {cls.family} term misses the keys {missing}")
        return spec

    def descriptor(self, factor: float):
        """``factor`` × this term as a descriptor of :mod:`refimpl.wasserstein.term_descriptors` (what the sweep
        kernels and the Gaussian closed forms read), or ``None`` if the term has no such structure (the default)."""
        return None

    # -- particles: public, validated ------------------------------------------------------------------------------
    def value(self, X):
        """F(ρ_X) for the empirical measure of the particles X (N, d); float, or a Variable on a tape."""
        X = as_particles(X, "X", allow_variable=True)
        self._check_dim(underlying_array(X).shape[1])
        return _as_float_if_array(self._value(X))

    def first_variation(self, X, Y):
        """(δF/δρ)[ρ_X](y) at each row y of Y (M, d) → (M,). Y may be a tape Variable; X is a constant."""
        X = as_particles(X, "X")
        Y = as_particles(Y, "Y", allow_variable=True)
        if underlying_array(Y).shape[1] != X.shape[1]:
            raise ValueError(f"Y must have d = {X.shape[1]} columns like X, got shape {underlying_array(Y).shape}")
        self._check_dim(X.shape[1])
        return self._first_variation(X, Y)

    def wasserstein_gradient(self, X):
        """∇ₓ(δF/δρ)[ρ_X] at each particle: an (N, d) ndarray (the particle velocity field is its negative)."""
        X = as_particles(X, "X")
        self._check_dim(X.shape[1])
        return self._wasserstein_gradient(X)

    def coordinate_gradient(self, X, i):
        """∂ᵢ(δF/δρ)[ρ_X] at each particle → (N,) = ``wasserstein_gradient(X)[:, i]``, cheaper where possible."""
        X = as_particles(X, "X")
        self._check_dim(X.shape[1])
        i = as_coordinate(i, X.shape[1])
        return self._coordinate_gradient(X, i)

    def coordinate_smoothness(self, d: int):
        """(d,) constants Lᵢ of condition (C) (module docstring), or ``None`` if some Lᵢ is unknown or infinite."""
        d = self._check_d(d)
        L = self._coordinate_smoothness(d)
        return None if L is None else np.asarray(L, dtype=np.float64)

    def smoothness(self, d: int):
        """Full-gradient smoothness constant L (an upper bound for sums), or ``None`` if unknown or infinite."""
        d = self._check_d(d)
        L = self._smoothness(d)
        return None if L is None else float(L)

    # -- Gaussians: public, validated ------------------------------------------------------------------------------
    def gaussian_value(self, g: GaussianMeasure) -> float:
        """F(N(m, Σ)) in closed form."""
        g = as_gaussian_measure(g)
        self._check_dim(g.dim)
        return float(self._gaussian_value(g))

    def gaussian_value_at(self, mean, cov):
        """F(N(mean, cov)) in closed form, with ``mean`` (d,) and ``cov`` (d, d) arrays or tape Variables: a float on
        arrays (equal to :meth:`gaussian_value`), a Variable on a tape. The values are checked as a
        :class:`GaussianMeasure` (cov symmetric positive definite); the tape gradient in ``cov`` is that of the closed
        form written for a general matrix, whose symmetric part is ∇_Σ F of :meth:`bures_wasserstein_gradient`."""
        checked = GaussianMeasure(getvalue(mean), getvalue(cov))
        self._check_dim(checked.dim)
        if not isinstance(mean, Variable) and not isinstance(cov, Variable):
            return float(self._gaussian_value(checked))
        return self._gaussian_value(_TracedMoments(mean, cov, checked.dim))

    def bures_wasserstein_gradient(self, g: GaussianMeasure):
        """(∇_m F, ∇_Σ F) of (m, Σ) ↦ F(N(m, Σ)): a (d,) and a symmetric (d, d) array."""
        g = as_gaussian_measure(g)
        self._check_dim(g.dim)
        gm, gS = self._bures_wasserstein_gradient(g)
        return np.asarray(gm, dtype=np.float64), 0.5 * (np.asarray(gS) + np.asarray(gS).T)

    def gaussian_velocity(self, g: GaussianMeasure):
        """(b, M) with the Bures–Wasserstein gradient field v(x) = b + M(x − m): b = ∇_m F, M = 2∇_Σ F."""
        gm, gS = self.bures_wasserstein_gradient(g)
        return gm, 2.0 * gS

    # -- composition -----------------------------------------------------------------------------------------------
    def __add__(self, other):
        if isinstance(other, (int, float)) and other == 0:
            return self
        if not isinstance(other, Energy):
            return NotImplemented
        return SumEnergy([self, other])

    def __radd__(self, other):  # so that sum([F, G]) works (starts from 0)
        if isinstance(other, (int, float)) and other == 0:
            return self
        return NotImplemented

    def __mul__(self, c):
        if isinstance(c, Energy):
            return NotImplemented
        return ScaledEnergy(c, self)

    __rmul__ = __mul__

    # -- helpers ---------------------------------------------------------------------------------------------------
    def _check_dim(self, d):
        if self.dim is not None and d != self.dim:
            raise ValueError(f"{self.name} is defined on R^{self.dim}, got points in R^{d}")

    def _check_d(self, d):
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
            raise ValueError(f"d must be a positive integer, got {d!r}")
        self._check_dim(int(d))
        return int(d)

    # -- defaults for subclasses -----------------------------------------------------------------------------------
    def _coordinate_gradient(self, X, i):
        return self._wasserstein_gradient(X)[:, i].copy()

    def _coordinate_smoothness(self, d):
        return None

    def _smoothness(self, d):
        return None

    def _gaussian_value(self, g):
        raise NotImplementedError(f"{self.name} has no closed form on Gaussians")

    def _bures_wasserstein_gradient(self, g):
        raise NotImplementedError(f"{self.name} has no closed-form Bures-Wasserstein gradient")

    def __repr__(self):
        return self.name


class _TracedMoments:
    """The moments (mean, cov) of a Gaussian as tape Variables (or arrays), for the closed forms ``_gaussian_value``;
    validated by :meth:`Energy.gaussian_value_at` on their values."""

    __slots__ = ("mean", "cov", "dim")

    def __init__(self, mean, cov, dim):
        self.mean, self.cov, self.dim = mean, cov, dim


# =================================================================================================================
# composition
# =================================================================================================================

class SumEnergy(Energy):
    """F = Σ_t F_t + offset (a constant). Every quantity is the sum of the terms'; Lᵢ and L add (L an upper bound);
    unknown if any term's is unknown."""

    def __init__(self, terms, offset=0.0):
        flat = []
        off = as_real_scalar(offset, "offset")
        for t in terms:
            if not isinstance(t, Energy):
                raise TypeError(f"terms must be Energy instances, got {type(t).__name__}")
            if isinstance(t, SumEnergy):
                flat.extend(t.terms)
                off += t.offset
            else:
                flat.append(t)
        if not flat:
            raise ValueError("terms must hold at least one energy")
        dims = {t.dim for t in flat if t.dim is not None}
        if len(dims) > 1:
            raise ValueError(f"terms are defined in different dimensions {sorted(dims)}")
        self.terms = tuple(flat)
        self.offset = off
        self.dim = dims.pop() if dims else None
        self.name = " + ".join(t.name for t in self.terms) + (f" + {off:g}" if off else "")

    def _value(self, X):
        total = self.terms[0]._value(X)
        for t in self.terms[1:]:
            total = total + t._value(X)
        return total + self.offset

    def _first_variation(self, X, Y):
        total = self.terms[0]._first_variation(X, Y)
        for t in self.terms[1:]:
            total = total + t._first_variation(X, Y)
        return total + self.offset

    def _wasserstein_gradient(self, X):
        return sum(t._wasserstein_gradient(X) for t in self.terms)

    def _coordinate_gradient(self, X, i):
        return sum(t._coordinate_gradient(X, i) for t in self.terms)

    def _coordinate_smoothness(self, d):
        parts = [t._coordinate_smoothness(d) for t in self.terms]
        return None if any(p is None for p in parts) else sum(np.asarray(p, dtype=np.float64) for p in parts)

    def _smoothness(self, d):
        parts = [t._smoothness(d) for t in self.terms]
        return None if any(p is None for p in parts) else float(sum(parts))

    def _gaussian_value(self, g):
        return sum(t._gaussian_value(g) for t in self.terms) + self.offset

    def _bures_wasserstein_gradient(self, g):
        grads = [t._bures_wasserstein_gradient(g) for t in self.terms]
        return sum(gm for gm, _ in grads), sum(gS for _, gS in grads)


class ScaledEnergy(Energy):
    """c · F for a finite real c. Lᵢ, L scale by c when c ≥ 0 (unknown for c < 0)."""

    def __init__(self, factor, energy):
        if not isinstance(energy, Energy):
            raise TypeError(f"energy must be an Energy, got {type(energy).__name__}")
        self.factor = as_real_scalar(factor, "factor")
        self.energy = energy
        self.dim = energy.dim
        self.name = f"{self.factor:g}*({energy.name})"

    def _value(self, X):
        return self.factor * self.energy._value(X)

    def _first_variation(self, X, Y):
        return self.factor * self.energy._first_variation(X, Y)

    def _wasserstein_gradient(self, X):
        return self.factor * self.energy._wasserstein_gradient(X)

    def _coordinate_gradient(self, X, i):
        return self.factor * self.energy._coordinate_gradient(X, i)

    def descriptor(self, factor):
        return self.energy.descriptor(factor * self.factor)

    def _coordinate_smoothness(self, d):
        L = self.energy._coordinate_smoothness(d)
        return None if (L is None or self.factor < 0) else self.factor * np.asarray(L)

    def _smoothness(self, d):
        L = self.energy._smoothness(d)
        return None if (L is None or self.factor < 0) else self.factor * L

    def _gaussian_value(self, g):
        return self.factor * self.energy._gaussian_value(g)

    def _bures_wasserstein_gradient(self, g):
        gm, gS = self.energy._bures_wasserstein_gradient(g)
        return self.factor * gm, self.factor * gS


def weighted_terms(energy: Energy) -> list:
    """The leaves of a sum/scaled energy tree with their total factors: F = Σ_k c_k F_k + const, as [(c_k, F_k)]
    (constant offsets dropped). Order: the depth-first order of a stack walk (the last term first), fixed, so that sums
    built from the list are reproducible."""
    leaves, stack = [], [(1.0, energy)]
    while stack:
        c, e = stack.pop()
        if isinstance(e, SumEnergy):
            stack.extend((c, t) for t in e.terms)
        elif isinstance(e, ScaledEnergy):
            stack.append((c * e.factor, e.energy))
        else:
            leaves.append((c, e))
    return leaves


# =================================================================================================================
# storage: a sum of storable terms <-> a list of term objects
# =================================================================================================================

def energy_to_terms(energy: Energy) -> list:
    """The list of term objects (``to_spec()`` of each) of a storable term or of a plain sum of them, in the order of
    the sum; ``ValueError`` for anything else (a factor, a constant offset, a user potential)."""
    if not isinstance(energy, Energy):
        raise TypeError(f"energy must be an Energy, got {type(energy).__name__}")
    if energy.family is not None and energy.family in ENERGIES and type(energy) is ENERGIES.get(energy.family):
        return [energy.to_spec()]
    if type(energy) is SumEnergy:
        if energy.offset != 0.0:
            raise ValueError(f"{energy.name}: a constant offset has no term object")
        return [spec for t in energy.terms for spec in energy_to_terms(t)]
    raise ValueError(f"{energy.name} is not a storable energy term or a sum of them "
                     f"(storable: {ENERGIES.names()})")


def energy_from_terms(terms, *, backend="auto", exp="polynomial") -> Energy:
    """The energy of a non-empty list of term objects: ``ENERGIES.from_spec`` of each (by ``kind``), summed left to
    right (one term: the term itself). ``backend`` and ``exp`` go to the terms computed by a pair kernel (those whose
    ``kernel_options`` name them; :mod:`refimpl.wasserstein.pairwise_sums`), and are checked whether or not a term
    uses them."""
    from refimpl.backends import check_backend
    from refimpl.wasserstein.pairwise_sums import check_exp

    options = {"backend": check_backend(backend), "exp": check_exp(exp)}
    if not isinstance(terms, (list, tuple)) or not terms:
        raise ValueError("terms must be a non-empty list of energy terms")
    out = []
    for i, t in enumerate(terms):
        kind = t.get("kind") if isinstance(t, dict) else None
        if kind not in ENERGIES:
            raise ValueError(f"terms[{i}]: unknown kind {kind!r}")
        cls = ENERGIES.get(kind)
        missing = [k for k in cls.spec_keys if k not in t]
        if missing:
            raise ValueError(f"terms[{i}] ({kind}): missing key {missing[0]!r}")
        out.append(cls.from_spec(t, **{k: options[k] for k in cls.kernel_options}))
    return out[0] if len(out) == 1 else sum(out[1:], out[0])
