"""The ``misc`` hints database: serialization records (smtp transport's
serialize_hosts) and concurrency counts (the generic transport option max_parallel).

Each process holding a slot writes its own record (``<key>:<pid>`` -> start time), so a
crash leaves at most its own record behind; records of processes that no longer exist
or that are more than six hours old are ignored, as Exim ignores old ones.
"""
from __future__ import annotations

import os
import struct
import time
from typing import Any

from pymta.hints.db import HintsDB

STALE_AFTER = 6 * 3600


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def slot_time(value: bytes) -> float | None:
    """The start time a serialization slot record holds (None: not such a record)."""
    return struct.unpack("<d", value)[0] if len(value) == 8 else None


class MiscDB:
    """Serialization slots in ``spool/db/misc``."""

    def __init__(self, spool_dir: str, log: Any = None):
        self.db = HintsDB(spool_dir, "misc", log)

    def holders(self, key: str, now: float | None = None) -> list[int]:
        """The live processes holding ``key`` (stale records are removed)."""
        now = time.time() if now is None else now
        live = []
        prefix = key + ":"
        for name, value in self.db.items():
            if not name.startswith(prefix):
                continue
            pid = int(name[len(prefix):] or 0)
            started = struct.unpack("<d", value)[0] if len(value) == 8 else 0.0
            if pid == os.getpid() or (_alive(pid) and now - started < STALE_AFTER):
                live.append(pid)
            else:
                self.db.delete(name)
        return live

    def acquire(self, key: str, limit: int) -> bool:
        """Take one of ``limit`` slots for ``key``; False when they are all taken.  The
        count and the new record are one write transaction (no two processes both get
        the last slot)."""
        me = os.getpid()
        prefix = f"{key}:".encode("utf-8", "surrogateescape")

        def op(env: Any) -> bool:
            now = time.time()
            with env.begin(write=True) as txn:
                cursor = txn.cursor()
                live = 0
                stale = []
                if cursor.set_range(prefix):
                    for name, value in cursor:
                        if not name.startswith(prefix):
                            break
                        pid = int(name[len(prefix):] or 0)
                        started = struct.unpack("<d", value)[0] if len(value) == 8 else 0.0
                        if pid != me and _alive(pid) and now - started < STALE_AFTER:
                            live += 1
                        elif pid != me:
                            stale.append(name)
                for name in stale:
                    txn.delete(name)
                if live >= limit:
                    return False
                txn.put(prefix + str(me).encode(), struct.pack("<d", now))
                return True
        return self.db.transaction(op, True)    # unusable hints do not stop deliveries

    def release(self, key: str) -> None:
        self.db.delete(f"{key}:{os.getpid()}")
