"""The ``spf`` lookup (spec 58.4): ``${lookup {user@domain} spf {ip-address}}``.

The key is the envelope sender, the "file name" is the client IP address; the result
is the SPF verdict: pass, fail, softfail, neutral, none, permerror or temperror.
Verification is done by pyspf, whose DNS queries go through :mod:`pymta.dns`.
"""
from __future__ import annotations

import ipaddress
from typing import Any

from ..expand.errors import ExpandError

_installed = False


def _dns_lookup(name: str, qtype: str, strict: bool = True, timeout: float = 20) -> list:
    """pyspf's DNS hook, answered by the project's resolver (see pymta.dns)."""
    import dns.exception
    import dns.resolver
    import spf

    from .. import dns as pdns
    out: list = []
    try:
        answers = pdns.get_resolver().resolve(name, qtype, search=False, lifetime=timeout)
    except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
        return out
    except (dns.exception.Timeout, dns.resolver.NoNameservers) as e:
        raise spf.TempError("DNS " + str(e)) from None
    for r in answers:
        if qtype in ("A", "AAAA"):
            out.append(((name, qtype), r.address))
        elif qtype == "MX":
            out.append(((name, qtype), (r.preference, r.exchange)))
        elif qtype == "PTR":
            out.append(((name, qtype), r.target.to_text(True)))
        elif qtype in ("TXT", "SPF"):
            out.append(((name, qtype), r.strings))
    return out


def spf_lookup(ip: str, sender: str, ctx: Any = None) -> str:
    """The SPF result for mail from ``sender`` sent by ``ip``."""
    global _installed
    import spf
    if not _installed:
        spf.DNSLookup = _dns_lookup     # pyspf's documented replaceable hook
        _installed = True
    try:
        ipaddress.ip_address(ip.strip())
    except ValueError:
        raise ExpandError(f"spf lookup: \"{ip}\" is not an IP address") from None
    domain = sender.rpartition("@")[2] or sender
    result, _explanation = spf.check2(i=ip.strip(), s=sender, h=domain, timeout=20)
    return {"error": "temperror", "unknown": "permerror"}.get(result, result)
