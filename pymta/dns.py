"""The project's single place that builds dnspython resolvers.

Everything in pymta that asks the DNS should call :func:`get_resolver` (or
:func:`resolve`).  By default that is dnspython's system resolver (``/etc/resolv.conf``).
Tests point it at a local server with :func:`set_server` / :func:`set_resolver`; other
processes (daemon integration tests) use the environment variable
``PYMTA_DNS_SERVER=ip:port`` (``[ipv6]:port`` or a bare ``ip`` for port 53), with
``PYMTA_DNS_SEARCH`` (space-separated domains) as its resolver's search list.
"""
from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pymta.debuglog import debug

ENV_VAR = "PYMTA_DNS_SERVER"
SEARCH_ENV_VAR = "PYMTA_DNS_SEARCH"

_override: Any = None          # a resolver set by set_resolver()/set_server()
_env_cache: tuple[str, Any] | None = None


@dataclass(frozen=True)
class ResolverTuning:
    """What the main options dns_retrans, dns_retry and dns_use_edns0 change in every
    resolver of the process; 0 (retrans, retry) and -1 (use_edns0) leave the
    resolver's own setting (resolv.conf's, for the system resolver)."""

    retrans: float = 0.0       # seconds to wait for one answer before asking again
    retry: int = 0             # how many times to ask again
    use_edns0: int = -1        # 1: send EDNS0, 0: never, -1: as configured


_tuning = ResolverTuning()
#: dns_ipv4_lookup as a predicate on a host name (None: unset); built by the caller of
#: :func:`configure`, which can expand a domain list (this module is below that layer).
_ipv4_only: Callable[[str], bool] | None = None


def configure(tuning: ResolverTuning, ipv4_only: Callable[[str], bool] | None = None) -> None:
    """Apply the configuration's resolver options to this process's resolvers."""
    global _tuning, _ipv4_only, _env_cache
    _ipv4_only = ipv4_only
    if tuning == _tuning:
        return
    _tuning = tuning
    # Resolvers tuned under the old settings are rebuilt, so a value set back to its
    # default returns to the resolver's own.
    _env_cache = None
    import dns.resolver
    dns.resolver.reset_default_resolver()


def ipv4_lookup_only(name: str) -> bool:
    """dns_ipv4_lookup: look up only A records (no AAAA) for host ``name``."""
    return _ipv4_only is not None and _ipv4_only(name)


def _tuned(res: Any) -> Any:
    """``res`` with :data:`_tuning` applied (once per resolver object)."""
    t = _tuning
    if getattr(res, "_pymta_tuning", None) is t:
        return res
    if t.retrans > 0:
        res.timeout = t.retrans
    if t.retrans > 0 or t.retry > 0:
        # dnspython asks again until the lifetime is used up
        res.lifetime = res.timeout * (t.retry + 1)
    if t.use_edns0 == 0:
        res.use_edns(False)
    elif t.use_edns0 > 0 and res.edns < 0:
        res.use_edns(0, res.ednsflags, 1232)
    res._pymta_tuning = t
    return res


def _parse_server(text: str) -> tuple[str, int]:
    """Split ``ip:port`` / ``[ip6]:port`` / ``ip`` into (ip, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 53
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, int(port)
    return text, 53


def make_resolver(ip: str, port: int = 53, timeout: float = 2.0) -> Any:
    """A dnspython resolver that asks only ``ip``:``port`` (no search list)."""
    import dns.resolver
    res = dns.resolver.Resolver(configure=False)
    res.nameservers = [ip]
    res.port = port
    res.timeout = res.lifetime = timeout
    res.search = []
    return res


def set_resolver(resolver: Any) -> None:
    """Use ``resolver`` for every DNS query in this process (None: back to default)."""
    global _override
    _override = resolver


def set_server(ip: str | None, port: int = 53, timeout: float = 2.0) -> None:
    """Send every DNS query of this process to one server (None: back to default)."""
    set_resolver(None if ip is None else make_resolver(ip, port, timeout))


def dns_name(text: str) -> Any:
    """``text`` as an absolute dnspython name."""
    import dns.name
    return dns.name.from_text(text)


def get_resolver() -> Any:
    """The resolver to use now: override, then ``$PYMTA_DNS_SERVER``, then the system's."""
    global _env_cache
    if _override is not None:
        return _tuned(_override)
    env = os.environ.get(ENV_VAR)
    if env:
        search = os.environ.get(SEARCH_ENV_VAR, "")
        if _env_cache is None or _env_cache[0] != env + "\0" + search:
            ip, port = _parse_server(env)
            res = make_resolver(ip, port)
            res.search = [dns_name(d) for d in search.split()]
            _env_cache = (env + "\0" + search, res)
        return _tuned(_env_cache[1])
    import dns.resolver
    return _tuned(dns.resolver.get_default_resolver())


class TemporaryDnsError(Exception):
    """A host's addresses could not be had for now (a time-out or a server failure)."""


def host_addresses(name: str, report_deferral: bool = False) -> set[str]:
    """The IP addresses of host ``name``: its DNS A and AAAA records (only A under
    dns_ipv4_lookup), else what the system's resolver says (/etc/hosts); empty when
    nothing is found or the lookup fails.  With ``report_deferral`` a lookup that found
    nothing because of a temporary failure raises :class:`TemporaryDnsError`."""
    import dns.exception
    import dns.resolver
    v4_only = ipv4_lookup_only(name)
    found: set[str] = set()
    temporary = False
    for rtype in ("A",) if v4_only else ("A", "AAAA"):
        try:
            found |= {str(r.address) for r in resolve(name, rtype)}
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, ValueError):
            continue
        except dns.exception.DNSException:
            temporary = True
    if found:
        return found
    try:
        infos = socket.getaddrinfo(name, None, socket.AF_INET if v4_only else socket.AF_UNSPEC,
                                   proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        if report_deferral and (temporary or exc.errno == socket.EAI_AGAIN):
            raise TemporaryDnsError(name) from None
        return set()
    except (OSError, UnicodeError):
        return set()
    return {str(i[4][0]).split("%")[0] for i in infos}


def resolve(name: str, rtype: str, **kw: Any) -> Any:
    """``resolver.resolve`` on the current resolver, without the search list."""
    kw.setdefault("search", False)
    if debug.dns:
        return _traced_resolve(name, rtype, kw)
    return get_resolver().resolve(name, rtype, **kw)


def _traced_resolve(name: str, rtype: str, kw: dict[str, Any]) -> Any:
    """resolve() with +dns tracing: the question, then the answers or the failure."""
    debug.printf(f"DNS lookup of {name} ({rtype})")
    try:
        answer = get_resolver().resolve(name, rtype, **kw)
    except Exception as exc:
        debug.printf(f"DNS lookup of {name} ({rtype}) failed: {exc}")
        raise
    records = [r.to_text() for r in answer] if answer is not None else []
    debug.printf(f"DNS lookup of {name} ({rtype}) succeeded: " + " ".join(records))
    return answer


#: One CSA SRV record: (priority, weight, port, target without the final dot).
CsaRecord = tuple[int, int, int, str]


def csa_query_name(domain: str, use_reverse: bool = True) -> tuple[str, int | None] | None:
    """The name whose ``_client._smtp`` SRV records hold Client SMTP Authorization for
    ``domain`` (Exim spec 44.52), with a search-depth cap: an IP address or address
    literal becomes its reverse-DNS name (None when ``use_reverse`` is false)."""
    import ipaddress

    import dns.reversename
    text = domain.strip().rstrip(".")
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
        if text.lower().startswith("ipv6:"):
            text = text[5:]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return text.lower(), None
    if not use_reverse:
        return None
    # In the reverse trees the "top-level domain" is in-addr.arpa / ip6.arpa.
    return str(dns.reversename.from_address(str(ip))).rstrip("."), 3 if ip.version == 4 else 31


def _csa_top(name: str) -> str:
    for tail in ("in-addr.arpa", "ip6.arpa"):
        if name.endswith("." + tail):
            return tail
    return name.rpartition(".")[2]


def csa_search(domain: str, search_limit: int = 5, use_reverse: bool = True
               ) -> tuple[str, str, list[CsaRecord]] | None:
    """Find the CSA SRV records for ``domain``: (name asked for, name where found,
    records).  Without records for the name itself up to ``search_limit`` parents are
    tried, never a top-level domain; no records anywhere gives ``[]``.  None when the
    domain cannot be searched; a temporary DNS failure raises DNSException."""
    import dns.resolver
    named = csa_query_name(domain, use_reverse) if domain else None
    if named is None:
        return None
    name, cap = named
    limit = search_limit if cap is None else min(cap, search_limit)
    top = _csa_top(name)
    at = name
    for level in range(limit + 1):
        if level:
            parent = at.partition(".")[2]
            if not parent or parent == top:
                break              # never a top-level domain
            at = parent
        try:
            answer = resolve(f"_client._smtp.{at}", "SRV")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            continue
        return name, at, [(r.priority, r.weight, r.port, str(r.target).rstrip(".").lower())
                          for r in answer]
    return name, name, []
