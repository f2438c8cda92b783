"""The dnslookup router: find a domain's mail hosts in the DNS (SRV, MX, then A/AAAA).

Behaviour follows the chapter "The dnslookup router" of the Exim 4.96 specification:

* with ``check_srv`` set, ``_service._tcp.domain`` SRV records are tried first; a single
  SRV record whose target is "." means "no service" and the router declines;
* otherwise MX records, sorted by preference (equal preferences in random order); a null
  MX (RFC 7505, a single ``0 .`` record) makes the router decline;
* no MX records: the domain's own address records are used (an "implicit MX"), unless
  the domain is in ``mx_domains``;
* each host's addresses come from A/AAAA lookups (IPv6 first unless ``ipv4_prefer``;
  only A with ``ipv4_only``); addresses in ``ignore_target_hosts`` are dropped;
* a local host that is not among the most preferred ones cuts the list before its
  preference; a local host among the most preferred is handled by the ``self`` option;
* DNS temporary errors defer (or pass with ``pass_on_timeout``; ``mx_fail_domains`` and
  ``srv_fail_domains`` turn them into "no records"); a domain that does not exist
  declines (deferred instead when it is in ``fail_defer_domains``);
* lookups for names in ``dnssec_request_domains`` (default ``*``) or
  ``dnssec_require_domains`` ask for DNSSEC (:mod:`pymta.dnssec`); a host whose MX/SRV
  and address lookups were all authenticated is marked ``dnssec`` (the ``DS`` of the
  delivery log line); an answer for a name in ``dnssec_require_domains`` that is not
  authenticated defers the address ("host lookup done insecurely").

Every DNS query goes through :mod:`pymta.dns`.
"""
from __future__ import annotations

import copy
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pymta import dns as pdns
from pymta import dnssec
from pymta.address import Address, Host, quote_local_part
from pymta.dns_cname import resolve_host
from pymta.dns_search import names_to_try
from pymta.drivers import register
from pymta.match import match_host
from pymta.routing import hosts as hostmod
from pymta.routing import support
from pymta.routing.base import ACCEPT, DECLINE, DEFER, PASS, Router, RouterReply
from pymta.routing.options import router_options
from pymta.routing.selfhost import self_action
from pymta.truth import exim_true

# Outcomes of a DNS query (Exim's DNS_SUCCEED / DNS_NOMATCH / DNS_NODATA / DNS_AGAIN).
OK, NXDOMAIN, NODATA, AGAIN = "ok", "nxdomain", "nodata", "again"

# Outcomes of finding the hosts for one domain (FIND_SECURITY: Exim's
# HOST_FIND_SECURITY, an answer dnssec_require_domains wanted authenticated was not).
FOUND, FOUND_LOCAL, FAILED, FIND_AGAIN = "found", "found_local", "failed", "again"
FIND_SECURITY = "security"
INSECURE = "insecure"       # a DNS answer that dnssec_require_domains rejects

MSG_AGAIN = "host lookup did not complete"
MSG_NO_SERVICE = "an MX or SRV record indicated no SMTP service"
MSG_MX_MISSING = "all relevant MX records point to non-existent hosts"
MSG_MX_TO_IP = " or (invalidly) to IP addresses"
MSG_FAIL_DEFER = "missing MX, or all MXs point to missing A records, and defer requested"
MSG_INSECURE = "host lookup done insecurely"

_pattern_cache: dict[str, re.Pattern | None] = {}


def name_is_valid(name: str, pattern: str | None) -> bool:
    """Exim's ``dns_check_names_pattern`` test of a name before it is looked up (an empty
    or unusable pattern lets every name through)."""
    if not pattern:
        return True
    if pattern not in _pattern_cache:
        try:
            _pattern_cache[pattern] = re.compile(pattern)
        except re.error:
            _pattern_cache[pattern] = None
    rx = _pattern_cache[pattern]
    return rx is None or rx.search(name) is not None


@dataclass
class DnsAnswer:
    """One query's outcome: status, the records (texts/rdata), the canonical name."""

    status: str
    records: list = field(default_factory=list)
    canonical: str | None = None
    authenticated: bool = False      # DNSSEC: the resolver vouched for the answer


@dataclass(frozen=True)
class DnssecPolicy:
    """Which names' lookups ask for DNSSEC (dnssec_request_domains, and those in
    dnssec_require_domains) and which must come back authenticated."""

    request: Callable[[str], bool] = lambda name: False
    require: Callable[[str], bool] = lambda name: False


NO_DNSSEC = DnssecPolicy()


def dns_query(name: str, rtype: str, again_nonexist: Callable[[str], bool] | None = None,
              policy: DnssecPolicy = NO_DNSSEC) -> DnsAnswer:
    """Ask the DNS (through :func:`pymta.dnssec.resolve`) for ``rtype`` records of
    ``name``.

    Timeouts, SERVFAIL and refusals are AGAIN, unless ``again_nonexist(name)`` says the
    name is in ``dns_again_means_nonexist``: then they count as NXDOMAIN.  Records that
    ``policy`` requires to be authenticated and are not give INSECURE.
    """
    import dns.exception
    import dns.resolver

    require = policy.require(name)
    try:
        requested = require or policy.request(name)
        ans, authenticated = resolve_host(
            name, rtype, lambda n, t: dnssec.resolve(n, t, requested))
    except dns.resolver.NXDOMAIN:
        return DnsAnswer(NXDOMAIN)
    except dns.resolver.NoAnswer:
        return DnsAnswer(NODATA)
    except (dns.exception.DNSException, OSError):
        if again_nonexist is not None and again_nonexist(name):
            return DnsAnswer(NXDOMAIN)
        return DnsAnswer(AGAIN)
    if require and not authenticated:
        return DnsAnswer(INSECURE)
    canonical = ans.canonical_name.to_text(omit_final_dot=True) if ans.canonical_name else None
    return DnsAnswer(OK, list(ans), canonical, authenticated)


@dataclass
class HostFind:
    """The result of :func:`find_hosts_bydns`.

    ``status`` is FOUND, FOUND_LOCAL (a most-preferred host is this host), FAILED or
    FIND_AGAIN.  ``fqdn`` is the name that was looked up. On FAILED,
    ``no_service`` says a null MX/SRV was found, ``mx_seen`` that MX/SRV records existed
    but none of their hosts had a (usable) address, ``mx_to_ip`` that some MX named an IP.
    ``local_removed`` is set when a less preferred local host cut the list.
    """

    status: str
    hosts: list[Host] = field(default_factory=list)
    fqdn: str = ""
    via_mx: bool = False
    no_service: bool = False
    mx_seen: bool = False
    mx_to_ip: bool = False
    local_removed: bool = False
    ignored: bool = False
    #: DNSSEC status of the lookups, for $lookup_dnssec_authenticated: "" when none asked
    #: for DNSSEC, "yes" when all that did were authenticated, else "no"
    dnssec: str = ""


def _shuffle_by_preference(items: list[tuple[int, Any]]) -> list[tuple[int, Any]]:
    """Sort by preference; equal preferences end up in random order."""
    keyed = [(pref, random.random(), item) for pref, item in items]
    keyed.sort(key=lambda k: (k[0], k[1]))
    return [(pref, item) for pref, _, item in keyed]


def _srv_order(records: list) -> list:
    """RFC 2782 ordering: by priority, then a weighted random order within a priority."""
    out = []
    by_prio: dict[int, list] = {}
    for r in records:
        by_prio.setdefault(r.priority, []).append(r)
    for prio in sorted(by_prio):
        group = list(by_prio[prio])
        while group:
            total = sum(r.weight for r in group)
            if total == 0:
                pick = random.choice(group)
            else:
                point, run = random.uniform(0, total), 0
                pick = group[-1]
                for r in group:
                    run += r.weight
                    if run >= point and r.weight > 0:
                        pick = r
                        break
            group.remove(pick)
            out.append(pick)
    return out


def host_addresses(name: str, *, ipv4_only: bool = False, ipv4_prefer: bool = False,
                   again_nonexist: Callable[[str], bool] | None = None,
                   policy: DnssecPolicy = NO_DNSSEC) -> tuple[str, list[str], str]:
    """(status, addresses, canonical name) of ``name``: AAAA before A unless
    ``ipv4_prefer``; only A with ``ipv4_only``.  Addresses of one family are in random
    order, as Exim sorts them; the canonical name is the target of any CNAME chain (Exim
    names hosts by it).  :func:`host_addresses_dnssec` also gives the DNSSEC status."""
    status, addrs, canonical, _ = host_addresses_dnssec(
        name, ipv4_only=ipv4_only, ipv4_prefer=ipv4_prefer, again_nonexist=again_nonexist,
        policy=policy)
    return status, addrs, canonical


def host_addresses_dnssec(name: str, *, ipv4_only: bool = False, ipv4_prefer: bool = False,
                          again_nonexist: Callable[[str], bool] | None = None,
                          policy: DnssecPolicy = NO_DNSSEC
                          ) -> tuple[str, list[str], str, bool]:
    """:func:`host_addresses` and whether every answer with addresses was
    DNSSEC-authenticated; INSECURE when one that ``policy`` requires was not."""
    ipv4_only = ipv4_only or pdns.ipv4_lookup_only(name)     # dns_ipv4_lookup
    rtypes = ["A"] if ipv4_only else (["A", "AAAA"] if ipv4_prefer else ["AAAA", "A"])
    addrs: list[str] = []
    canonical = name
    again = False
    secure = True
    for rtype in rtypes:
        ans = dns_query(name, rtype, again_nonexist, policy)
        if ans.status == INSECURE:
            return INSECURE, [], name, False
        if ans.status == AGAIN:
            again = True
        elif ans.status == OK:
            found = [r.to_text() for r in ans.records]
            random.shuffle(found)
            addrs.extend(found)
            canonical = ans.canonical or name
            secure = secure and ans.authenticated
        elif ans.status == NXDOMAIN:
            break               # no other family can exist either
    if addrs:
        return OK, addrs, canonical, secure
    return (AGAIN if again else NXDOMAIN), [], name, False


def find_hosts_bydns(domain: str, *, srv_service: str | None = None,
                     ipv4_only: bool = False, ipv4_prefer: bool = False,
                     srv_fail: Callable[[str], bool] = lambda d: False,
                     mx_fail: Callable[[str], bool] = lambda d: False,
                     again_nonexist: Callable[[str], bool] | None = None,
                     ignore: Callable[[Host], bool] = lambda h: False,
                     is_local: Callable[[Host], bool] = lambda h: False,
                     allow_mx_to_ip: bool = False,
                     policy: DnssecPolicy = NO_DNSSEC) -> HostFind:
    """Find the hosts that take mail for ``domain``: SRV (when ``srv_service`` is given),
    then MX, then the domain's own address records.

    The callables decide list memberships (``srv_fail_domains``, ``mx_fail_domains``,
    ``dns_again_means_nonexist``, ``ignore_target_hosts``, the local host) so that this
    function needs no configuration; nor does ``policy`` (the DNSSEC options).
    """
    fqdn = domain
    if policy is not NO_DNSSEC:
        # the domain's answer stands for every lookup this search makes (its MX hosts'
        # addresses too), as in Exim: the lists are matched once
        request, require = policy.request(domain), policy.require(domain)
        policy = DnssecPolicy(request=lambda name: request, require=lambda name: require)
    targets: list[tuple[int, str, int | None]] = []   # (preference, name, port)
    via_mx = False
    # DNSSEC status of the SRV/MX answer that named the hosts
    requested = policy.request(domain) or policy.require(domain)
    mx_secure = False
    if srv_service:
        ans = dns_query(f"_{srv_service}._tcp.{domain}", "SRV", again_nonexist, policy)
        if ans.status == INSECURE:
            return HostFind(FIND_SECURITY, fqdn=fqdn)
        mx_secure = ans.authenticated
        if ans.status == AGAIN and not srv_fail(domain):
            return HostFind(FIND_AGAIN, fqdn=fqdn)
        if ans.status == OK:
            recs = ans.records
            if len(recs) == 1 and recs[0].target.to_text() == ".":
                return HostFind(FAILED, fqdn=fqdn, no_service=True, mx_seen=True)
            for r in _srv_order([r for r in recs if r.target.to_text() != "."]):
                targets.append((r.priority, r.target.to_text(omit_final_dot=True), r.port))
            via_mx = bool(targets)
    if not via_mx:
        ans = dns_query(domain, "MX", again_nonexist, policy)
        if ans.status == INSECURE:
            return HostFind(FIND_SECURITY, fqdn=fqdn)
        mx_secure = ans.authenticated
        if ans.status == AGAIN and not mx_fail(domain):
            return HostFind(FIND_AGAIN, fqdn=fqdn)
        if ans.status == NXDOMAIN:
            return HostFind(FAILED, fqdn=fqdn)
        if ans.status == OK:
            recs = ans.records
            if len(recs) == 1 and recs[0].exchange.to_text() == ".":
                return HostFind(FAILED, fqdn=fqdn, no_service=True, mx_seen=True)
            pairs = [(r.preference, r.exchange.to_text(omit_final_dot=True))
                     for r in recs if r.exchange.to_text() != "."]
            targets = [(p, n, None) for p, n in _shuffle_by_preference(pairs)]
            via_mx = bool(targets)
    if not via_mx:
        # no MX (or SRV): the domain itself is the host (an "implicit MX")
        status, addrs, canonical, secure = host_addresses_dnssec(
            domain, ipv4_only=ipv4_only, ipv4_prefer=ipv4_prefer,
            again_nonexist=again_nonexist, policy=policy)
        if status == INSECURE:
            return HostFind(FIND_SECURITY, fqdn=fqdn)
        if status == AGAIN:
            return HostFind(FIND_AGAIN, fqdn=fqdn)
        if status != OK:
            return HostFind(FAILED, fqdn=fqdn)
        found = [Host(canonical, ip, dnssec=secure) for ip in addrs]
        kept = [h for h in found if not ignore(h)]
        if not kept:
            return HostFind(FAILED, fqdn=fqdn, ignored=True)
        return _scan_for_local(HostFind(FOUND, kept, fqdn, dnssec=_status(requested, kept)),
                               is_local)

    hosts: list[Host] = []
    again = mx_to_ip = ignored = False
    for pref, name, port in targets:
        secure = False
        if hostmod.is_ip(name):
            if not allow_mx_to_ip:
                mx_to_ip = True
                continue
            addrs = [name]
        else:
            status, addrs, name, secure = host_addresses_dnssec(
                name, ipv4_only=ipv4_only, ipv4_prefer=ipv4_prefer,
                again_nonexist=again_nonexist, policy=policy)
            if status == INSECURE:
                return HostFind(FIND_SECURITY, fqdn=fqdn)
            if status == AGAIN:
                again = True
                continue
        for ip in addrs:
            h = Host(name, ip, port, pref, dnssec=mx_secure and secure)
            if ignore(h):
                ignored = True
            else:
                hosts.append(h)
    if not hosts:
        if again:
            return HostFind(FIND_AGAIN, fqdn=fqdn, via_mx=True)
        return HostFind(FAILED, fqdn=fqdn, via_mx=True, mx_seen=True,
                        mx_to_ip=mx_to_ip, ignored=ignored)
    return _scan_for_local(HostFind(FOUND, hosts, fqdn, via_mx=True,
                                    dnssec=_status(requested, hosts)), is_local)


def _status(requested: bool, hosts: list[Host]) -> str:
    """$lookup_dnssec_authenticated after finding ``hosts``."""
    if not requested:
        return ""
    return "yes" if all(h.dnssec for h in hosts) else "no"


def _scan_for_local(found: HostFind, is_local: Callable[[Host], bool]) -> HostFind:
    """A local host among the most preferred makes the result FOUND_LOCAL; a less
    preferred one removes itself and every host of equal or lower preference."""
    hosts = found.hosts
    top = hosts[0].mx
    for h in hosts:
        if not is_local(h):
            continue
        if h.mx == top:
            found.status = FOUND_LOCAL
            return found
        found.hosts = [x for x in hosts if x.mx < h.mx]
        found.local_removed = True
        return found
    return found


@register("router", "dnslookup")
class DnslookupRouter(Router):
    """Route remote domains to the hosts their DNS MX (or SRV, or address) records name."""

    options = router_options("dnslookup")

    def route(self, addr: Address, ctx: Any, verify: Any = False) -> RouterReply:
        transport = self.transport_name(ctx)
        if transport is None and not self.flag("verify_only"):
            return RouterReply(DEFER, f"{self.name} router: no transport set")
        if self.flag("same_domain_copy_routing"):
            cached = ctx.lookup_cache.get(self._cache_key(addr))
            if cached is not None:
                addr.transport = cached[0]
                addr.hosts = [copy.copy(h) for h in cached[1]]
                return RouterReply(ACCEPT)
        try:
            srv_service = self._expand_optional("check_srv", ctx)
            ipv4_only = (exim_true(self._expand_optional("ipv4_only", ctx))
                         or bool(support.main_option(self.config, "disable_ipv6", False)))
            ipv4_prefer = exim_true(self._expand_optional("ipv4_prefer", ctx))
        except support.ExpandError as exc:
            return RouterReply(DEFER, f"{self.name} router: {exc}")

        # the resolver's own widening (qualify_single, search_parents), then widen_domains
        names = names_to_try(addr.domain, self.opt("qualify_single") is not False,
                             bool(self.opt("search_parents")))
        widen = self.opt("widen_domains")
        if widen and (verify != "sender" or not self.flag("rewrite_headers")
                      or addr.parent is not None):
            names += [f"{addr.domain}.{w}" for w in support.split_list(widen)]

        pattern = support.main_option(self.config, "dns_check_names_pattern")
        result = None
        for name in names:
            if not name_is_valid(name, pattern):
                # a malformed domain is not looked up, and not widened either
                return RouterReply(DECLINE, f'mail domain "{name}" is syntactically invalid')
            result = self._find(name, srv_service, ipv4_only, ipv4_prefer, ctx)
            if result.status in (FOUND, FOUND_LOCAL) and not result.via_mx \
                    and self._in_list("mx_domains", result.fqdn, ctx):
                result = HostFind(FAILED, fqdn=result.fqdn)     # an MX is required
                continue
            if result.status == FIND_SECURITY:
                return RouterReply(DEFER, MSG_INSECURE)
            if result.status == FIND_AGAIN:
                if self.flag("pass_on_timeout"):
                    return RouterReply(PASS)
                return RouterReply(DEFER, MSG_AGAIN)
            if result.status != FAILED:
                break
            if self._in_list("fail_defer_domains", result.fqdn, ctx):
                return RouterReply(DEFER, MSG_FAIL_DEFER)
            if result.no_service:
                return RouterReply(DECLINE, MSG_NO_SERVICE)
            if result.mx_seen:
                msg = MSG_MX_MISSING + (MSG_MX_TO_IP if result.mx_to_ip else "")
                return RouterReply(DECLINE, msg)
        if result is None or result.status == FAILED:
            return RouterReply(DECLINE)

        if result.fqdn.lower() != addr.domain.lower():
            # widened: the address is routed again with the full domain (Exim keeps a
            # domain that is a CNAME as it is)
            child = Address(f"{quote_local_part(addr.local_part)}@{result.fqdn.lower()}",
                            parent=addr)
            return RouterReply(ACCEPT, children=[child])

        addr.hosts = result.hosts
        addr.transport = transport
        ctx.variables["lookup_dnssec_authenticated"] = result.dnssec
        if result.status == FOUND_LOCAL:
            reply = self_action(self, addr, result.hosts[0])
            if reply is not None:
                return reply
        elif self.flag("check_secondary_mx") and not result.local_removed:
            addr.hosts, addr.transport = [], None
            return RouterReply(DECLINE)
        if self.flag("same_domain_copy_routing") and not self.opt("headers_add") \
                and not self.opt("headers_remove"):
            ctx.lookup_cache[self._cache_key(addr)] = (
                transport, [copy.copy(h) for h in addr.hosts])
        return RouterReply(ACCEPT)

    # -- helpers -----------------------------------------------------------------
    def _cache_key(self, addr: Address) -> tuple[str, str, str]:
        return ("dnslookup:same_domain", self.name, addr.domain)

    def _expand_optional(self, name: str, ctx: Any) -> str | None:
        """Expand an option; unset or a forced failure give None."""
        text = self.opt(name)
        if text is None:
            return None
        try:
            value = support.expand(text, ctx)
        except support.ExpandFail:
            return None
        except support.ExpandDefer:
            raise
        except support.ExpandError as exc:
            raise support.ExpandError(f'failed to expand "{text}": {exc}') from exc
        return None if value is None else str(value).strip()

    def _in_list(self, option: str, domain: str, ctx: Any) -> bool:
        text = self.opt(option)
        return bool(text) and support.match_domain(domain, text, ctx)

    def _find(self, name: str, srv_service: str | None, ipv4_only: bool,
              ipv4_prefer: bool, ctx: Any) -> HostFind:
        config = self.config
        again_list = support.main_option(config, "dns_again_means_nonexist")
        return find_hosts_bydns(
            name, srv_service=srv_service or None, ipv4_only=ipv4_only,
            ipv4_prefer=ipv4_prefer,
            srv_fail=lambda d: self._in_list("srv_fail_domains", d, ctx),
            mx_fail=lambda d: self._in_list("mx_fail_domains", d, ctx),
            again_nonexist=(lambda d: support.match_domain(d, again_list, ctx))
            if again_list else None,
            ignore=self._ignore_fn(ctx),
            is_local=lambda h: hostmod.is_local_host(h, config, ctx),
            allow_mx_to_ip=bool(support.main_option(config, "allow_mx_to_ip", False)),
            policy=DnssecPolicy(
                request=lambda d: self._in_list("dnssec_request_domains", d, ctx),
                require=lambda d: self._in_list("dnssec_require_domains", d, ctx)))

    def _ignore_fn(self, ctx: Any) -> Callable[[Host], bool]:
        """A test for ``ignore_target_hosts`` (expanded once per routing)."""
        text = self.opt("ignore_target_hosts")
        if not text:
            return lambda h: False
        expanded = support.expand(text, ctx)
        if not expanded:
            return lambda h: False
        mctx = ctx.child()
        return lambda h: match_host(h.address, None, expanded, mctx, expand=False,
                                    data_var="", shown_as=h.address)
