"""SMTP sessions whose reception log lines pymta and Exim 4.96 must write alike.

:func:`run_sessions` plays the same dialogues against either daemon (pymta's
PymtaDaemon or tests.support.exim.EximDaemon, configured by :func:`config`), and
:func:`shapes` turns a mainlog into the lines under test with what differs from run to
run masked: time stamps, message ids, sizes (Exim's Received: header is not pymta's)
and the counted seconds.  ``python -m tests.support.logsel`` records Exim's shapes into
tests/data/logsel/reception.log (needs root and exim4).
"""
from __future__ import annotations

import base64
import re
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from tests.support.smtp import SmtpTestClient

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "logsel"
EXPECTED = DATA_DIR / "reception.log"
EXPECTED_REJECT = DATA_DIR / "rejectlog.log"
EXPECTED_MAILAUTH = DATA_DIR / "mailauth.log"

#: The reception items under test (millisec and the port/interface fields stay off:
#: they are other items).
SELECTOR = ("+8bitmime +pipelining +receive_time +received_recipients +received_sender "
            "+subject +smtp_connection +smtp_no_mail +smtp_incomplete_transaction "
            "+smtp_mailauth")

_CONFIG = """\
primary_hostname = mx.test.example
qualify_domain = test.example
spool_directory = {spool}
log_file_path = {spool}/log/%slog
domainlist local_domains = test.example
log_selector = {selector}
acl_smtp_connect = acl_conn
acl_smtp_rcpt = acl_rcpt
acl_smtp_data = acl_data

begin acl

acl_conn:
  deny    hosts = 127.0.0.2
  # time for a PIPECONNECT client's early EHLO to arrive before the banner
  accept  hosts = 127.0.0.3
          delay = 1s
  accept

acl_rcpt:
  accept  domains = +local_domains
          local_parts = alice : bob
  deny    message = relay not permitted

acl_data:
  warn    remove_header = X-Drop
  deny    condition = ${{if def:h_X-Reject:}}
          message = data refused
  accept

begin routers

all:
  driver = accept
  transport = sink

begin transports

sink:
  driver = appendfile
  file = {dir}/mbox
{user}
begin authenticators

plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = ${{if eq{{$auth3}}{{pw}}}}
  server_set_id = $auth2
"""


def config(spool: str, directory: str, selector: str = SELECTOR, user: str = "") -> str:
    """The configuration both daemons run (``user``: the appendfile's user line)."""
    return _CONFIG.format(spool=spool, dir=directory, selector=selector, user=user)


SUBJECT = 'Subject: hello "w" \\ caf\u00e9 =?utf-8?q?d=C3=A9j=C3=A0?=\n\tfolded'


def run_sessions(port: int, wait_log: Callable[[str, int], None]) -> None:
    """The dialogues, one at a time; ``wait_log(regex, count)`` waits until the mainlog
    has ``count`` lines matching (so each session's lines are written before the
    next session starts)."""
    # 1: one command at a time, BODY=8BITMIME, two recipients, a decorated Subject:
    with SmtpTestClient(port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@outside.example> BODY=8BITMIME")[0] == 250
        assert c.cmd("RCPT TO:<alice@test.example>")[0] == 250
        assert c.cmd("RCPT TO:<bob@test.example>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        body = (SUBJECT.replace("\n", "\r\n") + "\r\nMessage-ID: <m1@outside.example>\r\n"
                "\r\nbody\r\n.\r\n")
        c.send_raw(body.encode())
        assert c.read_reply()[0] == 250
    wait_log(r"no MAIL|closed by QUIT", 1)
    # 2: MAIL, RCPT and DATA pipelined, BODY=7BIT, no Subject:
    with SmtpTestClient(port) as c:
        c.ehlo()
        c.send_raw(b"MAIL FROM:<> BODY=7BIT\r\nRCPT TO:<alice@test.example>\r\nDATA\r\n")
        assert [c.read_reply()[0] for _ in range(3)] == [250, 250, 354]
        c.send_raw(b"Message-ID: <m2@outside.example>\r\n\r\nbody\r\n.\r\n")
        assert c.read_reply()[0] == 250
    wait_log(r"closed by QUIT", 2)
    # 3: no MAIL at all
    with SmtpTestClient(port) as c:
        c.ehlo()
        assert c.cmd("NOOP")[0] == 250
    wait_log(r"no MAIL in", 1)
    # 4: a transaction abandoned by QUIT, one recipient refused
    with SmtpTestClient(port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<b@outside.example>")[0] == 250
        assert c.cmd("RCPT TO:<alice@test.example>")[0] == 250
        assert c.cmd("RCPT TO:<x@elsewhere.example>")[0] == 550
    wait_log(r"incomplete transaction \(QUIT\)", 1)
    # 5: ... by RSET (the sender only: no recipient accepted)
    with SmtpTestClient(port) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<c@outside.example>")[0] == 250
        assert c.cmd("RSET")[0] == 250
    wait_log(r"incomplete transaction \(RSET\)", 1)
    wait_log(r"closed by QUIT", 5)
    # 6: refused by the connect ACL
    with SmtpTestClient(port, source="127.0.0.2") as c:
        assert c.banner()[0] == 550
        c.close()
    wait_log(r"rejected connection", 1)
    # 7: a transaction lost with the connection
    c = SmtpTestClient(port)
    c.ehlo()
    assert c.cmd("MAIL FROM:<d@outside.example>")[0] == 250
    assert c.cmd("RCPT TO:<bob@test.example>")[0] == 250
    c.close()
    wait_log(r"incomplete transaction \(connection lost\)", 1)
    # 8: PIPECONNECT (EHLO before the banner, which the connect ACL delays), then
    # MAIL, RCPT and one BDAT LAST at once
    c = SmtpTestClient(port, source="127.0.0.3")
    chunk = b"Subject: chunked\r\n\r\nbody\r\n"
    c.send_raw(b"EHLO client.test\r\n")
    c.banner()
    c.read_reply()
    c.send_raw(b"MAIL FROM:<e@outside.example>\r\nRCPT TO:<bob@test.example>\r\n"
               + b"BDAT %d LAST\r\n" % len(chunk) + chunk)
    assert [c.read_reply()[0] for _ in range(3)] == [250, 250, 250]
    c.quit()
    c.close()
    wait_log(r"closed by QUIT", 6)
    # 9: the client goes away between transactions (no unexpected disconnection)
    c = SmtpTestClient(port)
    c.ehlo()
    c.sock.shutdown(socket.SHUT_WR)
    assert c.read_reply()[0] == 421
    c.close()
    wait_log(r"\) \[127\.0\.0\.1\] lost D=", 1)
    time.sleep(0.5)


def run_mailauth(port: int, wait_log: Callable[[str, int], None]) -> None:
    """MAIL with AUTH=: after authentication (a sender, and <>), and without it."""
    plain = "AUTH PLAIN " + base64.b64encode(b"\0user\0pw").decode()
    for mail, authenticate in (("MAIL FROM:<a@outside.example> AUTH=<x@outside.example>",
                                True),
                               ("MAIL FROM:<a@outside.example> AUTH=<>", True),
                               ("MAIL FROM:<a@outside.example> AUTH=bare@outside.example",
                                True),
                               ("MAIL FROM:<a@outside.example> AUTH=<x@outside.example>",
                                False)):
        with SmtpTestClient(port) as c:
            c.ehlo()
            if authenticate:
                assert c.cmd(plain)[0] == 235
            assert c.cmd(mail)[0] == 250
            assert c.cmd("RCPT TO:<alice@test.example>")[0] == 250
            assert c.data(b"Subject: s\r\n\r\nb\r\n")[0] == 250
    with SmtpTestClient(port) as c:
        c.ehlo()
        assert c.cmd(plain)[0] == 235
    wait_log(r"no MAIL in .* A=", 1)


def mailauth_shapes(mainlog: str, after: int = 0) -> list[str]:
    """The masked arrival, "ignoring AUTH=" and "no MAIL" lines."""
    return [ln for ln in shapes(mainlog, after) if " <= " in ln or "no MAIL" in ln] + \
        [ln.split(" ", 2)[2] for ln in mainlog[after:].splitlines() if "ignoring AUTH" in ln]


def run_data_rejection(port: int) -> None:
    """A message refused by the DATA ACL: two recipients, headers of each flag kind and
    one that the ACL removed before refusing."""
    with SmtpTestClient(port) as c:
        assert c.cmd("HELO client.test")[0] == 250
        assert c.cmd("MAIL FROM:<>")[0] == 250
        assert c.cmd("RCPT TO:<alice@test.example>")[0] == 250
        assert c.cmd("RCPT TO:<bob@test.example>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send_raw(b"Subject: r\r\nX-Drop: d\r\nX-Reject: yes\r\n"
                   b"Reply-To: q@outside.example\r\nSender: s@outside.example\r\n"
                   b"Cc: c@outside.example\r\nBcc: b@outside.example\r\n"
                   b"To: t@outside.example,\r\n u@outside.example\r\n"
                   b"From: f@outside.example\r\nMessage-ID: <r@outside.example>\r\n"
                   b"Date: Fri, 4 Dec 2026 10:00:00 +0000\r\n\r\nbody\r\n.\r\n")
        assert c.read_reply()[0] == 550


_REJECT_MASKS = [
    (re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{3})? (\[\d+\] )?"), ""),
    (re.compile(r"\b[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}\b"), "MSGID"),
    # the Received: header names the MTA, its host name and the time
    (re.compile(r"\((Exim|pymta) [^)]*\)"), "(MTA)"),
    (re.compile(r"^\t\w{3}, \d\d? \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}$"), "\tDATE"),
]


def reject_entry(rejectlog: str) -> list[str]:
    """The masked lines of the rejectlog entry of the refused message."""
    lines = rejectlog.splitlines()
    start = next(i for i, ln in enumerate(lines) if "rejected after DATA" in ln)
    out = []
    for line in lines[start:]:
        for rx, repl in _REJECT_MASKS:
            line = rx.sub(repl, line)
        out.append(line)
    return out


#: The lines under test, and what is masked in them.
_WANTED = re.compile(r" <= |SMTP connection from|no MAIL in|incomplete transaction|"
                     r"rejected connection|unexpected disconnection")
_MASKS = [
    (re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{3})? (\[\d+\] )?"), ""),
    (re.compile(r"\b[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}\b"), "MSGID"),
    (re.compile(r" S=\d+"), " S=SIZE"),
    (re.compile(r" (RT|D)=\d+s"), r" \1=SECONDS"),
    (re.compile(r"\(TCP/IP connection count = \d+\)"), "(TCP/IP connection count = N)"),
]


def shapes(mainlog: str, after: int = 0) -> list[str]:
    """The masked lines under test from ``mainlog[after:]``."""
    out = []
    for line in mainlog[after:].splitlines():
        if not _WANTED.search(line):
            continue
        for rx, repl in _MASKS:
            line = rx.sub(repl, line)
        out.append(line)
    return out


def record() -> None:
    """Run the sessions against Exim 4.96 and write EXPECTED."""
    from tests.support.exim import EximDaemon
    with tempfile.TemporaryDirectory() as tmp:
        d = EximDaemon(config("@SPOOL@", "@DIR@", user="  user = Debian-exim\n"), tmp)
        with d:
            wait_for_lines(d.log, r"no MAIL in", 1)       # the readiness probe's session
            start = len(d.log())
            run_sessions(d.port, lambda rx, n: wait_for_lines(lambda: d.log()[start:], rx, n))
            EXPECTED.write_text("\n".join(shapes(d.log(), start)) + "\n")
            run_data_rejection(d.port)
            wait_for_lines(lambda: d.log("reject"), r"rejected after DATA", 1)
            EXPECTED_REJECT.write_text("\n".join(reject_entry(d.log("reject"))) + "\n")
            start = len(d.log())
            run_mailauth(d.port, lambda rx, n: wait_for_lines(lambda: d.log()[start:], rx, n))
            EXPECTED_MAILAUTH.write_text("\n".join(mailauth_shapes(d.log(), start)) + "\n")
    print(EXPECTED.read_text() + EXPECTED_REJECT.read_text() + EXPECTED_MAILAUTH.read_text(),
          end="")


def wait_for_lines(text: Callable[[], str], regex: str, count: int,
                   timeout: float = 10.0) -> None:
    """Wait until ``count`` lines of ``text()`` match ``regex``."""
    rx = re.compile(regex)
    end = time.monotonic() + timeout
    while sum(1 for ln in text().splitlines() if rx.search(ln)) < count:
        if time.monotonic() > end:
            raise AssertionError(f"no {count} lines matching {regex!r}:\n{text()}")
        time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(record())
