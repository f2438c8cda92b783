"""Read-only Constant DataBase (cdb) files, as the ``cdb`` lookup uses them."""
from __future__ import annotations

import struct

from ..expand.errors import ExpandError


def cdb_hash(key: bytes) -> int:
    h = 5381
    for c in key:
        h = (((h << 5) + h) & 0xFFFFFFFF) ^ c
    return h


def cdb_get(path: str, key: bytes) -> bytes | None:
    """Return the first value stored under ``key`` in the cdb file, or None."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ExpandError(f"failed to open {path} for cdb lookup: {e.strerror}") from None
    if len(data) < 2048:
        raise ExpandError(f"{path} is not a cdb file")
    h = cdb_hash(key)
    pos, nslots = struct.unpack_from("<II", data, (h & 255) * 8)
    if nslots == 0:
        return None
    slot = (h >> 8) % nslots
    for _ in range(nslots):
        sh, rpos = struct.unpack_from("<II", data, pos + slot * 8)
        if rpos == 0:
            return None
        if sh == h:
            klen, dlen = struct.unpack_from("<II", data, rpos)
            if data[rpos + 8:rpos + 8 + klen] == key:
                return data[rpos + 8 + klen:rpos + 8 + klen + dlen]
        slot = (slot + 1) % nslots
    return None


def cdb_write(path: str, items: list[tuple[bytes, bytes]]) -> None:
    """Write a cdb file (used by tests and admin tools)."""
    records = bytearray()
    tables: list[list[tuple[int, int]]] = [[] for _ in range(256)]
    offset = 2048
    for k, v in items:
        h = cdb_hash(k)
        tables[h & 255].append((h, offset + len(records)))
        records += struct.pack("<II", len(k), len(v)) + k + v
    header = bytearray()
    body = bytearray()
    tpos = offset + len(records)
    for entries in tables:
        n = len(entries) * 2
        slots = [(0, 0)] * n
        for h, p in entries:
            i = (h >> 8) % n
            while slots[i][1] != 0:
                i = (i + 1) % n
            slots[i] = (h, p)
        header += struct.pack("<II", tpos + len(body), n)
        for h, p in slots:
            body += struct.pack("<II", h, p)
    with open(path, "wb") as f:
        f.write(bytes(header) + bytes(records) + bytes(body))
