"""Retry records in the ``retry`` hints database.

A record says when delivery (or routing) for one key first failed, when it was last
tried, when it should next be tried, whether the final retry cutoff has passed
("expired"), and the last error.  Keys follow Exim: ``T:host:ip[:port]`` for host
errors, ``T:local_part@domain`` for local deliveries and ``R:domain`` or
``R:local_part@domain`` for routing errors.  Values are compact JSON.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class RetryRecord:
    """One retry hint (times are Unix seconds)."""

    first_failed: int
    last_try: int
    next_try: int
    expired: bool = False
    basic_errno: int = 0
    more_errno: int = 0
    text: str = ""

    def encode(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> "RetryRecord | None":
        try:
            d = json.loads(data)
            return cls(int(d["first_failed"]), int(d["last_try"]), int(d["next_try"]),
                       bool(d.get("expired", False)), int(d.get("basic_errno", 0)),
                       int(d.get("more_errno", 0)), str(d.get("text", "")))
        except (ValueError, KeyError, TypeError):
            return None     # a damaged hint is as good as no hint


def host_key(name: str, ip: str | None, port: int | None = None) -> str:
    """``T:host:ip`` plus ``:port`` when the port is not 25."""
    key = f"T:{name}:{ip or name}"
    if port not in (None, 25):
        key += f":{port}"
    return key


class RetryDB:
    """Typed access to the ``retry`` hints database of a spool directory."""

    def __init__(self, spool_dir: str, db: Any = None, log: Any = None):
        if db is None:
            from pymta.hints.db import HintsDB
            db = HintsDB(spool_dir, "retry", log=log)
        self.db = db

    def get(self, key: str) -> RetryRecord | None:
        data = self.db.get(key)
        return None if data is None else RetryRecord.decode(data)

    def put(self, key: str, record: RetryRecord) -> None:
        self.db.put(key, record.encode())

    def delete(self, key: str) -> None:
        self.db.delete(key)

    def close(self) -> None:
        close = getattr(self.db, "close", None)
        if close is not None:
            close()

    def items(self) -> list[tuple[str, RetryRecord]]:
        out = []
        for key, data in self.db.items():
            rec = RetryRecord.decode(data)
            if rec is not None:
                out.append((key, rec))
        return out
