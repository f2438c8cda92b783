"""A client TLS connection the SMTP client can use like a blocking socket with a timeout.

pyOpenSSL on a socket with a timeout does not wait: OpenSSL sees the non-blocking file
descriptor and reports "want read/write".  :class:`TLSClientSocket` does the waiting
(``poll`` up to the timeout set with :meth:`settimeout`) and maps the outcomes onto what
a plain socket gives: :class:`socket.timeout` when the time is up, ``b""`` at the end of
the stream, :class:`OSError` for a broken session.  :func:`handshake` runs the client
side of the handshake within a deadline and raises :class:`TLSHandshakeError` with the
text Exim logs after "TLS session: (SSL_connect): ".
"""
from __future__ import annotations

import select
import socket
import time
from collections.abc import Callable
from typing import TypeVar

from OpenSSL import SSL

T = TypeVar("T")


class TLSHandshakeError(Exception):
    """The client handshake failed; the message says why (OpenSSL's reason)."""


def openssl_reason(exc: BaseException) -> str:
    """OpenSSL's error queue as one line ("error:0A000086:SSL routines::certificate
    verify failed"), or the exception's text."""
    if isinstance(exc, SSL.SysCallError):
        if exc.args and exc.args[0] == -1:
            return "unexpected EOF"
        return str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    if isinstance(exc, SSL.Error) and exc.args and isinstance(exc.args[0], list):
        parts = [":".join(str(p) for p in item) for item in exc.args[0]
                 if isinstance(item, tuple)]
        if parts:
            return "error:" + "; ".join(parts)
    return str(exc) or repr(exc)


def _wait(sock: socket.socket, events: int, seconds: float | None) -> bool:
    p = select.poll()
    p.register(sock, events | select.POLLHUP | select.POLLERR)
    wait_ms = None if seconds is None else max(0.0, seconds) * 1000
    try:
        return bool(p.poll(wait_ms))
    except InterruptedError:
        return True


class TLSClientSocket:
    """An established client TLS connection with a socket's blocking calls."""

    def __init__(self, conn: SSL.Connection, sock: socket.socket, timeout: float | None):
        self.conn = conn
        self.sock = sock
        self.timeout = timeout

    def settimeout(self, seconds: float | None) -> None:
        self.timeout = seconds

    def fileno(self) -> int:
        return self.sock.fileno()

    def _retry(self, call: Callable[..., T], *args: object) -> T:
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while True:
            try:
                return call(*args)
            except SSL.WantReadError:
                events = select.POLLIN
            except SSL.WantWriteError:
                events = select.POLLOUT
            left = None if deadline is None else deadline - time.monotonic()
            if (left is not None and left <= 0) or not _wait(self.sock, events, left):
                raise socket.timeout("timed out")

    def recv(self, size: int) -> bytes:
        if self.conn.pending():
            return bytes(self.conn.recv(min(size, self.conn.pending())))
        try:
            return bytes(self._retry(self.conn.recv, size))
        except SSL.ZeroReturnError:
            return b""                  # close_notify
        except SSL.SysCallError as e:
            if e.args and e.args[0] == -1:
                return b""              # EOF without close_notify
            raise OSError(openssl_reason(e)) from None
        except SSL.Error as e:
            raise OSError(openssl_reason(e)) from None

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                sent = self._retry(self.conn.send, bytes(view[:16384]))
            except SSL.Error as e:
                raise OSError(openssl_reason(e)) from None
            view = view[sent:]

    def shutdown_tls(self) -> None:
        """Send close_notify (best effort): OpenSSL keeps the session resumable only
        when the connection was shut down properly."""
        saved, self.timeout = self.timeout, min(self.timeout or 5.0, 5.0)
        try:
            self._retry(self.conn.shutdown)
        except (SSL.Error, OSError):
            pass
        finally:
            self.timeout = saved

    def close(self) -> None:
        self.shutdown_tls()
        self.sock.close()


def handshake(conn: SSL.Connection, sock: socket.socket, timeout: float) -> TLSClientSocket:
    """Complete the client handshake of ``conn`` (made on ``sock``) within ``timeout``
    seconds."""
    sock.setblocking(False)         # the waiting is done here, with poll()
    wrapped = TLSClientSocket(conn, sock, timeout)
    try:
        wrapped._retry(conn.do_handshake)
    except socket.timeout:
        raise TLSHandshakeError("timed out") from None
    except Exception as exc:  # noqa: BLE001 - SSL.Error, OSError, callback errors
        raise TLSHandshakeError(openssl_reason(exc)) from None
    return wrapped
