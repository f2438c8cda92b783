"""``pymta -be``: expansion test mode.

Reads expressions one per line (a trailing backslash continues onto the next line), and
writes each result on its own line, or ``Failed: <message>`` when the expansion failed.
Configuration macros are replaced in the input lines first, as Exim does.
"""
from __future__ import annotations

import getpass
import re
from typing import Any, Iterable, TextIO

from . import expand_string
from .context import ExpandContext
from .errors import ExpandError

_MACRO_RE = re.compile(r"(?<![A-Za-z0-9_])[A-Z][A-Za-z0-9_]*")


def replace_macros(line: str, macros: dict[str, str] | None) -> str:
    """Substitute configuration macros (names starting with an upper-case letter)."""
    if not macros or not any(c.isupper() for c in line):
        return line
    return _MACRO_RE.sub(lambda m: macros.get(m.group(0), m.group(0)), line)


def be_context(config: Any, variables: dict[str, str] | None = None) -> ExpandContext:
    """The context -be expands in: no message, the caller as the sender."""
    ctx = ExpandContext(config=config)
    try:
        user = getpass.getuser()
    except Exception:           # no passwd entry for the uid
        user = "root"
    from .variables import lookup_variable
    qd = lookup_variable("qualify_domain", ctx) or ""
    ctx.variables["sender_address"] = f"{user}@{qd}" if qd else user
    ctx.variables["sender_ident"] = user
    if variables:
        ctx.variables.update(variables)
    return ctx


def expand_be_line(line: str, config: Any, ctx: ExpandContext | None = None) -> str:
    """Expand one -be line and return what -be prints for it."""
    if ctx is None:
        ctx = be_context(config)
    line = replace_macros(line, getattr(config, "macros", None))
    try:
        return str.__str__(expand_string(line, ctx))
    except ExpandError as e:
        return f"Failed: {e.message}"


def _logical_lines(lines_in: Iterable[str]) -> Iterable[str]:
    buf = ""
    for raw in lines_in:
        line = raw.rstrip("\n").rstrip("\r")
        if line.endswith("\\") and not line.endswith("\\\\"):
            buf += line[:-1]
            continue
        yield buf + line
        buf = ""
    if buf:
        yield buf


def run_be(config: Any, lines_in: Iterable[str], out: TextIO) -> int:
    """Run expansion test mode over ``lines_in``, writing results to ``out``; returns 0."""
    ctx = be_context(config)
    for line in _logical_lines(lines_in):
        result = expand_be_line(line, config, ctx)
        out.write(result + "\n")
    out.flush()
    return 0
