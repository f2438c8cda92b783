"""``verify = csa``: Client SMTP Authorization (spec 44.52).

The client's HELO domain (or the given domain) is looked up as ``_client._smtp.<domain>``
SRV records.  A record with priority 1 (the CSA version) for the domain itself says, in
its weight, whether the host is authorized (2: then the client's IP address must be one
of the target's addresses) or not (1).  Without a record of its own, the parents of the
domain (up to ``dns_csa_search_limit`` of them, never a top-level domain) are searched; a
parent's record can demand explicit authorization (bit 1 of its port field).  An IP
address or address literal is looked up in the reverse DNS when ``dns_csa_use_reverse``
is true.

Only a definite "not authorized" fails the condition; DNS problems and the absence of
records pass, and ``$csa_status`` tells them apart ("ok", "unknown", "defer", "fail").
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import dns.exception
import dns.resolver

from pymta import dns as pdns

# (status for $csa_status, reason for the message)
OK = ("ok", "ok")
UNKNOWN = ("unknown", "unknown")
DEFER_SRV = ("defer", "deferred (SRV lookup failed)")
DEFER_ADDR = ("defer", "deferred (target address lookup failed)")
FAIL_EXPLICIT = ("fail", "failed (explicit authorization required)")
FAIL_DOMAIN = ("fail", "failed (host name not authorized)")
FAIL_NOADDR = ("fail", "failed (no authorized addresses)")
FAIL_MISMATCH = ("fail", "failed (client address mismatch)")


@dataclass(frozen=True)
class CsaResult:
    """The outcome: ``status`` for $csa_status and Exim's message text."""

    status: str
    reason: str

    @property
    def message(self) -> str:
        return f"client SMTP authorization {self.reason}"

    @property
    def passed(self) -> bool:
        return self.status != "fail"


def _result(pair: tuple[str, str]) -> CsaResult:
    return CsaResult(*pair)


def _addresses(target: str) -> tuple[set[str], bool]:
    """The target's IP addresses, and whether a lookup failed temporarily."""
    found: set[str] = set()
    deferred = False
    for rtype in ("A", "AAAA"):
        try:
            found |= {str(ipaddress.ip_address(r.address))
                      for r in pdns.resolve(target, rtype)}
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            continue
        except dns.exception.DNSException:
            deferred = True
    return found, deferred


def check_csa(domain: str, client_ip: str, search_limit: int = 5,
              use_reverse: bool = True) -> CsaResult:
    """Is ``client_ip`` authorized to send as ``domain``?"""
    try:
        found = pdns.csa_search(domain, search_limit, use_reverse)
    except dns.exception.DNSException:
        return _result(DEFER_SRV)
    if found is None:
        return _result(UNKNOWN)
    name, found_at, records = found
    for priority, weight, port, target in records:
        if priority != 1:
            continue               # not CSA version 1
        if found_at != name:
            # A parent's record: only its assertion about subdomains counts.
            return _result(FAIL_EXPLICIT if port & 1 else UNKNOWN)
        if weight == 1:
            return _result(FAIL_DOMAIN)
        if weight != 2:
            return _result(UNKNOWN)
        addresses, deferred = _addresses(target) if target else (set(), False)
        try:
            client = str(ipaddress.ip_address(client_ip.split("%")[0]))
        except ValueError:
            client = client_ip
        if client in addresses:
            return _result(OK)
        if deferred:
            return _result(DEFER_ADDR)
        return _result(FAIL_MISMATCH if addresses else FAIL_NOADDR)
    return _result(UNKNOWN)
