"""smtp_accept_keepalive: SO_KEEPALIVE on accepted SMTP connections, so that the kernel
probes a peer that went away without closing and frees the connection in the end."""
from __future__ import annotations

import socket
from typing import Any

from pymta.config.values import main_option


def accept_keepalive(config: Any) -> bool:
    """Is smtp_accept_keepalive on (it is by default)?"""
    return bool(main_option(config, "smtp_accept_keepalive", True))


def set_keepalive(conn: socket.socket, on: bool) -> None:
    """Switch SO_KEEPALIVE on a TCP connection (a Unix socket, as from inetd in tests,
    has nothing to probe and is left alone)."""
    if conn.family in (socket.AF_INET, socket.AF_INET6):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1 if on else 0)
