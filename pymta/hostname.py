"""A client's host name from its IP address, found as Exim 4.96 finds it.

``host_lookup_order`` (default ``bydns:byaddr``) says where the names come from: the
DNS PTR records, or the system resolver (``gethostbyaddr``, so /etc/hosts).  Each name
must then resolve back to the address in the DNS (A/AAAA) to count.  A temporary DNS
error at either step makes the whole lookup defer (:class:`HostLookupDeferred`, Exim's
``$host_lookup_deferred``), unless the name is in ``dns_again_means_nonexist``.

As Exim's resolver layer does, a process remembers which names gave a temporary error
and does not ask for them again; :func:`forget_temporary_errors` starts afresh (a new
connection: a receiver serves many).

:func:`client_host_name` is the one place that sets the session's variables from the
result ($sender_host_name, $sender_host_dnssec, $sender_rcvhost, $host_lookup_failed,
$host_lookup_deferred).
"""
from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass

from pymta.debuglog import debug
from pymta.taint import taint

LOOKUP_ORDER_WORDS = ("bydns", "byaddr")
NO_HOST_NAME = "failed to find host name from IP address"
PTR_AGAIN = "IP address PTR lookup gave temporary error"
FORWARD_AGAIN = "temporary error for host name lookup"
_H_TRY_AGAIN, _H_NO_RECOVERY = 2, 3          # h_errno values: Exim defers on both

#: (name, record type) that gave a temporary DNS error in this process
_TEMPORARY: set[tuple[str, str]] = set()


class HostLookupDeferred(Exception):
    """A temporary error stopped the host name lookup; the text is Exim's trace line."""


@dataclass(frozen=True)
class HostName:
    """What a lookup found: the confirmed ``name`` (None: none), whether the PTR and
    forward answers were both DNSSEC-authenticated (``secure``), and whether the address
    had any name at all (``had_name``: when it had, but none was confirmed, Exim does
    not log "no host name found"); ``reason`` says why there is none."""
    name: str | None
    secure: bool = False
    had_name: bool = False
    #: why there is no name, in Exim's words ($host_lookup_failed's reason)
    reason: str = ""


def parse_lookup_order(text: str) -> tuple[str, ...]:
    """``host_lookup_order``: a colon-separated list of bydns/byaddr.  Exim passes over
    any other word; pymta refuses it (ValueError), so a typing error cannot silently
    stop the DNS being asked."""
    words = tuple(w.strip().lower() for w in text.split(":") if w.strip())
    for word in words:
        if word not in LOOKUP_ORDER_WORDS:
            raise ValueError(f'host_lookup_order: "{word}" is not "bydns" or "byaddr"')
    return words


def forget_temporary_errors() -> None:
    """A new connection asks the DNS again for names that failed before."""
    _TEMPORARY.clear()


def _temporary(name: str, rtype: str, again_nonexist: Callable[[str], bool] | None) -> bool:
    """A temporary DNS error for ``name``: remembered; False when
    dns_again_means_nonexist turns it into "no such name"."""
    if again_nonexist is not None and again_nonexist(name):
        return False
    _TEMPORARY.add((name.lower(), rtype))
    return True


def _resolve(name: str, rtype: str, requested: bool,
             again_nonexist: Callable[[str], bool] | None) -> tuple[list[str], bool, bool]:
    """(record texts, authenticated, temporary error) for one DNS question."""
    import dns.exception
    import dns.resolver

    from pymta import dnssec
    if (name.lower(), rtype) in _TEMPORARY:
        return [], False, True
    try:
        answer, secure = dnssec.resolve(name, rtype, requested)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, ValueError):
        return [], False, False
    except (dns.exception.Timeout, dns.resolver.NoNameservers):
        # SERVFAIL, REFUSED or no answer: the C library's resolver says "try again"
        return [], False, _temporary(name, rtype, again_nonexist)
    except dns.exception.DNSException:
        return [], False, False
    if rtype == "PTR":
        return [str(r.target).rstrip(".").lower() for r in answer], secure, False
    return [str(r.address) for r in answer], secure, False


def _names_by_dns(ip: str, again_nonexist: Callable[[str], bool] | None
                  ) -> tuple[list[str], bool]:
    import dns.reversename
    ptr_name = dns.reversename.from_address(ip).to_text().rstrip(".")
    names, secure, again = _resolve(ptr_name, "PTR", True, again_nonexist)
    if again:
        if debug.host_lookup:
            debug.printf(PTR_AGAIN, indented=False)
        raise HostLookupDeferred(PTR_AGAIN)
    return [n for n in names if n], secure


def _names_by_addr(ip: str) -> list[str]:
    if debug.host_lookup:
        debug.printf("IP address lookup using gethostbyaddr()", indented=False)
    try:
        host, aliases, _ = socket.gethostbyaddr(ip)
    except socket.herror as exc:
        if exc.errno in (_H_TRY_AGAIN, _H_NO_RECOVERY):
            raise HostLookupDeferred("IP address lookup gave temporary error") from None
        if debug.host_lookup:
            debug.printf(f"IP address lookup failed: h_errno={exc.errno}", indented=False)
        return []
    except (OSError, UnicodeError):
        if debug.host_lookup:
            debug.printf("IP address lookup failed: h_errno=1", indented=False)
        return []
    return [n.lower() for n in [host, *aliases] if n]


def _forward_confirms(name: str, ip: str, again_nonexist: Callable[[str], bool] | None
                      ) -> tuple[bool, bool]:
    """(does ``name`` have address ``ip`` in the DNS, were those answers authenticated).
    Only the DNS is asked, as Exim does (/etc/hosts does not confirm a name)."""
    from pymta import dns as pdns
    rtypes = ("A",) if pdns.ipv4_lookup_only(name) else ("A", "AAAA")
    found: list[str] = []
    again = False
    for rtype in rtypes:
        addresses, secure, temporary = _resolve(name, rtype, True, again_nonexist)
        again = again or temporary
        found += addresses
        if ip in addresses:
            if debug.host_lookup:
                debug.printf(f"checking addresses for {name}\n  {ip} OK", indented=False)
            return True, secure
    if again and not found:
        if debug.host_lookup:
            debug.printf(FORWARD_AGAIN, indented=False)
        raise HostLookupDeferred(FORWARD_AGAIN)
    if debug.host_lookup and found:
        debug.printf(f"checking addresses for {name}\n" + "".join(f"  {a}\n" for a in found)
                     + f"no IP address for {name} matched {ip}", indented=False)
    elif debug.host_lookup:
        debug.printf(f"no IP addresses found for {name}", indented=False)
    return False, False


def find_host_name(ip: str, order: Iterable[str] = LOOKUP_ORDER_WORDS,
                   again_nonexist: Callable[[str], bool] | None = None) -> HostName:
    """The host name of ``ip``: the first name from ``order``'s sources whose forward
    lookup gives ``ip`` back.  Raises :class:`HostLookupDeferred`."""
    names: list[str] = []
    ptr_secure = False
    for source in order:
        if source == "bydns":
            names, ptr_secure = _names_by_dns(ip, again_nonexist)
        else:
            names, ptr_secure = _names_by_addr(ip), False
        if names:
            break
    if not names:
        return HostName(None, reason=NO_HOST_NAME)
    if debug.host_lookup:
        debug.printf(f'IP address lookup yielded "{names[0]}"', indented=False)
    for name in names:
        confirmed, forward_secure = _forward_confirms(name, ip, again_nonexist)
        if confirmed:
            return HostName(name, ptr_secure and forward_secure, True)
    if debug.host_lookup:
        debug.printf(f"{ip} does not match any IP address for {names[0]}", indented=False)
    return HostName(None, False, True, f"{ip} does not match any IP address for {names[0]}")


def client_host_name(variables: MutableMapping[str, str], ip: str, *,
                     order: Iterable[str] = LOOKUP_ORDER_WORDS,
                     again_nonexist: Callable[[str], bool] | None = None,
                     log_no_name: Callable[[str], None] | None = None) -> HostName:
    """Look the client's name up now and record the outcome in ``variables``: its name
    and DNSSEC status, or $host_lookup_failed (and ``log_no_name`` gets Exim's line when
    the address has no name at all).  A deferral sets $host_lookup_deferred and is
    raised; the next call asks again (answering from the remembered errors)."""
    if debug.host_lookup:
        debug.printf(f"looking up host name for {ip}", indented=False)
    try:
        found = find_host_name(ip, order, again_nonexist)
    except HostLookupDeferred:
        variables["host_lookup_deferred"] = "1"
        raise
    variables["sender_host_dnssec"] = "yes" if found.name and found.secure else "no"
    if found.name:
        variables["sender_host_name"] = taint(found.name)
        variables.pop("host_lookup_failed", None)
        variables["sender_rcvhost"] = rcvhost(variables, ip)
        return found
    variables["host_lookup_failed"] = "1"
    if not found.had_name and log_no_name is not None:
        log_no_name(f"no host name found for IP address {ip}")
    return found


def rcvhost(variables: Mapping[str, str], ip: str) -> str:
    """$sender_rcvhost as Exim builds it for the Received: header: the host name (when
    known) and the address, with the HELO name (when it differs) and ident."""
    name, helo = variables.get("sender_host_name") or "", variables.get("sender_helo_name") or ""
    ident = variables.get("sender_ident") or ""
    if name:
        extra = f" helo={helo}" if helo and helo.lower() != name.lower() else ""
        extra += f" ident={ident}" if ident else ""
        return taint(f"{name} ([{ip}]{extra})")
    extra = " ".join(x for x in (f"helo={helo}" if helo else "",
                                 f"ident={ident}" if ident else "") if x)
    return taint(f"[{ip}]" + (f" ({extra})" if extra else ""))
