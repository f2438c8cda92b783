"""Where a hints database lives: this node's LMDB file, or a Redis server a fleet shares.

Every hints module asks :func:`open_hints` for its database and talks to it through
:class:`HintsStore`; which backend answers is decided once per process from the
configuration (:func:`configure`), not in each caller.  Without ``hints_redis_server``
every database is the LMDB file :class:`pymta.hints.db.HintsDB`, exactly as before.

``hints_redis_server`` (one server, written like an item of ``redis_servers``) and
``hints_redis_databases`` (a list of ``ratelimit``, ``seen``, ``callout``, ``tls``) are
pymta's own main options: the databases named are kept in Redis, so that all the nodes of
a fleet count the same rates and remember the same keys.  The others (``retry``,
``wait-*``, ``misc``...) describe this node's own deliveries and connections and stay
local.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, TypeVar

from pymta.config.model import ConfigError
from pymta.hints.db import HintsDB

T = TypeVar("T")

#: The databases that may be shared through Redis.
SHAREABLE = ("ratelimit", "seen", "callout", "tls")
#: Seconds between attempts to reach Redis again after it failed (default).
DEFAULT_RETRY_INTERVAL = 30.0


class HintsStore(Protocol):
    """Key/value access to one hints database (keys str, values bytes).

    ``ttl`` (seconds) says how long a record is worth keeping: a store that can expire
    records (Redis) does so; LMDB ignores it (its files are tidied by other means).
    """

    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, value: bytes, ttl: float | None = None) -> None: ...

    def delete(self, key: str) -> bool: ...

    def update(self, key: str, change: Callable[[bytes | None], tuple[T, bytes | None]],
               default: T, ttl: float | None = None) -> T:
        """Read ``key``, call ``change(value)`` and store the value it returns (None:
        leave the record), atomically; its result, or ``default`` when the database
        cannot be used."""
        ...

    def items(self) -> list[tuple[str, bytes]]: ...

    def clear(self) -> None: ...

    def close(self) -> None: ...


class MainLog(Protocol):
    """Where the outage lines go (a :class:`pymta.log.Logger`)."""

    def main(self, text: str, msgid: str | None = None) -> None: ...


class Opener(Protocol):
    """Makes the shared store of one database (see :mod:`pymta.hints.redisstore`)."""

    def __call__(self, spool_dir: str, name: str, log: Any) -> HintsStore: ...


@dataclass(frozen=True)
class SharedSettings:
    """The parsed hints_redis_* options."""

    server: str
    databases: frozenset[str]
    retry_interval: float


def settings_from(main: Any) -> SharedSettings | None:
    """The shared-hints settings of a configuration's main options (None: all local);
    ConfigError for a database that cannot be shared or a list without a server."""
    server = str(getattr(main, "hints_redis_server", None) or "").strip()
    names = [n.strip() for n in str(getattr(main, "hints_redis_databases", None)
                                     or "").split(":") if n.strip()]
    where = getattr(main, "locations", {}).get("hints_redis_databases", (None, None))
    for name in names:
        if name not in SHAREABLE:
            raise ConfigError(f"hints_redis_databases: \"{name}\" cannot be kept in Redis "
                              f"(only {', '.join(SHAREABLE)}; the others are per node)",
                              *where)
    if names and not server:
        raise ConfigError("hints_redis_databases is set but hints_redis_server is not",
                          *where)
    if not server or not names:
        return None
    interval = getattr(main, "hints_redis_retry_interval", None)
    return SharedSettings(server, frozenset(names),
                          float(DEFAULT_RETRY_INTERVAL if interval is None else interval))


# The process's choice: database name -> opener of its shared store.  Empty: all LMDB.
_SHARED: dict[str, Opener] = {}


def use_shared(names: frozenset[str], opener: Opener | None) -> None:
    """Keep the databases ``names`` in the store ``opener`` makes (None: all local)."""
    _SHARED.clear()
    if opener is not None:
        _SHARED.update({name: opener for name in names})


def is_shared(name: str) -> bool:
    """Is the database ``name`` kept in the fleet's shared store in this process?"""
    return name in _SHARED


def configure(config: Any, make_log: Callable[[], MainLog | None]) -> None:
    """Choose this process's backends from the loaded configuration (at start-up and
    on reload); ConfigError when the hints_redis_* options are wrong.  ``make_log``
    gives the log for outage lines (called only when hints are shared)."""
    settings = settings_from(getattr(config, "main", None))
    if settings is None:
        use_shared(frozenset(), None)
        return
    # redis-py takes a tenth of a second to import: only configurations that share
    # hints pay for it
    from pymta.hints.redisstore import RedisHints
    use_shared(settings.databases, RedisHints.from_settings(settings, make_log()))


def open_hints(spool_dir: str, name: str, log: Any = None) -> HintsStore:
    """The hints database ``name`` of the spool, from the configured backend."""
    opener = _SHARED.get(name)
    if opener is None:
        return HintsDB(spool_dir, name, log)
    return opener(spool_dir, name, log)
