"""The ``seen`` hints database: one time stamp per key, for the ``seen`` ACL condition.

A record is the time (whole seconds since the epoch, as Exim stores it) when the key
was last written.  :meth:`SeenDB.update` reads and writes a key atomically (one LMDB
write transaction, or a watched Redis transaction when the database is shared), so two
receivers testing the same key cannot both create it.

In Redis a record expires :data:`RECORD_LIFETIME` after its last write, the age at
which Exim's exim_tidydb removes records by default.
"""
from __future__ import annotations

import struct
from typing import Any, Callable

from pymta.hints.store import open_hints

_STAMP = struct.Struct("<q")
RECORD_LIFETIME = 30 * 86400


class SeenDB:
    """Typed access to ``spool/db/seen``."""

    def __init__(self, spool_dir: str, log: Any = None):
        self.db = open_hints(spool_dir, "seen", log)

    @staticmethod
    def decode(data: bytes | None) -> int | None:
        """The time stamp in ``data``; None for no record or a damaged one."""
        if data is None or len(data) != _STAMP.size:
            return None
        return int(_STAMP.unpack(data)[0])

    def get(self, key: str) -> int | None:
        return self.decode(self.db.get(key))

    def put(self, key: str, stamp: int) -> None:
        self.db.put(key, _STAMP.pack(stamp), RECORD_LIFETIME)

    def update(self, key: str, decide: Callable[[int | None], "tuple[bool, int | None]"],
               default: bool) -> bool:
        """Call ``decide(stamp)`` with the stored time stamp (or None) and store the time
        stamp it returns (None: leave the record), in one write transaction; returns its
        result (``default`` when the database cannot be used)."""
        def change(data: bytes | None) -> tuple[bool, bytes | None]:
            result, stamp = decide(self.decode(data))
            return result, None if stamp is None else _STAMP.pack(stamp)
        return self.db.update(key, change, default, RECORD_LIFETIME)
