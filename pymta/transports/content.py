"""Writing a message (headers + body from the spool -D file) to a file or a socket.

One function, :func:`write_message`, serves every transport: it writes an optional
prefix, the header block prepared by the transport, the body streamed from the -D file
in large chunks, and an optional suffix.  On the way it can convert LF to CRLF, apply
SMTP dot-stuffing or an appendfile ``check_string``/``escape_string`` substitution at
the start of body lines, and terminate with the SMTP ``.`` line.  When no transformation
is needed and the output is a plain file the body is copied by the kernel (sendfile).
"""
from __future__ import annotations

import os
import stat
from contextlib import nullcontext
from typing import Any, BinaryIO, Callable, Iterator, Protocol

CHUNK = 1 << 16


class OutputFilter(Protocol):
    """A transport filter (:class:`pymta.transports.filter.TransportFilter`): ``feed``
    writes the message to the command, whose output is yielded."""

    def output(self, feed: Callable[[Any], Any]) -> Iterator[bytes]: ...


def body_offset(data: str | BinaryIO) -> int:
    """Byte offset where the body starts in a -D file (after its ``ID-D`` line).

    ``data`` is the file's path or an open binary file (read with pread, so its
    position is left alone).
    """
    if isinstance(data, str):
        with open(data, "rb") as f:
            return body_offset(f)
    first = os.pread(data.fileno(), 256, 0)
    nl = first.find(b"\n")
    if nl < 0:
        raise ValueError(f"{getattr(data, 'name', '-D file')}: malformed -D file (no ID line)")
    return nl + 1


def body_size(data: str | BinaryIO) -> int:
    """Size of the body in bytes (LF line endings, as spooled)."""
    if isinstance(data, str):
        return os.path.getsize(data) - body_offset(data)
    return os.fstat(data.fileno()).st_size - body_offset(data)


class _LineFilter:
    """Streaming line-start substitution (check -> escape) plus optional LF -> CRLF.

    Chunks may split a line anywhere, so a short fragment at a line start that could still
    become ``check`` is held back until more data arrives.
    """

    def __init__(self, check: bytes | None, escape: bytes | None, crlf: bool):
        self.check = check or None
        self.escape = escape if escape is not None else b""
        self.crlf = crlf
        self.at_line_start = True
        self.pending = b""
        self.last_byte = b"\n"

    def _process(self, seg: bytes, at_start: bool) -> bytes:
        if self.check:
            if at_start and seg.startswith(self.check):
                seg = self.escape + seg[len(self.check):]
            seg = seg.replace(b"\n" + self.check, b"\n" + self.escape)
        if self.crlf:
            seg = seg.replace(b"\n", b"\r\n")
        return seg

    def feed(self, data: bytes) -> bytes:
        if not data:
            return b""
        self.last_byte = data[-1:]
        data = self.pending + data
        self.pending = b""
        nl = data.rfind(b"\n")
        if nl < 0:
            head, tail, tail_start = b"", data, self.at_line_start
        else:
            head, tail, tail_start = data[:nl + 1], data[nl + 1:], True
        out = self._process(head, self.at_line_start) if head else b""
        if tail:
            if (tail_start and self.check and len(tail) < len(self.check)
                    and self.check.startswith(tail)):
                self.pending = tail
                self.at_line_start = True
            else:
                out += self._process(tail, tail_start)
                self.at_line_start = False
        else:
            self.at_line_start = True
        return out

    def flush(self) -> bytes:
        out = self._process(self.pending, True) if self.pending else b""
        self.pending = b""
        return out


class _Sink:
    """Counts bytes and writes to a socket (sendall) or a file object (write)."""

    def __init__(self, out: Any):
        self.out = out
        self.count = 0
        self._send = out.sendall if hasattr(out, "sendall") else out.write

    def write(self, data: bytes) -> None:
        if data:
            self._send(data)
            self.count += len(data)


def _sendfile_target(out: Any) -> int | None:
    """The fd to sendfile into, for plain files only (not sockets or wrappers)."""
    if hasattr(out, "sendall"):
        return None
    try:
        fd = out.fileno()
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    except (AttributeError, OSError, ValueError):
        return None
    # A pipe (the pipe transport's command) cannot seek, which the copy needs.
    return fd if regular else None


def write_message(out: Any, header: bytes, data_path: str | BinaryIO, *, prefix: bytes = b"",
                  suffix: bytes = b"", use_crlf: bool = False, dot_stuff: bool = False,
                  check_string: bytes | None = None, escape_string: bytes | None = None,
                  body_only: bool = False, headers_only: bool = False,
                  end_dot: bool = False,
                  transport_filter: OutputFilter | None = None) -> int:
    """Write one message to ``out`` and return the number of bytes written.

    ``header`` is the complete header block (LF endings, ending with the blank line).
    ``data_path`` is the -D file's path or an already open binary file object (so a
    delivery can open it before giving up privileges).
    ``dot_stuff`` doubles a leading ``.`` on body lines (it overrides check/escape);
    ``end_dot`` adds the SMTP terminating ``.`` line (and a newline before it when the
    body does not end with one) before the suffix.  Prefix and suffix are written as
    given.

    With a ``transport_filter`` the header block and body (LF line ends, nothing
    converted) go to the filter command and its output takes their place: the line-end,
    dot-stuffing and check/escape conversions and ``end_dot`` apply to that output.
    """
    if dot_stuff:
        check_string, escape_string = b".", b".."
    sink = _Sink(out)
    sink.write(prefix)
    if transport_filter is not None:
        def feed(stdin: Any) -> None:
            write_message(stdin, header, data_path, body_only=body_only,
                          headers_only=headers_only)
        filt = _LineFilter(check_string, escape_string, use_crlf)
        empty = True
        for chunk in transport_filter.output(feed):
            empty = empty and not chunk
            sink.write(filt.feed(chunk))
        sink.write(filt.flush())
        if end_dot:
            # SMTP needs a final newline; a filter's output may lack one (Exim adds it).
            if not empty and filt.last_byte != b"\n":
                sink.write(b"\r\n" if use_crlf else b"\n")
            sink.write(b".\r\n" if use_crlf else b".\n")
        sink.write(suffix)
        return sink.count
    if not body_only:
        sink.write(header.replace(b"\n", b"\r\n") if use_crlf else header)
    if not headers_only:
        offset = body_offset(data_path)
        opened = (open(data_path, "rb") if isinstance(data_path, str)
                  else nullcontext(data_path))
        with opened as src:
            fast_fd = None
            if not (use_crlf or check_string or end_dot):
                fast_fd = _sendfile_target(out)
            if fast_fd is not None:
                sink.count += _copy_fast(out, fast_fd, src, offset)
                if hasattr(out, "seek"):
                    # Keep a buffered file object's idea of its position in step.
                    out.seek(os.lseek(fast_fd, 0, os.SEEK_CUR))
            else:
                filt = _LineFilter(check_string, escape_string, use_crlf)
                src.seek(offset)
                empty = True
                while True:
                    chunk = src.read(CHUNK)
                    if not chunk:
                        break
                    empty = False
                    sink.write(filt.feed(chunk))
                sink.write(filt.flush())
                if end_dot and not empty and filt.last_byte != b"\n":
                    sink.write(b"\r\n" if use_crlf else b"\n")
    if end_dot:
        sink.write(b".\r\n" if use_crlf else b".\n")
    sink.write(suffix)
    return sink.count


def _copy_fast(out: Any, out_fd: int, src: Any, offset: int) -> int:
    """Kernel copy of the body into a regular file; falls back to read/write."""
    if hasattr(out, "flush"):
        out.flush()
    size = os.fstat(src.fileno()).st_size - offset
    done = 0
    try:
        while done < size:
            n = os.sendfile(out_fd, src.fileno(), offset + done, size - done)
            if n == 0:
                break
            done += n
        return done
    except OSError:
        if done:
            raise
    src.seek(offset)
    while True:
        chunk = src.read(CHUNK)
        if not chunk:
            break
        out.write(chunk)
        done += len(chunk)
    return done
