"""The body hash of DKIM verification (RFC 6376 3.4.3-3.4.5, 3.7), computed while the
body is read in blocks, so a large message never has to be in memory at once.

pymta keeps messages with LF line ends; DKIM hashes CRLF lines, so every line is given
its CR here.  One :class:`BodyHasher` serves every signature with the same
canonicalization, hash and length limit.
"""
from __future__ import annotations

import hashlib
import re
from typing import Iterable

_WSP_RUN = re.compile(rb"[ \t]+")


class BodyHasher:
    """Canonicalizes (``simple`` or ``relaxed``) and hashes a body fed in pieces."""

    def __init__(self, canon: str, hash_name: str, limit: int | None = None):
        self.relaxed = canon == "relaxed"
        self.hash = hashlib.new(hash_name)
        self.limit = limit
        self.length = 0                # canonical bytes hashed so far
        self._partial = b""            # an unfinished line
        self._empty = 0                # empty lines held back (dropped at the end)
        self._any = False              # a non-empty line was seen

    def feed(self, data: bytes) -> None:
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            self._line(line)

    def _line(self, line: bytes) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if self.relaxed:
            line = _WSP_RUN.sub(b" ", line).rstrip(b" ")
        if not line:
            self._empty += 1
            return
        self._emit(b"\r\n" * self._empty + line + b"\r\n")
        self._empty = 0
        self._any = True

    def _emit(self, data: bytes) -> None:
        if self.limit is not None:
            data = data[:max(0, self.limit - self.length)]
        if data:
            self.hash.update(data)
            self.length += len(data)

    def digest(self) -> bytes:
        """The body hash (call once, after the last piece)."""
        if self._partial:
            self._line(self._partial)
            self._partial = b""
        if not self._any and not self.relaxed:
            self._emit(b"\r\n")          # an empty body is one CRLF in "simple"
        return self.hash.digest()


def hash_body(pieces: Iterable[bytes], hashers: Iterable[BodyHasher]) -> None:
    """Feed every piece of a body to every hasher."""
    todo = list(hashers)
    if not todo:
        return                    # no signature to check: the body is not read
    for piece in pieces:
        for h in todo:
            h.feed(piece)
