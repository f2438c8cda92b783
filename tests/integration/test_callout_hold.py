"""verify = recipient/callout=use_sender,hold in the running daemon, against the test SMTP
sink, compared with what Exim 4.96 did in the same scenarios
(tests/data/callout/exim-4.96-hold.txt): the recipient callouts of a message share one
connection, an immediate delivery sends DATA on that open transaction, and a connection
not used for delivery is closed with QUIT (pymta at the end of the message; Exim at the
next MAIL or the end of the session).  The test sink plays the remote host and counts
connections.
"""
from __future__ import annotations

import time
from pathlib import Path

from tests.support import certs
from tests.support.daemon import PymtaDaemon
from tests.support.sink import SmtpSink
from tests.support.smtp import SmtpTestClient
from tests.support.wait import wait_until

CONFIG = """
primary_hostname = test.example
spool_directory = SPOOL
log_file_path = SPOOL/log/%slog
acl_smtp_rcpt = rcpt
QUEUE_ONLY
begin acl
rcpt:
  require verify = recipient/callout=HOLD
  accept
begin routers
r1:
  driver = manualroute
  domains = remote.example : other.example
  route_list = * 127.0.0.1
  self = send
  transport = t
begin transports
t:
  driver = smtp
  port = SINK_PORT
  allow_localhost
begin retry
* * F,1h,10m
"""

BODY = b"Subject: t\r\n\r\nhello\r\n"
MAIL = "MAIL FROM:<s@sender.example>"


def _daemon(tmp_path: Path, sink: SmtpSink, queue_only: bool = False,
            hold: str = "use_sender,hold,no_cache") -> PymtaDaemon:
    return PymtaDaemon(CONFIG, tmp_path, macros={
        "SINK_PORT": str(sink.port), "HOLD": hold,
        "QUEUE_ONLY": "queue_only = true" if queue_only else "queue_only = false"})


def _sink() -> SmtpSink:
    return SmtpSink(rcpt_replies={"bad@remote.example": (550, "no such user")})


def _quit_seen(sink: SmtpSink, n: int = 1) -> bool:
    return wait_until(lambda: sink.commands.count("QUIT") >= n, timeout=10)


def test_two_recipients_one_connection_used_for_delivery(tmp_path: Path) -> None:
    with _sink() as sink, _daemon(tmp_path, sink) as d, SmtpTestClient(d.port) as c:
        c.banner()
        c.ehlo()
        assert c.cmd(MAIL)[0] == 250
        assert c.cmd("RCPT TO:<a@remote.example>") == (250, "Accepted")
        assert c.cmd("RCPT TO:<b@other.example>") == (250, "Accepted")
        assert sink.connections == 1
        code, text = c.data(BODY)
        assert code == 250
        msgid = text.split("id=")[1]
        assert sink.wait_for(1)
        assert _quit_seen(sink)
        assert sink.connections == 1
        assert sink.commands == ["EHLO test.example", MAIL, "RCPT TO:<a@remote.example>",
                                 "RCPT TO:<b@other.example>", "DATA", "QUIT"]
        assert sorted(sink.received()[0].recipients) == ["a@remote.example",
                                                         "b@other.example"]
        d.wait_for_log(rf"{msgid} Completed")
        log = [line.split(" ", 2)[2] for line in d.log().splitlines() if msgid in line]
        assert log[0].startswith(f"{msgid} <= s@sender.example ")
        assert log[1:] == [
            f'{msgid} => a@remote.example R=r1 T=t H=127.0.0.1 [127.0.0.1] '
            'C="250 OK id=sink"',
            f'{msgid} -> b@other.example R=r1 T=t H=127.0.0.1 [127.0.0.1] '
            'C="250 OK id=sink"',
            f"{msgid} Completed"]
        assert d.queue() == []


def test_not_delivered_at_once_leaves_no_connection(tmp_path: Path) -> None:
    with _sink() as sink, _daemon(tmp_path, sink, queue_only=True) as d, \
            SmtpTestClient(d.port) as c:
        c.banner()
        c.ehlo()
        assert c.cmd(MAIL)[0] == 250
        assert c.cmd("RCPT TO:<a@remote.example>")[0] == 250
        assert c.cmd("RCPT TO:<b@remote.example>")[0] == 250
        assert c.data(BODY)[0] == 250
        # The client is still connected: the callout connection is closed all the same.
        assert _quit_seen(sink)
        assert sink.commands == ["EHLO test.example", MAIL, "RCPT TO:<a@remote.example>",
                                 "RCPT TO:<b@remote.example>", "QUIT"]
        assert sink.received() == []
        assert len(d.queue()) > 0
        # A second message opens a connection of its own.
        assert c.cmd("MAIL FROM:<s2@sender.example>")[0] == 250
        assert c.cmd("RCPT TO:<c@remote.example>")[0] == 250
        assert sink.connections == 2
        c.cmd("RSET")
        assert _quit_seen(sink, 2)


def test_rset_and_refused_recipient(tmp_path: Path) -> None:
    with _sink() as sink, _daemon(tmp_path, sink) as d, SmtpTestClient(d.port) as c:
        c.banner()
        c.ehlo()
        assert c.cmd(MAIL)[0] == 250
        assert c.cmd("RCPT TO:<a@remote.example>")[0] == 250
        assert c.cmd("RSET")[0] == 250
        assert _quit_seen(sink)
        sink.clear()
        # As Exim: a refusal on the held connection ends it; the next recipient opens
        # another, and the delivery, which cannot use it for all, makes its own.
        assert c.cmd(MAIL)[0] == 250
        assert c.cmd("RCPT TO:<a@remote.example>")[0] == 250
        assert c.cmd("RCPT TO:<bad@remote.example>") == \
            (550, "Callout verification failed:\n550 no such user")
        assert c.cmd("RCPT TO:<b@remote.example>")[0] == 250
        assert c.data(BODY)[0] == 250
        assert sink.wait_for(1)
        assert _quit_seen(sink, 2)
        # (the delivery's own connection may stay open a while for reuse: no QUIT yet)
        assert sink.connections == 4
        assert sink.commands[:9] == [
            "EHLO test.example", MAIL, "RCPT TO:<a@remote.example>",
            "RCPT TO:<bad@remote.example>", "QUIT",
            "EHLO test.example", MAIL, "RCPT TO:<b@remote.example>", "QUIT"]
        assert sink.commands[9] == "EHLO test.example"
        assert sink.commands[10].startswith(f"{MAIL} SIZE=")
        assert sink.commands[11:14] == ["RCPT TO:<a@remote.example>",
                                        "RCPT TO:<b@remote.example>", "DATA"]
        d.wait_for_log(r'F=<s@sender.example> rejected RCPT <bad@remote.example>: '
                       r'response to "RCPT TO:<bad@remote.example>" was: 550 no such user')


def test_refused_first_recipient(tmp_path: Path) -> None:
    """As Exim: after a refused RCPT the message is not sent on the held connection,
    even when all its recipients are on it."""
    with _sink() as sink, _daemon(tmp_path, sink) as d, SmtpTestClient(d.port) as c:
        c.banner()
        c.ehlo()
        assert c.cmd(MAIL)[0] == 250
        assert c.cmd("RCPT TO:<bad@remote.example>")[0] == 550
        assert c.cmd("RCPT TO:<a@remote.example>")[0] == 250
        assert c.data(BODY)[0] == 250
        assert sink.wait_for(1)
        assert _quit_seen(sink, 2)
        assert sink.connections == 3
        assert sink.commands[:8] == [
            "EHLO test.example", MAIL, "RCPT TO:<bad@remote.example>", "QUIT",
            "EHLO test.example", MAIL, "RCPT TO:<a@remote.example>", "QUIT"]
        d.wait_for_log(r"rejected RCPT <bad@remote.example>: 127.0.0.1 \[127.0.0.1\] : "
                       r"SMTP error from remote mail server after RCPT "
                       r"TO:<bad@remote.example>: 550 no such user")


def test_without_hold_each_callout_connects(tmp_path: Path) -> None:
    """The comparison: without hold, a connection per callout and one for delivery."""
    with _sink() as sink, _daemon(tmp_path, sink, hold="use_sender,no_cache") as d, \
            SmtpTestClient(d.port) as c:
        c.banner()
        c.ehlo()
        assert c.cmd(MAIL)[0] == 250
        assert c.cmd("RCPT TO:<a@remote.example>")[0] == 250
        assert c.cmd("RCPT TO:<b@remote.example>")[0] == 250
        assert c.data(BODY)[0] == 250
        assert sink.wait_for(1)
        time.sleep(0.2)
        assert sink.connections == 3


def test_host_offering_starttls_gets_a_delivery_connection(tmp_path: Path) -> None:
    """A callout never uses TLS but the delivery would: the held connection is not
    used for it (QUIT at the end of the message), the delivery makes its own."""
    (tmp_path / "certs").mkdir()
    cert = certs.make_cert(tmp_path / "certs", "127.0.0.1")
    with SmtpSink(tls_context=certs.server_context(cert)) as sink, \
            _daemon(tmp_path / "d", sink) as d, SmtpTestClient(d.port) as c:
        c.banner()
        c.ehlo()
        assert c.cmd(MAIL)[0] == 250
        assert c.cmd("RCPT TO:<a@remote.example>")[0] == 250
        assert c.data(BODY)[0] == 250
        assert sink.wait_for(1)
        assert sink.connections == 2
        assert sink.commands[:4] == ["EHLO test.example", MAIL,
                                     "RCPT TO:<a@remote.example>", "QUIT"]
        assert "STARTTLS" in sink.commands[4:]
