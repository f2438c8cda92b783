"""RFC 1413 (ident) calls made by the SMTP server, as Exim's rfc1413_hosts and
rfc1413_query_timeout options ask.

For a client in rfc1413_hosts (when rfc1413_query_timeout is not zero) the server
connects from the local address the SMTP connection arrived on to the client's ident
port, asks "<client port> , <server port>" and reads one line.  An answer of the form
``<ports> : USERID : <os> : <user>`` gives $sender_ident.  Any failure (refused, timed
out, an ERROR answer, garbage) just leaves $sender_ident unset; as Exim, only a timeout
of the connect itself is logged (log_selector ident_timeout).

The user name comes from the network: it is tainted, made printable and never expanded.

Test-only: ``PYMTA_TEST_IDENT_PORT`` replaces the ident port 113 (tests run an ident
server on an unprivileged loopback port).  It is not meant for production use.
"""
from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass

from pymta.printing import string_printing
from pymta.taint import taint

IDENT_PORT = 113
PORT_ENV = "PYMTA_TEST_IDENT_PORT"
# RFC 1413 caps a reply at 1000 characters; anything longer is not an answer.
MAX_REPLY = 1000
@dataclass(frozen=True)
class IdentResult:
    """The outcome of one ident call: ``user`` or None, and whether connecting timed out
    (the only failure Exim logs)."""
    user: str | None
    connect_timed_out: bool = False


def ident_port() -> int:
    """Port 113, or the test-only override."""
    text = os.environ.get(PORT_ENV, "")
    return int(text) if text.isdigit() and 0 < int(text) < 65536 else IDENT_PORT


def printable(text: str) -> str:
    """Non-printing characters escaped as Exim shows network strings (a tab too);
    ``text`` holds one character per byte of the answer."""
    return string_printing(text, tab=False, encoding="latin-1")


def parse_reply(line: str, client_port: int, server_port: int) -> str | None:
    """The user from an ident reply line, or None when it is not a USERID answer for
    our port pair."""
    fields = line.split(":", 3)
    if len(fields) != 4 or fields[1].strip().upper() != "USERID":
        return None
    ports = fields[0].split(",")
    try:
        if len(ports) != 2 or (int(ports[0]), int(ports[1])) != (client_port, server_port):
            return None
    except ValueError:
        return None
    user = fields[3].strip()
    return user or None


def query_ident(local: tuple[str, int], peer: tuple[str, int], timeout: float,
                port: int | None = None) -> IdentResult:
    """Ask the ident server on ``peer``'s host who owns the SMTP connection from
    ``peer`` to ``local``.  The whole call lasts at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    family = socket.AF_INET6 if ":" in peer[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        try:
            sock.bind((local[0], 0))       # from the address the client reached
            sock.settimeout(timeout)
            sock.connect((peer[0], port or ident_port()))
        except socket.timeout:
            return IdentResult(None, connect_timed_out=True)
        except OSError:
            return IdentResult(None)
        reply = b""
        try:
            sock.sendall(f"{peer[1]} , {local[1]}\r\n".encode("ascii"))
            while b"\n" not in reply and len(reply) <= MAX_REPLY:
                left = deadline - time.monotonic()
                if left <= 0:
                    return IdentResult(None)
                sock.settimeout(left)
                chunk = sock.recv(MAX_REPLY)
                if not chunk:
                    break
                reply += chunk
        except OSError:
            return IdentResult(None)
        line = reply.split(b"\n", 1)[0].rstrip(b"\r").decode("latin-1")
        user = parse_reply(line, peer[1], local[1])
        return IdentResult(taint(printable(user)) if user else None)
    finally:
        sock.close()
