"""Spool debris and damaged messages: what killed processes or bad files leave behind.

A message exists while its ``input/ID-H`` file exists.  A process killed at the wrong
moment can leave files that no message owns:

* ``ID-D`` without ``ID-H``: a reception that never finished (the sender never got 250),
  or a removal cut short.  It is moved to ``corrupt/`` (with any -J and msglog), so no
  data is ever deleted;
* ``hdr.ID.PID``: the temporary name under which -H is written; removed;
* ``ID-J`` without ``ID-H`` and ``ID-D``: the journal of a message that is gone; removed;
* ``msglog/ID`` without ``ID-H`` and ``ID-D``: the log of a message that is gone; removed.

Only files older than :data:`ORPHAN_AGE` are touched, so a message being received or
a delivery finishing right now is never disturbed, and a -D file somebody holds locked
is left alone.

A -H file that cannot be parsed is what Exim calls a spool format error.  Exim logs
"Format error in spool file ID-H" on every attempt and deletes the message after
``keep_malformed``; pymta instead moves all of the message's files to ``corrupt/`` at
once, so nothing is lost and nothing is retried forever.  -H files appear by an atomic
rename, so a format error is never a file still being written and needs no age check.

Every action is written to the paniclog (and the mainlog): it means something went
wrong that an operator should know about.  Queue runs and the daemon's start call
:func:`tidy_spool`; deliveries and queue runs that meet a bad -H call
:func:`set_aside_corrupt`.
"""
from __future__ import annotations

import os
import tempfile
import time
from typing import Any

from pymta.osutil import fsync_dir
from pymta.spool import files
from pymta.spool.ids import is_message_id
from pymta.spool.lock import MessageLock, lock_message

#: Seconds a file must be unchanged before it counts as left behind.  Receiving writes
#: -D and renames -H into place within moments; an hour leaves a wide margin.
ORPHAN_AGE = 3600

CORRUPT_DIR = "corrupt"


def corrupt_dir(spool_dir: str) -> str:
    """Where damaged and orphaned message files are put: ``spool/corrupt/``."""
    return os.path.join(spool_dir, CORRUPT_DIR)


def _move_aside(spool_dir: str, msgid: str) -> list[str]:
    """Move the message's -H, -D, -J and msglog into corrupt/ (msglog as ID-msglog)."""
    target = corrupt_dir(spool_dir)
    os.makedirs(target, mode=files.SPOOL_DIR_MODE, exist_ok=True)
    moved = []
    for src, name in ((files.header_path(spool_dir, msgid), f"{msgid}-H"),
                      (files.data_path(spool_dir, msgid), f"{msgid}-D"),
                      (files.journal_path(spool_dir, msgid), f"{msgid}-J"),
                      (files.msglog_path(spool_dir, msgid), f"{msgid}-msglog")):
        try:
            os.rename(src, os.path.join(target, name))
        except FileNotFoundError:
            continue
        moved.append(name)
    fsync_dir(files.input_dir(spool_dir))
    return moved


def set_aside_corrupt(spool_dir: str, msgid: str, error: Exception | str, log: Any,
                      held: MessageLock | None = None) -> bool:
    """Move a message whose -H file cannot be read to corrupt/ and say so in the paniclog.

    ``held`` is the message lock when the caller has it; otherwise it is taken here, and
    nothing is done while another process holds it.  The -H file is read once more under
    the lock, in case it was replaced meanwhile.  Returns True when the files were moved.
    """
    lock = held if held is not None else lock_message(spool_dir, msgid)
    if lock is None and os.path.exists(files.data_path(spool_dir, msgid)):
        return False                       # somebody is working on it
    try:
        if held is None:
            try:
                files.read_header(spool_dir, msgid)
                return False               # readable now: it was replaced meanwhile
            except files.SpoolFormatError as again:
                error = again
            except FileNotFoundError:
                return False
        try:
            size = os.stat(files.header_path(spool_dir, msgid)).st_size
            if _foreign(spool_dir, msgid):
                _report_foreign(spool_dir, msgid, error, log)
                return False
            _move_aside(spool_dir, msgid)
        except FileNotFoundError:
            return False
        except OSError as exc:
            log.panic(f"Format error in spool file {msgid}-H; moving it aside failed: {exc}",
                      msgid)
            return False
    finally:
        if held is None and lock is not None:
            lock.release()
    detail = str(error).removeprefix(f"{msgid}-H: ")
    log.panic(f"Format error in spool file {msgid}-H: size={size} ({detail}); "
              f"message files moved to {corrupt_dir(spool_dir)}", msgid)
    return True


def _foreign(spool_dir: str, msgid: str) -> bool:
    """A -H file with Exim's own start (the id line, then "login uid gid") that pymta
    still cannot read: most likely written by another MTA version with something pymta
    does not know.  It is left where it is, for that MTA (or an admin) to deal with."""
    try:
        with open(files.header_path(spool_dir, msgid), "rb") as f:
            data = f.read()
    except OSError:
        return False
    lines = data.split(b"\n", 2)
    parts = lines[1].split() if len(lines) > 1 else []
    # a file cut short (a crash, a full disk) does not end with a newline: corrupt
    return data.endswith(b"\n") and lines[0] == f"{msgid}-H".encode() and \
        len(parts) == 3 and parts[1].lstrip(b"-").isdigit() and \
        parts[2].lstrip(b"-").isdigit()


def _report_foreign(spool_dir: str, msgid: str, error: Exception | str, log: Any) -> None:
    """Report an unreadable Exim-format -H once per version of the file (the misc hints
    database remembers which one was reported)."""
    from pymta.hints.db import HintsDB
    try:
        st = os.stat(files.header_path(spool_dir, msgid))
    except OSError:
        return
    stamp = f"{st.st_mtime_ns}:{st.st_size}".encode()
    db = HintsDB(spool_dir, "misc", log)
    key = f"unreadable-{msgid}"
    if db.get(key) == stamp:
        return
    db.put(key, stamp)
    detail = str(error).removeprefix(f"{msgid}-H: ")
    log.panic(f"spool file {msgid}-H cannot be read by pymta ({detail}); left untouched "
              "for the MTA that wrote it", msgid)


def _age(path: str, now: float) -> float | None:
    try:
        return now - os.stat(path).st_mtime
    except FileNotFoundError:
        return None


def _old(path: str, now: float) -> bool:
    age = _age(path, now)
    return age is not None and age >= ORPHAN_AGE


def _remove(path: str, what: str, log: Any, msgid: str | None) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    log.panic(f"removed {what} {path} (left by a process that did not finish)", msgid)


def _orphan_data(spool_dir: str, msgid: str, log: Any) -> None:
    """A -D without -H: move it aside under its lock, unless -H has appeared."""
    lock = lock_message(spool_dir, msgid)
    if lock is None:
        return                             # locked (in use) or already gone
    with lock:
        if os.path.exists(files.header_path(spool_dir, msgid)):
            return
        moved = _move_aside(spool_dir, msgid)
    if moved:
        log.panic(f"spool file {msgid}-D has no -H file (left by a process that did not "
                  f"finish): {', '.join(moved)} moved to {corrupt_dir(spool_dir)}", msgid)


def filesystem_now(directory: str) -> float:
    """The time as the filesystem holding ``directory`` stamps files now: ages of spool
    files are measured on that clock (a network filesystem's, or the local one when the
    process's own clock was moved), falling back to the process clock when no file can
    be created there (a full disk)."""
    try:
        fd, path = tempfile.mkstemp(prefix=".clock-", dir=directory)
    except OSError:
        return time.time()
    try:
        return os.fstat(fd).st_mtime
    finally:
        os.close(fd)
        os.unlink(path)


def tidy_spool(spool_dir: str, log: Any, now: float | None = None) -> None:
    """Deal with files older than :data:`ORPHAN_AGE` that no message owns (see the
    module docstring).  Errors on single files are logged and do not stop the scan."""
    if now is None:
        now = filesystem_now(files.input_dir(spool_dir)) \
            if os.path.isdir(files.input_dir(spool_dir)) else time.time()
    if not os.path.isdir(files.input_dir(spool_dir)):
        return
    headers: set[str] = set()
    data: set[str] = set()
    journals: set[str] = set()
    for directory in files.input_dirs(spool_dir):       # split_spool_directory too
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            continue
        for name in names:
            msgid, suffix = name[:-2], name[-2:]
            if is_message_id(msgid) and suffix in ("-H", "-D", "-J"):
                {"-H": headers, "-D": data, "-J": journals}[suffix].add(msgid)
            elif name.startswith("hdr.") and is_message_id(name[4:].split(".", 1)[0]):
                path = os.path.join(directory, name)
                if _old(path, now):
                    _safely(_remove, log, path, "temporary header file", log, None)
    for msgid in sorted(data - headers):
        if _old(files.data_path(spool_dir, msgid), now):
            _safely(_orphan_data, log, spool_dir, msgid, log)
    for msgid in sorted(journals - headers - data):
        path = files.journal_path(spool_dir, msgid)
        if _old(path, now):
            _safely(_remove, log, path, "journal file of a message that is gone", log, msgid)
    logs: list[str] = []
    top = os.path.join(spool_dir, "msglog")
    for directory in [top] + [os.path.join(top, n) for n in _subdirs(top)]:
        try:
            logs += os.listdir(directory)
        except FileNotFoundError:
            continue
    for msgid in sorted(n for n in set(logs) if is_message_id(n)):
        path = files.msglog_path(spool_dir, msgid)
        if msgid not in headers and msgid not in data and _old(path, now) and not \
                os.path.exists(files.header_path(spool_dir, msgid)):
            _safely(_remove, log, path, "message log of a message that is gone", log, msgid)


def _subdirs(top: str) -> list[str]:
    try:
        return [n for n in os.listdir(top) if len(n) == 1 and os.path.isdir(
            os.path.join(top, n))]
    except OSError:
        return []


def _safely(fn: Any, log: Any, *args: Any) -> None:
    try:
        fn(*args)
    except OSError as exc:
        log.panic(f"spool tidying failed: {exc}")
