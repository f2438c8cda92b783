"""Header lines added by ACLs (spec 44.24): syntax check and placement.

An added line may start with ``:at_start:``, ``:at_start_rfc:``, ``:after_received:``
or ``:at_end:`` (the default); the prefix travels with the text until the line is put
into the message (:func:`place_added_header`).  A line that is not a header line gets
``X-ACL-Warn: `` in front, as in Exim.
"""
from __future__ import annotations

import re
from typing import Callable, Sequence, TypeVar

PLACEMENTS = ("at_start", "at_start_rfc", "after_received", "at_end")
_PREFIX = re.compile(r"^:(at_start|at_start_rfc|after_received|at_end):")
_HEADER = re.compile(r"^[!-9;-~]+:")

H = TypeVar("H")


def split_placement(text: str) -> tuple[str, str]:
    """(placement, header text) of an added line."""
    m = _PREFIX.match(text)
    if m is None:
        return "at_end", text
    return m.group(1), text[m.end():]


def checked_added_header(line: str) -> str:
    """The line as it will be added: its placement prefix kept, ``X-ACL-Warn:`` in
    front of text that is not a header line."""
    placement, text = split_placement(line)
    if not _HEADER.match(text):
        text = f"X-ACL-Warn: {text}"
    return text if placement == "at_end" and not line.startswith(":at_end:") \
        else f":{placement}:{text}"


def insert_position(headers: Sequence[H], placement: str,
                    name_of: Callable[[H], str]) -> int:
    """Where a line with ``placement`` goes among ``headers``."""
    names = [name_of(h).lower() for h in headers]
    if placement == "at_start":
        return 0
    if placement == "after_received":
        if "received" not in names:
            return 0
        i = names.index("received")
        while i < len(names) and names[i] == "received":
            i += 1
        return i
    if placement == "at_start_rfc":
        for i, name in enumerate(names):
            if name != "received" and not name.startswith("resent-"):
                return i
    return len(headers)
