"""Authenticator driver classes by their Exim driver name.

This registry is separate from :mod:`pymta.drivers` on purpose: the configuration reader
does not consult it yet, so ``begin authenticators`` is still refused as "not supported"
(:mod:`pymta.config.unsupported`).  A loaded authenticator that SMTP never runs would be a
silent no-op; the switch happens when SMTP AUTH is wired to these drivers.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T", bound=type)

_REGISTRY: dict[str, type] = {}

# Modules that register authenticator drivers when imported.
_MODULES = ("pymta.auth.plaintext", "pymta.auth.cram_md5", "pymta.auth.scram",
            "pymta.auth.external", "pymta.auth.dovecot")


def register(name: str) -> Callable[[T], T]:
    """Class decorator: register an authenticator driver under its Exim ``driver`` name."""
    def deco(cls: T) -> T:
        _REGISTRY[name] = cls
        cls.driver_name = name  # type: ignore[attr-defined]
        return cls
    return deco


def _load() -> None:
    for module in _MODULES:
        importlib.import_module(module)


def get_authenticator(name: str) -> type | None:
    """The driver class for ``driver = name``, or None."""
    _load()
    return _REGISTRY.get(name)


def authenticator_names() -> list[str]:
    """The driver names this package implements."""
    _load()
    return sorted(_REGISTRY)
