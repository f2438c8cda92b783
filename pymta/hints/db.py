"""Hints databases: one LMDB file per database at ``spool_dir/db/<name>``.

LMDB gives safe concurrent access from many processes.  An LMDB environment must not be
used in a process other than the one that opened it, so the environment is opened
lazily, shared by all HintsDB objects of the process, and reopened when the pid changes
(after fork).  Hints are only hints: if the
file is deleted, the next open creates an empty one; if it is unreadable (corrupt or
from an incompatible version) it is removed and recreated.
"""
from __future__ import annotations

import os
from typing import Iterator

import lmdb

from pymta.osutil import give_to_dir_owner

MAP_SIZE = 1 << 30            # sparse file: costs nothing until used
MAX_READERS = 1024
DB_DIR_MODE = 0o750


_DAMAGED = tuple(getattr(lmdb, n) for n in ("InvalidError", "CorruptedError",
                                           "VersionMismatchError", "PageNotFoundError",
                                           "BadRslotError") if hasattr(lmdb, n))

# LMDB forbids opening one environment twice in a process, so all HintsDB objects of a
# process share one environment per file: path -> (pid, env, (st_dev, st_ino))
_ENVS: dict[str, tuple[int, lmdb.Environment, tuple[int, int]]] = {}


def _open_env(path: str) -> tuple[lmdb.Environment, tuple[int, int]]:
    os.makedirs(os.path.dirname(path), mode=DB_DIR_MODE, exist_ok=True)
    kwargs = dict(subdir=False, map_size=MAP_SIZE, max_readers=MAX_READERS,
                  max_dbs=0, lock=True, metasync=False, sync=True, readahead=False)
    try:
        env = lmdb.open(path, **kwargs)
    except _DAMAGED:
        # a damaged or foreign file: hints can always be thrown away
        for p in (path, path + "-lock"):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
        env = lmdb.open(path, **kwargs)
    for p in (path, path + "-lock"):
        give_to_dir_owner(p)      # created by root: db/ belongs to exim_user
    st = os.stat(path)
    return env, (st.st_dev, st.st_ino)


def get_env(path: str) -> lmdb.Environment:
    """This process's environment for ``path``, (re)opened after fork or deletion."""
    pid = os.getpid()
    entry = _ENVS.get(path)
    if entry is not None:
        epid, env, ident = entry
        if epid == pid:
            try:
                st = os.stat(path)
                if (st.st_dev, st.st_ino) == ident:
                    return env
            except FileNotFoundError:
                pass
        # deleted (to clear the hints), or inherited across fork.  Closing an inherited
        # environment only unmaps the child's copy (fcntl locks are not inherited, and
        # reader slots are released by pid), and py-lmdb refuses a second open of the
        # same files while the old object is open.
        env.close()
        del _ENVS[path]
    env, ident = _open_env(path)
    _ENVS[path] = (pid, env, ident)
    return env


def close_env(path: str) -> None:
    """Close this process's environment for ``path`` (reopened on next use)."""
    entry = _ENVS.pop(path, None)
    if entry is not None:
        entry[1].close()         # also right for an inherited one (see get_env)


def close_all() -> None:
    """Close every hints environment this process opened."""
    for path in list(_ENVS):
        close_env(path)


class HintsDB:
    """Key/value access to one hints database (keys are str, values bytes)."""

    def __init__(self, spool_dir: str, name: str):
        self.spool_dir = spool_dir
        self.name = name
        self.path = os.path.join(spool_dir, "db", name)

    def env(self) -> lmdb.Environment:
        """The environment for this process, (re)opened as needed."""
        return get_env(self.path)

    # ------------------------------------------------------------------ operations
    def get(self, key: str) -> bytes | None:
        """The value stored for ``key`` or None."""
        with self.env().begin(buffers=False) as txn:
            return txn.get(key.encode("utf-8", "surrogateescape"))

    def put(self, key: str, value: bytes) -> None:
        """Store ``value`` under ``key`` (one short write transaction)."""
        with self.env().begin(write=True) as txn:
            txn.put(key.encode("utf-8", "surrogateescape"), bytes(value))

    def delete(self, key: str) -> bool:
        """Remove ``key``; True if it was present."""
        with self.env().begin(write=True) as txn:
            return txn.delete(key.encode("utf-8", "surrogateescape"))

    def items(self) -> list[tuple[str, bytes]]:
        """All (key, value) pairs in key order (a snapshot)."""
        with self.env().begin() as txn:
            return [(k.decode("utf-8", "surrogateescape"), bytes(v))
                    for k, v in txn.cursor()]

    def keys(self) -> Iterator[str]:
        for k, _ in self.items():
            yield k

    def clear(self) -> None:
        """Remove every record."""
        env = self.env()
        with env.begin(write=True) as txn:
            txn.drop(env.open_db(txn=txn), delete=False)

    def close(self) -> None:
        """Close the process's environment for this database (reopened on next use)."""
        close_env(self.path)

    def __enter__(self) -> "HintsDB":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
