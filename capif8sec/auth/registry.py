"""Authenticator registry: built-ins, in-process registrations, and entry-point plugins.

Third parties publish authenticators under the entry-point group ``capif8sec.authenticators``::

    [project.entry-points."capif8sec.authenticators"]
    hwtoken = "capif8sec_hwtoken:HardwareTokenAuthenticator"

The entry point names a factory (usually the class); :func:`create` calls it with the
deployment's keyword configuration and checks that the result satisfies
:class:`~capif8sec.auth.Authenticator`.  Plugins are loaded lazily, only by the names a
deployment configures -- installed plugins nobody asked for are never imported.  Everything that
can go wrong fails closed with :class:`~capif8sec.errors.PluginError`, chained to the cause:
a plugin that does not import, a factory that raises, an object without the interface, a name
claimed by two distributions (or by a plugin and a built-in).
"""

from __future__ import annotations

import importlib.metadata
import threading
from collections.abc import Callable
from typing import Any

from capif8sec.auth.base import Authenticator, ContextNeeds
from capif8sec.errors import PluginError

__all__ = ["ENTRY_POINT_GROUP", "available", "create", "load", "register", "unregister"]

ENTRY_POINT_GROUP = "capif8sec.authenticators"

Factory = Callable[..., Any]

_lock = threading.Lock()
_registered: dict[str, Factory] = {}


def _builtins() -> dict[str, Factory]:
    from capif8sec.auth.certificate import CertificateAuthenticator
    from capif8sec.auth.inchannel import InChannelPskAuthenticator
    from capif8sec.auth.psk import TlsPskAuthenticator

    found: dict[str, Factory] = {
        "certificate": CertificateAuthenticator,
        "psk": TlsPskAuthenticator,
        "psk-in-channel": InChannelPskAuthenticator,
    }
    try:
        from capif8sec.auth.scram import ScramAuthenticator

        found["scram"] = ScramAuthenticator
    except ImportError:  # pragma: no cover - present once the SCRAM module ships
        pass
    return found


def register(name: str, factory: Factory, *, replace: bool = False) -> None:
    """Register an authenticator factory in this process (tests, vendors' own code)."""
    if not name or not isinstance(name, str):
        raise PluginError("an authenticator needs a non-empty name")
    if not callable(factory):
        raise PluginError(f"the factory registered as {name!r} is not callable")
    with _lock:
        if not replace and (name in _registered or name in _builtins()):
            raise PluginError(f"an authenticator named {name!r} is already registered")
        _registered[name] = factory


def unregister(name: str) -> None:
    """Remove an in-process registration (no error if absent)."""
    with _lock:
        _registered.pop(name, None)


def _entry_points(name: str) -> list[importlib.metadata.EntryPoint]:
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=name))


def available() -> dict[str, str]:
    """Every name that can be created, with where it comes from (no plugin is imported)."""
    names = {n: "built-in" for n in _builtins()}
    names.update({n: "registered" for n in _registered})
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else "unknown distribution"
        names.setdefault(ep.name, f"plugin ({dist})")
    return names


def load(name: str) -> Factory:
    """The factory registered under ``name``: in-process, built-in, or one entry point."""
    with _lock:
        if name in _registered:
            return _registered[name]
    builtins = _builtins()
    points = _entry_points(name)
    dists = {ep.dist.name if ep.dist is not None else ep.value for ep in points}
    if name in builtins:
        if points:
            raise PluginError(
                f"plugin(s) {sorted(dists)} claim the built-in authenticator name {name!r}"
            )
        return builtins[name]
    if not points:
        raise PluginError(f"no authenticator named {name!r} (known: {sorted(available())})")
    if len(dists) > 1 or len({ep.value for ep in points}) > 1:
        raise PluginError(
            f"authenticator name {name!r} is claimed by several distributions: {sorted(dists)}"
        )
    try:
        factory = points[0].load()
    except Exception as exc:
        raise PluginError(f"plugin {name!r} ({points[0].value}) failed to import") from exc
    if not callable(factory):
        raise PluginError(f"plugin {name!r} ({points[0].value}) is not a factory")
    return factory  # type: ignore[no-any-return]


def create(name: str, **config: Any) -> Authenticator:
    """Build the authenticator ``name`` with ``config`` and check its interface."""
    factory = load(name)
    try:
        instance = factory(**config)
    except Exception as exc:
        raise PluginError(f"authenticator {name!r} could not be created") from exc
    problems = []
    if not isinstance(getattr(instance, "name", None), str):
        problems.append("no str 'name'")
    if not isinstance(getattr(instance, "needs", None), ContextNeeds):
        problems.append("no ContextNeeds 'needs'")
    if not callable(getattr(instance, "authenticate", None)):
        problems.append("no callable 'authenticate'")
    if problems or not isinstance(instance, Authenticator):
        raise PluginError(
            f"authenticator {name!r} does not satisfy the interface: {', '.join(problems)}"
        )
    return instance
