"""The ``dnslists`` ACL condition (spec 44.27-44.37): DNS block lists.

Each list item is ``domain[=|==|!=|!==|=&|!=&values][/key]``.  Without a key the client's
IP address is looked up, reversed, under ``domain``; a key that is an IP address is
reversed too, any other key is used as it is.  A list matches when the A records found
satisfy the value test (any record when no values are given).  On a match the variables
``dnslist_domain``, ``dnslist_matched``, ``dnslist_value`` and ``dnslist_text`` (the TXT
record) are set.  A lookup that fails temporarily counts as "not listed".
"""
from __future__ import annotations

import ipaddress
import re
from typing import Any, Callable

from pymta.taint import taint

_ITEM_RE = re.compile(r"^(?P<domain>[^=!/]+)(?:(?P<op>!?==?&?|!?=&)(?P<values>[^/]*))?"
                      r"(?:/(?P<key>.*))?$")


def _reverse_ip(ip: str) -> str | None:
    """The DNS-list form of an IP address (``4.3.2.1`` / nibbles for IPv6), else None."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if addr.version == 4:
        return ".".join(reversed(str(addr).split(".")))
    return ".".join(reversed(addr.exploded.replace(":", "")))


def _resolve(name: str, rtype: str) -> list[str] | None:
    """Records of ``name``; [] when it does not exist, None on a temporary failure."""
    import dns.exception
    import dns.resolver
    try:
        answer = dns.resolver.resolve(name, rtype, search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except (dns.resolver.NoNameservers, dns.exception.Timeout, dns.resolver.YXDOMAIN):
        return None
    if rtype == "TXT":
        return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]
    return [r.to_text() for r in answer]


def _values_match(op: str, wanted: list[str], found: list[str]) -> bool:
    negate = op.startswith("!")
    op = op.lstrip("!")
    if op == "=&":
        # Bit-mask test: any record with all the bits of any wanted mask.
        def bits(a: str) -> int:
            return int(ipaddress.ip_address(a)) if "." in a or ":" in a else int(a)
        hit = any(bits(f) & bits(w) == bits(w) for f in found for w in wanted)
    elif op == "==":
        hit = bool(found) and all(f in wanted for f in found)
    else:
        hit = any(f in wanted for f in found)
    return not hit if negate else hit


def check_dnslists(list_text: str, ip: str, variables: dict[str, str],
                   log: Callable[[str], Any] | None = None,
                   resolve: Callable[[str, str], list[str] | None] | None = None) -> bool:
    """True if any list item matches; sets the $dnslist_* variables for the match."""
    resolve = resolve or _resolve
    for item in (i.strip() for i in list_text.split(":")):
        if not item:
            continue
        m = _ITEM_RE.match(item)
        if not m:
            continue
        domain = m.group("domain").strip().rstrip(".")
        key = (m.group("key") or ip or "").strip()
        rev = _reverse_ip(key)
        name = f"{rev if rev is not None else key}.{domain}"
        found = resolve(name, "A")
        if found is None:
            if log is not None:
                log(f"DNS list lookup defer (probably timeout) for {name}: assumed not in list")
            continue
        if not found:
            continue
        op, values = m.group("op"), m.group("values")
        if op and not _values_match(op, [v.strip() for v in values.split(",") if v.strip()],
                                    found):
            continue
        texts = resolve(name, "TXT") or []
        variables["dnslist_domain"] = domain
        variables["dnslist_matched"] = key
        variables["dnslist_value"] = ",".join(found)
        variables["dnslist_text"] = taint(" ".join(texts))   # remote data
        return True
    return False
