"""refimpl — a reference implementation to check gradients against.

Sub-packages
------------
``refimpl.ad``          tape-based reverse-mode autodiff in pure NumPy, and gradient checks.
``refimpl.ode``         explicit ODE schemes as data, discrete and continuous adjoints.
``refimpl.wasserstein`` Wasserstein gradient flows on particles and Gaussians.
``refimpl.testing``     hypothesis strategies for property tests.
"""
__version__ = "0.1.0"
