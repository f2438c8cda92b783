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
from collections.abc import Callable
from typing import Any

import dns.flags
import dns.message
import dns.rdatatype
import dns.resolver

from pymta import dns as pdns

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
