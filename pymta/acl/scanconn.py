"""Talking to content scanners (spamd, clamd, a ``sock`` scanner) over a stream socket.

One place for what the spam and malware conditions share: where a scanner listens
(a Unix socket path, or a host with a port or a dash-separated range of ports tried in
order), connecting with a deadline, sending a file without reading it into memory at
once, and reading the answer until the scanner closes (or a terminator arrives) before
the deadline.  Every failure is a :class:`ScanDefer` carrying the text for the log, so
the condition defers (or fails, with ``defer_ok``) and never passes silently.
"""
from __future__ import annotations

import os
import socket
import time
from typing import BinaryIO, Iterator

from pymta.acl.scanconfig import Endpoint

_CHUNK = 1 << 16


class ScanDefer(Exception):
    """A scanner could not give an answer; the text is what the log says about it."""


def remaining(deadline: float) -> float:
    """Seconds left before ``deadline`` (a time.monotonic value); ScanDefer when none."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise ScanDefer("Connection timed out")
    return left


def connect(endpoint: Endpoint, deadline: float) -> tuple[socket.socket, str]:
    """A connected socket and the address used (for ``$callout_address``): the Unix
    socket path, or ``[ip]:port``.  Every address of the host and every port of the
    range is tried in order; ScanDefer when none answers."""
    if endpoint.path:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(remaining(deadline))
            sock.connect(endpoint.path)
        except (OSError, ScanDefer) as exc:
            sock.close()
            raise ScanDefer(_reason(exc)) from exc
        return sock, endpoint.path
    last: BaseException | None = None
    for port in endpoint.ports:
        try:
            infos = socket.getaddrinfo(endpoint.host.strip("[]"), port,
                                       type=socket.SOCK_STREAM)
        except OSError as exc:
            raise ScanDefer(f"failed to find the address of {endpoint.host}: "
                            f"{_reason(exc)}") from exc
        for family, kind, proto, _name, address in infos:
            sock = socket.socket(family, kind, proto)
            try:
                sock.settimeout(remaining(deadline))
                sock.connect(address)
            except (OSError, ScanDefer) as exc:
                sock.close()
                last = exc
                continue
            return sock, "[" + str(address[0]) + "]:" + str(address[1])
    raise ScanDefer(_reason(last) if last is not None else "no address")


def send_all(sock: socket.socket, data: bytes, deadline: float) -> None:
    try:
        sock.settimeout(remaining(deadline))
        sock.sendall(data)
    except OSError as exc:
        raise ScanDefer(f"unable to send to socket ({_reason(exc)})") from exc


def file_chunks(fh: BinaryIO) -> Iterator[bytes]:
    """The file's content a block at a time (a big message is never read whole)."""
    return iter(lambda: fh.read(_CHUNK), b"")


def send_file(sock: socket.socket, path: str, deadline: float) -> None:
    """Send the file ``path`` as it is."""
    with open(path, "rb") as fh:
        for block in file_chunks(fh):
            send_all(sock, block, deadline)


def read_answer(sock: socket.socket, deadline: float, limit: int,
                terminator: bytes | None = None) -> bytes:
    """Read until the peer closes (or ``terminator`` arrives), at most ``limit`` bytes
    kept; ScanDefer on a timeout or a read error."""
    out = bytearray()
    while True:
        try:
            sock.settimeout(remaining(deadline))
            block = sock.recv(_CHUNK)
        except (OSError, ScanDefer) as exc:
            raise ScanDefer(f"unable to read from socket ({_reason(exc)})") from exc
        if not block:
            return bytes(out)
        if len(out) < limit:
            out += block[:limit - len(out)]
        if terminator is not None and terminator in out:
            return bytes(out)


def _reason(exc: BaseException | None) -> str:
    """The strerror text Exim's log lines carry ("Connection refused")."""
    if isinstance(exc, socket.timeout) or isinstance(exc, ScanDefer):
        return "Connection timed out"
    if isinstance(exc, OSError) and exc.errno is not None:
        return os.strerror(exc.errno)
    return str(exc)
