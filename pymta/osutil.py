"""Small operating-system helpers shared by the spool, transports and routing."""
from __future__ import annotations

import contextlib
import functools
import os
import socket
from typing import Iterator


def fsync_dir(path: str) -> None:
    """fsync a directory so that a rename or create inside it is durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def give_to_dir_owner(path: str) -> None:
    """A file root just created in a directory that belongs to another user (the Exim
    user's spool, db/ or log directory) is given to that user, so that the unprivileged
    processes can still use it.  Nothing for other callers."""
    if os.geteuid() != 0:
        return
    try:
        st = os.stat(os.path.dirname(path) or ".")
        if st.st_uid != 0 and os.lstat(path).st_uid == 0:
            os.lchown(path, st.st_uid, st.st_gid)
    except OSError:
        pass


def can_switch_ids() -> bool:
    """True when this process may change to another user: root, or a process that kept
    a saved uid 0 (a daemon delivery worker running as the Exim user)."""
    return 0 in os.getresuid()


@contextlib.contextmanager
def switched_ids(uid: int, gid: int) -> Iterator[None]:
    """Run the body with effective ids ``uid``/``gid`` (and no other groups), then go
    back to the ids before.  Needs :func:`can_switch_ids`; root is regained for the
    change and dropped again afterwards."""
    euid, egid, groups = os.geteuid(), os.getegid(), os.getgroups()
    if euid != 0:
        os.seteuid(0)
    try:
        os.setgroups([gid])
        os.setegid(gid)
        os.seteuid(uid)
    except BaseException:
        _restore_ids(euid, egid, groups)
        raise
    try:
        yield
    finally:
        _restore_ids(euid, egid, groups)


def _restore_ids(euid: int, egid: int, groups: list[int]) -> None:
    if os.geteuid() != 0:
        os.seteuid(0)
    os.setgroups(groups)
    os.setegid(egid)
    os.seteuid(euid)


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
