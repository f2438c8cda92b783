"""Cached EHLO replies for the smtp transport's early pipelining (PIPECONNECT).

A server that advertises PIPECONNECT lets a client send its EHLO without waiting for
the banner on later connections.  The client must know the EHLO reply in advance, so
the smtp transport keeps the last one per (IP address, port, HELO name) for the hosts in
hosts_pipe_connect, in the ``misc`` hints database.  Records older than
retry_data_expire are ignored, as Exim ignores its own.
"""
from __future__ import annotations

import json
import time
from typing import Any

from pymta.hints.db import HintsDB

KEY_PREFIX = "pipe-connect:"


def _key(address: str, port: int, helo: str) -> str:
    return f"{KEY_PREFIX}{address}:{port}:{helo}"


class EhloCache:
    """The EHLO replies of PIPECONNECT servers, in ``spool/db/misc``."""

    def __init__(self, spool_dir: str, log: Any = None, expire: float = 7 * 86400):
        self.db = HintsDB(spool_dir, "misc", log)
        self.expire = expire

    def get(self, address: str, port: int, helo: str,
            now: float | None = None) -> list[str] | None:
        """The cached reply lines, or None when there is none usable."""
        raw = self.db.get(_key(address, port, helo))
        if raw is None:
            return None
        try:
            record = json.loads(raw)
            stamp, lines = float(record["time"]), list(record["ehlo"])
        except (ValueError, KeyError, TypeError):
            return None
        if (time.time() if now is None else now) - stamp > self.expire:
            return None
        return [str(line) for line in lines]

    def put(self, address: str, port: int, helo: str, lines: list[str]) -> None:
        """Remember the EHLO reply of a server that offers PIPECONNECT."""
        record = {"time": time.time(), "ehlo": lines}
        self.db.put(_key(address, port, helo), json.dumps(record).encode())

    def forget(self, address: str, port: int, helo: str) -> None:
        """The server no longer offers PIPECONNECT (or its reply went wrong)."""
        self.db.delete(_key(address, port, helo))
