"""``control = wellknown/<file>``: the reply to an SMTP WELLKNOWN command (Exim 4.98).

The WELLKNOWN ACL picks a file for the key the client asked for; its content goes back
in a multi-line 250 reply: a ``SIZE=<bytes>`` line, then the content as RFC 3461 xtext
("+" and "=", controls, spaces and non-ASCII bytes as ``+HH``), wrapped into lines of
about 75 characters, each line feed of the file also ending a reply line.
"""
from __future__ import annotations

import os
import stat

from pymta.taint import is_tainted

LINE_LIMIT = 75
#: Larger files are refused: the reply is built in memory and sent in one piece.
MAX_FILE_SIZE = 1 << 20


class WellknownFailed(Exception):
    """The file named by the control cannot be served (the control fails, like a false
    condition); the text is for the log."""


def encode_response(content: bytes) -> str:
    """The reply text (lines joined with "\\n") for a file's ``content``."""
    lines = [f"SIZE={len(content)}"]
    current: list[str] = []
    width = 0
    for byte in content:
        if byte == 0x0A:
            current.append("+0A")
            width = LINE_LIMIT
        elif byte < 33 or byte > 126 or byte in (0x2B, 0x3D):      # "+", "="
            current.append(f"+{byte:02X}")
            width += 3
        else:
            current.append(chr(byte))
            width += 1
        if width >= LINE_LIMIT:
            lines.append("".join(current))
            current, width = [], 0
    if current:
        lines.append("".join(current))
    return "\n".join(lines)


def wellknown_response(path: str) -> str:
    """Read the file at ``path`` and encode it; WellknownFailed when it cannot be.

    The path must not be tainted: a key straight from the client cannot name a file
    (look it up, e.g. with dsearch, to get an untainted name)."""
    if not path:
        raise WellknownFailed("wellknown: no file named")
    if is_tainted(path):
        raise WellknownFailed(f'wellknown: tainted file name "{path}"')
    try:
        # O_NONBLOCK: a FIFO put in the file's place must not hang the session
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise WellknownFailed(f'wellknown: failed to open file "{path}": '
                              f"{exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise WellknownFailed(f'wellknown: "{path}" is not a regular file')
    with os.fdopen(fd, "rb") as f:
        content = f.read(MAX_FILE_SIZE + 1)
    if len(content) > MAX_FILE_SIZE:
        raise WellknownFailed(f'wellknown: file "{path}" is larger than {MAX_FILE_SIZE} '
                              "bytes")
    return encode_response(content)
