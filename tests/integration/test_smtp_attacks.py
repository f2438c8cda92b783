"""The SMTP attack catalogue, each over a real socket against the daemon:

- end-of-data smuggling: only CRLF.CRLF ends DATA (as in Exim 4.96, whose replies are
  recorded in tests/data/smtp_limits/smuggling.exim.out); a bare CR is stored as a line
  end, so what is relayed has CRLF line ends only and a dot-stuffed "." line;
- CR, LF and NUL in quoted local parts never reach the queue;
- a line over 16 KiB is refused whole, never split into a second command (Exim 4.96
  splits it: tests/data/smtp_limits/long_line.exim.out);
- CR/LF injected through HELO, MAIL parameters and AUTH= never make a second log line.

Plaintext pipelined after STARTTLS is tested in test_starttls_server.py
(test_plaintext_pipelined_after_starttls_is_discarded).
"""
from __future__ import annotations

import ast
import base64
import re
import socket
import threading

import pytest

from tests.support.smtp_replay import (
    DATA_DIR,
    connect_when_free,
    exim_replies,
    limits_daemon,
    replay,
    same_dialogue,
)

FAKE_ENDS = [b"\n.\n", b"\r.\r", b"\r\n.\n", b"\n.\r\n", b"\r.\r\n"]
# more that are no end either: a CR or NUL before the CRLF, a space before the dot
MORE_FAKE_ENDS = [b"\r\n.\r\r\n", b"\r\n.\x00\r\n", b"\r\n .\r\n", b"\r\n..\r\n"]
SMUGGLED = b"MAIL FROM:<evil@x.y>\r\nRCPT TO:<v@y.z>\r\nDATA\r\nSubject: evil\r\n\r\nx\r\n"


def _spooled_body(d, msgid: str) -> bytes:
    data = next((d.spool / "input").rglob(f"{msgid}-D")).read_bytes()
    return data.split(b"\n", 1)[1]


def _log_lines_are_whole(d) -> None:
    for name in ("main", "reject"):
        for line in d.log(name).splitlines():
            assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", line), (name, line)
            assert "\r" not in line


def test_smuggling_replies_are_exims(tmp_path):
    d = limits_daemon(tmp_path)
    same_dialogue(replay(d.port, "smuggling"), exim_replies("smuggling"))
    assert len(d.queue()) == 5


def test_what_is_spooled_compared_with_exim(tmp_path):
    """Exim 4.96 stores a bare CR as a line end and a bare LF before a dot as a space
    (tests/data/smtp_limits/smuggling.exim-spool.txt); pymta stores both as line ends.
    Neither keeps a CR, and the smuggled commands are data in both."""
    exim = [ast.literal_eval(line) for line in
            (DATA_DIR / "smuggling.exim-spool.txt").read_text().splitlines()]
    d = limits_daemon(tmp_path)
    replay(d.port, "smuggling")
    ours = [_spooled_body(d, m) for m in d.queue()]       # ids sort by arrival
    assert len(ours) == len(exim) == len(FAKE_ENDS)
    for fake_end, mine, exims in zip(FAKE_ENDS, ours, exim):
        for body in (mine, exims):
            assert b"\r" not in body
            assert b"MAIL FROM:<evil@x.y>\nRCPT TO:<v@y.z>\nDATA\nx\n" in body
        if b"\n." not in fake_end:              # the bare-CR variants: the very same
            assert mine == exims


@pytest.mark.parametrize("fake_end", FAKE_ENDS + MORE_FAKE_ENDS, ids=repr)
def test_only_crlf_dot_crlf_ends_the_data(tmp_path, fake_end):
    d = limits_daemon(tmp_path)
    with connect_when_free(d.port) as c:
        c.cmd("EHLO client.test")
        c.cmd("MAIL FROM:<a@b.c>")
        c.cmd("RCPT TO:<d@e.f>")
        assert c.cmd("DATA").startswith("354")
        c.send(b"Subject: s\r\n\r\nbody" + fake_end + SMUGGLED)
        assert c.reply(timeout=1.0) == ""             # still in the first message
        reply = c.cmd(b"tail\r\n.")
        assert reply.startswith("250 OK id=")
        assert c.cmd("QUIT").startswith("221 ")
    [msgid] = d.queue()
    body = _spooled_body(d, msgid)
    assert b"\r" not in body                           # a bare CR became a line end
    assert b"MAIL FROM:<evil@x.y>\n" in body and body.endswith(b"tail\n")


class RawRecorder:
    """A minimal SMTP server that keeps the exact bytes of every DATA it receives."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.port = self.sock.getsockname()[1]
        self.data: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self._session(conn)

    def _session(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        buf = b""
        conn.sendall(b"220 recorder\r\n")
        while True:
            while b"\r\n" not in buf:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            line, buf = buf.split(b"\r\n", 1)
            verb = line[:4].upper()
            if verb == b"DATA":
                conn.sendall(b"354 go\r\n")
                while b"\r\n.\r\n" not in b"\r\n" + buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                end = (b"\r\n" + buf).index(b"\r\n.\r\n")
                self.data.append(buf[:end + 3])
                buf = buf[end + 3:]
                conn.sendall(b"250 kept\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            elif verb == b"EHLO":
                conn.sendall(b"250 recorder\r\n")
            else:
                conn.sendall(b"250 OK\r\n")

    def close(self) -> None:
        self.sock.close()


RELAY = """\
primary_hostname = mx.test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
acl_smtp_rcpt = acl_rcpt
queue_only
begin acl
acl_rcpt:
  accept
begin routers
out:
  driver = manualroute
  route_list = * 127.0.0.1::RECORDER
  self = send
  transport = smtp
begin transports
smtp:
  driver = smtp
  allow_localhost
"""


def test_what_is_relayed_is_unambiguous(tmp_path):
    recorder = RawRecorder()
    try:
        d = limits_daemon(tmp_path, config=RELAY.replace("RECORDER", str(recorder.port)))
        with connect_when_free(d.port) as c:
            c.cmd("EHLO client.test")
            for fake_end in FAKE_ENDS + MORE_FAKE_ENDS:
                c.cmd("MAIL FROM:<a@b.c>")
                c.cmd("RCPT TO:<d@e.f>")
                assert c.cmd("DATA").startswith("354")
                reply = c.cmd(b"Subject: s\r\n\r\nbody" + fake_end + SMUGGLED + b".")
                assert reply.startswith("250 OK id=")
        count = len(FAKE_ENDS + MORE_FAKE_ENDS)
        assert len(d.queue()) == count
        assert d.run("-qf").returncode == 0
        assert len(recorder.data) == count, d.log()
    finally:
        recorder.close()
    for raw in recorder.data:
        # every line ends in CRLF; no bare CR or LF; the smuggled "." is dot-stuffed,
        # so the only "." line is the real end
        assert raw.endswith(b"\r\n.\r\n")
        lines = raw[:-3].split(b"\r\n")
        assert lines[-1] == b""
        assert all(b"\r" not in ln and b"\n" not in ln for ln in lines)
        assert b"." not in lines
        assert b"MAIL FROM:<evil@x.y>" in lines


@pytest.mark.parametrize("command,reply", [
    (b'MAIL FROM:<"a\rb"@test.example>',
     "501 bare CR characters are not allowed in SMTP commands"),
    (b'MAIL FROM:<"a\0b"@test.example>',
     "501 NUL characters are not allowed in SMTP commands"),
    (b'MAIL FROM:<"a\tb"@test.example>', '501 <"a\tb"@test.example>: malformed address'),
    (b'RCPT TO:<"a\rb"@test.example>',
     "501 bare CR characters are not allowed in SMTP commands"),
    (b'RCPT TO:<"a\x00b"@test.example>',
     "501 NUL characters are not allowed in SMTP commands"),
    (b'RCPT TO:<"a\x1bb"@test.example>', '501 <"a\x1bb"@test.example>: malformed address'),
])
def test_control_characters_in_quoted_local_parts_are_refused(tmp_path, command, reply):
    d = limits_daemon(tmp_path)
    with connect_when_free(d.port) as c:
        c.cmd("EHLO client.test")
        if command.startswith(b"RCPT"):
            assert c.cmd("MAIL FROM:<a@b.c>") == "250 OK"
        assert c.cmd(command) == reply
        assert c.cmd("QUIT").startswith("221 ")
    assert d.queue() == []
    _log_lines_are_whole(d)


def test_lf_inside_a_quoted_local_part_ends_the_command(tmp_path):
    d = limits_daemon(tmp_path)
    with connect_when_free(d.port) as c:
        c.cmd("EHLO client.test")
        assert c.cmd("MAIL FROM:<a@b.c>") == "250 OK"
        c.send(b'RCPT TO:<"a\nRCPT TO:<evil@x.y>"@test.example>\r\n')
        first, second = c.reply(), c.reply()
        assert first.startswith("501 ") and second.startswith("501 ")
        assert c.cmd("DATA").startswith("503")      # no recipient was accepted
    assert d.queue() == []


@pytest.mark.parametrize("offset", [-2, -1, 0, 1, 2])
@pytest.mark.parametrize("pieces", [1, 3])
def test_an_over_long_line_is_never_split_into_a_second_command(tmp_path, offset, pieces):
    d = limits_daemon(tmp_path)
    # "MAIL FROM:" lands on Exim's 16384-byte buffer boundary (plus offset)
    line = b"NOOP " + b"A" * (16384 - 5 + offset) + b"MAIL FROM:<evil@x.y>\r\n"
    with connect_when_free(d.port) as c:
        c.cmd("EHLO client.test")
        step = len(line) // pieces + 1
        for i in range(0, len(line), step):
            c.send(line[i:i + step])
        assert c.reply() == "500 line too long"
        assert c.cmd("RCPT TO:<v@y.z>") == "503 sender not yet given"
        assert c.cmd("NOOP") == "250 OK"


@pytest.mark.parametrize("pieces", [1, 4])
def test_an_over_long_auth_response_is_never_split_either(tmp_path, pieces):
    d = limits_daemon(tmp_path, config=AUTH_CONFIG)
    line = b"A" * 16384 + b"MAIL FROM:<evil@x.y>\r\n"
    with connect_when_free(d.port) as c:
        c.cmd("EHLO client.test")
        assert c.cmd("AUTH PLAIN") == "334 "
        step = len(line) // pieces + 1
        for i in range(0, len(line), step):
            c.send(line[i:i + step])
        assert c.reply() == "501 Invalid base64 data"
        assert c.cmd("RCPT TO:<v@y.z>") == "503 sender not yet given"
        token = base64.b64encode(b"\0alice\0secret").decode()
        assert c.cmd(f"AUTH PLAIN {token}").startswith("235 ")


def test_a_very_long_line_is_refused_once(tmp_path):
    d = limits_daemon(tmp_path)
    with connect_when_free(d.port) as c:
        c.cmd("EHLO client.test")
        c.send(b"NOOP " + b"A" * 200_000 + b"\r\n")
        assert c.reply() == "500 line too long"
        assert c.cmd("NOOP") == "250 OK"              # not counted four times over


def test_exim_splits_an_over_long_line_pymta_does_not(tmp_path):
    """Exim 4.96 answers the tail of a 16 KiB line as a second command; pymta refuses
    the line once and reads on from the next."""
    assert exim_replies("long_line")[2:4] == ["500 unrecognized command"] * 2
    d = limits_daemon(tmp_path)
    ours = replay(d.port, "long_line")
    assert ours[2:] == ["500 line too long", "250 OK",
                        "221 mx.test.example closing connection"]
    assert (DATA_DIR / "long_line.in").read_bytes().count(b"\r\n") == 4


AUTH_CONFIG = """\
primary_hostname = mx.test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
acl_smtp_rcpt = acl_rcpt
queue_only
auth_advertise_hosts = *
helo_accept_junk_hosts = *
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
begin authenticators
plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = ${if eq{$auth3}{secret}}
  server_set_id = $auth2
"""


def test_cr_lf_injection_never_makes_a_second_log_line(tmp_path):
    d = limits_daemon(tmp_path, config=AUTH_CONFIG)
    with connect_when_free(d.port) as c:
        bare = "501 bare CR characters are not allowed in SMTP commands"
        assert c.cmd(b"EHLO x.test\r2026-01-01 00:00:00 fake line") == bare
        assert c.cmd("EHLO x.test").startswith("250-")
        assert c.cmd(b"MAIL FROM:<a@b.c> SIZE=10\rX=1") == bare
        # an encoded CR or LF is refused even where AUTH= would be ignored
        assert c.cmd("MAIL FROM:<a@b.c> AUTH=x+0D+0A2026-01-01+2000:00:00+20fake") == \
            "501 invalid data for AUTH"
        assert c.cmd("MAIL FROM:<a@b.c> AUTH=bob+40b.c") == "250 OK"   # ignored
        assert c.cmd("RSET") == "250 Reset OK"
        token = base64.b64encode(b"\0alice\0secret").decode()
        assert c.cmd(f"AUTH PLAIN {token}").startswith("235 ")
        assert c.cmd("MAIL FROM:<a@b.c> AUTH=x+0D+0AX-Injected:+20yes") == \
            "501 invalid data for AUTH"
        assert c.cmd("MAIL FROM:<a@b.c> AUTH=x+00y") == "501 invalid data for AUTH"
        assert c.cmd("MAIL FROM:<a@b.c> AUTH=bob+40b.c") == "250 OK"
        assert c.cmd("QUIT").startswith("221 ")
    log = d.log()
    assert "ignoring AUTH=bob+40b.c from H=(x.test) [127.0.0.1] (client not " \
        "authenticated)" in log
    assert "fake" not in log and "X-Injected" not in log
    _log_lines_are_whole(d)
