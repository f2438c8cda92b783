"""What the hints databases of a spool hold, for the admin tools (pymta-dumpdb,
pymta-tidydb, pymta-fixdb, pymta-next).

The daemon's code reads and writes hints through the typed classes of the other
modules of this package; the admin tools need something else: to list every record of a
database whatever its kind, to know when each record was last written (Exim's
``time_stamp``, which exim_tidydb judges age by) and to delete or replace single
records.  Everything here goes through :class:`pymta.hints.db.HintsDB`, and an admin
tool never creates a database that does not exist yet.
"""
from __future__ import annotations

import json
import os
import sys

import lmdb

from pymta.hints import callout, misc, pipe_connect, wait
from pymta.hints.db import HintsDB, is_lmdb_file
from pymta.hints.ratelimit import RateRecord
from pymta.hints.retry import RetryRecord
from pymta.hints.seen import SeenDB

#: The databases exim_dumpdb knows (plus pymta's own ``mtasts``); ``wait-<transport>``
#: stands for one database per transport.
DB_TYPES = ("retry", "misc", "wait", "callout", "ratelimit", "tls", "seen", "mtasts")


def db_type(name: str) -> str | None:
    """The kind of database called ``name`` (``wait`` for ``wait-<transport>``), or
    None for a name that is not a hints database."""
    if name.startswith("wait-") and len(name) > 5 and "/" not in name:
        return "wait"
    return name if name in DB_TYPES and name != "wait" else None


def db_path(spool_dir: str, name: str) -> str:
    """Where database ``name`` lives."""
    return os.path.join(spool_dir, "db", name)


def exists(spool_dir: str, name: str) -> bool:
    """True if the database has been created."""
    return os.path.isfile(db_path(spool_dir, name))


def open_problem(spool_dir: str, name: str) -> str | None:
    """Why database ``name`` cannot be opened for the admin tools (it does not exist,
    or it is not an LMDB file -- which opening would replace), or None."""
    path = db_path(spool_dir, name)
    try:
        if not os.path.isfile(path):
            return "No such file or directory"
        if not is_lmdb_file(path):
            return "not an LMDB file (not a pymta hints database)"
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def database_names(spool_dir: str) -> list[str]:
    """The hints databases present in ``spool_dir/db`` (sorted)."""
    try:
        names = os.listdir(os.path.join(spool_dir, "db"))
    except FileNotFoundError:
        return []
    return sorted(n for n in names if db_type(n) is not None and exists(spool_dir, n))


class _StderrLog:
    """Where an admin tool's HintsDB reports damaged or unusable hints: the terminal
    (the daemon's HintsDB writes the paniclog)."""

    def panic(self, text: str, *_args: object) -> None:
        sys.stderr.write(f"** {text}\n")


def open_db(spool_dir: str, name: str) -> HintsDB:
    """The database ``name`` (its file is opened on first use); problems with it are
    reported on standard error."""
    return HintsDB(spool_dir, name, log=_StderrLog())


def records(spool_dir: str, name: str) -> list[tuple[str, bytes]]:
    """Every (key, value) of database ``name``, in key order; [] when it does not
    exist (it is not created)."""
    if not exists(spool_dir, name):
        return []
    with open_db(spool_dir, name) as db:
        return db.items()


def get(spool_dir: str, name: str, key: str) -> bytes | None:
    """The value stored under ``key`` (None: no record, or no database)."""
    if not exists(spool_dir, name):
        return None
    with open_db(spool_dir, name) as db:
        return db.get(key)


def delete(spool_dir: str, name: str, key: str) -> bool:
    """Remove one record; True if it was there."""
    if not exists(spool_dir, name):
        return False
    with open_db(spool_dir, name) as db:
        return db.delete(key)


def put(spool_dir: str, name: str, key: str, value: bytes) -> None:
    """Store one record (used to rewrite a record the admin changed)."""
    with open_db(spool_dir, name) as db:
        db.put(key, value)


def replace_if_unchanged(spool_dir: str, name: str, key: str, old: bytes,
                         new: bytes | None) -> bool:
    """Store ``new`` under ``key`` (None: delete the record) if it still holds ``old``,
    in one write transaction; False when a process changed it meanwhile.  Tidying
    a database a daemon is using must not undo what the daemon just wrote."""
    if not exists(spool_dir, name):
        return False
    raw = key.encode("utf-8", "surrogateescape")

    def op(env: lmdb.Environment) -> bool:
        with env.begin(write=True) as txn:
            current = txn.get(raw)
            if current is None or bytes(current) != old:
                return False
            if new is None:
                txn.delete(raw)
            else:
                txn.put(raw, new)
            return True
    with open_db(spool_dir, name) as db:
        return db.transaction(op, False)


# ------------------------------------------------------------------ record times

def _misc_time(key: str, value: bytes) -> float | None:
    if key.startswith(pipe_connect.KEY_PREFIX):
        try:
            return float(json.loads(value)["time"])
        except (ValueError, KeyError, TypeError):
            return None
    if key.startswith("unreadable-"):
        # the spool file's "mtime_ns:size" when its unreadability was reported
        try:
            return int(value.split(b":", 1)[0]) / 1e9
        except ValueError:
            return None
    return misc.slot_time(value)


def record_time(name: str, key: str, value: bytes) -> float | None:
    """When the record was last written (Unix seconds), or None when that cannot be
    told (a damaged record, a TLS session)."""
    kind = db_type(name)
    if kind == "retry":
        rec = RetryRecord.decode(value)
        return None if rec is None else float(rec.last_try)
    if kind == "ratelimit":
        rate = RateRecord.decode(value)
        return None if rate is None else rate.time
    if kind == "seen":
        stamp = SeenDB.decode(value)
        return None if stamp is None else float(stamp)
    if kind == "callout":
        fields = callout.decode_record(value)
        written = None if fields is None else fields.get("time_stamp")
        return float(written) if isinstance(written, (int, float)) else None
    if kind == "wait":
        return wait.ids_time(wait.decode_ids(value))
    if kind == "misc":
        return _misc_time(key, value)
    if kind == "mtasts":
        try:
            return float(json.loads(value)["fetched"])
        except (ValueError, KeyError, TypeError):
            return None
    return None

