"""The ``seen`` ACL condition of Exim 4.96 (spec 44.38): was a key met before?

``seen = [-]<interval> / <options>`` looks the key up in the ``seen`` hints database.
With a minus sign the condition is true when the stored time is at or before "now minus
the interval" (greylisting: "first seen long enough ago"); without it, when the stored
time is after that ("seen recently").  Options, later ones overriding earlier ones:
``key=`` (default ``$sender_host_address``), ``readonly`` (never write), ``write``
(always write) and ``refresh=<time>`` (default 10 days).

Writes store the current time, in whole seconds as Exim does: a "since" test always
updates the record, a "before" test creates a missing record, and refreshes one that is
at least ``refresh`` old (whatever the test's result, as Exim 4.96 does), so database
tidying does not drop a client that keeps coming back.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from pymta.debuglog import debug
from pymta.hints.seen import SeenDB

DEFAULT_REFRESH = 10 * 86400
_TIME = re.compile(r"(\d+)([wdhms])")
_TIME_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class SeenError(Exception):
    """The argument of a seen condition cannot be used (an ACL error: 451)."""


@dataclass(frozen=True)
class SeenSpec:
    """A parsed, expanded seen condition."""

    before: bool              # a leading minus: "seen before the test time"
    interval: int
    key: str
    mode: str                 # "", "readonly" or "write"
    refresh: int = DEFAULT_REFRESH


def _time(text: str) -> int | None:
    if re.fullmatch(r"\d+", text):
        return int(text)
    if text and _TIME.sub("", text) == "":
        return sum(int(n) * _TIME_UNITS[u] for n, u in _TIME.findall(text))
    return None


def parse_seen(arg: str, default_key: str) -> SeenSpec:
    """Parse the expanded argument; SeenError with Exim's message when it is wrong."""
    first, *options = [p.strip() for p in arg.split("/")]
    before = first.startswith("-")
    interval = _time(first[1:] if before else first)
    if interval is None:
        raise SeenError(f"failed to parse '{arg}'")
    key, mode, refresh = default_key, "", DEFAULT_REFRESH
    for option in options:
        if option.startswith("key="):
            key = option[4:]
        elif option in ("readonly", "write"):
            mode = option
        elif option.startswith("refresh="):
            value = _time(option[8:].strip())
            if value is None:
                raise SeenError(f"failed to parse '{arg}'")
            refresh = value
        else:
            raise SeenError(f"unrecognised option '{option}' in '{arg}'")
    return SeenSpec(before, interval, key, mode, refresh)


def decide(spec: SeenSpec, stamp: int | None, now: int) -> tuple[bool, int | None]:
    """The condition's result for a stored time stamp, and the time stamp to store."""
    test_time = now - spec.interval
    if stamp is None:
        result = False
    elif spec.before:
        result = stamp <= test_time
    else:
        result = stamp > test_time
    if spec.mode == "readonly":
        return result, None
    if spec.mode == "write" or not spec.before or stamp is None:
        return result, now
    if stamp <= now - spec.refresh:
        return result, now            # refresh an old record
    return result, None


def check_seen(spec: SeenSpec, db: SeenDB, now: float) -> bool:
    """Test (and record) ``spec`` in the ``seen`` database at time ``now``."""
    seconds = int(now)
    if spec.mode == "readonly":
        if debug.acl:
            debug.printf("seen db not written (readonly)")
        return decide(spec, db.get(spec.key), seconds)[0]
    return db.update(spec.key, lambda stamp: _traced(decide(spec, stamp, seconds), stamp),
                     False)


def _traced(decision: tuple[bool, int | None], stamp: int | None) -> tuple[bool, int | None]:
    """``decision`` as it is, said in Exim's words when something is written."""
    if debug.acl and decision[1] is not None:
        debug.printf(f"seen db written ({'create' if stamp is None else 'update'})")
    return decision
