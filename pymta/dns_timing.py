"""slow_lookup_log: host lookups in the DNS that take too long are logged.

Exim times the DNS queries made while finding hosts (MX, SRV, A and AAAA records for
routing and verification) and writes ``Long <type> lookup for '<name>': <n> msec`` to
the main log when one takes longer than slow_lookup_log milliseconds, whether it
succeeded or not.  Other DNS users (dnsdb, DNS lists, DKIM keys) are not timed, as in
Exim 4.96.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pymta import dns as pdns

_threshold_ms = 0
_write: Callable[[str], None] | None = None


def configure_slow_lookup_log(threshold_ms: int, write: Callable[[str], None] | None) -> None:
    """Set the threshold (0: off) and where the log line goes (the main log)."""
    global _threshold_ms, _write
    _threshold_ms = max(0, threshold_ms)
    _write = write


def resolve_host_records(name: str, rtype: str,
                         lookup: Callable[[str, str], Any] = pdns.resolve) -> Any:
    """``lookup(name, rtype)`` (by default :func:`pymta.dns.resolve`; the dnslookup
    router passes its DNSSEC-asking one), timed for slow_lookup_log."""
    if not _threshold_ms or _write is None:
        return lookup(name, rtype)
    started = time.monotonic()
    try:
        return lookup(name, rtype)
    finally:
        msec = int((time.monotonic() - started) * 1000)
        if msec > _threshold_ms:
            _write(f"Long {rtype} lookup for '{name}': {msec} msec")
