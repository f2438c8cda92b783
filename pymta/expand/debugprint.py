"""The ``debug_print`` option of routers and transports: an expanded string written to
the debug output (``-d``, ``-v``, ``control = debug``), and for routers also in address
testing mode (``-bt``), where it goes to standard error as Exim's does."""
from __future__ import annotations

import sys

from pymta.debuglog import debug
from pymta.expand import expand_string
from pymta.expand.context import ExpandContext
from pymta.expand.errors import ExpandError


def wanted(address_test: bool = False) -> bool:
    """Whether a debug_print would be written now (checked before expanding it)."""
    return debug.any or debug.v or address_test


def debug_print(text: str, ctx: ExpandContext, driver: str, *,
                address_test: bool = False) -> None:
    """Expand ``text`` (a driver's debug_print) and write it; an expansion failure is
    written instead and processing goes on."""
    try:
        out = str(expand_string(text, ctx))
    except ExpandError as exc:
        out = f'failed to expand debug_print "{text}" in {driver}: {exc}'
    if debug.any or debug.v:
        debug.printf(out)
    elif address_test:
        sys.stderr.write(out if out.endswith("\n") else out + "\n")
        sys.stderr.flush()
