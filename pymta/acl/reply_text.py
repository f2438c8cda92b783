"""How Exim breaks a long ACL message into the lines of a multi-line SMTP reply.

An ACL's user message (``message =``, or the failure text of a recipient that did not
verify) longer than 75 characters is sent as several reply lines: each line of more
than 75 characters is broken at a space, where Exim 4.96 breaks it.  The log keeps the
message whole.
"""
from __future__ import annotations

#: longest reply line left alone, and how far back from there a break may be made
LINE_WIDTH = 75
_SHORTEST_PIECE = 35


def split_user_message(text: str) -> str:
    """``text`` with a newline put in place of a space in each line that is too long."""
    if len(text) <= LINE_WIDTH:
        return text
    lines: list[str] = []
    for line in text.split("\n"):
        while len(line) > LINE_WIDTH:
            cut = _break_at(line)
            if cut is None:
                break
            lines.append(line[:cut])
            line = line[cut + 1:]
        lines.append(line)
    return "\n".join(lines)


def _break_at(line: str) -> int | None:
    """Where to break ``line``: the last space after a colon among the characters 36
    to 75, else the last space there, else the first space after them."""
    last_space = None
    for i in range(LINE_WIDTH, _SHORTEST_PIECE, -1):
        if line[i] == " ":
            if line[i - 1] == ":":
                return i
            if last_space is None:
                last_space = i
    if last_space is not None:
        return last_space
    ahead = line.find(" ", LINE_WIDTH + 1)
    return ahead if ahead >= 0 else None
