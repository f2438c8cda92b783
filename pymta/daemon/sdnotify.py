"""systemd's readiness notification (sd_notify) without libsystemd.

Under a unit with ``Type=notify``, systemd passes ``$NOTIFY_SOCKET``, a Unix datagram
socket (a leading ``@`` means the abstract namespace); the daemon sends ``READY=1`` once
its listening sockets are bound, so ``systemctl start`` returns when pymta accepts
connections.  Without the variable nothing happens.
"""
from __future__ import annotations

import os
import socket

NOTIFY_ENV = "NOTIFY_SOCKET"


def sd_notify(state: str) -> bool:
    """Send ``state`` (e.g. "READY=1\\nMAINPID=123") to systemd; True if it was sent.

    The variable is removed afterwards, so the daemon's children never talk to systemd.
    """
    path = os.environ.pop(NOTIFY_ENV, "")
    if not path or not (path.startswith("/") or path.startswith("@")):
        return False
    address = "\0" + path[1:] if path.startswith("@") else path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.send(state.encode())
    except OSError:
        return False
    return True
