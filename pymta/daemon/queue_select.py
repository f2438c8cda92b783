"""Selective queue runs: ``-R`` (a recipient matches) and ``-S`` (the sender matches).

A message is selected when one of its undelivered recipients (``-R``) or its sender
(``-S``) contains the given string, compared without regard to case; with an ``r`` flag
the string is a regular expression.  When both are given, both must match.  The first
selected message is delivered as if forced; ``f`` forces every selected message and
``ff`` also includes frozen ones (see :func:`run_selected`).
"""
from __future__ import annotations

import re
from typing import Any, Callable

from pymta.daemon.queuerunner import run_queue
from pymta.daemon.util import spool_directory
from pymta.spool import files

Selection = tuple[str, str]   # (flags: "", f, ff, r, rf, rff; string)


def _matcher(selection: Selection) -> Callable[[str], bool]:
    flags, text = selection
    if "r" in flags:
        pattern = re.compile(text, re.IGNORECASE)
        return lambda value: pattern.search(value) is not None
    needle = text.lower()
    return lambda value: needle in value.lower()


def message_filter(config: Any, recipient: Selection | None,
                   sender: Selection | None) -> Callable[[str], bool]:
    """A predicate on message ids for the given -R / -S selections."""
    spool = spool_directory(config)
    rmatch = _matcher(recipient) if recipient else None
    smatch = _matcher(sender) if sender else None

    def selected(msgid: str) -> bool:
        try:
            msg = files.read_header(spool, msgid)
        except Exception:
            return False            # gone or unreadable: the queue run skips it too
        if smatch is not None and not smatch(msg.sender):
            return False
        if rmatch is not None:
            pending = [r.address for r in msg.recipients if r.address not in msg.nonrecipients]
            return any(rmatch(address) for address in pending)
        return True

    return selected


def run_selected(config: Any, log: Any, recipient: Selection | None,
                 sender: Selection | None, *, queue_flags: str = "",
                 deliver: Callable[..., Any] | None = None, queue: str = "") -> int:
    """One queue run over the selected messages of ``queue`` (named, or "" for the
    default queue); returns how many were tried."""
    flags = "".join(sel[0] for sel in (recipient, sender) if sel)
    force_frozen = queue_flags == "ff" or "ff" in flags
    force = force_frozen or queue_flags == "f" or "f" in flags
    return run_queue(config, log, force=force, force_frozen=force_frozen, deliver=deliver,
                     select=message_filter(config, recipient, sender), force_first=True,
                     queue=queue)
