"""Lookups (Exim spec chapter "File and database lookups").

:func:`do_lookup` performs one single-key or query-style lookup; :func:`do_lookup_spec`
takes the lookup type as written in an expansion (``partial2-lsearch*@,ret=key``).
A missing key gives ``None``; a temporary problem raises ``ExpandDefer``.
"""
from __future__ import annotations

import os
import re
from typing import Any

from pymta.debuglog import debug
from pymta.finduser import getpwnam

from ..expand.errors import ExpandDefer, ExpandError

SINGLE_KEY = frozenset({"lsearch", "wildlsearch", "nwildlsearch", "iplsearch", "dsearch",
                        "lmdb", "cdb", "json", "spf", "dbm", "dbmnz", "dbmjz"})
QUERY_STYLE = frozenset({"dnsdb", "passwd", "sqlite",
                         "ldap", "ldapdn", "ldapm",
                         "redis",
                         "mysql", "pgsql", "readsock",
                         })


class LookupSpec:
    """A parsed lookup type: name, partial matching, defaults and options."""

    __slots__ = ("name", "partial", "affix", "star", "starat", "opts")

    def __init__(self, name: str, partial: int | None = None, affix: str = "*.",
                 star: bool = False, starat: bool = False, opts: dict | None = None):
        self.name = name
        self.partial = partial
        self.affix = affix
        self.star = star
        self.starat = starat
        self.opts = opts or {}


_SPEC_RE = re.compile(r"(?:partial(\d*)(?:-|\(([^)]*)\)))?([a-z0-9_]+)(\*@?)?((?:,[^,]*)*)$")


def parse_lookup_type(spec: str) -> LookupSpec:
    """Parse ``partial-lsearch*@,ret=key`` style lookup type text."""
    m = _SPEC_RE.match(spec.strip())
    if not m:
        raise ExpandError(f"unknown lookup type \"{spec}\"")
    pnum, paffix, name, star, optstr = m.groups()
    partial = None
    affix = "*."
    if spec.strip().startswith("partial"):
        partial = int(pnum) if pnum else 2
        if paffix is not None:
            affix = paffix
    opts = {}
    for part in (optstr or "").split(","):
        if part:
            k, _, v = part.partition("=")
            opts[k.strip()] = v.strip()
    if name not in SINGLE_KEY and name not in QUERY_STYLE:
        raise ExpandError(f"unknown lookup type \"{name}\"")
    return LookupSpec(name, partial, affix, star == "*", star == "*@", opts)


def _single(spec: LookupSpec, filename: str, key: str, ctx: Any) -> str | None:
    from . import lsearch as ls
    name = spec.name
    if name == "lsearch":
        return ls.lsearch(filename, key, spec.opts)
    if name == "wildlsearch":
        return ls.wildlsearch(filename, key, spec.opts, ctx, True)
    if name == "nwildlsearch":
        return ls.wildlsearch(filename, key, spec.opts, ctx, False)
    if name == "iplsearch":
        return ls.iplsearch(filename, key, spec.opts)
    if name == "dsearch":
        return _dsearch(filename, key, spec.opts)
    if name == "lmdb":
        return _lmdb(filename, key)
    if name == "cdb":
        from .cdb import cdb_get
        v = cdb_get(filename, key.encode("utf-8", "surrogateescape"))
        return None if v is None else v.decode("utf-8", "surrogateescape")
    if name == "json":
        return _json(filename, key)
    if name in ("dbm", "dbmnz", "dbmjz"):
        from .dbm import dbm_lookup
        return dbm_lookup(name, filename, key)
    raise ExpandError(f"lookup type \"{name}\" is not supported")


def _dsearch(directory: str, key: str, opts: dict[str, str]) -> str | None:
    if not os.path.isabs(directory):
        raise ExpandError(f"dsearch requires an absolute directory name: \"{directory}\"")
    if "/" in key:
        raise ExpandDefer(f"lookup of \"{key}\" gave DEFER: key for dsearch lookup "
                          f"contains a slash: {key}")
    if not key:
        return None
    path = os.path.join(directory, key)
    try:
        st = os.lstat(path)
    except OSError:
        if not os.path.isdir(directory):
            try:
                os.listdir(directory)
                why = "Not a directory"
            except OSError as e:
                why = e.strerror or str(e)
            raise ExpandError(f"failed to open {directory} for directory search: {why}") \
                from None
        return None
    import stat
    flt = opts.get("filter")
    if flt == "file" and not stat.S_ISREG(st.st_mode):
        return None
    if flt in ("dir", "subdir") and not stat.S_ISDIR(st.st_mode):
        return None
    if flt == "subdir" and key in (".", ".."):
        return None
    return path if opts.get("ret") == "full" else key


def _lmdb(path: str, key: str) -> str | None:
    import lmdb
    try:
        env = lmdb.open(path, readonly=True, lock=False, subdir=os.path.isdir(path))
    except lmdb.Error as e:
        raise ExpandError(f"failed to open {path} as lmdb: {e}") from None
    try:
        with env.begin() as txn:
            v = txn.get(key.encode("utf-8", "surrogateescape"))
    finally:
        env.close()
    return None if v is None else v.decode("utf-8", "surrogateescape")


def _partial_keys(key: str, minimum: int, affix: str) -> list[str]:
    """The sequence of keys partial matching tries after the unmodified key."""
    keys = []
    parts = key.split(".")
    for start in range(0, len(parts)):
        rest = parts[start:]
        if len(rest) < max(minimum, 1):
            break
        keys.append(affix + ".".join(rest))
    if minimum == 0:
        if affix == "":
            pass
        elif len(affix) == 1:
            keys.append(affix)
        elif affix.endswith("."):
            keys.append(affix[:-1])
        else:
            keys.append(affix)
    return keys


def do_lookup(type: str, filename_or_query: str, key: str | None, ctx: Any,
              partial: int | None = None, affix: str = "*.", star: bool = False,
              starat: bool = False, opts: dict | None = None) -> str | None:
    """Run one lookup; ``type`` is the bare lookup name (``lsearch``...).

    Returns the data, or None when the key is not found.  Partial matching and the
    ``*``/``*@`` defaults apply to single-key lookups only.
    """
    spec = LookupSpec(type, partial, affix, star, starat, opts)
    return _run(spec, filename_or_query, key, ctx)


def _run(spec: LookupSpec, target: str, key: str | None, ctx: Any) -> str | None:
    if not debug.lookup:
        return _lookup(spec, target, key, ctx)
    what = f'query="{target}"' if key is None else f'file="{target}" key="{key}"'
    debug.printf(f"{spec.name} lookup: {what}")
    try:
        value = _lookup(spec, target, key, ctx)
    except Exception as exc:
        debug.printf(f"lookup deferred or failed: {exc}")
        raise
    debug.printf("lookup failed" if value is None else f"lookup yielded: {value}")
    return value


def _lookup(spec: LookupSpec, target: str, key: str | None, ctx: Any) -> str | None:
    if spec.name in QUERY_STYLE:
        if key is not None:
            raise ExpandError(f"a single key was given for lookup type \"{spec.name}\", "
                              "which is not a single-key lookup type")
        return _query(spec, target, key, ctx)
    if key is None:
        raise ExpandError(f"missing {{key}} for single-key \"{spec.name}\" lookup")
    if spec.name == "spf":            # the "file name" is the client's IP address
        from .spf import spf_lookup
        return spf_lookup(target, key, ctx)
    from ..taint import is_tainted
    if is_tainted(target):
        raise ExpandError(f"Tainted '{target}' (file or directory name for {spec.name}) "
                          "not permitted")
    if spec.name != "dsearch" and not os.path.isabs(target):
        raise ExpandError(f"\"{target}\" is not an absolute path")
    v = _single(spec, target, key, ctx)
    if spec.opts.get("ret") == "key":
        # the (de-tainted) lookup key itself; as in Exim 4.96, a match that needed a
        # partial- or * default does not count
        return None if v is None else str.__str__(key)
    if v is not None:
        return v
    if spec.partial is not None:
        for k in _partial_keys(key, spec.partial, spec.affix):
            v = _single(spec, target, k, ctx)
            if v is not None:
                ctx.variables.setdefault("_partial_match", k)
                return v
    if spec.starat and "@" in key:
        v = _single(spec, target, "*" + key[key.rfind("@"):], ctx)
        if v is not None:
            return v
    if spec.star or spec.starat:
        return _single(spec, target, "*", ctx)
    return None


def _json(path: str, key: str) -> str | None:
    """json lookup: the key is a list of selectors (object keys or 0-based indexes)."""
    import json
    try:
        with open(path) as f:
            obj = json.load(f)
    except OSError as e:
        raise ExpandError(f"failed to open {path}: {e.strerror}") from None
    except ValueError:
        raise ExpandError(f"json: failed to parse {path}") from None
    from ..expand.lists import split_list
    for sel in split_list(key or ""):
        if isinstance(obj, list) and sel.isdigit() and int(sel) < len(obj):
            obj = obj[int(sel)]
        elif isinstance(obj, dict) and sel in obj:
            obj = obj[sel]
        else:
            return None
    if isinstance(obj, str):
        return obj
    return json.dumps(obj, separators=(",", ":"))


def _passwd(query: str) -> str | None:
    try:
        pw = getpwnam(query.strip())
    except KeyError:
        return None
    return f"*:{pw.pw_uid}:{pw.pw_gid}:{pw.pw_gecos}:{pw.pw_dir}:{pw.pw_shell}"


def _sql_value(v: Any) -> str:
    s = "" if v is None else str(v)
    if s == "" or any(c.isspace() for c in s):
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return s


def _sqlite(spec: LookupSpec, query: str, ctx: Any) -> str | None:
    import sqlite3

    from ..taint import is_tainted
    path = spec.opts.get("file")
    main = getattr(getattr(ctx, "config", None), "main", None)
    if path is None:
        path = getattr(main, "sqlite_dbfile", None) if main is not None else None
        path = path or None
    if path is None:                # deprecated form: file name first in the query
        q = query.strip()
        if is_tainted(query):
            raise ExpandError("tainted query for sqlite lookup with file name in it")
        path, _, query = q.partition(" ")
    if not os.path.isabs(path):
        raise ExpandError("absolute file name expected for \"sqlite\" lookup")
    try:
        # read-write and created when missing, as Exim's sqlite3_open(); statements
        # such as INSERT (greylisting) take effect at once (autocommit)
        # sqlite_lock_timeout: how long a locked database is waited for (seconds)
        wait = getattr(main, "sqlite_lock_timeout", None) if main is not None else None
        con = sqlite3.connect(path, timeout=float(5 if wait is None else wait),
                              isolation_level=None)
    except sqlite3.Error as e:
        raise ExpandError(f"sqlite: cannot open {path}: {e}") from None
    try:
        cur = con.execute(str(query))
        rows = cur.fetchall()
        names = [d[0] for d in cur.description or []]
    except sqlite3.OperationalError as e:
        if "locked" in str(e):
            from ..expand.errors import ExpandDefer
            raise ExpandDefer(f"sqlite: {e}") from None
        raise ExpandError(f"sqlite: {e}") from None
    finally:
        con.close()
    if not rows:
        return None
    out = []
    for row in rows:
        if len(row) == 1:
            out.append("" if row[0] is None else str(row[0]))
        else:
            out.append(" ".join(f"{n}={_sql_value(v)}" for n, v in zip(names, row)))
    return "\n".join(out)


def _query(spec: LookupSpec, query: str, key: str | None, ctx: Any) -> str | None:
    if spec.name == "dnsdb":
        from .dnsdb import dnsdb_lookup
        return dnsdb_lookup(query, ctx)
    if spec.name == "passwd":
        return _passwd(query)
    if spec.name == "sqlite":
        return _sqlite(spec, query, ctx)
    if spec.name in ("ldap", "ldapdn", "ldapm"):
        from ..config.values import main_opt
        from .ldap import ldap_lookup
        config = getattr(ctx, "config", None)
        return ldap_lookup(spec.name, query, lambda name: main_opt(config, name),
                           ctx.variables)
    if spec.name == "redis":
        return _redis(spec, query, ctx)
    if spec.name == "mysql":
        from .mysql import mysql_lookup  # PyMySQL is loaded only when used
        return mysql_lookup(query, spec.opts, ctx)
    if spec.name == "pgsql":
        from .pgsql import pgsql_lookup  # libpq is loaded only when used
        return pgsql_lookup(query, spec.opts, ctx)
    if spec.name == "readsock":
        from .readsock import readsock_lookup
        return readsock_lookup(query, spec.opts)
    raise ExpandError(f"lookup type \"{spec.name}\" is not supported")


def _redis(spec: LookupSpec, query: str, ctx: Any) -> str | None:
    # redis-py is imported only when a configuration uses the lookup
    from .redis import redis_lookup
    main = getattr(getattr(ctx, "config", None), "main", None)
    servers = getattr(main, "redis_servers", None) if main is not None else None
    return redis_lookup(query, spec.opts.get("servers"), servers)


def do_lookup_spec(spec_text: str, filename_or_query: str, key: str | None,
                   ctx: Any) -> str | None:
    """Run a lookup whose type is written as in an expansion or a list item."""
    return _run(parse_lookup_type(spec_text), filename_or_query, key, ctx)
