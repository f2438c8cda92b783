"""Which addresses the daemon listens on: daemon_smtp_ports x local_interfaces, and -oX.

Exim's rules (spec chapter "Starting the daemon and the use of network interfaces"):
an interface item may carry its own port (``127.0.0.1.2525`` or ``[::1]:2525``); items
without one are combined with every port in ``daemon_smtp_ports``.  Ports are numbers or
service names ("smtp" is 25).  ``-oX`` replaces the ports with its items that contain no
dot or colon, and the interfaces with the items that do.
"""
from __future__ import annotations

import ipaddress
import socket

from pymta.expand.lists import nonempty_items as split_list
from pymta.osutil import tcp_port

DEFAULT_INTERFACES = "<; ::0 ; 0.0.0.0"
DEFAULT_PORTS = "smtp"

def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.split("%", 1)[0])
        return True
    except ValueError:
        return False


def split_interface(item: str) -> tuple[str, int | None]:
    """``127.0.0.1.2525`` -> ("127.0.0.1", 2525); ``[::1]:25`` -> ("::1", 25);
    plain -> None port."""
    item = item.strip()
    if item.startswith("["):
        addr, _, rest = item[1:].partition("]")
        rest = rest.lstrip(":.")
        return addr, (tcp_port(rest) if rest else None)
    if _is_ip(item):
        return item, None
    addr, dot, port = item.rpartition(".")
    if dot and _is_ip(addr) and port:
        return addr, tcp_port(port)
    raise ValueError(f'invalid interface "{item}"')


def apply_oX(value: str, interfaces: str | None,
             ports: str | None) -> tuple[str | None, str | None]:
    """Apply ``-oX value`` to (local_interfaces, daemon_smtp_ports) as Exim does."""
    items = split_list(value)
    port_items = [i for i in items if "." not in i and ":" not in i]
    if_items = [i for i in items if "." in i or ":" in i]
    if port_items:
        ports = "<; " + " ; ".join(port_items)
    if if_items:
        interfaces = "<; " + " ; ".join(if_items)
    return interfaces, ports


def listen_addresses(interfaces: str | None, ports: str | None) -> list[tuple[str, int]]:
    """Every (address, port) pair to bind, duplicates removed, in configuration order."""
    port_list = [tcp_port(p) for p in split_list(ports if ports is not None else DEFAULT_PORTS)]
    if_list = split_list(interfaces if interfaces is not None else DEFAULT_INTERFACES)
    out: list[tuple[str, int]] = []
    for item in if_list:
        addr, port = split_interface(item)
        for p in ([port] if port is not None else port_list):
            if (addr, p) not in out:
                out.append((addr, p))
    return out


def format_listener(addr: str, port: int) -> str:
    """``[127.0.0.1]:2525`` as in Exim's "listening for SMTP on" log line."""
    return f"[{addr}]:{port}"


class BindError(OSError):
    """A listening socket could not be created; names the address and port."""

    def __init__(self, addr: str, port: int, reason: str):
        super().__init__(f"socket bind() to port {port} for address {addr} failed: {reason}")
        self.addr, self.port, self.reason = addr, port, reason


def bind_listeners(pairs: list[tuple[str, int]], backlog: int = 128) -> list[socket.socket]:
    """Create, bind and listen; non-blocking so several receivers can poll them safely."""
    socks: list[socket.socket] = []
    addr, port = "", 0
    try:
        for addr, port in pairs:
            family = socket.AF_INET6 if ":" in addr else socket.AF_INET
            s = socket.socket(family, socket.SOCK_STREAM)
            socks.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                # Exim binds IPv6 and IPv4 wildcards separately; keep them apart.
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((addr, port))
            s.listen(backlog)
            s.setblocking(False)
    except OSError as exc:
        for s in socks:
            s.close()
        raise BindError(addr, port, exc.strerror or str(exc)) from exc
    return socks
