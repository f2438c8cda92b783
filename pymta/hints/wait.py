"""The ``wait-<transport>`` hints databases: messages waiting for a host.

When a remote delivery to a host is deferred (the host failed, or its retry time had
not come), the message id is recorded under the host.  When a later delivery to that
host succeeds and the connection is still open, the delivering process takes the
waiting ids and delivers those messages down the same connection -- Exim's
"continued" deliveries (the ``*`` after the host's address in the log).
"""
from __future__ import annotations

from typing import Any

from pymta.hints.db import HintsDB
from pymta.spool.ids import id_time, is_message_id

MAX_WAITING = 500           # ids kept per host (the oldest go first)


def host_wait_key(name: str, address: str | None, port: int | None) -> str:
    return f"{name}:{address or name}" + (f":{port}" if port not in (None, 25) else "")


def decode_ids(value: bytes) -> list[str]:
    """The message ids a record holds, oldest first."""
    return value.decode("ascii", "replace").split()


def encode_ids(ids: list[str]) -> bytes:
    return " ".join(ids).encode()


def ids_time(ids: list[str]) -> float | None:
    """When a record was last written: the arrival time of its newest message (the
    record keeps no time of its own; an id is added when its message is deferred)."""
    times = [id_time(i) for i in ids if is_message_id(i)]
    return float(max(times)) if times else None


class WaitDB:
    """Message ids waiting for each host, for one transport."""

    def __init__(self, spool_dir: str, transport: str, log: Any = None):
        self.db = HintsDB(spool_dir, f"wait-{transport}", log)

    def add(self, key: str, msgid: str) -> None:
        def op(env: Any) -> None:
            with env.begin(write=True) as txn:
                raw = txn.get(key.encode())
                ids = raw.decode().split() if raw else []
                if msgid not in ids:
                    ids = (ids + [msgid])[-MAX_WAITING:]
                    txn.put(key.encode(), " ".join(ids).encode())
        self.db.transaction(op, None)

    def take(self, key: str, count: int) -> list[str]:
        """Remove and return up to ``count`` ids waiting for ``key`` (oldest first)."""
        def op(env: Any) -> list[str]:
            with env.begin(write=True) as txn:
                raw = txn.get(key.encode())
                ids = raw.decode().split() if raw else []
                taken, rest = ids[:count], ids[count:]
                if rest:
                    txn.put(key.encode(), " ".join(rest).encode())
                elif raw is not None:
                    txn.delete(key.encode())
                return taken
        return self.db.transaction(op, [])
