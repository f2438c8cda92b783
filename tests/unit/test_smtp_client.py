"""SmtpClient against a scripted SMTP server on 127.0.0.1 (real sockets, threads).

``ScriptedServer`` is also used by the smtp transport tests.
"""
from __future__ import annotations

import errno
import socket
import threading
import time
from dataclasses import dataclass, field

import pytest

from pymta.smtp.client import (
    ReplyParser,
    SmtpClient,
    SmtpClosed,
    SmtpConnectError,
    SmtpFormatError,
    SmtpReply,
    SmtpTimeout,
    parse_ehlo,
)

Reply = tuple[int, str]


@dataclass
class Received:
    sender: str
    recipients: list[str]
    raw: bytes            # as on the wire, dot-stuffed, CRLF, without the final ".\r\n"
    mail_line: str = ""

    @property
    def unstuffed(self) -> bytes:
        lines = self.raw.split(b"\r\n")
        return b"\r\n".join(ln[1:] if ln.startswith(b".") else ln for ln in lines)


@dataclass
class ScriptedServer:
    """A small SMTP server whose replies are chosen by the test.

    ``banner`` and ``ehlo`` are replies (multi-line text with "\\n"); ``rcpt`` maps a
    recipient to its reply (default 250); ``mail``, ``data``, ``dot`` are replies.
    ``close_at`` drops the connection at "connect", "mail", "rcpt" or "dot";
    ``stall_at`` stops answering there (for timeouts).  ``chunks`` records every recv().
    """

    banner: Reply = (220, "test ESMTP ready")
    ehlo: Reply | None = (250, "test\nPIPELINING\nSIZE 100000\n8BITMIME")
    helo: Reply = (250, "test")
    mail: Reply = (250, "OK")
    rcpt: dict[str, Reply] = field(default_factory=dict)
    data: Reply = (354, "go ahead")
    dot: Reply = (250, "OK id=1abc-000001-AB")
    starttls: Reply = (500, "unrecognized command")     # a refusal only (no TLS here)
    close_at: str | None = None
    stall_at: str | None = None
    chunks: list[bytes] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    messages: list[Received] = field(default_factory=list)
    connections: int = 0
    peers: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop = True
        try:
            socket.create_connection(("127.0.0.1", self.port), 1).close()
        except OSError:
            pass
        self._thread.join(2)
        self.sock.close()

    def _loop(self) -> None:
        while True:
            conn, peer = self.sock.accept()
            if self._stop:
                conn.close()
                return
            self.connections += 1
            self.peers.append(peer)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _fmt(reply: Reply) -> bytes:
        code, text = reply
        lines = text.split("\n")
        return b"".join(f"{code}{'-' if i < len(lines) - 1 else ' '}{ln}\r\n".encode()
                        for i, ln in enumerate(lines))

    def _serve(self, conn: socket.socket) -> None:
        buf = b""

        def readline() -> bytes | None:
            nonlocal buf
            while b"\n" not in buf:
                d = conn.recv(65536)
                if not d:
                    return None
                self.chunks.append(d)
                buf += d
            line, buf = buf.split(b"\n", 1)
            return line.rstrip(b"\r")

        def stall() -> None:
            time.sleep(3)

        try:
            if self.close_at == "connect":
                return
            conn.sendall(self._fmt(self.banner))
            sender, rcpts, mail_line, have_mail = "", [], "", False
            while True:
                line = readline()
                if line is None:
                    return
                cmd = line.decode()
                self.commands.append(cmd)
                verb = cmd[:4].upper()
                if verb == "EHLO":
                    conn.sendall(self._fmt(self.ehlo) if self.ehlo else b"500 unknown\r\n")
                elif verb == "HELO":
                    conn.sendall(self._fmt(self.helo))
                elif verb == "MAIL":
                    if self.close_at == "mail":
                        return
                    if self.stall_at == "mail":
                        stall()
                        return
                    sender = cmd.split("<", 1)[1].split(">", 1)[0]
                    mail_line, rcpts = cmd, []
                    have_mail = self.mail[0] // 100 == 2
                    conn.sendall(self._fmt(self.mail))
                elif verb == "RCPT":
                    if self.close_at == "rcpt":
                        return
                    r = cmd.split("<", 1)[1].split(">", 1)[0]
                    if not have_mail:
                        conn.sendall(b"503 MAIL first\r\n")
                        continue
                    reply = self.rcpt.get(r, (250, "Accepted"))
                    if reply[0] // 100 == 2:
                        rcpts.append(r)
                    conn.sendall(self._fmt(reply))
                elif verb == "DATA":
                    if not rcpts:
                        conn.sendall(b"503 no valid recipients\r\n")
                        continue
                    conn.sendall(self._fmt(self.data))
                    if self.data[0] != 354:
                        continue
                    body = []
                    while True:
                        ln = readline()
                        if ln is None:
                            return
                        if ln == b".":
                            break
                        body.append(ln)
                    if self.close_at == "dot":
                        return
                    if self.stall_at == "dot":
                        stall()
                        return
                    raw = b"".join(b + b"\r\n" for b in body)
                    have_mail = False
                    if self.dot[0] // 100 == 2:
                        self.messages.append(Received(sender, rcpts, raw, mail_line))
                    conn.sendall(self._fmt(self.dot))
                elif cmd.upper() == "STARTTLS":
                    conn.sendall(self._fmt(self.starttls))
                elif verb == "RSET":
                    rcpts, have_mail = [], False
                    conn.sendall(b"250 Reset OK\r\n")
                elif verb == "QUIT":
                    conn.sendall(b"221 bye\r\n")
                    return
                else:
                    conn.sendall(b"500 unrecognized command\r\n")
        except OSError:
            pass
        finally:
            conn.close()


@pytest.fixture
def server():
    servers: list[ScriptedServer] = []

    def make(**kw) -> ScriptedServer:
        s = ScriptedServer(**kw)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


def _client(**kw) -> SmtpClient:
    kw.setdefault("connect_timeout", 5)
    kw.setdefault("command_timeout", 5)
    return SmtpClient(**kw)


def _send(cl: SmtpClient, body: bytes) -> SmtpReply:
    return cl.send_data(lambda s: (s.sendall(body), len(body))[1])[0]


# -- sans-IO parts -----------------------------------------------------------------
def test_reply_parser_multiline_and_split_feeds():
    p = ReplyParser()
    assert p.feed(b"250-first\r\n250-sec") == []
    replies = p.feed(b"ond\r\n250 last\r\n220 next\r\n")
    assert [r.code for r in replies] == [250, 220]
    assert replies[0].lines == ["250-first", "250-second", "250 last"]
    assert replies[0].text == "250-first\n250-second\n250 last"


def test_reply_parser_rejects_garbage_and_mixed_codes():
    with pytest.raises(SmtpFormatError):
        ReplyParser().feed(b"hello there\r\n")
    with pytest.raises(SmtpFormatError):
        ReplyParser().feed(b"250-a\r\n251 b\r\n")
    with pytest.raises(SmtpFormatError):      # full-width digits are not a reply code
        ReplyParser().feed("\uff12\uff15\uff10 ok\r\n".encode())


def test_bare_code_line_is_a_complete_reply():
    assert ReplyParser().feed(b"250\r\n")[0].code == 250


def test_parse_ehlo_extensions():
    r = SmtpReply(250, ["250-mx.example", "250-SIZE 52428800", "250-pipelining",
                        "250 8BITMIME"])
    assert parse_ehlo(r) == {"SIZE": "52428800", "PIPELINING": "", "8BITMIME": ""}


# -- real sockets ----------------------------------------------------------------------
def test_pipelined_transaction_in_one_write(server):
    s = server()
    cl = _client()
    assert cl.connect("127.0.0.1", s.port).code == 220
    reply, cmd = cl.hello("client.example")
    assert reply.ok() and cmd == "EHLO client.example"
    assert cl.has("PIPELINING") and cl.extensions["SIZE"] == "100000"
    t = cl.mail_rcpt_data("a@x", ["b@y", "c@y"], size=1234)
    assert t.pipelined and t.mail.ok() and [r.code for r in t.rcpts] == [250, 250]
    assert t.data.code == 354
    # MAIL, both RCPTs and DATA arrived in a single segment
    assert any(b"MAIL FROM:<a@x> SIZE=1234\r\n" in c and c.endswith(b"DATA\r\n")
               for c in s.chunks)
    assert _send(cl, b"Subject: t\r\n\r\nhi\r\n.\r\n").text == "250 OK id=1abc-000001-AB"
    cl.quit()
    assert s.messages[0].recipients == ["b@y", "c@y"]
    assert s.commands[-1] == "QUIT"


def test_without_pipelining_commands_wait_for_replies(server):
    s = server(ehlo=(250, "test\nSIZE"), rcpt={"bad@y": (550, "no such user")})
    cl = _client()
    cl.connect("127.0.0.1", s.port)
    cl.hello("me")
    t = cl.mail_rcpt_data("a@x", ["bad@y"], size=10)
    assert not t.pipelined and t.rcpts[0].code == 550
    assert t.data is None            # nothing accepted: DATA not sent
    assert "DATA" not in s.commands
    assert all(c.count(b"\r\n") == 1 for c in s.chunks)   # one command per write
    cl.quit()


def test_size_and_8bitmime_only_when_advertised(server):
    s = server(ehlo=(250, "test\n8BITMIME"))
    cl = _client()
    cl.connect("127.0.0.1", s.port)
    cl.hello("me")
    cl.mail_rcpt_data("a@x", ["b@y"], size=99, body_8bit=True)
    assert s.commands[1] == "MAIL FROM:<a@x> BODY=8BITMIME"
    cl.close()


def test_ehlo_5xx_falls_back_to_helo(server):
    s = server(ehlo=None)
    cl = _client()
    cl.connect("127.0.0.1", s.port)
    reply, cmd = cl.hello("me")
    assert reply.code == 250 and cmd == "HELO me" and not cl.esmtp
    assert s.commands[:2] == ["EHLO me", "HELO me"]
    cl.quit()


def test_multiline_banner_is_one_reply(server):
    s = server(banner=(220, "line one\nline two\nline three"))
    cl = _client()
    r = cl.connect("127.0.0.1", s.port)
    assert r.lines == ["220-line one", "220-line two", "220 line three"]
    assert cl.hello("me")[0].code == 250
    cl.quit()


def test_connection_refused():
    from tests.support.ports import free_port
    with pytest.raises(SmtpConnectError) as ei:
        _client().connect("127.0.0.1", free_port())
    assert ei.value.errno == errno.ECONNREFUSED
    assert ei.value.message == "Connection refused"


def test_command_timeout(server):
    s = server(stall_at="mail", ehlo=(250, "test"))
    cl = _client(command_timeout=0.3)
    cl.connect("127.0.0.1", s.port)
    cl.hello("me")
    with pytest.raises(SmtpTimeout) as ei:
        cl.mail_rcpt_data("a@x", ["b@y"])
    assert ei.value.message == "SMTP timeout after MAIL FROM:<a@x>"
    assert ei.value.errno == errno.ETIMEDOUT
    cl.close()


def test_remote_close_is_reported(server):
    s = server(close_at="rcpt")
    cl = _client()
    cl.connect("127.0.0.1", s.port)
    cl.hello("me")
    with pytest.raises(SmtpClosed) as ei:
        cl.mail_rcpt_data("a@x", ["b@y"])
    assert ei.value.message == \
        "Remote host closed connection in response to pipelined RCPT TO:<b@y>"
    cl.close()


def test_tcp_nodelay_follows_the_transport_option(server):
    s = server()
    for nodelay in (True, False):
        cl = SmtpClient(connect_timeout=5, command_timeout=5, nodelay=nodelay)
        assert cl.connect("127.0.0.1", s.port).code == 220
        raw = cl.sock
        assert isinstance(raw, socket.socket)
        assert bool(raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)) is nodelay
        cl.quit()
