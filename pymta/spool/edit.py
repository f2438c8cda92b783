"""Administrative edits of a queued message: -Mar (add recipients), -Mmd (mark recipients
delivered), -Mmad (mark them all delivered) and -Mes (change the sender).

Each edit locks the message (a message being delivered is not touched), rewrites its -H
file, logs one main-log line per change as Exim does ("recipient <x> added by root",
"address <x> marked delivered by root", "sender address changed to <x> by root") and
returns the text Exim prints with the exit status.  Nothing is changed when an argument is
wrong: the whole command is refused with Exim's message.
"""
from __future__ import annotations

import os
from typing import Any, Callable

from pymta.expand.operators import parse_address
from pymta.spool import files
from pymta.spool.lock import lock_message
from pymta.spool.model import SpoolMessage, SpoolRecipient


class EditRefused(Exception):
    """The edit cannot be made; the message says why (Exim's wording)."""


def _checked_address(text: str) -> str:
    """An address as an administrator typed it: fully qualified, well formed."""
    addr = parse_address(text)
    if not addr:
        raise EditRefused(f'bad address {text}: missing or malformed local part '
                          '(expected word or "<")')
    if "@" not in addr:
        raise EditRefused(f"bad address {text}: domain missing")
    return addr


def _edit(spool_dir: str, msgid: str, what: str,
          change: Callable[[SpoolMessage], list[str]], log: Any) -> tuple[str, int]:
    """Lock ``msgid``, let ``change`` edit it (returning the log lines), write it back."""
    if not os.path.exists(files.header_path(spool_dir, msgid)):
        return f"pymta: message {msgid} is not on the queue\n", 1
    lock = lock_message(spool_dir, msgid)
    if lock is None:
        return (f"Message {msgid} is locked (another process is handling this "
                "message)\n", 1)
    with lock:
        msg = files.read_header(spool_dir, msgid)
        try:
            lines = change(msg)
        except EditRefused as e:
            return f"Message {msgid} - error while {what}:\n  {e}: message not updated\n", 1
        files.rewrite_header(spool_dir, msg)
        for line in lines:
            log.main(line, msgid)
    return f"Message {msgid} has been modified\n", 0


def add_recipients(spool_dir: str, msgid: str, addresses: list[str], user: str,
                   log: Any) -> tuple[str, int]:
    """-Mar: append recipients (delivered at the next attempt)."""
    def change(msg: SpoolMessage) -> list[str]:
        checked = [_checked_address(a) for a in addresses]
        msg.recipients.extend(SpoolRecipient(a) for a in checked)
        return [f"recipient <{a}> added by {user}" for a in checked]
    text, rc = _edit(spool_dir, msgid, "adding recipient", change, log)
    return text.replace(": message not updated\n", "\n"), rc


def mark_delivered(spool_dir: str, msgid: str, addresses: list[str] | None, user: str,
                   log: Any) -> tuple[str, int]:
    """-Mmd (the given recipients) or -Mmad (``addresses`` None: every recipient): the
    addresses go on the non-recipients list and are never delivered."""
    def change(msg: SpoolMessage) -> list[str]:
        known = [r.address for r in msg.recipients]
        chosen = known if addresses is None else addresses
        for a in chosen:
            if a not in known:
                raise EditRefused(f"{a} is not a recipient")
        msg.nonrecipients.update(chosen)
        return [f"address <{a}> marked delivered by {user}" for a in chosen]
    return _edit(spool_dir, msgid, "marking as delivered", change, log)


def edit_sender(spool_dir: str, msgid: str, address: str, user: str,
                log: Any) -> tuple[str, int]:
    """-Mes: replace the envelope sender ("<>" for the null sender)."""
    def change(msg: SpoolMessage) -> list[str]:
        new = "" if address.strip() in ("<>", "") else _checked_address(address)
        msg.sender = new
        return [f"sender address changed to <{new}> by {user}"]
    return _edit(spool_dir, msgid, "editing sender", change, log)


def move_to_queue(spool_dir: str, msgid: str, source: str, target: str, log: Any) -> str:
    """-MG: move a message's files from queue ``source`` to queue ``target`` ("" is the
    default queue) under its lock; returns an error text, or "" when it was moved.
    The -H file goes last, so the message is never in both queues at once."""
    files.set_message_queue(spool_dir, msgid, source)
    if not os.path.exists(files.header_path(spool_dir, msgid)):
        return f"pymta: message {msgid} is not on the queue"
    lock = lock_message(spool_dir, msgid)
    if lock is None:
        return f"Message {msgid} is locked (another process is handling this message)"
    with lock:
        old = {kind: path(spool_dir, msgid) for kind, path in (
            ("D", files.data_path), ("J", files.journal_path), ("L", files.msglog_path),
            ("H", files.header_path))}
        files.set_message_queue(spool_dir, msgid, target)
        new = {kind: path(spool_dir, msgid) for kind, path in (
            ("D", files.data_path), ("J", files.journal_path), ("L", files.msglog_path),
            ("H", files.header_path))}
        for kind in ("D", "J", "L", "H"):
            if not os.path.exists(old[kind]):
                continue
            os.makedirs(os.path.dirname(new[kind]), mode=files.SPOOL_DIR_MODE,
                        exist_ok=True)
            os.rename(old[kind], new[kind])
        files.fsync_dirs(new["H"], old["H"])
    log.main(f"moved from {_queue_shown(source)}input, msglog to "
             f"{_queue_shown(target)}input, msglog", msgid)
    return ""


def _queue_shown(queue: str) -> str:
    return f"({queue}) " if queue else ""
