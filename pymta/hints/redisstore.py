"""Hints databases kept in Redis, shared by the nodes of a fleet (``hints_redis_*``).

A record of database ``name`` is the Redis string ``pymta:hints:<name>:<key>`` holding the
same bytes as the LMDB record.  Read-modify-write updates (ratelimit, seen) WATCH the key
and write it in a MULTI/EXEC transaction, starting again when another client changed it
meanwhile, so two nodes never lose each other's counts.  Records get a Redis TTL where the
LMDB files depend on tidying.

When Redis cannot be reached, each operation falls back to this node's LMDB file of the
same database, so mail keeps flowing with per-node hints.  A process then leaves Redis
alone for ``hints_redis_retry_interval`` before trying again.  The outage is logged once
per node, not per message or process: the process that starts it creates a marker file
in ``<spool>/db/`` and logs; the one that finds Redis back removes it and logs again.
"""
from __future__ import annotations

import math
import os
import time
from typing import Any, Callable, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from pymta.config.model import ConfigError
from pymta.expand.errors import ExpandDefer
from pymta.hints.db import DB_DIR_MODE, HintsDB
from pymta.hints.store import HintsStore, MainLog, SharedSettings
from pymta.lookups.redis import RedisServer, parse_server

T = TypeVar("T")

KEY_PREFIX = "pymta:hints:"
MARKER = ".redis-unavailable"
CONNECT_TIMEOUT = 1.0          # hints must not hold up an SMTP reply for long
COMMAND_TIMEOUT = 2.0
MAX_WATCH_RETRIES = 100
# redis-py retries a failed connection ten times with growing pauses by default: a
# client would wait seconds for its reply while Redis is down.  One attempt, then the
# local hints.
NO_RETRIES = Retry(NoBackoff(), 0)


class RedisHints:
    """The shared Redis server of this process: its connection (remade after fork) and
    whether it is usable now.  Calling it opens the store of one database."""

    def __init__(self, server: RedisServer, text: str, retry_interval: float,
                 log: MainLog | None):
        self.server = server
        self.text = text
        self.retry_interval = retry_interval
        self.log = log
        self._pid = 0
        self._client: redis.Redis | None = None
        self._retry_at = 0.0         # monotonic time before which Redis is not tried

    @classmethod
    def from_settings(cls, settings: SharedSettings, log: MainLog | None) -> "RedisHints":
        try:
            server = parse_server(settings.server)
        except ExpandDefer as exc:
            raise ConfigError(f"hints_redis_server: {exc}") from None
        ident = server.ident
        return cls(server, ident, settings.retry_interval, log)

    def __call__(self, spool_dir: str, name: str, log: Any) -> HintsStore:
        return RedisHintsDB(self, HintsDB(spool_dir, name, log), name)

    # ------------------------------------------------------------------ connection
    def client(self) -> redis.Redis | None:
        """The connection, or None while Redis is considered down."""
        if self._retry_at and time.monotonic() < self._retry_at:
            return None
        if self._pid != os.getpid() or self._client is None:
            # a connection inherited across fork is the parent's: start afresh
            s = self.server
            self._client = redis.Redis(
                host=s.host or "localhost", port=s.port, unix_socket_path=s.socket,
                db=s.database or 0, password=s.password, protocol=2,
                socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=COMMAND_TIMEOUT,
                retry=NO_RETRIES)
            self._pid = os.getpid()
        return self._client

    def failed(self, spool_dir: str, exc: Exception) -> None:
        """Redis did not answer: use local hints for a while; log if the node did not
        know yet."""
        self._retry_at = time.monotonic() + self.retry_interval
        self._client = None
        marker = os.path.join(spool_dir, "db", MARKER)
        try:
            os.makedirs(os.path.dirname(marker), mode=DB_DIR_MODE, exist_ok=True)
            os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640))
        except FileExistsError:
            return                      # another process of this node logged it
        except OSError:
            pass                        # cannot mark: log all the same
        if self.log is not None:
            self.log.main(f"hints Redis server {self.text} unavailable ({exc}): using "
                          "this node's local hints databases until it is back")

    def answered(self, spool_dir: str) -> None:
        """Redis answered: if the node had noted an outage, it is over (whichever of
        the node's processes gets here first says so: one unlink() that usually finds
        nothing, cheap beside the round trip to Redis)."""
        self._retry_at = 0.0
        try:
            os.unlink(os.path.join(spool_dir, "db", MARKER))
        except OSError:
            return
        if self.log is not None:
            self.log.main(f"hints Redis server {self.text} available again")


class RedisHintsDB:
    """One hints database in Redis, with this node's LMDB file as the fallback."""

    def __init__(self, shared: RedisHints, local: HintsDB, name: str):
        self.shared = shared
        self.local = local
        self.name = name
        self.prefix = f"{KEY_PREFIX}{name}:"

    def _key(self, key: str) -> bytes:
        return (self.prefix + key).encode("utf-8", "surrogateescape")

    def _call(self, op: Callable[[redis.Redis], T], fallback: Callable[[], T]) -> T:
        client = self.shared.client()
        if client is None:
            return fallback()
        try:
            result = op(client)
        except redis.RedisError as exc:
            self.shared.failed(self.local.spool_dir, exc)
            return fallback()
        self.shared.answered(self.local.spool_dir)
        return result

    # ------------------------------------------------------------------ HintsStore
    def get(self, key: str) -> bytes | None:
        def op(r: redis.Redis) -> bytes | None:
            value = r.get(self._key(key))
            return None if value is None else _raw(value)
        return self._call(op, lambda: self.local.get(key))

    def put(self, key: str, value: bytes, ttl: float | None = None) -> None:
        def op(r: redis.Redis) -> None:
            r.set(self._key(key), bytes(value), ex=_seconds(ttl))
        self._call(op, lambda: self.local.put(key, value))

    def delete(self, key: str) -> bool:
        return self._call(lambda r: bool(r.delete(self._key(key))),
                          lambda: self.local.delete(key))

    def update(self, key: str, change: Callable[[bytes | None], tuple[T, bytes | None]],
               default: T, ttl: float | None = None) -> T:
        raw = self._key(key)

        def op(r: redis.Redis) -> T:
            with r.pipeline() as pipe:
                for _ in range(MAX_WATCH_RETRIES):
                    try:
                        pipe.watch(raw)
                        data = pipe.get(raw)
                        result, new = change(None if data is None else _raw(data))
                        if new is None:
                            pipe.unwatch()
                            return result
                        pipe.multi()
                        pipe.set(raw, new, ex=_seconds(ttl))
                        pipe.execute()
                        return result
                    except redis.WatchError:
                        continue         # another client wrote the key: read it again
            return default
        return self._call(op, lambda: self.local.update(key, change, default, ttl))

    def items(self) -> list[tuple[str, bytes]]:
        def op(r: redis.Redis) -> list[tuple[str, bytes]]:
            keys = sorted(r.scan_iter(match=self._key("*"), count=500))
            out = []
            for k, v in zip(keys, r.mget(keys) if keys else []):
                if v is not None:
                    name = _raw(k)[len(self.prefix.encode()):]
                    out.append((name.decode("utf-8", "surrogateescape"), _raw(v)))
            return out
        return self._call(op, self.local.items)

    def clear(self) -> None:
        def op(r: redis.Redis) -> None:
            keys = list(r.scan_iter(match=self._key("*"), count=500))
            if keys:
                r.delete(*keys)
        self._call(op, self.local.clear)

    def close(self) -> None:
        self.local.close()


def _seconds(ttl: float | None) -> int | None:
    """A TTL in whole seconds for Redis (at least 1), or None for no expiry."""
    return None if ttl is None else max(1, math.ceil(ttl))


def _raw(value: bytes | str) -> bytes:
    """A reply as bytes (redis-py gives bytes unless told to decode)."""
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")
