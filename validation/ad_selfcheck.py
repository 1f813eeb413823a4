"""AD self-check: every primitive's VJP against complex step and Richardson FD; Taylor rates; hvp vs FD of grad.

Claims (docs/theory/autodiff.md): the tape VJPs agree with complex step to ≤ 1e-13 relative (holomorphic primitives)
and with Richardson finite differences to ≤ 1e-8 (all); the Taylor test shows rates 1 and 2 for the tape gradient and
rate 1 for a gradient perturbed by 1 %; Hessian-vector products agree with FD of the gradient.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from refimpl.ad import getvalue, grad, hvp, ops
from refimpl.ad.checks import complex_step_gradient, fd_gradient, richardson_difference, taylor_test
from validation.claims import Claim


def _cases(rng):
    """(name, function of x, x, holomorphic) for each primitive, on fixed random inputs in the primitive's domain."""
    x = rng.uniform(-1.5, 1.5, (3, 4))
    pos = rng.uniform(0.5, 2.0, (3, 4))
    other = rng.uniform(-1.5, 1.5, (4,))
    nonzero = rng.uniform(0.5, 2.0, (4,)) * rng.choice([-1.0, 1.0], 4)
    M = rng.standard_normal((4, 2))
    w = 1.0 + 0.5 * np.cos(np.arange(24) * 1.3)

    def L(op):
        def loss(v):
            out = op(v)
            shape = np.shape(getvalue(out))
            return ops.sum(ops.multiply(w[: int(np.prod(shape, dtype=int))].reshape(shape), out))
        return loss

    unary = {"negative": (ops.negative, x), "exp": (ops.exp, x), "log": (ops.log, pos), "sqrt": (ops.sqrt, pos),
             "sin": (ops.sin, x), "cos": (ops.cos, x), "tanh": (ops.tanh, x), "sigmoid": (ops.sigmoid, x),
             "power (const 2.5)": (lambda v: ops.power(v, 2.5), pos), "power (both)": (lambda v: ops.power(pos, v), x),
             "add (broadcast)": (lambda v: ops.add(v, other), x), "subtract (broadcast)": (lambda v: other - v, x),
             "multiply (broadcast)": (lambda v: v * other, x), "divide (broadcast)": (lambda v: v / nonzero, x),
             "divide (denominator)": (lambda v: other / v, pos), "matmul": (lambda v: ops.matmul(v, M), x),
             "einsum": (lambda v: ops.einsum("ij,jk->ik", v, M), x), "sum (axis 0)": (lambda v: ops.sum(v, axis=0), x),
             "mean (axis 1)": (lambda v: ops.mean(v, axis=1), x), "reshape": (lambda v: ops.reshape(v, (2, 6)), x),
             "transpose": (ops.transpose, x), "getitem (fancy, repeated)": (lambda v: v[np.array([0, 0, 2]), 1:], x),
             "stack": (lambda v: ops.stack([v, v * v]), x), "concatenate": (lambda v: ops.concatenate([v, v], 1), x),
             "maximum": (lambda v: ops.maximum(v, other + 0.01), x), "minimum": (lambda v: ops.minimum(v, other), x),
             "where": (lambda v: ops.where(other > 0, v, v * v), x)}
    cases = [(name, L(op), val, True) for name, (op, val) in unary.items()]
    cases.append(("abs", L(ops.abs), x, False))
    return cases


def run(outdir: Path, quick: bool) -> list[Claim]:
    rng = np.random.default_rng(20261129)
    rows, worst_cs, worst_fd = [], 0.0, 0.0
    for name, f, x, holomorphic in _cases(rng):
        g = grad(f)(x)
        g_fd = fd_gradient(f, x)
        fd = np.max(np.abs(g - g_fd)) / max(np.max(np.abs(g_fd)), 1.0)
        cs = np.max(np.abs(g - complex_step_gradient(f, x))) / max(np.max(np.abs(g)), 1e-30) if holomorphic else None
        worst_fd = max(worst_fd, fd)
        worst_cs = max(worst_cs, cs) if cs is not None else worst_cs
        rows.append(f"| {name} | {'—' if cs is None else f'{cs:.1e}'} | {fd:.1e} |")

    A = rng.standard_normal((5, 5)) / np.sqrt(5)

    def f(v):
        return ops.sum(ops.tanh(ops.matmul(A, v)) * ops.sin(v)) + ops.sum(ops.power(1.0 + v * v, 1.5))

    x = rng.standard_normal(5)
    good, bad = taylor_test(f, x, grad(f)(x), seed=0), taylor_test(f, x, grad(f)(x) * 1.01, seed=0)
    v = rng.standard_normal(5)
    hv, hv_fd = hvp(f)(x, v), richardson_difference(grad(f), x, v)
    hv_err = np.max(np.abs(hv - hv_fd)) / max(np.max(np.abs(hv_fd)), 1.0)

    lines = ["# AD self-check", "", "Tape gradient of L(x) = Σ w∘op(x) (fixed weights w ∈ [½, 3/2]) against complex step "
             "(step 1e-30; relative ‖·‖∞) and Richardson FD (relative, unit floor).", "",
             "| primitive | vs complex step | vs Richardson FD |", "|---|---|---|", *rows, "",
             "## Taylor test (f = Σ tanh(Ax)∘sin x + Σ(1+x²)^1.5, x ∈ ℝ⁵)", "", "Correct gradient:", "", "```",
             repr(good), "```", "", "Gradient × 1.01:", "", "```", repr(bad), "```", "",
             f"Hessian-vector product vs Richardson FD of the tape gradient: {hv_err:.1e}", ""]
    (outdir / "ad_selfcheck.md").write_text("\n".join(lines))
    source = "docs/theory/autodiff.md"
    return [
        Claim(source, "holomorphic VJPs == complex step (≤ 1e-13 rel.)", worst_cs <= 1e-13, f"worst {worst_cs:.1e}"),
        Claim(source, "all VJPs == Richardson FD (≤ 1e-8)", worst_fd <= 1e-8, f"worst {worst_fd:.1e}"),
        Claim(source, "Taylor rates 1 and 2 for the tape gradient",
              abs(good.observed_rate0 - 1) <= 0.1 and abs(good.observed_rate1 - 2) <= 0.1,
              f"rates {good.observed_rate0:.3f}, {good.observed_rate1:.3f}"),
        Claim(source, "Taylor test detects a 1 % gradient error (r1 rate 1)",
              abs(bad.observed_rate1 - 1) <= 0.1 and not bad.passed, f"r1 rate {bad.observed_rate1:.3f}"),
        Claim(source, "hvp == FD of grad (≤ 1e-8)", hv_err <= 1e-8, f"{hv_err:.1e}"),
    ]
