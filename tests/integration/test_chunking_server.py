"""CHUNKING (RFC 3030) in the daemon: BDAT messages reach the spool and the mailbox byte
for byte, run the DATA ACL (not the predata ACL), obey message_size_limit and log "K"
on the "<=" line, as Exim 4.96 does."""
from __future__ import annotations

import re

from tests.integration.conftest import BASE_CONFIG, maildir_messages, wait_for
from tests.support.smtp import SmtpTestClient

ACLS = """\
acl_smtp_predata = acl_predata
acl_smtp_data = acl_data
message_size_limit = 2K
.ifdef CHUNKING_HOSTS
chunking_advertise_hosts = CHUNKING_HOSTS
.endif
"""
ACL_DEFS = """\
acl_predata:
  warn    logwrite = predata ACL ran
  accept

acl_data:
  deny    condition = ${if eq{$h_subject:}{reject me}}
          message = content refused
  warn    logwrite = data ACL saw $message_size bytes, subject "$h_subject:"
  accept

"""
CONFIG = BASE_CONFIG.replace("begin acl\n\n", "begin acl\n\n" + ACL_DEFS).replace(
    ".ifdef EXTRA_MAIN", ACLS + ".ifdef EXTRA_MAIN")

TX = b"MAIL FROM:<bob@test.example>\r\nRCPT TO:<alice@test.example>\r\n"


def _session(d) -> SmtpTestClient:
    c = d.client()
    c.banner()
    code, text = c.ehlo()
    assert code == 250 and "CHUNKING" in text.split("\n")
    return c


def _replies(c: SmtpTestClient, n: int) -> list[tuple[int, str]]:
    return [c.read_reply() for _ in range(n)]


def test_a_chunked_message_is_spooled_and_delivered_byte_for_byte(pymta_daemon, tmp_path):
    d = pymta_daemon(config=CONFIG)
    head = b"Subject: chunks\r\n\r\n"
    body = b"line one\r\n.\r\n..two dots\r\nbare\rcr\r\nend\r\n"
    msg = head + body
    cut = len(head) + 9                          # between the CR and LF of "line one"
    with _session(d) as c:
        c.send_raw(TX + b"BDAT %d\r\n" % cut + msg[:cut]
                   + b"BDAT %d LAST\r\n" % (len(msg) - cut) + msg[cut:] + b"NOOP\r\n")
        replies = _replies(c, 5)
        assert replies[:3] == [(250, "OK"), (250, "Accepted"), (250, f"{cut} byte chunk received")]
        # Exim's two-line answer to the last chunk: its size and the message's on the
        # wire (the 51 bytes the DATA ACL sees, with CRLF line ends), then the usual one.
        code, text = replies[3]
        chunk_line, ok_line = text.split("\n")
        assert code == 250 and chunk_line == f" {len(msg) - cut} byte chunk, total 58"
        assert ok_line.startswith("OK id=")
        assert replies[4] == (250, "OK")         # pipelined after the last chunk: a command
        msgid = ok_line[6:]
    [line] = d.wait_for_log(rf"{msgid} <= ")
    assert re.search(r"<= bob@test\.example H=\(client\.test\) \[127\.0\.0\.1\]:?\d* "
                     r"P=esmtp K S=\d+", line), line
    assert 'data ACL saw 51 bytes, subject "chunks"' in d.log()
    assert "predata ACL ran" not in d.log()
    [delivered] = wait_for(lambda: maildir_messages(tmp_path, "alice"))
    assert delivered.endswith(b"Subject: chunks\n\nline one\n.\n..two dots\nbare\rcr\nend\n")


def test_the_data_acl_refuses_a_chunked_message(pymta_daemon):
    d = pymta_daemon(config=CONFIG)
    msg = b"Subject: reject me\r\n\r\nbody\r\n"
    with _session(d) as c:
        c.send_raw(TX + b"BDAT %d LAST\r\n" % len(msg) + msg)
        assert _replies(c, 3)[2] == (550, "content refused")
        # The transaction is over; DATA works as usual afterwards, with its predata ACL.
        assert c.send_message("bob@test.example", "alice@test.example",
                              b"Subject: fine\r\n\r\nx\r\n")[0] == 250
    d.wait_for_log(r"rejected after DATA: content refused")
    assert d.log().count("predata ACL ran") == 1


def test_message_size_limit_is_checked_at_the_end_of_each_chunk(pymta_daemon):
    d = pymta_daemon(config=CONFIG)
    with _session(d) as c:
        c.send_raw(TX + b"BDAT 1500\r\n" + b"a" * 1500 + b"BDAT 1500\r\n" + b"b" * 1500)
        assert _replies(c, 4)[2:] == [(250, "1500 byte chunk received"),
                                      (552, "Message size exceeds maximum permitted")]
        # The rest of the client's pipelined chunks are refused and skipped, not run.
        c.send_raw(b"BDAT 9 LAST\r\nQUIT\r\nXYZNOOP\r\n")
        assert _replies(c, 2) == [(503, "valid RCPT command must precede BDAT"),
                                  (250, "OK")]
    d.wait_for_log(r"message too big")
    assert d.queue() == []


def test_size_syntax_errors_never_desynchronise(pymta_daemon):
    d = pymta_daemon(config=CONFIG)
    with _session(d) as c:
        c.send_raw(TX + b"BDAT -1\r\nNOOP\r\n")
        assert _replies(c, 4)[2:] == [(501, "missing size for BDAT command"), (250, "OK")]
        c.send_raw(b"BDAT 4294967297 LAST\r\nabc\r\nNOOP\r\n")
        # No wrap-around to 1 byte: all of it is data, and the session waits for more.
        c.send_raw(b"x" * (4294967297 % 1000))
        c.sock.settimeout(0.5)
        try:
            got = c.sock.recv(100)
        except TimeoutError:
            got = b""
        assert got == b""


def test_chunking_advertise_hosts_can_withhold_chunking(pymta_daemon):
    d = pymta_daemon(config=CONFIG, macros={"CHUNKING_HOSTS": "10.0.0.1"})
    with d.client() as c:
        c.banner()
        assert "CHUNKING" not in c.ehlo()[1]
        c.send_raw(TX + b"BDAT 3 LAST\r\nabcNOOP\r\n")
        assert _replies(c, 4)[2:] == [(503, "BDAT command used when CHUNKING not advertised"),
                                      (250, "OK")]
