"""The ``ratelimit`` hints database: one smoothed rate per ratelimit key.

Keys are Exim's: ``<period>/<per_*>/[unique/]<key>`` (``1h/per_mail/192.0.2.1``).  A
record holds the time of the last update, the smoothed rate and, for keys measured with
``unique=``, the start of the current event set ("epoch") and the set itself, kept as
8-byte hashes of the event values.  The arithmetic lives in :mod:`pymta.acl.ratelimit`;
this module only stores records, reading and writing one key atomically (one LMDB write
transaction, or a watched Redis transaction when the database is shared) so that
concurrent receivers, on one node or several, never lose each other's updates.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Callable

from pymta.hints.store import open_hints

_HEAD = struct.Struct("<ddd")         # time of last update, rate, epoch (0: no set)
HASH_SIZE = 8


@dataclass
class RateRecord:
    """One stored rate (times in seconds since the epoch, with fractions)."""

    time: float
    rate: float
    epoch: float = 0.0
    events: set[bytes] = field(default_factory=set)

    def encode(self) -> bytes:
        return _HEAD.pack(self.time, self.rate, self.epoch) + b"".join(sorted(self.events))

    @classmethod
    def decode(cls, data: bytes) -> "RateRecord | None":
        """The record in ``data``; None for a damaged one (as good as no hint)."""
        if len(data) < _HEAD.size or (len(data) - _HEAD.size) % HASH_SIZE:
            return None
        when, rate, epoch = _HEAD.unpack_from(data)
        tail = data[_HEAD.size:]
        events = {tail[i:i + HASH_SIZE] for i in range(0, len(tail), HASH_SIZE)}
        return cls(when, rate, epoch, events)


#: What an update function returns: (its result, the record to store or None to keep).
Update = Callable[["RateRecord | None"], "tuple[Any, RateRecord | None]"]


class RatelimitDB:
    """Typed access to ``spool/db/ratelimit``."""

    def __init__(self, spool_dir: str, log: Any = None):
        self.db = open_hints(spool_dir, "ratelimit", log)

    def get(self, key: str) -> RateRecord | None:
        data = self.db.get(key)
        return None if data is None else RateRecord.decode(data)

    def update(self, key: str, compute: Update, default: Any,
               ttl: float | None = None) -> Any:
        """Read ``key``, call ``compute(record)`` and store what it returns, atomically;
        ``default`` is ``compute(None)``'s result computed by the caller for when the
        database cannot be used at all.  ``ttl``: how long the record matters (a store
        that expires records drops it then; ``compute`` may be called more than once
        when another node wrote the key meanwhile, so it must not have side effects)."""
        def change(data: bytes | None) -> tuple[Any, bytes | None]:
            record = None if data is None else RateRecord.decode(data)
            result, new = compute(record)
            return result, None if new is None else new.encode()
        return self.db.update(key, change, default, ttl)

    def items(self) -> list[tuple[str, RateRecord]]:
        out = []
        for key, data in self.db.items():
            rec = RateRecord.decode(data)
            if rec is not None:
                out.append((key, rec))
        return out
