r"""Worked example: check a plain PyTorch neural ODE against refimpl's oracle cases.

The "foreign implementation" is the few lines of PyTorch below — explicit Runge–Kutta (any tableau, e.g. the RK2 rules)
and the leapfrog scheme with a forward-Euler starter for :math:`\dot x = \tanh(W(t)x + b(t))` — differentiated by
``loss.backward()``. It reads *only* what a case provides: the scheme coefficients from ``case.json``; ``x0``,
``theta`` (one parameter sample per row) and the index maps ``stage_index`` / ``grid_index`` from ``arrays.npz``.

What it shows (the numbers are printed, and ``tests/test_oracle_torch_example.py`` asserts them):

1. ``theta.grad`` *is* refimpl's discrete adjoint :math:`\partial L_h/\partial\theta_r` (discretise-then-optimise):
   ``refimpl check`` passes, relative error at the rounding level (~1e-16; the case tolerance is 1e-10).
2. Read as "the gradient at time :math:`t_r`" (normalised by :math:`h w_r`, docs/theory/discrete-adjoint.md), it is
   *not* the continuous gradient :math:`\delta L/\delta\theta(t)` when the scheme has a parasitic mode — as [A] (Xu,
   Chen, Li, arXiv 2306.02192) predicts: for leapfrog it oscillates around half of :math:`\delta L/\delta\theta` and the
   error stays O(1) as N grows; the pair-sum correction (docs/theory/oscillations-and-corrections.md;
   :mod:`refimpl.ode.corrections`), applied to the *torch* gradient, converges at first order. For the RK2 Ralston rule
   with stage-time samples, :math:`G/h` carries the stage weight :math:`b_i` (O(1) error), :math:`G/(h b_i)` converges.

Run: ``python examples/torch_leapfrog.py [CASE_DIR ...]`` (without arguments it builds its own cases with refimpl).
Needs ``torch`` (CPU is enough); everything is float64.
"""
from __future__ import annotations

import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from refimpl.oracle import compare, load_case
from refimpl.oracle.ode_cases import OdeProblem, Sinusoid, build_case, problem_objects
from refimpl.ode.corrections import applicable_estimates
from refimpl.ode.fields import TanhField
from refimpl.ode.samples import parameter_samples

torch.set_default_dtype(torch.float64)


# ---------------------------------------------------------------------------------------------------------------------
# the foreign implementation: plain PyTorch, nothing from refimpl


def _coef(v) -> float:
    return float(Fraction(v)) if isinstance(v, str) else float(v)


def tanh_field(x: torch.Tensor, theta_r: torch.Tensor, d: int) -> torch.Tensor:
    """f(x, θ) = tanh(W x + b), θ = (W row-major, b)."""
    return torch.tanh(theta_r[: d * d].reshape(d, d) @ x + theta_r[d * d:])


def erk_step(tab: dict, x, theta, rows, h: float, d: int):
    """One explicit Runge–Kutta step with stage s using the parameter row ``rows[s]``."""
    A = [[_coef(v) for v in row] for row in tab["A"]]
    b = [_coef(v) for v in tab["b"]]
    k = []
    for i in range(len(b)):
        xi = x
        for j in range(i):
            if A[i][j] != 0:
                xi = xi + h * A[i][j] * k[j]
        k.append(tanh_field(xi, theta[int(rows[i])], d))
    out = x
    for i in range(len(b)):
        if b[i] != 0:
            out = out + h * b[i] * k[i]
    return out


def torch_solve(problem: dict, x0, theta, stage_index, grid_index):
    """x_0..x_N for an ERK tableau or the leapfrog method (with its starter), as a list of tensors."""
    d, h, N = problem["field"]["dim"], problem["h"], problem["N"]
    scheme = problem["scheme"]
    xs = [x0]
    if scheme["family"] == "runge_kutta":
        for n in range(N):
            xs.append(erk_step(scheme, xs[-1], theta, stage_index[n], h, d))
        return xs
    if [_coef(a) for a in scheme["alpha"]] != [-1.0, 0.0, 1.0] or [_coef(b) for b in scheme["beta"]] != [0.0, 2.0]:
        raise NotImplementedError("this example implements the leapfrog method only among multistep methods")
    xs.append(erk_step(problem["starter"], x0, theta, stage_index[0], h, d))  # x_1 from the starter
    for n in range(1, N):
        xs.append(xs[n - 1] + 2 * h * tanh_field(xs[n], theta[int(grid_index[n])], d))  # leapfrog
    return xs


def torch_gradient(case) -> dict:
    """trajectory, loss and d loss / d theta by ``loss.backward()`` — the arrays a foreign code hands to ``check``."""
    p = case.problem
    x0 = torch.tensor(np.array(case.x0))
    theta = torch.tensor(np.array(case.theta), requires_grad=True)
    grid_index = case.arrays.get("grid_index")
    xs = torch_solve(p, x0, theta, case.arrays["stage_index"], grid_index)
    y = torch.tensor(p["loss"]["y"])
    loss = 0.5 * torch.sum((xs[-1] - y) ** 2)
    loss.backward()
    return {"trajectory": torch.stack(xs).detach().numpy(), "loss": loss.detach().numpy(),
            "discrete_gradient": theta.grad.numpy()}


# ---------------------------------------------------------------------------------------------------------------------
# the check against refimpl


def example_problem(method: str, N: int) -> OdeProblem:
    """ẋ = tanh(W(t)x + b(t)), d = 2, T = 1, θ(t) = a + b sin 2t, L = ½|x(T) − y|²; samples at the stage times."""
    theta = Sinusoid((0.5, -0.8, 0.9, 0.3, 0.1, -0.2), (0.3, 0.2, -0.4, 0.5, 0.2, 0.1), 2.0)
    return OdeProblem(f"torch-example-{method}-N{N}", TanhField(2), method, (0.6, -0.4), (0.2, 0.5), 1.0, N, theta,
                      "stage", "forward_euler" if method == "leapfrog" else None)


def continuous_errors(case, grad: np.ndarray) -> dict:
    """max |estimate − δL/δθ| for each estimate of :func:`refimpl.ode.corrections.applicable_estimates` built from
    ``grad`` (the torch gradient); the reference δL/δθ is evaluated at each estimate's own times by refimpl's
    continuous adjoint (DOP853)."""
    from refimpl.ode.adjoint_ode import continuous_adjoint
    from refimpl.ode.fields import QuadraticLoss

    o = problem_objects(case)
    tf = case.problem["theta_function"]
    theta_fn = Sinusoid(tuple(tf["a"]), tuple(tf["b"]), tf["omega"])
    smp = parameter_samples(o["method"], o["T"], o["N"], o["layout"], o["starter"])
    out = {}
    for name, est in applicable_estimates(grad, smp).items():
        ok = np.all(np.isfinite(est.values), axis=1)
        ref = continuous_adjoint(o["field"], theta_fn, o["x0"], o["T"], QuadraticLoss(o["loss"].y),
                                 times=est.times[ok], rtol=1e-12, error_estimate=None).functional_gradient
        out[name] = float(np.max(np.abs(est.values[ok] - ref)))
    return out


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        if argv:
            cases = [load_case(a) for a in argv]
        else:
            cases = [build_case(example_problem(m, N)) for m in ("leapfrog", "ralston") for N in (32, 64, 128)]
        status = 0
        for case in cases:
            theirs = torch_gradient(case)
            np.savez(Path(tmp) / "theirs.npz", **theirs)  # what `python -m refimpl check CASE theirs.npz` reads
            report = compare(case, Path(tmp) / "theirs.npz")
            print(report.table())
            status = max(status, report.exit_code)
            if case.problem["theta_function"]["kind"] == "sinusoid":
                errs = continuous_errors(case, theirs["discrete_gradient"])
                print("  vs the continuous gradient dL/dtheta(t): "
                      + ", ".join(f"{k} max err {v:.3g}" for k, v in errs.items()) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
