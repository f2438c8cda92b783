"""Typed views of the configuration for the layers that read it.

Routers, transports, the ACL engine and delivery only read a configuration; they are given
a :class:`pymta.config.model.Config` in production and small stand-ins in tests.  This
Protocol names what they may rely on, so functions say ``config: ConfigView`` instead of
``Any`` and mypy checks the attribute names.  No behaviour lives here.
"""
from __future__ import annotations

from typing import Any, Protocol

from pymta.config.model import AclStatement, DriverInstance, RetryRule, RewriteRule


class ConfigView(Protocol):
    """Read access to a parsed configuration (what :class:`Config` provides).

    ``main`` holds the main options as attributes (read them with
    :func:`pymta.config.values.main_option`, which copes with unset options); ``acls``,
    ``routers`` and ``transports`` are the named sections in file order.
    """

    @property
    def filename(self) -> str: ...

    @property
    def main(self) -> Any: ...

    @property
    def named_lists(self) -> dict[str, dict[str, str]]: ...

    @property
    def acls(self) -> dict[str, list[AclStatement]]: ...

    @property
    def routers(self) -> list[DriverInstance]: ...

    @property
    def transports(self) -> dict[str, DriverInstance]: ...

    @property
    def retry_rules(self) -> list[RetryRule]: ...

    @property
    def rewrite_rules(self) -> list[RewriteRule]: ...
