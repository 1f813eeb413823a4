"""Tools for property-testing code against refimpl: :mod:`refimpl.testing.strategies` (hypothesis strategies)."""
