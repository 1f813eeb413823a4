r"""The torchdiffeq adapter (optional peer: ``pip install torch torchdiffeq``; tested with torchdiffeq 0.2.5, torch
2.13, float64 CPU).

Fixed steps: ``odeint(func, x0, t=grid, method=m, options={"perturb": True})`` with ``m`` in ``euler``, ``midpoint``,
``rk4`` (torchdiffeq's fixed-grid "rk4" is Kutta's 3/8 rule, ``rk4_alt_step_func``); the solver steps exactly on the
grid (``grid_constructor`` returns ``t``). θ: the constant layout is one ``nn.Parameter`` (p,); the step layout the
table (N, p), row :math:`n(t)` for :math:`t \in (t_n, t_{n+1}]` (left-continuous; ``perturb=True`` moves the c = 0
and c = 1 stages inside step n, so every stage of step n reads row n — refimpl's step layout); the stage layout the
row whose sample time is nearest the stage's time. Adaptive: ``odeint(func, x0, t=[0, T], rtol, atol, method)``
(``dopri5``, ``bosh3``, ``fehlberg2``, ``adaptive_heun``), the accepted times recorded through torchdiffeq's
``callback_accept_step``. ``adjoint=True`` uses ``odeint_adjoint`` (same tolerances or grid for the backward solve).
The loss :math:`\tfrac12|x(T) - y|^2` is formed in torch and differentiated by ``backward()``.
"""
from __future__ import annotations

import numpy as np

from refimpl.audit.adapters import ADAPTERS, Adapter, MissingDependency, SolverOutput

__all__ = ["TorchdiffeqAdapter", "FIXED_METHODS", "ADAPTIVE_METHODS"]

FIXED_METHODS = ("euler", "midpoint", "rk4")
ADAPTIVE_METHODS = ("dopri5", "bosh3", "fehlberg2", "adaptive_heun")
#: what each fixed-grid method's name claims, as a refimpl scheme (the audit finds what it is: "rk4" is RK38)
CLAIMED_SCHEME = {"euler": "forward_euler", "midpoint": "midpoint", "rk4": "rk4"}


def _import():
    try:
        import torch
        import torchdiffeq
    except ImportError as e:
        raise MissingDependency(f"the torchdiffeq adapter needs torch and torchdiffeq ({e}); install them with "
                                f"`pip install torch torchdiffeq`") from e
    return torch, torchdiffeq


def torch_field(field_spec: dict, torch):
    """f(x, θ) of a refimpl field spec, in torch (families tanh, linear, two_layer_tanh)."""
    family, d = field_spec["family"], int(field_spec["dim"])
    if family == "tanh":
        return lambda x, th: torch.tanh(th[: d * d].reshape(d, d) @ x + th[d * d:])
    if family == "linear":
        return lambda x, th: th[: d * d].reshape(d, d) @ x + th[d * d:]
    if family == "two_layer_tanh" and int(field_spec["n_params"]) == 2 * int(field_spec["hidden"]) * d \
            + int(field_spec["hidden"]):
        m = int(field_spec["hidden"])
        return lambda x, th: (th[m * d + m:].reshape(d, m) @ torch.tanh(th[: m * d].reshape(m, d) @ x
                                                                         + th[m * d: m * d + m]))
    raise ValueError(f"field: the torchdiffeq adapter writes the families tanh, linear and two_layer_tanh (with "
                     f"trainable W2) in torch, got {family!r}")


@ADAPTERS.register
class TorchdiffeqAdapter(Adapter):
    """``TorchdiffeqAdapter(method, adjoint=False)`` (module docstring)."""

    family = "torchdiffeq"

    def __init__(self, method: str = "rk4", *, adjoint: bool = False):
        if method not in FIXED_METHODS + ADAPTIVE_METHODS:
            raise ValueError(f"method must be one of {FIXED_METHODS + ADAPTIVE_METHODS}, got {method!r}")
        if not isinstance(adjoint, bool):
            raise TypeError(f"adjoint must be a bool, got {type(adjoint).__name__}")
        _import()
        self.method, self.adjoint = method, adjoint
        self.name = f"torchdiffeq.{'odeint_adjoint' if adjoint else 'odeint'}({method})"

    def scheme_hint(self):
        """The refimpl scheme the method's name claims (fixed grid), or the convention name (adaptive)."""
        return CLAIMED_SCHEME.get(self.method, f"torchdiffeq:{self.method}")

    def __call__(self, member) -> SolverOutput:
        torch, torchdiffeq = _import()
        fixed = hasattr(member, "N")
        if fixed != (self.method in FIXED_METHODS):
            raise ValueError(f"method {self.method!r} is {'a fixed-grid' if not fixed else 'an adaptive'} method; "
                             f"this member is {'fixed-step' if fixed else 'adaptive'}")
        f = torch_field(member.field.to_spec(), torch)
        theta = torch.nn.Parameter(torch.tensor(np.asarray(member.theta), dtype=torch.float64))
        x0 = torch.tensor(np.asarray(member.x0), dtype=torch.float64, requires_grad=True)
        solve = torchdiffeq.odeint_adjoint if self.adjoint else torchdiffeq.odeint
        accepted = []
        if fixed:
            grid = torch.tensor(np.asarray(member.grid), dtype=torch.float64)
            layout = member.layout
            sample_times = torch.tensor(member.sample_times, dtype=torch.float64)

            def row(t):
                if layout == "constant":
                    return theta[0]
                if layout == "step":
                    n = torch.searchsorted(grid, t.reshape(1), right=False) - 1
                    return theta[int(torch.clamp(n, 0, theta.shape[0] - 1))]
                return theta[int(torch.argmin(torch.abs(sample_times - t)))]
        else:
            def row(t):
                return theta

        class Func(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.theta = theta

            def forward(self, t, x):
                return f(x, row(t))

        if not fixed:  # torchdiffeq warns about callbacks a fixed-grid solver does not call
            def callback_accept_step(self, t0, y0, dt):
                accepted.append(float(t0.detach()) + float(dt.detach()))
            Func.callback_accept_step = callback_accept_step
        func = Func()
        if fixed:
            kwargs = {"method": self.method, "options": {"perturb": True}}
            if self.adjoint:
                kwargs.update(adjoint_method=self.method, adjoint_options={"perturb": True},
                              adjoint_params=(theta,))
            out = solve(func, x0, grid, **kwargs)
        else:
            t = torch.tensor([0.0, member.T], dtype=torch.float64)
            kwargs = {"method": self.method, "rtol": member.rtol, "atol": member.atol}
            if self.adjoint:
                kwargs.update(adjoint_params=(theta,))
            out = solve(func, x0, t, **kwargs)
        y = torch.tensor(np.asarray(member.y), dtype=torch.float64)
        loss = 0.5 * torch.sum((out[-1] - y) ** 2)
        loss.backward()
        g_theta = theta.grad.detach().numpy() if theta.grad is not None else np.zeros(tuple(theta.shape))
        g_x0 = x0.grad.detach().numpy()
        if fixed:
            return SolverOutput(out.detach().numpy(), float(loss.detach()), g_theta, g_x0)
        times = np.array([0.0] + accepted) if accepted and not self.adjoint else None
        return SolverOutput(out.detach().numpy()[-1:], float(loss.detach()), g_theta, g_x0, times=times)

    def to_spec(self) -> dict:
        return {"family": "torchdiffeq", "method": self.method, "adjoint": self.adjoint}

    @classmethod
    def from_spec(cls, spec: dict) -> "TorchdiffeqAdapter":
        return cls(spec.get("method", "rk4"), adjoint=bool(spec.get("adjoint", False)))
