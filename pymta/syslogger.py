"""Exim's log lines sent to syslog (``syslog`` in ``log_file_path``).

The lines are the ones the log files get; the three logs map to syslog priorities
(mainlog LOG_INFO, rejectlog LOG_NOTICE, paniclog LOG_ALERT) under the facility of
``syslog_facility`` (default ``mail``) and the tag ``syslog_processname[pid]``.
``syslog_timestamp = false`` drops pymta's own date and time from the text (syslog adds
its own); ``syslog_pid = false`` drops pymta's own ``[pid]`` field (the ``+pid`` log
selector), since the tag already has the pid.

An entry longer than :data:`MAX_SYSLOG_LEN` characters or with several lines (a
rejectlog entry with headers) is sent as several syslog messages, each starting
``[n/m]`` (piece cut for length) or ``[n\\m]`` (piece ended at a line break), as the
Exim manual describes, so a reader can put them together again.

Messages go as RFC 3164 datagrams to the local syslog socket, as the C library's
syslog() sends them; nothing is written when no syslog daemon listens.
"""
from __future__ import annotations

import os
import socket
import time

#: Where the local syslog daemon listens.
DEFAULT_SOCKET = "/dev/log"
#: Test-only: another Unix datagram socket path for the syslog messages (a test runs its
#: own receiver there); never set it for a real mail server.
SOCKET_ENV = "PYMTA_TEST_SYSLOG_SOCKET"

#: Most data characters in one syslog message (room for syslog's own prefix in 1024).
MAX_SYSLOG_LEN = 870

#: Facility names syslog_facility accepts, with their syslog numbers.
FACILITIES: dict[str, int] = {"mail": 2, "user": 1, "news": 7, "uucp": 8, "daemon": 3,
                              **{f"local{i}": 16 + i for i in range(8)}}
#: Severity of each log.
LOG_INFO, LOG_NOTICE, LOG_ALERT = 6, 5, 1
PRIORITIES = {"main": LOG_INFO, "reject": LOG_NOTICE, "panic": LOG_ALERT}

#: Longest syslog_processname the manual allows.
MAX_PROCESSNAME = 32

BACKSLASH = "\\"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
           "Dec")


def check_facility(name: str) -> str | None:
    """None if ``name`` is a facility syslog_facility accepts, else the error text."""
    if name.strip().lower() in FACILITIES:
        return None
    return (f'failed to interpret syslog_facility "{name}": must be one of mail, user, '
            "news, uucp, daemon or local0 to local7")


def split_entry(text: str, limit: int = MAX_SYSLOG_LEN) -> list[str]:
    """The syslog messages for one log entry (its final newline removed): one piece per
    line, long lines cut every ``limit`` characters, each piece marked ``[n/m]`` or
    ``[n\\m]`` when there is more than one."""
    pieces: list[tuple[str, bool]] = []       # (text, ended at a line break)
    lines = text.split("\n")
    for i, line in enumerate(lines):
        last_line = i == len(lines) - 1
        while len(line) > limit:
            pieces.append((line[:limit], False))
            line = line[limit:]
        pieces.append((line, not last_line))
    if len(pieces) == 1:
        return [pieces[0][0]]
    total = len(pieces)
    return [f"[{n}{BACKSLASH if at_newline else '/'}{total}] {piece}"
            for n, (piece, at_newline) in enumerate(pieces, start=1)]


def header_stamp(now: float) -> str:
    """RFC 3164 time stamp, ``Mmm dd hh:mm:ss`` in local time (day padded with a space)."""
    tm = time.localtime(now)
    return f"{_MONTHS[tm.tm_mon - 1]} {tm.tm_mday:2d} {tm.tm_hour:02d}:{tm.tm_min:02d}:" \
           f"{tm.tm_sec:02d}"


class SyslogWriter:
    """Sends log entries to the local syslog daemon for one process.

    ``facility`` is a syslog_facility name, ``ident`` the syslog_processname.  The socket
    is connected on first use and again after an error (syslogd restarted)."""

    def __init__(self, facility: str = "mail", ident: str = "exim",
                 path: str | None = None) -> None:
        self.facility = FACILITIES.get((facility or "mail").strip().lower(), 2)
        self.ident = ident[:MAX_PROCESSNAME]
        self.path = path or os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET
        self._sock: socket.socket | None = None

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        return sock

    def send(self, which: str, entry: str, now: float | None = None) -> None:
        """Send one entry of log ``which`` ("main", "reject", "panic")."""
        pri = self.facility * 8 + PRIORITIES[which]
        stamp = header_stamp(time.time() if now is None else now)
        prefix = f"<{pri}>{stamp} {self.ident}[{os.getpid()}]: "
        for piece in split_entry(entry.rstrip("\n")):
            self._send_one((prefix + piece).encode("utf-8", "surrogateescape"))

    def _send_one(self, data: bytes) -> None:
        for _attempt in range(2):
            try:
                if self._sock is None:
                    self._sock = self._connect()
                self._sock.send(data)
                return
            except OSError:
                # syslogd gone or restarted: reconnect once, else drop the message
                # (as syslog() does; the log files, if any, still have it).
                self.close()

    def close(self) -> None:
        """Close the socket (it reconnects on the next message)."""
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None
