"""What the MySQL and PostgreSQL lookups share (Exim spec 9.21-9.23).

* which servers a query goes to: the ``servers=`` lookup option, the older
  ``servers=...;`` prefix of the query, or the main option ``mysql_servers`` /
  ``pgsql_servers``; an item without a slash names a host of the main option;
* failover: servers are tried in order until one connects and runs the query; a
  query the server rejects is not retried elsewhere;
* the result text: one row per line, a lone column verbatim, several columns as
  ``name=value`` pairs (value in double quotes when empty or holding white space);
* a per-process connection cache: a connection is reused by later lookups in the
  same process, never by a forked child (it would share the parent's socket).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

from ..expand.errors import ExpandDefer
from ..expand.lists import split_list
from ..taint import is_quoted, is_tainted


class QueryRejected(Exception):
    """The server was reached but refused the query: no other server is tried."""


class ServerUnusable(Exception):
    """The server could not be used (connect or login failed): try the next one."""


class ServerListError(Exception):
    """The server list or a server specification is unusable: the lookup defers."""


def main_server_list(ctx: object, option: str) -> str | None:
    """The main option ``mysql_servers`` / ``pgsql_servers`` as written, or None."""
    main = getattr(getattr(ctx, "config", None), "main", None)
    value = getattr(main, option, None) if main is not None else None
    return value or None


def split_servers_prefix(query: str, label: str) -> tuple[str | None, str]:
    """Take the old ``servers=a:b; SELECT ...`` form apart: (server list, query)."""
    if not query.startswith("servers"):
        return None, query
    rest = query[7:].lstrip()
    if not rest.startswith("="):
        raise ServerListError(f"missing = after \"servers\" in {label} lookup")
    rest = rest[1:].lstrip()
    semi = rest.find(";")
    if semi < 0:
        raise ServerListError(f"missing ; after \"servers=\" in {label} lookup")
    if semi == 0:
        raise ServerListError(f"\"servers=\" defines no servers in \"{query}\"")
    return rest[:semi], rest[semi + 1:]


def resolve_servers(listed: str | None, main_list: str | None, label: str,
                    option: str, listed_tainted: bool = False) -> list[str]:
    """Full server specifications for a query, in the order to try them.

    ``listed`` comes from the query (``servers=``); without it the main option is
    used.  An item of ``listed`` without a slash is the host part of an item of the
    main option, which supplies database, user and password.  A full specification
    taken from tainted text (``listed_tainted``) is refused.
    """
    if listed is None:
        if main_list is None:
            raise ServerListError(f"no {label} servers defined ({option} option)")
        return split_list(main_list)
    out = []
    for item in split_list(listed):
        if "/" not in item:
            found = [s for s in split_list(main_list or "") if s.startswith(item + "/")]
            if not found:
                raise ServerListError(f"{label} server \"{item}\" not found in {option}")
            item = found[0]
        elif listed_tainted or is_tainted(item):
            raise ServerListError(f"{label} server \"{item}\" is tainted")
        out.append(item)
    return out


def split_server(server: str, label: str) -> tuple[str, str, str, str]:
    """``host/database/user/password`` -> its four parts.

    The password is after the last slash, so the host part may itself hold slashes
    (a socket path in parentheses) but the password may not.
    """
    parts: list[str] = []
    rest = server
    for _ in range(3):
        slash = rest.rfind("/")
        if slash < 0:
            raise ServerListError(f"incomplete {label} server data: {rest}")
        parts.insert(0, rest[slash + 1:])
        rest = rest[:slash]
    return rest, parts[0], parts[1], parts[2]


def quote_field(name: str, value: str | None) -> str:
    """One ``name=value `` pair of a multi-column row (with its trailing space)."""
    v = "" if value is None else value
    if v == "" or any(c in v for c in " \t\n\r") or v.startswith('"'):
        v = '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name}={v} "


def format_row(names: list[str], row: Iterable[str | None]) -> str:
    """A row of several columns as ``name=value`` pairs."""
    return "".join(quote_field(n, v) for n, v in zip(names, row))


def warn_unquoted(query: str, ctx: object) -> None:
    """Log a tainted query whose tainted data did not come through a quote operator
    (Exim 4.96 writes this warning to the main and panic logs and runs the query)."""
    if not is_tainted(query) or is_quoted(query):
        return
    log = getattr(ctx, "log", None)
    if log is None:
        return
    where = getattr(ctx, "where", "")
    place = f" ({where})" if where else ""
    log.panic(f"tainted search query is not properly quoted{place}: {query}")


def sql_lookup(query: str, opts: dict[str, str], ctx: object, label: str, option: str,
               perform: Callable[[str, str], str | None]) -> str | None:
    """Run ``perform(query, server)`` on the query's servers until one answers.

    ServerUnusable moves on to the next server; when none is left the lookup defers
    with the last reason.  QueryRejected and ServerListError defer at once.
    """
    whole = query
    warn_unquoted(query, ctx)
    try:
        listed, query = split_servers_prefix(query, label)
        # the older form takes the servers out of the query: tainted if the query is
        from_query = listed is not None and is_tainted(whole)
        if listed is None:
            listed = opts.get("servers")
        servers = resolve_servers(listed, main_server_list(ctx, option), label, option,
                                  from_query)
        reason = "no servers"
        for server in servers:
            try:
                return perform(query, server)
            except ServerUnusable as e:
                reason = str(e)
        raise ServerListError(reason)
    except (ServerListError, QueryRejected) as e:
        raise ExpandDefer(f"lookup of \"{whole}\" gave DEFER: {e}") from None
