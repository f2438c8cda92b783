"""Registry of driver classes by their Exim driver name.

Routers, transports, authenticators and lookups register themselves with a decorator::

    @register("router", "accept")
    class AcceptRouter(Router):
        options = {**GENERIC_ROUTER_OPTIONS,
                   "some_option": OptionSpec("some_option", "string", None)}

The configuration loader calls :func:`get_driver` for each ``driver =`` line, validates every
option of the instance against the class's ``options`` table (an unknown option is a
:class:`~pymta.config.model.ConfigError` with file and line) and instantiates
``cls(instance, config)``.
"""
from __future__ import annotations

import importlib

_REGISTRY: dict[tuple[str, str], type] = {}

# Modules that register drivers when imported.
_DRIVER_MODULES = {
    "router": "pymta.routing",
    "transport": "pymta.transports",
    "authenticator": "pymta.auth.configured",
}


def register(kind: str, name: str):
    def deco(cls: type) -> type:
        _REGISTRY[(kind, name)] = cls
        setattr(cls, "driver_name", name)     # noqa: B010 - on any driver class
        return cls
    return deco


def get_registered(kind: str, name: str) -> type | None:
    """The class registered for ``kind``/``name`` so far (no module is imported)."""
    return _REGISTRY.get((kind, name))


def get_driver(kind: str, name: str) -> type | None:
    if (kind, name) not in _REGISTRY and kind in _DRIVER_MODULES:
        try:
            importlib.import_module(_DRIVER_MODULES[kind])
        except ImportError:
            pass
    return _REGISTRY.get((kind, name))


def all_drivers(kind: str) -> list[str]:
    if kind in _DRIVER_MODULES:
        try:
            importlib.import_module(_DRIVER_MODULES[kind])
        except ImportError:
            pass
    return sorted(n for (k, n) in _REGISTRY if k == kind)


