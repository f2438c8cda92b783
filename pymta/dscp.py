"""DSCP marking of a connection's packets (``control = dscp/<value>`` for the incoming
connection, the smtp transport's ``dscp`` option for outgoing ones).

A value is a number from 0 to 0x3F (a DSCP code point) or one of the names Exim
knows (``pymta -bI:dscp`` lists them): the RFC 2597 and 3246 code points (af11 ...
af43, ef) and the old RFC 1349 type-of-service names.  The byte set is the IPv4 TOS
field or the IPv6 traffic class.
"""
from __future__ import annotations

import socket

#: name -> the TOS / traffic-class byte
NAMES: dict[str, int] = {
    **{f"af{cls}{drop}": (8 * cls + 2 * drop) << 2 for cls in range(1, 5) for drop in (1, 2, 3)},
    "ef": 46 << 2,
    "lowcost": 0x02, "lowdelay": 0x10, "mincost": 0x02, "reliability": 0x04,
    "throughput": 0x08,
}


def dscp_byte(text: str) -> int | None:
    """The byte for a DSCP value as configured, or None if it is not one."""
    text = text.strip()
    if text in NAMES:
        return NAMES[text]
    try:
        value = int(text, 0)
    except ValueError:
        return None
    return value << 2 if 0 <= value <= 0x3F else None


def set_dscp(sock: socket.socket, byte: int) -> bool:
    """Mark the socket's packets; False when it is not an IP socket (or refuses)."""
    try:
        family = sock.family
        if family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, byte)
        elif family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, byte)
            if _is_v4_mapped(sock):       # IPv4 packets from a dual-stack socket
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, byte)
        else:
            return False
    except OSError:
        return False
    return True


def _is_v4_mapped(sock: socket.socket) -> bool:
    try:
        return str(sock.getsockname()[0]).startswith("::ffff:")
    except OSError:
        return False
