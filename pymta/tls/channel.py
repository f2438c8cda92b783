"""A server TLS connection that the SMTP socket loop can use like a socket.

:func:`accept` runs the server side of the handshake on a connected socket with a
deadline (Exim applies smtp_receive_timeout to it: a client that connects, says
STARTTLS and then stalls must not hold a process for ever) and returns a
:class:`TlsChannel`: ``recv``/``sendall``/``pending``/``fileno`` with the errors
mapped onto the ones a plain socket gives (``b""`` at end of input,
:class:`BlockingIOError` when no whole record has arrived yet, :class:`OSError`
when the peer is gone), so the caller's loop stays the same.
"""
from __future__ import annotations

import select
import socket
import struct
import time

from OpenSSL import SSL


class HandshakeError(Exception):
    """The handshake failed; the message is the text Exim logs after "(SSL_accept): "."""


def openssl_error_text(exc: BaseException) -> str:
    """The reason in an OpenSSL error as Exim logs it ("SSL routines::wrong version number")."""
    if isinstance(exc, SSL.SysCallError):
        return "unexpected EOF" if exc.args and exc.args[0] == -1 else str(exc)
    if isinstance(exc, SSL.Error) and exc.args and isinstance(exc.args[0], list):
        parts = [":".join(str(p) for p in item) for item in exc.args[0] if isinstance(item, tuple)]
        if parts:
            return "; ".join(parts)
    return str(exc) or repr(exc)


def _wait(sock: socket.socket, events: int, seconds: float) -> bool:
    p = select.poll()
    p.register(sock, events | select.POLLHUP | select.POLLERR)
    try:
        return bool(p.poll(max(0.0, seconds) * 1000))
    except InterruptedError:
        return True


def _set_io_timeouts(sock: socket.socket, seconds: float) -> None:
    """Kernel receive/send timeouts on a blocking socket: a TLS record that never
    completes then ends the read with "would block" instead of hanging."""
    whole = int(seconds)
    tv = struct.pack("ll", whole, int((seconds - whole) * 1_000_000))
    for opt in (socket.SO_RCVTIMEO, socket.SO_SNDTIMEO):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, tv)
        except OSError:
            pass


def accept(conn: SSL.Connection, sock: socket.socket, timeout: float) -> "TlsChannel":
    """Complete the server handshake of ``conn`` (made on ``sock``) within ``timeout``
    seconds; raise :class:`HandshakeError` ("timed out" when the deadline passed)."""
    deadline = time.monotonic() + timeout
    sock.setblocking(False)
    try:
        while True:
            try:
                conn.do_handshake()
                break
            except SSL.WantReadError:
                events = select.POLLIN
            except SSL.WantWriteError:
                events = select.POLLOUT
            except Exception as exc:  # SSL.Error, callback errors (ALPN refusal), OSError
                raise HandshakeError(openssl_error_text(exc)) from None
            left = deadline - time.monotonic()
            if left <= 0 or not _wait(sock, events, left):
                raise HandshakeError("timed out")
    finally:
        sock.setblocking(True)
    _set_io_timeouts(sock, max(timeout, 1.0))
    return TlsChannel(conn, sock)


class TlsChannel:
    """An established server TLS connection with a socket's reading and writing calls."""

    def __init__(self, conn: SSL.Connection, sock: socket.socket) -> None:
        self.conn = conn
        self.sock = sock

    def fileno(self) -> int:
        return self.sock.fileno()

    def pending(self) -> int:
        """Decrypted bytes already buffered (poll cannot see them)."""
        return int(self.conn.pending())

    def recv(self, size: int) -> bytes:
        try:
            return bytes(self.conn.recv(size))
        except SSL.WantReadError:
            raise BlockingIOError("no complete TLS record yet") from None
        except SSL.ZeroReturnError:
            return b""          # the client sent close_notify
        except (SSL.Error, OSError):
            return b""          # reset, EOF without close_notify, bad record: the end

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                sent = self.conn.send(bytes(view[:16384]))
            except (SSL.WantWriteError, SSL.WantReadError):
                raise OSError("TLS send timed out") from None
            except SSL.Error as exc:
                raise OSError(openssl_error_text(exc)) from None
            view = view[sent:]

    def shutdown(self, how: int = socket.SHUT_RDWR) -> None:
        """Send close_notify (best effort) and shut the socket down."""
        try:
            self.conn.shutdown()
        except (SSL.Error, OSError):
            pass
        try:
            self.sock.shutdown(how)
        except OSError:
            pass
