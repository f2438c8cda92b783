"""The seen ACL condition over SMTP: greylisting in the RCPT ACL, and a record written
in one connection (MAIL ACL, write) refusing later connections (connect ACL, readonly),
kept in spool/db/seen across the daemon's receiver processes."""
from __future__ import annotations

import time

from pymta.hints.seen import SeenDB
from tests.integration.conftest import BASE_CONFIG

ACLS = """\
acl_conn:
  deny    seen = 1h / readonly / key=banned_$sender_host_address
          message = you were banned
  accept

acl_mail:
  warn    senders = spammer@remote.example
          seen = 0s / write / key=banned_$sender_host_address
  accept

acl_rcpt:
  defer   !seen = -1s / key=${sender_host_address}_$local_part@$domain
          message = greylisted, try again
  accept  domains = +local_domains
  deny    message = relay not permitted
"""

CONFIG = (BASE_CONFIG.replace("acl_smtp_rcpt = acl_check_rcpt\n",
                              "acl_smtp_connect = acl_conn\nacl_smtp_mail = acl_mail\n"
                              "acl_smtp_rcpt = acl_rcpt\n")
          .replace("begin acl\n", "begin acl\n\n" + ACLS))


def test_greylisting(pymta_daemon):
    d = pymta_daemon(config=CONFIG)
    first = []
    start = time.monotonic()
    with d.client() as c:
        c.banner()
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@remote.example>")[0] == 250
        first.append(c.cmd("RCPT TO:<alice@test.example>"))
        first.append(c.cmd("RCPT TO:<alice@test.example>"))      # too soon
        c.quit()
    assert first == [(451, "greylisted, try again")] * 2
    d.wait_for_log(r"temporarily rejected RCPT <alice@test\.example>: greylisted",
                   name="reject")
    while True:     # whole seconds: passes once the clock's second has moved on
        with d.client() as c:
            c.banner()
            c.ehlo()
            assert c.cmd("MAIL FROM:<a@remote.example>")[0] == 250
            code, _ = c.cmd("RCPT TO:<alice@test.example>")
            if code == 250:     # another triplet is new, so greylisted
                assert c.cmd("RCPT TO:<carol@test.example>")[0] == 451
            c.quit()
        if code == 250:
            break
        assert code == 451 and time.monotonic() - start < 5
        time.sleep(0.3)
    db = SeenDB(str(d.spool))
    assert db.get("127.0.0.1_alice@test.example") is not None


def test_record_written_in_one_connection_refuses_the_next(pymta_daemon):
    d = pymta_daemon(config=CONFIG)
    with d.client() as c:
        c.banner()
        c.ehlo()
        assert c.cmd("MAIL FROM:<friend@remote.example>")[0] == 250
        c.quit()
    with d.client() as c:
        assert c.banner()[0] == 220           # readonly: nothing was written
        c.ehlo()
        assert c.cmd("MAIL FROM:<spammer@remote.example>")[0] == 250
        c.quit()
    with d.client() as c:
        assert c.read_reply() == (550, "you were banned")
    assert SeenDB(str(d.spool)).get("banned_127.0.0.1") is not None
