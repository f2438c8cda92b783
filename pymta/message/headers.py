"""Splitting a received message into its header block and body, Exim style.

A header starts with a run of printing characters other than ':' (the name), optional
white space, then ':'.  Lines starting with a space or tab continue the previous
header.  The header block ends at an empty line (which is dropped) or at the first line
that is neither a header nor a continuation: that line is the first line of the body,
as in Exim (no blank line is then needed).
"""
from __future__ import annotations

from dataclasses import dataclass

from pymta.spool.model import SpoolHeader

# Exim's one-letter header types (the -H flag), by lower-cased header name
HEADER_FLAGS = {
    "bcc": "B", "cc": "C", "from": "F", "message-id": "I", "received": "P",
    "reply-to": "R", "sender": "S", "to": "T",
}


# Exim flags these also with a "Resent-" prefix (Message-Id is left to the receiver:
# only one header gets its flag)
RESENT_FLAGGED = ("bcc", "cc", "from", "sender", "to")


def header_flag(name: str) -> str:
    """The -H flag character for a header name (" " if Exim has no special interest)."""
    lname = name.strip().lower()
    if lname.startswith("resent-") and lname[7:] in RESENT_FLAGGED:
        lname = lname[7:]
    return HEADER_FLAGS.get(lname, " ")


def has_resent_headers(headers: list[SpoolHeader]) -> bool:
    """Whether any header's name starts with "Resent-": the message's resent- set then
    stands for it (the Message-Id, Date: and From: added or logged are the Resent- ones)."""
    return any(header_name(h.text).lower().startswith("resent-") for h in headers)


def header_name(text: str) -> str:
    """The name part of a header text ("Subject: x" -> "Subject")."""
    return text.split(":", 1)[0].rstrip(" \t")


def is_header_start(line: bytes) -> bool:
    """True if ``line`` (no newline) begins a header: name chars then ':'.

    As in Exim 4.96, a name character is a printing ASCII character or any byte above
    127 (so that ``verify = header_names_ascii`` can see such names); controls, space
    and DEL end the header block.
    """
    i = 0
    n = len(line)
    while i < n and (33 <= line[i] <= 126 or line[i] >= 128) and line[i] != 58:
        i += 1
    if i == 0:
        return False
    while i < n and line[i] in (32, 9):
        i += 1
    return i < n and line[i] == 58


@dataclass
class ParsedMessage:
    """The result of :func:`split_message`.

    ``headers`` are SpoolHeader objects (flag + full text with LF endings); ``body_start``
    is the offset of the body in the original data (so the body can be written without
    copying it: ``memoryview(data)[body_start:]``).
    """

    headers: list[SpoolHeader]
    body_start: int
    header_bytes: int            # size of the header block as received (without blank line)
    #: bytes of whitespace-only lines that ended a header and were dropped (as Exim does)
    dropped: int = 0
    size: int = 0                # of the data parsed

    @property
    def blank_line_missing(self) -> bool:
        """The body began at a line that is not a header, with no blank line before it
        (Exim counts the blank line it implies in $message_linecount)."""
        return self.body_start == self.header_bytes and self.body_start < self.size


def split_message(data: bytes) -> ParsedMessage:
    """Split ``data`` (LF line endings) into headers and the body offset."""
    headers: list[SpoolHeader] = []
    pos = 0
    n = len(data)
    current: list[bytes] = []
    dropped = 0

    def flush() -> None:
        nonlocal dropped
        # Continuation lines of nothing but white space at the end of a header are
        # dropped, as Exim drops them (one in the middle of a header stays)
        while len(current) > 1 and not current[-1].strip():
            dropped += len(current.pop())
        if current:
            raw = b"".join(current)
            text = raw.decode("utf-8", "surrogateescape")
            headers.append(SpoolHeader(header_flag(header_name(text)), text))
            current.clear()

    while pos < n:
        end = data.find(b"\n", pos)
        nxt = n if end < 0 else end + 1
        line = data[pos:nxt]
        content = line[:-1] if line.endswith(b"\n") else line
        if not content:                       # empty line: end of headers, dropped
            flush()
            return ParsedMessage(headers, nxt, pos, dropped, n)
        if content[0] in (32, 9) and current:
            current.append(line if line.endswith(b"\n") else line + b"\n")
        elif is_header_start(content):
            flush()
            current.append(line if line.endswith(b"\n") else line + b"\n")
        else:                                  # not a header: the body starts here
            flush()
            return ParsedMessage(headers, pos, pos, dropped, n)
        pos = nxt
    flush()
    return ParsedMessage(headers, n, n, dropped, n)


def body_stats(data: bytes | memoryview, start: int = 0) -> tuple[int, int]:
    """(body_linecount, body_zerocount) of ``data[start:]``: newlines (plus a final
    unterminated line) and NUL bytes."""
    body = data[start:] if start else data
    if isinstance(body, memoryview):
        body = body.tobytes()
    lines = body.count(b"\n")
    if body and not body.endswith(b"\n"):
        lines += 1
    return lines, body.count(b"\0")


def max_line_length(data: bytes) -> int:
    """Length of the longest line of the message as received (without the newline)."""
    if not data:
        return 0
    return max(map(len, data.split(b"\n")))


def find_header(headers: list[SpoolHeader], name: str) -> SpoolHeader | None:
    """The first live header called ``name`` (case-insensitive)."""
    lname = name.lower()
    for h in headers:
        if h.flag != "*" and header_name(h.text).lower() == lname:
            return h
    return None


def header_value(h: SpoolHeader) -> str:
    """The unfolded value of a header, without the name and surrounding white space."""
    value = h.text.split(":", 1)[1] if ":" in h.text else ""
    return value.replace("\n", "").strip()


def fold_header(name: str, value: str, width: int = 76) -> str:
    """Build "Name: value\\n", folding at spaces so lines stay within ``width``."""
    words = value.split(" ")
    lines = []
    line = f"{name}:"
    for w in words:
        if len(line) + 1 + len(w) > width and line.strip() and line != f"{name}:":
            lines.append(line)
            line = "\t" + w
        else:
            line += " " + w
    lines.append(line)
    return "\n".join(lines) + "\n"
