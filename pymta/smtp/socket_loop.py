"""The socket side of an SMTP session: read, feed the sans-IO server, perform its actions.

:func:`run_dialogue` owns the blocking socket: it waits for input with poll (waking once a
second to notice a stopping daemon), applies smtp_receive_timeout, and performs the
:mod:`actions <pymta.smtp.actions>` that :meth:`SmtpServer.receive` returns: replies are
written with one ``sendall`` per pipelined group, :class:`StartTls` wraps the socket with
the session's ``tls_wrap`` (no plaintext read after the command reaches the TLS side),
:class:`Close` ends the dialogue.
"""
from __future__ import annotations

import select
import socket
import time
from typing import Any, Callable, Protocol

from pymta.debuglog import debug
from pymta.smtp.actions import Action, Close, SendReply, StartTls
from pymta.smtp.server import SmtpServer

RECV_SIZE = 65536



class Channel(Protocol):
    """What the loop reads and writes: a socket, or a TLS connection made on one."""

    def fileno(self) -> int: ...

    def recv(self, size: int, /) -> bytes: ...

    def sendall(self, data: bytes, /) -> Any: ...

    def shutdown(self, how: int, /) -> None: ...


# Wraps a connected socket in TLS (server side) and returns the wrapped channel; raises
# OSError when the handshake fails.
TlsWrap = Callable[[socket.socket], Channel]


class Connection:
    """One client socket, possibly switched to TLS part way through."""

    def __init__(self, sock: socket.socket, tls_wrap: TlsWrap | None = None) -> None:
        self.raw = sock
        self.sock: Channel = sock
        self.tls_wrap = tls_wrap

    def send(self, data: bytes) -> bool:
        """Write ``data``; False when the client has gone."""
        if not data:
            return True
        if debug.receive:
            debug.printf("SMTP>> " + data.decode("utf-8", "replace").rstrip("\r\n")
                         .replace("\r\n", "\nSMTP>> "))
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def readable(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for input (poll: no FD_SETSIZE limit).  A TLS
        socket may hold decrypted bytes that poll cannot see."""
        pending = getattr(self.sock, "pending", None)
        if pending is not None and pending():
            return True
        p = select.poll()
        p.register(self.sock, select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR)
        try:
            return bool(p.poll(timeout * 1000))
        except InterruptedError:
            return False

    def recv(self) -> bytes | None:
        """Up to RECV_SIZE bytes; b"" at end of input; None when nothing could be read
        this time (interrupted)."""
        try:
            return self.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            return b""

    def start_tls(self) -> bool:
        """Run the server side of a TLS handshake; False when there is no TLS or it failed."""
        if self.tls_wrap is None or self.sock is not self.raw:
            return False
        try:
            self.sock = self.tls_wrap(self.raw)
        except (OSError, ValueError):
            return False
        return True


def perform(conn: Connection, server: SmtpServer, actions: list[Action]) -> bool:
    """Carry out ``actions``; False when the dialogue is over (closed or client gone)."""
    todo = list(actions)
    while todo:
        action = todo.pop(0)
        if isinstance(action, SendReply):
            if not conn.send(action.data):
                return False
        elif isinstance(action, Close):
            return False
        elif isinstance(action, StartTls):
            todo = server.tls_started() if conn.start_tls() else server.tls_failed()
        # ReadLine / ReadBytes: the loop reads whatever arrives and feeds it all.
    return not server.closed


def run_dialogue(conn: Connection, server: SmtpServer, timeout: float | None,
                 stop_event: Any = None, data_deadline: float | None = None) -> None:
    """Feed the client's input to ``server`` until the dialogue ends.

    ``timeout`` (smtp_receive_timeout) is the longest wait for one line: it restarts
    when a line ends, not with every byte, so a client trickling a byte at a time
    cannot hold the session.  ``data_deadline`` (smtp_data_deadline) bounds the
    whole of one message's data (DATA, or all the BDAT chunks of one message), however
    fast its lines arrive."""
    deadline = time.monotonic() + timeout if timeout else None
    data_since: float | None = None          # when the current DATA began
    while not server.closed:
        # a BDAT message is "in data" from its first chunk to its last
        receiving = server.in_data or server.message_chunked
        if receiving and data_since is None:
            data_since = time.monotonic()
        elif not receiving:
            data_since = None
        # Wake at least once a second so a stopping daemon is noticed while idle.
        wait = 1.0
        if deadline is not None:
            wait = max(0.0, min(wait, deadline - time.monotonic()))
        if data_since is not None and data_deadline:
            late = data_since + data_deadline - time.monotonic()
            if late <= 0:
                conn.send(server.data_deadline_reply(data_deadline))
                return
            wait = min(wait, late)
        if not conn.readable(wait):
            if stop_event is not None and stop_event.is_set() and not server.in_data:
                conn.send(server.shutdown_reply())
                return
            if deadline is not None and time.monotonic() >= deadline:
                conn.send(server.timeout_reply())
                return
            continue
        data = conn.recv()
        if data is None:
            continue
        if not data:
            if server.receiving_message:
                conn.send(b"421 Lost incoming connection\r\n")
            else:
                conn.send(f"421 {server.hostname} lost input connection\r\n".encode())
            server.connection_lost()
            return
        if timeout and (b"\n" in data or server.reading_bytes):
            deadline = time.monotonic() + timeout
        if not perform(conn, server, server.receive(data)):
            return
