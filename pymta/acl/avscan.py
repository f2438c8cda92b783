"""The virus scanners ``av_scanner`` can name: clamd, cmdline and sock (spec 45.1).

Each client takes the .eml file (and its directory, where the MIME ACL's decoded parts
are too) and returns the name of the malware found, or None when the message is clean.
Anything else (no connection, a timeout, an answer that is not understood) is a
:class:`~pymta.acl.scanconn.ScanDefer` with the log text, so the condition defers.

clamd is asked as Exim asks it: over a Unix socket, or over TCP with the ``local``
option, ``SCAN <file>`` (clamd reads the file itself); over TCP otherwise the content is
streamed with ``zINSTREAM``, a block at a time.
"""
from __future__ import annotations

import os
import random
import re
import signal
import socket
import struct
import subprocess
import time
from typing import Callable

from pymta.acl.scanconfig import ClamdServer, ClamdSpec, CmdlineSpec, SockSpec
from pymta.acl.scanconn import (
    ScanDefer,
    connect,
    file_chunks,
    read_answer,
    remaining,
    send_all,
)

#: The most of a scanner's answer that is read.
ANSWER_LIMIT = 32 * 1024

Connected = Callable[[str], None]
ScanLog = Callable[[str], None]


def _clamd_connect(server: ClamdServer, deadline: float,
                   log: ScanLog) -> tuple[socket.socket, str] | None:
    tries = 2 if server.retry > 0 else 1
    for attempt in range(tries):
        if attempt:
            time.sleep(min(server.retry, max(0.0, deadline - time.monotonic())))
        try:
            return connect(server.endpoint, deadline)
        except ScanDefer as exc:
            reason = str(exc)
    ep = server.endpoint
    if ep.path:
        raise ScanDefer(f"clamd {ep.path} : unable to connect to UNIX socket "
                        f"({ep.path}): {reason}")
    log(f"malware acl condition: clamd [{ep.host}]:{ep.ports[0]} : failed to connect to "
        f"any address for {ep.host}: {reason}")
    return None


def scan_clamd(spec: ClamdSpec, mbox: str, deadline: float, log: ScanLog,
               connected: Connected) -> str | None:
    """Ask the first clamd that answers (in random order) about ``mbox``."""
    servers = list(spec.servers)
    random.shuffle(servers)
    for server in servers:
        got = _clamd_connect(server, deadline, log)
        if got is None:
            continue
        sock, address = got
        connected(address)
        with sock:
            if server.endpoint.path or spec.local:
                send_all(sock, f"SCAN {mbox}\n".encode("utf-8", "surrogateescape"),
                         deadline)
                answer = _read(sock, deadline, b"\n", "clamd", address)
            else:
                _instream(sock, mbox, deadline)
                answer = _read(sock, deadline, b"\0", "clamd", address)
        return _clamd_verdict(answer, address)
    raise ScanDefer("clamd  : all servers failed")     # (Exim's text, no address)


def _instream(sock: socket.socket, mbox: str, deadline: float) -> None:
    """zINSTREAM: length-prefixed blocks of the file, then a zero length."""
    send_all(sock, b"zINSTREAM\0", deadline)
    with open(mbox, "rb") as fh:
        for block in file_chunks(fh):
            send_all(sock, struct.pack(">I", len(block)) + block, deadline)
    send_all(sock, struct.pack(">I", 0), deadline)


def _read(sock: socket.socket, deadline: float, end: bytes, name: str,
          address: str) -> str:
    try:
        data = read_answer(sock, deadline, ANSWER_LIMIT, end)
    except ScanDefer as exc:
        raise ScanDefer(f"{name} {address} : {exc}") from exc
    return data.split(end, 1)[0].decode("utf-8", "replace")


def _clamd_verdict(answer: str, address: str) -> str | None:
    """The malware name in clamd's answer ("<file>: <name> FOUND"), None for "OK"."""
    text = answer.rstrip("\n")
    if ":" not in text:
        raise ScanDefer(f"clamd {address} : ClamAV returned malformed result (missing "
                        f"colon): {_printable(text)}")
    found = text.split(":", 1)[1].strip()
    head, _, tag = found.rpartition(" ")
    tag = tag or found
    if tag == "FOUND":
        return head.strip()
    if tag == "OK":
        return None
    if tag == "ERROR":
        raise ScanDefer(f"clamd {address} : ClamAV returned: {_printable(text)}")
    raise ScanDefer(f"clamd {address} : unparseable response from ClamAV: "
                    f"{{{_printable(text)}}}")


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)[:500]


def scan_cmdline(spec: CmdlineSpec, mbox: str, deadline: float) -> str | None:
    """Run the scanner command on the directory of ``mbox``; the trigger expression
    in its output means malware, named by the name expression's first group."""
    directory = os.path.dirname(mbox)
    command = spec.command.replace("%s", directory)
    try:
        proc = subprocess.Popen(["/bin/sh", "-c", command], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
    except OSError as exc:
        raise ScanDefer(f"cmdline : can't run scanner command: {exc}") from exc
    try:
        out, _ = proc.communicate(timeout=remaining(deadline))
    except (subprocess.TimeoutExpired, ScanDefer):
        try:
            os.killpg(proc.pid, signal.SIGKILL)     # the scanner and its children
        except ProcessLookupError:
            pass
        proc.communicate()
        raise ScanDefer("cmdline : scanner timed out") from None
    text = out[:ANSWER_LIMIT * 8].decode("utf-8", "replace")
    return _triggered(spec.trigger, spec.name, text.splitlines())


def _triggered(trigger: re.Pattern[str], name: re.Pattern[str],
               lines: list[str]) -> str | None:
    if not any(trigger.search(line) for line in lines):
        return None
    for line in lines:
        m = name.search(line)
        if m:
            return m.group(1) if m.groups() and m.group(1) is not None else m.group(0)
    return "unknown"


def scan_sock(spec: SockSpec, mbox: str, deadline: float, connected: Connected) -> str | None:
    """Send the request to the socket and match the answer."""
    try:
        sock, address = connect(spec.endpoint, deadline)
    except ScanDefer as exc:
        ep = spec.endpoint
        if ep.path:
            raise ScanDefer(f"sock {ep.path} : unable to connect to UNIX socket "
                            f"({ep.path}): {exc}") from exc
        raise ScanDefer(f"sock [{ep.host}]:{ep.ports[0]} : failed to connect to any "
                        f"address for {ep.host}: {exc}") from exc
    connected(address)
    with sock:
        send_all(sock, spec.request.replace("%s", mbox).encode("utf-8",
                                                                 "surrogateescape"),
                 deadline)
        try:
            data = read_answer(sock, deadline, ANSWER_LIMIT)
        except ScanDefer as exc:
            raise ScanDefer(f"sock {address} : {exc}") from exc
    text = data.decode("utf-8", "replace")
    if not text:
        raise ScanDefer(f"sock {address} : the scanner answered nothing")
    return _triggered(spec.trigger, spec.name, text.splitlines() or [text])

