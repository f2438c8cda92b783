"""Message locking: an fcntl write lock on the first line of the -D file, as Exim does.

Whoever delivers (or otherwise modifies) a message holds this lock, so the daemon's
workers, a cron ``pymta -q`` and ``pymta -M`` never work on one message at once; a real
Exim on the same spool sees the lock too.

On Linux we use open-file-description locks (F_OFD_SETLK): they conflict with Exim's
classic fcntl locks in the same way, but are not dropped when the process closes some
*other* descriptor of the -D file (a classic-lock pitfall), and they also exclude other
holders inside the same process.  Elsewhere classic F_SETLK is used.
"""
from __future__ import annotations

import fcntl
import os
import struct
from typing import BinaryIO

from pymta.spool.files import data_path

_SETLK = getattr(fcntl, "F_OFD_SETLK", fcntl.F_SETLK)
_GETLK = getattr(fcntl, "F_OFD_GETLK", fcntl.F_GETLK)


def _flock(kind: int, length: int) -> bytes:
    # struct flock {short l_type; short l_whence; off_t l_start; off_t l_len; pid_t l_pid}
    return struct.pack("hhqqi", kind, os.SEEK_SET, 0, length, 0)


def lock_length(msgid: str) -> int:
    """Exim locks the "ID-D\\n" line at the start of the data file."""
    return len(msgid) + 3


class MessageLock:
    """A held lock on one message; release() or leaving the ``with`` block drops it.

    ``fd`` is the open -D descriptor the lock lives on.  :meth:`open_body` gives a file
    positioned at the body that shares nothing with the lock, so closing it is harmless.
    """

    def __init__(self, spool_dir: str, msgid: str, fd: int):
        self.spool_dir = spool_dir
        self.msgid = msgid
        self.fd: int | None = fd

    @property
    def held(self) -> bool:
        return self.fd is not None

    def open_body(self) -> BinaryIO:
        """A new binary file object on the -D file positioned after its id line."""
        from pymta.spool.files import open_data
        return open_data(self.spool_dir, self.msgid)

    def release(self) -> None:
        """Drop the lock (closing the descriptor releases it)."""
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)

    def __enter__(self) -> "MessageLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:
            pass


def lock_message(spool_dir: str, msgid: str) -> MessageLock | None:
    """Try to write-lock the message's -D file without waiting.

    Returns None if another process (or another lock holder) has it locked, or if the
    message has no -D file (it was removed).
    """
    try:
        fd = os.open(data_path(spool_dir, msgid), os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.fcntl(fd, _SETLK, _flock(fcntl.F_WRLCK, lock_length(msgid)))
    except OSError:
        os.close(fd)
        return None
    return MessageLock(spool_dir, msgid, fd)


def is_locked(spool_dir: str, msgid: str) -> bool:
    """True if somebody holds a lock on the message (for queue listings/runners)."""
    try:
        fd = os.open(data_path(spool_dir, msgid), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        res = fcntl.fcntl(fd, _GETLK, _flock(fcntl.F_WRLCK, lock_length(msgid)))
        return struct.unpack("hhqqi", res)[0] != fcntl.F_UNLCK
    finally:
        os.close(fd)
