"""The ``dnslists`` ACL condition (spec 44.27-44.37): DNS block lists.

The condition's value is an Exim list; each item is one of

* ``+include_unknown`` / ``+exclude_unknown`` / ``+defer_unknown``: what a lookup that
  fails temporarily means for the items after it (listed / not listed (the default) /
  the condition defers);
* ``[txtdomain,]domain[restriction][/keys]`` where ``restriction`` is ``=``, ``==``,
  ``&`` or ``=&`` (each may be preceded by ``!``) and a comma list of IP addresses, and
  ``keys`` is a sublist of IP addresses (reversed before the lookup) and names (used as
  they are).  Without keys the client's IP address is the key.

The first item that finds an address record (in 127.0.0.0/8, other answers are
discarded) satisfying its restriction makes the condition true and sets
``$dnslist_domain``, ``$dnslist_matched`` (the key, not reversed), ``$dnslist_value``
(the addresses, ", "-separated) and ``$dnslist_text`` (the TXT record of the same name).
With a ``txtdomain`` the restricted lookup is done in ``domain`` and, when it matches, the
variables come from an unrestricted lookup in ``txtdomain``.
"""
from __future__ import annotations

import ipaddress
import re
import time
from dataclasses import dataclass
from typing import Callable

import dns.exception
import dns.rdatatype
import dns.resolver

from pymta import dns as pdns
from pymta.debuglog import debug
from pymta.expand.lists import split_list
from pymta.taint import taint

#: What a temporary DNS failure means, set by the "+..._unknown" items.
EXCLUDE, INCLUDE, DEFER = "exclude", "include", "defer"
_UNKNOWN = {"+include_unknown": INCLUDE, "+exclude_unknown": EXCLUDE,
            "+defer_unknown": DEFER}

# domain part, then an optional restriction ("!" then = == & =&, and values), then keys.
_ITEM_RE = re.compile(r"^(?P<domain>[^=!&/]+)"
                      r"(?:(?P<op>!?(?:==|=&|=|&))(?P<values>[^/]*))?"
                      r"(?:/(?P<keys>.*))?$", re.S)

_LOOPBACK_NET = ipaddress.ip_network("127.0.0.0/8")

#: ``resolve(name, rtype)``: the records' texts, [] when there are none, None when the
#: lookup failed temporarily.
Resolver = Callable[[str, str], "list[str] | None"]


class DnsListDefer(Exception):
    """A lookup failed temporarily under ``+defer_unknown``: the condition defers."""


@dataclass(frozen=True)
class Restriction:
    """The ``=``/``&`` value test of an item: which found addresses count."""

    values: tuple[str, ...]
    bitmask: bool        # "&": every bit of a value must be set in the address
    every: bool          # "==" / "=&": all found addresses must match (else any)
    negated: bool        # "!": the result is inverted

    def matches(self, found: list[str]) -> bool:
        def one(address: str) -> bool:
            if self.bitmask:
                a = _as_int(address)
                return any(a & m == m for m in (_as_int(v) for v in self.values))
            return address in self.values
        hit = all(one(f) for f in found) if self.every else any(one(f) for f in found)
        return hit != self.negated


def _as_int(text: str) -> int:
    try:
        return int(ipaddress.ip_address(text.strip()))
    except ValueError:
        return 0


def parse_restriction(op: str, values: str) -> Restriction:
    """The restriction of an item from its operator (``!=&`` ...) and value list."""
    negated = op.startswith("!")
    op = op.lstrip("!")
    vals = tuple(str(ipaddress.ip_address(v.strip())) if _is_ip(v.strip()) else v.strip()
                 for v in values.split(",") if v.strip())
    return Restriction(vals, bitmask=op in ("&", "=&"), every=op in ("==", "=&"),
                       negated=negated)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def reverse_ip(ip: str) -> str | None:
    """The DNS-list form of an IP address (``4.3.2.1`` / nibbles for IPv6), else None."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if addr.version == 4:
        return ".".join(reversed(str(addr).split(".")))
    return ".".join(reversed(addr.exploded.replace(":", "")))


def dns_resolve_ttl(name: str, rtype: str) -> tuple[list[str] | None, float]:
    """Records of ``name`` from :mod:`pymta.dns` and how long they may be kept: [] when
    there are none (kept :data:`NEGATIVE_TTL`), None on a temporary failure (SERVFAIL,
    timeout; not kept)."""
    try:
        answer = pdns.resolve(name, rtype)
    except dns.resolver.NXDOMAIN as exc:
        return [], _negative_ttl(next(iter(exc.responses().values()), None))
    except dns.resolver.NoAnswer as exc:
        return [], _negative_ttl(exc.response())
    except dns.exception.DNSException:
        return None, 0.0
    ttl = float(answer.rrset.ttl) if answer.rrset is not None else 0.0
    if rtype == "TXT":
        return [b"".join(r.strings).decode("utf-8", "replace") for r in answer], ttl
    return [r.to_text() for r in answer], ttl


def _negative_ttl(response: object) -> float:
    """How long "no such record" may be kept: the zone's SOA says (RFC 2308: the
    smaller of its TTL and its minimum field), else NEGATIVE_TTL."""
    for rrset in getattr(response, "authority", None) or []:
        if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
            return float(min(rrset.ttl, rrset[0].minimum))
    return NEGATIVE_TTL


def dns_resolve(name: str, rtype: str) -> list[str] | None:
    """Records of ``name``: [] when there are none, None on a temporary failure."""
    return dns_resolve_ttl(name, rtype)[0]


#: How long a "no such record" answer is kept in a session's cache (as Exim: an hour).
NEGATIVE_TTL = 3600.0


class DnsListCache:
    """DNS list answers kept for one SMTP session, each for at most its TTL, so that a
    list consulted for every recipient is asked once (Exim does the same)."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], tuple[float, list[str] | None]] = {}

    def get(self, key: tuple[str, str]) -> tuple[bool, list[str] | None]:
        """(whether an answer is kept, the answer: None for a lookup that deferred)."""
        hit = self._entries.get(key)
        if hit is None or hit[0] < time.monotonic():
            return False, None
        return True, hit[1]

    def put(self, key: tuple[str, str], records: list[str] | None, ttl: float) -> None:
        if ttl > 0:
            self._entries[key] = (time.monotonic() + ttl, records)


class DnsListCheck:
    """One evaluation of a ``dnslists`` condition (results cached for its duration)."""

    def __init__(self, client_ip: str, variables: dict[str, str],
                 log: Callable[[str], object] | None = None,
                 resolve: Resolver | None = None, cache: DnsListCache | None = None,
                 log_defer: bool = True,
                 again_nonexist: Callable[[str], bool] | None = None):
        self.client_ip = client_ip
        self.again_nonexist = again_nonexist
        self.log_defer = log_defer
        self.variables = variables
        self.log = log
        self.resolve = resolve
        self.session_cache = cache
        self._cache: dict[tuple[str, str], list[str] | None] = {}

    def _lookup(self, name: str, rtype: str) -> list[str] | None:
        key = (name.lower(), rtype)
        trace = debug.dnsbl and rtype == "A"
        # asked before in this condition, or kept for the session
        kept, found = (True, self._cache[key]) if key in self._cache \
            else self.session_cache.get(key) if self.session_cache is not None \
            else (False, None)
        if kept:
            if trace:
                debug.printf("dnslists: using result of previous lookup")
        else:
            if trace:
                debug.printf(f"new DNS lookup for {name}")
            if self.resolve is not None:
                found, ttl = self.resolve(name, rtype), 0.0
            else:
                found, ttl = dns_resolve_ttl(name, rtype)
            if found is None:
                # a temporary failure counts as "no such name" for dns_again_means_nonexist;
                # else it is kept like one (Exim asks once per session)
                if self.again_nonexist is not None and self.again_nonexist(name):
                    found = []
                ttl = NEGATIVE_TTL
            if self.session_cache is not None and ttl > 0:
                if trace:
                    debug.printf(f"dnslists: wrote cache entry, ttl={int(ttl)}")
                self.session_cache.put(key, found, ttl)
        self._cache[key] = found
        return found

    def _addresses(self, name: str, domain: str) -> list[str] | None:
        """The A records of ``name`` inside 127.0.0.0/8 (others are logged and dropped)."""
        found = self._lookup(name, "A")
        if not found:
            return found
        kept = []
        for a in found:
            try:
                inside = ipaddress.ip_address(a) in _LOOPBACK_NET
            except ValueError:
                inside = False
            if inside:
                kept.append(a)
            elif self.log is not None:
                self.log(f"DNS list lookup for {name} at {domain} returned {a}; "
                         f"not in 127.0/8 and discarded")
        return kept

    def run(self, list_text: str) -> bool:
        """True if any item matches; raises :class:`DnsListDefer` for ``+defer_unknown``."""
        unknown = EXCLUDE
        for item in split_list(list_text):
            if not item:
                continue
            if debug.dnsbl:
                debug.printf(f"dnslists check: {item}")
            if item.startswith("+"):
                if item not in _UNKNOWN:
                    raise DnsListDefer(f"unknown dnslists option \"{item}\"")
                unknown = _UNKNOWN[item]
                continue
            if self._item(item, unknown):
                return True
        return False

    def _item(self, item: str, unknown: str) -> bool:
        m = _ITEM_RE.match(item)
        if not m:
            return False
        domains = [d.strip().rstrip(".") for d in m.group("domain").split(",")]
        txt_domain, domain = (domains[0], domains[-1]) if len(domains) > 1 \
            else (domains[0], domains[0])
        restriction = parse_restriction(m.group("op"), m.group("values") or "") \
            if m.group("op") else None
        keys_text = m.group("keys")
        keys = split_list(keys_text) if keys_text is not None else [self.client_ip]
        deferred: str | None = None
        for key in (k.strip() for k in keys):
            if not key:
                continue      # no key (no client IP): nothing to look up
            name = f"{reverse_ip(key) or key}.{domain}"
            found = self._addresses(name, domain)
            if found is None:
                deferred = deferred or name
                continue
            if not found:
                if debug.dnsbl:
                    debug.printf(f"DNS lookup for {name} failed")
                    debug.printf(f"=> that means {key} is not listed at {domain}")
                continue
            if debug.dnsbl:
                debug.printf(f"DNS lookup for {name} succeeded (yielding {', '.join(found)})")
            if restriction is not None and not restriction.matches(found):
                if debug.dnsbl:
                    debug.printf("=> but we are not accepting this block class because")
                    debug.printf(f"=> there was {'an exclude' if restriction.negated else 'no'}"
                                 f" match for {m.group('op').lstrip('!')}{m.group('values')}")
                continue
            if txt_domain != domain:
                # The merged-list form: confirm in, and take the details from, txtdomain.
                name = f"{reverse_ip(key) or key}.{txt_domain}"
                found = self._addresses(name, txt_domain)
                if not found:
                    continue
            if debug.dnsbl:
                debug.printf(f"=> that means {key} is listed at {domain}")
            self._set(txt_domain, key, found, name)
            return True
        if deferred is None:
            return False
        verdict = {INCLUDE: "assumed in list", EXCLUDE: "assumed not in list",
                   DEFER: "returned DEFER"}[unknown]
        text = f"DNS list lookup defer (probably timeout) for {deferred}: {verdict}"
        if self.log is not None and self.log_defer:       # log_selector dnslist_defer
            self.log(text)
        if unknown == DEFER:
            raise DnsListDefer(text)
        if unknown == INCLUDE:
            if debug.dnsbl:
                debug.printf(f"=> that means {keys[0] if keys else ''} is listed at {domain}")
            self._set(txt_domain, keys[0] if keys else "", [], None)
            return True
        return False

    def _set(self, domain: str, key: str, found: list[str], name: str | None) -> None:
        texts = (self._lookup(name, "TXT") or []) if name is not None else []
        v = self.variables
        v["dnslist_domain"] = domain
        v["dnslist_matched"] = taint(key) if not _is_ip(key) else key
        v["dnslist_value"] = ", ".join(found)
        v["dnslist_text"] = taint(texts[0] if texts else "")     # remote data


def check_dnslists(list_text: str, ip: str, variables: dict[str, str],
                   log: Callable[[str], object] | None = None,
                   resolve: Resolver | None = None,
                   cache: DnsListCache | None = None, log_defer: bool = True,
                   again_nonexist: Callable[[str], bool] | None = None) -> bool:
    """True if any list item matches; sets the $dnslist_* variables for the match.
    ``cache`` keeps answers across conditions (one per SMTP session); ``log_defer``
    false (log_selector -dnslist_defer) leaves out the line about a lookup that
    deferred."""
    return DnsListCheck(ip, variables, log, resolve, cache, log_defer,
                        again_nonexist).run(list_text)
