"""The ``dnsdb`` query-style lookup (spec 9.10-9.13): ``${lookup dnsdb{mx=example.com}}``.

Query syntax: ``[>S[,F|;]] [modifier,]... [type=]key[:key...]`` where ``S`` separates
records (default newline), ``,F`` separates fields of multi-field records (``;``: join
TXT strings with nothing), modifiers are ``defer_strict|defer_lax|defer_never``,
``dnssec_strict|dnssec_lax|dnssec_never``, ``retrans_TIME`` and ``retry_N``.
Types: a, a+, aaaa, cname, csa, mx, mxh, ns, zns, ptr, soa, spf, srv, tlsa, txt (default).
``csa`` gives Client SMTP Authorization records as "Y|N|X|? target" (spec 44.52).
Queries go through :func:`pymta.dns.get_resolver`, so tests can use a local server.
"""
from __future__ import annotations

import ipaddress
from typing import Any

from .. import dnssec as dnssec_status
from ..expand.errors import ExpandDefer, ExpandError
from ..expand.lists import split_list

TYPES = ("a", "a+", "aaaa", "cname", "csa", "mx", "mxh", "ns", "zns", "ptr", "soa", "spf",
         "srv", "tlsa", "txt")


class _TempFail(Exception):
    """A temporary DNS error for one key (handled by the defer_* modifier)."""


def _query(name: str, qtype: str, dnssec: str, ctx: Any) -> Any:
    """One DNS query; the dnspython answer, None for no data, _TempFail when it defers."""
    import dns.exception
    import dns.flags
    import dns.resolver

    from .. import dns as pdns
    res = pdns.get_resolver()
    try:
        if dnssec != "never":
            # ask for DNSSEC data so that a validating resolver reports AD
            import copy
            res = copy.copy(res)
            res.use_edns(0, dns.flags.DO, 1232)
        answer = res.resolve(name, qtype, search=False, raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN:
        return None
    except (dns.resolver.NoNameservers, dns.exception.Timeout,
            dns.resolver.LifetimeTimeout) as e:
        raise _TempFail(str(e)) from None
    except dns.exception.DNSException as e:
        raise ExpandError(f"dnsdb lookup of {name} failed: {e}") from None
    # AD, or AA from a zone in dns_trust_aa
    authentic = dnssec_status.is_authenticated(answer.response)
    if ctx is not None and getattr(ctx, "variables", None) is not None:
        ctx.variables["lookup_dnssec_authenticated"] = (
            "" if dnssec == "never" else "yes" if authentic else "no")
    if dnssec == "strict" and not authentic:
        raise _TempFail(f"{name} ({qtype}) is not DNSSEC authenticated")
    if answer.rrset is None:
        return None
    return answer


def _strip(name: Any) -> str:
    return str(name).rstrip(".")


def _format(rtype: str, r: Any, fsep: str | None) -> str:
    """One record as dnsdb prints it; ``fsep`` is the field separator given (or None)."""
    sep = " " if fsep is None else fsep
    if rtype in ("a", "aaaa", "a+"):
        return r.address
    if rtype in ("mx", "mxh"):
        return _strip(r.exchange) if rtype == "mxh" else f"{r.preference}{sep}{_strip(r.exchange)}"
    if rtype in ("txt", "spf"):
        parts = [s.decode("utf-8", "surrogateescape") for s in r.strings]
        if fsep is None:
            return "".join(parts) if rtype == "spf" else (parts[0] if parts else "")
        return fsep.join(parts)
    if rtype == "srv":
        return sep.join((str(r.priority), str(r.weight), str(r.port), _strip(r.target)))
    if rtype == "soa":
        if fsep is None:
            return _strip(r.mname)
        return fsep.join((_strip(r.mname), _strip(r.rname), str(r.serial), str(r.refresh),
                          str(r.retry), str(r.expire), str(r.minimum)))
    if rtype == "tlsa":
        return sep.join((str(r.usage), str(r.selector), str(r.mtype))) + sep + r.cert.hex()
    if rtype in ("cname", "ns", "zns", "ptr"):
        return _strip(r.target)
    return r.to_text()


def _csa(key: str, ctx: Any) -> list[str] | None:
    """CSA records of ``key`` (with the parent search of dns_csa_search_limit): the
    authorization code (Y yes, N no, X explicit authorization required, ? unknown)
    and the target."""
    import dns.exception

    from .. import dns as pdns
    from ..config.values import main_option
    config = getattr(ctx, "config", None)
    try:
        found = pdns.csa_search(key, int(main_option(config, "dns_csa_search_limit", 5)),
                                bool(main_option(config, "dns_csa_use_reverse", True)))
    except dns.exception.DNSException as e:
        raise _TempFail(str(e)) from None
    if found is None:
        return None
    name, found_at, records = found
    out = []
    for priority, weight, port, target in records:
        if priority != 1:
            continue                 # CSA version 1 only
        if found_at != name:
            code = "X" if port & 1 else "?"
        elif weight > 3:
            continue                 # not a valid CSA record
        else:
            code = {0: "N", 1: "N", 2: "Y", 3: "?"}[weight]
        out.append(f"{code} {target}")
    return out or None


def _lookup_key(rtype: str, key: str, fsep: str | None, dnssec: str, ctx: Any) -> list[str] | None:
    """Records of one key: a list (possibly empty is never returned) or None."""
    if rtype == "csa":
        return _csa(key, ctx)
    if rtype == "a+":
        out: list[str] = []
        temp = None
        for sub in ("aaaa", "a"):
            try:
                got = _lookup_key(sub, key, fsep, dnssec, ctx)
            except _TempFail as e:
                temp = e
                continue
            out.extend(got or [])
        if not out and temp is not None:
            raise temp
        return out or None
    name = key
    if rtype == "ptr":
        try:
            import dns.reversename
            name = str(dns.reversename.from_address(str(ipaddress.ip_address(key))))
        except ValueError:
            pass                      # not an IP address: used as it is
    qtype = {"mxh": "MX", "zns": "NS"}.get(rtype, rtype.upper())
    labels = name.rstrip(".").split(".")
    while True:
        answer = _query(name, qtype, dnssec, ctx)
        if answer is not None:
            recs = [_format(rtype, r, fsep) for r in answer]
            return recs or None
        # zns and soa walk up the tree, never to the root
        if rtype not in ("zns", "soa") or len(labels) <= 1:
            return None
        labels = labels[1:]
        name = ".".join(labels)


def dnsdb_lookup(query: str, ctx: Any) -> str | None:
    """Run a dnsdb query; None when no key gave any record."""
    q = query.lstrip()
    sep = "\n"
    fsep: str | None = None
    if q.startswith(">"):
        if len(q) < 2:
            raise ExpandError("missing separator after \">\" in dnsdb lookup")
        sep = q[1]
        q = q[2:]
        if q.startswith(",") and len(q) >= 2:
            fsep, q = q[1], q[2:]
        elif q.startswith(";"):
            fsep, q = "", q[1:]
        q = q.lstrip()
    defer = "lax"
    dnssec = "lax"
    while True:
        head, comma, rest = q.partition(",")
        word = head.strip().lower()
        if not comma:
            break
        if word in ("defer_strict", "defer_lax", "defer_never"):
            defer = word[6:]
        elif word in ("dnssec_strict", "dnssec_lax", "dnssec_never"):
            dnssec = word[7:]
        elif word.startswith("retrans_") or word.startswith("retry_"):
            pass                      # the resolver's own timeouts are used
        else:
            break
        q = rest.lstrip()
    rtype = "txt"
    t, eq, rest = q.partition("=")
    if eq and t.strip() and all(c.isalnum() or c == "+" for c in t.strip()):
        rtype = t.strip().lower()
        q = rest
        if rtype not in TYPES:
            raise ExpandError(f"unsupported DNS record type \"{t.strip()}\"")
    keys = [k.strip() for k in split_list(q.strip())]
    results: list[str] = []
    found = False
    deferred: str | None = None
    for key in keys:
        if not key:
            continue
        try:
            recs = _lookup_key(rtype, key, fsep, dnssec, ctx)
        except _TempFail as e:
            if defer == "strict":
                raise ExpandDefer(f"dnsdb lookup of {key} ({rtype}) deferred: {e}") from None
            if defer == "lax":
                deferred = str(e)
            continue
        if recs:
            found = True
            results.extend(recs)
    if not found:
        if deferred is not None:
            raise ExpandDefer(f"dnsdb lookup deferred: {deferred}")
        return None
    return sep.join(results)
