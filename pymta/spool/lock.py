"""Message locking: an fcntl write lock on the first line of the -D file, as Exim does.

Whoever delivers (or otherwise modifies) a message holds this lock, so the daemon's
workers, a cron ``pymta -q`` and ``pymta -M`` never work on one message at once; a real
Exim on the same spool sees the lock too.

The fcntl details (open-file-description locks on Linux) are in
:mod:`pymta.spool.fdlock`.  A message being received is locked the same way from the
moment its -D file is created until its -H file is in place.
"""
from __future__ import annotations

import os
from typing import BinaryIO

from pymta.spool.fdlock import lock_holder_exists, lock_length, try_write_lock
from pymta.spool.files import data_path

__all__ = ["MessageLock", "is_locked", "lock_length", "lock_message"]

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
    if not try_write_lock(fd, msgid):
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
        return lock_holder_exists(fd, msgid)
    finally:
        os.close(fd)
