"""Queue listing (-bp, -bpc, mailq) and the admin tools -Mrm, -Mvh, -Mvb, -Mvl."""
from __future__ import annotations

import os
import time
from typing import Any, Iterable

from pymta.spool import files
from pymta.spool.ids import id_time, id_time_usec, is_message_id


def list_queue(spool_dir: str, queue: str = "") -> list[str]:
    """Ids of messages with a -H file, oldest arrival first (id order = arrival order);
    ``queue`` names a named queue (its messages are recorded as being there)."""
    names: list[str] = []
    for directory in files.input_dirs(files.queue_dir(spool_dir, queue)):
        try:
            names += os.listdir(directory)
        except FileNotFoundError:
            continue
    ids = list({n[:-2] for n in names if n.endswith("-H") and is_message_id(n[:-2])})
    for msgid in ids:
        files.set_message_queue(spool_dir, msgid, queue)
    ids.sort(key=lambda i: (id_time(i), id_time_usec(i), i))
    return ids


def existing_ids(spool_dir: str, ids: Iterable[str] | None = None,
                 queue: str = "") -> list[str]:
    """-bpi: the ids of the messages on the queue (or those of ``ids`` that are)."""
    if ids is None:
        return list_queue(spool_dir, queue)
    return [i for i in ids if is_message_id(i)
            and os.path.exists(files.header_path(spool_dir, i))]


def count_queue(spool_dir: str, queue: str = "") -> int:
    """Number of messages on the queue (-bpc)."""
    return len(list_queue(spool_dir, queue))


def format_age(seconds: int) -> str:
    """Exim's -bp age: minutes up to 90, then rounded hours up to 72, then rounded days."""
    seconds = max(seconds, 0)
    minutes = seconds // 60
    if minutes <= 90:
        return f"{minutes:2d}m"
    hours = (minutes + 30) // 60
    if hours <= 72:
        return f"{hours:2d}h"
    return f"{(hours + 12) // 24:2d}d"


def format_size(size: int) -> str:
    """Exim's five-column size: bytes, then K and M with one decimal below ten."""
    if size < 1024:
        return f"{size:5d}"
    if size < 10 * 1024:
        return f"{size / 1024:4.1f}K"
    if size < 1024 * 1024:
        return f"{(size + 512) // 1024:4d}K"
    if size < 10 * 1024 * 1024:
        return f"{size / (1024 * 1024):4.1f}M"
    return f"{(size + 512 * 1024) // (1024 * 1024):4d}M"


def format_bp(spool_dir: str, ids: Iterable[str] | None = None,
              now: float | None = None, queue: str = "", generated: bool = False) -> str:
    """The text ``exim -bp`` prints for the given messages (default: the whole queue);
    ``generated`` (-bpa) adds the delivered addresses that routing generated from the
    recipients (aliases, forwards), marked ``+D`` and sorted, as Exim does.

    Messages whose -H vanished meanwhile are skipped; unreadable ones are shown with
    Exim's "*** spool read error" marker.
    """
    now = time.time() if now is None else now
    out: list[str] = []
    for msgid in (list_queue(spool_dir, queue) if ids is None else list(ids)):
        try:
            msg = files.read_header(spool_dir, msgid)
            size = msg.message_size(files.body_size(spool_dir, msgid))
        except FileNotFoundError:
            continue
        except (files.SpoolFormatError, OSError):
            age = format_age(int(now) - id_time(msgid))
            out.append(f"{age}       {msgid} *** spool read error ***\n\n")
            continue
        line = (f"{format_age(int(now) - msg.received_time)} {format_size(size)} "
                f"{msgid} <{msg.sender}>")
        if msg.frozen_at is not None:
            line += " *** frozen ***"
        out.append(line + "\n")
        done = set(msg.nonrecipients) | set(files.read_journal(spool_dir, msgid))
        for r in msg.recipients:
            out.append(f"        {'D' if r.address in done else ' '} {r.address}\n")
        if generated:
            originals = {r.address for r in msg.recipients}
            out += [f"       +D {a}\n" for a in sorted(done - originals)]
        out.append("\n")
    return "".join(out)


def remove_messages(spool_dir: str, ids: Iterable[str], log: Any, user: str) -> str:
    """-Mrm: remove messages, logging "removed by USER" and "Completed" for each.

    Returns the text Exim prints.  A message being delivered (locked) is not removed;
    Exim exits 1 when any message was locked or missing (the output then contains
    "is locked" or "did not exist").
    """
    from pymta.spool.lock import lock_message
    out = []
    for msgid in ids:
        if not os.path.exists(files.header_path(spool_dir, msgid)):
            # Exim's wording when there is nothing (or only debris) to remove
            out.append(f"Spool data file for {msgid} does not exist\n"
                       "Continuing, to ensure all files removed\n"
                       f"Spool read error for {msgid}-H: No such file or directory\n"
                       "Continuing to ensure all files removed\n")
            files.remove_message(spool_dir, msgid)
            out.append(f"Message {msgid} has been removed or did not exist\n")
            continue
        lock = lock_message(spool_dir, msgid)
        if lock is None:
            out.append(f"Message {msgid} is locked\n")
            continue
        with lock:
            if log is not None:
                log.main(f"removed by {user}", msgid)
                log.main("Completed", msgid)
            files.remove_message(spool_dir, msgid)
        out.append(f"Message {msgid} has been removed\n")
    return "".join(out)


def _read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def view_header(spool_dir: str, msgid: str) -> bytes:
    """-Mvh: the -H file as it is (Exim prints it whole, id line included)."""
    return _read_file(files.header_path(spool_dir, msgid))


def view_body(spool_dir: str, msgid: str) -> bytes:
    """-Mvb: the -D file as it is (Exim prints it whole, id line included)."""
    return _read_file(files.data_path(spool_dir, msgid))


def view_log(spool_dir: str, msgid: str) -> bytes:
    """-Mvl: the per-message log."""
    return _read_file(files.msglog_path(spool_dir, msgid))
