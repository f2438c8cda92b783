"""The ``udpsend`` ACL modifier (spec 44.21): send one UDP datagram.

The expanded value is a list (``<`` changes the separator): destination host (an IP
address or a name, looked up in the DNS), port, then the payload, which is the rest of
the text after the second separator, exactly as it stands (leading spaces and further
separators included), as Exim sends it.  Errors are ACL errors with Exim's texts.
"""
from __future__ import annotations

import ipaddress
import socket
from typing import Callable

import dns.exception

from pymta import dns as pymta_dns
from pymta.expand.lists import list_separator

_WS = " \t\n\r"


class UdpsendError(Exception):
    """udpsend could not be done (an ACL error: 451)."""


class UdpsendDefer(Exception):
    """The destination host could not be looked up (a temporary failure: the statement
    defers, or a warn statement is skipped)."""


def _next_item(text: str, i: int, sep: str) -> tuple[str, int | None]:
    """The list item starting at ``i`` and the index after its separator (None: the
    item ran to the end of the text)."""
    while i < len(text) and text[i] in _WS:
        i += 1
    buf: list[str] = []
    while i < len(text):
        if text[i] == sep:
            if text[i + 1:i + 2] == sep:
                buf.append(sep)
                i += 2
                continue
            return "".join(buf).rstrip(_WS), i + 1
        buf.append(text[i])
        i += 1
    return "".join(buf).rstrip(_WS), None


def parse_udpsend(value: str) -> tuple[str, int, bytes]:
    """(host, port, payload) from the expanded modifier value."""
    sep, text = list_separator(value, ":")
    if not text.strip(_WS):
        raise UdpsendError('missing destination host in "udpsend" modifier')
    host, pos = _next_item(text, 0, sep)     # an empty name fails in the DNS, as Exim's
    if pos is None:
        raise UdpsendError('missing destination port in "udpsend" modifier')
    port_text, pos = _next_item(text, pos, sep)
    if not port_text:
        raise UdpsendError('missing destination port in "udpsend" modifier')
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UdpsendError('bad destination port in "udpsend" modifier')
    payload = text[pos:] if pos is not None else ""
    return host, int(port_text), payload.encode("utf-8", "surrogateescape")


def _addresses(host: str) -> list[str]:
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        pass
    if not host:
        return []
    found: list[str] = []
    for rtype in ("A", "AAAA"):
        try:
            found += [r.to_text() for r in pymta_dns.resolve(host, rtype)]
        except dns.exception.DNSException:
            continue
    return found


def udpsend(value: str, log_main: Callable[[str], None] | None = None,
            during: str = "") -> int:
    """Send the datagram ``value`` describes; the number of bytes sent.

    ``log_main`` receives Exim's "no IP address found" line; ``during`` is its
    "(during SMTP connection from ...)" suffix."""
    host, port, payload = parse_udpsend(value)
    addresses = _addresses(host)
    if not addresses:
        if log_main is not None and host:
            log_main(f"no IP address found for host {host}{during}")
        raise UdpsendDefer('DNS lookup failed in "udpsend" modifier')
    address = addresses[0]
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect((address, port))
            sent = sock.send(payload)
    except OSError as exc:
        raise UdpsendError(f'"udpsend" failed: {exc.strerror or exc}') from exc
    if sent < len(payload):
        raise UdpsendError('"udpsend" failed: partial write')
    return sent
