"""Tools for property-testing code against refimpl: :mod:`refimpl.testing.strategies` (hypothesis strategies) and
:func:`refimpl.testing.assert_gradient_matches` (:mod:`refimpl.testing.assertions`: check a gradient against an oracle
case)."""


def __getattr__(name):  # lazy: importing the strategies must not load the oracle (and vice versa)
    if name == "assert_gradient_matches":
        from refimpl.testing.assertions import assert_gradient_matches
        return assert_gradient_matches
    raise AttributeError(f"module 'refimpl.testing' has no attribute {name!r}")
