"""Small operating-system helpers shared by the spool, transports and routing."""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os
import socket

_FALLOC_FL_KEEP_SIZE = 1
# errno values meaning "this filesystem or kernel cannot reserve space", not "no room"
_NO_FALLOCATE = {errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL, errno.ENODEV}


def fsync_dir(path: str) -> None:
    """fsync a directory so that a rename or create inside it is durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@functools.lru_cache(maxsize=1)
def _libc_fallocate() -> object | None:
    """libc's fallocate(2) wrapper, or None where there is none (not Linux)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = libc.fallocate
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    fn.restype = ctypes.c_int
    return fn


def reserve_beyond_eof(fd: int, offset: int, length: int) -> bool:
    """Allocate disk blocks for ``length`` bytes from ``offset`` without changing the
    file size (fallocate with FALLOC_FL_KEEP_SIZE), so that later writes there cannot
    fail for lack of space.

    Returns False when the filesystem or system cannot do this; raises OSError (ENOSPC,
    EDQUOT...) when there is no room.
    """
    fn = _libc_fallocate()
    if fn is None or length <= 0:
        return fn is not None
    if fn(fd, _FALLOC_FL_KEEP_SIZE, offset, length) == 0:   # type: ignore[operator]
        return True
    err = ctypes.get_errno()
    if err in _NO_FALLOCATE:
        return False
    raise OSError(err, os.strerror(err))


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
