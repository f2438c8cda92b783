"""Router option tables: the shared Exim 4.96 tables in :mod:`pymta.config.option_tables`.

There is one source of truth for option names, types and defaults; the routers only
look options up by name.  ``GENERIC_ROUTER_OPTIONS`` is kept for code that builds a
router class of its own (see :mod:`pymta.drivers`).
"""
from __future__ import annotations

from pymta.config.option_tables import driver_options, generic_options
from pymta.config.options import OptionSpec

#: Options every router accepts (chapter "Generic options for routers").
GENERIC_ROUTER_OPTIONS: dict[str, OptionSpec] = generic_options("router")


def router_options(driver: str) -> dict[str, OptionSpec]:
    """Generic plus private options of the router ``driver`` (KeyError if unknown)."""
    return driver_options("router", driver)
