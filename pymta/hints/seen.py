"""The ``seen`` hints database: one time stamp per key, for the ``seen`` ACL condition.

A record is the time (whole seconds since the epoch, as Exim stores it) when the key
was last written.  :meth:`SeenDB.update` reads and writes a key in one LMDB write
transaction, so two receivers testing the same key cannot both create it.
"""
from __future__ import annotations

import struct
from typing import Any, Callable

import lmdb

from pymta.hints.db import HintsDB

_STAMP = struct.Struct("<q")


class SeenDB:
    """Typed access to ``spool/db/seen``."""

    def __init__(self, spool_dir: str, log: Any = None):
        self.db = HintsDB(spool_dir, "seen", log)

    @staticmethod
    def decode(data: bytes | None) -> int | None:
        """The time stamp in ``data``; None for no record or a damaged one."""
        if data is None or len(data) != _STAMP.size:
            return None
        return int(_STAMP.unpack(data)[0])

    def get(self, key: str) -> int | None:
        return self.decode(self.db.get(key))

    def put(self, key: str, stamp: int) -> None:
        self.db.put(key, _STAMP.pack(stamp))

    def update(self, key: str, decide: Callable[[int | None], "tuple[bool, int | None]"],
               default: bool) -> bool:
        """Call ``decide(stamp)`` with the stored time stamp (or None) and store the time
        stamp it returns (None: leave the record), in one write transaction; returns its
        result (``default`` when the database cannot be used)."""
        raw = key.encode("utf-8", "surrogateescape")

        def op(env: lmdb.Environment) -> bool:
            with env.begin(write=True) as txn:
                result, stamp = decide(self.decode(txn.get(raw)))
                if stamp is not None:
                    txn.put(raw, _STAMP.pack(stamp))
                return result
        return self.db.transaction(op, default)
