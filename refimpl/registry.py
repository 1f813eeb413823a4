"""One home per extensible family: a :class:`Registry` maps a family name to the class (or instance) that owns it.

Vector fields, terminal losses, energies, schemes and oracle case kinds each keep one registry. A member carries
everything the rest of refimpl needs to know about it — its family name, its formula text, its ``to_spec()`` /
``from_spec()`` round trip to JSON-able data and, where it has one, its accelerated-kernel descriptor — so the oracle,
the backend dispatch and the validation read the registry instead of keeping their own lists. Adding a member is one
class in one file plus one ``register`` call (usually the decorator); nothing else in refimpl changes.

This module imports nothing from refimpl.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

__all__ = ["Registry"]


class Registry:
    """Names → members of one family (``what`` is the family's noun, used in error messages, e.g. "vector field").

    >>> FIELDS = Registry("vector field")
    >>> @FIELDS.register
    ... class Tanh:
    ...     family = "tanh"
    >>> FIELDS.get("tanh").__name__
    'Tanh'

    Members are classes (registered under their ``family`` attribute, or ``name=``) or plain objects registered with
    an explicit ``name`` (e.g. the named tableaux). Registering a different member under a taken name raises
    ``ValueError``; registering the same member again is a no-op, so re-importing a module is harmless.
    """

    def __init__(self, what: str):
        if not isinstance(what, str) or not what:
            raise TypeError("what must be a non-empty string naming the family")
        self.what = what
        self._members: dict[str, Any] = {}

    # -- registration -------------------------------------------------------------------------------------------------
    def register(self, member: Any = None, *, name: str | None = None) -> Any:
        """Register ``member`` under ``name`` (default: its ``family`` attribute); usable as a decorator.

        Returns ``member`` unchanged, so ``@REGISTRY.register`` leaves the class as it was.
        """
        if member is None:  # @REGISTRY.register(name=...)
            return lambda m: self.register(m, name=name)
        key = name if name is not None else getattr(member, "family", None)
        if not isinstance(key, str) or not key:
            raise ValueError(f"name: a {self.what} needs a non-empty string name (pass name= or give the class a "
                             f"'family' attribute), got {key!r}")
        old = self._members.get(key)
        if old is not None and old is not member:
            raise ValueError(f"name: the {self.what} {key!r} is already registered ({old!r})")
        self._members[key] = member
        return member

    def unregister(self, name: str) -> None:
        """Remove ``name`` (``KeyError``-free: a ``ValueError`` naming it if it is not registered)."""
        if name not in self._members:
            raise ValueError(f"name: no {self.what} {name!r} is registered")
        del self._members[name]

    @contextmanager
    def registered(self, member: Any, *, name: str | None = None) -> Iterator[Any]:
        """Register ``member`` for the duration of a ``with`` block (tests, experiments), then remove it."""
        self.register(member, name=name)
        key = name if name is not None else member.family
        try:
            yield member
        finally:
            self._members.pop(key, None)

    # -- look-up ------------------------------------------------------------------------------------------------------
    def get(self, name: str) -> Any:
        """The member registered under ``name``; ``ValueError`` listing the known names otherwise."""
        if not isinstance(name, str):
            raise TypeError(f"name: a {self.what} name must be a string, got {type(name).__name__}")
        try:
            return self._members[name]
        except KeyError:
            raise ValueError(f"unknown {self.what} {name!r}; registered: {sorted(self._members)}") from None

    def from_spec(self, spec: dict, key: str = "family", **context) -> Any:
        """Rebuild an object from its JSON description: ``get(spec[key]).from_spec(spec, **context)``."""
        if not isinstance(spec, dict):
            raise TypeError(f"spec: a {self.what} description must be a JSON object, got {type(spec).__name__}")
        if key not in spec:
            raise ValueError(f"spec: a {self.what} description needs the key {key!r}")
        return self.get(spec[key]).from_spec(spec, **context)

    def name_of(self, member: Any) -> str:
        """The name under which ``member`` (or its class) is registered; ``ValueError`` if it is not."""
        for key, m in self._members.items():
            if m is member or (isinstance(m, type) and type(member) is m):
                return key
        raise ValueError(f"{type(member).__name__} is not a registered {self.what} "
                         f"(registered: {sorted(self._members)})")

    def names(self) -> list[str]:
        return sorted(self._members)

    def items(self) -> list[tuple[str, Any]]:
        return sorted(self._members.items())

    def __contains__(self, name: object) -> bool:
        return name in self._members

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._members)

    def __repr__(self) -> str:
        return f"Registry({self.what!r}: {', '.join(self.names())})"
