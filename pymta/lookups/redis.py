"""The ``redis`` query-style lookup (Exim spec 9.21-9.23 and 9.27).

The query is one Redis command with its arguments, split at white space; a backslash
makes the next character part of the argument (``${quote_redis:}`` puts one before white
space and backslashes, so any value becomes one argument).  The servers come from
``redis_servers`` or from the ``servers=`` option of the lookup; each item is
``host[:port]/[database number]/[password]``, or ``(socket path)//...``.  They are tried
in order until one answers; the list is a backup facility, not a set of places to look.

The reply becomes the lookup's value as in Exim: a string or status as it is, a top-level
integer as ``true``/``false`` (0 is false), nil as an empty value (the lookup still
succeeds), an array one element a line (integers in decimal, one level of nested arrays,
nil elements as empty lines); an empty array is "not found".  An error reply defers the
lookup (a ``MOVED`` redirection from a Redis Cluster tries the next server); a server that
cannot be reached is skipped, and when none can, the lookup defers.

Connections are cached per process and server (without the password), and dropped in a
child after fork: a socket shared by two processes would mix their replies.
"""
from __future__ import annotations

from dataclasses import dataclass

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from pymta.debuglog import debug

from ..expand.errors import ExpandDefer, ExpandError
from ..expand.lists import split_list
from ..taint import is_tainted
from .conncache import ConnectionCache

DEFAULT_PORT = 6379
MAX_ARGS = 32                 # Exim passes at most 32 words of a query to Redis
CONNECT_TIMEOUT = 5.0
COMMAND_TIMEOUT = 30.0
# one attempt per server, as Exim makes (redis-py would retry ten times with pauses)
NO_RETRIES = Retry(NoBackoff(), 0)

_WHITE = " \t\n\v\f\r"

RedisValue = bytes | int | list | None


@dataclass(frozen=True)
class RedisServer:
    """One item of redis_servers: where to connect, which database, which password."""

    host: str
    port: int
    socket: str | None
    database: int | None
    password: str | None

    @property
    def ident(self) -> str:
        """Names the connection in the cache and in messages (no password)."""
        where = f"({self.socket})" if self.socket else f"{self.host}:{self.port}"
        return f"{where}/{'' if self.database is None else self.database}"


def parse_server(item: str) -> RedisServer:
    """Parse ``host[:port]/[dbnumber]/[password]`` (ExpandDefer when malformed, as
    Exim defers a lookup whose server data is incomplete)."""
    # split from the right, as Exim does: a socket path has slashes of its own
    rest, sep2, password = item.rpartition("/")
    host, sep1, dbnum = rest.rpartition("/")
    if not sep1 or not sep2:
        raise ExpandDefer(f"incomplete Redis server data: {item}")
    socket = None
    port = DEFAULT_PORT
    if host.startswith("("):
        socket = host[1:].split(")", 1)[0]
        host = ""
    elif ":" in host:
        host, _, port_text = host.rpartition(":")
        if not port_text.isdigit():
            raise ExpandDefer(f"bad port in Redis server data: {item}")
        port = int(port_text)
    if not host and socket is None:
        raise ExpandDefer(f"no host in Redis server data: {item}")
    database = None
    if dbnum:
        if not dbnum.isdigit():
            raise ExpandDefer(f"bad database number in Redis server data: {item}")
        database = int(dbnum)
    return RedisServer(host, port, socket, database, password or None)


def connect(server: RedisServer) -> redis.Redis:
    """A client for ``server`` that returns Redis's replies unconverted."""
    if server.socket is not None:
        client = redis.Redis(unix_socket_path=server.socket, db=server.database or 0,
                             password=server.password, protocol=2,
                             socket_connect_timeout=CONNECT_TIMEOUT,
                             socket_timeout=COMMAND_TIMEOUT, retry=NO_RETRIES)
    else:
        client = redis.Redis(host=server.host, port=server.port, db=server.database or 0,
                             password=server.password, protocol=2,
                             socket_connect_timeout=CONNECT_TIMEOUT,
                             socket_timeout=COMMAND_TIMEOUT, retry=NO_RETRIES)
    # redis-py turns some replies into Python values (SET -> True, HGETALL -> dict);
    # the lookup formats the raw reply the way Exim does, so no conversion
    client.response_callbacks.clear()
    return client


def _client(server: RedisServer) -> redis.Redis:
    """This process's connection to ``server``, opened on first use."""
    client = _CONNECTIONS.get(server)
    if isinstance(client, redis.Redis):
        if debug.lookup:
            debug.printf(f"REDIS using cached connection for {server.ident}")
        return client
    client = connect(server)
    _CONNECTIONS.put(server, client)
    return client


def _drop(server: RedisServer) -> None:
    client = _CONNECTIONS.drop(server)
    if isinstance(client, redis.Redis):
        client.close()


_CONNECTIONS = ConnectionCache()


def split_command(query: str) -> list[str]:
    """The words of a query: split at white space, a backslash protecting the next
    character (a trailing lone backslash is dropped); at most 32 words."""
    words: list[str] = []
    i, n = 0, len(query)
    while i < n and query[i] in _WHITE:
        i += 1
    while i < n and len(words) < MAX_ARGS:
        word = []
        while i < n and query[i] not in _WHITE:
            if query[i] == "\\":
                i += 1
                if i == n:
                    break
            word.append(query[i])
            i += 1
        words.append("".join(word))
        while i < n and query[i] in _WHITE:
            i += 1
    return words


def _text(value: bytes) -> str:
    return value.decode("utf-8", "surrogateescape")


def format_reply(reply: RedisValue) -> str | None:
    """The lookup value for a Redis reply (None: not found)."""
    if reply is None:
        return ""
    if isinstance(reply, bool) or isinstance(reply, int):
        return "true" if reply else "false"
    if isinstance(reply, (bytes, str)):
        return _text(reply) if isinstance(reply, bytes) else reply
    # Exim builds the value piece by piece: a newline goes before each element once
    # something has been added, and a nil element adds nothing
    out: list[str] | None = None
    for entry in reply:
        if out is not None:
            out.append("\n")
        for item in (entry if isinstance(entry, list) else [entry]):
            if isinstance(entry, list) and out is not None:
                out.append("\n")
            piece = _element(item)
            if piece is not None:
                if out is None:
                    out = []
                out.append(piece)
    return None if out is None else "".join(out)


def _element(entry: RedisValue) -> str | None:
    """An array element: a string, an integer in decimal; anything else adds nothing
    (arrays nested deeper than one level included)."""
    if isinstance(entry, bytes):
        return _text(entry)
    if isinstance(entry, int) and not isinstance(entry, bool):
        return str(entry)
    return None


class _TryNext(Exception):
    """This server failed; the next one may answer."""


def _perform(server: RedisServer, words: list[str]) -> str | None:
    try:
        client = _client(server)
        reply = client.execute_command(*words) if words else None
    except redis.ResponseError as exc:
        message = str(exc)
        if message.startswith("MOVED"):
            raise _TryNext(f"REDIS: lookup result failed: {message}") from None
        raise ExpandDefer(f"REDIS: lookup result failed: {message}") from None
    except redis.RedisError as exc:
        # unreachable, timed out, refused AUTH or SELECT: the connection is useless
        _drop(server)
        raise _TryNext(f"REDIS: query failed on {server.ident}: {exc}") from None
    value = format_reply(reply)
    if debug.lookup:
        debug.printf("REDIS: no data found" if value is None else f"REDIS: reply {value!r}")
    return value


def server_list(servers_opt: str | None, global_servers: str | None) -> list[RedisServer]:
    """The servers to try: ``servers=`` (a bare host name picks that host's item of
    redis_servers), else redis_servers."""
    globals_ = split_list(global_servers or "")
    if servers_opt is None:
        if not globals_:
            raise ExpandDefer("no Redis servers defined (redis_servers option)")
        return [parse_server(item) for item in globals_]
    if is_tainted(servers_opt):
        raise ExpandError(f"Tainted servers value '{servers_opt}' for Redis lookup")
    out = []
    for item in split_list(servers_opt):
        if "/" not in item:
            found = [g for g in globals_ if g.partition("/")[0] == item]
            if not found:
                raise ExpandDefer(f"Redis server \"{item}\" not found in redis_servers")
            item = found[0]
        out.append(parse_server(item))
    return out


def redis_lookup(query: str, servers_opt: str | None, global_servers: str | None) -> str | None:
    """Run ``query`` on the first server that answers; None when nothing is found."""
    try:
        return _lookup(query, servers_opt, global_servers)
    except ExpandDefer as exc:
        # Exim's words for a deferred lookup in an expansion
        raise ExpandDefer(f"lookup of \"{query}\" gave DEFER: {exc}") from None


def _lookup(query: str, servers_opt: str | None, global_servers: str | None) -> str | None:
    words = split_command(query)
    if debug.lookup:
        for i, word in enumerate(words):
            debug.printf(f"REDIS: argv[{i}] '{word}'")
    error = "REDIS: no servers"
    for server in server_list(servers_opt, global_servers):
        try:
            return _perform(server, words)
        except _TryNext as exc:
            error = str(exc)
            if debug.lookup:
                debug.printf(error)
    raise ExpandDefer(error)
