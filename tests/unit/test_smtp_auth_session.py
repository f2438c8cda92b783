"""SMTP AUTH in the session (pymta.smtp.auth_glue): every recorded Exim 4.96 dialogue in
tests/data/auth/ replayed through a real SmtpSession gives the same replies and log lines;
plus the ACL, advertising, variables, A= and delay behaviour."""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
from pathlib import Path

import pytest

from pymta.config import load_config
from pymta.smtp.session import SmtpSession, prepare_session
from tests.support.recording_log import RecordingLog

DATA = Path(__file__).resolve().parents[1] / "data" / "auth"
EXIM_CONF = (DATA / "exim.conf").read_text()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


PLAIN_OK = "AUTH PLAIN " + b64(b"\0alice\0secret")
PLAIN_BAD = "AUTH PLAIN " + b64(b"\0alice\0wrong")


class Client:
    """A session as -bh runs it (host checking: nothing is spooled), driven line by line."""

    def __init__(self, tmp_path: Path, extra: str = "", conf: str = EXIM_CONF,
                 peer: str = "127.0.0.1") -> None:
        spool = tmp_path / "spool"
        spool.mkdir(exist_ok=True)
        text = conf.replace("SPOOL", str(spool))
        main, _, rest = text.partition("begin ")
        path = tmp_path / "pymta.conf"
        path.write_text(main + extra + "\n" + ("begin " + rest if rest else ""))
        self.config = load_config(str(path))
        self.log = RecordingLog()
        self.sleeps: list[float] = []
        self.session = SmtpSession(self.config, self.log, (peer, 40000), ("127.0.0.1", 25),
                                   sleep=self.sleeps.append)
        self.session.host_checking = True
        self.server = prepare_session(self.session)
        self.banner = self.server.greet("mx.example.test ESMTP")

    def send(self, line: str) -> list[str]:
        out = self.server.feed(line.encode("utf-8", "surrogateescape") + b"\r\n")
        return out.decode().split("\r\n")[:-1]

    @property
    def v(self) -> dict[str, str]:
        return self.session.ctx.variables

    def logged(self) -> list[str]:
        return [t for _k, t in self.log.lines]


# --------------------------------------------------------------------- Exim's recordings
CRAM = {"cram_ok": ("alice", "secret"), "cram_bad_digest": ("alice", "wrong"),
        "cram_unknown_user": ("bob", "secret")}


# Exim's transcripts where pymta differs on purpose (tested on their own below).
DIFFERENT_ON_PURPOSE = {
    # Exim reads the rest of an over-long response as a command; pymta drops it
    "overlong_response": "test_overlong_response_then_next_command",
}


def _transcripts() -> list[Path]:
    return sorted(p for p in DATA.glob("*.txt") if p.stem not in DIFFERENT_ON_PURPOSE)


def _cram(reply: str) -> str:
    """A CRAM-MD5 challenge carries a pid and a time: compare its form only."""
    if reply.startswith("334 ") and len(reply) > 4:
        text = base64.b64decode(reply[4:]).decode()
        if re.fullmatch(r"<\d+\.\d+@mx\.example\.test>", text):
            return "334 <pid.time@mx.example.test>"
    return reply


@pytest.mark.parametrize("path", _transcripts(), ids=lambda p: p.stem)
def test_session_replies_and_logs_match_exim(tmp_path, path: Path) -> None:
    """Replies (the EHLO reply only for its AUTH line: pymta's other keywords differ) and
    every log line Exim wrote, in order."""
    c = Client(tmp_path)
    expected: list[str] = []
    got: list[str] = []
    lines = path.read_text().splitlines()
    last: list[str] = []
    for i, line in enumerate(lines):
        if not line.startswith("C: "):
            continue
        sent = line[3:]
        m = re.fullmatch(r"<(\d+) x (.)>", sent)
        if m:
            sent = m.group(2) * int(m.group(1))
        if path.stem in CRAM and last and last[-1].startswith("334 "):
            user, secret = CRAM[path.stem]
            challenge = base64.b64decode(last[-1][4:])
            digest = hmac.new(secret.encode(), challenge, hashlib.md5).hexdigest()
            sent = b64(f"{user} {digest}".encode())
        reply = []
        for x in lines[i + 1:]:
            if x.startswith("C: "):
                break
            if x.startswith("S: ") and not x.startswith("S: 221 "):
                reply.append(x[3:])
        last = c.send(sent)
        if sent.upper().startswith("EHLO"):
            reply = [x for x in reply if "AUTH" in x]
            last_got = [x for x in last if "AUTH" in x]
        else:
            last_got = last
        expected += [_cram(x) for x in reply]
        got += [_cram(x) for x in last_got]
    assert got == expected
    exim_log = [x[3:] for x in lines if x.startswith("L: ")]
    assert c.logged() == exim_log


# --------------------------------------------------------------------- behaviour
def test_success_sets_variables_protocol_and_arrival_fields(tmp_path) -> None:
    c = Client(tmp_path)
    c.send("EHLO client.example")
    assert c.v["received_protocol"] == "esmtp"
    assert c.send(PLAIN_OK) == ["235 Authentication succeeded"]
    assert c.v["authenticated_id"] == "alice"
    assert c.v["sender_host_authenticated"] == "plain"
    assert c.v["received_protocol"] == "esmtpa"
    assert c.v["authentication_failed"] == ""
    c.send("MAIL FROM:<a@b.example> AUTH=alice+40example.test")
    assert c.v["authenticated_sender"] == "alice@example.test"
    c.send("RCPT TO:<r@mx.example.test>")
    c.send("DATA")
    assert c.send("Subject: t\r\n\r\nbody\r\n.") [0].startswith("250 OK id=")
    arrival = next(t for t in c.logged() if t.startswith("<= "))
    assert " P=esmtpa " in arrival and " A=plain:alice " in arrival
    # A new EHLO keeps the authentication (and advertises nothing, as Exim).
    c.send("EHLO client.example")
    assert c.v["received_protocol"] == "esmtpa"
    assert c.v["authenticated_sender"] == ""


def test_failure_sets_fail_id_and_delays_later_failures(tmp_path) -> None:
    c = Client(tmp_path)
    c.send("EHLO client.example")
    for n in range(1, 9):
        assert c.send(PLAIN_BAD) == ["535 Incorrect authentication data"]
    assert c.session.auth_failures == 8
    # The first failure is answered at once; then 1, 2, ... seconds, at most 5.
    assert c.sleeps == [1, 2, 3, 4, 5, 5, 5]
    assert c.v["authenticated_fail_id"] == "alice"
    assert c.v["authentication_failed"] == "1"
    assert c.send(PLAIN_OK) == ["235 Authentication succeeded"]


def test_cancel_and_bad_base64_count_as_failures(tmp_path) -> None:
    c = Client(tmp_path)
    c.send("EHLO client.example")
    assert c.send("AUTH LOGIN") == ["334 VXNlcm5hbWU6"]
    assert c.send("*") == ["501 Authentication cancelled"]
    assert c.send("AUTH PLAIN !!!") == ["501 Invalid base64 data"]
    assert c.session.auth_failures == 2 and c.sleeps == [1]
    assert c.logged() == [
        "login authenticator failed for (client.example) [127.0.0.1]: "
        "501 Authentication cancelled",
        "plain authenticator failed for (client.example) [127.0.0.1]: 501 Invalid base64 data"]


def test_overlong_response_then_next_command(tmp_path) -> None:
    """Exim cuts the response at its buffer size (501) and reads the rest of the line as
    a command (500, checked against exim4 -bh); pymta throws the rest of the line away,
    so nothing in it can become a command.  The session goes on."""
    c = Client(tmp_path)
    c.send("EHLO client.example")
    assert c.send("AUTH PLAIN") == ["334 "]
    assert c.send("A" * 20000) == ["501 Invalid base64 data"]
    assert c.send(PLAIN_OK) == ["235 Authentication succeeded"]


ACL_AUTH = "acl_smtp_auth = acl_auth\n"


@pytest.mark.parametrize("acl,reply,logline", [
    ("  deny message = no auth for you\n", "503 no auth for you",
     "H=(client.example) [127.0.0.1] rejected AUTH PLAIN: no auth for you"),
    ("  deny\n", "503 Administrative prohibition",
     "H=(client.example) [127.0.0.1] rejected AUTH PLAIN"),
    ("  defer\n", "451 Temporary local problem - please try later",
     "H=(client.example) [127.0.0.1] temporarily rejected AUTH PLAIN"),
    ("  deny message = 554 go away\n", "554 go away",
     "H=(client.example) [127.0.0.1] rejected AUTH PLAIN: 554 go away"),
])
def test_acl_smtp_auth_refusals(tmp_path, acl: str, reply: str, logline: str) -> None:
    """Replies and log lines as exim4 -bh gives them for these ACLs."""
    conf = EXIM_CONF.replace("begin authenticators", f"begin acl\nacl_auth:\n{acl}"
                             "begin authenticators")
    c = Client(tmp_path, ACL_AUTH, conf=conf)
    c.send("EHLO client.example")
    assert c.send("AUTH  PLAIN " + b64(b"\0alice\0secret")) == [reply]
    assert c.logged() == [logline]
    assert c.v["sender_host_authenticated"] == ""


def test_acl_smtp_auth_sees_the_argument(tmp_path) -> None:
    conf = EXIM_CONF.replace("begin authenticators", "begin acl\nacl_auth:\n"
                             "  deny condition = ${if match{$smtp_command_argument}{^LOGIN}}\n"
                             "  accept\nbegin authenticators")
    c = Client(tmp_path, ACL_AUTH, conf=conf)
    c.send("EHLO client.example")
    assert c.send("AUTH LOGIN") == ["503 Administrative prohibition"]
    assert c.send(PLAIN_OK) == ["235 Authentication succeeded"]


def test_advertise_hosts_and_condition(tmp_path) -> None:
    c = Client(tmp_path, "auth_advertise_hosts = ${if eq{$tls_in_cipher}{}{}{*}}",
               conf=EXIM_CONF.replace("auth_advertise_hosts = *\n", ""))
    ehlo = c.send("EHLO client.example")
    assert not [x for x in ehlo if "AUTH" in x]
    assert c.send(PLAIN_OK) == ["503 AUTH command used when not advertised"]
    conf = EXIM_CONF.replace("  public_name = LOGIN\n", "  public_name = LOGIN\n"
                             "  server_advertise_condition = ${if eq{$sender_helo_name}{x}}\n")
    c = Client(tmp_path, conf=conf)
    assert "250-AUTH PLAIN CRAM-MD5 X-WEIRD X-BROKEN" in c.send("EHLO client.example")
    assert c.send("AUTH LOGIN") == ["504 LOGIN authentication mechanism not supported"]
    assert "250-AUTH PLAIN LOGIN CRAM-MD5 X-WEIRD X-BROKEN" in c.send("EHLO x")
    c = Client(tmp_path, peer="192.0.2.1",
               conf=EXIM_CONF.replace("auth_advertise_hosts = *", "auth_advertise_hosts = "
                                      "127.0.0.1"))
    assert not [x for x in c.send("EHLO client.example") if "AUTH" in x]


def test_mail_auth_condition(tmp_path) -> None:
    conf = EXIM_CONF.replace("  server_set_id = $auth2\nlogin:",
                             "  server_set_id = $auth2\n  server_mail_auth_condition = "
                             "${if eq{$authenticated_sender}{alice@example.test}}\nlogin:")
    c = Client(tmp_path, conf=conf)
    c.send("EHLO client.example")
    c.send(PLAIN_OK)
    assert c.send("MAIL FROM:<a@b.example> AUTH=bob@example.test") == ["250 OK"]
    assert c.v["authenticated_sender"] == ""
    assert c.logged()[-1] == ('ignoring AUTH=bob@example.test from H=(client.example) '
                              '[127.0.0.1] (server_mail_auth_condition failed: '
                              'authenticated ID="alice")')
    c.send("RSET")
    c.send("MAIL FROM:<a@b.example> AUTH=alice@example.test")
    assert c.v["authenticated_sender"] == "alice@example.test"


def test_no_authenticators_auth_is_not_advertised(tmp_path) -> None:
    c = Client(tmp_path, conf=EXIM_CONF.split("begin authenticators")[0])
    assert not [x for x in c.send("EHLO client.example") if "AUTH" in x]
    assert c.send(PLAIN_OK) == ["503 AUTH command used when not advertised"]


def test_protocol_errors_count_towards_the_limit(tmp_path) -> None:
    c = Client(tmp_path, "smtp_max_synprot_errors = 2")
    c.send("EHLO client.example")
    assert c.send("AUTH FOO") == ["504 FOO authentication mechanism not supported"]
    assert c.send("AUTH B@D") == ["501 invalid character in authentication mechanism name"]
    assert c.send("AUTH FOO") == ["504-FOO authentication mechanism not supported",
                                  "504 Too many syntax or protocol errors"]
    assert c.server.closed
