r"""Where the polynomial of :mod:`refimpl.numerics.polynomial_exp` comes from: a minimax fit of e^r on the reduced
range, computed here with mpmath (optional; only this script and the tests need it)::

    python -m refimpl.numerics.exp_minimax      # prints the coefficients as hex floats

The fit. On |r| ≤ r_max = ln2/2 + 10⁻¹² (the reduced argument of step 3 in polynomial_exp), find
p(r) = 1 + r + Σ_{k=2}^{11} c_k r^k minimising the largest *relative* error max |p(r)/e^r − 1|. c₀ = c₁ = 1 are
kept exact so that p(0) = 1 (exp(0) = 1 exactly) and so that the last two Horner steps add nothing to the
approximation error. Two stages, each a Remez exchange (Remez 1934; Muller, *Elementary Functions*, 3rd ed., §3.6)
for the linear problem

    Σ_k c_k r_i^k / e^{r_i} + (−1)^i E = 1 − (fixed part)(r_i) / e^{r_i},   i = 0 … m−1,

solved at 40 digits on a reference of m = (number of free coefficients) + 1 points, the reference moved to the
alternating extrema of the error on a grid of 8001 points until the extrema agree to 10⁻⁸:

1. c₂ … c₁₁ free: relative error 0.0326·2⁻⁵³; then c₂ is rounded to double (0x1.000000000000ap-1);
2. c₃ … c₁₁ free with that c₂: relative error 0.0334·2⁻⁵³; c₃ … c₁₁ rounded to double.

With every coefficient a double, the relative error of the exact-arithmetic polynomial is 0.0354·2⁻⁵³ (measured on
the grid here; :func:`refimpl.numerics.polynomial_exp.error_bound` re-evaluates it). Rounding c₂ first and
refitting the rest matters: rounding all ten stage-1 coefficients at once gives 0.0996·2⁻⁵³ (c₂'s rounding error is
multiplied by r² ≤ 0.12, the others by r³ ≤ 0.042 and less). A degree-10 polynomial cannot reach ≈ 2⁻⁵³ here
(Taylor degree 12 leaves 1.5·2⁻⁵³; minimax of degree 10 ≈ 2·2⁻⁵³), and fixing c₂ = ½ costs 0.218·2⁻⁵³.
"""
from __future__ import annotations

import sys

__all__ = ["R_MAX_TEXT", "remez_relative", "fit", "relative_error"]

#: r_max of the reduced range, as text for mpmath (ln 2 / 2 + 10⁻¹²: polynomial_exp's step 3)
R_MAX_TEXT = "1e-12"
DEGREE = 11
GRID = 8001


def _mp():
    import mpmath

    mpmath.mp.dps = 40
    return mpmath


def _r_max(mp):
    return mp.log(2) / 2 + mp.mpf(R_MAX_TEXT)


def _poly(mp, fixed, free, r):
    """1 + r + Σ fixed_k r^{k+2} + Σ free_k r^{k+2+len(fixed)}."""
    s = mp.mpf(0)
    for c in reversed(list(fixed) + list(free)):
        s = s * r + c
    return 1 + r + r * r * s


def remez_relative(fixed, tol=1e-8, iterations=40):
    """Minimax coefficients (mpmath numbers) of the free tail c_{2+len(fixed)} … c₁₁ of p(r) = 1 + r + Σ c_k r^k for
    the relative error on [−r_max, r_max], c₂ … given by ``fixed``. Returns (free coefficients, max relative error on
    the grid)."""
    mp = _mp()
    a = _r_max(mp)
    nfree = DEGREE - 1 - len(fixed)
    m = nfree + 1
    grid = [-a + 2 * a * i / (GRID - 1) for i in range(GRID)]
    # initial reference: Chebyshev nodes without the one nearest 0 (there the error vanishes to second order)
    nodes = sorted(a * mp.cos(mp.pi * (i + 0.5) / (m + 1)) for i in range(m + 1))
    nodes.pop(min(range(len(nodes)), key=lambda i: abs(nodes[i])))
    nodes[0], nodes[-1] = -a, a
    ref = nodes
    shift = 2 + len(fixed)
    for _ in range(iterations):
        A = mp.matrix(m, nfree + 1)
        b = mp.matrix(m, 1)
        for i, r in enumerate(ref):
            er = mp.exp(r)
            for k in range(nfree):
                A[i, k] = r ** (k + shift) / er
            A[i, nfree] = (-1) ** i
            b[i] = 1 - _poly(mp, fixed, [], r) / er
        x = mp.lu_solve(A, b)
        free = [x[k] for k in range(nfree)]
        err = [_poly(mp, fixed, free, r) / mp.exp(r) - 1 for r in grid]
        extrema = [(grid[i], err[i]) for i in range(GRID) if err[i] != 0
                   and (i == 0 or abs(err[i]) >= abs(err[i - 1])) and (i == GRID - 1 or abs(err[i]) >= abs(err[i + 1]))]
        alternating = []
        for r, e in extrema:
            if alternating and (alternating[-1][1] > 0) == (e > 0):
                if abs(e) > abs(alternating[-1][1]):
                    alternating[-1] = (r, e)
            else:
                alternating.append((r, e))
        worst = max(abs(e) for _, e in alternating)
        while len(alternating) > m:
            alternating.pop(0 if abs(alternating[0][1]) < abs(alternating[-1][1]) else -1)
        if len(alternating) < m:
            raise RuntimeError(f"Remez exchange: {len(alternating)} alternating extrema, {m} needed")
        ref = [r for r, _ in alternating]
        if worst / min(abs(e) for _, e in alternating) < 1 + tol:
            return free, worst
    raise RuntimeError("Remez exchange did not converge")


def fit() -> tuple[float, ...]:
    """The two stages of the module docstring: (c₀, …, c₁₁) as doubles."""
    stage1, _ = remez_relative([])
    c2 = float(stage1[0])
    mp = _mp()
    stage2, _ = remez_relative([mp.mpf(c2)])
    return (1.0, 1.0, c2) + tuple(float(c) for c in stage2)


def relative_error(coefficients, points: int = GRID) -> float:
    """max |p(r)/e^r − 1| / 2⁻⁵³ over ``points`` grid points of [−r_max, r_max], p with the given double coefficients
    evaluated exactly (40 digits)."""
    mp = _mp()
    a = _r_max(mp)
    cs = [mp.mpf(c) for c in coefficients]
    worst = mp.mpf(0)
    for i in range(points):
        r = -a + 2 * a * i / (points - 1)
        s = mp.mpf(0)
        for c in reversed(cs):
            s = s * r + c
        worst = max(worst, abs(s / mp.exp(r) - 1))
    return float(worst / mp.mpf(2) ** -53)


if __name__ == "__main__":
    cs = fit()
    for k, c in enumerate(cs):
        print(f"c{k} = {c.hex()}  # {c!r}")
    print(f"relative error {relative_error(cs):.4f} u", file=sys.stderr)
