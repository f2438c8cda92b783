"""The ldap, ldapdn and ldapm lookups and the ldapauth condition (Exim spec 9.14-9.19).

A query is an LDAP URL (RFC 2255: ``ldap://host:port/base?attrs?scope?filter``),
optionally preceded by ``NAME=value`` settings (USER, PASS, NETTIME/CONNECT, TIME, SIZE,
DEREFERENCE, REFERRALS, SERVERS).  The server comes from the URL, else from SERVERS=,
else from ldap_default_servers, tried in turn: a connection, bind or timeout failure
moves on to the next one; the last failure defers the lookup.  Results are formatted as
Exim does: one attribute gives its values comma-separated (commas doubled); several give
``name="v1,v2"`` pairs; ldapm puts a newline between entries.  The DN of the (last) entry
found is left in $ldap_dn.

Connections are kept per process, one per (server, user, password), and are never used
by a forked child: a connection opened by another process id is dropped.  The network
work is ldap3's (a pure-Python LDAP v3 client); TLS comes from the ldap_* main options.
"""
from __future__ import annotations

import functools
import ssl
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import ldap3
from ldap3.core import exceptions as ldap_exc

from ..debuglog import debug
from ..expand.errors import ExpandDefer, ExpandError
from .conncache import ConnectionCache

LDAP_PORT = 389
LDAPS_PORT = 636

_SCOPES = {"base": ldap3.BASE, "one": ldap3.LEVEL, "sub": ldap3.SUBTREE}
_DEREF = {"never": ldap3.DEREF_NEVER, "searching": ldap3.DEREF_SEARCH,
          "finding": ldap3.DEREF_BASE, "always": ldap3.DEREF_ALWAYS}
_PARAMS = ("user", "pass", "nettime", "connect", "time", "size", "dereference",
           "referrals", "servers")
_REQUIRE_CERT = {"never": ssl.CERT_NONE, "allow": ssl.CERT_NONE, "try": ssl.CERT_OPTIONAL,
                 "demand": ssl.CERT_REQUIRED, "hard": ssl.CERT_REQUIRED}
#: LDAP result codes in the name-error range (RFC 4511 32-36): the object does not exist
_NAME_ERRORS = range(32, 37)
_SIZE_LIMIT_EXCEEDED = 4


class MainOptions(Protocol):
    """What the lookup reads from the main configuration."""

    def __call__(self, name: str) -> Any: ...


class LookupDefer(ExpandDefer):
    """A problem with this server; ``next_server`` says whether another may be tried."""

    def __init__(self, message: str, next_server: bool = True) -> None:
        super().__init__(message)
        self.next_server = next_server


@dataclass
class Server:
    """One LDAP server: a host and port, or a Unix socket path (ldapi)."""

    scheme: str                       # ldap, ldaps or ldapi
    host: str = ""
    port: int = 0
    path: str = ""

    @property
    def name(self) -> str:
        return self.path or f"{self.host}:{self.port}"


@dataclass
class LdapQuery:
    """A parsed query: the settings before the URL and the URL's parts."""

    scheme: str
    server: Server | None
    base: str
    attributes: list[str]
    scope: str
    filter: str
    user: str | None = None
    password: str | None = None
    nettime: int | None = None
    time_limit: int = 0
    size_limit: int = 0
    dereference: str = "never"
    referrals: bool = True
    servers: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------
def _settings(text: str) -> tuple[dict[str, str], str]:
    """Split ``NAME=value ...`` settings from the URL that follows them."""
    settings: dict[str, str] = {}
    i = 0
    n = len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if text[i:i + 4].lower() == "ldap":
            return settings, text[i:].strip()
        eq = text.find("=", i)
        name = text[i:eq].lower() if eq > i else ""
        if eq < 0 or not name.isalpha():
            raise LookupDefer("malformed parameter setting precedes LDAP URL", False)
        if name not in _PARAMS:
            raise LookupDefer(f'unknown parameter "{text[i:eq + 1]}" precedes LDAP URL',
                              False)
        i = eq + 1
        if i < n and text[i] == '"':
            value, i = _quoted(text, i + 1)
        else:
            start = i
            while i < n and not text[i].isspace():
                i += 1
            value = text[start:i]
        settings[name] = value


def _quoted(text: str, i: int) -> tuple[str, int]:
    out = []
    while i < len(text) and text[i] != '"':
        if text[i] == "\\" and i + 1 < len(text):
            i += 1
        out.append(text[i])
        i += 1
    return "".join(out), i + 1


def _seconds(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise LookupDefer(f'{name.upper()} value "{value}" is not a number', False) from None


def parse_server(item: str, scheme: str = "ldap") -> Server:
    """A server list item: ``host``, ``host:port`` or a socket path (ldapi)."""
    if item.startswith("/"):
        return Server("ldapi", path=item)
    host, _, port = item.rpartition(":") if item.count(":") == 1 or \
        (item.startswith("[") and "]:" in item) else (item, "", "")
    host = host.strip("[]")
    default = LDAPS_PORT if scheme == "ldaps" else LDAP_PORT
    try:
        return Server(scheme if scheme != "ldapi" else "ldap", host, int(port) if port
                      else default)
    except ValueError:
        raise LookupDefer(f'bad port in LDAP server "{item}"', False) from None


def parse_query(text: str) -> LdapQuery:
    """Parse an ldap lookup query (settings and URL)."""
    settings, url = _settings(text)
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("ldap", "ldaps", "ldapi"):
        raise LookupDefer("malformed parameter setting precedes LDAP URL", False)
    hostport, _, tail = rest.partition("/")
    hostport = urllib.parse.unquote(hostport)
    server = None
    if hostport:
        if scheme == "ldapi" and not hostport.startswith("/"):
            raise LookupDefer(f"ldapi requires an absolute path (\"{hostport}\" given)",
                              False)
        server = parse_server(hostport, scheme)
    parts = tail.split("?")
    if len(parts) > 5:
        raise LookupDefer(f"LDAP URL has too many components: {url}", False)
    parts += [""] * (5 - len(parts))
    base, attrs, scope, flt = (urllib.parse.unquote(p) for p in parts[:4])
    scope = scope.lower() or "base"
    if scope not in _SCOPES:
        raise LookupDefer(f'LDAP URL: unknown scope "{scope}"', False)
    q = LdapQuery(scheme=scheme, server=server, base=base,
                  attributes=[a for a in attrs.split(",") if a], scope=scope,
                  filter=flt or "(objectClass=*)")
    for name, value in settings.items():
        if name == "user":
            q.user = urllib.parse.unquote(value)
        elif name == "pass":
            q.password = value
        elif name in ("nettime", "connect"):
            q.nettime = _seconds(name, value) or None
        elif name == "time":
            q.time_limit = _seconds(name, value)
        elif name == "size":
            q.size_limit = _seconds(name, value)
        elif name == "dereference":
            if value.lower() not in _DEREF:
                raise LookupDefer(f'unknown DEREFERENCE value "{value}"', False)
            q.dereference = value.lower()
        elif name == "referrals":
            if value.lower() not in ("follow", "nofollow"):
                raise LookupDefer(f'unknown REFERRALS value "{value}"', False)
            q.referrals = value.lower() == "follow"
        elif name == "servers":
            q.servers = _colon_list(value)
    return q


def _colon_list(text: str) -> list[str]:
    """A colon-separated list in which "::" stands for a colon."""
    items, cur, i = [], [], 0
    while i < len(text):
        if text[i] == ":":
            if text[i + 1:i + 2] == ":":
                cur.append(":")
                i += 2
                continue
            items.append("".join(cur).strip())
            cur = []
        else:
            cur.append(text[i])
        i += 1
    items.append("".join(cur).strip())
    return [it for it in items if it]


# ---------------------------------------------------------------------------------------
# Connections
# ---------------------------------------------------------------------------------------
@dataclass
class TlsSettings:
    """The ldap_* TLS main options."""

    start_tls: bool = False
    require_cert: str = ""
    ca_file: str | None = None
    ca_dir: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    ciphers: str | None = None

    def ldap3_tls(self) -> ldap3.Tls:
        # libldap's default (TLS_REQCERT demand) unless ldap_require_cert says otherwise
        validate = _REQUIRE_CERT.get(self.require_cert or "demand", ssl.CERT_REQUIRED)
        return ldap3.Tls(validate=validate, ca_certs_file=self.ca_file,
                         ca_certs_path=self.ca_dir, local_certificate_file=self.cert_file,
                         local_private_key_file=self.key_file, ciphers=self.ciphers)


def tls_settings(main: MainOptions) -> TlsSettings:
    return TlsSettings(start_tls=bool(main("ldap_start_tls")),
                       require_cert=str(main("ldap_require_cert") or "").lower(),
                       ca_file=main("ldap_ca_cert_file") or None,
                       ca_dir=main("ldap_ca_cert_dir") or None,
                       cert_file=main("ldap_cert_file") or None,
                       key_file=main("ldap_cert_key") or None,
                       ciphers=main("ldap_cipher_suite") or None)


_cache = ConnectionCache()


def _key(server: Server, q: LdapQuery) -> tuple:
    return (server.scheme, server.host, server.port, server.path, q.user, q.password)


def _cached(key: tuple) -> ldap3.Connection | None:
    conn = _cache.get(key)
    if isinstance(conn, ldap3.Connection) and conn.closed:
        _cache.drop(key)
        return None
    return conn if isinstance(conn, ldap3.Connection) else None


def _connect(server: Server, q: LdapQuery, tls: TlsSettings, *,
             cache: bool = True) -> ldap3.Connection:
    """A bound connection to ``server`` (from the cache when one is open)."""
    key = _key(server, q)
    conn = _cached(key) if cache else None
    if conn is not None:
        return conn
    if server.path:
        target = ldap3.Server("ldapi://" + urllib.parse.quote(server.path, safe=""),
                              connect_timeout=q.nettime)
    else:
        use_ssl = server.scheme == "ldaps"
        target = ldap3.Server(server.host, port=server.port, use_ssl=use_ssl,
                              tls=tls.ldap3_tls() if use_ssl or tls.start_tls else None,
                              connect_timeout=q.nettime, get_info=ldap3.NONE)
    conn = ldap3.Connection(target, user=q.user or None, password=q.password or None,
                            auto_bind=ldap3.AUTO_BIND_NONE, raise_exceptions=False,
                            receive_timeout=q.nettime, read_only=False,
                            auto_referrals=q.referrals)
    try:
        conn.open()
    except ldap_exc.LDAPException as exc:
        if debug.lookup:
            debug.printf(f"LDAP connection to {server.name} failed: {_why(exc)}")
        raise LookupDefer(f"failed to bind the LDAP connection to server {server.name} - "
                          "ldap_bind() returned -1") from None
    if tls.start_tls and not server.path and server.scheme == "ldap":
        try:
            ok = conn.start_tls()
        except ldap_exc.LDAPException as exc:
            ok, conn.last_error = False, _why(exc)
        if not ok:
            _drop(conn)
            if debug.lookup:
                debug.printf(f"LDAP StartTLS with {server.name} failed: {conn.last_error}")
            raise LookupDefer("failed to initiate TLS processing on an LDAP session to "
                              f"server {server.name} - ldap_start_tls_s() returned -11: "
                              "Connect error")
    try:
        bound = conn.bind()
    except ldap_exc.LDAPException as exc:
        _drop(conn)
        if debug.lookup:
            debug.printf(f"LDAP bind to {server.name} failed: {_why(exc)}")
        raise LookupDefer(f"failed to bind the LDAP connection to server {server.name} - "
                          "ldap_bind() returned -1") from None
    if not bound:
        code, text = conn.result.get("result"), conn.result.get("description")
        _drop(conn)
        raise BindRefused(f"failed to bind the LDAP connection to server {server.name} - "
                          f"LDAP error {code}: {_error_text(code, text)}")
    if cache:
        _cache.put(key, conn)
    return conn


class BindRefused(LookupDefer):
    """The server refused the credentials (LDAP error 49 and the like)."""


class ConnectionLost(LookupDefer):
    """A connection broke during a search (a kept connection the server has closed)."""


def _drop(conn: ldap3.Connection) -> None:
    try:
        conn.unbind()
    except Exception:
        pass


def _why(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else repr(exc)


_ERROR_TEXT = {49: "Invalid credentials", 50: "Insufficient access", 32: "No such object",
               53: "Server is unwilling to perform", 3: "Time limit exceeded"}


def _error_text(code: Any, text: Any) -> str:
    """libldap's message for a result code, which is what Exim logs."""
    if isinstance(code, int) and code in _ERROR_TEXT:
        return _ERROR_TEXT[code]
    return str(text or code)


def _servers_for(q: LdapQuery, main: MainOptions) -> list[Server]:
    if q.server is not None:
        return [q.server]
    items = q.servers or _colon_list(_default_servers(main))
    if not items:
        return [Server(q.scheme if q.scheme != "ldapi" else "ldap", "127.0.0.1",
                       LDAPS_PORT if q.scheme == "ldaps" else LDAP_PORT)]
    return [parse_server(it, q.scheme) for it in items]


def _default_servers(main: MainOptions) -> str:
    value = main("ldap_default_servers")
    if isinstance(value, (list, tuple)):
        return ":".join(str(v).replace(":", "::") for v in value)
    return str(value or "")


# ---------------------------------------------------------------------------------------
# Searching and formatting
# ---------------------------------------------------------------------------------------
def _value_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return str(value)


def format_entry(attributes: list[tuple[str, list[str]]], single: bool) -> tuple[str, bool]:
    """One entry's data as Exim writes it; the flag says whether any value was found."""
    parts: list[str] = []
    found = False
    count = 0
    for name, values in attributes:
        if not values:
            continue
        found = True
        if single:
            for v in values:
                count += 1
                parts.append(("," if count > 1 else "") + v.replace(",", ",,"))
        else:
            quoted = ",".join(v.replace("\\", "\\\\").replace('"', '\\"')
                              .replace("\n", "\\n").replace(",", ",,") for v in values)
            parts.append(("" if not parts else " ") + f'{name}="{quoted}"')
    return "".join(parts), found


def _search(conn: ldap3.Connection, q: LdapQuery, kind: str,
            forget: Callable[[], object]) -> tuple[str | None, str]:
    """Run the search; returns (data or None when nothing was found, last DN)."""
    attributes = q.attributes or [ldap3.ALL_ATTRIBUTES]
    try:
        conn.search(q.base, q.filter, search_scope=_SCOPES[q.scope], attributes=attributes,
                    size_limit=q.size_limit, time_limit=q.time_limit,
                    dereference_aliases=_DEREF[q.dereference])
    except ldap_exc.LDAPInvalidFilterError:
        raise LookupDefer("ldap_search failed: -7, Bad search filter", False) from None
    except (ldap_exc.LDAPSocketOpenError, ldap_exc.LDAPSocketReceiveError,
            ldap_exc.LDAPSocketSendError, ldap_exc.LDAPSessionTerminatedByServerError) as exc:
        forget()
        _drop(conn)
        raise ConnectionLost(f"LDAP search failed - {_why(exc)}") from None
    except ldap_exc.LDAPException as exc:
        raise LookupDefer(f"ldap_search failed: {_why(exc)}", False) from None
    code = conn.result.get("result", 0) if conn.result else 0
    if code not in (0, _SIZE_LIMIT_EXCEEDED):
        if code in _NAME_ERRORS:
            return None, ""
        raise LookupDefer(f"LDAP search failed - error {code}: "
                          f"{_error_text(code, conn.result.get('description'))}", False)
    entries = [r for r in (conn.response or []) if r.get("type") == "searchResEntry"]
    if kind != "ldapm" and len(entries) > 1:
        raise LookupDefer(f"LDAP search: more than one entry ({len(entries)}) was returned "
                          "(filter not specific enough?)", False)
    if not entries:
        return None, ""
    single = len(q.attributes) == 1
    data: list[str] = []
    found = False
    dn = ""
    for entry in entries:
        dn = entry.get("dn", "") or dn
        if kind == "ldapdn":
            data.append(entry.get("dn", ""))
            found = found or bool(entry.get("dn"))
            continue
        raw = entry.get("raw_attributes") or {}
        attrs = [(name, [_value_text(v) for v in values]) for name, values in raw.items()]
        text, any_value = format_entry(attrs, single)
        data.append(text)
        found = found or any_value
    if not found:
        return None, dn
    return "\n".join(data), dn


def ldap_lookup(kind: str, query: str, main: MainOptions,
                variables: dict[str, Any] | None = None) -> str | None:
    """Run an ldap/ldapdn/ldapm lookup; None when nothing is found, ExpandDefer when the
    servers cannot answer."""
    try:
        q = parse_query(query)
    except LookupDefer as exc:
        raise ExpandDefer(f'lookup of "{query}" gave DEFER: {exc}') from None
    tls = tls_settings(main)
    last: LookupDefer | None = None
    for server in _servers_for(q, main):
        try:
            forget = functools.partial(_cache.drop, _key(server, q))
            try:
                data, dn = _search(_connect(server, q, tls), q, kind, forget)
            except ConnectionLost:     # once more on a new connection
                data, dn = _search(_connect(server, q, tls), q, kind, forget)
        except LookupDefer as exc:
            last = exc
            if exc.next_server:
                continue
            break
        if variables is not None and dn:
            variables["ldap_dn"] = dn
        return data
    raise ExpandDefer(f'lookup of "{query}" gave DEFER: {last}')


def ldap_auth(query: str, main: MainOptions) -> bool:
    """The ldapauth condition: do the USER and PASS of the query bind to the server?
    An empty password is refused without asking (an LDAP bind with no password is an
    anonymous bind that succeeds)."""
    try:
        q = parse_query(query)
    except LookupDefer as exc:
        raise ExpandError(str(exc)) from None
    if not q.password:
        return False
    tls = tls_settings(main)
    last: LookupDefer | None = None
    for server in _servers_for(q, main):
        try:
            conn = _connect(server, q, tls, cache=False)
        except BindRefused:
            return False
        except LookupDefer as exc:
            last = exc
            continue
        _drop(conn)
        return True
    raise ExpandDefer(str(last))
