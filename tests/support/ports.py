"""Finding free TCP ports for tests.

Ports are drawn at random from below the kernel's ephemeral range
(``/proc/sys/net/ipv4/ip_local_port_range``), so an outgoing connection made meanwhile
(by a test client, a transport, another test session) can never take the port between
the check and the daemon's bind, as happens with ports the kernel picks for bind(0).
A port is only returned when it can be bound on every address a daemon listens on, and
never twice by one process.
"""

import errno
import random
import socket

_FALLBACK_RANGE = (32768, 60999)
_LOWEST = 10000
_handed_out: set[int] = set()


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return _FALLBACK_RANGE[0]


def _bindable(port: int) -> bool:
    for family, address in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        try:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((address, port))
        except OSError as exc:
            no_ipv6 = exc.errno in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL)
            if family == socket.AF_INET6 and no_ipv6:
                continue
            return False
    return True


def free_port() -> int:
    """Return a TCP port that is free on all addresses and outside the ephemeral range."""
    high = _ephemeral_low() - 1
    low = _LOWEST if high > _LOWEST + 1000 else 1024
    for _ in range(1000):
        port = random.randint(low, high)
        if port not in _handed_out and _bindable(port):
            _handed_out.add(port)
            return port
    raise RuntimeError("no free TCP port found below the ephemeral range")
