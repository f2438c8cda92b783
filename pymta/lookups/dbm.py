"""``dbm``, ``dbmnz`` and ``dbmjz`` lookups on Berkeley DB hash files.

Debian's Exim 4.96 is built with Berkeley DB 5.3 as its DBM library, so the files
``exim_dbmbuild`` writes are BDB hash databases.  Python has no BDB binding in its
standard library and the PyPI bindings need the C library, so this module reads the
on-disk hash format directly (read only): it scans the hash pages and follows overflow
chains, which needs no knowledge of BDB's hash function.  Each file is parsed once and
re-read when its size or mtime changes.

Key conventions (as Exim): ``dbm`` appends a binary zero to the key, ``dbmnz`` does
not, ``dbmjz`` joins the key's list items with binary zeros (no terminating zero).
A trailing binary zero in the data is removed.
"""
from __future__ import annotations

import os
import struct

from ..expand.errors import ExpandError

_HASH_MAGIC = 0x061561
_P_OVERFLOW = 7
_P_HASH_UNSORTED = 2
_P_HASH = 13
_H_KEYDATA = 1
_H_OFFPAGE = 3
_HDR = 26                       # size of a (non-encrypted) page header

_cache: dict[str, tuple[tuple[int, int, int], dict[bytes, bytes]]] = {}


def read_bdb_hash(path: str) -> dict[bytes, bytes]:
    """All key/data pairs of a Berkeley DB hash file (raises ExpandError if not one)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ExpandError(f"failed to open {path} as a db (v4.1+) file: {e.strerror}") from None
    if len(raw) < 512:
        raise ExpandError(f"{path} is not a Berkeley DB hash file")
    for end in "<>":
        magic, _version, pagesize = struct.unpack_from(end + "III", raw, 12)
        if magic == _HASH_MAGIC:
            break
    else:
        raise ExpandError(f"{path} is not a Berkeley DB hash file")
    if pagesize < 512 or pagesize > 65536:
        raise ExpandError(f"{path}: bad page size {pagesize}")
    if raw[24] != 0:
        raise ExpandError(f"{path}: encrypted Berkeley DB files are not supported")
    npages = len(raw) // pagesize
    last_pgno = struct.unpack_from(end + "I", raw, 32)[0]
    if last_pgno >= npages:
        raise ExpandError(f"{path}: damaged Berkeley DB file (truncated)")
    u16 = struct.Struct(end + "H")
    u32 = struct.Struct(end + "I")

    def page(n: int) -> bytes:
        if n <= 0 or n >= npages:
            raise ExpandError(f"{path}: damaged Berkeley DB file (page {n})")
        return raw[n * pagesize:(n + 1) * pagesize]

    def overflow(pgno: int, total: int) -> bytes:
        out = bytearray()
        seen = set()
        while pgno and len(out) < total:
            if pgno in seen:
                raise ExpandError(f"{path}: damaged Berkeley DB file (overflow loop)")
            seen.add(pgno)
            p = page(pgno)
            used = u16.unpack_from(p, 22)[0]        # hf_offset = bytes used here
            out += p[_HDR:_HDR + used]
            pgno = u32.unpack_from(p, 16)[0]        # next_pgno
        return bytes(out[:total])

    def item(p: bytes, offsets: list[int], i: int) -> bytes:
        start = offsets[i]
        stop = pagesize if i == 0 else offsets[i - 1]
        if start >= len(p) or stop > len(p) or start >= stop:
            raise ExpandError(f"{path}: damaged Berkeley DB file (item)")
        kind = p[start]
        if kind == _H_KEYDATA:
            return p[start + 1:stop]
        if kind == _H_OFFPAGE:
            pgno = u32.unpack_from(p, start + 4)[0]
            tlen = u32.unpack_from(p, start + 8)[0]
            return overflow(pgno, tlen)
        raise ExpandError(f"{path}: unsupported Berkeley DB item type {kind}")

    result: dict[bytes, bytes] = {}
    for n in range(1, npages):
        p = raw[n * pagesize:(n + 1) * pagesize]
        if p[25] not in (_P_HASH, _P_HASH_UNSORTED):
            continue
        entries = u16.unpack_from(p, 20)[0]
        offsets = [u16.unpack_from(p, _HDR + 2 * i)[0] for i in range(entries)]
        for i in range(0, entries - 1, 2):
            result[item(p, offsets, i)] = item(p, offsets, i + 1)
    return result


def _table(path: str) -> dict[bytes, bytes]:
    try:
        st = os.stat(path)
    except OSError as e:
        raise ExpandError(f"failed to open {path} as a db (v4.1+) file: {e.strerror}") from None
    stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
    hit = _cache.get(path)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    table = read_bdb_hash(path)
    _cache[path] = (stamp, table)
    return table


def dbm_lookup(kind: str, path: str, key: str) -> str | None:
    """Look ``key`` up in a DBM file the way lookup type ``kind`` (dbm/dbmnz/dbmjz) does."""
    if kind == "dbmjz":
        from ..expand.lists import split_list
        k = "\0".join(split_list(key)).encode("utf-8", "surrogateescape")
    else:
        k = key.encode("utf-8", "surrogateescape")
        if kind == "dbm":
            k += b"\0"
    v = _table(path).get(k)
    if v is None:
        return None
    if v.endswith(b"\0"):
        v = v[:-1]
    return v.decode("utf-8", "surrogateescape")
