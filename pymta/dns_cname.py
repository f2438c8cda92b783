"""dns_cname_loops: following CNAME chains the resolver left unfollowed.

A resolver normally answers a query for a name that is a CNAME with the whole chain and
the records at its end.  One that does not (or an answer that is only a CNAME) leaves
the chain to the client: Exim then asks again for the CNAME's target, at most
dns_cname_loops times (default 1); when the chain is longer it logs
``CNAME loop for <name> encountered`` and the lookup fails for now (the router
defers: "host lookup did not complete").  This applies to the host lookups of routing,
timed by :mod:`pymta.dns_timing`.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

from pymta import dns as pdns
from pymta.dns_timing import resolve_host_records

_loops = 1
_write: Callable[[str], None] | None = None


class CnameLoop(dns.exception.DNSException):
    """More CNAMEs to follow than dns_cname_loops allows (a temporary failure)."""


def configure_cname_loops(loops: int, write: Callable[[str], None] | None) -> None:
    """Set dns_cname_loops and where its log line goes (the main log)."""
    global _loops, _write
    _loops = max(0, loops)
    _write = write


def _cname_target(exc: dns.resolver.NoAnswer, name: str) -> str | None:
    """The end of the CNAME chain starting at ``name`` in the answer behind ``exc``
    (None when the answer holds no CNAME for ``name``)."""
    try:
        response = exc.response()
    except (KeyError, TypeError):
        return None
    current = dns.name.from_text(name)
    seen = set()
    while current not in seen:
        seen.add(current)
        rrset = next((r for r in response.answer
                      if r.name == current and r.rdtype == dns.rdatatype.CNAME), None)
        if rrset is None:
            break
        current = rrset[0].target
    if len(seen) == 1 and current == dns.name.from_text(name):
        return None
    return current.to_text(omit_final_dot=True)


def resolve_host(name: str, rtype: str,
                 lookup: Callable[[str, str], Any] = pdns.resolve) -> Any:
    """Records of ``rtype`` for ``name`` (what ``lookup`` returns), asking again for a
    CNAME's target when the resolver did not follow it (see the module docstring)."""
    current = name
    for _ in range(_loops + 1):
        try:
            return resolve_host_records(current, rtype, lookup)
        except dns.resolver.NoAnswer as exc:
            target = _cname_target(exc, current)
            if target is None:
                raise
            current = target
    if _write is not None:
        _write(f"CNAME loop for {name} encountered")
    raise CnameLoop(f"CNAME loop for {name}")
