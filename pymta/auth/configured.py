"""The authenticator drivers as the configuration reader instantiates them.

:mod:`pymta.drivers` maps ``driver =`` names of the authenticators section to this module;
importing it registers, for each driver of :mod:`pymta.auth.registry`, a subclass that the
reader can build as ``cls(instance, config)`` from a
:class:`~pymta.config.model.DriverInstance` (its options already typed and validated).
The library classes keep their plain ``(name, options)`` constructor for tests and tools.
"""
from __future__ import annotations

from typing import Any

from pymta import drivers
from pymta.config.model import ConfigError

from .base import Authenticator
from .registry import authenticator_names, get_authenticator


def _configured(base: type[Authenticator]) -> type[Authenticator]:
    """A subclass of ``base`` built from a configuration instance."""

    def __init__(self: Authenticator, instance: Any, config: Any = None) -> None:
        try:
            base.__init__(self, instance.name, instance.options)
        except ValueError as e:
            raise ConfigError(f"authenticator {instance.name}: {e}",
                              instance.file, instance.line) from None
        self.instance = instance                     # type: ignore[attr-defined]
        _check_public_name(self, config)

    return type(base.__name__, (base,), {
        "__init__": __init__, "__doc__": base.__doc__, "__module__": base.__module__,
        "options": base.options})


def _check_public_name(auth: Authenticator, config: Any) -> None:
    """Exim refuses two server authenticators with one public name: AUTH could not say
    which of them the client means.  Instances are built in configuration order, so the
    earlier ones already have their object."""
    if not auth.is_server:
        return
    for inst in getattr(config, "authenticators", {}).values():
        other = getattr(inst, "obj", None)
        if (isinstance(other, Authenticator) and other is not auth and other.is_server
                and other.public_name == auth.public_name):
            raise ConfigError(f"two server authenticators ({other.name} and {auth.name}) "
                              f"have the same public name ({auth.public_name})",
                              auth.instance.file, auth.instance.line)  # type: ignore[attr-defined]


def _register_all() -> None:
    for name in authenticator_names():
        cls = get_authenticator(name)
        if cls is not None and drivers.get_registered("authenticator", name) is None:
            drivers.register("authenticator", name)(_configured(cls))


def _configured_authenticators(config: Any) -> list[Authenticator]:
    return [inst.obj for inst in getattr(config, "authenticators", {}).values()
            if isinstance(inst.obj, Authenticator)]


def server_authenticators(config: Any) -> list[Authenticator]:
    """The authenticators of ``config`` with server functions, in configuration order."""
    return [a for a in _configured_authenticators(config) if a.is_server]


def client_authenticators(config: Any) -> list[Authenticator]:
    """The authenticators of ``config`` with client functions, in configuration order."""
    return [a for a in _configured_authenticators(config) if a.is_client]


_register_all()
