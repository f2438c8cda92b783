"""Real TLS handshakes between two pyOpenSSL connections over a socketpair.

``handshake(make_server, make_client)`` gives each factory one end of a
connected socketpair, runs the server handshake in a thread and the client's in
the caller, exchanges one line each way (so TLS 1.3 session tickets arrive) and
returns both connections with any exception each side raised.
"""
from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

from OpenSSL import SSL


@dataclass
class Pair:
    """The outcome of one handshake."""

    server: SSL.Connection
    client: SSL.Connection
    server_error: Exception | None
    client_error: Exception | None

    @property
    def ok(self) -> bool:
        return self.server_error is None and self.client_error is None


def handshake(make_server: Callable[[socket.socket], SSL.Connection],
              make_client: Callable[[socket.socket], SSL.Connection],
              timeout: float = 10.0) -> Pair:
    """Handshake a server and a client connection over a fresh socketpair."""
    a, b = socket.socketpair()
    server = make_server(a)
    client = make_client(b)
    errors: dict[str, Exception] = {}

    def serve() -> None:
        try:
            server.do_handshake()
            server.sendall(b"220 hello\r\n")
            server.recv(100)
        except Exception as e:  # noqa: BLE001 -- reported to the test
            errors["server"] = e
            a.shutdown(socket.SHUT_RDWR)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        client.do_handshake()
        client.recv(100)             # also reads TLS 1.3 NewSessionTicket messages
        client.sendall(b"QUIT\r\n")
    except Exception as e:  # noqa: BLE001 -- reported to the test
        errors["client"] = e
        b.shutdown(socket.SHUT_RDWR)
    thread.join(timeout)
    assert not thread.is_alive(), "server handshake hung"
    a.close()
    b.close()
    return Pair(server, client, errors.get("server"), errors.get("client"))


def client_factory(ctx: SSL.Context, session: SSL.Session | None = None
                   ) -> Callable[[socket.socket], SSL.Connection]:
    """A client-side ``make_client`` for :func:`handshake` with ``ctx``, offering
    ``session`` for resumption when given."""
    def make(sock: socket.socket) -> SSL.Connection:
        conn = SSL.Connection(ctx, sock)
        if session is not None:
            conn.set_session(session)
        conn.set_connect_state()
        return conn
    return make
