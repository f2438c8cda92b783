"""Addresses of the hosts that a manualroute or queryprogram router names itself (what
Exim's rf_lookup_hostlist does for both).

A host is looked up as its rule says: ``byname`` through the system resolver (which
may read /etc/hosts, and knows nothing of DNSSEC), ``bydns`` in the DNS.  A name followed
by ``/MX`` is replaced by the hosts of its MX records, MX and address records both
found in the DNS whatever the rule says (Exim looks for nothing but MX there).  DNS
lookups of names in the router's ``dnssec_request_domains`` (default ``*``) or
``dnssec_require_domains`` ask for DNSSEC; a host is marked secure (the ``DS`` of the
delivery line) when every answer that led to it was authenticated, and an answer for a
name in ``dnssec_require_domains`` that was not makes the lookup fail with Exim's
"host lookup for NAME done insecurely" (the address is deferred).
"""
from __future__ import annotations

from typing import Any

from pymta.address import Host
from pymta.routing import dnslookup as dl
from pymta.routing import hosts as hostmod
from pymta.routing import support


class InsecureHostLookup(Exception):
    """A DNS answer that dnssec_require_domains wanted authenticated was not."""

    def __init__(self, name: str) -> None:
        super().__init__(f"host lookup for {name} done insecurely")


def router_policy(router: Any, ctx: Any) -> dl.DnssecPolicy:
    """The DNSSEC policy of ``router`` (its dnssec_request_domains and
    dnssec_require_domains)."""
    def in_list(option: str, name: str) -> bool:
        text = router.opt(option)
        return bool(text) and support.match_domain(name, text, ctx)

    return dl.DnssecPolicy(request=lambda d: in_list("dnssec_request_domains", d),
                           require=lambda d: in_list("dnssec_require_domains", d))


def find(name: str, port: int | None, is_mx: bool, method: str, policy: dl.DnssecPolicy,
         ipv4_only: bool = False, ipv4_prefer: bool = False) -> list[Host]:
    """The hosts (with addresses) for one item of a host list.  Raises
    :class:`hostmod.HostNotFound`, :class:`hostmod.HostLookupDefer` or
    :class:`InsecureHostLookup`."""
    if not is_mx:
        return _addresses(name, port, method, policy, ipv4_only, ipv4_prefer)
    ans = dl.dns_query(name, "MX", policy=policy)
    _check(ans.status, name)
    pairs = sorted(((r.exchange.to_text(omit_final_dot=True), r.preference)
                    for r in ans.records if r.exchange.to_text() != "."),
                   key=lambda pair: pair[1])
    if not pairs:
        raise hostmod.HostNotFound(name)
    found: list[Host] = []
    for mxname, preference in pairs:
        for h in _addresses(mxname, port, "bydns", policy, ipv4_only, ipv4_prefer):
            h.mx = preference
            h.dnssec = h.dnssec and ans.authenticated
            found.append(h)
    return found


def _addresses(name: str, port: int | None, method: str, policy: dl.DnssecPolicy,
               ipv4_only: bool, ipv4_prefer: bool) -> list[Host]:
    if method != "bydns" or hostmod.is_ip(name):
        return [Host(name, ip, port)
                for ip in hostmod.resolve_name(name, ipv4_only, ipv4_prefer)]
    status, addrs, _, secure = dl.host_addresses_dnssec(
        name, ipv4_only=ipv4_only, ipv4_prefer=ipv4_prefer, policy=policy)
    _check(status, name)
    return [Host(name, ip, port, dnssec=secure) for ip in addrs]


def _check(status: str, name: str) -> None:
    if status == dl.INSECURE:
        raise InsecureHostLookup(name)
    if status == dl.AGAIN:
        raise hostmod.HostLookupDefer(f"DNS lookup of {name} did not complete")
    if status != dl.OK:
        raise hostmod.HostNotFound(name)
