"""Hints databases: one LMDB file per database at ``spool_dir/db/<name>``.

LMDB gives safe concurrent access from many processes.  An LMDB environment must not be
used in a process other than the one that opened it, so the environment is opened
lazily, shared by all HintsDB objects of the process, and reopened when the pid changes
(after fork).

Hints are only hints, so nothing about them may stop or crash mail handling:

- a deleted file is recreated empty on the next open;
- a damaged one (corrupt, truncated, from an incompatible version) is removed and
  recreated, with a paniclog line.  Truncation is checked against the meta page before
  LMDB maps the file, as reading a page past the end of a mapped file is a SIGBUS;
- on a full filesystem the lock file, which LMDB maps and writes through memory, is
  allocated (not left sparse) before LMDB opens it, so a full disk is an error
  (ENOSPC) rather than a SIGBUS.  The data file is written with write(), not through
  the map (no ``writemap``), for the same reason;
- any other LMDB or system error (disk full, map full...) makes the hints unavailable
  for that operation: reads find nothing, writes are dropped, and a paniclog line says
  so (once per HintsDB object).
"""
from __future__ import annotations

import os
import struct
import threading
from typing import Any, Callable, Iterator, TypeVar

import lmdb

from pymta.osutil import give_to_dir_owner

MAP_SIZE = 1 << 30            # address space only: the file grows by write()
MAX_READERS = 1024
DB_DIR_MODE = 0o750
DB_FILE_MODE = 0o640
# LMDB's lock file: a header plus one 64-byte slot per reader; a little more is harmless
LOCK_FILE_SIZE = MAX_READERS * 64 + 4096

# LMDB's meta pages (pages 0 and 1): magic, format version, page size (kept in the
# free-list DB record), last used page and transaction id.  Files in another layout are
# left to LMDB itself to judge.
_META_MAGIC = 0xBEEFC0DE
_META = struct.Struct("<II")            # magic, version at offset 16
_META_PSIZE = struct.Struct("<I")       # at offset 40
_META_LAST = struct.Struct("<QQ")       # last_pg, txnid at offset 136

T = TypeVar("T")

_DAMAGED = tuple(getattr(lmdb, n) for n in ("InvalidError", "CorruptedError",
                                           "VersionMismatchError", "PageNotFoundError",
                                           "BadRslotError", "BadChecksumError",
                                           "IncompatibleError") if hasattr(lmdb, n))

# LMDB forbids opening one environment twice in a process, so all HintsDB objects of a
# process share one environment per file: path -> (pid, env, (st_dev, st_ino, st_size))
_ENVS: dict[str, tuple[int, lmdb.Environment, tuple[int, int, int]]] = {}


class HintsDamaged(Exception):
    """A hints file was damaged and has been removed (it is recreated on next use)."""


def data_file_damage(path: str) -> str | None:
    """Why the LMDB data file at ``path`` cannot be used safely, or None.

    Only truncation is judged here (LMDB would map the missing pages and die of
    SIGBUS reading them); bad magic and the like are left to lmdb.open.
    """
    # The meta pages are read before the size is taken: a writer in another process
    # writes its data pages before the meta page that counts them, so a size taken
    # after the metas is short of them only if the file really is truncated (taken
    # before, it could miss a commit whose meta was then read).
    try:
        with open(path, "rb") as f:
            head = f.read(152)
            if len(head) < 152 or _META.unpack_from(head, 16) != (_META_MAGIC, 1):
                return None
            (psize,) = _META_PSIZE.unpack_from(head, 40)
            if psize < 152 or psize > 65536 or psize & (psize - 1):
                return None
            metas = [os.pread(f.fileno(), 152, 0), os.pread(f.fileno(), 152, psize)]
            size = os.fstat(f.fileno()).st_size
    except FileNotFoundError:
        return None
    if size < 2 * psize:
        return f"truncated to {size} bytes"
    best = max((m for m in metas if len(m) == 152
                and _META.unpack_from(m, 16) == (_META_MAGIC, 1)),
               key=lambda m: _META_LAST.unpack_from(m, 136)[1], default=None)
    if best is None:
        return None
    last_pg, _txnid = _META_LAST.unpack_from(best, 136)
    need = (last_pg + 1) * psize
    if size < need:
        return f"truncated to {size} bytes (needs {need})"
    return None


def is_lmdb_file(path: str) -> bool:
    """True if ``path`` is an LMDB data file (or empty, which LMDB initialises), so
    opening it will not throw away a file of some other kind (an Exim Berkeley DB
    hints file, say)."""
    with open(path, "rb") as f:
        head = f.read(24)
    return not head or (len(head) == 24 and _META.unpack_from(head, 16)[0] == _META_MAGIC)


def _remove_files(path: str) -> None:
    for p in (path, path + "-lock"):
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass


def _allocate_lock_file(path: str) -> None:
    """Create LMDB's lock file with real blocks (LMDB writes it through a shared map;
    an unbacked page of it on a full filesystem would be a SIGBUS)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, DB_FILE_MODE)
    try:
        os.posix_fallocate(fd, 0, LOCK_FILE_SIZE)
    finally:
        os.close(fd)


def _open_env(path: str) -> tuple[lmdb.Environment, tuple[int, int, int]]:
    """Open (creating) the environment; HintsDamaged if a damaged file was removed,
    lmdb.Error / OSError if it cannot be opened now (e.g. the disk is full)."""
    os.makedirs(os.path.dirname(path), mode=DB_DIR_MODE, exist_ok=True)
    damage = data_file_damage(path)
    if damage is not None:
        _remove_files(path)
        raise HintsDamaged(damage)
    _allocate_lock_file(path + "-lock")
    try:
        env = lmdb.open(path, subdir=False, map_size=MAP_SIZE, max_readers=MAX_READERS,
                        max_dbs=0, lock=True, metasync=False, sync=True, readahead=False,
                        writemap=False, mode=DB_FILE_MODE)
    except _DAMAGED as exc:
        # a damaged or foreign file: hints can always be thrown away
        _remove_files(path)
        raise HintsDamaged(str(exc)) from None
    for p in (path, path + "-lock"):
        give_to_dir_owner(p)      # created by root: db/ belongs to exim_user
    st = os.stat(path)
    return env, (st.st_dev, st.st_ino, st.st_size)


#: Session threads of one receiver (smtp_receiver_threads) share the environments:
#: one of them opens (or reopens) an environment while the others wait.
_ENVS_LOCK = threading.RLock()


def get_env(path: str) -> lmdb.Environment:
    """This process's environment for ``path``, (re)opened after fork, deletion or
    truncation (an LMDB file never shrinks; a shorter one is checked again)."""
    with _ENVS_LOCK:
        return _get_env(path)


def _get_env(path: str) -> lmdb.Environment:
    pid = os.getpid()
    entry = _ENVS.get(path)
    if entry is not None:
        epid, env, ident = entry
        if epid == pid:
            try:
                st = os.stat(path)
                if (st.st_dev, st.st_ino) == ident[:2] and st.st_size >= ident[2]:
                    _ENVS[path] = (pid, env, (st.st_dev, st.st_ino, st.st_size))
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
    with _ENVS_LOCK:
        entry = _ENVS.pop(path, None)
    if entry is not None:
        entry[1].close()         # also right for an inherited one (see get_env)


class HintsDB:
    """Key/value access to one hints database (keys are str, values bytes).

    ``log`` (a Logger) receives the paniclog lines about damaged or unavailable hints.
    """

    def __init__(self, spool_dir: str, name: str, log: Any = None):
        self.spool_dir = spool_dir
        self.name = name
        self.path = os.path.join(spool_dir, "db", name)
        self.log = log
        self._reported = False

    def env(self) -> lmdb.Environment:
        """The environment for this process, (re)opened as needed."""
        return get_env(self.path)

    def _run(self, op: Callable[[lmdb.Environment], T], default: T) -> T:
        """Run ``op`` on the environment; damage or errors give ``default``."""
        try:
            try:
                return op(self.env())
            except HintsDamaged as exc:
                self._panic(f"hints database {self.path} was damaged ({exc}) and has been "
                            "recreated")
                return op(self.env())
            except _DAMAGED as exc:   # found while reading: throw the file away
                close_env(self.path)
                _remove_files(self.path)
                self._panic(f"hints database {self.path} was damaged ({exc}) and has been "
                            "removed")
                return default
        except (lmdb.Error, OSError, HintsDamaged) as exc:
            if not self._reported:
                self._reported = True
                self._panic(f"hints database {self.path} unavailable: {exc}")
            return default

    def transaction(self, op: Callable[[lmdb.Environment], T], default: T) -> T:
        """Run ``op(env)`` (which makes its own transaction); ``default`` when the
        database cannot be used (damage is reported and the file recreated)."""
        return self._run(op, default)

    def _panic(self, text: str) -> None:
        if self.log is not None:
            self.log.panic(text)

    # ------------------------------------------------------------------ operations
    def get(self, key: str) -> bytes | None:
        """The value stored for ``key`` or None."""
        def op(env: lmdb.Environment) -> bytes | None:
            with env.begin(buffers=False) as txn:
                return txn.get(key.encode("utf-8", "surrogateescape"))
        return self._run(op, None)

    def put(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store ``value`` under ``key`` (one short write transaction).  ``ttl`` is
        for stores that expire records; LMDB files are tidied instead."""
        def op(env: lmdb.Environment) -> None:
            with env.begin(write=True) as txn:
                txn.put(key.encode("utf-8", "surrogateescape"), bytes(value))
        self._run(op, None)

    def delete(self, key: str) -> bool:
        """Remove ``key``; True if it was present."""
        def op(env: lmdb.Environment) -> bool:
            with env.begin(write=True) as txn:
                return bool(txn.delete(key.encode("utf-8", "surrogateescape")))
        return self._run(op, False)

    def update(self, key: str, change: Callable[[bytes | None], tuple[T, bytes | None]],
               default: T, ttl: float | None = None) -> T:
        """Read ``key``, call ``change(value)`` and store the value it returns (None:
        leave the record), in one write transaction, so that concurrent processes never
        lose each other's updates; ``default`` when the database cannot be used."""
        raw = key.encode("utf-8", "surrogateescape")

        def op(env: lmdb.Environment) -> T:
            with env.begin(write=True) as txn:
                data = txn.get(raw)
                result, new = change(None if data is None else bytes(data))
                if new is not None:
                    txn.put(raw, new)
                return result
        return self._run(op, default)

    def items(self) -> list[tuple[str, bytes]]:
        """All (key, value) pairs in key order (a snapshot)."""
        def op(env: lmdb.Environment) -> list[tuple[str, bytes]]:
            with env.begin() as txn:
                return [(k.decode("utf-8", "surrogateescape"), bytes(v))
                        for k, v in txn.cursor()]
        return self._run(op, [])

    def keys(self) -> Iterator[str]:
        for k, _ in self.items():
            yield k

    def clear(self) -> None:
        """Remove every record."""
        def op(env: lmdb.Environment) -> None:
            with env.begin(write=True) as txn:
                txn.drop(env.open_db(txn=txn), delete=False)
        self._run(op, None)

    def close(self) -> None:
        """Close the process's environment for this database (reopened on next use)."""
        close_env(self.path)

    def __enter__(self) -> "HintsDB":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
