"""Exim's debug output: the ``-d`` selectors and the trace they switch on.

One process-wide :data:`debug` object holds one boolean attribute per debug selector
(``debug.acl``, ``debug.expand``, ...), all False unless tracing is on, so a trace point
costs one attribute check when tracing is off::

    if debug.acl:
        debug.printf(f'using ACL "{name}"')

Output goes to standard error (``-d``) or to a file (``control = debug`` in an ACL, and
the delivery of a message that was received with it).  A *pretrigger* buffer keeps the
newest lines in memory instead, up to a number of bytes, until a trigger (``now``, or a
line written to the paniclog) copies them to the file; from then on lines go straight
to the file.  The selector bits are Exim 4.96's, so ``-debug_selector`` in a -H file
means the same to both.
"""
from __future__ import annotations

import collections
import os
import re
import sys
import time
from typing import TextIO

from pymta.osutil import give_to_dir_owner

#: Exim's debug selector names and their bits (``v`` is bit 0, set by ``-v``).
SELECTOR_BITS: dict[str, int] = {
    name: 1 << bit for bit, name in enumerate("""
        v local_scan acl auth deliver dns dnsbl exec expand filter hints_lookup
        host_lookup ident interface lists load lookup memory noutf8 pid process_info
        queue_run receive resolver retry rewrite route timestamp tls transport uid
        verify""".split())}
D_ALL = 0xFFFFFFFF
#: What ``-d`` alone selects: everything except these.
D_DEFAULT = D_ALL & ~sum(SELECTOR_BITS[n] for n in (
    "expand", "filter", "interface", "load", "local_scan", "memory", "noutf8", "pid",
    "timestamp", "resolver"))
#: ``+all`` leaves out memory and noutf8 (``-all`` clears every bit).
_PLUS_ALL = D_ALL & ~(SELECTOR_BITS["memory"] | SELECTOR_BITS["noutf8"])
#: The names ``-d`` accepts (``v`` is not one of them).
SELECTOR_NAMES = frozenset(n for n in SELECTOR_BITS if n != "v") | {"all"}

#: What pretrigger=, trigger= and the modifiers understand.
TRIGGERS = ("now", "paniclog")


class SelectorError(ValueError):
    """A malformed ``-d`` / ``opts=`` selector string (the text is Exim's complaint)."""


def parse_selector(text: str, start: int = D_DEFAULT) -> int:
    """The bits of a ``+name-name`` string, applied to ``start`` (``-d``'s default)."""
    bits = start
    pos = 0
    for m in re.finditer(r"([+-])([a-z0-9_]*)", text):
        if m.start() != pos:
            break
        sign, name = m.groups()
        if name not in SELECTOR_NAMES:
            raise SelectorError(f"unknown debug_selector setting: {sign}{name}")
        if name == "all":
            value = _PLUS_ALL if sign == "+" else D_ALL
        else:
            value = SELECTOR_BITS[name]
        bits = bits | value if sign == "+" else bits & ~value
        pos = m.end()
    if pos != len(text):
        raise SelectorError("malformed debug_selector setting: + or - expected but found "
                            f'"{text[pos:]}"')
    return bits


class RingBuffer:
    """The newest lines whose total size is at most ``size`` bytes (the pretrigger)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.used = 0
        self.lines: collections.deque[bytes] = collections.deque()

    def add(self, data: bytes) -> None:
        if len(data) > self.size:
            data = data[-self.size:] if self.size else b""
        self.lines.append(data)
        self.used += len(data)
        while self.used > self.size:
            self.used -= len(self.lines.popleft())

    def take(self) -> bytes:
        """Everything kept, oldest first; the buffer is empty afterwards."""
        data = b"".join(self.lines)
        self.lines.clear()
        self.used = 0
        return data


class _Sink:
    """Where lines go: a file descriptor, and the path when it is a debug log file
    (or a text stream without a descriptor, such as a test's captured stderr)."""

    def __init__(self, fd: int, path: str | None, close: bool,
                 stream: TextIO | None = None) -> None:
        self.fd = fd
        self.path = path
        self.close_fd = close
        self.stream = stream

    def write(self, data: bytes) -> None:
        try:
            if self.stream is not None:
                self.stream.write(data.decode("utf-8", "surrogateescape"))
                self.stream.flush()
            else:
                os.write(self.fd, data)
        except (OSError, ValueError):
            pass          # a full disk must not stop mail handling for a trace

    def close(self) -> None:
        if self.close_fd:
            try:
                os.close(self.fd)
            except OSError:
                pass


class DebugTrace:
    """The process's debug state; one boolean attribute per selector name.

    ``any`` is True when some output is selected; the selector attributes are True only
    then.  ``from_control`` says the output was started by ``control = debug`` (or the
    -H file of a message received that way) and ends with the session or delivery.
    """

    any: bool
    selector: int
    # One per selector (set by _set_bits), so that trace points type-check.
    v: bool
    local_scan: bool
    acl: bool
    auth: bool
    deliver: bool
    dns: bool
    dnsbl: bool
    exec: bool
    expand: bool
    filter: bool
    hints_lookup: bool
    host_lookup: bool
    ident: bool
    interface: bool
    lists: bool
    load: bool
    lookup: bool
    memory: bool
    noutf8: bool
    pid: bool
    process_info: bool
    queue_run: bool
    receive: bool
    resolver: bool
    retry: bool
    rewrite: bool
    route: bool
    timestamp: bool
    tls: bool
    transport: bool
    uid: bool
    verify: bool

    def __init__(self) -> None:
        self._sink: _Sink | None = None
        self._buffer: RingBuffer | None = None
        self._prefix = ""
        #: spaces after the prefixes: one per nested ACL (Exim's debug_printf_indent)
        self.indent = 0
        #: -bh's comments: only what Exim writes in host-checking mode (its HDEBUG
        #: lines), not everything its -d would
        self.host_checking = False
        self.trigger_paniclog = False
        self.from_control = False
        self._saved: tuple[int, _Sink | None] | None = None
        self._set_bits(0)

    # ---------------------------------------------------------------- selector
    def _set_bits(self, bits: int) -> None:
        self.selector = bits
        self.any = bool(bits & ~(SELECTOR_BITS["v"] | SELECTOR_BITS["noutf8"]))
        for name, bit in SELECTOR_BITS.items():
            # "v" (-v) counts on its own: it writes debug_print texts, nothing else
            setattr(self, name, bool(bits & bit) and (self.any or name == "v"))
        self._pid = bool(bits & SELECTOR_BITS["pid"])
        self._stamp = bool(bits & SELECTOR_BITS["timestamp"])

    def on(self, name: str) -> bool:
        """Whether selector ``name`` is on (trace points use the attribute itself)."""
        return bool(getattr(self, name, False))

    @property
    def file_path(self) -> str | None:
        """The debug log file in use (None for standard error or no output)."""
        return self._sink.path if self._sink is not None else None

    # ---------------------------------------------------------------- starting
    def start_stderr(self, bits: int, stream: TextIO | None = None, prefix: str = "") -> None:
        """``-d``: lines to standard error (``prefix`` before each: -bh's ">>> ")."""
        self.stop()
        self._prefix = prefix
        stream = stream or sys.stderr
        try:
            self._sink = _Sink(stream.fileno(), None, close=False)
        except (OSError, ValueError, AttributeError):
            self._sink = _Sink(-1, None, close=False, stream=stream)
        self._set_bits(bits)

    def force_pid(self) -> None:
        """A daemon's lines carry the pid (as Exim forces +pid for -d with -bd)."""
        if self.any:
            self._set_bits(self.selector | SELECTOR_BITS["pid"])

    def start_file(self, path: str, bits: int, *, pretrigger: int = 0,
                   from_control: bool = True) -> None:
        """Lines to ``path`` (appended; created with mode 0640).  The tracing in force
        before (``-d``) comes back with :meth:`end_control`."""
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        try:
            fd = os.open(path, flags, 0o640)
        except FileNotFoundError:
            # the log directory is made on first use, as for the other logs
            os.makedirs(os.path.dirname(path), mode=0o750, exist_ok=True)
            fd = os.open(path, flags, 0o640)
        give_to_dir_owner(path)     # root (pymta -M) must not keep exim_user out of it
        if self._saved is None:
            self._saved = (self.selector, self._sink)
        elif self._sink is not None:
            self._sink.close()
        self._sink = _Sink(fd, path, close=True)
        self._buffer = RingBuffer(pretrigger) if pretrigger > 0 else None
        self.from_control = from_control
        self._set_bits(bits)

    def resume_from_spool(self, selector: str | None, path: str | None) -> bool:
        """Go on tracing into the file a -H file names (``-debug_selector`` and
        ``-debuglog_name``, written for a message received under control = debug).
        True when this call started the output (end it with :meth:`end_control`)."""
        if not selector or not path or self.any:
            return False
        try:
            bits = int(selector, 16)
            self.start_file(path, bits)
        except (ValueError, OSError):
            return False      # a trace must never stop a delivery
        self.printf("debug enabled by spoolfile")
        return True

    def set_pretrigger(self, size: int) -> None:
        """Keep lines in memory (at most ``size`` bytes) until a trigger."""
        self._buffer = RingBuffer(size) if size > 0 else None

    def trigger(self) -> None:
        """Copy the pretrigger buffer to the file; later lines go there directly."""
        buf, self._buffer = self._buffer, None
        self.trigger_paniclog = False
        if buf is not None and self._sink is not None:
            data = buf.take()
            if data:
                self._sink.write(data)

    def paniclog_written(self) -> None:
        """Called for each paniclog line: fires a ``trigger=paniclog``."""
        if self.trigger_paniclog:
            self.trigger()

    # ---------------------------------------------------------------- stopping
    def stop(self, *, kill: bool = False) -> None:
        """No more output; ``kill`` also removes the debug log file."""
        sink, self._sink = self._sink, None
        self._buffer = None
        self._prefix = ""
        self.host_checking = False
        self.trigger_paniclog = False
        if sink is not None:
            sink.close()
            if kill and sink.path:
                try:
                    os.unlink(sink.path)
                except OSError:
                    pass
        self._set_bits(0)

    def reset(self) -> None:
        """No output and nothing saved (a fresh process's state)."""
        self.stop()
        self.from_control = False
        self._saved = None

    def end_control(self, *, kill: bool = False) -> None:
        """End output started by control = debug (or a -H file): ``-d`` output, if
        there was any before, takes over again."""
        if not self.from_control:
            return
        saved, self._saved = self._saved, None
        self.stop(kill=kill)
        self.from_control = False
        if saved is not None and saved[1] is not None:
            self._sink = saved[1]
            self._set_bits(saved[0])

    # ---------------------------------------------------------------- writing
    def printf(self, text: str, *, indented: bool = True) -> None:
        """Write ``text`` (one or more lines) with the pid/timestamp prefixes, and the
        nesting indent unless ``indented`` is false (Exim's plain debug_printf)."""
        if self._sink is None:
            return
        prefix = self._prefix
        if self._stamp:
            prefix += time.strftime("%H:%M:%S ")
        if self._pid:
            prefix += f"{os.getpid():5d} "
        if indented:
            prefix += " " * self.indent
        lines = text.rstrip("\n").split("\n")
        data = "".join(f"{prefix}{line}\n" for line in lines).encode(
            "utf-8", "surrogateescape")
        if self._buffer is not None:
            self._buffer.add(data)
        else:
            self._sink.write(data)

    def log_line(self, which: str, line: str) -> None:
        """Echo a log line as Exim's debug output does ("LOG: MAIN" and the text)."""
        self.printf(f"LOG: {which.upper()}\n  " + line.rstrip("\n").split(" ", 2)[-1])


#: The process-wide debug state.
debug = DebugTrace()
