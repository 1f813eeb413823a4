"""refimpl — a reference implementation to check gradients against.

Sub-packages
------------
``refimpl.ad``          tape-based reverse-mode autodiff in pure NumPy, and gradient checks.
``refimpl.ode``         explicit ODE schemes as data, discrete and continuous adjoints.
``refimpl.wasserstein`` Wasserstein gradient flows on particles and Gaussians.
``refimpl.testing``     hypothesis strategies for property tests, ``assert_gradient_matches``.
``refimpl.oracle``      golden cases as data (JSON + .npz), ``compare`` (CLI: ``cases export``, ``check``).
``refimpl.problems``    test problems with known answers (closed-form ODE cases, the neural-ODE problems of [A]).
``refimpl.arguments``   the argument checks every public entry point shares (errors name the argument), dtype policy.
``refimpl.registry``    the one registry type of every extensible family (fields, losses, schemes, energies, kinds).
``refimpl.backends``    the one backend vocabulary, ``"auto" | "numpy" | "numba"``.

The theory is in ``docs/`` (``docs/README.md`` is the index).
"""
__version__ = "0.1.0"
