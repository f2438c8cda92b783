"""Small operating-system helpers shared by the spool, transports and routing."""
from __future__ import annotations

import functools
import os
import socket


def fsync_dir(path: str) -> None:
    """fsync a directory so that a rename or create inside it is durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@functools.lru_cache(maxsize=1)
def interface_addresses() -> frozenset[str]:
    """The IP addresses of this host's network interfaces (loopback always included)."""
    ips = {"127.0.0.1", "::1"}
    try:
        import psutil
        for addrs in psutil.net_if_addrs().values():
            for a in addrs:
                if a.family in (socket.AF_INET, socket.AF_INET6):
                    ips.add(a.address.split("%")[0])
    except Exception:   # psutil missing or the platform refuses: loopback is enough
        pass
    return frozenset(ips)
