"""The fcntl primitive behind message locks: a write lock on the "ID-D" line of a -D file.

Kept apart from :mod:`pymta.spool.lock` so that the spool writer can lock a -D file it
is creating without importing the lock module (which itself needs the spool's paths).
On Linux open-file-description locks (F_OFD_SETLK) are used: they conflict with Exim's
classic fcntl locks, are not dropped when some other descriptor of the file is closed,
and also exclude other holders inside the same process.
"""
from __future__ import annotations

import fcntl
import os
import struct

SETLK = getattr(fcntl, "F_OFD_SETLK", fcntl.F_SETLK)
GETLK = getattr(fcntl, "F_OFD_GETLK", fcntl.F_GETLK)


def flock_struct(kind: int, length: int) -> bytes:
    """``struct flock`` for a lock of ``length`` bytes from the start of the file."""
    # struct flock {short l_type; short l_whence; off_t l_start; off_t l_len; pid_t l_pid}
    return struct.pack("hhqqi", kind, os.SEEK_SET, 0, length, 0)


def lock_length(msgid: str) -> int:
    """Exim locks the "ID-D\\n" line at the start of the data file."""
    return len(msgid) + 3


def try_write_lock(fd: int, msgid: str) -> bool:
    """Take the message's write lock on ``fd`` without waiting; False if it is held."""
    try:
        fcntl.fcntl(fd, SETLK, flock_struct(fcntl.F_WRLCK, lock_length(msgid)))
    except OSError:
        return False
    return True


def lock_holder_exists(fd: int, msgid: str) -> bool:
    """True if somebody else holds a lock on the message's id line."""
    res = fcntl.fcntl(fd, GETLK, flock_struct(fcntl.F_WRLCK, lock_length(msgid)))
    return struct.unpack("hhqqi", res)[0] != fcntl.F_UNLCK
