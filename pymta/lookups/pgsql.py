"""The ``pgsql`` query-style lookup (Exim spec 9.21-9.23, 9.25), through libpq
(psycopg's ``pq`` layer, so the query goes to the server as written, as Exim's
PQexec() sends it: several statements give the last one's result).

A server item is ``host:port/database/user/password`` or
``(/dir/.s.PGSQL.port)/database/user/password`` for a Unix socket.  A command that
returns no rows yields the number of rows it changed (nothing for commands such as
BEGIN that count none).
"""
from __future__ import annotations

from psycopg import pq
from psycopg.conninfo import make_conninfo
from psycopg.pq.abc import PGconn, PGresult

from .conncache import ConnectionCache
from .sqlservers import (
    QueryRejected,
    ServerUnusable,
    format_row,
    split_server,
    sql_lookup,
)

LABEL = "PostgreSQL"

_cache = ConnectionCache()


def pgsql_lookup(query: str, opts: dict[str, str], ctx: object) -> str | None:
    """Run ``query`` on the first usable server; None when it yields no data."""
    return sql_lookup(query, opts, ctx, LABEL, "pgsql_servers", _perform)


def _text(b: bytes | None) -> str:
    return "" if b is None else b.decode("utf-8", "surrogateescape")


def _connect(server: str) -> PGconn:
    hostpart, database, user, password = split_server(server, LABEL)
    if hostpart.startswith("("):
        # the socket's directory is libpq's host, the number after its last dot the port
        path = hostpart[1:].partition(")")[0]
        host, port = path.rpartition("/")[0] or "/", path.rpartition(".")[2]
    else:
        host, _, port = hostpart.partition(":")
    params = {"host": host, "port": port, "dbname": database, "user": user,
              "password": password}
    try:
        conninfo = make_conninfo(**{k: v for k, v in params.items() if v})
    except Exception as e:       # psycopg.ProgrammingError for a malformed value
        raise ServerUnusable(f"PGSQL connection failed: {e}") from None
    conn = pq.PGconn.connect(conninfo.encode("utf-8", "surrogateescape"))
    if conn.status != pq.ConnStatus.OK:
        message = _text(conn.error_message).rstrip("\n")
        conn.finish()
        raise ServerUnusable(f"PGSQL connection failed: {message}")
    return conn


def _perform(query: str, server: str) -> str | None:
    conn = _cache.get(server)
    if conn is not None and conn.status == pq.ConnStatus.OK:    # type: ignore[attr-defined]
        try:
            return _execute(conn, query)   # type: ignore[arg-type]
        except ServerUnusable:
            pass
    if conn is not None:
        # a reused connection the server has since closed: open a new one
        dropped = _cache.drop(server)
        if dropped is not None:
            dropped.finish()               # type: ignore[attr-defined]
    conn = _connect(server)
    _cache.put(server, conn)
    return _execute(conn, query)


def _execute(conn: PGconn, query: str) -> str | None:
    res = conn.exec_(str.__str__(query).encode("utf-8", "surrogateescape"))
    status = res.status
    if status == pq.ExecStatus.TUPLES_OK:
        return _rows_text(res)
    if status == pq.ExecStatus.COMMAND_OK:
        count = res.command_tuples
        return None if count is None else str(count)
    if status == pq.ExecStatus.EMPTY_QUERY:
        return None
    message = _text(res.error_message).rstrip("\n")
    if conn.status != pq.ConnStatus.OK:
        raise ServerUnusable(f"PGSQL: query failed: {message}")
    name = pq.ExecStatus(status).name
    raise QueryRejected(f"PGSQL: query failed: {message} (PGRES_{name}) ({query})")


def _rows_text(res: PGresult) -> str | None:
    nrows, ncols = res.ntuples, res.nfields
    if nrows == 0:
        return None
    names = [_text(res.fname(c)) for c in range(ncols)]
    lines = []
    for r in range(nrows):
        if ncols == 1:
            lines.append(_text(res.get_value(r, 0)))
        else:
            lines.append(format_row(names, [_text(res.get_value(r, c))
                                            for c in range(ncols)]))
    return "\n".join(lines)
