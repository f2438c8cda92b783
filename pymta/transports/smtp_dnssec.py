"""DNS lookups, with DNSSEC, of the hosts an smtp transport names itself (``hosts``,
``fallback_hosts``).

As in Exim (``gethostbyname`` false), their addresses come from the DNS (pymta's
resolver).  A host name in ``dnssec_request_domains`` (default ``*``) or
``dnssec_require_domains`` is looked up asking for DNSSEC (:mod:`pymta.dnssec`); the
host is marked secure when the answers were authenticated (the ``DS`` of the delivery
line).  A name in ``dnssec_require_domains`` whose answer was not authenticated is not
used: the addresses defer with Exim's "lookup of IP address for NAME was insecure".
When the DNS has no addresses for the name the caller asks the system resolver as
before (/etc/hosts), unsecured.

The resolver's widening applies as dns_qualify_single (default true) and
dns_search_parents (default false) say, as Exim sets RES_DEFNAMES and RES_DNSRCH for
these lookups (:mod:`pymta.dns_search`); the host is then named by the name that was
found, as Exim names it by the fully qualified name.
"""
from __future__ import annotations

from collections.abc import Callable

from pymta.address import Host
from pymta.dns_search import names_to_try
from pymta.routing import dnslookup as dl


class InsecureHostLookup(Exception):
    """An address lookup that dnssec_require_domains wanted authenticated was not."""

    def __init__(self, name: str) -> None:
        super().__init__(f"lookup of IP address for {name} was insecure")


def policy(in_list: Callable[[str, str], bool]) -> dl.DnssecPolicy:
    """The transport's DNSSEC policy; ``in_list(option, name)`` matches a domain list."""
    return dl.DnssecPolicy(request=lambda d: in_list("dnssec_request_domains", d),
                           require=lambda d: in_list("dnssec_require_domains", d))


def lookup(host: Host, port: int, dnssec: dl.DnssecPolicy, qualify_single: bool = True,
           search_parents: bool = False) -> list[Host] | None:
    """``host`` (which has no address yet) with each of its DNS addresses, or None when
    the DNS found none under any of the names the resolver's widening gives."""
    for name in names_to_try(host.name, qualify_single, search_parents):
        status, addrs, _, secure = dl.host_addresses_dnssec(name, policy=dnssec)
        if status == dl.INSECURE:
            raise InsecureHostLookup(name)
        if status == dl.OK and addrs:
            return [Host(name, ip, port, host.mx, dnssec=secure) for ip in addrs]
    return None
