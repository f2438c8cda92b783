"""The ``dnsdb`` query-style lookup: ``${lookup dnsdb{mx=example.com}}``.

Supports an optional output separator (``>sep``, ``>sep,`` for TXT field joining),
the record types a, aaaa, cname, mx, mxh, ns, ptr, soa, srv, txt, and several keys
in one query (default list separator newline in the output).
"""
from __future__ import annotations

import ipaddress
from typing import Any

from ..expand.errors import ExpandDefer, ExpandError
from ..expand.lists import split_list


def _records(rtype: str, name: str, txt_sep: str | None) -> list[str] | None:
    import dns.exception
    import dns.resolver
    import dns.reversename
    qtype = {"mxh": "MX", "zns": "NS"}.get(rtype, rtype.upper())
    if rtype == "ptr":
        try:
            name = str(dns.reversename.from_address(name))
        except (ValueError, dns.exception.SyntaxError):
            pass
    try:
        answer = dns.resolver.resolve(name, qtype, search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return None
    except (dns.resolver.NoNameservers, dns.exception.Timeout) as e:
        raise ExpandDefer(f"dnsdb lookup of {name} ({qtype}) deferred: {e}") from None
    except dns.exception.DNSException as e:
        raise ExpandError(f"dnsdb lookup of {name} failed: {e}") from None
    out = []
    for r in answer:
        if qtype in ("A", "AAAA"):
            out.append(r.address)
        elif qtype == "MX":
            host = str(r.exchange).rstrip(".")
            out.append(host if rtype == "mxh" else f"{r.preference} {host}")
        elif qtype == "TXT":
            parts = [s.decode("utf-8", "surrogateescape") for s in r.strings]
            out.append((txt_sep or "").join(parts) if txt_sep is not None else parts[0]
                       if len(parts) == 1 else "".join(parts))
        elif qtype == "SRV":
            out.append(f"{r.priority} {r.weight} {r.port} {str(r.target).rstrip('.')}")
        elif qtype == "SOA":
            out.append(str(r.mname).rstrip("."))
        else:
            out.append(str(r.target).rstrip(".") if hasattr(r, "target") else r.to_text())
    return out


def dnsdb_lookup(query: str, ctx: Any) -> str | None:
    """Run a dnsdb query; None when no record of the type exists for any key."""
    q = query.strip()
    sep = "\n"
    txt_sep = None
    if q.startswith(">"):
        sep = q[1:2]
        q = q[2:]
        if q.startswith(","):
            txt_sep = q[1:2]
            q = q[2:]
        q = q.lstrip()
    rtype = "txt"
    for mod in ("defer_strict", "defer_lax", "defer_never", "dnssec_strict", "dnssec_lax",
                "dnssec_never", "retrans_", "retry_"):
        if q.startswith(mod):
            q = q.split(",", 1)[1] if "," in q.split("=", 1)[0] else q
    if "=" in q:
        t, _, rest = q.partition("=")
        if t.strip().isalpha():
            rtype, q = t.strip().lower(), rest
    results: list[str] = []
    found = False
    for key in split_list(q.strip(), default="\n" if "\n" in q else ":") if (
            q.strip().startswith("<") or "\n" in q) else [q.strip()]:
        try:
            ipaddress.ip_address(key)
        except ValueError:
            pass
        recs = _records(rtype, key, txt_sep)
        if recs is not None:
            found = True
            results.extend(recs)
    return sep.join(results) if found else None
