"""The per-process connection cache of the lookups that talk to a server (mysql, pgsql,
ldap, redis): one open connection per server, never shared with a forked child, nor
between the session threads of one receiver (smtp_receiver_threads): a client
connection carries one conversation at a time."""
from __future__ import annotations

import os
import threading
from collections.abc import Hashable


class ConnectionCache:
    """Open connections of this process, keyed by server (and credentials).

    A forked child finds the parent's entries marked with the parent's pid and opens
    its own connections; it keeps the parent's objects referenced (never closes them)
    so that no logout message goes out on the socket the parent still uses.
    """

    def __init__(self) -> None:
        self._local = threading.local()
        self._inherited: list[object] = []

    @property
    def _conns(self) -> dict[Hashable, tuple[int, object]]:
        """This thread's connections (a forked child's thread finds its parent's)."""
        conns = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        return conns

    def get(self, key: Hashable) -> object | None:
        entry = self._conns.get(key)
        if entry is None:
            return None
        pid, conn = entry
        if pid != os.getpid():
            self._inherited.append(conn)
            del self._conns[key]
            return None
        return conn

    def put(self, key: Hashable, conn: object) -> None:
        self._conns[key] = (os.getpid(), conn)

    def drop(self, key: Hashable) -> object | None:
        entry = self._conns.pop(key, None)
        if entry is None:
            return None
        if entry[0] != os.getpid():
            self._inherited.append(entry[1])
            return None
        return entry[1]
