"""The sending host and receiving interface as a -H file records them.

Exim 4.96 writes ``-host_address [ip]:port`` and ``-interface_address [ip]:port`` (IPv6
too, e.g. ``[::1]:33744``; checked with exim4).  The spec's spool chapter still describes
the older ``ip.port`` form, which Exim also reads, so both are accepted here, as is an
address without a port.  This module is the one place that knows the format.
"""
from __future__ import annotations

import ipaddress

from pymta.taint import Tainted


def _check_ip(text: str) -> None:
    ipaddress.ip_address(text)           # ValueError if it is not an IP address


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise ValueError(f"bad port {text!r}")
    return int(text)


def parse_address_port(value: str) -> tuple[str, int | None]:
    """Split a spool host/interface value into (IP address, port or None).

    Raises ValueError when ``value`` is not one of ``[ip]:port``, ``[ip]``, ``ip.port``
    or a bare ``ip``.  A tainted value gives a tainted address.
    """
    text = str.__str__(value)
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise ValueError(f"missing ']' in {text!r}")
        addr, rest = text[1:close], text[close + 1:]
        _check_ip(addr)
        if rest and not rest.startswith(":"):
            raise ValueError(f"junk after ']' in {text!r}")
        port = _port(rest[1:]) if rest else None
    else:
        try:
            _check_ip(text)
            addr, port = text, None
        except ValueError:
            # "ip.port": the port follows the last dot (IPv4 and IPv6 alike)
            addr, dot, port_text = text.rpartition(".")
            if not dot:
                raise ValueError(f"not an address: {text!r}") from None
            _check_ip(addr)
            port = _port(port_text)
    return (Tainted(addr) if isinstance(value, Tainted) else addr), port


def format_address_port(address: str, port: int | None) -> str:
    """The value Exim 4.96 writes: ``[ip]:port`` (port 0 when unknown)."""
    return f"[{address}]:{port or 0}"


def split_leniently(value: str) -> tuple[str, int | None]:
    """:func:`parse_address_port`, but a value that is no address is passed on as it
    is, without a port (as Exim does)."""
    try:
        return parse_address_port(value)
    except ValueError:
        return value, None


def delivery_host_variables(spool_vars: dict[str, str]) -> dict[str, str]:
    """The expansion variables a delivery derives from a message's -H variables:
    $sender_host_address/$sender_host_port from ``host_address``, and
    $received_ip_address/$received_port (alias $interface_address/$interface_port)
    from ``interface_address``.  Locally submitted messages have neither."""
    out: dict[str, str] = {}
    if spool_vars.get("host_address"):
        addr, port = split_leniently(spool_vars["host_address"])
        out["sender_host_address"] = addr
        if port is not None:
            out["sender_host_port"] = str(port)
    if spool_vars.get("interface_address"):
        addr, port = split_leniently(spool_vars["interface_address"])
        out["received_ip_address"] = out["interface_address"] = addr
        if port is not None:
            out["received_port"] = out["interface_port"] = str(port)
    return out
