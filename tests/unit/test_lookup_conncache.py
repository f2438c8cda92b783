"""The lookups' connection cache: one connection per server and process, and per thread
of a receiver with smtp_receiver_threads (a client connection carries one conversation
at a time)."""
from __future__ import annotations

import os
import threading

from pymta.lookups.conncache import ConnectionCache


def test_threads_keep_their_own_connections():
    cache = ConnectionCache()
    cache.put("db", "main thread's")
    seen: list[object] = []

    def other() -> None:
        seen.append(cache.get("db"))
        cache.put("db", "other thread's")
        seen.append(cache.get("db"))
    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert seen == [None, "other thread's"]
    assert cache.get("db") == "main thread's"


def test_a_forked_child_opens_its_own():
    cache = ConnectionCache()
    cache.put("db", "parent's")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(w, b"none" if cache.get("db") is None else b"shared")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(r, 10) == b"none"
    assert cache.get("db") == "parent's"
