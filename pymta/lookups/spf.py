"""The ``spf`` lookup (spec 58.4): ``${lookup {user@domain} spf {ip-address}}``.

The key is the envelope sender, the "file name" is the client IP address; the result
is the SPF verdict: pass, fail, softfail, neutral, none, permerror or temperror.
Verification is done by pyspf, whose DNS queries go through :mod:`pymta.dns`.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
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


@dataclass(frozen=True)
class SpfCheck:
    """One SPF evaluation: the result (RFC 7208 words), whether the spf_guess record
    gave it, the identity checked, and what the ``$spf_*`` texts are made from."""

    result: str
    guessed: bool
    domain: str                 # the domain checked (MAIL FROM's, else the HELO name)
    envelope_from: str          # the sender, or postmaster@<helo> for bounces
    explanation: str            # pyspf's text (the problem, for permerror)
    mechanism_matched: bool     # a mechanism (not the default) decided


def _install_dns() -> None:
    global _installed
    import spf
    if not _installed:
        spf.DNSLookup = _dns_lookup     # pyspf's documented replaceable hook
        _installed = True


_RESULTS = {"error": "temperror", "unknown": "permerror"}


def check_spf(ip: str, sender: str, helo: str, receiver: str,
              guess: str | None = None) -> SpfCheck:
    """Evaluate SPF for a message from ``sender`` (empty: a bounce, checked as
    postmaster@``helo``) sent by ``ip``.  With ``guess``, a domain without an SPF record
    is judged by that record instead (spf_guess).  Loopback clients are evaluated like
    any other.  DNS trouble gives temperror, broken records permerror: never an
    exception."""
    import spf
    _install_dns()
    envelope_from = sender or f"postmaster@{helo}"
    domain = envelope_from.rpartition("@")[2]
    try:
        q = spf.query(i=ip, s=envelope_from, h=helo, receiver=receiver, timeout=20)
        result, _code, explanation = q.check()
        guessed = False
        if guess and result == "none":
            result, _code, explanation = q.check(spf=guess)
            guessed = True
    except spf.TempError as exc:
        return SpfCheck("temperror", False, domain, envelope_from, str(exc), False)
    except (spf.PermError, ValueError) as exc:
        return SpfCheck("permerror", False, domain, envelope_from, str(exc), False)
    return SpfCheck(_RESULTS.get(result, result), guessed, domain, envelope_from,
                    str(explanation or ""), bool(getattr(q, "mechanism", None)))


def spf_lookup(ip: str, sender: str, ctx: Any = None) -> str:
    """The SPF result for mail from ``sender`` sent by ``ip``."""
    try:
        ipaddress.ip_address(ip.strip())
    except ValueError:
        raise ExpandError(f"spf lookup: \"{ip}\" is not an IP address") from None
    domain = sender.rpartition("@")[2] or sender
    return check_spf(ip.strip(), sender, domain, "").result
