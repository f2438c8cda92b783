"""The ``mysql`` query-style lookup (Exim spec 9.21-9.24), through PyMySQL.

A server item is ``host:port(socket)[group]/database/user/password`` (the colon
doubled in a colon-separated list).  An empty host or ``localhost`` means the Unix
socket (the one in parentheses, else the server's default).  A statement that
returns no result set yields the number of rows it changed.
"""
from __future__ import annotations

import pymysql
from pymysql.constants import CR

from .conncache import ConnectionCache
from .sqlservers import (
    QueryRejected,
    ServerListError,
    ServerUnusable,
    format_row,
    split_server,
    sql_lookup,
)

LABEL = "MySQL"
DEFAULT_SOCKET = "/run/mysqld/mysqld.sock"      # Debian's MariaDB and libmariadb default

# client errors that mean the connection died rather than the query being refused
_CONNECTION_LOST = frozenset({CR.CR_SERVER_GONE_ERROR, CR.CR_SERVER_LOST,
                              CR.CR_CONNECTION_ERROR, CR.CR_CONN_HOST_ERROR})

_cache = ConnectionCache()


def mysql_lookup(query: str, opts: dict[str, str], ctx: object) -> str | None:
    """Run ``query`` on the first usable server; None when it yields no data."""
    return sql_lookup(query, opts, ctx, LABEL, "mysql_servers", _perform)


def _connect(server: str) -> pymysql.connections.Connection:
    hostpart, database, user, password = split_server(server, LABEL)
    if "[" in hostpart:
        # option files are not read by PyMySQL: refuse rather than ignore the group
        raise ServerListError(f"MySQL option group in \"{hostpart}\" is not supported")
    socket_path = None
    if "(" in hostpart:
        hostpart, _, rest = hostpart.partition("(")
        socket_path = rest.rstrip(")")
    host, _, port = hostpart.partition(":")
    try:
        port_n = int(port) if port else 3306
    except ValueError:
        raise ServerUnusable(f"MYSQL connection failed: bad port \"{port}\"") from None
    kwargs: dict = {"user": user, "password": password, "database": database or None,
                    "autocommit": True, "conv": {}, "charset": "utf8mb4"}
    if host in ("", "localhost"):
        kwargs["unix_socket"] = socket_path or DEFAULT_SOCKET
    else:
        kwargs["host"] = host
        kwargs["port"] = port_n
    try:
        return pymysql.connect(**kwargs)
    except pymysql.MySQLError as e:
        raise ServerUnusable(f"MYSQL connection failed: {_message(e)}") from None


def _message(e: BaseException) -> str:
    args: tuple = getattr(e, "args", ())
    return str(args[1]) if len(args) > 1 else str(e)


def _perform(query: str, server: str) -> str | None:
    conn = _cache.get(server)
    if conn is not None:
        try:
            return _execute(conn, query)
        except ServerUnusable:
            # a reused connection the server has since closed: open a new one
            _cache.drop(server)
    conn = _connect(server)
    _cache.put(server, conn)
    try:
        return _execute(conn, query)
    except ServerUnusable:
        _cache.drop(server)
        raise


def _text(v: object) -> str | None:
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("utf-8", "surrogateescape")
    return str(v)


def _execute(conn: pymysql.connections.Connection, query: str) -> str | None:
    try:
        with conn.cursor() as cur:
            cur.execute(str.__str__(query))
            if cur.description is None:
                # INSERT, UPDATE, DELETE...: the number of rows changed
                result: str | None = str(cur.rowcount)
            else:
                names = [d[0] for d in cur.description]
                result = _rows_text(names, cur.fetchall())
            while cur.nextset():      # a CALL's further results are not used
                pass
    except pymysql.MySQLError as e:
        code = e.args[0] if e.args else 0
        if isinstance(e, (pymysql.err.InterfaceError,)) or code in _CONNECTION_LOST:
            raise ServerUnusable(f"MYSQL: query failed: {_message(e)}") from None
        raise QueryRejected(f"MYSQL: query failed: {_message(e)}") from None
    return result


def _rows_text(names: list[str], rows: list) -> str | None:
    # As Exim's mysql lookup: a one-column NULL adds nothing, not even the newline
    # before it while nothing has been collected yet; nothing at all is "not found".
    result: str | None = None
    for row in rows:
        if result is not None:
            result += "\n"
        if len(names) != 1:
            result = (result or "") + format_row(names, [_text(v) for v in row])
        elif row[0] is not None:
            result = (result or "") + (_text(row[0]) or "")
    return result
