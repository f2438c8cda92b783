"""The sans-IO server's actions (pymta/smtp/actions.py) and the socket layer that performs
them (pymta/smtp/socket_loop.py), driven by fake extensions: an AUTH-like multi-step
exchange, a BDAT-like fixed-size read, and STARTTLS with a test double and with a real
TLS handshake (certificates from tests/support/certs.py)."""
from __future__ import annotations

import socket
import ssl
import threading

import pytest

from pymta.smtp.actions import (
    Challenge,
    Close,
    ReadBytes,
    ReadLine,
    SendReply,
    StartTls,
    reply_bytes,
)
from pymta.smtp.server import Reply, SmtpHandler, SmtpServer
from pymta.smtp.socket_loop import Connection, perform, run_dialogue
from tests.support.certs import client_context, make_cert, server_context


class Recorder(SmtpHandler):
    def __init__(self) -> None:
        self.mails: list[str] = []

    def on_mail(self, address, params):
        self.mails.append(address)
        return None


def _server(**kw) -> tuple[SmtpServer, Recorder]:
    handler = Recorder()
    server = SmtpServer("mx.test", handler, host_address="10.0.0.1", **kw)
    server.greet("mx.test ESMTP")
    return server, handler


def _add_starttls(server: SmtpServer) -> None:
    def starttls(srv: SmtpServer, arg: str) -> None:
        srv.send_reply(Reply(220, "TLS go ahead"))
        srv.start_tls()
    server.extra_commands["STARTTLS"] = starttls
    server.extensions.append("STARTTLS")


def _add_auth(server: SmtpServer, cancelled: list[str]) -> None:
    """AUTH TEST: two challenges, then 235 when the answers are "one" and "two"."""
    def auth(srv: SmtpServer, arg: str) -> None:
        answers: list[str] = []

        def second(line: str) -> Reply:
            answers.append(line)
            ok = answers == ["one", "two"]
            return Reply(235, "Authentication succeeded") if ok else \
                Reply(535, "Incorrect authentication data")

        def first(line: str) -> Challenge:
            answers.append(line)
            return Challenge("c2", second, cancel=lambda: cancelled.append("2"))
        srv.send_challenge(Challenge("c1", first, cancel=lambda: cancelled.append("1")))
    server.extra_commands["AUTH"] = auth
    server.extensions.append("AUTH TEST")


def test_plain_dialogue_asks_for_a_line_and_close_after_quit():
    server, _ = _server()
    assert server.receive(b"EHLO a.b\r\n")[-1] == ReadLine(16384)
    actions = server.receive(b"QUIT\r\n")
    assert actions == [SendReply(b"221 mx.test closing connection\r\n"), Close()]
    assert server.receive(b"NOOP\r\n") == [Close()]


def test_replies_of_a_pipelined_group_are_one_send():
    server, _ = _server()
    server.receive(b"EHLO a.b\r\n")
    actions = server.receive(b"MAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nNOOP\r\n")
    assert [type(a) for a in actions] == [SendReply, ReadLine]
    assert actions[0].data == b"250 OK\r\n250 Accepted\r\n250 OK\r\n"
    assert reply_bytes(actions) == actions[0].data


def test_multi_step_exchange_passes_lines_to_the_extension():
    cancelled: list[str] = []
    server, handler = _server()
    _add_auth(server, cancelled)
    server.receive(b"EHLO a.b\r\n")
    assert server.feed(b"AUTH TEST\r\n") == b"334 c1\r\n"
    assert server.feed(b"one\r\n") == b"334 c2\r\n"
    assert server.feed(b"two\r\n") == b"235 Authentication succeeded\r\n"
    # The exchange is over: the next line is a command again.
    assert server.feed(b"MAIL FROM:<a@b.c>\r\n") == b"250 OK\r\n"
    assert handler.mails == ["a@b.c"] and cancelled == []


def test_multi_step_exchange_pipelined_and_wrong_answer():
    server, _ = _server()
    _add_auth(server, [])
    server.receive(b"EHLO a.b\r\n")
    out = server.feed(b"AUTH TEST\r\none\r\nthree\r\nNOOP\r\n")
    assert out == b"334 c1\r\n334 c2\r\n535 Incorrect authentication data\r\n250 OK\r\n"


@pytest.mark.parametrize("lines,which", [(b"*\r\n", "1"), (b"one\r\n*\r\n", "2")])
def test_star_cancels_the_exchange(lines, which):
    cancelled: list[str] = []
    server, handler = _server()
    _add_auth(server, cancelled)
    server.receive(b"EHLO a.b\r\n")
    server.feed(b"AUTH TEST\r\n")
    out = server.feed(lines)
    assert out.endswith(b"501 Authentication cancelled\r\n")
    assert cancelled == [which]
    # "*" was not taken as a command, and commands work again afterwards.
    assert server.unknown_commands == 0
    assert server.feed(b"MAIL FROM:<a@b.c>\r\n") == b"250 OK\r\n"


def test_read_bytes_takes_exactly_n_bytes_across_feeds():
    server, _ = _server()
    chunks: list[bytes] = []

    def bdat(srv: SmtpServer, arg: str) -> None:
        def done(data: bytes) -> None:
            chunks.append(data)
            srv.send_reply(Reply(250, f"{len(data)} byte chunk received"))
        srv.read_bytes(int(arg), done)
    server.extra_commands["BDAT"] = bdat
    server.receive(b"EHLO a.b\r\n")
    # The chunk contains what looks like commands and line ends: it is data.
    assert server.receive(b"BDAT 12\r\nQUIT\r\n") == [ReadBytes(6)]
    actions = server.receive(b"RSET\r\nNOOP\r\n")
    assert chunks == [b"QUIT\r\nRSET\r\n"]
    assert actions == [SendReply(b"250 12 byte chunk received\r\n250 OK\r\n"), ReadLine(16384)]


def test_starttls_discards_pipelined_plaintext_and_resets_state():
    server, handler = _server()
    _add_starttls(server)
    server.receive(b"EHLO a.b\r\n")
    # CVE-2011-0411: commands sent in clear after STARTTLS must not run under TLS.
    actions = server.receive(b"STARTTLS\r\nMAIL FROM:<evil@x.y>\r\n")
    assert actions == [SendReply(b"220 TLS go ahead\r\n"), StartTls()]
    assert server.receive(b"RCPT TO:<evil@x.y>\r\n") == [StartTls()]
    assert server.plaintext_discarded == len(b"MAIL FROM:<evil@x.y>\r\nRCPT TO:<evil@x.y>\r\n")
    assert server.tls_started() == [ReadLine(16384)]
    assert server.tls_active
    # A fresh start: EHLO again first (RFC 3207), and nothing of the plaintext ran.
    assert server.feed(b"MAIL FROM:<a@b.c>\r\n") == b"503 HELO or EHLO required\r\n"
    assert server.feed(b"EHLO a.b\r\n").startswith(b"250-mx.test Hello a.b")
    assert server.feed(b"MAIL FROM:<a@b.c>\r\n") == b"250 OK\r\n"
    assert handler.mails == ["a@b.c"]


class FakeTlsConnection(Connection):
    """A Connection whose TLS wrap is a test double recording what happened."""

    def __init__(self, ok: bool) -> None:
        super().__init__(None)   # type: ignore[arg-type]
        self.ok = ok
        self.sent: list[bytes] = []
        self.wrapped = False

    def send(self, data: bytes) -> bool:
        self.sent.append(data)
        return True

    def start_tls(self) -> bool:
        self.wrapped = True
        return self.ok


def test_perform_sends_the_go_ahead_before_the_handshake():
    server, _ = _server()
    _add_starttls(server)
    server.receive(b"EHLO a.b\r\n")
    conn = FakeTlsConnection(ok=True)
    assert perform(conn, server, server.receive(b"STARTTLS\r\n"))
    assert conn.sent == [b"220 TLS go ahead\r\n"] and conn.wrapped and server.tls_active


def test_perform_failed_handshake_ends_the_dialogue():
    server, _ = _server()
    _add_starttls(server)
    server.receive(b"EHLO a.b\r\n")
    conn = FakeTlsConnection(ok=False)
    assert not perform(conn, server, server.receive(b"STARTTLS\r\n"))
    assert server.closed and not server.tls_active


def _readline(f) -> bytes:
    reply = b""
    while True:
        line = f.readline()
        reply += line
        if not line or line[3:4] != b"-":
            return reply


def test_real_tls_handshake_through_the_socket_loop(tmp_path):
    files = make_cert(tmp_path, "localhost")
    ctx = server_context(files)
    server, handler = _server()
    _add_starttls(server)
    ours, theirs = socket.socketpair()
    ours.settimeout(10)
    theirs.settimeout(10)
    conn = Connection(ours, lambda s: ctx.wrap_socket(s, server_side=True))
    loop = threading.Thread(target=run_dialogue, args=(conn, server, 10.0))
    loop.start()
    try:
        theirs.sendall(b"EHLO a.b\r\n")
        f = theirs.makefile("rb")
        assert _readline(f).startswith(b"250-mx.test Hello a.b")
        theirs.sendall(b"STARTTLS\r\nMAIL FROM:<evil@x.y>\r\n")
        assert _readline(f) == b"220 TLS go ahead\r\n"
        tls = client_context(files.ca).wrap_socket(theirs, server_hostname="localhost")
        tf = tls.makefile("rb")
        tls.sendall(b"EHLO c.d\r\n")
        assert _readline(tf).startswith(b"250-mx.test Hello c.d")
        tls.sendall(b"MAIL FROM:<a@b.c>\r\nQUIT\r\n")
        assert _readline(tf) == b"250 OK\r\n"
        assert _readline(tf) == b"221 mx.test closing connection\r\n"
        tls.close()
    finally:
        loop.join(10)
        ours.close()
        theirs.close()
    assert not loop.is_alive()
    assert handler.mails == ["a@b.c"]
    assert isinstance(conn.sock, ssl.SSLSocket)
