"""DNSSEC status of DNS answers, for the lookups that ask for it.

pymta, like Exim, does no DNSSEC validation itself: it trusts a validating resolver's
AD (Authenticated Data) flag.  A lookup that *requests* DNSSEC (the dnslookup router's
and smtp transport's ``dnssec_request_domains``/``dnssec_require_domains``, host name
verification of a client) is sent with the DO bit in EDNS0 and the AD bit, and its answer
counts as authenticated when it comes back with AD set -- or, for zones named in the main
option ``dns_trust_aa``, with AA (Authoritative Answer) set.

A lookup that does not request DNSSEC is never authenticated, whatever the answer says.
The main option ``dns_dnssec_ok`` = 0 leaves the DO bit out of requesting queries; the
AD bit is still sent, and a resolver that honours it still reports AD -- which is what
Exim 4.96 does through glibc with "options trust-ad" (recorded in tests/data/dnssec).

:func:`configure` is called once per process with the configuration's settings;
:func:`resolve` is :func:`pymta.dns.resolve` plus the answer's DNSSEC status.
"""
from __future__ import annotations

import copy
import socket
from collections.abc import Callable
from typing import Any

import dns.flags
import dns.message
import dns.rdatatype
import dns.resolver

from pymta import dns as pdns
from pymta.debuglog import debug

_dnssec_ok = -1
#: dns_trust_aa as a predicate on a zone name (None: unset); built by the caller, which
#: can expand a domain list (this module is below that layer).
_trust_aa: Callable[[str], bool] | None = None


def configure(dnssec_ok: int = -1, trust_aa: Callable[[str], bool] | None = None) -> None:
    """Apply dns_dnssec_ok and dns_trust_aa to this process's DNSSEC lookups."""
    global _dnssec_ok, _trust_aa
    _dnssec_ok = dnssec_ok
    _trust_aa = trust_aa


def authority_name(response: dns.message.Message) -> str | None:
    """The owner name of the first NS or SOA record set in the authority section: the
    zone the answer came from, which dns_trust_aa is matched against."""
    for rrset in response.authority:
        if rrset.rdtype in (dns.rdatatype.NS, dns.rdatatype.SOA):
            return str(rrset.name.to_text(omit_final_dot=True)).lower()
    return None


def is_authenticated(response: dns.message.Message) -> bool:
    """An answer is authenticated when the resolver set AD, or set AA for a zone in
    dns_trust_aa."""
    if response.flags & dns.flags.AD:
        return True
    if not response.flags & dns.flags.AA or _trust_aa is None:
        return False
    zone = authority_name(response)
    return zone is not None and _trust_aa(zone)


def _requesting(res: Any) -> Any:
    """A copy of ``res`` that asks for DNSSEC: AD in the query (RFC 6840 5.7) and EDNS0
    with DO unless dns_dnssec_ok is 0 (whatever dns_use_edns0 says, as in Exim); no
    cache, as a cached answer may lack AD.  A stand-in that is not a dnspython resolver
    is used as it is."""
    if not isinstance(res, dns.resolver.Resolver):
        return res
    res = copy.copy(res)
    res.cache = None
    if _dnssec_ok != 0:
        res.use_edns(0, dns.flags.DO, max(res.payload or 0, 1232))
    res.flags = (res.flags or dns.flags.RD) | dns.flags.AD | dns.flags.RD
    return res


def resolve(name: str, rtype: str, requested: bool) -> tuple[Any, bool]:
    """Look ``name``/``rtype`` up as :func:`pymta.dns.resolve` does (same exceptions);
    with ``requested`` DNSSEC is asked for. Returns the answer and whether it is
    authenticated (always False when DNSSEC was not asked for)."""
    if not requested:
        return pdns.resolve(name, rtype), False
    res = _requesting(pdns.get_resolver())
    answer = res.resolve(name, rtype, search=False)
    return answer, is_authenticated(answer.response)


def response_authenticated(response: dns.message.Message | None, requested: bool) -> bool:
    """The DNSSEC status of a negative answer (NXDOMAIN/NoAnswer carry the response)."""
    return response is not None and requested and is_authenticated(response)


def _forward_confirms(name: str, ip: str) -> tuple[bool, bool]:
    """(does ``name`` have address ``ip`` in the DNS, were those answers authenticated).
    Only the DNS is asked, as Exim does (/etc/hosts does not confirm a name)."""
    import dns.exception
    rtypes = ("A",) if pdns.ipv4_lookup_only(name) else ("A", "AAAA")
    found: list[str] = []
    for rtype in rtypes:
        try:
            answer, secure = resolve(name, rtype, True)
        except (dns.exception.DNSException, ValueError):
            continue
        addresses = [str(r.address) for r in answer]
        found += addresses
        if ip in addresses:
            if debug.host_lookup:
                debug.printf(f"checking addresses for {name}\n  {ip} OK")
            return True, secure
    if debug.host_lookup and found:
        debug.printf(f"checking addresses for {name}\n" + "".join(f"  {a}\n" for a in found)
                     + f"no IP address for {name} matched {ip}")
    elif debug.host_lookup:
        debug.printf(f"no IP addresses found for {name}")
    return False, False


def lookup_host_name(ip: str) -> tuple[str | None, bool]:
    """The client's host name as Exim finds it (host_lookup_order bydns:byaddr): the
    DNS PTR names, else the system resolver's (/etc/hosts); the first that resolves
    back to ``ip`` in the DNS (A/AAAA) is kept.  Also whether both the PTR and the
    forward answers were DNSSEC-authenticated -- Exim's $sender_host_dnssec, the DS of
    the ``<=`` line."""
    name, secure, _ = lookup_host_name_found(ip)
    return name, secure


def lookup_host_name_found(ip: str) -> tuple[str | None, bool, bool]:
    """:func:`lookup_host_name`, and whether the address had a name at all (when it
    had, but none was confirmed, Exim does not log "no host name found")."""
    import dns.exception
    import dns.reversename
    try:
        answer, ptr_secure = resolve(dns.reversename.from_address(ip).to_text(), "PTR", True)
        names = [str(r.target).rstrip(".").lower() for r in answer]
    except (dns.exception.DNSException, ValueError):
        names, ptr_secure = [], False
    if not names:
        # Exim's host_lookup_order bydns:byaddr: the system's resolver (/etc/hosts) when
        # the DNS has no PTR; the name it gives is still confirmed in the DNS only
        ptr_secure = False
        if debug.host_lookup:
            debug.printf("IP address lookup using gethostbyaddr()")
        try:
            host, aliases, _ = socket.gethostbyaddr(ip)
            names = [n.lower() for n in [host, *aliases]]
        except (OSError, UnicodeError):
            if debug.host_lookup:
                debug.printf("IP address lookup failed: h_errno=1")
            return None, False, False
    if debug.host_lookup:
        debug.printf(f'IP address lookup yielded "{names[0]}"')
    for name in names:
        confirmed, forward_secure = _forward_confirms(name, ip)
        if confirmed:
            return name, ptr_secure and forward_secure, True
    if debug.host_lookup:
        debug.printf(f"{ip} does not match any IP address for {names[0]}")
    return None, False, True
