"""Helpers for the SMTP limit and attack tests: a daemon with a small configuration,
replaying a recorded Exim 4.96 -bh conversation over a real socket, raw connections
from a chosen loopback source address."""
from __future__ import annotations

import re
import socket
import time
from pathlib import Path

from tests.support.daemon import PymtaDaemon

DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "smtp_limits"

# Every RCPT is accepted and every message only queued, as in the Exim configuration
# of tests/data/smtp_limits/record.py.
CONFIG = """\
primary_hostname = mx.test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
acl_smtp_rcpt = acl_rcpt
queue_only
OPTIONS
begin acl
acl_rcpt:
  accept
begin routers
r:
  driver = accept
  transport = t
begin transports
t:
  driver = appendfile
  file = /dev/null
"""


class LimitsDaemon(PymtaDaemon):
    """A daemon that counts as started when it answers at all: the tests' own limits
    may refuse the start-up probe (a 421 or 554 instead of the banner)."""

    def _banner_ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"pymta daemon exited with {self.proc.returncode}:\n"
                               f"{self.diagnostics()}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                answer = s.recv(512)
                s.sendall(b"QUIT\r\n")
                return answer[:1].isdigit()
        except OSError:
            return False


def limits_daemon(directory: Path, options: str = "", env: dict[str, str] | None = None,
                  config: str = CONFIG, start: bool = True) -> PymtaDaemon:
    d = LimitsDaemon(config.replace("OPTIONS", options), directory, env=env)
    if start:
        d.start()
    else:
        d.prepare()
        (d.spool / "log").mkdir(parents=True, exist_ok=True)
    return d


class RawClient:
    """A socket to the daemon from ``source`` (any 127.0.0.0/8 address), reading
    replies line by line."""

    def __init__(self, port: int, source: str = "127.0.0.1", timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source, 0))
        self.buf = b""
        self.eof = False

    def _line(self, timeout: float | None) -> bytes | None:
        """The next line (b"" at EOF; None when none came within ``timeout``)."""
        end = time.monotonic() + (timeout if timeout is not None else 3600)
        while b"\n" not in self.buf:
            if self.eof:
                return b""
            left = end - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return None
            except OSError:
                chunk = b""
            if not chunk:
                self.eof = True
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"

    def reply(self, timeout: float | None = 10.0) -> str:
        """One reply, its lines joined with "\\n" ("" when the server closed, or when
        nothing came within ``timeout``)."""
        lines: list[str] = []
        while True:
            raw = self._line(timeout)
            if not raw:
                return "\n".join(lines)
            line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
            lines.append(line)
            if line[3:4] != "-":
                return "\n".join(lines)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def cmd(self, line: str | bytes) -> str:
        self.send((line.encode() if isinstance(line, str) else line) + b"\r\n")
        return self.reply()

    def closed(self) -> bool:
        """Has the server closed the connection (EOF within a second)?"""
        return self._line(1.0) == b""

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "RawClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect_when_free(port: int, source: str = "127.0.0.1", timeout: float = 10.0
                      ) -> RawClient:
    """A connection that got the banner: earlier sessions (the start-up probe) may
    still count against a limit for a moment."""
    end = time.monotonic() + timeout
    while True:
        c = RawClient(port, source)
        banner = c.reply()
        if banner.startswith("220 ") or time.monotonic() > end:
            assert banner.startswith("220 "), banner
            return c
        c.close()
        time.sleep(0.1)


def replay(port: int, name: str, source: str = "127.0.0.1") -> list[str]:
    """Send tests/data/smtp_limits/<name>.in command by command (a message's data at
    once) and return the replies, one string per reply, until the input ends or the
    server closes."""
    data = (DATA_DIR / f"{name}.in").read_bytes()
    replies: list[str] = []
    with RawClient(port, source) as c:
        replies.append(c.reply())
        pos = 0
        while pos < len(data) and replies[-1]:
            if replies[-1].startswith("354"):
                end = data.index(b"\r\n.\r\n", pos - 2) + 5
            else:
                end = data.index(b"\r\n", pos) + 2
            c.send(data[pos:end])
            pos = end
            replies.append(c.reply())
    return [r for r in replies if r]


def exim_replies(name: str, client: str = "127.0.0.1") -> list[str]:
    """Exim 4.96's replies in tests/data/smtp_limits/<name>.exim.out (recorded by
    record.py), multi-line replies joined, with the client's address made ``client``."""
    out: list[str] = []
    cont = False
    for line in (DATA_DIR / f"{name}.exim.out").read_text().splitlines():
        if not re.match(r"\d{3}[ -]", line):
            continue
        line = line.replace("[1.2.3.4]", f"[{client}]")
        if cont:
            out[-1] += "\n" + line
        else:
            out.append(line)
        cont = line[3] == "-"
    return out


def exim_log(name: str, client: str = "127.0.0.1") -> list[str]:
    """The LOG: lines of a recorded Exim conversation."""
    return [line[5:].replace("[1.2.3.4]", f"[{client}]")
            for line in (DATA_DIR / f"{name}.exim.out").read_text().splitlines()
            if line.startswith("LOG: ")]


def same_dialogue(ours: list[str], exims: list[str]) -> None:
    """Compare two conversations, leaving out the banner and EHLO's keyword list
    (each server names itself and offers its own extensions)."""
    def norm(replies: list[str]) -> list[str]:
        out = []
        for r in replies[1:]:
            if r.startswith("250-") and "Hello" in r.split("\n")[0]:
                r = "EHLO reply"
            out.append(re.sub(r"id=\S+", "id=MSGID", r))
        return out
    assert norm(ours) == norm(exims)


def wait_for_log(d: PymtaDaemon, text: str, timeout: float = 10.0, log: str = "main") -> str:
    end = time.monotonic() + timeout
    while True:
        content = d.log(log)
        if text in content or time.monotonic() > end:
            return content
        time.sleep(0.05)


def exim_daemon(name: str) -> tuple[dict[str, list[str]], list[str]]:
    """Exim 4.96 daemon's answers in tests/data/smtp_limits/daemon_<name>.exim.out
    (recorded by record_daemon.py): the replies per client address, in order, and the
    log lines (the load average left out: it was the machine's at the time)."""
    replies: dict[str, list[str]] = {}
    log: list[str] = []
    for line in (DATA_DIR / f"daemon_{name}.exim.out").read_text().splitlines():
        if line.startswith("LOG: "):
            log.append(re.sub(r"load average = [\d.]+$", "load average = ", line[5:]))
        else:
            src, _, reply = line.partition(": ")
            replies.setdefault(src, []).append(reply)
    return replies, log
