"""The lsearch family: linear searches of ``key: data`` text files.

Files are parsed once and cached by (path, mtime, size); a lookup is then a scan of the
parsed entries, which keeps Exim's first-match-wins semantics.
"""
from __future__ import annotations

import ipaddress
import os
import re
from typing import Any

from ..expand.errors import ExpandDefer, ExpandError, ExpandFail

_BARE_KEY = re.compile(r"[^\s:]*")
_cache: dict[str, tuple[tuple[float, int], list[tuple[str, bool, str, str]]]] = {}


def _unquote_key(line: str) -> tuple[str, int, bool]:
    """Read a key at the start of ``line``; return (key, end index, was_quoted)."""
    if line.startswith('"'):
        out = []
        i = 1
        n = len(line)
        while i < n and line[i] != '"':
            c = line[i]
            if c == "\\" and i + 1 < n:
                i += 1
                c = {"n": "\n", "t": "\t", "r": "\r"}.get(line[i], line[i])
            out.append(c)
            i += 1
        return "".join(out), min(i + 1, n), True
    # the key is the leading run of characters up to white space or a colon
    m = _BARE_KEY.match(line)
    key = m.group(0) if m else ""
    return key, len(key), False


def parse_file(path: str) -> list[tuple[str, bool, str, str]]:
    """Parse an lsearch-style file into (key, quoted, data, whole line) entries."""
    try:
        st = os.stat(path)
        stamp = (st.st_mtime, st.st_size)
        cached = _cache.get(path)
        if cached and cached[0] == stamp:
            return cached[1]
        with open(path, "rb") as f:
            raw = f.read().decode("utf-8", "surrogateescape")
    except OSError as e:
        raise ExpandError(f"failed to open {path} for linear search: {e.strerror}") from None
    entries: list[list] = []
    current: list | None = None
    for line in raw.split("\n"):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0] in " \t":
            if current is not None:
                current[2] += " " + line.strip()
                current[3] += " " + line.strip()
            continue
        key, end, quoted = _unquote_key(line)
        rest = line[end:].lstrip(" \t")
        if rest.startswith(":"):
            rest = rest[1:]
        current = [key, quoted, rest.strip(), (key + line[end:]).rstrip()]
        entries.append(current)
    result: list[tuple[str, bool, str, str]] = [(e[0], e[1], e[2], e[3]) for e in entries]
    _cache[path] = (stamp, result)
    return result


def _ret(entry, opts: dict[str, str]) -> str:
    ret = opts.get("ret")
    if ret == "key":
        return entry[0]
    if ret == "full":
        return entry[3]
    return entry[2]


_index: dict[str, tuple[list, dict[str, tuple]]] = {}


def _key_index(path: str) -> dict[str, tuple]:
    """Caseless key -> first entry with that key (first match wins, as in a scan)."""
    entries = parse_file(path)
    cached = _index.get(path)
    if cached is not None and cached[0] is entries:
        return cached[1]
    index: dict[str, tuple] = {}
    for entry in entries:
        index.setdefault(entry[0].lower(), entry)
    _index[path] = (entries, index)
    return index


def lsearch(path: str, key: str, opts: dict[str, str]) -> str | None:
    """Exact (caseless) key match; the file is indexed once per version."""
    entry = _key_index(path).get(key.lower())
    return None if entry is None else _ret(entry, opts)


def wildlsearch(path: str, key: str, opts: dict[str, str], ctx: Any,
                expand_keys: bool) -> str | None:
    """Keys may be ``*suffix``, ``^regex`` or literal; wildlsearch expands keys first."""
    lkey = key.lower()
    for entry in parse_file(path):
        pattern = entry[0]
        if expand_keys and ("$" in pattern or "\\" in pattern):
            from ..expand import expand_string
            try:
                pattern = expand_string(pattern, ctx)
            except (ExpandDefer, ExpandFail):
                raise
            except ExpandError as e:
                # Exim defers the lookup (and gives no reason); pymta says why
                raise ExpandDefer(f"lookup of \"{key}\" gave DEFER: {e.message}") from None
        if pattern.startswith("^"):
            try:
                if re.search(pattern, key, re.IGNORECASE):
                    return _ret(entry, opts)
            except re.error:
                raise ExpandError(f"regular expression error in \"{pattern}\"") from None
        elif pattern.startswith("*"):
            if lkey.endswith(pattern[1:].lower()):
                return _ret(entry, opts)
        elif pattern.lower() == lkey:
            return _ret(entry, opts)
    return None


def iplsearch(path: str, key: str, opts: dict[str, str]) -> str | None:
    """Keys are IP addresses or networks; the lookup key must be an IP address."""
    try:
        ip = ipaddress.ip_address(key.strip())
    except ValueError:
        if key == "*":
            ip = None
        else:
            raise ExpandDefer(f"lookup of \"{key}\" gave DEFER: \"{key}\" is not a valid "
                              "iplsearch key (an IP address, with optional CIDR mask, is "
                              "wanted): in a host list, use net-iplsearch as the search "
                              "type") from None
    if ip is not None and ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for entry in parse_file(path):
        k = entry[0]
        if ip is None:
            if k == "*":
                return _ret(entry, opts)
            continue
        try:
            net = ipaddress.ip_network(k, strict=False)
        except ValueError:
            continue
        if net.version == ip.version and ip in net:
            return _ret(entry, opts)
    return None
