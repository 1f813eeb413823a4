"""Benchmarks of refimpl against peer libraries. Entry point: ``python benchmarks/run.py [--quick]``.

Not part of the test suite and not imported by the package: peers (torch, jax, autograd) are optional and are never
runtime dependencies of refimpl.
"""
