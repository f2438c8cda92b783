"""``control = debug/<options>`` (spec 44.20): debug output of one connection or message
to a file in the log directory, ``debuglog`` followed by the tag.

Options: ``tag=<suffix>``, ``opts=<-d selectors>``, ``stop``, ``kill`` (stop and remove
the file), ``pretrigger=<size>`` (keep the newest lines in memory until a trigger) and
``trigger=now|paniclog``.  The process-wide state is :data:`pymta.debuglog.debug`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from pymta.config.model import ConfigError
from pymta.config.options import parse_int
from pymta.debuglog import D_DEFAULT, TRIGGERS, SelectorError, debug, parse_selector
from pymta.taint import is_tainted

# A tag that came (in part) from outside may hold only these: it becomes part of a file
# name, and a host address, host name, message id or address all fit.
_SAFE_TAINTED_TAG = re.compile(r"[A-Za-z0-9._:@+=-]*")


@dataclass
class DebugControl:
    """The parsed options of one ``control = debug/...``."""

    tag: str = ""
    selector: int = D_DEFAULT
    opts: str = ""
    stop: bool = False
    kill: bool = False
    pretrigger: int = 0
    trigger: str = ""
    tag_tainted: bool = False


def parse_debug_control(value: str) -> DebugControl:
    """Parse the (already expanded) control value ``debug/opt/opt...``."""
    ctl = DebugControl()
    for part in value.split("/")[1:]:
        name, eq, arg = part.strip().partition("=")
        if name == "tag" and eq:
            ctl.tag = arg
            ctl.tag_tainted = is_tainted(value)
        elif name == "opts" and eq:
            try:
                ctl.selector = parse_selector(arg)
            except SelectorError as exc:
                raise ConfigError(f"control=debug: {exc}") from None
            ctl.opts = arg
        elif name in ("stop", "kill") and not eq:
            setattr(ctl, name, True)
        elif name == "pretrigger" and eq:
            try:
                ctl.pretrigger = parse_int(arg)
            except ValueError:
                raise ConfigError(f'control=debug: bad pretrigger size "{arg}"') from None
        elif name == "trigger" and eq and arg in TRIGGERS:
            ctl.trigger = arg
        else:
            raise ConfigError(f'control=debug: unknown option "{part.strip()}"')
    return ctl


def tag_problem(ctl: DebugControl) -> str | None:
    """Why the tag cannot be part of a file name, or None."""
    if any(ord(c) < 32 or ord(c) == 127 for c in ctl.tag):
        return f'debug tag may not contain control characters: "{ctl.tag!r}"'
    if ctl.tag_tainted and not _SAFE_TAINTED_TAG.fullmatch(ctl.tag):
        return f'tainted debug tag may hold only letters, digits and "._:@+=-": {ctl.tag}'
    return None


def apply_debug_control(value: str, debuglog_path: Callable[[], str],
                        panic: Callable[[str], None] | None) -> None:
    """Obey ``control = debug/...``: start, stop or trigger the debug output.

    ``debuglog_path()`` gives the log directory's file name for "debug" (log_file_path
    with %s = "debug"); ``panic`` writes a paniclog line.  Bad options raise ConfigError.
    """
    ctl = parse_debug_control(value)
    if ctl.kill or ctl.stop:
        debug.end_control(kill=ctl.kill)
        return
    if debug.any:
        # Already on (-d, or an earlier control): Exim notes it and changes nothing
        # but the pretrigger and triggers.
        debug.printf(f'DEBUGGING ACTIVATED FROM WITHIN CONFIG.\n'
                     f'DEBUG: Tag="{ctl.tag}" opts="{ctl.opts}"')
        if ctl.pretrigger and debug.from_control:
            debug.set_pretrigger(ctl.pretrigger)
    else:
        problem = tag_problem(ctl)
        if problem is not None:
            if panic is not None:
                panic(problem)
            return
        path = debuglog_path() + ctl.tag
        try:
            debug.start_file(path, ctl.selector, pretrigger=ctl.pretrigger)
        except OSError as exc:
            if panic is not None:
                panic(f"failed to open debug log {path}: {exc.strerror}")
            return
    if ctl.trigger == "paniclog" and debug.from_control:
        debug.trigger_paniclog = True
    elif ctl.trigger == "now":
        debug.trigger()
