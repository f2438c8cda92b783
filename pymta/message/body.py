"""A received message kept in a file instead of memory (BDAT chunks stream into it).

:class:`FileBody` is written as the data arrives (LF line endings already) and then
stands in for the message bytes where the receiving code needs them:
:func:`pymta.message.receive.prepare_message` reads only the header block from it
(:meth:`FileBody.header_block`) and scans the rest in blocks for the body statistics
(:meth:`FileBody.scan`); :func:`pymta.spool.files.write_spool` copies the body into the
``-D`` file (:meth:`FileBody.copy_to`).  So a message is never held whole in memory.

The file is an unnamed temporary file in the spool directory (on the spool's file
system, invisible in the directory, gone when closed or when the process dies).
"""
from __future__ import annotations

import os
import tempfile
from typing import BinaryIO, Iterator

from pymta.message.headers import ParsedMessage, split_message

_BLOCK = 1 << 16


class FileBody:
    """The message being received, in an unnamed temporary file in ``directory``."""

    def __init__(self, directory: str | None = None) -> None:
        self.file = tempfile.TemporaryFile(dir=directory)
        self.size = 0
        self.newlines = 0
        self.last_byte = b""
        self._base = 0          # bytes at the start of the file that are not the message

    def write(self, data: bytes) -> None:
        if not data:
            return
        self.file.write(data)
        self.size += len(data)
        self.newlines += data.count(b"\n")
        self.last_byte = data[-1:]

    def __len__(self) -> int:
        return self.size

    def endswith_newline(self) -> bool:
        return self.last_byte == b"\n"

    def close(self) -> None:
        self.file.close()

    def drop_head(self, length: int) -> None:
        """Take the first ``length`` bytes (whole lines) off the message."""
        dropped = b"".join(self._blocks(0, length))
        self._base += length
        self.size -= length
        self.newlines -= dropped.count(b"\n")

    def _blocks(self, start: int = 0, length: int | None = None):
        self.file.flush()
        fd = self.file.fileno()
        offset = self._base + start
        end = self._base + (self.size if length is None else min(self.size, start + length))
        while offset < end:
            block = os.pread(fd, min(_BLOCK, end - offset), offset)
            if not block:
                break
            offset += len(block)
            yield block

    def blocks(self, start: int = 0) -> Iterator[bytes]:
        """The message from ``start`` to the end, a block at a time."""
        return self._blocks(start)

    def read_from(self, start: int) -> bytes:
        """The message from ``start`` to the end (for content scanning, which needs it)."""
        return b"".join(self._blocks(start))

    def write_to(self, out: BinaryIO, start: int) -> None:
        """Copy the message from ``start`` to the end into ``out``, a block at a time
        (the content scanners' file: a big message is never in memory whole)."""
        for block in self._blocks(start):
            out.write(block)

    def header_block(self) -> tuple[bytes, ParsedMessage]:
        """The start of the message up to and including where the body starts (the
        header block, its blank line, and the first body line when there is no blank
        line), parsed.  Read a block at a time until the end of the headers is certain."""
        head = b""
        for block in self._blocks():
            head += block
            parsed = split_message(head)
            if parsed.body_start > parsed.header_bytes:
                return head, parsed               # the blank line ended the headers
            if parsed.body_start < len(head) and b"\n" in head[parsed.body_start:]:
                return head, parsed               # a whole non-header line follows
        return head, split_message(head)

    def scan(self, start: int) -> tuple[int, int, int]:
        """(newlines, NUL bytes) from ``start`` to the end, and the longest line of the
        whole message (without its newline)."""
        newlines = zeros = longest = line = 0
        position = 0
        for block in self._blocks():
            if position + len(block) > start:
                part = block[max(0, start - position):]
                newlines += part.count(b"\n")
                zeros += part.count(b"\0")
            position += len(block)
            pieces = block.split(b"\n")
            if len(pieces) == 1:
                line += len(block)
                continue
            longest = max(longest, line + len(pieces[0]), *map(len, pieces[1:-1]))
            line = len(pieces[-1])
        return newlines, zeros, max(longest, line)

    def ends(self, start: int, length: int) -> tuple[bytes, bytes]:
        """The first and the last ``length`` bytes from ``start`` to the end."""
        self.file.flush()
        fd = self.file.fileno()
        head = os.pread(fd, min(length, self.size - start), self._base + start)
        if self.size - start <= length:
            return head, head
        return head, os.pread(fd, length, self._base + self.size - length)

    def copy_to(self, fd: int, start: int) -> None:
        """Append the message from ``start`` to the end to the file ``fd``."""
        self.file.flush()
        src = self.file.fileno()
        offset, left = self._base + start, self.size - start
        while left > 0:
            try:
                n = os.sendfile(fd, src, offset, left)
            except OSError:
                n = 0
            if n <= 0:
                # sendfile unusable here: plain reads and writes
                block = os.pread(src, min(_BLOCK, left), offset)
                if not block:
                    raise OSError(f"spool body file ended {left} bytes early")
                n = os.write(fd, block)
            offset += n
            left -= n
